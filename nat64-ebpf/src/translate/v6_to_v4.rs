//! IPv6 -> IPv4 (RFC 7915 §5).

use aya_ebpf::helpers::generated as h;
use nat64_common::{addr, checksum, counters::Counter, icmp, maps::Globals, words};

use super::{
    held, l4,
    lookup::{denylisted4, eamt4},
    memo,
    step::{self, drop_reason, finish},
};
use crate::{
    forward::{self, Route},
    hdr::{ETH_P_IP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN},
    maps::{AddrMemo, Hairpin, Scratch, scratch},
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

/// RFC 7915 §5.1: at most this many bytes, DF=0 with a fresh Identification.
pub const DF_THRESHOLD: usize = 1260;
/// Extension headers walked before giving up (hop-by-hop, destination options,
/// routing, destination options, fragment).
const MAX_EXT_HEADERS: usize = 5;
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_DEST_OPTS: u8 = 60;

/// RFC 7915 §5 in four steps: the header, its chain and the destination (here), then
/// [`nat_or_source`], [`check_transport`] and [`write_ipv4`], each handing what it
/// learnt ([`Parsed`]) to the next as its last act. Steps that returned their findings
/// to this function instead (a `Result`) made the verifier walk a quarter more paths.
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
    if pkt.load_words(l3, &mut s.hdr6w).is_none() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    // Version, traffic class, flow label; payload length, next header, hop limit.
    let w0 = u32::from_be(s.hdr6w[0]);
    let w1 = u32::from_be(s.hdr6w[1]);
    if w0 >> 28 != 6 {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    s.src6w = [s.hdr6w[2], s.hdr6w[3], s.hdr6w[4], s.hdr6w[5]];
    s.dst6w = [s.hdr6w[6], s.hdr6w[7], s.hdr6w[8], s.hdr6w[9]];

    // Is it ours? Multicast and the translator's own address go to the host.
    if s.dst6w[0].to_ne_bytes()[0] == 0xff {
        return pack(Action::Pass, Counter::PassV6NotOurs);
    }
    if g.has_ipv6_addr() && s.dst6w == g.ipv6_addr_words() {
        return pack(Action::Pass, Counter::PassOwnAddress);
    }
    let Some(md) = memo::v6(g, memo::DST6, &s.dst6w) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    let eam_dst = md.has(memo::EAM);
    if !eam_dst && !(g.pool6_len != 0 && words::in_pool6(&s.dst6w, &g.pool6_words(), g.pool6_len)) {
        return pack(Action::Pass, Counter::PassV6NotOurs);
    }

    let plen = (w1 >> 16) as usize;
    if l3 + IPV6_HLEN + plen > pkt.len() {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    let dst4 = match md.outcome() {
        0 => md.to4(),
        o => return step::refuse_outcome(g, o, true),
    };

    // From the general path the kernel has already taken this hop off (spec §7): give
    // it back, so that the hop counts once whichever way the packet leaves.
    let hop_limit = (w1 as u8).saturating_add(step::general_path_credit(pkt, g));
    // RFC 7915 §5.1: walk hop-by-hop, destination options, routing (segments left 0)
    // and fragment headers; they are not carried into IPv4.
    let mut nh = (w1 >> 8) as u8;
    let mut off = l3 + IPV6_HLEN;
    let mut frag: Option<[u8; 8]> = None;
    let mut done = false;
    for i in 0..MAX_EXT_HEADERS {
        match nh {
            EXT_HOP_BY_HOP | EXT_DEST_OPTS | EXT_ROUTING => {
                if nh == EXT_HOP_BY_HOP && i != 0 {
                    // RFC 8200 §4.1: hop-by-hop only directly after the IPv6 header.
                    return pack(Action::Drop, Counter::DropMalformed);
                }
                let e = match pkt.load::<[u8; 4]>(off) {
                    Some(e) => e,
                    None => return pack(Action::Drop, Counter::DropMalformed),
                };
                if nh == EXT_ROUTING && e[3] != 0 {
                    // RFC 7915 §5.1: Parameter Problem pointing at Segments Left.
                    let ptr = ((off - l3) & 0xffff) as u32 + 3;
                    return pack(
                        Action::Reply(icmp::ICMP6_PARAM_PROBLEM, 0, ptr),
                        Counter::DropRoutingHeader,
                    );
                }
                nh = e[0];
                off += (e[1] as usize + 1) * 8;
            }
            EXT_FRAGMENT => {
                match pkt.load::<[u8; 8]>(off) {
                    Some(f) => {
                        nh = f[0];
                        frag = Some(f);
                    }
                    None => return pack(Action::Drop, Counter::DropMalformed),
                }
                off += 8;
                done = true;
                break;
            }
            _ => {
                done = true;
                break;
            }
        }
    }
    if !done {
        return pack(Action::Drop, Counter::DropExtensionHeader);
    }
    let end = l3 + IPV6_HLEN + plen;
    if off > end {
        return pack(Action::Drop, Counter::DropMalformed);
    }
    // Bytes of the IPv6 header chain, and of what follows it.
    let chain = (off - l3) & 0xfff;
    let ulen = end - off;
    // Fragment offset (8-byte units) and More Fragments from the fragment header.
    let (frag_off, more) = match frag {
        Some(f) => (u16::from_be_bytes([f[2], f[3]]) >> 3, f[3] & 1 != 0),
        None => (0, false),
    };
    let first = frag_off == 0;
    // An ICMP echo in fragments needs two packets sent for one: not in XDP (`held`).
    if P::XDP && nh == IPPROTO_ICMPV6 && frag.is_some() && (more || !first) {
        return held::to_kernel(pkt, g);
    }

    let p = Parsed { w0, dst4, md, eam_dst, hop_limit, nh, off, frag, chain, ulen, frag_off, more, first };
    nat_or_source(pkt, g, s, p)
}

/// What the first step learnt of the IPv6 packet, handed to the next ones.
#[derive(Clone, Copy)]
struct Parsed {
    /// The header's first word (version, traffic class, flow label), host order.
    w0: u32,
    dst4: [u8; 4],
    md: &'static AddrMemo,
    /// The destination is an EAM entry's.
    eam_dst: bool,
    hop_limit: u8,
    /// The transport protocol, and where its header starts.
    nh: u8,
    off: usize,
    frag: Option<[u8; 8]>,
    /// Bytes of the IPv6 header chain, and of what follows it.
    chain: usize,
    ulen: usize,
    /// Fragment offset (8-byte units), More Fragments, and offset 0.
    frag_off: u16,
    more: bool,
    first: bool,
}

/// Stateful NAT64's hand-off to the NAT stage, an ICMPv6 error's to the error stage,
/// else the IPv4 source: the EAMT, the pool6 form, or a dynamic-pool address.
#[inline(always)]
fn nat_or_source<P: Packet>(pkt: &mut P, g: &Globals, s: &mut Scratch, p: Parsed) -> Verdict {
    let Parsed { dst4, hop_limit, nh, off, frag, chain, more, first, .. } = p;
    // Stateful NAT64: the NAT stage maps the source (BIB and session), or for an
    // ICMPv6 error the packet inside, and comes back with the pool4 address. What runs
    // out of hops is answered first, quoting the packet as the host sent it.
    if g.flag(Globals::FLAG_STATEFUL) && s.nat.flag == 0 {
        if hop_limit <= 1 {
            if nh == IPPROTO_ICMPV6 && pkt.load::<[u8; 2]>(off).map(|b| b[0]).is_some_and(icmp::is_error6) {
                return pack(Action::Drop, Counter::DropTtlExpired);
            }
            return pack(Action::Reply(icmp::ICMP6_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
        }
        let id = match frag {
            Some(f) => u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            None => 0,
        };
        // An established flow's packet is mapped here, in one pass (a BIB and a session
        // lookup); anything else takes the NAT stage.
        if frag.is_some()
            || super::nat::fast6(pkt, off as u64, nh as u64, u32::from_ne_bytes(dst4) as u64) == 0
        {
            // An atomic fragment (offset 0, no more to come: RFC 6946) is a whole
            // datagram to the NAT stage.
            let fragmented = frag.is_some() && (more || !first);
            s.nat.l4 = [
                off as u32,
                nh as u32 | (fragmented as u32) << 8 | (first as u32) << 9 | (hop_limit as u32) << 16,
                id,
            ];
            return pack(Action::Nat, Counter::DropNatUnsupported);
        }
    }
    // An ICMPv6 error may come from a router without a mapping (RFC 6791): decide
    // before the source is required to map.
    // An atomic fragment header (RFC 6946) before it is a whole message all the same.
    if nh == IPPROTO_ICMPV6
        && ((frag.is_none() && chain == IPV6_HLEN)
            || (frag.is_some() && first && !more && chain == IPV6_HLEN + 8))
        && pkt.load::<[u8; 2]>(off).map(|b| b[0]).is_some_and(icmp::is_error6)
    {
        return pack(Action::IcmpError, Counter::DropIcmpUntranslated);
    }
    let src4 = if s.nat.flag != 0 {
        s.nat.addr4
    } else {
        let Some(ms) = memo::v6(g, memo::SRC6, &s.src6w) else {
            return pack(Action::Drop, Counter::DropInternal);
        };
        // NAT64: a host the EAMT does not map may hold a pool address.
        let pooled = if !ms.has(memo::EAM) && g.flag(Globals::FLAG_DYNAMIC_POOL) {
            super::pool::lookup6(words::as_bytes(&s.src6w))
        } else {
            None
        };
        match (pooled, ms.outcome()) {
            (Some(e), _) => match addr::map6to4_words(g, &s.src6w, Some(e), denylisted4) {
                Ok((a, _)) => a,
                Err(e) => return step::refuse(g, drop_reason(e), true),
            },
            (None, 0) => ms.to4(),
            // NAT64: a host without a mapping gets a pool address, then comes back here.
            (None, o)
                if o == Counter::DropSrcUnmapped as u32 + 1
                    && !ms.has(memo::EAM)
                    && g.flag(Globals::FLAG_DYNAMIC_POOL) =>
            {
                return pack(Action::Alloc, Counter::DropSrcUnmapped);
            }
            (None, o) => return step::refuse_outcome(g, o, true),
        }
    };

    check_transport(pkt, g, s, p, src4)
}

/// The transport protocol and its header checked, everything that can refuse the
/// packet before the first write; the hairpin stage for what would come back as IPv6.
#[inline(always)]
fn check_transport<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    p: Parsed,
    src4: [u8; 4],
) -> Verdict {
    let l3 = P::L2_LEN;
    let Parsed { dst4, md, eam_dst, hop_limit, nh, off, frag, ulen, frag_off, more, first, .. } = p;
    let (proto, counter) = match nh {
        IPPROTO_TCP => (IPPROTO_TCP, Counter::Xlat6to4Tcp),
        IPPROTO_UDP => (IPPROTO_UDP, Counter::Xlat6to4Udp),
        // The ICMPv6 checksum covers a pseudo-header with the whole message's length,
        // which a fragment does not tell: the held stage finishes it (TC).
        IPPROTO_ICMPV6 if frag.is_some() && (more || !first) => {
            let Some(f) = frag.filter(|_| !P::XDP) else {
                return pack(Action::Drop, Counter::DropIcmpFragment);
            };
            held::note6(
                s,
                u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as u64,
                frag_off as u64 | (more as u64) << 16,
                ulen as u64 | ((l3 + IPV4_HLEN + l4::ICMP_CHECK) as u64) << 32,
            );
            (IPPROTO_ICMP, Counter::Xlat6to4Icmp)
        }
        IPPROTO_ICMPV6 => (IPPROTO_ICMP, Counter::Xlat6to4Icmp),
        // An extension header after the fragment header (RFC 7915 §5.1: dropped),
        // answered as §5.4 says for what is dropped: Destination Unreachable,
        // Communication Administratively Prohibited, as the kernel-module peer does.
        EXT_HOP_BY_HOP | EXT_DEST_OPTS | EXT_ROUTING | EXT_FRAGMENT => {
            return pack(Action::Reply(icmp::ICMP6_DEST_UNREACH, 1, 0), Counter::DropExtensionHeader);
        }
        p => (p, Counter::Xlat6to4Other),
    };
    if hop_limit <= 1 {
        // Never an ICMP error in answer to an ICMP error (spec §6).
        if nh == IPPROTO_ICMPV6 && pkt.load::<[u8; 2]>(off).map(|b| b[0]).is_some_and(icmp::is_error6) {
            return pack(Action::Drop, Counter::DropTtlExpired);
        }
        return pack(Action::Reply(icmp::ICMP6_TIME_EXCEEDED, 0, 0), Counter::DropTtlExpired);
    }

    // Everything that can refuse the packet is checked before the first write. Only
    // a first fragment (or a whole packet) carries the transport header.
    let l4_in = off;
    let mut icmp_type = 0u8;
    if first {
        match nh {
            IPPROTO_TCP => {
                if (ulen < 20 && !more) || pkt.ptr_at::<[u8; 20]>(l4_in).is_none() {
                    return pack(Action::Drop, Counter::DropMalformed);
                }
            }
            IPPROTO_UDP => match pkt.ptr_at::<[u8; 8]>(l4_in).and_then(|_| pkt.load_word(l4_in + 4)) {
                Some(u) if ulen >= 8 => {
                    if u.to_ne_bytes()[2..4] == [0, 0] {
                        // RFC 8200 §8.1: a zero UDP checksum is invalid in IPv6.
                        return pack(Action::Drop, Counter::DropUdpChecksumZero);
                    }
                }
                _ => return pack(Action::Drop, Counter::DropMalformed),
            },
            IPPROTO_ICMPV6 => match pkt.ptr_at::<[u8; 8]>(l4_in).and_then(|_| pkt.load::<[u8; 2]>(l4_in)) {
                Some(i) if ulen >= 8 => match l4::icmp6_to_4(i[0]) {
                    Some(t) => icmp_type = t,
                    None => return pack(Action::Drop, Counter::DropIcmpUntranslated),
                },
                _ => return pack(Action::Drop, Counter::DropMalformed),
            },
            _ => {}
        }
    }

    // RFC 7757 §4: to the pool6 form of an address an EAM entry maps back to IPv6,
    // the IPv4 packet would come straight back: the hairpin stage sends it on as IPv6 (a stage of its own: in this one its
    // branches multiplied the paths the verifier walks past its limit).
    if !eam_dst && (md.has(memo::BACK) || (g.in_dyn_pool(dst4) && maps_back_pooled(dst4) != 0)) {
        s.hairpin = Hairpin {
            src4: u32::from_ne_bytes(src4),
            dst4: u32::from_ne_bytes(dst4),
            off: off as u32,
            meta: nh as u32 | (first as u32) << 8 | (hop_limit as u32) << 16,
        };
        return pack(Action::Hairpin, Counter::XlatHairpin);
    }

    write_ipv4(pkt, g, s, p, src4, proto, counter, icmp_type)
}

/// The route and the hop, then the IPv4 header written in place of the IPv6 chain
/// and the transport checksum fixed.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write_ipv4<P: Packet>(
    pkt: &mut P,
    g: &Globals,
    s: &mut Scratch,
    p: Parsed,
    src4: [u8; 4],
    proto: u8,
    counter: Counter,
    icmp_type: u8,
) -> Verdict {
    let l3 = P::L2_LEN;
    let Parsed { w0, dst4, hop_limit, nh, off, frag, chain, ulen, frag_off, more, first, .. } = p;
    let l4_in = off;
    let tot_len = ulen + IPV4_HLEN;
    let tos = (w0 >> 20) as u8;
    // A pool address is private: what it sends goes through the kernel, whose NAT44
    // (masquerade) hides it behind the host's address.
    let mtu_len = forward::mtu_len(pkt, proto, l4_in, IPV4_HLEN, tot_len);
    let route = forward::lookup4(pkt, &mut s.fib, src4, dst4, tos, proto, mtu_len, g.in_dyn_pool(src4));
    forward::gro_mark::<P>(g, s, proto, ulen);
    // One hop in total (spec §7): the kernel decrements when it forwards for us.
    let ttl = match route {
        Route::Out(_) => hop_limit - 1 + forward::gro_hop::<P>(s),
        // Too big and the IPv4 packet would carry DF (spec §3): Packet Too Big with
        // the MTU the IPv6 sender must use. With DF=0 the kernel fragments it.
        Route::TooBig(mtu4) if frag.is_none() && tot_len > DF_THRESHOLD => {
            let mtu6 = (mtu4 + chain as u32 - IPV4_HLEN as u32).max(1280);
            return pack(Action::Reply(icmp::ICMP6_PACKET_TOO_BIG, 0, mtu6), Counter::DropMtuExceeded);
        }
        // A fragment (DF=0 once translated) too big for an IPv4 egress that can carry
        // what an IPv6 sender may be told (1280 - 20): Packet Too Big with the IPv4 MTU +
        // 20, as the kernel-module peer answers, so that the sender cuts its fragments to
        // fit rather than have them cut again. On a narrower egress no MTU the sender may
        // use would fit: the kernel fragments the translated fragment.
        Route::TooBig(mtu4) if frag.is_some() && mtu4 >= DF_THRESHOLD as u32 => {
            return pack(Action::Reply(icmp::ICMP6_PACKET_TOO_BIG, 0, mtu4 + 20), Counter::DropMtuExceeded);
        }
        // As in v4_to_v6: from the general path, the node counts two (no loop for ever).
        Route::Kernel | Route::TooBig(_) => hop_limit - step::general_path_credit(pkt, g),
    };
    let (id, flags) = match frag {
        // RFC 7915 §5.1.1: ID from the low 16 bits, MF and offset from the header.
        Some(f) => (u16::from_be_bytes([f[6], f[7]]), frag_off | if more { 0x2000 } else { 0 }),
        None if tot_len <= DF_THRESHOLD => (fresh_id(s), 0u16),
        None => (0u16, 0x4000u16),
    };
    // The IPv4 header as words; its checksum from the same words (the sum of their
    // 16-bit halves is the sum of the header's 16-bit words).
    let mut v4 = [
        (0x4500_0000 | (tos as u32) << 16 | tot_len as u16 as u32).to_be(),
        ((id as u32) << 16 | flags as u32).to_be(),
        ((ttl as u32) << 24 | (proto as u32) << 16).to_be(),
        u32::from_ne_bytes(src4),
        u32::from_ne_bytes(dst4),
    ];
    let sum = words::sum_word(v4[0])
        + words::sum_word(v4[1])
        + words::sum_word(v4[2])
        + words::sum_word(v4[3])
        + words::sum_word(v4[4]);
    v4[2] |= (checksum::finish(sum) as u32).to_be();
    s.hdr4w = v4;
    // The pseudo-header change, summed before the addresses are overwritten.
    let old = words::sum(&s.src6w) + words::sum(&s.dst6w);
    let new = checksum::sum4(&src4) + checksum::sum4(&dst4);

    if pkt.resize_l3(chain, IPV4_HLEN, ETH_P_IP).is_err() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if pkt.truncate(l3 + tot_len).is_err() || pkt.store_words(l3, &s.hdr4w).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }

    let l4 = l3 + IPV4_HLEN;
    let fixed = if !first {
        Some(())
    } else {
        match nh {
            IPPROTO_TCP => l4::fix_pseudo(pkt, l4 + l4::TCP_CHECK, old, new, false),
            IPPROTO_UDP => l4::fix_pseudo(pkt, l4 + l4::UDP_CHECK, old, new, true),
            IPPROTO_ICMPV6 => l4::fix_icmp_type(pkt, l4, icmp_type, old + l4::pseudo6_tail(ulen as u16), 0),
            _ => Some(()),
        }
    };
    if fixed.is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    pack(
        if forward::gro_pass::<P>(s, route) { Action::Pass } else { finish(pkt, route, &s.fib, s.flow_hash) },
        counter,
    )
}

/// A fresh Identification for an IPv4 packet that may be fragmented on its way
/// (RFC 7915 §5.1.1; RFC 6864 §4.2: it must not repeat soon between the same
/// addresses). This CPU's 16-bit counter, from a random start, through a permutation
/// of the 16-bit values keyed at random: no value repeats within 65,535 packets of one
/// CPU (a random draw repeats after a few hundred), 0 is never sent, and consecutive
/// values do not follow one another. Without bpf_get_prandom_u32's call on every
/// packet (about 1.5% of the CPU of a 64-byte flow through TC); that helper is a
/// per-CPU linear generator, no harder to predict.
#[inline(always)]
pub(super) fn fresh_id(s: &mut crate::maps::Scratch) -> u16 {
    let mut x = s.id_seq;
    if x == 0 {
        // Counter start (low half) and key (high half); 0 means not started.
        // SAFETY: helper without arguments.
        x = unsafe { h::bpf_get_prandom_u32() } | 1;
    }
    let key = (x >> 16) as u16;
    let mut c = (x as u16).wrapping_add(1);
    let mut id = permute16(c, key);
    if id == 0 {
        // The one counter value that maps to 0: the next one maps elsewhere.
        c = c.wrapping_add(1);
        id = permute16(c, key);
    }
    s.id_seq = (x & 0xffff_0000) | c as u32;
    id
}

/// A bijection of the 16-bit values chosen by `key`: each step (adding or xoring a
/// constant, multiplying by an odd one, xoring with a right shift of itself) is one.
#[inline(always)]
fn permute16(c: u16, key: u16) -> u16 {
    let mut z = c ^ key;
    z = z.wrapping_mul(0x9e37);
    z ^= z >> 7;
    z = z.wrapping_mul(0x2c1b);
    z ^= z >> 8;
    z.wrapping_add(key)
}

/// Whether an IPv4 destination maps back to IPv6 through a dynamic-pool host (1); an
/// EAM entry's is remembered (`memo::BACK`). (An IPv4-translatable destination goes
/// by the IPv4 routes: `0.0.0.0/0` would otherwise turn every pool6 destination back
/// into IPv6.) A subprogram: its branches are walked once per call rather than
/// multiplied. For a destination in the dynamic pool only: the caller asks
/// `in_dyn_pool` first (most destinations are not in the pool, and the call and
/// return cost more than that test).
#[inline(never)]
fn maps_back_pooled(dst4: [u8; 4]) -> u64 {
    super::pool::lookup4(dst4).is_some() as u64
}

/// The hairpin stage (RFC 7757 §4): the IPv6 packet whose addresses mapped to the
/// IPv4 source and destination in the scratch space's `hairpin` leaves as IPv6 again:
/// its destination is the IPv4 destination mapped back (EAM first), its source the
/// IPv4 source in its pool6 form, so that the reply takes the same way; the transport
/// checksum follows, the hop limit counts one hop.
#[inline(always)]
pub fn hairpin<P: Packet>(pkt: &mut P) -> Verdict {
    let (Some(g), Some(s)) = (crate::maps::globals(), scratch()) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    let l3 = P::L2_LEN;
    let Hairpin { src4, dst4, off, meta } = s.hairpin;
    // Bounded for the verifier, as the walk over the extension headers bounds it.
    let (s4, d4, off) = (src4.to_ne_bytes(), dst4.to_ne_bytes(), (off & 0xfff) as usize);
    let nh = meta as u8;
    let first = (meta >> 8) & 1 != 0;
    let hop_limit = (meta >> 16) as u8;
    if pkt.load_words(l3, &mut s.hdr6w).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    s.src6w = [s.hdr6w[2], s.hdr6w[3], s.hdr6w[4], s.hdr6w[5]];
    s.dst6w = [s.hdr6w[6], s.hdr6w[7], s.hdr6w[8], s.hdr6w[9]];
    let src6 = match addr::map4to6_words(g, s4, None, denylisted4(s4)) {
        Ok((a, _)) => a,
        Err(e) => return pack(Action::Drop, drop_reason(e)),
    };
    // Stateful NAT64 hairpinning (RFC 6146 §3.8): the NAT stage found the host.
    let dst6 = if s.nat.flag == 2 {
        s.nat.dst6
    } else {
        let eam = eamt4(g, d4);
        match addr::map4to6_words(g, d4, eam, eam.is_none() && denylisted4(d4)) {
            Ok((a, _)) => a,
            Err(e) => return pack(Action::Drop, drop_reason(e)),
        }
    };
    let old = words::sum(&s.src6w) + words::sum(&s.dst6w);
    let new = words::sum(&src6) + words::sum(&dst6);
    let plen = u32::from_be(s.hdr6w[1]) >> 16;
    let mtu_len = forward::mtu_len(pkt, nh, off, off - l3, plen as usize + IPV6_HLEN);
    let route = forward::lookup6w(pkt, &mut s.fib, &src6, &dst6, nh, mtu_len);
    let hl = match route {
        Route::Out(_) => hop_limit - 1,
        Route::TooBig(mtu) => {
            return pack(
                Action::Reply(icmp::ICMP6_PACKET_TOO_BIG, 0, mtu.max(1280)),
                Counter::DropMtuExceeded,
            );
        }
        Route::Kernel => hop_limit - step::general_path_credit(pkt, g),
    };
    s.src6w = src6;
    s.dst6w = dst6;
    let w1 = ((u32::from_be(s.hdr6w[1]) & !0xff) | hl as u32).to_be();
    if pkt.store_words(l3 + 4, &[w1]).is_none()
        || pkt.store_words(l3 + 8, &s.src6w).is_none()
        || pkt.store_words(l3 + 24, &s.dst6w).is_none()
    {
        return pack(Action::Drop, Counter::DropInternal);
    }
    let fixed = if !first {
        Some(())
    } else {
        match nh {
            IPPROTO_TCP => l4::fix_pseudo(pkt, off + l4::TCP_CHECK, old, new, false),
            IPPROTO_UDP => l4::fix_pseudo(pkt, off + l4::UDP_CHECK, old, new, true),
            IPPROTO_ICMPV6 => l4::fix_pseudo(pkt, off + 2, old, new, false),
            _ => Some(()),
        }
    };
    if fixed.is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    pack(finish(pkt, route, &s.fib, s.flow_hash), Counter::XlatHairpin)
}
