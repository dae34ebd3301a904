//! ICMP errors both ways (RFC 7915 §4.2-4.3, §5.2-5.3): the error's type, code and
//! pointer or MTU, and the packet inside it (addresses, IP header, transport checksum),
//! truncated to 1280 bytes (ICMPv6) or 576 bytes (ICMPv4), outer checksum recomputed.
//!
//! Layout change, IPv4 -> IPv6 (IPv6 -> IPv4 is the mirror image):
//!   [eth][IPv4 ihl][ICMP 8][inner IPv4 ihl'][inner payload ...]
//!   [eth][IPv6 40 ][ICMPv6 8][inner IPv6 40 (+8 fragment header)][inner payload ...]
//! The inner payload stays where it is; everything before it is rewritten.

use nat64_common::{
    addr, checksum,
    counters::Counter,
    icmp::{self, Rest},
    maps::Globals,
    rfc6052,
};

use super::{
    l4,
    lookup::{denylisted4, eamt4, eamt6},
    step::finish,
};
use crate::{
    forward::{self, Route},
    hdr::{
        ETH_P_IP, ETH_P_IPV6, FRAG_HLEN, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
        IPV4_HLEN, IPV6_HLEN,
    },
    maps::{NAT_ADDRS, SUM_BUF, Scratch, scratch},
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

/// RFC 7915 §4.2 / RFC 4443 §2.4: an ICMPv6 error fits the IPv6 minimum MTU.
const MAX_ICMP6_ERROR: usize = 1280;
/// RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes.
const MAX_ICMP4_ERROR: usize = 576;

// The error path calls its heavier steps as subprograms (BPF-to-BPF calls): the
// verifier then explores their branches once per call rather than multiplying them
// with every branch before and after, which would exceed its one-million-instruction
// budget. Each returns a scalar.

/// `map4to6` for the error path: writes the address to `out`, returns 0, or 1 when
/// the address cannot be translated. With `pool6_form` set an address the EAMT maps
/// takes its pool6 form instead (the far end of a hairpinned packet, see
/// `addresses6`).
///
/// With `NAT_HOST` in `pool6_form`, a packet the stateful NAT stage mapped takes the
/// IPv6 host that stage found through the BIB instead (decided in here: a flag live
/// across the error path's caller would double the paths the verifier walks).
#[inline(never)]
fn map4to6_into(g: &Globals, a: u32, out: &mut [u8; 16], pool6_form: u64) -> u64 {
    if pool6_form & NAT_HOST != 0
        && let Some(s) = scratch()
        && s.nat.flag != 0
    {
        *out = nat64_common::words::to_bytes(&s.nat.dst6);
        return 0;
    }
    let pool6_form = pool6_form & 1;
    let v4 = a.to_be_bytes();
    let eam = eamt4(g, v4);
    if pool6_form != 0
        && eam.is_some()
        && let Some(x) = rfc6052::embed(&g.pool6, g.pool6_len, v4)
    {
        *out = x;
        return 0;
    }
    let deny = eam.is_none() && denylisted4(v4);
    match addr::map4to6(g, v4, eam, deny) {
        Ok((x, _)) => {
            *out = x;
            0
        }
        Err(_) => 1,
    }
}

/// See `map4to6_into` and `map6to4_sub`.
const NAT_HOST: u64 = 2;

/// 1 when the EAMT maps the IPv4 address `a`, else 0.
#[inline(never)]
fn eam4(g: &Globals, a: u32) -> u64 {
    eamt4(g, a.to_be_bytes()).is_some() as u64
}

/// `map6to4` for the error path: `1 << 32 | address`, or 0 when untranslatable. With
/// `nat` (`NAT_HOST`), a packet the stateful NAT stage mapped takes the pool4 address
/// that stage found instead.
#[inline(never)]
fn map6to4_sub(
    g: &Globals,
    a: &[u8; 16],
    key: &mut aya_ebpf::maps::lpm_trie::Key<[u8; 16]>,
    nat: u64,
) -> u64 {
    if nat != 0
        && let Some(s) = scratch()
        && s.nat.flag != 0
    {
        return 1 << 32 | u32::from_be_bytes(s.nat.addr4) as u64;
    }
    match addr::map6to4(g, a, eamt6(g, key, a, true), denylisted4) {
        Ok((v4, _)) => 1 << 32 | u32::from_be_bytes(v4) as u64,
        Err(_) => 0,
    }
}

/// `l4::sum_bytes` for the error path: `1 << 32 | sum`, or 0 on failure.
#[inline(never)]
fn sum_sub<P: Packet>(pkt: &P, buf: &mut [u8; SUM_BUF], off: usize, len: usize) -> u64 {
    match l4::sum_bytes(pkt, buf, off, len) {
        Some(x) => 1 << 32 | x as u64,
        None => 0,
    }
}

/// [`sum_sub`] for an incoming error, which may be longer than a 1500-byte link
/// carries (RFC 4884 extensions on a jumbo link): summed in rounds (`l4::sum_long`),
/// whatever its length. Apart from `sum_sub`, so that the errors built here, never
/// that long, do not make the verifier walk the rounds again.
#[inline(never)]
fn sum_in<P: Packet>(pkt: &P, off: usize, len: usize) -> u64 {
    match l4::sum_long(pkt, off, len) {
        Some(x) => 1 << 32 | x as u64,
        None => 0,
    }
}

/// RFC 4884: copies an error's extension structure (`ext[2]` of the scratch space, in
/// bytes, at `off`) into the scratch buffer before the headers in front of it are
/// rewritten. Inlined, and its lengths in scratch memory: the error path's frame is at
/// the verifier's 512-byte limit on the stack of nested calls.
#[inline(always)]
fn save_extension<P: Packet>(pkt: &P, off: usize) -> bool {
    let Some(s) = scratch() else { return false };
    match helper_len(&s.err.ext[2], SUM_BUF) {
        0 => false,
        n => pkt.load_bytes(off, s.buf.as_mut_ptr(), n),
    }
}

/// RFC 4884: the translated error ends with its new original-datagram field, which
/// starts at `at`, holds `ext[1]` bytes of the translated datagram and is padded with
/// zeros to `ext[0]` bytes, then the extension structure saved by `save_extension`.
#[inline(always)]
fn place_extension<P: Packet>(pkt: &mut P, at: usize) -> bool {
    let Some(s) = scratch() else { return false };
    let (ipl, keep, len) = (s.err.ext[0] as usize, s.err.ext[1] as usize, s.err.ext[2] as usize);
    if keep > ipl || pkt.set_len(at + ipl + len).is_err() {
        return false;
    }
    s.err.ext[3] = (ipl - keep) as u32;
    if ipl > keep {
        match helper_len(&s.err.ext[3], icmp::EXT_MIN_DATAGRAM) {
            0 => return false,
            pad => {
                if !pkt.store_bytes(at + keep, s.err.zeros.as_ptr(), pad) {
                    return false;
                }
            }
        }
    }
    match helper_len(&s.err.ext[2], SUM_BUF) {
        0 => false,
        n => pkt.store_bytes(at + ipl, s.buf.as_ptr(), n),
    }
}

/// The length at `v` as the length argument of a helper copying into or out of a
/// buffer of `size` bytes (a power of two): 1 to `size` by construction, so that the
/// verifier sees the bounds; 0 when it is 0 or does not fit.
#[inline(always)]
fn helper_len(v: &u32, size: usize) -> u32 {
    // A read of map memory the compiler cannot see through: the bounds below stay.
    // SAFETY: a valid, aligned reference.
    let n = unsafe { core::ptr::read_volatile(v) };
    if n == 0 || n as usize > size {
        return 0;
    }
    1 + (n.wrapping_sub(1) & (size as u32 - 1))
}

#[inline(always)]
fn sum_of(v: u64) -> Option<u32> {
    if v >> 32 == 1 { Some(v as u32) } else { None }
}

/// The transport checksum of the packet inside an error, for its new addresses. The
/// field may have been cut off by the router that sent the error: then nothing is done.
/// `sums` packs the old and new address sums (old in the low half); `meta` the
/// protocol, the quoted ICMP message length and the direction (five arguments at most).
/// `end`: where the quoted datagram ends (an RFC 4884 extension may follow it).
#[inline(never)]
fn fix_inner_l4<P: Packet>(pkt: &mut P, at: usize, sums: u64, meta: u64, end: usize) -> u64 {
    let (old, new) = (sums as u32, (sums >> 32) as u32);
    let proto = meta as u8;
    let icmp_len = (meta >> 8) as u16;
    let to_v6 = meta >> 24 != 0;
    match proto {
        IPPROTO_TCP => {
            if at + l4::TCP_CHECK + 2 <= end {
                let _ = l4::fix_check(pkt, at + l4::TCP_CHECK, old, new, false);
            }
        }
        IPPROTO_UDP => {
            // A zero UDP checksum means "none" in IPv4 and stays zero.
            if at + l4::UDP_CHECK + 2 <= end
                && pkt.load::<[u8; 2]>(at + l4::UDP_CHECK).is_some_and(|c| c != [0, 0])
            {
                let _ = l4::fix_check(pkt, at + l4::UDP_CHECK, old, new, true);
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 if at + 4 <= end => {
            if let Some(t) = pkt.load::<[u8; 2]>(at).map(|b| b[0]) {
                let nt = if to_v6 { l4::icmp4_to_6(t) } else { l4::icmp6_to_4(t) };
                if let Some(nt) = nt {
                    // ICMPv6 has a pseudo-header (with the original message length);
                    // ICMPv4 has none: add it going to IPv6, take it out coming back.
                    let (out, inn) = if to_v6 {
                        (0, new + l4::pseudo6_tail(icmp_len))
                    } else {
                        (old + l4::pseudo6_tail(icmp_len), 0)
                    };
                    let _ = l4::fix_icmp_type(pkt, at, nt, out, inn);
                }
            }
        }
        _ => {}
    }
    0
}

/// Not inlined: the error path gets its own stack frame. In four steps: the error
/// and the packet inside it read and checked (here), then [`addresses6`], [`layout6`] and [`write6`],
/// each handing what it learnt to the next as its last act.
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

/// Not inlined: the error path gets its own stack frame. In four steps: the error
/// and the packet inside it read and checked (here), then [`addresses4`], [`layout4`] and [`write4`],
/// each handing what it learnt to the next as its last act.
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
    let id = super::v6_to_v4::fresh_id(s);
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
    } else if IPV4_HLEN + ulen_i > super::v6_to_v4::DF_THRESHOLD {
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

/// Whether the translation of an ICMPv6 error to `dst6` would come straight back to
/// be translated to IPv6, as the packet it is about did (hairpinning): `dst6` is the
/// pool6 form of a pool4 address (stateful NAT64) or of an address the EAMT maps back
/// to IPv6 (RFC 7757 §4). Asked by the error stage before it translates (its own frame
/// is the deepest; this call and the EAMT's below it fit beside it). Not for a
/// dynamic-pool host: such an error takes the general path.
#[inline(never)]
pub fn comes_back(g: &Globals, dst6: &[u8; 16]) -> u32 {
    if g.pool6_len == 0 || !rfc6052::in_pool6(dst6, &g.pool6, g.pool6_len) {
        return 0;
    }
    let Some(a) = rfc6052::extract(dst6, g.pool6_len) else {
        return 0;
    };
    if g.flag(Globals::FLAG_STATEFUL) {
        return NAT_ADDRS.get_ptr(&a).is_some() as u32;
    }
    eamt4(g, a).is_some() as u32
}
