//! The benchmark runs: `nat64-bench --quick` (what `cargo xtask bench --quick` runs)
//! builds every path of its sections (paths, PLAT, per packet, sync), sends its
//! traffic and prints its tables. Nothing here asserts a
//! speed (figures belong to the benchmark's output); it asserts that every row was
//! measured. The benchmark itself refuses to report a row whose packets did not all
//! arrive in the family the path must deliver, or whose BPF_PROG_TEST_RUN
//! repetitions were not the translations it claims.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_nat64-bench");
const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-bench");

#[test]
fn quick_benchmark_measures_every_path() {
    nat64_tests::require_root();
    let out = Command::new(BENCH).arg("--quick").env("NAT64_CTL", CTL).output().expect("running nat64-bench");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "nat64-bench --quick failed:\n{text}");
    // The paths section, then the PLAT section (its own rows, after "== plat").
    let (paths, plat) = text.split_once("== plat").unwrap_or_else(|| panic!("no PLAT section:\n{text}"));
    // A row is the path's name, then its figures after two spaces; a name may carry a
    // parenthesised note ("kernel forwarding (no translation)"). "nat64, XDP" must
    // not match "nat64, XDP, xdp-tcp-gro".
    let rows = |name: &str| {
        paths
            .lines()
            .filter(|l| {
                let row = l.split("  ").next().unwrap_or("");
                row == name || row.strip_prefix(name).is_some_and(|rest| rest.starts_with(" ("))
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // UDP: both directions, each path measured with 1 CPU (a number, not "-").
    for path in [
        "generator alone",
        "kernel forwarding",
        "XDP forwarding",
        "TAYGA",
        "nat64, XDP",
        "nat64, TC",
        "nat64 stateful (NAT64), XDP",
        "nat64 stateful (NAT64), TC",
        "TUN (L3): kernel forwarding",
        "TUN (L3): nat64, TC",
    ] {
        let r = rows(path);
        // two UDP tables, and the TCP table for the paths TCP between the hosts takes
        // (not the generator, not the TUN devices: UDP only there)
        let want = if path == "generator alone" || path.starts_with("TUN") { 2 } else { 3 };
        assert_eq!(r.len(), want, "rows for {path}:\n{text}");
        for line in &r[..2] {
            let first = line[36..].split_whitespace().next().unwrap_or("-");
            assert!(first.parse::<f64>().is_ok_and(|v| v > 0.0), "{path}: no 1-CPU figure in `{line}`");
        }
        if want == 3 {
            let first = r[2][36..].split_whitespace().next().unwrap_or("-");
            assert!(first.parse::<f64>().is_ok_and(|v| v > 0.0), "{path}: no TCP figure in `{}`", r[2]);
        }
    }
    // xdp-tcp-gro changes TCP only: one row, in the TCP table, with a figure.
    let gro = rows("nat64, XDP, xdp-tcp-gro");
    assert_eq!(gro.len(), 1, "rows for nat64, XDP, xdp-tcp-gro:\n{text}");
    let first = gro[0][36..].split_whitespace().next().unwrap_or("-");
    assert!(first.parse::<f64>().is_ok_and(|v| v > 0.0), "xdp-tcp-gro: no TCP figure in `{}`", gro[0]);
    // PLAT: established flows for every path (1 CPU), new flows for the translators,
    // the full table's size for stateful NAT64.
    // The first two tables (established flows, new flows) end at the table of flow
    // counts; the RFC 9693 tables follow.
    let (first, scale) = plat
        .split_once("Established flows by how many")
        .unwrap_or_else(|| panic!("no table of established flows by how many:\n{plat}"));
    let plat_rows = |prefix: &str| {
        first.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect::<Vec<_>>()
    };
    for path in [
        "kernel forwarding",
        "nat64 dynamic pool + masquerade, XDP",
        "TAYGA dynamic pool + masquerade",
        "nat64 stateful (NAT64), XDP",
        "nat64 stateful (NAT64), TC",
    ] {
        let r = plat_rows(path);
        let want = if path == "kernel forwarding" { 1 } else { 2 };
        assert_eq!(r.len(), want, "PLAT rows for {path}:\n{plat}");
        let first = r[0][40..].split_whitespace().next().unwrap_or("-");
        assert!(first.parse::<f64>().is_ok_and(|v| v > 0.0), "{path}: no established figure in `{}`", r[0]);
        if want == 2 {
            let cols: Vec<&str> = r[1][40..].split_whitespace().collect();
            assert!(cols[0].parse::<f64>().is_ok(), "{path}: no new-flow figure in `{}`", r[1]);
            if path.starts_with("nat64 stateful") {
                assert!(
                    cols[3].parse::<u64>().is_ok_and(|n| n > 1_000_000),
                    "{path}: the table filled: `{}`",
                    r[1]
                );
            }
        }
    }
    // RFC 9693: established flows at 100,000 and 1,000,000 (1 and 2 CPUs) for forwarding
    // and stateful NAT64; the lost frames accounted; the establishment rate, memory per
    // session and the sweep's cost for stateful NAT64.
    let scale_rows = |prefix: &str| {
        scale.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect::<Vec<_>>()
    };
    for path in ["kernel forwarding", "nat64 stateful (NAT64), XDP", "nat64 stateful (NAT64), TC"] {
        let r = scale_rows(path);
        let figures: Vec<f64> = r[0][40..]
            .split(|c: char| c.is_whitespace() || c == '/')
            .filter_map(|w| w.parse::<f64>().ok())
            .collect();
        assert!(
            figures.len() == 6 && figures.iter().all(|v| *v > 0.0),
            "{path}: flows by how many `{}`",
            r[0]
        );
        if path.starts_with("nat64 stateful") {
            let lost = &r[1];
            assert!(lost.contains("unexplained"), "{path}: where the lost frames went `{lost}`");
            let at_scale = &r[2];
            let rates: Vec<f64> =
                at_scale[40..].split_whitespace().filter_map(|w| w.parse::<f64>().ok()).collect();
            // max rate 1 CPU, 2 CPUs, bytes/session, sweep ms, entries, every s, flush ms, ended
            assert!(rates.len() >= 8 && rates[..3].iter().all(|v| *v > 0.0), "{path}: at scale `{at_scale}`");
            assert!(rates[rates.len() - 1] > 1_000_000.0, "{path}: a full table ended at once `{at_scale}`");
        }
    }
    for needle in [
        "targets (nat64 XDP",
        "targets (stateful NAT64 XDP",
        "kernel time per repetition",
        "nat64 TC 4->6",
        "the skb helpers of a TC translation",
        "bpf_skb_change_proto 6->4, then 4->6",
        "first-packet latency",
        "10000: one flow every call (hot)",
        "1000000: a new flow's first packet",
        "1000000: established 4->6",
        "XDP, tables for 16,384 (max-sessions)",
    ] {
        assert!(text.contains(needle), "no `{needle}` in the output:\n{text}");
    }
    // Stateful NAT64 at scale: both programs' rows, and the tables' memory with every
    // one of the million sessions held.
    for kind in ["XDP", "TC"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{kind}: a new flow costs")))
            .unwrap_or_else(|| panic!("no {kind} new-flow summary in the output:\n{text}"));
        assert!(line.contains("M sessions a second per CPU"), "{line}");
    }
    let mem = text
        .lines()
        .find(|l| l.contains("kernel memory the tables hold with"))
        .unwrap_or_else(|| panic!("no table memory in the output:\n{text}"));
    assert!(mem.contains("with 1000000 sessions"), "{mem}");
    for table in ["BIB6", "BIB4", "SESSIONS", "NAT_ADF", "NAT_SUBSCRIBERS"] {
        assert!(mem.contains(table), "{table} missing from `{mem}`");
    }
    // Session sync: three runs, each accounted for, and the summary's rows.
    let (_, sync) = text.split_once("== sync").unwrap_or_else(|| panic!("no sync section:\n{text}"));
    let runs = sync.lines().filter(|l| l.starts_with("run ") && l.contains(" sessions on A, ")).count();
    assert_eq!(runs, 3, "three sync runs:\n{sync}");
    for row in [
        "new sessions a second on A",
        "share on B when A's stream ended",
        "share on B in the end",
        "B holds all it will, after the stream",
        "events lost (ring, queue, missing datagrams)",
        "nat64-ctl memory growth, A",
        "nat64-ctl memory growth, B",
    ] {
        assert!(sync.lines().any(|l| l.starts_with(row)), "no `{row}` row:\n{sync}");
    }
}
