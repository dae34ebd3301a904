//! This node's sessions as records for its peers: what a bulk copy sends.

use std::net::Ipv4Addr;

use nat64_common::nat::PROTO_ICMP;

use super::wire::{MAX_LIFETIME_MS, SessionRecord};
use crate::tables::nat::NatTables;

/// Every live session with its BIB entry, its lifetime what is left of it at `now`
/// (boot-time ns). Sessions whose BIB entry is gone or released are left out.
pub fn records(nat: &NatTables, now: u64) -> Vec<SessionRecord> {
    nat.list()
        .into_iter()
        .filter(|v| v.session.expires > now)
        .filter_map(|v| {
            let v6 = v.v6?;
            let left_ms = ((v.session.expires - now) / 1_000_000).min(MAX_LIFETIME_MS as u64) as u32;
            Some(SessionRecord {
                v6: v6.addr,
                v6_port: v6.port,
                v4: Ipv4Addr::from(v.key.local),
                v4_port: v.key.local_port,
                remote: Ipv4Addr::from(v.key.remote),
                // An ICMP query session knows the remote by the mapped identifier.
                remote_port: if v.key.proto == PROTO_ICMP { v.key.local_port } else { v.key.remote_port },
                proto: v.key.proto,
                state: if v.key.proto == 6 { v.session.state } else { 0 },
                lifetime_ms: left_ms,
                ended: false,
            })
        })
        .collect()
}
