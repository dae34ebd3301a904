//! An ICMPv6 error and the packet inside it, to ICMPv4 (RFC 7915 §5.2-5.3).

use nat64_common::{
    addr, checksum,
    counters::Counter,
    icmp::{self, Rest},
    maps::Globals,
};

use super::common::{
    NAT_HOST, fix_inner_l4, map6to4_sub, place_extension, save_extension, sum_in, sum_of, sum_sub,
};
use crate::{
    forward::{self, Route},
    hdr::{ETH_P_IP, FRAG_HLEN, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN},
    maps::{Scratch, scratch},
    packet::Packet,
    translate::{l4, step::finish},
    verdict::{Action, Verdict, pack},
};

/// Not inlined: the error path gets its own stack frame. In four steps: the error
/// and the packet inside it read and checked (here), then [`addresses4`], [`layout4`]
/// and [`write4`], each handing what it learnt to the next as its last act.
#[inline(never)]
pub fn v6_to_v4<P: Packet>(pkt: &mut P, g: &Globals) -> Verdict {
    let l3 = P::L2_LEN;
    let s = match scratch() {
        Some(s) => s,
        None => return pack(Action::Drop, Counter::DropInternal),
    };
    // The caller checked the outer header (version, lengths, destination ours, no
    // extension header but an atomic fragment header, next header ICMPv6 with an
    // error type).
    if pkt.load_into(l3, &mut s.hdr6).is_none() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    s.src6.copy_from_slice(&s.hdr6[8..24]);
    s.dst6.copy_from_slice(&s.hdr6[24..40]);
    let hop_limit = s.hdr6[7];
    let tos = (s.hdr6[0] << 4) | (s.hdr6[1] >> 4);
    let plen = u16::from_be_bytes([s.hdr6[4], s.hdr6[5]]) as usize;
    // An atomic fragment header (offset 0, no more to come: RFC 6946) may stand
    // between the header and the message, which is whole all the same; it goes with
    // the IPv6 header.
    let outer_frag = if s.hdr6[6] == 44 {
        match pkt.load::<[u8; FRAG_HLEN]>(l3 + IPV6_HLEN) {
            Some(f) if f[0] == IPPROTO_ICMPV6 && f[2] == 0 && f[3] & 0xf9 == 0 => FRAG_HLEN,
            _ => return pack(Action::Drop, Counter::DropIcmpFragment),
        }
    } else {
        0
    };
    if plen < outer_frag {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    let mlen = plen - outer_frag;
    let o = l3 + IPV6_HLEN + outer_frag;
    match pkt.load::<[u8; ICMP_HLEN]>(o) {
        Some(i) => s.err.icmp = i,
        None => return pack(Action::Drop, Counter::DropMalformed),
    }
    let xl = match icmp::error6_to_4(s.err.icmp[0], s.err.icmp[1]) {
        Some(x) => x,
        None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
    };
    // As above: the incoming checksum (with its pseudo-header) must be right.
    let pseudo_in = checksum::sum16(&s.src6) + checksum::sum16(&s.dst6) + l4::pseudo6_tail(mlen as u16);
    match sum_of(sum_in(pkt, o, mlen)) {
        Some(sum) if checksum::fold(sum + pseudo_in) == 0xffff => {}
        _ => return pack(Action::Drop, Counter::DropIcmpBadChecksum),
    }

    // The packet in error, with an optional fragment header.
    let i = o + ICMP_HLEN;
    if pkt.load_into(i, &mut s.err.ihdr6).is_none() {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    if s.err.ihdr6[0] >> 4 != 6 {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    s.err.isrc6.copy_from_slice(&s.err.ihdr6[8..24]);
    s.err.idst6.copy_from_slice(&s.err.ihdr6[24..40]);
    let mut nh_i = s.err.ihdr6[6];
    let plen_i = u16::from_be_bytes([s.err.ihdr6[4], s.err.ihdr6[5]]) as usize;
    let mut inner_old = IPV6_HLEN;
    let mut ulen_i = plen_i;
    let (mut frag_off_i, mut more_i, mut id_i, mut frag_i) = (0u16, false, [0u8; 2], false);
    if nh_i == 44 {
        match pkt.load::<[u8; FRAG_HLEN]>(i + IPV6_HLEN) {
            Some(f) => {
                nh_i = f[0];
                frag_off_i = u16::from_be_bytes([f[2], f[3]]) >> 3;
                more_i = f[3] & 1 != 0;
                id_i = [f[6], f[7]];
                frag_i = true;
            }
            None => return pack(Action::Drop, Counter::DropIcmpErrorInner),
        }
        inner_old += FRAG_HLEN;
        ulen_i = ulen_i.saturating_sub(FRAG_HLEN);
    } else if matches!(nh_i, 0 | 43 | 60) {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let at_i = i + inner_old;
    if nh_i == IPPROTO_ICMPV6
        && frag_off_i == 0
        && pkt.load::<[u8; 2]>(at_i).map(|b| b[0]).is_some_and(icmp::is_error6)
    {
        return pack(Action::Drop, Counter::DropIcmpErrorNested);
    }

    let e = Error6 {
        hop_limit,
        tos,
        plen,
        outer_frag,
        xl,
        i,
        at_i,
        nh_i,
        ulen_i,
        inner_old,
        frag_off_i,
        more_i,
        id_i,
        frag_i,
    };
    addresses4(pkt, g, s, e)
}

/// What the first step learnt of an ICMPv6 error and the packet inside it.
#[derive(Clone, Copy)]
struct Error6 {
    /// The outer header: hop limit, traffic class, payload length, and the atomic
    /// fragment header's length when there is one.
    hop_limit: u8,
    tos: u8,
    plen: usize,
    outer_frag: usize,
    /// The ICMPv4 type and code, and what the last four bytes of the header hold.
    xl: icmp::ErrorXlat,
    /// Where the packet inside starts and where its transport starts.
    i: usize,
    at_i: usize,
    /// The packet inside: its transport protocol and length, the length of its IPv6
    /// headers, and its fragment header's offset, MF and Identification.
    nh_i: u8,
    ulen_i: usize,
    inner_old: usize,
    frag_off_i: u16,
    more_i: bool,
    id_i: [u8; 2],
    frag_i: bool,
}

/// The four addresses of an ICMPv4 error: the outer pair and the packet inside.
#[derive(Clone, Copy)]
struct Addrs4 {
    src4: [u8; 4],
    dst4: [u8; 4],
    src4_i: [u8; 4],
    dst4_i: [u8; 4],
}

/// The four addresses in IPv4 (the outer source an RFC 6791 one when the router has
/// no mapping), and the last four bytes of the ICMPv4 header.
#[inline(always)]
fn addresses4<P: Packet>(pkt: &mut P, g: &Globals, s: &mut Scratch, e: Error6) -> Verdict {
    let Error6 { xl, .. } = e;
    // Outer destination: the IPv4 host that sent the packet in error; outer source:
    // the IPv6 router, or an RFC 6791 address when it has no mapping.
    let m = map6to4_sub(g, &s.dst6, &mut s.key6, 0);
    if m >> 32 == 0 {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let dst4 = (m as u32).to_be_bytes();
    // Stateful NAT64: the IPv6 node that sent the error has no IPv4 address; the
    // error comes from the pool4 address the IPv4 host sent to (found by the NAT stage,
    // which mapped the packet inside), as its destination is inside.
    let m = map6to4_sub(g, &s.src6, &mut s.key6, NAT_HOST);
    let src4 = if m >> 32 != 0 {
        (m as u32).to_be_bytes()
    } else if g.rfc6791v4_len != 0 {
        addr::rfc6791_v4(g.rfc6791v4, g.rfc6791v4_len, &s.src6)
    } else {
        // No pool: the address of the interface the error leaves by, else ipv4-addr.
        match forward::source4(pkt, &mut s.fib, u32::from_ne_bytes(dst4)) {
            0 if g.has_ipv4_addr() => g.ipv4_addr,
            0 => return pack(Action::Drop, Counter::DropRfc6791NoSource),
            a => a.to_ne_bytes(),
        }
    };
    let m = map6to4_sub(g, &s.err.isrc6, &mut s.key6, 0);
    let m2 = map6to4_sub(g, &s.err.idst6, &mut s.key6, NAT_HOST);
    if m >> 32 == 0 || m2 >> 32 == 0 {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let src4_i = (m as u32).to_be_bytes();
    let dst4_i = (m2 as u32).to_be_bytes();

    let rest: [u8; 4] = match xl.rest {
        Rest::Zero | Rest::FixedPointer(_) => [0; 4],
        Rest::Pointer => {
            match icmp::pointer6_to_4(u32::from_be_bytes([
                s.err.icmp[4],
                s.err.icmp[5],
                s.err.icmp[6],
                s.err.icmp[7],
            ])) {
                Some(p) => [p, 0, 0, 0],
                None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
            }
        }
        // RFC 7915 §5.2: no more than the IPv4 next hop (towards the host the error
        // goes to) and the IPv6 one (towards where the packet went) carry.
        Rest::Mtu => {
            let m = icmp::mtu6_to_4(u32::from_be_bytes([
                s.err.icmp[4],
                s.err.icmp[5],
                s.err.icmp[6],
                s.err.icmp[7],
            ]));
            let next4 = forward::route_mtu4(pkt, &mut s.fib, u32::from_ne_bytes(dst4));
            let next6 = forward::route_mtu6(pkt, &mut s.fib, &s.err.idst6);
            let b = icmp::cap_mtu4(m, next4, next6).to_be_bytes();
            [0, 0, b[0], b[1]]
        }
    };
    layout4(pkt, g, s, e, Addrs4 { src4, dst4, src4_i, dst4_i }, rest)
}

/// How long the ICMPv4 error is (an RFC 4884 extension carried or left out, at most
/// 576 bytes), its route and TTL.
#[inline(always)]
fn layout4<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    e: Error6,
    a: Addrs4,
    rest: [u8; 4],
) -> Verdict {
    let l3 = P::L2_LEN;
    let Error6 { hop_limit, tos, plen, xl, i, at_i, .. } = e;
    let Addrs4 { src4, dst4, .. } = a;
    // RFC 4884, as in v4_to_v6: the ICMPv6 length attribute (64-bit words) of a
    // Destination Unreachable or Time Exceeded, in 32-bit words on the other side.
    let mut rest = rest;
    let mut data_end = l3 + IPV6_HLEN + plen;
    if data_end > pkt.len() {
        data_end = pkt.len();
    }
    let msg_end = data_end;
    let ext_len = s.err.icmp[4] as usize * 8;
    let mut ie_len = 0;
    if icmp::has_length_attr(true, s.err.icmp[0]) && ext_len != 0 && i + ext_len < data_end {
        data_end = i + ext_len;
        ie_len = msg_end - data_end;
    }
    if at_i > data_end {
        return pack(Action::Drop, Counter::DropIcmpErrorInner);
    }
    let payload = data_end - at_i;
    s.err.ext =
        match icmp::extension_layout(IPV4_HLEN + payload, ie_len, MAX_ICMP4_ERROR - IPV4_HLEN - ICMP_HLEN, 4)
        {
            Some((ipl, keep)) if icmp::has_length_attr(false, xl.typ) => {
                [ipl as u32, keep as u32, ie_len as u32, 0]
            }
            _ => [0; 4],
        };
    let mut out_len = IPV4_HLEN + ICMP_HLEN + IPV4_HLEN + payload;
    if out_len > MAX_ICMP4_ERROR {
        out_len = MAX_ICMP4_ERROR;
    }
    if s.err.ext[0] != 0 {
        if !save_extension(pkt, data_end) {
            return pack(Action::Drop, Counter::DropInternal);
        }
        out_len = IPV4_HLEN + ICMP_HLEN + (s.err.ext[0] + s.err.ext[2]) as usize;
        rest[1] = (s.err.ext[0] / 4) as u8;
    }
    if hop_limit <= 1 {
        return pack(Action::Drop, Counter::DropTtlExpired);
    }
    // An error about a hairpinned packet (`comes_back`): no route, no hop taken here;
    // the caller runs it through the IPv4 side at once.
    let route = if s.err.again != 0 {
        Route::Kernel
    } else {
        forward::lookup4(pkt, &mut s.fib, src4, dst4, tos, IPPROTO_ICMP, out_len as u16, g.in_dyn_pool(src4))
    };
    let ttl = match route {
        Route::Out(_) => hop_limit - 1,
        Route::Kernel | Route::TooBig(_) => hop_limit,
    };
    write4(pkt, s, e, a, rest, out_len, route, ttl)
}

/// The ICMPv4 error written in place of the ICMPv6 one: the headers, the packet
/// inside with its transport checksum, the RFC 4884 extension, the checksum.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write4<P: Packet>(
    pkt: &mut P,
    s: &mut Scratch,
    e: Error6,
    a: Addrs4,
    rest: [u8; 4],
    out_len: usize,
    route: Route,
    ttl: u8,
) -> Verdict {
    let l3 = P::L2_LEN;
    let Error6 { tos, outer_frag, xl, nh_i, ulen_i, inner_old, frag_off_i, more_i, id_i, frag_i, .. } = e;
    let Addrs4 { src4, dst4, src4_i, dst4_i } = a;
    let id = crate::translate::v6_to_v4::fresh_id(s);
    let v4 = &mut s.hdr4;
    v4[0] = 0x45;
    v4[1] = tos;
    v4[2..4].copy_from_slice(&(out_len as u16).to_be_bytes());
    v4[4..6].copy_from_slice(&id.to_be_bytes());
    v4[6] = 0;
    v4[7] = 0;
    v4[8] = ttl;
    v4[9] = IPPROTO_ICMP;
    v4[10] = 0;
    v4[11] = 0;
    v4[12..16].copy_from_slice(&src4);
    v4[16..20].copy_from_slice(&dst4);
    let c = checksum::finish(checksum::add_bytes(0, v4)).to_be_bytes();
    v4[10] = c[0];
    v4[11] = c[1];
    s.err.icmp = [xl.typ, xl.code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    // The inner header as the IPv4 host sent it (RFC 7915 §5.3).
    let tos_i = (s.err.ihdr6[0] << 4) | (s.err.ihdr6[1] >> 4);
    let proto_i = if nh_i == IPPROTO_ICMPV6 { IPPROTO_ICMP } else { nh_i };
    // The packet inside gets the DF bit its own translation would give it (RFC 7915
    // §5.1: without a fragment header, DF when longer than 1260 bytes); its
    // Identification, which the IPv4 host's original lost on the way, is 0.
    let flags_i = if frag_i {
        frag_off_i | if more_i { 0x2000 } else { 0 }
    } else if IPV4_HLEN + ulen_i > crate::translate::v6_to_v4::DF_THRESHOLD {
        0x4000
    } else {
        0
    };
    let iv4 = &mut s.err.ihdr4;
    iv4[0] = 0x45;
    iv4[1] = tos_i;
    iv4[2..4].copy_from_slice(&((IPV4_HLEN + ulen_i) as u16).to_be_bytes());
    iv4[4] = id_i[0];
    iv4[5] = id_i[1];
    iv4[6..8].copy_from_slice(&flags_i.to_be_bytes());
    iv4[8] = s.err.ihdr6[7];
    iv4[9] = proto_i;
    iv4[10] = 0;
    iv4[11] = 0;
    iv4[12..16].copy_from_slice(&src4_i);
    iv4[16..20].copy_from_slice(&dst4_i);
    let c = checksum::finish(checksum::add_bytes(0, iv4)).to_be_bytes();
    iv4[10] = c[0];
    iv4[11] = c[1];
    let old_i = checksum::sum16(&s.err.isrc6) + checksum::sum16(&s.err.idst6);
    let new_i = checksum::sum4(&src4_i) + checksum::sum4(&dst4_i);

    if pkt
        .resize_l3(
            IPV6_HLEN + outer_frag + ICMP_HLEN + inner_old,
            IPV4_HLEN + ICMP_HLEN + IPV4_HLEN,
            ETH_P_IP,
        )
        .is_err()
    {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if s.err.ext[0] == 0 && pkt.truncate(l3 + out_len).is_err() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if s.err.ext[0] != 0 && !place_extension(pkt, l3 + IPV4_HLEN + ICMP_HLEN) {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if pkt.store_from(l3, &s.hdr4).is_none()
        || pkt.store(l3 + IPV4_HLEN, s.err.icmp).is_none()
        || pkt.store_from(l3 + IPV4_HLEN + ICMP_HLEN, &s.err.ihdr4).is_none()
    {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if frag_off_i == 0 {
        let at = l3 + IPV4_HLEN + ICMP_HLEN + IPV4_HLEN;
        let end =
            if s.err.ext[0] != 0 { l3 + IPV4_HLEN + ICMP_HLEN + s.err.ext[1] as usize } else { l3 + out_len };
        fix_inner_l4(
            pkt,
            at,
            (new_i as u64) << 32 | old_i as u64,
            (ulen_i as u64 & 0xffff) << 8 | nh_i as u64,
            end,
        );
    }
    // The ICMPv4 checksum over the finished message (no pseudo-header).
    let msg = out_len - IPV4_HLEN;
    let sum = match sum_of(sum_sub(pkt, &mut s.buf, l3 + IPV4_HLEN, msg)) {
        Some(x) => x,
        None => return pack(Action::Drop, Counter::DropInternal),
    };
    if pkt.store(l3 + IPV4_HLEN + 2, checksum::finish(sum).to_be_bytes()).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if s.err.again != 0 {
        return pack(Action::Hairpin, Counter::Xlat6to4IcmpError);
    }
    pack(finish(pkt, route, &s.fib, s.flow_hash), Counter::Xlat6to4IcmpError)
}

/// RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes.
const MAX_ICMP4_ERROR: usize = 576;
