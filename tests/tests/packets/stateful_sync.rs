//! Session sync's import: a peer's sessions made in this node's tables by the import
//! program, then real packets through them, both ways, byte for byte.

use std::net::Ipv4Addr;

use nat64_common::{
    counters::Counter,
    maps::{Bib6Key, SessionKey},
    nat::TcpState,
};
use nat64_ctl::sync::{import::Imported, wire::SessionRecord};
use nat64_tests::{
    packet::{L4, diff},
    xdp::{H6, Harness, Kind, R4, R6, XDP_PASS},
};

use crate::common::{NAT64_CONFIG, adopt_ipv4_id, both, in4, in6, v4, v6, want4, want6};

const POOL: &str = "203.0.113.8";

fn record(proto: u8, v6_port: u16, v4_port: u16, remote_port: u16) -> SessionRecord {
    SessionRecord {
        v6: v6(H6).octets(),
        v6_port,
        v4: v4(POOL),
        v4_port,
        remote: v4(R4),
        remote_port,
        proto,
        state: if proto == 6 { TcpState::Established as u8 } else { 0 },
        lifetime_ms: 300_000,
        ended: false,
    }
}

/// A UDP session and a TCP one a peer reported: the IPv4 answers reach the IPv6 host
/// through them (as on the peer, with the same pool4 transport addresses), the host's
/// next packets leave with those addresses and make no new mapping; a second import
/// only moves them on; the peer's end of a session ends it here at the next sweep; a
/// record for a pool4 address this node does not hold, or for a port it maps to
/// another host, is refused and changes nothing.
fn sync_import_makes_sessions_packets_use(kind: Kind) {
    let mut h = Harness::with(kind, NAT64_CONFIG);
    let now = nat64_ctl::sys::boot_ns();
    let udp = record(17, 5000, 40002, 53);
    let tcp = record(6, 6000, 40001, 443);
    let done = h.sync_import(&[udp, tcp], now);
    assert_eq!(done, Imported { made: 2, ..Default::default() });
    let nat = h.tables.nat.as_ref().expect("NAT maps");
    let k6 = Bib6Key { addr: v6(H6).octets(), port: 5000, proto: 17, _pad: 0 };
    let k4 = nat.bib6.get(&k6, 0).expect("a BIB6 entry");
    assert_eq!((k4.addr, k4.port), (v4(POOL).octets(), 40002));
    assert_eq!(nat.bib4.get(&k4, 0).expect("its BIB4 twin").sessions, 1);
    let key = SessionKey {
        local: v4(POOL).octets(),
        remote: v4(R4).octets(),
        local_port: 40001,
        remote_port: 443,
        proto: 6,
        _pad: [0; 3],
    };
    let s = nat.sessions.get(&key, 0).expect("the TCP session");
    assert_eq!(s.state, TcpState::Established as u8);
    assert!(s.expires > now + 299_000_000_000 && s.expires <= now + 300_000_000_000);

    // 4 -> 6 through the imported session, as through one made here.
    let answer = L4::Udp { sport: 53, dport: 40002, data: b"answer".to_vec(), zero_checksum: false };
    let out = h.run(&in4(R4, POOL, &answer));
    assert_eq!(out.action, XDP_PASS);
    let host = L4::Udp { sport: 53, dport: 5000, data: b"answer".to_vec(), zero_checksum: false };
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &host)) {
        panic!("4->6 through an imported session: {d}");
    }
    // An established TCP segment (no SYN) from the IPv4 side.
    let seg = |sport, dport| L4::Tcp { sport, dport, seq: 7, flags: 0x10, data: b"data".to_vec() };
    let out = h.run(&in4(R4, POOL, &seg(443, 40001)));
    assert_eq!(out.action, XDP_PASS);
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &seg(443, 6000))) {
        panic!("TCP 4->6 through an imported session: {d}");
    }
    // 6 -> 4: the host's next packet keeps the peer's pool4 port; nothing new is made.
    let query = L4::Udp { sport: 5000, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    let out = h.run(&in6(H6, R6, &query));
    assert_eq!(out.action, XDP_PASS);
    let mapped = L4::Udp { sport: 40002, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    let mut want = want4(POOL, R4, 0, 64, &mapped);
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 through an imported mapping: {d}");
    }
    assert_eq!((h.count(Counter::NatBibCreated), h.count(Counter::NatSessionCreated)), (0, 2));

    // Imported again (a later lifetime): moved on, nothing made twice.
    let later = SessionRecord { lifetime_ms: 600_000, ..tcp };
    assert_eq!(h.sync_import(&[udp, later], now), Imported { refreshed: 2, ..Default::default() });
    let nat = h.tables.nat.as_ref().expect("NAT maps");
    assert!(nat.sessions.get(&key, 0).expect("still there").expires > now + 599_000_000_000);

    // Refused, nothing changed: another pool4 address; the pool4 port another host
    // holds; the host's transport address mapped to another port here.
    let other_addr = SessionRecord { v4: Ipv4Addr::new(192, 0, 2, 99), ..record(17, 7000, 40000, 53) };
    let taken = SessionRecord { v6: v6("2001:db8:6::99").octets(), ..record(17, 5000, 40002, 54) };
    let moved = record(17, 5000, 40003, 54);
    let done = h.sync_import(&[other_addr, taken, moved], now);
    assert_eq!(done, Imported { conflicts: 3, ..Default::default() });
    let nat = h.tables.nat.as_ref().expect("NAT maps");
    assert_eq!(nat.bib6.iter().count(), 2, "no mapping made by a refused record");
    assert_eq!(nat.sessions.iter().count(), 2);

    // The peer's end of the UDP session: ended here at the next sweep, with its mapping.
    let end = SessionRecord { ended: true, ..udp };
    assert_eq!(h.sync_import(&[end], now + 1_000_000_000), Imported { ended: 1, ..Default::default() });
    let swept = h.sweep(now + 4_000_000_000);
    assert_eq!(swept.sessions, 1);
    // No session, no mapping: not translated (answered with an ICMP error or dropped).
    let out = h.run(&in4(R4, POOL, &answer));
    assert_ne!(out.action, XDP_PASS, "translated after the peer ended it");
    assert_eq!(out.frame[12..14], [0x08, 0x00], "still IPv4");
    // The TCP session stays.
    assert_eq!(h.run(&in4(R4, POOL, &seg(443, 40001))).action, XDP_PASS);
}

/// Failover at the packet level: node A maps a UDP flow, a TCP connection and an ICMP
/// echo from its packets; its sessions, exported as a bulk copy does, go through the
/// wire format sealed and opened, and are imported on node B (its own tables); B then
/// carries each flow both ways with the pool4 transport addresses A chose.
fn sync_bulk_copy_carries_flows_to_another_node(kind: Kind) {
    use nat64_ctl::sync::{export, wire};
    let a = Harness::with(kind, NAT64_CONFIG);
    let udp = L4::Udp { sport: 5000, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    let syn = L4::Tcp { sport: 6000, dport: 443, seq: 1, flags: 0x02, data: vec![] };
    let echo = L4::Echo { request: true, id: 77, seq: 1, data: b"ping".to_vec() };
    let mut ports = Vec::new();
    // Where each leaves with its pool4 port: the source port, the echo's identifier.
    for (l4, at) in [(&udp, 34), (&syn, 34), (&echo, 38)] {
        let out = a.run(&in6(H6, R6, l4));
        assert_eq!(out.action, XDP_PASS, "A maps {l4:?}");
        ports.push(u16::from_be_bytes([out.frame[at], out.frame[at + 1]]));
    }
    // The TCP connection established on A: the server's SYN-ACK, the host's ACK.
    let synack = L4::Tcp { sport: 443, dport: ports[1], seq: 9, flags: 0x12, data: vec![] };
    assert_eq!(a.run(&in4(R4, POOL, &synack)).action, XDP_PASS);
    let ack = L4::Tcp { sport: 6000, dport: 443, seq: 2, flags: 0x10, data: vec![] };
    assert_eq!(a.run(&in6(H6, R6, &ack)).action, XDP_PASS);

    let now = nat64_ctl::sys::boot_ns();
    let records = export::records(a.tables.nat.as_ref().expect("NAT maps"), now);
    assert_eq!(records.len(), 3, "{records:?}");
    let tcp = records.iter().find(|r| r.proto == 6).expect("the TCP session");
    assert_eq!(tcp.state, TcpState::Established as u8);
    let key = wire::SyncKey::from_file_bytes(&[9; 32]).expect("key");
    let m = wire::Message {
        kind: wire::KIND_BULK,
        node: 1,
        flags: wire::FLAG_LAST,
        epoch: 1,
        seq: 1,
        time_ms: 0,
        records: records.clone(),
    };
    let got = wire::open(&key, &wire::seal(&key, &m)).expect("opens");
    assert_eq!(got.records, records);

    // Node B: its own tables, A's sessions imported.
    let mut b = Harness::with(kind, NAT64_CONFIG);
    assert_eq!(b.sync_import(&got.records, now), Imported { made: 3, ..Default::default() });
    // The answers reach the host through B.
    let answer = L4::Udp { sport: 53, dport: ports[0], data: b"answer".to_vec(), zero_checksum: false };
    let out = b.run(&in4(R4, POOL, &answer));
    let host = L4::Udp { sport: 53, dport: 5000, data: b"answer".to_vec(), zero_checksum: false };
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &host)) {
        panic!("UDP 4->6 on B: {d}");
    }
    let data = |dport| L4::Tcp { sport: 443, dport, seq: 10, flags: 0x18, data: b"page".to_vec() };
    let out = b.run(&in4(R4, POOL, &data(ports[1])));
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &data(6000))) {
        panic!("TCP 4->6 on B: {d}");
    }
    let reply = L4::Echo { request: false, id: ports[2], seq: 1, data: b"ping".to_vec() };
    let out = b.run(&in4(R4, POOL, &reply));
    let want = L4::Echo { request: false, id: 77, seq: 1, data: b"ping".to_vec() };
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &want)) {
        panic!("echo reply 4->6 on B: {d}");
    }
    // The host's next packets leave B with A's ports, and B makes no mapping of its own.
    for (l4, port) in [(&udp, ports[0]), (&ack, ports[1])] {
        let out = b.run(&in6(H6, R6, l4));
        assert_eq!(out.action, XDP_PASS);
        assert_eq!(u16::from_be_bytes([out.frame[34], out.frame[35]]), port);
    }
    assert_eq!(b.count(Counter::NatBibCreated), 0);
}

both!(sync_import_makes_sessions_packets_use, sync_bulk_copy_carries_flows_to_another_node);
