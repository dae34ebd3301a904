//! nat64 kernel programs. Entry points only pick the context and call the engine.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod atomic;
#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod hdr;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod sweep;
#[cfg(target_arch = "bpf")]
mod sync_import;
#[cfg(target_arch = "bpf")]
mod translate;
#[cfg(target_arch = "bpf")]
mod verdict;

#[cfg(target_arch = "bpf")]
mod programs {
    use core::ffi::c_void;

    use aya_ebpf::{
        EbpfContext,
        bindings::{TC_ACT_OK, xdp_action},
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };
    use nat64_common::counters::Counter;

    use crate::{
        hdr::ETH_LEN,
        maps::{JUMP_TC, JUMP_TC_L3, JUMP_XDP, TX_PORTS},
        packet::{HELD_MARK, PULL_HEADERS, TcPacket, XdpPacket},
        translate::{self, Step},
        verdict::{Action, KIND_TX, Verdict, pack},
    };

    /// bpf_tail_call with the index as an immediate at its own call site. The JIT
    /// turns a tail call whose index the verifier knows to be one constant into a
    /// direct jump; with an index that differs between paths (LLVM merges the calls
    /// of `ProgramArray::tail_call` into one) it jumps through a retpoline, which
    /// measured about 20 ns a packet here. LLVM never merges inline assembly.
    ///
    /// # Safety
    /// `ctx` is the program's context and `table` a program array map.
    #[inline(always)]
    unsafe fn tail_call(ctx: *mut c_void, table: *const c_void, i: u32) {
        macro_rules! at {
            ($($n:literal),*) => {
                match i {
                    $(
                        // SAFETY: helper 12 (bpf_tail_call) with the context, the map and
                        // an index; it returns only when the slot is empty.
                        $n => unsafe {
                            core::arch::asm!(
                                concat!("r3 = ", $n),
                                "call 12",
                                inout("r1") ctx => _,
                                inout("r2") table => _,
                                out("r0") _, out("r3") _, out("r4") _, out("r5") _,
                            )
                        },
                    )*
                    _ => {}
                }
            };
        }
        at!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    }
    const _: () = assert!(nat64_common::stages::COUNT == 11, "one call site per stage in tail_call");

    /// A stage's end: its verdict, or the tail call to the next stage. Should the
    /// jump table lack the stage, nothing has been changed yet: the packet passes,
    /// counted as `pass_stage_missing`.
    #[inline(always)]
    fn run_xdp(ctx: &XdpContext, step: Step) -> u32 {
        match step {
            Step::Finish(v) => Verdict::xdp(translate::conclude(v)),
            Step::Jump(i) => {
                // SAFETY: the context is the program's own.
                unsafe { tail_call(ctx.as_ptr(), (&raw const JUMP_XDP).cast(), i) };
                Verdict::xdp(translate::conclude(pack(Action::Pass, Counter::PassStageMissing)))
            }
        }
    }

    /// The end of a reply stage (the translator's own ICMP errors, built in place).
    /// A reply goes back out of the port it came in on through the redirect map when
    /// that port takes XDP frames, else by XDP_TX. On a veth the two differ: XDP_TX
    /// queues the frame at the peer but wakes the peer's NAPI only when the peer runs
    /// an XDP program itself, so behind a peer with GRO alone the reply waited for the
    /// next packet the kernel sent that way (the answer to a lone ping never came); a
    /// redirect's flush always wakes it. Replies are rare: the lookup costs nothing
    /// that matters. (Only here: kept out of the other stages, whose frames are at the
    /// verifier's stack limit.)
    #[inline(always)]
    fn run_xdp_reply(ctx: &XdpContext, step: Step) -> u32 {
        match step {
            Step::Finish(v) => {
                let v = translate::conclude(v);
                if v.kind() != KIND_TX {
                    return Verdict::xdp(v);
                }
                match TX_PORTS.redirect(ctx.ingress_ifindex() as u32, xdp_action::XDP_TX as u64) {
                    Ok(a) | Err(a) => a,
                }
            }
            Step::Jump(_) => run_xdp(ctx, step),
        }
    }

    #[inline(always)]
    fn run_tc<const L2: usize>(ctx: &TcContext, step: Step) -> i32 {
        let ifindex = TcPacket::<L2>::new(ctx).ifindex();
        match step {
            Step::Finish(v) => Verdict::tc(translate::conclude(v), ifindex),
            Step::Jump(i) => {
                let table: *const c_void =
                    if L2 == ETH_LEN { (&raw const JUMP_TC).cast() } else { (&raw const JUMP_TC_L3).cast() };
                // SAFETY: the context is the program's own.
                unsafe { tail_call(ctx.as_ptr(), table, i) };
                Verdict::tc(translate::conclude(pack(Action::Pass, Counter::PassStageMissing)), ifindex)
            }
        }
    }

    /// The translator on an Ethernet device (native or generic XDP): the entry of
    /// the pipeline, whose stages follow.
    /// Stateful NAT64's sweep (`sweep::run`), run by nat64-ctl with `BPF_PROG_RUN`
    /// and never attached.
    #[xdp]
    pub fn nat64_sweep(_ctx: XdpContext) -> u32 {
        crate::sweep::run()
    }

    /// Session sync's import (`sync_import::run`), run by nat64-ctl with `BPF_PROG_RUN`
    /// and never attached.
    #[xdp]
    pub fn nat64_sync_import(_ctx: XdpContext) -> u32 {
        crate::sync_import::run()
    }

    #[xdp]
    pub fn nat64_xdp(ctx: XdpContext) -> u32 {
        let step = translate::entry(&XdpPacket::new(&ctx));
        run_xdp(&ctx, step)
    }

    /// The translator as a TC (TCX ingress) program on an Ethernet device.
    #[classifier]
    pub fn nat64_tc(ctx: TcContext) -> i32 {
        tc_entry::<ETH_LEN>(&ctx)
    }

    /// The translator as a TC (TCX ingress) program on an L3 device (WireGuard, TUN):
    /// packets start with the IP header.
    #[classifier]
    pub fn nat64_tc_l3(ctx: TcContext) -> i32 {
        tc_entry::<0>(&ctx)
    }

    #[inline(always)]
    fn tc_entry<const L2: usize>(ctx: &TcContext) -> i32 {
        // A copy the held stage sent back in: already translated (the mark goes).
        // SAFETY: the context pointer the kernel passed to the program.
        unsafe {
            if (*ctx.skb.skb).tc_index == HELD_MARK {
                (*ctx.skb.skb).tc_index = 0;
                return TC_ACT_OK;
            }
        }
        // The headers in the linear area (`PULL_HEADERS`), asked only when they are not
        // there already: the helper costs a call and the data pointers' recomputation.
        let want = ctx.len().min(PULL_HEADERS);
        if ctx.data_end() - ctx.data() < want as usize && ctx.skb.pull_data(want).is_err() {
            return TC_ACT_OK;
        }
        let step = translate::entry(&TcPacket::<L2>::new(ctx));
        run_tc::<L2>(ctx, step)
    }

    /// The stages of one attach point: translation per direction, ICMP errors per
    /// direction, the translator's own errors per family, dynamic-pool allocation.
    macro_rules! stages {
        ($attr:ident, $ctx:ty, $ret:ty, $pkt:path, $run:path, $run_reply:path;
         $x4:ident, $x6:ident, $e4:ident, $e6:ident, $r4:ident, $r6:ident, $a6:ident, $h6:ident,
         $n4:ident, $n6:ident, $hd:ident) => {
            #[$attr]
            pub fn $x4(ctx: $ctx) -> $ret {
                let step = translate::xlat(&mut $pkt(&ctx), false);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $x6(ctx: $ctx) -> $ret {
                let step = translate::xlat(&mut $pkt(&ctx), true);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $e4(ctx: $ctx) -> $ret {
                let step = translate::err(&mut $pkt(&ctx), false);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $e6(ctx: $ctx) -> $ret {
                let step = translate::err(&mut $pkt(&ctx), true);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $r4(ctx: $ctx) -> $ret {
                let v = translate::reply(&mut $pkt(&ctx), false);
                $run_reply(&ctx, Step::Finish(v))
            }
            #[$attr]
            pub fn $r6(ctx: $ctx) -> $ret {
                let v = translate::reply(&mut $pkt(&ctx), true);
                $run_reply(&ctx, Step::Finish(v))
            }
            #[$attr]
            pub fn $a6(ctx: $ctx) -> $ret {
                let step = translate::alloc(&$pkt(&ctx));
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $h6(ctx: $ctx) -> $ret {
                let v = translate::hairpin(&mut $pkt(&ctx));
                $run(&ctx, Step::Finish(v))
            }
            #[$attr]
            pub fn $n4(ctx: $ctx) -> $ret {
                let step = translate::nat(&mut $pkt(&ctx), false);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $n6(ctx: $ctx) -> $ret {
                let step = translate::nat(&mut $pkt(&ctx), true);
                $run(&ctx, step)
            }
            #[$attr]
            pub fn $hd(ctx: $ctx) -> $ret {
                let v = translate::held(&mut $pkt(&ctx));
                $run(&ctx, Step::Finish(v))
            }
        };
    }

    stages!(xdp, XdpContext, u32, XdpPacket::new, run_xdp, run_xdp_reply;
        nat64_xdp_x4, nat64_xdp_x6, nat64_xdp_e4, nat64_xdp_e6, nat64_xdp_r4, nat64_xdp_r6, nat64_xdp_a6,
        nat64_xdp_h6, nat64_xdp_n4, nat64_xdp_n6, nat64_xdp_hd);
    stages!(classifier, TcContext, i32, TcPacket::<ETH_LEN>::new, run_tc::<ETH_LEN>, run_tc::<ETH_LEN>;
        nat64_tc_x4, nat64_tc_x6, nat64_tc_e4, nat64_tc_e6, nat64_tc_r4, nat64_tc_r6, nat64_tc_a6, nat64_tc_h6,
        nat64_tc_n4, nat64_tc_n6, nat64_tc_hd);
    stages!(classifier, TcContext, i32, TcPacket::<0>::new, run_tc::<0>, run_tc::<0>;
        nat64_tc_l3_x4, nat64_tc_l3_x6, nat64_tc_l3_e4, nat64_tc_l3_e6, nat64_tc_l3_r4, nat64_tc_l3_r6, nat64_tc_l3_a6,
        nat64_tc_l3_h6, nat64_tc_l3_n4, nat64_tc_l3_n6, nat64_tc_l3_hd);

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
