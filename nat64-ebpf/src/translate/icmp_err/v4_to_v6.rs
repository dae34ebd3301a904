//! An ICMPv4 error and the packet inside it, to ICMPv6 (RFC 7915 §4.2-4.3).

use nat64_common::{
    addr, checksum,
    counters::Counter,
    icmp::{self, Rest},
    maps::Globals,
    rfc6052,
};

use super::common::{
    NAT_HOST, eam4, fix_inner_l4, map4to6_into, place_extension, save_extension, sum_in, sum_of, sum_sub,
};
use crate::{
    forward::{self, Route},
    hdr::{ETH_P_IPV6, FRAG_HLEN, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN},
    maps::{Scratch, scratch},
    packet::Packet,
    translate::{l4, step::finish},
    verdict::{Action, Verdict, pack},
};

/// Not inlined: the error path gets its own stack frame. In four steps: the error
/// and the packet inside it read and checked (here), then [`addresses6`], [`layout6`]
/// and [`write6`], each handing what it learnt to the next as its last act.
#[inline(never)]
pub fn v4_to_v6<P: Packet>(pkt: &mut P, g: &Globals) -> Verdict {
    let l3 = P::L2_LEN;
    let s = match scratch() {
        Some(s) => s,
        None => return pack(Action::Drop, Counter::DropInternal),
    };
    // The outer header was checked by the caller (version, IHL, lengths, checksum,
    // not a fragment, TTL, destination in the EAMT).
    if pkt.load_into(l3, &mut s.hdr4).is_none() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    let ihl = (((s.hdr4[0] & 0x0f) as usize) * 4) & 0x3c;
    let tos = s.hdr4[1];
    let ttl = s.hdr4[8];
    let src = [s.hdr4[12], s.hdr4[13], s.hdr4[14], s.hdr4[15]];
    let dst = [s.hdr4[16], s.hdr4[17], s.hdr4[18], s.hdr4[19]];
    let tot = u16::from_be_bytes([s.hdr4[2], s.hdr4[3]]) as usize;
    let o = l3 + ihl;
    match pkt.load::<[u8; ICMP_HLEN]>(o) {
        Some(i) => s.err.icmp = i,
        None => return pack(Action::Drop, Counter::DropMalformed),
    }
    let xl = match icmp::error4_to_6(s.err.icmp[0], s.err.icmp[1]) {
        Some(x) => x,
        None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
    };
    // The outgoing checksum is computed afresh, so a damaged error must not slip
    // through repaired: check the incoming one first.
    match sum_of(sum_in(pkt, o, tot.saturating_sub(ihl))) {
        Some(sum) if checksum::fold(sum) == 0xffff => {}
        _ => return pack(Action::Drop, Counter::DropIcmpBadChecksum),
    }

    // The packet in error.
    let i = o + ICMP_HLEN;
    if pkt.load_into(i, &mut s.err.ihdr4).is_none() {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let ihl_i = (((s.err.ihdr4[0] & 0x0f) as usize) * 4) & 0x3c;
    if s.err.ihdr4[0] >> 4 != 4 || ihl_i < IPV4_HLEN || i + ihl_i > l3 + tot {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let tot_i = u16::from_be_bytes([s.err.ihdr4[2], s.err.ihdr4[3]]);
    let flags_i = u16::from_be_bytes([s.err.ihdr4[6], s.err.ihdr4[7]]);
    let frag_off_i = flags_i & 0x1fff;
    let more_i = flags_i & 0x2000 != 0;
    let frag_i = frag_off_i != 0 || more_i;
    let proto_i = s.err.ihdr4[9];
    let src_i = [s.err.ihdr4[12], s.err.ihdr4[13], s.err.ihdr4[14], s.err.ihdr4[15]];
    let dst_i = [s.err.ihdr4[16], s.err.ihdr4[17], s.err.ihdr4[18], s.err.ihdr4[19]];
    let at_i = i + ihl_i;
    if proto_i == IPPROTO_ICMP
        && frag_off_i == 0
        && pkt.load::<[u8; 2]>(at_i).map(|b| b[0]).is_some_and(icmp::is_error4)
    {
        return pack(Action::Drop, Counter::DropIcmpErrorNested);
    }

    let e = Error4 {
        ihl,
        tos,
        ttl,
        tot,
        src,
        dst,
        xl,
        i,
        ihl_i,
        at_i,
        tot_i,
        frag_off_i,
        more_i,
        frag_i,
        proto_i,
        src_i,
        dst_i,
    };
    addresses6(pkt, g, s, e)
}

/// What the first step learnt of an ICMPv4 error and the packet inside it.
#[derive(Clone, Copy)]
struct Error4 {
    /// The outer header: its length, type of service, TTL, total length, addresses.
    ihl: usize,
    tos: u8,
    ttl: u8,
    tot: usize,
    src: [u8; 4],
    dst: [u8; 4],
    /// The ICMPv6 type and code, and what the last four bytes of the header hold.
    xl: icmp::ErrorXlat,
    /// Where the packet inside starts, its header's length, where its transport starts.
    i: usize,
    ihl_i: usize,
    at_i: usize,
    /// The packet inside: total length, fragment offset and MF, protocol, addresses.
    tot_i: u16,
    frag_off_i: u16,
    more_i: bool,
    frag_i: bool,
    proto_i: u8,
    src_i: [u8; 4],
    dst_i: [u8; 4],
}

/// The four addresses in IPv6 (the outer source an RFC 6791 one when the router has
/// no mapping), and the last four bytes of the ICMPv6 header.
#[inline(always)]
fn addresses6<P: Packet>(pkt: &mut P, g: &Globals, s: &mut Scratch, e: Error4) -> Verdict {
    let Error4 { src, dst, xl, tot_i, src_i, dst_i, .. } = e;
    // A packet in error between two addresses the EAMT maps went from one IPv6 host to
    // the other through the pool6 form of the second's IPv4 address (hairpinning, RFC
    // 7757 §4; only thus can an IPv6 host address an EAM IPv4 address). The error goes
    // back to the first as its translator saw it: the far end (the inner destination,
    // and the error's source when it is that host or another mapped one) in pool6
    // form, as the kernel-module peer quotes it.
    let hairpinned = eam4(g, u32::from_be_bytes(src_i)) & eam4(g, u32::from_be_bytes(dst_i));

    // Outer destination: the host that sent the packet in error (mapped as for any
    // packet); outer source: the router, or an RFC 6791 address when it has no mapping.
    // Stateful NAT64: the host is the one the NAT stage found through the BIB.
    if map4to6_into(g, u32::from_be_bytes(dst), &mut s.dst6, NAT_HOST) != 0 {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    if map4to6_into(g, u32::from_be_bytes(src), &mut s.src6, hairpinned) != 0 {
        // RFC 7915 §4.1: an "illegal" source (0.0.0.0, 127.0.0.1, ...) of an ICMPv4
        // error is translated all the same, through pool6, for troubleshooting.
        let illegal = if nat64_common::ranges::is_reserved4(src) && g.pool6_len != 0 {
            rfc6052::embed(&g.pool6, g.pool6_len, src)
        } else {
            None
        };
        if let Some(a) = illegal {
            s.src6 = a;
        } else if g.rfc6791v6_len != 0 {
            s.src6 = addr::rfc6791_v6(&g.rfc6791v6, g.rfc6791v6_len, src);
        } else if forward::source6(pkt, &mut s.fib, &s.dst6, &mut s.src6) {
            // No pool: the address of the interface the error leaves by.
        } else if g.has_ipv6_addr() {
            s.src6 = g.ipv6_addr;
        } else {
            return pack(Action::Drop, Counter::DropRfc6791NoSource);
        }
    }
    // The packet inside went the other way: its source is the host, its destination
    // the remote side.
    if map4to6_into(g, u32::from_be_bytes(src_i), &mut s.err.isrc6, NAT_HOST) != 0
        || map4to6_into(g, u32::from_be_bytes(dst_i), &mut s.err.idst6, hairpinned) != 0
    {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    // Stateful NAT64, if so configured: from the remote the host talked to.
    if s.nat.flag != 0 && g.flag(Globals::FLAG_ICMP6_SOURCE_INNER) {
        s.src6 = s.err.idst6;
    }

    // Type, code and the four bytes after the checksum.
    let rest: [u8; 4] = match xl.rest {
        Rest::Zero => [0; 4],
        Rest::FixedPointer(p) => [0, 0, 0, p],
        Rest::Pointer => match icmp::pointer4_to_6(s.err.icmp[4]) {
            Some(p) => [0, 0, 0, p],
            None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
        },
        // RFC 7915 §4.2: no more than the IPv6 next hop (towards the host the error
        // goes to) and the IPv4 one (towards where the packet went) carry.
        Rest::Mtu => {
            let m = icmp::mtu4_to_6(u16::from_be_bytes([s.err.icmp[6], s.err.icmp[7]]), tot_i);
            let next6 = forward::route_mtu6(pkt, &mut s.fib, &s.dst6);
            let next4 = forward::route_mtu4(pkt, &mut s.fib, u32::from_ne_bytes(dst_i));
            icmp::cap_mtu6(m, next6, next4).to_be_bytes()
        }
    };
    layout6(pkt, g, s, e, rest)
}

/// How long the ICMPv6 error is (an RFC 4884 extension carried or left out, at most
/// 1280 bytes), its route and hop limit.
#[inline(always)]
fn layout6<P: Packet>(pkt: &mut P, g: &Globals, s: &mut Scratch, e: Error4, rest: [u8; 4]) -> Verdict {
    let l3 = P::L2_LEN;
    let Error4 { ttl, tot, xl, i, at_i, frag_i, .. } = e;
    // RFC 4884: when the error says how long its original-datagram field is (in
    // 32-bit words), what follows is an extension structure. It crosses when the new
    // type has the attribute too (in 64-bit words), behind the translated datagram cut
    // or padded to fit (`icmp::extension_layout`); else it is left out. A length past
    // the end is taken as no extension.
    let mut rest = rest;
    let msg_end = if l3 + tot < pkt.len() { l3 + tot } else { pkt.len() };
    let mut data_end = msg_end;
    let ext_len = s.err.icmp[5] as usize * 4;
    let mut ie_len = 0;
    if icmp::has_length_attr(false, s.err.icmp[0]) && ext_len != 0 && i + ext_len < data_end {
        data_end = i + ext_len;
        ie_len = msg_end - data_end;
    }
    if at_i > data_end {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let payload = data_end - at_i;
    let inner_new = if frag_i { IPV6_HLEN + FRAG_HLEN } else { IPV6_HLEN };
    // Kept in scratch memory, not on the stack: this frame is at the verifier's limit.
    s.err.ext =
        match icmp::extension_layout(inner_new + payload, ie_len, MAX_ICMP6_ERROR - IPV6_HLEN - ICMP_HLEN, 8)
        {
            Some((ipl, keep)) if icmp::has_length_attr(true, xl.typ) => {
                [ipl as u32, keep as u32, ie_len as u32, 0]
            }
            _ => [0; 4],
        };
    let mut out_len = IPV6_HLEN + ICMP_HLEN + inner_new + payload;
    if out_len > MAX_ICMP6_ERROR {
        out_len = MAX_ICMP6_ERROR;
    }
    if s.err.ext[0] != 0 {
        if !save_extension(pkt, data_end) {
            return pack(Action::Drop, Counter::DropInternal);
        }
        out_len = IPV6_HLEN + ICMP_HLEN + (s.err.ext[0] + s.err.ext[2]) as usize;
        rest[0] = (s.err.ext[0] / 8) as u8;
    }
    if ttl <= 1 {
        return pack(Action::Drop, Counter::DropTtlExpired);
    }
    let route = forward::lookup6(pkt, &mut s.fib, &s.src6, &s.dst6, IPPROTO_ICMPV6, out_len as u16);
    let hop_limit = match route {
        Route::Out(_) => ttl - 1,
        Route::Kernel | Route::TooBig(_) => ttl,
    };

    write6(pkt, g, s, e, rest, inner_new, out_len, route, hop_limit)
}

/// The ICMPv6 error written in place of the ICMPv4 one: the headers, the packet
/// inside with its transport checksum, the RFC 4884 extension, the checksum.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write6<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    e: Error4,
    rest: [u8; 4],
    inner_new: usize,
    out_len: usize,
    route: Route,
    hop_limit: u8,
) -> Verdict {
    let l3 = P::L2_LEN;
    let Error4 { ihl, tos, xl, ihl_i, tot_i, frag_off_i, more_i, frag_i, proto_i, src_i, dst_i, .. } = e;
    let tc = if g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS) { 0 } else { tos };
    let v6 = &mut s.hdr6;
    v6[0] = 0x60 | (tc >> 4);
    v6[1] = tc << 4;
    v6[2] = 0;
    v6[3] = 0;
    v6[4..6].copy_from_slice(&((out_len - IPV6_HLEN) as u16).to_be_bytes());
    v6[6] = IPPROTO_ICMPV6;
    v6[7] = hop_limit;
    v6[8..24].copy_from_slice(&s.src6);
    v6[24..40].copy_from_slice(&s.dst6);
    s.err.icmp = [xl.typ, xl.code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    // The inner header says what the original packet was, not what is left of it.
    let ulen_i = (tot_i as usize).saturating_sub(ihl_i);
    let iv6 = &mut s.err.ihdr6;
    let tos_i = s.err.ihdr4[1];
    iv6[0] = 0x60 | (tos_i >> 4);
    iv6[1] = tos_i << 4;
    iv6[2] = 0;
    iv6[3] = 0;
    iv6[4..6].copy_from_slice(&((inner_new - IPV6_HLEN + ulen_i) as u16).to_be_bytes());
    let nh_i = if proto_i == IPPROTO_ICMP { IPPROTO_ICMPV6 } else { proto_i };
    iv6[6] = if frag_i { 44 } else { nh_i };
    iv6[7] = s.err.ihdr4[8];
    iv6[8..24].copy_from_slice(&s.err.isrc6);
    iv6[24..40].copy_from_slice(&s.err.idst6);
    let fo = (frag_off_i << 3 | more_i as u16).to_be_bytes();
    s.err.ifrag6 = [nh_i, 0, fo[0], fo[1], 0, 0, s.err.ihdr4[4], s.err.ihdr4[5]];
    let old_i = checksum::sum4(&src_i) + checksum::sum4(&dst_i);
    let new_i = checksum::sum16(&s.err.isrc6) + checksum::sum16(&s.err.idst6);

    if pkt.resize_l3(ihl + ICMP_HLEN + ihl_i, IPV6_HLEN + ICMP_HLEN + inner_new, ETH_P_IPV6).is_err() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if s.err.ext[0] == 0 && pkt.truncate(l3 + out_len).is_err() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if s.err.ext[0] != 0 && !place_extension(pkt, l3 + IPV6_HLEN + ICMP_HLEN) {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if pkt.store_from(l3, &s.hdr6).is_none()
        || pkt.store(l3 + IPV6_HLEN, s.err.icmp).is_none()
        || pkt.store_from(l3 + IPV6_HLEN + ICMP_HLEN, &s.err.ihdr6).is_none()
    {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if frag_i && pkt.store(l3 + IPV6_HLEN + ICMP_HLEN + IPV6_HLEN, s.err.ifrag6).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if frag_off_i == 0 {
        let at = l3 + IPV6_HLEN + ICMP_HLEN + inner_new;
        let end =
            if s.err.ext[0] != 0 { l3 + IPV6_HLEN + ICMP_HLEN + s.err.ext[1] as usize } else { l3 + out_len };
        fix_inner_l4(
            pkt,
            at,
            (new_i as u64) << 32 | old_i as u64,
            1 << 24 | (ulen_i as u64 & 0xffff) << 8 | proto_i as u64,
            end,
        );
    }
    // The ICMPv6 checksum over the finished message and its pseudo-header.
    let msg = out_len - IPV6_HLEN;
    let sum = match sum_of(sum_sub(pkt, &mut s.buf, l3 + IPV6_HLEN, msg)) {
        Some(x) => x,
        None => return pack(Action::Drop, Counter::DropInternal),
    };
    let pseudo = checksum::sum16(&s.src6) + checksum::sum16(&s.dst6) + l4::pseudo6_tail(msg as u16);
    let c = checksum::finish(sum + pseudo);
    if pkt.store(l3 + IPV6_HLEN + 2, c.to_be_bytes()).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    pack(finish(pkt, route, &s.fib, s.flow_hash), Counter::Xlat4to6IcmpError)
}

/// RFC 7915 §4.2 / RFC 4443 §2.4: an ICMPv6 error fits the IPv6 minimum MTU.
const MAX_ICMP6_ERROR: usize = 1280;
