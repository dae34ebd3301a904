//! The translator's maps as user space sees them, whether freshly loaded (owned by
//! this process) or opened from the pins of a running instance.

pub mod nat;

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, PerCpuArray, lpm_trie::Key},
};
use nat64_common::{
    counters::{COUNTER_SLOTS, Counter, CounterValue},
    maps::{
        EamEntry, Globals, MAP_COUNTERS, MAP_DENYLIST4, MAP_EAMT4, MAP_EAMT6, MAP_GLOBALS,
        MAP_GLOBALS_ACTIVE, MAP_POOL_DORMANT, MAP_POOL_HEAD, MAP_POOL_RING, MAP_POOL_TAIL, MAP_POOL4,
        MAP_POOL6, MAP_PORTS, MAP_TX_PORTS, MAP_V4XLAT, PoolDormant, PoolEntry, PortState,
    },
};

use crate::config::{EamtEntry, Prefix4, Prefix6, check_eamt_insert, check_eamt_insert_forced};

pub struct Tables {
    pub globals: Array<MapData, Globals>,
    pub globals_active: Array<MapData, u32>,
    pub eamt4: LpmTrie<MapData, [u8; 4], EamEntry>,
    pub eamt6: LpmTrie<MapData, [u8; 16], EamEntry>,
    pub denylist4: LpmTrie<MapData, [u8; 4], u8>,
    /// `None` as `ports`, for pins of an older nat64-ctl.
    pub v4xlat: Option<LpmTrie<MapData, [u8; 4], u8>>,
    pub tx_ports: DevMapHash<MapData>,
    /// `None` only when opening the pins of an instance started by a nat64-ctl older
    /// than this map (a take-over creates it).
    pub ports: Option<HashMap<MapData, u32, PortState>>,
    pub counters: PerCpuArray<MapData, CounterValue>,
    pub pool6: HashMap<MapData, [u8; 16], PoolEntry>,
    pub pool4: HashMap<MapData, [u8; 4], PoolEntry>,
    pub pool_dormant: HashMap<MapData, [u8; 16], PoolDormant>,
    pub pool_ring: Array<MapData, [u8; 4]>,
    pub pool_tail: Array<MapData, u64>,
    pub pool_head: PerCpuArray<MapData, u64>,
    /// Stateful NAT64's maps; `None` for the pins of a nat64-ctl older than them.
    pub nat: Option<nat::NatTables>,
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<Map> {
    ebpf.take_map(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

/// A map pinned under `dir`.
pub fn open_map(dir: &Path, name: &str) -> Result<Map> {
    open(dir, name)
}

fn open(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))?;
    Map::from_map_data(data).with_context(|| format!("pinned map {}", path.display()))
}

impl Tables {
    fn from_maps(mut get: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        Ok(Self {
            globals: Array::try_from(get(MAP_GLOBALS)?)?,
            globals_active: Array::try_from(get(MAP_GLOBALS_ACTIVE)?)?,
            eamt4: LpmTrie::try_from(get(MAP_EAMT4)?)?,
            eamt6: LpmTrie::try_from(get(MAP_EAMT6)?)?,
            denylist4: LpmTrie::try_from(get(MAP_DENYLIST4)?)?,
            v4xlat: get(MAP_V4XLAT).ok().map(LpmTrie::try_from).transpose()?,
            tx_ports: DevMapHash::try_from(get(MAP_TX_PORTS)?)?,
            ports: get(MAP_PORTS).ok().map(HashMap::try_from).transpose()?,
            counters: PerCpuArray::try_from(get(MAP_COUNTERS)?)?,
            pool6: HashMap::try_from(get(MAP_POOL6)?)?,
            pool4: HashMap::try_from(get(MAP_POOL4)?)?,
            pool_dormant: HashMap::try_from(get(MAP_POOL_DORMANT)?)?,
            pool_ring: Array::try_from(get(MAP_POOL_RING)?)?,
            pool_tail: Array::try_from(get(MAP_POOL_TAIL)?)?,
            pool_head: PerCpuArray::try_from(get(MAP_POOL_HEAD)?)?,
            nat: nat::NatTables::from_maps(&mut get).ok(),
        })
    }

    /// Takes the maps out of a freshly loaded object, pinning each under `pin_dir`
    /// (which must exist) when one is given.
    pub fn take(ebpf: &mut Ebpf, pin_dir: Option<&Path>) -> Result<Self> {
        Self::from_maps(|n| {
            let map = take(ebpf, n)?;
            if let Some(dir) = pin_dir {
                let path = dir.join(n);
                map.pin(&path).with_context(|| format!("pinning {}", path.display()))?;
            }
            Ok(map)
        })
    }

    /// Opens the maps a running instance pinned under `dir`.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Self::from_maps(|n| open(dir, n))
    }

    /// The capacity of the session table pinned in `dir`, if there is one.
    pub fn pinned_sessions(dir: &Path) -> Result<Option<u32>> {
        Self::pinned_capacity(dir, nat64_common::maps::MAP_SESSIONS)
    }

    /// The sizes of the pinned stateful tables (as `Config::nat_sizes`), if pinned.
    pub fn pinned_sizes(dir: &Path) -> Result<Option<(u32, u32)>> {
        let Some(sessions) = Self::pinned_sessions(dir)? else { return Ok(None) };
        let blocks = Self::pinned_capacity(dir, nat64_common::maps::MAP_NAT_BLOCKS)?.unwrap_or(1);
        Ok(Some((sessions, blocks)))
    }

    fn pinned_capacity(dir: &Path, map: &str) -> Result<Option<u32>> {
        let path = dir.join(map);
        if !path.exists() {
            return Ok(None);
        }
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))?;
        Ok(Some(data.info().with_context(|| format!("reading {}", path.display()))?.max_entries()))
    }

    /// Whether the pinned maps in `dir` (if any) have this build's layout: `Ok(None)`
    /// without pins, else the layout found.
    pub fn pinned_layout(dir: &Path) -> Result<Option<u64>> {
        let path = dir.join(nat64_common::maps::MAP_LAYOUT);
        if !path.exists() {
            return Ok(None);
        }
        let a: Array<MapData, u64> = Array::try_from(open(dir, nat64_common::maps::MAP_LAYOUT)?)?;
        Ok(Some(a.get(&0, 0).context("reading LAYOUT")?))
    }

    /// Stamps freshly made maps with this build's layout.
    pub fn stamp_layout(ebpf: &mut Ebpf) -> Result<()> {
        let mut a: Array<&mut MapData, u64> =
            Array::try_from(ebpf.map_mut(nat64_common::maps::MAP_LAYOUT).context("no LAYOUT map")?)?;
        a.set(0, nat64_common::maps::LAYOUT, 0).context("writing LAYOUT")
    }

    fn active_slot(&self) -> Result<u32> {
        Ok(self.globals_active.get(&0, 0).context("reading GLOBALS_ACTIVE")? & 1)
    }

    /// The configuration in force.
    pub fn globals(&self) -> Result<Globals> {
        Ok(self.globals.get(&self.active_slot()?, 0)?)
    }

    /// Replaces the configuration as one step for the data path: the idle slot is
    /// written first, then made active. The tables' generation moves on (whatever `g`
    /// holds): the data path finds every address's mapping again.
    pub fn set_globals(&mut self, mut g: Globals) -> Result<()> {
        g.tables_gen = self.globals()?.tables_gen.wrapping_add(1);
        let next = self.active_slot()? ^ 1;
        self.globals.set(next, g, 0).context("writing GLOBALS")?;
        self.globals_active.set(0, next, 0).context("writing GLOBALS_ACTIVE")
    }

    /// After a change of the address tables: the data path's memo of what addresses map
    /// to (its answers carry the generation they were found in) is outdated.
    fn tables_changed(&mut self) -> Result<()> {
        let g = self.globals()?;
        self.set_globals(g)
    }

    /// Every EAMT entry, sorted by IPv4 prefix.
    pub fn eamt(&self) -> Result<Vec<EamtEntry>> {
        let mut out = Vec::new();
        for item in self.eamt4.iter() {
            let (_, e) = item.context("reading EAMT4")?;
            out.push(EamtEntry {
                v4: Prefix4::new(Ipv4Addr::from(e.v4), e.v4_len).context("an EAMT4 entry")?,
                v6: Prefix6::new(Ipv6Addr::from(e.v6), e.v6_len).context("an EAMT4 entry")?,
            });
        }
        out.sort_by_key(|e| (u32::from(e.v4.addr()), e.v4.prefix_len()));
        Ok(out)
    }

    /// Adds an entry after checking it against the table (RFC 7757 wants a unique
    /// mapping both ways). Both tries change or neither does.
    /// With `force`, entries nested in others are accepted (longest-prefix match).
    pub fn eamt_add(&mut self, entry: &EamtEntry, force: bool) -> Result<()> {
        self.check_outside_pool(entry)?;
        if force {
            check_eamt_insert_forced(&self.eamt()?, entry)?;
        } else {
            check_eamt_insert(&self.eamt()?, entry)?;
        }
        self.eamt_insert(entry, 0)?;
        self.tables_changed()
    }

    /// An EAM entry may not cover dynamic-pool addresses (an address is either static
    /// or handed out).
    fn check_outside_pool(&self, entry: &EamtEntry) -> Result<()> {
        let g = self.globals()?;
        if let Some(pool) = dynamic_pool(&g)
            && pool.overlaps(&entry.v4)
        {
            bail!("EAM {entry}: its IPv4 prefix {} overlaps the dynamic pool {pool}", entry.v4);
        }
        Ok(())
    }

    /// Writes an entry of generation `generation` into both tries without checking it against
    /// the table (the caller did, for the table as a whole). Both change or neither. The
    /// caller writes the settings afterwards (`set_globals`), which the data path waits
    /// for before it uses the entry for an address it has mapped before.
    pub fn eamt_insert(&mut self, entry: &EamtEntry, generation: u32) -> Result<()> {
        let mut e = entry.to_entry();
        e.generation = generation;
        let k4 = Key::new(entry.v4.prefix_len() as u32, entry.v4.addr().octets());
        let k6 = Key::new(entry.v6.prefix_len() as u32, entry.v6.addr().octets());
        self.eamt6.insert(&k6, e, 0).context("inserting into EAMT6")?;
        if let Err(err) = self.eamt4.insert(&k4, e, 0) {
            let _ = self.eamt6.remove(&k6);
            return Err(err).context("inserting into EAMT4");
        }
        Ok(())
    }

    /// Adds many entries so that the data path sees all of them at once or none: they
    /// are written with the next EAMT generation, which the data path ignores until the
    /// configuration's generation is moved on, in one step, at the end. Each is checked
    /// against the table and the others (no overlap, O(n log n)); `name(i)` names entry
    /// `i` in messages. On any error nothing is changed.
    pub fn eamt_add_bulk(&mut self, new: &[EamtEntry], name: impl Fn(usize) -> String) -> Result<()> {
        for (i, e) in new.iter().enumerate() {
            self.check_outside_pool(e).with_context(|| name(i))?;
        }
        let existing = self.eamt()?;
        let n_old = existing.len();
        let mut all = existing;
        all.extend_from_slice(new);
        if let Some((a, b, v4)) = crate::config::eamt_first_overlap(&all) {
            // Named by the later one: an existing entry or an earlier line comes first.
            let (a, b) = (a.max(b), a.min(b));
            let what = |i: usize| {
                if i < n_old {
                    format!("existing entry {}", all[i])
                } else {
                    format!("{} ({})", name(i - n_old), all[i])
                }
            };
            let (fa, pa) = if v4 { ("IPv4", all[a].v4.to_string()) } else { ("IPv6", all[a].v6.to_string()) };
            bail!("{}: its {fa} prefix {pa} overlaps {}", what(a), what(b));
        }
        let mut g = self.globals()?;
        let generation = g.eam_gen + 1;
        for (i, e) in new.iter().enumerate() {
            if let Err(err) = self.eamt_insert(e, generation) {
                for done in &new[..i] {
                    let _ = self.eamt_remove_sides(Some(done.v4), Some(done.v6));
                }
                return Err(err).with_context(|| format!("{} (nothing was added)", name(i)));
            }
        }
        g.eam_gen = generation;
        self.set_globals(g)
    }

    /// Removes the entries keyed by these exact prefixes, on the sides given.
    pub fn eamt_remove_sides(&mut self, v4: Option<Prefix4>, v6: Option<Prefix6>) -> Result<()> {
        if let Some(p) = v4 {
            self.eamt4
                .remove(&Key::new(p.prefix_len() as u32, p.addr().octets()))
                .context("removing from EAMT4")?;
        }
        if let Some(p) = v6 {
            self.eamt6
                .remove(&Key::new(p.prefix_len() as u32, p.addr().octets()))
                .context("removing from EAMT6")?;
        }
        self.tables_changed()
    }

    /// Removes the entry whose IPv4 prefix (or IPv6 prefix) is exactly `key`.
    pub fn eamt_del(&mut self, v4: Option<Prefix4>, v6: Option<Prefix6>) -> Result<EamtEntry> {
        let all = self.eamt()?;
        let found = all
            .into_iter()
            .find(|e| v4.is_none_or(|p| p == e.v4) && v6.is_none_or(|p| p == e.v6))
            .ok_or_else(|| {
                let what = match (v4, v6) {
                    (Some(a), Some(b)) => format!("{a} <-> {b}"),
                    (Some(a), None) => a.to_string(),
                    (None, Some(b)) => b.to_string(),
                    (None, None) => String::new(),
                };
                anyhow!("no EAMT entry {what} (see `nat64-ctl map list`)")
            })?;
        self.eamt4
            .remove(&Key::new(found.v4.prefix_len() as u32, found.v4.addr().octets()))
            .context("removing from EAMT4")?;
        self.eamt6
            .remove(&Key::new(found.v6.prefix_len() as u32, found.v6.addr().octets()))
            .context("removing from EAMT6")?;
        self.tables_changed()?;
        Ok(found)
    }

    /// Lets the fast path redirect packets out of this interface: TC programs always,
    /// XDP programs when `state` says it takes XDP frames. Ordered so that no program
    /// ever finds the port in TX_PORTS without its state.
    pub fn port_set(&mut self, ifindex: u32, state: PortState) -> Result<()> {
        let ports = self.ports.as_mut().context("the instance's maps have no PORTS")?;
        if !state.xdp_target() {
            // Not there is as good as removed.
            let _ = self.tx_ports.remove(ifindex);
        }
        ports.insert(ifindex, state, 0).context("inserting into PORTS")?;
        if state.xdp_target() {
            self.tx_ports.insert(ifindex, ifindex, None, 0).context("inserting into TX_PORTS")?;
        }
        Ok(())
    }

    /// Takes the interface out of the fast path's redirect targets.
    pub fn port_del(&mut self, ifindex: u32) {
        let _ = self.tx_ports.remove(ifindex);
        if let Some(p) = self.ports.as_mut() {
            let _ = p.remove(&ifindex);
        }
    }

    /// The ports the fast path may redirect into, by ifindex.
    pub fn ports(&self) -> Vec<(u32, PortState)> {
        self.ports.as_ref().map(|p| p.iter().filter_map(|e| e.ok()).collect()).unwrap_or_default()
    }

    pub fn denylist4_add(&mut self, p: Prefix4) -> Result<()> {
        self.denylist4
            .insert(&Key::new(p.prefix_len() as u32, p.addr().octets()), 1, 0)
            .context("inserting into DENYLIST4")?;
        self.tables_changed()
    }

    fn v4xlat_trie(&mut self) -> Result<&mut LpmTrie<MapData, [u8; 4], u8>> {
        self.v4xlat.as_mut().context("the instance's maps have no V4XLAT (started by an older nat64-ctl)")
    }

    /// Makes `ipv4-translatable` exactly `list` (the flag that has the data path look at
    /// the trie lives in the globals): new prefixes first, then the ones gone.
    pub fn ipv4_translatable_set(&mut self, list: &[Prefix4]) -> Result<()> {
        let current = self.ipv4_translatable()?;
        let trie = self.v4xlat_trie()?;
        let mut changed = false;
        for p in list.iter().filter(|p| !current.contains(p)) {
            trie.insert(&Key::new(p.prefix_len() as u32, p.addr().octets()), 1, 0)
                .context("inserting into V4XLAT")?;
            changed = true;
        }
        for p in current.iter().filter(|p| !list.contains(p)) {
            trie.remove(&Key::new(p.prefix_len() as u32, p.addr().octets()))
                .context("removing from V4XLAT")?;
            changed = true;
        }
        if changed {
            self.tables_changed()?;
        }
        Ok(())
    }

    /// The `ipv4-translatable` prefixes, sorted.
    pub fn ipv4_translatable(&self) -> Result<Vec<Prefix4>> {
        let Some(trie) = &self.v4xlat else { return Ok(Vec::new()) };
        prefixes4(trie, MAP_V4XLAT)
    }

    pub fn denylist4_del(&mut self, p: Prefix4) -> Result<()> {
        self.denylist4
            .remove(&Key::new(p.prefix_len() as u32, p.addr().octets()))
            .map_err(|_| anyhow!("{p} is not in denylist4 (see `nat64-ctl denylist4 list`)"))?;
        self.tables_changed()
    }

    /// denylist4, sorted.
    pub fn denylist4(&self) -> Result<Vec<Prefix4>> {
        prefixes4(&self.denylist4, MAP_DENYLIST4)
    }

    pub fn denylist4_contains(&self, a: Ipv4Addr) -> bool {
        self.denylist4.get(&Key::new(32, a.octets()), 0).is_ok()
    }

    pub fn eam_lookup4(&self, a: Ipv4Addr) -> Option<EamEntry> {
        self.eamt4.get(&Key::new(32, a.octets()), 0).ok()
    }

    pub fn eam_lookup6(&self, a: Ipv6Addr) -> Option<EamEntry> {
        self.eamt6.get(&Key::new(128, a.octets()), 0).ok()
    }

    /// Counter totals over all CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, CounterValue)>> {
        let mut out = Vec::new();
        for &c in Counter::ALL {
            if c as u32 >= COUNTER_SLOTS {
                bail!("counter {} out of range", c.name());
            }
            let per_cpu = self.counters.get(&(c as u32), 0).context("reading COUNTERS")?;
            let mut total = CounterValue::default();
            for v in per_cpu.iter() {
                total.packets += v.packets;
                total.bytes += v.bytes;
            }
            out.push((c, total));
        }
        Ok(out)
    }

    /// Counts `packets` (of `bytes`) under `c`, an event nat64-ctl alone records (the
    /// programs never write its slot, so a read and a write cannot lose theirs).
    pub fn add_event(&mut self, c: Counter, packets: u64, bytes: u64) -> Result<()> {
        let per_cpu = self.counters.get(&(c as u32), 0).context("reading COUNTERS")?;
        let mut values: Vec<CounterValue> = per_cpu.iter().copied().collect();
        if let Some(v) = values.first_mut() {
            v.packets += packets;
            v.bytes += bytes;
        }
        let values = aya::maps::PerCpuValues::try_from(values).context("counters per CPU")?;
        self.counters.set(c as u32, values, 0).context("writing COUNTERS")
    }
}

/// The prefixes held in an IPv4 LPM trie, sorted.
fn prefixes4(trie: &LpmTrie<MapData, [u8; 4], u8>, name: &str) -> Result<Vec<Prefix4>> {
    let mut out = Vec::new();
    for k in trie.keys() {
        let k = k.with_context(|| format!("reading {name}"))?;
        out.push(
            Prefix4::new(Ipv4Addr::from(k.data()), k.prefix_len() as u8)
                .with_context(|| format!("a key of {name}"))?,
        );
    }
    out.sort_by_key(|p| (u32::from(p.addr()), p.prefix_len()));
    Ok(out)
}

/// The dynamic pool's prefix, when the settings have one.
pub fn dynamic_pool(g: &Globals) -> Option<Prefix4> {
    if g.flag(Globals::FLAG_DYNAMIC_POOL) {
        Prefix4::new(g.dyn_pool.into(), g.dyn_pool_len).ok()
    } else {
        None
    }
}
