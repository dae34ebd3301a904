//! What both directions of the ICMP error stages share: the subprograms their steps
//! call and the RFC 4884 extension's move.

use nat64_common::{addr, icmp, maps::Globals, rfc6052};

use crate::{
    hdr::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
    maps::{NAT_ADDRS, SUM_BUF, scratch},
    packet::Packet,
    translate::{
        l4,
        lookup::{denylisted4, eamt4, eamt6},
    },
};

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
pub(super) fn map4to6_into(g: &Globals, a: u32, out: &mut [u8; 16], pool6_form: u64) -> u64 {
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
pub(super) const NAT_HOST: u64 = 2;

/// 1 when the EAMT maps the IPv4 address `a`, else 0.
#[inline(never)]
pub(super) fn eam4(g: &Globals, a: u32) -> u64 {
    eamt4(g, a.to_be_bytes()).is_some() as u64
}

/// `map6to4` for the error path: `1 << 32 | address`, or 0 when untranslatable. With
/// `nat` (`NAT_HOST`), a packet the stateful NAT stage mapped takes the pool4 address
/// that stage found instead.
#[inline(never)]
pub(super) fn map6to4_sub(
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
pub(super) fn sum_sub<P: Packet>(pkt: &P, buf: &mut [u8; SUM_BUF], off: usize, len: usize) -> u64 {
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
pub(super) fn sum_in<P: Packet>(pkt: &P, off: usize, len: usize) -> u64 {
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
pub(super) fn save_extension<P: Packet>(pkt: &P, off: usize) -> bool {
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
pub(super) fn place_extension<P: Packet>(pkt: &mut P, at: usize) -> bool {
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
pub(super) fn helper_len(v: &u32, size: usize) -> u32 {
    // A read of map memory the compiler cannot see through: the bounds below stay.
    // SAFETY: a valid, aligned reference.
    let n = unsafe { core::ptr::read_volatile(v) };
    if n == 0 || n as usize > size {
        return 0;
    }
    1 + (n.wrapping_sub(1) & (size as u32 - 1))
}

#[inline(always)]
pub(super) fn sum_of(v: u64) -> Option<u32> {
    if v >> 32 == 1 { Some(v as u32) } else { None }
}

/// The transport checksum of the packet inside an error, for its new addresses. The
/// field may have been cut off by the router that sent the error: then nothing is done.
/// `sums` packs the old and new address sums (old in the low half); `meta` the
/// protocol, the quoted ICMP message length and the direction (five arguments at most).
/// `end`: where the quoted datagram ends (an RFC 4884 extension may follow it).
#[inline(never)]
pub(super) fn fix_inner_l4<P: Packet>(pkt: &mut P, at: usize, sums: u64, meta: u64, end: usize) -> u64 {
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
