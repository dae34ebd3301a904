//! A running translator instance: loading the programs, attaching them, pinning
//! the maps where other nat64-ctl commands find them, and cleaning up.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use log::{info, warn};

use crate::{
    EBPF_OBJECT,
    config::{AttachMode, Config},
    tables::Tables,
};

/// bpffs mount point and the folder under it where instances pin their maps.
pub const BPFFS: &str = "/sys/fs/bpf";
pub const PIN_ROOT: &str = "/sys/fs/bpf/nat64";
/// Name of the XDP translator program in the object.
pub const XDP_PROGRAM: &str = "nat64_xdp";
/// Name of the benchmark baseline program (swap MACs, XDP_TX).
pub const BASELINE_PROGRAM: &str = "nat64_bench_baseline";

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
pub fn load(programs: &[&str]) -> Result<Ebpf> {
    if EBPF_OBJECT.is_empty() {
        bail!(
            "this nat64-ctl was built with AYA_BUILD_SKIP=1 and carries no eBPF object; \
             rebuild it without AYA_BUILD_SKIP"
        );
    }
    let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT).context("loading the eBPF object")?;
    for name in programs {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("the eBPF object has no program {name}"))?
            .try_into()?;
        prog.load().with_context(|| format!("loading program {name} (verifier)"))?;
    }
    Ok(ebpf)
}

/// Writes a validated configuration into the maps. The globals go last: until they
/// are written (FLAG_ENABLED) the data path passes every packet untouched.
pub fn apply_config(tables: &mut Tables, cfg: &Config) -> Result<()> {
    for e in &cfg.eamt {
        tables.eamt_add(e, false)?;
    }
    for p in &cfg.denylist4 {
        tables.denylist4_add(*p)?;
    }
    tables.set_globals(cfg.globals())
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).with_context(|| format!("interface name {name:?}"))?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => bail!("interface {name} does not exist in this network namespace"),
        i => Ok(i),
    }
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

fn ensure_bpffs() -> Result<()> {
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

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// The pin folder of a running instance, with a message a person can act on when
/// there is none.
pub fn find_running(instance: &str) -> Result<PathBuf> {
    let dir = pin_dir(instance);
    if dir.join(crate::tables::PINNED_MAPS[0]).exists() {
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

/// A loaded, configured and attached translator. Dropping it detaches the programs
/// and removes the pins.
pub struct Running {
    pub ebpf: Ebpf,
    pub tables: Tables,
    pub dir: PathBuf,
    pub links: Vec<(String, XdpLinkId, &'static str)>,
}

impl Running {
    pub fn start(cfg: &Config) -> Result<Self> {
        ensure_bpffs()?;
        let dir = pin_dir(&cfg.instance);
        if let Ok(pid) = fs::read_to_string(pid_file(&cfg.instance)) {
            let pid: i32 = pid.trim().parse().unwrap_or(0);
            if process_alive(pid) && pid != std::process::id() as i32 {
                bail!(
                    "instance '{}' is already running (pid {pid}); stop it first or pick another \"instance\"",
                    cfg.instance
                );
            }
        }
        if dir.exists() {
            warn!("removing stale pins of instance '{}' in {}", cfg.instance, dir.display());
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }

        let mut ebpf = load(&[XDP_PROGRAM])?;
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        match Self::configure_and_attach(&mut ebpf, &dir, cfg) {
            Ok((tables, links)) => {
                let pid = pid_file(&cfg.instance);
                let written = fs::create_dir_all(RUN_DIR)
                    .and_then(|()| fs::write(&pid, format!("{}\n", std::process::id())));
                let running = Self { ebpf, tables, dir, links };
                written.with_context(|| format!("writing {}", pid.display()))?;
                Ok(running)
            }
            Err(e) => {
                // Dropping `ebpf` detaches whatever was attached.
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn configure_and_attach(
        ebpf: &mut Ebpf,
        dir: &Path,
        cfg: &Config,
    ) -> Result<(Tables, Vec<(String, XdpLinkId, &'static str)>)> {
        let mut tables = Tables::take(ebpf, Some(dir))?;
        apply_config(&mut tables, cfg)?;
        let mut links = Vec::new();
        let prog: &mut Xdp = ebpf.program_mut(XDP_PROGRAM).expect("loaded above").try_into()?;
        for iface in &cfg.interfaces {
            let (id, mode) = match iface.attach {
                AttachMode::XdpGeneric => (prog.attach(&iface.name, XdpMode::Skb), "generic"),
                AttachMode::Xdp => match prog.attach(&iface.name, XdpMode::Driver) {
                    Ok(id) => (Ok(id), "driver"),
                    Err(e) => {
                        warn!(
                            "{}: driver-mode XDP failed ({e}); falling back to generic mode (slower)",
                            iface.name
                        );
                        (prog.attach(&iface.name, XdpMode::Skb), "generic")
                    }
                },
            };
            let id = id.with_context(|| format!("interfaces: attaching XDP to {}", iface.name))?;
            tables.tx_port_add(ifindex(&iface.name)?)?;
            info!("attached {XDP_PROGRAM} to {} ({mode} mode)", iface.name);
            links.push((iface.name.clone(), id, mode));
        }
        Ok((tables, links))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(prog) = <&mut Xdp>::try_from(self.ebpf.program_mut(XDP_PROGRAM).expect("loaded")) {
            for (name, id, _) in self.links.drain(..) {
                if let Err(e) = prog.detach(id) {
                    warn!("detaching from {name}: {e}");
                }
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            warn!("removing {}: {e}", self.dir.display());
        }
        if let Some(name) = self.dir.file_name() {
            let _ = fs::remove_file(pid_file(&name.to_string_lossy()));
        }
    }
}

/// Blocks SIGINT and SIGTERM so they are only taken by [`wait_for_signal`]: a signal
/// during start-up then still ends in a clean detach.
pub fn block_signals() -> Result<libc::sigset_t> {
    // SAFETY: plain libc signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            bail!("blocking signals failed");
        }
        Ok(set)
    }
}

/// Waits for one of the signals blocked by [`block_signals`].
pub fn wait_for_signal(set: &libc::sigset_t) -> Result<i32> {
    let mut sig = 0;
    // SAFETY: valid sigset and out pointer.
    if unsafe { libc::sigwait(set, &mut sig) } != 0 {
        bail!("sigwait failed");
    }
    Ok(sig)
}
