//! After translation: find the egress with the kernel's FIB and neighbour tables so
//! the packet can leave straight away (XDP_REDIRECT), or fall back to the stack.

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup},
    helpers::generated as h,
};

use crate::{maps::TX_PORTS, packet::Packet};

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

#[inline(always)]
fn run<P: Packet>(pkt: &P, p: &mut bpf_fib_lookup, via_kernel: bool) -> Route {
    // A packet merged by GRO (TC only) leaves as segments the kernel cuts: its forward
    // path checks each against the egress MTU (and answers with ICMP itself), which
    // the total length asked here would not tell.
    if via_kernel || pkt.gso_size() != 0 {
        return Route::Kernel;
    }
    // SAFETY: helper call with a struct of the size the kernel expects.
    let rc = unsafe {
        h::bpf_fib_lookup(
            pkt.ctx_ptr(),
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    // On an L3 device the kernel sends the packet on (it frames it for the egress);
    // the lookup is still asked for the egress MTU.
    if rc == BPF_FIB_LKUP_RET_SUCCESS as i64 && P::HAS_ETH && TX_PORTS.get_ifindex(p.ifindex).is_some() {
        Route::Out(p.ifindex)
    } else if rc == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 {
        // SAFETY: the kernel wrote mtu_result for this return code.
        Route::TooBig(unsafe { p.__bindgen_anon_1.mtu_result } as u32)
    } else {
        Route::Kernel
    }
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

#[inline(always)]
pub fn lookup6<P: Packet>(
    pkt: &P,
    p: &mut bpf_fib_lookup,
    src: &[u8; 16],
    dst: &[u8; 16],
    proto: u8,
    tot_len: u16,
) -> Route {
    clear(p);
    p.family = AF_INET6;
    p.l4_protocol = proto;
    p.__bindgen_anon_1.tot_len = tot_len;
    // SAFETY: both are 16 bytes of plain data.
    unsafe {
        p.__bindgen_anon_3.ipv6_src = core::mem::transmute::<[u8; 16], [u32; 4]>(*src);
        p.__bindgen_anon_4.ipv6_dst = core::mem::transmute::<[u8; 16], [u32; 4]>(*dst);
    }
    p.ifindex = pkt.ingress_ifindex();
    run(pkt, p, false)
}
