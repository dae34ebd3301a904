//! TCP simultaneous open through stateful NAT64 (RFC 6146 §3.5.2.2, RFC 5382 REQ-4).

use nat64_common::{
    counters::Counter,
    maps::{HeldSyn, SynKey},
};
use nat64_ctl::simopen;
use nat64_tests::{
    packet::{L4, V4Opts, diff, eth4, ipv4},
    xdp::{H6, Harness, Kind, R4, R6, XDP_DROP, XDP_PASS},
};

use crate::common::{NAT64_CONFIG, adopt_ipv4_id, both, icmp4_err, icmp6_err, in6, v4, want4, want6};

const POOL: &str = "203.0.113.8";
const POOL6: &str = "64:ff9b::cb00:7108";

fn syn(sport: u16, dport: u16) -> L4 {
    L4::Tcp { sport, dport, seq: 100, flags: 0x02, data: vec![] }
}

/// An IPv4 SYN from `src`:`sport` to pool4's `dport`.
fn syn4(src: &str, sport: u16, dport: u16) -> Vec<u8> {
    eth4(&ipv4(v4(src), v4(POOL), V4Opts::default(), &[], &syn(sport, dport)))
}

fn held(h: &Harness, remote: &str, port: u16) -> Option<HeldSyn> {
    let k = SynKey { remote: v4(remote).octets(), remote_port: port, _pad: 0 };
    h.tables.nat.as_ref().unwrap().syns.get(&k, 0).ok()
}

/// The held SYNs' time is up: what nat64-ctl sends.
fn expire(h: &mut Harness) -> (simopen::Expired, Vec<simopen::Answer>) {
    let mut sent = Vec::new();
    let nat = h.tables.nat.as_mut().unwrap();
    let done = simopen::expire(nat, u64::MAX / 2, |a| {
        sent.push(a.clone());
        Ok(())
    })
    .unwrap();
    (done, sent)
}

/// An unsolicited IPv4 SYN to a pool4 transport address is held 6 s, not dropped
/// unanswered: a retransmission of it is dropped (counted), and at most
/// `max-simultaneous-opens` are held. An IPv6 SYN to its sender in that time is given
/// the port the IPv4 SYN was sent to, so both SYNs meet and the connection opens (the
/// IPv4 side's retransmitted SYN then crosses). A SYN nothing took is answered, once
/// its time is up, with ICMP Port Unreachable from the pool4 address it was sent to,
/// quoting it; so is one the filtering kept out of a mapping. A hairpinned SYN (from an
/// IPv6 host to a pool4 transport address nobody holds) is held and opened the same
/// way, and answered with ICMPv6 Port Unreachable to its host.
fn stateful_nat64_simultaneous_open(kind: Kind) {
    let config = NAT64_CONFIG.replace(
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],"#,
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40015"}],
    "max-simultaneous-opens": 3,"#,
    );
    assert_ne!(config, NAT64_CONFIG);
    let mut h = Harness::with(kind, &config);

    // 8.8.8.8:5555 -> pool4:40002, which nobody holds: held, byte for byte.
    let q = syn4(R4, 5555, 40002);
    assert_eq!(h.run(&q).action, XDP_DROP, "held, not sent on");
    assert_eq!(h.count(Counter::DropNatSynHeld), 1);
    let e = held(&h, R4, 5555).expect("the SYN is held");
    assert_eq!((e.local, e.local_port, e.flags), (v4(POOL).octets(), 40002, 0));
    assert_eq!(e.bytes[..e.len as usize], q[14..], "the SYN held whole");
    // Its retransmission: dropped, counted; the first stays.
    assert_eq!(h.run(&q).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatSynPending), 1);
    // Two more senders fill the store (3); a fourth is dropped, counted.
    let q1 = syn4("1.1.1.1", 999, 40003);
    assert_eq!(h.run(&q1).action, XDP_DROP);
    assert_eq!(h.run(&syn4("1.1.1.2", 999, 40004)).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatSynHeld), 3);
    assert_eq!(h.run(&syn4("9.9.9.9", 1, 40001)).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatSynStoreFull), 1);
    assert!(held(&h, "9.9.9.9", 1).is_none());
    assert_eq!(simopen::held(h.tables.nat.as_ref().unwrap()), 3);

    // The IPv6 host's SYN to 8.8.8.8:5555 takes pool4:40002: the two SYNs meet.
    let out = h.run(&in6(H6, R6, &syn(6000, 5555)));
    assert_eq!(out.action, XDP_PASS);
    let mut want = want4(POOL, R4, 0, 64, &syn(40002, 5555));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("the IPv6 SYN leaves from the port the IPv4 SYN was sent to: {d}");
    }
    assert_eq!(h.count(Counter::NatSimultaneousOpen), 1);
    assert_eq!(held(&h, R4, 5555).unwrap().flags & HeldSyn::FLAG_TAKEN, HeldSyn::FLAG_TAKEN);
    // 8.8.8.8 sends its SYN again (its own retransmission): through the session now.
    let out = h.run(&q);
    assert_eq!(out.action, XDP_PASS);
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &syn(5555, 6000))) {
        panic!("the IPv4 side's SYN reaches the host: {d}");
    }
    let sk = nat64_common::maps::SessionKey {
        local: v4(POOL).octets(),
        remote: v4(R4).octets(),
        local_port: 40002,
        remote_port: 5555,
        proto: 6,
        _pad: [0; 3],
    };
    let state = h.tables.nat.as_ref().unwrap().sessions.get(&sk, 0).unwrap().state;
    assert_eq!(state, nat64_common::nat::TcpState::Established as u8);

    // The filtering keeps 1.1.1.3 out of the host's mapping (address-dependent, and the
    // host has no session with it): its SYN is held as well.
    let q2 = syn4("1.1.1.3", 777, 40002);
    let held_before = h.count(Counter::DropNatSynHeld);
    // Room: one of the three is taken but still counted until its time is up.
    assert_eq!(h.run(&q2).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatSynStoreFull), 2, "the store is still full");
    assert_eq!(h.count(Counter::DropNatSynHeld), held_before);

    // Their time is up: the taken one goes quietly; 1.1.1.1 and 1.1.1.2 get Port
    // Unreachable from the pool4 address, quoting their SYNs.
    let (done, sent) = expire(&mut h);
    assert_eq!((done.answered, done.opened, done.unanswered), (2, 1, 0));
    let a = sent.iter().find(|a| a.to == std::net::IpAddr::V4(v4("1.1.1.1"))).expect("an answer to 1.1.1.1");
    let mut want = icmp4_err(POOL, "1.1.1.1", 3, 3, [0; 4], &q1[14..]);
    let mut got = want[..14].to_vec();
    got.extend_from_slice(&a.packet);
    adopt_ipv4_id(&got, &mut want);
    if let Some(d) = diff(&got, &want) {
        panic!("Port Unreachable for the SYN nothing took: {d}");
    }
    assert_eq!(simopen::held(h.tables.nat.as_ref().unwrap()), 0);
    assert!(h.tables.nat.as_ref().unwrap().syns.keys().next().is_none(), "the store is empty");

    // Now there is room: 1.1.1.3's SYN, kept out by the filtering, is held and answered.
    assert_eq!(h.run(&q2).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatSynHeld), held_before + 1);
    let (done, sent) = expire(&mut h);
    assert_eq!((done.answered, done.opened), (1, 0));
    let mut want = icmp4_err(POOL, "1.1.1.3", 3, 3, [0; 4], &q2[14..]);
    let mut got = want[..14].to_vec();
    got.extend_from_slice(&sent[0].packet);
    adopt_ipv4_id(&got, &mut want);
    if let Some(d) = diff(&got, &want) {
        panic!("Port Unreachable for the filtered SYN: {d}");
    }

    // Hairpinned: host B's SYN to a pool4 port nobody holds is held as it was sent.
    // (B's source is mapped first, by a SYN to 8.8.8.8, so that the port it is sent
    // to is surely not its own.)
    let b = "2001:db8:6::9";
    let bport = mapped(&h, b, 7000);
    let free = |h: &Harness| {
        let nat = h.tables.nat.as_ref().unwrap();
        let used: Vec<u16> = nat.bib_list().iter().map(|e| e.2.port()).collect();
        (40005..=40015).find(|p| !used.contains(p)).expect("a free port")
    };
    let target = free(&h);
    let qb = in6(b, POOL6, &syn(7000, target));
    assert_eq!(h.run(&qb).action, XDP_DROP);
    let e = held(&h, POOL, bport).expect("B's SYN held, by B's pool4 transport address");
    assert_eq!((e.local_port, e.flags), (target, HeldSyn::FLAG_V6));
    assert_eq!(e.bytes[..e.len as usize], qb[14..]);
    // Host C's SYN to B's pool4 transport address takes that port: C reaches B, B's
    // SYN and C's meet.
    let c = "2001:db8:7::7";
    let out = h.run(&in6(c, POOL6, &syn(8000, bport)));
    assert_eq!(out.action, XDP_PASS, "hairpinned to B");
    if let Some(d) = diff(&out.frame, &want6(POOL6, b, 0, 64, &syn(target, 7000))) {
        panic!("C's SYN reaches B from the port B's SYN was sent to: {d}");
    }
    assert_eq!(h.count(Counter::NatSimultaneousOpen), 2);
    let (done, _) = expire(&mut h);
    assert_eq!((done.answered, done.opened), (0, 1));

    // A hairpinned SYN nothing takes: ICMPv6 Port Unreachable from the address its
    // host sent it to.
    mapped(&h, b, 7001);
    let qb2 = in6(b, POOL6, &syn(7001, free(&h)));
    assert_eq!(h.run(&qb2).action, XDP_DROP);
    let (done, sent) = expire(&mut h);
    assert_eq!((done.answered, done.opened), (1, 0));
    let want = icmp6_err(POOL6, b, 1, 4, [0; 4], &qb2[14..]);
    let mut got = want[..14].to_vec();
    got.extend_from_slice(&sent[0].packet);
    if let Some(d) = diff(&got, &want) {
        panic!("ICMPv6 Port Unreachable for the hairpinned SYN: {d}");
    }

    // "max-simultaneous-opens": 0 holds nothing: dropped unanswered, as before.
    h.tables.nat.as_mut().unwrap().set_value("max-simultaneous-opens", 0).unwrap();
    let no_mapping = h.count(Counter::DropNatNoMapping);
    assert_eq!(h.run(&syn4("5.5.5.5", 5, free(&h))).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatNoMapping), no_mapping + 1);
    assert!(held(&h, "5.5.5.5", 5).is_none());
}

/// Maps `host`:`sport` (TCP) by a SYN to 8.8.8.8: its pool4 port.
fn mapped(h: &Harness, host: &str, sport: u16) -> u16 {
    let out = h.run(&in6(host, R6, &syn(sport, 80)));
    assert_eq!(out.action, XDP_PASS, "{host} mapped");
    u16::from_be_bytes([out.frame[34], out.frame[35]])
}

both!(stateful_nat64_simultaneous_open);
