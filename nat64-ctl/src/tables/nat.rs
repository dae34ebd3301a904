//! Stateful NAT64's maps as nat64-ctl sees them: the settings it writes for the data
//! path (pool4, the secret key, the lifetimes, RFC 6888's limits), the static BIB
//! entries, and the lists and counts it shows.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, Map, MapData, Queue};
use nat64_common::{
    maps::{
        AdfKey, Bib4Entry, Bib4Key, Bib6Key, HeldSyn, MAP_BIB4, MAP_BIB6, MAP_NAT_ADDRS, MAP_NAT_ADF,
        MAP_NAT_BLOCKS, MAP_NAT_CFG, MAP_NAT_FREE_BLOCKS, MAP_NAT_POOL4, MAP_NAT_SUBSCRIBERS,
        MAP_NAT_SYN_COUNT, MAP_NAT_SYNS, MAP_SESSIONS, NAT_ADDR_PEER, NatConfig, Pool4Slot, PortBlock,
        Session, SessionKey, Subscriber, SynKey,
    },
    nat::TcpState,
};

use crate::config::nat::{BlockAssign, Filtering, Nat64, StaticBib};

/// The stateful translator's maps.
pub struct NatTables {
    pub cfg: Array<MapData, NatConfig>,
    pub pool4: Array<MapData, Pool4Slot>,
    pub addrs: HashMap<MapData, [u8; 4], u32>,
    pub bib6: HashMap<MapData, Bib6Key, Bib4Key>,
    pub bib4: HashMap<MapData, Bib4Key, Bib4Entry>,
    pub sessions: HashMap<MapData, SessionKey, Session>,
    pub adf: HashMap<MapData, AdfKey, u64>,
    pub subscribers: HashMap<MapData, [u8; 16], Subscriber>,
    /// SYNs held for a simultaneous open, and how many (see [`crate::simopen`]).
    pub syns: HashMap<MapData, SynKey, HeldSyn>,
    pub syn_count: Array<MapData, u64>,
    /// Dynamic port blocks: who holds each, and the free ones.
    pub blocks: Array<MapData, PortBlock>,
    pub free_blocks: Queue<MapData, u32>,
}

/// The maps' names, pinned with the others.
pub const MAPS: [&str; 12] = [
    MAP_NAT_BLOCKS,
    MAP_NAT_FREE_BLOCKS,
    MAP_NAT_CFG,
    MAP_NAT_POOL4,
    MAP_NAT_ADDRS,
    MAP_BIB6,
    MAP_BIB4,
    MAP_SESSIONS,
    MAP_NAT_ADF,
    MAP_NAT_SUBSCRIBERS,
    MAP_NAT_SYNS,
    MAP_NAT_SYN_COUNT,
];

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
            subscribers: HashMap::try_from(get(MAP_NAT_SUBSCRIBERS)?)?,
            syns: HashMap::try_from(get(MAP_NAT_SYNS)?)?,
            syn_count: Array::try_from(get(MAP_NAT_SYN_COUNT)?)?,
            blocks: Array::try_from(get(MAP_NAT_BLOCKS)?)?,
            free_blocks: Queue::try_from(get(MAP_NAT_FREE_BLOCKS)?)?,
        })
    }

    /// Writes the settings: pool4 (slots first, then the addresses the data path
    /// recognises, the ones gone removed), the lifetimes and filtering, and the secret
    /// key, made once (from the kernel's random source) and kept with the maps so that
    /// a restart chooses as before.
    ///
    /// The subscriber length of a running instance stays: its counts are kept by it.
    pub fn apply(&mut self, n: &Nat64) -> Result<()> {
        let old = self.cfg.get(&0, 0).unwrap_or_default();
        if old.subscriber_len != 0 && old.subscriber_len != n.limits.subscriber_len {
            bail!(
                "subscriber-prefix-length: {}: the running instance counts ports per /{}; it changes only with a \
                 fresh start (`nat64-ctl detach`, then `nat64-ctl run`), which ends every mapping",
                n.limits.subscriber_len,
                old.subscriber_len
            );
        }
        let slots = n.slots();
        for (i, (a, first, last)) in slots.iter().enumerate() {
            let slot = Pool4Slot { addr: a.octets(), first: *first, last: *last };
            self.pool4.set(i as u32, slot, 0).context("writing NAT_POOL4")?;
        }
        let wanted: Vec<[u8; 4]> = slots.iter().map(|s| s.0.octets()).collect();
        for (i, a) in wanted.iter().enumerate() {
            self.addrs.insert(a, i as u32, 0).context("writing NAT_ADDRS")?;
        }
        // A session-sync peer's addresses stay (see `crate::sync::node`).
        let stale: Vec<[u8; 4]> = self
            .addrs
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(k, v)| !wanted.contains(k) && *v != NAT_ADDR_PEER)
            .map(|(k, _)| k)
            .collect();
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
            subscriber_len: n.limits.subscriber_len,
            max_ports: n.limits.max_ports,
            reuse_delay: n.limits.reuse_delay,
            max_syns: n.limits.max_syns,
            ..Default::default()
        };
        if n.sync.is_some() {
            cfg.flags |= NatConfig::FLAG_SYNC;
        }
        if !n.nat_log.is_empty() {
            cfg.flags |= NatConfig::FLAG_LOG;
        }
        if let Some(b) = &n.port_blocks {
            cfg.block_size = b.size;
            cfg.blocks_per_addr = b.per_addr;
            match b.assign {
                BlockAssign::Prefix { prefix, host_len } => {
                    cfg.block_prefix = prefix.addr().octets();
                    cfg.block_prefix_len = prefix.prefix_len();
                    cfg.block_host_len = host_len;
                }
                BlockAssign::Dynamic { per_host } => {
                    cfg.flags |= NatConfig::FLAG_DYNAMIC_BLOCKS;
                    cfg.max_blocks = per_host as u32;
                    self.free_blocks_fill(&old, &cfg)?;
                }
            }
        }
        self.cfg.set(0, cfg, 0).context("writing NAT_CFG")
    }

    /// Dynamic port blocks: every block put in the free queue, in a random order (so
    /// that who gets which block cannot be told from the order subscribers came in),
    /// when the instance starts with them; kept as they are when it already ran with
    /// the same blocks, and refused when it ran with others (subscribers hold them).
    fn free_blocks_fill(&mut self, old: &NatConfig, new: &NatConfig) -> Result<()> {
        if old.flags & NatConfig::FLAG_DYNAMIC_BLOCKS != 0 {
            if (old.block_size, old.blocks_per_addr, old.pool4_count)
                != (new.block_size, new.blocks_per_addr, new.pool4_count)
            {
                bail!(
                    "port-block-size: the running instance hands out blocks of {} ports ({} on each of {} \
                     addresses) that subscribers hold; other blocks need a fresh start (`nat64-ctl detach`, then \
                     `nat64-ctl run`), which ends every mapping",
                    old.block_size,
                    old.blocks_per_addr,
                    old.pool4_count
                );
            }
            return Ok(());
        }
        let count = new.blocks_per_addr.saturating_mul(new.pool4_count);
        let mut order: Vec<u32> = (0..count).collect();
        let mut seed = random_key()?[0];
        for i in (1..order.len()).rev() {
            // SplitMix64 steps: an unbiased enough shuffle for spreading blocks.
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            order.swap(i, ((z ^ (z >> 31)) % (i as u64 + 1)) as usize);
        }
        while self.free_blocks.pop(0).is_ok() {}
        for i in order {
            self.blocks.set(i, PortBlock::default(), 0).context("writing NAT_BLOCKS")?;
            self.free_blocks.push(i, 0).context("writing NAT_FREE_BLOCKS")?;
        }
        Ok(())
    }

    /// Dynamic port blocks held now: (index, subscriber, since when in boot-time ns,
    /// ports in use), by index.
    pub fn held_blocks(&self) -> Vec<(u32, [u8; 16], u64, u64)> {
        self.blocks
            .iter()
            .filter_map(|e| e.ok())
            .enumerate()
            .filter(|(_, b)| b.held != 0)
            .map(|(i, b)| (i as u32, b.owner, b.idle, b.used & (PortBlock::RELEASING - 1)))
            .collect()
    }

    /// The static BIB entries in the maps.
    pub fn statics(&self) -> Vec<StaticBib> {
        let mut out: Vec<StaticBib> = self
            .bib4
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, e)| e.flags & Bib4Entry::FLAG_STATIC != 0 && e.live())
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
        let e = Bib4Entry { v6: k6, flags: Bib4Entry::FLAG_STATIC, sessions: 0, born: 0 };
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

    /// Every BIB entry: (protocol, IPv6 side, IPv4 side, static), sorted; not the
    /// released ones, whose ports are held back (RFC 6888 REQ-8).
    pub fn bib_list(&self) -> Vec<(u8, std::net::SocketAddrV6, std::net::SocketAddrV4, bool)> {
        let mut out: Vec<_> = self
            .bib4
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, e)| e.live())
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

    /// Changes one lifetime (a key of `config::nat::TIMEOUT_KEYS`) or limit (of
    /// `config::nat::LIMIT_KEYS`), checked, of the running instance: sessions take a
    /// lifetime at their next packet, new mappings the limit, the sweep the delay.
    pub fn set_value(&mut self, key: &str, v: u32) -> Result<()> {
        let mut c = self.cfg.get(&0, 0).context("reading NAT_CFG")?;
        match key {
            "udp-timeout" => c.udp = v,
            "tcp-established-timeout" => c.tcp_established = v,
            "tcp-transitory-timeout" => c.tcp_transitory = v,
            "icmp-timeout" => c.icmp = v,
            "max-ports-per-host" => c.max_ports = v,
            "port-reuse-delay" => c.reuse_delay = v,
            "max-simultaneous-opens" => c.max_syns = v,
            _ => bail!("{key}: not a lifetime or limit"),
        }
        self.cfg.set(0, c, 0).context("writing NAT_CFG")
    }

    /// The `n` subscribers holding the most ports: (subscriber prefix, ports), most
    /// first.
    pub fn top_subscribers(&self, n: usize) -> Vec<(crate::config::Prefix6, u64)> {
        let len = self.cfg.get(&0, 0).map(|c| c.subscriber_len).unwrap_or(128);
        let mut all: Vec<([u8; 16], u64)> = self
            .subscribers
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, s)| s.ports > 0)
            .map(|(k, s)| (k, s.ports))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter()
            .take(n)
            .filter_map(|(k, p)| Some((crate::config::Prefix6::new(k.into(), len).ok()?, p)))
            .collect()
    }

    /// Every session with its BIB entry's IPv6 side, sorted.
    pub fn list(&self) -> Vec<SessionView> {
        let mut out: Vec<SessionView> = self
            .sessions
            .iter()
            .filter_map(|e| e.ok())
            .map(|(k, s)| {
                let k4 = Bib4Key { addr: k.local, port: k.local_port, proto: k.proto, _pad: 0 };
                let v6 = self.bib4.get(&k4, 0).ok().filter(|e| e.live()).map(|e| e.v6);
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
        let assign = if c.flags & NatConfig::FLAG_DYNAMIC_BLOCKS != 0 {
            BlockAssign::Dynamic { per_host: c.max_blocks as u8 }
        } else {
            let prefix = crate::config::Prefix6::new(c.block_prefix.into(), c.block_prefix_len).ok()?;
            BlockAssign::Prefix { prefix, host_len: c.block_host_len }
        };
        let b = crate::config::nat::PortBlocks { size: c.block_size, per_addr: c.blocks_per_addr, assign };
        Some((b, slots))
    }

    /// The pool4 addresses in use.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let count = self.cfg.get(&0, 0).map(|c| c.pool4_count).unwrap_or(0);
        (0..count).filter_map(|i| self.pool4.get(&i, 0).ok()).map(|slot| Ipv4Addr::from(slot.addr)).collect()
    }

    /// Each pool4 address with its ports, how many of them BIB entries hold (all
    /// protocols together) and how many are held back after their mapping ended (RFC
    /// 6888 REQ-8).
    pub fn pool4_use(&self) -> Vec<serde_json::Value> {
        let count = self.cfg.get(&0, 0).map(|c| c.pool4_count).unwrap_or(0);
        let keys: Vec<(Bib4Key, bool)> =
            self.bib4.iter().filter_map(|e| e.ok()).map(|(k, e)| (k, e.live())).collect();
        (0..count)
            .filter_map(|i| self.pool4.get(&i, 0).ok())
            .map(|slot| {
                let here = keys.iter().filter(|(k, _)| k.addr == slot.addr);
                let used = here.clone().filter(|(_, live)| *live).count();
                let held = here.filter(|(_, live)| !*live).count();
                serde_json::json!({
                    "address": Ipv4Addr::from(slot.addr).to_string(),
                    "first": slot.first,
                    "last": slot.last,
                    "in-use": used,
                    "held-back": held,
                })
            })
            .collect()
    }

    /// The kernel memory each per-flow table holds (fdinfo `memlock`: for these tables,
    /// which allocate per entry, their buckets and the entries they hold), by map name.
    /// What the kernel's allocator rounds up beyond that is not in it.
    pub fn memory(&self) -> Vec<(&'static str, u64)> {
        use aya::maps::IterableMap as _;
        [
            (MAP_BIB6, self.bib6.map()),
            (MAP_BIB4, self.bib4.map()),
            (MAP_SESSIONS, self.sessions.map()),
            (MAP_NAT_ADF, self.adf.map()),
            (MAP_NAT_SUBSCRIBERS, self.subscribers.map()),
        ]
        .into_iter()
        .map(|(name, data)| (name, memlock(data).unwrap_or(0)))
        .collect()
    }

    /// (BIB entries, sessions) per protocol name.
    pub fn counts(&self) -> Vec<(&'static str, usize, usize)> {
        let mut out = Vec::new();
        for (name, proto) in [("tcp", 6u8), ("udp", 17), ("icmp", 1)] {
            let bib =
                self.bib4.iter().filter_map(|e| e.ok()).filter(|(k, e)| k.proto == proto && e.live()).count();
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

fn random_key() -> Result<[u64; 2]> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom fills the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    anyhow::ensure!(n == 16, "getrandom: {}", std::io::Error::last_os_error());
    let (hi, lo) = b.split_at(8);
    Ok([u64::from_ne_bytes(hi.try_into()?), u64::from_ne_bytes(lo.try_into()?)])
}

/// A map's fdinfo `memlock`: what the kernel says the map holds, in bytes.
pub fn memlock(data: &MapData) -> Option<u64> {
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", data.fd().as_fd().as_raw_fd())).ok()?;
    info.lines().find_map(|l| l.strip_prefix("memlock:")).and_then(|v| v.trim().parse().ok())
}
