//! `nat64-ctl set`: the settings a running instance changes live, checked as the
//! configuration file checks them.

use anyhow::{Result, anyhow, bail};
use nat64_common::{maps::Globals, ranges};

use super::prefix::{Prefix4, Prefix6, at, prefixes4};

/// The value of `nat64-ctl set ipv4-translatable`: prefixes separated by commas, or
/// `none`.
pub fn parse_ipv4_translatable(value: &str) -> Result<Vec<Prefix4>> {
    if value.trim() == "none" {
        return Ok(Vec::new());
    }
    prefixes4("ipv4-translatable", &value.split(',').map(str::trim).collect::<Vec<_>>())
}

pub(super) fn check_lowest_ipv6_mtu(mtu: u64) -> Result<()> {
    // RFC 8200 §5 minimum link MTU; above 65535 an IPv6 packet needs a jumbogram.
    if !(1280..=65535).contains(&mtu) {
        bail!("lowest-ipv6-mtu: {mtu}: must be between 1280 (the IPv6 minimum, RFC 8200 §5) and 65535");
    }
    Ok(())
}

pub(super) fn parse_rfc6791v4(s: &str) -> Result<Prefix4> {
    let p: Prefix4 = s.parse().map_err(at("rfc6791v4-prefix".to_string()))?;
    // The pool sources ICMPv4 errors; reserved space would be dropped by every router.
    if ranges::is_reserved4(p.addr().octets()) {
        bail!(
            "rfc6791v4-prefix: {s:?}: is in a range that is never translated (0/8, 127/8, 169.254/16, 224/4, 240/4)"
        );
    }
    Ok(p)
}

pub(super) fn parse_rfc6791v6(s: &str) -> Result<Prefix6> {
    let p: Prefix6 = s.parse().map_err(at("rfc6791v6-prefix".to_string()))?;
    if p.addr().octets()[0] == 0xff {
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
pub const LIVE_SETTINGS: [&str; 10] = [
    "lowest-ipv6-mtu",
    "icmpv6-error-source",
    "icmp-errors-on-drop",
    "amend-udp-checksum-zero",
    "zeroize-traffic-class",
    "xdp-tcp-gro",
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
        "xdp-tcp-gro" => flag(g, Globals::FLAG_XDP_TCP_GRO, parse_bool(key, value)?),
        "icmp-errors-on-drop" => flag(g, Globals::FLAG_NO_DROP_ERRORS, !parse_bool(key, value)?),
        "icmpv6-error-source" if !g.flag(Globals::FLAG_STATEFUL) => {
            bail!("{key}: belongs to stateful NAT64; the running instance is not in mode \"nat64\"")
        }
        "icmpv6-error-source" => {
            flag(g, Globals::FLAG_ICMP6_SOURCE_INNER, super::nat::parse_icmp6_source(key, value)?)
        }
        "wkp-allow-non-global" => flag(g, Globals::FLAG_WKP_ALLOW_NON_GLOBAL, parse_bool(key, value)?),
        "rfc6791v4-prefix" if value == "none" => {
            g.rfc6791v4 = [0; 4];
            g.rfc6791v4_len = 0;
        }
        "rfc6791v4-prefix" => {
            let p = parse_rfc6791v4(value)?;
            g.rfc6791v4 = p.addr().octets();
            g.rfc6791v4_len = p.prefix_len();
        }
        "rfc6791v6-prefix" if value == "none" => {
            g.rfc6791v6 = [0; 16];
            g.rfc6791v6_len = 0;
        }
        "rfc6791v6-prefix" => {
            let p = parse_rfc6791v6(value)?;
            g.rfc6791v6 = p.addr().octets();
            g.rfc6791v6_len = p.prefix_len();
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
