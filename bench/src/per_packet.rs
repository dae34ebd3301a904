//! Per packet: nanoseconds per packet of the real, kernel-verified translator under
//! BPF_PROG_TEST_RUN, next to a baseline XDP program that only swaps the MAC
//! addresses and returns XDP_TX, measured in the same run.
//!
//! Each measurement is one
//! BPF_PROG_TEST_RUN call with `repeat = N`; the kernel reports the average time per
//! repetition. `R` rounds are taken of each and the median, min and max printed.
//!
//! BPF_PROG_TEST_RUN on XDP does not restore the packet between repetitions: the
//! program sees its own output from the previous repetition. This binary checks that
//! first (and adapts if a kernel ever behaves otherwise), and then verifies with the
//! translator's counters, after every measurement, that each repetition it timed was
//! a translation of the kind it claims.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, bail, ensure};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp};
use nat64_common::counters::Counter;
use nat64_ctl::load::{TC_PROGRAM, XDP_PROGRAM};

use crate::BASELINE_PROGRAM;
use nat64_tests::{
    packet::{L4, V4Opts, V6Opts, eth4, eth6, ipv4, ipv6},
    xdp::{Harness, Kind, TEST_CONFIG, XDP_PASS, XDP_TX},
};

/// IPv6 host 2001:db8:6::5 is 192.0.2.5 by EAM; 8.8.8.8 is 64:ff9b::808:808 by pool6.
const H6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 5);
const H4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
pub(crate) const R6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0x808, 0x808);
pub(crate) const R4: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

/// Ethernet frame size the benchmark aims for (without FCS).
const FRAME: usize = 64;
const ETH: usize = 14;
const UDP: usize = 8;

/// The TC verdict for "on to the kernel".
const TC_ACT_OK: u32 = 0;

/// BPF_PROG_TEST_RUN calls (repeat = 1 each) per round of the single-shot table.
pub(crate) const SHOTS: u32 = 20_000;

struct Args {
    repeat: u32,
    rounds: u32,
}

fn udp(sport: u16, dport: u16, len: usize) -> L4 {
    L4::Udp { sport, dport, data: (0..len).map(|i| i as u8).collect(), zero_checksum: false }
}

/// A UDP-in-IPv6 Ethernet frame of `FRAME` bytes (2 bytes of UDP payload).
pub(crate) fn frame6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let f = eth6(&ipv6(src, dst, V6Opts::default(), &udp(sport, dport, FRAME - ETH - 40 - UDP)));
    assert_eq!(f.len(), FRAME);
    f
}

/// A UDP-in-IPv4 Ethernet frame of `FRAME` bytes (22 bytes of UDP payload).
pub(crate) fn frame4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let f = eth4(&ipv4(src, dst, V4Opts::default(), &[], &udp(sport, dport, FRAME - ETH - 20 - UDP)));
    assert_eq!(f.len(), FRAME);
    f
}

/// One BPF_PROG_TEST_RUN call.
pub(crate) struct Run {
    pub action: u32,
    pub frame: Vec<u8>,
    /// The kernel's average time per repetition (integer nanoseconds).
    pub ns: u64,
}

pub(crate) fn test_run<P>(prog: &P, frame: &[u8], repeat: u32) -> Result<Run>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.repeat = repeat;
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    out.truncate(r.data_size_out as usize);
    Ok(Run { action: r.return_value, frame: out, ns: r.duration.as_nanos() as u64 })
}

/// Packets and bytes per counter, in `Counter::ALL` order.
pub(crate) type Snapshot = Vec<(Counter, u64, u64)>;

pub(crate) fn snapshot(h: &Harness) -> Result<Snapshot> {
    Ok(h.tables.counters()?.into_iter().map(|(c, v)| (c, v.packets, v.bytes)).collect())
}

/// The counters that moved between two snapshots: (counter, packets, bytes).
pub(crate) fn delta(before: &Snapshot, after: &Snapshot) -> Snapshot {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| a.1 != b.1 || a.2 != b.2)
        .map(|(b, a)| (b.0, a.1 - b.1, a.2 - b.2))
        .collect()
}

pub(crate) fn show(d: &Snapshot) -> String {
    if d.is_empty() {
        return "no counter moved".to_string();
    }
    d.iter().map(|(c, p, b)| format!("{} +{p} ({b} B)", c.name())).collect::<Vec<_>>().join(", ")
}

pub(crate) fn moved(d: &Snapshot, c: Counter) -> (u64, u64) {
    d.iter().find(|e| e.0 == c).map_or((0, 0), |e| (e.1, e.2))
}

/// What a program does to the frames it is given, repetition after repetition.
#[derive(Clone, Copy, PartialEq)]
enum Semantics {
    /// Every repetition starts again from the input bytes.
    Fresh,
    /// Every repetition runs on the previous repetition's output.
    Chained,
}

/// The expected counter movement of one call: the frames its repetitions see, cycled.
/// Each step is (translation counter, frame length on arrival).
struct Expect {
    steps: Vec<(Counter, u64)>,
}

impl Expect {
    fn none() -> Self {
        Self { steps: Vec::new() }
    }

    fn for_repeat(&self, repeat: u64) -> Snapshot {
        let mut want: Snapshot = Vec::new();
        let mut add = |c: Counter, p: u64, b: u64| match want.iter_mut().find(|e| e.0 == c) {
            Some(e) => {
                e.1 += p;
                e.2 += b;
            }
            None => want.push((c, p, b)),
        };
        let n = self.steps.len() as u64;
        for (i, &(c, len)) in self.steps.iter().enumerate() {
            // repetitions i, i + n, i + 2n, ... see this step's frame
            let times = if repeat > i as u64 { (repeat - i as u64).div_ceil(n) } else { 0 };
            if times > 0 {
                add(c, times, times * len);
                add(Counter::FwdKernel, times, times * len);
            }
        }
        let mut sorted: Snapshot =
            Counter::ALL.iter().filter_map(|&c| want.iter().find(|e| e.0 == c).copied()).collect();
        sorted.retain(|e| e.1 != 0);
        sorted
    }
}

/// One row of the table: a program, the frame it is given, what must happen.
struct Case {
    name: String,
    program: &'static str,
    /// A TC program (run by the TC harness; TC_ACT_OK is 0).
    tc: bool,
    frame: Vec<u8>,
    action: u32,
    expect: Expect,
    /// After an even number of repetitions the output must be the input, byte for
    /// byte (a MAC swap done twice; IPv6 -> IPv4 -> IPv6 with the Kernel route).
    same_after_even: bool,
}

pub(crate) struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub(crate) fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Stats { median, min: v[0], max: v[n - 1] }
}

struct Bench {
    h: Harness,
    /// The TC program's own load of the translator (its own maps and counters).
    tc: Harness,
    /// The benchmark's object, for the baseline.
    progs: aya::Ebpf,
}

impl Bench {
    fn prog(&self, name: &str) -> Result<&Xdp> {
        let p = self.h.ebpf.program(name).or_else(|| self.progs.program(name));
        Ok(p.with_context(|| format!("no program {name}"))?.try_into()?)
    }

    fn harness(&self, case: &Case) -> &Harness {
        if case.tc { &self.tc } else { &self.h }
    }

    /// One BPF_PROG_TEST_RUN call of the case's program.
    fn call(&self, case: &Case, repeat: u32) -> Result<Run> {
        if case.tc {
            let p: &SchedClassifier = self
                .tc
                .ebpf
                .program(case.program)
                .with_context(|| format!("no program {}", case.program))?
                .try_into()?;
            test_run(p, &case.frame, repeat)
        } else {
            test_run(self.prog(case.program)?, &case.frame, repeat)
        }
    }

    /// One call, its counter movement checked against `expect` (all other counters
    /// must stay put). Returns the run.
    fn checked(&self, case: &Case, repeat: u32) -> Result<Run> {
        let before = snapshot(self.harness(case))?;
        let run = self.call(case, repeat)?;
        let got = delta(&before, &snapshot(self.harness(case))?);
        let want = case.expect.for_repeat(repeat as u64);
        if got != want {
            bail!(
                "{}: the repetitions were not what this benchmark claims to time, refusing to report it\n  \
                 repeat = {repeat}\n  counters moved: {}\n  expected:       {}",
                case.name,
                show(&got),
                show(&want)
            );
        }
        if run.action != case.action {
            bail!("{}: the program returned {} (expected {})", case.name, run.action, case.action);
        }
        if case.same_after_even && repeat.is_multiple_of(2) && run.frame != case.frame {
            bail!(
                "{}: after {repeat} repetitions the frame is not back to the input:\n   got: {:02x?}\n  want: {:02x?}",
                case.name,
                run.frame,
                case.frame
            );
        }
        Ok(run)
    }

    /// `rounds` calls of `repeat` repetitions: the kernel's ns per repetition.
    fn measure(&self, case: &Case, repeat: u32, rounds: u32) -> Result<Stats> {
        let mut ns = Vec::new();
        for _ in 0..rounds {
            ns.push(self.checked(case, repeat)?.ns as f64);
        }
        Ok(stats(ns))
    }

    /// `rounds` rounds of SHOTS calls with repeat = 1: per round, the median of the
    /// kernel's time for a single repetition (which includes reading the clock).
    fn measure_single(&self, case: &Case, rounds: u32) -> Result<Stats> {
        let mut per_round = Vec::new();
        for _ in 0..rounds {
            let before = snapshot(self.harness(case))?;
            let mut ns = Vec::with_capacity(SHOTS as usize);
            for _ in 0..SHOTS {
                let run = self.call(case, 1)?;
                if run.action != case.action {
                    bail!("{}: the program returned {} (expected {})", case.name, run.action, case.action);
                }
                ns.push(run.ns as f64);
            }
            let got = delta(&before, &snapshot(self.harness(case))?);
            let want = case
                .expect
                .for_repeat(1)
                .into_iter()
                .map(|(c, p, b)| (c, p * SHOTS as u64, b * SHOTS as u64))
                .collect::<Vec<_>>();
            if got != want {
                bail!(
                    "{} (single shots): counters moved: {}; expected: {}",
                    case.name,
                    show(&got),
                    show(&want)
                );
            }
            per_round.push(stats(ns).median);
        }
        Ok(stats(per_round))
    }
}

/// Runs an IPv6 frame H6 -> R6 (a plain 6->4 translation whose IPv4 result,
/// 192.0.2.5 -> 8.8.8.8, is not for the translator) with repeat = 2 and reads the
/// counters: two translations mean fresh copies; one translation and one
/// pass_ipv4_not_ours (of the 44-byte IPv4 result) mean chained repetitions.
fn probe(b: &Bench, direct6: &[u8]) -> Result<(Semantics, String)> {
    let prog = b.prog(XDP_PROGRAM)?;
    let before = snapshot(&b.h)?;
    let run = test_run(prog, direct6, 2)?;
    let d = delta(&before, &snapshot(&b.h)?);
    let xlat = moved(&d, Counter::Xlat6to4Udp);
    let pass4 = moved(&d, Counter::PassV4NotOurs);
    let v4_len = (FRAME - 20) as u64;
    let evidence = format!(
        "H6->R6 64-byte IPv6 frame, one call with repeat=2: {}; output: {} bytes, ethertype {:02x}{:02x}, verdict {}",
        show(&d),
        run.frame.len(),
        run.frame.get(12).copied().unwrap_or(0),
        run.frame.get(13).copied().unwrap_or(0),
        run.action
    );
    if xlat == (2, 2 * FRAME as u64) && d.len() == 2 {
        return Ok((Semantics::Fresh, evidence));
    }
    if xlat == (1, FRAME as u64) && pass4 == (1, v4_len) && d.len() == 3 {
        return Ok((Semantics::Chained, evidence));
    }
    bail!("could not tell how BPF_PROG_TEST_RUN repeats: {evidence}")
}

pub fn kernel_release() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_string();
    }
    // SAFETY: uname NUL-terminates the field.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned()
}

pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    format!("{model} ({cpus} CPUs)")
}

pub(crate) fn row(name: &str, s: &Stats, base: f64) -> String {
    let mpps = if s.median > 0.0 { format!("{:.1}", 1000.0 / s.median) } else { "-".to_string() };
    let ratio = if base > 0.0 { format!("{:.2}x", s.median / base) } else { "-".to_string() };
    format!("{name:<44} {:>8.1} {:>6.0} {:>6.0} {mpps:>7} {ratio:>8}", s.median, s.min, s.max)
}

pub(crate) fn header(first: &str) -> String {
    format!("{first:<44} {:>8} {:>6} {:>6} {:>7} {:>8}", "ns/pkt", "min", "max", "Mpps", "vs base")
}

/// The per-packet section: `repeat` repetitions per call, `rounds` calls per row.
pub fn run(repeat: u32, rounds: u32) -> Result<()> {
    let args = Args { repeat, rounds };
    nat64_tests::require_root();
    let h = Harness::new(TEST_CONFIG);
    let mut progs = aya::Ebpf::load(crate::BENCH_OBJECT).context("loading the benchmark object")?;
    let baseline: &mut Xdp = progs
        .program_mut(BASELINE_PROGRAM)
        .with_context(|| format!("the benchmark object has no program {BASELINE_PROGRAM}"))?
        .try_into()?;
    baseline.load().with_context(|| format!("loading {BASELINE_PROGRAM} (verifier)"))?;
    let tc = Harness::with(Kind::Tc, TEST_CONFIG);
    let b = Bench { h, tc, progs };
    // Per program: instructions the verifier processed (its budget is 1,000,000), the
    // instructions it kept (xlated, 8 bytes each) and the size of the JITed code.
    let mut sizes: Vec<(String, u32, u32, u32)> =
        b.h.ebpf
            .programs()
            .chain(b.tc.ebpf.programs().filter(|(n, _)| n.starts_with("nat64_tc")))
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some((
                    name.to_string(),
                    info.verified_instruction_count()?,
                    info.size_translated()? / 8,
                    info.size_jitted(),
                ))
            })
            .collect();
    sizes.sort();
    sizes.dedup_by(|a, b| a.0 == b.0);

    println!();
    println!("== per packet: BPF_PROG_TEST_RUN, repeat {}, rounds {}", args.repeat, args.rounds);
    println!("{:<24} {:>18} {:>14} {:>11}", "program", "verifier insns", "xlated insns", "JIT bytes");
    for (name, verified, xlated, jited) in &sizes {
        println!("{name:<24} {verified:>18} {xlated:>14} {jited:>11}");
    }

    // The frames. Server 2001:db8:6::5 (EAM 192.0.2.5), client 8.8.8.8 (pool6).
    let direct6 = frame6(H6, R6, 40000, 53); // H6 -> R6: translates to 192.0.2.5 -> 8.8.8.8
    let direct4 = frame4(R4, H4, 53, 40000); // R4 -> H4: translates to R6 -> H6
    // R6 -> H6 is what direct4 becomes: it translates to R4 -> H4, which translates
    // back to R6 -> H6, and so on, with the same map lookups as H6 -> R6 (one EAM hit,
    // one EAM miss resolved by pool6 plus the denylist4 check).
    let pingpong6 = frame6(R6, H6, 53, 40000);
    let v6_len = FRAME as u64;
    let v4_len = (FRAME - 20) as u64;
    let v6_from_v4 = (FRAME + 20) as u64;

    let (sem, evidence) = probe(&b, &direct6)?;
    match sem {
        Semantics::Chained => println!(
            "repeat semantics: each repetition runs on the PREVIOUS repetition's output (not a fresh copy)\n  \
             evidence: {evidence}\n  \
             so each nat64 row below is a ping-pong: a frame whose translation translates back, \
             alternating 6->4 and 4->6 (the per-packet time is the mean of the two directions)"
        ),
        Semantics::Fresh => println!(
            "repeat semantics: each repetition runs on a FRESH copy of the input\n  evidence: {evidence}"
        ),
    }

    let baseline_case = Case {
        name: "baseline: MAC swap + XDP_TX, 64B IPv4".to_string(),
        program: BASELINE_PROGRAM,
        tc: false,
        frame: direct4.clone(),
        action: XDP_TX,
        expect: Expect::none(),
        same_after_even: true,
    };
    let cases = match sem {
        Semantics::Chained => vec![
            Case {
                name: "nat64 6->4 start, ping-pong 64B v6 / 44B v4".to_string(),
                program: XDP_PROGRAM,
                tc: false,
                frame: pingpong6.clone(),
                action: XDP_PASS,
                expect: Expect {
                    steps: vec![(Counter::Xlat6to4Udp, v6_len), (Counter::Xlat4to6Udp, v4_len)],
                },
                same_after_even: true,
            },
            Case {
                name: "nat64 4->6 start, ping-pong 64B v4 / 84B v6".to_string(),
                program: XDP_PROGRAM,
                tc: false,
                frame: direct4.clone(),
                action: XDP_PASS,
                expect: Expect {
                    steps: vec![(Counter::Xlat4to6Udp, v6_len), (Counter::Xlat6to4Udp, v6_from_v4)],
                },
                // the IPv4 Identification is new on every 6->4 translation
                same_after_even: false,
            },
        ],
        Semantics::Fresh => vec![
            Case {
                name: "nat64 6->4, 64B IPv6 H6->R6".to_string(),
                program: XDP_PROGRAM,
                tc: false,
                frame: direct6.clone(),
                action: XDP_PASS,
                expect: Expect { steps: vec![(Counter::Xlat6to4Udp, v6_len)] },
                same_after_even: false,
            },
            Case {
                name: "nat64 4->6, 64B IPv4 R4->H4".to_string(),
                program: XDP_PROGRAM,
                tc: false,
                frame: direct4.clone(),
                action: XDP_PASS,
                expect: Expect { steps: vec![(Counter::Xlat4to6Udp, v6_len)] },
                same_after_even: false,
            },
        ],
    };

    println!("frames (Ethernet, without FCS; UDP with a valid checksum):");
    println!("  64B IPv4: 8.8.8.8:53 -> 192.0.2.5:40000, 22 bytes of payload (R4 -> H4)");
    println!("  64B IPv6: 2001:db8:6::5:40000 -> 64:ff9b::808:808:53, 2 bytes of payload (H6 -> R6)");
    if sem == Semantics::Chained {
        println!("  64B IPv6: 64:ff9b::808:808:53 -> 2001:db8:6::5:40000, 2 bytes of payload (R6 -> H6)");
        println!("  R6 -> H6 (64B) <-> R4 -> H4 (44B);  R4 -> H4 (64B) <-> R6 -> H6 (84B)");
    }

    // Every measured call is checked: the counters must have moved by exactly the
    // translations (and fwd_kernel) the row claims, and nothing else.
    let base = b.measure(&baseline_case, args.repeat, args.rounds)?;
    let mut results = Vec::new();
    for c in &cases {
        results.push(b.measure(c, args.repeat, args.rounds)?);
    }
    // The baseline once more, after the translator, to show drift within the run.
    let base_after = b.measure(&baseline_case, args.repeat, args.rounds)?;

    println!();
    println!(
        "kernel time per repetition (BPF_PROG_TEST_RUN duration), {} rounds of {} repetitions:",
        args.rounds, args.repeat
    );
    println!("{}", header("program"));
    println!("{}", row(&baseline_case.name, &base, base.median));
    for (c, s) in cases.iter().zip(&results) {
        println!("{}", row(&c.name, s, base.median));
    }
    println!("{}", row("baseline again (after the nat64 rows)", &base_after, base.median));
    println!(
        "(the kernel reports whole nanoseconds per repetition, rounded down; every call was checked: \
         each nat64 repetition was a UDP translation, xlat_6to4_udp + xlat_4to6_udp grew by exactly \
         the repeat count and no other counter but fwd_kernel moved; an even repeat brings the \
         6->4-start frame and the baseline frame back to their input bytes)"
    );

    // One direction at a time: single-repetition calls, fresh input every call.
    let single = [
        Case {
            name: "baseline: MAC swap + XDP_TX, 64B IPv4".to_string(),
            program: BASELINE_PROGRAM,
            tc: false,
            frame: direct4.clone(),
            action: XDP_TX,
            expect: Expect::none(),
            same_after_even: false,
        },
        Case {
            name: "nat64 6->4, 64B IPv6 H6->R6".to_string(),
            program: XDP_PROGRAM,
            tc: false,
            frame: direct6.clone(),
            action: XDP_PASS,
            expect: Expect { steps: vec![(Counter::Xlat6to4Udp, v6_len)] },
            same_after_even: false,
        },
        Case {
            name: "nat64 4->6, 64B IPv4 R4->H4".to_string(),
            program: XDP_PROGRAM,
            tc: false,
            frame: direct4.clone(),
            action: XDP_PASS,
            expect: Expect { steps: vec![(Counter::Xlat4to6Udp, v6_len)] },
            same_after_even: false,
        },
        Case {
            name: "nat64 TC 6->4, 64B IPv6 H6->R6".to_string(),
            program: TC_PROGRAM,
            tc: true,
            frame: direct6.clone(),
            action: TC_ACT_OK,
            expect: Expect { steps: vec![(Counter::Xlat6to4Udp, v6_len)] },
            same_after_even: false,
        },
        Case {
            name: "nat64 TC 4->6, 64B IPv4 R4->H4".to_string(),
            program: TC_PROGRAM,
            tc: true,
            frame: direct4.clone(),
            action: TC_ACT_OK,
            expect: Expect { steps: vec![(Counter::Xlat4to6Udp, v6_len)] },
            same_after_even: false,
        },
    ];
    let mut single_results = Vec::new();
    for c in &single {
        single_results.push(b.measure_single(c, args.rounds)?);
    }
    println!();
    println!(
        "one direction at a time, fresh input every call: {} rounds of {SHOTS} calls with repeat=1 \
         (median per round). A single repetition's time includes the kernel's clock reads and is \
         only as fine as its clock, so read the difference with the baseline:",
        args.rounds
    );
    println!("{}", header("program"));
    let sbase = single_results[0].median;
    for (c, s) in single.iter().zip(&single_results) {
        println!("{}", row(&c.name, s, sbase));
    }
    for (c, s) in single.iter().zip(&single_results).skip(1) {
        println!("  {}: {:+.0} ns over the baseline", c.name, s.median - sbase);
    }
    floor(&args, &direct4, &direct6, base.median)?;
    skb_helpers(&args, &direct6)?;
    first_packet(args.rounds)?;
    crate::nat_scale::run(args.rounds)
}

/// What a translation cannot avoid, each alone in an XDP program that then returns
/// XDP_TX: one LPM-trie lookup (EAMT, denylist4 are LPM tries) and one FIB lookup
/// that finds a route and a neighbour (the fast path's egress), per family. Shown
/// next to the XDP_TX no-op: together they bound how close a translator can come to
/// the no-op.
fn floor(args: &Args, direct4: &[u8], direct6: &[u8], base: f64) -> Result<()> {
    use aya::maps::{LpmTrie, lpm_trie::Key};
    let mut ebpf = aya::Ebpf::load(crate::BENCH_OBJECT).context("loading the benchmark object")?;
    for name in ["bench_fib", "bench_lpm"] {
        let p: &mut Xdp = ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    // Tries as small as the test configuration's EAMT (a few prefixes, one of which
    // matches the frame).
    let mut t4: LpmTrie<_, [u8; 4], u32> =
        LpmTrie::try_from(ebpf.map_mut("BENCH_LPM4").context("BENCH_LPM4")?)?;
    for (p, len) in [([192, 0, 2, 0], 24), ([93, 184, 216, 34], 32), ([8, 8, 4, 0], 24), ([10, 0, 0, 0], 8)] {
        t4.insert(&Key::new(len, p), 1, 0)?;
    }
    let mut t6: LpmTrie<_, [u8; 16], u32> =
        LpmTrie::try_from(ebpf.map_mut("BENCH_LPM6").context("BENCH_LPM6")?)?;
    for (a, len) in [("64:ff9b::", 96), ("2001:db8:6::", 120), ("2001:db8:7::34", 128), ("3fff::", 16)] {
        t6.insert(&Key::new(len, a.parse::<Ipv6Addr>()?.octets()), 1, 0)?;
    }
    // A route and a neighbour for both frames' destinations, in this thread's own
    // namespace (the harness's), arriving on a veth with forwarding on.
    nat64_tests::xdp::sh(
        "ip link add bf0 type veth peer name bf1 && ip link set bf0 up && ip link set bf1 up \
         && ethtool -K bf1 gro on >/dev/null && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
         && ip addr add 198.51.100.1/24 dev bf0 && ip addr add 2001:db8:4::1/64 dev bf0 nodad \
         && ip neigh add 198.51.100.2 lladdr 02:00:00:00:04:02 dev bf0 nud permanent \
         && ip neigh add 2001:db8:4::2 lladdr 02:00:00:00:04:02 dev bf0 nud permanent \
         && ip route add 8.8.8.0/24 via 198.51.100.2 && ip route add 192.0.2.0/24 via 198.51.100.2 \
         && ip -6 route add 64:ff9b::/96 via 2001:db8:4::2 && ip -6 route add 2001:db8:6::/64 via 2001:db8:4::2",
    );
    // SAFETY: a NUL-terminated name; the lookup happens in this thread's namespace.
    let ingress = unsafe { libc::if_nametoindex(c"bf1".as_ptr()) };
    ensure!(ingress != 0, "no bf1 in the harness's namespace");
    let run = |name: &str, frame: &[u8]| -> Result<Stats> {
        let p: &Xdp = ebpf.program(name).with_context(|| format!("no program {name}"))?.try_into()?;
        let md = nat64_tests::xdp::ctx_bytes(&nat64_tests::xdp::xdp_md(frame.len(), ingress));
        let mut ns = Vec::new();
        for _ in 0..args.rounds {
            let mut out = vec![0u8; frame.len() + 256];
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(frame);
            opts.data_out = Some(&mut out);
            opts.ctx_in = Some(&md);
            opts.repeat = args.repeat;
            let r = p.test_run(opts).with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
            // XDP_TX only when the lookup found what it must (else XDP_ABORTED).
            ensure!(r.return_value == XDP_TX, "{name}: the lookup failed (verdict {})", r.return_value);
            ns.push(r.duration.as_nanos() as f64);
        }
        Ok(stats(ns))
    };
    let rows = [
        ("one LPM-trie lookup, IPv4 /32 key", run("bench_lpm", direct4)?),
        ("one LPM-trie lookup, IPv6 /128 key", run("bench_lpm", direct6)?),
        ("one FIB lookup, IPv4 (route + neighbour)", run("bench_fib", direct4)?),
        ("one FIB lookup, IPv6 (route + neighbour)", run("bench_fib", direct6)?),
    ];
    println!();
    println!(
        "the floor: a lookup a translation cannot avoid, alone in a program that then returns XDP_TX \
         ({} rounds of {} repetitions; vs the XDP_TX no-op above):",
        args.rounds, args.repeat
    );
    println!("{}", header("program"));
    for (name, s) in &rows {
        println!("{}", row(name, s, base));
    }
    Ok(())
}

/// The skb helpers every TC translation calls where XDP writes the packet in place,
/// each alone in a TC program next to a TC no-op (`bench_tc_*`): the protocol change
/// (IPv6 -> IPv4 -> IPv6 a repetition: one way is what a translation pays) and the
/// transport checksum's pseudo-header change (there and back). Each run's output
/// frame is checked: the checksum's is the input, the protocol change's the input
/// with the 20 bytes after the MAC header zeroed.
fn skb_helpers(args: &Args, direct6: &[u8]) -> Result<()> {
    let mut ebpf = aya::Ebpf::load(crate::BENCH_OBJECT).context("loading the benchmark object")?;
    let names = ["bench_tc_ok", "bench_tc_proto", "bench_tc_csum"];
    for name in names {
        let p: &mut SchedClassifier =
            ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    let mut zeroed = direct6.to_vec();
    zeroed[ETH..ETH + 20].fill(0);
    let mut rows = Vec::new();
    for name in names {
        let p: &SchedClassifier =
            ebpf.program(name).with_context(|| format!("no program {name}"))?.try_into()?;
        let want = if name == "bench_tc_proto" { &zeroed[..] } else { direct6 };
        let mut ns = Vec::new();
        for _ in 0..args.rounds {
            let r =
                test_run(p, direct6, args.repeat).with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
            ensure!(r.action == 0, "{name}: returned {} (TC_ACT_OK expected: a helper failed)", r.action);
            ensure!(
                r.frame == want,
                "{name}: the frame after {} repetitions is not what they make:\n   got: {:02x?}\n  want: {:02x?}",
                args.repeat,
                r.frame,
                want
            );
            ns.push(r.ns as f64);
        }
        rows.push(stats(ns));
    }
    println!();
    println!(
        "the skb helpers of a TC translation, each alone in a TC program ({} rounds of {} repetitions; vs the \
         TC no-op):",
        args.rounds, args.repeat
    );
    println!("{}", header("program"));
    let base = rows[0].median;
    for (name, s) in [
        "TC no-op (TC_ACT_OK)",
        "bpf_skb_change_proto 6->4, then 4->6",
        "bpf_l4_csum_replace, there and back",
    ]
    .iter()
    .zip(&rows)
    {
        println!("{}", row(name, s, base));
    }
    Ok(())
}

/// Hosts (distinct IPv6 sources) per round of the first-packet measurement.
const NEW_HOSTS: u32 = 2_000;

/// NAT64 dynamic pool: the time of a new host's first packet (the allocation stage
/// hands it an address, then the packet is translated) against the same host's next
/// packet, single calls, fresh sources every round.
fn first_packet(rounds: u32) -> Result<()> {
    let config = r#"{
        "interfaces": [{"name": "lo", "attach": "xdp"}],
        "ipv4-addr": "198.51.100.1",
        "ipv6-addr": "3fff::1",
        "pool6": "64:ff9b::/96",
        "dynamic-pool": "10.64.0.0/16"
    }"#;
    let h = Harness::new(config);
    let prog: &Xdp = h.ebpf.program(XDP_PROGRAM).context("no XDP program")?.try_into()?;
    let (mut first, mut next) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let frames: Vec<Vec<u8>> = (0..NEW_HOSTS)
            .map(|i| {
                let src = Ipv6Addr::new(0x2001, 0xdb8, 0xa, round as u16, 0, 0, (i >> 16) as u16, i as u16);
                frame6(src, R6, 40000, 53)
            })
            .collect();
        for (pass, out) in [(0, &mut first), (1, &mut next)] {
            let before = snapshot(&h)?;
            let mut ns = Vec::with_capacity(frames.len());
            for f in &frames {
                let run = test_run(prog, f, 1)?;
                ensure!(run.action == XDP_PASS && run.frame[12..14] == [0x08, 0x00], "not translated");
                ns.push(run.ns as f64);
            }
            let d = delta(&before, &snapshot(&h)?);
            let want = if pass == 0 { NEW_HOSTS as u64 } else { 0 };
            ensure!(
                moved(&d, Counter::PoolAllocated).0 == want
                    && moved(&d, Counter::Xlat6to4Udp).0 == NEW_HOSTS as u64,
                "first-packet pass {pass}: counters moved: {}",
                show(&d)
            );
            out.push(stats(ns).median);
        }
    }
    let (f, n) = (stats(first), stats(next));
    println!();
    println!(
        "NAT64 dynamic pool, {rounds} rounds of {NEW_HOSTS} new hosts (single calls, 64B UDP 6->4, median per round):"
    );
    println!("{}", header("packet"));
    println!("{}", row("a new host's first packet (allocates)", &f, n.median));
    println!("{}", row("the same host's next packet", &n, n.median));
    println!("  first-packet latency: {:+.0} ns for the allocation (median of medians)", f.median - n.median);
    Ok(())
}
