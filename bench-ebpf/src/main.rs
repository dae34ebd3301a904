//! Benchmark programs (`cargo xtask bench`), an object of their own so that nothing
//! here is loaded with the translator:
//!
//! - `bench_gen`: the traffic generator. Run by BPF_PROG_RUN in live-frame mode
//!   (BPF_F_TEST_XDP_LIVE_FRAMES) on the sender's interface, it writes the frame held
//!   in BENCH_FRAME over the packet, 32 bytes further into its page than the run
//!   puts it (`EXTRA_HEADROOM`), and sends it with XDP_TX, i.e. out to the peer.
//!   The frame is written every time: the kernel recycles the pages of a live run,
//!   and the translator on the far side rewrites them in place.
//! - `bench_sink`: counts (per CPU, per family) and drops the UDP datagrams to port 9
//!   (discard) that arrive on the receiver's interface; everything else passes.
//! - `bench_fwd`: XDP forwarding without translation (FIB lookup, TTL or hop limit,
//!   MAC rewrite, redirect), the ceiling an XDP translator is measured against.
//! - `nat64_bench_baseline`: the least an XDP program can do with a packet (swap the
//!   MAC addresses, XDP_TX), the per-packet section's baseline.
//! - `bench_fib`, `bench_lpm`: one FIB lookup, one LPM-trie lookup of the frame's
//!   destination, then XDP_TX: what the work a translation cannot avoid costs under
//!   BPF_PROG_TEST_RUN, next to the XDP_TX no-op.
//! - `bench_tc_ok`, `bench_tc_proto`, `bench_tc_csum`: the skb helpers every TC
//!   translation calls where XDP writes the packet in place, each alone under
//!   BPF_PROG_TEST_RUN next to a TC no-op: the protocol change there and back
//!   (`bpf_skb_change_proto` to IPv4, which takes the 20 bytes out after the MAC
//!   header, and back to IPv6, which puts 20 zero bytes in), and the transport
//!   checksum's pseudo-header change there and back (`bpf_l4_csum_replace`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::{
            BPF_F_PSEUDO_HDR, BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_OK, TC_ACT_SHOT, bpf_fib_lookup, xdp_action,
        },
        helpers::generated as h,
        macros::{classifier, map, xdp},
        maps::{Array, DevMapHash, LpmTrie, PerCpuArray, lpm_trie::Key},
        programs::{TcContext, XdpContext},
    };

    /// The generator's frame: up to 128 bytes (an Ethernet frame without FCS; 64 for
    /// plain UDP, more for a tunnel's), as long as the run's own frame.
    const FRAME_WORDS: usize = 16;

    #[map(name = "BENCH_FRAME")]
    static BENCH_FRAME: Array<[u64; FRAME_WORDS]> = Array::with_max_entries(1, 0);

    /// How `bench_gen` varies an IPv6 frame's source: [mode, flows]. Mode 0: the frame
    /// as it is; 1: `flows` flows in turn (flow i: host i / 16, source port + i % 16:
    /// hosts of 16 flows each, up to 65,536 hosts); 2: a new flow every frame (per CPU:
    /// 4,096 hosts in turn, host CPU << 12 | n % 4096, each from port 1024 + n / 4096
    /// on). Host h is the source address with h added to its last 16 bits and to the
    /// 16 bits before its /64 boundary: each host a subscriber (RFC 6888) of its own.
    #[map(name = "BENCH_VARY")]
    static BENCH_VARY: Array<u32> = Array::with_max_entries(2, 0);

    /// Per CPU: frames generated so far (the flow counter of modes 1 and 2).
    #[map(name = "BENCH_SEQ")]
    static BENCH_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    /// UDP datagrams to port 9 received: [IPv4, IPv6].
    #[map(name = "BENCH_SINK")]
    static BENCH_SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

    /// The devices `bench_fwd` may redirect to.
    #[map(name = "BENCH_PORTS")]
    static BENCH_PORTS: DevMapHash = DevMapHash::with_max_entries(8, 0);

    #[map(name = "BENCH_LPM4")]
    static BENCH_LPM4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(64, 0);

    #[map(name = "BENCH_LPM6")]
    static BENCH_LPM6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(64, 0);

    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86dd;
    const UDP: u8 = 17;
    const DISCARD_PORT: u16 = 9;

    /// Headroom the generator adds to the 256 bytes BPF_PROG_RUN gives a frame.
    ///
    /// The receiving hosts count with an XDP program (`bench_sink`) on a veth, and a
    /// veth copies every packet that reaches its XDP with less than 256 bytes of
    /// headroom into a page of its own (`skb_pp_cow_data`). A translation to IPv6
    /// grows the header by 20 bytes: with exactly 256 to start with, every packet
    /// translated through TC paid that copy at the receiver, about 15% of the CPU,
    /// which neither forwarding (same header size) nor a NIC (no copy) pays. With
    /// 32 more, no path falls below 256.
    const EXTRA_HEADROOM: i32 = 32;

    #[xdp]
    pub fn bench_gen(ctx: XdpContext) -> u32 {
        // The frame moves 32 bytes further into its page: the tail grows, the head
        // follows, the length stays the run's own.
        // SAFETY: helpers on this program's own context.
        let moved = unsafe {
            h::bpf_xdp_adjust_tail(ctx.ctx, EXTRA_HEADROOM) == 0
                && h::bpf_xdp_adjust_head(ctx.ctx, EXTRA_HEADROOM) == 0
        };
        if !moved {
            return xdp_action::XDP_ABORTED;
        }
        let p = ctx.data();
        if p + 64 > ctx.data_end() {
            return xdp_action::XDP_ABORTED;
        }
        let Some(frame) = BENCH_FRAME.get(0) else {
            return xdp_action::XDP_ABORTED;
        };
        let w = p as *mut u64;
        let mut i = 0;
        while i < FRAME_WORDS {
            if p + (i + 1) * 8 > ctx.data_end() {
                break;
            }
            // SAFETY: these 8 bytes were bounds-checked just above.
            unsafe { core::ptr::write_unaligned(w.add(i), frame[i]) };
            i += 1;
        }
        let mode = BENCH_VARY.get(0).copied().unwrap_or(0);
        if mode != 0 {
            vary(&ctx, mode, BENCH_VARY.get(1).copied().unwrap_or(1));
        }
        xdp_action::XDP_TX
    }

    /// Offsets in an IPv6 UDP frame: the source address's 16 bits before its /64
    /// boundary and its last 16 bits, the source port, the UDP checksum.
    const SRC6_NET: usize = 14 + 8 + 6;
    const SRC6_LOW: usize = 14 + 8 + 14;
    const SPORT6: usize = 14 + 40;
    const UCHECK6: usize = 14 + 40 + 6;

    /// Gives the frame (IPv6 UDP, checked by the caller's length) flow `n`'s source
    /// (see BENCH_VARY), its UDP checksum following.
    #[inline(always)]
    fn vary(ctx: &XdpContext, mode: u32, flows: u32) {
        let p = ctx.data();
        if p + 64 > ctx.data_end() || be16(ctx, 12) != Some(ETH_P_IPV6) {
            return;
        }
        let Some(seq) = BENCH_SEQ.get_ptr_mut(0) else { return };
        // SAFETY: this CPU's slot.
        let n = unsafe {
            *seq = (*seq).wrapping_add(1);
            *seq
        };
        // SAFETY: helper without arguments.
        let cpu = unsafe { h::bpf_get_smp_processor_id() };
        let (host, port) = if mode == 1 {
            let i = n.checked_rem(flows.max(1)).unwrap_or(0);
            ((i / 16) & 0xffff, 40000 + i % 16)
        } else {
            (((cpu & 0xf) << 12) | (n % 4096), 1024 + (n / 4096) % 64512)
        };
        let b = p as *mut u8;
        // SAFETY: 64 bytes were bounds-checked above; the offsets lie within them.
        unsafe {
            let old_a = u16::from_be_bytes([*b.add(SRC6_LOW), *b.add(SRC6_LOW + 1)]) as u32;
            let old_n = u16::from_be_bytes([*b.add(SRC6_NET), *b.add(SRC6_NET + 1)]) as u32;
            let old_p = u16::from_be_bytes([*b.add(SPORT6), *b.add(SPORT6 + 1)]) as u32;
            let new_a = (old_a + host) & 0xffff;
            let new_n = (old_n + host) & 0xffff;
            let c = u16::from_be_bytes([*b.add(UCHECK6), *b.add(UCHECK6 + 1)]) as u32;
            // RFC 1624: HC' = ~(~HC + ~m + m').
            let mut sum = (!c & 0xffff)
                + (!old_a & 0xffff)
                + new_a
                + (!old_n & 0xffff)
                + new_n
                + (!old_p & 0xffff)
                + port;
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            let mut nc = !sum as u16;
            if nc == 0 {
                nc = 0xffff;
            }
            let a = (new_a as u16).to_be_bytes();
            let m = (new_n as u16).to_be_bytes();
            *b.add(SRC6_NET) = m[0];
            *b.add(SRC6_NET + 1) = m[1];
            let q = (port as u16).to_be_bytes();
            let k = nc.to_be_bytes();
            *b.add(SRC6_LOW) = a[0];
            *b.add(SRC6_LOW + 1) = a[1];
            *b.add(SPORT6) = q[0];
            *b.add(SPORT6 + 1) = q[1];
            *b.add(UCHECK6) = k[0];
            *b.add(UCHECK6 + 1) = k[1];
        }
    }

    #[inline(always)]
    fn byte(ctx: &XdpContext, off: usize) -> Option<u8> {
        let p = ctx.data() + off;
        if p + 1 > ctx.data_end() {
            return None;
        }
        // SAFETY: bounds-checked above.
        Some(unsafe { *(p as *const u8) })
    }

    #[inline(always)]
    fn be16(ctx: &XdpContext, off: usize) -> Option<u16> {
        Some(u16::from_be_bytes([byte(ctx, off)?, byte(ctx, off + 1)?]))
    }

    /// The family slot of a UDP datagram to the discard port (IPv4 without options).
    #[inline(always)]
    fn discard_slot(ctx: &XdpContext) -> Option<u32> {
        match be16(ctx, 12)? {
            ETH_P_IP if byte(ctx, 14)? == 0x45 && byte(ctx, 23)? == UDP && be16(ctx, 36)? == DISCARD_PORT => {
                Some(0)
            }
            ETH_P_IPV6 if byte(ctx, 20)? == UDP && be16(ctx, 56)? == DISCARD_PORT => Some(1),
            _ => None,
        }
    }

    #[xdp]
    pub fn bench_sink(ctx: XdpContext) -> u32 {
        let Some(slot) = discard_slot(&ctx) else {
            return xdp_action::XDP_PASS;
        };
        if let Some(n) = BENCH_SINK.get_ptr_mut(slot) {
            // SAFETY: this CPU's slot.
            unsafe { *n += 1 };
        }
        xdp_action::XDP_DROP
    }

    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;

    #[xdp]
    pub fn bench_fwd(ctx: XdpContext) -> u32 {
        forward(&ctx).unwrap_or(xdp_action::XDP_PASS)
    }

    /// The FIB's answer for the frame's destination: (IPv4?, the lookup, its return code).
    #[inline(always)]
    fn lookup(ctx: &XdpContext) -> Option<(bool, bpf_fib_lookup, i64)> {
        let start = ctx.data();
        if start + 14 + 40 > ctx.data_end() {
            return None;
        }
        // SAFETY: a zeroed bpf_fib_lookup is a valid value (plain data).
        let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
        fib.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
        let v4 = match be16(ctx, 12)? {
            ETH_P_IP => {
                let ip = (start + 14) as *const u8;
                // SAFETY: 40 bytes after the Ethernet header were bounds-checked.
                unsafe {
                    if *ip.add(8) <= 1 {
                        return None;
                    }
                    fib.family = AF_INET;
                    fib.__bindgen_anon_2.tos = *ip.add(1);
                    fib.l4_protocol = *ip.add(9);
                    fib.__bindgen_anon_1.tot_len =
                        u16::from_be(core::ptr::read_unaligned(ip.add(2) as *const u16));
                    fib.__bindgen_anon_3.ipv4_src = core::ptr::read_unaligned(ip.add(12) as *const u32);
                    fib.__bindgen_anon_4.ipv4_dst = core::ptr::read_unaligned(ip.add(16) as *const u32);
                }
                true
            }
            ETH_P_IPV6 => {
                let ip = (start + 14) as *const u8;
                // SAFETY: as above.
                unsafe {
                    if *ip.add(7) <= 1 {
                        return None;
                    }
                    fib.family = AF_INET6;
                    fib.l4_protocol = *ip.add(6);
                    fib.__bindgen_anon_1.tot_len =
                        u16::from_be(core::ptr::read_unaligned(ip.add(4) as *const u16)).wrapping_add(40);
                    fib.__bindgen_anon_3.ipv6_src = core::ptr::read_unaligned(ip.add(8) as *const [u32; 4]);
                    fib.__bindgen_anon_4.ipv6_dst = core::ptr::read_unaligned(ip.add(24) as *const [u32; 4]);
                }
                false
            }
            _ => return None,
        };
        // SAFETY: helper call with a struct of the size the kernel expects.
        let rc = unsafe {
            h::bpf_fib_lookup(ctx.ctx as *mut _, &mut fib, core::mem::size_of::<bpf_fib_lookup>() as i32, 0)
        };
        Some((v4, fib, rc))
    }

    #[xdp]
    pub fn bench_fib(ctx: XdpContext) -> u32 {
        match lookup(&ctx) {
            Some((_, _, rc)) if rc == BPF_FIB_LKUP_RET_SUCCESS as i64 => xdp_action::XDP_TX,
            _ => xdp_action::XDP_ABORTED,
        }
    }

    #[xdp]
    pub fn bench_lpm(ctx: XdpContext) -> u32 {
        let start = ctx.data();
        if start + 14 + 40 > ctx.data_end() {
            return xdp_action::XDP_ABORTED;
        }
        let found = match be16(&ctx, 12) {
            // SAFETY: 40 bytes after the Ethernet header were bounds-checked.
            Some(ETH_P_IP) => BENCH_LPM4
                .get(Key::new(32, unsafe { core::ptr::read_unaligned((start + 30) as *const [u8; 4]) }))
                .is_some(),
            Some(ETH_P_IPV6) => BENCH_LPM6
                .get(Key::new(128, unsafe { core::ptr::read_unaligned((start + 38) as *const [u8; 16]) }))
                .is_some(),
            _ => false,
        };
        if found { xdp_action::XDP_TX } else { xdp_action::XDP_ABORTED }
    }

    /// The TC no-op the skb helpers are measured against.
    #[classifier]
    pub fn bench_tc_ok(_ctx: TcContext) -> i32 {
        TC_ACT_OK
    }

    /// An IPv6 frame to IPv4 and back, as a TC translation changes it one way: the
    /// skb is as it was after each repetition, save the 20 bytes after the MAC header,
    /// which come back as zeros.
    #[classifier]
    pub fn bench_tc_proto(ctx: TcContext) -> i32 {
        if ctx.skb.change_proto(ETH_P_IP.to_be(), 0).is_err()
            || ctx.skb.change_proto(ETH_P_IPV6.to_be(), 0).is_err()
        {
            return TC_ACT_SHOT;
        }
        TC_ACT_OK
    }

    /// The UDP checksum of an IPv6 frame (at 14 + 40 + 6) through a pseudo-header
    /// change and back, as a TC translation moves it one way (the 16-bit form,
    /// flags 2): the frame is as it was after each repetition.
    #[classifier]
    pub fn bench_tc_csum(ctx: TcContext) -> i32 {
        const CHECK: usize = 14 + 40 + 6;
        let flags = BPF_F_PSEUDO_HDR as u64 | 2;
        let (a, b) = (0x1234u16.to_be() as u64, 0xfedcu16.to_be() as u64);
        if ctx.skb.l4_csum_replace(CHECK, a, b, flags).is_err()
            || ctx.skb.l4_csum_replace(CHECK, b, a, flags).is_err()
        {
            return TC_ACT_SHOT;
        }
        TC_ACT_OK
    }

    #[inline(always)]
    fn forward(ctx: &XdpContext) -> Option<u32> {
        let (v4, fib, rc) = lookup(ctx)?;
        if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
            return None;
        }
        let start = ctx.data();
        if start + 14 + 40 > ctx.data_end() {
            return None;
        }
        let ip = (start + 14) as *mut u8;
        // SAFETY: bounds-checked above.
        unsafe {
            if v4 {
                // TTL - 1, checksum + 0x0100 (RFC 1624, ones' complement).
                *ip.add(8) -= 1;
                let c = ip.add(10) as *mut u16;
                let sum = u16::from_be(core::ptr::read_unaligned(c)) as u32 + 0x0100;
                let sum = (sum & 0xffff) + (sum >> 16);
                core::ptr::write_unaligned(c, (sum as u16).to_be());
            } else {
                *ip.add(7) -= 1;
            }
            core::ptr::write_unaligned(start as *mut [u8; 6], fib.dmac);
            core::ptr::write_unaligned((start + 6) as *mut [u8; 6], fib.smac);
        }
        Some(match BENCH_PORTS.redirect(fib.ifindex, xdp_action::XDP_PASS as u64) {
            Ok(a) | Err(a) => a,
        })
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
