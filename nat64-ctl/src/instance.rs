//! A running translator instance: loading the programs, attaching them, pinning
//! the maps where other nat64-ctl commands find them, and cleaning up.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::{Ebpf, EbpfLoader, maps::ProgramArray};
use log::{info, warn};

use crate::{
    EBPF_OBJECT,
    config::{Config, EamtEntry, Mode, Prefix4, Prefix6},
    tables::Tables,
};

/// bpffs mount point and the folder under it where instances pin their maps.
pub const BPFFS: &str = "/sys/fs/bpf";
pub const PIN_ROOT: &str = "/sys/fs/bpf/nat64";
/// Name of the XDP translator program in the object.
pub const XDP_PROGRAM: &str = "nat64_xdp";
/// The TC (TCX ingress) programs, for Ethernet and for L3 devices.
pub const TC_PROGRAM: &str = "nat64_tc";
pub const TC_L3_PROGRAM: &str = "nat64_tc_l3";

/// An `ifreq` ioctl (`request`) about `name`, asked of the kernel in this network
/// namespace (not through /sys, which under `nsenter --net` is the host's).
fn ifreq(name: &str, request: libc::c_ulong) -> Result<libc::ifreq> {
    let c = std::ffi::CString::new(name).with_context(|| format!("interface name {name:?}"))?;
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq holding a NUL-terminated name
    // shorter than IFNAMSIZ (checked by the config), and the socket closed after.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("{name}: socket: {}", std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
            *d = *s as libc::c_char;
        }
        let rc = libc::ioctl(fd, request, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            bail!("interface {name}: {err}");
        }
        Ok(req)
    }
}

/// The link-layer type (ARPHRD_*) and address of `name`.
fn hwaddr(name: &str) -> Result<(u16, [u8; 6])> {
    // SAFETY: SIOCGIFHWADDR fills the union's hardware-address member.
    let sa = unsafe { ifreq(name, libc::SIOCGIFHWADDR)?.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok((sa.sa_family, mac))
}

/// Whether `name` carries Ethernet frames (else it is an L3 device: WireGuard, TUN).
pub fn is_ethernet(name: &str) -> Result<bool> {
    Ok(hwaddr(name)?.0 == libc::ARPHRD_ETHER)
}

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
    load_pinned(programs, None, nat64_common::maps::SESSIONS_MAX_ENTRIES)
}

/// Like [`load`], with the translator's state maps (`tables::PINNED_MAPS`) taken from
/// their pins in `pin_dir`, or created and pinned there: a new process (an upgrade, a
/// restart) works on the maps the running programs use. The jump tables and the
/// scratch space stay private to each load.
///
/// `sessions` sizes stateful NAT64's tables (`max-sessions`, 1 in the other modes); maps
/// taken from pins keep the size they were made with (see `Running::start`).
pub fn load_pinned(programs: &[&str], pin_dir: Option<&Path>, sessions: u32) -> Result<Ebpf> {
    if EBPF_OBJECT.is_empty() {
        bail!(
            "this nat64-ctl was built with AYA_BUILD_SKIP=1 and carries no eBPF object; \
             rebuild it without AYA_BUILD_SKIP"
        );
    }
    let mut loader = EbpfLoader::new();
    for (name, n) in nat64_common::maps::nat_capacities(sessions) {
        loader.map_max_entries(name, n);
    }
    if let Some(dir) = pin_dir {
        for name in crate::tables::PINNED_MAPS {
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

/// Writes a validated configuration into the maps. The globals go last: until they
/// are written (FLAG_ENABLED) the data path passes every packet untouched.
/// A dynamic pool starts with every address free (no state file is read).
pub fn apply_config(tables: &mut Tables, cfg: &Config) -> Result<()> {
    apply_config_with(tables, cfg, 0)?;
    if let Some(spec) = crate::pool::Spec::of(&tables.globals()?) {
        crate::pool::refill(tables, &spec)?;
    }
    Ok(())
}

pub(crate) fn apply_config_with(tables: &mut Tables, cfg: &Config, general_ifindex: u32) -> Result<()> {
    for e in &cfg.eamt {
        tables.eamt_add(e, false)?;
    }
    for p in &cfg.denylist4 {
        tables.denylist4_add(*p)?;
    }
    tables.ipv4_translatable_set(&cfg.ipv4_translatable)?;
    apply_nat64(tables, cfg)?;
    let mut g = cfg.globals();
    g.general_ifindex = general_ifindex;
    tables.set_globals(g)
}

/// Stateful NAT64's settings (before the mode switches on in the globals).
pub(crate) fn apply_nat64(tables: &mut Tables, cfg: &Config) -> Result<()> {
    let Some(n) = &cfg.nat64 else { return Ok(()) };
    let t = tables
        .nat
        .as_mut()
        .context("mode \"nat64\": the instance's maps have no BIB (pins of an older nat64-ctl)")?;
    t.apply(n)
}

fn sh(what: &str, args: &[&str]) -> Result<()> {
    sh_for("general-path", what, args)
}

/// [`sh`] for a command line of words separated by blanks.
fn sh_line(what: &str, line: &str) -> Result<()> {
    sh(what, &line.split_whitespace().collect::<Vec<_>>())
}

/// Runs a command; its failure names the configuration key it was for.
fn sh_for(key: &str, what: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("{key}: {what}: running {}", args[0]))?;
    if !out.status.success() {
        bail!("{key}: {what}: `{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The general path (see README): a veth pair `name` <-> `name`p. The kernel routes
/// pool6 and the EAM IPv4 prefixes into `name`, the IPv4 routes with an MTU that leaves
/// room for translation (lowest-ipv6-mtu - 28), so it fragments oversized IPv4 and
/// carries locally originated traffic; the program on the peer translates what comes out.
pub struct GeneralPath {
    pub name: String,
    pub peer: String,
}

impl GeneralPath {
    /// The pair as an earlier run left it (it outlives nat64-ctl, like the programs),
    /// else a new one.
    pub(crate) fn ensure(name: &str) -> Result<Self> {
        let peer = format!("{name}p");
        if ifindex(name).is_ok() && ifindex(&peer).is_ok() {
            return Ok(Self { name: name.to_string(), peer });
        }
        Self::create(name)
    }

    fn create(name: &str) -> Result<Self> {
        let peer = format!("{name}p");
        if ifindex(name).is_ok() {
            warn!("general-path: removing a stale {name}");
            sh("removing the stale interface", &["ip", "link", "del", name])?;
        }
        sh("creating the veth pair", &["ip", "link", "add", name, "type", "veth", "peer", "name", &peer])?;
        let gp = Self { name: name.to_string(), peer: peer.clone() };
        // No ARP/ND on the kernel side: frames go to its own MAC, which the peer
        // shares, so translated packets handed to the stack there are for this host.
        let (_, m) = hwaddr(name)?;
        let mac = format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
        sh("setting the peer's MAC", &["ip", "link", "set", &peer, "address", &mac])?;
        sh("setting ARP off", &["ip", "link", "set", name, "arp", "off"])?;
        sh("bringing it up", &["ip", "link", "set", name, "up"])?;
        sh("bringing the peer up", &["ip", "link", "set", &peer, "up"])?;
        sh(
            "enabling forwarding on the peer",
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{peer}.forwarding=1"),
                &format!("net.ipv6.conf.{peer}.forwarding=1"),
                &format!("net.ipv4.conf.{peer}.rp_filter=0"),
                // The host's own pair comes back from the peer as a source address.
                &format!("net.ipv4.conf.{peer}.accept_local=1"),
                &format!("net.ipv4.conf.{name}.rp_filter=0"),
            ],
        )?;
        // Full checksums and no segmentation offload: the program sees each packet
        // as it would come off a wire.
        if let Err(e) =
            sh("turning offloads off", &["ethtool", "-K", name, "tx", "off", "tso", "off", "gso", "off"])
        {
            warn!("{e:#}; locally originated TCP through the general path may carry partial checksums");
        }
        // GRO on the kernel's end, switched on while the pair is up (the kernel decides
        // then): the peer takes XDP frames, so it can be a target of XDP redirects.
        if let Err(e) = sh("turning GRO on", &["ethtool", "-K", name, "gro", "on"]) {
            warn!("{e:#}; {peer} takes no XDP frames: the fast path hands its packets to the kernel");
        }
        Ok(gp)
    }

    /// Routes into the pair; `mtu4` is the IPv4 route MTU (see [`general_path_mtu`]).
    pub(crate) fn route(&self, cfg: &Config, mtu4: u32) -> Result<()> {
        // The host's own translated pair sits on the interface, so the kernel picks it as
        // the source of what it sends through here.
        let local = cfg.general_path.as_ref().and_then(|g| g.local);
        let (mut src4, mut src6) = (vec![], vec![]);
        if let Some((a4, a6)) = local {
            sh(
                "adding the host's IPv4 address",
                &["ip", "addr", "replace", &format!("{a4}/32"), "dev", &self.name],
            )?;
            let a6_len = format!("{a6}/128");
            sh(
                "adding the host's IPv6 address",
                &["ip", "addr", "replace", &a6_len, "dev", &self.name, "nodad"],
            )?;
            src4 = vec!["src".to_string(), a4.to_string()];
            src6 = vec!["src".to_string(), a6.to_string()];
        }
        if cfg.mode == Mode::Clat {
            // Host CLAT (RFC 6877 §6.3): the host's own IPv4 leaves through the translator
            // (a default route of low preference: an IPv4 default the host has wins), and
            // what the kernel sends to the clients' IPv6 side (its ICMPv6 errors, say)
            // comes back to them as IPv4.
            sh_line("routing IPv4 through the CLAT", &clat_default(&self.name, mtu4, &src4.join(" ")))?;
            ip_batch("routing the EAM IPv6 prefixes", cfg.eamt.iter().map(|e| route6(&self.name, e.v6)))?;
        } else {
            let src = src4.join(" ");
            let mut routes: Vec<String> =
                cfg.eamt.iter().map(|e| route4(&self.name, e.v4, mtu4, &src)).collect();
            // NAT64: what the kernel sends to a pool address (the replies it takes back
            // out of its masquerade, say) goes to the host holding it.
            if let Some(d) = &cfg.dynamic_pool {
                routes.push(route4(&self.name, d.prefix, mtu4, &src));
            }
            if let Some(n) = &cfg.nat64 {
                routes.extend(pool4_routes(&self.name, n.slots().into_iter().map(|s| s.0), mtu4, &src));
            }
            ip_batch("routing the EAM IPv4 prefixes", routes)?;
            route_translatable(&self.name, &cfg.ipv4_translatable, mtu4, &src)?;
        }
        // In CLAT mode pool6 is the IPv6 Internet's door (the PLAT): IPv6 to it leaves
        // the host as it is; routed into the general path it would come back as IPv4.
        if let Some(p) = cfg.pool6.filter(|_| cfg.mode != Mode::Clat) {
            let dst = p.to_string();
            let mut args = vec!["ip", "-6", "route", "replace", &dst, "dev", &self.name];
            args.extend(src6.iter().map(String::as_str));
            sh("routing pool6", &args)?;
        }
        Ok(())
    }
}

/// The `ip -batch` line that routes an EAM IPv4 prefix into the general path. The MTU
/// (`mtu4`, see [`general_path_mtu`]) sits on the route, not on the device (IPv6 needs
/// at least 1280 there).
fn route4(name: &str, v4: Prefix4, mtu4: u32, src: &str) -> String {
    format!("route replace {v4} dev {name} mtu lock {mtu4} {src}")
}

/// Stateful NAT64: the pool4 addresses into the general path (IPv4 to them that the
/// data path hands to the kernel, too long for `lowest-ipv6-mtu` without DF, comes back
/// as fragments there), one /32 each.
fn pool4_routes(
    name: &str,
    addrs: impl IntoIterator<Item = std::net::Ipv4Addr>,
    mtu4: u32,
    src: &str,
) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    addrs
        .into_iter()
        .filter(|a| seen.insert(*a))
        .map(|a| route4(name, Prefix4 { addr: a, len: 32 }, mtu4, src))
        .collect()
}

/// The CLAT's default route into the general path (`ip` arguments): of low preference,
/// so that an IPv4 default the host has wins.
fn clat_default(name: &str, mtu4: u32, src: &str) -> String {
    format!("ip route replace 0.0.0.0/0 dev {name} metric 4242 mtu lock {mtu4} {src}")
}

/// The general path's IPv4 route MTU from lowest-ipv6-mtu and the MTUs of the attached
/// links: the kernel cuts IPv4 into fragments of at most this, each 28 bytes longer
/// once translated (IPv6 header 20, fragment header 8), so that each IPv6 fragment is
/// at most lowest-ipv6-mtu (RFC 7915 §4) and fits the smallest attached link that can
/// carry IPv6 at all (1280 or more) should that be smaller.
pub fn route_mtu(lowest_ipv6_mtu: u32, link_mtus: &[u32]) -> u32 {
    let link = link_mtus.iter().copied().filter(|m| *m >= MIN_IPV6_MTU).min();
    link.map_or(lowest_ipv6_mtu, |m| m.min(lowest_ipv6_mtu)) - 28
}

const MIN_IPV6_MTU: u32 = 1280;

/// The MTUs of the interfaces by index (those that exist).
pub fn link_mtus(ifindexes: impl IntoIterator<Item = u32>) -> Vec<u32> {
    ifindexes.into_iter().filter_map(link_mtu).collect()
}

/// An interface's MTU by index, if it exists.
fn link_mtu(ifindex: u32) -> Option<u32> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned();
    // SAFETY: SIOCGIFMTU fills the union's MTU member.
    let mtu = unsafe { ifreq(&name, libc::SIOCGIFMTU).ok()?.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok()
}

/// The running instance's general-path route MTU ([`route_mtu`] over its attached
/// Ethernet ports, the general path's own peer left out), or `None` without a general
/// path.
pub fn general_path_mtu(tables: &Tables) -> Result<Option<u32>> {
    let g = tables.globals()?;
    if g.general_ifindex == 0 {
        return Ok(None);
    }
    let mtus = link_mtus(tables.ports().into_iter().map(|(i, _)| i).filter(|i| *i != g.general_ifindex));
    Ok(Some(route_mtu(g.lowest_ipv6_mtu, &mtus)))
}

/// The routing protocol number that marks the general path's `ipv4-translatable`
/// routes, so that they are replaced as a set.
const TRANSLATABLE_PROTO: &str = "64";

/// Routes the `ipv4-translatable` prefixes into the general path (oversized DF=0 IPv4
/// to IPv6 hosts is fragmented there), replacing what was routed before. At metric
/// 4242: a route the host has for the same prefix (its default route, for
/// `0.0.0.0/0`) wins.
fn route_translatable(name: &str, list: &[Prefix4], mtu4: u32, src: &str) -> Result<()> {
    // Nothing to flush is no error either.
    let _ = sh(
        "removing the ipv4-translatable routes",
        &["ip", "-4", "route", "flush", "dev", name, "proto", TRANSLATABLE_PROTO],
    );
    ip_batch(
        "routing the ipv4-translatable prefixes",
        list.iter()
            .map(|p| format!("{} proto {TRANSLATABLE_PROTO} metric 4242", route4(name, *p, mtu4, src))),
    )
}

/// Likewise for an EAM IPv6 prefix (CLAT mode).
fn route6(name: &str, v6: Prefix6) -> String {
    format!("route replace {v6} dev {name}")
}

/// Runs `ip -batch -` over `lines`: one process for a table of any size.
fn ip_batch(what: &str, lines: impl IntoIterator<Item = String>) -> Result<()> {
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    if text.is_empty() {
        return Ok(());
    }
    with_stdin("ip", &["-batch", "-"], &text)
        .map_err(|e| anyhow::anyhow!("general-path: {what}: ip -batch: {e:#}"))
}

/// Runs `cmd args` with `input` on its standard input; the error is what it said on
/// standard error (or why it could not run).
fn with_stdin(cmd: &str, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd}"))?;
    child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Brings the running instance's general-path routes in step with its EAMT,
/// `lowest-ipv6-mtu` and the attached links' MTUs after a change made on the fly (`map
/// add`/`map del`/`set`, `ip link set mtu`); `removed` is an entry just deleted. Nothing
/// to do without a general path.
pub fn general_path_sync(tables: &Tables, removed: Option<&EamtEntry>) -> Result<()> {
    let g = tables.globals()?;
    let Some(mtu4) = general_path_mtu(tables)? else {
        return Ok(());
    };
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let peer = unsafe { libc::if_indextoname(g.general_ifindex, buf.as_mut_ptr()) };
    if peer.is_null() {
        bail!(
            "general path: no interface {} in this network namespace; run nat64-ctl where the instance runs",
            g.general_ifindex
        );
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let peer = unsafe { std::ffi::CStr::from_ptr(peer) }.to_string_lossy().into_owned();
    let name = peer.strip_suffix('p').unwrap_or(&peer);
    let clat = g.flag(nat64_common::maps::Globals::FLAG_CLAT);
    if let Some(e) = removed {
        // It may already be gone (deleted by hand); that is what was wanted.
        let (family, dst) = if clat { ("-6", e.v6.to_string()) } else { ("-4", e.v4.to_string()) };
        let _ = sh("removing a route", &["ip", family, "route", "del", &dst, "dev", name]);
    }
    // The routes keep the source the configuration gave them (the host's pair).
    let src = route_source(name);
    let entries = tables.eamt()?;
    let mut routes: Vec<String> = entries
        .iter()
        .map(|e| if clat { route6(name, e.v6) } else { route4(name, e.v4, mtu4, &src) })
        .collect();
    if let Some(nat) = &tables.nat {
        routes.extend(pool4_routes(name, nat.addresses(), mtu4, &src));
    }
    ip_batch("routing the EAM prefixes", routes)?;
    if clat {
        return sh_line("routing IPv4 through the CLAT", &clat_default(name, mtu4, &src));
    }
    route_translatable(name, &tables.ipv4_translatable()?, mtu4, &src)
}

/// `src A` for the host's own IPv4 address on the general path's interface (the
/// configuration's `general-path.ipv4-addr`), else nothing.
fn route_source(name: &str) -> String {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", name]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let addr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next());
    addr.map(|a| format!("src {a}")).unwrap_or_default()
}

impl GeneralPath {
    /// Removes the pair named `name` (and with it the routes through it), if it exists.
    pub fn delete(name: &str) -> Result<bool> {
        if ifindex(name).is_err() {
            return Ok(false);
        }
        sh("removing the veth pair", &["ip", "link", "del", name])?;
        Ok(true)
    }
}

pub fn ifindex(name: &str) -> Result<u32> {
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

/// Whether process `pid` exists and has not exited (a zombie waiting for its parent
/// to reap it has).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
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

/// `xdp-tcp-gro` hands translated TCP data to the kernel's forwarding: refused (before
/// anything changes) while the kernel would drop it there.
pub(crate) fn check_gro_forwarding() -> Result<()> {
    for what in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        let path = format!("/proc/sys/{}", what.replace('.', "/"));
        if fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0") {
            bail!(
                "xdp-tcp-gro: {what} is 0, so the kernel would drop the TCP data XDP hands it; \
                 set it to 1 first (sysctl -w {what}=1)"
            );
        }
    }
    Ok(())
}

/// The kernel forwards what the pool's hosts send (to apply its NAT44): say so when it
/// will not.
pub(crate) fn check_forwarding(cfg: &Config) {
    let read = |k: &str| fs::read_to_string(format!("/proc/sys/net/ipv4/{k}")).map(|s| s.trim().to_string());
    if read("ip_forward").is_ok_and(|v| v == "0") {
        warn!(
            "dynamic-pool: net.ipv4.ip_forward is 0, so the kernel will not forward what the pool's \
             hosts send; set it to 1 (sysctl -w net.ipv4.ip_forward=1)"
        );
    }
    for i in &cfg.interfaces {
        // Packets from pool addresses arrive on the IPv6 side, but the pool is routed into
        // the general path: strict reverse-path filtering would drop them.
        if read(&format!("conf/{}/rp_filter", i.name)).is_ok_and(|v| v == "1") {
            info!("dynamic-pool: {}: reverse-path filter strict -> loose (pool sources arrive here)", i.name);
            let _ = fs::write(format!("/proc/sys/net/ipv4/conf/{}/rp_filter", i.name), "2");
        }
    }
    if read("conf/all/rp_filter").is_ok_and(|v| v == "1") {
        warn!(
            "dynamic-pool: net.ipv4.conf.all.rp_filter is 1 (strict), which drops what the pool's hosts \
             send; set it to 2 (loose) or 0"
        );
    }
}

/// The nftables table that hides the dynamic pool behind an interface's address,
/// owned by the instance (`nat64_<instance>`). It outlives the process on purpose: the
/// kernel's NAT keeps the established flows' bindings only while some NAT chain is
/// hooked, and a restart without one resets them (spec §8). `nat64-ctl detach`
/// removes it, as does a start whose configuration has no masquerade.
pub struct Masquerade;

impl Masquerade {
    pub fn table_name(instance: &str) -> String {
        format!("nat64_{}", instance.replace('-', "_"))
    }

    /// The rules, as `nft -f` reads them: the table is replaced as a whole in one
    /// transaction (a leftover of an earlier run included).
    pub fn ruleset(instance: &str, iface: &str, pool: Prefix4) -> String {
        let t = Self::table_name(instance);
        format!(
            "table ip {t} {{}}\ndelete table ip {t}\ntable ip {t} {{\n\tchain postrouting {{\n\t\t\
             type nat hook postrouting priority srcnat; policy accept;\n\t\t\
             oifname \"{iface}\" ip saddr {pool} counter masquerade\n\t}}\n}}\n"
        )
    }

    pub(crate) fn install(instance: &str, iface: &str, pool: Prefix4) -> Result<()> {
        nft(&Self::ruleset(instance, iface, pool))
            .map_err(|e| anyhow::anyhow!("masquerade: nft refused the rules: {e:#}"))?;
        info!(
            "masquerade: {pool} behind {iface}'s address (nftables table ip {})",
            Self::table_name(instance)
        );
        Ok(())
    }

    /// Removes the instance's table; whether there was one.
    pub fn remove(instance: &str) -> Result<bool> {
        let t = Self::table_name(instance);
        // Adding an empty table first makes the delete succeed whether or not it existed.
        let existed = std::process::Command::new("nft")
            .args(["list", "table", "ip", &t])
            .output()
            .is_ok_and(|o| o.status.success());
        if existed {
            nft(&format!("table ip {t} {{}}\ndelete table ip {t}\n"))
                .map_err(|e| anyhow::anyhow!("masquerade: removing table ip {t}: {e:#}"))?;
        }
        Ok(existed)
    }
}

/// Feeds `rules` to `nft -f -`; the error is what nft said.
fn nft(rules: &str) -> Result<()> {
    with_stdin("nft", &["-f", "-"], rules).context("nft (from the nftables package)")
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
        // `nat64-ctl pool flush` asks the running instance to refill the pool at once.
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGHUP);
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

/// Like [`wait_for_signal`], giving up after `timeout` (None: wait for ever).
pub fn wait_for_signal_timeout(
    set: &libc::sigset_t,
    timeout: Option<std::time::Duration>,
) -> Result<Option<i32>> {
    let Some(t) = timeout else { return wait_for_signal(set).map(Some) };
    let ts =
        libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as libc::c_long };
    // SAFETY: valid sigset and timespec; the siginfo out pointer may be null.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    if sig >= 0 {
        return Ok(Some(sig));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => bail!("sigtimedwait failed: {}", std::io::Error::last_os_error()),
    }
}

/// /run/nat64/<instance>.json: what `nat64-ctl status` shows beside the maps.
pub fn status_file(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.json"))
}

/// Milliseconds since the epoch, to tell one reload from the next.
pub fn unix_now_ms() -> u64 {
    std::time::UNIX_EPOCH.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn unix_now() -> u64 {
    std::time::UNIX_EPOCH.elapsed().map(|d| d.as_secs()).unwrap_or(0)
}

/// What the status file tells beside the instance itself.
pub struct StatusExtra<'a> {
    pub config_path: &'a Path,
    pub pref64: Option<&'a crate::pref64::Discovered>,
    pub started: u64,
    /// The last reload's outcome (`{"at", "ok", "error"}`), if there was one.
    pub last_reload: Option<serde_json::Value>,
}

/// The instance's status file as JSON (`Null` when there is none or it is unreadable).
pub fn read_status(instance: &str) -> serde_json::Value {
    fs::read_to_string(status_file(instance))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
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

/// The running instance's status: the status file and what its maps hold now.
pub fn status(instance: &str, tables: &Tables) -> Result<serde_json::Value> {
    let path = status_file(instance);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let g = tables.globals()?;
    let pool6 = (g.pool6_len != 0).then(|| format!("{}/{}", std::net::Ipv6Addr::from(g.pool6), g.pool6_len));
    v["pool6"] = serde_json::json!(pool6);
    let eamt = tables.eamt()?.len();
    let deny = tables.denylist4()?.len();
    v["eamt-entries"] = serde_json::json!(eamt);
    v["denylist4-entries"] = serde_json::json!(deny);
    let pid = v["pid"].as_i64().unwrap_or(0) as i32;
    v["running"] = serde_json::json!(process_alive(pid));
    let ports = tables.ports();
    for i in v["interfaces"].as_array_mut().into_iter().flatten() {
        i["redirect"] = redirect_status(&ports, i["ifindex"].as_u64());
    }
    let pool_mappings = tables.pool6.keys().count();
    v["maps"] = serde_json::json!({
        "eamt": {"entries": eamt, "max": nat64_common::maps::EAMT_MAX_ENTRIES},
        "denylist4": {"entries": deny, "max": nat64_common::maps::DENYLIST4_MAX_ENTRIES},
        "pool": {"entries": pool_mappings, "max": nat64_common::maps::POOL_MAX},
    });
    if let Some(spec) = crate::pool::Spec::of(&g) {
        let mappings = pool_mappings;
        let capacity = spec.capacity(tables)?;
        v["dynamic-pool"] = serde_json::json!({
            "prefix": spec.prefix.to_string(),
            "lease-s": spec.lease,
            "mappings": mappings,
            "free": capacity.saturating_sub(mappings),
        });
    }
    if let Some(nat) = tables.nat.as_ref().filter(|_| g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)) {
        let mut per = serde_json::Map::new();
        for (name, bib, sessions) in nat.counts() {
            per.insert(name.into(), serde_json::json!({"bib": bib, "sessions": sessions}));
        }
        let c = nat.cfg.get(&0, 0).unwrap_or_default();
        let top: Vec<_> = nat
            .top_subscribers(10)
            .into_iter()
            .map(|(p, ports)| serde_json::json!({"subscriber": p.to_string(), "ports": ports}))
            .collect();
        v["nat64"] = serde_json::json!({
            "pool4": nat.pool4_use(),
            "protocols": per,
            "limits": {
                "max-ports-per-host": c.max_ports,
                "subscriber-prefix-length": c.subscriber_len,
                "port-reuse-delay": c.reuse_delay,
                "max-simultaneous-opens": c.max_syns,
            },
            "syns-held": crate::simopen::held(nat),
            "top-subscribers": top,
            "max-sessions": Tables::pinned_sessions(&pin_dir(instance)).ok().flatten(),
            "memory": nat.memory().into_iter().map(|(name, b)| (name.to_string(), b.into())).collect::<serde_json::Map<_, _>>(),
            "sweep": fs::read_to_string(crate::stateful::sweep_report(instance))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
        });
    }
    v["uptime-s"] = serde_json::json!(unix_now().saturating_sub(v["started"].as_u64().unwrap_or(0)));
    Ok(v)
}

/// Whether the fast path sends out of an interface itself, and why not: `null` for an
/// L3 device (the kernel frames what leaves it).
fn redirect_status(
    ports: &[(u32, nat64_common::maps::PortState)],
    ifindex: Option<u64>,
) -> serde_json::Value {
    let Some((_, p)) = ports.iter().find(|(i, _)| Some(*i as u64) == ifindex) else {
        return serde_json::Value::Null;
    };
    let why = nat64_common::maps::PortWhy::from_u32(p.why).unwrap_or(nat64_common::maps::PortWhy::Unknown);
    serde_json::json!({
        "tc": true,
        "xdp": p.xdp_target(),
        "why": crate::ports::why_text(why),
        "remedies": (!p.xdp_target()).then_some(crate::ports::REMEDIES),
    })
}

/// `status` as text, one fact a line.
pub fn status_text(v: &serde_json::Value) -> String {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Null => "none".to_string(),
        other => other.to_string(),
    };
    let process = if v["running"] == true {
        format!("pid {}", s("pid"))
    } else {
        "nat64-ctl not running; the programs stay attached".to_string()
    };
    let mut out = format!(
        "instance   {} ({process}, up {} s)\nmode       {}\nconfig     {}\n",
        s("instance"),
        s("uptime-s"),
        s("mode"),
        s("config")
    );
    for i in v["interfaces"].as_array().into_iter().flatten() {
        out += &format!(
            "interface  {} ({}, {} id {})\n",
            i["name"].as_str().unwrap_or("?"),
            i["attach"].as_str().unwrap_or("?"),
            i["program"].as_str().unwrap_or("?"),
            i["program-id"]
        );
        let r = &i["redirect"];
        out += &match (r["xdp"].as_bool(), r["why"].as_str()) {
            (Some(true), Some(why)) => format!("           fast path out: XDP and TC redirect ({why})\n"),
            (Some(false), Some(why)) => format!(
                "           fast path out: TC redirect only; it takes no XDP frames ({why}), so XDP hands \
                 its packets to the kernel (fwd_kernel_no_xdp_xmit). For the fast path: {}\n",
                r["remedies"].as_str().unwrap_or("")
            ),
            _ => "           fast path out: none (L3 device: the kernel sends what leaves it)\n".to_string(),
        };
    }
    let prefix_name = if v["mode"] == "clat" { "pref64" } else { "pool6" };
    out += &format!("{prefix_name:<10} {}", s("pool6"));
    match v["pref64"]["source"].as_str() {
        Some("auto") if v["pref64"]["via"] == "ra" => {
            out += &format!(
                " (auto: router advertisement from {}, lifetime {} s)",
                v["pref64"]["router"].as_str().unwrap_or("?"),
                v["pref64"]["lifetime"]
            )
        }
        Some("auto") => {
            out += &format!(
                " (auto: DNS64 at {}, TTL {} s)",
                v["pref64"]["resolver"].as_str().unwrap_or("?"),
                v["pref64"]["ttl"]
            )
        }
        Some(src) => out += &format!(" ({src})"),
        None => {}
    }
    let m = &v["maps"];
    out += &format!(
        "\neamt       {} of {} entries\ndenylist4  {} of {} prefixes\n",
        m["eamt"]["entries"], m["eamt"]["max"], m["denylist4"]["entries"], m["denylist4"]["max"]
    );
    if v["general-path"].is_string() {
        out += &format!("general    {}\n", s("general-path"));
    }
    let d = &v["dynamic-pool"];
    if d.is_object() {
        out += &format!(
            "pool       {} ({} mappings, {} free, lease {} s)\n",
            d["prefix"].as_str().unwrap_or("?"),
            d["mappings"],
            d["free"],
            d["lease-s"]
        );
    }
    if v["masquerade"].is_string() {
        out += &format!("masquerade {}\n", s("masquerade"));
    }
    let n = &v["nat64"];
    if n.is_object() {
        for (name, c) in n["protocols"].as_object().into_iter().flatten() {
            out += &format!("nat64 {name:<4} {} BIB entries, {} sessions\n", c["bib"], c["sessions"]);
        }
        out += &format!("nat64      room for {} sessions (max-sessions)\n", n["max-sessions"]);
        let tables: Vec<(&String, u64)> = n["memory"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
            .collect();
        if !tables.is_empty() {
            let total: u64 = tables.iter().map(|t| t.1).sum();
            let each: Vec<String> = tables.iter().map(|(k, b)| format!("{k} {}", bytes(*b))).collect();
            out += &format!("memory     {} in the NAT tables ({})\n", bytes(total), each.join(", "));
        }
        let w = &n["sweep"];
        if w.is_object() {
            out += &format!(
                "sweep      every {:.0} s, last run {:.1} ms over {} entries ({} sessions ended, {} BIB entries \
                 released); {} runs, {:.0} ms in all\n",
                w["every-s"].as_f64().unwrap_or(1.0),
                w["ms"].as_f64().unwrap_or(0.0),
                w["entries"],
                w["sessions-ended"],
                w["released"],
                w["runs"],
                w["total-ms"].as_f64().unwrap_or(0.0)
            );
        }
        for a in n["pool4"].as_array().into_iter().flatten() {
            out += &format!(
                "pool4      {} ports {}-{}: {} in use, {} held back\n",
                a["address"].as_str().unwrap_or("?"),
                a["first"],
                a["last"],
                a["in-use"],
                a["held-back"]
            );
        }
        let l = &n["limits"];
        let max = match l["max-ports-per-host"].as_u64() {
            Some(0) | None => "no limit".to_string(),
            Some(m) => format!("at most {m}"),
        };
        out += &format!(
            "limits     ports per /{} subscriber: {max}; a released port is held back {} s\n",
            l["subscriber-prefix-length"], l["port-reuse-delay"]
        );
        out += &format!(
            "syns       {} held for a simultaneous open (at most {})\n",
            n["syns-held"], l["max-simultaneous-opens"]
        );
        for t in n["top-subscribers"].as_array().into_iter().flatten() {
            out += &format!(
                "subscriber {} holds {} ports\n",
                t["subscriber"].as_str().unwrap_or("?"),
                t["ports"]
            );
        }
    }
    let r = &v["last-reload"];
    if r.is_object() {
        match r["ok"].as_bool() {
            Some(true) => out += &format!("reload     ok at {}\n", r["at"]),
            _ => {
                out += &format!("reload     refused at {}: {}\n", r["at"], r["error"].as_str().unwrap_or("?"))
            }
        }
    }
    out
}

/// A size for people: kB below 10 MB, MB with one decimal above.
fn bytes(b: u64) -> String {
    if b < 10_000_000 { format!("{} kB", b.div_ceil(1000)) } else { format!("{:.1} MB", b as f64 / 1e6) }
}

#[cfg(test)]
mod tests {
    use super::route_mtu;

    /// Room for translation under the smaller of lowest-ipv6-mtu and the smallest link
    /// that carries IPv6 at all; links under 1280 (IPv4-only) do not count.
    #[test]
    fn the_general_path_route_mtu() {
        assert_eq!(route_mtu(1280, &[]), 1252);
        assert_eq!(route_mtu(1280, &[1500, 9000]), 1252);
        assert_eq!(route_mtu(1500, &[1500, 1280]), 1252);
        assert_eq!(route_mtu(1500, &[1400, 1500]), 1372);
        assert_eq!(route_mtu(1500, &[576, 1500]), 1472, "an IPv4-only link of 576");
        assert_eq!(route_mtu(9000, &[9000]), 8972);
    }
}
