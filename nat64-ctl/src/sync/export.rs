//! This node's sessions as records for its peers: what a refresh and a bulk copy send.

use std::net::Ipv4Addr;

use nat64_common::{
    maps::{Bib4Key, NatEvent, SessionKey},
    nat::PROTO_ICMP,
};

use super::wire::{MAX_LIFETIME_MS, SessionRecord};
use crate::tables::nat::NatTables;

/// Hands every live session with its BIB entry to `each`, its lifetime what is left of
/// it at `now` (boot-time ns), as the table is walked (nothing collected). Sessions
/// whose BIB entry is gone or released are left out.
pub fn walk(nat: &NatTables, now: u64, mut each: impl FnMut(SessionRecord)) {
    for (k, s) in nat.sessions.iter().filter_map(|e| e.ok()) {
        if s.expires <= now {
            continue;
        }
        let k4 = Bib4Key { addr: k.local, port: k.local_port, proto: k.proto, _pad: 0 };
        let Some(v6) = nat.bib4.get(&k4, 0).ok().filter(|e| e.live()).map(|e| e.v6) else {
            continue;
        };
        let left_ms = ((s.expires - now) / 1_000_000).min(MAX_LIFETIME_MS as u64) as u32;
        each(record(v6.addr, v6.port, &k, s.state, left_ms));
    }
}

/// Session `k` of the BIB entry whose IPv6 side is `v6`, port `v6_port`, in TCP
/// `state`, with `lifetime_ms` left.
fn record(v6: [u8; 16], v6_port: u16, k: &SessionKey, state: u8, lifetime_ms: u32) -> SessionRecord {
    SessionRecord {
        v6,
        v6_port,
        v4: Ipv4Addr::from(k.local),
        v4_port: k.local_port,
        remote: Ipv4Addr::from(k.remote),
        // An ICMP query session knows the remote by the mapped identifier.
        remote_port: if k.proto == PROTO_ICMP { k.local_port } else { k.remote_port },
        proto: k.proto,
        state: if k.proto == 6 { state } else { 0 },
        lifetime_ms: lifetime_ms.min(MAX_LIFETIME_MS),
        ended: false,
    }
}

/// Every live session as [`walk`] gives them.
pub fn records(nat: &NatTables, now: u64) -> Vec<SessionRecord> {
    let mut out = Vec::new();
    walk(nat, now, |r| out.push(r));
    out
}

/// A session event of the data path as a record (`None`: a BIB event).
pub fn event(ev: &NatEvent) -> Option<SessionRecord> {
    if !matches!(ev.kind, NatEvent::SESSION_OPENED | NatEvent::SESSION_CHANGED) {
        return None;
    }
    let k = SessionKey {
        local: ev.v4,
        remote: ev.remote,
        local_port: ev.v4_port,
        remote_port: ev.remote_port,
        proto: ev.proto,
        _pad: [0; 3],
    };
    Some(record(ev.v6, ev.v6_port, &k, ev.state, ev.lifetime_ms))
}
