//! Stateful NAT64's and the dynamic pool's subcommands: `bib`, `session`, `pool`,
//! `port-block`.

use std::{net::IpAddr, path::PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;

use super::args::{instance_name, open};
use crate::{config::Config, load, sys};

#[derive(Subcommand)]
pub enum BibCmd {
    /// Add a static entry: PROTOCOL (tcp, udp, icmp) [IPV6]:PORT IPV4:PORT (a pool4
    /// address); it replaces the dynamic mappings either side had.
    Add { protocol: String, ipv6: String, ipv4: String },
    /// Remove a static entry: PROTOCOL IPV4:PORT.
    Del { protocol: String, ipv4: String },
    /// List every BIB entry, static and dynamic.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SessionCmd {
    /// List the sessions: protocol, IPv6 transport address, the pool4 one it maps to,
    /// the IPv4 remote, TCP state, seconds left.
    List {
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this protocol (tcp, udp or icmp).
        #[arg(long)]
        protocol: Option<String>,
        /// Only sessions involving this address (IPv6 host, pool4 address or remote).
        #[arg(long)]
        address: Option<IpAddr>,
    },
    /// End every session and dynamic BIB entry now, their ports free at once (static
    /// entries stay). Connections through them break; hosts get new mappings with
    /// their next packet.
    Flush,
}

#[derive(Subcommand)]
pub enum PoolCmd {
    /// List the mappings in force: IPv6 host, IPv4 address, last use, expiry.
    List {
        /// Machine-readable JSON (times as Unix seconds) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget every dynamic mapping (and the addresses expired ones had): each host
    /// gets an address afresh with its next packet; open connections through the old
    /// addresses break.
    Flush,
}

/// `nat64-ctl port-block ADDRESS`'s answer.
pub fn port_block_line(
    b: &crate::config::nat::PortBlocks,
    slots: &[crate::config::nat::Slot4],
    address: &str,
) -> Result<String> {
    let crate::config::nat::BlockAssign::Prefix { prefix, .. } = b.assign else {
        anyhow::bail!(
            "port-block: dynamic port blocks are handed out as subscribers need them: ask the running instance \
             (without --config), or the NAT log for the past"
        );
    };
    if let Ok(a) = address.parse::<std::net::Ipv6Addr>() {
        let Some((v4, first, last)) = b.of_host(a, slots) else {
            anyhow::bail!("port-block: {a}: outside port-block-prefix {prefix} (no block)");
        };
        return Ok(format!("{a} -> {v4} ports {first}-{last}"));
    }
    let Ok(sa) = address.parse::<std::net::SocketAddrV4>() else {
        anyhow::bail!(
            "port-block: {address:?}: give IPV4:PORT (a pool4 transport address) or an IPv6 address"
        );
    };
    match b.of_port(*sa.ip(), sa.port(), slots) {
        Some(p) => Ok(format!("{sa} -> {p}")),
        None => {
            anyhow::bail!("port-block: {sa}: in no block (not a pool4 address, or a port outside the blocks)")
        }
    }
}

/// `nat64-ctl port-block ADDRESS`'s answer with dynamic blocks, from the running
/// instance's `held` blocks (index, subscriber, since, ports in use) and what a
/// subscriber is (`subscriber_len`).
pub fn dynamic_port_block_line(
    b: &crate::config::nat::PortBlocks,
    slots: &[crate::config::nat::Slot4],
    held: &[(u32, [u8; 16], u64, u64)],
    subscriber_len: u8,
    address: &str,
) -> Result<String> {
    let since = |boot_ns: u64| crate::natlog::record::rfc3339(crate::sys::wall_ns(boot_ns));
    if let Ok(a) = address.parse::<std::net::Ipv6Addr>() {
        let cut = nat64_common::nat::cut6(&a.octets(), subscriber_len);
        let sub = crate::config::Prefix6::new(std::net::Ipv6Addr::from(cut), subscriber_len)?;
        let blocks: Vec<String> = held
            .iter()
            .filter(|h| h.1 == sub.addr().octets())
            .filter_map(|h| b.block(h.0, slots).map(|(v4, f, l)| (h, v4, f, l)))
            .map(|(h, v4, f, l)| format!("{v4} ports {f}-{l} (since {}, {} in use)", since(h.2), h.3))
            .collect();
        if blocks.is_empty() {
            return Ok(format!("{a} -> no block (subscriber {sub})"));
        }
        return Ok(format!("{a} -> {} (subscriber {sub})", blocks.join(", ")));
    }
    let Ok(sa) = address.parse::<std::net::SocketAddrV4>() else {
        anyhow::bail!(
            "port-block: {address:?}: give IPV4:PORT (a pool4 transport address) or an IPv6 address"
        );
    };
    let Some(index) = b.index_of(*sa.ip(), sa.port(), slots) else {
        anyhow::bail!("port-block: {sa}: in no block (not a pool4 address, or a port outside the blocks)");
    };
    let (_, first, last) = b.block(index, slots).context("port-block: a block past pool4")?;
    match held.iter().find(|h| h.0 == index) {
        Some(h) => {
            let sub = crate::config::Prefix6::new(std::net::Ipv6Addr::from(h.1), subscriber_len)?;
            Ok(format!("{sa} -> {sub} (block {first}-{last} since {}, {} in use)", since(h.2), h.3))
        }
        None => Ok(format!("{sa} -> no subscriber (block {first}-{last} is free)")),
    }
}

pub fn bib_cmd(name: &str, cmd: BibCmd) -> Result<()> {
    use crate::config::nat::StaticBib;
    let mut tables = open(name)?;
    let stateful = tables.globals()?.flag(nat64_common::maps::Globals::FLAG_STATEFUL);
    let Some(nat) = tables.nat.as_mut().filter(|_| stateful) else {
        anyhow::bail!(
            "instance '{name}' is not a stateful NAT64 (set \"mode\": \"nat64\" in its configuration)"
        );
    };
    match cmd {
        BibCmd::Add { protocol, ipv6, ipv4 } => {
            let b = StaticBib::parse("bib", &protocol, &ipv6, &ipv4)?;
            let ours = nat.pool4_use().iter().any(|a| a["address"].as_str() == Some(&b.v4.ip().to_string()));
            if !ours {
                anyhow::bail!("bib.ipv4: {}: not a pool4 address of instance '{name}'", b.v4);
            }
            nat.bib_add(&b)?;
            println!("added {protocol} {} <-> {} (static)", b.v6, b.v4);
        }
        BibCmd::Del { protocol, ipv4 } => {
            let b = StaticBib::parse("bib", &protocol, "[::]:0", &ipv4)?;
            if !nat.bib_del(b.proto, b.v4)? {
                anyhow::bail!("bib: no static {protocol} entry for {ipv4}");
            }
            println!("removed {protocol} {ipv4}");
        }
        BibCmd::List { json } => {
            let list = nat.bib_list();
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(p, v6, v4, st)| {
                        serde_json::json!({
                            "protocol": crate::tables::nat::proto_name(*p),
                            "ipv6": v6.to_string(),
                            "ipv4": v4.to_string(),
                            "static": st,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("(no BIB entries)");
            } else {
                println!("{:<5} {:<46} {:<22} kind", "proto", "IPv6", "IPv4");
                for (p, v6, v4, st) in &list {
                    let kind = if *st { "static" } else { "dynamic" };
                    println!(
                        "{:<5} {:<46} {:<22} {kind}",
                        crate::tables::nat::proto_name(*p),
                        v6.to_string(),
                        v4.to_string()
                    );
                }
            }
        }
    }
    Ok(())
}

pub fn session_cmd(name: &str, cmd: SessionCmd) -> Result<()> {
    let tables = open(name)?;
    let Some(nat) = tables
        .nat
        .as_ref()
        .filter(|_| tables.globals().is_ok_and(|g| g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)))
    else {
        anyhow::bail!(
            "instance '{name}' is not a stateful NAT64 (set \"mode\": \"nat64\" in its configuration)"
        );
    };
    let (json, protocol, address) = match cmd {
        SessionCmd::List { json, protocol, address } => (json, protocol, address),
        SessionCmd::Flush => {
            let mut sweeper = crate::sweep::sweeper_for(&load::find_running(name)?)?;
            let t = std::time::Instant::now();
            let r = sweeper.flush()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            println!("ended {} sessions and {} BIB entries in {ms:.1} ms", r.sessions, r.removed);
            return Ok(());
        }
    };
    if let Some(p) = &protocol
        && !["tcp", "udp", "icmp"].contains(&p.as_str())
    {
        anyhow::bail!("--protocol: {p:?}: tcp, udp or icmp");
    }
    let now = crate::sys::boot_ns();
    let list: Vec<_> = nat
        .list()
        .into_iter()
        .filter(|v| protocol.as_deref().is_none_or(|p| crate::tables::nat::proto_name(v.key.proto) == p))
        .filter(|v| match address {
            None => true,
            Some(IpAddr::V4(a)) => v.key.local == a.octets() || v.key.remote == a.octets(),
            Some(IpAddr::V6(a)) => v.v6.is_some_and(|b| b.addr == a.octets()),
        })
        .collect();
    if json {
        let v: Vec<_> = list.iter().map(|s| s.json(now)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("(no sessions)");
        return Ok(());
    }
    println!(
        "{:<5} {:<46} {:<22} {:<22} {:<14} {:>8}",
        "proto", "IPv6", "IPv4", "remote", "state", "expires"
    );
    for s in &list {
        let j = s.json(now);
        println!(
            "{:<5} {:<46} {:<22} {:<22} {:<14} {:>7}s",
            j["protocol"].as_str().unwrap_or(""),
            j["ipv6"].as_str().unwrap_or("?"),
            j["ipv4"].as_str().unwrap_or(""),
            j["remote"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or("-"),
            j["expires-in"]
        );
    }
    Ok(())
}

pub fn pool_cmd(name: &str, cmd: PoolCmd) -> Result<()> {
    use crate::pool;
    let mut tables = open(name)?;
    let g = tables.globals()?;
    let Some(spec) = pool::Spec::of(&g) else {
        anyhow::bail!("instance '{name}' has no dynamic pool (set \"dynamic-pool\" in its configuration)");
    };
    match cmd {
        PoolCmd::List { json } => {
            let list = pool::list(&tables)?;
            let now = sys::unix_now();
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "ipv6": m.v6.to_string(),
                            "ipv4": m.v4.to_string(),
                            "last-use": now.saturating_sub(m.idle),
                            "expires": now.saturating_sub(m.idle) + spec.lease,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("(no dynamic mappings; pool {})", pool::describe(&spec.prefix));
            } else {
                println!("{:<40} {:<16} {:>10} {:>12}", "IPv6", "IPv4", "last use", "expires in");
                for m in &list {
                    println!(
                        "{:<40} {:<16} {:>9}s {:>11}s",
                        m.v6.to_string(),
                        m.v4.to_string(),
                        m.idle,
                        spec.lease.saturating_sub(m.idle)
                    );
                }
            }
        }
        PoolCmd::Flush => {
            let n = pool::flush(&mut tables)?;
            // The running instance refills the ring at once rather than within a second.
            if let Ok(pid) = std::fs::read_to_string(load::pid_file(name))
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                // SAFETY: sends a signal the running instance waits for.
                unsafe { libc::kill(pid, libc::SIGUSR1) };
            }
            println!("flushed {n} dynamic mappings");
        }
    }
    Ok(())
}
/// `nat64-ctl port-block`: the subscriber a pool4 address and port belong to, or a
/// subscriber's block.
pub fn port_block_cmd(instance: &Option<String>, address: &str, config: Option<PathBuf>) -> Result<()> {
    let (blocks, slots) = match config {
        Some(path) => {
            let cfg = Config::load(&path)?;
            let n = cfg.nat64.as_ref().context("port-block: the configuration is not mode \"nat64\"")?;
            let b = n.port_blocks.context("port-block: the configuration sets no port-block-size")?;
            (b, n.slots())
        }
        None => {
            let tables = open(&instance_name(instance))?;
            let nat = tables.nat.as_ref().context("port-block: the instance is not a stateful NAT64")?;
            let (b, slots) =
                nat.port_blocks().context("port-block: the instance runs without port blocks")?;
            if b.dynamic() {
                let sub_len = nat.cfg.get(&0, 0).map(|c| c.subscriber_len).unwrap_or(64);
                println!("{}", dynamic_port_block_line(&b, &slots, &nat.held_blocks(), sub_len, address)?);
                return Ok(());
            }
            (b, slots)
        }
    };
    println!("{}", port_block_line(&blocks, &slots, address)?);
    Ok(())
}
