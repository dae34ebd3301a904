//! The eBPF object and its programs: loading and verifying them with their stages
//! (the jump tables), where an instance pins its maps and keeps its run state, and
//! finding a running instance.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::{Ebpf, EbpfLoader, maps::ProgramArray};

use log::warn;

use crate::EBPF_OBJECT;

/// bpffs mount point and the folder under it where instances pin their maps.
pub const BPFFS: &str = "/sys/fs/bpf";
pub const PIN_ROOT: &str = "/sys/fs/bpf/nat64";
/// Name of the XDP translator program in the object.
pub const XDP_PROGRAM: &str = "nat64_xdp";
/// The TC (TCX ingress) programs, for Ethernet and for L3 devices.
pub const TC_PROGRAM: &str = "nat64_tc";
pub const TC_L3_PROGRAM: &str = "nat64_tc_l3";

pub fn pin_dir(instance: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(instance)
}

/// Run-state folder: the pid file of each running instance (bpffs holds only BPF
/// objects, so it cannot live beside the pins).
pub const RUN_DIR: &str = "/run/nat64";

/// Written once the instance is fully configured and attached: its presence means
/// "ready".
pub fn pid_file(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.pid"))
}

/// Loads the embedded object and the named XDP programs into the kernel (verifier
/// included) without attaching anything.
/// The jump table an entry program's stages go in.
fn jump_table(entry: &str) -> Option<&'static str> {
    match entry {
        XDP_PROGRAM => Some("JUMP_XDP"),
        TC_PROGRAM => Some("JUMP_TC"),
        TC_L3_PROGRAM => Some("JUMP_TC_L3"),
        _ => None,
    }
}

/// Loads the embedded object and has the kernel verify `programs`; an entry program
/// comes with its stages, put in its jump table (which lives as long as the `Ebpf`).
pub fn load(programs: &[&str]) -> Result<Ebpf> {
    load_pinned(programs, None, (nat64_common::maps::SESSIONS_MAX_ENTRIES, 1))
}

/// Like [`load`], with the translator's state maps (`load::PINNED_MAPS`) taken from
/// their pins in `pin_dir`, or created and pinned there: a new process (an upgrade, a
/// restart) works on the maps the running programs use. The jump tables and the
/// scratch space stay private to each load.
///
/// `sizes` sizes stateful NAT64's tables: `max-sessions` (1 in the other modes) and the
/// dynamic port blocks (`Config::nat_sizes`); maps taken from pins keep the size they
/// were made with (see `Running::start`).
pub fn load_pinned(programs: &[&str], pin_dir: Option<&Path>, sizes: (u32, u32)) -> Result<Ebpf> {
    if EBPF_OBJECT.is_empty() {
        bail!(
            "this nat64-ctl was built with AYA_BUILD_SKIP=1 and carries no eBPF object; \
             rebuild it without AYA_BUILD_SKIP"
        );
    }
    let mut loader = EbpfLoader::new();
    for (name, n) in nat64_common::maps::nat_capacities(sizes.0, sizes.1) {
        loader.map_max_entries(name, n);
    }
    if let Some(dir) = pin_dir {
        for name in crate::load::PINNED_MAPS {
            loader.map_pin_path(name, dir.join(name));
        }
    }
    let mut ebpf =
        loader.load(EBPF_OBJECT).context("loading the eBPF object (or opening its pinned maps)")?;
    for entry in programs {
        load_entry(&mut ebpf, entry)?;
    }
    Ok(ebpf)
}

/// Has the kernel verify `entry` (if not done yet) and, for an entry program, its
/// stages, put in its jump table.
pub fn load_entry(ebpf: &mut Ebpf, entry: &str) -> Result<()> {
    if ebpf.program(entry).is_some_and(|p| p.fd().is_ok()) {
        return Ok(());
    }
    {
        load_one(ebpf, entry)?;
        let Some(table) = jump_table(entry) else { return Ok(()) };
        for stage in nat64_common::stages::ALL {
            let (i, name) = (stage.index, format!("{entry}_{}", stage.suffix));
            load_one(ebpf, &name)?;
            let fd = ebpf.program(&name).expect("loaded above").fd()?.try_clone()?;
            let mut jumps: ProgramArray<_> = ebpf
                .map_mut(table)
                .with_context(|| format!("the eBPF object has no map {table}"))?
                .try_into()?;
            jumps.set(i, &fd, 0).with_context(|| format!("{table}[{i}] = {name}"))?;
        }
    }
    Ok(())
}

fn load_one(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let prog = ebpf.program_mut(name).with_context(|| format!("the eBPF object has no program {name}"))?;
    let loaded = match prog {
        aya::programs::Program::Xdp(p) => p.load(),
        aya::programs::Program::SchedClassifier(p) => p.load(),
        _ => bail!("program {name} is neither XDP nor TC"),
    };
    loaded.with_context(|| format!("loading program {name} (verifier)"))
}

/// Whether /sys/fs/bpf is a mounted bpffs (it is not inside `ip netns exec`).
fn bpffs_mounted() -> bool {
    // statfs f_type of bpffs
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let path = std::ffi::CString::new(BPFFS).expect("static path");
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

pub(crate) fn ensure_bpffs() -> Result<()> {
    if bpffs_mounted() {
        return Ok(());
    }
    fs::create_dir_all(BPFFS).ok();
    let src = std::ffi::CString::new("bpf").expect("static");
    let dst = std::ffi::CString::new(BPFFS).expect("static");
    // SAFETY: valid C strings; a null data pointer is allowed.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        bail!(
            "{BPFFS} is not a bpffs and mounting one failed ({}); mount it with `mount -t bpf bpf {BPFFS}`",
            std::io::Error::last_os_error()
        );
    }
    warn!("mounted a bpffs on {BPFFS}");
    Ok(())
}

/// The pin folder of a running instance, with a message a person can act on when
/// there is none.
pub fn find_running(instance: &str) -> Result<PathBuf> {
    let dir = pin_dir(instance);
    if dir.join(crate::load::PINNED_MAPS[0]).exists() {
        return Ok(dir);
    }
    if !bpffs_mounted() {
        bail!(
            "{BPFFS} is not a bpffs here, so no nat64 instance can be found. If this shell was \
             started with `ip netns exec`, that command gave it a private /sys: run nat64-ctl with \
             `nsenter --net=/var/run/netns/NAME nat64-ctl ...` instead (network namespace only)"
        );
    }
    let others: Vec<String> = fs::read_dir(PIN_ROOT)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if others.is_empty() {
        bail!(
            "no nat64 instance is running (nothing pinned under {PIN_ROOT}); start one with `nat64-ctl run --config FILE`"
        )
    }
    bail!(
        "no nat64 instance '{instance}' is running; running instances: {} (use --instance)",
        others.join(", ")
    )
}

/// Picks the instance when the user named none: the only one running, else "default".
pub fn default_instance() -> String {
    let names: Vec<String> = fs::read_dir(PIN_ROOT)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if names.len() == 1 { names[0].clone() } else { "default".to_string() }
}

/// /run/nat64/<instance>.json: what `nat64-ctl status` shows beside the maps.
pub fn status_file(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.json"))
}

/// Every map nat64-ctl pins, by name.
pub const PINNED_MAPS: [&str; 30] = [
    nat64_common::maps::MAP_NAT_BLOCKS,
    nat64_common::maps::MAP_NAT_FREE_BLOCKS,
    nat64_common::maps::MAP_NAT_ADF,
    nat64_common::maps::MAP_NAT_SUBSCRIBERS,
    nat64_common::maps::MAP_NAT_EVENTS,
    nat64_common::maps::MAP_NAT_FRAGS,
    nat64_common::maps::MAP_NAT_CFG,
    nat64_common::maps::MAP_NAT_POOL4,
    nat64_common::maps::MAP_NAT_ADDRS,
    nat64_common::maps::MAP_BIB6,
    nat64_common::maps::MAP_BIB4,
    nat64_common::maps::MAP_SESSIONS,
    nat64_common::maps::MAP_LAYOUT,
    nat64_common::maps::MAP_GLOBALS,
    nat64_common::maps::MAP_GLOBALS_ACTIVE,
    nat64_common::maps::MAP_EAMT4,
    nat64_common::maps::MAP_EAMT6,
    nat64_common::maps::MAP_DENYLIST4,
    nat64_common::maps::MAP_V4XLAT,
    nat64_common::maps::MAP_TX_PORTS,
    nat64_common::maps::MAP_PORTS,
    nat64_common::maps::MAP_COUNTERS,
    nat64_common::maps::MAP_POOL6,
    nat64_common::maps::MAP_POOL4,
    nat64_common::maps::MAP_POOL_DORMANT,
    nat64_common::maps::MAP_POOL_RING,
    nat64_common::maps::MAP_POOL_TAIL,
    nat64_common::maps::MAP_POOL_HEAD,
    nat64_common::maps::MAP_NAT_SYNS,
    nat64_common::maps::MAP_NAT_SYN_COUNT,
];
