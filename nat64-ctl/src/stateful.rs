//! Stateful NAT64 (mode "nat64") as nat64-ctl sees it: the settings it writes for the
//! data path (pool4, the secret key, the lifetimes), the sweep that ends expired
//! sessions and the BIB entries no session uses any more, and the session list.
//!
//! The data path makes BIB entries and sessions itself (`nat64-ebpf`'s NAT stages); the
//! maps are pinned, so a restart of nat64-ctl keeps every one of them.

use std::{collections::HashSet, net::Ipv4Addr, path::Path, thread, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, Map, MapData};
use log::warn;
use nat64_common::{
    maps::{
        AdfKey, Bib4Entry, Bib4Key, Bib6Key, MAP_BIB4, MAP_BIB6, MAP_NAT_ADDRS, MAP_NAT_ADF, MAP_NAT_CFG,
        MAP_NAT_POOL4, MAP_SESSIONS, NatConfig, Pool4Slot, Session, SessionKey,
    },
    nat::TcpState,
};

use crate::config::nat::{Filtering, Nat64, StaticBib};

/// A BIB entry younger than this is left alone by the sweep even without a session:
/// the data path makes the entry first and its session right after.
const YOUNG_NS: u64 = 2_000_000_000;

/// The stateful translator's maps.
pub struct NatTables {
    pub cfg: Array<MapData, NatConfig>,
    pub pool4: Array<MapData, Pool4Slot>,
    pub addrs: HashMap<MapData, [u8; 4], u32>,
    pub bib6: HashMap<MapData, Bib6Key, Bib4Key>,
    pub bib4: HashMap<MapData, Bib4Key, Bib4Entry>,
    pub sessions: HashMap<MapData, SessionKey, Session>,
    pub adf: HashMap<MapData, AdfKey, u8>,
    /// `bib-log`: where the sweep reports the BIB entries it ends.
    pub log: Option<crate::natlog::Shared>,
}

/// The maps' names, pinned with the others.
pub const MAPS: [&str; 7] =
    [MAP_NAT_CFG, MAP_NAT_POOL4, MAP_NAT_ADDRS, MAP_BIB6, MAP_BIB4, MAP_SESSIONS, MAP_NAT_ADF];

impl NatTables {
    pub fn from_maps(mut get: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        Ok(Self {
            cfg: Array::try_from(get(MAP_NAT_CFG)?)?,
            pool4: Array::try_from(get(MAP_NAT_POOL4)?)?,
            addrs: HashMap::try_from(get(MAP_NAT_ADDRS)?)?,
            bib6: HashMap::try_from(get(MAP_BIB6)?)?,
            bib4: HashMap::try_from(get(MAP_BIB4)?)?,
            sessions: HashMap::try_from(get(MAP_SESSIONS)?)?,
            adf: HashMap::try_from(get(MAP_NAT_ADF)?)?,
            log: None,
        })
    }

    /// Writes the settings: pool4 (slots first, then the addresses the data path
    /// recognises, the ones gone removed), the lifetimes and filtering, and the secret
    /// key, made once (from the kernel's random source) and kept with the maps so that
    /// a restart chooses as before.
    pub fn apply(&mut self, n: &Nat64) -> Result<()> {
        let slots = n.slots();
        for (i, (a, first, last)) in slots.iter().enumerate() {
            let slot = Pool4Slot { addr: a.octets(), first: *first, last: *last };
            self.pool4.set(i as u32, slot, 0).context("writing NAT_POOL4")?;
        }
        let wanted: Vec<[u8; 4]> = slots.iter().map(|s| s.0.octets()).collect();
        for (i, a) in wanted.iter().enumerate() {
            self.addrs.insert(a, i as u32, 0).context("writing NAT_ADDRS")?;
        }
        let stale: Vec<[u8; 4]> =
            self.addrs.keys().filter_map(|k| k.ok()).filter(|k| !wanted.contains(k)).collect();
        for a in stale {
            let _ = self.addrs.remove(&a);
        }
        // Static BIB entries: the configured ones in, the ones no longer configured out.
        let current = self.statics();
        for b in current.iter().filter(|b| !n.bib.contains(b)) {
            self.bib_del(b.proto, b.v4)?;
        }
        for b in n.bib.iter().filter(|b| !current.contains(b)) {
            self.bib_add(b)?;
        }
        let old = self.cfg.get(&0, 0).unwrap_or_default();
        let key = if old.key == [0, 0] { random_key()? } else { old.key };
        let mut cfg = NatConfig {
            key,
            pool4_count: slots.len() as u32,
            flags: match n.filtering {
                Filtering::EndpointIndependent => NatConfig::FLAG_EIF,
                Filtering::AddressDependent => 0,
                Filtering::AddressAndPortDependent => NatConfig::FLAG_APDF,
            },
            udp: n.timeouts.udp,
            tcp_established: n.timeouts.tcp_established,
            tcp_transitory: n.timeouts.tcp_transitory,
            icmp: n.timeouts.icmp,
            ..Default::default()
        };
        if n.bib_log.is_some() {
            cfg.flags |= NatConfig::FLAG_LOG;
        }
        if let Some(b) = &n.port_blocks {
            cfg.block_size = b.size;
            cfg.blocks_per_addr = b.per_addr;
            cfg.block_prefix = b.prefix.addr.octets();
            cfg.block_prefix_len = b.prefix.len;
            cfg.block_host_len = b.host_len;
        }
        self.cfg.set(0, cfg, 0).context("writing NAT_CFG")
    }

    /// The static BIB entries in the maps.
    pub fn statics(&self) -> Vec<StaticBib> {
        let mut out: Vec<StaticBib> = self
            .bib4
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, e)| e.flags & Bib4Entry::FLAG_STATIC != 0)
            .map(|(k, e)| StaticBib {
                proto: k.proto,
                v6: std::net::SocketAddrV6::new(e.v6.addr.into(), e.v6.port, 0, 0),
                v4: std::net::SocketAddrV4::new(k.addr.into(), k.port),
            })
            .collect();
        out.sort_by_key(|b| (b.proto, b.v4.ip().octets(), b.v4.port()));
        out
    }

    /// Adds a static BIB entry, replacing the dynamic mappings either of its sides had
    /// (their sessions then go with the sweep). BIB4 first: from then on, IPv4 packets
    /// reach the server; then BIB6, for what the server sends.
    pub fn bib_add(&mut self, b: &StaticBib) -> Result<()> {
        let k4 = Bib4Key { addr: b.v4.ip().octets(), port: b.v4.port(), proto: b.proto, _pad: 0 };
        let k6 = Bib6Key { addr: b.v6.ip().octets(), port: b.v6.port(), proto: b.proto, _pad: 0 };
        if let Ok(old) = self.bib4.get(&k4, 0)
            && old.v6 != k6
        {
            let _ = self.bib6.remove(&old.v6);
        }
        if let Ok(old4) = self.bib6.get(&k6, 0)
            && old4 != k4
        {
            let _ = self.bib4.remove(&old4);
        }
        let e = Bib4Entry { v6: k6, flags: Bib4Entry::FLAG_STATIC, born: 0 };
        self.bib4.insert(k4, e, 0).context("writing BIB4")?;
        self.bib6.insert(k6, k4, 0).context("writing BIB6")
    }

    /// Removes the static BIB entry of (`proto`, `v4`); `false` when there is none.
    pub fn bib_del(&mut self, proto: u8, v4: std::net::SocketAddrV4) -> Result<bool> {
        let k4 = Bib4Key { addr: v4.ip().octets(), port: v4.port(), proto, _pad: 0 };
        match self.bib4.get(&k4, 0) {
            Ok(e) if e.flags & Bib4Entry::FLAG_STATIC != 0 => {
                let _ = self.bib6.remove(&e.v6);
                self.bib4.remove(&k4).context("removing from BIB4")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Every BIB entry: (protocol, IPv6 side, IPv4 side, static), sorted.
    pub fn bib_list(&self) -> Vec<(u8, std::net::SocketAddrV6, std::net::SocketAddrV4, bool)> {
        let mut out: Vec<_> = self
            .bib4
            .iter()
            .filter_map(|e| e.ok())
            .map(|(k, e)| {
                (
                    k.proto,
                    std::net::SocketAddrV6::new(e.v6.addr.into(), e.v6.port, 0, 0),
                    std::net::SocketAddrV4::new(k.addr.into(), k.port),
                    e.flags & Bib4Entry::FLAG_STATIC != 0,
                )
            })
            .collect();
        out.sort_by_key(|(p, _, v4, _)| (*p, v4.ip().octets(), v4.port()));
        out
    }

    /// Changes one lifetime (a key of `config::nat::TIMEOUT_KEYS`, checked) of the
    /// running instance: sessions take it at their next packet.
    pub fn set_timeout(&mut self, key: &str, secs: u32) -> Result<()> {
        let mut c = self.cfg.get(&0, 0).context("reading NAT_CFG")?;
        match key {
            "udp-timeout" => c.udp = secs,
            "tcp-established-timeout" => c.tcp_established = secs,
            "tcp-transitory-timeout" => c.tcp_transitory = secs,
            "icmp-timeout" => c.icmp = secs,
            _ => anyhow::bail!("{key}: not a lifetime"),
        }
        self.cfg.set(0, c, 0).context("writing NAT_CFG")
    }

    /// Ends the sessions whose lifetime ran out and the (dynamic) BIB entries no
    /// session uses; `now`: boot-time ns. Returns (sessions, BIB entries) removed.
    pub fn sweep(&mut self, now: u64) -> (usize, usize) {
        let mut live: HashSet<Bib4Key> = HashSet::new();
        let mut expired = Vec::new();
        for (k, s) in self.sessions.iter().filter_map(|e| e.ok()) {
            if s.expires <= now {
                expired.push(k);
            } else {
                live.insert(Bib4Key { addr: k.local, port: k.local_port, proto: k.proto, _pad: 0 });
            }
        }
        let sessions = expired.iter().filter(|k| self.sessions.remove(k).is_ok()).count();
        // Address-dependent filtering's remotes: those some session still has.
        let remotes: HashSet<AdfKey> =
            self.sessions.keys().filter_map(|k| k.ok()).map(|k| AdfKey::of(&k)).collect();
        let stale: Vec<AdfKey> =
            self.adf.keys().filter_map(|k| k.ok()).filter(|k| !remotes.contains(k)).collect();
        for k in stale {
            let _ = self.adf.remove(&k);
        }
        let idle: Vec<(Bib4Key, Bib4Entry)> = self
            .bib4
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(k, e)| {
                e.flags & Bib4Entry::FLAG_STATIC == 0 && !live.contains(k) && e.born + YOUNG_NS <= now
            })
            .collect();
        let mut bibs = 0;
        for (k4, e) in idle {
            // BIB6 first: a packet of the host then makes a new mapping rather than
            // finding one whose other half is gone.
            let _ = self.bib6.remove(&e.v6);
            if self.bib4.remove(&k4).is_ok() {
                bibs += 1;
                if let Some(log) = &self.log {
                    let v6 = std::net::SocketAddrV6::new(e.v6.addr.into(), e.v6.port, 0, 0);
                    log.write(
                        "bib-expire",
                        k4.proto,
                        v6,
                        std::net::SocketAddrV4::new(k4.addr.into(), k4.port),
                        now,
                    );
                }
            }
        }
        (sessions, bibs)
    }

    /// Every session with its BIB entry's IPv6 side, sorted.
    pub fn list(&self) -> Vec<SessionView> {
        let mut out: Vec<SessionView> = self
            .sessions
            .iter()
            .filter_map(|e| e.ok())
            .map(|(k, s)| {
                let k4 = Bib4Key { addr: k.local, port: k.local_port, proto: k.proto, _pad: 0 };
                let v6 = self.bib4.get(&k4, 0).ok().map(|e| e.v6);
                SessionView { key: k, session: s, v6 }
            })
            .collect();
        out.sort_by_key(|v| {
            (v.key.proto, v.v6.map(|b| (b.addr, b.port)), v.key.local, v.key.local_port, v.key.remote)
        });
        out
    }

    /// The running port blocks (RFC 7422) and the pool4 slots, if any.
    pub fn port_blocks(&self) -> Option<(crate::config::nat::PortBlocks, Vec<crate::config::nat::Slot4>)> {
        let c = self.cfg.get(&0, 0).ok()?;
        if c.block_size == 0 {
            return None;
        }
        let slots = (0..c.pool4_count)
            .filter_map(|i| self.pool4.get(&i, 0).ok())
            .map(|s| (Ipv4Addr::from(s.addr), s.first, s.last))
            .collect();
        let prefix = crate::config::Prefix6 { addr: c.block_prefix.into(), len: c.block_prefix_len };
        let b = crate::config::nat::PortBlocks {
            size: c.block_size,
            prefix,
            host_len: c.block_host_len,
            per_addr: c.blocks_per_addr,
        };
        Some((b, slots))
    }

    /// The pool4 addresses in use.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let count = self.cfg.get(&0, 0).map(|c| c.pool4_count).unwrap_or(0);
        (0..count).filter_map(|i| self.pool4.get(&i, 0).ok()).map(|slot| Ipv4Addr::from(slot.addr)).collect()
    }

    /// Each pool4 address with its ports and how many of them BIB entries hold (all
    /// protocols together).
    pub fn pool4_use(&self) -> Vec<serde_json::Value> {
        let count = self.cfg.get(&0, 0).map(|c| c.pool4_count).unwrap_or(0);
        let keys: Vec<Bib4Key> = self.bib4.keys().filter_map(|k| k.ok()).collect();
        (0..count)
            .filter_map(|i| self.pool4.get(&i, 0).ok())
            .map(|slot| {
                let used = keys.iter().filter(|k| k.addr == slot.addr).count();
                serde_json::json!({
                    "address": Ipv4Addr::from(slot.addr).to_string(),
                    "first": slot.first,
                    "last": slot.last,
                    "in-use": used,
                })
            })
            .collect()
    }

    /// (BIB entries, sessions) per protocol name.
    pub fn counts(&self) -> Vec<(&'static str, usize, usize)> {
        let mut out = Vec::new();
        for (name, proto) in [("tcp", 6u8), ("udp", 17), ("icmp", 1)] {
            let bib = self.bib4.keys().filter_map(|k| k.ok()).filter(|k| k.proto == proto).count();
            let sess = self.sessions.keys().filter_map(|k| k.ok()).filter(|k| k.proto == proto).count();
            out.push((name, bib, sess));
        }
        out
    }
}

/// One session as `session list` shows it.
pub struct SessionView {
    pub key: SessionKey,
    pub session: Session,
    /// The IPv6 transport address the BIB maps the session's IPv4 one to.
    pub v6: Option<Bib6Key>,
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "?",
    }
}

impl SessionView {
    pub fn json(&self, now: u64) -> serde_json::Value {
        let k = &self.key;
        serde_json::json!({
            "protocol": proto_name(k.proto),
            "ipv6": self.v6.map(|b| format!("[{}]:{}", std::net::Ipv6Addr::from(b.addr), b.port)),
            "ipv4": format!("{}:{}", Ipv4Addr::from(k.local), k.local_port),
            "remote": format!("{}:{}", Ipv4Addr::from(k.remote), k.remote_port),
            "state": (k.proto == 6).then(|| format!("{:?}", TcpState::from_u8(self.session.state))),
            "expires-in": self.session.expires.saturating_sub(now) / 1_000_000_000,
        })
    }
}

/// The kernel's boot-time clock in ns (what the data path stamps sessions with).
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn random_key() -> Result<[u64; 2]> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom fills the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    anyhow::ensure!(n == 16, "getrandom: {}", std::io::Error::last_os_error());
    let (hi, lo) = b.split_at(8);
    Ok([u64::from_ne_bytes(hi.try_into()?), u64::from_ne_bytes(lo.try_into()?)])
}

/// Sweeps the instance pinned under `dir` every second, for as long as the process
/// runs (a thread of its own), while it is a stateful NAT64 (mode "nat64"). In the
/// other modes the NAT tables stay empty, and a walk of one still reads all of its
/// 2^20 hash buckets (the four walks took about 7 ms of CPU every second): the sweep
/// reads the settings first and does nothing else. Should they not read, it sweeps.
pub fn sweeper(dir: &Path, log: Option<crate::natlog::Shared>) -> Result<()> {
    let mut t = NatTables::from_maps(|n| crate::tables::open_map(dir, n))?;
    let settings = crate::tables::Tables::open_pinned(dir)?;
    t.log = log;
    thread::Builder::new()
        .name("nat-sweep".into())
        .spawn(move || {
            loop {
                thread::sleep(Duration::from_secs(1));
                if settings.globals().is_ok_and(|g| !g.flag(nat64_common::maps::Globals::FLAG_STATEFUL)) {
                    continue;
                }
                let (s, b) = t.sweep(boot_ns());
                if s + b > 0 {
                    log::debug!("nat64: {s} sessions and {b} BIB entries expired");
                }
            }
        })
        .map(|_| ())
        .map_err(|e| {
            warn!("starting the NAT sweep: {e}");
            anyhow::anyhow!("starting the NAT sweep thread: {e}")
        })
}
