//! `nat64-ctl run --metrics ADDR:PORT`: the counters and the maps' fill over HTTP, in
//! Prometheus text format, from a thread of its own that reads the pinned maps.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, Result};
use log::{info, warn};

use crate::{stats, tables::Tables};

/// Where `--metrics` listens when given without an address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// One scrape: the counters and the gauges, read now.
pub fn render(instance: &str, dir: &std::path::Path) -> Result<String> {
    let tables = Tables::open_pinned(dir)?;
    let counters = tables.counters()?;
    let g = tables.globals()?;
    let mut gauges = vec![
        ("nat64_eamt_entries", "EAMT entries.", tables.eamt()?.len() as u64),
        ("nat64_denylist4_entries", "denylist4 prefixes.", tables.denylist4()?.len() as u64),
    ];
    if let Some(spec) = crate::pool::Spec::of(&g) {
        let mappings = tables.pool6.keys().count() as u64;
        let capacity = spec.capacity(&tables)? as u64;
        gauges.push(("nat64_pool_mappings", "Dynamic-pool mappings in force.", mappings));
        gauges.push((
            "nat64_pool_free_addresses",
            "Dynamic-pool addresses free.",
            capacity.saturating_sub(mappings),
        ));
    }
    let mut out = stats::prometheus(instance, &counters, &gauges);
    out += "# HELP nat64_interface_xdp_redirect_target Whether XDP programs send out of this attached Ethernet \
            port themselves (1) or hand its packets to the kernel because it takes no XDP frames (0).\n\
            # TYPE nat64_interface_xdp_redirect_target gauge\n";
    let ports = tables.ports();
    let status = crate::status::read_status(instance);
    for i in status["interfaces"].as_array().into_iter().flatten() {
        let Some((_, p)) = ports.iter().find(|(x, _)| Some(*x as u64) == i["ifindex"].as_u64()) else {
            continue;
        };
        out += &format!(
            "nat64_interface_xdp_redirect_target{{instance=\"{instance}\",interface=\"{}\"}} {}\n",
            i["name"].as_str().unwrap_or("?"),
            p.xdp_target() as u8
        );
    }
    out += &sync_gauges(instance);
    if let Some(nat) = tables.nat.as_ref().filter(|_| g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)) {
        out += "# HELP nat64_nat_bib_entries Stateful NAT64 BIB entries, by protocol.\n\
                # TYPE nat64_nat_bib_entries gauge\n\
                # HELP nat64_nat_sessions Stateful NAT64 sessions, by protocol.\n\
                # TYPE nat64_nat_sessions gauge\n";
        for (proto, bib, sessions) in nat.counts() {
            out += &format!("nat64_nat_bib_entries{{instance=\"{instance}\",protocol=\"{proto}\"}} {bib}\n");
            out +=
                &format!("nat64_nat_sessions{{instance=\"{instance}\",protocol=\"{proto}\"}} {sessions}\n");
        }
        out += "# HELP nat64_pool4_ports_in_use Ports of a pool4 address held by BIB entries.\n\
                # TYPE nat64_pool4_ports_in_use gauge\n";
        for a in nat.pool4_use() {
            out += &format!(
                "nat64_pool4_ports_in_use{{instance=\"{instance}\",address=\"{}\"}} {}\n",
                a["address"].as_str().unwrap_or("?"),
                a["in-use"]
            );
        }
    }
    Ok(out)
}

/// Session sync's peers, from the sync report (see `crate::sync::node`).
fn sync_gauges(instance: &str) -> String {
    let sync: serde_json::Value = std::fs::read_to_string(crate::sync::node::sync_report(instance))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let peers = match sync["peers"].as_array() {
        Some(p) if !p.is_empty() => p.clone(),
        _ => return String::new(),
    };
    let mut out = String::new();
    for (metric, help, key, scale) in [
        (
            "nat64_sync_peer_last_contact_seconds",
            "Seconds since a session-sync peer's last datagram was taken (absent: never heard from).",
            "last-contact-ms-ago",
            1e-3,
        ),
        (
            "nat64_sync_peer_lag_seconds",
            "How old a peer's last datagram was on arrival, by the two clocks.",
            "lag-ms",
            1e-3,
        ),
        (
            "nat64_sync_peer_missing_datagrams",
            "Datagrams a peer sent that have not arrived (sequence gaps).",
            "missing",
            1.0,
        ),
    ] {
        out += &format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n");
        for p in &peers {
            if let Some(v) = p[key].as_f64() {
                out += &format!(
                    "{metric}{{instance=\"{instance}\",peer=\"{}\"}} {}\n",
                    p["address"].as_str().unwrap_or("?"),
                    v * scale
                );
            }
        }
    }
    out
}

fn answer(mut s: TcpStream, instance: &str, dir: &std::path::Path) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    let mut r = BufReader::new(s.try_clone()?);
    r.read_line(&mut line)?;
    // The rest of the request head.
    let mut h = String::new();
    while r.read_line(&mut h)? > 2 {
        h.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = if !line.starts_with("GET ") {
        ("405 Method Not Allowed", "text/plain", "GET only\n".to_string())
    } else if path == "/metrics" {
        match render(instance, dir) {
            Ok(b) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", b),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("{e:#}\n")),
        }
    } else {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Binds `addr`, before anything else is started, so that a bad address changes nothing.
pub fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("--metrics {addr}: cannot listen"))
}

/// Serves scrapes in the background.
pub fn serve(listener: TcpListener, instance: String, dir: PathBuf) -> Result<()> {
    info!("metrics: http://{}/metrics", listener.local_addr()?);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(s) => {
                    if let Err(e) = answer(s, &instance, &dir) {
                        warn!("metrics: {e}");
                    }
                }
                Err(e) => warn!("metrics: accept: {e}"),
            }
        }
    });
    Ok(())
}
