//! After translation: find the egress with the kernel's FIB and neighbour tables so
//! the packet can leave straight away (XDP_REDIRECT), or fall back to the stack.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        BPF_FIB_LOOKUP_SRC, bpf_fib_lookup,
    },
    helpers::generated as h,
};

use nat64_common::maps::Globals;

use crate::{
    hdr::{IPPROTO_TCP, IPPROTO_UDP},
    maps::{NEXTHOP_SLOTS, NEXTHOPS, NextHop, PORTS, Scratch, TX_PORTS},
    packet::Packet,
};

/// How long this CPU trusts a next hop it was given, in ticks of the kernel's clock
/// (jiffies): route and neighbour changes reach the fast path within this time at the
/// latest (nat64-ctl also bumps `NEXTHOP_GEN` on every route, neighbour, address and
/// link change it hears of). One second at 250 ticks a second (`CONFIG_HZ`), a quarter
/// of one at 1000, two and a half at 100. (A value the loader sets costs the verifier
/// 32 bytes of the ICMP error stages' stack, which they do not have.)
const NEXTHOP_TTL_TICKS: u64 = 250;

/// Words of `bpf_fib_lookup` that decide the FIB's answer: family, protocol and
/// source port (word 0), ingress ifindex (2), TOS or flow label (3), source (4-7) and
/// destination (8-11). Word 1 (destination port, total length) is checked apart.
const KEY_WORDS: [usize; 11] = [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Where the translated packet goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Known route and neighbour (MACs left in the scratch `fib`): rewrite MACs and
    /// redirect; this node decrements TTL.
    Out(u32),
    /// Anything else (no neighbour yet, local destination, unreachable): the
    /// kernel forwards it and decrements TTL itself, or answers with ICMP.
    Kernel,
    /// Larger than the egress MTU (given).
    TooBig(u32),
}

/// The length the egress MTU must take (the FIB lookup's `tot_len`): the packet's
/// (`tot_len`), or for a GSO packet (TC: merged by GRO, or sent by a local TCP with
/// offloads) each segment's: `l3_len` bytes of IP header, the transport header (TCP:
/// its data offset, read at `l4_off`; UDP: 8 bytes) and `gso_size` bytes of payload,
/// as the kernel's forwarding checks it. 0 (the kernel's to forward) for a GSO packet
/// of another transport.
#[inline(always)]
pub fn mtu_len<P: Packet>(pkt: &P, proto: u8, l4_off: usize, l3_len: usize, tot_len: usize) -> u16 {
    let gso = pkt.gso_size() as usize;
    if gso == 0 {
        return tot_len as u16;
    }
    let l4_len = match proto {
        IPPROTO_TCP => match pkt.load::<[u8; 2]>(l4_off + 12) {
            Some(b) if b[0] >> 4 >= 5 => (b[0] >> 4) as usize * 4,
            _ => return 0,
        },
        IPPROTO_UDP => 8,
        _ => return 0,
    };
    (l3_len + l4_len + gso).min(0xffff) as u16
}

/// `xdp-tcp-gro`: marks (in `s.gro_mark`) a translated packet XDP hands to the kernel
/// rather than send out itself: a TCP segment that carries data (`l4_len`, transport
/// header and payload, longer than the longest TCP header), so that the receive path's
/// GRO merges it with the rest of its flow and the kernel forwards them as one.
/// Handshakes, pure ACKs and everything else still leave by redirect.
///
/// The mark goes through the scratch map, and so does the length it tests, so that the
/// verifier knows neither: tested in registers, each would split the paths it walks
/// through the rest of the stage in two (past its budget). `gro_hop` and `gro_pass`
/// read the mark where it counts.
#[inline(always)]
pub fn gro_mark<P: Packet>(g: &Globals, s: &mut Scratch, proto: u8, l4_len: usize) {
    if !P::XDP {
        return;
    }
    // SAFETY: fields of the per-CPU scratch value; plain data.
    unsafe {
        core::ptr::write_volatile(&mut s.gro_mark, l4_len as u32);
        let bulk = proto == IPPROTO_TCP
            && g.flag(Globals::FLAG_XDP_TCP_GRO)
            && core::ptr::read_volatile(&s.gro_mark) > 60;
        core::ptr::write_volatile(&mut s.gro_mark, bulk as u32);
    }
}

/// The hop a marked packet leaves to the kernel's forwarding (1), which this program
/// would otherwise take off itself: added back to the hop limit of `Route::Out`.
#[inline(always)]
pub fn gro_hop<P: Packet>(s: &Scratch) -> u8 {
    if !P::XDP {
        return 0;
    }
    // SAFETY: a field of the per-CPU scratch value; plain data.
    (unsafe { core::ptr::read_volatile(&s.gro_mark) } & 1) as u8
}

/// Whether a marked packet with a route out goes to the kernel instead (XDP_PASS).
#[inline(always)]
pub fn gro_pass<P: Packet>(s: &Scratch, route: Route) -> bool {
    matches!(route, Route::Out(_)) && gro_hop::<P>(s) != 0
}

#[inline(always)]
fn run<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, via_kernel: bool) -> Route {
    // SAFETY: written by the caller (`mtu_len`): 0 for a GSO packet the kernel must
    // forward. (XDP knows no GSO: nothing more for its verifier to walk.)
    if via_kernel || (pkt.gso_size() != 0 && unsafe { p.__bindgen_anon_1.tot_len } == 0) {
        return Route::Kernel;
    }
    // The tick counter (ample for a one-second lifetime): the verifier turns the call
    // into one load of the kernel's variable, where bpf_ktime_get_coarse_ns is a call
    // (about 1% of the CPU of a 64-byte flow through TC).
    // SAFETY: helper call without arguments.
    let now = unsafe { h::bpf_jiffies64() };
    // Read before the lookup: an answer is kept under the generation it was asked in.
    let generation = crate::maps::nexthop_gen();
    let h = addr_hash(p);
    if !P::XDP
        && let Some(s) = crate::maps::scratch()
    {
        s.flow_hash = h;
    }
    let out = nexthop_cached(p, h, now, generation);
    if out & MISS == 0 {
        return Route::Out(out as u32);
    }
    let slot = out as u32;
    // SAFETY: helper call with a struct of the size the kernel expects.
    let rc = unsafe {
        h::bpf_fib_lookup(
            pkt.ctx_ptr(),
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    // From an L3 device too: the packet gets an Ethernet header for the egress (see
    // `translate::finish`), with the addresses the lookup or the cache gave.
    if rc == BPF_FIB_LKUP_RET_SUCCESS as i64 && redirect_target::<P>(p.ifindex) {
        nexthop_store(p, slot, now, generation);
        Route::Out(p.ifindex)
    } else if rc == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 && pkt.gso_size() == 0 {
        // Segments too big are the kernel's to answer (its forwarding checks each);
        // a whole packet's, the caller's.
        // SAFETY: the kernel wrote mtu_result for this return code.
        Route::TooBig(unsafe { p.__bindgen_anon_1.mtu_result } as u32)
    } else {
        Route::Kernel
    }
}

/// Whether this program may send the packet out of `ifindex` itself. TC hands the skb
/// to any port nat64-ctl attached to (bpf_redirect takes any device); XDP only to those
/// that take XDP frames (TX_PORTS): the kernel drops an XDP_REDIRECT into any other
/// after the program returned, so such packets go to the kernel, counted apart.
#[inline(always)]
fn redirect_target<P: Packet>(ifindex: u32) -> bool {
    if !P::XDP {
        return PORTS.get_ptr(&ifindex).is_some();
    }
    if TX_PORTS.get_ifindex(ifindex).is_some() {
        return true;
    }
    if PORTS.get_ptr(&ifindex).is_some()
        && let Some(s) = crate::maps::scratch()
    {
        s.no_xdp_xmit = 1;
    }
    false
}

/// The source and destination of the lookup in `p`, folded and mixed (read before
/// the lookup: it writes the gateway over the destination).
#[inline(always)]
fn addr_hash(p: &bpf_fib_lookup) -> u32 {
    let words = p as *const bpf_fib_lookup as *const u32;
    let mut h = 0u32;
    let mut i = 4;
    while i < 12 {
        // SAFETY: within the 64-byte struct.
        h ^= unsafe { core::ptr::read(words.add(i)) };
        i += 1;
    }
    h.wrapping_mul(0x9e37_79b1)
}

/// This CPU's cache slot for a lookup whose `addr_hash` is `h`.
#[inline(always)]
fn nexthop_slot(h: u32) -> u32 {
    (h >> 24) % NEXTHOP_SLOTS
}

fn nexthop(slot: u32) -> Option<&'static mut NextHop> {
    // SAFETY: this CPU's slot, used by this program run only.
    NEXTHOPS.get_ptr_mut(slot).map(|e| unsafe { &mut *e })
}

/// `nexthop_cached` found nothing: the low bits are the slot it prepared.
const MISS: u64 = 1 << 63;

/// The egress ifindex of a cached next hop for the lookup in `p` (its MACs written
/// there), or `MISS` and the slot. On a miss the slot takes the lookup's key (the
/// lookup overwrites some of its words: the egress ifindex, the route metric) and
/// stays invalid until `nexthop_store`. A subprogram of its own, without branches on
/// the key: inlined, its paths multiplied those the verifier walks through every
/// caller.
#[inline(never)]
fn nexthop_cached(p: &mut bpf_fib_lookup, h: u32, now: u64, generation: u64) -> u64 {
    let slot = nexthop_slot(h);
    let Some(e) = nexthop(slot) else { return MISS | NEXTHOP_SLOTS as u64 };
    let words = p as *const bpf_fib_lookup as *const u32;
    // SAFETY: within the 64-byte struct (KEY_WORDS < 16).
    let word = |i: usize| unsafe { core::ptr::read(words.add(i)) };
    // SAFETY: written by this program before the lookup.
    let tot_len = unsafe { p.__bindgen_anon_1.tot_len } as u32;
    let mut diff = 0u32;
    let mut i = 0;
    while i < KEY_WORDS.len() {
        diff |= e.key[i] ^ word(KEY_WORDS[i]);
        i += 1;
    }
    let stale = (e.stamp == 0) as u32
        | (e.generation != generation) as u32
        | (now.wrapping_sub(e.stamp) >= NEXTHOP_TTL_TICKS) as u32;
    if diff | stale == 0 && tot_len <= e.ok_len {
        p.ifindex = e.ifindex;
        p.smac = e.smac;
        p.dmac = e.dmac;
        return e.ifindex as u64;
    }
    let mut i = 0;
    while i < KEY_WORDS.len() {
        e.key[i] = word(KEY_WORDS[i]);
        i += 1;
    }
    // A new or outdated key starts again with no length known to fit.
    e.ok_len *= (diff | stale == 0) as u32;
    e.stamp = 0;
    MISS | slot as u64
}

/// Keeps the answer of a successful lookup (`p` after it) in the slot
/// `nexthop_cached` prepared.
#[inline(never)]
fn nexthop_store(p: &bpf_fib_lookup, slot: u32, now: u64, generation: u64) {
    let Some(e) = nexthop(slot) else { return };
    // SAFETY: tot_len is left by a successful lookup.
    let tot_len = unsafe { p.__bindgen_anon_1.tot_len } as u32;
    e.ok_len = e.ok_len.max(tot_len);
    e.ifindex = p.ifindex;
    e.smac = p.smac;
    e.dmac = p.dmac;
    e.generation = generation;
    e.stamp = now;
}

#[inline(always)]
fn clear(p: &mut bpf_fib_lookup) {
    // Eight volatile stores rather than a memset call (see Packet::load_into).
    let w = p as *mut bpf_fib_lookup as *mut u64;
    let mut i = 0;
    while i < core::mem::size_of::<bpf_fib_lookup>() / 8 {
        // SAFETY: within the struct; plain data.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
        i += 1;
    }
}

/// With `via_kernel` the packet goes to the kernel whatever the FIB says (for its
/// netfilter: a dynamic-pool source is masqueraded there).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn lookup4<P: Packet>(
    pkt: &P,
    p: &mut bpf_fib_lookup,
    src: [u8; 4],
    dst: [u8; 4],
    tos: u8,
    proto: u8,
    tot_len: u16,
    via_kernel: bool,
) -> Route {
    clear(p);
    p.family = AF_INET;
    p.l4_protocol = proto;
    p.__bindgen_anon_1.tot_len = tot_len;
    p.__bindgen_anon_2.tos = tos;
    p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
    p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    p.ifindex = pkt.ingress_ifindex();
    run(pkt, p, via_kernel)
}

/// `lookup6` for addresses held as words.
#[inline(always)]
pub fn lookup6w<P: Packet>(
    pkt: &P,
    p: &mut bpf_fib_lookup,
    src: &[u32; 4],
    dst: &[u32; 4],
    proto: u8,
    tot_len: u16,
) -> Route {
    clear(p);
    p.family = AF_INET6;
    p.l4_protocol = proto;
    p.__bindgen_anon_1.tot_len = tot_len;
    // The kernel reads the addresses as bytes in memory order, as the words hold them.
    p.__bindgen_anon_3.ipv6_src = *src;
    p.__bindgen_anon_4.ipv6_dst = *dst;
    p.ifindex = pkt.ingress_ifindex();
    run(pkt, p, false)
}

/// The MTU of the FIB's route to IPv4 `dst` (network order in memory), asked with a
/// length no route carries so that the lookup answers with the route's MTU;
/// `u32::MAX` when the FIB has no route. For RFC 7915's cap on a translated Packet Too
/// Big or Fragmentation Needed (`icmp::cap_mtu6`, `cap_mtu4`). Out of line, and
/// taking no array from its caller's stack: the error paths are at the verifier's
/// limits of instructions and stack.
#[inline(never)]
pub fn route_mtu4<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, dst: u32) -> u32 {
    to4(p, dst);
    route_mtu(pkt, p)
}

/// [`route_mtu4`] for an IPv6 destination.
#[inline(never)]
pub fn route_mtu6<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, dst: &[u8; 16]) -> u32 {
    to6(p, dst);
    route_mtu(pkt, p)
}

/// RFC 6791 without a pool: the address the kernel would send from towards IPv4
/// `dst` (its route's preferred source, `BPF_FIB_LOOKUP_SRC`), 0 when the FIB has no
/// route or no such address. Out of line, as [`route_mtu4`].
#[inline(never)]
pub fn source4<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, dst: u32) -> u32 {
    to4(p, dst);
    if !source_lookup(pkt, p) {
        return 0;
    }
    // SAFETY: written by the lookup with BPF_FIB_LOOKUP_SRC.
    unsafe { p.__bindgen_anon_3.ipv4_src }
}

/// [`source4`] for IPv6: the source written into `out`; false when there is none.
#[inline(never)]
pub fn source6<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, dst: &[u8; 16], out: &mut [u8; 16]) -> bool {
    to6(p, dst);
    if !source_lookup(pkt, p) {
        return false;
    }
    // SAFETY: 16 bytes from the 16-byte address field the lookup wrote; plain data.
    unsafe {
        core::ptr::copy_nonoverlapping(
            core::ptr::addr_of!(p.__bindgen_anon_3.ipv6_src).cast::<u8>(),
            out.as_mut_ptr(),
            16,
        )
    };
    true
}

/// A lookup of IPv4 `dst` alone in `p`.
#[inline(always)]
fn to4(p: &mut bpf_fib_lookup, dst: u32) {
    clear(p);
    p.family = AF_INET;
    p.__bindgen_anon_4.ipv4_dst = dst;
}

/// A lookup of IPv6 `dst` alone in `p` (copied from bytes: no array on the stack).
#[inline(always)]
fn to6(p: &mut bpf_fib_lookup, dst: &[u8; 16]) {
    clear(p);
    p.family = AF_INET6;
    // SAFETY: 16 bytes into the 16-byte address field; plain data.
    unsafe {
        core::ptr::copy_nonoverlapping(
            dst.as_ptr(),
            core::ptr::addr_of_mut!(p.__bindgen_anon_4.ipv6_dst).cast::<u8>(),
            16,
        )
    };
}

/// The lookup of [`source4`] / [`source6`]: the source is chosen once the route is
/// found, before the neighbour is looked for.
#[inline(always)]
fn source_lookup<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup) -> bool {
    let rc = fib(pkt, p, BPF_FIB_LOOKUP_SRC);
    rc == BPF_FIB_LKUP_RET_SUCCESS as i64 || rc == BPF_FIB_LKUP_RET_NO_NEIGH as i64
}

/// The lookup of [`route_mtu4`] / [`route_mtu6`]: asked for more than any route
/// carries, it answers FRAG_NEEDED with the route's MTU.
#[inline(always)]
fn route_mtu<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup) -> u32 {
    p.__bindgen_anon_1.tot_len = 0xffff;
    if fib(pkt, p, 0) == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 {
        // SAFETY: the kernel wrote mtu_result for this return code.
        unsafe { p.__bindgen_anon_1.mtu_result as u32 }
    } else {
        u32::MAX
    }
}

/// bpf_fib_lookup of `p` from the packet's ingress.
#[inline(always)]
fn fib<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, flags: u32) -> i64 {
    p.ifindex = pkt.ingress_ifindex();
    // SAFETY: helper call with a struct of the size the kernel expects.
    unsafe {
        h::bpf_fib_lookup(
            pkt.ctx_ptr(),
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            flags,
        )
    }
}

/// `lookup6w` for addresses held as bytes.
#[inline(always)]
pub fn lookup6<P: Packet>(
    pkt: &P,
    p: &mut bpf_fib_lookup,
    src: &[u8; 16],
    dst: &[u8; 16],
    proto: u8,
    tot_len: u16,
) -> Route {
    // SAFETY: both are 16 bytes of plain data, the words in memory order.
    let (src, dst) = unsafe {
        (core::mem::transmute::<[u8; 16], [u32; 4]>(*src), core::mem::transmute::<[u8; 16], [u32; 4]>(*dst))
    };
    lookup6w(pkt, p, &src, &dst, proto, tot_len)
}
