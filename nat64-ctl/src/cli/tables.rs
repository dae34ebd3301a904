//! Subcommands on the translator's tables and settings: `check`, `map`, `set`,
//! `show`, `status`, `stats`, `denylist4`, `translate`.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use nat64_common::maps::Globals;

use super::args::{instance_name, open};
use crate::{
    config::{Config, EamtEntry, Prefix4, Prefix6},
    explain, general, stats, status,
};

#[derive(Subcommand)]
pub enum DenyCmd {
    /// Add an IPv4 prefix.
    Add { prefix: String },
    /// Remove an IPv4 prefix.
    Del { prefix: String },
    /// List denylist4.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum MapCmd {
    /// Add an EAMT entry: IPV4[/LEN] IPV6[/LEN] with equal suffix lengths; or, with
    /// --file, many at once.
    #[command(after_help = "Examples:\n  nat64-ctl map add 192.0.2.1 2001:db8::1\n  \
        nat64-ctl map add 198.51.100.0/24 2001:db8:46::/120\n  nat64-ctl map add --file eamt.txt")]
    Add {
        #[arg(required_unless_present = "file")]
        ipv4: Option<String>,
        #[arg(required_unless_present = "file")]
        ipv6: Option<String>,
        /// Accept an entry nested in (overlapping) others; longest-prefix match decides.
        #[arg(long, conflicts_with = "file")]
        force: bool,
        /// Add every entry of FILE (one `IPV4[/LEN] IPV6[/LEN]` a line, `#` comments):
        /// all checked first, then made visible to the data path at once.
        #[arg(long, conflicts_with_all = ["ipv4", "ipv6"])]
        file: Option<PathBuf>,
    },
    /// Remove the EAMT entry with this IPv4 prefix (and IPv6 prefix, if given).
    Del { ipv4: String, ipv6: Option<String> },
    /// List the EAMT.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_entry(ipv4: &str, ipv6: &str) -> Result<EamtEntry> {
    let v4: Prefix4 = ipv4.parse()?;
    let v6: Prefix6 = ipv6.parse()?;
    EamtEntry::new(v4, v6)
}

pub fn settings_json(g: &nat64_common::maps::Globals) -> serde_json::Value {
    use std::net::{Ipv4Addr, Ipv6Addr};

    let opt = |on: bool, v: String| if on { serde_json::Value::String(v) } else { serde_json::Value::Null };
    serde_json::json!({
        "ipv4-addr": opt(g.has_ipv4_addr(), Ipv4Addr::from(g.ipv4_addr).to_string()),
        "ipv6-addr": opt(g.has_ipv6_addr(), Ipv6Addr::from(g.ipv6_addr).to_string()),
        "pool6": opt(g.pool6_len != 0, format!("{}/{}", Ipv6Addr::from(g.pool6), g.pool6_len)),
        "wkp-allow-non-global": g.flag(Globals::FLAG_WKP_ALLOW_NON_GLOBAL),
        "amend-udp-checksum-zero": g.flag(Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO),
        "zeroize-traffic-class": g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS),
        "xdp-tcp-gro": g.flag(Globals::FLAG_XDP_TCP_GRO),
        "icmp-errors-on-drop": !g.flag(Globals::FLAG_NO_DROP_ERRORS),
        "icmpv6-error-source": if g.flag(Globals::FLAG_ICMP6_SOURCE_INNER) { "inner-destination" } else { "router" },
        "lowest-ipv6-mtu": g.lowest_ipv6_mtu,
        "rfc6791v4-prefix": opt(g.rfc6791v4_len != 0, format!("{}/{}", Ipv4Addr::from(g.rfc6791v4), g.rfc6791v4_len)),
        "rfc6791v6-prefix": opt(g.rfc6791v6_len != 0, format!("{}/{}", Ipv6Addr::from(g.rfc6791v6), g.rfc6791v6_len)),
        "dynamic-pool": opt(g.flag(Globals::FLAG_DYNAMIC_POOL), format!("{}/{}", Ipv4Addr::from(g.dyn_pool), g.dyn_pool_len)),
        "dynamic-pool-lease": if g.flag(Globals::FLAG_DYNAMIC_POOL) { serde_json::json!(g.dyn_pool_lease) } else { serde_json::Value::Null },
    })
}
/// `nat64-ctl check`: validates a configuration file and says what it sets up.
pub fn check(config: &Path, instance: Option<&str>) -> Result<()> {
    let cfg = Config::load_for(config, instance)?;
    let prefix = match (cfg.pool6, cfg.pref64_auto) {
        (Some(p), _) => p.to_string(),
        (None, true) => "auto (RFC 7050, at start)".into(),
        (None, false) => "none".into(),
    };
    let pool = match &cfg.dynamic_pool {
        Some(d) => format!(
            ", dynamic pool {} (lease {} s, state {}){}",
            crate::pool::describe(&d.prefix),
            d.lease,
            d.state_file.display(),
            cfg.masquerade.as_ref().map(|m| format!(" masqueraded behind {m}")).unwrap_or_default()
        ),
        None => String::new(),
    };
    let translatable = match cfg.ipv4_translatable.as_slice() {
        [] => String::new(),
        list => format!(
            ", IPv4 destinations in {} reached through pool6 (ipv4-translatable)",
            list.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    println!(
        "{}: valid (instance '{}', mode {}, {} interface(s), {} EAMT entries, {} {prefix}{pool}{translatable})",
        config.display(),
        cfg.instance,
        cfg.mode.name(),
        cfg.interfaces.len(),
        cfg.eamt.len(),
        if cfg.mode == crate::config::Mode::Clat { "pref64" } else { "pool6" },
    );
    Ok(())
}

/// `nat64-ctl map`: the EAM table.
pub fn map_cmd(name: &str, cmd: MapCmd) -> Result<()> {
    match cmd {
        MapCmd::Add { file: Some(file), .. } => {
            let t = std::time::Instant::now();
            let lines = crate::config::parse_eamt_file(&file)?;
            let entries: Vec<EamtEntry> = lines.iter().map(|(_, e)| *e).collect();
            let mut tables = open(name)?;
            tables.eamt_add_bulk(&entries, |i| format!("{}:{}", file.display(), lines[i].0))?;
            println!(
                "added {} entries from {} in {:.2} s",
                entries.len(),
                file.display(),
                t.elapsed().as_secs_f64()
            );
            general::general_path_sync(&tables, None)?;
        }
        MapCmd::Add { ipv4, ipv6, force, .. } => {
            let entry = parse_entry(&ipv4.unwrap_or_default(), &ipv6.unwrap_or_default())?;
            let mut tables = open(name)?;
            tables.eamt_add(&entry, force)?;
            println!("added {} <-> {}", entry.v4, entry.v6);
            general::general_path_sync(&tables, None)?;
        }
        MapCmd::Del { ipv4, ipv6 } => {
            let v4: Prefix4 = ipv4.parse()?;
            let v6 = ipv6.map(|s| s.parse::<Prefix6>()).transpose()?;
            let mut tables = open(name)?;
            let e = tables.eamt_del(Some(v4), v6)?;
            println!("removed {} <-> {}", e.v4, e.v6);
            general::general_path_sync(&tables, Some(&e))?;
        }
        MapCmd::List { json } => {
            let entries = open(name)?.eamt()?;
            if json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"ipv4": e.v4.to_string(), "ipv6": e.v6.to_string()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if entries.is_empty() {
                println!("(EAMT is empty)");
            } else {
                println!("{:<20} IPv6", "IPv4");
                for e in entries {
                    println!("{:<20} {}", e.v4.to_string(), e.v6);
                }
            }
        }
    }
    Ok(())
}

/// `nat64-ctl set ipv4-translatable`: the prefixes before the flag going on, after it going off.
pub fn set_ipv4_translatable(name: &str, key: &str, value: &str) -> Result<()> {
    let mut tables = open(name)?;
    let mut g = tables.globals()?;
    let list = crate::config::parse_ipv4_translatable(value)?;
    let mode = if g.flag(Globals::FLAG_CLAT) { crate::config::Mode::Clat } else { crate::config::Mode::Siit };
    crate::config::check_ipv4_translatable(&list, mode, g.pool6_len != 0)?;
    // On: the prefixes first, then the flag; off: the flag first.
    if !list.is_empty() {
        tables.ipv4_translatable_set(&list)?;
        g.flags |= Globals::FLAG_IPV4_TRANSLATABLE;
        tables.set_globals(g)?;
    } else {
        g.flags &= !Globals::FLAG_IPV4_TRANSLATABLE;
        tables.set_globals(g)?;
        tables.ipv4_translatable_set(&list)?;
    }
    let shown: Vec<String> = list.iter().map(|p| p.to_string()).collect();
    println!("{key} = {}", if list.is_empty() { "none".to_string() } else { shown.join(",") });
    general::general_path_sync(&tables, None)?;
    Ok(())
}

/// `nat64-ctl set` of a stateful NAT64 lifetime or limit.
pub fn set_nat(name: &str, key: &str, value: &str) -> Result<()> {
    let mut tables = open(name)?;
    let stateful = tables.globals()?.flag(Globals::FLAG_STATEFUL);
    let Some(nat) = tables.nat.as_mut().filter(|_| stateful) else {
        anyhow::bail!("{key}: the instance is not a stateful NAT64 (mode \"nat64\")");
    };
    let v = if crate::config::nat::TIMEOUT_KEYS.contains(&key) {
        crate::config::nat::parse_timeout(key, value)?
    } else {
        let n: u64 = value.parse().map_err(|_| anyhow::anyhow!("{key}: {value:?}: not a whole number"))?;
        crate::config::nat::parse_limit(key, n)?
    };
    nat.set_value(key, v)?;
    println!("{key} = {v}");
    Ok(())
}

/// `nat64-ctl set` of a setting in the globals.
pub fn set_global(name: &str, key: &str, value: &str) -> Result<()> {
    let mut tables = open(name)?;
    let mut g = tables.globals()?;
    crate::config::apply_setting(&mut g, key, value)?;
    if key == "xdp-tcp-gro" && g.flag(Globals::FLAG_XDP_TCP_GRO) {
        general::check_gro_forwarding()?;
    }
    tables.set_globals(g)?;
    println!("{key} = {value}");
    if key == "lowest-ipv6-mtu" {
        general::general_path_sync(&tables, None)?;
    }
    Ok(())
}

/// `nat64-ctl status`.
pub fn status_cmd(name: &str, json: bool) -> Result<()> {
    let tables = open(name)?;
    let v = status::status(name, &tables)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", status::status_text(&v));
    }
    Ok(())
}

/// `nat64-ctl show`: the settings in force.
pub fn show(name: &str) -> Result<()> {
    let tables = open(name)?;
    let mut v = settings_json(&tables.globals()?);
    v["ipv4-translatable"] =
        serde_json::json!(tables.ipv4_translatable()?.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `nat64-ctl denylist4`.
pub fn denylist_cmd(name: &str, cmd: DenyCmd) -> Result<()> {
    let mut tables = open(name)?;
    match cmd {
        DenyCmd::Add { prefix } => {
            let p: Prefix4 = prefix.parse()?;
            tables.denylist4_add(p)?;
            println!("added {p}");
        }
        DenyCmd::Del { prefix } => {
            let p: Prefix4 = prefix.parse()?;
            tables.denylist4_del(p)?;
            println!("removed {p}");
        }
        DenyCmd::List { json } => {
            let list = tables.denylist4()?;
            if json {
                let v: Vec<String> = list.iter().map(|p| p.to_string()).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("(denylist4 is empty)");
            } else {
                for p in list {
                    println!("{p}");
                }
            }
        }
    }
    Ok(())
}

/// `nat64-ctl stats`.
pub fn stats_cmd(name: &str, json: bool) -> Result<()> {
    let counters = open(name)?.counters()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats::json(&counters))?);
    } else {
        print!("{}", stats::table(&counters));
    }
    Ok(())
}

/// `nat64-ctl translate`: what an address becomes, and by which rule.
pub fn translate_cmd(instance: &Option<String>, address: IpAddr, config: Option<PathBuf>) -> Result<()> {
    let line = match config {
        Some(path) => explain::explain(&Config::load(&path)?, address)?,
        None => {
            let tables = open(&instance_name(instance))?;
            explain::explain(&tables, address).context("reading the instance's maps")?
        }
    };
    println!("{line}");
    Ok(())
}
