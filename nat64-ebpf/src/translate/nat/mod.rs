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

use nat64_common::{
    addr,
    counters::Counter,
    icmp,
    maps::{Bib4Entry, Bib4Key, Bib6Key, FragKey, NatConfig, SessionKey},
    nat::{self, PROTO_ICMP},
    words,
};

use nat64_common::stages;

use self::{
    frag::{frag_key6, frag_lookup, frag_note, note_first6},
    rewrite::{rewrite_inner, rewrite_noted, rewrite_port},
    session::{allocate, hold4, hold6, mapped4, may_open, session, session_alive, syn_wanted},
    transport::{
        ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP4_PORT_UNREACH, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, L4At,
        Transport, bib6, config, finish, transport,
    },
};
use crate::translate::{
    lookup::denylisted4,
    simopen::pack4,
    step::{self, Step, drop_reason},
};
use crate::{
    hdr::{ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, IPV6_HLEN},
    maps::{BIB4, Hairpin, NAT_ADDRS, NAT_POOL4, Scratch, globals, scratch},
    packet::Packet,
    verdict::{Action, pack},
};

pub(crate) mod blocks;
pub(crate) mod frag;
pub(crate) mod rewrite;
pub(crate) mod session;
pub(crate) mod transport;

/// IPv6 -> IPv4 for a packet of an established flow, inside the translation stage (no
/// second pass through it): its BIB entry and live session found, the session moved
/// on, the port rewritten, `NatScratch::addr4` set. 0 when anything else is needed
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
    s.nat.flag = 1;
    s.nat.addr4 = k4.addr;
    1
}

/// IPv4 -> IPv6 for a packet of an established flow, inside the translation stage: its
/// BIB entry and live session found, the session moved on, the port rewritten,
/// `NatScratch::dst6` set. 0 when anything else is needed (the NAT stage does it).
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
    s.nat.dst6 = words::from_bytes(unsafe { &(*entry).v6.addr });
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
    s.nat.flag = 1;
    1
}

/// IPv6 -> IPv4: the source transport address through the BIB, the session by the
/// mapped address and the IPv4 destination; back to the 6->4 translation, which left
/// the transport header's offset and the fragment header in `NatScratch::l4`.
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
    let off = (s.nat.l4[0] & 0xfff) as usize;
    let meta = s.nat.l4[1];
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
        s.nat.flag = 1;
        s.nat.addr4 = a;
        return Step::Jump(stages::XLAT6);
    }
    // An echo reply goes out through a mapping that exists (a static entry's, or the
    // host's own hairpinned echo), never a new one.
    let t =
        match transport(pkt, off, nh, IPPROTO_ICMPV6, [ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY], false, false) {
            Ok(t) => t,
            Err(c) => return finish(Action::Drop, c),
        };
    outbound6(pkt, cfg, s, t, dst4, off, nh, fragmented, w1)
}

/// The BIB entry (found, or made as RFC 6146 §3.5 allows) and the session of an IPv6
/// packet's flow, then its source port rewritten for the translation stage, or the
/// hairpin stage for a pool4 destination (RFC 6146 §3.8).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn outbound6<P: Packet>(
    pkt: &mut P,
    cfg: &NatConfig,
    s: &mut Scratch,
    t: Transport,
    dst4: [u8; 4],
    off: usize,
    nh: u8,
    fragmented: bool,
    w1: u32,
) -> Step {
    let l3 = P::L2_LEN;
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
                s.verdict = pack(Action::Reply(1, 3, 0), c).raw();
                return Step::Jump(stages::REPLY6);
            }
            // RFC 6888 REQ-4: the subscriber is at its limit: Destination Unreachable,
            // Communication with Destination Administratively Prohibited.
            Err(Counter::DropNatSubscriberLimit) => {
                s.verdict = pack(Action::Reply(1, 1, 0), Counter::DropNatSubscriberLimit).raw();
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
        s.nat.flag = 2;
        s.nat.dst6 = words::from_bytes(&entry.v6.addr);
        s.hairpin = Hairpin {
            src4: u32::from_ne_bytes(k4.addr),
            dst4: u32::from_ne_bytes(dst4),
            off: off as u32,
            meta: nh as u32 | 1 << 8 | (w1 & 0xff) << 16,
        };
        return Step::Jump(stages::HAIRPIN6);
    }
    if rewrite_noted(pkt, s, &at, sport, k4.port, proto == PROTO_ICMP).is_none() {
        return finish(Action::Drop, Counter::DropInternal);
    }
    if fragmented {
        note_first6(u32::from_ne_bytes(k4.addr));
    }
    s.nat.flag = 1;
    s.nat.addr4 = k4.addr;
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
    if pkt.load_into(i, &mut s.err.ihdr6).is_none() || s.err.ihdr6[0] >> 4 != 6 {
        return finish(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let mut nh = s.err.ihdr6[6];
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
    s.err.isrc6.copy_from_slice(&s.err.ihdr6[8..24]);
    s.err.idst6.copy_from_slice(&s.err.ihdr6[24..40]);
    let remote = match nat64_common::addr::map6to4(g, &s.err.isrc6, None, denylisted4) {
        Ok((a, _)) => a,
        Err(_) => return finish(Action::Drop, Counter::DropIcmpErrorInner),
    };
    let k6 = Bib6Key { addr: s.err.idst6, port: t.dport, proto: t.proto, _pad: 0 };
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
    s.nat.flag = 1;
    s.nat.addr4 = k4.addr;
    s.nat.undo[0] = 0;
    Step::Jump(stages::XLAT6)
}

/// An ICMPv4 error (at `o`) to a pool4 address: the packet inside went from a pool4
/// transport address, looked up in BIB4; its port becomes the IPv6 host's. The error
/// stage takes the host (`NatScratch::dst6`) as the error's destination and the inner
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
    s.nat.flag = 1;
    s.nat.dst6 = words::from_bytes(&entry.v6.addr);
    s.nat.undo[0] = 0;
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
        s.verdict = pack(Action::Reply(icmp::ICMP4_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired).raw();
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
        src: crate::translate::held::addr4_in16(src4),
        dst: crate::translate::held::addr4_in16(dst4),
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
        s.nat.flag = 1;
        s.nat.dst6 = words::from_bytes(&a);
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
            )
            .raw();
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
    s.nat.flag = 1;
    s.nat.dst6 = words::from_bytes(&entry.v6.addr);
    Step::Jump(stages::XLAT4)
}

const _: () = assert!(IPPROTO_ICMP == PROTO_ICMP);
