//! Transport checksum fix-ups (RFC 7915 §4.5, §5.5) and the ICMP echo type map.

use nat64_common::checksum;

use aya_ebpf::helpers::generated as h;

use crate::{hdr::IPPROTO_ICMPV6, maps::SUM_BUF, packet::Packet};

/// Offset of the checksum inside the L4 header.
pub const TCP_CHECK: usize = 16;
pub const UDP_CHECK: usize = 6;
pub const ICMP_CHECK: usize = 2;

/// Longest UDP datagram whose zero checksum the fast path computes.
pub const MAX_AMEND_UDP: usize = 1480;

/// ICMPv4 echo type -> ICMPv6 echo type (RFC 7915 §4.2); other types are not
/// translated by this data path.
#[inline(always)]
pub fn icmp4_to_6(t: u8) -> Option<u8> {
    match t {
        8 => Some(128),
        0 => Some(129),
        _ => None,
    }
}

/// ICMPv6 echo type -> ICMPv4 echo type (RFC 7915 §5.2).
#[inline(always)]
pub fn icmp6_to_4(t: u8) -> Option<u8> {
    match t {
        128 => Some(8),
        129 => Some(0),
        _ => None,
    }
}

/// Sum of the ICMPv6 pseudo-header's length and next-header words (RFC 8200 §8.1).
#[inline(always)]
pub fn pseudo6_tail(len: u16) -> u32 {
    len as u32 + IPPROTO_ICMPV6 as u32
}

/// Rewrites the ICMP type at `off` and its checksum: ICMPv6 covers a pseudo-header
/// that ICMPv4 does not, so `pseudo_out` is removed (6->4) or `pseudo_in` added (4->6).
#[inline(always)]
pub fn fix_icmp_type<P: Packet>(
    pkt: &mut P,
    off: usize,
    new_type: u8,
    pseudo_out: u32,
    pseudo_in: u32,
) -> Option<()> {
    let tc: [u8; 2] = pkt.load(off)?;
    let old_w = u16::from_be_bytes(tc) as u32;
    let new_w = u16::from_be_bytes([new_type, tc[1]]) as u32;
    pkt.store(off, new_type)?;
    fix_check(pkt, off + ICMP_CHECK, old_w + pseudo_out, new_w + pseudo_in, false)
}

/// Replaces the checksum at `off` for a pseudo-header whose sum went from `old` to
/// `new`. UDP keeps zero meaning "no checksum", so a computed zero is sent as ones.
#[inline(always)]
pub fn fix_check<P: Packet>(pkt: &mut P, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
    let c = u16::from_be_bytes(pkt.load::<[u8; 2]>(off)?);
    let mut n = checksum::update(c, old, new);
    if udp {
        n = checksum::udp_nonzero(n);
    }
    pkt.store(off, n.to_be_bytes())
}

/// `fix_check` for a TCP or UDP pseudo-header change: through the attach point, which
/// on TC lets the kernel account for partial checksums.
#[inline(always)]
pub fn fix_pseudo<P: Packet>(pkt: &mut P, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
    pkt.fix_pseudo_check(off, old, new, udp)
}

/// bpf_csum_diff works on at most this many bytes per call.
const CSUM_DIFF_MAX: usize = 512;

/// The longest message [`sum_long`] sums (a jumbo frame's).
pub const SUM_LONG_MAX: usize = 65535;
/// What one round of [`sum_long`] takes: one `bpf_csum_diff` call's worth.
const LONG_CHUNK: usize = CSUM_DIFF_MAX;

/// [`sum_long`]'s state, on its caller's stack, shared with each round.
#[repr(C)]
struct LongSum {
    /// The program's context (for the load helper of its kind).
    ctx: *mut core::ffi::c_void,
    xdp: u64,
    off: u64,
    len: u64,
    done: u64,
    seed: u64,
    failed: u64,
}

/// One round of [`sum_long`] (a `bpf_loop` callback): the next [`LONG_CHUNK`] bytes
/// into the scratch buffer and into the sum; 1 ends the loop. Kept short: the
/// verifier walks it at every call of the error stages.
extern "C" fn sum_round(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `sum_long` passes its `LongSum`.
    let c = unsafe { &mut *(c as *mut LongSum) };
    let Some(s) = crate::maps::scratch() else {
        c.failed = 1;
        return 1;
    };
    if c.done >= c.len {
        return 1;
    }
    let left = c.len - c.done;
    let want = if left > LONG_CHUNK as u64 { LONG_CHUNK as u32 } else { left as u32 };
    // Bounded and non-zero where the verifier sees it (as in `sum_bytes`).
    // SAFETY: reading a local.
    let n = unsafe { core::ptr::read_volatile(&want) } & (LONG_CHUNK as u32 * 2 - 1);
    if n == 0 || n > LONG_CHUNK as u32 {
        c.failed = 1;
        return 1;
    }
    // The last round may end short of a multiple of four: zero padding (RFC 1071).
    // SAFETY: `n + 4` <= SUM_BUF; an unaligned store into the scratch buffer.
    unsafe { core::ptr::write_unaligned(s.buf.as_mut_ptr().add(n as usize).cast::<u32>(), 0) };
    let off = (c.off + c.done) as u32;
    // SAFETY: helper calls on the program's own context; the kernel checks the range
    // against the packet, the verifier `n` against the buffer.
    let r = unsafe {
        if c.xdp != 0 {
            h::bpf_xdp_load_bytes(c.ctx.cast(), off, s.buf.as_mut_ptr().cast(), n)
        } else {
            h::bpf_skb_load_bytes(c.ctx.cast(), off, s.buf.as_mut_ptr().cast(), n)
        }
    };
    let m = (n + 3) & !3;
    // SAFETY: `m` <= LONG_CHUNK + 3 rounded down to four, within the buffer.
    let sum =
        unsafe { h::bpf_csum_diff(core::ptr::null_mut(), 0, s.buf.as_mut_ptr().cast(), m, c.seed as u32) };
    if r != 0 || sum < 0 {
        c.failed = 1;
        return 1;
    }
    c.seed = sum as u32 as u64;
    c.done += n as u64;
    (c.done >= c.len) as i64
}

/// [`sum_bytes`] for a message of any length a link carries (up to
/// [`SUM_LONG_MAX`]): summed in rounds of [`LONG_CHUNK`] bytes by `bpf_loop`, whose
/// callback the verifier checks once however many rounds it takes. The scratch
/// buffer is overwritten.
#[inline(always)]
pub fn sum_long<P: Packet>(pkt: &P, off: usize, len: usize) -> Option<u32> {
    if len > SUM_LONG_MAX {
        return None;
    }
    let mut c = LongSum {
        ctx: pkt.ctx_ptr(),
        xdp: P::XDP as u64,
        off: off as u64,
        len: len as u64,
        done: 0,
        seed: 0,
        failed: 0,
    };
    let rounds = len.div_ceil(LONG_CHUNK) as u32;
    // SAFETY: helper call with a callback of the kernel's signature and our state.
    let r = unsafe { h::bpf_loop(rounds, sum_round as *mut _, (&raw mut c).cast(), 0) };
    if r < 0 || c.failed != 0 || c.done != c.len {
        return None;
    }
    Some(checksum::fold(c.seed as u32).swap_bytes() as u32)
}

/// One's-complement sum (of big-endian words) of `len` packet bytes from `off`.
///
/// Copied to scratch memory and summed by bpf_csum_diff in at most three calls: a
/// byte loop would make the verifier walk every iteration on every path.
#[inline(always)]
pub fn sum_bytes<P: Packet>(pkt: &P, buf: &mut [u8; SUM_BUF], off: usize, len: usize) -> Option<u32> {
    if len > MAX_AMEND_UDP {
        return None;
    }
    // The helper needs a length the verifier knows is within the buffer (the mask)
    // and not zero (the test). The volatile read keeps LLVM from folding the test
    // into the earlier one on `len`, where the verifier would not see it.
    // SAFETY: reading a local.
    let n = unsafe { core::ptr::read_volatile(&(len as u32)) } & (SUM_BUF as u32 - 1);
    if n == 0 {
        return Some(0);
    }
    if !pkt.load_bytes(off, buf.as_mut_ptr(), n) {
        return None;
    }
    // Zero padding up to a multiple of four (RFC 1071 pads an odd byte with zero).
    for k in 0..3 {
        if let Some(b) = buf.get_mut((len & 0x7ff) + k) {
            *b = 0;
        }
    }
    let total = (len + 3) & !3;
    let mut seed: u32 = 0;
    let mut done = 0usize;
    for _ in 0..3 {
        let n = if total - done > CSUM_DIFF_MAX { CSUM_DIFF_MAX } else { total - done };
        if n == 0 || done > SUM_BUF - CSUM_DIFF_MAX {
            break;
        }
        // SAFETY: `done + n` <= SUM_BUF, checked above; sizes are multiples of four.
        let r = unsafe {
            h::bpf_csum_diff(core::ptr::null_mut(), 0, buf.as_mut_ptr().add(done).cast(), n as u32, seed)
        };
        if r < 0 {
            return None;
        }
        seed = r as u32;
        done += n;
    }
    // The helper sums native-endian (little-endian) words; the folded sum of
    // byte-swapped words is the byte-swapped sum.
    Some(checksum::fold(seed).swap_bytes() as u32)
}
