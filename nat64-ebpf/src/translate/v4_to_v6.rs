//! IPv4 -> IPv6 (RFC 7915 §4).

use nat64_common::{
    addr, checksum,
    counters::Counter,
    icmp,
    maps::Globals,
    options, ranges,
    words::{self, W6},
};

use super::{
    held, l4,
    lookup::{denylisted4, eamt4, ipv4_translatable},
    memo,
    step::{self, drop_reason, finish},
};
use crate::{
    forward::{self, Route},
    hdr::{
        ETH_P_IPV6, FRAG_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN,
    },
    maps::{SUM_BUF, Scratch, scratch},
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

const EXT_FRAGMENT: u8 = 44;

/// Sum of the IPv4 header including options, to verify its checksum.
#[inline(always)]
fn header_sum<P: Packet>(
    pkt: &P,
    buf: &mut [u8; SUM_BUF],
    l3: usize,
    h: &[u32; 5],
    ihl: usize,
) -> Option<u32> {
    // The sum of the words' 16-bit halves: the sum of the header's 16-bit words.
    let sum = words::sum_word(h[0])
        + words::sum_word(h[1])
        + words::sum_word(h[2])
        + words::sum_word(h[3])
        + words::sum_word(h[4]);
    if ihl == IPV4_HLEN {
        return Some(sum);
    }
    Some(sum + l4::sum_bytes(pkt, buf, l3 + IPV4_HLEN, (ihl - IPV4_HLEN) & 0x3f)?)
}

/// Maps the destination into `dst6`: 0, or 1 + the counter of why not (PassV4NotOurs
/// when the packet is not for translation). SIIT: an IPv4 destination is ours through
/// the EAMT, or through pool6 when it is IPv4-translatable (RFC 7915 §1.3: an IPv6
/// host holds its pool6 form). CLAT (RFC 6877): what a local client (its source in
/// the EAMT) sends anywhere is, through the PLAT prefix (pool6).
#[inline(always)]
fn map_dst(g: &Globals, src: [u8; 4], dst: [u8; 4], dst6: &mut W6) -> u32 {
    if g.in_dyn_pool(dst) {
        return map_dst_pooled(g, src, dst, dst6);
    }
    let Some(md) = memo::v4(g, memo::DST4, dst) else {
        return Counter::DropInternal as u32 + 1;
    };
    if !md.has(memo::EAM) && !(g.flag(Globals::FLAG_CLAT) && has_eam(g, src)) && !md.has(memo::XLAT) {
        return Counter::PassV4NotOurs as u32 + 1;
    }
    match md.outcome() {
        0 => {
            md.to6_into(dst6);
            0
        }
        o => o,
    }
}

/// Whether an EAM entry or a dynamic-pool mapping covers an IPv4 source.
#[inline(always)]
fn has_eam(g: &Globals, src: [u8; 4]) -> bool {
    if g.in_dyn_pool(src) {
        return eamt4(g, src).is_some();
    }
    memo::v4(g, memo::SRC4, src).is_some_and(|m| m.has(memo::EAM))
}

/// `map_dst` for a destination in the dynamic pool (not remembered: a host holds it
/// only for a while). A subprogram: the NAT64 pool's path, walked once.
#[inline(never)]
fn map_dst_pooled(g: &Globals, src: [u8; 4], dst: [u8; 4], dst6: &mut W6) -> u32 {
    let eam_dst = eamt4(g, dst);
    if eam_dst.is_none() && g.in_dyn_pool(dst) {
        return Counter::DropPoolUnmapped as u32 + 1;
    }
    if eam_dst.is_none()
        && !(g.flag(Globals::FLAG_CLAT) && eamt4(g, src).is_some())
        && !ipv4_translatable(g, dst)
    {
        return Counter::PassV4NotOurs as u32 + 1;
    }
    let deny = eam_dst.is_none() && denylisted4(dst);
    match addr::map4to6_words(g, dst, eam_dst, deny) {
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
    source_route_failed_inner(pkt, g).map_or(0, Verdict::raw)
}

#[inline(always)]
fn source_route_failed_inner<P: Packet>(pkt: &P, g: &Globals) -> Option<Verdict> {
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

/// RFC 7915 §4 in four steps: the header and the destination (here), then
/// [`protocol_and_source`], [`check_transport`] and [`write_ipv6`], each handing what
/// it learnt ([`Parsed`] and its own findings) to the next as its last act, as
/// `v6_to_v4` does.
///
/// Every outcome is packed where it is decided: returning the `(Action, Counter)`
/// pair made LLVM keep the pair's three registers (kind, payload, counter) for the
/// many early returns and spill them before each check.
#[inline(always)]
pub fn translate<P: Packet>(pkt: &mut P, g: &Globals) -> Verdict {
    let l3 = P::L2_LEN;
    let s = match scratch() {
        Some(s) => s,
        None => return pack(Action::Drop, Counter::DropInternal),
    };
    if pkt.load_words(l3, &mut s.hdr4w).is_none() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    let h = &s.hdr4w;
    // Version, IHL, TOS, total length; ID, flags, offset; TTL, protocol, checksum.
    let w0 = u32::from_be(h[0]);
    let w1 = u32::from_be(h[1]);
    let w2 = u32::from_be(h[2]);
    let ihl = (((w0 >> 24) & 0x0f) as usize) * 4;
    if w0 >> 28 != 4 || ihl < IPV4_HLEN {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    let src = h[3].to_ne_bytes();
    let dst = h[4].to_ne_bytes();

    // Is it ours? Broadcast, multicast and the host's own address are not.
    if ranges::is_reserved4(dst) {
        return pack(Action::Pass, Counter::PassV4NotOurs);
    }
    // Stateful NAT64: to a pool4 address, the NAT stage maps the destination (BIB and
    // session) and comes back with the IPv6 host. The translator's own address may be
    // one too: what no mapping takes is then the host's (the NAT stage passes it).
    let nat = g.flag(Globals::FLAG_STATEFUL) && crate::maps::NAT_ADDRS.get_ptr(&dst).is_some();
    if !nat && g.has_ipv4_addr() && dst == g.ipv4_addr {
        return pack(Action::Pass, Counter::PassOwnAddress);
    }
    // An ICMP echo in fragments needs two packets sent for one: not in XDP (`held`).
    let icmp_fragment = (w2 >> 16) as u8 == IPPROTO_ICMP && w1 & 0x3fff != 0;
    if P::XDP && icmp_fragment && nat {
        return held::to_kernel(pkt, g);
    }
    // An established flow's packet (not a fragment, hops left) is mapped here, in one
    // pass; anything else takes the NAT stage.
    if nat
        && s.nat.flag == 0
        && (w1 & 0x3fff != 0
            || ((w2 >> 24) as u8).saturating_add(step::general_path_credit(pkt, g)) <= 1
            || super::nat::fast4(
                pkt,
                (l3 + ihl) as u64,
                (w2 >> 16) as u8 as u64,
                u32::from_ne_bytes(src) as u64,
                u32::from_ne_bytes(dst) as u64,
            ) == 0)
    {
        return pack(Action::Nat, Counter::DropNatUnsupported);
    }
    match if nat {
        s.dst6w = s.nat.dst6;
        0
    } else {
        map_dst(g, src, dst, &mut s.dst6w)
    } {
        0 => {}
        c if c == Counter::PassV4NotOurs as u32 + 1 => return pack(Action::Pass, Counter::PassV4NotOurs),
        // Nobody holds this pool address (any more): the sender learns it at once,
        // unless what it sent is an ICMP error itself (spec §6).
        c if c == Counter::DropPoolUnmapped as u32 + 1 => {
            if (w2 >> 16) as u8 == IPPROTO_ICMP
                && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4)
            {
                return pack(Action::Drop, Counter::DropPoolUnmapped);
            }
            return pack(Action::Reply(icmp::ICMP4_DEST_UNREACH, 1, 0), Counter::DropPoolUnmapped);
        }
        c => return step::refuse_outcome(g, c, false),
    }
    if P::XDP && icmp_fragment {
        return held::to_kernel(pkt, g);
    }

    let tot_len = (w0 & 0xffff) as usize;
    if tot_len < ihl || l3 + tot_len > pkt.len() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    match header_sum(pkt, &mut s.buf, l3, &s.hdr4w, ihl) {
        Some(sum) if checksum::fold(sum) == 0xffff => {}
        Some(_) => return pack(Action::Drop, Counter::DropBadIpv4Checksum),
        None => return pack(Action::Drop, Counter::DropMalformed),
    }
    // RFC 7915 §4.1.1: a fragment keeps its offset, MF and ID in an IPv6 fragment header.
    let flags = w1 as u16;
    let frag_off = flags & 0x1fff;
    let more = flags & 0x2000 != 0;
    let fragmented = frag_off != 0 || more;
    let first = frag_off == 0;
    let id = (w1 >> 16) as u16;
    let proto = (w2 >> 16) as u8;
    let p = Parsed {
        src,
        dst,
        ihl,
        tot_len,
        plen: tot_len - ihl,
        l4_in: l3 + ihl,
        flags,
        frag_off,
        more,
        fragmented,
        first,
        id,
        proto,
        ttl_in: (w2 >> 24) as u8,
        tos: (w0 >> 16) as u8,
    };
    protocol_and_source(pkt, g, s, p)
}

/// What the first step learnt of the IPv4 packet, handed to the next ones.
#[derive(Clone, Copy)]
struct Parsed {
    src: [u8; 4],
    dst: [u8; 4],
    /// Header and total length, the payload's length and where it starts.
    ihl: usize,
    tot_len: usize,
    plen: usize,
    l4_in: usize,
    /// Flags and fragment offset as the header has them, then taken apart.
    flags: u16,
    frag_off: u16,
    more: bool,
    fragmented: bool,
    first: bool,
    id: u16,
    proto: u8,
    /// The TTL as received, and the type of service.
    ttl_in: u8,
    tos: u8,
}

/// The IPv6 next header and the counter, the hop, an ICMPv4 error's hand-off to the
/// error stage, then the IPv6 source (the EAMT, the pool6 form).
#[inline(always)]
fn protocol_and_source<P: Packet>(pkt: &mut P, g: &Globals, s: &mut Scratch, p: Parsed) -> Verdict {
    let l3 = P::L2_LEN;
    let Parsed { src, dst, ihl, tot_len, frag_off, more, fragmented, first, id, proto, .. } = p;
    // From the general path the kernel has already taken this hop off (spec §7): give
    // it back, so that the hop counts once whichever way the packet leaves.
    let ttl = p.ttl_in.saturating_add(step::general_path_credit(pkt, g));
    let (nh, counter) = match proto {
        IPPROTO_TCP => (IPPROTO_TCP, Counter::Xlat4to6Tcp),
        IPPROTO_UDP => (IPPROTO_UDP, Counter::Xlat4to6Udp),
        // The ICMPv6 checksum needs the whole message's length, unknown to a fragment:
        // the held stage finishes it (TC). Errors are not translated in pieces.
        IPPROTO_ICMP if fragmented => {
            if P::XDP || (first && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4)) {
                return pack(Action::Drop, Counter::DropIcmpFragment);
            }
            held::note4(
                s,
                u32::from_ne_bytes(src) as u64 | (u32::from_ne_bytes(dst) as u64) << 32,
                id as u64,
                frag_off as u64 | (more as u64) << 16,
                (tot_len - ihl) as u64 | ((l3 + IPV6_HLEN + FRAG_HLEN + l4::ICMP_CHECK) as u64) << 32,
            );
            (IPPROTO_ICMPV6, Counter::Xlat4to6Icmp)
        }
        IPPROTO_ICMP => (IPPROTO_ICMPV6, Counter::Xlat4to6Icmp),
        // RFC 7915 §4.1: these exist only as IPv6 next headers.
        0 | 43 | 44 | IPPROTO_ICMPV6 | 60 => return pack(Action::Drop, Counter::DropV6OnlyProtocol),
        p => (p, Counter::Xlat4to6Other),
    };
    if ttl <= 1 {
        // Never an ICMP error in answer to an ICMP error (spec §6).
        if proto == IPPROTO_ICMP
            && first
            && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4)
        {
            return pack(Action::Drop, Counter::DropTtlExpired);
        }
        return pack(Action::Reply(icmp::ICMP4_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
    }

    // An ICMP error may come from a router without a mapping (RFC 6791): decide
    // before the source is required to map.
    if proto == IPPROTO_ICMP
        && first
        && pkt.load::<[u8; 2]>(l3 + ihl).map(|b| b[0]).is_some_and(icmp::is_error4)
    {
        return pack(Action::IcmpError, Counter::DropIcmpUntranslated);
    }
    if g.in_dyn_pool(src) {
        let eam_src = eamt4(g, src);
        match addr::map4to6_words(g, src, eam_src, eam_src.is_none() && denylisted4(src)) {
            Ok((a, _)) => s.src6w = a,
            Err(e) => return step::refuse(g, drop_reason(e), false),
        }
    } else {
        let Some(ms) = memo::v4(g, memo::SRC4, src) else {
            return pack(Action::Drop, Counter::DropInternal);
        };
        match ms.outcome() {
            0 => ms.to6_into(&mut s.src6w),
            o => return step::refuse_outcome(g, o, false),
        }
    }

    check_transport(pkt, g, s, p, nh, counter, ttl)
}

/// Everything that can refuse the packet, checked before the first write: the
/// transport header of a first fragment or whole packet, a zero UDP checksum.
#[inline(always)]
fn check_transport<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    p: Parsed,
    nh: u8,
    counter: Counter,
    ttl: u8,
) -> Verdict {
    let Parsed { plen, l4_in, more, fragmented, first, proto, .. } = p;
    let mut icmp_type = 0u8;
    let mut amend_udp = false;
    match if first { proto } else { 0 } {
        IPPROTO_TCP => {
            if (plen < 20 && !more) || pkt.ptr_at::<[u8; 20]>(l4_in).is_none() {
                return pack(Action::Drop, Counter::DropMalformed);
            }
        }
        IPPROTO_UDP => match pkt.ptr_at::<[u8; 8]>(l4_in).and_then(|_| pkt.load_word(l4_in + 4)) {
            Some(u) if plen >= 8 => {
                if u.to_ne_bytes()[2..4] == [0, 0] {
                    // RFC 7915 §4.5: compute it if the operator allows, else drop; a
                    // fragment does not hold the whole datagram to compute it from. The
                    // sender learns it as the kernel-module peer tells it: Destination
                    // Unreachable, Communication Administratively Prohibited (code 13).
                    if fragmented || !g.flag(Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO) {
                        return pack(
                            Action::Reply(icmp::ICMP4_DEST_UNREACH, 13, 0),
                            Counter::DropUdpChecksumZero,
                        );
                    }
                    if plen > l4::MAX_AMEND_UDP {
                        return pack(Action::Drop, Counter::DropTooBig);
                    }
                    amend_udp = true;
                }
            }
            _ => return pack(Action::Drop, Counter::DropMalformed),
        },
        IPPROTO_ICMP => match pkt.ptr_at::<[u8; 8]>(l4_in).and_then(|_| pkt.load::<[u8; 2]>(l4_in)) {
            Some(i) if plen >= 8 => match l4::icmp4_to_6(i[0]) {
                Some(t) => icmp_type = t,
                None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
            },
            _ => return pack(Action::Drop, Counter::DropMalformed),
        },
        _ => {}
    }

    write_ipv6(pkt, g, s, p, nh, counter, ttl, icmp_type, amend_udp)
}

/// The general path for what would leave as fragments, the route and the hop, then
/// the IPv6 header (and fragment header) in place of the IPv4 one and the transport
/// checksum fixed.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write_ipv6<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    p: Parsed,
    nh: u8,
    counter: Counter,
    ttl: u8,
    icmp_type: u8,
    amend_udp: bool,
) -> Verdict {
    let l3 = P::L2_LEN;
    let Parsed {
        src, dst, ihl, plen, l4_in, flags, frag_off, more, fragmented, first, id, proto, tos, ..
    } = p;
    let l3_new = if fragmented { IPV6_HLEN + FRAG_HLEN } else { IPV6_HLEN };
    // Without DF, RFC 7915 §4 wants IPv6 packets of at most lowest-ipv6-mtu: a longer
    // one leaves as fragments, cut by the kernel into the general path, whose route MTU
    // leaves room for translation (spec §2). Decided before the route is asked for.
    // ICMP too: its fragments cross through the held stage (`held`).
    let df = flags & 0x4000 != 0;
    let to_general_path = !df && g.general_ifindex != 0 && step::general_path_credit(pkt, g) == 0;
    if to_general_path && (l3_new + plen) as u32 > g.lowest_ipv6_mtu {
        return pack(Action::Pass, Counter::PassGeneralPath);
    }
    let mtu_len = forward::mtu_len(pkt, nh, l4_in, l3_new, l3_new + plen);
    let route = forward::lookup6w(pkt, &mut s.fib, &s.src6w, &s.dst6w, nh, mtu_len);
    forward::gro_mark::<P>(g, s, nh, plen);
    // One hop in total (spec §7): the kernel decrements when it forwards for us.
    let hop_limit = match route {
        Route::Out(_) => ttl - 1 + forward::gro_hop::<P>(s),
        // Without DF and too big for an egress smaller than lowest-ipv6-mtu: the same
        // (the general path's route MTU follows the smallest attached link).
        Route::TooBig(_) if to_general_path => return pack(Action::Pass, Counter::PassGeneralPath),
        // DF set and too big once translated: the sender learns the MTU that fits, the
        // IPv6 MTU less the 20 bytes the header grows by (as the kernel-module peer
        // says, a first fragment with DF included); a later fragment with DF is only
        // dropped (counted): its sender could not match an answer to a datagram.
        Route::TooBig(_) if df && !first => return pack(Action::Drop, Counter::DropMtuExceeded),
        Route::TooBig(mtu6) if df => {
            let mtu4 = mtu6.saturating_sub(20).clamp(68, 0xffff);
            return pack(Action::Reply(icmp::ICMP4_DEST_UNREACH, 4, mtu4), Counter::DropMtuExceeded);
        }
        // The kernel takes its hop off as it forwards. From the general path it already
        // took one: the node then counts two, so that a packet the routes would send
        // round the general path again runs out of hops instead of for ever.
        Route::Kernel | Route::TooBig(_) => ttl - step::general_path_credit(pkt, g),
    };
    let tc = if g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS) { 0 } else { tos };
    // The IPv6 header (and fragment header) as words.
    let next = if fragmented { EXT_FRAGMENT } else { nh };
    let payload = (l3_new - IPV6_HLEN + plen) as u16;
    s.hdr6w[0] = (0x6000_0000 | (tc as u32) << 20).to_be();
    s.hdr6w[1] = ((payload as u32) << 16 | (next as u32) << 8 | hop_limit as u32).to_be();
    s.hdr6w[2] = s.src6w[0];
    s.hdr6w[3] = s.src6w[1];
    s.hdr6w[4] = s.src6w[2];
    s.hdr6w[5] = s.src6w[3];
    s.hdr6w[6] = s.dst6w[0];
    s.hdr6w[7] = s.dst6w[1];
    s.hdr6w[8] = s.dst6w[2];
    s.hdr6w[9] = s.dst6w[3];
    let old = checksum::sum4(&src) + checksum::sum4(&dst);
    let new = words::sum(&s.src6w) + words::sum(&s.dst6w);

    s.frag6w = [((nh as u32) << 24 | (frag_off << 3 | more as u16) as u32).to_be(), (id as u32).to_be()];

    if pkt.resize_l3(ihl, l3_new, ETH_P_IPV6).is_err() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if pkt.truncate(l3 + l3_new + plen).is_err() || pkt.store_words(l3, &s.hdr6w).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if fragmented && pkt.store_words(l3 + IPV6_HLEN, &s.frag6w).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
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
        return pack(Action::Drop, Counter::DropInternal);
    }
    pack(
        if forward::gro_pass::<P>(s, route) { Action::Pass } else { finish(pkt, route, &s.fib, s.flow_hash) },
        counter,
    )
}
