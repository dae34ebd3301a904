//! `nat64-ctl run`: the daemon. It discovers pref64 when asked, starts the instance
//! (`running::Running`), writes the status file, and serves signals: SIGHUP reloads the
//! configuration, SIGUSR1 refills the dynamic pool, SIGINT and SIGTERM stop it; the
//! sweep, the port watch, router advertisements, the metrics server and the NAT log
//! run on threads of their own.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use log::{info, warn};

use crate::{
    config::Config,
    pref64,
    running::{self, Running},
    status, sys,
};

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

pub fn run(cfg_path: &Path, instance: Option<&str>, metrics: Option<std::net::SocketAddr>) -> Result<()> {
    let mut cfg = Config::load_for(cfg_path, instance)?;
    // Absolute, so that SIGHUP reads the same file and `reload` finds it from anywhere.
    let cfg_path = &cfg_path.canonicalize().with_context(|| format!("config file {}", cfg_path.display()))?;
    let signals = sys::block_signals()?;
    let mut found = None;
    if cfg.pref64_auto {
        let d = discover_at_start(&cfg)?;
        info!("pref64 auto: {}", pref64_text(&d));
        cfg.pool6 = Some(d.prefix);
        found = Some(d);
    }
    let listener = metrics.map(crate::metrics::listen).transpose()?;
    let mut running = Running::start(&cfg)?;
    if let Some(l) = listener {
        crate::metrics::serve(l, cfg.instance.clone(), running.dir.clone())?;
    }
    let started = sys::unix_now();
    let mut next_check = found.map(|d| Instant::now() + recheck(d.ttl));
    let mut last_reload = None;
    let status = |running: &Running, found: Option<&pref64::Discovered>, last: &Option<serde_json::Value>| {
        running::write_status(
            running,
            &status::StatusExtra { config_path: cfg_path, pref64: found, started, last_reload: last.clone() },
        )
    };
    status(&running, found.as_ref(), &last_reload)?;
    crate::notify::ready(&running::summary(&running));
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
        let now = Instant::now();
        let mut wait = next_check.map(|t| t.saturating_duration_since(now));
        if running.pool.is_some() || cfg.pref64_auto {
            wait = Some(wait.map_or(POOL_TICK, |w| w.min(POOL_TICK)));
        }
        let asked = match sys::wait_for_signal_timeout(&signals, wait)? {
            Some(libc::SIGUSR1) => true,
            Some(libc::SIGHUP) => {
                crate::notify::reloading();
                last_reload = Some(reload(&mut running, &mut cfg, cfg_path));
                status(&running, found.as_ref(), &last_reload)?;
                crate::notify::ready(&running::summary(&running));
                false
            }
            Some(sig) => {
                crate::notify::stopping();
                info!("signal {sig}: stopping; the programs stay attached (`nat64-ctl detach` removes them)");
                break;
            }
            None => false,
        };
        if let Some(keeper) = running.pool.as_mut()
            && let Err(e) = keeper.tick(&mut running.tables, sys::unix_now(), asked)
        {
            warn!("dynamic-pool: {e:#}");
        }
        let Some(old) = found else { continue };
        let d = match pref64_next(old, next_check, &cfg) {
            Pref64Step::Same => continue,
            Pref64Step::Refreshed(d) => {
                found = Some(d);
                continue;
            }
            Pref64Step::Next(d) => d,
        };
        if d.prefix != old.prefix {
            info!("pref64 auto: {} -> {}", old.prefix, pref64_text(&d));
            let mut g = running.tables.globals()?;
            g.pool6 = d.prefix.addr().octets();
            g.pool6_len = d.prefix.prefix_len();
            running.tables.set_globals(g)?;
            cfg.pool6 = Some(d.prefix);
            running.cfg.pool6 = Some(d.prefix);
        }
        found = Some(d);
        next_check = (!d.ra).then(|| Instant::now() + recheck(d.ttl));
        status(&running, found.as_ref(), &last_reload)?;
    }
    drop(running);
    Ok(())
}

/// RFC 8781 §5: a PREF64 in the routers' advertisements first (asked for with a router
/// solicitation on the configured interfaces), else DNS64 (RFC 7050).
fn discover_at_start(cfg: &Config) -> Result<pref64::Discovered> {
    let ifindexes: Vec<u32> = cfg.interfaces.iter().filter_map(|i| sys::ifindex(&i.name).ok()).collect();
    match crate::ra::listen(&ifindexes, RA_WAIT) {
        Ok(Some(a)) => Ok(pref64::Discovered::from_ra(&a)),
        Ok(None) => pref64::discover(cfg.pref64_resolver),
        Err(e) => {
            warn!("{e:#}; asking DNS64 only");
            pref64::discover(cfg.pref64_resolver)
        }
    }
}

/// SIGHUP: the file read again and applied (`cfg` then follows it), or refused with
/// the running configuration kept. The outcome, for the status file.
fn reload(running: &mut Running, cfg: &mut Config, cfg_path: &Path) -> serde_json::Value {
    let outcome = Config::load_for(cfg_path, Some(&cfg.instance)).and_then(|mut new| {
        if new.pref64_auto {
            new.pool6 = cfg.pool6;
        }
        running.reload(&new).map(|()| new)
    });
    match outcome {
        Ok(new) => {
            info!("reloaded {}", cfg_path.display());
            *cfg = new;
            serde_json::json!({"at": sys::unix_now_ms(), "ok": true})
        }
        Err(e) => {
            warn!("reload refused, the running configuration stays: {e:#}");
            serde_json::json!({"at": sys::unix_now_ms(), "ok": false, "error": format!("{e:#}")})
        }
    }
}

/// What a second's look at pref64 found.
enum Pref64Step {
    /// Nothing new.
    Same,
    /// The routers repeated the prefix: its lifetime starts again.
    Refreshed(pref64::Discovered),
    /// A prefix to take (maybe the same one, from another source or a new answer).
    Next(pref64::Discovered),
}

/// What the routers say wins while it holds; when it stops holding, DNS64 again, and
/// DNS64's answer is asked again when its TTL runs out (`next_check`).
fn pref64_next(old: pref64::Discovered, next_check: Option<Instant>, cfg: &Config) -> Pref64Step {
    match crate::ra::latest().map(|a| pref64::Discovered::from_ra(&a)) {
        Some(d) if old.ra && d.prefix == old.prefix => Pref64Step::Refreshed(d),
        Some(d) => Pref64Step::Next(d),
        None if old.ra => Pref64Step::Next(pref64::discover(cfg.pref64_resolver).unwrap_or_else(|e| {
            warn!("{e:#}; the routers' PREF64 expired: keeping {} and asking again in 30 s", old.prefix);
            pref64::Discovered { ttl: 30, ra: false, ..old }
        })),
        None => match next_check {
            Some(due) if Instant::now() >= due => {
                Pref64Step::Next(pref64::discover(cfg.pref64_resolver).unwrap_or_else(|e| {
                    warn!("{e:#}; keeping {} and asking again in 30 s", old.prefix);
                    pref64::Discovered { ttl: 30, ..old }
                }))
            }
            _ => Pref64Step::Same,
        },
    }
}
