//! `"mode": "nat64"`: stateful NAT64 (RFC 6146) settings and their checks.

use anyhow::{Result, bail};
use nat64_common::{
    maps::{NAT_POOL4_MAX, NAT_SYNS_MAX_ENTRIES},
    nat::Timeouts,
    ranges,
};

use super::{
    prefix::{Prefix4, Prefix6, at},
    raw::{RawBib, RawConfig, RawPool4},
};

/// One `pool4` entry: addresses and the ports each lends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool4 {
    pub prefix: Prefix4,
    pub first: u16,
    pub last: u16,
}

/// A static BIB entry (a port forward to an IPv6 server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StaticBib {
    pub proto: u8,
    pub v6: std::net::SocketAddrV6,
    pub v4: std::net::SocketAddrV4,
}

impl StaticBib {
    /// Parses `PROTO`, `[IPV6]:PORT` and `IPV4:PORT` (the names in errors are `key`'s).
    pub fn parse(key: &str, proto: &str, v6: &str, v4: &str) -> Result<Self> {
        let proto = match proto {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            other => bail!("{key}.protocol: {other:?}: tcp, udp or icmp"),
        };
        let v6: std::net::SocketAddrV6 =
            v6.parse().map_err(|_| anyhow::anyhow!("{key}.ipv6: {v6:?}: not [IPV6]:PORT"))?;
        let v4: std::net::SocketAddrV4 =
            v4.parse().map_err(|_| anyhow::anyhow!("{key}.ipv4: {v4:?}: not IPV4:PORT"))?;
        Ok(Self { proto, v6, v4 })
    }

    /// In the pool4 the configuration gives, or why not.
    pub fn check_in(&self, key: &str, pool4: &[Pool4]) -> Result<()> {
        if !pool4.iter().any(|p| p.prefix.contains_addr(*self.v4.ip())) {
            bail!("{key}.ipv4: {}: not a pool4 address", self.v4);
        }
        Ok(())
    }

    pub fn proto_name(&self) -> &'static str {
        match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => "icmp",
        }
    }
}

/// Port blocks: pool4's ports in blocks of `size`, `per_addr` of them on each
/// address (block `i` is on address `i / per_addr`), handed out as `assign` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBlocks {
    pub size: u32,
    pub per_addr: u32,
    pub assign: BlockAssign,
}

/// Who gets which port block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockAssign {
    /// RFC 7422 deterministic blocks: the `host_len` subnets of `prefix` get, in order,
    /// a block each. The configuration alone tells who held an IPv4 transport address
    /// (`nat64-ctl port-block`).
    Prefix { prefix: Prefix6, host_len: u8 },
    /// Dynamic port-block allocation: a subscriber takes a free block with its first
    /// mapping and another when those it holds are nearly used up, up to `per_host`;
    /// each taken and given back is logged.
    Dynamic { per_host: u8 },
}

/// One pool4 address and the ports it lends (see [`Nat64::slots`]).
pub type Slot4 = (std::net::Ipv4Addr, u16, u16);

/// Where a JSON-lines sink (`{"json": ...}`, `bib-log`) writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BibLog {
    Stdout,
    File(std::path::PathBuf),
}

/// Where a syslog sink sends its RFC 5424 messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A local datagram socket (`unix:/dev/log`).
    Unix(std::path::PathBuf),
    /// A syslog server over UDP (RFC 5426).
    Udp(std::net::SocketAddr),
}

/// One destination of the NAT event log (`nat-log`; `bib-log` is a JSON one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSink {
    /// JSON lines, one an event.
    Json(BibLog),
    /// IPFIX (RFC 7011) over UDP to a collector, RFC 8158's NAT records.
    Ipfix(std::net::SocketAddr),
    /// Syslog (RFC 5424), one structured message an event.
    Syslog(SyslogTarget),
}

impl std::fmt::Display for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSink::Json(BibLog::Stdout) => write!(f, "json to stdout"),
            LogSink::Json(BibLog::File(p)) => write!(f, "json to {}", p.display()),
            LogSink::Ipfix(a) => write!(f, "ipfix to {a}"),
            LogSink::Syslog(SyslogTarget::Unix(p)) => write!(f, "syslog to unix:{}", p.display()),
            LogSink::Syslog(SyslogTarget::Udp(a)) => write!(f, "syslog to udp:{a}"),
        }
    }
}

/// Which IPv4 packets reach a mapping without a session of their own (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtering {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// The stateful translator's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nat64 {
    pub pool4: Vec<Pool4>,
    /// Static BIB entries.
    pub bib: Vec<StaticBib>,
    /// RFC 4787 filtering of IPv4 packets to a mapping.
    pub filtering: Filtering,
    pub timeouts: Timeouts,
    pub port_blocks: Option<PortBlocks>,
    /// Where BIB events go (`nat-log`, and `bib-log` as a JSON sink), in order.
    pub nat_log: Vec<LogSink>,
    /// RFC 6888 REQ-4 and REQ-8: the ports one subscriber may hold, what makes a
    /// subscriber, how long a released port is held back.
    pub limits: Limits,
    /// `max-sessions`: the size of the session table (and of the BIB's).
    pub max_sessions: u32,
    /// Session synchronisation with other nodes.
    pub sync: Option<super::sync::Sync>,
    /// `"icmpv6-error-source": "inner-destination"`: a translated ICMPv4 error comes
    /// from the pool6 form of the inner packet's destination, not from the router.
    pub icmp6_source_inner: bool,
}

/// `icmpv6-error-source`, from the file or `nat64-ctl set`: whether errors come from
/// the inner packet's destination.
pub fn parse_icmp6_source(key: &str, v: &str) -> Result<bool> {
    match v {
        "router" => Ok(false),
        "inner-destination" => Ok(true),
        _ => bail!(
            "{key}: {v:?}: \"router\" (the default: the pool6 form of the IPv4 router that sent the \
             error) or \"inner-destination\" (the pool6 form of the destination of the packet in error)"
        ),
    }
}

/// `max-sessions`' default, least and most.
pub const MAX_SESSIONS: (u32, u32, u32) = (1 << 20, 1024, 1 << 24);

/// RFC 6888's limits for a carrier-grade NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `max-ports-per-host`: BIB entries (ports and ICMP identifiers, every protocol
    /// together) one subscriber may hold; 0: no limit.
    pub max_ports: u32,
    /// `subscriber-prefix-length`: the IPv6 prefix length of one subscriber (64: a
    /// delegated /64 counts as one, 128: each host alone).
    pub subscriber_len: u8,
    /// `port-reuse-delay`: seconds a port stays out of use after its mapping ended.
    pub reuse_delay: u32,
    /// `max-simultaneous-opens`: unsolicited IPv4 SYNs held at once for a TCP
    /// simultaneous open (RFC 6146 §3.5.2.2); 0: none, such SYNs are dropped unanswered.
    pub max_syns: u32,
}

impl Limits {
    pub const DEFAULT: Self = Self { max_ports: 0, subscriber_len: 64, reuse_delay: 120, max_syns: 1024 };
}

/// The limits `nat64-ctl set` changes live.
pub const LIMIT_KEYS: [&str; 3] = ["max-ports-per-host", "port-reuse-delay", "max-simultaneous-opens"];

/// Most ports a subscriber may be allowed (every port of 256 addresses, 3 protocols).
const MAX_PORTS: u64 = 3 * 65536 * NAT_POOL4_MAX as u64;
/// Longest `port-reuse-delay` (an hour).
const MAX_REUSE_DELAY: u64 = 3600;

/// `max-ports-per-host` or `port-reuse-delay`, from the file or `nat64-ctl set`.
pub fn parse_limit(key: &str, v: u64) -> Result<u32> {
    match key {
        "max-ports-per-host" if v > MAX_PORTS => {
            bail!("{key}: {v}: at most {MAX_PORTS} (0: no limit)")
        }
        "port-reuse-delay" if v > MAX_REUSE_DELAY => {
            bail!("{key}: {v}: at most {MAX_REUSE_DELAY} seconds (RFC 6888 REQ-8 asks for 120; 0: at once)")
        }
        "max-simultaneous-opens" if v > NAT_SYNS_MAX_ENTRIES as u64 => {
            bail!("{key}: {v}: at most {NAT_SYNS_MAX_ENTRIES} (0: no SYN is held)")
        }
        "max-ports-per-host" | "port-reuse-delay" | "max-simultaneous-opens" => Ok(v as u32),
        _ => bail!("{key}: not one of {}", LIMIT_KEYS.join(", ")),
    }
}

fn check_limits(raw: &RawConfig) -> Result<Limits> {
    let d = Limits::DEFAULT;
    let subscriber_len = match raw.subscriber_prefix_length {
        None => d.subscriber_len,
        Some(l @ 32..=128) => l as u8,
        Some(l) => bail!(
            "subscriber-prefix-length: {l}: from 32 to 128 (the prefix a subscriber is delegated, e.g. 56 or \
             64; 128 counts each host alone)"
        ),
    };
    Ok(Limits {
        max_ports: raw
            .max_ports_per_host
            .map_or(Ok(d.max_ports), |v| parse_limit("max-ports-per-host", v))?,
        subscriber_len,
        reuse_delay: raw
            .port_reuse_delay
            .map_or(Ok(d.reuse_delay), |v| parse_limit("port-reuse-delay", v))?,
        max_syns: raw
            .max_simultaneous_opens
            .map_or(Ok(d.max_syns), |v| parse_limit("max-simultaneous-opens", v))?,
    })
}

impl Nat64 {
    /// Every pool4 address with its ports, in order.
    pub fn slots(&self) -> Vec<Slot4> {
        let mut out = Vec::new();
        for p in &self.pool4 {
            let base = u32::from(p.prefix.addr());
            for i in 0..pool4_size(&p.prefix) {
                out.push((std::net::Ipv4Addr::from(base + i as u32), p.first, p.last));
            }
        }
        out
    }
}

/// Addresses in an IPv4 prefix.
fn pool4_size(p: &Prefix4) -> u64 {
    1u64 << (32 - p.prefix_len())
}

/// The ports a pool4 entry lends by default.
pub const DEFAULT_PORTS: (u16, u16) = (1024, 65535);

fn parse_ports(key: &str, s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |v: &str| -> Result<u16> {
        v.trim().parse::<u16>().map_err(|_| anyhow::anyhow!("{key}: {s:?}: {v:?} is not a port (0-65535)"))
    };
    let (first, last) = (port(a)?, port(b)?);
    if first > last {
        bail!("{key}: {s:?}: the range runs backwards (write \"{last}-{first}\")");
    }
    Ok((first, last))
}

fn check_pool4(i: usize, raw: &RawPool4) -> Result<Pool4> {
    let key = format!("pool4[{i}].prefix");
    let prefix: Prefix4 = raw.prefix.parse().map_err(at(key.clone()))?;
    if ranges::is_reserved4(prefix.addr().octets()) {
        bail!(
            "{key}: {}: in a range that is never translated (0/8, 127/8, 169.254/16, 224/4, 240/4)",
            prefix
        );
    }
    let (first, last) = match raw.ports.as_deref() {
        None => DEFAULT_PORTS,
        Some(s) => parse_ports(&format!("pool4[{i}].ports"), s)?,
    };
    Ok(Pool4 { prefix, first, last })
}

/// The lifetimes `nat64-ctl set` changes live.
pub const TIMEOUT_KEYS: [&str; 4] =
    ["udp-timeout", "tcp-established-timeout", "tcp-transitory-timeout", "icmp-timeout"];

/// `nat64-ctl set KEY SECONDS` for one of [`TIMEOUT_KEYS`], checked as the file is.
pub fn parse_timeout(key: &str, value: &str) -> Result<u32> {
    let v: u64 = value.parse().map_err(|_| anyhow::anyhow!("{key}: {value:?}: not a number of seconds"))?;
    let (d, m) = (Timeouts::DEFAULT, Timeouts::MIN);
    let (default, min) = match key {
        "udp-timeout" => (d.udp, m.udp),
        "tcp-established-timeout" => (d.tcp_established, m.tcp_established),
        "tcp-transitory-timeout" => (d.tcp_transitory, m.tcp_transitory),
        "icmp-timeout" => (d.icmp, m.icmp),
        _ => bail!("{key}: not a lifetime ({})", TIMEOUT_KEYS.join(", ")),
    };
    timeout(key, Some(v), default, min)
}

fn timeout(key: &str, v: Option<u64>, default: u32, min: u32) -> Result<u32> {
    match v {
        None => Ok(default),
        Some(s) if s < min as u64 => bail!("{key}: {s}: at least {min} seconds (RFC 6146 §4)"),
        Some(s) if s > u32::MAX as u64 / 1000 => bail!("{key}: {s}: too long (at most {})", u32::MAX / 1000),
        Some(s) => Ok(s as u32),
    }
}

/// The NAT64 part of the configuration: `Some` in mode "nat64", and its keys refused
/// in the other modes.
pub(super) fn check(raw: &RawConfig, nat64: bool) -> Result<Option<Nat64>> {
    let keys = [
        ("pool4", !raw.pool4.is_empty()),
        ("filtering", raw.filtering.is_some()),
        ("udp-timeout", raw.udp_timeout.is_some()),
        ("tcp-established-timeout", raw.tcp_established_timeout.is_some()),
        ("tcp-transitory-timeout", raw.tcp_transitory_timeout.is_some()),
        ("icmp-timeout", raw.icmp_timeout.is_some()),
        ("bib", !raw.bib.is_empty()),
        ("port-block-size", raw.port_block_size.is_some()),
        ("port-block-prefix", raw.port_block_prefix.is_some()),
        ("port-block-host-length", raw.port_block_host_length.is_some()),
        ("port-blocks-per-host", raw.port_blocks_per_host.is_some()),
        ("bib-log", raw.bib_log.is_some()),
        ("nat-log", !raw.nat_log.is_empty()),
        ("max-ports-per-host", raw.max_ports_per_host.is_some()),
        ("subscriber-prefix-length", raw.subscriber_prefix_length.is_some()),
        ("port-reuse-delay", raw.port_reuse_delay.is_some()),
        ("max-sessions", raw.max_sessions.is_some()),
        ("max-simultaneous-opens", raw.max_simultaneous_opens.is_some()),
        ("icmpv6-error-source", raw.icmpv6_error_source.is_some()),
        ("sync", raw.sync.is_some()),
    ];
    if !nat64 {
        if let Some((k, _)) = keys.iter().find(|(_, set)| *set) {
            bail!("{k}: belongs to stateful NAT64; set \"mode\": \"nat64\"");
        }
        return Ok(None);
    }
    for (k, set) in [
        ("eamt", !raw.eamt.is_empty()),
        ("dynamic-pool", raw.dynamic_pool.is_some()),
        ("masquerade", raw.masquerade.is_some()),
        ("ipv4-translatable", !raw.ipv4_translatable.is_empty()),
        ("pref64", raw.pref64.is_some()),
    ] {
        if set {
            bail!("{k}: not used in mode \"nat64\" (this version maps every IPv6 source through pool4)");
        }
    }
    if raw.pool6.is_none() {
        bail!("pool6: mode \"nat64\" reaches IPv4 hosts through pool6: give it (e.g. \"64:ff9b::/96\")");
    }
    if raw.pool4.is_empty() {
        bail!(
            "pool4: mode \"nat64\" needs the IPv4 addresses IPv6 hosts share: give at least one, \
             e.g. [{{\"prefix\": \"203.0.113.8/30\", \"ports\": \"1024-65535\"}}]"
        );
    }
    let mut pool4: Vec<Pool4> = Vec::new();
    let mut total = 0u64;
    for (i, r) in raw.pool4.iter().enumerate() {
        let p = check_pool4(i, r)?;
        if let Some(j) = pool4.iter().position(|o| o.prefix.overlaps(&p.prefix)) {
            bail!("pool4[{i}].prefix: {}: overlaps pool4[{j}] ({})", p.prefix, pool4[j].prefix);
        }
        total += pool4_size(&p.prefix);
        pool4.push(p);
    }
    if total > NAT_POOL4_MAX as u64 {
        bail!("pool4: {total} addresses; at most {NAT_POOL4_MAX}");
    }
    let filtering = match raw.filtering.as_deref() {
        None | Some("address-dependent") => Filtering::AddressDependent,
        Some("address-and-port-dependent") => Filtering::AddressAndPortDependent,
        Some("endpoint-independent") => Filtering::EndpointIndependent,
        Some(other) => bail!(
            "filtering: {other:?}: \"address-dependent\" (the default), \"address-and-port-dependent\" \
             or \"endpoint-independent\""
        ),
    };
    let (d, m) = (Timeouts::DEFAULT, Timeouts::MIN);
    let timeouts = Timeouts {
        udp: timeout("udp-timeout", raw.udp_timeout, d.udp, m.udp)?,
        tcp_established: timeout(
            "tcp-established-timeout",
            raw.tcp_established_timeout,
            d.tcp_established,
            m.tcp_established,
        )?,
        tcp_transitory: timeout(
            "tcp-transitory-timeout",
            raw.tcp_transitory_timeout,
            d.tcp_transitory,
            m.tcp_transitory,
        )?,
        icmp: timeout("icmp-timeout", raw.icmp_timeout, d.icmp, m.icmp)?,
    };
    let mut bib: Vec<StaticBib> = Vec::new();
    for (i, r) in raw.bib.iter().enumerate() {
        bib.push(check_bib(i, r, &pool4, &bib)?);
    }
    let port_blocks = check_port_blocks(raw, &pool4, raw.sync.is_some())?;
    let nat_log = check_nat_log(raw)?;
    let limits = check_limits(raw)?;
    let sync = raw.sync.as_ref().map(super::sync::check).transpose()?;
    let (default, least, most) = MAX_SESSIONS;
    let max_sessions = match raw.max_sessions {
        None => default,
        Some(n) if (least as u64..=most as u64).contains(&n) => n as u32,
        Some(n) => bail!("max-sessions: {n}: from {least} to {most}"),
    };
    let icmp6_source_inner = raw
        .icmpv6_error_source
        .as_deref()
        .map_or(Ok(false), |v| parse_icmp6_source("icmpv6-error-source", v))?;
    Ok(Some(Nat64 {
        pool4,
        bib,
        filtering,
        timeouts,
        port_blocks,
        nat_log,
        limits,
        max_sessions,
        icmp6_source_inner,
        sync,
    }))
}

/// The default and most of `port-blocks-per-host`.
pub const BLOCKS_PER_HOST: (u64, u64) = (4, nat64_common::maps::MAX_BLOCKS_PER_HOST as u64);

fn check_port_blocks(raw: &RawConfig, pool4: &[Pool4], sync: bool) -> Result<Option<PortBlocks>> {
    let size = match (raw.port_block_size, raw.port_block_prefix.as_deref()) {
        (None, None) => {
            for (k, set) in [
                ("port-block-host-length", raw.port_block_host_length.is_some()),
                ("port-blocks-per-host", raw.port_blocks_per_host.is_some()),
            ] {
                if set {
                    bail!("{k}: goes with port-block-size");
                }
            }
            return Ok(None);
        }
        (None, Some(_)) => bail!("port-block-size: port-block-prefix needs the ports per block (e.g. 2048)"),
        (Some(s), _) => s,
    };
    let (first, last) = (pool4[0].first, pool4[0].last);
    if let Some(i) = pool4.iter().position(|p| (p.first, p.last) != (first, last)) {
        bail!(
            "pool4[{i}].ports: {}-{}: with port blocks every pool4 entry lends the same ports \
             (pool4[0]: {first}-{last})",
            pool4[i].first,
            pool4[i].last
        );
    }
    let span = last as u64 - first as u64 + 1;
    if size == 0 || size > span {
        bail!("port-block-size: {size}: from 1 to {span} (the ports pool4 lends, {first}-{last})");
    }
    let per_addr = span / size;
    let addresses: u64 = pool4.iter().map(|p| pool4_size(&p.prefix)).sum();
    let Some(prefix) = raw.port_block_prefix.as_deref() else {
        return dynamic_blocks(raw, size, per_addr, addresses, sync).map(Some);
    };
    if raw.port_blocks_per_host.is_some() {
        bail!(
            "port-blocks-per-host: goes with dynamic port blocks (port-block-size without port-block-prefix); \
             with port-block-prefix each subnet has one block"
        );
    }
    let prefix: Prefix6 = prefix.parse().map_err(at("port-block-prefix".to_string()))?;
    let host_len = raw.port_block_host_length.unwrap_or(64);
    if !(32..=128).contains(&host_len)
        || host_len <= prefix.prefix_len() as u64
        || host_len > prefix.prefix_len() as u64 + 24
    {
        bail!(
            "port-block-host-length: {host_len}: from {} to {} for port-block-prefix /{} (each subnet of that \
             length gets a block; at most 2^24 of them)",
            (prefix.prefix_len() as u64 + 1).max(32),
            (prefix.prefix_len() as u64 + 24).min(128),
            prefix.prefix_len()
        );
    }
    let subnets = 1u64 << (host_len - prefix.prefix_len() as u64);
    if subnets > per_addr * addresses {
        bail!(
            "port-block-size: {size}: {subnets} /{host_len} subnets of {prefix} need as many blocks; \
             pool4 has {} ({addresses} addresses x {per_addr} blocks of {size} ports)",
            per_addr * addresses
        );
    }
    Ok(Some(PortBlocks {
        size: size as u32,
        per_addr: per_addr as u32,
        assign: BlockAssign::Prefix { prefix, host_len: host_len as u8 },
    }))
}

/// `port-block-size` without `port-block-prefix`: blocks taken as subscribers need them.
fn dynamic_blocks(
    raw: &RawConfig,
    size: u64,
    per_addr: u64,
    addresses: u64,
    sync: bool,
) -> Result<PortBlocks> {
    if raw.port_block_host_length.is_some() {
        bail!(
            "port-block-host-length: goes with port-block-prefix (without it blocks are taken as \
             subscribers need them; subscriber-prefix-length says what a subscriber is)"
        );
    }
    if sync {
        bail!(
            "sync: session sync does not carry dynamic port blocks (a peer would hand the blocks to other \
             subscribers than the log says); with sync, use port-block-prefix or no port blocks"
        );
    }
    let blocks = per_addr * addresses;
    if blocks > nat64_common::maps::NAT_BLOCKS_MAX as u64 {
        bail!(
            "port-block-size: {size}: {blocks} blocks ({addresses} addresses x {per_addr}); at most {} (larger \
             blocks)",
            nat64_common::maps::NAT_BLOCKS_MAX
        );
    }
    let (default, most) = BLOCKS_PER_HOST;
    let per_host = match raw.port_blocks_per_host {
        None => default,
        Some(n @ 1..) if n <= most => n,
        Some(n) => bail!("port-blocks-per-host: {n}: from 1 to {most}"),
    };
    Ok(PortBlocks {
        size: size as u32,
        per_addr: per_addr as u32,
        assign: BlockAssign::Dynamic { per_host: per_host as u8 },
    })
}

impl PortBlocks {
    /// Every block of pool4 (dynamic ones: the size of the block maps).
    pub fn count(&self, addresses: usize) -> u32 {
        self.per_addr.saturating_mul(addresses as u32)
    }

    /// Whether blocks are handed out as subscribers need them.
    pub fn dynamic(&self) -> bool {
        matches!(self.assign, BlockAssign::Dynamic { .. })
    }

    /// Block `index`'s address and ports (`slots` as [`Nat64::slots`] gives them).
    pub fn block(&self, index: u32, slots: &[Slot4]) -> Option<Slot4> {
        let first = slots.first()?.1;
        let (slot, r) =
            nat64_common::nat::port_block(index, self.size, self.per_addr, slots.len() as u32, first)?;
        Some((slots.get(slot as usize)?.0, r.first, r.last))
    }

    /// The index of the block holding `port` of pool4 address `v4`, if any.
    pub fn index_of(&self, v4: std::net::Ipv4Addr, port: u16, slots: &[Slot4]) -> Option<u32> {
        let slot = slots.iter().position(|s| s.0 == v4)? as u64;
        let (first, last) = (slots[slot as usize].1, slots[slot as usize].2);
        if port < first || port > last {
            return None;
        }
        let block = (port - first) as u64 / self.size as u64;
        if block >= self.per_addr as u64 {
            return None;
        }
        u32::try_from(slot * self.per_addr as u64 + block).ok()
    }

    /// The block of an IPv6 host: its pool4 address and ports (`slots` as
    /// [`Nat64::slots`] gives them), or `None` outside the prefix.
    pub fn of_host(&self, a: std::net::Ipv6Addr, slots: &[Slot4]) -> Option<Slot4> {
        let BlockAssign::Prefix { prefix, host_len } = self.assign else { return None };
        if !prefix.contains_addr(a) {
            return None;
        }
        self.block(nat64_common::nat::block_index(&a.octets(), prefix.prefix_len(), host_len), slots)
    }

    /// The IPv6 subnet whose block holds `port` of pool4 address `v4`, if any.
    pub fn of_port(&self, v4: std::net::Ipv4Addr, port: u16, slots: &[Slot4]) -> Option<Prefix6> {
        let BlockAssign::Prefix { prefix, host_len } = self.assign else { return None };
        let index = self.index_of(v4, port, slots)? as u64;
        let bits = host_len as u32 - prefix.prefix_len() as u32;
        if index >= 1u64 << bits {
            return None;
        }
        let base = u128::from(prefix.addr()) | (index as u128) << (128 - host_len as u32);
        Prefix6::new(std::net::Ipv6Addr::from(base), host_len).ok()
    }
}

fn check_bib(i: usize, r: &RawBib, pool4: &[Pool4], earlier: &[StaticBib]) -> Result<StaticBib> {
    let key = format!("bib[{i}]");
    let b = StaticBib::parse(&key, &r.protocol, &r.ipv6, &r.ipv4)?;
    b.check_in(&key, pool4)?;
    if let Some(j) = earlier.iter().position(|o| o.proto == b.proto && (o.v4 == b.v4 || o.v6 == b.v6)) {
        bail!("{key}: {} {} <-> {}: bib[{j}] maps one of them already", b.proto_name(), b.v6, b.v4);
    }
    Ok(b)
}

/// A JSON-lines target under `key`: "stdout" or an absolute path in a folder that
/// exists.
fn json_target(key: &str, p: &str) -> Result<BibLog> {
    if p == "stdout" {
        return Ok(BibLog::Stdout);
    }
    if !p.starts_with('/') {
        bail!("{key}: {p:?}: \"stdout\" or an absolute file path");
    }
    let path = std::path::PathBuf::from(p);
    match path.parent() {
        Some(d) if d.is_dir() => Ok(BibLog::File(path)),
        _ => bail!("{key}: {p:?}: its directory does not exist"),
    }
}

/// A collector's or server's `ADDR:PORT` under `key`.
fn sink_addr(key: &str, s: &str, example: &str) -> Result<std::net::SocketAddr> {
    match s.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        Ok(_) => bail!("{key}: {s:?}: port 0"),
        Err(_) => bail!("{key}: {s:?}: not ADDR:PORT (e.g. {example})"),
    }
}

/// `nat-log`, then `bib-log` as one JSON sink more.
fn check_nat_log(raw: &RawConfig) -> Result<Vec<LogSink>> {
    let mut out = Vec::new();
    for (i, r) in raw.nat_log.iter().enumerate() {
        let key = format!("nat-log[{i}]");
        let sink = match (&r.ipfix, &r.syslog, &r.json) {
            (Some(a), None, None) => LogSink::Ipfix(sink_addr(&format!("{key}.ipfix"), a, "192.0.2.9:4739")?),
            (None, Some(s), None) => {
                let k = format!("{key}.syslog");
                if let Some(p) = s.strip_prefix("unix:") {
                    if !p.starts_with('/') {
                        bail!("{k}: {s:?}: the socket's path must be absolute (unix:/dev/log)");
                    }
                    LogSink::Syslog(SyslogTarget::Unix(p.into()))
                } else if let Some(a) = s.strip_prefix("udp:") {
                    LogSink::Syslog(SyslogTarget::Udp(sink_addr(&k, a, "udp:192.0.2.9:514")?))
                } else {
                    bail!("{k}: {s:?}: \"unix:PATH\" or \"udp:ADDR:PORT\"");
                }
            }
            (None, None, Some(p)) => LogSink::Json(json_target(&format!("{key}.json"), p)?),
            _ => bail!("{key}: give exactly one of \"ipfix\", \"syslog\" and \"json\""),
        };
        if out.contains(&sink) {
            bail!("{key}: {sink} is given twice");
        }
        out.push(sink);
    }
    if let Some(p) = &raw.bib_log {
        let sink = LogSink::Json(json_target("bib-log", p)?);
        if out.contains(&sink) {
            bail!("bib-log: {sink} is in nat-log too");
        }
        out.push(sink);
    }
    Ok(out)
}
