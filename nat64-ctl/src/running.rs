//! The running translator's life: start (or adopt what an earlier `nat64-ctl run` left
//! attached), reload a changed configuration, stop without interrupting translation,
//! and detach for good.
//!
//! Everything the data path needs outlives the process: the state maps are pinned
//! under `/sys/fs/bpf/nat64/<instance>/`, and so is each program's link to its
//! interface (`link_<interface>`), which keeps the program attached. A new process
//! loads its programs onto the same maps and swaps them into the pinned links in one
//! step each (BPF_LINK_UPDATE), so an upgrade or a restart translates every packet.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    programs::{
        SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};
use log::{info, warn};
use nat64_common::maps::MAP_GLOBALS;

use crate::{
    apply::apply_config_with,
    config::{AttachMode, Config, EamtEntry},
    general::{GeneralPath, Masquerade, check_forwarding},
    load::{
        RUN_DIR, TC_L3_PROGRAM, TC_PROGRAM, XDP_PROGRAM, ensure_bpffs, load_entry, load_pinned, pid_file,
        pin_dir, status_file,
    },
    pool::Keeper,
    status::StatusExtra,
    sys::{ifindex, is_ethernet, process_alive, unix_now},
    tables::Tables,
};

/// One interface with the translator attached.
#[derive(Clone, Debug)]
pub struct Attached {
    pub interface: String,
    /// How: "driver" or "generic" XDP, "tcx" (Ethernet) or "tcx-l3".
    pub mode: &'static str,
    /// The configuration's request (the general path's peer: TC).
    pub wanted: AttachMode,
    pub program: &'static str,
}

/// The pin of the link that keeps the program attached to `iface`.
pub fn link_pin(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("link_{iface}"))
}

fn mode_name(s: &str) -> &'static str {
    match s {
        "driver" => "driver",
        "generic" => "generic",
        "tcx" => "tcx",
        _ => "tcx-l3",
    }
}

/// How each interface was attached by the last run (its status file).
fn previous_modes(instance: &str) -> HashMap<String, String> {
    crate::status::read_status(instance)["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i["name"].as_str()?.to_string(), i["attach"].as_str()?.to_string())))
        .collect()
}

/// The entry programs `cfg` needs: XDP always, TC for the general path's peer and
/// the TC programs for the interfaces that ask for TC.
fn wanted_programs(cfg: &Config) -> Result<Vec<&'static str>> {
    let mut programs = vec![XDP_PROGRAM];
    if cfg.general_path.is_some() {
        programs.push(TC_PROGRAM);
    }
    for (i, iface) in cfg.interfaces.iter().enumerate().filter(|(_, i)| i.attach == AttachMode::Tc) {
        let p = if is_ethernet(&iface.name).map_err(|e| anyhow::anyhow!("interfaces[{i}].name: {e:#}"))? {
            TC_PROGRAM
        } else {
            TC_L3_PROGRAM
        };
        if !programs.contains(&p) {
            programs.push(p);
        }
    }
    Ok(programs)
}

/// Every listed interface must exist before anything is touched.
fn check_interfaces(cfg: &Config) -> Result<()> {
    for (i, iface) in cfg.interfaces.iter().enumerate() {
        if ifindex(&iface.name).is_err() {
            bail!("interfaces[{i}].name: {:?}: no such interface in this network namespace", iface.name);
        }
    }
    Ok(())
}

/// Whether a link made as `previous` serves a request for `wanted`.
fn same_kind(wanted: AttachMode, previous: &str) -> bool {
    match wanted {
        AttachMode::Xdp => previous == "driver" || previous == "generic",
        AttachMode::XdpGeneric => previous == "generic",
        AttachMode::Tc => previous == "tcx" || previous == "tcx-l3",
    }
}

/// Attaches the right program to `name`: into the link an earlier run pinned (one
/// atomic swap), or with a new link, pinned.
fn attach(
    ebpf: &mut Ebpf,
    dir: &Path,
    name: &str,
    wanted: AttachMode,
    previous: Option<&str>,
) -> Result<Attached> {
    let pin = link_pin(dir, name);
    let (program, tc_mode) = match wanted {
        AttachMode::Tc if is_ethernet(name)? => (TC_PROGRAM, "tcx"),
        AttachMode::Tc => (TC_L3_PROGRAM, "tcx-l3"),
        _ => (XDP_PROGRAM, ""),
    };
    if pin.exists() {
        match previous.filter(|p| same_kind(wanted, p) && (tc_mode.is_empty() || *p == tc_mode)) {
            Some(prev) => match swap(ebpf, &pin, program) {
                Ok(()) => {
                    info!("{name}: {program} swapped into the attached link ({prev})");
                    return Ok(Attached {
                        interface: name.to_string(),
                        mode: mode_name(prev),
                        wanted,
                        program,
                    });
                }
                // The link outlived its interface (deleted and made again, say): a new one.
                Err(e) => {
                    warn!("{name}: the pinned link cannot take the new program ({e:#}); attaching afresh");
                    fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
                }
            },
            None => {
                // Asked to attach another way: the old link goes first.
                fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
            }
        }
    }
    // A link just unpinned may take a moment to let go of the interface.
    let mut tries = 0;
    let (link, mode) = loop {
        let r = if program == XDP_PROGRAM {
            let prog: &mut Xdp = ebpf.program_mut(program).expect("loaded").try_into()?;
            let (id, mode) = match wanted {
                AttachMode::Xdp => match prog.attach(name, XdpMode::Driver) {
                    Ok(id) => (Ok(id), "driver"),
                    Err(e) => {
                        warn!("{name}: driver-mode XDP failed ({e}); falling back to generic mode (slower)");
                        (prog.attach(name, XdpMode::Skb), "generic")
                    }
                },
                _ => (prog.attach(name, XdpMode::Skb), "generic"),
            };
            id.map_err(anyhow::Error::from)
                .and_then(|id| Ok((FdLink::try_from(prog.take_link(id)?)?, mode)))
                .with_context(|| format!("interfaces: attaching XDP to {name}"))
        } else {
            let prog: &mut SchedClassifier = ebpf.program_mut(program).expect("loaded").try_into()?;
            prog.attach(name, TcAttachType::Ingress)
                .map_err(anyhow::Error::from)
                .and_then(|id| Ok((FdLink::try_from(prog.take_link(id)?)?, tc_mode)))
                .with_context(|| format!("interfaces: attaching TC (TCX ingress) to {name}"))
        };
        match r {
            Ok(x) => break x,
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    };
    link.pin(&pin).with_context(|| format!("pinning {}", pin.display()))?;
    info!("attached {program} to {name} ({mode} mode)");
    Ok(Attached { interface: name.to_string(), mode, wanted, program })
}

/// Swaps `program` into the link pinned at `pin`, in one step.
fn swap(ebpf: &mut Ebpf, pin: &Path, program: &'static str) -> Result<()> {
    let fd = FdLink::from(PinnedLink::from_pin(pin).with_context(|| format!("opening {}", pin.display()))?);
    if program == XDP_PROGRAM {
        let link = XdpLink::try_from(fd).context("a pinned XDP link")?;
        let prog: &mut Xdp = ebpf.program_mut(program).expect("loaded").try_into()?;
        prog.attach_to_link(link)?;
    } else {
        let link = SchedClassifierLink::try_from(fd).context("a pinned TCX link")?;
        let prog: &mut SchedClassifier = ebpf.program_mut(program).expect("loaded").try_into()?;
        prog.attach_to_link(link)?;
    }
    Ok(())
}

/// Removes the pinned links of interfaces not in `keep`: with the pin gone and no
/// process holding them, the kernel detaches the programs.
fn unpin_links_except(dir: &Path, keep: &HashSet<String>) -> Vec<String> {
    let mut gone = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(iface) = name.strip_prefix("link_")
            && !keep.contains(iface)
            && fs::remove_file(e.path()).is_ok()
        {
            gone.push(iface.to_string());
        }
    }
    gone
}

/// A translator this process runs: its programs, the pinned maps, what is attached.
pub struct Running {
    pub ebpf: Ebpf,
    pub tables: Tables,
    pub dir: PathBuf,
    pub cfg: Config,
    pub links: Vec<Attached>,
    /// The dynamic pool's upkeep, with a dynamic pool.
    pub pool: Option<Keeper>,
    pub general: Option<GeneralPath>,
    /// Whether the start found an instance's pins (programs attached by an earlier run).
    pub adopted: bool,
    /// Session sync with the other nodes (`"sync"`).
    pub sync: Option<crate::sync::node::Node>,
}

impl Running {
    /// Starts instance `cfg.instance`: adopts what an earlier run left pinned and
    /// attached (the maps are brought to `cfg` as a reload would), else starts afresh.
    /// A fresh start that fails leaves nothing behind.
    pub fn start(cfg: &Config) -> Result<Self> {
        ensure_bpffs()?;
        if let Ok(pid) = fs::read_to_string(pid_file(&cfg.instance)) {
            let pid: i32 = pid.trim().parse().unwrap_or(0);
            if process_alive(pid) && pid != std::process::id() as i32 {
                bail!(
                    "instance '{}' is already running (pid {pid}); stop it first or pick another \"instance\"",
                    cfg.instance
                );
            }
        }
        check_interfaces(cfg)?;
        if cfg.xdp_tcp_gro {
            crate::general::check_gro_forwarding()?;
        }
        let dir = pin_dir(&cfg.instance);
        let adopted = dir.join(MAP_GLOBALS).exists();
        match Tables::pinned_layout(&dir)? {
            Some(l) if l != nat64_common::maps::LAYOUT => bail!(
                "instance '{}': the pinned maps in {} have another layout ({l:#x}) than this nat64-ctl's \
                 ({:#x}): it cannot take them over. `nat64-ctl detach` (with the nat64-ctl that made them, or \
                 this one) removes them; translation stops until the new start",
                cfg.instance,
                dir.display(),
                nat64_common::maps::LAYOUT
            ),
            None if adopted => bail!(
                "instance '{}': {} holds pinned maps without a layout stamp (an older nat64-ctl); \
                 run `nat64-ctl detach` first",
                cfg.instance,
                dir.display()
            ),
            _ => {}
        }
        if let Some(n) = Tables::pinned_sizes(&dir)?
            && n != cfg.nat_sizes()
        {
            bail!("{}", sessions_change(&cfg.instance, n, cfg.nat_sizes()));
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if adopted {
            info!("instance '{}': adopting the pinned maps and links in {}", cfg.instance, dir.display());
        }
        match Self::bring_up(cfg, dir, adopted) {
            Ok(r) => Ok(r),
            Err(e) => {
                if !adopted {
                    let _ = teardown(&cfg.instance, cfg.general_path.as_ref().map(|g| g.interface.as_str()));
                }
                Err(e)
            }
        }
    }

    fn bring_up(cfg: &Config, dir: PathBuf, adopted: bool) -> Result<Self> {
        let programs = wanted_programs(cfg)?;
        let mut ebpf = load_pinned(&programs, Some(&dir), cfg.nat_sizes())?;
        if !adopted {
            Tables::stamp_layout(&mut ebpf)?;
        }
        let tables = Tables::take(&mut ebpf, None)?;
        crate::nexthop::watch(&mut ebpf)?;
        crate::ports::watch(&dir)?;
        let sync = Self::start_sync(cfg, &dir, &mut ebpf)?;
        crate::sweep::sweeper(
            &dir,
            crate::sweep::Sweeper::load(&mut ebpf)?,
            crate::sweep::sweep_report(&cfg.instance),
        )?;
        let mut me = Self {
            ebpf,
            tables,
            dir,
            cfg: cfg.clone(),
            links: Vec::new(),
            pool: None,
            general: None,
            adopted,
            sync,
        };
        me.converge(cfg, true)?;
        me.pin_jump_tables()?;
        let pid = pid_file(&cfg.instance);
        fs::create_dir_all(RUN_DIR)
            .and_then(|()| fs::write(&pid, format!("{}\n", std::process::id())))
            .with_context(|| format!("writing {}", pid.display()))?;
        Ok(me)
    }

    /// The NAT event reader (`bib-log`, session events) and session sync, as
    /// configured. The sync node takes its peers' sessions only once it has asked for
    /// them ([`crate::sync::node::Node::bulk_copy`]).
    fn start_sync(cfg: &Config, dir: &Path, ebpf: &mut Ebpf) -> Result<Option<crate::sync::node::Node>> {
        let Some(n) = cfg.nat64.as_ref() else { return Ok(None) };
        let log = crate::natlog::Sinks::open(&n.nat_log, &cfg.instance, crate::natlog::Decoder::of(n))?;
        let (events, queue) = match n.sync {
            Some(_) => {
                let (e, q) = crate::sync::node::queue();
                (Some(e), Some(q))
            }
            None => (None, None),
        };
        if log.is_some() || events.is_some() {
            crate::natlog::reader(dir, log, events)?;
        }
        let (Some(s), Some(q)) = (&n.sync, queue) else { return Ok(None) };
        let importer = crate::sync::import::Importer::load(ebpf)?;
        let node = crate::sync::node::Node::start(
            s,
            dir,
            importer,
            q,
            crate::sync::node::refresh_every(&n.timeouts),
            crate::sync::node::sync_report(&cfg.instance),
        )?;
        Ok(Some(node))
    }

    /// Applies a changed configuration as a difference: EAM entries and denylist4
    /// entries added, the settings switched in one step, then what went away removed
    /// (a packet translatable under both is never dropped); interfaces attached and
    /// detached; the general path, the pool and the masquerade brought along. The new
    /// configuration was validated as a whole before; one that needs what is not
    /// there (an interface) is refused before anything changes.
    pub fn reload(&mut self, new: &Config) -> Result<()> {
        if new.instance != self.cfg.instance {
            bail!(
                "instance: {:?}: a reload cannot rename the instance (running: {:?})",
                new.instance,
                self.cfg.instance
            );
        }
        if new.xdp_tcp_gro {
            crate::general::check_gro_forwarding()?;
        }
        let log = |c: &Config| c.nat64.as_ref().map(|n| n.nat_log.clone()).unwrap_or_default();
        if log(new) != log(&self.cfg) {
            let running: Vec<String> = log(&self.cfg).iter().map(|s| s.to_string()).collect();
            bail!(
                "nat-log, bib-log: a reload does not change where BIB events go (running: {}); restart \
                 nat64-ctl (mappings and sessions are kept)",
                if running.is_empty() { "off".to_string() } else { running.join(", ") }
            );
        }
        let sync = |c: &Config| c.nat64.as_ref().and_then(|n| n.sync.clone());
        if sync(new) != sync(&self.cfg) {
            bail!(
                "sync: a reload does not change session sync (its address, peers or key); restart nat64-ctl \
                 (mappings and sessions are kept, and the peers send them again)"
            );
        }
        let blocks = |c: &Config| c.nat64.as_ref().and_then(|n| n.port_blocks.filter(|b| b.dynamic()));
        if new.nat_sizes() != self.cfg.nat_sizes() || blocks(new) != blocks(&self.cfg) {
            bail!("{}", sessions_change(&new.instance, self.cfg.nat_sizes(), new.nat_sizes()));
        }
        check_interfaces(new)?;
        for p in wanted_programs(new)? {
            load_entry(&mut self.ebpf, p)?;
        }
        self.converge(new, false)?;
        self.pin_jump_tables()
    }

    /// Pins this process's jump tables (`JUMP_*_pid<pid>`: bpffs takes no dots in
    /// names) and unpins those of earlier runs, whose programs the links no longer hold. The kernel empties a program
    /// array once no process and no pin holds it, which would leave the attached entry
    /// programs without their stages when nat64-ctl exits.
    fn pin_jump_tables(&mut self) -> Result<()> {
        let mine: Vec<String> = ["JUMP_XDP", "JUMP_TC", "JUMP_TC_L3"]
            .iter()
            .map(|t| format!("{t}_pid{}", std::process::id()))
            .collect();
        for (table, name) in ["JUMP_XDP", "JUMP_TC", "JUMP_TC_L3"].iter().zip(&mine) {
            let pin = self.dir.join(name);
            if pin.exists() {
                continue;
            }
            if let Some(map) = self.ebpf.map(table) {
                map.pin(&pin).with_context(|| format!("pinning {}", pin.display()))?;
            }
        }
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("JUMP_") && !mine.contains(&name) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    fn converge(&mut self, cfg: &Config, starting: bool) -> Result<()> {
        let old_general = self.cfg.general_path.as_ref().map(|g| g.interface.clone());
        let general = cfg.general_path.as_ref().map(|g| GeneralPath::ensure(&g.interface)).transpose()?;
        let general_ifindex = match &general {
            Some(gp) => ifindex(&gp.peer)?,
            None => 0,
        };
        let removed = if starting && !self.adopted {
            apply_config_with(&mut self.tables, cfg, general_ifindex)?;
            Vec::new()
        } else {
            sync_maps(&mut self.tables, cfg, general_ifindex)?
        };

        // The pool: mappings kept in the maps when adopted, else from the state file.
        let g = self.tables.globals()?;
        self.pool = match (&cfg.dynamic_pool, self.pool.take()) {
            (Some(d), Some(mut k)) => {
                k.state_file = d.state_file.clone();
                k.tick(&mut self.tables, unix_now(), true)?;
                Some(k)
            }
            (Some(d), None) => {
                Some(Keeper::start(&mut self.tables, d, &g, unix_now(), !self.adopted || !starting)?)
            }
            (None, Some(_)) => {
                crate::pool::flush(&mut self.tables)?;
                None
            }
            (None, None) => None,
        };

        // Session sync: the peers' sessions before the programs take traffic.
        if starting && let Some(node) = &self.sync {
            node.bulk_copy();
        }

        // Interfaces, the general path's peer among them.
        let previous = if starting { previous_modes(&cfg.instance) } else { HashMap::new() };
        let mut wanted: Vec<(String, AttachMode)> =
            cfg.interfaces.iter().map(|i| (i.name.clone(), i.attach)).collect();
        if let Some(gp) = &general {
            // TC: the held stage sends two packets for one (ICMP echoes in fragments,
            // which XDP programs hand to the kernel, whose routes bring them here).
            wanted.push((gp.peer.clone(), AttachMode::Tc));
        }
        let mut links = Vec::new();
        for (name, mode) in &wanted {
            let current = self.links.iter().find(|a| &a.interface == name && a.wanted == *mode).cloned();
            let a = match current {
                Some(a) => a,
                None => {
                    let prev = previous
                        .get(name)
                        .map(String::as_str)
                        .or_else(|| self.links.iter().find(|a| &a.interface == name).map(|a| a.mode));
                    attach(&mut self.ebpf, &self.dir, name, *mode, prev)?
                }
            };
            links.push(a);
        }
        let keep: HashSet<String> = links.iter().map(|a| a.interface.clone()).collect();
        for gone in unpin_links_except(&self.dir, &keep) {
            info!("detached from {gone} (not in the configuration)");
        }
        // Redirect targets of the fast path: Ethernet ports (L3 devices get their packets
        // from the kernel, which knows how to frame them), for XDP programs only those
        // that take XDP frames (see `ports`).
        let ports: Vec<(String, u32)> = links
            .iter()
            .filter(|a| a.mode != "tcx-l3")
            .filter_map(|a| ifindex(&a.interface).ok().map(|i| (a.interface.clone(), i)))
            .collect();
        let xdp_ingress = links.iter().any(|a| a.mode == "driver" || a.mode == "generic");
        let link_mtus =
            crate::general::link_mtus(ports.iter().map(|p| p.1).filter(|i| *i != general_ifindex));
        let mtu4 = crate::general::route_mtu(cfg.lowest_ipv6_mtu, &link_mtus);
        crate::ports::set(ports, xdp_ingress)?;
        self.links = links;

        if let Some(gp) = &general {
            gp.route(cfg, mtu4)?;
            for e in &removed {
                crate::general::general_path_sync(&self.tables, Some(e))?;
            }
            info!("general path: {} <-> {} (IPv4 route MTU {mtu4})", gp.name, gp.peer);
        }
        if let Some(old) = old_general.filter(|o| general.as_ref().is_none_or(|g| &g.name != o))
            && !starting
            && GeneralPath::delete(&old)?
        {
            info!("general path {old} removed (not in the configuration)");
        }
        self.general = general;
        if cfg.dynamic_pool.is_some() {
            check_forwarding(cfg);
        }
        match (&cfg.masquerade, &cfg.dynamic_pool) {
            (Some(iface), Some(d)) => Masquerade::install(&cfg.instance, iface, d.prefix)?,
            _ => {
                if Masquerade::remove(&cfg.instance).unwrap_or(false) {
                    info!("masquerade: table removed (not in the configuration)");
                }
            }
        }
        self.cfg = cfg.clone();
        Ok(())
    }

    /// The kernel's id of each loaded entry program.
    pub fn program_ids(&self) -> HashMap<&'static str, u32> {
        [XDP_PROGRAM, TC_PROGRAM, TC_L3_PROGRAM]
            .into_iter()
            .filter_map(|n| Some((n, self.ebpf.program(n)?.info().ok()?.id())))
            .collect()
    }
}

/// Brings the maps of an instance that already runs to `cfg`, in the order that never
/// drops a packet translatable before and after: additions, the settings, removals.
/// Returns the EAM entries removed.
fn sync_maps(tables: &mut Tables, cfg: &Config, general_ifindex: u32) -> Result<Vec<EamtEntry>> {
    let current = tables.eamt()?;
    for e in cfg.eamt.iter().filter(|e| !current.contains(e)) {
        tables.eamt_insert(e, 0)?;
    }
    let deny = tables.denylist4()?;
    for p in cfg.denylist4.iter().filter(|p| !deny.contains(p)) {
        tables.denylist4_add(*p)?;
    }
    // Prefixes that stay or come are there before the settings switch; the ones gone
    // are taken out after it.
    let mut translatable = tables.ipv4_translatable()?;
    translatable.extend(
        cfg.ipv4_translatable.iter().filter(|p| !translatable.contains(p)).copied().collect::<Vec<_>>(),
    );
    tables.ipv4_translatable_set(&translatable)?;
    crate::apply::apply_nat64(tables, cfg)?;
    let old = tables.globals()?;
    let mut g = cfg.globals();
    g.general_ifindex = general_ifindex;
    g.eam_gen = old.eam_gen;
    tables.set_globals(g)?;
    let mut removed = Vec::new();
    for e in current.into_iter().filter(|e| !cfg.eamt.contains(e)) {
        // A side the new entries still use stays (it was overwritten in place).
        let v4 = (!cfg.eamt.iter().any(|n| n.v4 == e.v4)).then_some(e.v4);
        let v6 = (!cfg.eamt.iter().any(|n| n.v6 == e.v6)).then_some(e.v6);
        tables.eamt_remove_sides(v4, v6)?;
        removed.push(e);
    }
    for p in deny.into_iter().filter(|p| !cfg.denylist4.contains(p)) {
        tables.denylist4_del(p)?;
    }
    tables.ipv4_translatable_set(&cfg.ipv4_translatable)?;
    Ok(removed)
}

impl Drop for Running {
    /// Stopping leaves translation running: the programs stay attached through their
    /// pinned links, on the pinned maps. Only the pool's state is saved.
    fn drop(&mut self) {
        if let Some(k) = self.pool.as_mut() {
            match k.finish(&self.tables, unix_now()) {
                Ok(n) => info!("dynamic-pool: {n} mappings saved to {}", k.state_file.display()),
                Err(e) => warn!("{e:#}"),
            }
        }
        let _ = fs::remove_file(pid_file(&self.cfg.instance));
    }
}

/// Removes everything instance `instance` set up, in this network namespace: the
/// pinned links (the programs detach), the pinned maps, the general path (`general`,
/// else the one its status file names), the masquerade table, the run files. Returns
/// what it removed.
pub fn teardown(instance: &str, general: Option<&str>) -> Result<Vec<String>> {
    let mut did = Vec::new();
    let dir = pin_dir(instance);
    let status = crate::status::read_status(instance);
    if dir.exists() {
        let links = unpin_links_except(&dir, &HashSet::new());
        if !links.is_empty() {
            did.push(format!("detached from {}", links.join(", ")));
        }
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        did.push(format!("removed the pins in {}", dir.display()));
    }
    let gp = general.map(str::to_string).or_else(|| status["general-path"].as_str().map(str::to_string));
    if let Some(gp) = gp
        && GeneralPath::delete(&gp)?
    {
        did.push(format!("removed the general path {gp}"));
    }
    if Masquerade::remove(instance)? {
        did.push(format!("removed nftables table ip {}", Masquerade::table_name(instance)));
    }
    let _ = fs::remove_file(status_file(instance));
    let _ = fs::remove_file(crate::sweep::sweep_report(instance));
    let _ = fs::remove_file(crate::sync::node::sync_report(instance));
    let _ = fs::remove_file(pid_file(instance));
    Ok(did)
}

/// Why the session table cannot take a new size (`max-sessions`, or a mode switched to
/// or from "nat64", whose tables outside that mode hold 1 entry).
fn sessions_change(instance: &str, running: (u32, u32), wanted: (u32, u32)) -> String {
    let what = |n: u32| if n == 1 { "none (not mode \"nat64\")".to_string() } else { n.to_string() };
    let detach = "the tables are made at the first start and kept while pinned. `nat64-ctl detach` (which ends \
                  every mapping and session), then `nat64-ctl run`";
    if running.0 != wanted.0 {
        return format!(
            "max-sessions: instance '{instance}' has room for {} sessions and this configuration asks for {}: \
             {detach}",
            what(running.0),
            what(wanted.0)
        );
    }
    let blocks = |n: u32| {
        if n == 1 { "no dynamic port blocks".to_string() } else { format!("{n} dynamic port blocks") }
    };
    format!(
        "port-block-size: instance '{instance}' runs {} and this configuration asks for {} (or other blocks: \
         subscribers hold them): {detach}",
        blocks(running.1),
        blocks(wanted.1)
    )
}

/// What `status` shows first, in one line (for the service manager's `STATUS=`): the
/// mode, where it is attached and how, pool6, and the tables' size.
pub fn summary(running: &Running) -> String {
    let cfg = &running.cfg;
    let links: Vec<String> = running.links.iter().map(|a| format!("{} ({})", a.interface, a.mode)).collect();
    let mut out = format!(
        "{} on {}",
        cfg.mode.name(),
        if links.is_empty() { "no interface".into() } else { links.join(", ") }
    );
    if let Some(p) = cfg.pool6 {
        out += &format!("; pool6 {p}");
    }
    match &cfg.nat64 {
        Some(n) => {
            let pool4: Vec<String> = n.pool4.iter().map(|p| p.prefix.to_string()).collect();
            out += &format!("; pool4 {}", pool4.join(" "));
            if let Some(s) = &n.sync {
                out += &format!(
                    "; sync with {}",
                    s.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
                );
            }
        }
        None => out += &format!("; {} EAMT entries", cfg.eamt.len()),
    }
    out
}

/// Writes the status file (write, then rename: a reader never sees half of it).
pub fn write_status(running: &crate::running::Running, extra: &StatusExtra) -> Result<()> {
    let cfg = &running.cfg;
    let path = status_file(&cfg.instance);
    let ids = running.program_ids();
    let interfaces: Vec<_> = running
        .links
        .iter()
        .map(|a| {
            serde_json::json!({
                "name": a.interface,
                "ifindex": ifindex(&a.interface).ok(),
                "attach": a.mode,
                "program": a.program,
                "program-id": ids.get(a.program),
            })
        })
        .collect();
    let pref64 = match extra.pref64 {
        Some(d) => {
            if d.ra {
                serde_json::json!({"source": "auto", "via": "ra", "router": d.resolver.to_string(), "lifetime": d.ttl, "checked": unix_now()})
            } else {
                serde_json::json!({"source": "auto", "via": "dns64", "resolver": d.resolver.to_string(), "ttl": d.ttl, "checked": unix_now()})
            }
        }
        None if cfg.pool6.is_some() => serde_json::json!({"source": "config"}),
        None => serde_json::Value::Null,
    };
    let v = serde_json::json!({
        "instance": cfg.instance,
        "pid": std::process::id(),
        "config": extra.config_path.display().to_string(),
        "mode": cfg.mode.name(),
        "started": extra.started,
        "adopted": running.adopted,
        "interfaces": interfaces,
        "general-path": running.general.as_ref().map(|g| g.name.clone()),
        "masquerade": cfg.masquerade,
        "pref64": pref64,
        "last-reload": extra.last_reload,
    });
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
