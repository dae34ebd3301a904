//! Session sync under load ([`nat64_tests::sync_load`]): node A makes new sessions at
//! 100,000 a second for 10 s (real frames of new UDP flows into its XDP program, from
//! an AF_PACKET generator); node B takes them over the sync link. Per run: the rate A
//! reached, what B held when A's stream ended, how long B took to hold all it would,
//! what was lost and where, and how each nat64-ctl's memory moved. Median and spread
//! over the runs.

use anyhow::{Result, ensure};
use nat64_tests::sync_load::{Report, run as load};

use crate::{
    Args,
    paths::{Spread, ctl_and_tools, spread},
};

const RATE: u32 = 100_000;

fn show(name: &str, unit: &str, s: Spread) {
    println!("{name:<44} {:>12.2} {:>12.2} {:>12.2} {unit}", s.median, s.min, s.max);
}

pub fn run(args: &Args) -> Result<()> {
    let ctl = ctl_and_tools(&[])?;
    let (secs, runs) = if args.quick { (3, 3) } else { (10, args.runs.max(3)) };
    println!();
    println!(
        "== sync: {RATE} new sessions a second on node A for {secs} s, node B synchronising; {runs} runs"
    );
    let mut reports: Vec<Report> = Vec::new();
    for i in 0..runs {
        let r = load(&ctl, RATE, secs);
        println!(
            "run {}: {} frames in {:.2} s, {} sessions on A, {} on B at the end of the stream, {} after {:.2} s; lost: \
             {} ring, {} queue, {} datagrams missing; B refused {}; nat64-ctl RSS A {} -> {} KiB, B {} -> {} KiB",
            i + 1,
            r.sent,
            r.send_secs,
            r.made_on_a,
            r.on_b_at_end,
            r.on_b,
            r.catch_up_secs,
            r.lost_ring,
            r.dropped_queue,
            r.missing_datagrams,
            r.refused_on_b,
            r.rss_a.0,
            r.rss_a.1,
            r.rss_b.0,
            r.rss_b.1
        );
        ensure!(r.refused_on_b == 0, "node B refused records of node A: {r:?}");
        reports.push(r);
    }
    let col = |f: &dyn Fn(&Report) -> f64| spread(reports.iter().map(f).collect());
    println!("{:<44} {:>12} {:>12} {:>12}", "", "median", "min", "max");
    show("new sessions a second on A", "", col(&|r| r.made_on_a as f64 / r.send_secs));
    show(
        "share on B when A's stream ended",
        "%",
        col(&|r| 100.0 * r.on_b_at_end as f64 / r.made_on_a.max(1) as f64),
    );
    show("share on B in the end", "%", col(&|r| 100.0 * r.on_b as f64 / r.made_on_a.max(1) as f64));
    show("B holds all it will, after the stream", "s", col(&|r| r.catch_up_secs));
    show(
        "events lost (ring, queue, missing datagrams)",
        "",
        col(&|r| (r.lost_ring + r.dropped_queue + r.missing_datagrams) as f64),
    );
    show("nat64-ctl memory growth, A", "KiB", col(&|r| r.rss_a.1 as f64 - r.rss_a.0 as f64));
    show("nat64-ctl memory growth, B", "KiB", col(&|r| r.rss_b.1 as f64 - r.rss_b.0 as f64));
    println!(
        "(B's counts are read through nat64-ctl stats, which nat64-ctl updates every 250 ms: the catch-up time is \
         good to that)"
    );
    Ok(())
}
