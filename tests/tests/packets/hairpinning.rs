//! Hairpinning: SIIT (RFC 7757 §4) and stateful NAT64 (RFC 6146 §3.8), packets and the
//! errors about them.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{L4, V6Opts, diff, ipv6},
    xdp::{H6, Harness, Kind, R6, XDP_PASS},
};

use crate::common::{NAT64_CONFIG, both, echo, icmp6_err, in6, run_table, tcp, udp, v6, want4, want6, xlat};

/// RFC 7757 §4 hairpinning, its Appendix B.1 example (pool6 2001:db8:100::/40, EAM
/// 1.0.0.0/24 <-> 2001:db8:3::/120): 2001:db8:3::8 sending to 2001:db8:101:0:9:: (the
/// pool6 form of 1.0.0.9, which the EAMT maps back) reaches 2001:db8:3::9 from
/// 2001:db8:101:0:8::, the pool6 form of its own IPv4 address, so the reply takes
/// the same way back; the transport checksum follows. An IPv4-translatable
/// destination is not hairpinned: the IPv4 routes decide where it goes.
fn hairpinning(kind: Kind) {
    let config = r#"{
        "interfaces": [{"name": "lo", "attach": "xdp"}],
        "ipv4-addr": "198.51.100.1",
        "ipv6-addr": "2001:db8:ff::1",
        "pool6": "2001:db8:100::/40",
        "eamt": [{"ipv4": "1.0.0.0/24", "ipv6": "2001:db8:3::/120"}],
        "ipv4-translatable": ["192.0.2.0/24"]
    }"#;
    let h = Harness::with(kind, config);
    run_table(
        &h,
        vec![
            xlat(
                "EAM host to the pool6 form of another EAM host (RFC 7757 B.1)",
                in6("2001:db8:3::8", "2001:db8:101:0:9::", &udp(b"hair")),
                want6("2001:db8:101:0:8::", "2001:db8:3::9", 0, 64, &udp(b"hair")),
                Counter::XlatHairpin,
            ),
            xlat(
                "tcp",
                in6("2001:db8:3::8", "2001:db8:101:0:9::", &tcp(b"pin")),
                want6("2001:db8:101:0:8::", "2001:db8:3::9", 0, 64, &tcp(b"pin")),
                Counter::XlatHairpin,
            ),
            xlat(
                "echo from an IPv4-translatable host",
                in6("2001:db8:1c0:2:22::", "2001:db8:101:0:9::", &echo(true)),
                want6("2001:db8:1c0:2:22::", "2001:db8:3::9", 0, 64, &echo(true)),
                Counter::XlatHairpin,
            ),
            xlat(
                "to an IPv4-translatable host: by the IPv4 routes, translated once",
                in6("2001:db8:3::8", "2001:db8:1c0:2:21::", &udp(b"routes")),
                want4("1.0.0.8", "192.0.2.33", 0, 64, &udp(b"routes")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "to an IPv4 address that does not map back: translated once",
                in6("2001:db8:3::8", "2001:db8:1cb:71:71::", &udp(b"out")),
                want4("1.0.0.8", "203.0.113.113", 0, 64, &udp(b"out")),
                Counter::Xlat6to4Udp,
            ),
        ],
    );
}

/// RFC 7757 §4 for ICMP errors (the kernel-module peer's "6791v66"): a router without
/// a mapping (2001:db8::5) reports a hairpinned packet (pool6 form of 1.0.0.1 ->
/// 2001:db8:2::a). The error is for an IPv6 host again: it comes back to 2001:db8:3::1
/// in one pass (one hop, as the packet it is about took), from the pool6 form of the
/// RFC 6791 address, quoting the packet as that host sent it: to the pool6 form of
/// 10.0.0.10, not to the EAM address behind it.
fn hairpinned_errors_quote_what_the_sender_sent(kind: Kind) {
    let config = r#"{
        "interfaces": [{"name": "lo", "attach": "xdp"}],
        "ipv4-addr": "198.51.100.1",
        "ipv6-addr": "2001:db8:ff::1",
        "pool6": "2001:db8:100::/40",
        "rfc6791v4-prefix": "203.0.113.8/32",
        "eamt": [{"ipv4": "1.0.0.0/24", "ipv6": "2001:db8:3::/120"}, {"ipv4": "10.0.0.0/24", "ipv6": "2001:db8:2::/120"}]
    }"#;
    let h = Harness::with(kind, config);
    let payload = udp(b"6791");
    let quoted = |src: &str, dst: &str| ipv6(v6(src), v6(dst), V6Opts::default(), &payload);
    let in6 = icmp6_err(
        "2001:db8::5",
        "2001:db8:101:0:1::",
        1,
        0,
        [0; 4],
        &quoted("2001:db8:101:0:1::", "2001:db8:2::a"),
    );
    let out = h.run(&in6);
    // No route here: handed to the kernel, which takes the one hop.
    assert_eq!(out.action, XDP_PASS, "to the kernel");
    let want = icmp6_err(
        "2001:db8:1cb:71:8::",
        "2001:db8:3::1",
        1,
        0,
        [0; 4],
        &quoted("2001:db8:3::1", "2001:db8:10a:0:a::"),
    );
    if let Some(d) = diff(&out.frame[14..], &want[14..]) {
        panic!("the error back to the IPv6 host in one pass: {d}");
    }
    assert_eq!(h.count(Counter::Xlat4to6IcmpError), 1, "counted once, as what it became");
    assert_eq!(h.count(Counter::Xlat6to4IcmpError), 0);
}

const POOL6: &str = "64:ff9b::cb00:7108";

/// Host A reaches host B through B's pool4 transport address (hairpinned); a router
/// in front of B answers the packet with Port Unreachable, to the pool6 address the
/// packet came from. That error is for A: it reaches A in one pass (one hop, as the
/// packet did), from the pool6 address A sent to, quoting the packet as A sent it.
fn stateful_nat64_hairpinned_errors_in_one_pass(kind: Kind) {
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

both!(
    hairpinning,
    hairpinned_errors_quote_what_the_sender_sent,
    stateful_nat64_hairpinned_errors_in_one_pass,
);
