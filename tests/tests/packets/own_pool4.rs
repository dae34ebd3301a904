//! The translator's own IPv4 address lent as a pool4 address too (stateful NAT64).

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{L4, V4Opts, diff, eth4, ipv4},
    xdp::{H6, Harness, Kind, R4, R6, XDP_PASS},
};

use super::{NAT64_CONFIG, adopt_ipv4_id, icmp4_err, in6, v4, want4, want6};

/// With `ipv4-addr` inside pool4, the flows mapped onto it cross as on any pool4
/// address (both ways, and ICMP errors about them), while what no mapping takes (a
/// port outside the mappings, an echo to it, an ICMP error about the host's own
/// traffic, a later fragment without its first) is the host's: handed to the kernel
/// untouched (`pass_own_address`), never held, answered or dropped.
pub fn stateful_nat64_own_address_in_pool4(kind: Kind) {
    let config = NAT64_CONFIG.replace(r#""ipv4-addr": "198.51.100.1","#, r#""ipv4-addr": "203.0.113.8","#);
    assert_ne!(config, NAT64_CONFIG);
    let h = Harness::with(kind, &config);
    let own = "203.0.113.8";
    let udp =
        |sport: u16, dport: u16| L4::Udp { sport, dport, data: b"query".to_vec(), zero_checksum: false };
    let out = h.run(&in6(H6, R6, &udp(5000, 53)));
    assert_eq!(out.action, XDP_PASS);
    let port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let mut want = want4(own, R4, 0, 64, &udp(port, 53));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("mapped onto the own address: {d}");
    }
    let answer = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, port)));
    let out = h.run(&answer);
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &udp(53, 5000))) {
        panic!("the answer reaches the host: {d}");
    }
    // An ICMP error about the mapped flow goes to the IPv6 host.
    let sent = ipv4(v4(own), v4(R4), V4Opts::default(), &[], &udp(port, 53));
    let err = icmp4_err("192.0.2.77", own, 3, 3, [0; 4], &sent);
    let passed = h.count(Counter::PassOwnAddress);
    let out = h.run(&err);
    assert_eq!(out.frame[12..14], [0x86, 0xdd], "translated to ICMPv6");
    assert_eq!(h.count(Counter::PassOwnAddress), passed);

    // What no mapping takes is the host's.
    let ssh = eth4(&ipv4(
        v4(R4),
        v4(own),
        V4Opts::default(),
        &[],
        &L4::Tcp { sport: 4444, dport: 22, seq: 1, flags: 0x02, data: vec![] },
    ));
    let dns = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, 40100)));
    let ping = eth4(&ipv4(
        v4(R4),
        v4(own),
        V4Opts::default(),
        &[],
        &L4::Echo { request: true, id: 0x7777, seq: 1, data: b"ping".to_vec() },
    ));
    let own_sent = ipv4(v4(own), v4(R4), V4Opts::default(), &[], &udp(33000, 53));
    let own_err = icmp4_err("192.0.2.77", own, 3, 3, [0; 4], &own_sent);
    let mut later = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, 33000)));
    later[20..22].copy_from_slice(&185u16.to_be_bytes());
    let c = nat64_tests::packet::inet_checksum(&[&{
        let mut hd = later[14..34].to_vec();
        hd[10..12].copy_from_slice(&[0, 0]);
        hd
    }]);
    later[24..26].copy_from_slice(&c.to_be_bytes());
    for (what, frame) in [
        ("TCP SYN to port 22", ssh),
        ("UDP", dns),
        ("echo", ping),
        ("an error about its own", own_err),
        ("a later fragment", later),
    ] {
        let before = h.count(Counter::PassOwnAddress);
        let out = h.run(&frame);
        assert_eq!(out.action, XDP_PASS, "{what}");
        assert_eq!(out.frame, frame, "{what}: handed on untouched");
        assert_eq!(h.count(Counter::PassOwnAddress), before + 1, "{what}: counted as the host's");
    }
    assert_eq!(h.count(Counter::DropNatSynHeld), 0);
}
