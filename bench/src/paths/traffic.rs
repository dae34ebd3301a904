//! Traffic: the benchmark programs (`bench_gen`, `bench_sink`) loaded and driven,
//! the TUN writers, and a run's packets counted at both ends.

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
use nat64_tests::xdp::{ctx_bytes, xdp_md};

use super::net::{enter_netns, ifindex, in_netns};

/// Frames per BPF_PROG_RUN call of the generator (one call: 30-300 ms).
pub(crate) const GEN_REPEAT: u32 = 262_144;
/// Frames the kernel builds per batch in live mode (its default, NAPI's budget).
pub(crate) const GEN_BATCH: u32 = 64;

/// The benchmark's own programs (generator, sink, XDP forwarding), loaded once.
pub(crate) struct Progs {
    pub(crate) ebpf: Ebpf,
    /// The kernel runs the generator in live-frame mode (BPF_PROG_RUN with
    /// `BPF_F_TEST_XDP_LIVE_FRAMES`); else the frames go out of AF_PACKET sockets
    /// ([`Progs::afp_generate`]).
    pub(crate) live: bool,
    /// `set_vary`'s mode and flows, for the AF_PACKET generator.
    pub(crate) vary: (u32, u32),
    /// Per CPU: frames varied so far (as `BENCH_SEQ` for `bench_gen`).
    pub(crate) seq: Vec<std::sync::atomic::AtomicU32>,
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

    pub(crate) fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        Ok(self.ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?)
    }

    /// Attaches `name` in native mode to `ifname` in namespace `ns`.
    pub(crate) fn attach(&mut self, name: &str, ns: &str, ifname: &str) -> Result<XdpLinkId> {
        let prog = self.prog(name)?;
        in_netns(ns, || {
            prog.attach(ifname, XdpMode::Driver)
                .with_context(|| format!("attaching {name} to {ifname} in {ns}"))
        })
    }

    pub(crate) fn detach(&mut self, name: &str, id: XdpLinkId) -> Result<()> {
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

    pub(crate) fn set_frame(&mut self, f: &[u8]) -> Result<()> {
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

    pub(crate) fn set_ports(&mut self, ports: &[u32]) -> Result<()> {
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
    pub(crate) fn send(
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
    pub(crate) fn afp_generate(
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
pub(crate) fn live_frames(ebpf: &Ebpf) -> Result<bool> {
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
pub(crate) fn vary_frame(b: &mut [u8], template: &[u8], mode: u32, flows: u32, cpu: u32, n: u32) {
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
pub(crate) fn pace(start: Instant, sent: u64, rate: f64) {
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
pub(crate) fn per_cpu(
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
pub(crate) fn udp_tun(
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
pub(crate) fn generate_tun(
    ns: &str,
    tun: &str,
    packet: &[u8],
    cpus: &[usize],
    secs: f64,
) -> Result<(u64, f64)> {
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
pub(crate) fn measure(
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
