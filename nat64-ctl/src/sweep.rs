//! Stateful NAT64's sweep: the program that ends BIB entries and sessions whose
//! lifetime ran out, run in the kernel once a second ([`Sweeper`]) by a thread of its
//! own, which also answers the SYNs held for a simultaneous open nobody took.
//!
//! The data path makes BIB entries and sessions itself (`nat64-ebpf`'s NAT stages); the
//! maps are pinned, so a restart of nat64-ctl keeps every one of them.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::ProgramFd,
};
use log::warn;
use nat64_common::maps::{MAP_NAT_SWEEP, Sweep};

use crate::sys::boot_ns;

/// The sweep program in the eBPF object (never attached; run by [`Sweeper`]).
pub const SWEEP_PROGRAM: &str = "nat64_sweep";

/// The in-kernel sweep: the sweep program, loaded with the instance's maps, run by
/// `BPF_PROG_RUN` (see `nat64-ebpf`'s `sweep`).
pub struct Sweeper {
    prog: ProgramFd,
    ctl: Array<MapData, Sweep>,
}

impl Sweeper {
    /// Loads the sweep program into `ebpf` (whose maps it then works on).
    pub fn load(ebpf: &mut Ebpf) -> Result<Self> {
        crate::load::load_entry(ebpf, SWEEP_PROGRAM)?;
        let prog = ebpf
            .program(SWEEP_PROGRAM)
            .with_context(|| format!("the eBPF object has no program {SWEEP_PROGRAM}"))?
            .fd()?
            .try_clone()?;
        let map = ebpf
            .take_map(MAP_NAT_SWEEP)
            .with_context(|| format!("the eBPF object has no map {MAP_NAT_SWEEP}"))?;
        Ok(Self { prog, ctl: Array::try_from(map)? })
    }

    /// One sweep, taking `now` (boot-time ns; `None`: the clock's) as the time: what it
    /// did.
    pub fn run(&mut self, now: Option<u64>) -> Result<Sweep> {
        self.once(Sweep { now: now.unwrap_or(0), ..Default::default() })
    }

    /// Ends every dynamic session and BIB entry now, their ports free at once (static
    /// entries stay): what it ended.
    pub fn flush(&mut self) -> Result<Sweep> {
        self.once(Sweep { flush: 1, ..Default::default() })
    }

    fn once(&mut self, args: Sweep) -> Result<Sweep> {
        self.ctl.set(0, args, 0).context("writing NAT_SWEEP")?;
        let ret = prog_run(&self.prog).context("running the NAT sweep (BPF_PROG_RUN)")?;
        if ret != 0 {
            bail!("the NAT sweep found no NAT settings (returned {ret})");
        }
        self.ctl.get(&0, 0).context("reading NAT_SWEEP")
    }
}

/// A sweeper on the maps of the instance pinned under `dir` (for a command run beside
/// the daemon: the object loaded anew, its stateful maps taken from their pins).
pub fn sweeper_for(dir: &Path) -> Result<Sweeper> {
    match crate::tables::Tables::pinned_layout(dir)? {
        Some(l) if l == nat64_common::maps::LAYOUT => {}
        Some(l) => bail!(
            "the pinned maps in {} have another layout ({l:#x}) than this nat64-ctl's ({:#x}): use the nat64-ctl \
             that runs the instance",
            dir.display(),
            nat64_common::maps::LAYOUT
        ),
        None => bail!("no pinned maps in {}", dir.display()),
    }
    let sizes = crate::tables::Tables::pinned_sizes(dir)?.context("no session table pinned")?;
    let mut ebpf = crate::load::load_pinned(&[], Some(dir), sizes)?;
    Sweeper::load(&mut ebpf)
}

/// Runs an XDP program once on a minimal frame (`BPF_PROG_TEST_RUN`): its return value.
pub(crate) fn prog_run(prog: &ProgramFd) -> Result<u32> {
    // The kernel takes no frame shorter than an Ethernet header.
    let frame = [0u8; 64];
    // `union bpf_attr`'s `test` member, up to `batch_size`.
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestAttr {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: bpf(2) with a test-run attribute we own, pointing at a frame that outlives
    // the call; the kernel writes only `retval`, `duration` and the sizes back.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, &raw mut attr, std::mem::size_of::<TestAttr>())
    };
    if rc != 0 {
        bail!("{}", std::io::Error::last_os_error());
    }
    Ok(attr.retval)
}

/// The sweep's share of one CPU at most, as a divisor (20: 5%).
const SWEEP_SHARE: u32 = 20;

/// Sweeps the instance pinned under `dir` every second, for as long as the process
/// runs (a thread of its own), while it is a stateful NAT64 (mode "nat64"): the sweep
/// program walks every table in the kernel, so in the other modes, whose tables stay
/// empty, it still reads every hash bucket: it is not run there. A run that took more
/// than a twentieth of a second puts the next one off to keep the sweep within 5% of
/// one CPU. After each run it writes what it did and how long it took to `report`
/// (JSON, for `status`).
pub fn sweeper(dir: &Path, mut sweep: Sweeper, report: std::path::PathBuf) -> Result<()> {
    let mut settings = crate::tables::Tables::open_pinned(dir)?;
    let raw = crate::simopen::RawSender::new()
        .map_err(|e| warn!("nat64: {e:#}; held SYNs will go unanswered"))
        .ok();
    thread::Builder::new()
        .name("nat-sweep".into())
        .spawn(move || {
            let (mut runs, mut total) = (0u64, Duration::ZERO);
            let mut pause = Duration::from_secs(1);
            let mut last = Instant::now();
            loop {
                // Every second: the held SYNs whose time is up; the sweep when its
                // pause is over.
                thread::sleep(Duration::from_secs(1));
                if settings.globals().is_ok_and(|g| !g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)) {
                    continue;
                }
                answer_syns(&mut settings, raw.as_ref());
                if last.elapsed() < pause {
                    continue;
                }
                last = Instant::now();
                let t = Instant::now();
                let r = match sweep.run(None) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!("nat64: {e:#}");
                        continue;
                    }
                };
                let took = t.elapsed();
                runs += 1;
                total += took;
                // At most 1/SWEEP_SHARE of one CPU: a walk of a large table, whose cost
                // is a cache miss or so per entry, runs less often (sessions then live a
                // little past their lifetime, which the RFC sets as a minimum).
                pause = (took * SWEEP_SHARE).clamp(Duration::from_secs(1), Duration::from_secs(30));
                if r.sessions + r.released + r.removed > 0 {
                    log::debug!(
                        "nat64: sweep of {} entries in {:.1} ms: {} sessions ended, {} BIB entries released, {} \
                         removed",
                        r.visited,
                        took.as_secs_f64() * 1e3,
                        r.sessions,
                        r.released,
                        r.removed
                    );
                }
                let v = serde_json::json!({
                    "at": crate::sys::unix_now(),
                    "every-s": pause.as_secs_f64(),
                    "ms": took.as_secs_f64() * 1e3,
                    "entries": r.visited,
                    "sessions-ended": r.sessions,
                    "released": r.released,
                    "removed": r.removed,
                    "runs": runs,
                    "total-ms": total.as_secs_f64() * 1e3,
                });
                let tmp = report.with_extension("tmp");
                if let Err(e) = std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, &report)) {
                    log::debug!("nat64: writing {}: {e}", report.display());
                }
            }
        })
        .map(|_| ())
        .map_err(|e| {
            warn!("starting the NAT sweep: {e}");
            anyhow::anyhow!("starting the NAT sweep thread: {e}")
        })
}

/// Removes the held SYNs whose time is up and answers the ones nothing took (see
/// [`crate::simopen`]), counting the answers (`nat_syn_answered`).
fn answer_syns(tables: &mut crate::tables::Tables, raw: Option<&crate::simopen::RawSender>) {
    let Some(nat) = tables.nat.as_mut() else { return };
    let done = crate::simopen::expire(nat, boot_ns(), |a| match raw {
        Some(r) => r.send(a),
        None => Err(std::io::Error::other("no raw socket")),
    });
    match done {
        Ok(d) if d.answered > 0 => {
            if let Err(e) =
                tables.add_event(nat64_common::counters::Counter::NatSynAnswered, d.answered, d.bytes)
            {
                log::debug!("nat64: {e:#}");
            }
        }
        Ok(_) => {}
        Err(e) => warn!("nat64: held SYNs: {e:#}"),
    }
}

/// Where the sweep of `instance` reports its last run.
pub fn sweep_report(instance: &str) -> std::path::PathBuf {
    crate::load::status_file(instance).with_extension("sweep.json")
}
