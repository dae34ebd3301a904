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
//! The generator sends from 1,000 IPv6 hosts x 10 source ports (10,000 flows in turn)
//! to the IPv4 host's discard port; after a warm-up that makes every flow's state,
//! what is measured is established flows at 1 and 2 CPUs. Then new flows: every frame
//! a new 5-tuple, received per second (= sessions made per second), the kernel memory
//! that took (slab and per-CPU, per session made); for stateful NAT64, on until the
//! session table is full: how many it holds, what the data path does with new flows
//! then (dropped and counted, at what rate), and that established flows still cross.

use std::{thread, time::Duration};

use anyhow::{Context as _, Result};

use crate::{
    Args,
    paths::{Dir, Path, Progs, Spread, Topo, ctl_and_tools, fmt_spread, ratio, udp, udp_row},
};

/// 1,000 hosts x 10 flows.
const FLOWS: u32 = 10_000;
/// Generator modes (`BENCH_VARY`).
const MIX: u32 = 1;
const NEW: u32 = 2;

const ROWS: [Path; 5] = [Path::Forward, Path::MasqXdp, Path::TaygaMasq, Path::StatefulXdp, Path::StatefulTc];

/// Kernel memory that grows with map entries and conntrack entries (kB): slab and
/// per-CPU allocations.
fn kernel_kb() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("/proc/meminfo")?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(field("Slab:") + field("Percpu:"))
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

pub fn run(args: &Args) -> Result<()> {
    let ctl = ctl_and_tools(&["tayga", "nft"])?;
    let secs = if args.quick { 1.0 } else { 3.0 };
    let cpu_sets: [&[usize]; 2] = [&[0], &[0, 1]];
    println!();
    println!(
        "== plat: 64-byte UDP from 1,000 IPv6 hosts x 10 ports to one IPv4 host ({secs} s a run, {} runs)",
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
        if path != Path::Forward {
            // New flows: one generator call (262,144 frames), every frame a new 5-tuple.
            progs.set_vary(NEW, 0)?;
            let (n0, kb0) = (state_count(&topo, path, &ctl)?, kernel_kb()?);
            let s = udp(&mut progs, &ns, &f, &[0], 0.05, 1, 0)?;
            thread::sleep(Duration::from_millis(300));
            let (n1, kb1) = (state_count(&topo, path, &ctl)?, kernel_kb()?);
            let made = n1.saturating_sub(n0).max(1);
            let bytes = kb1.saturating_sub(kb0) as f64 * 1024.0 / made as f64;
            row.new = Some((s[0].pps / 1e6, s[0].loss, bytes));
            if matches!(path, Path::StatefulXdp | Path::StatefulTc) {
                // On until the table is full (2^20 sessions), then a second of new flows.
                let mut calls = 0;
                while counter(&topo, &ctl, "drop_nat_table_full")? == 0 && calls < 12 {
                    progs.generate(&ns, "eth0", &f, &[0], 0.05)?;
                    calls += 1;
                }
                let sessions = counter(&topo, &ctl, "nat_session_created")?;
                let d0 = counter(&topo, &ctl, "drop_nat_table_full")?;
                let (_, elapsed) = progs.generate(&ns, "eth0", &f, &[0], 1.0)?;
                let d1 = counter(&topo, &ctl, "drop_nat_table_full")?;
                progs.set_vary(MIX, FLOWS)?;
                let est = udp(&mut progs, &ns, &f, &[0], secs, 1, 0)?;
                row.full = Some((sessions, (d1 - d0) as f64 / elapsed / 1e6, est[0].pps / 1e6));
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
    if let Some((_, r)) = rows.iter().find(|r| r.0 == Path::StatefulXdp)
        && let Some((n, _, b)) = r.new
    {
        println!(
            "  new sessions per second: {:.0} (target 500000) {}",
            n * 1e6,
            if n >= 0.5 { "met" } else { "NOT met" }
        );
        let mb = b * 1e6 / (1024.0 * 1024.0);
        println!(
            "  1,000,000 sessions: {mb:.0} MB at the measured bytes per session (target 256 MB) {}",
            if mb <= 256.0 { "met" } else { "NOT met" }
        );
    }
}
