//! The general path: the veth pair to the kernel's own stack for what the fast path
//! does not translate, its routes and MTUs, the forwarding checks, and the dynamic
//! pool's masquerade.

use std::fs;

use anyhow::{Context as _, Result, bail};
use log::{info, warn};

use crate::{
    config::{Config, EamtEntry, Mode, Prefix4, Prefix6},
    sys::{hwaddr, ifindex, ifreq},
    tables::Tables,
};

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
    addrs.into_iter().filter(|a| seen.insert(*a)).map(|a| route4(name, Prefix4::host(a), mtu4, src)).collect()
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
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.parse::<ipnet::Ipv4Net>().ok())
        .map(|net| net.addr());
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
