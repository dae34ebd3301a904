//! `cargo xtask bench`: how fast nat64 is, measured next to what it replaces, in one run.
//!
//! Four sections:
//! - **paths** ([`paths`]): real traffic across network namespaces (IPv6-only sender
//!   -> translator -> IPv4-only receiver, and the reverse), side by side through plain
//!   kernel forwarding, XDP forwarding without translation, TAYGA, nat64 on XDP and
//!   nat64 on TC: packets per second of 64-byte UDP from a BPF_PROG_RUN live-frame
//!   generator with 1 and 2 CPUs, loss, iperf3 TCP with 1 and 4 streams; median and
//!   spread over several runs and the ratios between the paths.
//! - **plat** ([`plat`]): the PLATs side by side with traffic from many IPv6 sources
//!   (625 hosts x 16 flows, each host a /64) to one IPv4 host: stateful NAT64 (XDP, TC), nat64's and
//!   TAYGA's dynamic pools behind the kernel's masquerade, kernel forwarding; new
//!   sessions per second, RFC 9693's rows at 100,000 and 1,000,000 flows, memory per session, a full table.
//! - **per packet** ([`per_packet`]): ns per packet of the loaded programs under
//!   BPF_PROG_TEST_RUN next to an XDP_TX no-op, the dynamic pool's first packet, and
//!   stateful NAT64's new and established flows with 10,000 to 1,000,000 sessions
//!   held ([`nat_scale`]).
//! - **sync** ([`sync`]): session sync between two stateful nodes under 100,000 new
//!   sessions a second: how soon the standby holds them, what is lost, memory.
//!
//! `nat64-bench [--quick] [--runs N] [--section all|paths|plat|per-packet|sync] [--paths LIST]
//! [--repeat N] [--rounds R]` (root; NAT64_CTL names the nat64-ctl binary for the paths and sync sections).

mod nat_scale;
mod paths;
mod per_packet;
mod plat;
mod sync;

/// The benchmark's own programs (traffic generator, sink, XDP forwarding without
/// translation, the per-packet baseline), built from `bench-ebpf` by build.rs; empty
/// when built with AYA_BUILD_SKIP=1.
pub static BENCH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-progs"));

/// The per-packet section's baseline program (swap MACs, XDP_TX), in [`BENCH_OBJECT`].
pub const BASELINE_PROGRAM: &str = "nat64_bench_baseline";

use std::{process::ExitCode, time::Instant};

use anyhow::{Context as _, Result, bail, ensure};

#[derive(Clone, Copy, PartialEq)]
enum Section {
    All,
    Paths,
    Plat,
    PerPacket,
    Sync,
}

pub struct Args {
    section: Section,
    pub quick: bool,
    /// Runs per measurement of the paths section (median and spread).
    pub runs: u32,
    /// Only these paths (their `--paths` names); all when empty.
    pub paths: Vec<String>,
    /// BPF_PROG_TEST_RUN repetitions per call and calls per row (per-packet section).
    repeat: u32,
    rounds: u32,
}

fn usage() -> &'static str {
    "usage: nat64-bench [--quick] [--runs N] [--section all|paths|plat|per-packet|sync] [--paths LIST] [--repeat N] [--rounds R]\n  \
     --quick       shorter runs (1 s UDP, 2 s TCP, 3 runs, fewer repetitions): a few minutes\n  \
     --runs N      runs per path measurement, median and spread reported (default 3, at least 3)\n  \
     --section S   only one section: paths, plat (stateful NAT64 against the masquerade PLATs) per-packet, or sync (two nodes synchronising sessions) (default all)\n  \
     --paths LIST  only these paths, comma-separated: forward, xdp-forward, tayga, nat64-xdp, nat64-xdp-gro, nat64-tc,\n                \
     stateful-xdp, stateful-tc, forward-l3, nat64-tc-l3 (TUN devices), masquerade-xdp, tayga-masquerade\n  \
     --repeat N    BPF_PROG_TEST_RUN repetitions per call (default 2000000, quick 500000)\n  \
     --rounds R    BPF_PROG_TEST_RUN calls per row (default 5, quick 3)"
}

fn parse_args() -> Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let mut args = Args {
        section: Section::All,
        quick,
        runs: 3,
        paths: Vec::new(),
        repeat: if quick { 500_000 } else { 2_000_000 },
        rounds: if quick { 3 } else { 5 },
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        match flag.as_str() {
            "--quick" => continue,
            "-h" | "--help" => return Ok(None),
            "--runs" | "--repeat" | "--rounds" | "--section" | "--paths" => {}
            _ => bail!("unknown argument '{a}'\n{}", usage()),
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().with_context(|| format!("{flag} needs a value\n{}", usage()))?,
        };
        if flag == "--paths" {
            for p in value.split(',') {
                ensure!(
                    paths::net::keys().contains(&p),
                    "--paths: '{p}' is not one of {}",
                    paths::net::keys().join(", ")
                );
                args.paths.push(p.to_string());
            }
            continue;
        }
        if flag == "--section" {
            args.section = match value.as_str() {
                "all" => Section::All,
                "paths" => Section::Paths,
                "plat" => Section::Plat,
                "per-packet" => Section::PerPacket,
                "sync" => Section::Sync,
                _ => bail!("--section: '{value}' is not one of all, paths, plat, per-packet, sync"),
            };
            continue;
        }
        let n: u32 = value
            .replace('_', "")
            .parse()
            .with_context(|| format!("{flag}: '{value}' is not a number from 1 to {}", u32::MAX))?;
        ensure!(n >= 1, "{flag} must be at least 1");
        match flag.as_str() {
            "--runs" => {
                ensure!(n >= 3, "--runs must be at least 3 (a median and a spread need three)");
                args.runs = n;
            }
            "--repeat" => args.repeat = n,
            _ => args.rounds = n,
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nat64-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    nat64_tests::require_root();
    let started = Instant::now();
    println!(
        "nat64-bench: kernel {}, CPU {}{}",
        per_packet::kernel_release(),
        per_packet::cpu_model(),
        if args.quick { ", quick mode" } else { "" }
    );
    let result = (|| {
        if matches!(args.section, Section::All | Section::Paths) {
            paths::run(&args)?;
        }
        if matches!(args.section, Section::All | Section::Plat) {
            plat::run(&args)?;
        }
        if matches!(args.section, Section::All | Section::PerPacket) {
            per_packet::run(args.repeat, args.rounds)?;
        }
        if matches!(args.section, Section::All | Section::Sync) {
            sync::run(&args)?;
        }
        Ok::<(), anyhow::Error>(())
    })();
    match result {
        Ok(()) => {
            println!("done in {:.1} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nat64-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}
