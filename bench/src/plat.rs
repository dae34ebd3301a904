//! The PLAT section: IPv6-only hosts reaching one IPv4 host through the PLATs an
//! operator would choose between, side by side in one run (the paths section's
//! topology and generator):
//!
//! - kernel forwarding of the same packets, untranslated (the reference);
//! - nat64's dynamic pool behind the kernel's masquerade (XDP; conntrack and NAT44 in
//!   the kernel, a second pass through the general path on the way back);
//! - TAYGA's dynamic pool behind the same masquerade;
//! - nat64 stateful NAT64 (XDP and TC): BIB and sessions in the data path.
//!
//! The generator sends from 625 IPv6 hosts x 16 source ports (10,000 flows in turn),
//! each host a /64 of its own, to the IPv4 host's discard port; after a warm-up that
//! makes every flow's state, what is measured is established flows at 1 and 2 CPUs,
//! then (RFC 9693's throughput with N sessions) with 100,000 and 1,000,000 flows. Then
//! new flows: every frame a new 5-tuple, received per second (= sessions made per
//! second), where every frame that did not arrive went (nat64's drop counters, the
//! devices' own), the kernel memory that took (slab and per-CPU, per session made);
//! for stateful NAT64 RFC 9693's maximum connection establishment rate (the highest
//! paced new-flow rate at which no frame is lost, 1 and 2 CPUs), then on until the
//! session table is full: how many it holds, what the data path does with new flows
//! then (dropped and counted, at what rate), that established flows still cross, the
//! kernel memory the instance holds by then (slab, per-CPU and vmalloc'd, from before
//! its start) per session, what the once-a-second sweep costs over a full table, and
//! what ending every session at once costs.

use std::{thread, time::Duration};

use anyhow::{Context as _, Result, ensure};

use crate::{
    Args,
    paths::{
        Spread, ctl_and_tools, fmt_spread,
        net::{Dir, Path},
        ratio,
        topo::Topo,
        traffic::{Progs, device_drops, udp},
        udp_row,
    },
};

/// 625 hosts x 16 flows.
const FLOWS: u32 = 10_000;
/// The larger numbers of established flows (RFC 9693 §7.3's throughput with N
/// sessions).
const SCALE: [u32; 2] = [100_000, 1_000_000];
/// Generator modes (`BENCH_VARY`).
const MIX: u32 = 1;
const NEW: u32 = 2;

const ROWS: [Path; 5] = [Path::Forward, Path::MasqXdp, Path::TaygaMasq, Path::StatefulXdp, Path::StatefulTc];

/// [`kernel_kb`] with vmalloc once it holds still (what an earlier path's instance
/// freed leaves the kernel over a few seconds): two readings a second apart within
/// 1 MB, 10 s at most.
fn settled_kernel_kb() -> Result<u64> {
    let mut last = kernel_kb(true)?;
    for _ in 0..10 {
        thread::sleep(Duration::from_secs(1));
        let now = kernel_kb(true)?;
        if now.abs_diff(last) < 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Kernel memory that grows with map entries and conntrack entries (kB): slab and
/// per-CPU allocations; with `vmalloc`, also what maps take when they are made (their
/// hash buckets, preallocated elements).
fn kernel_kb(vmalloc: bool) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("/proc/meminfo")?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(field("Slab:") + field("Percpu:") + if vmalloc { field("VmallocUsed:") } else { 0 })
}

#[derive(Default)]
struct Row {
    /// Established flows, Mpps: [1 CPU, 2 CPUs].
    mix: [Option<(Spread, f64)>; 2],
    /// New flows received per second (millions), the share of new-flow frames lost,
    /// and bytes of kernel memory per flow.
    new: Option<(f64, f64, f64)>,
    /// Stateful: sessions when full, new-flow frames dropped per second while full
    /// (millions), established flows' Mpps while full.
    full: Option<(u64, f64, f64)>,
    /// Established flows with [`SCALE`] flows: [size][1 CPU, 2 CPUs].
    scale: [[Option<(Spread, f64)>; 2]; 2],
    /// The new-flow frames that did not arrive: counted by nat64 as dropped, dropped by
    /// the devices (full rings, XDP transmit errors), and neither.
    lost: Option<(u64, u64, i64)>,
    /// Stateful: the maximum connection establishment rate (M/s) at 1 and 2 CPUs, and
    /// whether the generator bounded it.
    max_rate: [Option<(f64, bool)>; 2],
    /// Stateful: kernel memory per session with the table full, everything counted from
    /// before the instance started.
    mem_all: Option<f64>,
    /// Stateful, with the table full: the sweep's run (ms, entries walked, seconds
    /// between runs), and ending every session at once (sessions, ms).
    sweep: Option<(f64, u64, f64, u64, f64)>,
}

/// State made per new flow: sessions (stateful) or conntrack entries (masquerade).
fn state_count(topo: &Topo, path: Path, ctl: &str) -> Result<u64> {
    match path {
        Path::StatefulXdp | Path::StatefulTc => Ok(counter(topo, ctl, "nat_session_created")?),
        _ => {
            let out = topo.lab.exec(&topo.x, "cat /proc/sys/net/netfilter/nf_conntrack_count");
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0))
        }
    }
}

fn counter(topo: &Topo, ctl: &str, name: &str) -> Result<u64> {
    let out = topo.lab.ctl(&topo.x, ctl, &topo.instance(), &["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("nat64-ctl stats --json")?;
    v[name]["packets"].as_u64().with_context(|| format!("no counter {name}"))
}

/// Every packet nat64 counted as dropped, whatever the reason.
fn nat64_drops(topo: &Topo, ctl: &str) -> Result<u64> {
    let out = topo.lab.ctl(&topo.x, ctl, &topo.instance(), &["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("nat64-ctl stats --json")?;
    Ok(nat64_common::counters::Counter::ALL
        .iter()
        .filter(|c| matches!(c.kind(), nat64_common::counters::Kind::Drop))
        .filter_map(|c| v[c.name()]["packets"].as_u64())
        .sum())
}

/// `nat64-ctl session flush`: (sessions ended, ms the sweep program took).
fn flush(topo: &Topo, ctl: &str) -> Result<(u64, f64)> {
    let out = topo.lab.ctl(&topo.x, ctl, &topo.instance(), &["session", "flush"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(out.status.success(), "session flush: {}", String::from_utf8_lossy(&out.stderr));
    // "ended N sessions and M BIB entries in X ms"
    let w: Vec<&str> = text.split_whitespace().collect();
    let n = w.get(1).and_then(|v| v.parse().ok()).with_context(|| format!("session flush said {text:?}"))?;
    let ms = w.get(w.len().saturating_sub(2)).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    Ok((n, ms))
}

/// Makes `flows` flows' state (MIX), sending until nat64 made as many sessions (or,
/// for the paths without a session count, for as long as that takes at 0.2 M/s).
fn warm_up(
    progs: &mut Progs,
    topo: &Topo,
    path: Path,
    ctl: &str,
    ns: &str,
    f: &[u8],
    flows: u32,
) -> Result<()> {
    progs.set_vary(MIX, flows)?;
    let stateful = matches!(path, Path::StatefulXdp | Path::StatefulTc);
    let start = if stateful { counter(topo, ctl, "nat_session_created")? } else { 0 };
    for _ in 0..(flows as f64 / 200_000.0).ceil() as usize * 2 + 2 {
        progs.generate(ns, "eth0", f, &[0], 0.5)?;
        if stateful && counter(topo, ctl, "nat_session_created")? - start >= flows as u64 {
            break;
        }
    }
    thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// RFC 9693 §7.2: the highest rate of new flows (each frame one) at which no frame is
/// lost, found by halving the interval between a rate that lost none and one that
/// lost some; the session table emptied before each trial. Total over `cpus`, M/s, and
/// whether the generator could not send faster than that (the figure is then a floor).
fn max_rate(
    progs: &mut Progs,
    topo: &Topo,
    ctl: &str,
    ns: &str,
    f: &[u8],
    cpus: &[usize],
) -> Result<(f64, bool)> {
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let (mut rate, mut bounded) = (0.25e6, false);
    for _ in 0..8 {
        flush(topo, ctl)?;
        progs.set_vary(NEW, 0)?;
        let before = progs.received()?[0];
        let (sent, secs) = progs.generate_paced(ns, "eth0", f, cpus, 0.5, rate)?;
        thread::sleep(Duration::from_millis(200));
        let got = progs.received()?[0] - before;
        // What each CPU sent a second: the rate asked for, or less when that is all
        // the generator (and, for a generator that sends synchronously, the path
        // behind it) does: no faster rate can be tried then.
        let achieved = sent as f64 / secs / cpus.len() as f64;
        if got >= sent {
            lo = lo.max(achieved);
        } else {
            hi = hi.min(rate);
        }
        if achieved < 0.9 * rate {
            bounded = true;
            hi = hi.min(rate);
        }
        rate = if hi.is_infinite() { rate * 2.0 } else { (lo + hi) / 2.0 };
    }
    Ok((lo * cpus.len() as f64 / 1e6, bounded && lo > 0.0))
}

pub fn run(args: &Args) -> Result<()> {
    let ctl = ctl_and_tools(&["tayga", "nft"])?;
    let secs = if args.quick { 1.0 } else { 3.0 };
    let cpu_sets: [&[usize]; 2] = [&[0], &[0, 1]];
    println!();
    println!(
        "== plat: 64-byte UDP from 625 IPv6 hosts (each a /64) x 16 ports to one IPv4 host ({secs} s a run, {} runs)",
        args.runs
    );
    let mut progs = Progs::load()?;
    let mut rows: Vec<(Path, Row)> = Vec::new();
    for path in ROWS {
        if !args.paths.is_empty() && !args.paths.iter().any(|p| p == path.key()) {
            continue;
        }
        let started = std::time::Instant::now();
        let mut topo = Topo::build(path)?;
        let kb_before = settled_kernel_kb()?;
        topo.start(path, &mut progs, &ctl)?;
        let h4 = topo.h4.clone();
        topo.attach_sinks(&mut progs, &[(&h4, "eth0")])?;
        let (ns, f) = topo.sender(Dir::SixToFour);
        let ns = ns.to_string();
        // What arrives: IPv4 when translated, the same IPv6 otherwise.
        let slot = if path.translates() { 0 } else { 1 };
        let mut row = Row::default();
        // Every flow's state made first.
        progs.set_vary(MIX, FLOWS)?;
        progs.generate(&ns, "eth0", &f, &[0], 0.5)?;
        thread::sleep(Duration::from_millis(300));
        for (c, cpus) in cpu_sets.iter().enumerate() {
            if path == Path::TaygaMasq && cpus.len() > 1 {
                continue; // one thread: a second generating CPU would only starve it
            }
            row.mix[c] = Some(udp_row(
                udp(&mut progs, &ns, &f, cpus, secs, args.runs, slot)
                    .with_context(|| format!("{}, {} CPU", path.name(), cpus.len()))?,
            ));
        }
        let stateful = matches!(path, Path::StatefulXdp | Path::StatefulTc);
        // Established flows with more of them: the paths that keep no state per flow and
        // stateful NAT64 (TAYGA and the masquerade's pool take one address per host:
        // 65,536 hosts do not fit).
        if matches!(path, Path::Forward) || stateful {
            for (k, flows) in SCALE.iter().enumerate() {
                if stateful {
                    flush(&topo, &ctl)?;
                }
                warm_up(&mut progs, &topo, path, &ctl, &ns, &f, *flows)?;
                for (c, cpus) in cpu_sets.iter().enumerate() {
                    row.scale[k][c] = Some(udp_row(
                        udp(&mut progs, &ns, &f, cpus, secs, args.runs.min(3), slot)
                            .with_context(|| format!("{}, {flows} flows, {} CPU", path.name(), cpus.len()))?,
                    ));
                }
            }
            if stateful {
                flush(&topo, &ctl)?;
            }
        }
        if path != Path::Forward {
            // New flows: one generator call (262,144 frames), every frame a new 5-tuple.
            progs.set_vary(NEW, 0)?;
            let (n0, kb0) = (state_count(&topo, path, &ctl)?, kernel_kb(false)?);
            let drops0 = if stateful { nat64_drops(&topo, &ctl)? } else { 0 };
            let at = [
                (topo.h6.as_str(), "eth0"),
                (topo.x.as_str(), "to6"),
                (topo.x.as_str(), "to4"),
                (topo.h4.as_str(), "eth0"),
            ];
            let dev0 = device_drops(&topo.lab, &at);
            let got0 = progs.received()?[0];
            let (sent, elapsed) = progs.generate(&ns, "eth0", &f, &[0], 0.05)?;
            thread::sleep(Duration::from_millis(300));
            let got = progs.received()?[0] - got0;
            let (n1, kb1) = (state_count(&topo, path, &ctl)?, kernel_kb(false)?);
            let made = n1.saturating_sub(n0).max(1);
            let bytes = kb1.saturating_sub(kb0) as f64 * 1024.0 / made as f64;
            let loss = 1.0 - (got as f64 / sent as f64).min(1.0);
            row.new = Some((got as f64 / elapsed / 1e6, loss, bytes));
            let drops = if stateful { nat64_drops(&topo, &ctl)? - drops0 } else { 0 };
            let dev = device_drops(&topo.lab, &at) - dev0;
            row.lost = Some((drops, dev, sent as i64 - got as i64 - drops as i64 - dev as i64));
            if stateful {
                for (c, cpus) in cpu_sets.iter().enumerate() {
                    row.max_rate[c] = Some(max_rate(&mut progs, &topo, &ctl, &ns, &f, cpus)?);
                }
                flush(&topo, &ctl)?;
                // The established flows first, then new ones until the table is full.
                warm_up(&mut progs, &topo, path, &ctl, &ns, &f, FLOWS)?;
                progs.set_vary(NEW, 0)?;
                // On until the table is full (2^20 sessions; a minute at most), then a
                // second of new flows.
                let full0 = counter(&topo, &ctl, "drop_nat_table_full")?;
                let filling = std::time::Instant::now();
                while counter(&topo, &ctl, "drop_nat_table_full")? == full0
                    && filling.elapsed().as_secs() < 60
                {
                    progs.generate(&ns, "eth0", &f, &[0], 0.5)?;
                }
                let sessions = state_now(&topo, &ctl)?;
                let d0 = counter(&topo, &ctl, "drop_nat_table_full")?;
                let (_, elapsed) = progs.generate(&ns, "eth0", &f, &[0], 1.0)?;
                let d1 = counter(&topo, &ctl, "drop_nat_table_full")?;
                let kb_full = kernel_kb(true)?;
                progs.set_vary(MIX, FLOWS)?;
                let est = udp(&mut progs, &ns, &f, &[0], secs, 1, 0)?;
                row.full = Some((sessions, (d1 - d0) as f64 / elapsed / 1e6, est[0].pps / 1e6));
                let held = state_now(&topo, &ctl)?;
                row.mem_all = Some(kb_full.saturating_sub(kb_before) as f64 * 1024.0 / held.max(1) as f64);
                // The sweep's run over the full table (every session alive), then every
                // session ended at once.
                let runs0 = sweep_runs(&topo, &ctl)?;
                let t = std::time::Instant::now();
                while sweep_runs(&topo, &ctl)? < runs0 + 2 && t.elapsed().as_secs() < 90 {
                    thread::sleep(Duration::from_millis(500));
                }
                let out = topo.lab.ctl(&topo.x, &ctl, &topo.instance(), &["status", "--json"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
                let w = &v["nat64"]["sweep"];
                let (ms, entries) =
                    (w["ms"].as_f64().unwrap_or(f64::NAN), w["entries"].as_u64().unwrap_or(0));
                let every = w["every-s"].as_f64().unwrap_or(1.0);
                let (ended, flush_ms) = flush(&topo, &ctl)?;
                row.sweep = Some((ms, entries, every, ended, flush_ms));
            }
        }
        progs.set_vary(0, 0)?;
        topo.detach(&mut progs, "bench_sink")?;
        drop(topo);
        println!("  measured {} ({:.0} s)", path.name(), started.elapsed().as_secs_f64());
        rows.push((path, row));
    }
    report(&rows, args.runs);
    Ok(())
}

/// Runs of the sweep so far.
fn sweep_runs(topo: &Topo, ctl: &str) -> Result<u64> {
    let out = topo.lab.ctl(&topo.x, ctl, &topo.instance(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
    Ok(v["nat64"]["sweep"]["runs"].as_u64().unwrap_or(0))
}

/// Sessions the instance holds now (every protocol).
fn state_now(topo: &Topo, ctl: &str) -> Result<u64> {
    let out = topo.lab.ctl(&topo.x, ctl, &topo.instance(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
    Ok(v["nat64"]["protocols"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, c)| c["sessions"].as_u64())
        .sum())
}

fn report(rows: &[(Path, Row)], runs: u32) {
    let mix =
        |p: Path, c: usize| rows.iter().find(|r| r.0 == p).and_then(|r| r.1.mix[c]).map(|(s, _)| s.median);
    println!();
    println!(
        "Established flows (10,000 in turn), IPv6 -> IPv4: Mpps received, median [min-max] of {runs} runs"
    );
    println!(
        "{:<40} {:>20} {:>6} {:>20} {:>6} {:>8} {:>9} {:>9}",
        "path", "1 CPU", "loss", "2 CPUs", "loss", "vs fwd", "vs masq", "vs TAYGA"
    );
    for (p, r) in rows {
        let cell = |c: usize| match r.mix[c] {
            Some((s, loss)) => (fmt_spread(&s, 2), format!("{:.0}%", loss * 100.0)),
            None => ("-".to_string(), "-".to_string()),
        };
        let ((c1, l1), (c2, l2)) = (cell(0), cell(1));
        let me = mix(*p, 0);
        println!(
            "{:<40} {c1:>20} {l1:>6} {c2:>20} {l2:>6} {:>8} {:>9} {:>9}",
            p.name(),
            ratio(me, mix(Path::Forward, 0)),
            ratio(me, mix(Path::MasqXdp, 0)),
            ratio(me, mix(Path::TaygaMasq, 0)),
        );
    }
    println!();
    println!(
        "New flows (every frame a new 5-tuple, 1 CPU): millions made per second; kernel memory (slab + per-CPU) \
         per flow made; stateful NAT64 with a full table (2^20 sessions)"
    );
    println!(
        "{:<40} {:>12} {:>6} {:>14} {:>12} {:>18} {:>20}",
        "path", "new Mflows/s", "loss", "bytes per flow", "sessions", "full: drops M/s", "full: established"
    );
    for (p, r) in rows {
        if *p == Path::Forward {
            continue;
        }
        let (n, l, b) = r.new.map_or(("-".into(), "-".into(), "-".into()), |(n, l, b)| {
            (format!("{n:.2}"), format!("{:.0}%", l * 100.0), format!("{b:.0}"))
        });
        let (s, d, e) = r.full.map_or(("-".into(), "-".into(), "-".into()), |(s, d, e)| {
            (s.to_string(), format!("{d:.2}"), format!("{e:.2} Mpps"))
        });
        println!("{:<40} {n:>12} {l:>6} {b:>14} {s:>12} {d:>18} {e:>20}", p.name());
    }
    println!();
    println!(
        "Established flows by how many (RFC 9693 throughput with N sessions), IPv6 -> IPv4: Mpps received"
    );
    println!("{:<40} {:>22} {:>22} {:>22}", "path", "10,000: 1 / 2 CPUs", "100,000", "1,000,000");
    for (p, r) in rows {
        if r.scale.iter().all(|s| s[0].is_none()) {
            continue;
        }
        let cell = |v: [Option<(Spread, f64)>; 2]| match v {
            [Some((a, _)), Some((b, _))] => format!("{:.2} / {:.2}", a.median, b.median),
            _ => "-".to_string(),
        };
        println!("{:<40} {:>22} {:>22} {:>22}", p.name(), cell(r.mix), cell(r.scale[0]), cell(r.scale[1]));
        let fwd = rows.iter().find(|r| r.0 == Path::Forward).map(|r| &r.1);
        if let Some(fwd) = fwd.filter(|_| *p != Path::Forward) {
            let x = |a: Option<(Spread, f64)>, b: Option<(Spread, f64)>| {
                ratio(a.map(|v| v.0.median), b.map(|v| v.0.median))
            };
            println!(
                "{:<40} {:>22} {:>22} {:>22}",
                "  vs kernel forwarding, 1 CPU",
                x(r.mix[0], fwd.mix[0]),
                x(r.scale[0][0], fwd.scale[0][0]),
                x(r.scale[1][0], fwd.scale[1][0])
            );
        }
    }
    println!();
    println!(
        "New flows, where the lost frames went: dropped and counted by nat64, dropped by the devices (ethtool -S: \
         full rings, XDP transmit errors), neither"
    );
    for (p, r) in rows {
        if let Some((d, dev, other)) = r.lost {
            println!("{:<40} nat64 {d:>9} devices {dev:>9} unexplained {other:>9}", p.name());
        }
    }
    println!();
    println!(
        "Stateful NAT64 at scale: maximum connection establishment rate (RFC 9693: the highest paced rate of new \
         flows with no frame lost), kernel memory per session with the table full (slab, per-CPU and vmalloc, \
         from before the instance started), the sweep over the full table, ending every session at once"
    );
    println!(
        "{:<40} {:>16} {:>16} {:>14} {:>30} {:>20}",
        "path", "max rate 1 CPU", "2 CPUs", "bytes/session", "sweep run / entries", "all ended at once"
    );
    for (p, r) in rows {
        if r.max_rate[0].is_none() && r.mem_all.is_none() {
            continue;
        }
        let rate = |v: Option<(f64, bool)>| {
            v.map_or("-".into(), |(m, floor)| format!("{}{m:.2} M/s", if floor { ">= " } else { "" }))
        };
        let (sw, end) = r.sweep.map_or(("-".into(), "-".into()), |(ms, e, every, n, fms)| {
            (format!("{ms:.0} ms / {e} every {every:.0} s"), format!("{fms:.0} ms / {n}"))
        });
        println!(
            "{:<40} {:>16} {:>16} {:>14} {:>30} {:>20}",
            p.name(),
            rate(r.max_rate[0]),
            rate(r.max_rate[1]),
            r.mem_all.map_or("-".into(), |b| format!("{b:.0}")),
            sw,
            end
        );
    }
    println!();
    println!("targets (stateful NAT64 XDP, 1 CPU):");
    let me = mix(Path::StatefulXdp, 0);
    for (what, other, want) in [
        ("vs kernel forwarding", mix(Path::Forward, 0), 1.5),
        ("vs the masquerade PLAT", mix(Path::MasqXdp, 0), 2.0),
    ] {
        if let (Some(a), Some(b)) = (me, other) {
            let r = a / b;
            println!(
                "  established flows {what}: {r:.2}x (target {want}x) {}",
                if r >= want { "met" } else { "NOT met" }
            );
        }
    }
    if let Some((_, r)) = rows.iter().find(|r| r.0 == Path::StatefulXdp) {
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        if let Some((m, floor)) = r.max_rate[0] {
            println!(
                "  new sessions per second, no frame lost: {}{:.0} (target 1000000) {}",
                if floor { "at least " } else { "" },
                m * 1e6,
                if floor && m < 1.0 { "not measured: the generator sends no faster" } else { met(m >= 1.0) }
            );
        }
        if let Some(b) = r.mem_all {
            println!(
                "  kernel memory per session, everything counted: {b:.0} bytes (target 200) {}",
                met(b <= 200.0)
            );
        }
        if let Some((ms, e, every, ..)) = r.sweep {
            let share = ms / (every * 1000.0) * 100.0;
            println!(
                "  sweep over {e} entries, every {every:.0} s: {share:.1}% of one CPU (target 5% at a million \
                 sessions) {}",
                met(share <= 5.0)
            );
        }
    }
}
