//! The configuration file (JSON): the validated [`Config`] and its checks. The file is
//! read into a raw serde structure first (`raw`) and then validated here, so that
//! every error can name the key, the value and the reason. The layers import one way:
//! `prefix` (address prefixes) <- `eamt` (RFC 7757 entries and their checks) and
//! `settings` (what `nat64-ctl set` changes live) <- this module; `raw` stands apart.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result, anyhow, bail};
use nat64_common::{maps::Globals, ranges, rfc6052::POOL6_LENGTHS};

mod eamt;
pub mod nat;
mod prefix;
mod raw;
mod settings;
pub mod sync;
#[cfg(test)]
mod tests;

use eamt::eamt_conflict;
pub use eamt::{EamtEntry, check_eamt_insert, check_eamt_insert_forced, eamt_first_overlap, parse_eamt_file};
pub use prefix::{Prefix4, Prefix6};
use prefix::{at, parse_addr, prefixes4};
use raw::{RawConfig, RawGeneralPath, RawGeneralPathSetting, RawInterface};
pub use settings::{LIVE_SETTINGS, apply_setting, parse_ipv4_translatable};
use settings::{check_lowest_ipv6_mtu, parse_rfc6791v4, parse_rfc6791v6};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP, falling back to generic where the driver has none.
    Xdp,
    /// Generic (skb) XDP only.
    XdpGeneric,
    /// TC (TCX ingress): any device, Ethernet or L3 (WireGuard, TUN).
    Tc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub attach: AttachMode,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub instance: String,
    pub interfaces: Vec<Interface>,
    pub ipv4_addr: Option<Ipv4Addr>,
    pub ipv6_addr: Option<Ipv6Addr>,
    pub pool6: Option<Prefix6>,
    pub eamt: Vec<EamtEntry>,
    pub denylist4: Vec<Prefix4>,
    /// IPv4 prefixes whose addresses are reached through pool6 (IPv6 hosts holding
    /// IPv4-translatable addresses, RFC 6052 §2, RFC 7915 §1.3).
    pub ipv4_translatable: Vec<Prefix4>,
    pub wkp_allow_non_global: bool,
    pub amend_udp_checksum_zero: bool,
    pub zeroize_traffic_class: bool,
    /// XDP hands translated TCP data segments to the kernel, whose GRO merges them.
    pub xdp_tcp_gro: bool,
    /// RFC 7915 §4.4 and §5.4: ICMP errors for packets dropped because an address cannot
    /// be translated (default on).
    pub icmp_errors_on_drop: bool,
    pub lowest_ipv6_mtu: u32,
    pub rfc6791v4_prefix: Option<Prefix4>,
    pub rfc6791v6_prefix: Option<Prefix6>,
    /// The general path (a veth pair nat64-ctl creates), if any.
    pub general_path: Option<GeneralPathConfig>,
    pub mode: Mode,
    /// `"pref64": "auto"`: pool6 is discovered (RFC 7050) by nat64-ctl run.
    pub pref64_auto: bool,
    /// The DNS server asked for ipv4only.arpa (default: /etc/resolv.conf's first).
    pub pref64_resolver: Option<std::net::IpAddr>,
    /// NAT64 PLAT: the IPv4 addresses handed out to IPv6 hosts, if any.
    pub dynamic_pool: Option<DynamicPool>,
    /// The interface whose address the kernel's masquerade hides the pool behind.
    pub masquerade: Option<String>,
    /// Stateful NAT64 (mode "nat64").
    pub nat64: Option<nat::Nat64>,
}

/// `dynamic-pool` and its companions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicPool {
    pub prefix: Prefix4,
    /// Seconds a mapping stays unused before it expires.
    pub lease: u64,
    /// Where the mappings are kept across restarts.
    pub state_file: std::path::PathBuf,
}

/// Like TAYGA's dynamic pool: two hours.
pub const DEFAULT_POOL_LEASE: u64 = 7200;
/// The shortest pool the maps are not sized for: a /16.
pub const MIN_POOL_LEN: u8 = 16;
/// Where pool state files go by default.
pub const STATE_DIR: &str = "/var/lib/nat64";

/// What the translator is for (spec §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stateless SIIT: pool6 and the EAMT both ways.
    Siit,
    /// CLAT (RFC 6877): local IPv4 clients (EAMT) reach any IPv4 address through the
    /// PLAT prefix (pool6 / pref64).
    Clat,
    /// Stateful NAT64 (RFC 6146): IPv6 hosts share pool4 addresses by port.
    Nat64,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Siit => "siit",
            Mode::Clat => "clat",
            Mode::Nat64 => "nat64",
        }
    }
}

/// `general-path`: the kernel-side interface's name and, optionally, the pair of
/// addresses (mapped to each other by the EAMT) the host itself sends from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneralPathConfig {
    pub interface: String,
    pub local: Option<(Ipv4Addr, Ipv6Addr)>,
}

pub const DEFAULT_INSTANCE: &str = "default";
/// RFC 8200 §5: every IPv6 link carries at least 1280 bytes.
pub const DEFAULT_LOWEST_IPV6_MTU: u32 = 1280;

fn check_instance(name: &str) -> Result<()> {
    // The name becomes a directory under /sys/fs/bpf/nat64, and shows up in commands.
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        bail!("instance: {name:?}: must be 1 to 32 characters from a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

fn check_interface(i: usize, raw: &RawInterface) -> Result<Interface> {
    let name = &raw.name;
    // The kernel's own rules (dev_valid_name): at most IFNAMSIZ - 1 bytes, no '/',
    // ':' or whitespace, and not "." or "..".
    if !(1..=15).contains(&name.len()) {
        bail!("interfaces[{i}].name: {name:?}: must be 1 to 15 bytes long (Linux IFNAMSIZ)");
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        bail!("interfaces[{i}].name: {name:?}: must not contain '/', ':' or whitespace");
    }
    if name == "." || name == ".." {
        bail!("interfaces[{i}].name: {name:?}: is not a valid interface name");
    }
    let attach = match raw.attach.as_str() {
        "xdp" => AttachMode::Xdp,
        "xdp-generic" => AttachMode::XdpGeneric,
        "tc" => AttachMode::Tc,
        other => {
            bail!(
                "interfaces[{i}].attach: {other:?} is not supported (use \"xdp\", \"xdp-generic\" or \"tc\")"
            )
        }
    };
    Ok(Interface { name: name.clone(), attach })
}

/// The name of the general path nat64-ctl makes when the configuration names none:
/// `nat64gp` for the default instance, `n64gp-` and the instance's name when that fits
/// (IFNAMSIZ, with the peer's "p"), else `n64gp-` and eight hex digits of its hash.
fn implicit_general_path(instance: &str) -> String {
    if instance == DEFAULT_INSTANCE {
        "nat64gp".to_string()
    } else if instance.len() <= 8 {
        format!("n64gp-{instance}")
    } else {
        // FNV-1a: stable across releases and platforms (unlike std's hasher).
        let h = instance.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193));
        format!("n64gp-{h:08x}")
    }
}

fn check_general_path(raw: &RawGeneralPath, interfaces: &[Interface]) -> Result<GeneralPathConfig> {
    let name = raw.interface.as_str();
    // nat64-ctl creates `name` and its peer `name` + "p": both must be valid interface
    // names (IFNAMSIZ - 1 = 15 bytes) and not collide with the attached ones.
    let ok = !name.is_empty()
        && name.len() <= 14
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("general-path.interface: {name:?}: must be 1 to 14 characters from a-z, A-Z, 0-9, '-' and '_'");
    }
    let peer = format!("{name}p");
    if let Some(i) = interfaces.iter().position(|x| x.name == name || x.name == peer) {
        bail!(
            "general-path.interface: {name:?}: nat64-ctl creates {name} and {peer}; interfaces[{i}] names one of them"
        );
    }
    let local = match (&raw.ipv4_addr, &raw.ipv6_addr) {
        (None, None) => None,
        (Some(a4), Some(a6)) => {
            Some((parse_addr("general-path.ipv4-addr", a4)?, parse_addr("general-path.ipv6-addr", a6)?))
        }
        _ => bail!(
            "general-path: ipv4-addr and ipv6-addr go together (the host's own translated pair): give both or neither"
        ),
    };
    Ok(GeneralPathConfig { interface: name.to_string(), local })
}

/// The host's pair must map to each other through the EAMT, so that what the host sends
/// from one comes back to the other.
fn check_general_path_pair(cfg: Config) -> Result<Config> {
    if let Some((a4, a6)) = cfg.general_path.as_ref().and_then(|gp| gp.local) {
        let table: Vec<_> = cfg.eamt.iter().map(EamtEntry::to_entry).collect();
        match nat64_common::addr::eam_longest4(&table, a4.octets()) {
            Some(e) if Ipv6Addr::from(e.map4to6(a4.octets())) == a6 => {}
            Some(e) => bail!(
                "general-path.ipv6-addr: {a6}: the EAMT maps general-path.ipv4-addr {a4} to {}; \
                 the pair must map to each other",
                Ipv6Addr::from(e.map4to6(a4.octets()))
            ),
            None => {
                bail!("general-path.ipv4-addr: {a4}: no eamt entry covers it; add one mapping it to {a6}")
            }
        }
    }
    Ok(cfg)
}

fn check_pool6(s: &str) -> Result<Prefix6> {
    let p: Prefix6 = s.parse().map_err(at("pool6"))?;
    if !POOL6_LENGTHS.contains(&p.prefix_len()) {
        bail!("pool6: {s:?}: length {} is not one of 32, 40, 48, 56, 64, 96 (RFC 6052)", p.prefix_len());
    }
    // RFC 6052 §2.2: bits 64..71 (the u-octet) must be zero; for the shorter lengths they
    // are host bits and already zero, for /96 they are part of the prefix.
    if p.addr().octets()[8] != 0 {
        bail!("pool6: {s:?}: bits 64 to 71 (the u-octet) must be zero (RFC 6052 §2.2)");
    }
    Ok(p)
}

impl Config {
    /// The size of stateful NAT64's tables this configuration asks for: `max-sessions`
    /// in mode "nat64", 1 in the other modes (their tables stay empty).
    pub fn nat_sessions(&self) -> u32 {
        self.nat64.as_ref().map_or(1, |n| n.max_sessions)
    }

    /// The dynamic port blocks pool4 has (the size of their maps); 1 without them.
    pub fn nat_blocks(&self) -> u32 {
        self.nat64
            .as_ref()
            .and_then(|n| n.port_blocks.filter(|b| b.dynamic()).map(|b| b.count(n.slots().len())))
            .unwrap_or(1)
            .max(1)
    }

    /// The sizes the stateful tables are made with: sessions, dynamic port blocks.
    pub fn nat_sizes(&self) -> (u32, u32) {
        (self.nat_sessions(), self.nat_blocks())
    }

    pub fn from_json(text: &str) -> Result<Config> {
        Self::from_json_for(text, None)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        Self::load_for(path, None)
    }

    /// [`Config::load`] for the instance the command line names (`--instance`, as the
    /// systemd unit passes its instance name): a file without `"instance"` is for that
    /// instance; one that names another is refused.
    pub fn load_for(path: &Path, instance: Option<&str>) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_json_for(&text, instance).with_context(|| format!("config file {}", path.display()))
    }

    fn from_json_for(text: &str, instance: Option<&str>) -> Result<Config> {
        let mut raw: RawConfig = serde_json::from_str(text)?;
        match (&raw.instance, instance) {
            (Some(file), Some(cli)) if file != cli => {
                bail!("instance: {file:?}: the file is for another instance than --instance {cli:?}")
            }
            (None, Some(cli)) => raw.instance = Some(cli.to_string()),
            _ => {}
        }
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config> {
        let instance = raw.instance.clone().unwrap_or_else(|| DEFAULT_INSTANCE.to_string());
        check_instance(&instance)?;

        if raw.interfaces.is_empty() {
            bail!("interfaces: []: the list is empty; name at least one interface to attach to");
        }
        let mut interfaces: Vec<Interface> = Vec::with_capacity(raw.interfaces.len());
        for (i, r) in raw.interfaces.iter().enumerate() {
            let iface = check_interface(i, r)?;
            if let Some(j) = interfaces.iter().position(|o| o.name == iface.name) {
                bail!("interfaces[{i}].name: {:?}: listed twice (also interfaces[{j}])", iface.name);
            }
            interfaces.push(iface);
        }

        let mode = match raw.mode.as_deref() {
            None | Some("siit") => Mode::Siit,
            Some("clat") => Mode::Clat,
            Some("nat64") => Mode::Nat64,
            Some(other) => bail!("mode: {other:?}: must be \"siit\", \"clat\" or \"nat64\""),
        };
        let nat64 = nat::check(&raw, mode == Mode::Nat64)?;
        let (pool6, pref64_auto) = match (raw.pool6.as_deref(), raw.pref64.as_deref()) {
            (Some(_), Some(_)) => {
                bail!(
                    "pool6, pref64: two names for the same prefix (pref64 is the CLAT's word for it); give one"
                )
            }
            (_, Some("auto")) => (None, true),
            (Some(p), None) => (Some(check_pool6(p)?), false),
            (None, Some(p)) => {
                (Some(check_pool6(p).map_err(|e| anyhow!("pref64{}", &e.to_string()[5..]))?), false)
            }
            (None, None) => (None, false),
        };
        let pref64_resolver = match raw.pref64_resolver.as_deref() {
            None => None,
            Some(_) if !pref64_auto => {
                bail!("pref64-resolver: only used with \"pref64\": \"auto\"")
            }
            Some(s) => Some(
                s.parse::<std::net::IpAddr>()
                    .map_err(|_| anyhow!("pref64-resolver: {s:?}: not an IPv4 or IPv6 address"))?,
            ),
        };

        let mut eamt: Vec<EamtEntry> = Vec::with_capacity(raw.eamt.len());
        for (i, r) in raw.eamt.iter().enumerate() {
            let v4: Prefix4 = r.ipv4.parse().map_err(at(format!("eamt[{i}].ipv4")))?;
            let v6: Prefix6 = r.ipv6.parse().map_err(at(format!("eamt[{i}].ipv6")))?;
            let e = EamtEntry::new(v4, v6).map_err(at(format!("eamt[{i}]")))?;
            eamt_conflict(&eamt, &e, |j, o| format!("eamt[{j}] ({o})")).map_err(at(format!("eamt[{i}]")))?;
            eamt.push(e);
        }

        if mode == Mode::Clat && eamt.is_empty() {
            bail!(
                "eamt: mode \"clat\" maps its local IPv4 clients through the EAMT; give at least one \
                 entry (e.g. {{\"ipv4\": \"192.0.0.1\", \"ipv6\": \"2001:db8::c1a7\"}})"
            );
        }
        if mode == Mode::Clat && pool6.is_none() && !pref64_auto {
            bail!("pref64: mode \"clat\" needs the PLAT prefix: give pref64 (a prefix, or \"auto\")");
        }
        if pool6.is_none() && !pref64_auto && eamt.is_empty() {
            bail!(
                "pool6, eamt: neither is set, so nothing would be translated; \
                 give pool6 (e.g. \"64:ff9b::/96\") or at least one eamt entry"
            );
        }

        let denylist4 = prefixes4("denylist4", &raw.denylist4)?;
        let ipv4_translatable = prefixes4("ipv4-translatable", &raw.ipv4_translatable)?;
        check_ipv4_translatable(&ipv4_translatable, mode, pool6.is_some() || pref64_auto)?;

        let ipv4_addr = match raw.ipv4_addr.as_deref() {
            None => None,
            Some(s) => {
                let a: Ipv4Addr = parse_addr("ipv4-addr", s)?;
                // Spec §1: reserved space is never translated to or from, and this address
                // is the source of the ICMPv4 errors the translator sends (RFC 6791).
                if ranges::is_reserved4(a.octets()) {
                    bail!(
                        "ipv4-addr: {s:?}: is in a range that is never translated \
                         (0.0.0.0/8, 127/8, 169.254/16, 224/4, 240/4 with 255.255.255.255)"
                    );
                }
                // The address would then both belong to the translator and be mapped to an
                // IPv6 host.
                if let Some((j, e)) = eamt.iter().enumerate().find(|(_, e)| e.v4.contains_addr(a)) {
                    bail!(
                        "ipv4-addr: {s:?}: is inside eamt[{j}] ({e}); \
                         the translator's own address cannot be mapped"
                    );
                }
                Some(a)
            }
        };

        let ipv6_addr = match raw.ipv6_addr.as_deref() {
            None => None,
            Some(s) => {
                let a: Ipv6Addr = parse_addr("ipv6-addr", s)?;
                // Inside pool6 it is fine (the kernel-module peer's reference setup has it
                // there): the data path takes it for the translator's own before pool6, and
                // translates the rest of pool6. An EAM entry would map it both ways, though.
                if let Some((j, e)) = eamt.iter().enumerate().find(|(_, e)| e.v6.contains_addr(a)) {
                    bail!(
                        "ipv6-addr: {s:?}: is inside eamt[{j}] ({e}); \
                         the translator's own address cannot be mapped"
                    );
                }
                Some(a)
            }
        };

        let mtu = raw.lowest_ipv6_mtu.unwrap_or(DEFAULT_LOWEST_IPV6_MTU.into());
        check_lowest_ipv6_mtu(mtu)?;
        let rfc6791v4_prefix = raw.rfc6791v4_prefix.as_deref().map(parse_rfc6791v4).transpose()?;
        let rfc6791v6_prefix = raw.rfc6791v6_prefix.as_deref().map(parse_rfc6791v6).transpose()?;
        // The general path is there unless switched off: without it an IPv4 packet without
        // DF that must become IPv6 fragments (RFC 7915 §4) could not be translated.
        let general_path = match &raw.general_path {
            Some(RawGeneralPathSetting::Off) => None,
            Some(RawGeneralPathSetting::On(gp)) => Some(check_general_path(gp, &interfaces)?),
            None => Some(check_general_path(
                &RawGeneralPath {
                    interface: implicit_general_path(&instance),
                    ipv4_addr: None,
                    ipv6_addr: None,
                },
                &interfaces,
            )?),
        };
        let dynamic_pool = check_dynamic_pool(&raw, &instance, mode, pool6.is_some() || pref64_auto)?;
        if let Some(d) = &dynamic_pool
            && let Some((j, e)) = eamt.iter().enumerate().find(|(_, e)| e.v4.overlaps(&d.prefix))
        {
            bail!(
                "dynamic-pool: {}: overlaps eamt[{j}] ({e}); an address is either static or handed out, \
                 so keep the EAM entries outside the pool",
                d.prefix
            );
        }
        let masquerade = match (&raw.masquerade, &dynamic_pool) {
            (None, _) => None,
            (Some(_), None) => bail!(
                "masquerade: hides the dynamic pool behind an interface's address; there is no \"dynamic-pool\""
            ),
            (Some(m), Some(_)) => {
                let name = m.interface.as_str();
                let ok = !name.is_empty()
                    && name.len() <= 15
                    && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'"');
                if !ok {
                    bail!(
                        "masquerade.interface: {name:?}: not an interface name (1 to 15 characters, no '/')"
                    );
                }
                Some(name.to_string())
            }
        };
        // The kernel hands the replies it un-masquerades to the pool's addresses to the
        // general path, whose program translates them: masquerade needs one.
        if masquerade.is_some() && general_path.is_none() {
            bail!(
                "general-path: false: masquerade needs the general path (the kernel hands the replies it takes \
                 back to the pool's addresses to it); remove \"general-path\": false"
            );
        }

        Ok(Config {
            instance,
            interfaces,
            ipv4_addr,
            ipv6_addr,
            pool6,
            eamt,
            denylist4,
            ipv4_translatable,
            wkp_allow_non_global: raw.wkp_allow_non_global,
            amend_udp_checksum_zero: raw.amend_udp_checksum_zero,
            zeroize_traffic_class: raw.zeroize_traffic_class,
            xdp_tcp_gro: raw.xdp_tcp_gro,
            icmp_errors_on_drop: raw.icmp_errors_on_drop.unwrap_or(true),
            lowest_ipv6_mtu: mtu as u32,
            rfc6791v4_prefix,
            rfc6791v6_prefix,
            general_path,
            mode,
            pref64_auto,
            pref64_resolver,
            dynamic_pool,
            masquerade,
            nat64,
        })
        .and_then(check_general_path_pair)
    }

    /// The map value the data path reads.
    pub fn globals(&self) -> Globals {
        let mut g = Globals::zeroed();
        g.flags = Globals::FLAG_ENABLED;
        if let Some(a) = self.ipv4_addr {
            g.ipv4_addr = a.octets();
            g.flags |= Globals::FLAG_HAS_IPV4_ADDR;
        }
        if let Some(a) = self.ipv6_addr {
            g.ipv6_addr = a.octets();
            g.flags |= Globals::FLAG_HAS_IPV6_ADDR;
        }
        if let Some(p) = self.pool6 {
            g.pool6 = p.addr().octets();
            g.pool6_len = p.prefix_len();
        }
        if self.mode == Mode::Clat {
            g.flags |= Globals::FLAG_CLAT;
        }
        if self.mode == Mode::Nat64 {
            g.flags |= Globals::FLAG_STATEFUL;
        }
        for (on, flag) in [
            (self.wkp_allow_non_global, Globals::FLAG_WKP_ALLOW_NON_GLOBAL),
            (self.amend_udp_checksum_zero, Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO),
            (self.zeroize_traffic_class, Globals::FLAG_ZEROIZE_TRAFFIC_CLASS),
            (self.xdp_tcp_gro, Globals::FLAG_XDP_TCP_GRO),
            (!self.icmp_errors_on_drop, Globals::FLAG_NO_DROP_ERRORS),
            (self.nat64.as_ref().is_some_and(|n| n.icmp6_source_inner), Globals::FLAG_ICMP6_SOURCE_INNER),
        ] {
            if on {
                g.flags |= flag;
            }
        }
        g.lowest_ipv6_mtu = self.lowest_ipv6_mtu;
        if let Some(p) = self.rfc6791v4_prefix {
            g.rfc6791v4 = p.addr().octets();
            g.rfc6791v4_len = p.prefix_len();
        }
        if let Some(p) = self.rfc6791v6_prefix {
            g.rfc6791v6 = p.addr().octets();
            g.rfc6791v6_len = p.prefix_len();
        }
        if let Some(d) = &self.dynamic_pool {
            g.dyn_pool = d.prefix.addr().octets();
            g.dyn_pool_len = d.prefix.prefix_len();
            g.dyn_pool_lease = d.lease as u32;
            g.flags |= Globals::FLAG_DYNAMIC_POOL;
        }
        if !self.ipv4_translatable.is_empty() {
            g.flags |= Globals::FLAG_IPV4_TRANSLATABLE;
        }
        g
    }
}

fn check_dynamic_pool(
    raw: &RawConfig,
    instance: &str,
    mode: Mode,
    has_pool6: bool,
) -> Result<Option<DynamicPool>> {
    let Some(p) = raw.dynamic_pool.as_deref() else {
        if raw.dynamic_pool_lease.is_some() || raw.state_file.is_some() {
            let key = if raw.dynamic_pool_lease.is_some() { "dynamic-pool-lease" } else { "state-file" };
            bail!("{key}: belongs to the dynamic pool; there is no \"dynamic-pool\"");
        }
        return Ok(None);
    };
    let prefix: Prefix4 = p.parse().map_err(at("dynamic-pool"))?;
    if prefix.prefix_len() < MIN_POOL_LEN {
        bail!(
            "dynamic-pool: {p:?}: at most {} addresses (a /{MIN_POOL_LEN}); this one has {}",
            nat64_common::maps::POOL_MAX,
            1u64 << (32 - prefix.prefix_len())
        );
    }
    let first = prefix.addr().octets();
    let last = prefix.broadcast().octets();
    if ranges::is_reserved4(first) || ranges::is_reserved4(last) {
        bail!(
            "dynamic-pool: {p:?}: is in a range that is never translated \
             (0.0.0.0/8, 127/8, 169.254/16, 224/4, 240/4 with 255.255.255.255)"
        );
    }
    if mode == Mode::Clat {
        bail!(
            "dynamic-pool: the NAT64 pool is for a PLAT (mode \"siit\"); a CLAT maps its clients with the EAMT"
        );
    }
    if !has_pool6 {
        bail!("dynamic-pool: IPv6 hosts reach IPv4 through pool6; give pool6 (e.g. \"64:ff9b::/96\")");
    }
    let lease = raw.dynamic_pool_lease.unwrap_or(DEFAULT_POOL_LEASE);
    if !(1..=365 * 86400).contains(&lease) {
        bail!("dynamic-pool-lease: {lease}: must be 1 to 31536000 seconds (a year)");
    }
    let state_file = match raw.state_file.as_deref() {
        Some("") => bail!("state-file: \"\": empty path"),
        Some(s) => std::path::PathBuf::from(s),
        None => Path::new(STATE_DIR).join(format!("{instance}.pool.json")),
    };
    Ok(Some(DynamicPool { prefix, lease, state_file }))
}

/// `ipv4-translatable`: addresses reached through pool6, so there must be one; a CLAT
/// already sends every IPv4 destination of its clients through it.
pub fn check_ipv4_translatable(list: &[Prefix4], mode: Mode, has_pool6: bool) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    if mode == Mode::Clat {
        bail!(
            "ipv4-translatable: not in mode \"clat\" (a CLAT translates every IPv4 destination of its \
             clients already); it is for SIIT, where IPv6 hosts hold pool6 addresses"
        );
    }
    if !has_pool6 {
        bail!("ipv4-translatable: its addresses are reached through pool6, which is not set; give pool6");
    }
    if list.len() > nat64_common::maps::V4XLAT_MAX_ENTRIES as usize {
        bail!(
            "ipv4-translatable: {} prefixes, at most {} fit",
            list.len(),
            nat64_common::maps::V4XLAT_MAX_ENTRIES
        );
    }
    for (i, p) in list.iter().enumerate() {
        if let Some(j) = list[..i].iter().position(|q| q == p) {
            bail!("ipv4-translatable[{i}]: {p} is ipv4-translatable[{j}] again");
        }
    }
    Ok(())
}
