//! The NAT64 dynamic pool, control-plane side: the data path hands addresses out
//! (POOL6/POOL4, see `nat64_common::maps`); nat64-ctl expires idle mappings, keeps
//! the ring of free addresses in least-recently-used order, and saves the mappings to
//! a state file that the next start reads back.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use log::{info, warn};
use nat64_common::maps::{Globals, POOL_RING_SLOTS, PoolDormant, PoolEntry};
use serde::{Deserialize, Serialize};

use crate::{
    config::{DynamicPool, Prefix4},
    tables::Tables,
};

const NS: u64 = 1_000_000_000;

/// CLOCK_MONOTONIC_COARSE in ns: the clock of the data path's `last_use`
/// (bpf_ktime_get_coarse_ns).
pub fn mono_now() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * NS + ts.tv_nsec as u64
}

/// One mapping as `pool list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub v6: Ipv6Addr,
    pub v4: Ipv4Addr,
    /// Seconds since the host last sent or received through it (to the data path's
    /// refresh granularity, one second).
    pub idle: u64,
}

/// The pool as configured in the running instance (from its globals).
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub prefix: Prefix4,
    pub lease: u64,
    own: Option<Ipv4Addr>,
}

impl Spec {
    pub fn of(g: &Globals) -> Option<Self> {
        crate::tables::dynamic_pool(g).map(|prefix| Self {
            prefix,
            lease: g.dyn_pool_lease.into(),
            own: g.has_ipv4_addr().then(|| Ipv4Addr::from(g.ipv4_addr)),
        })
    }

    /// Every address of the pool, in order.
    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.prefix.addr());
        let n = 1u64 << (32 - self.prefix.prefix_len());
        (0..n).map(move |i| Ipv4Addr::from(first + i as u32))
    }

    /// Whether `a` may be handed out (the data path checks the same).
    fn usable(&self, tables: &Tables, a: Ipv4Addr) -> bool {
        self.prefix.contains_addr(a) && Some(a) != self.own && tables.eam_lookup4(a).is_none()
    }

    /// Addresses that can ever be handed out: the pool less what EAM entries cover and
    /// the translator's own address (counted from the EAMT, not address by address).
    pub fn capacity(&self, tables: &Tables) -> Result<usize> {
        let (first, last) = (u32::from(self.prefix.network()), u32::from(self.prefix.broadcast()));
        let mut covered: Vec<(u32, u32)> = tables
            .eamt()?
            .iter()
            .map(|e| (u32::from(e.v4.network()), u32::from(e.v4.broadcast())))
            .filter(|&(a, b)| a <= last && b >= first)
            .map(|(a, b)| (a.max(first), b.min(last)))
            .collect();
        if let Some(own) = self.own.map(u32::from).filter(|a| (first..=last).contains(a)) {
            covered.push((own, own));
        }
        covered.sort_unstable();
        let (mut taken, mut upto) = (0u64, None::<u32>);
        for (a, b) in covered {
            let a = match upto {
                Some(u) if b <= u => continue,
                Some(u) if a <= u => u + 1,
                _ => a,
            };
            taken += u64::from(b - a) + 1;
            upto = Some(b);
        }
        Ok((u64::from(last - first) + 1 - taken) as usize)
    }
}

/// The mappings in force, sorted by IPv4 address.
pub fn list(tables: &Tables) -> Result<Vec<Mapping>> {
    let now = mono_now();
    let mut out = Vec::new();
    for item in tables.pool6.iter() {
        let (_, e) = item.context("reading POOL6")?;
        out.push(Mapping {
            v6: Ipv6Addr::from(e.eam.v6),
            v4: Ipv4Addr::from(e.eam.v4),
            idle: now.saturating_sub(last_use(tables, &e)) / NS,
        });
    }
    out.sort_by_key(|m| u32::from(m.v4));
    Ok(out)
}

/// The later of the two directions' last use.
fn last_use(tables: &Tables, e: &PoolEntry) -> u64 {
    let back = tables.pool4.get(&e.eam.v4, 0).map(|r| r.last_use).unwrap_or(0);
    e.last_use.max(back)
}

/// Forgets every dynamic mapping (and what expired ones were), so each host gets an
/// address afresh on its next packet. Returns how many mappings there were.
pub fn flush(tables: &mut Tables) -> Result<usize> {
    let keys6: Vec<[u8; 16]> = tables.pool6.keys().collect::<Result<_, _>>().context("reading POOL6")?;
    let keys4: Vec<[u8; 4]> = tables.pool4.keys().collect::<Result<_, _>>().context("reading POOL4")?;
    let dormant: Vec<[u8; 16]> =
        tables.pool_dormant.keys().collect::<Result<_, _>>().context("reading POOL_DORMANT")?;
    for k in &keys6 {
        let _ = tables.pool6.remove(k);
    }
    for k in &keys4 {
        let _ = tables.pool4.remove(k);
    }
    for k in &dormant {
        let _ = tables.pool_dormant.remove(k);
    }
    Ok(keys6.len())
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    pub expired: Vec<Mapping>,
    /// Mappings in force after the sweep.
    pub active: usize,
    /// Their (host, address) pairs.
    pub pairs: Pairs,
}

/// Expires the mappings idle for longer than the lease (the host keeps a claim on its
/// address in POOL_DORMANT), and drops half-made or stale ones: a POOL4 entry no POOL6
/// entry matches (a host that lost a race), an address an EAM entry now covers.
pub fn sweep(tables: &mut Tables, spec: &Spec, now: u64, unix_now: u64) -> Result<Swept> {
    let mut out = Swept::default();
    let entries: Vec<([u8; 16], PoolEntry)> =
        tables.pool6.iter().collect::<Result<_, _>>().context("reading POOL6")?;
    let mut live: HashMap<[u8; 4], [u8; 16]> = HashMap::new();
    for (k, e) in entries {
        let v4 = Ipv4Addr::from(e.eam.v4);
        let idle = now.saturating_sub(last_use(tables, &e));
        let usable = spec.usable(tables, v4);
        if idle > spec.lease * NS || !usable {
            let d = PoolDormant { v4: e.eam.v4, _pad: [0; 4], freed: unix_now };
            if usable {
                tables.pool_dormant.insert(k, d, 0).context("writing POOL_DORMANT")?;
            }
            let _ = tables.pool6.remove(&k);
            let _ = tables.pool4.remove(&e.eam.v4);
            out.expired.push(Mapping { v6: Ipv6Addr::from(k), v4, idle: idle / NS });
        } else {
            live.insert(e.eam.v4, k);
        }
    }
    // A POOL4 entry without its POOL6 twin: the data path removes those it makes itself
    // at once; give it a few seconds, then it is a leftover.
    let back: Vec<([u8; 4], PoolEntry)> =
        tables.pool4.iter().collect::<Result<_, _>>().context("reading POOL4")?;
    for (k, e) in back {
        if live.get(&k) != Some(&e.eam.v6) && now.saturating_sub(e.last_use) > 5 * NS {
            let _ = tables.pool4.remove(&k);
        }
    }
    out.active = live.len();
    out.pairs = live.into_iter().map(|(a, h)| (h, a)).collect();
    Ok(out)
}

/// The ring's tail and the furthest any CPU has read.
fn ring_bounds(tables: &Tables) -> Result<(u64, u64)> {
    let tail = tables.pool_tail.get(&0, 0).context("reading POOL_TAIL")?;
    let heads = tables.pool_head.get(&0, 0).context("reading POOL_HEAD")?;
    let max_head = heads.iter().copied().max().unwrap_or(0).min(tail);
    Ok((tail, max_head.max(tail.saturating_sub(POOL_RING_SLOTS as u64))))
}

/// Free addresses every CPU still has ahead of it in the ring.
pub fn ahead(tables: &Tables) -> Result<u64> {
    let (tail, max_head) = ring_bounds(tables)?;
    Ok(tail - max_head)
}

/// Appends to the ring every free address that not every CPU has ahead of it: those
/// never handed out first (in address order), then those that fell free, longest free
/// first, so that an address goes back to a new host as late as possible (its old
/// host may come back for it). Returns how many were appended.
pub fn refill(tables: &mut Tables, spec: &Spec) -> Result<usize> {
    let (tail, max_head) = ring_bounds(tables)?;
    let mut queued = HashSet::new();
    for i in max_head..tail {
        if let Ok(a) = tables.pool_ring.get(&((i % POOL_RING_SLOTS as u64) as u32), 0) {
            queued.insert(a);
        }
    }
    let taken: HashSet<[u8; 4]> = tables.pool4.keys().collect::<Result<_, _>>().context("reading POOL4")?;
    let mut freed: HashMap<[u8; 4], u64> = HashMap::new();
    for item in tables.pool_dormant.iter() {
        let (_, d) = item.context("reading POOL_DORMANT")?;
        let t = freed.entry(d.v4).or_insert(0);
        *t = (*t).max(d.freed);
    }
    let mut add: Vec<(u64, u32)> = spec
        .addresses()
        .filter(|a| !taken.contains(&a.octets()) && !queued.contains(&a.octets()) && spec.usable(tables, *a))
        .map(|a| (freed.get(&a.octets()).copied().unwrap_or(0), u32::from(a)))
        .collect();
    add.sort_unstable();
    for (i, (_, a)) in add.iter().enumerate() {
        let slot = ((tail + i as u64) % POOL_RING_SLOTS as u64) as u32;
        tables.pool_ring.set(slot, a.to_be_bytes(), 0).context("writing POOL_RING")?;
    }
    // The tail moves after the slots: a CPU reads no slot before it is written. Then
    // the floor: every free address now has a copy at or after `max_head`, so a CPU
    // behind it skips the older copies, which would hand out addresses out of order.
    tables.pool_tail.set(0, tail + add.len() as u64, 0).context("writing POOL_TAIL")?;
    tables.pool_tail.set(1, max_head, 0).context("writing POOL_TAIL")?;
    Ok(add.len())
}

// ---------------------------------------------------------------------------
// State file

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateFile {
    version: u32,
    dynamic_pool: String,
    /// Unix seconds when written.
    saved: u64,
    mappings: Vec<StateMapping>,
    #[serde(default)]
    dormant: Vec<StateDormant>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateMapping {
    ipv6: Ipv6Addr,
    ipv4: Ipv4Addr,
    /// Unix seconds.
    last_use: u64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateDormant {
    ipv6: Ipv6Addr,
    ipv4: Ipv4Addr,
    freed: u64,
}

const STATE_VERSION: u32 = 1;

/// Writes the mappings (and the dormant claims) to `path` atomically: a temporary
/// file beside it, synced, then renamed over it. Returns how many mappings it holds.
pub fn save(tables: &Tables, spec: &Spec, path: &Path, unix_now: u64) -> Result<usize> {
    let now = mono_now();
    let mut mappings = Vec::new();
    for item in tables.pool6.iter() {
        let (_, e) = item.context("reading POOL6")?;
        let idle = now.saturating_sub(last_use(tables, &e)) / NS;
        mappings.push(StateMapping {
            ipv6: Ipv6Addr::from(e.eam.v6),
            ipv4: Ipv4Addr::from(e.eam.v4),
            last_use: unix_now.saturating_sub(idle),
        });
    }
    mappings.sort_by_key(|m| u32::from(m.ipv4));
    let active: HashSet<Ipv6Addr> = mappings.iter().map(|m| m.ipv6).collect();
    let mut dormant = Vec::new();
    for item in tables.pool_dormant.iter() {
        let (k, d) = item.context("reading POOL_DORMANT")?;
        if active.contains(&Ipv6Addr::from(k)) {
            continue;
        }
        dormant.push(StateDormant { ipv6: Ipv6Addr::from(k), ipv4: Ipv4Addr::from(d.v4), freed: d.freed });
    }
    dormant.sort_by_key(|d| (d.freed, u32::from(d.ipv4)));
    let n = mappings.len();
    let state = StateFile {
        version: STATE_VERSION,
        dynamic_pool: spec.prefix.to_string(),
        saved: unix_now,
        mappings,
        dormant,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("state-file: creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, &state)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().with_context(|| format!("state-file: writing {}", path.display()))?;
    Ok(n)
}

/// What a restore took back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub mappings: usize,
    pub dormant: usize,
    /// Entries left out: outside the pool, held by an EAM entry, duplicates, expired.
    pub skipped: usize,
}

/// Reads the state file back into the maps: mappings still within their lease are
/// put in force again, the rest become dormant claims. A missing file is a first
/// start; an unreadable one is set aside (`.bad`) with a warning rather than keeping
/// the translator from starting.
pub fn restore(tables: &mut Tables, spec: &Spec, path: &Path, unix_now: u64) -> Result<Restored> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => bail!("state-file: reading {}: {e}", path.display()),
    };
    let state: StateFile = match serde_json::from_str::<StateFile>(&text) {
        Ok(s) if s.version == STATE_VERSION => s,
        Ok(s) => {
            set_aside(path, &format!("version {} (this nat64-ctl writes {STATE_VERSION})", s.version));
            return Ok(Restored::default());
        }
        Err(e) => {
            set_aside(path, &e.to_string());
            return Ok(Restored::default());
        }
    };
    let now = mono_now();
    let mut r = Restored::default();
    let mut seen4 = HashSet::new();
    let mut seen6 = HashSet::new();
    for m in &state.mappings {
        let idle = unix_now.saturating_sub(m.last_use);
        let ok = spec.usable(tables, m.ipv4)
            && tables.eam_lookup6(m.ipv6).is_none()
            && seen4.insert(m.ipv4)
            && seen6.insert(m.ipv6);
        if !ok {
            r.skipped += 1;
            continue;
        }
        if idle > spec.lease {
            let d = PoolDormant { v4: m.ipv4.octets(), _pad: [0; 4], freed: m.last_use + spec.lease };
            tables.pool_dormant.insert(m.ipv6.octets(), d, 0).context("writing POOL_DORMANT")?;
            r.dormant += 1;
            continue;
        }
        // On a machine up for less than the idle time the clock cannot go back that far:
        // the mapping then counts as used at boot.
        let e = PoolEntry::new(m.ipv4.octets(), m.ipv6.octets(), now.saturating_sub(idle * NS).max(1));
        tables.pool4.insert(m.ipv4.octets(), e, 0).context("writing POOL4")?;
        tables.pool6.insert(m.ipv6.octets(), e, 0).context("writing POOL6")?;
        r.mappings += 1;
    }
    for d in &state.dormant {
        if !spec.usable(tables, d.ipv4) || seen6.contains(&d.ipv6) {
            r.skipped += 1;
            continue;
        }
        let v = PoolDormant { v4: d.ipv4.octets(), _pad: [0; 4], freed: d.freed };
        tables.pool_dormant.insert(d.ipv6.octets(), v, 0).context("writing POOL_DORMANT")?;
        r.dormant += 1;
    }
    if state.dynamic_pool != spec.prefix.to_string() {
        info!("state-file: was written for dynamic-pool {}, now {}", state.dynamic_pool, spec.prefix);
    }
    Ok(r)
}

fn set_aside(path: &Path, why: &str) {
    let bad = path.with_extension("bad");
    warn!(
        "state-file {}: cannot be read ({why}); moved to {} and starting with no mappings",
        path.display(),
        bad.display()
    );
    if let Err(e) = fs::rename(path, &bad) {
        warn!("moving {} aside: {e}", path.display());
    }
}

/// The (host, address) pairs in force, to tell whether they changed since the last save.
type Pairs = HashSet<([u8; 16], [u8; 4])>;

/// The pool's upkeep in `nat64-ctl run`: a sweep every second, a refill when some
/// free address is not ahead of every CPU, the state file written when the mappings
/// changed (and at least every minute while hosts use them, for their last use).
pub struct Keeper {
    pub spec: Spec,
    pub state_file: std::path::PathBuf,
    saved: Option<(Pairs, u64)>,
    next_sweep: u64,
}

impl Keeper {
    /// Restores the state file (with `restore`; not when the pinned maps of a running
    /// instance still hold the mappings) and fills the ring.
    pub fn start(
        tables: &mut Tables,
        cfg: &DynamicPool,
        g: &Globals,
        unix_now: u64,
        restore: bool,
    ) -> Result<Self> {
        let spec = Spec::of(g).context("dynamic-pool: not in the running configuration")?;
        let r = if restore {
            self::restore(tables, &spec, &cfg.state_file, unix_now)?
        } else {
            Restored { mappings: list(tables)?.len(), ..Restored::default() }
        };
        let n = refill(tables, &spec)?;
        info!(
            "dynamic-pool {}: {} addresses free, {} mappings and {} dormant claims kept or restored from {}{}",
            spec.prefix,
            n,
            r.mappings,
            r.dormant,
            cfg.state_file.display(),
            if r.skipped > 0 { format!(" ({} left out)", r.skipped) } else { String::new() }
        );
        Ok(Self { spec, state_file: cfg.state_file.clone(), saved: None, next_sweep: 0 })
    }

    /// One round of upkeep, when due (a tenth of the lease, between 1 and 10 s) or
    /// when `now` asks for it (after `pool flush`). Each round reads every mapping, so
    /// a full /16 is not read every second.
    pub fn tick(&mut self, tables: &mut Tables, unix_now: u64, now: bool) -> Result<()> {
        // The lease may have been changed on the fly (`nat64-ctl set`).
        if let Some(spec) = Spec::of(&tables.globals()?) {
            self.spec = spec;
        }
        if !now && unix_now < self.next_sweep {
            return Ok(());
        }
        self.next_sweep = unix_now + (self.spec.lease / 10).clamp(1, 10);
        let swept = sweep(tables, &self.spec, mono_now(), unix_now)?;
        for m in &swept.expired {
            info!("dynamic-pool: {} <-> {} expired after {} s idle", m.v6, m.v4, m.idle);
        }
        let free = self.spec.capacity(tables)?.saturating_sub(swept.active) as u64;
        if ahead(tables)? < free {
            refill(tables, &self.spec)?;
        }
        // Written when the mappings changed (at most every 10 s: a state file of a full
        // /16 is megabytes), and every minute for their last use.
        let due = match &self.saved {
            None => true,
            Some((p, t)) => (*p != swept.pairs && unix_now >= t + 10) || unix_now >= t + 60,
        };
        if due {
            self.save(tables, swept.pairs, unix_now)?;
        }
        Ok(())
    }

    fn save(&mut self, tables: &Tables, pairs: Pairs, unix_now: u64) -> Result<()> {
        save(tables, &self.spec, &self.state_file, unix_now)?;
        self.saved = Some((pairs, unix_now));
        Ok(())
    }

    /// The last save, on the way out.
    pub fn finish(&mut self, tables: &Tables, unix_now: u64) -> Result<usize> {
        save(tables, &self.spec, &self.state_file, unix_now)
    }
}

/// The pool's addresses as a range, for messages.
pub fn describe(p: &Prefix4) -> String {
    let (first, last) = (p.network(), p.broadcast());
    format!("{p} ({first} to {last}, {} addresses)", u64::from(u32::from(last) - u32::from(first)) + 1)
}
