//! ICMP errors the translator sends itself (spec §6): Time Exceeded when the hop
//! limit runs out here, Packet Too Big / Fragmentation Needed when the translated
//! packet cannot leave, Parameter Problem for a routing header with segments left.
//! Built in place around the offending packet and sent back out (XDP_TX), from the
//! translator's own address of the sender's family, rate-limited per CPU.
//!
//! ```text
//! [eth][offending packet ...]  ->  [eth, MACs swapped][IP][ICMP 8][offending packet, cut]
//! ```

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    checksum,
    counters::Counter,
    icmp,
    maps::{Globals, ICMP_ERRORS_BURST, ICMP_ERRORS_PER_SEC},
};

use super::l4;
use crate::{
    counters::bump,
    forward,
    hdr::{ETH_P_IP, ETH_P_IPV6, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN},
    maps::{NAT_ADDRS, RATELIMIT, scratch},
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

const EXT_FRAGMENT: u8 = 44;
const MAX_ICMP6_ERROR: usize = 1280;
const MAX_ICMP4_ERROR: usize = 576;
const NS: u64 = 1_000_000_000;

/// Token bucket: ICMP_ERRORS_PER_SEC per CPU, bursts of ICMP_ERRORS_BURST. Tokens are
/// kept in nanotokens so the refill is exact integer arithmetic.
#[inline(always)]
fn allow() -> bool {
    let b = match RATELIMIT.get_ptr_mut(0) {
        Some(b) => b,
        None => return false,
    };
    // SAFETY: this CPU's slot; helper without arguments.
    unsafe {
        let now = h::bpf_ktime_get_ns();
        let elapsed = now.saturating_sub((*b)[1]).min(NS);
        let tokens = ((*b)[0] + elapsed * ICMP_ERRORS_PER_SEC).min(ICMP_ERRORS_BURST * NS);
        (*b)[1] = now;
        if tokens < NS {
            (*b)[0] = tokens;
            return false;
        }
        (*b)[0] = tokens - NS;
    }
    true
}

/// RFC 4443 §2.4 (e): never an error about an ICMPv6 error (right after the header or
/// after a first fragment's header), nor to a source that is not one node (the
/// unspecified address, multicast, loopback) or is the translator's own.
#[inline(always)]
fn answerable6<P: Packet>(pkt: &P, g: &Globals) -> bool {
    let l3 = P::L2_LEN;
    let (Some(h), Some(src)) = (pkt.load::<[u8; 8]>(l3), pkt.load::<[u8; 16]>(l3 + 8)) else {
        return false;
    };
    if src[0] == 0xff
        || src == [0; 16]
        || src == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        || (g.has_ipv6_addr() && src == g.ipv6_addr)
    {
        return false;
    }
    let (nh, at) = match h[6] {
        EXT_FRAGMENT => match pkt.load::<[u8; 4]>(l3 + IPV6_HLEN) {
            Some(f) if u16::from_be_bytes([f[2], f[3]]) & 0xfff8 == 0 => (f[0], l3 + IPV6_HLEN + 8),
            Some(_) => return true,
            None => return false,
        },
        nh => (nh, l3 + IPV6_HLEN),
    };
    nh != IPPROTO_ICMPV6 || pkt.load::<[u8; 1]>(at).is_some_and(|t| !icmp::is_error6(t[0]))
}

/// RFC 1812 §4.3.2.7: never an error about an ICMP error, about a packet whose header
/// checksum is wrong, or to a source that is not one host (0/8, 127/8, 224/3) or is the
/// translator's own; with `initial_only`, nor about a fragment other than the first.
#[inline(always)]
fn answerable4<P: Packet>(pkt: &P, g: &Globals, initial_only: bool) -> bool {
    let l3 = P::L2_LEN;
    let Some(h) = pkt.load::<[u8; IPV4_HLEN]>(l3) else {
        return false;
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    let src = [h[12], h[13], h[14], h[15]];
    if src[0] == 0
        || src[0] == 127
        || src[0] >= 224
        || ihl < IPV4_HLEN
        || (g.has_ipv4_addr() && src == g.ipv4_addr)
    {
        return false;
    }
    if initial_only && u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
        return false;
    }
    // The header checksum, options included (at most ten words of them).
    let mut sum = checksum::add_bytes(0, &h);
    for i in 0..10 {
        let at = IPV4_HLEN + 4 * i;
        if at >= ihl {
            break;
        }
        match pkt.load::<[u8; 4]>(l3 + at) {
            Some(w) => sum = checksum::add_bytes(sum, &w),
            None => return false,
        }
    }
    if checksum::fold(sum) != 0xffff {
        return false;
    }
    h[9] != IPPROTO_ICMP || pkt.load::<[u8; 1]>(l3 + ihl).is_some_and(|t| !icmp::is_error4(t[0]))
}

#[inline(always)]
fn swap_macs<P: Packet>(pkt: &mut P) -> Option<()> {
    if !P::HAS_ETH {
        // An L3 device: the reply goes back out of it as it is.
        return Some(());
    }
    let m: [u8; 12] = pkt.load(0)?;
    pkt.store(0, [m[6], m[7], m[8], m[9], m[10], m[11], m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// Answers an IPv6 packet with an ICMPv6 error; `v` is the engine's packed request.
#[inline(never)]
pub fn icmp6<P: Packet>(pkt: &mut P, g: &Globals, v: Verdict) -> Verdict {
    let (action, counter) = v.unpack();
    let (typ, code, rest) = match action {
        Action::Reply(t, c, r) => (t, c, r),
        _ => return pack(Action::Drop, Counter::DropInternal),
    };
    if !answerable6(pkt, g) {
        return pack(Action::Drop, counter);
    }
    if !source6(pkt, g) {
        bump(Counter::IcmpNoSource, 0);
        return pack(Action::Drop, counter);
    }
    if !allow() {
        bump(Counter::IcmpRateLimited, 0);
        return pack(Action::Drop, counter);
    }
    match build6(pkt, typ, code, rest) {
        Some(()) => {
            bump(Counter::IcmpSent, pkt.len());
            pack(Action::Tx, counter)
        }
        None => pack(Action::Drop, Counter::DropInternal),
    }
}

/// Where an ICMPv6 error comes from, left in `Scratch::src6`: the translator's own
/// `ipv6-addr`, else the address the kernel would send from towards the packet's
/// sender (its route's preferred source); false with neither.
#[inline(always)]
fn source6<P: Packet>(pkt: &P, g: &Globals) -> bool {
    let Some(s) = scratch() else { return false };
    if g.has_ipv6_addr() {
        s.src6 = g.ipv6_addr;
        return true;
    }
    match pkt.load::<[u8; 16]>(P::L2_LEN + 8) {
        Some(to) => {
            s.dst6 = to;
            forward::source6(pkt, &mut s.fib, &s.dst6, &mut s.src6)
        }
        None => false,
    }
}

#[inline(always)]
fn build6<P: Packet>(pkt: &mut P, typ: u8, code: u8, rest: u32) -> Option<()> {
    let l3 = P::L2_LEN;
    let s = scratch()?;
    pkt.load_into(l3, &mut s.hdr6)?;
    s.dst6.copy_from_slice(&s.hdr6[8..24]);
    let plen = u16::from_be_bytes([s.hdr6[4], s.hdr6[5]]) as usize;
    let mut orig = pkt.len() - l3;
    if orig > IPV6_HLEN + plen {
        orig = IPV6_HLEN + plen;
    }
    let mut out_len = IPV6_HLEN + ICMP_HLEN + orig;
    if out_len > MAX_ICMP6_ERROR {
        out_len = MAX_ICMP6_ERROR;
    }
    let v6 = &mut s.hdr6;
    v6[0] = 0x60;
    v6[1] = 0;
    v6[2] = 0;
    v6[3] = 0;
    v6[4..6].copy_from_slice(&((out_len - IPV6_HLEN) as u16).to_be_bytes());
    v6[6] = IPPROTO_ICMPV6;
    v6[7] = 64;
    v6[8..24].copy_from_slice(&s.src6);
    v6[24..40].copy_from_slice(&s.dst6);
    let r = rest.to_be_bytes();
    s.err.icmp = [typ, code, 0, 0, r[0], r[1], r[2], r[3]];

    pkt.resize_l3(0, IPV6_HLEN + ICMP_HLEN, ETH_P_IPV6).ok()?;
    pkt.truncate(l3 + out_len).ok()?;
    pkt.store_from(l3, &s.hdr6)?;
    pkt.store(l3 + IPV6_HLEN, s.err.icmp)?;
    let msg = out_len - IPV6_HLEN;
    let sum = l4::sum_bytes(pkt, &mut s.buf, l3 + IPV6_HLEN, msg)?;
    let pseudo = checksum::sum16(&s.src6) + checksum::sum16(&s.dst6) + l4::pseudo6_tail(msg as u16);
    pkt.store(l3 + IPV6_HLEN + 2, checksum::finish(sum + pseudo).to_be_bytes())?;
    swap_macs(pkt)
}

/// Answers an IPv4 packet with an ICMPv4 error.
#[inline(never)]
pub fn icmp4<P: Packet>(pkt: &mut P, g: &Globals, v: Verdict) -> Verdict {
    let (action, counter) = v.unpack();
    let (typ, code, rest) = match action {
        Action::Reply(t, c, r) => (t, c, r),
        _ => return pack(Action::Drop, Counter::DropInternal),
    };
    // RFC 1812 §4.3.2.7: not about a fragment other than the first. (Time Exceeded
    // and the others are asked for where that is known.)
    if !answerable4(pkt, g, typ == icmp::ICMP4_DEST_UNREACH && code == 13) {
        return pack(Action::Drop, counter);
    }
    let Some(from) = source4(pkt, g) else {
        bump(Counter::IcmpNoSource, 0);
        return pack(Action::Drop, counter);
    };
    if !allow() {
        bump(Counter::IcmpRateLimited, 0);
        return pack(Action::Drop, counter);
    }
    match build4(pkt, from, typ, code, rest) {
        Some(()) => {
            bump(Counter::IcmpSent, pkt.len());
            pack(Action::Tx, counter)
        }
        None => pack(Action::Drop, Counter::DropInternal),
    }
}

/// Where an ICMPv4 error about the packet comes from: in stateful NAT64, about a packet
/// sent to a pool4 address, that address (the one its sender talked to, RFC 6146 §3.5);
/// else the translator's own `ipv4-addr`, else the address the kernel would send from
/// towards the sender (its route's preferred source).
#[inline(always)]
fn source4<P: Packet>(pkt: &P, g: &Globals) -> Option<[u8; 4]> {
    if g.flag(Globals::FLAG_STATEFUL)
        && let Some(dst) = pkt.load::<[u8; 4]>(P::L2_LEN + 16)
        && NAT_ADDRS.get_ptr(&dst).is_some()
    {
        return Some(dst);
    }
    if g.has_ipv4_addr() {
        return Some(g.ipv4_addr);
    }
    let to = pkt.load::<[u8; 4]>(P::L2_LEN + 12)?;
    let s = scratch()?;
    match forward::source4(pkt, &mut s.fib, u32::from_ne_bytes(to)) {
        0 => None,
        a => Some(a.to_ne_bytes()),
    }
}

#[inline(always)]
fn build4<P: Packet>(pkt: &mut P, from: [u8; 4], typ: u8, code: u8, rest: u32) -> Option<()> {
    let l3 = P::L2_LEN;
    let s = scratch()?;
    pkt.load_into(l3, &mut s.hdr4)?;
    let to = [s.hdr4[12], s.hdr4[13], s.hdr4[14], s.hdr4[15]];
    let tot = u16::from_be_bytes([s.hdr4[2], s.hdr4[3]]) as usize;
    let mut orig = pkt.len() - l3;
    if orig > tot {
        orig = tot;
    }
    let mut out_len = IPV4_HLEN + ICMP_HLEN + orig;
    if out_len > MAX_ICMP4_ERROR {
        out_len = MAX_ICMP4_ERROR;
    }
    // SAFETY: helper without arguments.
    let id = unsafe { h::bpf_get_prandom_u32() } as u16 | 1;
    let v4 = &mut s.hdr4;
    v4[0] = 0x45;
    v4[1] = 0;
    v4[2..4].copy_from_slice(&(out_len as u16).to_be_bytes());
    v4[4..6].copy_from_slice(&id.to_be_bytes());
    v4[6] = 0;
    v4[7] = 0;
    v4[8] = 64;
    v4[9] = IPPROTO_ICMP;
    v4[10] = 0;
    v4[11] = 0;
    v4[12..16].copy_from_slice(&from);
    v4[16..20].copy_from_slice(&to);
    let c = checksum::finish(checksum::add_bytes(0, v4)).to_be_bytes();
    v4[10] = c[0];
    v4[11] = c[1];
    let r = rest.to_be_bytes();
    s.err.icmp = [typ, code, 0, 0, r[0], r[1], r[2], r[3]];

    pkt.resize_l3(0, IPV4_HLEN + ICMP_HLEN, ETH_P_IP).ok()?;
    pkt.truncate(l3 + out_len).ok()?;
    pkt.store_from(l3, &s.hdr4)?;
    pkt.store(l3 + IPV4_HLEN, s.err.icmp)?;
    let sum = l4::sum_bytes(pkt, &mut s.buf, l3 + IPV4_HLEN, out_len - IPV4_HLEN)?;
    pkt.store(l3 + IPV4_HLEN + 2, checksum::finish(sum).to_be_bytes())?;
    swap_macs(pkt)
}
