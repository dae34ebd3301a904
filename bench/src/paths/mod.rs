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

pub(crate) mod net;
pub(crate) mod topo;
pub(crate) mod traffic;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nat64_tests::lab::wait_until;

use self::{
    net::{Dir, Path},
    topo::{Topo, tcp},
    traffic::{Progs, Sample, udp, udp_tun},
};
use crate::Args;

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
