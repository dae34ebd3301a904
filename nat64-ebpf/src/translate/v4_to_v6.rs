//! IPv4 -> IPv6 (RFC 7915 §4).

use nat64_common::{
    addr::{self, Untranslatable},
    checksum,
    counters::Counter,
    icmp,
    maps::Globals,
    options, ranges,
};

use super::{
    denylisted4, drop_reason, eamt4, finish,
    l4::{self, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
};
use crate::{
    forward::{self, Route},
    maps::scratch,
    packet::{Action, ETH_P_IPV6, Packet, pack},
};

const IPV6_HLEN: usize = 40;
const IPV4_HLEN: usize = 20;
const FRAG_HLEN: usize = 8;
const EXT_FRAGMENT: u8 = 44;

/// Sum of the IPv4 header including options, to verify its checksum.
#[inline(always)]
fn header_sum<P: Packet>(
    pkt: &P,
    buf: &mut [u8; l4::SUM_BUF],
    l3: usize,
    h: &[u8; IPV4_HLEN],
    ihl: usize,
) -> Option<u32> {
    let sum = checksum::add_bytes(0, h);
    if ihl == IPV4_HLEN {
        return Some(sum);
    }
    Some(sum + l4::sum_bytes(pkt, buf, l3 + IPV4_HLEN, (ihl - IPV4_HLEN) & 0x3f)?)
}

/// Maps the destination into `dst6`: 0, or 1 + the counter of why not (PassV4NotOurs
/// when the packet is not for translation). SIIT: an IPv4 destination is ours through
/// the EAMT only. CLAT (RFC 6877): what a local client (its source in the EAMT) sends
/// anywhere is, through the PLAT prefix (pool6).
#[inline(always)]
fn map_dst(g: &Globals, src: [u8; 4], dst: [u8; 4], dst6: &mut [u8; 16]) -> u32 {
    let eam_dst = eamt4(g, dst);
    if eam_dst.is_none() && g.in_dyn_pool(dst) {
        return Counter::DropPoolUnmapped as u32 + 1;
    }
    if eam_dst.is_none() && !(g.flag(Globals::FLAG_CLAT) && eamt4(g, src).is_some()) {
        return Counter::PassV4NotOurs as u32 + 1;
    }
    let deny = eam_dst.is_none() && denylisted4(dst);
    match addr::map4to6(g, dst, eam_dst, deny) {
        Ok((a, _)) => {
            *dst6 = a;
            0
        }
        Err(e) => drop_reason(e) as u32 + 1,
    }
}

/// Where the walk over the options stands, shared with its bpf_loop callback.
#[repr(C)]
struct OptionWalk {
    next: u64,
    len: u64,
    found: u64,
}

/// One step of the walk over the options in the scratch buffer. Through bpf_loop the
/// verifier checks it once, not once per option.
extern "C" fn option_step(_i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop hands back the pointer `source_route_failed` gave it.
    let w = unsafe { &mut *(ctx as *mut OptionWalk) };
    let Some(s) = scratch() else { return 1 };
    match options::step(&s.buf[..options::MAX_OPTIONS], w.next as usize, w.len as usize) {
        options::Step::Next(n) => {
            w.next = n as u64;
            0
        }
        options::Step::SourceRoute => {
            w.found = 1;
            1
        }
        options::Step::End => 1,
    }
}

/// RFC 7915 §4.1: options are ignored, but an unexpired source route cannot be
/// honoured on the IPv6 side: such a packet to a translated address gets Destination
/// Unreachable, Source Route Failed (never in answer to an ICMP error). Checked ahead
/// of the translation, in a subprogram of its own, so that the verifier walks the
/// option list once rather than once per path through the translation. 0: no such
/// source route, else the packed verdict.
#[inline(always)]
pub fn source_route_failed<P: Packet>(pkt: &P, g: &Globals) -> u64 {
    // Without options (most packets) decided here: the call and return of the
    // subprogram cost more than the rest of this check.
    match pkt.load::<[u8; 2]>(P::L2_LEN) {
        Some(b) if (b[0] & 0x0f) as usize * 4 > IPV4_HLEN => source_route_walk(pkt, g),
        _ => 0,
    }
}

#[inline(never)]
fn source_route_walk<P: Packet>(pkt: &P, g: &Globals) -> u64 {
    source_route_failed_inner(pkt, g).unwrap_or(0)
}

#[inline(always)]
fn source_route_failed_inner<P: Packet>(pkt: &P, g: &Globals) -> Option<u64> {
    let l3 = P::L2_LEN;
    let h = pkt.load::<[u8; IPV4_HLEN]>(l3)?;
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl <= IPV4_HLEN {
        return None;
    }
    eamt4(g, [h[16], h[17], h[18], h[19]])?;
    let s = scratch()?;
    let len = (ihl - IPV4_HLEN) & 0x3f;
    if len == 0
        || len > options::MAX_OPTIONS
        || !pkt.load_bytes(l3 + IPV4_HLEN, s.buf.as_mut_ptr(), len as u32)
    {
        return None;
    }
    let mut w = OptionWalk { next: 0, len: len as u64, found: 0 };
    // SAFETY: the callback and its context match bpf_loop's contract; flags are 0.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            options::MAX_OPTIONS as u32,
            option_step as *mut core::ffi::c_void,
            &mut w as *mut OptionWalk as *mut core::ffi::c_void,
            0,
        );
    }
    if w.found == 0 {
        return None;
    }
    if h[9] == IPPROTO_ICMP && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4) {
        return Some(pack(Action::Drop, Counter::DropSourceRoute));
    }
    Some(pack(Action::Reply(icmp::ICMP4_DEST_UNREACH, 5, 0), Counter::DropSourceRoute))
}

/// Not inlined: with the options walk (its own frame and bpf_loop's callback) the
/// verifier's 512-byte limit for the frames of one call chain is exceeded.
#[inline(never)]
pub fn translate<P: Packet>(pkt: &mut P, g: &Globals) -> u64 {
    let (action, counter) = translate_inner(pkt, g);
    pack(action, counter)
}

#[inline(always)]
fn translate_inner<P: Packet>(pkt: &mut P, g: &Globals) -> (Action, Counter) {
    let l3 = P::L2_LEN;
    let s = match scratch() {
        Some(s) => s,
        None => return (Action::Drop, Counter::DropInternal),
    };
    if pkt.load_into(l3, &mut s.hdr4).is_none() {
        return (Action::Drop, Counter::DropMalformed);
    }
    let h = &s.hdr4;
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < IPV4_HLEN {
        return (Action::Drop, Counter::DropMalformed);
    }
    let src = [h[12], h[13], h[14], h[15]];
    let dst = [h[16], h[17], h[18], h[19]];

    // Is it ours? Broadcast, multicast and the host's own address are not.
    if ranges::is_reserved4(dst) {
        return (Action::Pass, Counter::PassV4NotOurs);
    }
    if g.has_ipv4_addr() && dst == g.ipv4_addr {
        return (Action::Pass, Counter::PassOwnAddress);
    }
    match map_dst(g, src, dst, &mut s.dst6) {
        0 => {}
        c if c == Counter::PassV4NotOurs as u32 + 1 => return (Action::Pass, Counter::PassV4NotOurs),
        // Nobody holds this pool address (any more): the sender learns it at once,
        // unless what it sent is an ICMP error itself (spec §6).
        c if c == Counter::DropPoolUnmapped as u32 + 1 => {
            if h[9] == IPPROTO_ICMP
                && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4)
            {
                return (Action::Drop, Counter::DropPoolUnmapped);
            }
            return (Action::Reply(icmp::ICMP4_DEST_UNREACH, 1, 0), Counter::DropPoolUnmapped);
        }
        c => {
            return (
                Action::Drop,
                Counter::ALL.get(c as usize - 1).copied().unwrap_or(Counter::DropInternal),
            );
        }
    }

    let tot_len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if tot_len < ihl || l3 + tot_len > pkt.len() {
        return (Action::Drop, Counter::DropMalformed);
    }
    match header_sum(pkt, &mut s.buf, l3, h, ihl) {
        Some(sum) if checksum::fold(sum) == 0xffff => {}
        Some(_) => return (Action::Drop, Counter::DropBadIpv4Checksum),
        None => return (Action::Drop, Counter::DropMalformed),
    }
    // RFC 7915 §4.1.1: a fragment keeps its offset, MF and ID in an IPv6 fragment header.
    let flags = u16::from_be_bytes([h[6], h[7]]);
    let frag_off = flags & 0x1fff;
    let more = flags & 0x2000 != 0;
    let fragmented = frag_off != 0 || more;
    let first = frag_off == 0;
    let id = [h[4], h[5]];
    let proto = h[9];
    // From the general path the kernel has already taken this hop off (spec §7): give
    // it back, so that the hop counts once whichever way the packet leaves.
    let ttl = h[8].saturating_add(super::general_path_credit(pkt, g));
    let tos = h[1];
    let (nh, counter) = match proto {
        IPPROTO_TCP => (IPPROTO_TCP, Counter::Xlat4to6Tcp),
        IPPROTO_UDP => (IPPROTO_UDP, Counter::Xlat4to6Udp),
        // The ICMPv6 checksum needs the whole message's length, unknown to a fragment.
        IPPROTO_ICMP if fragmented => return (Action::Drop, Counter::DropIcmpFragment),
        IPPROTO_ICMP => (IPPROTO_ICMPV6, Counter::Xlat4to6Icmp),
        // RFC 7915 §4.1: these exist only as IPv6 next headers.
        0 | 43 | 44 | IPPROTO_ICMPV6 | 60 => return (Action::Drop, Counter::DropV6OnlyProtocol),
        p => (p, Counter::Xlat4to6Other),
    };
    if ttl <= 1 {
        // Never an ICMP error in answer to an ICMP error (spec §6).
        if proto == IPPROTO_ICMP && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4) {
            return (Action::Drop, Counter::DropTtlExpired);
        }
        return (Action::Reply(icmp::ICMP4_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
    }

    // An ICMP error may come from a router without a mapping (RFC 6791): decide
    // before the source is required to map.
    if proto == IPPROTO_ICMP && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4) {
        return (Action::IcmpError, Counter::DropIcmpUntranslated);
    }
    let eam_src = eamt4(g, src);
    let deny = eam_src.is_none() && denylisted4(src);
    match addr::map4to6(g, src, eam_src, deny) {
        Ok((a, _)) => s.src6 = a,
        Err(Untranslatable::NoMapping) => return (Action::Drop, Counter::DropSrcUnmapped),
        Err(e) => return (Action::Drop, drop_reason(e)),
    }

    // Everything that can refuse the packet is checked before the first write.
    let plen = tot_len - ihl;
    let l4_in = l3 + ihl;
    let mut icmp_type = 0u8;
    let mut amend_udp = false;
    match if first { proto } else { 0 } {
        IPPROTO_TCP => {
            if (plen < 20 && !more) || pkt.load::<[u8; 20]>(l4_in).is_none() {
                return (Action::Drop, Counter::DropMalformed);
            }
        }
        IPPROTO_UDP => match pkt.load::<[u8; 8]>(l4_in) {
            Some(u) if plen >= 8 => {
                if u[6] == 0 && u[7] == 0 {
                    // RFC 7915 §4.5: compute it if the operator allows, else drop; a
                    // fragment does not hold the whole datagram to compute it from.
                    if fragmented || !g.flag(Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO) {
                        return (Action::Drop, Counter::DropUdpChecksumZero);
                    }
                    if plen > l4::MAX_AMEND_UDP {
                        return (Action::Drop, Counter::DropTooBig);
                    }
                    amend_udp = true;
                }
            }
            _ => return (Action::Drop, Counter::DropMalformed),
        },
        IPPROTO_ICMP => match pkt.load::<[u8; 8]>(l4_in) {
            Some(i) if plen >= 8 => match l4::icmp4_to_6(i[0]) {
                Some(t) => icmp_type = t,
                None => return (Action::Drop, Counter::DropIcmpUntranslated),
            },
            _ => return (Action::Drop, Counter::DropMalformed),
        },
        _ => {}
    }

    let l3_new = if fragmented { IPV6_HLEN + FRAG_HLEN } else { IPV6_HLEN };
    let route = forward::lookup6(pkt, &mut s.fib, &s.src6, &s.dst6, nh, (l3_new + plen) as u16);
    // One hop in total (spec §7): the kernel decrements when it forwards for us.
    let hop_limit = match route {
        Route::Out(_) => ttl - 1,
        // Without DF it needs IPv6 fragments: the kernel fragments the IPv4 packet into
        // the general path, whose MTU leaves room for translation (spec §2).
        Route::TooBig(_)
            if flags & 0x4000 == 0 && super::general_path_credit(pkt, g) == 0 && g.general_ifindex != 0 =>
        {
            return (Action::Pass, Counter::PassGeneralPath);
        }
        // DF set and too big once translated: the sender learns the MTU that fits.
        Route::TooBig(mtu6) if flags & 0x4000 != 0 => {
            let grow = (l3_new - ihl) as u32;
            let mtu4 = mtu6.saturating_sub(grow).clamp(68, 0xffff);
            return (Action::Reply(icmp::ICMP4_DEST_UNREACH, 4, mtu4), Counter::DropMtuExceeded);
        }
        // The kernel takes its hop off as it forwards. From the general path it already
        // took one: the node then counts two, so that a packet the routes would send
        // round the general path again runs out of hops instead of for ever.
        Route::Kernel | Route::TooBig(_) => ttl - super::general_path_credit(pkt, g),
    };
    let tc = if g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS) { 0 } else { tos };
    let v6 = &mut s.hdr6;
    v6[0] = 0x60 | (tc >> 4);
    v6[1] = tc << 4;
    v6[2] = 0;
    v6[3] = 0;
    v6[4..6].copy_from_slice(&((l3_new - IPV6_HLEN + plen) as u16).to_be_bytes());
    v6[6] = if fragmented { EXT_FRAGMENT } else { nh };
    v6[7] = hop_limit;
    v6[8..24].copy_from_slice(&s.src6);
    v6[24..40].copy_from_slice(&s.dst6);
    let old = checksum::sum4(&src) + checksum::sum4(&dst);
    let new = checksum::sum16(&s.src6) + checksum::sum16(&s.dst6);

    let fo = (frag_off << 3 | more as u16).to_be_bytes();
    s.frag6 = [nh, 0, fo[0], fo[1], 0, 0, id[0], id[1]];

    if pkt.resize_l3(ihl, l3_new, ETH_P_IPV6).is_err() {
        return (Action::Drop, Counter::DropInternal);
    }
    if pkt.truncate(l3 + l3_new + plen).is_err() || pkt.store_from(l3, &s.hdr6).is_none() {
        return (Action::Drop, Counter::DropInternal);
    }
    if fragmented && pkt.store(l3 + IPV6_HLEN, s.frag6).is_none() {
        return (Action::Drop, Counter::DropInternal);
    }

    let l4 = l3 + l3_new;
    let fixed = match if first { proto } else { 0 } {
        IPPROTO_TCP => l4::fix_pseudo(pkt, l4 + l4::TCP_CHECK, old, new, false),
        IPPROTO_UDP if amend_udp => match l4::sum_bytes(pkt, &mut s.buf, l4, plen) {
            Some(sum) => {
                let pseudo = new + plen as u32 + IPPROTO_UDP as u32;
                let c = checksum::udp_nonzero(checksum::finish(sum + pseudo));
                pkt.store(l4 + l4::UDP_CHECK, c.to_be_bytes())
            }
            None => None,
        },
        IPPROTO_UDP => l4::fix_pseudo(pkt, l4 + l4::UDP_CHECK, old, new, true),
        IPPROTO_ICMP => l4::fix_icmp_type(pkt, l4, icmp_type, 0, new + l4::pseudo6_tail(plen as u16)),
        _ => Some(()),
    };
    if fixed.is_none() {
        return (Action::Drop, Counter::DropInternal);
    }
    (finish(pkt, route, &s.fib), counter)
}
