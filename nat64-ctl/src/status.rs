//! `nat64-ctl status`: the running instance's status file and maps, as JSON and as
//! text.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};

use crate::{
    load::{pin_dir, status_file},
    sys::{process_alive, unix_now},
    tables::Tables,
};

/// What the status file tells beside the instance itself.
pub struct StatusExtra<'a> {
    pub config_path: &'a Path,
    pub pref64: Option<&'a crate::pref64::Discovered>,
    pub started: u64,
    /// The last reload's outcome (`{"at", "ok", "error"}`), if there was one.
    pub last_reload: Option<serde_json::Value>,
}

/// The instance's status file as JSON (`Null` when there is none or it is unreadable).
pub fn read_status(instance: &str) -> serde_json::Value {
    fs::read_to_string(status_file(instance))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The running instance's status: the status file and what its maps hold now.
pub fn status(instance: &str, tables: &Tables) -> Result<serde_json::Value> {
    let path = status_file(instance);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let g = tables.globals()?;
    let pool6 = (g.pool6_len != 0).then(|| format!("{}/{}", std::net::Ipv6Addr::from(g.pool6), g.pool6_len));
    v["pool6"] = serde_json::json!(pool6);
    let eamt = tables.eamt()?.len();
    let deny = tables.denylist4()?.len();
    v["eamt-entries"] = serde_json::json!(eamt);
    v["denylist4-entries"] = serde_json::json!(deny);
    let pid = v["pid"].as_i64().unwrap_or(0) as i32;
    v["running"] = serde_json::json!(process_alive(pid));
    let ports = tables.ports();
    for i in v["interfaces"].as_array_mut().into_iter().flatten() {
        i["redirect"] = redirect_status(&ports, i["ifindex"].as_u64());
    }
    let pool_mappings = tables.pool6.keys().count();
    v["maps"] = serde_json::json!({
        "eamt": {"entries": eamt, "max": nat64_common::maps::EAMT_MAX_ENTRIES},
        "denylist4": {"entries": deny, "max": nat64_common::maps::DENYLIST4_MAX_ENTRIES},
        "pool": {"entries": pool_mappings, "max": nat64_common::maps::POOL_MAX},
    });
    if let Some(spec) = crate::pool::Spec::of(&g) {
        let mappings = pool_mappings;
        let capacity = spec.capacity(tables)?;
        v["dynamic-pool"] = serde_json::json!({
            "prefix": spec.prefix.to_string(),
            "lease-s": spec.lease,
            "mappings": mappings,
            "free": capacity.saturating_sub(mappings),
        });
    }
    if let Some(nat) = tables.nat.as_ref().filter(|_| g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)) {
        let mut per = serde_json::Map::new();
        for (name, bib, sessions) in nat.counts() {
            per.insert(name.into(), serde_json::json!({"bib": bib, "sessions": sessions}));
        }
        let c = nat.cfg.get(&0, 0).unwrap_or_default();
        let top: Vec<_> = nat
            .top_subscribers(10)
            .into_iter()
            .map(|(p, ports)| serde_json::json!({"subscriber": p.to_string(), "ports": ports}))
            .collect();
        let blocks = (c.flags & nat64_common::maps::NatConfig::FLAG_DYNAMIC_BLOCKS != 0).then(|| {
            let held = nat.held_blocks();
            serde_json::json!({
                "size": c.block_size,
                "per-host": c.max_blocks,
                "total": c.blocks_per_addr * c.pool4_count,
                "held": held.len(),
                "ports-in-use": held.iter().map(|h| h.3).sum::<u64>(),
            })
        });
        v["nat64"] = serde_json::json!({
            "pool4": nat.pool4_use(),
            "dynamic-port-blocks": blocks,
            "protocols": per,
            "limits": {
                "max-ports-per-host": c.max_ports,
                "subscriber-prefix-length": c.subscriber_len,
                "port-reuse-delay": c.reuse_delay,
                "max-simultaneous-opens": c.max_syns,
            },
            "syns-held": crate::simopen::held(nat),
            "top-subscribers": top,
            "max-sessions": Tables::pinned_sessions(&pin_dir(instance)).ok().flatten(),
            "memory": nat.memory().into_iter().map(|(name, b)| (name.to_string(), b.into())).collect::<serde_json::Map<_, _>>(),
            "sweep": fs::read_to_string(crate::sweep::sweep_report(instance))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
        });
    }
    // Session sync: what its thread last wrote (every second while it runs).
    if let Some(mut sync) = fs::read_to_string(crate::sync::node::sync_report(instance))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        let at = sync["at"].as_u64().unwrap_or(0);
        sync["report-age-ms"] = serde_json::json!(crate::sys::unix_now_ms().saturating_sub(at));
        v["sync"] = sync;
    }
    v["uptime-s"] = serde_json::json!(unix_now().saturating_sub(v["started"].as_u64().unwrap_or(0)));
    Ok(v)
}

/// Whether the fast path sends out of an interface itself, and why not: `null` for an
/// L3 device (the kernel frames what leaves it).
fn redirect_status(
    ports: &[(u32, nat64_common::maps::PortState)],
    ifindex: Option<u64>,
) -> serde_json::Value {
    let Some((_, p)) = ports.iter().find(|(i, _)| Some(*i as u64) == ifindex) else {
        return serde_json::Value::Null;
    };
    let why = nat64_common::maps::PortWhy::from_u32(p.why).unwrap_or(nat64_common::maps::PortWhy::Unknown);
    serde_json::json!({
        "tc": true,
        "xdp": p.xdp_target(),
        "why": crate::ports::why_text(why),
        "remedies": (!p.xdp_target()).then_some(crate::ports::REMEDIES),
    })
}

/// `status` as text, one fact a line.
pub fn status_text(v: &serde_json::Value) -> String {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Null => "none".to_string(),
        other => other.to_string(),
    };
    let process = if v["running"] == true {
        format!("pid {}", s("pid"))
    } else {
        "nat64-ctl not running; the programs stay attached".to_string()
    };
    let mut out = format!(
        "instance   {} ({process}, up {} s)\nmode       {}\nconfig     {}\n",
        s("instance"),
        s("uptime-s"),
        s("mode"),
        s("config")
    );
    for i in v["interfaces"].as_array().into_iter().flatten() {
        out += &format!(
            "interface  {} ({}, {} id {})\n",
            i["name"].as_str().unwrap_or("?"),
            i["attach"].as_str().unwrap_or("?"),
            i["program"].as_str().unwrap_or("?"),
            i["program-id"]
        );
        let r = &i["redirect"];
        out += &match (r["xdp"].as_bool(), r["why"].as_str()) {
            (Some(true), Some(why)) => format!("           fast path out: XDP and TC redirect ({why})\n"),
            (Some(false), Some(why)) => format!(
                "           fast path out: TC redirect only; it takes no XDP frames ({why}), so XDP hands \
                 its packets to the kernel (fwd_kernel_no_xdp_xmit). For the fast path: {}\n",
                r["remedies"].as_str().unwrap_or("")
            ),
            _ => "           fast path out: none (L3 device: the kernel sends what leaves it)\n".to_string(),
        };
    }
    let prefix_name = if v["mode"] == "clat" { "pref64" } else { "pool6" };
    out += &format!("{prefix_name:<10} {}", s("pool6"));
    match v["pref64"]["source"].as_str() {
        Some("auto") if v["pref64"]["via"] == "ra" => {
            out += &format!(
                " (auto: router advertisement from {}, lifetime {} s)",
                v["pref64"]["router"].as_str().unwrap_or("?"),
                v["pref64"]["lifetime"]
            )
        }
        Some("auto") => {
            out += &format!(
                " (auto: DNS64 at {}, TTL {} s)",
                v["pref64"]["resolver"].as_str().unwrap_or("?"),
                v["pref64"]["ttl"]
            )
        }
        Some(src) => out += &format!(" ({src})"),
        None => {}
    }
    let m = &v["maps"];
    out += &format!(
        "\neamt       {} of {} entries\ndenylist4  {} of {} prefixes\n",
        m["eamt"]["entries"], m["eamt"]["max"], m["denylist4"]["entries"], m["denylist4"]["max"]
    );
    if v["general-path"].is_string() {
        out += &format!("general    {}\n", s("general-path"));
    }
    let d = &v["dynamic-pool"];
    if d.is_object() {
        out += &format!(
            "pool       {} ({} mappings, {} free, lease {} s)\n",
            d["prefix"].as_str().unwrap_or("?"),
            d["mappings"],
            d["free"],
            d["lease-s"]
        );
    }
    if v["masquerade"].is_string() {
        out += &format!("masquerade {}\n", s("masquerade"));
    }
    let y = &v["sync"];
    if y.is_object() {
        out += &format!(
            "sync       on {} (node {}): {} messages and {} sessions sent, {} received, {} events dropped; every \
             session again every {} s\n",
            y["listen"].as_str().unwrap_or("?"),
            y["node"].as_str().unwrap_or("?"),
            y["messages-sent"],
            y["records-sent"],
            y["records-received"],
            y["events-dropped"],
            y["refresh-s"]
        );
        for p in y["peers"].as_array().into_iter().flatten() {
            let contact = match p["last-contact-ms-ago"].as_u64() {
                Some(ms) => format!("last contact {:.1} s ago, lag {} ms", ms as f64 / 1e3, p["lag-ms"]),
                None => "never heard from".to_string(),
            };
            out += &format!(
                "sync peer  {}: {contact}; {} messages, {} sessions, {} missing{}\n",
                p["address"].as_str().unwrap_or("?"),
                p["messages"],
                p["records"],
                p["missing"],
                if p["bulk-copy-received"] == true { ", bulk copy received" } else { "" }
            );
        }
    }
    let n = &v["nat64"];
    if n.is_object() {
        for (name, c) in n["protocols"].as_object().into_iter().flatten() {
            out += &format!("nat64 {name:<4} {} BIB entries, {} sessions\n", c["bib"], c["sessions"]);
        }
        out += &format!("nat64      room for {} sessions (max-sessions)\n", n["max-sessions"]);
        let tables: Vec<(&String, u64)> = n["memory"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
            .collect();
        if !tables.is_empty() {
            let total: u64 = tables.iter().map(|t| t.1).sum();
            let each: Vec<String> = tables.iter().map(|(k, b)| format!("{k} {}", bytes(*b))).collect();
            out += &format!("memory     {} in the NAT tables ({})\n", bytes(total), each.join(", "));
        }
        let w = &n["sweep"];
        if w.is_object() {
            out += &format!(
                "sweep      every {:.0} s, last run {:.1} ms over {} entries ({} sessions ended, {} BIB entries \
                 released); {} runs, {:.0} ms in all\n",
                w["every-s"].as_f64().unwrap_or(1.0),
                w["ms"].as_f64().unwrap_or(0.0),
                w["entries"],
                w["sessions-ended"],
                w["released"],
                w["runs"],
                w["total-ms"].as_f64().unwrap_or(0.0)
            );
        }
        for a in n["pool4"].as_array().into_iter().flatten() {
            out += &format!(
                "pool4      {} ports {}-{}: {} in use, {} held back\n",
                a["address"].as_str().unwrap_or("?"),
                a["first"],
                a["last"],
                a["in-use"],
                a["held-back"]
            );
        }
        let b = &n["dynamic-port-blocks"];
        if b.is_object() {
            out += &format!(
                "blocks     {} of {} dynamic port blocks of {} ports held ({} ports in use), at most {} a subscriber\n",
                b["held"], b["total"], b["size"], b["ports-in-use"], b["per-host"]
            );
        }
        let l = &n["limits"];
        let max = match l["max-ports-per-host"].as_u64() {
            Some(0) | None => "no limit".to_string(),
            Some(m) => format!("at most {m}"),
        };
        out += &format!(
            "limits     ports per /{} subscriber: {max}; a released port is held back {} s\n",
            l["subscriber-prefix-length"], l["port-reuse-delay"]
        );
        out += &format!(
            "syns       {} held for a simultaneous open (at most {})\n",
            n["syns-held"], l["max-simultaneous-opens"]
        );
        for t in n["top-subscribers"].as_array().into_iter().flatten() {
            out += &format!(
                "subscriber {} holds {} ports\n",
                t["subscriber"].as_str().unwrap_or("?"),
                t["ports"]
            );
        }
    }
    let r = &v["last-reload"];
    if r.is_object() {
        match r["ok"].as_bool() {
            Some(true) => out += &format!("reload     ok at {}\n", r["at"]),
            _ => {
                out += &format!("reload     refused at {}: {}\n", r["at"], r["error"].as_str().unwrap_or("?"))
            }
        }
    }
    out
}

/// A size for people: kB below 10 MB, MB with one decimal above.
fn bytes(b: u64) -> String {
    if b < 10_000_000 { format!("{} kB", b.div_ceil(1000)) } else { format!("{:.1} MB", b as f64 / 1e6) }
}
