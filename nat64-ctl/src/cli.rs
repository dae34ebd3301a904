//! The `nat64-ctl` command line: run the translator and manage a running instance.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use nat64_common::maps::Globals;

use crate::{
    config::{Config, EamtEntry, Prefix4, Prefix6},
    explain, instance, pref64, stats,
    tables::Tables,
};
use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use log::{info, warn};

/// nat64: an eBPF IPv4/IPv6 translator (SIIT, RFC 7915 / 6052 / 7757).
///
/// `nat64-ctl run --config FILE` loads the translator (XDP or TC programs, one engine)
/// and attaches it to the configured interfaces; it runs as SIIT, as a CLAT (RFC 6877)
/// or as a NAT64 PLAT with a dynamic IPv4 pool. Everything else acts on a running
/// instance through its maps pinned under /sys/fs/bpf/nat64/<instance>/: EAMT entries,
/// settings, the pool, counters. Run it in the instance's network namespace with
/// `nsenter --net=/var/run/netns/NS` (not `ip netns exec`, which hides bpffs).
#[derive(Parser)]
#[command(
    name = "nat64-ctl",
    version,
    about,
    after_help = "Examples:\n  nat64-ctl run --config /etc/nat64/default.json --metrics\n  \
        nat64-ctl map add 192.0.2.1 2001:db8::1\n  nat64-ctl stats --json\n  nat64-ctl reload\n  \
        nat64-ctl detach\n\nFiles: /sys/fs/bpf/nat64/<instance>/ (pinned maps and links), \
        /run/nat64/<instance>.{pid,json} (process, status), /var/lib/nat64/<instance>.pool.json \
        (dynamic pool state)."
)]
struct Cli {
    /// Instance to act on (default: the only one running, else "default").
    #[arg(long, global = true)]
    instance: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the translator in the foreground.
    ///
    /// Loads the programs, attaches them to the configured interfaces (or takes over what
    /// an earlier run left attached, swapping the new programs in without a gap: an
    /// upgrade or restart loses no packet) and stays in the foreground, looking after the
    /// dynamic pool and pref64 "auto". SIGHUP reloads the file (see `reload`);
    /// SIGINT/SIGTERM stop nat64-ctl while translation goes on (`detach` ends it).
    Run {
        /// JSON configuration file (see README, "Configuration").
        #[arg(long, short)]
        config: PathBuf,
        /// Serve Prometheus metrics on http://ADDR:PORT/metrics (default 127.0.0.1:9464
        /// when given without a value; off unless asked).
        #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = crate::metrics::DEFAULT_ADDR)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Stop translating and remove everything the instance set up.
    ///
    /// Asks a running `nat64-ctl run` to stop, then removes the pinned links (the programs
    /// detach), the pinned maps, the general path and the masquerade table. (Stopping
    /// `run` alone leaves all of these in place, so that the next `run` takes over
    /// without a gap.) Run it in the instance's network namespace.
    Detach,
    /// Apply the running instance's configuration file again.
    ///
    /// Applied as a difference (EAMT, denylist4, settings, interfaces, general path,
    /// pool, masquerade), without a moment where a packet translatable under both the old
    /// and the new configuration is dropped. The file is checked here first; an invalid
    /// one is refused as a whole and the running one stays. SIGHUP to `nat64-ctl run`
    /// does the same. Entries added with `map add` that the file does not list go.
    Reload {
        /// The file to check first: must be the one the instance runs with.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print what it would do, without loading anything.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show or change the EAMT (RFC 7757 explicit address mappings) of the running instance.
    Map {
        #[command(subcommand)]
        cmd: MapCmd,
    },
    /// Change a setting of the running instance.
    ///
    /// Effective on the next packet, no restart: lowest-ipv6-mtu, amend-udp-checksum-zero,
    /// zeroize-traffic-class, wkp-allow-non-global, xdp-tcp-gro, icmp-errors-on-drop (true/false), rfc6791v4-prefix,
    /// rfc6791v6-prefix (a prefix, or "none"), dynamic-pool-lease (seconds),
    /// ipv4-translatable (IPv4 prefixes separated by commas, or "none"); in mode "nat64"
    /// icmpv6-error-source (router or inner-destination), the lifetimes and the limits
    /// (max-ports-per-host, port-reuse-delay, max-simultaneous-opens). Checked like the
    /// configuration file; a refused value changes nothing. Not written back to the file:
    /// `reload` and restarts apply the file.
    Set { key: String, value: String },
    /// Print the settings of the running instance (as JSON, with config-file key names).
    Show,
    /// Show or change denylist4 of the running instance.
    Denylist4 {
        #[command(subcommand)]
        cmd: DenyCmd,
    },
    /// Show the running instance.
    ///
    /// Mode, configuration file, each interface with how it is attached (driver/generic
    /// XDP, TCX) and the program id, the prefix in use (and where pref64 "auto" found it),
    /// the maps' fill (EAMT, denylist4, pool), the general path, masquerade, the last
    /// reload, uptime; whether nat64-ctl itself runs.
    Status {
        /// Machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the packet counters of the running instance.
    Stats {
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show or forget the NAT64 dynamic pool's mappings.
    ///
    /// A mapping ties an IPv6 host to the pool IPv4 address it was handed. Static
    /// mappings stay with `map add`.
    Pool {
        #[command(subcommand)]
        cmd: PoolCmd,
    },
    /// Change or show stateful NAT64's BIB (mode "nat64"): static entries are port
    /// forwards to IPv6 servers.
    Bib {
        #[command(subcommand)]
        cmd: BibCmd,
    },
    /// Stateful NAT64 port blocks (RFC 7422): whose block holds an IPv4 transport
    /// address, or which block an IPv6 host has.
    ///
    /// ADDRESS is IPV4:PORT (a pool4 address) or an IPv6 address. Computed from the
    /// configuration alone, no log needed: from the running instance, or with --config
    /// from a configuration file (a replacement node, or an abuse desk offline).
    PortBlock {
        address: String,
        /// Compute with this configuration file instead of a running instance.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show stateful NAT64's sessions (mode "nat64").
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
    },
    /// Print a shell completion script.
    ///
    /// For bash, zsh, fish, elvish or powershell, e.g.
    /// `nat64-ctl completions bash > /etc/bash_completion.d/nat64-ctl`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    ///
    /// E.g. `nat64-ctl manpage > /usr/local/share/man/man1/nat64-ctl.1`, or read it with
    /// `nat64-ctl manpage | man -l -`.
    Manpage,
    /// Show how an address is translated, and through which rule.
    ///
    /// By the running instance, or with --config by a configuration file: the EAM entry,
    /// pool6, or the dynamic pool's mapping, or why it is not translated.
    Translate {
        address: IpAddr,
        /// Explain with this configuration file instead of a running instance.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DenyCmd {
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
enum BibCmd {
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
enum SessionCmd {
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
enum PoolCmd {
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

#[derive(Subcommand)]
enum MapCmd {
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

fn instance_name(cli: &Option<String>) -> String {
    cli.clone().unwrap_or_else(instance::default_instance)
}

fn open(name: &str) -> Result<Tables> {
    Tables::open_pinned(&instance::find_running(name)?)
}

fn parse_entry(ipv4: &str, ipv6: &str) -> Result<EamtEntry> {
    let v4: Prefix4 = ipv4.parse()?;
    let v6: Prefix6 = ipv6.parse()?;
    EamtEntry::new(v4, v6)
}

fn settings_json(g: &nat64_common::maps::Globals) -> serde_json::Value {
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

/// How long `run` waits at start for a router advertisement with a PREF64.
const RA_WAIT: Duration = Duration::from_secs(2);

/// Where `"pref64": "auto"` found its prefix, for the log.
fn pref64_text(d: &pref64::Discovered) -> String {
    if d.ra {
        format!("{} from a router advertisement of {} (lifetime {} s)", d.prefix, d.resolver, d.ttl)
    } else {
        format!("{} from DNS64 at {} (TTL {} s)", d.prefix, d.resolver, d.ttl)
    }
}

/// How often `run` looks after the dynamic pool.
const POOL_TICK: Duration = Duration::from_secs(1);

/// RFC 7050 §3.3: ask again when the answer's TTL runs out (not more often than every
/// 5 s; after a failure, again in 30 s, keeping the prefix in use).
fn recheck(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl).clamp(5, 86400))
}

/// `nat64-ctl port-block ADDRESS`'s answer.
fn port_block_line(
    b: &crate::config::nat::PortBlocks,
    slots: &[crate::config::nat::Slot4],
    address: &str,
) -> Result<String> {
    if let Ok(a) = address.parse::<std::net::Ipv6Addr>() {
        let Some((v4, first, last)) = b.of_host(a, slots) else {
            anyhow::bail!("port-block: {a}: outside port-block-prefix {} (no block)", b.prefix);
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

fn bib_cmd(name: &str, cmd: BibCmd) -> Result<()> {
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
                            "protocol": crate::stateful::proto_name(*p),
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
                        crate::stateful::proto_name(*p),
                        v6.to_string(),
                        v4.to_string()
                    );
                }
            }
        }
    }
    Ok(())
}

fn session_cmd(name: &str, cmd: SessionCmd) -> Result<()> {
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
            let mut sweeper = crate::stateful::sweeper_for(&instance::find_running(name)?)?;
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
    let now = crate::stateful::boot_ns();
    let list: Vec<_> = nat
        .list()
        .into_iter()
        .filter(|v| protocol.as_deref().is_none_or(|p| crate::stateful::proto_name(v.key.proto) == p))
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

fn pool_cmd(name: &str, cmd: PoolCmd) -> Result<()> {
    use crate::pool;
    let mut tables = open(name)?;
    let g = tables.globals()?;
    let Some(spec) = pool::Spec::of(&g) else {
        anyhow::bail!("instance '{name}' has no dynamic pool (set \"dynamic-pool\" in its configuration)");
    };
    match cmd {
        PoolCmd::List { json } => {
            let list = pool::list(&tables)?;
            let now = instance::unix_now();
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
            if let Ok(pid) = std::fs::read_to_string(instance::pid_file(name))
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

fn detach(name: &str) -> Result<()> {
    let mut did = Vec::new();
    if let Some(pid) =
        std::fs::read_to_string(instance::pid_file(name)).ok().and_then(|p| p.trim().parse::<i32>().ok())
        && instance::process_alive(pid)
    {
        // SAFETY: asks the instance's process to stop.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while instance::process_alive(pid) {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("instance '{name}' (pid {pid}) did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        did.push(format!("stopped instance '{name}' (pid {pid})"));
    }
    did.extend(crate::running::teardown(name, None)?);
    if did.is_empty() {
        println!("instance '{name}': nothing to detach");
    } else {
        println!("{}", did.join("; "));
    }
    Ok(())
}

/// `nat64-ctl reload`: checks the file here (a bad one is refused before the running
/// instance hears of it), then asks the instance (SIGHUP) and reports its answer.
fn reload(name: &str, config: Option<PathBuf>) -> Result<()> {
    let status = instance::read_status(name);
    if status.is_null() {
        anyhow::bail!(
            "instance '{name}' has no status file {}; is it running?",
            instance::status_file(name).display()
        );
    }
    let pid = status["pid"].as_i64().unwrap_or(0) as i32;
    if !instance::process_alive(pid) {
        anyhow::bail!(
            "instance '{name}': nat64-ctl run is not running (pid {pid}); start it to load a configuration"
        );
    }
    let path = match config {
        Some(p) => p.canonicalize().with_context(|| format!("--config {}", p.display()))?,
        None => PathBuf::from(status["config"].as_str().context("the status file names no config file")?),
    };
    if status["config"].as_str() != Some(&*path.to_string_lossy()) {
        anyhow::bail!(
            "--config {}: the instance reloads its own file ({}); edit that one",
            path.display(),
            status["config"].as_str().unwrap_or("?")
        );
    }
    let cfg = Config::load(&path)?;
    if cfg.instance != name {
        anyhow::bail!("instance: {:?}: the file is for another instance than '{name}'", cfg.instance);
    }
    let before = status["last-reload"]["at"].clone();
    // SAFETY: asks the instance's process to reload.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = instance::read_status(name);
        let r = &now["last-reload"];
        if r["at"] != before && !r["at"].is_null() {
            if r["ok"] == true {
                println!("instance '{name}': reloaded {}", path.display());
                return Ok(());
            }
            anyhow::bail!(
                "instance '{name}' refused the new configuration, the running one stays: {}",
                r["error"].as_str().unwrap_or("?")
            );
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("instance '{name}' did not answer the reload within 30 s");
        }
    }
}

fn run(cfg_path: &Path, metrics: Option<std::net::SocketAddr>) -> Result<()> {
    let mut cfg = Config::load(cfg_path)?;
    // Absolute, so that SIGHUP reads the same file and `reload` finds it from anywhere.
    let cfg_path = &cfg_path.canonicalize().with_context(|| format!("config file {}", cfg_path.display()))?;
    let signals = instance::block_signals()?;
    let mut found = None;
    if cfg.pref64_auto {
        // RFC 8781 §5: a PREF64 in the routers' advertisements first (asked for with a
        // router solicitation on the configured interfaces), else DNS64 (RFC 7050).
        let ifindexes: Vec<u32> =
            cfg.interfaces.iter().filter_map(|i| instance::ifindex(&i.name).ok()).collect();
        let d = match crate::ra::listen(&ifindexes, RA_WAIT) {
            Ok(Some(a)) => pref64::Discovered::from_ra(&a),
            Ok(None) => pref64::discover(cfg.pref64_resolver)?,
            Err(e) => {
                warn!("{e:#}; asking DNS64 only");
                pref64::discover(cfg.pref64_resolver)?
            }
        };
        info!("pref64 auto: {}", pref64_text(&d));
        cfg.pool6 = Some(d.prefix);
        found = Some(d);
    }
    let listener = metrics.map(crate::metrics::listen).transpose()?;
    let mut running = crate::running::Running::start(&cfg)?;
    if let Some(l) = listener {
        crate::metrics::serve(l, cfg.instance.clone(), running.dir.clone())?;
    }
    let started = instance::unix_now();
    let mut next_check = found.map(|d| std::time::Instant::now() + recheck(d.ttl));
    let mut last_reload = None;
    let status = |running: &crate::running::Running,
                  found: Option<&pref64::Discovered>,
                  last: &Option<serde_json::Value>| {
        instance::write_status(
            running,
            &instance::StatusExtra {
                config_path: cfg_path,
                pref64: found,
                started,
                last_reload: last.clone(),
            },
        )
    };
    status(&running, found.as_ref(), &last_reload)?;
    info!(
        "instance '{}' running: {} EAMT entries, maps pinned under {}; SIGHUP reloads {}; SIGTERM stops \
         (translation goes on; `nat64-ctl detach` ends it)",
        cfg.instance,
        cfg.eamt.len(),
        running.dir.display(),
        cfg_path.display()
    );
    loop {
        // The pool's upkeep runs every second; pref64 is asked again when due, and
        // the routers' PREF64 looked at every second.
        let now = std::time::Instant::now();
        let mut wait = next_check.map(|t| t.saturating_duration_since(now));
        if running.pool.is_some() || cfg.pref64_auto {
            wait = Some(wait.map_or(POOL_TICK, |w| w.min(POOL_TICK)));
        }
        let asked = match instance::wait_for_signal_timeout(&signals, wait)? {
            Some(libc::SIGUSR1) => true,
            Some(libc::SIGHUP) => {
                let outcome = Config::load(cfg_path).and_then(|mut new| {
                    if new.pref64_auto {
                        new.pool6 = cfg.pool6;
                    }
                    running.reload(&new).map(|()| new)
                });
                last_reload = Some(match outcome {
                    Ok(new) => {
                        info!("reloaded {}", cfg_path.display());
                        cfg = new;
                        serde_json::json!({"at": instance::unix_now_ms(), "ok": true})
                    }
                    Err(e) => {
                        warn!("reload refused, the running configuration stays: {e:#}");
                        serde_json::json!({"at": instance::unix_now_ms(), "ok": false, "error": format!("{e:#}")})
                    }
                });
                status(&running, found.as_ref(), &last_reload)?;
                false
            }
            Some(sig) => {
                info!("signal {sig}: stopping; the programs stay attached (`nat64-ctl detach` removes them)");
                break;
            }
            None => false,
        };
        if let Some(keeper) = running.pool.as_mut()
            && let Err(e) = keeper.tick(&mut running.tables, instance::unix_now(), asked)
        {
            warn!("dynamic-pool: {e:#}");
        }
        let Some(old) = found else { continue };
        // What the routers say wins while it holds; when it stops holding, DNS64 again.
        let heard = crate::ra::latest().map(|a| pref64::Discovered::from_ra(&a));
        let next = match heard {
            Some(d) => {
                if old.ra && d.prefix == old.prefix {
                    // A refresh: the lifetime starts again.
                    found = Some(d);
                    continue;
                }
                Some(d)
            }
            None if old.ra => Some(pref64::discover(cfg.pref64_resolver).unwrap_or_else(|e| {
                warn!("{e:#}; the routers' PREF64 expired: keeping {} and asking again in 30 s", old.prefix);
                pref64::Discovered { ttl: 30, ra: false, ..old }
            })),
            None => match next_check {
                Some(due) if std::time::Instant::now() >= due => {
                    Some(pref64::discover(cfg.pref64_resolver).unwrap_or_else(|e| {
                        warn!("{e:#}; keeping {} and asking again in 30 s", old.prefix);
                        pref64::Discovered { ttl: 30, ..old }
                    }))
                }
                _ => None,
            },
        };
        let Some(d) = next else { continue };
        if d.prefix != old.prefix {
            info!("pref64 auto: {} -> {}", old.prefix, pref64_text(&d));
            let mut g = running.tables.globals()?;
            g.pool6 = d.prefix.addr.octets();
            g.pool6_len = d.prefix.len;
            running.tables.set_globals(g)?;
            cfg.pool6 = Some(d.prefix);
            running.cfg.pool6 = Some(d.prefix);
        }
        found = Some(d);
        next_check = (!d.ra).then(|| std::time::Instant::now() + recheck(d.ttl));
        status(&running, found.as_ref(), &last_reload)?;
    }
    drop(running);
    Ok(())
}

/// Entry point of the `nat64-ctl` binary.
/// Every subcommand, as typed: `run`, `map add`, ... (for the documentation's check).
pub fn subcommands() -> Vec<String> {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    for c in Cli::command().get_subcommands() {
        let name = c.get_name().to_string();
        let subs: Vec<String> = c.get_subcommands().map(|s| format!("{name} {}", s.get_name())).collect();
        if subs.is_empty() {
            out.push(name);
        } else {
            out.extend(subs);
        }
    }
    out
}

pub fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { config, metrics } => run(&config, metrics),
        Cmd::Check { config } => {
            let cfg = Config::load(&config)?;
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
        Cmd::Map { cmd } => {
            let name = instance_name(&cli.instance);
            match cmd {
                MapCmd::Add { file: Some(file), .. } => {
                    let t = std::time::Instant::now();
                    let lines = crate::config::parse_eamt_file(&file)?;
                    let entries: Vec<EamtEntry> = lines.iter().map(|(_, e)| *e).collect();
                    let mut tables = open(&name)?;
                    tables.eamt_add_bulk(&entries, |i| format!("{}:{}", file.display(), lines[i].0))?;
                    println!(
                        "added {} entries from {} in {:.2} s",
                        entries.len(),
                        file.display(),
                        t.elapsed().as_secs_f64()
                    );
                    instance::general_path_sync(&tables, None)?;
                }
                MapCmd::Add { ipv4, ipv6, force, .. } => {
                    let entry = parse_entry(&ipv4.unwrap_or_default(), &ipv6.unwrap_or_default())?;
                    let mut tables = open(&name)?;
                    tables.eamt_add(&entry, force)?;
                    println!("added {} <-> {}", entry.v4, entry.v6);
                    instance::general_path_sync(&tables, None)?;
                }
                MapCmd::Del { ipv4, ipv6 } => {
                    let v4: Prefix4 = ipv4.parse()?;
                    let v6 = ipv6.map(|s| s.parse::<Prefix6>()).transpose()?;
                    let mut tables = open(&name)?;
                    let e = tables.eamt_del(Some(v4), v6)?;
                    println!("removed {} <-> {}", e.v4, e.v6);
                    instance::general_path_sync(&tables, Some(&e))?;
                }
                MapCmd::List { json } => {
                    let entries = open(&name)?.eamt()?;
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
        Cmd::Set { key, value } if key == "ipv4-translatable" => {
            let mut tables = open(&instance_name(&cli.instance))?;
            let mut g = tables.globals()?;
            let list = crate::config::parse_ipv4_translatable(&value)?;
            let mode = if g.flag(Globals::FLAG_CLAT) {
                crate::config::Mode::Clat
            } else {
                crate::config::Mode::Siit
            };
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
            instance::general_path_sync(&tables, None)?;
            Ok(())
        }
        Cmd::Set { key, value }
            if crate::config::nat::TIMEOUT_KEYS.contains(&key.as_str())
                || crate::config::nat::LIMIT_KEYS.contains(&key.as_str()) =>
        {
            let mut tables = open(&instance_name(&cli.instance))?;
            let stateful = tables.globals()?.flag(Globals::FLAG_STATEFUL);
            let Some(nat) = tables.nat.as_mut().filter(|_| stateful) else {
                anyhow::bail!("{key}: the instance is not a stateful NAT64 (mode \"nat64\")");
            };
            let v = if crate::config::nat::TIMEOUT_KEYS.contains(&key.as_str()) {
                crate::config::nat::parse_timeout(&key, &value)?
            } else {
                let n: u64 =
                    value.parse().map_err(|_| anyhow::anyhow!("{key}: {value:?}: not a whole number"))?;
                crate::config::nat::parse_limit(&key, n)?
            };
            nat.set_value(&key, v)?;
            println!("{key} = {v}");
            Ok(())
        }
        Cmd::Set { key, value } => {
            let mut tables = open(&instance_name(&cli.instance))?;
            let mut g = tables.globals()?;
            crate::config::apply_setting(&mut g, &key, &value)?;
            if key == "xdp-tcp-gro" && g.flag(Globals::FLAG_XDP_TCP_GRO) {
                instance::check_gro_forwarding()?;
            }
            tables.set_globals(g)?;
            println!("{key} = {value}");
            if key == "lowest-ipv6-mtu" {
                instance::general_path_sync(&tables, None)?;
            }
            Ok(())
        }
        Cmd::Status { json } => {
            let name = instance_name(&cli.instance);
            let tables = open(&name)?;
            let v = instance::status(&name, &tables)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", instance::status_text(&v));
            }
            Ok(())
        }
        Cmd::Show => {
            let tables = open(&instance_name(&cli.instance))?;
            let mut v = settings_json(&tables.globals()?);
            v["ipv4-translatable"] = serde_json::json!(
                tables.ipv4_translatable()?.iter().map(|p| p.to_string()).collect::<Vec<_>>()
            );
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Denylist4 { cmd } => {
            let mut tables = open(&instance_name(&cli.instance))?;
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
        Cmd::Stats { json } => {
            let counters = open(&instance_name(&cli.instance))?.counters()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats::json(&counters))?);
            } else {
                print!("{}", stats::table(&counters));
            }
            Ok(())
        }
        Cmd::Pool { cmd } => pool_cmd(&instance_name(&cli.instance), cmd),
        Cmd::Session { cmd } => session_cmd(&instance_name(&cli.instance), cmd),
        Cmd::Bib { cmd } => bib_cmd(&instance_name(&cli.instance), cmd),
        Cmd::Detach => detach(&instance_name(&cli.instance)),
        Cmd::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "nat64-ctl", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Manpage => {
            use clap::CommandFactory as _;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Cmd::Reload { config } => reload(&instance_name(&cli.instance), config),
        Cmd::PortBlock { address, config } => {
            let (blocks, slots) = match config {
                Some(path) => {
                    let cfg = Config::load(&path)?;
                    let n =
                        cfg.nat64.as_ref().context("port-block: the configuration is not mode \"nat64\"")?;
                    let b = n.port_blocks.context("port-block: the configuration sets no port-block-size")?;
                    (b, n.slots())
                }
                None => {
                    let tables = open(&instance_name(&cli.instance))?;
                    let nat =
                        tables.nat.as_ref().context("port-block: the instance is not a stateful NAT64")?;
                    nat.port_blocks().context("port-block: the instance runs without port blocks")?
                }
            };
            println!("{}", port_block_line(&blocks, &slots, &address)?);
            Ok(())
        }
        Cmd::Translate { address, config } => {
            let line = match config {
                Some(path) => explain::explain(&Config::load(&path)?, address)?,
                None => {
                    let tables = open(&instance_name(&cli.instance))?;
                    explain::explain(&tables, address).context("reading the instance's maps")?
                }
            };
            println!("{line}");
            Ok(())
        }
    }
}
