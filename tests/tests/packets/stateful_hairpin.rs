//! Stateful NAT64 hairpinning (RFC 6146 §3.8): errors about hairpinned packets.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{L4, V6Opts, diff, ipv6},
    xdp::{H6, Harness, Kind, R6, XDP_PASS},
};

use super::{NAT64_CONFIG, icmp6_err, in6};

const POOL6: &str = "64:ff9b::cb00:7108";

/// Host A reaches host B through B's pool4 transport address (hairpinned); a router
/// in front of B answers the packet with Port Unreachable, to the pool6 address the
/// packet came from. That error is for A: it reaches A in one pass (one hop, as the
/// packet did), from the pool6 address A sent to, quoting the packet as A sent it.
pub fn stateful_nat64_hairpinned_errors_in_one_pass(kind: Kind) {
    // Endpoint-independent filtering: A may reach B's mapping without B having
    // talked to A first.
    let config = NAT64_CONFIG
        .replace(r#""mode": "nat64","#, r#""mode": "nat64", "filtering": "endpoint-independent","#);
    assert_ne!(config, NAT64_CONFIG);
    let h = Harness::with(kind, &config);
    let b = "2001:db8:6::9";
    let udp =
        |sport: u16, dport: u16| L4::Udp { sport, dport, data: b"hairpin".to_vec(), zero_checksum: false };
    // B's mapping, by a datagram to 8.8.8.8.
    let out = h.run(&in6(b, R6, &udp(7000, 53)));
    assert_eq!(out.action, XDP_PASS);
    let pb = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    // A to B's pool4 transport address: to B, from the pool6 form of A's mapping.
    let out = h.run(&in6(H6, POOL6, &udp(5000, pb)));
    assert_eq!(out.action, XDP_PASS, "hairpinned");
    assert_eq!(out.frame[12..14], [0x86, 0xdd]);
    let pa = u16::from_be_bytes([out.frame[54], out.frame[55]]);
    let got_b = ipv6(v6(POOL6), v6(b), V6Opts::default(), &udp(pa, 7000));
    assert_eq!(out.frame[14..], got_b[..], "B got it from A's pool4 transport address");

    let err = icmp6_err("2001:db8:99::1", POOL6, 1, 4, [0; 4], &got_b);
    let before = h.count(Counter::Xlat4to6IcmpError);
    let out = h.run(&err);
    assert_eq!(out.action, XDP_PASS, "to the kernel (no route here), one hop for it to take");
    let sent_a = ipv6(v6(H6), v6(POOL6), V6Opts::default(), &udp(5000, pb));
    let want = icmp6_err(POOL6, H6, 1, 4, [0; 4], &sent_a);
    if let Some(d) = diff(&out.frame[14..], &want[14..]) {
        panic!("Port Unreachable back to A in one pass: {d}");
    }
    assert_eq!(h.count(Counter::Xlat4to6IcmpError), before + 1);
}

fn v6(s: &str) -> std::net::Ipv6Addr {
    s.parse().unwrap()
}
