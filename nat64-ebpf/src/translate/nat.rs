//! Stateful NAT64 (RFC 6146, `"mode": "nat64"`): the NAT stages. Each maps the
//! packet's transport address through the BIB (making an entry for a new IPv6
//! transport address), finds or makes its session, rewrites the port (or ICMP query
//! identifier) and hands the packet back to the translation stage of its direction,
//! which then takes the mapped address instead of a stateless one (`Scratch::nat_*`):
//! the header translation is the one SIIT uses.
//!
//! Not yet here: fragments, IPv6 extension headers, ICMP errors about stateful flows,
//! static BIB entries and hairpinning (dropped and counted as `drop_nat_unsupported`).

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    counters::Counter,
    maps::{AdfKey, Bib4Entry, Bib4Key, Bib6Key, Globals, NatConfig, Session, SessionKey},
    nat::{self, Lifetime, PROTO_ICMP, PortRange, TcpState},
    words,
};

use super::{
    STAGE_HAIRPIN6, STAGE_REPLY6, STAGE_XLAT4, STAGE_XLAT6, Step, denylisted4, drop_reason,
    l4::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_CHECK, UDP_CHECK},
};
use crate::{
    counters::bump,
    maps::{BIB4, BIB6, NAT_ADDRS, NAT_ADF, NAT_CFG, NAT_COUNTER, NAT_POOL4, SESSIONS, globals, scratch},
    packet::{Action, Packet, pack},
};

const IPV6_HLEN: usize = 40;
/// Candidate ports tried for a new BIB entry before the host counts as out of ports.
const PORT_TRIES: u32 = 8;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const EEXIST: i64 = 17;

#[inline(always)]
fn finish(action: Action, c: Counter) -> Step {
    Step::Finish(pack(action, c))
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
    /// TCP flags (0 otherwise).
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
) -> Result<Transport, Counter> {
    if nh == IPPROTO_TCP || nh == IPPROTO_UDP {
        let p = pkt.load::<[u8; 4]>(off).ok_or(Counter::DropMalformed)?;
        let (check, udp, flags) = if nh == IPPROTO_TCP {
            (off + TCP_CHECK, false, pkt.load::<[u8; 2]>(off + 12).ok_or(Counter::DropMalformed)?[1])
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
    Ok(Transport { at, proto: PROTO_ICMP, flags: 0, sport: id, dport: id })
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
        if s.expires > now {
            match refresh(cfg, key.proto, s.state, from_v6, flags, now, s.expires) {
                Some((expires, state)) => {
                    s.expires = expires;
                    s.state = state;
                    return Ok(());
                }
                None => return Err(Counter::DropNatFiltered),
            }
        }
        // Expired but not yet swept: made anew below, as if it were gone.
    }
    if !may_open {
        return Err(Counter::DropNatFiltered);
    }
    let Some((expires, state)) = refresh(cfg, key.proto, TcpState::Closed as u8, from_v6, flags, now, 0)
    else {
        return Err(Counter::DropNatFiltered);
    };
    let value = Session { expires, state, _pad: [0; 7] };
    if SESSIONS.insert(key, &value, 0).is_err() {
        return Err(Counter::DropNatTableFull);
    }
    // For address-dependent filtering: this remote address may now send from any port.
    let _ = NAT_ADF.insert(&AdfKey::of(key), &1, 0);
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
#[inline(always)]
fn allocate(cfg: &NatConfig, k6: &Bib6Key) -> Result<Bib4Key, Counter> {
    let idx = nat::pick_address(cfg.key, &k6.addr, cfg.pool4_count);
    let Some(slot) = NAT_POOL4.get(idx) else {
        return Err(Counter::DropNatPortsExhausted);
    };
    let range = PortRange { first: slot.first, last: slot.last }.for_source(k6.proto, k6.port);
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
    let entry = Bib4Entry { v6: *k6, flags: 0, born: now };
    for attempt in 0..PORT_TRIES {
        let k4 = Bib4Key {
            addr: slot.addr,
            port: nat::port_at(range, offset, counter, attempt),
            proto: k6.proto,
            _pad: 0,
        };
        match BIB4.insert(&k4, &entry, 1 /* BPF_NOEXIST */) {
            Ok(()) => {}
            Err(e) if -(e as i64) == EEXIST => continue,
            Err(_) => return Err(Counter::DropNatTableFull),
        }
        if BIB6.insert(k6, &k4, 1).is_ok() {
            bump(Counter::NatBibCreated, 0);
            return Ok(k4);
        }
        // Another CPU mapped this IPv6 transport address meanwhile: take its mapping.
        let _ = BIB4.remove(&k4);
        return bib6(k6).ok_or(Counter::DropNatTableFull);
    }
    Err(Counter::DropNatPortsExhausted)
}

/// The BIB6 entry of `k6`, copied.
#[inline(always)]
fn bib6(k6: &Bib6Key) -> Option<Bib4Key> {
    // SAFETY: a value of the map, copied out at once.
    BIB6.get_ptr(k6).map(|p| unsafe { *p })
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

/// IPv6 -> IPv4: the source transport address through the BIB, the session by the
/// mapped address and the IPv4 destination; back to the 6->4 translation.
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
    let dst4 = match words::map6to4(g, &s.dst6w, None, denylisted4) {
        Ok((a, _)) => a,
        Err(e) => return finish(Action::Drop, drop_reason(e)),
    };
    let nh = (w1 >> 8) as u8;
    let t = match transport(pkt, l3 + IPV6_HLEN, nh, IPPROTO_ICMPV6, [ICMP6_ECHO_REQUEST; 2], false) {
        Ok(t) => t,
        Err(c) => return finish(Action::Drop, c),
    };
    let (at, proto, flags, sport, dport) = (t.at, t.proto, t.flags, t.sport, t.dport);

    let k6 = Bib6Key { addr: words::to_bytes(&s.src6w), port: sport, proto, _pad: 0 };
    let k4 = match bib6(&k6) {
        Some(k4) => k4,
        None => match allocate(cfg, &k6) {
            Ok(k4) => k4,
            // RFC 6146 §3.5.1.1: Destination Unreachable, Address Unreachable.
            Err(Counter::DropNatPortsExhausted) => {
                s.verdict = pack(Action::Reply(1, 3, 0), Counter::DropNatPortsExhausted);
                return Step::Jump(STAGE_REPLY6);
            }
            Err(c) => return finish(Action::Drop, c),
        },
    };
    // ICMP query sessions know the remote by the mapped identifier only.
    let remote_port = if proto == PROTO_ICMP { k4.port } else { dport };
    let key =
        SessionKey { local: k4.addr, remote: dst4, local_port: k4.port, remote_port, proto, _pad: [0; 3] };
    if let Err(c) = session(cfg, &key, true, flags, true) {
        return finish(Action::Drop, c);
    }
    if rewrite_port(pkt, &at, sport, k4.port, proto == PROTO_ICMP).is_none() {
        return finish(Action::Drop, Counter::DropInternal);
    }
    // RFC 6146 §3.8 hairpinning: to a pool4 transport address, the packet goes straight
    // back to the IPv6 host the BIB maps it to, as if it had come in from IPv4 (the
    // inbound session and its filtering included); the hairpin stage then sends it on
    // as IPv6 from the pool6 form of the mapped source.
    if NAT_ADDRS.get_ptr(&dst4).is_some() {
        if proto == PROTO_ICMP {
            return finish(Action::Drop, Counter::DropNatUnsupported);
        }
        if w1 & 0xff <= 1 {
            s.verdict =
                pack(Action::Reply(nat64_common::icmp::ICMP6_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
            return Step::Jump(STAGE_REPLY6);
        }
        let bk4 = Bib4Key { addr: dst4, port: dport, proto, _pad: 0 };
        // SAFETY: a value of the map, copied out at once.
        let Some(entry) = BIB4.get_ptr(&bk4).map(|p| unsafe { *p }) else {
            return finish(Action::Drop, Counter::DropNatNoMapping);
        };
        let inbound = SessionKey {
            local: dst4,
            remote: k4.addr,
            local_port: dport,
            remote_port: k4.port,
            proto,
            _pad: [0; 3],
        };
        if let Err(c) = session(cfg, &inbound, false, flags, may_open(cfg, &entry, &inbound)) {
            return finish(Action::Drop, c);
        }
        let at_dst = L4At { port: at.port + 2, check: at.check, udp: at.udp };
        if rewrite_port(pkt, &at_dst, dport, entry.v6.port, false).is_none() {
            return finish(Action::Drop, Counter::DropInternal);
        }
        s.nat_flag = 2;
        s.nat_dst6 = words::from_bytes(&entry.v6.addr);
        s.hairpin = [
            u32::from_ne_bytes(k4.addr),
            u32::from_ne_bytes(dst4),
            (l3 + IPV6_HLEN) as u32,
            nh as u32 | 1 << 8 | (w1 & 0xff) << 16,
        ];
        return Step::Jump(STAGE_HAIRPIN6);
    }
    s.nat_flag = 1;
    s.nat_addr4 = k4.addr;
    Step::Jump(STAGE_XLAT6)
}

/// IPv4 -> IPv6: the destination transport address (a pool4 one) through the BIB,
/// the session (filtering: address and port dependent unless `FLAG_EIF`); back to
/// the 4->6 translation.
#[inline(always)]
pub fn nat4<P: Packet>(pkt: &mut P) -> Step {
    let (Some((_, cfg)), Some(s)) = (config(), scratch()) else {
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
    // A fragment (offset or MF): not yet.
    if hdr[6] & 0x3f != 0 || hdr[7] != 0 {
        return finish(Action::Drop, Counter::DropNatUnsupported);
    }
    let proto4 = hdr[9];
    let src4 = [hdr[12], hdr[13], hdr[14], hdr[15]];
    let dst4 = [hdr[16], hdr[17], hdr[18], hdr[19]];
    let t = match transport(pkt, l3 + ihl, proto4, IPPROTO_ICMP, [ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST], true) {
        Ok(t) => t,
        Err(c) => return finish(Action::Drop, c),
    };
    let (at, proto, flags, sport, dport) = (t.at, t.proto, t.flags, t.sport, t.dport);
    let k4 = Bib4Key { addr: dst4, port: dport, proto, _pad: 0 };
    // SAFETY: a value of the map, copied out at once.
    let Some(entry) = BIB4.get_ptr(&k4).map(|p| unsafe { *p }) else {
        return finish(Action::Drop, Counter::DropNatNoMapping);
    };
    let key =
        SessionKey { local: dst4, remote: src4, local_port: dport, remote_port: sport, proto, _pad: [0; 3] };
    // A static BIB entry is a port forward: anyone may open a session through it.
    let open = may_open(cfg, &entry, &key);
    if let Err(c) = session(cfg, &key, false, flags, open) {
        return finish(Action::Drop, c);
    }
    if rewrite_port(pkt, &at, dport, entry.v6.port, proto == PROTO_ICMP).is_none() {
        return finish(Action::Drop, Counter::DropInternal);
    }
    s.nat_flag = 1;
    s.nat_dst6 = words::from_bytes(&entry.v6.addr);
    Step::Jump(STAGE_XLAT4)
}

const _: () = assert!(IPPROTO_ICMP == PROTO_ICMP);
