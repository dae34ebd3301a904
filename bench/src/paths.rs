//! Through the wire: the same traffic through each path, side by side, in one run.
//!
//! ```text
//!  [b6] eth0 2001:db8:6::5 --- to6 [bx] to4 --- eth0 198.51.100.2 [b4]
//!       IPv6-only sender       the path          IPv4-only receiver
//! ```
//!
//! The IPv6 host is 192.0.2.5 to the IPv4 side (an EAM entry), the IPv4 host is
//! 2001:db8:64::c633:6402 to the IPv6 side (pool6 2001:db8:64::/96, not the
//! well-known prefix, so no path refuses the documentation addresses). The
//! reference paths (kernel forwarding, XDP forwarding) carry the very same packets
//! untranslated: there the receivers also hold the addresses the other side uses.
//!
//! The TUN paths (`forward-l3`, `nat64-tc-l3`) start on the translator itself: a
//! writer thread per CPU puts the same UDP packets (without Ethernet) into a TUN device
//! (`tun6`, `tun4`), where they arrive as from an L3 device such as WireGuard, and the
//! kernel forwards them, or nat64's TC program for L3 devices translates them and
//! redirects them (an Ethernet header pushed) out of the port. The writer's system call
//! costs more than the path itself: these rows compare with each other (`vs fwd` is
//! against TUN forwarding), not with the veth rows.
//!
//! Packets per second: `bench_gen` runs under BPF_PROG_RUN in live-frame mode on the
//! sender's interface of one or two CPUs and sends 64-byte UDP frames to port 9;
//! `bench_sink` counts and drops them on the receiver's interface. On veth, every
//! step a frame takes (the generator, the path, the receiver) runs in softirq on the
//! CPU that sent it, so with 1 CPU that one core does all, with 2 each does its half
//! on its own veth queue: the scaling column shows whether the path shares anything
//! between CPUs. The generator alone (straight into a sink at the translator's
//! ingress) is measured too: it bounds every row.
//!
//! Every path has a topology of its own (its own namespaces), all built and started
//! before the first run and kept up to the last: the runs go round the paths (run 1
//! of every path, then run 2 of every path, ...), so that two rows' figures come from
//! runs seconds apart and the drift of a shared machine's speed, larger than the
//! differences measured, falls on every row alike.
//!
//! TCP: iperf3 from the IPv6 host to the IPv4 host, 1 and 4 streams. The hosts send
//! MTU-sized segments with complete checksums, as a wire delivers them; the middle
//! has GRO on its veths, as a NIC driver has.

use std::{
    fs::File,
    os::fd::AsRawFd,
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf,
    maps::{Array, DevMapHash, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use nat64_tests::{
    lab::{Lab, wait_until},
    packet::{L4, V4Opts, V6Opts, eth4, eth6, ipv4, ipv6},
    xdp::{ctx_bytes, xdp_md},
};

use crate::Args;

const H6: &str = "2001:db8:6::5";
const H6_AS_V4: &str = "192.0.2.5";
const H4: &str = "198.51.100.2";
const H4_AS_V6: &str = "2001:db8:64::c633:6402";
const POOL6: &str = "2001:db8:64::/96";
/// The dynamic pool of the masquerade PLATs (the PLAT section).
const MASQ_POOL: &str = "10.64.0.0/18";

const MAC_H6: [u8; 6] = [2, 0, 0, 0, 6, 5];
const MAC_X6: [u8; 6] = [2, 0, 0, 0, 6, 1];
const MAC_X4: [u8; 6] = [2, 0, 0, 0, 4, 1];
const MAC_H4: [u8; 6] = [2, 0, 0, 0, 4, 2];

/// Frames per BPF_PROG_RUN call of the generator (one call: 30-300 ms).
const GEN_REPEAT: u32 = 262_144;
/// Frames the kernel builds per batch in live mode (its default, NAPI's budget).
const GEN_BATCH: u32 = 64;

fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Every path's `--paths` name.
pub fn keys() -> Vec<&'static str> {
    Path::ALL.iter().chain(&[Path::MasqXdp, Path::TaygaMasq]).map(|p| p.key()).collect()
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Path {
    Forward,
    XdpFwd,
    Tayga,
    Nat64Xdp,
    /// nat64 XDP with `xdp-tcp-gro`: translated TCP data goes to the kernel's GRO and
    /// forwarding (TCP rows only: the setting changes nothing else).
    Nat64XdpGro,
    Nat64Tc,
    /// Stateful NAT64 (mode "nat64"): the generator's flows are established sessions
    /// (a dynamic mapping 6->4, a static BIB entry 4->6).
    StatefulXdp,
    StatefulTc,
    /// The PLAT section's references ([`crate::plat`]): nat64's dynamic pool behind the
    /// kernel's masquerade (XDP), and TAYGA's dynamic pool behind it.
    MasqXdp,
    TaygaMasq,
    /// The senders' packets arrive on TUN devices (L3: no Ethernet header), as a
    /// CLAT's clients arrive through WireGuard, written by a process on the translator
    /// (the generator here): kernel forwarding of what comes out of them, and nat64's
    /// TC program for L3 devices attached to them (the Ethernet ports by XDP).
    ForwardL3,
    Nat64TcL3,
}

impl Path {
    const ALL: [Path; 10] = [
        Path::Forward,
        Path::XdpFwd,
        Path::Tayga,
        Path::Nat64Xdp,
        Path::Nat64XdpGro,
        Path::Nat64Tc,
        Path::StatefulXdp,
        Path::StatefulTc,
        Path::ForwardL3,
        Path::Nat64TcL3,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Forward => "kernel forwarding (no translation)",
            Path::XdpFwd => "XDP forwarding (no translation)",
            Path::Tayga => "TAYGA",
            Path::Nat64Xdp => "nat64, XDP",
            Path::Nat64XdpGro => "nat64, XDP, xdp-tcp-gro",
            Path::Nat64Tc => "nat64, TC",
            Path::StatefulXdp => "nat64 stateful (NAT64), XDP",
            Path::StatefulTc => "nat64 stateful (NAT64), TC",
            Path::MasqXdp => "nat64 dynamic pool + masquerade, XDP",
            Path::TaygaMasq => "TAYGA dynamic pool + masquerade",
            Path::ForwardL3 => "TUN (L3): kernel forwarding",
            Path::Nat64TcL3 => "TUN (L3): nat64, TC",
        }
    }

    /// The name `--paths` takes.
    pub fn key(self) -> &'static str {
        match self {
            Path::Forward => "forward",
            Path::XdpFwd => "xdp-forward",
            Path::Tayga => "tayga",
            Path::Nat64Xdp => "nat64-xdp",
            Path::Nat64XdpGro => "nat64-xdp-gro",
            Path::Nat64Tc => "nat64-tc",
            Path::StatefulXdp => "stateful-xdp",
            Path::StatefulTc => "stateful-tc",
            Path::MasqXdp => "masquerade-xdp",
            Path::TaygaMasq => "tayga-masquerade",
            Path::ForwardL3 => "forward-l3",
            Path::Nat64TcL3 => "nat64-tc-l3",
        }
    }

    pub(crate) fn translates(self) -> bool {
        !matches!(self, Path::Forward | Path::XdpFwd | Path::ForwardL3)
    }

    /// Whether the senders' packets come through TUN devices.
    pub(crate) fn l3(self) -> bool {
        matches!(self, Path::ForwardL3 | Path::Nat64TcL3)
    }

    /// The kernel forwarding the path is measured against: through the same devices.
    fn reference(self) -> Path {
        if self.l3() { Path::ForwardL3 } else { Path::Forward }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Dir {
    SixToFour,
    FourToSix,
}

impl Dir {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dir::SixToFour => "IPv6 -> IPv4",
            Dir::FourToSix => "IPv4 -> IPv6",
        }
    }
}

/// The generator's frame: 64 bytes of UDP to port 9, addressed for the path's ingress.
pub(crate) fn frame(dir: Dir) -> Vec<u8> {
    let udp = |len: usize| L4::Udp { sport: 40000, dport: 9, data: vec![0x5a; len], zero_checksum: false };
    let mut f = match dir {
        Dir::SixToFour => eth6(&ipv6(
            H6.parse().unwrap(),
            H4_AS_V6.parse().unwrap(),
            V6Opts::default(),
            &udp(64 - 14 - 40 - 8),
        )),
        Dir::FourToSix => eth4(&ipv4(
            H4.parse().unwrap(),
            H6_AS_V4.parse().unwrap(),
            V4Opts::default(),
            &[],
            &udp(64 - 14 - 20 - 8),
        )),
    };
    let (dst, src) = match dir {
        Dir::SixToFour => (MAC_X6, MAC_H6),
        Dir::FourToSix => (MAC_X4, MAC_H4),
    };
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    assert_eq!(f.len(), 64);
    f
}

/// Runs `f` on a thread of its own inside network namespace `ns`.
pub(crate) fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|s| {
        s.spawn(|| enter_netns(ns).and_then(|()| f())).join().expect("namespace thread panicked")
    })
}

fn enter_netns(ns: &str) -> Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}")).with_context(|| format!("opening netns {ns}"))?;
    // SAFETY: setns(2) on this thread only, with an fd we hold open.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {ns}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    ensure!(i != 0, "no interface {name}");
    Ok(i)
}

/// The benchmark's own programs (generator, sink, XDP forwarding), loaded once.
pub(crate) struct Progs {
    ebpf: Ebpf,
    /// The kernel runs the generator in live-frame mode (BPF_PROG_RUN with
    /// `BPF_F_TEST_XDP_LIVE_FRAMES`); else the frames go out of AF_PACKET sockets
    /// ([`Progs::afp_generate`]).
    live: bool,
    /// `set_vary`'s mode and flows, for the AF_PACKET generator.
    vary: (u32, u32),
    /// Per CPU: frames varied so far (as `BENCH_SEQ` for `bench_gen`).
    seq: Vec<std::sync::atomic::AtomicU32>,
}

impl Progs {
    pub(crate) fn load() -> Result<Self> {
        ensure!(
            !crate::BENCH_OBJECT.is_empty(),
            "the benchmark programs were not built (AYA_BUILD_SKIP?): build without it"
        );
        let mut ebpf = Ebpf::load(crate::BENCH_OBJECT).context("loading the benchmark object")?;
        for name in ["bench_gen", "bench_sink", "bench_fwd"] {
            let p: &mut Xdp =
                ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
            p.load().with_context(|| format!("loading {name} (verifier)"))?;
        }
        let live = live_frames(&ebpf)?;
        if !live {
            println!(
                "nat64-bench: this kernel refuses BPF_PROG_RUN's live frames (EPERM): the generator sends from \
                 AF_PACKET sockets instead (slower: figures are not comparable with live-frame runs)"
            );
        }
        let seq = (0..256).map(|_| std::sync::atomic::AtomicU32::new(0)).collect();
        Ok(Self { ebpf, live, vary: (0, 0), seq })
    }

    fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        Ok(self.ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?)
    }

    /// Attaches `name` in native mode to `ifname` in namespace `ns`.
    fn attach(&mut self, name: &str, ns: &str, ifname: &str) -> Result<XdpLinkId> {
        let prog = self.prog(name)?;
        in_netns(ns, || {
            prog.attach(ifname, XdpMode::Driver)
                .with_context(|| format!("attaching {name} to {ifname} in {ns}"))
        })
    }

    fn detach(&mut self, name: &str, id: XdpLinkId) -> Result<()> {
        self.prog(name)?.detach(id).with_context(|| format!("detaching {name}"))
    }

    /// How the generator varies the IPv6 frame's source (see `BENCH_VARY`).
    pub(crate) fn set_vary(&mut self, mode: u32, flows: u32) -> Result<()> {
        let mut m: Array<_, u32> = Array::try_from(self.ebpf.map_mut("BENCH_VARY").context("BENCH_VARY")?)?;
        m.set(0, mode, 0)?;
        m.set(1, flows, 0)?;
        self.vary = (mode, flows);
        Ok(())
    }

    fn set_frame(&mut self, f: &[u8]) -> Result<()> {
        ensure!(
            f.len().is_multiple_of(8) && f.len() <= 128,
            "a generator frame is 64-128 bytes, whole words"
        );
        let mut words = [0u64; 16];
        for (w, c) in words.iter_mut().zip(f.chunks_exact(8)) {
            *w = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        }
        let mut m: Array<_, [u64; 16]> =
            Array::try_from(self.ebpf.map_mut("BENCH_FRAME").context("BENCH_FRAME")?)?;
        m.set(0, words, 0)?;
        Ok(())
    }

    /// Datagrams counted by the sinks so far: [IPv4, IPv6].
    pub(crate) fn received(&self) -> Result<[u64; 2]> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("BENCH_SINK").context("BENCH_SINK")?)?;
        let mut out = [0u64; 2];
        for (slot, o) in out.iter_mut().enumerate() {
            *o = m.get(&(slot as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    fn set_ports(&mut self, ports: &[u32]) -> Result<()> {
        let mut m: DevMapHash<_> =
            DevMapHash::try_from(self.ebpf.map_mut("BENCH_PORTS").context("BENCH_PORTS")?)?;
        for &p in ports {
            m.insert(p, p, None, 0)?;
        }
        Ok(())
    }

    /// Sends `frame` out of `ifname` in `ns` from each of `cpus` for `secs` seconds:
    /// (frames sent, seconds from the common start to the last call's end).
    pub(crate) fn generate(
        &mut self,
        ns: &str,
        ifname: &str,
        frame: &[u8],
        cpus: &[usize],
        secs: f64,
    ) -> Result<(u64, f64)> {
        self.send(ns, ifname, frame, cpus, secs, None)
    }
}

impl Progs {
    /// As [`Progs::generate`], paced: each CPU sends `rate` frames a second, in bursts
    /// of [`PACED_BURST`] (one BPF_PROG_RUN call each), waiting between bursts for the
    /// next one's time. (frames sent, seconds.)
    pub(crate) fn generate_paced(
        &mut self,
        ns: &str,
        ifname: &str,
        frame: &[u8],
        cpus: &[usize],
        secs: f64,
        rate: f64,
    ) -> Result<(u64, f64)> {
        self.send(ns, ifname, frame, cpus, secs, Some(rate))
    }

    /// The live-frame generator (or, where the kernel refuses it, the AF_PACKET one):
    /// as fast as it goes in calls of [`GEN_REPEAT`] frames, or paced to `rate`.
    fn send(
        &mut self,
        ns: &str,
        ifname: &str,
        frame: &[u8],
        cpus: &[usize],
        secs: f64,
        rate: Option<f64>,
    ) -> Result<(u64, f64)> {
        if !self.live {
            return self.afp_generate(ns, ifname, frame, cpus, secs, rate);
        }
        self.set_frame(frame)?;
        let prog: &Xdp = self.ebpf.program("bench_gen").context("no bench_gen")?.try_into()?;
        let burst = if rate.is_some() { PACED_BURST } else { GEN_REPEAT };
        per_cpu(ns, cpus, |barrier| {
            let idx = ifindex(ifname)?;
            let md = ctx_bytes(&xdp_md(frame.len(), idx));
            barrier.wait();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                if let Some(rate) = rate {
                    pace(start, sent, rate);
                }
                let mut opts = TestRunOptions::new();
                opts.data_in = Some(frame);
                opts.ctx_in = Some(&md);
                opts.repeat = burst;
                opts.attrs = TestRunAttrs::new().xdp_live_frames(GEN_BATCH);
                prog.test_run(opts).context("BPF_PROG_RUN in live-frame mode (kernel 5.18 or later)")?;
                sent += burst as u64;
            }
            Ok((sent, start.elapsed().as_secs_f64()))
        })
    }

    /// The generator where the kernel refuses live frames: an AF_PACKET socket per CPU
    /// (the qdisc bypassed, as XDP_TX bypasses it) sending batches of [`GEN_BATCH`]
    /// frames with one `sendmmsg`, each frame varied in user space as `bench_gen`
    /// varies it. Paced to `rate` frames a second per CPU when given. (frames the
    /// device took, seconds.)
    fn afp_generate(
        &self,
        ns: &str,
        ifname: &str,
        frame: &[u8],
        cpus: &[usize],
        secs: f64,
        rate: Option<f64>,
    ) -> Result<(u64, f64)> {
        const PACKET_QDISC_BYPASS: libc::c_int = 20;
        const B: usize = GEN_BATCH as usize;
        let (mode, flows) = self.vary;
        per_cpu(ns, cpus, |barrier| {
            let idx = ifindex(ifname)?;
            // SAFETY: plain socket(2); the fd is closed by the File below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            ensure!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            // SAFETY: we own the fd.
            let sock = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // SAFETY: a zeroed sockaddr_ll naming the device.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = idx as i32;
            let one: libc::c_int = 1;
            // SAFETY: bind(2) and setsockopt(2) with values we own, on our socket.
            unsafe {
                ensure!(
                    libc::bind(
                        sock.as_raw_fd(),
                        (&raw const sll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32
                    ) == 0,
                    "binding to {ifname}: {}",
                    std::io::Error::last_os_error()
                );
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_QDISC_BYPASS,
                    (&raw const one).cast(),
                    4,
                );
            }
            // SAFETY: sched_getcpu(3) has no arguments; the thread is pinned.
            let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize % self.seq.len();
            let seq = &self.seq[cpu];
            let mut bufs = vec![frame.to_vec(); B];
            barrier.wait();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                if let Some(rate) = rate {
                    pace(start, sent, rate);
                }
                if mode != 0 {
                    for b in bufs.iter_mut() {
                        let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_add(1);
                        vary_frame(b, frame, mode, flows, cpu as u32, n);
                    }
                }
                let mut iov: Vec<libc::iovec> = bufs
                    .iter_mut()
                    .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
                    .collect();
                // SAFETY: zeroed message headers, each pointing at one iovec above.
                let mut msgs: Vec<libc::mmsghdr> = iov
                    .iter_mut()
                    .map(|v| {
                        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        m.msg_hdr.msg_iov = v;
                        m.msg_hdr.msg_iovlen = 1;
                        m
                    })
                    .collect();
                // SAFETY: sendmmsg(2) over headers and buffers that outlive the call.
                let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), B as u32, 0) };
                if r > 0 {
                    sent += r as u64;
                }
            }
            Ok((sent, start.elapsed().as_secs_f64()))
        })
    }
}

/// Whether the kernel runs `bench_gen` in live-frame mode (one frame, on the loopback
/// device); a refusal (EPERM: kernels built without it, or that deny it) is `false`.
fn live_frames(ebpf: &Ebpf) -> Result<bool> {
    let prog: &Xdp = ebpf.program("bench_gen").context("no bench_gen")?.try_into()?;
    let frame = [0u8; 64];
    let md = ctx_bytes(&xdp_md(frame.len(), 1));
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(&frame);
    opts.ctx_in = Some(&md);
    opts.repeat = 1;
    opts.attrs = TestRunAttrs::new().xdp_live_frames(1);
    match prog.test_run(opts) {
        Ok(_) => Ok(true),
        Err(e) if format!("{e:?}").contains("Operation not permitted") => Ok(false),
        Err(e) => {
            Err(anyhow::Error::new(e).context("BPF_PROG_RUN in live-frame mode (kernel 5.18 or later)"))
        }
    }
}

/// `bench_gen`'s variation of an IPv6 UDP frame (see `BENCH_VARY` in the benchmark
/// programs), done in user space for the AF_PACKET generator: flow `n` of this CPU
/// written into `b` from `template`, its UDP checksum following (RFC 1624).
fn vary_frame(b: &mut [u8], template: &[u8], mode: u32, flows: u32, cpu: u32, n: u32) {
    const SRC6_NET: usize = 14 + 8 + 6;
    const SRC6_LOW: usize = 14 + 8 + 14;
    const SPORT6: usize = 14 + 40;
    const UCHECK6: usize = 14 + 40 + 6;
    if b.len() < 64 || template.len() < 64 || b[12..14] != [0x86, 0xdd] {
        return;
    }
    let (host, port) = if mode == 1 {
        let i = n % flows.max(1);
        ((i / 16) & 0xffff, 40000 + i % 16)
    } else {
        (((cpu & 0xf) << 12) | (n % 4096), 1024 + (n / 4096) % 64512)
    };
    let rd = |o: usize| u16::from_be_bytes([template[o], template[o + 1]]) as u32;
    let (old_a, old_n, old_p, c) = (rd(SRC6_LOW), rd(SRC6_NET), rd(SPORT6), rd(UCHECK6));
    let (new_a, new_n) = ((old_a + host) & 0xffff, (old_n + host) & 0xffff);
    let mut sum =
        (!c & 0xffff) + (!old_a & 0xffff) + new_a + (!old_n & 0xffff) + new_n + (!old_p & 0xffff) + port;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let nc = match !sum as u16 {
        0 => 0xffff,
        v => v,
    };
    b[SRC6_LOW..SRC6_LOW + 2].copy_from_slice(&(new_a as u16).to_be_bytes());
    b[SRC6_NET..SRC6_NET + 2].copy_from_slice(&(new_n as u16).to_be_bytes());
    b[SPORT6..SPORT6 + 2].copy_from_slice(&(port as u16).to_be_bytes());
    b[UCHECK6..UCHECK6 + 2].copy_from_slice(&nc.to_be_bytes());
}

/// Waits until frame `sent` is due at `rate` frames a second from `start` (sleeping
/// when it is more than 100 µs ahead, spinning the rest).
fn pace(start: Instant, sent: u64, rate: f64) {
    let due = sent as f64 / rate;
    loop {
        let ahead = due - start.elapsed().as_secs_f64();
        if ahead <= 0.0 {
            return;
        }
        if ahead > 100e-6 {
            thread::sleep(Duration::from_secs_f64(ahead - 50e-6));
        }
    }
}

/// Frames per call of the paced generator: small enough that a burst fits the veth's
/// ring (256 frames) with room to spare.
pub(crate) const PACED_BURST: u32 = 64;

/// Frames the devices of `at` ((namespace, interface)) dropped or failed to send, by
/// their own statistics (`ethtool -S`): full receive rings and XDP transmit errors;
/// not `xdp_drops`, which are the programs' own verdicts, counted by them.
pub(crate) fn device_drops(lab: &nat64_tests::lab::Lab, at: &[(&str, &str)]) -> u64 {
    let mut n = 0;
    for (ns, i) in at {
        let out = lab.exec(ns, &format!("ethtool -S {i}"));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((k, v)) = line.trim().split_once(':') else { continue };
            if (k.ends_with("_drops") && !k.ends_with("xdp_drops")) || k.ends_with("_errors") {
                n += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    n
}

/// Runs `work` on a thread per CPU of `cpus`, each pinned to its CPU inside `ns`;
/// `work` waits on the barrier once ready and returns (frames sent, seconds taken).
/// The frames of all, and the longest time.
fn per_cpu(
    ns: &str,
    cpus: &[usize],
    work: impl Fn(&Barrier) -> Result<(u64, f64)> + Sync,
) -> Result<(u64, f64)> {
    let barrier = Barrier::new(cpus.len());
    let results: Vec<Result<(u64, f64)>> = thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || -> Result<(u64, f64)> {
                    enter_netns(ns)?;
                    nat64_tests::pin_to_cpu(cpu);
                    work(barrier)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("generator thread panicked")).collect()
    });
    let (mut sent, mut secs_max) = (0, 0f64);
    for r in results {
        let (n, t) = r?;
        sent += n;
        secs_max = secs_max.max(t);
    }
    Ok((sent, secs_max))
}

/// One topology with one path in the middle; removed when dropped.
pub(crate) struct Topo {
    pub(crate) lab: Lab,
    pub(crate) h6: String,
    pub(crate) x: String,
    pub(crate) h4: String,
    /// The senders' packets come through TUN devices (`Path::l3`).
    l3: bool,
    /// XDP links of the benchmark's programs: (program, link).
    links: Vec<(&'static str, XdpLinkId)>,
}

fn veth(lab: &Lab, a_ns: &str, a_if: &str, a_mac: [u8; 6], b_ns: &str, b_if: &str, b_mac: [u8; 6]) {
    // Two queues a side: each generating CPU gets its own (veth picks the receive
    // queue by the sending CPU).
    nat64_tests::lab::must(&format!(
        "ip link add {a_if} netns {a_ns} address {} numtxqueues 2 numrxqueues 2 type veth \
         peer name {b_if} netns {b_ns} address {} numtxqueues 2 numrxqueues 2",
        mac(a_mac),
        mac(b_mac)
    ));
    for (ns, i) in [(a_ns, a_if), (b_ns, b_if)] {
        // GRO on, as a NIC driver has it: a veth takes XDP frames only with NAPI.
        // A transmit queue per CPU (XPS), as a multi-queue NIC's driver sets up: what
        // a CPU sends stays on its own queue, and so on the peer's receive queue of
        // the same number, whatever the flow.
        lab.must_in(
            ns,
            &format!(
                "ip link set {i} up && ethtool -K {i} gro on >/dev/null \
                 && echo 1 > /sys/class/net/{i}/queues/tx-0/xps_cpus \
                 && echo 2 > /sys/class/net/{i}/queues/tx-1/xps_cpus"
            ),
        );
    }
}

impl Topo {
    pub(crate) fn build(path: Path) -> Result<Self> {
        let mut lab = Lab::new();
        let h6 = lab.add_ns("b6");
        let x = lab.add_ns("bx");
        let h4 = lab.add_ns("b4");
        veth(&lab, &x, "to6", MAC_X6, &h6, "eth0", MAC_H6);
        veth(&lab, &x, "to4", MAC_X4, &h4, "eth0", MAC_H4);
        // The hosts send what a wire delivers: MTU-sized packets with complete
        // checksums (no CHECKSUM_PARTIAL, which XDP cannot see). The middle's veths
        // keep GRO, as a NIC's driver does, and may merge them again.
        for ns in [&h6, &h4] {
            lab.must_in(ns, "ethtool -K eth0 tx off >/dev/null");
        }
        lab.must_in(
            &h6,
            &format!(
                "ip addr add {H6}/64 dev eth0 nodad && ip -6 route add {POOL6} via 2001:db8:6::1 \
                 && ip neigh add 2001:db8:6::1 lladdr {} dev eth0 nud permanent",
                mac(MAC_X6)
            ),
        );
        lab.must_in(
            &x,
            &format!(
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
                 && ip addr add 2001:db8:6::1/64 dev to6 nodad && ip addr add 198.51.100.1/24 dev to4 \
                 && ip neigh add {H6} lladdr {} dev to6 nud permanent \
                 && ip neigh add {H4} lladdr {} dev to4 nud permanent",
                mac(MAC_H6),
                mac(MAC_H4)
            ),
        );
        lab.must_in(
            &h4,
            &format!(
                "ip addr add {H4}/24 dev eth0 && ip route add 192.0.2.0/24 via 198.51.100.1 \
                 && ip neigh add 198.51.100.1 lladdr {} dev eth0 nud permanent",
                mac(MAC_X4)
            ),
        );
        if !path.translates() {
            // The same packets, untranslated: each host also holds the address the
            // other side sends to, and the middle routes them.
            lab.must_in(
                &h6,
                &format!(
                    "ip addr add {H6_AS_V4}/24 dev eth0 && ip route add 198.51.100.0/24 via 192.0.2.1 \
                     && ip neigh add 192.0.2.1 lladdr {} dev eth0 nud permanent",
                    mac(MAC_X6)
                ),
            );
            lab.must_in(
                &x,
                &format!(
                    "ip addr add 192.0.2.1/24 dev to6 && ip addr add 2001:db8:4::1/64 dev to4 nodad \
                     && ip -6 route add {POOL6} via 2001:db8:4::2 \
                     && ip neigh add {H6_AS_V4} lladdr {} dev to6 nud permanent \
                     && ip neigh add 2001:db8:4::2 lladdr {} dev to4 nud permanent",
                    mac(MAC_H6),
                    mac(MAC_H4)
                ),
            );
            lab.must_in(
                &h4,
                &format!(
                    "ip addr add 2001:db8:4::2/64 dev eth0 nodad && ip addr add {H4_AS_V6}/128 dev eth0 nodad \
                     && ip -6 route add 2001:db8:6::/64 via 2001:db8:4::1 \
                     && ip neigh add 2001:db8:4::1 lladdr {} dev eth0 nud permanent",
                    mac(MAC_X4)
                ),
            );
        }
        if path.l3() {
            // One queue per generating CPU; what comes out of them is routed (or
            // translated) like what comes straight from the ports.
            lab.must_in(
                &x,
                "ip tuntap add dev tun6 mode tun multi_queue && ip tuntap add dev tun4 mode tun multi_queue \
                 && ip link set tun6 up && ip link set tun4 up \
                 && sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.tun4.rp_filter=0",
            );
        }
        Ok(Self { lab, h6, x, h4, l3: path.l3(), links: Vec::new() })
    }

    /// Puts the path in place (the reference forwarding needs nothing more).
    pub(crate) fn start(&mut self, path: Path, progs: &mut Progs, ctl: &str) -> Result<()> {
        match path {
            Path::Forward | Path::ForwardL3 => {}
            Path::XdpFwd => {
                for i in ["to6", "to4"] {
                    let id = progs.attach("bench_fwd", &self.x, i)?;
                    self.links.push(("bench_fwd", id));
                }
                // A device map resolves an ifindex in the namespace of whoever writes it.
                in_netns(&self.x, || progs.set_ports(&[ifindex("to6")?, ifindex("to4")?]))?;
            }
            Path::Tayga | Path::TaygaMasq => {
                let dir = std::env::temp_dir().join(format!("nat64-bench-tayga-{}", self.lab.tag));
                std::fs::create_dir_all(&dir)?;
                let conf = dir.join("tayga.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "tun-device nat64t\nipv4-addr 192.0.2.254\nprefix {POOL6}\n{}\ndata-dir {}\n",
                        if path == Path::TaygaMasq {
                            format!("dynamic-pool {MASQ_POOL}")
                        } else {
                            format!("map {H6_AS_V4} {H6}")
                        },
                        dir.display()
                    ),
                )?;
                self.lab.dirs.push(dir);
                let conf = conf.display().to_string();
                self.lab.must_in(
                    &self.x,
                    &format!(
                        "tayga --mktun -c {conf} >/dev/null && ip link set nat64t up \
                         && ip route add {POOL6} dev nat64t && ip route add 192.0.2.0/24 dev nat64t"
                    ),
                );
                if path == Path::TaygaMasq {
                    self.lab.must_in(
                        &self.x,
                        &format!(
                            "ip route add {MASQ_POOL} dev nat64t && nft add table ip bench_masq && \
                             nft add chain ip bench_masq post '{{ type nat hook postrouting priority 100; }}' && \
                             nft add rule ip bench_masq post oifname to4 ip saddr {MASQ_POOL} masquerade"
                        ),
                    );
                }
                // TAYGA is one thread: it gets the second CPU to itself (the kernel's
                // half of its path runs on the generator's CPU).
                self.lab.spawn_in(&self.x, &format!("taskset -c 1 tayga -c {conf} --nodetach"));
                thread::sleep(Duration::from_millis(300));
                let running = self.lab.last_child().try_wait()?.is_none();
                ensure!(running, "tayga exited at once: {conf}");
            }
            Path::Nat64Xdp
            | Path::Nat64XdpGro
            | Path::Nat64Tc
            | Path::StatefulXdp
            | Path::StatefulTc
            | Path::MasqXdp
            | Path::Nat64TcL3 => {
                let attach =
                    if matches!(path, Path::Nat64Xdp | Path::Nat64XdpGro | Path::StatefulXdp | Path::MasqXdp)
                    {
                        "xdp"
                    } else {
                        "tc"
                    };
                // SIIT: an EAM entry for the IPv6 host. Stateful: the IPv6 host's generator
                // flow (port 40000) gets a dynamic mapping with its first frame; the IPv4
                // host's generator sends to H6_AS_V4:9, which a static entry maps to the
                // IPv6 host's port 9 (the sinks count the discard port): after the first
                // frame each way, every frame is an established session's.
                let mode = if matches!(path, Path::StatefulXdp | Path::StatefulTc) {
                    // 64 addresses: room for a million mappings (the PLAT section).
                    format!(
                        r#""mode": "nat64", "pool4": [{{"prefix": "192.0.2.0/26"}}],
    "bib": [{{"protocol": "udp", "ipv6": "[{H6}]:9", "ipv4": "{H6_AS_V4}:9"}}]"#
                    )
                } else if path == Path::MasqXdp {
                    format!(r#""dynamic-pool": "{MASQ_POOL}", "masquerade": {{"interface": "to4"}}"#)
                } else {
                    let gro = if path == Path::Nat64XdpGro { r#""xdp-tcp-gro": true, "# } else { "" };
                    format!(r#"{gro}"eamt": [{{"ipv4": "{H6_AS_V4}", "ipv6": "{H6}"}}]"#)
                };
                let interfaces = if path == Path::Nat64TcL3 {
                    r#"{"name": "tun6", "attach": "tc"}, {"name": "tun4", "attach": "tc"},
        {"name": "to6", "attach": "xdp"}, {"name": "to4", "attach": "xdp"}"#
                        .to_string()
                } else {
                    format!(
                        r#"{{"name": "to6", "attach": "{attach}"}}, {{"name": "to4", "attach": "{attach}"}}"#
                    )
                };
                let instance = self.instance();
                let config = std::env::temp_dir().join(format!("nat64-{instance}.json"));
                std::fs::write(
                    &config,
                    format!(
                        r#"{{
    "instance": "{instance}",
    "interfaces": [{interfaces}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "2001:db8:6::1",
    "pool6": "{POOL6}",
    {mode}
}}
"#
                    ),
                )?;
                self.lab.files.push(config.clone());
                let x = self.x.clone();
                self.lab.start_ctl(&x, ctl, &config, &instance);
            }
        }
        Ok(())
    }

    pub(crate) fn attach_sinks(&mut self, progs: &mut Progs, at: &[(&str, &str)]) -> Result<()> {
        for (ns, i) in at {
            let id = progs.attach("bench_sink", ns, i)?;
            self.links.push(("bench_sink", id));
        }
        Ok(())
    }

    /// The nat64 instance's name (the translating paths nat64-ctl runs).
    pub(crate) fn instance(&self) -> String {
        format!("bench{}", self.lab.tag)
    }

    pub(crate) fn detach(&mut self, progs: &mut Progs, which: &str) -> Result<()> {
        let (gone, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.links).into_iter().partition(|l| l.0 == which);
        self.links = keep;
        for (name, id) in gone {
            progs.detach(name, id)?;
        }
        Ok(())
    }

    /// Where the generator sends from and what: a host's port and the frame, or (L3)
    /// the translator's TUN device and the frame's IP packet.
    pub(crate) fn sender(&self, dir: Dir) -> (&str, Vec<u8>) {
        if self.l3 {
            return (&self.x, frame(dir)[14..].to_vec());
        }
        match dir {
            Dir::SixToFour => (&self.h6, frame(dir)),
            Dir::FourToSix => (&self.h4, frame(dir)),
        }
    }

    /// The TUN device the generator writes into (L3 paths).
    fn tun(&self, dir: Dir) -> Option<&'static str> {
        self.l3.then_some(if dir == Dir::SixToFour { "tun6" } else { "tun4" })
    }
}

/// One measurement: received packets per second and the share lost.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) pps: f64,
    pub(crate) loss: f64,
}

/// `runs` generator runs; checks that every datagram arrived in the family the path
/// must deliver (`want_slot`: 0 IPv4, 1 IPv6).
pub(crate) fn udp(
    progs: &mut Progs,
    ns: &str,
    frame: &[u8],
    cpus: &[usize],
    secs: f64,
    runs: u32,
    want_slot: usize,
) -> Result<Vec<Sample>> {
    measure(progs, runs, want_slot, |p| p.generate(ns, "eth0", frame, cpus, secs))
}

/// One `udp` run with the packets written into TUN device `tun` in `ns` (see
/// `generate_tun`).
fn udp_tun(
    progs: &mut Progs,
    ns: &str,
    tun: &str,
    packet: &[u8],
    cpus: &[usize],
    secs: f64,
    want_slot: usize,
) -> Result<Vec<Sample>> {
    measure(progs, 1, want_slot, |_| generate_tun(ns, tun, packet, cpus, secs))
}

/// Writes `packet` into TUN device `tun` in `ns` from each of `cpus` (a queue each) for
/// `secs` seconds: (packets written, seconds from the common start to the last end).
/// Each write runs the device's receive path (its TC program, the routing or the
/// redirect) on the writing CPU, as the live-frame generator's XDP_TX runs the veth's.
fn generate_tun(ns: &str, tun: &str, packet: &[u8], cpus: &[usize], secs: f64) -> Result<(u64, f64)> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
    per_cpu(ns, cpus, |barrier| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun")?;
        // struct ifreq: the name, then the flags (a short) in the union.
        let mut req = [0u8; 40];
        req[..tun.len()].copy_from_slice(tun.as_bytes());
        req[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE).to_ne_bytes());
        // SAFETY: TUNSETIFF with a 40-byte struct ifreq on an fd we hold.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, req.as_mut_ptr()) } != 0 {
            bail!("TUNSETIFF {tun}: {}", std::io::Error::last_os_error());
        }
        barrier.wait();
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            for _ in 0..1024 {
                // SAFETY: writing a buffer we own to an fd we hold.
                let n = unsafe { libc::write(file.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
                sent += (n == packet.len() as isize) as u64;
            }
        }
        Ok((sent, start.elapsed().as_secs_f64()))
    })
}

/// `runs` runs of `generate` (frames sent, seconds): what the sinks received.
fn measure(
    progs: &mut Progs,
    runs: u32,
    want_slot: usize,
    mut generate: impl FnMut(&mut Progs) -> Result<(u64, f64)>,
) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let before = progs.received()?;
        let (sent, elapsed) = generate(progs)?;
        thread::sleep(Duration::from_millis(200));
        let after = progs.received()?;
        let got = [after[0] - before[0], after[1] - before[1]];
        ensure!(
            got[1 - want_slot] == 0,
            "{} datagrams arrived as {} (the path must deliver {})",
            got[1 - want_slot],
            ["IPv4", "IPv6"][1 - want_slot],
            ["IPv4", "IPv6"][want_slot]
        );
        ensure!(got[want_slot] > 0, "no datagram arrived (sent {sent})");
        out.push(Sample {
            pps: got[want_slot] as f64 / elapsed,
            loss: 1.0 - (got[want_slot] as f64 / sent as f64).min(1.0),
        });
    }
    Ok(out)
}

/// One iperf3 run from the IPv6 host to the IPv4 host: Gbit/s received.
fn tcp(topo: &Topo, streams: u32, secs: u32) -> Result<f64> {
    let o = topo.lab.exec(&topo.h6, &format!("iperf3 -c {H4_AS_V6} -t {secs} -P {streams} -J"));
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("iperf3 printed no JSON: {text}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 failed: {}", v["error"].as_str().unwrap_or(&text)))?;
    Ok(bps / 1e9)
}

/// Median, minimum, maximum.
#[derive(Clone, Copy, Default)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

pub(crate) fn spread(mut v: Vec<f64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Spread { median, min: v[0], max: v[n - 1] }
}

/// Everything measured for one row.
#[derive(Default)]
struct Row {
    /// [direction][cpus - 1]: Mpps spread and median loss.
    udp: [[Option<(Spread, f64)>; 2]; 2],
    /// [wire, host offloads][1 stream, 4 streams]: Gbit/s.
    tcp: [[Option<Spread>; 2]; 2],
}

pub(crate) fn udp_row(samples: Vec<Sample>) -> (Spread, f64) {
    let loss = spread(samples.iter().map(|s| s.loss).collect()).median;
    (spread(samples.iter().map(|s| s.pps / 1e6).collect()), loss)
}

/// The nat64-ctl binary the benchmark runs (NAT64_CTL), once the `tools` it drives are
/// there.
pub(crate) fn ctl_and_tools(tools: &[&str]) -> Result<String> {
    let ctl = std::env::var("NAT64_CTL")
        .context("NAT64_CTL must name the nat64-ctl binary (cargo xtask bench sets it)")?;
    for tool in tools {
        ensure!(
            nat64_tests::lab::run(&format!("command -v {tool}")).status.success(),
            "`{tool}` is missing: run `cargo xtask setup`"
        );
    }
    Ok(ctl)
}

pub fn run(args: &Args) -> Result<()> {
    let ctl = ctl_and_tools(&["iperf3", "tayga", "taskset"])?;
    let (secs, tcp_secs) = if args.quick { (1.0, 2) } else { (3.0, 5) };
    let cpu_sets: [&[usize]; 2] = [&[0], &[0, 1]];
    println!();
    println!(
        "== paths: 64-byte UDP from a BPF_PROG_RUN live-frame generator ({secs} s a run), iperf3 TCP ({tcp_secs} s a run), \
         {} runs each",
        args.runs
    );
    let mut progs = Progs::load()?;
    let mut generator = Row::default();
    // Every path's topology is built and started first, each in namespaces of its own,
    // and stays up while the UDP runs go round them: run 1 of every path, then run 2
    // of every path, and so on. A ratio between two rows then compares runs taken
    // seconds apart, not minutes: the speed of a shared machine drifts by more than the
    // differences measured.
    let mut topos: Vec<(Path, Topo, Row)> = Vec::new();
    for path in Path::ALL {
        if !args.paths.is_empty() && !args.paths.iter().any(|p| p == path.key()) {
            continue;
        }
        let mut topo = Topo::build(path)?;
        if path == Path::Forward {
            // The generator alone: into a sink at the translator's own ingress.
            let x = topo.x.clone();
            topo.attach_sinks(&mut progs, &[(&x, "to6"), (&x, "to4")])?;
            for (d, dir) in [Dir::SixToFour, Dir::FourToSix].into_iter().enumerate() {
                let (ns, f) = topo.sender(dir);
                let (ns, slot) = (ns.to_string(), if dir == Dir::SixToFour { 1 } else { 0 });
                for (c, cpus) in cpu_sets.iter().enumerate() {
                    generator.udp[d][c] =
                        Some(udp_row(udp(&mut progs, &ns, &f, cpus, secs, args.runs, slot)?));
                }
            }
            topo.detach(&mut progs, "bench_sink")?;
        }
        topo.start(path, &mut progs, &ctl)?;
        let (h6, h4) = (topo.h6.clone(), topo.h4.clone());
        topo.attach_sinks(&mut progs, &[(&h6, "eth0"), (&h4, "eth0")])?;
        topos.push((path, topo, Row::default()));
    }
    // [path][direction][cpus - 1]: the UDP runs so far.
    let mut samples: Vec<[[Vec<Sample>; 2]; 2]> = topos.iter().map(|_| Default::default()).collect();
    for round in 0..args.runs {
        let started = Instant::now();
        for (i, (path, topo, _)) in topos.iter().enumerate() {
            let path = *path;
            // The same UDP path as nat64-xdp's: not measured twice.
            let udp_dirs: &[Dir] =
                if path == Path::Nat64XdpGro { &[] } else { &[Dir::SixToFour, Dir::FourToSix] };
            for (d, &dir) in udp_dirs.iter().enumerate() {
                let (ns, f) = topo.sender(dir);
                // What arrives: the other family when translated, the same one otherwise.
                let slot = match (dir, path.translates()) {
                    (Dir::SixToFour, true) | (Dir::FourToSix, false) => 0,
                    _ => 1,
                };
                for (c, cpus) in cpu_sets.iter().enumerate() {
                    // TAYGA is a single thread; a second generating CPU would only starve it.
                    if path == Path::Tayga && cpus.len() > 1 {
                        continue;
                    }
                    let one = match topo.tun(dir) {
                        Some(tun) => udp_tun(&mut progs, ns, tun, &f, cpus, secs, slot),
                        None => udp(&mut progs, ns, &f, cpus, secs, 1, slot),
                    };
                    samples[i][d][c].extend(
                        one.with_context(|| format!("{}, {}, {} CPU", path.name(), dir.name(), cpus.len()))?,
                    );
                }
            }
        }
        println!(
            "  UDP run {} of {}: every path ({:.0} s)",
            round + 1,
            args.runs,
            started.elapsed().as_secs_f64()
        );
    }
    for ((_, _, row), runs) in topos.iter_mut().zip(samples) {
        for (d, by_cpus) in runs.into_iter().enumerate() {
            for (c, v) in by_cpus.into_iter().enumerate() {
                if !v.is_empty() {
                    row.udp[d][c] = Some(udp_row(v));
                }
            }
        }
    }
    // TCP goes round the paths the same way, one iperf3 run at a time (it fills both
    // CPUs). The hosts' XDP sinks would take GSO from the middle's veths: off for TCP.
    // TCP between the hosts does not take the TUN devices: those paths are done.
    let mut rows: Vec<(Path, Row)> = Vec::new();
    let mut tcp_topos: Vec<(Path, Topo, Row)> = Vec::new();
    for (path, mut topo, row) in topos {
        topo.detach(&mut progs, "bench_sink")?;
        if path.l3() {
            drop(topo);
            rows.push((path, row));
            continue;
        }
        let h4 = topo.h4.clone();
        topo.lab.spawn_in(&h4, "iperf3 -s");
        let listening = wait_until(Duration::from_secs(5), || {
            topo.lab.exec(&h4, "ss -ltnH 'sport = :5201'").stdout.len() > 1
        });
        ensure!(listening, "iperf3 -s did not start in {h4}");
        tcp_topos.push((path, topo, row));
    }
    for (setting, offloads) in [false, true].into_iter().enumerate() {
        // An XDP program cannot tell a CHECKSUM_PARTIAL packet (a local sender's
        // offloaded checksum) from a complete one: the XDP paths only take wire traffic.
        let takes = |path: &Path| {
            !offloads
                || !matches!(path, Path::XdpFwd | Path::Nat64Xdp | Path::Nat64XdpGro | Path::StatefulXdp)
        };
        if offloads {
            for (_, topo, _) in tcp_topos.iter().filter(|(p, _, _)| takes(p)) {
                for ns in [&topo.h6, &topo.h4] {
                    topo.lab.must_in(ns, "ethtool -K eth0 tx on tso on gso on >/dev/null");
                }
            }
        }
        // [path][1 stream, 4 streams]: Gbit/s of the runs so far.
        let mut gbps: Vec<[Vec<f64>; 2]> = tcp_topos.iter().map(|_| Default::default()).collect();
        for round in 0..args.runs {
            let started = Instant::now();
            for (i, (path, topo, _)) in tcp_topos.iter().enumerate().filter(|(_, (p, _, _))| takes(p)) {
                for (s, streams) in [1u32, 4].into_iter().enumerate() {
                    gbps[i][s].push(tcp(topo, streams, tcp_secs).with_context(|| {
                        format!(
                            "{}, TCP {streams} streams{}",
                            path.name(),
                            if offloads { ", offloads" } else { "" }
                        )
                    })?);
                }
            }
            println!(
                "  TCP ({}) run {} of {}: every path ({:.0} s)",
                if offloads { "offloads" } else { "wire" },
                round + 1,
                args.runs,
                started.elapsed().as_secs_f64()
            );
        }
        for ((_, _, row), runs) in tcp_topos.iter_mut().zip(gbps) {
            for (s, v) in runs.into_iter().enumerate() {
                if !v.is_empty() {
                    row.tcp[setting][s] = Some(spread(v));
                }
            }
        }
    }
    for (path, mut topo, row) in tcp_topos {
        topo.detach(&mut progs, "bench_fwd")?;
        drop(topo);
        rows.push((path, row));
    }
    rows.sort_by_key(|(p, _)| Path::ALL.iter().position(|q| q == p));
    report(&generator, &rows, args.runs);
    Ok(())
}

pub(crate) fn fmt_spread(s: &Spread, digits: usize) -> String {
    format!("{:.d$} [{:.d$}-{:.d$}]", s.median, s.min, s.max, d = digits)
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

fn report(generator: &Row, rows: &[(Path, Row)], runs: u32) {
    let get = |p: Path| rows.iter().find(|r| r.0 == p).map(|r| &r.1);
    let udp_median = |p: Path, d: usize, c: usize| get(p).and_then(|r| r.udp[d][c]).map(|(s, _)| s.median);
    for (d, dir) in [Dir::SixToFour, Dir::FourToSix].into_iter().enumerate() {
        println!();
        println!(
            "64-byte UDP, {}: Mpps received, median [min-max] of {runs} runs; loss = share of the frames sent that \
             did not arrive; path ns = ns of CPU per packet on 1 CPU less the generator's own",
            dir.name()
        );
        println!(
            "{:<36} {:>20} {:>6} {:>20} {:>6} {:>8} {:>8} {:>9} {:>7} {:>9}",
            "path", "1 CPU", "loss", "2 CPUs", "loss", "vs fwd", "vs XDP", "vs TAYGA", "2/1 CPU", "path ns"
        );
        let line = |name: &str, r: &Row, p: Option<Path>| {
            let cell = |c: usize| match r.udp[d][c] {
                Some((s, loss)) => (fmt_spread(&s, 2), format!("{:.0}%", loss * 100.0)),
                None => ("-".to_string(), "-".to_string()),
            };
            let (c1, l1) = cell(0);
            let (c2, l2) = cell(1);
            let me = r.udp[d][0].map(|(s, _)| s.median);
            let me2 = r.udp[d][1].map(|(s, _)| s.median);
            let (vf, vx, vt) = match p {
                Some(p) => (
                    ratio(me, udp_median(p.reference(), d, 0)),
                    ratio(me, udp_median(Path::XdpFwd, d, 0)),
                    ratio(me, udp_median(Path::Tayga, d, 0)),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            // The CPU time the path itself takes per packet (1 CPU): the time per
            // received packet less the generator's own (it shares the CPU). Not for
            // TAYGA, whose user-space half runs on the other CPU.
            let gen_median = generator.udp[d][0].map(|(s, _)| s.median);
            let path_ns = match (p, me, gen_median) {
                (Some(p), Some(m), Some(g)) if p != Path::Tayga && !p.l3() && m > 0.0 && g > 0.0 => {
                    format!("{:.0}", 1e3 / m - 1e3 / g)
                }
                _ => "-".to_string(),
            };
            println!(
                "{name:<36} {c1:>20} {l1:>6} {c2:>20} {l2:>6} {vf:>8} {vx:>8} {vt:>9} {:>7} {path_ns:>9}",
                ratio(me2, me)
            );
        };
        if generator.udp[d].iter().any(Option::is_some) {
            line("generator alone (into XDP_DROP)", generator, None);
        }
        // Rows without UDP figures (the TCP-only path) are left out.
        for (p, r) in rows.iter().filter(|(_, r)| r.udp[d].iter().any(Option::is_some)) {
            line(p.name(), r, Some(*p));
        }
    }
    println!();
    println!(
        "TCP, IPv6 host -> IPv4 host (iperf3): Gbit/s received, median [min-max] of {runs} runs. \"wire\": the \
         hosts send MTU-sized segments with complete checksums (as from a NIC); \"offloads\": the veths' defaults, \
         GSO packets up to 64 KB with CHECKSUM_PARTIAL (as from a local container), which XDP cannot take"
    );
    println!(
        "{:<36} {:>15} {:>15} {:>15} {:>15} {:>7} {:>7} {:>7}",
        "path", "wire 1 stream", "wire 4", "offloads 1", "offloads 4", "vs fwd", "(offl.)", "vs TAYGA"
    );
    let tcp_median =
        |p: Path, setting: usize, s: usize| get(p).and_then(|r| r.tcp[setting][s]).map(|x| x.median);
    // Rows without TCP figures (the TUN paths) are left out.
    for (p, r) in rows.iter().filter(|(_, r)| r.tcp.iter().flatten().any(Option::is_some)) {
        let cell =
            |setting: usize, s: usize| r.tcp[setting][s].map_or("-".to_string(), |x| fmt_spread(&x, 1));
        println!(
            "{:<36} {:>15} {:>15} {:>15} {:>15} {:>7} {:>7} {:>7}",
            p.name(),
            cell(0, 0),
            cell(0, 1),
            cell(1, 0),
            cell(1, 1),
            ratio(tcp_median(*p, 0, 0), tcp_median(Path::Forward, 0, 0)),
            ratio(tcp_median(*p, 1, 0), tcp_median(Path::Forward, 1, 0)),
            ratio(tcp_median(*p, 0, 0), tcp_median(Path::Tayga, 0, 0)),
        );
    }
    println!();
    println!("targets (nat64 XDP, 1 CPU, medians):");
    for (d, dir) in [Dir::SixToFour, Dir::FourToSix].into_iter().enumerate() {
        let me = udp_median(Path::Nat64Xdp, d, 0);
        let check = |what: &str, other: Option<f64>, want: f64| {
            if let (Some(a), Some(b)) = (me, other) {
                let r = a / b;
                println!(
                    "  {}: {what}: {r:.2}x (target {want}x) {}",
                    dir.name(),
                    if r >= want { "met" } else { "NOT met" }
                );
            }
        };
        check("vs kernel forwarding", udp_median(Path::Forward, d, 0), 1.5);
        check("vs TAYGA", udp_median(Path::Tayga, d, 0), 5.0);
        check("vs XDP forwarding", udp_median(Path::XdpFwd, d, 0), 0.85);
    }
    for (p, setting, what) in [
        (Path::Nat64Xdp, 0, "nat64 XDP, wire"),
        (Path::Nat64XdpGro, 0, "nat64 XDP with xdp-tcp-gro, wire"),
        (Path::Nat64Tc, 0, "nat64 TC, wire"),
        (Path::Nat64Tc, 1, "nat64 TC, offloads"),
    ] {
        if let (Some(a), Some(b)) = (tcp_median(p, setting, 0), tcp_median(Path::Forward, setting, 0)) {
            let r = a / b;
            println!(
                "  TCP 1 stream, {what} vs kernel forwarding: {r:.2}x (target 0.5x) {}",
                if r >= 0.5 { "met" } else { "NOT met" }
            );
        }
    }
}
