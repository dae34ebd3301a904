//! Translation basics: each protocol both ways, what passes untouched and what is
//! dropped, options, the RFC 6052 prefix lengths, IPv4 identifications, the unconfigured
//! program, the own address in pool6, source routes.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, diff, eth4, eth6, ipv4, ipv6},
    pin_to_cpu,
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG, XDP_PASS, XDP_TX},
};

use crate::common::{
    adopt_ipv4_id, back, both, dropped, echo, icmp4_err, icmp6_err, in4, in6, passed, prohibited4,
    prohibited6, replied, run_table, tcp, udp, v4, v6, want4, want6, with_ttl, xlat,
};

/// An ICMPv6 Destination Unreachable (port) about a UDP packet, as its body.
fn unreach6_about_udp() -> Vec<u8> {
    let quoted = ipv6(v6(R6), v6(H6), V6Opts::default(), &udp(b"q"));
    let mut body = vec![1, 4, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&quoted);
    body
}

/// An IPv4 UDP fragment at offset 8 (the end of its datagram), header checksum right.
fn later_fragment4(src: &str, dst: &str) -> Vec<u8> {
    let mut f = in4(src, dst, &udp(b"later fragment"));
    f[20..22].copy_from_slice(&1u16.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn ipv6_to_ipv4_each_protocol(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let big = vec![0x5a; 1400];
    let gre = L4::Raw { proto: 47, data: vec![0, 0, 0x08, 0x00, 1, 2, 3, 4] };
    let tc_in =
        eth6(&ipv6(v6(H6), v6(R6), V6Opts { tc: 0xb8, hop_limit: 17, flow_label: 0x12345 }, &udp(b"dscp")));
    run_table(
        &h,
        vec![
            xlat(
                "udp",
                in6(H6, R6, &udp(b"hello")),
                want4(H4, R4, 0, 64, &udp(b"hello")),
                Counter::Xlat6to4Udp,
            ),
            xlat("udp empty", in6(H6, R6, &udp(b"")), want4(H4, R4, 0, 64, &udp(b"")), Counter::Xlat6to4Udp),
            xlat(
                "tcp",
                in6(H6, R6, &tcp(b"GET / HTTP/1.0\r\n")),
                want4(H4, R4, 0, 64, &tcp(b"GET / HTTP/1.0\r\n")),
                Counter::Xlat6to4Tcp,
            ),
            xlat(
                "echo request",
                in6(H6, R6, &echo(true)),
                want4(H4, R4, 0, 64, &echo(true)),
                Counter::Xlat6to4Icmp,
            ),
            xlat(
                "echo reply",
                in6(H6, R6, &echo(false)),
                want4(H4, R4, 0, 64, &echo(false)),
                Counter::Xlat6to4Icmp,
            ),
            xlat(
                "large udp gets DF=1 ID=0",
                in6(H6, R6, &udp(&big)),
                want4(H4, R4, 0, 64, &udp(&big)),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "traffic class to TOS, flow label dropped",
                tc_in,
                want4(H4, R4, 0xb8, 17, &udp(b"dscp")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "other protocol copied",
                in6(H6, R6, &gre),
                want4(H4, R4, 0, 64, &gre),
                Counter::Xlat6to4Other,
            ),
            xlat(
                "EAM destination",
                in6(H6, "2001:db8:7::34", &udp(b"x")),
                want4(H4, "93.184.216.34", 0, 64, &udp(b"x")),
                Counter::Xlat6to4Udp,
            ),
        ],
    );
}

fn ipv4_to_ipv6_each_protocol(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let tos_in =
        eth4(&ipv4(v4(R4), v4(H4), V4Opts { tos: 0x2e, ttl: 9, id: 99, df: false }, &[], &udp(b"q")));
    let gre = L4::Raw { proto: 47, data: vec![0, 0, 0x86, 0xdd, 9, 9] };
    // IHL 6: four NOP options, dropped by translation (RFC 7915 §4.1)
    let opts_in = eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &[1, 1, 1, 1], &udp(b"opt")));
    // A minimum-size Ethernet frame carries padding after the datagram.
    let mut padded = in4(R4, H4, &udp(b""));
    padded.resize(60, 0xee);
    run_table(
        &h,
        vec![
            xlat(
                "udp",
                in4(R4, H4, &udp(b"hello")),
                want6(R6, H6, 0, 64, &udp(b"hello")),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "tcp",
                in4(R4, H4, &tcp(b"HTTP/1.0 200 OK\r\n")),
                want6(R6, H6, 0, 64, &tcp(b"HTTP/1.0 200 OK\r\n")),
                Counter::Xlat4to6Tcp,
            ),
            xlat(
                "echo request",
                in4(R4, H4, &echo(true)),
                want6(R6, H6, 0, 64, &echo(true)),
                Counter::Xlat4to6Icmp,
            ),
            xlat(
                "echo reply",
                in4(R4, H4, &echo(false)),
                want6(R6, H6, 0, 64, &echo(false)),
                Counter::Xlat4to6Icmp,
            ),
            xlat("TOS to traffic class", tos_in, want6(R6, H6, 0x2e, 9, &udp(b"q")), Counter::Xlat4to6Udp),
            xlat(
                "other protocol copied",
                in4(R4, H4, &gre),
                want6(R6, H6, 0, 64, &gre),
                Counter::Xlat4to6Other,
            ),
            xlat("options dropped", opts_in, want6(R6, H6, 0, 64, &udp(b"opt")), Counter::Xlat4to6Udp),
            xlat("ethernet padding trimmed", padded, want6(R6, H6, 0, 64, &udp(b"")), Counter::Xlat4to6Udp),
            xlat(
                "EAM source wins over pool6",
                in4("93.184.216.34", H4, &udp(b"e")),
                want6("2001:db8:7::34", H6, 0, 64, &udp(b"e")),
                Counter::Xlat4to6Udp,
            ),
        ],
    );
}

fn not_for_translation_passes_untouched(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let arp = packet::eth(
        0x0806,
        &[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xaa, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2],
    );
    let ns = in6("fe80::1", "ff02::1:ff00:5", &L4::Raw { proto: 58, data: vec![135, 0, 0, 0, 0, 0, 0, 0] });
    run_table(
        &h,
        vec![
            passed("arp", arp, Counter::PassNotIp),
            passed("ndp to multicast", ns, Counter::PassV6NotOurs),
            passed("ipv6 to another prefix", in6(H6, "2001:db8:99::1", &udp(b"x")), Counter::PassV6NotOurs),
            passed("ipv6 to the translator", in6(H6, "3fff::1", &udp(b"x")), Counter::PassOwnAddress),
            passed("ipv4 to the translator", in4(R4, "198.51.100.1", &udp(b"x")), Counter::PassOwnAddress),
            passed("ipv4 not in EAMT", in4(R4, "10.1.2.3", &udp(b"x")), Counter::PassV4NotOurs),
            passed("ipv4 broadcast", in4("192.0.2.9", "255.255.255.255", &udp(b"x")), Counter::PassV4NotOurs),
            passed("ipv4 multicast", in4("192.0.2.9", "224.0.0.251", &udp(b"x")), Counter::PassV4NotOurs),
        ],
    );
}

fn untranslatable_packets_are_dropped_and_counted(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let mut bad_csum = in4(R4, H4, &udp(b"x"));
    bad_csum[24] ^= 0xff;
    let ttl1 = with_ttl(in4(R4, H4, &udp(b"x")), 1);
    let hl1 = eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &udp(b"x")));
    let mut lying_len = in6(H6, R6, &udp(b"hello"));
    lying_len[18..20].copy_from_slice(&500u16.to_be_bytes());
    let mut lying_v4 = in4(R4, H4, &udp(b"hello"));
    lying_v4[16..18].copy_from_slice(&900u16.to_be_bytes());
    lying_v4[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&lying_v4[14..34]]);
    lying_v4[24..26].copy_from_slice(&c.to_be_bytes());
    let mut bad_ihl = in4(R4, H4, &udp(b"x"));
    bad_ihl[14] = 0x44;
    let mut not_v4 = in4(R4, H4, &udp(b"x"));
    not_v4[14] = 0x65;
    let mut short_v6 = in6(H6, R6, &udp(b""));
    short_v6.truncate(40);
    let zero_udp = L4::Udp { sport: 1, dport: 2, data: b"z".to_vec(), zero_checksum: true };
    let v6only = L4::Raw { proto: 58, data: vec![128, 0, 0, 0, 0, 0, 0, 0] };
    let router_adv = L4::Raw { proto: 58, data: vec![134, 0, 0x79, 0xff, 64, 0, 0, 0] };
    let timestamp = L4::Raw { proto: 1, data: vec![13, 0, 0xf2, 0xff, 0, 0, 0, 0] };
    run_table(
        &h,
        vec![
            // RFC 7915 §5.4 and §4.4: dropped for an address that cannot be translated,
            // and the sender told (Communication Administratively Prohibited).
            prohibited6(
                "ipv6 source without mapping",
                in6("2001:db8:99::1", R6, &udp(b"x")),
                Counter::DropSrcUnmapped,
            ),
            // Never to a source that is not one host.
            dropped("ipv4 source is loopback", in4("127.0.0.1", H4, &udp(b"x")), Counter::DropReservedAddr),
            prohibited6(
                "pool6 to reserved ipv4",
                in6(H6, "64:ff9b::7f00:1", &udp(b"x")),
                Counter::DropReservedAddr,
            ),
            prohibited6(
                "pool6 to denylist4",
                in6(H6, "64:ff9b::808:404", &udp(b"x")),
                Counter::DropDenylist4,
            ),
            prohibited4("denylisted ipv4 source", in4("8.8.4.4", H4, &udp(b"x")), Counter::DropDenylist4),
            prohibited6(
                "well-known prefix to private ipv4",
                in6(H6, "64:ff9b::a00:1", &udp(b"x")),
                Counter::DropWkpNonGlobal,
            ),
            prohibited4(
                "private ipv4 source via well-known prefix",
                in4("10.0.0.1", H4, &udp(b"x")),
                Counter::DropWkpNonGlobal,
            ),
            prohibited6(
                "pool6 to translator's own ipv4",
                in6(H6, "64:ff9b::c633:6401", &udp(b"x")),
                Counter::DropOwnAddress,
            ),
            // Never about an ICMP error, nor about an IPv4 fragment after the first.
            dropped(
                "icmpv6 error to a denylisted ipv4 address",
                in6(H6, "64:ff9b::808:404", &L4::Raw { proto: 58, data: unreach6_about_udp() }),
                Counter::DropDenylist4,
            ),
            dropped(
                "ipv4 fragment after the first from a denylisted source",
                later_fragment4("8.8.4.4", H4),
                Counter::DropDenylist4,
            ),
            dropped("bad ipv4 header checksum", bad_csum, Counter::DropBadIpv4Checksum),
            replied(
                "ttl 1: time exceeded from the translator's IPv4 address",
                ttl1.clone(),
                back(icmp4_err("198.51.100.1", R4, 11, 0, [0; 4], &ttl1[14..])),
                Counter::DropTtlExpired,
            ),
            replied(
                "hop limit 1: time exceeded from the translator's IPv6 address",
                hl1.clone(),
                back(icmp6_err("3fff::1", H6, 3, 0, [0; 4], &hl1[14..])),
                Counter::DropTtlExpired,
            ),
            dropped("ipv6 payload length beyond the packet", lying_len, Counter::DropMalformed),
            dropped("ipv4 total length beyond the packet", lying_v4, Counter::DropMalformed),
            dropped("ipv4 IHL below 5", bad_ihl, Counter::DropMalformed),
            dropped("version 6 in an IPv4 frame", not_v4, Counter::DropMalformed),
            replied(
                "ipv4 udp checksum zero: communication administratively prohibited",
                in4(R4, H4, &zero_udp),
                back(icmp4_err("198.51.100.1", R4, 3, 13, [0; 4], &in4(R4, H4, &zero_udp)[14..])),
                Counter::DropUdpChecksumZero,
            ),
            dropped("ipv6 udp checksum zero", in6(H6, R6, &zero_udp), Counter::DropUdpChecksumZero),
            dropped("protocol 58 inside ipv4", in4(R4, H4, &v6only), Counter::DropV6OnlyProtocol),
            dropped("icmp timestamp (informational)", in4(R4, H4, &timestamp), Counter::DropIcmpUntranslated),
            dropped("icmpv6 router advertisement", in6(H6, R6, &router_adv), Counter::DropIcmpUntranslated),
        ],
    );
    // BPF_PROG_TEST_RUN refuses to build an skb whose IPv6 header is cut short (EINVAL),
    // so this row runs through XDP only; the TC program shares the check.
    if kind == Kind::Xdp {
        run_table(&h, vec![dropped("truncated ipv6 header", short_v6, Counter::DropMalformed)]);
    }
    // `icmp-errors-on-drop` off, live: the same drops, counted, and no answer.
    let mut h = h;
    let mut g = h.tables.globals().unwrap();
    nat64_ctl::config::apply_setting(&mut g, "icmp-errors-on-drop", "off").unwrap();
    h.tables.set_globals(g).unwrap();
    run_table(
        &h,
        vec![
            dropped(
                "ipv6 source without mapping, errors off",
                in6("2001:db8:99::1", R6, &udp(b"x")),
                Counter::DropSrcUnmapped,
            ),
            dropped(
                "pool6 to denylist4, errors off",
                in6(H6, "64:ff9b::808:404", &udp(b"x")),
                Counter::DropDenylist4,
            ),
            dropped(
                "denylisted ipv4 source, errors off",
                in4("8.8.4.4", H4, &udp(b"x")),
                Counter::DropDenylist4,
            ),
        ],
    );
}

fn options_amend_udp_zero_checksum_and_zeroize_traffic_class(kind: Kind) {
    let cfg = TEST_CONFIG.replace(
        r#""denylist4""#,
        r#""amend-udp-checksum-zero": true, "zeroize-traffic-class": true, "denylist4""#,
    );
    let h = Harness::with(kind, &cfg);
    let zero_udp = L4::Udp { sport: 1, dport: 2, data: b"amend me, odd".to_vec(), zero_checksum: true };
    let computed = L4::Udp { sport: 1, dport: 2, data: b"amend me, odd".to_vec(), zero_checksum: false };
    let tos_in = eth4(&ipv4(v4(R4), v4(H4), V4Opts { tos: 0xb8, ..Default::default() }, &[], &udp(b"q")));
    run_table(
        &h,
        vec![
            xlat(
                "udp zero checksum computed",
                in4(R4, H4, &zero_udp),
                want6(R6, H6, 0, 64, &computed),
                Counter::Xlat4to6Udp,
            ),
            xlat("traffic class zeroed", tos_in, want6(R6, H6, 0, 64, &udp(b"q")), Counter::Xlat4to6Udp),
        ],
    );
}

fn well_known_prefix_rule_can_be_switched_off(kind: Kind) {
    let cfg = TEST_CONFIG.replace(r#""denylist4""#, r#""wkp-allow-non-global": true, "denylist4""#);
    let h = Harness::with(kind, &cfg);
    run_table(
        &h,
        vec![
            xlat(
                "to private ipv4",
                in6(H6, "64:ff9b::a00:1", &udp(b"x")),
                want4(H4, "10.0.0.1", 0, 64, &udp(b"x")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "from private ipv4",
                in4("10.0.0.1", H4, &udp(b"x")),
                want6("64:ff9b::a00:1", H6, 0, 64, &udp(b"x")),
                Counter::Xlat4to6Udp,
            ),
        ],
    );
}

/// RFC 6052 §2.2 for every prefix length, both directions, with the RFC's own
/// example prefixes (2001:db8:122:344::/n, u-octet skipped).
fn every_rfc6052_prefix_length(kind: Kind) {
    let examples = [
        (32, "2001:db8::/32", "2001:db8:c000:221::"),
        (40, "2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        (48, "2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        (56, "2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        (64, "2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        (96, "2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
    ];
    for (len, pool6, embedded) in examples {
        // The EAM entry shrinks to 192.0.2.0/27 so 192.0.2.33 goes through pool6.
        let cfg = TEST_CONFIG.replace(r#""64:ff9b::/96""#, &format!("\"{pool6}\"")).replace(
            r#""192.0.2.0/24", "ipv6": "2001:db8:6::/120""#,
            r#""192.0.2.0/27", "ipv6": "2001:db8:6::/123""#,
        );
        let h = Harness::with(kind, &cfg);
        let name: &'static str = Box::leak(format!("/{len}").into_boxed_str());
        run_table(
            &h,
            vec![
                xlat(
                    name,
                    in6(H6, embedded, &udp(b"6052")),
                    want4(H4, "192.0.2.33", 0, 64, &udp(b"6052")),
                    Counter::Xlat6to4Udp,
                ),
                xlat(
                    name,
                    in4("192.0.2.33", H4, &tcp(b"6052")),
                    want6(embedded, H6, 0, 64, &tcp(b"6052")),
                    Counter::Xlat4to6Tcp,
                ),
            ],
        );
    }
}

/// The Identification of a translated IPv4 packet that may be fragmented (at most
/// 1260 bytes, DF=0, RFC 7915 §5.1.1) does not repeat soon (RFC 6864 §4.2): 5,000
/// packets from one CPU, 5,000 different values, none 0, and consecutive values not
/// one apart. (Random values would repeat after a few hundred: the chance that 5,000
/// random 16-bit values are all different is below 1e-80.)
fn ipv4_identifications_do_not_repeat(kind: Kind) {
    // Each CPU counts on its own: the runs must all be on one.
    pin_to_cpu(0);
    let h = Harness::with(kind, TEST_CONFIG);
    let frame = in6(H6, R6, &udp(b"identification"));
    let mut seen = std::collections::HashSet::new();
    let mut prev: Option<u16> = None;
    let mut steps_of_one = 0;
    for i in 0..5000 {
        let out = h.run(&frame);
        assert_eq!(out.action, XDP_PASS, "packet {i}");
        assert_eq!(&out.frame[20..22], &[0, 0], "packet {i}: DF=0, not a fragment");
        let id = u16::from_be_bytes([out.frame[18], out.frame[19]]);
        assert_ne!(id, 0, "packet {i}: Identification 0");
        assert!(seen.insert(id), "packet {i}: Identification {id:#06x} seen before");
        if prev.is_some_and(|p| id.wrapping_sub(p) == 1) {
            steps_of_one += 1;
        }
        prev = Some(id);
    }
    assert!(steps_of_one < 10, "{steps_of_one} consecutive Identifications one apart: a plain counter");
    assert_eq!(h.count(Counter::Xlat6to4Udp), 5000);
}

/// A config with no configuration written yet passes everything (the window between
/// load and configuration).
fn unconfigured_program_passes_everything(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let mut g = h.tables.globals().unwrap();
    g.flags = 0;
    h.tables.set_globals(g).unwrap();
    run_table(&h, vec![passed("udp", in6(H6, R6, &udp(b"x")), Counter::PassDisabled)]);
}

/// The translator's own `ipv6-addr` inside pool6 (the kernel-module peer's reference
/// setup): packets to it are the host's, packets from it are not translated, and the
/// rest of pool6 translates as ever.
fn own_ipv6_address_inside_pool6(kind: Kind) {
    let own = "64:ff9b::c000:201";
    let hl1 = eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &udp(b"x")));
    let h = Harness::with(
        kind,
        &TEST_CONFIG.replace(r#""ipv6-addr": "3fff::1""#, &format!(r#""ipv6-addr": "{own}""#)),
    );
    run_table(
        &h,
        vec![
            passed("to it", in6(H6, own, &udp(b"a")), Counter::PassOwnAddress),
            dropped("from it", in6(own, R6, &udp(b"b")), Counter::DropOwnAddress),
            xlat(
                "the rest of pool6",
                in6(H6, R6, &udp(b"c")),
                want4(H4, R4, 0, 64, &udp(b"c")),
                Counter::Xlat6to4Udp,
            ),
            xlat("and back", in4(R4, H4, &udp(b"d")), want6(R6, H6, 0, 64, &udp(b"d")), Counter::Xlat4to6Udp),
            replied(
                "the errors the translator sends come from it",
                hl1.clone(),
                back(icmp6_err(own, H6, 3, 0, [0; 4], &hl1[14..])),
                Counter::DropTtlExpired,
            ),
        ],
    );
}

/// RFC 7915 §4.1: IPv4 options are dropped, but an unexpired loose or strict source
/// route is answered with Destination Unreachable, Source Route Failed; an expired one
/// (pointer past its last address) is translated like any other option.
fn unexpired_source_route_fails(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    // NOP, then LSRR with one address and the pointer on it (4), padded with EOOL.
    let lsrr = [1, 131, 7, 4, 203, 0, 113, 9];
    let routed = eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &lsrr, &udp(b"via")));
    let out = h.run(&routed);
    assert_eq!(out.action, XDP_TX);
    let mut want = back(icmp4_err("198.51.100.1", R4, 3, 5, [0; 4], &routed[14..]));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("source route failed: {d}");
    }
    // SSRR the same.
    let ssrr = [137, 7, 4, 203, 0, 113, 9, 0];
    let strict = eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &ssrr, &udp(b"via")));
    assert_eq!(h.run(&strict).action, XDP_TX);
    assert_eq!(h.count(Counter::DropSourceRoute), 2);

    // Expired (pointer 8 > length 7): the options go, the packet is translated.
    let expired =
        eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &[1, 131, 7, 8, 203, 0, 113, 9], &udp(b"via")));
    let out = h.run(&expired);
    assert_eq!(out.action, XDP_PASS);
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &udp(b"via"))) {
        panic!("expired source route: {d}");
    }
    // Not to a translated address: not ours, untouched.
    let other = eth4(&ipv4(v4(R4), v4("203.0.113.77"), V4Opts::default(), &lsrr, &udp(b"via")));
    let out = h.run(&other);
    assert_eq!((out.action, out.frame.as_slice()), (XDP_PASS, other.as_slice()));
    assert_eq!(h.count(Counter::DropSourceRoute), 2);
}

/// The TC program for L3 devices (WireGuard, TUN) passes the kernel's verifier.
/// BPF_PROG_TEST_RUN always hands TC programs a frame with an Ethernet header, so it
/// cannot run that program on bare IP packets: the end-to-end tests carry real traffic
/// through it on a real L3 device.
#[test]
fn tc_program_for_l3_devices_verifies() {
    nat64_tests::require_root();
    if let Err(e) = nat64_ctl::load::load(&[nat64_ctl::load::TC_L3_PROGRAM]) {
        panic!("{e:#}");
    }
}

both!(
    ipv6_to_ipv4_each_protocol,
    ipv4_to_ipv6_each_protocol,
    not_for_translation_passes_untouched,
    untranslatable_packets_are_dropped_and_counted,
    options_amend_udp_zero_checksum_and_zeroize_traffic_class,
    well_known_prefix_rule_can_be_switched_off,
    every_rfc6052_prefix_length,
    ipv4_identifications_do_not_repeat,
    unconfigured_program_passes_everything,
    own_ipv6_address_inside_pool6,
    unexpired_source_route_fails,
);
