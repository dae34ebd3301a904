//! BIB entries and sessions: finding, refreshing and opening them (RFC 6146 §3.5),
//! a pool4 port for a new mapping (RFC 6056 with RFC 6888's per-subscriber limit),
//! the BIB log, and the SYNs held for a simultaneous open.

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    counters::Counter,
    icmp,
    maps::{
        AdfKey, Bib4Entry, Bib4Key, Bib6Key, MAX_BLOCKS_PER_HOST, NatConfig, NatEvent, Session, SessionKey,
        Subscriber,
    },
    nat::{self, Lifetime, PROTO_ICMP, PortRange, TcpState},
};

use super::blocks;
use super::transport::{
    BPF_NOEXIST, EEXIST, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, Transport, bib6, insert_failed,
};
use crate::translate::simopen::{self, pack4};
use crate::{
    atomic::fetch_add,
    counters::bump,
    hdr::{ICMP_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV6_HLEN},
    maps::{
        BIB4, BIB6, NAT_ADF, NAT_CFG, NAT_COUNTER, NAT_EVENTS, NAT_POOL4, NAT_SUBSCRIBERS, SESSIONS, scratch,
    },
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

/// The new lifetime of a session (`now` in boot-time ns) for a packet of `proto`
/// with TCP `flags`, `from_v6` or not, and its new TCP state; `None`: a TCP packet
/// that opens no session (not a SYN).
#[inline(always)]
pub(crate) fn refresh(
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
pub(crate) fn session(
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
                let reopened = s.expires <= now;
                if reopened {
                    bump(Counter::NatSessionCreated, 0);
                }
                let changed = reopened || next != s.state;
                s.expires = expires;
                s.state = next;
                if changed && cfg.flags & NatConfig::FLAG_SYNC != 0 {
                    let kind = if reopened { NatEvent::SESSION_OPENED } else { NatEvent::SESSION_CHANGED };
                    report_session(key, expires, next, kind);
                }
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
    open_session(cfg, key, expires, state)?;
    if cfg.flags & NatConfig::FLAG_SYNC != 0 {
        report_session(key, expires, state, NatEvent::SESSION_OPENED);
    }
    Ok(())
}

/// Reports session `key` (made, or moved to TCP `state`: `kind`, a `NatEvent` kind)
/// with its BIB entry to nat64-ctl's session sync; a full ring is counted.
#[inline(never)]
pub(crate) fn report_session(key: &SessionKey, expires: u64, state: u8, kind: u8) {
    let k4 = Bib4Key { addr: key.local, port: key.local_port, proto: key.proto, _pad: 0 };
    let Some(bib) = BIB4.get_ptr(&k4) else { return };
    // SAFETY: a value of the map, read at once; helper without arguments.
    let (v6, now) = unsafe { ((*bib).v6, h::bpf_ktime_get_boot_ns()) };
    // Written in the ring's own memory: the NAT stages' frames leave no room for it.
    let Some(mut slot) = NAT_EVENTS.reserve::<NatEvent>(0) else {
        bump(Counter::SyncEventsLost, 0);
        return;
    };
    slot.write(NatEvent {
        time: now,
        v6: v6.addr,
        v6_port: v6.port,
        v4_port: key.local_port,
        v4: key.local,
        proto: key.proto,
        kind,
        state,
        _pad: 0,
        remote: key.remote,
        remote_port: key.remote_port,
        _pad2: [0; 2],
        lifetime_ms: (expires.saturating_sub(now) / 1_000_000).min(u32::MAX as u64) as u32,
    });
    slot.submit(0);
}

/// Makes session `key` on its BIB entry, which counts it (and so does the remote's
/// address-dependent filtering entry). Out of line: the NAT stages' own frames come
/// close to the verifier's 512 bytes of stack.
#[inline(never)]
pub(crate) fn open_session(
    cfg: &NatConfig,
    key: &SessionKey,
    expires: u64,
    state: u8,
) -> Result<(), Counter> {
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
pub(crate) fn may_open(cfg: &NatConfig, entry: &Bib4Entry, key: &SessionKey) -> bool {
    if entry.flags & Bib4Entry::FLAG_STATIC != 0 || cfg.flags & NatConfig::FLAG_EIF != 0 {
        return true;
    }
    cfg.flags & NatConfig::FLAG_APDF == 0 && NAT_ADF.get_ptr(&AdfKey::of(key)).is_some()
}

/// A pool4 transport address for the IPv6 one `k6`: the host's paired address (RFC
/// 4787 REQ-2), a port RFC 6056 Algorithm 3 picks in the port's class, claimed in BIB4
/// first (so two hosts never get one port) and then published in BIB6.
///
/// With port blocks the address and the range are a block of the host's: with RFC
/// 7422's the one the configuration alone gives it (no log is needed to tell who held
/// a port), with dynamic ones one its subscriber took (see [`blocks`]).
#[inline(always)]
pub(crate) fn allocate(cfg: &NatConfig, k6: &Bib6Key, want: u64) -> Result<Bib4Key, Counter> {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    let dynamic = cfg.flags & NatConfig::FLAG_DYNAMIC_BLOCKS != 0;
    let (idx, block) = if cfg.block_size != 0 && !dynamic {
        if !nat::in_prefix6(&k6.addr, &cfg.block_prefix, cfg.block_prefix_len) {
            return Err(Counter::DropNatNoPortBlock);
        }
        let i = nat::block_index(&k6.addr, cfg.block_prefix_len, cfg.block_host_len);
        (i, true)
    } else {
        (nat::pick_address(cfg.key, &k6.addr, cfg.pool4_count), false)
    };
    subscriber_take(cfg, &k6.addr, now)?;
    let idx = if dynamic {
        match blocks::take(cfg, now) {
            Ok(i) => i,
            Err(c) => {
                subscriber_give_back();
                return Err(c);
            }
        }
    } else {
        idx
    };
    let (slot, range) = match slot_range(cfg, k6, idx, block || dynamic) {
        Ok(v) => v,
        Err(c) => {
            subscriber_give_back();
            return Err(c);
        }
    };
    let offset = nat::port_offset(cfg.key, k6.proto, &k6.addr, k6.port);
    let counter = match NAT_COUNTER.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        Some(c) => unsafe {
            *c = (*c).wrapping_add(1);
            *c
        },
        None => 0,
    };
    // A held IPv4 SYN's transport address (simultaneous open), if the host may have it:
    // with port blocks only one in its block.
    let (want_addr, want_port) = simopen::unpack4(want);
    let want = want != 0 && (!(block || dynamic) || (want_addr == slot && range.contains(want_port)));
    let entry = Bib4Entry { v6: *k6, flags: 0, sessions: 0, born: now };
    for attempt in 0..nat::PORT_TRIES {
        let k4 = if attempt == 0 && want {
            Bib4Key { addr: want_addr, port: want_port, proto: k6.proto, _pad: 0 }
        } else {
            Bib4Key {
                addr: slot,
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
                if attempt == 0 && want {
                    simopen::took();
                }
                if cfg.flags & (NatConfig::FLAG_LOG | NatConfig::FLAG_DYNAMIC_BLOCKS) == NatConfig::FLAG_LOG {
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
    if block || dynamic {
        // The host's block (or every block its subscriber may hold) is used up: its
        // quota, not pool4's ports.
        blocks::quota(cfg, NatEvent::LIMIT_BLOCKS, &k6.addr, now);
    } else {
        blocks::exhausted(cfg, slot, k6.proto, now);
    }
    Err(Counter::DropNatPortsExhausted)
}

/// The pool4 address and the ports a new mapping of `k6` picks from: slot `idx`'s, or
/// with port blocks (`block`) block `idx`'s.
#[inline(always)]
fn slot_range(cfg: &NatConfig, k6: &Bib6Key, idx: u32, block: bool) -> Result<([u8; 4], PortRange), Counter> {
    let (idx, range) = if block {
        let Some(slot0) = NAT_POOL4.get(0) else {
            return Err(Counter::DropInternal);
        };
        match nat::port_block(idx, cfg.block_size, cfg.blocks_per_addr, cfg.pool4_count, slot0.first) {
            Some((slot, range)) => (slot, Some(range)),
            None => return Err(Counter::DropNatNoPortBlock),
        }
    } else {
        (idx, None)
    };
    let Some(slot) = NAT_POOL4.get(idx) else {
        return Err(Counter::DropNatPortsExhausted);
    };
    let range = match range {
        Some(r) => r,
        None => PortRange { first: slot.first, last: slot.last }.for_source(k6.proto, k6.port),
    };
    if range.is_empty() || cfg.pool4_count == 0 {
        return Err(Counter::DropNatPortsExhausted);
    }
    Ok((slot.addr, range))
}

/// RFC 6888 REQ-4: counts one more BIB entry to the subscriber of `addr` (made with
/// its first); `Err` when it holds `max-ports-per-host` already, nothing counted then.
/// The subscriber stays in `NatScratch::sub` for [`subscriber_give_back`]. Out of
/// line, as `open_session`.
#[inline(never)]
pub(crate) fn subscriber_take(cfg: &NatConfig, addr: &[u8; 16], now: u64) -> Result<(), Counter> {
    let Some(s) = scratch() else {
        return Err(Counter::DropInternal);
    };
    s.nat.sub = nat::cut6(addr, cfg.subscriber_len);
    s.nat.block = 0;
    let p = match NAT_SUBSCRIBERS.get_ptr_mut(&s.nat.sub) {
        Some(p) => p,
        None => {
            let fresh = Subscriber { ports: 0, last: now, limited: 0, blocks: [0; MAX_BLOCKS_PER_HOST] };
            match NAT_SUBSCRIBERS.insert(&s.nat.sub, &fresh, BPF_NOEXIST) {
                Ok(()) => {}
                // Made by another CPU meanwhile.
                Err(e) if -(e as i64) == EEXIST => {}
                Err(e) => return Err(insert_failed(e as i64)),
            }
            NAT_SUBSCRIBERS.get_ptr_mut(&s.nat.sub).ok_or(Counter::DropNatAllocFailed)?
        }
    };
    // SAFETY: a field of the map value.
    let ports = unsafe { &raw mut (*p).ports };
    // SAFETY: as above.
    if unsafe { fetch_add(ports, 1) } >= cfg.max_ports as u64 && cfg.max_ports != 0 {
        // SAFETY: as above.
        unsafe { fetch_add(ports, u64::MAX) };
        blocks::quota(cfg, NatEvent::LIMIT_PORTS, addr, now);
        return Err(Counter::DropNatSubscriberLimit);
    }
    // SAFETY: a field of the map value (a racing write is another CPU's `now`).
    unsafe { (*p).last = now };
    Ok(())
}

/// Takes back what [`subscriber_take`] counted (and the port block claimed), the BIB
/// entry not made after all.
#[inline(never)]
pub(crate) fn subscriber_give_back() {
    let Some(s) = scratch() else { return };
    if let Some(p) = NAT_SUBSCRIBERS.get_ptr_mut(&s.nat.sub) {
        // SAFETY: a field of the map value `subscriber_take` counted into.
        unsafe { fetch_add(&raw mut (*p).ports, u64::MAX) };
    }
    blocks::give_back(s.nat.block);
    s.nat.block = 0;
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
        ..NatEvent::default()
    };
    if NAT_EVENTS.output::<NatEvent>(&ev, 0).is_err() {
        bump(Counter::NatLogLost, 0);
    }
}

/// Whether a live BIB entry takes the IPv4 packet whose transport header is at `o`:
/// `meta` holds its protocol and (above bit 32) its destination, as read from memory.
/// TCP and UDP by the destination port, an ICMP echo by its identifier, an ICMP error
/// by the source of the packet inside. Out of line: asked only for packets to the
/// translator's own address.
#[inline(never)]
pub(crate) fn mapped4<P: Packet>(pkt: &P, o: u64, meta: u64) -> bool {
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
pub(crate) fn hold4<P: Packet>(
    pkt: &P,
    cfg: &NatConfig,
    t: &Transport,
    len: u16,
    otherwise: Counter,
) -> Counter {
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
pub(crate) fn syn_wanted(cfg: &NatConfig, proto: u8, flags: u8, dst4: [u8; 4], dport: u16) -> u64 {
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
pub(crate) fn hold6<P: Packet>(pkt: &P, what: u64, remote: u64, local: u64) -> Verdict {
    let (proto, flags) = (what as u8, (what >> 8) as u8);
    let otherwise = Verdict::from_raw(what >> 16).counter();
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

/// Whether the session `key` is there and alive (an ICMP error about it moves nothing).
#[inline(always)]
pub(crate) fn session_alive(key: &SessionKey) -> bool {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    // SAFETY: a value of the map, read at once.
    SESSIONS.get_ptr(key).is_some_and(|p| unsafe { (*p).expires } > now)
}
