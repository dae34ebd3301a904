//! Stateful NAT64 (RFC 6146, `"mode": "nat64"`): the NAT stages. Each maps the
//! packet's transport address through the BIB (making an entry for a new IPv6
//! transport address), finds or makes its session, rewrites the port (or ICMP query
//! identifier) and hands the packet back to the translation stage of its direction,
//! which then takes the mapped address instead of a stateless one (`Scratch::nat_*`):
//! the header translation is the one SIIT uses.
//!
//! ICMP errors are mapped through the BIB by the packet inside them (its port and the
//! error's checksums rewritten here, the addresses by the error stage). Fragments: the
//! first one is mapped as a whole packet would be and leaves what it was mapped to in
//! `NAT_FRAGS` for the ones after it, which carry no ports.

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    addr,
    counters::Counter,
    icmp,
    maps::{
        AdfKey, Bib4Entry, Bib4Key, Bib6Key, FragEntry, FragKey, Globals, NatConfig, NatEvent, Session,
        SessionKey, Subscriber,
    },
    nat::{self, Lifetime, PROTO_ICMP, PortRange, TcpState},
    words,
};

use nat64_common::stages;

use super::{
    l4::{TCP_CHECK, UDP_CHECK},
    lookup::denylisted4,
    simopen::{self, pack4},
    step::{self, Step, drop_reason},
};
use crate::{
    atomic::fetch_add,
    counters::bump,
    hdr::{ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_HLEN},
    maps::{
        BIB4, BIB6, NAT_ADDRS, NAT_ADF, NAT_CFG, NAT_COUNTER, NAT_EVENTS, NAT_FRAGS, NAT_POOL4,
        NAT_SUBSCRIBERS, SESSIONS, Scratch, globals, scratch,
    },
    packet::Packet,
    verdict::{Action, pack},
};

const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP4_PORT_UNREACH: u8 = 3;
const EEXIST: i64 = 17;
const E2BIG: i64 = 7;
const BPF_NOEXIST: u64 = 1;
/// How long a first fragment's mapping serves the fragments after it (boot-time ns).
const FRAG_LIFETIME_NS: u64 = 5_000_000_000;

#[inline(always)]
fn finish(action: Action, c: Counter) -> Step {
    Step::Finish(pack(action, c))
}

/// Why a map insertion failed with `e` (a negative errno): the table is full, or the
/// kernel had no memory for the entry.
#[inline(always)]
fn insert_failed(e: i64) -> Counter {
    if -e == E2BIG { Counter::DropNatTableFull } else { Counter::DropNatAllocFailed }
}

/// Where a transport header keeps what the NAT rewrites: the port or identifier
/// (offset), the checksum (offset), and whether it is UDP's (0 means none).
struct L4At {
    port: usize,
    check: usize,
    udp: bool,
}

/// A packet's transport header as the NAT sees it.
struct Transport {
    at: L4At,
    /// The BIB's protocol (ICMP for both ICMP versions).
    proto: u8,
    /// TCP flags; for ICMP the type.
    flags: u8,
    sport: u16,
    dport: u16,
}

/// The transport header at `off` of protocol `nh`: TCP, UDP, or an echo of ICMP
/// protocol `icmp` (1 or 58) whose type is one of `echo`. What the NAT rewrites is the
/// source port (6->4) or, with `to_v6`, the destination port; for an echo the
/// identifier, which is both ports.
#[inline(always)]
fn transport<P: Packet>(
    pkt: &P,
    off: usize,
    nh: u8,
    icmp: u8,
    echo: [u8; 2],
    to_v6: bool,
    quoted: bool,
) -> Result<Transport, Counter> {
    if nh == IPPROTO_TCP || nh == IPPROTO_UDP {
        let p = pkt.load::<[u8; 4]>(off).ok_or(Counter::DropMalformed)?;
        let (check, udp, flags) = if nh == IPPROTO_TCP {
            // A packet quoted in an ICMP error may end after its first 8 bytes.
            let flags = match pkt.load::<[u8; 2]>(off + 12) {
                Some(f) => f[1],
                None if quoted => 0,
                None => return Err(Counter::DropMalformed),
            };
            (off + TCP_CHECK, false, flags)
        } else {
            (off + UDP_CHECK, true, 0)
        };
        let at = L4At { port: if to_v6 { off + 2 } else { off }, check, udp };
        let (sport, dport) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
        return Ok(Transport { at, proto: nh, flags, sport, dport });
    }
    if nh != icmp {
        return Err(Counter::DropNatUnsupported);
    }
    let i = pkt.load::<[u8; 8]>(off).ok_or(Counter::DropMalformed)?;
    if i[0] != echo[0] && i[0] != echo[1] {
        return Err(Counter::DropNatUnsupported);
    }
    let id = u16::from_be_bytes([i[4], i[5]]);
    let at = L4At { port: off + 4, check: off + 2, udp: false };
    Ok(Transport { at, proto: PROTO_ICMP, flags: i[0], sport: id, dport: id })
}

/// The new lifetime of a session (`now` in boot-time ns) for a packet of `proto`
/// with TCP `flags`, `from_v6` or not, and its new TCP state; `None`: a TCP packet
/// that opens no session (not a SYN).
#[inline(always)]
fn refresh(
    cfg: &NatConfig,
    proto: u8,
    state: u8,
    from_v6: bool,
    flags: u8,
    now: u64,
    expires: u64,
) -> Option<(u64, u8)> {
    match proto {
        IPPROTO_TCP => {
            let (next, life) = nat::tcp_step(TcpState::from_u8(state), from_v6, flags);
            if next == TcpState::Closed {
                return None;
            }
            let seconds = match life {
                Lifetime::Keep => return Some((expires, next as u8)),
                Lifetime::Established => cfg.tcp_established,
                Lifetime::Transitory => cfg.tcp_transitory,
                Lifetime::IncomingSyn => nat::Timeouts::INCOMING_SYN,
            };
            Some((now + cfg.lifetime_ns(seconds), next as u8))
        }
        IPPROTO_UDP => Some((now + cfg.lifetime_ns(cfg.udp), 0)),
        _ => Some((now + cfg.lifetime_ns(cfg.icmp), 0)),
    }
}

/// Finds the session `key` and moves it on for this packet, or makes it when
/// `may_open`. `None`: dropped (counter given).
#[inline(always)]
fn session(
    cfg: &NatConfig,
    key: &SessionKey,
    from_v6: bool,
    flags: u8,
    may_open: bool,
) -> Result<(), Counter> {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    if let Some(p) = SESSIONS.get_ptr_mut(key) {
        // SAFETY: a value of the map; a racing update of the same session by another
        // CPU at worst keeps the other's lifetime.
        let s = unsafe { &mut *p };
        let state = if s.expires > now { s.state } else { TcpState::Closed as u8 };
        if s.expires <= now && !may_open {
            return Err(Counter::DropNatFiltered);
        }
        // Expired but not yet swept: the same session anew, in place (its BIB entry
        // still counts it).
        match refresh(cfg, key.proto, state, from_v6, flags, now, s.expires) {
            Some((expires, next)) => {
                if s.expires <= now {
                    bump(Counter::NatSessionCreated, 0);
                }
                s.expires = expires;
                s.state = next;
                return Ok(());
            }
            None => return Err(Counter::DropNatFiltered),
        }
    }
    if !may_open {
        return Err(Counter::DropNatFiltered);
    }
    let Some((expires, state)) = refresh(cfg, key.proto, TcpState::Closed as u8, from_v6, flags, now, 0)
    else {
        return Err(Counter::DropNatFiltered);
    };
    open_session(cfg, key, expires, state)
}

/// Makes session `key` on its BIB entry, which counts it (and so does the remote's
/// address-dependent filtering entry). Out of line: the NAT stages' own frames come
/// close to the verifier's 512 bytes of stack.
#[inline(never)]
fn open_session(cfg: &NatConfig, key: &SessionKey, expires: u64, state: u8) -> Result<(), Counter> {
    let k4 = Bib4Key { addr: key.local, port: key.local_port, proto: key.proto, _pad: 0 };
    let Some(bib) = BIB4.get_ptr_mut(&k4) else {
        return Err(Counter::DropNatNoMapping);
    };
    // SAFETY: a value of the map, read at once.
    let bib_tag = unsafe { (*bib).born } as u32;
    let value = Session { expires, state, _pad: [0; 3], bib_tag };
    match SESSIONS.insert(key, &value, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if -(e as i64) == EEXIST => {
            // Another CPU made it since the lookup: this packet goes through that one.
            bump(Counter::NatRaceResolved, 0);
            return Ok(());
        }
        Err(e) => return Err(insert_failed(e as i64)),
    }
    // SAFETY: a field of the map value.
    unsafe { fetch_add(&raw mut (*bib).sessions, 1) };
    // For address-dependent filtering: this remote address may now send from any port.
    if cfg.flags & (NatConfig::FLAG_EIF | NatConfig::FLAG_APDF) == 0 {
        let ak = AdfKey::of(key);
        if NAT_ADF.get_ptr(&ak).is_none() {
            let _ = NAT_ADF.insert(&ak, &0, BPF_NOEXIST);
        }
        if let Some(c) = NAT_ADF.get_ptr_mut(&ak) {
            // SAFETY: a value of the map.
            unsafe { fetch_add(c, 1) };
        }
    }
    bump(Counter::NatSessionCreated, 0);
    Ok(())
}

/// Whether an IPv4 packet without a session may open one (RFC 4787 filtering): through
/// a static entry always; else by the configured filtering (endpoint independent:
/// always; address dependent, the default: when the mapping has a session with that
/// remote address; address and port dependent: never).
#[inline(always)]
fn may_open(cfg: &NatConfig, entry: &Bib4Entry, key: &SessionKey) -> bool {
    if entry.flags & Bib4Entry::FLAG_STATIC != 0 || cfg.flags & NatConfig::FLAG_EIF != 0 {
        return true;
    }
    cfg.flags & NatConfig::FLAG_APDF == 0 && NAT_ADF.get_ptr(&AdfKey::of(key)).is_some()
}

/// A pool4 transport address for the IPv6 one `k6`: the host's paired address (RFC
/// 4787 REQ-2), a port RFC 6056 Algorithm 3 picks in the port's class, claimed in BIB4
/// first (so two hosts never get one port) and then published in BIB6.
///
/// With port blocks (RFC 7422) the address and the range are the host's block, which
/// the configuration alone decides: no log is needed to tell who held a port.
#[inline(always)]
fn allocate(cfg: &NatConfig, k6: &Bib6Key, want: u64) -> Result<Bib4Key, Counter> {
    let (idx, block) = if cfg.block_size != 0 {
        if !nat::in_prefix6(&k6.addr, &cfg.block_prefix, cfg.block_prefix_len) {
            return Err(Counter::DropNatNoPortBlock);
        }
        let i = nat::block_index(&k6.addr, cfg.block_prefix_len, cfg.block_host_len);
        let Some(slot0) = NAT_POOL4.get(0) else {
            return Err(Counter::DropInternal);
        };
        match nat::port_block(i, cfg.block_size, cfg.blocks_per_addr, cfg.pool4_count, slot0.first) {
            Some((slot, range)) => (slot, Some(range)),
            None => return Err(Counter::DropNatNoPortBlock),
        }
    } else {
        (nat::pick_address(cfg.key, &k6.addr, cfg.pool4_count), None)
    };
    let Some(slot) = NAT_POOL4.get(idx) else {
        return Err(Counter::DropNatPortsExhausted);
    };
    let range = match block {
        Some(r) => r,
        None => PortRange { first: slot.first, last: slot.last }.for_source(k6.proto, k6.port),
    };
    if range.is_empty() || cfg.pool4_count == 0 {
        return Err(Counter::DropNatPortsExhausted);
    }
    let offset = nat::port_offset(cfg.key, k6.proto, &k6.addr, k6.port);
    let counter = match NAT_COUNTER.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        Some(c) => unsafe {
            *c = (*c).wrapping_add(1);
            *c
        },
        None => 0,
    };
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    subscriber_take(cfg, &k6.addr, now)?;
    let entry = Bib4Entry { v6: *k6, flags: 0, sessions: 0, born: now };
    for attempt in 0..nat::PORT_TRIES {
        // A held IPv4 SYN's transport address first (simultaneous open).
        let k4 = if attempt == 0 && want != 0 {
            let (addr, port) = simopen::unpack4(want);
            Bib4Key { addr, port, proto: k6.proto, _pad: 0 }
        } else {
            Bib4Key {
                addr: slot.addr,
                port: nat::port_at(range, offset, counter, attempt),
                proto: k6.proto,
                _pad: 0,
            }
        };
        // A port held back after its mapping ended (RFC 6888 REQ-8) is still in BIB4,
        // released: taken, like any other.
        match BIB4.insert(&k4, &entry, BPF_NOEXIST) {
            Ok(()) => {}
            Err(e) if -(e as i64) == EEXIST => continue,
            Err(e) => {
                subscriber_give_back();
                return Err(insert_failed(e as i64));
            }
        }
        match BIB6.insert(k6, &k4, BPF_NOEXIST) {
            Ok(()) => {
                bump(Counter::NatBibCreated, 0);
                if attempt == 0 && want != 0 {
                    simopen::took();
                }
                if cfg.flags & NatConfig::FLAG_LOG != 0 {
                    log_bib(k6, &k4, now, NatEvent::BIB_CREATED);
                }
                return Ok(k4);
            }
            Err(e) => {
                let _ = BIB4.remove(&k4);
                subscriber_give_back();
                if -(e as i64) != EEXIST {
                    return Err(insert_failed(e as i64));
                }
                // Another CPU mapped this IPv6 transport address meanwhile: take its
                // mapping.
                bump(Counter::NatRaceResolved, 0);
                return bib6(k6).ok_or(Counter::DropNatNoMapping);
            }
        }
    }
    subscriber_give_back();
    Err(Counter::DropNatPortsExhausted)
}

/// RFC 6888 REQ-4: counts one more BIB entry to the subscriber of `addr` (made with
/// its first); `Err` when it holds `max-ports-per-host` already, nothing counted then.
/// The subscriber stays in `Scratch::nat_sub` for [`subscriber_give_back`]. Out of
/// line, as `open_session`.
#[inline(never)]
fn subscriber_take(cfg: &NatConfig, addr: &[u8; 16], now: u64) -> Result<(), Counter> {
    let Some(s) = scratch() else {
        return Err(Counter::DropInternal);
    };
    s.nat_sub = nat::cut6(addr, cfg.subscriber_len);
    let p = match NAT_SUBSCRIBERS.get_ptr_mut(&s.nat_sub) {
        Some(p) => p,
        None => {
            let fresh = Subscriber { ports: 0, last: now };
            match NAT_SUBSCRIBERS.insert(&s.nat_sub, &fresh, BPF_NOEXIST) {
                Ok(()) => {}
                // Made by another CPU meanwhile.
                Err(e) if -(e as i64) == EEXIST => {}
                Err(e) => return Err(insert_failed(e as i64)),
            }
            NAT_SUBSCRIBERS.get_ptr_mut(&s.nat_sub).ok_or(Counter::DropNatAllocFailed)?
        }
    };
    // SAFETY: a field of the map value.
    let ports = unsafe { &raw mut (*p).ports };
    // SAFETY: as above.
    if unsafe { fetch_add(ports, 1) } >= cfg.max_ports as u64 && cfg.max_ports != 0 {
        // SAFETY: as above.
        unsafe { fetch_add(ports, u64::MAX) };
        return Err(Counter::DropNatSubscriberLimit);
    }
    // SAFETY: a field of the map value (a racing write is another CPU's `now`).
    unsafe { (*p).last = now };
    Ok(())
}

/// Takes back what [`subscriber_take`] counted, the BIB entry not made after all.
#[inline(never)]
fn subscriber_give_back() {
    let Some(s) = scratch() else { return };
    if let Some(p) = NAT_SUBSCRIBERS.get_ptr_mut(&s.nat_sub) {
        // SAFETY: a field of the map value `subscriber_take` counted into.
        unsafe { fetch_add(&raw mut (*p).ports, u64::MAX) };
    }
}

/// Reports a BIB entry made or ended (`kind`, a `NatEvent` kind) to nat64-ctl
/// (`bib-log`); a full ring is counted.
#[inline(never)]
pub(crate) fn log_bib(k6: &Bib6Key, k4: &Bib4Key, now: u64, kind: u8) {
    let ev = NatEvent {
        time: now,
        v6: k6.addr,
        v6_port: k6.port,
        v4_port: k4.port,
        v4: k4.addr,
        proto: k6.proto,
        kind,
        _pad: [0; 6],
    };
    if NAT_EVENTS.output::<NatEvent>(&ev, 0).is_err() {
        bump(Counter::NatLogLost, 0);
    }
}

/// The BIB6 entry of `k6`, copied.
#[inline(always)]
fn bib6(k6: &Bib6Key) -> Option<Bib4Key> {
    // SAFETY: a value of the map, copied out at once.
    BIB6.get_ptr(k6).map(|p| unsafe { *p })
}

/// Whether a live BIB entry takes the IPv4 packet whose transport header is at `o`:
/// `meta` holds its protocol and (above bit 32) its destination, as read from memory.
/// TCP and UDP by the destination port, an ICMP echo by its identifier, an ICMP error
/// by the source of the packet inside. Out of line: asked only for packets to the
/// translator's own address.
#[inline(never)]
fn mapped4<P: Packet>(pkt: &P, o: u64, meta: u64) -> bool {
    let (o, proto, addr) = (o as usize & 0xffff, meta as u8, ((meta >> 32) as u32).to_ne_bytes());
    let (proto, port) = match proto {
        IPPROTO_TCP | IPPROTO_UDP => match pkt.load::<[u8; 4]>(o) {
            Some(p) => (proto, u16::from_be_bytes([p[2], p[3]])),
            None => return false,
        },
        IPPROTO_ICMP => match pkt.load::<[u8; 8]>(o) {
            Some(i) if i[0] == ICMP_ECHO_REQUEST || i[0] == ICMP_ECHO_REPLY => {
                (PROTO_ICMP, u16::from_be_bytes([i[4], i[5]]))
            }
            Some(i) if icmp::is_error4(i[0]) => {
                let Some(ih) = pkt.load::<[u8; 20]>(o + ICMP_HLEN) else { return false };
                let at = o + ICMP_HLEN + (((ih[0] & 0x0f) as usize * 4) & 0x3c);
                let Some(p) = pkt.load::<[u8; 8]>(at) else { return false };
                match ih[9] {
                    IPPROTO_TCP | IPPROTO_UDP => (ih[9], u16::from_be_bytes([p[0], p[1]])),
                    IPPROTO_ICMP => (PROTO_ICMP, u16::from_be_bytes([p[4], p[5]])),
                    _ => return false,
                }
            }
            _ => return false,
        },
        _ => return false,
    };
    let k4 = Bib4Key { addr, port, proto, _pad: 0 };
    // SAFETY: a value of the map, read at once.
    BIB4.get_ptr(&k4).is_some_and(|e| unsafe { (*e).live() })
}

/// An IPv4 packet (`len` bytes, its transport header `t`) that no mapping lets in: a
/// SYN is held for a simultaneous open, the rest dropped as `otherwise`; the counter.
#[inline(always)]
fn hold4<P: Packet>(pkt: &P, cfg: &NatConfig, t: &Transport, len: u16, otherwise: Counter) -> Counter {
    if t.proto != IPPROTO_TCP || !nat::opening_syn(t.flags) || cfg.max_syns == 0 {
        return otherwise;
    }
    let Some(h) = pkt.load::<[u8; 20]>(P::L2_LEN) else {
        return Counter::DropMalformed;
    };
    let (src, dst) = ([h[12], h[13], h[14], h[15]], [h[16], h[17], h[18], h[19]]);
    simopen::hold(pkt, pack4(src, t.sport), pack4(dst, t.dport), len as u64, cfg.max_syns as u64)
}

/// For an IPv6 packet to `dst4`:`dport` needing a new mapping: the transport address
/// a held IPv4 SYN from there was sent to, if this is a SYN and one is held (see
/// [`simopen::wanted`]); else 0.
#[inline(always)]
fn syn_wanted(cfg: &NatConfig, proto: u8, flags: u8, dst4: [u8; 4], dport: u16) -> u64 {
    if proto != IPPROTO_TCP || !nat::opening_syn(flags) || cfg.max_syns == 0 {
        return 0;
    }
    simopen::wanted(pack4(dst4, dport))
}

/// A hairpinned IPv6 packet (from `remote` to `local`, [`pack4`]ed pool4 transport
/// addresses) that no mapping lets in: a SYN is held (simultaneous open), the rest is
/// dropped as `otherwise`: the packed verdict. `what`: the protocol, the TCP flags << 8
/// and `otherwise` << 16. Out of line, with its arguments packed: the NAT stage's frame
/// is full.
#[inline(never)]
fn hold6<P: Packet>(pkt: &P, what: u64, remote: u64, local: u64) -> u64 {
    let (proto, flags) = (what as u8, (what >> 8) as u8);
    let otherwise = crate::verdict::counter(what >> 16);
    let Some(cfg) = NAT_CFG.get(0) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    if proto != IPPROTO_TCP || !nat::opening_syn(flags) || cfg.max_syns == 0 {
        return pack(Action::Drop, otherwise);
    }
    let plen = pkt.load::<[u8; 2]>(P::L2_LEN + 4).map_or(0, u16::from_be_bytes) as u64;
    let len = (IPV6_HLEN as u64 + plen) | 1 << 32;
    pack(Action::Drop, simopen::hold(pkt, remote, local, len, cfg.max_syns as u64))
}

#[inline(always)]
fn config() -> Option<(&'static Globals, &'static NatConfig)> {
    let g = globals()?;
    if !g.flag(Globals::FLAG_STATEFUL) {
        return None;
    }
    Some((g, NAT_CFG.get(0)?))
}

/// Rewrites the port (or identifier) at `at.port` from `old` to `new`, the checksum
/// following.
#[inline(always)]
fn rewrite_port<P: Packet>(pkt: &mut P, at: &L4At, old: u16, new: u16, icmp: bool) -> Option<()> {
    if old == new {
        return Some(());
    }
    pkt.store(at.port, new.to_be_bytes())?;
    if icmp {
        // ICMP checksums are never left to the device.
        super::l4::fix_check(pkt, at.check, old as u32, new as u32, false)
    } else if at.udp && pkt.load::<[u8; 2]>(at.check)? == [0, 0] {
        // IPv4 UDP without a checksum stays without one (the translation decides).
        Some(())
    } else {
        pkt.fix_l4_check(at.check, old as u32, new as u32, at.udp)
    }
}

/// `rewrite_port` for the packet's own transport header, noting how to undo it (see
/// `Scratch::nat_undo`).
#[inline(always)]
fn rewrite_noted<P: Packet>(
    pkt: &mut P,
    s: &mut Scratch,
    at: &L4At,
    old: u16,
    new: u16,
    icmp: bool,
) -> Option<()> {
    s.nat_undo = [
        (at.port as u32 & 0xffff) | (at.check as u32) << 16,
        old as u32 | (new as u32) << 16,
        if icmp { 2 } else { at.udp as u32 },
    ];
    rewrite_port(pkt, at, old, new, icmp)
}

/// Puts back the port the NAT stage rewrote: the packet leaves untranslated (to the
/// kernel's general path, which brings it back as fragments to be mapped anew) or is
/// quoted in the translator's own ICMP error, which must show what the host sent.
#[inline(never)]
pub fn undo<P: Packet>(pkt: &mut P) -> u64 {
    let Some(s) = scratch() else { return 0 };
    let u = s.nat_undo;
    if u[0] == 0 {
        return 0;
    }
    s.nat_undo[0] = 0;
    // Offsets within the first 4 KiB: the verifier takes a bounds check only of a
    // pointer whose offset and access together stay within 64 KiB.
    let at = L4At { port: (u[0] & 0xfff) as usize, check: (u[0] >> 16 & 0xfff) as usize, udp: u[2] == 1 };
    let _ = rewrite_port(pkt, &at, (u[1] >> 16) as u16, u[1] as u16, u[2] == 2);
    0
}

/// Rewrites the port of the packet inside an ICMP error, from `old` to `new`: its
/// transport checksum when the error quotes it (a zero UDP checksum stays zero), and
/// the error's own checksum at `outer` for both changes.
#[inline(always)]
fn rewrite_inner<P: Packet>(pkt: &mut P, at: &L4At, old: u16, new: u16, outer: usize) -> Option<()> {
    // Opaque to LLVM: it would drop the bounds check of the outer checksum as implied
    // by the larger inner ones, which the verifier tracks on other registers.
    // SAFETY: reading a local.
    let outer = unsafe { core::ptr::read_volatile(&outer) };
    let Some(c0) = pkt.load::<[u8; 2]>(at.check) else {
        // The error quotes too little of the packet to hold its checksum.
        pkt.store(at.port, new.to_be_bytes())?;
        return super::l4::fix_check(pkt, outer, old as u32, new as u32, false);
    };
    let c0 = u16::from_be_bytes(c0) as u32;
    pkt.store(at.port, new.to_be_bytes())?;
    if at.udp && c0 == 0 {
        return super::l4::fix_check(pkt, outer, old as u32, new as u32, false);
    }
    super::l4::fix_check(pkt, at.check, old as u32, new as u32, at.udp)?;
    let c1 = u16::from_be_bytes(pkt.load::<[u8; 2]>(at.check)?) as u32;
    super::l4::fix_check(pkt, outer, old as u32 + c0, new as u32 + c1, false)
}

/// Whether the session `key` is there and alive (an ICMP error about it moves nothing).
#[inline(always)]
fn session_alive(key: &SessionKey) -> bool {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    // SAFETY: a value of the map, read at once.
    SESSIONS.get_ptr(key).is_some_and(|p| unsafe { (*p).expires } > now)
}

/// The address the first fragment of datagram `key` was mapped to, if it came.
#[inline(always)]
fn frag_lookup(key: &FragKey) -> Option<[u8; 16]> {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    // SAFETY: a value of the map, copied out at once.
    let e = NAT_FRAGS.get_ptr(key).map(|p| unsafe { *p })?;
    if e.expires > now { Some(e.addr) } else { None }
}

/// Notes what the first fragment of datagram `key` was mapped to.
#[inline(always)]
fn frag_note(key: &FragKey, addr: [u8; 16]) {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    let _ = NAT_FRAGS.insert(key, &FragEntry { addr, expires: now + FRAG_LIFETIME_NS }, 0);
}

/// Notes what the first fragment of the IPv6 datagram in scratch space (its addresses
/// in `src6w` and `dst6w`, its identification in `nat_l4[2]`) was mapped to: `addr4`,
/// as read from memory. Out of line: the NAT stage's frame is full.
#[inline(never)]
fn note_first6(addr4: u32) {
    let Some(s) = scratch() else { return };
    frag_note(&frag_key6(s), super::held::addr4_in16(addr4.to_ne_bytes()));
}

/// The datagram of the IPv6 fragment in scratch space (see [`note_first6`]).
#[inline(always)]
fn frag_key6(s: &Scratch) -> FragKey {
    FragKey {
        src: words::to_bytes(&s.src6w),
        dst: words::to_bytes(&s.dst6w),
        id: s.nat_l4[2],
        proto: 0,
        family: 6,
        _pad: [0; 2],
    }
}

/// IPv6 -> IPv4 for a packet of an established flow, inside the translation stage (no
/// second pass through it): its BIB entry and live session found, the session moved
/// on, the port rewritten, `Scratch::nat_addr4` set. 0 when anything else is needed
/// (no mapping or session yet, hairpinning, an ICMP error, a TCP packet the session
/// refuses): the NAT stage then does it all. The transport header at `off`, next
/// header `nh`, the IPv4 destination `dst4` (as read from memory).
#[inline(never)]
pub fn fast6<P: Packet>(pkt: &mut P, off: u64, nh: u64, dst4: u64) -> u64 {
    let (Some((_, cfg)), Some(s)) = (config(), scratch()) else {
        return 0;
    };
    let dst4 = (dst4 as u32).to_ne_bytes();
    let Ok(t) = transport(
        pkt,
        (off & 0xfff) as usize,
        nh as u8,
        IPPROTO_ICMPV6,
        [ICMP6_ECHO_REQUEST; 2],
        false,
        false,
    ) else {
        return 0;
    };
    let k6 = Bib6Key { addr: words::to_bytes(&s.src6w), port: t.sport, proto: t.proto, _pad: 0 };
    let Some(k4) = bib6(&k6) else {
        return 0;
    };
    if NAT_ADDRS.get_ptr(&dst4).is_some() {
        return 0;
    }
    let remote_port = if t.proto == PROTO_ICMP { k4.port } else { t.dport };
    let key = SessionKey {
        local: k4.addr,
        remote: dst4,
        local_port: k4.port,
        remote_port,
        proto: t.proto,
        _pad: [0; 3],
    };
    if session(cfg, &key, true, t.flags, false).is_err() {
        return 0;
    }
    if rewrite_noted(pkt, s, &t.at, t.sport, k4.port, t.proto == PROTO_ICMP).is_none() {
        return 0;
    }
    s.nat_flag = 1;
    s.nat_addr4 = k4.addr;
    1
}

/// IPv4 -> IPv6 for a packet of an established flow, inside the translation stage: its
/// BIB entry and live session found, the session moved on, the port rewritten,
/// `Scratch::nat_dst6` set. 0 when anything else is needed (the NAT stage does it).
/// The transport header at `off` of protocol `proto`; source and destination as read
/// from memory.
#[inline(never)]
pub fn fast4<P: Packet>(pkt: &mut P, off: u64, proto: u64, src4: u64, dst4: u64) -> u64 {
    let (Some((_, cfg)), Some(s)) = (config(), scratch()) else {
        return 0;
    };
    let (src4, dst4) = ((src4 as u32).to_ne_bytes(), (dst4 as u32).to_ne_bytes());
    let Ok(t) = transport(
        pkt,
        (off & 0xfff) as usize,
        proto as u8,
        IPPROTO_ICMP,
        [ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST],
        true,
        false,
    ) else {
        return 0;
    };
    let k4 = Bib4Key { addr: dst4, port: t.dport, proto: t.proto, _pad: 0 };
    // Only what is needed of the entry, read through the pointer (this frame and the
    // translation stage's share the verifier's 512-byte stack).
    let Some(entry) = BIB4.get_ptr(&k4) else {
        return 0;
    };
    // SAFETY: a value of the map; the fields are read at once.
    if unsafe { (*entry).flags } & Bib4Entry::FLAG_RELEASED != 0 {
        return 0;
    }
    let port6 = unsafe { (*entry).v6.port };
    s.nat_dst6 = words::from_bytes(unsafe { &(*entry).v6.addr });
    let key = SessionKey {
        local: dst4,
        remote: src4,
        local_port: t.dport,
        remote_port: t.sport,
        proto: t.proto,
        _pad: [0; 3],
    };
    if session(cfg, &key, false, t.flags, false).is_err() {
        return 0;
    }
    if rewrite_noted(pkt, s, &t.at, t.dport, port6, t.proto == PROTO_ICMP).is_none() {
        return 0;
    }
    s.nat_flag = 1;
    1
}

/// IPv6 -> IPv4: the source transport address through the BIB, the session by the
/// mapped address and the IPv4 destination; back to the 6->4 translation, which left
/// the transport header's offset and the fragment header in `Scratch::nat_l4`.
#[inline(always)]
pub fn nat6<P: Packet>(pkt: &mut P) -> Step {
    let (Some((g, cfg)), Some(s)) = (config(), scratch()) else {
        return finish(Action::Drop, Counter::DropInternal);
    };
    let l3 = P::L2_LEN;
    if pkt.load_words(l3, &mut s.hdr6w).is_none() {
        return finish(Action::Drop, Counter::DropMalformed);
    }
    let w1 = u32::from_be(s.hdr6w[1]);
    s.src6w = [s.hdr6w[2], s.hdr6w[3], s.hdr6w[4], s.hdr6w[5]];
    s.dst6w = [s.hdr6w[6], s.hdr6w[7], s.hdr6w[8], s.hdr6w[9]];
    let dst4 = match addr::map6to4_words(g, &s.dst6w, None, denylisted4) {
        Ok((a, _)) => a,
        Err(e) => return finish(Action::Drop, drop_reason(e)),
    };
    let off = (s.nat_l4[0] & 0xfff) as usize;
    let meta = s.nat_l4[1];
    let nh = meta as u8;
    let fragmented = meta & 1 << 8 != 0;
    let first = meta & 1 << 9 != 0;
    if nh == IPPROTO_ICMPV6 && first {
        match pkt.load::<[u8; 2]>(off) {
            Some(t) if icmp::is_error6(t[0]) => {
                // The error stage takes errors with a bare IPv6 header, or one with an
                // atomic fragment header (not `fragmented`) right after it.
                let atomic = off == l3 + IPV6_HLEN + 8 && (w1 >> 8) & 0xff == 44;
                if fragmented || (off != l3 + IPV6_HLEN && !atomic) {
                    return finish(Action::Drop, Counter::DropNatUnsupported);
                }
                return error6(pkt, s, off);
            }
            Some(_) if fragmented && P::XDP => return finish(Action::Drop, Counter::DropIcmpFragment),
            Some(_) => {}
            None => return finish(Action::Drop, Counter::DropMalformed),
        }
    }
    if !first {
        // A later fragment: the source its first fragment was mapped to, else (it came
        // first, or the first one went another way) the host's paired address, which
        // every dynamic mapping of the host has.
        let key = frag_key6(s);
        let a = match frag_lookup(&key) {
            Some(a) => [a[0], a[1], a[2], a[3]],
            None => match NAT_POOL4.get(nat::pick_address(cfg.key, &key.src, cfg.pool4_count)) {
                Some(slot) if cfg.pool4_count != 0 => slot.addr,
                _ => return finish(Action::Drop, Counter::DropNatNoMapping),
            },
        };
        s.nat_flag = 1;
        s.nat_addr4 = a;
        return Step::Jump(stages::XLAT6);
    }
    // An echo reply goes out through a mapping that exists (a static entry's, or the
    // host's own hairpinned echo), never a new one.
    let t =
        match transport(pkt, off, nh, IPPROTO_ICMPV6, [ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY], false, false) {
            Ok(t) => t,
            Err(c) => return finish(Action::Drop, c),
        };
    let (at, proto, flags, sport, dport) = (t.at, t.proto, t.flags, t.sport, t.dport);

    let k6 = Bib6Key { addr: words::to_bytes(&s.src6w), port: sport, proto, _pad: 0 };
    let k4 = match bib6(&k6) {
        Some(k4) => k4,
        None if proto == PROTO_ICMP && flags == ICMP6_ECHO_REPLY => {
            return finish(Action::Drop, Counter::DropNatNoMapping);
        }
        None => match allocate(cfg, &k6, syn_wanted(cfg, proto, flags, dst4, dport)) {
            Ok(k4) => k4,
            // RFC 6146 §3.5.1.1: Destination Unreachable, Address Unreachable (no port
            // left, or a host outside the port blocks, which has none).
            Err(c @ (Counter::DropNatPortsExhausted | Counter::DropNatNoPortBlock)) => {
                s.verdict = pack(Action::Reply(1, 3, 0), c);
                return Step::Jump(stages::REPLY6);
            }
            // RFC 6888 REQ-4: the subscriber is at its limit: Destination Unreachable,
            // Communication with Destination Administratively Prohibited.
            Err(Counter::DropNatSubscriberLimit) => {
                s.verdict = pack(Action::Reply(1, 1, 0), Counter::DropNatSubscriberLimit);
                return Step::Jump(stages::REPLY6);
            }
            Err(c) => return finish(Action::Drop, c),
        },
    };
    // ICMP query sessions know the remote by the mapped identifier only.
    let remote_port = if proto == PROTO_ICMP { k4.port } else { dport };
    let mut key =
        SessionKey { local: k4.addr, remote: dst4, local_port: k4.port, remote_port, proto, _pad: [0; 3] };
    if let Err(c) = session(cfg, &key, true, flags, true) {
        return finish(Action::Drop, c);
    }
    // RFC 6146 §3.8 hairpinning: to a pool4 transport address, the packet goes straight
    // back to the IPv6 host the BIB maps it to, as if it had come in from IPv4 (the
    // inbound session and its filtering included); the hairpin stage then sends it on
    // as IPv6 from the pool6 form of the mapped source.
    //
    // An ICMP query names the mapping it is for by its one identifier, which going out
    // became the pool4 one: coming back in, that is the mapping it reaches (a host's
    // echo to its own pool4 address comes back to it, as from that address).
    if NAT_ADDRS.get_ptr(&dst4).is_some() {
        if fragmented || off != l3 + IPV6_HLEN {
            return finish(Action::Drop, Counter::DropNatUnsupported);
        }
        let icmp = proto == PROTO_ICMP;
        let dport = if icmp { k4.port } else { dport };
        let bk4 = Bib4Key { addr: dst4, port: dport, proto, _pad: 0 };
        // SAFETY: a value of the map, read in place (a copy would not fit the stack).
        let Some(entry) = BIB4.get_ptr(&bk4).map(|p| unsafe { &*p }).filter(|e| e.live()) else {
            let what = proto as u64 | (flags as u64) << 8 | (Counter::DropNatNoMapping as u64) << 16;
            return Step::Finish(hold6(pkt, what, pack4(k4.addr, k4.port), pack4(dst4, dport)));
        };
        // The inbound half, in the outbound key's place (the stack has no room for two).
        key.local = dst4;
        key.remote = k4.addr;
        key.local_port = dport;
        key.remote_port = k4.port;
        if let Err(c) = session(cfg, &key, false, flags, may_open(cfg, entry, &key)) {
            if c == Counter::DropNatFiltered {
                let what = proto as u64 | (flags as u64) << 8 | (c as u64) << 16;
                return Step::Finish(hold6(pkt, what, pack4(k4.addr, k4.port), pack4(dst4, dport)));
            }
            return finish(Action::Drop, c);
        }
        let at_dst = L4At { port: at.port + 2, check: at.check, udp: at.udp };
        // One identifier: straight to the host's.
        let first_to = if icmp { entry.v6.port } else { k4.port };
        if rewrite_port(pkt, &at, sport, first_to, icmp).is_none()
            || (!icmp && rewrite_port(pkt, &at_dst, dport, entry.v6.port, false).is_none())
        {
            return finish(Action::Drop, Counter::DropInternal);
        }
        s.nat_flag = 2;
        s.nat_dst6 = words::from_bytes(&entry.v6.addr);
        s.hairpin = [
            u32::from_ne_bytes(k4.addr),
            u32::from_ne_bytes(dst4),
            off as u32,
            nh as u32 | 1 << 8 | (w1 & 0xff) << 16,
        ];
        return Step::Jump(stages::HAIRPIN6);
    }
    if rewrite_noted(pkt, s, &at, sport, k4.port, proto == PROTO_ICMP).is_none() {
        return finish(Action::Drop, Counter::DropInternal);
    }
    if fragmented {
        note_first6(u32::from_ne_bytes(k4.addr));
    }
    s.nat_flag = 1;
    s.nat_addr4 = k4.addr;
    Step::Jump(stages::XLAT6)
}

/// An ICMPv6 error (at `off`) about a packet an IPv4 host sent through a mapping: the
/// packet inside went from the pool6 form of that host to the IPv6 host, so its
/// destination transport address is looked up in BIB6; its port becomes the pool4 one.
/// The error stage then takes the pool4 address as the error's source (the IPv6 node
/// that sent it has no IPv4 address) and as the inner destination.
#[inline(always)]
fn error6<P: Packet>(pkt: &mut P, s: &mut Scratch, off: usize) -> Step {
    let Some(g) = globals() else {
        return finish(Action::Drop, Counter::DropInternal);
    };
    let i = off + ICMP_HLEN;
    if pkt.load_into(i, &mut s.ihdr6).is_none() || s.ihdr6[0] >> 4 != 6 {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let mut nh = s.ihdr6[6];
    let mut at_i = i + IPV6_HLEN;
    if nh == 44 {
        match pkt.load::<[u8; 8]>(at_i) {
            // Only a first fragment holds the ports.
            Some(f) if u16::from_be_bytes([f[2], f[3]]) >> 3 == 0 => nh = f[0],
            Some(_) => return finish(Action::Drop, Counter::DropNatUnsupported),
            None => return finish(Action::Drop, Counter::DropIcmpErrorInner),
        }
        at_i += 8;
    }
    let t = match transport(pkt, at_i, nh, IPPROTO_ICMPV6, [ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY], true, true)
    {
        Ok(t) => t,
        Err(Counter::DropMalformed) => return finish(Action::Drop, Counter::DropIcmpErrorInner),
        Err(c) => return finish(Action::Drop, c),
    };
    s.isrc6.copy_from_slice(&s.ihdr6[8..24]);
    s.idst6.copy_from_slice(&s.ihdr6[24..40]);
    let remote = match nat64_common::addr::map6to4(g, &s.isrc6, None, denylisted4) {
        Ok((a, _)) => a,
        Err(_) => return finish(Action::Drop, Counter::DropIcmpErrorInner),
    };
    let k6 = Bib6Key { addr: s.idst6, port: t.dport, proto: t.proto, _pad: 0 };
    let Some(k4) = bib6(&k6) else {
        return finish(Action::Drop, Counter::DropNatIcmpErrorNoSession);
    };
    let remote_port = if t.proto == PROTO_ICMP { k4.port } else { t.sport };
    let key =
        SessionKey { local: k4.addr, remote, local_port: k4.port, remote_port, proto: t.proto, _pad: [0; 3] };
    if !session_alive(&key) {
        return finish(Action::Drop, Counter::DropNatIcmpErrorNoSession);
    }
    if rewrite_inner(pkt, &t.at, t.dport, k4.port, off + 2).is_none() {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    }
    s.nat_flag = 1;
    s.nat_addr4 = k4.addr;
    s.nat_undo[0] = 0;
    Step::Jump(stages::XLAT6)
}

/// An ICMPv4 error (at `o`) to a pool4 address: the packet inside went from a pool4
/// transport address, looked up in BIB4; its port becomes the IPv6 host's. The error
/// stage takes the host (`Scratch::nat_dst6`) as the error's destination and the inner
/// source.
#[inline(always)]
fn error4<P: Packet>(pkt: &mut P, s: &mut Scratch, o: usize) -> Step {
    let i = o + ICMP_HLEN;
    let Some(ih) = pkt.load::<[u8; 20]>(i) else {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    };
    let ihl = ((ih[0] & 0x0f) as usize * 4) & 0x3c;
    if ih[0] >> 4 != 4 || ihl < 20 {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    }
    // Only a first fragment (or a whole packet) holds the ports.
    if ih[6] & 0x1f != 0 || ih[7] != 0 {
        return finish(Action::Drop, Counter::DropNatUnsupported);
    }
    let src = [ih[12], ih[13], ih[14], ih[15]];
    let dst = [ih[16], ih[17], ih[18], ih[19]];
    let t =
        match transport(pkt, i + ihl, ih[9], IPPROTO_ICMP, [ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY], false, true)
        {
            Ok(t) => t,
            Err(Counter::DropMalformed) => return finish(Action::Drop, Counter::DropIcmpErrorInner),
            Err(c) => return finish(Action::Drop, c),
        };
    let k4 = Bib4Key { addr: src, port: t.sport, proto: t.proto, _pad: 0 };
    // SAFETY: a value of the map, copied out at once.
    let Some(entry) = BIB4.get_ptr(&k4).map(|p| unsafe { *p }).filter(|e| e.live()) else {
        return finish(Action::Drop, Counter::DropNatIcmpErrorNoSession);
    };
    let remote_port = if t.proto == PROTO_ICMP { t.sport } else { t.dport };
    let key = SessionKey {
        local: src,
        remote: dst,
        local_port: t.sport,
        remote_port,
        proto: t.proto,
        _pad: [0; 3],
    };
    if !session_alive(&key) {
        return finish(Action::Drop, Counter::DropNatIcmpErrorNoSession);
    }
    if rewrite_inner(pkt, &t.at, t.sport, entry.v6.port, o + 2).is_none() {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    }
    s.nat_flag = 1;
    s.nat_dst6 = words::from_bytes(&entry.v6.addr);
    s.nat_undo[0] = 0;
    Step::Jump(stages::XLAT4)
}

/// IPv4 -> IPv6: the destination transport address (a pool4 one) through the BIB,
/// the session (filtering: address and port dependent unless `FLAG_EIF`); back to
/// the 4->6 translation.
#[inline(always)]
pub fn nat4<P: Packet>(pkt: &mut P) -> Step {
    let (Some((g, cfg)), Some(s)) = (config(), scratch()) else {
        return finish(Action::Drop, Counter::DropInternal);
    };
    let l3 = P::L2_LEN;
    let Some(hdr) = pkt.load::<[u8; 20]>(l3) else {
        return finish(Action::Drop, Counter::DropMalformed);
    };
    let ihl = ((hdr[0] & 0x0f) as usize * 4) & 0x3c;
    if ihl < 20 {
        return finish(Action::Drop, Counter::DropMalformed);
    }
    let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
    let more = hdr[6] & 0x20 != 0;
    let proto4 = hdr[9];
    let src4 = [hdr[12], hdr[13], hdr[14], hdr[15]];
    let dst4 = [hdr[16], hdr[17], hdr[18], hdr[19]];
    let o = l3 + ihl;
    // The translator's own address lent as pool4 too: what no mapping takes is the
    // host's own traffic (a later fragment: below, by its first).
    let own = g.has_ipv4_addr() && dst4 == g.ipv4_addr;
    if own
        && frag_off == 0
        && !mapped4(pkt, o as u64, proto4 as u64 | (u32::from_ne_bytes(dst4) as u64) << 32)
    {
        return finish(Action::Pass, Counter::PassOwnAddress);
    }
    let error = proto4 == IPPROTO_ICMP
        && frag_off == 0
        && pkt.load::<[u8; 2]>(o).is_some_and(|t| icmp::is_error4(t[0]));
    // What runs out of hops is answered before anything is mapped (the error quotes
    // the packet as its sender sent it); never an error about an error.
    if hdr[8].saturating_add(step::general_path_credit(pkt, g)) <= 1 {
        if error {
            return finish(Action::Drop, Counter::DropTtlExpired);
        }
        s.verdict = pack(Action::Reply(icmp::ICMP4_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
        return Step::Jump(stages::REPLY4);
    }
    if error {
        if more {
            return finish(Action::Drop, Counter::DropIcmpFragment);
        }
        return error4(pkt, s, o);
    }
    if P::XDP && proto4 == IPPROTO_ICMP && (more || frag_off != 0) {
        return finish(Action::Drop, Counter::DropIcmpFragment);
    }
    let fkey = FragKey {
        src: super::held::addr4_in16(src4),
        dst: super::held::addr4_in16(dst4),
        id: u16::from_be_bytes([hdr[4], hdr[5]]) as u32,
        proto: proto4,
        family: 4,
        _pad: [0; 2],
    };
    if frag_off != 0 {
        // A later fragment goes where its first one went.
        let Some(a) = frag_lookup(&fkey) else {
            if own {
                return finish(Action::Pass, Counter::PassOwnAddress);
            }
            return finish(Action::Drop, Counter::DropNatFragmentBeforeFirst);
        };
        s.nat_flag = 1;
        s.nat_dst6 = words::from_bytes(&a);
        return Step::Jump(stages::XLAT4);
    }
    let t = match transport(pkt, o, proto4, IPPROTO_ICMP, [ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST], true, false) {
        Ok(t) => t,
        Err(c) => return finish(Action::Drop, c),
    };
    let (proto, flags, sport, dport) = (t.proto, t.flags, t.sport, t.dport);
    let k4 = Bib4Key { addr: dst4, port: dport, proto, _pad: 0 };
    // SAFETY: a value of the map, copied out at once.
    let Some(entry) = BIB4.get_ptr(&k4).map(|p| unsafe { *p }).filter(|e| e.live()) else {
        // RFC 6146 §3.5.1: UDP to a pool4 transport address nobody holds is answered
        // with Port Unreachable (from that address, rate-limited; never about an error,
        // which took the error stage above).
        if proto == IPPROTO_UDP {
            s.verdict = pack(
                Action::Reply(icmp::ICMP4_DEST_UNREACH, ICMP4_PORT_UNREACH, 0),
                Counter::DropNatNoMapping,
            );
            return Step::Jump(stages::REPLY4);
        }
        // §3.5.2.2: a SYN is held for a simultaneous open.
        let c = hold4(pkt, cfg, &t, u16::from_be_bytes([hdr[2], hdr[3]]), Counter::DropNatNoMapping);
        return finish(Action::Drop, c);
    };
    let key =
        SessionKey { local: dst4, remote: src4, local_port: dport, remote_port: sport, proto, _pad: [0; 3] };
    // A static BIB entry is a port forward: anyone may open a session through it.
    let open = may_open(cfg, &entry, &key);
    if let Err(c) = session(cfg, &key, false, flags, open) {
        // A SYN the filtering keeps out is held likewise.
        if c == Counter::DropNatFiltered {
            return finish(Action::Drop, hold4(pkt, cfg, &t, u16::from_be_bytes([hdr[2], hdr[3]]), c));
        }
        return finish(Action::Drop, c);
    }
    if rewrite_noted(pkt, s, &t.at, dport, entry.v6.port, proto == PROTO_ICMP).is_none() {
        return finish(Action::Drop, Counter::DropInternal);
    }
    if more {
        frag_note(&fkey, entry.v6.addr);
    }
    s.nat_flag = 1;
    s.nat_dst6 = words::from_bytes(&entry.v6.addr);
    Step::Jump(stages::XLAT4)
}

const _: () = assert!(IPPROTO_ICMP == PROTO_ICMP);
