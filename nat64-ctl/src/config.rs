//! The configuration file (JSON) and the address types it is made of.
//!
//! The file is read into a raw serde structure first and then validated into
//! [`Config`], so that every error can name the key, the value and the reason.

use std::{
    cell::Cell,
    fmt,
    marker::PhantomData,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    str::FromStr,
};

use anyhow::{Context as _, Result, anyhow, bail};
use nat64_common::{
    addr::POOL6_LENGTHS,
    maps::{EamEntry, Globals},
    ranges,
};
use serde::{
    Deserialize, Deserializer,
    de::{Error as _, SeqAccess, Visitor},
};

// ---------------------------------------------------------------------------
// Prefixes

/// What the prefix code needs of an address family.
trait Family: Copy + FromStr + fmt::Display {
    const NAME: &'static str;
    const WIDTH: u8;
    const OTHER: &'static str;
    fn to_bits(self) -> u128;
    fn from_bits(bits: u128) -> Self;
    fn is_other_family(s: &str) -> bool;
}

impl Family for Ipv4Addr {
    const NAME: &'static str = "IPv4";
    const WIDTH: u8 = 32;
    const OTHER: &'static str = "IPv6";
    fn to_bits(self) -> u128 {
        u32::from(self).into()
    }
    fn from_bits(bits: u128) -> Self {
        Ipv4Addr::from(bits as u32)
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv6Addr>().is_ok()
    }
}

impl Family for Ipv6Addr {
    const NAME: &'static str = "IPv6";
    const WIDTH: u8 = 128;
    const OTHER: &'static str = "IPv4";
    fn to_bits(self) -> u128 {
        self.into()
    }
    fn from_bits(bits: u128) -> Self {
        bits.into()
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv4Addr>().is_ok()
    }
}

/// The high `len` bits of a `width`-bit number.
fn net_mask(len: u8, width: u8) -> u128 {
    let len = len.min(width);
    if len == 0 { 0 } else { (u128::MAX << (128 - len)) >> (128 - width) }
}

/// Whether `b/blen` lies inside `a/alen`.
fn bits_contain(a: u128, alen: u8, b: u128, blen: u8, width: u8) -> bool {
    alen <= blen && (a ^ b) & net_mask(alen, width) == 0
}

/// Why `addr/len` is not a valid prefix, if it is not.
fn prefix_problem<A: Family>(addr: A, len: u8) -> Option<String> {
    if len > A::WIDTH {
        return Some(format!("prefix length {len} is longer than {}", A::WIDTH));
    }
    let bits = addr.to_bits();
    let net = bits & net_mask(len, A::WIDTH);
    // A prefix with host bits set is almost always a typo for another prefix; taking
    // it silently would translate a range the operator did not mean.
    (net != bits).then(|| format!("host bits are set (did you mean {}/{len}?)", A::from_bits(net)))
}

fn parse_prefix<A: Family>(s: &str) -> Result<(A, u8)> {
    let (addr_s, len_s) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(addr) = addr_s.parse::<A>() else {
        let what = if len_s.is_some() { format!("{addr_s:?} is not") } else { "not".to_string() };
        let hint = if A::is_other_family(addr_s) {
            format!(" (that is an {} address)", A::OTHER)
        } else {
            String::new()
        };
        bail!("{s:?}: {what} an {} address{hint}", A::NAME);
    };
    let len = match len_s {
        None => A::WIDTH,
        Some(l) if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) => {
            bail!("{s:?}: prefix length {l:?} is not a number")
        }
        Some(l) => match l.parse::<u8>() {
            Ok(n) => n,
            Err(_) => bail!("{s:?}: prefix length {l} is longer than {}", A::WIDTH),
        },
    };
    if let Some(problem) = prefix_problem(addr, len) {
        bail!("{s:?}: {problem}");
    }
    Ok((addr, len))
}

/// An IPv4 prefix without host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix4 {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv6 prefix without host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Prefix4 {
    /// Whether `other` lies inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        bits_contain(Family::to_bits(self.addr), self.len, Family::to_bits(other.addr), other.len, 32)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn contains_addr(&self, a: Ipv4Addr) -> bool {
        self.contains(&Prefix4 { addr: a, len: 32 })
    }
}

impl Prefix6 {
    /// Whether `other` lies inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        bits_contain(Family::to_bits(self.addr), self.len, Family::to_bits(other.addr), other.len, 128)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn contains_addr(&self, a: Ipv6Addr) -> bool {
        self.contains(&Prefix6 { addr: a, len: 128 })
    }
}

impl FromStr for Prefix4 {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_prefix(s).map(|(addr, len)| Self { addr, len })
    }
}

impl FromStr for Prefix6 {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_prefix(s).map(|(addr, len)| Self { addr, len })
    }
}

impl fmt::Display for Prefix4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}/{}", self.addr, self.len))
    }
}

impl fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}/{}", self.addr, self.len))
    }
}

// ---------------------------------------------------------------------------
// EAMT

/// One explicit address mapping (RFC 7757).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EamtEntry {
    pub v4: Prefix4,
    pub v6: Prefix6,
}

impl fmt::Display for EamtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.v4, self.v6)
    }
}

impl EamtEntry {
    pub fn new(v4: Prefix4, v6: Prefix6) -> Result<Self> {
        let e = Self { v4, v6 };
        // The fields are public, so a prefix may not have come through FromStr.
        if let Some(p) = prefix_problem(v4.addr, v4.len) {
            bail!("EAM {e}: IPv4 side: {p}");
        }
        if let Some(p) = prefix_problem(v6.addr, v6.len) {
            bail!("EAM {e}: IPv6 side: {p}");
        }
        // RFC 7757 §3.2: the IPv4 suffix bits follow the IPv6 prefix, so they must fit in
        // the IPv6 side's host bits (more host bits there are zero, and not looked at).
        let (s4, s6) = (32 - v4.len as u32, 128 - v6.len as u32);
        if s4 > s6 {
            bail!(
                "EAM {e}: the IPv4 suffix ({s4} bits) is longer than the IPv6 suffix ({s6} bits); \
                 the IPv6 prefix must be /{} or shorter (RFC 7757 §3.2)",
                96 + v4.len
            );
        }
        Ok(e)
    }

    pub fn to_entry(&self) -> EamEntry {
        EamEntry::new(self.v4.addr.octets(), self.v4.len, self.v6.addr.octets(), self.v6.len)
    }
}

/// Checks `new` against `existing`, naming a conflicting entry with `name(index, entry)`.
fn eamt_conflict(
    existing: &[EamtEntry],
    new: &EamtEntry,
    name: impl Fn(usize, &EamtEntry) -> String,
) -> Result<()> {
    if let Some(i) = existing.iter().position(|e| e == new) {
        bail!("EAM {new} is already present ({})", name(i, &existing[i]));
    }
    // RFC 7757 tolerates overlapping entries (longest-prefix match picks one), but then
    // an address can leave through one entry and come back through another, so the
    // translation is no longer reversible. Keep the table one-to-one instead.
    for (i, e) in existing.iter().enumerate() {
        if e.v4.overlaps(&new.v4) {
            bail!("EAM {new}: its IPv4 prefix {} overlaps {}", new.v4, name(i, e));
        }
        if e.v6.overlaps(&new.v6) {
            bail!("EAM {new}: its IPv6 prefix {} overlaps {}", new.v6, name(i, e));
        }
    }
    Ok(())
}

/// Refuses an entry that is already present or whose IPv4 or IPv6 prefix overlaps
/// one of `existing`.
pub fn check_eamt_insert(existing: &[EamtEntry], new: &EamtEntry) -> Result<()> {
    eamt_conflict(existing, new, |_, e| format!("existing entry {e}"))
}

/// The first two entries (indices into `entries`) whose IPv4 prefixes (`true`) or IPv6
/// prefixes (`false`) overlap or are equal, found by sorting: O(n log n), for tables of
/// a hundred thousand entries.
pub fn eamt_first_overlap(entries: &[EamtEntry]) -> Option<(usize, usize, bool)> {
    fn scan(ranges: &[(u128, u128)]) -> Option<(usize, usize)> {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_unstable_by_key(|&i| ranges[i]);
        let mut widest: Option<usize> = None;
        for &i in &order {
            if let Some(w) = widest {
                if ranges[i].0 <= ranges[w].1 {
                    return Some((w, i));
                }
                if ranges[i].1 > ranges[w].1 {
                    widest = Some(i);
                }
            } else {
                widest = Some(i);
            }
        }
        None
    }
    let v4: Vec<(u128, u128)> = entries
        .iter()
        .map(|e| {
            let a = u32::from(e.v4.addr);
            (a.into(), (a | !mask4(e.v4.len)).into())
        })
        .collect();
    if let Some((a, b)) = scan(&v4) {
        return Some((a, b, true));
    }
    let v6: Vec<(u128, u128)> = entries
        .iter()
        .map(|e| {
            let a = u128::from(e.v6.addr);
            (a, a | !(net_mask(e.v6.len, 128)))
        })
        .collect();
    scan(&v6).map(|(a, b)| (a, b, false))
}

/// Reads an EAMT file for `map add --file`: one entry a line, `IPV4[/LEN] IPV6[/LEN]`;
/// blank lines and `#` comments are skipped. Errors name the file and line.
pub fn parse_eamt_file(path: &Path) -> Result<Vec<(usize, EamtEntry)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |e: anyhow::Error| anyhow!("{}:{}: {e:#}", path.display(), n + 1);
        let mut words = line.split_whitespace();
        let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
            return Err(at(anyhow!("{line:?}: want two words, an IPv4 and an IPv6 prefix")));
        };
        let v4: Prefix4 = a.parse().map_err(at)?;
        let v6: Prefix6 = b.parse().map_err(at)?;
        out.push((n + 1, EamtEntry::new(v4, v6).map_err(at)?));
    }
    if out.is_empty() {
        bail!("{}: no entries", path.display());
    }
    Ok(out)
}

/// `map add --force`: overlapping (nested) entries are accepted and resolved by
/// longest-prefix match, as in Jool; an identical IPv4 or IPv6 prefix is still refused,
/// because it would silently replace the other entry in one direction only.
pub fn check_eamt_insert_forced(existing: &[EamtEntry], new: &EamtEntry) -> Result<()> {
    for e in existing {
        if e.v4 == new.v4 {
            bail!("EAM {new}: the IPv4 prefix {} is already mapped by existing entry {e}", new.v4);
        }
        if e.v6 == new.v6 {
            bail!("EAM {new}: the IPv6 prefix {} is already mapped by existing entry {e}", new.v6);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw file
//
// serde_json names the key of an unknown or missing field but not that of a value of
// the wrong type. The `deserialize_with` helpers below prefix such errors with the key
// path; serde_json takes the trailing "at line L column C" back out of the message
// (`Error::custom`), so the position survives the rewrapping.

fn with_key<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D, key: &str) -> Result<T, D::Error> {
    T::deserialize(d).map_err(|e| D::Error::custom(format_args!("{key}: {e}")))
}

/// A list whose element errors are prefixed with `key[index]`. Field errors inside an
/// element arrive as ".field: ..." and are joined to the index without a colon.
fn indexed<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    key: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct ListVisitor<'a, T> {
        key: &'static str,
        element_failed: &'a Cell<bool>,
        _t: PhantomData<T>,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<'_, T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            loop {
                match seq.next_element::<T>() {
                    Ok(Some(v)) => out.push(v),
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        self.element_failed.set(true);
                        let msg = e.to_string();
                        let sep = if msg.starts_with('.') { "" } else { ": " };
                        return Err(A::Error::custom(format_args!("{}[{}]{sep}{msg}", self.key, out.len())));
                    }
                }
            }
        }
    }

    let element_failed = Cell::new(false);
    let visitor = ListVisitor { key, element_failed: &element_failed, _t: PhantomData };
    d.deserialize_seq(visitor)
        .map_err(|e| if element_failed.get() { e } else { D::Error::custom(format_args!("{key}: {e}")) })
}

macro_rules! keyed {
    ($($f:ident => $key:literal),* $(,)?) => {$(
        fn $f<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
            with_key(d, $key)
        }
    )*};
}

keyed! {
    de_instance => "instance",
    de_ipv4_addr => "ipv4-addr",
    de_ipv6_addr => "ipv6-addr",
    de_pool6 => "pool6",
    de_wkp_allow_non_global => "wkp-allow-non-global",
    de_amend_udp_checksum_zero => "amend-udp-checksum-zero",
    de_zeroize_traffic_class => "zeroize-traffic-class",
    de_lowest_ipv6_mtu => "lowest-ipv6-mtu",
    de_rfc6791v4_prefix => "rfc6791v4-prefix",
    de_rfc6791v6_prefix => "rfc6791v6-prefix",
    de_general_path => "general-path",
    de_mode => "mode",
    de_pref64 => "pref64",
    de_pref64_resolver => "pref64-resolver",
    de_dynamic_pool => "dynamic-pool",
    de_dynamic_pool_lease => "dynamic-pool-lease",
    de_state_file => "state-file",
    de_masquerade => "masquerade",
    de_masq_interface => "masquerade.interface",
    de_gp_interface => "general-path.interface",
    de_gp_ipv4_addr => "general-path.ipv4-addr",
    de_gp_ipv6_addr => "general-path.ipv6-addr",
    de_name => ".name",
    de_attach => ".attach",
    de_ipv4 => ".ipv4",
    de_ipv6 => ".ipv6",
}

macro_rules! keyed_list {
    ($($f:ident => $key:literal),* $(,)?) => {$(
        fn $f<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
            indexed(d, $key)
        }
    )*};
}

keyed_list! {
    de_interfaces => "interfaces",
    de_eamt => "eamt",
    de_denylist4 => "denylist4",
    de_ipv4_translatable => "ipv4-translatable",
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a JSON object of nat64 settings")]
struct RawConfig {
    #[serde(default, deserialize_with = "de_instance")]
    instance: Option<String>,
    #[serde(deserialize_with = "de_interfaces")]
    interfaces: Vec<RawInterface>,
    #[serde(default, deserialize_with = "de_ipv4_addr")]
    ipv4_addr: Option<String>,
    #[serde(default, deserialize_with = "de_ipv6_addr")]
    ipv6_addr: Option<String>,
    #[serde(default, deserialize_with = "de_pool6")]
    pool6: Option<String>,
    #[serde(default, deserialize_with = "de_eamt")]
    eamt: Vec<RawEam>,
    #[serde(default, deserialize_with = "de_denylist4")]
    denylist4: Vec<String>,
    #[serde(default, deserialize_with = "de_ipv4_translatable")]
    ipv4_translatable: Vec<String>,
    #[serde(default, deserialize_with = "de_wkp_allow_non_global")]
    wkp_allow_non_global: bool,
    #[serde(default, deserialize_with = "de_amend_udp_checksum_zero")]
    amend_udp_checksum_zero: bool,
    #[serde(default, deserialize_with = "de_zeroize_traffic_class")]
    zeroize_traffic_class: bool,
    #[serde(default, deserialize_with = "de_lowest_ipv6_mtu")]
    lowest_ipv6_mtu: Option<u64>,
    #[serde(default, deserialize_with = "de_rfc6791v4_prefix")]
    rfc6791v4_prefix: Option<String>,
    #[serde(default, deserialize_with = "de_rfc6791v6_prefix")]
    rfc6791v6_prefix: Option<String>,
    #[serde(default, deserialize_with = "de_general_path")]
    general_path: Option<RawGeneralPath>,
    #[serde(default, deserialize_with = "de_mode")]
    mode: Option<String>,
    #[serde(default, deserialize_with = "de_pref64")]
    pref64: Option<String>,
    #[serde(default, deserialize_with = "de_pref64_resolver")]
    pref64_resolver: Option<String>,
    #[serde(default, deserialize_with = "de_dynamic_pool")]
    dynamic_pool: Option<String>,
    #[serde(default, deserialize_with = "de_dynamic_pool_lease")]
    dynamic_pool_lease: Option<u64>,
    #[serde(default, deserialize_with = "de_state_file")]
    state_file: Option<String>,
    #[serde(default, deserialize_with = "de_masquerade")]
    masquerade: Option<RawMasquerade>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"interface": ...}"#)]
struct RawMasquerade {
    #[serde(deserialize_with = "de_masq_interface")]
    interface: String,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = r#"an object {"interface": ..., "ipv4-addr": ..., "ipv6-addr": ...}"#
)]
struct RawGeneralPath {
    #[serde(deserialize_with = "de_gp_interface")]
    interface: String,
    #[serde(default, deserialize_with = "de_gp_ipv4_addr")]
    ipv4_addr: Option<String>,
    #[serde(default, deserialize_with = "de_gp_ipv6_addr")]
    ipv6_addr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"name": ..., "attach": ...}"#)]
struct RawInterface {
    #[serde(deserialize_with = "de_name")]
    name: String,
    #[serde(deserialize_with = "de_attach")]
    attach: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = r#"an object {"ipv4": ..., "ipv6": ...}"#)]
struct RawEam {
    #[serde(deserialize_with = "de_ipv4")]
    ipv4: String,
    #[serde(deserialize_with = "de_ipv6")]
    ipv6: String,
}

// ---------------------------------------------------------------------------
// Validated configuration

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
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Siit => "siit",
            Mode::Clat => "clat",
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
    use crate::explain::Lookup;
    if let Some((a4, a6)) = cfg.general_path.as_ref().and_then(|gp| gp.local) {
        match cfg.eam4(a4) {
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
    if !POOL6_LENGTHS.contains(&p.len) {
        bail!("pool6: {s:?}: length {} is not one of 32, 40, 48, 56, 64, 96 (RFC 6052)", p.len);
    }
    // RFC 6052 §2.2: bits 64..71 (the u-octet) must be zero; for the shorter lengths they
    // are host bits and already zero, for /96 they are part of the prefix.
    if p.addr.octets()[8] != 0 {
        bail!("pool6: {s:?}: bits 64 to 71 (the u-octet) must be zero (RFC 6052 §2.2)");
    }
    Ok(p)
}

/// Puts the key in front of an error, in the same message (not as anyhow context) so
/// that `{}` shows all of it.
fn at(key: impl fmt::Display) -> impl FnOnce(anyhow::Error) -> anyhow::Error {
    move |e| anyhow!("{key}: {e:#}")
}

fn parse_addr<A: Family>(key: &str, s: &str) -> Result<A> {
    s.parse::<A>().map_err(|_| {
        let hint = if s.contains('/') {
            " (give the address alone, without a prefix length)".to_string()
        } else if A::is_other_family(s) {
            format!(" (that is an {} address)", A::OTHER)
        } else {
            String::new()
        };
        anyhow!("{key}: {s:?}: not an {} address{hint}", A::NAME)
    })
}

impl Config {
    pub fn from_json(text: &str) -> Result<Config> {
        let raw: RawConfig = serde_json::from_str(text)?;
        Self::validate(raw)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("config file {}", path.display()))
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
            Some(other) => bail!("mode: {other:?}: must be \"siit\" or \"clat\""),
        };
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
                         (0.0.0.0/8, 127/8, 169.254/16, 224/4, 255.255.255.255)"
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
        let mut general_path =
            raw.general_path.as_ref().map(|gp| check_general_path(gp, &interfaces)).transpose()?;
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
            let name = if instance == DEFAULT_INSTANCE {
                "nat64gp".to_string()
            } else {
                format!("n64gp-{}", instance.chars().take(8).collect::<String>())
            };
            general_path = Some(check_general_path(
                &RawGeneralPath { interface: name, ipv4_addr: None, ipv6_addr: None },
                &interfaces,
            )?);
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
            lowest_ipv6_mtu: mtu as u32,
            rfc6791v4_prefix,
            rfc6791v6_prefix,
            general_path,
            mode,
            pref64_auto,
            pref64_resolver,
            dynamic_pool,
            masquerade,
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
            g.pool6 = p.addr.octets();
            g.pool6_len = p.len;
        }
        if self.mode == Mode::Clat {
            g.flags |= Globals::FLAG_CLAT;
        }
        for (on, flag) in [
            (self.wkp_allow_non_global, Globals::FLAG_WKP_ALLOW_NON_GLOBAL),
            (self.amend_udp_checksum_zero, Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO),
            (self.zeroize_traffic_class, Globals::FLAG_ZEROIZE_TRAFFIC_CLASS),
        ] {
            if on {
                g.flags |= flag;
            }
        }
        g.lowest_ipv6_mtu = self.lowest_ipv6_mtu;
        if let Some(p) = self.rfc6791v4_prefix {
            g.rfc6791v4 = p.addr.octets();
            g.rfc6791v4_len = p.len;
        }
        if let Some(p) = self.rfc6791v6_prefix {
            g.rfc6791v6 = p.addr.octets();
            g.rfc6791v6_len = p.len;
        }
        if let Some(d) = &self.dynamic_pool {
            g.dyn_pool = d.prefix.addr.octets();
            g.dyn_pool_len = d.prefix.len;
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
    if prefix.len < MIN_POOL_LEN {
        bail!(
            "dynamic-pool: {p:?}: at most {} addresses (a /{MIN_POOL_LEN}); this one has {}",
            nat64_common::maps::POOL_MAX,
            1u64 << (32 - prefix.len)
        );
    }
    let first = prefix.addr.octets();
    let last = (u32::from(prefix.addr) | !crate::config::mask4(prefix.len)).to_be_bytes();
    if ranges::is_reserved4(first) || ranges::is_reserved4(last) {
        bail!(
            "dynamic-pool: {p:?}: is in a range that is never translated \
             (0.0.0.0/8, 127/8, 169.254/16, 224/4, 255.255.255.255)"
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

/// The netmask of an IPv4 prefix length.
pub fn mask4(len: u8) -> u32 {
    net_mask(len, 32) as u32
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

/// A list of IPv4 prefixes under config key `key`; errors name `key[index]`.
fn prefixes4<S: AsRef<str>>(key: &str, list: &[S]) -> Result<Vec<Prefix4>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| s.as_ref().parse::<Prefix4>().map_err(at(format!("{key}[{i}]"))))
        .collect()
}

/// The value of `nat64-ctl set ipv4-translatable`: prefixes separated by commas, or
/// `none`.
pub fn parse_ipv4_translatable(value: &str) -> Result<Vec<Prefix4>> {
    if value.trim() == "none" {
        return Ok(Vec::new());
    }
    prefixes4("ipv4-translatable", &value.split(',').map(str::trim).collect::<Vec<_>>())
}

fn check_lowest_ipv6_mtu(mtu: u64) -> Result<()> {
    // RFC 8200 §5 minimum link MTU; above 65535 an IPv6 packet needs a jumbogram.
    if !(1280..=65535).contains(&mtu) {
        bail!("lowest-ipv6-mtu: {mtu}: must be between 1280 (the IPv6 minimum, RFC 8200 §5) and 65535");
    }
    Ok(())
}

fn parse_rfc6791v4(s: &str) -> Result<Prefix4> {
    let p: Prefix4 = s.parse().map_err(at("rfc6791v4-prefix".to_string()))?;
    // The pool sources ICMPv4 errors; reserved space would be dropped by every router.
    if ranges::is_reserved4(p.addr.octets()) {
        bail!(
            "rfc6791v4-prefix: {s:?}: is in a range that is never translated (0/8, 127/8, 169.254/16, 224/4)"
        );
    }
    Ok(p)
}

fn parse_rfc6791v6(s: &str) -> Result<Prefix6> {
    let p: Prefix6 = s.parse().map_err(at("rfc6791v6-prefix".to_string()))?;
    if p.addr.octets()[0] == 0xff {
        bail!("rfc6791v6-prefix: {s:?}: is multicast; ICMPv6 errors need a unicast source");
    }
    Ok(p)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => bail!("{key}: {v:?}: expected true or false"),
    }
}

/// Settings `nat64-ctl set` changes on a running instance, by their config-file names.
pub const LIVE_SETTINGS: [&str; 7] = [
    "lowest-ipv6-mtu",
    "amend-udp-checksum-zero",
    "zeroize-traffic-class",
    "wkp-allow-non-global",
    "rfc6791v4-prefix",
    "rfc6791v6-prefix",
    "dynamic-pool-lease",
];

/// Applies one `nat64-ctl set KEY VALUE` to a copy of the running globals, with the
/// same checks as the configuration file (`none` clears a prefix). Nothing is
/// written when this fails.
pub fn apply_setting(g: &mut Globals, key: &str, value: &str) -> Result<()> {
    let flag = |g: &mut Globals, f: u32, on: bool| {
        if on {
            g.flags |= f;
        } else {
            g.flags &= !f;
        }
    };
    match key {
        "lowest-ipv6-mtu" => {
            let mtu: u64 = value.parse().map_err(|_| anyhow::anyhow!("{key}: {value:?}: not a number"))?;
            check_lowest_ipv6_mtu(mtu)?;
            g.lowest_ipv6_mtu = mtu as u32;
        }
        "amend-udp-checksum-zero" => flag(g, Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO, parse_bool(key, value)?),
        "zeroize-traffic-class" => flag(g, Globals::FLAG_ZEROIZE_TRAFFIC_CLASS, parse_bool(key, value)?),
        "wkp-allow-non-global" => flag(g, Globals::FLAG_WKP_ALLOW_NON_GLOBAL, parse_bool(key, value)?),
        "rfc6791v4-prefix" if value == "none" => {
            g.rfc6791v4 = [0; 4];
            g.rfc6791v4_len = 0;
        }
        "rfc6791v4-prefix" => {
            let p = parse_rfc6791v4(value)?;
            g.rfc6791v4 = p.addr.octets();
            g.rfc6791v4_len = p.len;
        }
        "rfc6791v6-prefix" if value == "none" => {
            g.rfc6791v6 = [0; 16];
            g.rfc6791v6_len = 0;
        }
        "rfc6791v6-prefix" => {
            let p = parse_rfc6791v6(value)?;
            g.rfc6791v6 = p.addr.octets();
            g.rfc6791v6_len = p.len;
        }
        "dynamic-pool-lease" => {
            if !g.flag(Globals::FLAG_DYNAMIC_POOL) {
                bail!("dynamic-pool-lease: the instance has no dynamic pool");
            }
            let secs: u64 =
                value.parse().ok().filter(|s| (1..=365 * 86400).contains(s)).ok_or_else(|| {
                    anyhow!("dynamic-pool-lease: {value:?}: must be 1 to 31536000 seconds (a year)")
                })?;
            g.dyn_pool_lease = secs as u32;
        }
        _ => bail!(
            "{key:?} cannot be changed on a running instance; settable: {}, ipv4-translatable (denylist4 has \
             its own command)",
            LIVE_SETTINGS.join(", ")
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_and_pref64_are_checked() {
        let eam = r#""eamt": [{"ipv4": "100.64.0.0/24", "ipv6": "2001:db8:c1a7::/120"}]"#;
        let clat = |extra: &str| without_pool6(&format!(r#"{eam}, "mode": "clat", {extra}"#));
        let c = clat(r#""pref64": "64:ff9b:1::/96""#).unwrap();
        assert_eq!((c.mode, c.pool6.map(|p| p.to_string())), (Mode::Clat, Some("64:ff9b:1::/96".into())));
        assert!(c.globals().flag(Globals::FLAG_CLAT));
        let a = clat(r#""pref64": "auto", "pref64-resolver": "2001:db8::53""#).unwrap();
        assert!(a.pref64_auto && a.pool6.is_none());
        assert_eq!(a.pref64_resolver, Some("2001:db8::53".parse().unwrap()));
        let siit = without_pool6(r#""pool6": "64:ff9b::/96""#).unwrap();
        assert_eq!(siit.mode, Mode::Siit);
        assert!(!siit.globals().flag(Globals::FLAG_CLAT));
        assert_eq!(with(r#""mode": "siit""#).unwrap().mode, Mode::Siit);
        for (cfg, msg) in [
            (with(r#""mode": "nat64""#), r#"mode: "nat64": must be "siit" or "clat""#),
            (with(r#""mode": 1"#), "mode: invalid type"),
            (with(r#""pref64": "64:ff9b::/96""#), "pool6, pref64: two names for the same prefix"),
            (
                without_pool6(r#""pref64": "64:ff9b::/95""#),
                "pref64: \"64:ff9b::/95\": length 95 is not one of",
            ),
            (
                without_pool6(r#""mode": "clat", "pref64": "auto""#),
                "eamt: mode \"clat\" maps its local IPv4 clients",
            ),
            (clat(r#""eamt2": 1"#), "unknown field `eamt2`"),
            (
                without_pool6(&format!(r#"{eam}, "mode": "clat""#)),
                "pref64: mode \"clat\" needs the PLAT prefix",
            ),
            (with(r#""pref64-resolver": "192.0.2.53""#), "pref64-resolver: only used with"),
            (
                clat(r#""pref64": "auto", "pref64-resolver": "dns""#),
                "pref64-resolver: \"dns\": not an IPv4 or IPv6 address",
            ),
        ] {
            let err = cfg.unwrap_err().to_string();
            assert!(err.contains(msg), "{msg}: {err}");
        }
    }

    #[test]
    fn dynamic_pool_is_checked() {
        let ok = with(r#""dynamic-pool": "10.64.0.0/24""#).unwrap();
        let d = ok.dynamic_pool.clone().unwrap();
        assert_eq!((d.prefix, d.lease), (p4("10.64.0.0/24"), DEFAULT_POOL_LEASE));
        assert_eq!(d.state_file, Path::new("/var/lib/nat64/default.pool.json"));
        assert_eq!(ok.masquerade, None);
        let g = ok.globals();
        assert!(
            g.flag(Globals::FLAG_DYNAMIC_POOL)
                && g.in_dyn_pool([10, 64, 0, 9])
                && !g.in_dyn_pool([10, 64, 1, 0])
        );
        assert_eq!((g.dyn_pool_len, g.dyn_pool_lease), (24, 7200));

        let ok = with(
            r#""dynamic-pool": "10.64.0.0/16", "dynamic-pool-lease": 60, "state-file": "/tmp/p.json",
               "masquerade": {"interface": "wan0"}"#,
        )
        .unwrap();
        assert_eq!(ok.dynamic_pool.as_ref().map(|d| d.lease), Some(60));
        assert_eq!(ok.masquerade.as_deref(), Some("wan0"));
        // The kernel hands un-masqueraded replies to the general path: one is made.
        assert_eq!(ok.general_path.map(|g| g.interface), Some("nat64gp".to_string()));

        for (extra, msg) in [
            (r#""dynamic-pool": "10.64.0.0/15""#, "dynamic-pool: \"10.64.0.0/15\": at most 65536 addresses"),
            (r#""dynamic-pool": "10.64.0.1/24""#, "dynamic-pool: \"10.64.0.1/24\": host bits are set"),
            (r#""dynamic-pool": "2001:db8::/120""#, "that is an IPv6 address"),
            (r#""dynamic-pool": "127.0.0.0/24""#, "is in a range that is never translated"),
            (r#""dynamic-pool": 7"#, "dynamic-pool: invalid type: integer"),
            (
                r#""dynamic-pool": "10.64.0.0/24", "eamt": [{"ipv4": "10.64.0.5", "ipv6": "2001:db8::5"}]"#,
                "dynamic-pool: 10.64.0.0/24: overlaps eamt[0] (10.64.0.5/32 <-> 2001:db8::5/128)",
            ),
            (
                r#""dynamic-pool": "10.64.0.0/24", "dynamic-pool-lease": 0"#,
                "dynamic-pool-lease: 0: must be 1 to",
            ),
            (
                r#""dynamic-pool": "10.64.0.0/24", "dynamic-pool-lease": "2h""#,
                "dynamic-pool-lease: invalid type",
            ),
            (r#""dynamic-pool": "10.64.0.0/24", "state-file": """#, "state-file: \"\": empty path"),
            (r#""dynamic-pool-lease": 60"#, "dynamic-pool-lease: belongs to the dynamic pool"),
            (r#""masquerade": {"interface": "eth1"}"#, "masquerade: hides the dynamic pool"),
            (r#""dynamic-pool": "10.64.0.0/24", "masquerade": {"interface": "a/b"}"#, "masquerade.interface"),
            (r#""dynamic-pool": "10.64.0.0/24", "masquerade": {"iface": "x"}"#, "unknown field `iface`"),
            (
                r#""dynamic-pool": "10.64.0.0/24", "mode": "clat", "eamt": [{"ipv4": "192.0.0.1", "ipv6": "2001:db8::1"}]"#,
                "a CLAT maps its clients",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.contains(msg), "{extra}: {err}");
        }
        let err = without_pool6(
            r#""dynamic-pool": "10.64.0.0/24", "eamt": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("dynamic-pool: IPv6 hosts reach IPv4 through pool6"), "{err}");
    }

    #[test]
    fn pool_lease_is_a_live_setting() {
        let mut g = with(r#""dynamic-pool": "10.64.0.0/24""#).unwrap().globals();
        apply_setting(&mut g, "dynamic-pool-lease", "30").unwrap();
        assert_eq!(g.dyn_pool_lease, 30);
        let before = g;
        assert!(
            apply_setting(&mut g, "dynamic-pool-lease", "-1")
                .unwrap_err()
                .to_string()
                .contains("must be 1 to")
        );
        assert_eq!(g, before, "a refused setting changes nothing");
        let mut g = without_pool6(r#""pool6": "64:ff9b::/96""#).unwrap().globals();
        assert!(
            apply_setting(&mut g, "dynamic-pool-lease", "30")
                .unwrap_err()
                .to_string()
                .contains("no dynamic pool")
        );
    }

    #[test]
    fn general_path_is_checked() {
        let ok = with(r#""general-path": {"interface": "nat64"}"#).unwrap();
        assert_eq!(ok.general_path, Some(GeneralPathConfig { interface: "nat64".into(), local: None }));
        let eam = r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:46::/120"}]"#;
        let ok = with(&format!(
            r#"{eam}, "general-path": {{"interface": "nat64", "ipv4-addr": "192.0.2.1", "ipv6-addr": "2001:db8:46::1"}}"#
        ))
        .unwrap();
        let local = ok.general_path.and_then(|g| g.local);
        assert_eq!(local, Some(("192.0.2.1".parse().unwrap(), "2001:db8:46::1".parse().unwrap())));
        for (v, msg) in [
            (r#""nat64""#, "general-path: invalid type: string"),
            (r#"{"interface": ""}"#, "general-path.interface: \"\": must be 1 to 14"),
            (r#"{"interface": "a-name-far-too-long"}"#, "must be 1 to 14"),
            (r#"{"interface": "bad/name"}"#, "must be 1 to 14"),
            (r#"{"interface": "eth0"}"#, "interfaces[0] names one of them"),
            (r#"{"ipv4-addr": "192.0.2.1"}"#, "general-path: missing field `interface`"),
            (r#"{"interface": "n", "mtu": 1}"#, "unknown field `mtu`"),
            (r#"{"interface": "n", "ipv4-addr": "192.0.2.1"}"#, "give both or neither"),
            (
                r#"{"interface": "n", "ipv4-addr": "192.0.2.x", "ipv6-addr": "2001:db8:46::1"}"#,
                "general-path.ipv4-addr: \"192.0.2.x\": not an IPv4",
            ),
            (
                r#"{"interface": "n", "ipv4-addr": "192.0.2.1", "ipv6-addr": "2001:db8:46::2"}"#,
                "maps general-path.ipv4-addr 192.0.2.1 to 2001:db8:46::1",
            ),
            (
                r#"{"interface": "n", "ipv4-addr": "192.0.3.1", "ipv6-addr": "2001:db8:46::1"}"#,
                "general-path.ipv4-addr: 192.0.3.1: no eamt entry covers it",
            ),
        ] {
            let err = with(&format!(r#"{eam}, "general-path": {v}"#)).unwrap_err().to_string();
            assert!(err.contains(msg), "{v}: {err}");
        }
    }

    #[test]
    fn live_settings_apply_and_refuse() {
        let mut g = Globals::zeroed();
        apply_setting(&mut g, "lowest-ipv6-mtu", "1400").unwrap();
        assert_eq!(g.lowest_ipv6_mtu, 1400);
        apply_setting(&mut g, "amend-udp-checksum-zero", "true").unwrap();
        apply_setting(&mut g, "zeroize-traffic-class", "on").unwrap();
        apply_setting(&mut g, "wkp-allow-non-global", "yes").unwrap();
        assert!(g.flag(Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO));
        assert!(g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS));
        assert!(g.flag(Globals::FLAG_WKP_ALLOW_NON_GLOBAL));
        apply_setting(&mut g, "zeroize-traffic-class", "false").unwrap();
        assert!(!g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS));
        apply_setting(&mut g, "rfc6791v4-prefix", "198.51.100.0/24").unwrap();
        assert_eq!((g.rfc6791v4, g.rfc6791v4_len), ([198, 51, 100, 0], 24));
        apply_setting(&mut g, "rfc6791v4-prefix", "none").unwrap();
        assert_eq!(g.rfc6791v4_len, 0);
        apply_setting(&mut g, "rfc6791v6-prefix", "2001:db8:f::/64").unwrap();
        assert_eq!(g.rfc6791v6_len, 64);

        let before = g;
        for (k, v, msg) in [
            ("lowest-ipv6-mtu", "1000", "must be between 1280"),
            ("lowest-ipv6-mtu", "lots", "not a number"),
            ("amend-udp-checksum-zero", "maybe", "expected true or false"),
            ("rfc6791v4-prefix", "127.0.0.0/8", "never translated"),
            ("rfc6791v4-prefix", "198.51.100.1/24", "host bits"),
            ("rfc6791v6-prefix", "ff02::/16", "multicast"),
            ("pool6", "64:ff9b::/96", "cannot be changed on a running instance"),
        ] {
            let err = apply_setting(&mut g, k, v).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains(msg), "{k} {v}: {err}");
            assert_eq!(g, before, "a refused setting changes nothing");
        }
    }

    fn p4(s: &str) -> Prefix4 {
        s.parse().unwrap()
    }

    fn p6(s: &str) -> Prefix6 {
        s.parse().unwrap()
    }

    fn eam(v4: &str, v6: &str) -> EamtEntry {
        EamtEntry::new(p4(v4), p6(v6)).unwrap()
    }

    /// The full message of an error, context included.
    fn err<T: fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[track_caller]
    fn assert_err_contains<T: fmt::Debug>(r: Result<T>, want: &str) {
        let msg = err(r);
        assert!(msg.contains(want), "error {msg:?} does not contain {want:?}");
    }

    const MINIMAL: &str = r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "pool6": "64:ff9b::/96"}"#;

    /// MINIMAL with `extra` (a JSON fragment of keys) added.
    fn with(extra: &str) -> Result<Config> {
        Config::from_json(&format!(
            r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "pool6": "64:ff9b::/96", {extra}}}"#
        ))
    }

    /// MINIMAL without pool6, with `extra` added.
    fn without_pool6(extra: &str) -> Result<Config> {
        Config::from_json(&format!(r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], {extra}}}"#))
    }

    // --- Prefix parsing ---

    #[test]
    fn prefix4_parses_address_and_prefix() {
        assert_eq!(p4("192.0.2.1"), Prefix4 { addr: Ipv4Addr::new(192, 0, 2, 1), len: 32 });
        assert_eq!(p4("192.0.2.0/24"), Prefix4 { addr: Ipv4Addr::new(192, 0, 2, 0), len: 24 });
        assert_eq!(p4("0.0.0.0/0"), Prefix4 { addr: Ipv4Addr::UNSPECIFIED, len: 0 });
        assert_eq!(p4("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(p4("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(format!("{:<15}|", p4("10.0.0.0/8")), "10.0.0.0/8     |");
    }

    #[test]
    fn prefix6_parses_address_and_prefix() {
        assert_eq!(p6("2001:db8::1"), Prefix6 { addr: "2001:db8::1".parse().unwrap(), len: 128 });
        assert_eq!(p6("64:ff9b::/96"), Prefix6 { addr: "64:ff9b::".parse().unwrap(), len: 96 });
        assert_eq!(p6("::/0").len, 0);
        assert_eq!(p6("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn prefix_not_an_address() {
        assert_err_contains("192.0.2.300".parse::<Prefix4>(), r#""192.0.2.300": not an IPv4 address"#);
        assert_err_contains(
            "192.0.2.300/24".parse::<Prefix4>(),
            r#""192.0.2.300/24": "192.0.2.300" is not an IPv4 address"#,
        );
        assert_err_contains("".parse::<Prefix4>(), r#""": not an IPv4 address"#);
        assert_err_contains("2001:db8::x".parse::<Prefix6>(), r#""2001:db8::x": not an IPv6 address"#);
    }

    #[test]
    fn prefix_of_the_other_family() {
        assert_err_contains("2001:db8::/32".parse::<Prefix4>(), "(that is an IPv6 address)");
        assert_err_contains("192.0.2.0/24".parse::<Prefix6>(), "(that is an IPv4 address)");
    }

    #[test]
    fn prefix_length_not_a_number() {
        assert_err_contains(
            "192.0.2.0/x".parse::<Prefix4>(),
            r#""192.0.2.0/x": prefix length "x" is not a number"#,
        );
        assert_err_contains("192.0.2.0/".parse::<Prefix4>(), r#"prefix length "" is not a number"#);
        assert_err_contains("2001:db8::/+32".parse::<Prefix6>(), r#"prefix length "+32" is not a number"#);
    }

    #[test]
    fn prefix_length_too_long() {
        assert_err_contains(
            "192.0.2.0/33".parse::<Prefix4>(),
            r#""192.0.2.0/33": prefix length 33 is longer than 32"#,
        );
        assert_err_contains("192.0.2.0/4000".parse::<Prefix4>(), "prefix length 4000 is longer than 32");
        assert_err_contains("2001:db8::/129".parse::<Prefix6>(), "prefix length 129 is longer than 128");
    }

    #[test]
    fn prefix_host_bits_set() {
        assert_err_contains(
            "192.0.2.1/24".parse::<Prefix4>(),
            r#""192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
        );
        assert_err_contains(
            "2001:db8::1/64".parse::<Prefix6>(),
            "host bits are set (did you mean 2001:db8::/64?)",
        );
        assert_err_contains("10.0.0.1/0".parse::<Prefix4>(), "did you mean 0.0.0.0/0?");
    }

    #[test]
    fn prefix_contains_and_overlaps() {
        let a = p4("192.0.2.0/24");
        assert!(a.contains(&p4("192.0.2.128/25")));
        assert!(a.contains(&p4("192.0.2.77")));
        assert!(a.contains(&a));
        assert!(!a.contains(&p4("192.0.3.0/24")));
        assert!(!p4("192.0.2.128/25").contains(&a));
        assert!(p4("0.0.0.0/0").contains(&p4("255.255.255.255")));
        assert!(a.overlaps(&p4("192.0.0.0/16")));
        assert!(p4("192.0.0.0/16").overlaps(&a));
        assert!(!a.overlaps(&p4("192.0.3.0/24")));

        let b = p6("2001:db8::/32");
        assert!(b.contains(&p6("2001:db8:1::/48")));
        assert!(!b.contains(&p6("2001:db9::/48")));
        assert!(!p6("2001:db8:1::/48").contains(&b));
        assert!(p6("::/0").contains(&p6("ffff::1")));
        assert!(b.overlaps(&p6("2001:db8::1")));
        assert!(!p6("2001:db8::/120").overlaps(&p6("2001:db8::100/120")));
    }

    // --- EamtEntry ---

    #[test]
    fn eamt_entry_new_and_to_entry() {
        let e = eam("192.0.2.0/24", "2001:db8::/120");
        let raw = e.to_entry();
        assert_eq!(raw.v4, [192, 0, 2, 0]);
        assert_eq!((raw.v4_len, raw.v6_len), (24, 120));
        assert_eq!(raw.v6, Ipv6Addr::from_str("2001:db8::").unwrap().octets());
        assert_eq!(e.to_string(), "192.0.2.0/24 <-> 2001:db8::/120");
        assert!(EamtEntry::new(p4("0.0.0.0/0"), p6("2001:db8::/96")).is_ok());
        assert!(EamtEntry::new(p4("198.51.100.7"), p6("2001:db8::abcd")).is_ok());
    }

    #[test]
    fn eamt_entry_suffix_lengths() {
        // RFC 7757 §3.2: a longer IPv6 suffix is fine (the IPv4 suffix follows the prefix).
        let e = EamtEntry::new(p4("198.51.100.0/24"), p6("2001:db8:1c6:3364::/72")).unwrap();
        assert_eq!(e.to_string(), "198.51.100.0/24 <-> 2001:db8:1c6:3364::/72");
        assert!(EamtEntry::new(p4("192.0.2.7"), p6("2001:db8::/64")).is_ok());
        assert_err_contains(
            EamtEntry::new(p4("192.0.2.0/24"), p6("2001:db8::/124")),
            "EAM 192.0.2.0/24 <-> 2001:db8::/124: the IPv4 suffix (8 bits) is longer than the IPv6 suffix \
             (4 bits); the IPv6 prefix must be /120 or shorter (RFC 7757 §3.2)",
        );
    }

    #[test]
    fn eamt_entry_bad_side() {
        let bad4 = Prefix4 { addr: Ipv4Addr::new(192, 0, 2, 1), len: 24 };
        assert_err_contains(EamtEntry::new(bad4, p6("2001:db8::/120")), "IPv4 side: host bits are set");
        let bad6 = Prefix6 { addr: "2001:db8::".parse().unwrap(), len: 130 };
        assert_err_contains(
            EamtEntry::new(p4("192.0.2.0/24"), bad6),
            "IPv6 side: prefix length 130 is longer than 128",
        );
    }

    #[test]
    fn eamt_insert_accepts_disjoint() {
        let t = [eam("192.0.2.0/24", "2001:db8::/120"), eam("198.51.100.0/24", "2001:db8::100/120")];
        assert!(check_eamt_insert(&t, &eam("203.0.113.0/25", "2001:db8:1::/121")).is_ok());
        assert!(check_eamt_insert(&[], &t[0]).is_ok());
    }

    #[test]
    fn eamt_insert_already_present() {
        let t = [eam("192.0.2.0/24", "2001:db8::/120")];
        assert_err_contains(
            check_eamt_insert(&t, &t[0]),
            "EAM 192.0.2.0/24 <-> 2001:db8::/120 is already present",
        );
    }

    #[test]
    fn eamt_insert_ipv4_overlap() {
        let t = [eam("198.51.100.0/24", "2001:db8::100/120"), eam("192.0.2.0/24", "2001:db8::/120")];
        assert_err_contains(
            check_eamt_insert(&t, &eam("192.0.2.128/25", "2001:db8:1::/121")),
            "its IPv4 prefix 192.0.2.128/25 overlaps existing entry 192.0.2.0/24 <-> 2001:db8::/120",
        );
    }

    #[test]
    fn eamt_insert_ipv6_overlap() {
        let t = [eam("192.0.2.0/24", "2001:db8::/120")];
        assert_err_contains(
            check_eamt_insert(&t, &eam("198.51.100.7", "2001:db8::7")),
            "its IPv6 prefix 2001:db8::7/128 overlaps existing entry 192.0.2.0/24 <-> 2001:db8::/120",
        );
    }

    // --- Config: valid files ---

    const FULL: &str = r#"{
        "instance": "lab-1",
        "interfaces": [
            {"name": "eth0", "attach": "xdp"},
            {"name": "veth_b", "attach": "xdp-generic"}
        ],
        "ipv4-addr": "198.51.100.1",
        "ipv6-addr": "2001:db8:ffff::1",
        "pool6": "2001:db8:64::/96",
        "eamt": [
            {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:aaaa::/120"},
            {"ipv4": "203.0.113.5", "ipv6": "2001:db8:bbbb::5"}
        ],
        "denylist4": ["198.51.100.0/28", "203.0.113.128/25"],
        "wkp-allow-non-global": true,
        "amend-udp-checksum-zero": true,
        "zeroize-traffic-class": true,
        "lowest-ipv6-mtu": 1500
    }"#;

    #[test]
    fn full_config_parses() {
        let c = Config::from_json(FULL).unwrap();
        assert_eq!(c.instance, "lab-1");
        assert_eq!(
            c.interfaces,
            vec![
                Interface { name: "eth0".into(), attach: AttachMode::Xdp },
                Interface { name: "veth_b".into(), attach: AttachMode::XdpGeneric },
            ]
        );
        assert_eq!(c.ipv4_addr, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(c.ipv6_addr, Some("2001:db8:ffff::1".parse().unwrap()));
        assert_eq!(c.pool6, Some(p6("2001:db8:64::/96")));
        assert_eq!(
            c.eamt,
            vec![eam("192.0.2.0/24", "2001:db8:aaaa::/120"), eam("203.0.113.5", "2001:db8:bbbb::5")]
        );
        assert_eq!(c.denylist4, vec![p4("198.51.100.0/28"), p4("203.0.113.128/25")]);
        assert!(c.wkp_allow_non_global && c.amend_udp_checksum_zero && c.zeroize_traffic_class);
        assert_eq!(c.lowest_ipv6_mtu, 1500);
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::from_json(MINIMAL).unwrap();
        assert_eq!(c.instance, "default");
        assert_eq!(c.ipv4_addr, None);
        assert_eq!(c.ipv6_addr, None);
        assert!(c.eamt.is_empty() && c.denylist4.is_empty());
        assert!(!c.wkp_allow_non_global && !c.amend_udp_checksum_zero && !c.zeroize_traffic_class);
        assert_eq!(c.lowest_ipv6_mtu, 1280);
    }

    #[test]
    fn eamt_alone_is_enough() {
        let c = without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#).unwrap();
        assert_eq!(c.pool6, None);
        assert_eq!(c.globals().pool6_len, 0);
    }

    #[test]
    fn every_pool6_length_is_accepted() {
        for p in ["2001:db8::/32", "2001:db8:100::/40", "2001:db8:122::/48", "2001:db8:122:300::/56"] {
            assert!(without_pool6(&format!(r#""pool6": "{p}""#)).is_ok(), "{p}");
        }
        for p in ["2001:db8:122:344::/64", "64:ff9b::/96", "64:ff9b:1::/96"] {
            assert!(without_pool6(&format!(r#""pool6": "{p}""#)).is_ok(), "{p}");
        }
    }

    #[test]
    fn globals_of_full_config() {
        let g = Config::from_json(FULL).unwrap().globals();
        let mut want = Globals::zeroed();
        want.pool6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        want.pool6_len = 96;
        want.ipv4_addr = [198, 51, 100, 1];
        want.ipv6_addr = [0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        want.lowest_ipv6_mtu = 1500;
        want.flags = Globals::FLAG_ENABLED
            | Globals::FLAG_HAS_IPV4_ADDR
            | Globals::FLAG_HAS_IPV6_ADDR
            | Globals::FLAG_WKP_ALLOW_NON_GLOBAL
            | Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO
            | Globals::FLAG_ZEROIZE_TRAFFIC_CLASS;
        assert_eq!(g, want);
    }

    #[test]
    fn globals_of_minimal_config() {
        let g = Config::from_json(MINIMAL).unwrap().globals();
        assert_eq!(g.flags, Globals::FLAG_ENABLED);
        assert_eq!(g.pool6, nat64_common::ranges::WKP);
        assert_eq!(g.pool6_len, 96);
        assert_eq!(g.ipv4_addr, [0; 4]);
        assert_eq!(g.ipv6_addr, [0; 16]);
        assert_eq!(g.lowest_ipv6_mtu, 1280);
        assert!(!g.has_ipv4_addr() && !g.has_ipv6_addr());
    }

    #[test]
    fn each_flag_maps_to_its_bit() {
        for (key, flag) in [
            ("wkp-allow-non-global", Globals::FLAG_WKP_ALLOW_NON_GLOBAL),
            ("amend-udp-checksum-zero", Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO),
            ("zeroize-traffic-class", Globals::FLAG_ZEROIZE_TRAFFIC_CLASS),
        ] {
            let g = with(&format!(r#""{key}": true"#)).unwrap().globals();
            assert_eq!(g.flags, Globals::FLAG_ENABLED | flag, "{key}");
        }
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = std::env::temp_dir().join(format!("nat64-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        let bad = dir.join("bad.json");
        std::fs::write(&good, FULL).unwrap();
        std::fs::write(&bad, r#"{"interfaces": []}"#).unwrap();
        assert_eq!(Config::load(&good).unwrap(), Config::from_json(FULL).unwrap());
        let msg = err(Config::load(&bad));
        assert!(msg.starts_with(&format!("config file {}: interfaces:", bad.display())), "{msg}");
        let missing = dir.join("missing.json");
        assert_err_contains(Config::load(&missing), &format!("reading config file {}", missing.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // --- Config: serde errors ---

    #[test]
    fn unknown_key_is_named_with_position() {
        assert_err_contains(with(r#""pool4": "x""#), "unknown field `pool4`");
        assert_err_contains(with(r#""pool4": "x""#), "at line 1 column");
        assert_err_contains(
            Config::from_json(r#"{"interfaces": [{"name": "eth0", "attach": "xdp", "mtu": 9000}]}"#),
            "interfaces[0]: unknown field `mtu`",
        );
        assert_err_contains(
            without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120", "x": 1}]"#),
            "eamt[0]: unknown field `x`",
        );
    }

    #[test]
    fn missing_key_is_named() {
        assert_err_contains(Config::from_json(r#"{"pool6": "64:ff9b::/96"}"#), "missing field `interfaces`");
        assert_err_contains(
            Config::from_json(r#"{"interfaces": [{"name": "eth0"}], "pool6": "64:ff9b::/96"}"#),
            "interfaces[0]: missing field `attach`",
        );
        assert_err_contains(
            without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24"}]"#),
            "eamt[0]: missing field `ipv6`",
        );
    }

    #[test]
    fn wrong_type_names_the_key_and_position() {
        let json = "{\n  \"interfaces\": [{\"name\": \"eth0\", \"attach\": \"xdp\"}],\n  \"pool6\": \"64:ff9b::/96\",\n  \
                    \"lowest-ipv6-mtu\": \"1500\"\n}";
        let msg = err(Config::from_json(json));
        assert!(msg.starts_with("lowest-ipv6-mtu: invalid type: string \"1500\""), "{msg}");
        assert!(msg.ends_with("at line 4 column 27"), "{msg}");
        // Once, not once per wrapping level.
        assert_eq!(msg.matches(" at line ").count(), 1, "{msg}");

        for (extra, want) in [
            (r#""instance": 5"#, "instance: invalid type: integer `5`"),
            (r#""ipv4-addr": [1]"#, "ipv4-addr: invalid type: sequence"),
            (r#""ipv6-addr": 1"#, "ipv6-addr: invalid type"),
            (r#""wkp-allow-non-global": "yes""#, "wkp-allow-non-global: invalid type: string \"yes\""),
            (r#""amend-udp-checksum-zero": 1"#, "amend-udp-checksum-zero: invalid type"),
            (r#""zeroize-traffic-class": null"#, "zeroize-traffic-class: invalid type: null"),
            (r#""lowest-ipv6-mtu": -1"#, "lowest-ipv6-mtu: invalid value: integer `-1`"),
            (
                r#""denylist4": "192.0.2.0/24""#,
                "denylist4: invalid type: string \"192.0.2.0/24\", expected a list",
            ),
            (r#""denylist4": ["192.0.2.0/24", 7]"#, "denylist4[1]: invalid type: integer `7`"),
            (r#""eamt": {}"#, "eamt: invalid type: map, expected a list"),
            (r#""eamt": [{"ipv4": 1, "ipv6": "2001:db8::/120"}]"#, "eamt[0].ipv4: invalid type: integer `1`"),
            (
                r#""eamt": ["192.0.2.0/24"]"#,
                "eamt[0]: invalid type: string \"192.0.2.0/24\", expected an object",
            ),
        ] {
            let msg = err(with(extra));
            assert!(msg.starts_with(want), "{extra}: {msg:?} does not start with {want:?}");
            assert!(msg.contains(" at line 1 column "), "{extra}: {msg}");
        }
        for (json, want) in [
            (
                r#"{"interfaces": "eth0", "pool6": "64:ff9b::/96"}"#,
                "interfaces: invalid type: string \"eth0\"",
            ),
            (
                r#"{"interfaces": [{"name": 0, "attach": "xdp"}]}"#,
                "interfaces[0].name: invalid type: integer `0`",
            ),
            (
                r#"{"interfaces": [{"name": "a", "attach": "xdp"}, {"name": "b", "attach": true}]}"#,
                "interfaces[1].attach: invalid type: boolean `true`",
            ),
            (r#"{"interfaces": [], "pool6": 96}"#, "pool6: invalid type: integer `96`"),
            ("5", "invalid type: integer `5`, expected a JSON object of nat64 settings"),
        ] {
            let msg = err(Config::from_json(json));
            assert!(msg.starts_with(want), "{json}: {msg:?} does not start with {want:?}");
        }
    }

    #[test]
    fn syntax_error_has_position() {
        assert_err_contains(Config::from_json("{\"interfaces\": [,]}"), "at line 1 column 17");
    }

    // --- Config: validation errors, one per message ---

    #[test]
    fn bad_instance() {
        for name in ["", "Lab", "a b", "x/y", "a.b", "abcdefghijklmnopqrstuvwxyz0123456"] {
            assert_err_contains(
                with(&format!(r#""instance": "{name}""#)),
                &format!("instance: {name:?}: must be 1 to 32 characters from a-z, 0-9, '_' and '-'"),
            );
        }
        assert!(with(r#""instance": "abcdefghijklmnopqrstuvwxyz012345""#).is_ok());
    }

    #[test]
    fn no_interfaces() {
        assert_err_contains(
            Config::from_json(r#"{"interfaces": [], "pool6": "64:ff9b::/96"}"#),
            "interfaces: []: the list is empty; name at least one interface to attach to",
        );
    }

    fn iface(name: &str, attach: &str) -> Result<Config> {
        Config::from_json(&format!(
            r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}, {{"name": "{name}", "attach": "{attach}"}}],
                "pool6": "64:ff9b::/96"}}"#
        ))
    }

    #[test]
    fn interface_name_length() {
        assert_err_contains(
            iface("", "xdp"),
            r#"interfaces[1].name: "": must be 1 to 15 bytes long (Linux IFNAMSIZ)"#,
        );
        assert_err_contains(
            iface("abcdefghijklmnop", "xdp"),
            r#""abcdefghijklmnop": must be 1 to 15 bytes long"#,
        );
        assert!(iface("abcdefghijklmno", "xdp").is_ok());
    }

    #[test]
    fn interface_name_characters() {
        for name in ["a/b", "eth0:1", "eth 0", "eth\\t0"] {
            assert_err_contains(iface(name, "xdp"), "must not contain '/', ':' or whitespace");
        }
    }

    #[test]
    fn interface_name_dots() {
        assert_err_contains(iface("..", "xdp"), r#"interfaces[1].name: "..": is not a valid interface name"#);
        assert_err_contains(iface(".", "xdp"), "is not a valid interface name");
    }

    #[test]
    fn interface_listed_twice() {
        assert_err_contains(
            iface("eth0", "xdp-generic"),
            r#"interfaces[1].name: "eth0": listed twice (also interfaces[0])"#,
        );
    }

    #[test]
    fn attach_mode_unsupported() {
        assert_err_contains(
            Config::from_json(
                r#"{"interfaces": [{"name": "eth0", "attach": "tcx"}], "pool6": "64:ff9b::/96"}"#,
            ),
            r#"interfaces[0].attach: "tcx" is not supported (use "xdp", "xdp-generic" or "tc")"#,
        );
        assert_err_contains(iface("eth1", "XDP"), r#"interfaces[1].attach: "XDP" is not supported"#);
        let tc = Config::from_json(
            r#"{"interfaces": [{"name": "wg0", "attach": "tc"}], "pool6": "64:ff9b::/96"}"#,
        );
        assert_eq!(tc.unwrap().interfaces[0].attach, AttachMode::Tc);
    }

    #[test]
    fn pool6_unparsable() {
        assert_err_contains(
            without_pool6(r#""pool6": "64:ff9b::/96x""#),
            r#"pool6: "64:ff9b::/96x": prefix length"#,
        );
        assert_err_contains(
            without_pool6(r#""pool6": "64:ff9b::1/96""#),
            r#"pool6: "64:ff9b::1/96": host bits are set (did you mean 64:ff9b::/96?)"#,
        );
    }

    #[test]
    fn pool6_bad_length() {
        assert_err_contains(
            without_pool6(r#""pool6": "64:ff9b::/80""#),
            r#"pool6: "64:ff9b::/80": length 80 is not one of 32, 40, 48, 56, 64, 96 (RFC 6052)"#,
        );
        assert_err_contains(without_pool6(r#""pool6": "64:ff9b::""#), "length 128 is not one of");
    }

    #[test]
    fn ipv4_translatable_is_checked() {
        let c = with(r#""ipv4-translatable": ["0.0.0.0/0", "192.0.2.0/24"]"#).unwrap();
        assert_eq!(c.ipv4_translatable, vec![p4("0.0.0.0/0"), p4("192.0.2.0/24")]);
        assert!(c.globals().flag(Globals::FLAG_IPV4_TRANSLATABLE));
        assert!(
            !Config::from_json(MINIMAL).unwrap().globals().flag(Globals::FLAG_IPV4_TRANSLATABLE),
            "off by default"
        );
        for (cfg, msg) in [
            (
                with(r#""ipv4-translatable": ["192.0.2.1/24"]"#),
                r#"ipv4-translatable[0]: "192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
            ),
            (
                with(r#""ipv4-translatable": ["10.0.0.0/8", "10.0.0.0/8"]"#),
                "ipv4-translatable[1]: 10.0.0.0/8 is ipv4-translatable[0] again",
            ),
            (
                with(r#""ipv4-translatable": "0.0.0.0/0""#),
                r#"ipv4-translatable: invalid type: string "0.0.0.0/0", expected a list"#,
            ),
            (
                without_pool6(
                    r#""eamt": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}], "ipv4-translatable": ["0.0.0.0/0"]"#,
                ),
                "ipv4-translatable: its addresses are reached through pool6, which is not set",
            ),
            (
                without_pool6(
                    r#""mode": "clat", "pref64": "64:ff9b::/96", "eamt": [{"ipv4": "192.0.0.1", "ipv6": "2001:db8::1"}],
                    "ipv4-translatable": ["0.0.0.0/0"]"#,
                ),
                r#"ipv4-translatable: not in mode "clat""#,
            ),
        ] {
            assert_err_contains(cfg, msg);
        }
        assert_eq!(parse_ipv4_translatable("none").unwrap(), vec![]);
        assert_eq!(
            parse_ipv4_translatable("10.0.0.0/8, 1.2.3.4").unwrap(),
            vec![p4("10.0.0.0/8"), p4("1.2.3.4/32")]
        );
        assert_err_contains(parse_ipv4_translatable("10.0.0.0/8,x"), r#"ipv4-translatable[1]: "x""#);
    }

    #[test]
    fn pool6_u_octet_set() {
        assert_err_contains(
            without_pool6(r#""pool6": "2001:db8:0:0:ff00::/96""#),
            r#"pool6: "2001:db8:0:0:ff00::/96": bits 64 to 71 (the u-octet) must be zero (RFC 6052 §2.2)"#,
        );
    }

    #[test]
    fn eamt_entry_unparsable() {
        assert_err_contains(
            without_pool6(r#""eamt": [{"ipv4": "192.0.2.300/24", "ipv6": "2001:db8::/120"}]"#),
            r#"eamt[0].ipv4: "192.0.2.300/24": "192.0.2.300" is not an IPv4 address"#,
        );
        assert_err_contains(
            without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::1/120"}]"#),
            r#"eamt[0].ipv6: "2001:db8::1/120": host bits are set (did you mean 2001:db8::/120?)"#,
        );
    }

    #[test]
    fn eamt_entry_suffix_mismatch_in_config() {
        assert_err_contains(
            with(
                r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}, {"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:1::/126"}]"#,
            ),
            "eamt[1]: EAM 198.51.100.0/24 <-> 2001:db8:1::/126: the IPv4 suffix (8 bits) is longer than the \
             IPv6 suffix (2 bits)",
        );
    }

    #[test]
    fn eamt_overlap_in_config_names_the_index() {
        let base = r#"{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:9::/120"}, {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}"#;
        assert_err_contains(
            with(&format!(r#""eamt": [{base}, {{"ipv4": "192.0.2.8/29", "ipv6": "2001:db8:1::/125"}}]"#)),
            "eamt[2]: EAM 192.0.2.8/29 <-> 2001:db8:1::/125: its IPv4 prefix 192.0.2.8/29 overlaps eamt[1] \
             (192.0.2.0/24 <-> 2001:db8::/120)",
        );
        assert_err_contains(
            with(&format!(r#""eamt": [{base}, {{"ipv4": "203.0.113.0/24", "ipv6": "2001:db8:9::/120"}}]"#)),
            "eamt[2]: EAM 203.0.113.0/24 <-> 2001:db8:9::/120: its IPv6 prefix 2001:db8:9::/120 overlaps eamt[0]",
        );
        assert_err_contains(
            with(&format!(r#""eamt": [{base}, {{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}}]"#)),
            "eamt[2]: EAM 192.0.2.0/24 <-> 2001:db8::/120 is already present (eamt[1] (",
        );
    }

    #[test]
    fn nothing_to_translate() {
        assert_err_contains(
            Config::from_json(r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "eamt": []}"#),
            "pool6, eamt: neither is set, so nothing would be translated",
        );
    }

    #[test]
    fn denylist4_unparsable() {
        assert_err_contains(
            with(r#""denylist4": ["10.0.0.0/8", "192.0.2.1/24"]"#),
            r#"denylist4[1]: "192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
        );
    }

    #[test]
    fn ipv4_addr_unparsable() {
        assert_err_contains(
            with(r#""ipv4-addr": "192.0.2.300""#),
            r#"ipv4-addr: "192.0.2.300": not an IPv4 address"#,
        );
        assert_err_contains(
            with(r#""ipv4-addr": "192.0.2.1/32""#),
            "not an IPv4 address (give the address alone, without a prefix length)",
        );
        assert_err_contains(
            with(r#""ipv4-addr": "2001:db8::1""#),
            "not an IPv4 address (that is an IPv6 address)",
        );
    }

    #[test]
    fn ipv4_addr_reserved() {
        for a in ["0.1.2.3", "127.0.0.1", "169.254.0.1", "224.0.0.1", "255.255.255.255"] {
            assert_err_contains(
                with(&format!(r#""ipv4-addr": "{a}""#)),
                &format!("ipv4-addr: {a:?}: is in a range that is never translated"),
            );
        }
    }

    #[test]
    fn ipv4_addr_inside_eam() {
        assert_err_contains(
            with(r#""ipv4-addr": "192.0.2.1", "eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#),
            r#"ipv4-addr: "192.0.2.1": is inside eamt[0] (192.0.2.0/24 <-> 2001:db8::/120); the translator's own address cannot be mapped"#,
        );
    }

    #[test]
    fn ipv6_addr_unparsable() {
        assert_err_contains(
            with(r#""ipv6-addr": "2001:db8::g""#),
            r#"ipv6-addr: "2001:db8::g": not an IPv6 address"#,
        );
        assert_err_contains(
            with(r#""ipv6-addr": "192.0.2.1""#),
            "not an IPv6 address (that is an IPv4 address)",
        );
    }

    #[test]
    fn ipv6_addr_inside_pool6_is_accepted() {
        let c = with(r#""ipv6-addr": "64:ff9b::c000:201""#).unwrap();
        assert_eq!(c.ipv6_addr, Some("64:ff9b::c000:201".parse().unwrap()));
    }

    #[test]
    fn ipv6_addr_inside_eam() {
        assert_err_contains(
            with(
                r#""ipv6-addr": "2001:db8::ff", "eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#,
            ),
            r#"ipv6-addr: "2001:db8::ff": is inside eamt[0] (192.0.2.0/24 <-> 2001:db8::/120)"#,
        );
    }

    #[test]
    fn lowest_ipv6_mtu_out_of_range() {
        for mtu in [0u64, 1279, 65536, 1 << 40] {
            assert_err_contains(
                with(&format!(r#""lowest-ipv6-mtu": {mtu}"#)),
                &format!(
                    "lowest-ipv6-mtu: {mtu}: must be between 1280 (the IPv6 minimum, RFC 8200 §5) and 65535"
                ),
            );
        }
        assert_eq!(with(r#""lowest-ipv6-mtu": 65535"#).unwrap().lowest_ipv6_mtu, 65535);
        assert_eq!(with(r#""lowest-ipv6-mtu": 1280"#).unwrap().lowest_ipv6_mtu, 1280);
    }
}
