//! Stateful NAT64 at scale, per packet: the translator's XDP and TC programs under
//! BPF_PROG_TEST_RUN while the session table grows to 10,000, 100,000 and 1,000,000
//! sessions (one per flow; each IPv6 host a /64 of its own with 16 flows, as the plat
//! section's generator sends).
//!
//! For each size: a new flow's first packet (BIB entry, session, filtering entry and
//! the subscriber's count made), timed over the last flows that brought the table to
//! that size; an established flow's packet each way, the flows picked at random across
//! the table, so that lookups miss the caches as a busy PLAT's do. At a million, the
//! kernel memory each table holds. Every call's verdict is checked, the translated
//! frame read (the IPv4 transport address the flow was given), and the counters after
//! each row: every call was the translation the row claims, and nothing was dropped.
//!
//! This is the data path alone, without devices or a generator: what it costs bounds
//! the plat section's new-flow and established-flow rows from above.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, bail, ensure};
use aya::programs::{SchedClassifier, Xdp};
use nat64_common::counters::{Counter, Kind as CounterKind};
use nat64_ctl::load::{TC_PROGRAM, XDP_PROGRAM};
use nat64_tests::xdp::{Harness, Kind, XDP_PASS};

use crate::per_packet::{
    R4, R6, Run, SHOTS, Snapshot, Stats, delta, frame4, frame6, header, row, show, snapshot, stats, test_run,
};

const CONFIG: &str = r#"{
    "mode": "nat64",
    "interfaces": [{"name": "lo", "attach": "xdp"}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "3fff::1",
    "pool6": "64:ff9b::/96",
    "pool4": [{"prefix": "203.0.113.0/27", "ports": "1024-65535"}],
    "wkp-allow-non-global": true
}"#;

/// Sessions held when each row is measured.
const SIZES: [u32; 3] = [10_000, 100_000, 1_000_000];
/// Flows per IPv6 host (a /64 each).
const PER_HOST: u32 = 16;
/// The remote's port (discard).
const DPORT: u16 = 9;
/// TC's verdict for "on to the kernel".
const TC_ACT_OK: u32 = 0;

/// Flow `i`: its IPv6 source address and port.
fn flow(i: u32) -> (Ipv6Addr, u16) {
    let host = i / PER_HOST;
    assert!(host < 0x1_0000, "flow {i}: more hosts than this numbering has");
    (Ipv6Addr::new(0x2001, 0xdb8, 0xa, host as u16, 0, 0, 0, 5), 20_000 + (i % PER_HOST) as u16)
}

/// A run of the translator of one kind, its verdict checked.
struct Translator {
    h: Harness,
}

impl Translator {
    fn call(&self, frame: &[u8]) -> Result<Run> {
        let run = match self.h.kind {
            Kind::Xdp => {
                let p: &Xdp = self.h.ebpf.program(XDP_PROGRAM).context("no XDP program")?.try_into()?;
                test_run(p, frame, 1)?
            }
            Kind::Tc => {
                let p: &SchedClassifier =
                    self.h.ebpf.program(TC_PROGRAM).context("no TC program")?.try_into()?;
                test_run(p, frame, 1)?
            }
        };
        let want = match self.h.kind {
            Kind::Xdp => XDP_PASS,
            Kind::Tc => TC_ACT_OK,
        };
        ensure!(run.action == want, "the program returned {} (expected {want})", run.action);
        Ok(run)
    }

    /// The counters moved since `before`, checked: `want` exactly for each counter it
    /// names, and no drop of any kind.
    fn check(&self, what: &str, before: &Snapshot, want: &[(Counter, u64)]) -> Result<()> {
        let d = delta(before, &snapshot(&self.h)?);
        let got = |c: Counter| d.iter().find(|e| e.0 == c).map_or(0, |e| e.1);
        for &(c, n) in want {
            if got(c) != n {
                bail!(
                    "{what}: {} moved by {} where {n} were timed; counters moved: {}",
                    c.name(),
                    got(c),
                    show(&d)
                );
            }
        }
        if d.iter().any(|e| matches!(e.0.kind(), CounterKind::Drop)) {
            bail!("{what}: the data path dropped packets: {}", show(&d));
        }
        Ok(())
    }
}

/// The rows of one program kind.
struct Rows {
    /// Per size: a new flow's first packet, an established 6->4 and 4->6 packet.
    new: Vec<Stats>,
    /// Established 6->4, one flow every call (caches hot), at the smallest size.
    hot: Option<Stats>,
    est6: Vec<Stats>,
    est4: Vec<Stats>,
    /// At the largest size: sessions held and bytes per map.
    sessions: u64,
    memory: Vec<(&'static str, u64)>,
}

/// A small deterministic generator of flow numbers (a 64-bit LCG's high bits).
struct Pick(u64);

impl Pick {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 32) % n as u64) as u32
    }
}

/// Medians of `rounds` equal slices of `ns`.
fn per_round(ns: &[f64], rounds: u32) -> Stats {
    let chunk = (ns.len() / rounds.max(1) as usize).max(1);
    stats(ns.chunks(chunk).map(|c| stats(c.to_vec()).median).collect())
}

fn measure(kind: Kind, config: &str, sizes: &[u32], rounds: u32) -> Result<Rows> {
    let t = Translator { h: Harness::with(kind, config) };
    let mut mapped: Vec<(Ipv4Addr, u16)> = Vec::with_capacity(sizes[sizes.len() - 1] as usize);
    let mut rows = Rows {
        new: Vec::new(),
        hot: None,
        est6: Vec::new(),
        est4: Vec::new(),
        sessions: 0,
        memory: Vec::new(),
    };
    let mut pick = Pick(0x006e_6174_3634);
    for &size in sizes {
        // New flows up to `size`; the last SHOTS (or all, if fewer) are timed.
        let from = mapped.len() as u32;
        let before = snapshot(&t.h)?;
        let mut ns = Vec::with_capacity((size - from) as usize);
        for i in from..size {
            let (src, sport) = flow(i);
            let run = t.call(&frame6(src, R6, sport, DPORT)).with_context(|| {
                let d = snapshot(&t.h).map(|now| show(&delta(&before, &now))).unwrap_or_default();
                format!("new flow {i} ({src} port {sport}); counters since {from}: {d}")
            })?;
            let f = &run.frame;
            ensure!(f.len() >= 38 && f[12..14] == [0x08, 0x00], "new flow {i}: not translated to IPv4");
            mapped.push((Ipv4Addr::new(f[26], f[27], f[28], f[29]), u16::from_be_bytes([f[34], f[35]])));
            ns.push(run.ns as f64);
        }
        let made = (size - from) as u64;
        t.check(
            &format!("new flows to {size}"),
            &before,
            &[(Counter::NatSessionCreated, made), (Counter::Xlat6to4Udp, made)],
        )?;
        let timed = ns.len().min(SHOTS as usize);
        rows.new.push(per_round(&ns[ns.len() - timed..], rounds));

        // Established flows, each direction, picked at random among `size`; at the
        // smallest size also one flow every call, which the caches hold.
        let shots = rounds * SHOTS;
        let mut hot = Vec::new();
        let mut runs = vec![(6, false, &mut rows.est6), (4, false, &mut rows.est4)];
        if size == sizes[0] {
            runs.push((6, true, &mut hot));
        }
        for (dir, one, out) in runs {
            let frames: Vec<Vec<u8>> = (0..shots)
                .map(|_| {
                    let i = if one { 0 } else { pick.below(size) };
                    if dir == 6 {
                        let (src, sport) = flow(i);
                        frame6(src, R6, sport, DPORT)
                    } else {
                        let (addr, port) = mapped[i as usize];
                        frame4(R4, addr, DPORT, port)
                    }
                })
                .collect();
            let before = snapshot(&t.h)?;
            let mut ns = Vec::with_capacity(frames.len());
            for f in &frames {
                let run = t.call(f)?;
                let v = if dir == 6 { [0x08, 0x00] } else { [0x86, 0xdd] };
                ensure!(run.frame.len() > 14 && run.frame[12..14] == v, "established {dir}: not translated");
                ns.push(run.ns as f64);
            }
            let c = if dir == 6 { Counter::Xlat6to4Udp } else { Counter::Xlat4to6Udp };
            t.check(
                &format!("established {dir} at {size}"),
                &before,
                &[(c, shots as u64), (Counter::NatSessionCreated, 0)],
            )?;
            out.push(per_round(&ns, rounds));
        }
        rows.hot = rows.hot.or(hot.pop());
    }
    let nat = t.h.tables.nat.as_ref().context("no NAT tables")?;
    rows.sessions = nat.sessions.keys().count() as u64;
    rows.memory = nat.memory();
    Ok(rows)
}

/// The NAT event log's cost and volume: 10,000 new flows with `nat-log` on (the data
/// path writes each event into the ring buffer, which holds them all, so none is lost
/// and no reader runs meanwhile) against the same without, logging each BIB entry and,
/// with dynamic port blocks of 256 ports, each block; then what the 10,000 flows' events
/// (each made, and later ended) come to in each sink's format.
fn log_rows(rounds: u32, without: &Stats) -> Result<()> {
    let logged = CONFIG.replace(
        "\"wkp-allow-non-global\": true",
        "\"wkp-allow-non-global\": true, \"nat-log\": [{\"json\": \"/dev/null\"}]",
    );
    assert_ne!(logged, CONFIG);
    let blocks = logged.replace("\"nat-log\"", "\"port-block-size\": 256, \"nat-log\"");
    let n = SIZES[0];
    for (what, config, kind) in [
        ("per flow", &logged, nat64_common::maps::NatEvent::BIB_CREATED),
        ("dynamic port blocks of 256", &blocks, nat64_common::maps::NatEvent::BLOCK_ALLOCATED),
    ] {
        let (with, records) = log_run(config, kind, n, rounds)?;
        println!("{}", header(&format!("XDP, nat-log on, {what} (the ring buffer written)")));
        println!("{}", row(&format!("{n}: a new flow's first packet"), &with, without.median));
        println!(
            "  XDP: with nat-log, {what}, a new flow costs {:+.0} ns at {n} sessions ({:.2} M new flows a second \
             per CPU, {:.2} M without nat-log)",
            with.median - without.median,
            1000.0 / with.median,
            1000.0 / without.median
        );
        log_volume(what, n, &records);
    }
    Ok(())
}

/// `n` new flows under `config`: the times of the last of them, and the events of
/// `kind` the ring got, as records.
fn log_run(
    config: &str,
    kind: u8,
    n: u32,
    rounds: u32,
) -> Result<(Stats, Vec<nat64_ctl::natlog::NatRecord>)> {
    let cfg = nat64_ctl::config::Config::from_json(config)?;
    let decoder = nat64_ctl::natlog::Decoder::of(cfg.nat64.as_ref().context("not mode nat64")?);
    let mut t = Translator { h: Harness::with(Kind::Xdp, config) };
    let before = snapshot(&t.h)?;
    let mut ns = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (src, sport) = flow(i);
        ns.push(t.call(&frame6(src, R6, sport, DPORT))?.ns as f64);
    }
    t.check(
        "new flows with nat-log",
        &before,
        &[(Counter::NatSessionCreated, n as u64), (Counter::NatLogLost, 0)],
    )?;
    let map = t.h.ebpf.map_mut(nat64_common::maps::MAP_NAT_EVENTS).context("no NAT_EVENTS")?;
    let mut ring = aya::maps::RingBuf::try_from(map)?;
    let mut records = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= std::mem::size_of::<nat64_common::maps::NatEvent>() {
            // SAFETY: a NatEvent the data path wrote (size checked).
            let ev: nat64_common::maps::NatEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            // Every format writes the time in a fixed width: any time will do.
            if ev.kind == kind {
                records.push(decoder.record(&ev, 1_796_305_501_123_000_000).context("an event not decoded")?);
            }
        }
    }
    let want = if kind == nat64_common::maps::NatEvent::BIB_CREATED { n } else { n / PER_HOST };
    ensure!(
        records.len() == want as usize,
        "{} events in the ring for {n} new flows, not {want}",
        records.len()
    );
    Ok((per_round(&ns[ns.len() - (SHOTS as usize).min(ns.len())..], rounds), records))
}

/// What `made` (and as many ends) come to in each sink's format.
fn log_volume(what: &str, n: u32, made: &[nat64_ctl::natlog::NatRecord]) {
    use nat64_ctl::natlog::{NatRecord, ipfix, json_line, syslog};
    let events: Vec<NatRecord> = made
        .iter()
        .flat_map(|r| {
            let end = match *r {
                NatRecord::Bib(b) => NatRecord::Bib(nat64_ctl::natlog::BibRecord { created: false, ..b }),
                NatRecord::Block { subscriber, v4, first, last, unix_ns, .. } => {
                    NatRecord::Block { allocated: false, subscriber, v4, first, last, unix_ns }
                }
                other => other,
            };
            [*r, end]
        })
        .collect();
    let mut x = ipfix::Exporter::new(1);
    let msgs = x.data_messages(1_796_305_501, &events.iter().map(NatRecord::ipfix).collect::<Vec<_>>());
    let ipfix_bytes: usize = msgs.iter().map(|m| m.len() + 8).sum();
    let syslog_bytes: usize =
        events.iter().map(|r| syslog::message("router", 812, "plat", r).len() + 8).sum();
    let json_bytes: usize = events.iter().map(|r| json_line(r).len() + 1).sum();
    println!(
        "  log volume for {n} flows of {} subscribers, {what} ({} records, each made and ended): IPFIX {} \
         datagrams, {:.1} kB with UDP headers; syslog {} datagrams, {:.1} kB; JSON lines {:.1} kB",
        n / PER_HOST,
        events.len(),
        msgs.len(),
        ipfix_bytes as f64 / 1000.0,
        events.len(),
        syslog_bytes as f64 / 1000.0,
        json_bytes as f64 / 1000.0
    );
}

/// The section: XDP, then TC (each with its own tables, emptied in between).
pub fn run(rounds: u32) -> Result<()> {
    let mut all = Vec::new();
    for (name, kind) in [("XDP", Kind::Xdp), ("TC", Kind::Tc)] {
        all.push((name, measure(kind, CONFIG, &SIZES, rounds)?));
    }
    // The tables' buckets are made for max-sessions: with 10,000 sessions in tables made
    // for a million, every lookup still reaches into 16 MB of buckets per table.
    let small_tables = CONFIG
        .replace("\"wkp-allow-non-global\": true", "\"wkp-allow-non-global\": true, \"max-sessions\": 16384");
    assert_ne!(small_tables, CONFIG);
    let small = measure(Kind::Xdp, &small_tables, &SIZES[..1], rounds)?;
    println!();
    println!(
        "stateful NAT64 at scale: single calls, 64B UDP, {} sessions at most (one a flow, {PER_HOST} flows a \
         /64 host); new flows timed over the last {SHOTS} that filled the table to each size, established \
         flows {rounds} rounds of {SHOTS} picked at random across it (median per round); vs base = the same \
         program's established 6->4 with 10,000 sessions:",
        SIZES[2]
    );
    for (name, r) in &all {
        println!("{}", header(&format!("{name}, sessions held")));
        let base = r.est6[0].median;
        if let Some(hot) = &r.hot {
            println!("{}", row(&format!("{}: one flow every call (hot)", SIZES[0]), hot, base));
        }
        for (i, size) in SIZES.iter().enumerate() {
            println!("{}", row(&format!("{size}: a new flow's first packet"), &r.new[i], base));
            println!("{}", row(&format!("{size}: established 6->4"), &r.est6[i], base));
            println!("{}", row(&format!("{size}: established 4->6"), &r.est4[i], base));
        }
        let last = SIZES.len() - 1;
        println!(
            "  {name}: a new flow costs {:+.0} ns over an established 6->4 packet at {}: the program alone makes \
             at most {:.2} M sessions a second per CPU at that size (before the device's and the generator's \
             own cost); an established packet costs {:+.0} ns (6->4) and {:+.0} ns (4->6) more at {} than at {}",
            r.new[last].median - r.est6[last].median,
            SIZES[last],
            1000.0 / r.new[last].median,
            r.est6[last].median - r.est6[0].median,
            r.est4[last].median - r.est4[0].median,
            SIZES[last],
            SIZES[0]
        );
    }
    log_rows(rounds, &all[0].1.new[0])?;
    let base = all[0].1.est6[0].median;
    println!("{}", header("XDP, tables for 16,384 (max-sessions)"));
    println!("{}", row(&format!("{}: established 6->4", SIZES[0]), &small.est6[0], base));
    println!("{}", row(&format!("{}: established 4->6", SIZES[0]), &small.est4[0], base));
    println!(
        "  XDP: with tables made for 16,384 sessions an established packet at {} costs {:+.0} ns (6->4) and \
         {:+.0} ns (4->6) against tables made for {}; they hold {:.0} B per session",
        SIZES[0],
        small.est6[0].median - all[0].1.est6[0].median,
        small.est4[0].median - all[0].1.est4[0].median,
        SIZES[2],
        small.memory.iter().map(|m| m.1).sum::<u64>() as f64 / small.sessions.max(1) as f64
    );
    // Memory is the same for both kinds (the same tables); show the XDP instance's.
    let (_, r) = &all[0];
    let total: u64 = r.memory.iter().map(|m| m.1).sum();
    let each: Vec<String> =
        r.memory.iter().map(|(n, b)| format!("{n} {:.0} B", *b as f64 / r.sessions.max(1) as f64)).collect();
    println!(
        "  kernel memory the tables hold with {} sessions (fdinfo memlock, without the allocator's rounding): \
         {:.0} MB, {:.0} B per session ({})",
        r.sessions,
        total as f64 / 1e6,
        total as f64 / r.sessions.max(1) as f64,
        each.join(", ")
    );
    Ok(())
}
