//! The `nat64-ctl` command line: run the translator and manage a running instance.

use std::{net::IpAddr, path::PathBuf};

mod args;
mod instance;
pub mod nat;
mod tables;

use args::instance_name;
use nat::{BibCmd, PoolCmd, SessionCmd};
use tables::{DenyCmd, MapCmd};

use crate::daemon;
use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Instance to act on (default: the only one running, else "default"). With `run`
    /// and `check`: the instance a file without "instance" is for (the systemd unit
    /// passes its instance name); a file naming another is refused.
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
    let name = || instance_name(&cli.instance);
    match cli.cmd {
        Cmd::Run { config, metrics } => daemon::run(&config, cli.instance.as_deref(), metrics),
        Cmd::Check { config } => tables::check(&config, cli.instance.as_deref()),
        Cmd::Map { cmd } => tables::map_cmd(&name(), cmd),
        Cmd::Set { key, value } if key == "ipv4-translatable" => {
            tables::set_ipv4_translatable(&name(), &key, &value)
        }
        Cmd::Set { key, value }
            if crate::config::nat::TIMEOUT_KEYS.contains(&key.as_str())
                || crate::config::nat::LIMIT_KEYS.contains(&key.as_str()) =>
        {
            tables::set_nat(&name(), &key, &value)
        }
        Cmd::Set { key, value } => tables::set_global(&name(), &key, &value),
        Cmd::Status { json } => tables::status_cmd(&name(), json),
        Cmd::Show => tables::show(&name()),
        Cmd::Denylist4 { cmd } => tables::denylist_cmd(&name(), cmd),
        Cmd::Stats { json } => tables::stats_cmd(&name(), json),
        Cmd::Pool { cmd } => nat::pool_cmd(&name(), cmd),
        Cmd::Session { cmd } => nat::session_cmd(&name(), cmd),
        Cmd::Bib { cmd } => nat::bib_cmd(&name(), cmd),
        Cmd::Detach => instance::detach(&name()),
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
        Cmd::Reload { config } => instance::reload(&name(), config),
        Cmd::PortBlock { address, config } => nat::port_block_cmd(&cli.instance, &address, config),
        Cmd::Translate { address, config } => tables::translate_cmd(&cli.instance, address, config),
    }
}
