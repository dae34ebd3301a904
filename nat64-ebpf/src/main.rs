//! nat64 kernel programs. Entry points only pick the context and call the engine.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod translate;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::{TC_ACT_OK, xdp_action},
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };

    use crate::{
        counters,
        packet::{ETH_LEN, TcPacket, XdpPacket},
        translate,
    };

    /// The translator on an Ethernet device (native or generic XDP).
    #[xdp]
    pub fn nat64_xdp(ctx: XdpContext) -> u32 {
        let mut pkt = XdpPacket::new(&ctx);
        let (action, counter, len) = translate::process(&mut pkt);
        counters::record(counter, action, len);
        action.xdp()
    }

    /// The translator as a TC (TCX ingress) program on an Ethernet device.
    #[classifier]
    pub fn nat64_tc(ctx: TcContext) -> i32 {
        tc::<ETH_LEN>(&ctx)
    }

    /// The translator as a TC (TCX ingress) program on an L3 device (WireGuard, TUN):
    /// packets start with the IP header.
    #[classifier]
    pub fn nat64_tc_l3(ctx: TcContext) -> i32 {
        tc::<0>(&ctx)
    }

    #[inline(always)]
    fn tc<const L2: usize>(ctx: &TcContext) -> i32 {
        // The whole packet in the linear area, so that the engine sees it as XDP would.
        if ctx.skb.pull_data(ctx.len()).is_err() {
            return TC_ACT_OK as i32;
        }
        let mut pkt = TcPacket::<L2>::new(ctx);
        let (action, counter, len) = translate::process(&mut pkt);
        counters::record(counter, action, len);
        action.tc(pkt.ifindex())
    }

    /// Benchmark baseline: the least an XDP program can do with a packet (swap the
    /// MAC addresses and send it back out).
    #[xdp]
    pub fn nat64_bench_baseline(ctx: XdpContext) -> u32 {
        let start = ctx.data();
        if start + 12 > ctx.data_end() {
            return xdp_action::XDP_PASS;
        }
        let p = start as *mut [u8; 6];
        // SAFETY: 12 bytes were bounds-checked above.
        unsafe {
            let dst = core::ptr::read_unaligned(p);
            let src = core::ptr::read_unaligned(p.add(1));
            core::ptr::write_unaligned(p, src);
            core::ptr::write_unaligned(p.add(1), dst);
        }
        xdp_action::XDP_TX
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
