//! Packet tests: real bytes through the real, kernel-verified XDP and TC programs
//! (BPF_PROG_TEST_RUN), compared byte for byte with packets built independently.
//! Each table row is (input frame, expected verdict, expected output frame).

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::{counters::Counter, maps::Globals};
use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, diff, eth4, eth6, ipv4, ipv6},
    pin_to_cpu,
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, sh},
};

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn udp(data: &[u8]) -> L4 {
    L4::Udp { sport: 40000, dport: 53, data: data.to_vec(), zero_checksum: false }
}

fn tcp(data: &[u8]) -> L4 {
    L4::Tcp { sport: 40001, dport: 80, seq: 0x01020304, flags: 0x18, data: data.to_vec() }
}

fn echo(request: bool) -> L4 {
    L4::Echo { request, id: 0x4242, seq: 7, data: b"abcdefgh-ping-payload".to_vec() }
}

/// Copies the IPv4 Identification the program chose into `want` (it is random by
/// design, RFC 7915 §5.1) after checking it is non-zero, and fixes the header checksum.
fn adopt_ipv4_id(got: &[u8], want: &mut [u8]) {
    assert!(got.len() > 34 && want.len() > 34);
    let id = u16::from_be_bytes([got[18], got[19]]);
    assert_ne!(id, 0, "a translated packet of at most 1260 bytes gets a non-zero ID");
    want[18..20].copy_from_slice(&id.to_be_bytes());
    want[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&want[14..34]]);
    want[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Checks the output's IP and L4 checksums from scratch.
fn assert_checksums_valid(frame: &[u8]) {
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == 0x0800 {
        let ihl = ((frame[14] & 0xf) * 4) as usize;
        assert!(packet::checksum_ok(&[&frame[14..14 + ihl]]), "IPv4 header checksum");
        if u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0 {
            return; // a fragment's transport checksum covers the whole datagram
        }
        let l4 = &frame[14 + ihl..];
        let mut ph = frame[26..34].to_vec();
        ph.extend_from_slice(&[0, frame[23]]);
        ph.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        match frame[23] {
            6 | 17 => assert!(packet::checksum_ok(&[&ph, l4]), "L4 checksum (v4)"),
            1 => assert!(packet::checksum_ok(&[l4]), "ICMP checksum"),
            _ => {}
        }
    } else {
        if frame[20] == 44 {
            return; // a fragment's transport checksum covers the whole datagram
        }
        let l4 = &frame[54..];
        let mut ph = frame[22..54].to_vec();
        ph.extend_from_slice(&(l4.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, frame[20]]);
        if matches!(frame[20], 6 | 17 | 58) {
            assert!(packet::checksum_ok(&[&ph, l4]), "L4 checksum (v6)");
        }
    }
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    verdict: u32,
    /// Expected output; `None` for drops (the frame is not looked at).
    output: Option<Vec<u8>>,
    counter: Counter,
}

fn run_table(h: &Harness, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for mut c in cases {
        let before = h.count(c.counter);
        let out = h.run(&c.input);
        if out.action != c.verdict {
            failures.push(format!("{}: verdict {} want {}", c.name, out.action, c.verdict));
            continue;
        }
        if let Some(want) = c.output.as_mut() {
            let v4_out = want.len() > 14
                && want[12..14] == [0x08, 0x00]
                && (c.input[12..14] == [0x86, 0xdd] || c.verdict == XDP_TX);
            if v4_out && want[20] & 0x40 == 0 {
                adopt_ipv4_id(&out.frame, want);
            }
            if let Some(d) = diff(&out.frame, want) {
                failures.push(format!("{}: {d}", c.name));
                continue;
            }
            if c.verdict != XDP_PASS || out.frame != c.input {
                assert_checksums_valid(&out.frame);
            }
        }
        let after = h.count(c.counter);
        if after != before + 1 {
            failures.push(format!("{}: counter {} went {before} -> {after}", c.name, c.counter.name()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Dropped and answered with ICMPv6 Destination Unreachable, Communication
/// Administratively Prohibited, from the translator's IPv6 address (RFC 7915 §5.4).
fn prohibited6(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&input[22..38]).unwrap()).to_string();
    let output = back(icmp6_err("3fff::1", &src, 1, 1, [0; 4], &input[14..]));
    replied(name, input, output, counter)
}

/// Dropped and answered with ICMPv4 Destination Unreachable, Communication
/// Administratively Prohibited, from the translator's IPv4 address (RFC 7915 §4.4).
fn prohibited4(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&input[26..30]).unwrap()).to_string();
    let output = back(icmp4_err("198.51.100.1", &src, 3, 13, [0; 4], &input[14..]));
    replied(name, input, output, counter)
}

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

fn xlat(name: &'static str, input: Vec<u8>, output: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_PASS, output: Some(output), counter }
}

fn passed(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    Case { name, output: Some(input.clone()), input, verdict: XDP_PASS, counter }
}

/// The translator answers with an ICMP error, sent back out (XDP_TX).
fn replied(name: &'static str, input: Vec<u8>, reply: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_TX, output: Some(reply), counter }
}

/// `frame` as sent back: MAC addresses swapped.
fn back(mut frame: Vec<u8>) -> Vec<u8> {
    let (a, b) = (frame[0..6].to_vec(), frame[6..12].to_vec());
    frame[0..6].copy_from_slice(&b);
    frame[6..12].copy_from_slice(&a);
    frame
}

fn dropped(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_DROP, output: None, counter }
}

/// The IPv4 form of an IPv6 packet of this test's two hosts, as RFC 7915 §5.1 says
/// (the kernel forwards it, so TTL = hop limit here).
fn want4(src: &str, dst: &str, tos: u8, ttl: u8, l4: &L4) -> Vec<u8> {
    let p = ipv4(v4(src), v4(dst), V4Opts { tos, ttl, id: 0, df: false }, &[], l4);
    let mut f = eth4(&p);
    if f.len() - 14 > 1260 {
        f[20] = 0x40; // DF
        f[24..26].copy_from_slice(&[0, 0]);
        let c = packet::inet_checksum(&[&f[14..34]]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

fn want6(src: &str, dst: &str, tc: u8, hl: u8, l4: &L4) -> Vec<u8> {
    eth6(&ipv6(v6(src), v6(dst), V6Opts { tc, hop_limit: hl, flow_label: 0 }, l4))
}

fn in6(src: &str, dst: &str, l4: &L4) -> Vec<u8> {
    eth6(&ipv6(v6(src), v6(dst), V6Opts::default(), l4))
}

/// An IPv4 frame with its TTL set to `ttl`, the header checksum following.
fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    f[22] = ttl;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn in4(src: &str, dst: &str, l4: &L4) -> Vec<u8> {
    eth4(&ipv4(v4(src), v4(dst), V4Opts::default(), &[], l4))
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

fn ifindex(name: &str) -> u32 {
    sh(&format!("ip -o link show {name} | cut -d: -f1")).trim().parse().unwrap()
}

/// Two ports in the harness's namespace, forwarding on: x6 (02:00:00:00:06:01,
/// 2001:db8:6::1/64, neighbour H6 at 02:00:00:00:06:05) and x4 (02:00:00:00:04:01,
/// 198.51.100.1/24, 8.8.8.0/24 via the known neighbour 198.51.100.2 at
/// 02:00:00:00:04:02, 9.9.9.0/24 via 198.51.100.3, not resolved). Their ifindexes.
fn two_ports() -> (u32, u32) {
    sh("ip link add x6 type veth peer name x6p && ip link add x4 type veth peer name x4p");
    sh("ip link set x6 address 02:00:00:00:06:01 && ip link set x4 address 02:00:00:00:04:01");
    sh("for i in x6 x6p x4 x4p; do ip link set $i up; done");
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    sh("ip addr add 2001:db8:6::1/64 dev x6 nodad && ip addr add 198.51.100.1/24 dev x4");
    sh("ip route add 8.8.8.0/24 via 198.51.100.2 dev x4 && ip route add 9.9.9.0/24 via 198.51.100.3 dev x4");
    sh("ip neigh add 198.51.100.2 lladdr 02:00:00:00:04:02 dev x4 nud permanent");
    sh("ip neigh add 2001:db8:6::5 lladdr 02:00:00:00:06:05 dev x6 nud permanent");
    let (x6, x4) = (ifindex("x6"), ifindex("x4"));
    (x6, x4)
}

/// With a route and a known neighbour the program sends the packet out itself:
/// MACs from the neighbour table, TTL/hop limit decremented here (one hop in all).
fn known_route_and_neighbour_redirect_with_one_hop(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    // Only ports nat64-ctl attached to are redirect targets: first without them.
    let out = h.run_on(&in6(H6, R6, &udp(b"not a port")), x6);
    assert_eq!(out.action, XDP_PASS, "egress not in TX_PORTS goes to the kernel");
    assert_eq!(out.frame[22], 64, "and keeps its TTL for the kernel to decrement");
    h.port(x6, true);
    h.port(x4, true);

    let out = h.run_on(&in6(H6, R6, &udp(b"fast path")), x6);
    assert_eq!(out.action, XDP_REDIRECT, "6->4 with known neighbour redirects");
    let mut want = want4(H4, R4, 0, 63, &udp(b"fast path"));
    want[0..6].copy_from_slice(&[2, 0, 0, 0, 4, 2]);
    want[6..12].copy_from_slice(&[2, 0, 0, 0, 4, 1]);
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 redirect: {d}");
    }

    let out = h.run_on(&in4(R4, H4, &tcp(b"fast path back")), x4);
    assert_eq!(out.action, XDP_REDIRECT, "4->6 with known neighbour redirects");
    let mut want = want6(R6, H6, 0, 63, &tcp(b"fast path back"));
    want[0..6].copy_from_slice(&[2, 0, 0, 0, 6, 5]);
    want[6..12].copy_from_slice(&[2, 0, 0, 0, 6, 1]);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("4->6 redirect: {d}");
    }
    assert_eq!(h.count(Counter::FwdRedirect), 2);

    // No neighbour entry yet: translated, handed to the kernel (which resolves the
    // neighbour and decrements the TTL itself).
    let out = h.run_on(&in6(H6, "64:ff9b::909:909", &udp(b"slow")), x6);
    assert_eq!(out.action, XDP_PASS);
    let mut want = want4(H4, "9.9.9.9", 0, 64, &udp(b"slow"));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 without neighbour: {d}");
    }
    assert_eq!(h.count(Counter::FwdKernel), 2);
}

/// `xdp-tcp-gro`: through XDP, a translated TCP segment with data (more than 60 bytes of
/// TCP) that could leave by redirect goes to the kernel instead (XDP_PASS), its
/// TTL/hop limit left for the kernel to take off (one hop in all) and its MACs as they
/// came; a segment of 60 bytes of TCP, UDP, and everything with the setting off still
/// leave by redirect. TC ignores the setting (it gets GRO's merged packets itself).
fn xdp_tcp_gro_hands_data_segments_to_the_kernel(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    h.port(x6, true);
    h.port(x4, true);
    let mut g = h.tables.globals().unwrap();
    g.flags |= Globals::FLAG_XDP_TCP_GRO;
    h.tables.set_globals(g).unwrap();
    let data = [0x5a; 41];
    let redirected4 = |l4: &L4| {
        let mut w = want4(H4, R4, 0, 63, l4);
        w[0..6].copy_from_slice(&[2, 0, 0, 0, 4, 2]);
        w[6..12].copy_from_slice(&[2, 0, 0, 0, 4, 1]);
        w
    };
    let xdp = kind == Kind::Xdp;

    // 6->4, 41 bytes of data (61 bytes of TCP).
    let out = h.run_on(&in6(H6, R6, &tcp(&data)), x6);
    let mut want = if xdp { want4(H4, R4, 0, 64, &tcp(&data)) } else { redirected4(&tcp(&data)) };
    assert_eq!(out.action, if xdp { XDP_PASS } else { XDP_REDIRECT }, "6->4 data segment");
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 data segment: {d}");
    }
    // 4->6, the same.
    let out = h.run_on(&in4(R4, H4, &tcp(&data)), x4);
    let mut want = want6(R6, H6, 0, if xdp { 64 } else { 63 }, &tcp(&data));
    if !xdp {
        want[0..6].copy_from_slice(&[2, 0, 0, 0, 6, 5]);
        want[6..12].copy_from_slice(&[2, 0, 0, 0, 6, 1]);
    }
    assert_eq!(out.action, if xdp { XDP_PASS } else { XDP_REDIRECT }, "4->6 data segment");
    if let Some(d) = diff(&out.frame, &want) {
        panic!("4->6 data segment: {d}");
    }
    assert_eq!(h.count(Counter::FwdKernel), if xdp { 2 } else { 0 });

    // Redirected whatever the kind: 60 bytes of TCP, a pure ACK, UDP with data.
    for (name, l4) in [("40 bytes of data", tcp(&data[..40])), ("no data", tcp(b"")), ("UDP", udp(&data))] {
        let out = h.run_on(&in6(H6, R6, &l4), x6);
        assert_eq!(out.action, XDP_REDIRECT, "6->4 {name}");
        let mut want = redirected4(&l4);
        adopt_ipv4_id(&out.frame, &mut want);
        if let Some(d) = diff(&out.frame, &want) {
            panic!("6->4 {name}: {d}");
        }
    }
    // The setting off: the data segment leaves by redirect again.
    g.flags &= !Globals::FLAG_XDP_TCP_GRO;
    h.tables.set_globals(g).unwrap();
    let out = h.run_on(&in6(H6, R6, &tcp(&data)), x6);
    assert_eq!(out.action, XDP_REDIRECT, "6->4 data segment, xdp-tcp-gro off");
    let mut want = redirected4(&tcp(&data));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 data segment, xdp-tcp-gro off: {d}");
    }
    assert_eq!(h.count(Counter::FwdKernel), if xdp { 2 } else { 0 });
    assert_eq!(h.count(Counter::FwdRedirect), if xdp { 4 } else { 6 });
}

/// An attached port that takes no XDP frames (a veth whose peer has neither GRO nor an
/// XDP program): XDP hands what it translated towards it to the kernel, untouched for
/// the kernel to forward (TTL kept, MACs not rewritten), counted as
/// `fwd_kernel_no_xdp_xmit`; TC still redirects into it (bpf_redirect takes any
/// device). Once it takes XDP frames, XDP redirects too; and when it stops, XDP stops
/// at once (nat64-ctl moves the next-hop generation with every such change).
fn a_port_that_takes_no_xdp_frames_gets_no_xdp_redirects(kind: Kind) {
    use aya::maps::Array;
    pin_to_cpu(0);
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    h.port(x6, true);
    h.port(x4, false);
    let input = in6(H6, R6, &udp(b"towards x4"));
    let kernel = want4(H4, R4, 0, 64, &udp(b"towards x4"));
    let mut fast = want4(H4, R4, 0, 63, &udp(b"towards x4"));
    fast[0..6].copy_from_slice(&[2, 0, 0, 0, 4, 2]);
    fast[6..12].copy_from_slice(&[2, 0, 0, 0, 4, 1]);
    let check = |h: &Harness, what: &str, fast_path: bool| {
        let out = h.run_on(&input, x6);
        let (action, want) =
            if fast_path { (XDP_REDIRECT, &mut fast.clone()) } else { (XDP_PASS, &mut kernel.clone()) };
        assert_eq!(out.action, action, "{what}");
        adopt_ipv4_id(&out.frame, want);
        if let Some(d) = diff(&out.frame, want) {
            panic!("{what}: {d}");
        }
    };
    match kind {
        Kind::Xdp => {
            check(&h, "XDP: to the kernel, untouched for it to forward", false);
            assert_eq!(h.count(Counter::FwdKernelNoXdpXmit), 1);
            assert_eq!(h.count(Counter::FwdKernel) + h.count(Counter::FwdRedirect), 0);
        }
        Kind::Tc => {
            check(&h, "TC: redirected all the same", true);
            assert_eq!(h.count(Counter::FwdRedirect), 1);
            assert_eq!(h.count(Counter::FwdKernelNoXdpXmit), 0);
        }
    }
    // The other way, into x6 (which takes XDP frames): the fast path for both.
    let out = h.run_on(&in4(R4, H4, &udp(b"towards x6")), x4);
    assert_eq!(out.action, XDP_REDIRECT, "into a port that takes XDP frames");

    // x4 takes XDP frames now (GRO went on at its peer): XDP redirects into it.
    h.port(x4, true);
    check(&h, "now a target of XDP redirects", true);
    // And stops again: with the generation moved, not even a cached next hop is used.
    h.port(x4, false);
    let mut generation: Array<_, u64> = Array::try_from(h.ebpf.map_mut("NEXTHOP_GEN").unwrap()).unwrap();
    generation.set(0, 7, 0).unwrap();
    check(&h, "no longer a target", kind == Kind::Tc);
    let (no_xmit, redirected) = (h.count(Counter::FwdKernelNoXdpXmit), h.count(Counter::FwdRedirect));
    match kind {
        Kind::Xdp => assert_eq!((no_xmit, redirected), (2, 2)),
        Kind::Tc => assert_eq!((no_xmit, redirected), (0, 4)),
    }
    assert_eq!(h.count(Counter::FwdKernel), 0, "nothing counted twice");
}

/// The translator's own errors leave by the port the offending packet came in on (#17
/// item 2). By XDP into a port that takes XDP frames they go through the redirect map
/// (whose flush wakes a veth peer that runs GRO but no XDP program: XDP_TX there
/// left the answer to a lone ping queued until the next packet); into one that does
/// not, by XDP_TX; by TC, a redirect to the same device. The bytes are the same.
fn replies_leave_by_the_port_they_came_in(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    let ttl1 = with_ttl(in4(R4, H4, &udp(b"x")), 1);
    let hl1 = eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &udp(b"x")));
    let want4 = back(icmp4_err("198.51.100.1", R4, 11, 0, [0; 4], &ttl1[14..]));
    let want6 = back(icmp6_err("3fff::1", H6, 3, 0, [0; 4], &hl1[14..]));
    for target in [true, false] {
        h.port(x6, target);
        h.port(x4, target);
        let raw = match (kind, target) {
            (Kind::Xdp, true) => XDP_REDIRECT,
            (Kind::Xdp, false) => XDP_TX,
            (Kind::Tc, _) => 7, // TC_ACT_REDIRECT
        };
        let out = h.run_on(&ttl1, x4);
        assert_eq!((out.action, out.raw), (XDP_TX, raw), "IPv4 TTL 1, XDP frames at the port: {target}");
        let mut want = want4.clone();
        adopt_ipv4_id(&out.frame, &mut want);
        if let Some(d) = diff(&out.frame, &want) {
            panic!("time exceeded (IPv4), XDP frames at the port: {target}: {d}");
        }
        let out = h.run_on(&hl1, x6);
        assert_eq!(
            (out.action, out.raw),
            (XDP_TX, raw),
            "IPv6 hop limit 1, XDP frames at the port: {target}"
        );
        if let Some(d) = diff(&out.frame, &want6) {
            panic!("time exceeded (IPv6), XDP frames at the port: {target}: {d}");
        }
    }
    assert_eq!(h.count(Counter::IcmpSent), 4);
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

const NAT64_CONFIG: &str = r#"{
    "mode": "nat64",
    "interfaces": [{"name": "lo", "attach": "xdp"}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "3fff::1",
    "pool6": "64:ff9b::/96",
    "pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],
    "wkp-allow-non-global": true
}"#;

/// Stateful NAT64 (RFC 6146, #15): the first packet of an IPv6 transport address
/// makes a BIB entry (pool4 address, a port in its range) and a session; it leaves
/// with that address and port, byte for byte the SIIT translation otherwise; the
/// answer comes back to the IPv6 host; the same IPv6 transport address keeps its
/// mapping towards another remote (endpoint-independent mapping); an IPv4 packet
/// from a remote without a session is filtered, one to a port nobody holds dropped;
/// ICMP echo maps its identifier; TCP opens with a SYN only and follows RFC 6146's
/// states; when the host's address has no port left, ICMPv6 Address Unreachable; a
/// static entry lets an IPv4 client in, and another IPv6 host hairpins to it.
fn stateful_nat64_udp_icmp_tcp(kind: Kind) {
    use nat64_common::maps::{Bib6Key, SessionKey};
    let mut h = Harness::with(kind, NAT64_CONFIG);
    let pool = "203.0.113.8";
    let udp_from = |sport: u16| L4::Udp { sport, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    // 6 -> 4: 2001:db8:6::5:5000 -> 8.8.8.8:53.
    let out = h.run(&in6(H6, R6, &udp_from(5000)));
    // No route here: handed to the kernel, which takes the hop off (TTL 64 stays).
    assert_eq!(out.action, XDP_PASS, "translated, to the kernel");
    let port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    assert!((40000..=40003).contains(&port), "a pool4 port: {port}");
    let mut want = want4(pool, R4, 0, 64, &udp_from(port));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 through the BIB: {d}");
    }
    let nat = h.tables.nat.as_ref().expect("NAT maps");
    let k6 = Bib6Key { addr: v6(H6).octets(), port: 5000, proto: 17, _pad: 0 };
    let k4 = nat.bib6.get(&k6, 0).expect("a BIB6 entry");
    assert_eq!((k4.addr, k4.port), (v4(pool).octets(), port));
    assert_eq!(nat.bib4.get(&k4, 0).expect("its BIB4 twin").v6, k6);
    let sk = |remote: &str, rport: u16, proto: u8, local_port: u16| SessionKey {
        local: v4(pool).octets(),
        remote: v4(remote).octets(),
        local_port,
        remote_port: rport,
        proto,
        _pad: [0; 3],
    };
    assert!(nat.sessions.get(&sk(R4, 53, 17, port), 0).is_ok(), "a session");
    assert_eq!((h.count(Counter::NatBibCreated), h.count(Counter::NatSessionCreated)), (1, 1));

    // 4 -> 6: the answer reaches the host's port.
    let answer = |to: u16| L4::Udp { sport: 53, dport: to, data: b"answer".to_vec(), zero_checksum: false };
    let reply = |src: &str, to: u16| eth4(&ipv4(v4(src), v4(pool), V4Opts::default(), &[], &answer(to)));
    let want = want6(R6, H6, 0, 64, &answer(5000));
    let out = h.run(&reply(R4, port));
    assert_eq!(out.action, XDP_PASS);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("4->6 through the BIB: {d}");
    }
    // Endpoint-independent mapping: the same port towards 9.9.9.9.
    let out = h.run(&in6(H6, "64:ff9b::909:909", &udp_from(5000)));
    assert_eq!(u16::from_be_bytes([out.frame[34], out.frame[35]]), port, "the same mapping");
    assert_eq!(h.count(Counter::NatBibCreated), 1);
    // Filtering: 1.1.1.1 has no session with the mapping; nobody holds the other ports.
    let filtered = h.count(Counter::DropNatFiltered);
    assert_eq!(h.run(&reply("1.1.1.1", port)).action, XDP_DROP);
    assert_eq!(h.count(Counter::DropNatFiltered), filtered + 1);
    // Address-dependent filtering (the default): 8.8.8.8 has a session with the mapping,
    // so it may answer from another port too.
    let from54 = L4::Udp { sport: 54, dport: port, data: b"answer".to_vec(), zero_checksum: false };
    let out = h.run(&eth4(&ipv4(v4(R4), v4(pool), V4Opts::default(), &[], &from54)));
    let want = want6(
        R6,
        H6,
        0,
        64,
        &L4::Udp { sport: 54, dport: 5000, data: b"answer".to_vec(), zero_checksum: false },
    );
    if let Some(d) = diff(&out.frame, &want) {
        panic!("address-dependent filtering lets 8.8.8.8:54 in: {d}");
    }
    // Address-and-port-dependent filtering ("filtering": "address-and-port-dependent"):
    // not from a port it has no session with.
    let set_flags = |h: &mut Harness, flags: u32| {
        let nat = h.tables.nat.as_mut().unwrap();
        let mut c = nat.cfg.get(&0, 0).unwrap();
        c.flags = flags;
        nat.cfg.set(0, c, 0).unwrap();
    };
    set_flags(&mut h, nat64_common::maps::NatConfig::FLAG_APDF);
    let from55 = L4::Udp { sport: 55, dport: port, data: b"answer".to_vec(), zero_checksum: false };
    let from55 = eth4(&ipv4(v4(R4), v4(pool), V4Opts::default(), &[], &from55));
    assert_eq!(h.run(&from55).action, XDP_DROP, "APDF: 8.8.8.8:55 has no session");
    set_flags(&mut h, nat64_common::maps::NatConfig::FLAG_EIF);
    assert_eq!(h.run(&from55).action, XDP_PASS, "EIF: anyone");
    set_flags(&mut h, 0);
    // UDP to a pool4 port nobody holds: Port Unreachable from that pool4 address (RFC
    // 6146 §3.5.1).
    let other = if port == 40000 { 40001 } else { 40000 };
    let q = reply(R4, other);
    let out = h.run(&q);
    assert_eq!(out.action, XDP_TX);
    let mut want = back(icmp4_err(pool, R4, 3, 3, [0; 4], &q[14..]));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("udp to a port nobody holds: {d}");
    }
    assert_eq!(h.count(Counter::DropNatNoMapping), 1);

    // ICMP echo: the identifier is the port.
    let echo6 = L4::Echo { request: true, id: 0x4242, seq: 1, data: b"ping".to_vec() };
    let out = h.run(&in6(H6, R6, &echo6));
    assert_eq!(out.action, XDP_PASS);
    let id = u16::from_be_bytes([out.frame[38], out.frame[39]]);
    let mut want = want4(pool, R4, 0, 64, &L4::Echo { request: true, id, seq: 1, data: b"ping".to_vec() });
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("echo 6->4: {d}");
    }
    let pong = eth4(&ipv4(
        v4(R4),
        v4(pool),
        V4Opts::default(),
        &[],
        &L4::Echo { request: false, id, seq: 1, data: b"ping".to_vec() },
    ));
    let out = h.run(&pong);
    let want = want6(R6, H6, 0, 64, &L4::Echo { request: false, id: 0x4242, seq: 1, data: b"ping".to_vec() });
    if let Some(d) = diff(&out.frame, &want) {
        panic!("echo reply 4->6: {d}");
    }

    // TCP: no session without a SYN; a SYN opens one (V6 INIT), the SYN-ACK makes it
    // ESTABLISHED.
    let tcp6 = |flags: u8| L4::Tcp { sport: 6000, dport: 80, seq: 1, flags, data: vec![] };
    assert_eq!(h.run(&in6(H6, R6, &tcp6(0x10))).action, XDP_DROP, "an ACK opens nothing");
    let out = h.run(&in6(H6, R6, &tcp6(0x02)));
    assert_eq!(out.action, XDP_PASS);
    let tport = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let state =
        |h: &Harness| h.tables.nat.as_ref().unwrap().sessions.get(&sk(R4, 80, 6, tport), 0).unwrap().state;
    assert_eq!(state(&h), nat64_common::nat::TcpState::V6Init as u8);
    let synack = eth4(&ipv4(
        v4(R4),
        v4(pool),
        V4Opts::default(),
        &[],
        &L4::Tcp { sport: 80, dport: tport, seq: 9, flags: 0x12, data: vec![] },
    ));
    let out = h.run(&synack);
    let want = want6(R6, H6, 0, 64, &L4::Tcp { sport: 80, dport: 6000, seq: 9, flags: 0x12, data: vec![] });
    if let Some(d) = diff(&out.frame, &want) {
        panic!("SYN-ACK 4->6: {d}");
    }
    assert_eq!(state(&h), nat64_common::nat::TcpState::Established as u8);

    // Four ports, and the host holds three UDP ones (5000 and two more): the fourth
    // new one takes the last, the fifth finds none (ICMPv6 Address Unreachable).
    for sport in [5001, 5002, 5003] {
        assert_eq!(h.run(&in6(H6, R6, &udp_from(sport))).action, XDP_PASS, "port for {sport}");
    }
    let q = in6(H6, R6, &udp_from(5004));
    let out = h.run(&q);
    assert_eq!(out.action, XDP_TX, "address unreachable");
    let want = back(icmp6_err("3fff::1", H6, 1, 3, [0; 4], &q[14..]));
    if let Some(d) = diff(&out.frame, &want) {
        panic!("ports exhausted: {d}");
    }
    assert_eq!(h.count(Counter::DropNatPortsExhausted), 1);

    // A static BIB entry (a port forward): an IPv4 client's SYN opens a session (V4
    // INIT, whatever the filtering), the server's SYN-ACK makes it ESTABLISHED.
    let fwd = nat64_ctl::config::nat::StaticBib::parse("bib", "tcp", &format!("[{H6}]:80"), "203.0.113.8:80")
        .unwrap();
    h.tables.nat.as_mut().unwrap().bib_add(&fwd).unwrap();
    let syn = |flags: u8| L4::Tcp { sport: 999, dport: 80, seq: 5, flags, data: vec![] };
    let out = h.run(&eth4(&ipv4(v4("1.1.1.1"), v4(pool), V4Opts::default(), &[], &syn(0x02))));
    let want = want6("64:ff9b::101:101", H6, 0, 64, &syn(0x02));
    if let Some(d) = diff(&out.frame, &want) {
        panic!("SYN through the static entry: {d}");
    }
    let fstate = |h: &Harness| {
        h.tables.nat.as_ref().unwrap().sessions.get(&sk("1.1.1.1", 999, 6, 80), 0).unwrap().state
    };
    assert_eq!(fstate(&h), nat64_common::nat::TcpState::V4Init as u8);
    let synack = L4::Tcp { sport: 80, dport: 999, seq: 7, flags: 0x12, data: vec![] };
    let out = h.run(&in6(H6, "64:ff9b::101:101", &synack));
    let mut want = want4(pool, "1.1.1.1", 0, 64, &synack);
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("SYN-ACK from the server: {d}");
    }
    assert_eq!(fstate(&h), nat64_common::nat::TcpState::Established as u8);

    // Hairpinning (RFC 6146 §3.8): another IPv6 host reaching the forward through
    // pool6 goes straight to the server, from the pool6 form of its own mapping.
    let h6b = "2001:db8:6::9";
    let syn_b = L4::Tcp { sport: 7000, dport: 80, seq: 11, flags: 0x02, data: vec![] };
    let out = h.run(&in6(h6b, "64:ff9b::cb00:7108", &syn_b));
    assert_eq!(out.action, XDP_PASS, "hairpinned (no route here: to the kernel)");
    let bport = u16::from_be_bytes([out.frame[54], out.frame[55]]);
    let want = want6(
        "64:ff9b::cb00:7108",
        H6,
        0,
        64,
        &L4::Tcp { sport: bport, dport: 80, seq: 11, flags: 0x02, data: vec![] },
    );
    if let Some(d) = diff(&out.frame, &want) {
        panic!("hairpinned SYN: {d}");
    }
    assert!((40000..=40003).contains(&bport));
    assert_eq!(h.count(Counter::XlatHairpin), 1);

    // Ten minutes on, the sweep ends the UDP (5 min) and ICMP (60 s) sessions and the
    // BIB entries they used; the established TCP session (2 h 4 min) stays.
    let ten_min = nat64_ctl::stateful::boot_ns() + 600_000_000_000;
    let r = h.sweep(ten_min);
    assert_eq!(
        (r.sessions, r.released, r.removed),
        (10, 6, 0),
        "7 UDP and 1 ICMP session, the hairpin's two unanswered halves (4 min and 6 s), the BIB \
         entries of 4 + 1 + 1 of them, released: their ports held back (port-reuse-delay 120 s)"
    );
    assert_eq!(h.count(Counter::NatSessionExpired), 10);
    assert_eq!(h.count(Counter::NatBibExpired), 6);
    let nat = h.tables.nat.as_ref().unwrap();
    let left: Vec<u8> = nat.sessions.keys().filter_map(|k| k.ok()).map(|k| k.proto).collect();
    assert_eq!(left, [6, 6], "the two established TCP sessions");
    assert_eq!(nat.bib6.keys().count(), 2, "the TCP mapping and the static entry");
    assert_eq!(nat.bib_list().len(), 2, "released entries are not listed");
    assert!(nat.adf.keys().count() <= 2, "the filtering entries of ended sessions went");
    // RFC 6888 REQ-8: the released ports stay out of use for 120 s, so the host's next
    // datagram finds none of the four free; once the delay is over, it gets one.
    assert_eq!(h.run(&q).action, XDP_TX, "every port held back");
    let r = h.sweep(ten_min + 119_000_000_000);
    assert_eq!((r.sessions, r.released, r.removed), (0, 0, 0), "119 s: still held back");
    let r = h.sweep(ten_min + 121_000_000_000);
    assert_eq!((r.sessions, r.released, r.removed), (0, 0, 6), "121 s: free");
    assert_eq!(h.run(&q).action, XDP_PASS);

    // A hairpinned echo: an ICMP query reaches the mapping its identifier names, which
    // going out became the pool4 one: a host pinging its own pool4 address gets its
    // echo back, as from that address, and so the reply to it.
    let h6c = "2001:db8:6::c";
    let hairpins = h.count(Counter::XlatHairpin);
    for request in [true, false] {
        let e = L4::Echo { request, id: 0x55, seq: 2, data: b"hairpin".to_vec() };
        let before = h.counters();
        let out = h.run(&in6(h6c, "64:ff9b::cb00:7108", &e));
        let after = h.counters();
        let moved: Vec<_> = after.iter().filter(|(k, v)| before[*k] != **v).collect();
        assert_eq!(out.action, XDP_PASS, "hairpinned echo (no route here: to the kernel) {moved:?}");
        if let Some(d) = diff(&out.frame, &want6("64:ff9b::cb00:7108", h6c, 0, 64, &e)) {
            panic!("hairpinned echo (request {request}): {d}");
        }
    }
    assert_eq!(h.count(Counter::XlatHairpin), hairpins + 2);

    // `session flush`: every dynamic session and mapping ends now, its port free at
    // once; the static entry stays.
    let r = h.flush();
    let nat = h.tables.nat.as_ref().unwrap();
    assert!(r.sessions >= 4 && r.removed >= 3, "{r:?}");
    assert_eq!(nat.sessions.keys().count(), 0);
    assert_eq!(
        nat.bib_list(),
        [(6, format!("[{H6}]:80").parse().unwrap(), "203.0.113.8:80".parse().unwrap(), true)]
    );
    assert_eq!(nat.bib4.keys().count(), 1, "nothing held back");
    assert_eq!(nat.subscribers.keys().count(), 0);
}

/// RFC 7757 §3.2 / §3.3 with an IPv6 suffix longer than the IPv4 one
/// (203.0.113.0/24 <-> 2001:db8:1c6:3364::/72): the IPv4 suffix bits sit right after
/// the IPv6 prefix (203.0.113.7 is 2001:db8:1c6:3364:7::); from IPv6, the bits after
/// them are not looked at.
fn eam_with_unequal_suffixes(kind: Kind) {
    use nat64_ctl::config::{EamtEntry, Prefix4, Prefix6};
    let mut h = Harness::with(kind, TEST_CONFIG);
    let e = EamtEntry::new(
        "203.0.113.0/24".parse::<Prefix4>().unwrap(),
        "2001:db8:1c6:3364::/72".parse::<Prefix6>().unwrap(),
    )
    .unwrap();
    h.tables.eamt_add(&e, false).unwrap();
    let (e4, e6) = ("203.0.113.7", "2001:db8:1c6:3364:7::");
    run_table(
        &h,
        vec![
            xlat("to v6", in4(R4, e4, &udp(b"a")), want6(R6, e6, 0, 64, &udp(b"a")), Counter::Xlat4to6Udp),
            xlat("from v6", in6(e6, R6, &tcp(b"b")), want4(e4, R4, 0, 64, &tcp(b"b")), Counter::Xlat6to4Tcp),
            xlat(
                "from v6, bits after the suffix ignored",
                in6("2001:db8:1c6:3364:7:1:2:3", R6, &udp(b"c")),
                want4(e4, R4, 0, 64, &udp(b"c")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "between two entries",
                in6(e6, "2001:db8:6::9", &echo(true)),
                want4(e4, "192.0.2.9", 0, 64, &echo(true)),
                Counter::Xlat6to4Icmp,
            ),
        ],
    );
}

/// IPv4-translatable IPv6 hosts (RFC 6052 §2, RFC 7915 §1.3): with `ipv4-translatable`
/// an IPv4 destination inside one of its prefixes is reached through pool6, as an EAM
/// one is through its entry: plain packets and ICMP errors (outer and inner addresses).
/// EAM entries still win; the translator's own address, denylist4, the never-translate
/// ranges and the Well-Known-Prefix rule still apply; outside the prefixes nothing
/// changes. Switched off live (`set ipv4-translatable none` writes the same), the
/// destinations pass again.
fn ipv4_translatable_destinations(kind: Kind) {
    let config = TEST_CONFIG.replace(
        r#""denylist4": ["8.8.4.0/24"]"#,
        r#""denylist4": ["8.8.4.0/24"], "ipv4-translatable": ["1.2.3.0/24", "8.8.0.0/16", "10.0.0.0/8", "192.0.2.0/24"]"#,
    );
    let mut h = Harness::with(kind, &config);
    // 1.2.3.7 is the IPv6 host 64:ff9b::102:307 (pool6 + its IPv4 address).
    let (t4, t6) = ("1.2.3.7", "64:ff9b::102:307");
    let hop1 = V4Opts { ttl: 1, id: 77, df: false, tos: 0 };
    let hop1_6 = V6Opts { hop_limit: 1, ..Default::default() };
    let probe = udp(b"probe from the translatable host");
    let inner4 = ipv4(v4(t4), v4("9.9.9.9"), hop1, &[], &probe);
    let inner6 = ipv6(v6(t6), v6("64:ff9b::909:909"), hop1_6, &probe);
    run_table(
        &h,
        vec![
            xlat(
                "udp to it",
                in4(R4, t4, &udp(b"a")),
                want6(R6, t6, 0, 64, &udp(b"a")),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "tcp to it",
                in4(R4, t4, &tcp(b"b")),
                want6(R6, t6, 0, 64, &tcp(b"b")),
                Counter::Xlat4to6Tcp,
            ),
            xlat(
                "echo to it",
                in4(R4, t4, &echo(true)),
                want6(R6, t6, 0, 64, &echo(true)),
                Counter::Xlat4to6Icmp,
            ),
            xlat(
                "an ICMP error to it, about what it sent",
                icmp4_err("9.9.9.1", t4, 11, 0, [0; 4], &inner4),
                icmp6_err("64:ff9b::909:901", t6, 3, 0, [0; 4], &inner6),
                Counter::Xlat4to6IcmpError,
            ),
            // What it sends, from its pool6 address, was translated before already.
            xlat(
                "udp from it",
                in6(t6, R6, &udp(b"c")),
                want4(t4, R4, 0, 64, &udp(b"c")),
                Counter::Xlat6to4Udp,
            ),
            // An EAM entry covering the address wins over pool6.
            xlat(
                "EAM first",
                in4(R4, H4, &udp(b"d")),
                want6(R6, H6, 0, 64, &udp(b"d")),
                Counter::Xlat4to6Udp,
            ),
            prohibited4("denylist4 still applies", in4(R4, "8.8.4.4", &udp(b"e")), Counter::DropDenylist4),
            prohibited4(
                "the Well-Known Prefix still keeps non-global space out",
                in4(R4, "10.1.2.3", &udp(b"f")),
                Counter::DropWkpNonGlobal,
            ),
            passed("outside the prefixes", in4(R4, "198.18.0.1", &udp(b"g")), Counter::PassV4NotOurs),
            passed(
                "the translator's own address",
                in4(R4, "198.51.100.1", &udp(b"h")),
                Counter::PassOwnAddress,
            ),
            passed("broadcast", in4(R4, "255.255.255.255", &udp(b"i")), Counter::PassV4NotOurs),
        ],
    );
    // Switched off: the same destination is not ours any more.
    let mut g = h.tables.globals().unwrap();
    g.flags &= !nat64_common::maps::Globals::FLAG_IPV4_TRANSLATABLE;
    h.tables.set_globals(g).unwrap();
    h.tables.ipv4_translatable_set(&[]).unwrap();
    run_table(&h, vec![passed("switched off", in4(R4, t4, &udp(b"j")), Counter::PassV4NotOurs)]);
}

/// The data path remembers per CPU what each address maps to (`ADDR_MEMO`): every
/// change of the tables reaches the next packet all the same. Each packet is sent
/// three times, so that its answers are remembered before the tables change: EAM
/// entries added (a pool6 destination then maps back, RFC 7757 §4, and a source maps
/// by its entry) and removed, denylist4 prefixes added and removed.
fn address_memo_follows_table_changes(kind: Kind) {
    use nat64_ctl::config::{EamtEntry, Prefix4, Prefix6};
    // The hairpin below gives the source its pool6 form: a documentation address.
    let config = TEST_CONFIG.replace(r#""pool6""#, r#""wkp-allow-non-global": true, "pool6""#);
    let mut h = Harness::with(kind, &config);
    let (r4, r6, e6) = ("9.9.9.9", "64:ff9b::909:909", "2001:db8:99::9");
    let thrice = |cases: &dyn Fn() -> Vec<Case>| (0..3).flat_map(|_| cases()).collect::<Vec<_>>();
    let plain = || {
        vec![
            xlat("to pool6", in6(H6, r6, &udp(b"a")), want4(H4, r4, 0, 64, &udp(b"a")), Counter::Xlat6to4Udp),
            xlat(
                "from pool6",
                in4(r4, H4, &udp(b"b")),
                want6(r6, H6, 0, 64, &udp(b"b")),
                Counter::Xlat4to6Udp,
            ),
            passed("to the unmapped address", in6(H6, e6, &udp(b"c")), Counter::PassV6NotOurs),
        ]
    };
    run_table(&h, thrice(&plain));

    let e = EamtEntry::new(r4.parse::<Prefix4>().unwrap(), e6.parse::<Prefix6>().unwrap()).unwrap();
    h.tables.eamt_add(&e, false).unwrap();
    run_table(
        &h,
        thrice(&|| {
            vec![
                xlat(
                    "to pool6, mapped back by the new entry",
                    in6(H6, r6, &udp(b"d")),
                    want6("64:ff9b::c000:205", e6, 0, 64, &udp(b"d")),
                    Counter::XlatHairpin,
                ),
                xlat(
                    "from the new entry",
                    in4(r4, H4, &udp(b"e")),
                    want6(e6, H6, 0, 64, &udp(b"e")),
                    Counter::Xlat4to6Udp,
                ),
                xlat(
                    "to the new entry",
                    in6(H6, e6, &udp(b"f")),
                    want4(H4, r4, 0, 64, &udp(b"f")),
                    Counter::Xlat6to4Udp,
                ),
            ]
        }),
    );

    h.tables.eamt_del(Some(e.v4), None).unwrap();
    run_table(&h, thrice(&plain));

    let deny = "9.9.9.0/24".parse::<Prefix4>().unwrap();
    h.tables.denylist4_add(deny).unwrap();
    run_table(
        &h,
        thrice(&|| {
            vec![
                prohibited6("to a denied pool6 address", in6(H6, r6, &udp(b"g")), Counter::DropDenylist4),
                prohibited4("from a denied address", in4(r4, H4, &udp(b"h")), Counter::DropDenylist4),
            ]
        }),
    );

    h.tables.denylist4_del(deny).unwrap();
    run_table(&h, thrice(&plain));
}

/// The next-hop cache: a next hop the FIB gave is used again (here: a neighbour
/// changed without telling the cache keeps its old MAC until the cache hears of it or
/// a second passes), never for a packet larger than the lengths the FIB accepted for
/// it (the egress MTU is still checked), and is asked again once `NEXTHOP_GEN` moves
/// (nat64-ctl moves it on every route, neighbour, address or link change).
fn next_hop_cache_follows_changes_and_keeps_the_mtu(kind: Kind) {
    use aya::maps::Array;
    // The cache is per CPU: every run on the same one.
    pin_to_cpu(0);
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    sh("ip link set x4 mtu 1300");
    h.port(x6, true);
    h.port(x4, true);
    let small = in6(H6, R6, &udp(b"cached"));
    let mac_of = |h: &Harness| {
        let out = h.run_on(&small, x6);
        assert_eq!(out.action, XDP_REDIRECT);
        out.frame[0..6].to_vec()
    };
    assert_eq!(mac_of(&h), [2, 0, 0, 0, 4, 2]);

    // Too big for x4 once translated: Packet Too Big, whatever the cache holds.
    let big6 = in6(H6, R6, &udp(&[1; 1352]));
    let out = h.run_on(&big6, x6);
    assert_eq!(out.action, XDP_TX, "a cached next hop does not skip the MTU check");
    assert_eq!(out.frame[12..14], [0x86, 0xdd]);
    assert_eq!(h.count(Counter::DropMtuExceeded), 1);
    assert_eq!(mac_of(&h), [2, 0, 0, 0, 4, 2], "small packets still leave");

    // A new MAC for the neighbour: used once the generation moves.
    sh("ip neigh replace 198.51.100.2 lladdr 02:00:00:00:04:99 dev x4 nud permanent");
    assert_eq!(mac_of(&h), [2, 0, 0, 0, 4, 2], "cached until told");
    let mut generation: Array<_, u64> = Array::try_from(h.ebpf.map_mut("NEXTHOP_GEN").unwrap()).unwrap();
    generation.set(0, 1, 0).unwrap();
    assert_eq!(mac_of(&h), [2, 0, 0, 0, 4, 0x99], "asked again after NEXTHOP_GEN moved");

    // Without a word: at the latest after 250 ticks of the kernel's clock.
    sh("ip neigh replace 198.51.100.2 lladdr 02:00:00:00:04:02 dev x4 nud permanent");
    std::thread::sleep(next_hop_lifetime());
    assert_eq!(mac_of(&h), [2, 0, 0, 0, 4, 2], "asked again after its lifetime");
    // A neighbour that went away: after the lifetime, to the kernel.
    sh("ip neigh del 198.51.100.2 dev x4");
    std::thread::sleep(next_hop_lifetime());
    assert_eq!(h.run_on(&small, x6).action, XDP_PASS);
}

/// How long the data path keeps a next hop (250 jiffies), and 100 ms more. A coarse
/// clock advances one tick at a time: its resolution is the tick.
fn next_hop_lifetime() -> std::time::Duration {
    let mut res = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_getres writes the timespec it is given.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    assert_eq!(rc, 0, "clock_getres: {}", std::io::Error::last_os_error());
    let tick = std::time::Duration::new(res.tv_sec as u64, res.tv_nsec as u32);
    tick * 250 + std::time::Duration::from_millis(100)
}

/// RFC 7757 longest-prefix match in both directions, with entries nested by
/// `map add --force`: 192.0.2.0/24, 192.0.2.128/25 and 192.0.2.200/32.
fn eamt_longest_prefix_match_both_ways(kind: Kind) {
    use nat64_ctl::config::{EamtEntry, Prefix4, Prefix6};
    let mut h = Harness::with(kind, TEST_CONFIG);
    for (a, b) in [("192.0.2.128/25", "2001:db8:9::80/121"), ("192.0.2.200", "2001:db8:7::200")] {
        let e = EamtEntry::new(a.parse::<Prefix4>().unwrap(), b.parse::<Prefix6>().unwrap()).unwrap();
        assert!(h.tables.eamt_add(&e, false).is_err(), "nested entries need --force");
        h.tables.eamt_add(&e, true).unwrap();
    }
    run_table(
        &h,
        vec![
            xlat(
                "/24 to v6",
                in4(R4, "192.0.2.5", &udp(b"a")),
                want6(R6, "2001:db8:6::5", 0, 64, &udp(b"a")),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "/25 to v6",
                in4(R4, "192.0.2.130", &udp(b"b")),
                want6(R6, "2001:db8:9::82", 0, 64, &udp(b"b")),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "/32 to v6",
                in4(R4, "192.0.2.200", &udp(b"c")),
                want6(R6, "2001:db8:7::200", 0, 64, &udp(b"c")),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "/25 from v6",
                in6("2001:db8:9::82", R6, &udp(b"d")),
                want4("192.0.2.130", R4, 0, 64, &udp(b"d")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "/32 from v6",
                in6("2001:db8:7::200", R6, &udp(b"e")),
                want4("192.0.2.200", R4, 0, 64, &udp(b"e")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "/24 from v6",
                in6("2001:db8:6::82", R6, &udp(b"f")),
                want4("192.0.2.130", R4, 0, 64, &udp(b"f")),
                Counter::Xlat6to4Udp,
            ),
        ],
    );
}

/// An IPv6 frame whose header chain is given raw: `first` is the IPv6 next header,
/// `chain` the encoded extension headers, `payload` what follows them.
fn v6_raw(src: &str, dst: &str, first: u8, chain: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&v6(src).octets());
    p.extend_from_slice(&v6(dst).octets());
    p.extend_from_slice(chain);
    p.extend_from_slice(payload);
    eth6(&p)
}

/// An IPv4 frame with the given ID, flags/offset word and raw payload.
fn v4_raw(src: &str, dst: &str, id: u16, flags_off: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags_off.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&v4(src).octets());
    h.extend_from_slice(&v4(dst).octets());
    let c = packet::inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    eth4(&h)
}

fn frag_hdr(nh: u8, offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    let mut f = vec![nh, 0];
    f.extend_from_slice(&(offset_units << 3 | more as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// Options header (hop-by-hop or destination options) of 8 bytes: PadN only.
fn opts_hdr(nh: u8) -> Vec<u8> {
    vec![nh, 0, 1, 4, 0, 0, 0, 0]
}

/// Routing header type 4-like shell of 8 bytes with `segments_left`.
fn routing_hdr(nh: u8, segments_left: u8) -> Vec<u8> {
    vec![nh, 0, 4, segments_left, 0, 0, 0, 0]
}

/// RFC 7915 §5.1 and §4.1: fragments both ways (first, middle, last, atomic), the
/// IPv6 extension headers a translator skips, and what it refuses.
fn fragments_and_extension_headers(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    // A 64-byte UDP datagram, as IPv6 and as IPv4 (each with its own checksum), cut
    // in fragments of 24 + 24 + 16 bytes.
    let data: Vec<u8> = (0..56u8).collect();
    let dgram = udp(&data);
    let u6 = dgram.bytes(&packet::Ip::V6(v6(H6), v6(R6)));
    let u4 = dgram.bytes(&packet::Ip::V4(v4(H4), v4(R4)));
    let id = 0x1234_abcd;
    let id16 = 0xabcd;
    let u6_back = dgram.bytes(&packet::Ip::V6(v6(R6), v6(H6)));
    let u4_back = dgram.bytes(&packet::Ip::V4(v4(R4), v4(H4)));
    let hbh_udp = [opts_hdr(60), opts_hdr(43), routing_hdr(17, 0)].concat();
    let six_dest =
        [opts_hdr(60), opts_hdr(60), opts_hdr(60), opts_hdr(60), opts_hdr(60), opts_hdr(17)].concat();
    run_table(
        &h,
        vec![
            xlat(
                "6->4 first fragment",
                v6_raw(H6, R6, 44, &frag_hdr(17, 0, true, id), &u6[..24]),
                v4_raw(H4, R4, id16, 0x2000, 17, &u4[..24]),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "6->4 middle fragment",
                v6_raw(H6, R6, 44, &frag_hdr(17, 3, true, id), &u6[24..48]),
                v4_raw(H4, R4, id16, 0x2000 | 3, 17, &u4[24..48]),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "6->4 last fragment",
                v6_raw(H6, R6, 44, &frag_hdr(17, 6, false, id), &u6[48..]),
                v4_raw(H4, R4, id16, 6, 17, &u4[48..]),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "6->4 atomic fragment",
                v6_raw(H6, R6, 44, &frag_hdr(17, 0, false, id), &u6),
                v4_raw(H4, R4, id16, 0, 17, &u4),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "6->4 hop-by-hop, destination options, routing (segments left 0)",
                v6_raw(H6, R6, 0, &hbh_udp, &u6),
                want4(H4, R4, 0, 64, &dgram),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "6->4 destination options then fragment",
                v6_raw(H6, R6, 60, &[opts_hdr(44), frag_hdr(17, 0, true, id)].concat(), &u6[..24]),
                v4_raw(H4, R4, id16, 0x2000, 17, &u4[..24]),
                Counter::Xlat6to4Udp,
            ),
            replied(
                "6->4 routing header with segments left: parameter problem at that field",
                v6_raw(H6, R6, 43, &routing_hdr(17, 1), &u6),
                back(icmp6_err(
                    "3fff::1",
                    H6,
                    4,
                    0,
                    [0, 0, 0, 43],
                    &v6_raw(H6, R6, 43, &routing_hdr(17, 1), &u6)[14..],
                )),
                Counter::DropRoutingHeader,
            ),
            dropped(
                "6->4 hop-by-hop not first",
                v6_raw(H6, R6, 60, &[opts_hdr(0), opts_hdr(17)].concat(), &u6),
                Counter::DropMalformed,
            ),
            replied(
                "6->4 hop-by-hop after the fragment header: administratively prohibited",
                v6_raw(H6, R6, 44, &[frag_hdr(0, 0, true, id), opts_hdr(17)].concat(), &u6[..24]),
                back(icmp6_err(
                    "3fff::1",
                    H6,
                    1,
                    1,
                    [0; 4],
                    &v6_raw(H6, R6, 44, &[frag_hdr(0, 0, true, id), opts_hdr(17)].concat(), &u6[..24])[14..],
                )),
                Counter::DropExtensionHeader,
            ),
            replied(
                "6->4 destination options after the fragment header, too",
                v6_raw(
                    H6,
                    R6,
                    60,
                    &[opts_hdr(44), frag_hdr(60, 0, true, id), opts_hdr(17)].concat(),
                    &u6[..24],
                ),
                back(icmp6_err(
                    "3fff::1",
                    H6,
                    1,
                    1,
                    [0; 4],
                    &v6_raw(
                        H6,
                        R6,
                        60,
                        &[opts_hdr(44), frag_hdr(60, 0, true, id), opts_hdr(17)].concat(),
                        &u6[..24],
                    )[14..],
                )),
                Counter::DropExtensionHeader,
            ),
            dropped(
                "6->4 chain longer than walked",
                v6_raw(H6, R6, 60, &six_dest, &u6),
                Counter::DropExtensionHeader,
            ),
            dropped(
                "6->4 extension header running off the end",
                v6_raw(H6, R6, 60, &[60, 200, 0, 0, 0, 0, 0, 0], &u6),
                Counter::DropMalformed,
            ),
            xlat(
                "4->6 first fragment",
                v4_raw(R4, H4, id16, 0x2000, 17, &u4_back[..24]),
                v6_raw(R6, H6, 44, &frag_hdr(17, 0, true, id16 as u32), &u6_back[..24]),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "4->6 middle fragment",
                v4_raw(R4, H4, id16, 0x2000 | 3, 17, &u4_back[24..48]),
                v6_raw(R6, H6, 44, &frag_hdr(17, 3, true, id16 as u32), &u6_back[24..48]),
                Counter::Xlat4to6Udp,
            ),
            xlat(
                "4->6 last fragment",
                v4_raw(R4, H4, id16, 6, 17, &u4_back[48..]),
                v6_raw(R6, H6, 44, &frag_hdr(17, 6, false, id16 as u32), &u6_back[48..]),
                Counter::Xlat4to6Udp,
            ),
            replied(
                "4->6 fragmented udp with checksum zero: administratively prohibited",
                v4_raw(R4, H4, id16, 0x2000, 17, &[0, 1, 0, 2, 0, 64, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
                back(icmp4_err(
                    "198.51.100.1",
                    R4,
                    3,
                    13,
                    [0; 4],
                    &v4_raw(R4, H4, id16, 0x2000, 17, &[0, 1, 0, 2, 0, 64, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
                        [14..],
                )),
                Counter::DropUdpChecksumZero,
            ),
        ],
    );
}

/// ICMP echoes in fragments (#15). TC: the first fragment is translated and held
/// (its checksum needs the whole message's length); middle ones cross as they come;
/// the last one leaves as a copy and the program's packet becomes the held first
/// fragment, its checksum finished for the whole message: byte for byte the first
/// fragment of the echo as the other family would have sent it. The end may come
/// first: its length then waits for the first fragment, which leaves at once. Both
/// directions, SIIT and stateful NAT64 (whose identifier is mapped). An ICMP error in
/// pieces is dropped, counted. XDP hands ICMP fragments to the kernel, for the
/// general path, or drops them (counted) without one.
fn icmp_echo_in_fragments(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    // A 64-byte echo request and reply, in each family, cut 24 + 24 + 16.
    let data: Vec<u8> = (0..56u8).map(|b| b.wrapping_mul(7)).collect();
    let echo = |request: bool| packet::L4::Echo { request, id: 0x77, seq: 9, data: data.clone() };
    let e6 = echo(true).bytes(&packet::Ip::V6(v6(H6), v6(R6)));
    let e4 = echo(true).bytes(&packet::Ip::V4(v4(H4), v4(R4)));
    let r4 = echo(false).bytes(&packet::Ip::V4(v4(R4), v4(H4)));
    let r6 = echo(false).bytes(&packet::Ip::V6(v6(R6), v6(H6)));
    let (id, id16) = (0x0bad_cafe_u32, 0xcafe_u16);
    let in6 = |id: u32, at: u16, more: bool, b: &[u8]| v6_raw(H6, R6, 44, &frag_hdr(58, at, more, id), b);
    let out4 = |id: u16, at: u16, more: bool, b: &[u8]| v4_raw(H4, R4, id, at | (more as u16) << 13, 1, b);
    let in4 = |id: u16, at: u16, more: bool, b: &[u8]| v4_raw(R4, H4, id, at | (more as u16) << 13, 1, b);
    let out6 =
        |id: u16, at: u16, more: bool, b: &[u8]| v6_raw(R6, H6, 44, &frag_hdr(58, at, more, id as u32), b);
    let icmp4_error = v4_raw(R4, H4, 9, 0x2000, 1, &[3, 1, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 28, 0, 0, 0, 0]);

    if matches!(kind, Kind::Xdp) {
        run_table(
            &h,
            vec![
                dropped(
                    "6->4 without a general path",
                    in6(id, 0, true, &e6[..24]),
                    Counter::DropIcmpFragment,
                ),
                dropped(
                    "4->6 without a general path",
                    in4(id16, 3, true, &r4[24..48]),
                    Counter::DropIcmpFragment,
                ),
            ],
        );
        let mut g = h.tables.globals().unwrap();
        g.general_ifindex = 4242;
        h.tables.set_globals(g).unwrap();
        run_table(
            &h,
            vec![
                passed("6->4 to the kernel", in6(id, 0, true, &e6[..24]), Counter::PassIcmpFragment),
                passed("6->4 last to the kernel", in6(id, 6, false, &e6[48..]), Counter::PassIcmpFragment),
                passed("4->6 to the kernel", in4(id16, 3, true, &r4[24..48]), Counter::PassIcmpFragment),
                passed("4->6 error to the kernel", icmp4_error, Counter::PassIcmpFragment),
            ],
        );
        return;
    }
    run_table(
        &h,
        vec![
            dropped("6->4 first: held", in6(id, 0, true, &e6[..24]), Counter::XlatIcmpFragmentHeld),
            xlat(
                "6->4 middle",
                in6(id, 3, true, &e6[24..48]),
                out4(id16, 3, true, &e4[24..48]),
                Counter::Xlat6to4Icmp,
            ),
            xlat(
                "6->4 last: the first leaves",
                in6(id, 6, false, &e6[48..]),
                out4(id16, 0, true, &e4[..24]),
                Counter::Xlat6to4Icmp,
            ),
            // The end first, then the first fragment, finished at once.
            xlat(
                "6->4 last first",
                in6(id + 1, 6, false, &e6[48..]),
                out4(id16 + 1, 6, false, &e4[48..]),
                Counter::Xlat6to4Icmp,
            ),
            xlat(
                "6->4 then the first",
                in6(id + 1, 0, true, &e6[..24]),
                out4(id16 + 1, 0, true, &e4[..24]),
                Counter::Xlat6to4Icmp,
            ),
            dropped("4->6 first: held", in4(id16, 0, true, &r4[..24]), Counter::XlatIcmpFragmentHeld),
            xlat(
                "4->6 middle",
                in4(id16, 3, true, &r4[24..48]),
                out6(id16, 3, true, &r6[24..48]),
                Counter::Xlat4to6Icmp,
            ),
            xlat(
                "4->6 last: the first leaves",
                in4(id16, 6, false, &r4[48..]),
                out6(id16, 0, true, &r6[..24]),
                Counter::Xlat4to6Icmp,
            ),
            xlat(
                "4->6 last first",
                in4(id16 + 1, 6, false, &r4[48..]),
                out6(id16 + 1, 6, false, &r6[48..]),
                Counter::Xlat4to6Icmp,
            ),
            xlat(
                "4->6 then the first",
                in4(id16 + 1, 0, true, &r4[..24]),
                out6(id16 + 1, 0, true, &r6[..24]),
                Counter::Xlat4to6Icmp,
            ),
            dropped("4->6 an error in pieces", icmp4_error, Counter::DropIcmpFragment),
        ],
    );
    // A first fragment too long to hold is dropped, counted.
    let big = echo(true).bytes(&packet::Ip::V6(v6(H6), v6(R6)));
    let mut long = big[..8].to_vec();
    long.extend(std::iter::repeat_n(0u8, 1600));
    run_table(
        &h,
        vec![dropped("6->4 too long to hold", in6(id + 2, 0, true, &long), Counter::DropIcmpFragment)],
    );
}

/// Stateful NAT64 (#15): an ICMP echo in fragments both ways. The first fragment maps
/// the identifier (BIB and session) and is held; the last one releases it with its
/// checksum finished for the whole message, the mapped identifier in it; the reply's
/// fragments come back to the host's identifier. XDP hands them to the kernel (the
/// general path) before anything is mapped.
fn stateful_nat64_icmp_echo_in_fragments(kind: Kind) {
    let mut h = Harness::with(kind, NAT64_CONFIG);
    let pool = "203.0.113.8";
    let data: Vec<u8> = (0..56u8).map(|b| b ^ 0x5a).collect();
    let echo = |request: bool, id: u16| L4::Echo { request, id, seq: 4, data: data.clone() };
    let e6 = echo(true, 0x77).bytes(&packet::Ip::V6(v6(H6), v6(R6)));
    let (id, id16) = (0x0102_0304_u32, 0x0304_u16);
    let in6 = |at: u16, more: bool, b: &[u8]| v6_raw(H6, R6, 44, &frag_hdr(58, at, more, id), b);
    if matches!(kind, Kind::Xdp) {
        let mut g = h.tables.globals().unwrap();
        g.general_ifindex = 4242;
        h.tables.set_globals(g).unwrap();
        run_table(&h, vec![passed("6->4 to the kernel", in6(0, true, &e6[..24]), Counter::PassIcmpFragment)]);
        assert_eq!(h.count(Counter::NatBibCreated), 0, "nothing mapped by XDP");
        return;
    }
    run_table(
        &h,
        vec![
            dropped("6->4 first: mapped, held", in6(0, true, &e6[..24]), Counter::XlatIcmpFragmentHeld),
            xlat(
                "6->4 middle",
                in6(3, true, &e6[24..48]),
                v4_raw(pool, R4, id16, 0x2000 | 3, 1, &e6[24..48]),
                Counter::Xlat6to4Icmp,
            ),
        ],
    );
    assert_eq!(h.count(Counter::NatBibCreated), 1);
    let out = h.run(&in6(6, false, &e6[48..]));
    assert_eq!(out.action, XDP_PASS, "the last releases the first");
    let mapped = u16::from_be_bytes([out.frame[38], out.frame[39]]);
    let e4 = echo(true, mapped).bytes(&packet::Ip::V4(v4(pool), v4(R4)));
    if let Some(d) = diff(&out.frame, &v4_raw(pool, R4, id16, 0x2000, 1, &e4[..24])) {
        panic!("the held first fragment: {d}");
    }
    // The reply, in fragments, to the mapped identifier.
    let r4 = echo(false, mapped).bytes(&packet::Ip::V4(v4(R4), v4(pool)));
    let r6 = echo(false, 0x77).bytes(&packet::Ip::V6(v6(R6), v6(H6)));
    let in4 = |at: u16, more: bool, b: &[u8]| v4_raw(R4, pool, 0x99, at | (more as u16) << 13, 1, b);
    let out6 = |at: u16, more: bool, b: &[u8]| v6_raw(R6, H6, 44, &frag_hdr(58, at, more, 0x99), b);
    run_table(
        &h,
        vec![
            dropped("4->6 first: held", in4(0, true, &r4[..24]), Counter::XlatIcmpFragmentHeld),
            xlat("4->6 middle", in4(3, true, &r4[24..48]), out6(3, true, &r6[24..48]), Counter::Xlat4to6Icmp),
            xlat(
                "4->6 last: the first leaves",
                in4(6, false, &r4[48..]),
                out6(0, true, &r6[..24]),
                Counter::Xlat4to6Icmp,
            ),
        ],
    );
}

/// Stateful NAT64 (#15): ICMP errors about stateful flows are mapped through the BIB
/// by the packet inside (traceroute, UDP and ICMP, and PMTUD both ways); an error no
/// session knows is dropped, counted; what runs out of hops is answered before it is
/// mapped, quoting what was sent; fragments: the first maps the datagram, the later
/// ones follow it (IPv6 ones by the host's paired address even before it), an IPv4 one
/// before its first is dropped, counted; the translator's own errors after the NAT
/// stage (Packet Too Big, Fragmentation Needed) and the general path get the packet
/// with its port as sent.
fn stateful_nat64_errors_fragments_and_hop_limits(kind: Kind) {
    let mut h = Harness::with(kind, NAT64_CONFIG);
    let pool = "203.0.113.8";
    let (router, router6) = ("9.9.9.1", "64:ff9b::909:901");
    let probe = |sport: u16, dport: u16| L4::Udp {
        sport,
        dport,
        data: b"traceroute probe".to_vec(),
        zero_checksum: false,
    };
    let hop1_6 = V6Opts { hop_limit: 1, ..Default::default() };
    let hop1 = V4Opts { ttl: 1, id: 77, df: false, tos: 0 };
    let expect = |h: &Harness, name: &str, input: &[u8], action: u32, want: &[u8]| {
        let out = h.run(input);
        assert_eq!(out.action, action, "{name}: verdict");
        let mut want = want.to_vec();
        if want[12..14] == [8, 0] && out.frame.len() > 34 {
            adopt_ipv4_id(&out.frame, &mut want);
        }
        if let Some(d) = diff(&out.frame, &want) {
            panic!("{name}: {d}");
        }
    };

    // Hop limit 1: Time Exceeded before anything is mapped, quoting what the host sent.
    let q = eth6(&ipv6(v6(H6), v6(R6), hop1_6, &probe(5000, 33434)));
    expect(&h, "hop limit 1", &q, XDP_TX, &back(icmp6_err("3fff::1", H6, 3, 0, [0; 4], &q[14..])));
    assert_eq!(h.count(Counter::NatBibCreated), 0, "nothing mapped for it");

    // Traceroute through the PLAT: the probe is mapped; an IPv4 router's Time Exceeded
    // about it reaches the host with the probe as the host sent it.
    let out = h.run(&in6(H6, R6, &probe(5000, 33434)));
    assert_eq!(out.action, XDP_PASS);
    let port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let left4 = ipv4(v4(pool), v4(R4), hop1, &[], &probe(port, 33434));
    let sent6 = ipv6(v6(H6), v6(R6), hop1_6, &probe(5000, 33434));
    expect(
        &h,
        "time exceeded about a UDP probe",
        &icmp4_err(router, pool, 11, 0, [0; 4], &left4),
        XDP_PASS,
        &icmp6_err(router6, H6, 3, 0, [0; 4], &sent6),
    );
    // "icmpv6-error-source": "inner-destination" (RFC 6146's literal rule), live: from
    // the remote the host talked to; and back to the router.
    let set = |h: &mut Harness, v: &str| {
        let mut g = h.tables.globals().unwrap();
        nat64_ctl::config::apply_setting(&mut g, "icmpv6-error-source", v).unwrap();
        h.tables.set_globals(g).unwrap();
    };
    set(&mut h, "inner-destination");
    expect(
        &h,
        "time exceeded from the inner destination",
        &icmp4_err(router, pool, 11, 0, [0; 4], &left4),
        XDP_PASS,
        &icmp6_err(R6, H6, 3, 0, [0; 4], &sent6),
    );
    set(&mut h, "router");
    // PMTUD, IPv4 side: Fragmentation Needed (MTU 1400) quoting 28 bytes -> Packet Too
    // Big 1420 quoting 48.
    let big = |sport: u16| L4::Udp { sport, dport: 33434, data: vec![0x42; 1472], zero_checksum: false };
    let big4 = ipv4(v4(pool), v4(R4), V4Opts::default(), &[], &big(port));
    let big6 = ipv6(v6(H6), v6(R6), V6Opts::default(), &big(5000));
    expect(
        &h,
        "fragmentation needed about a mapped datagram",
        &icmp4_err(router, pool, 3, 4, [0, 0, 0x05, 0x78], &big4[..28]),
        XDP_PASS,
        &icmp6_err(router6, H6, 2, 0, 1420u32.to_be_bytes(), &big6[..48]),
    );
    // ICMP traceroute (mtr): the echo's identifier maps back.
    let ping = |id: u16| L4::Echo { request: true, id, seq: 3, data: b"mtr probe".to_vec() };
    let out = h.run(&in6(H6, R6, &ping(0x77)));
    let id = u16::from_be_bytes([out.frame[38], out.frame[39]]);
    expect(
        &h,
        "time exceeded about an echo request",
        &icmp4_err(router, pool, 11, 0, [0; 4], &ipv4(v4(pool), v4(R4), hop1, &[], &ping(id))),
        XDP_PASS,
        &icmp6_err(router6, H6, 3, 0, [0; 4], &ipv6(v6(H6), v6(R6), hop1_6, &ping(0x77))),
    );
    // TCP quoted by 8 bytes (its checksum not among them): the port alone.
    let syn = |sport: u16| L4::Tcp { sport, dport: 443, seq: 0x0a0b0c0d, flags: 0x02, data: vec![] };
    let out = h.run(&in6(H6, R6, &syn(6000)));
    let tport = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    expect(
        &h,
        "fragmentation needed quoting 8 bytes of TCP",
        &icmp4_err(
            router,
            pool,
            3,
            4,
            [0, 0, 0x05, 0x78],
            &ipv4(v4(pool), v4(R4), V4Opts::default(), &[], &syn(tport))[..28],
        ),
        XDP_PASS,
        &icmp6_err(
            router6,
            H6,
            2,
            0,
            1420u32.to_be_bytes(),
            &ipv6(v6(H6), v6(R6), V6Opts::default(), &syn(6000))[..48],
        ),
    );
    // Errors no session knows: a port nobody holds, a remote the mapping never sent to.
    let other = if port == 40000 { 40001 } else { 40000 };
    for (name, inner) in [
        ("unmapped port", ipv4(v4(pool), v4(R4), hop1, &[], &probe(other, 33434))),
        ("no session with that remote", ipv4(v4(pool), v4("1.1.1.1"), hop1, &[], &probe(port, 33434))),
    ] {
        let n = h.count(Counter::DropNatIcmpErrorNoSession);
        assert_eq!(h.run(&icmp4_err(router, pool, 11, 0, [0; 4], &inner)).action, XDP_DROP, "{name}");
        assert_eq!(h.count(Counter::DropNatIcmpErrorNoSession), n + 1, "{name}");
    }

    // IPv6 side: an IPv6 router's error about what the IPv4 host sent through the mapping
    // (R4:33434 -> pool:port, translated to H6:5000) goes back from the pool4 address.
    let (router_v6, inbound) = ("2001:db8:6::fe", |dport: u16| L4::Udp {
        sport: 33434,
        dport,
        data: b"answer".to_vec(),
        zero_checksum: false,
    });
    let in_v6 = ipv6(v6(R6), v6(H6), hop1_6, &inbound(5000));
    let in_v4 = ipv4(v4(R4), v4(pool), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &inbound(port));
    expect(
        &h,
        "port unreachable from the IPv6 side",
        &icmp6_err(router_v6, R6, 1, 4, [0; 4], &in_v6),
        XDP_PASS,
        &icmp4_err(pool, R4, 3, 3, [0; 4], &in_v4),
    );
    // The same behind an atomic fragment header (RFC 6946): a whole message.
    let unreach6 = icmp6_err(router_v6, R6, 1, 4, [0; 4], &in_v6);
    expect(
        &h,
        "port unreachable from the IPv6 side, atomic fragment header",
        &v6_raw(router_v6, R6, 44, &frag_hdr(58, 0, false, 0x6161), &unreach6[54..]),
        XDP_PASS,
        &icmp4_err(pool, R4, 3, 3, [0; 4], &in_v4),
    );
    let long = |dport: u16| L4::Udp { sport: 33434, dport, data: vec![0x33; 1100], zero_checksum: false };
    let long6 = ipv6(v6(R6), v6(H6), V6Opts::default(), &long(5000));
    let long4 = ipv4(v4(R4), v4(pool), V4Opts { ttl: 64, id: 0, df: false, tos: 0 }, &[], &long(port));
    expect(
        &h,
        "packet too big from the IPv6 side",
        &icmp6_err(router_v6, R6, 2, 0, 1280u32.to_be_bytes(), &long6),
        XDP_PASS,
        &cut_icmp4(icmp4_err(pool, R4, 3, 4, [0, 0, 0x04, 0xec], &long4), 576),
    );
    let n = h.count(Counter::DropNatIcmpErrorNoSession);
    let stray = ipv6(v6(R6), v6(H6), hop1_6, &inbound(5999));
    assert_eq!(h.run(&icmp6_err(router_v6, R6, 1, 4, [0; 4], &stray)).action, XDP_DROP, "no BIB entry");
    assert_eq!(h.count(Counter::DropNatIcmpErrorNoSession), n + 1);

    // Fragments, IPv6 -> IPv4: a 64-byte UDP datagram cut in 24 + 24 + 16 bytes, its
    // first fragment behind a destination options header.
    let data: Vec<u8> = (0..56u8).collect();
    let dgram = |sport: u16, dport: u16| L4::Udp { sport, dport, data: data.clone(), zero_checksum: false };
    let u6 = dgram(7000, 9).bytes(&packet::Ip::V6(v6(H6), v6(R6)));
    let (id, id16) = (0x1234_abcd, 0xabcd);
    let out = h.run(&v6_raw(H6, R6, 60, &[opts_hdr(44), frag_hdr(17, 0, true, id)].concat(), &u6[..24]));
    assert_eq!(out.action, XDP_PASS);
    let fport = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let u4 = dgram(fport, 9).bytes(&packet::Ip::V4(v4(pool), v4(R4)));
    if let Some(d) = diff(&out.frame, &v4_raw(pool, R4, id16, 0x2000, 17, &u4[..24])) {
        panic!("6->4 first fragment: {d}");
    }
    expect(
        &h,
        "6->4 middle fragment",
        &v6_raw(H6, R6, 44, &frag_hdr(17, 3, true, id), &u6[24..48]),
        XDP_PASS,
        &v4_raw(pool, R4, id16, 0x2000 | 3, 17, &u4[24..48]),
    );
    expect(
        &h,
        "6->4 last fragment",
        &v6_raw(H6, R6, 44, &frag_hdr(17, 6, false, id), &u6[48..]),
        XDP_PASS,
        &v4_raw(pool, R4, id16, 6, 17, &u4[48..]),
    );
    expect(
        &h,
        "6->4 a later fragment before its first: the host's paired address",
        &v6_raw(H6, R6, 44, &frag_hdr(17, 6, false, 0x5555), &u6[48..]),
        XDP_PASS,
        &v4_raw(pool, R4, 0x5555, 6, 17, &u4[48..]),
    );
    // IPv4 -> IPv6: the answer, cut the same way.
    let u4b = dgram(9, fport).bytes(&packet::Ip::V4(v4(R4), v4(pool)));
    let u6b = dgram(9, 7000).bytes(&packet::Ip::V6(v6(R6), v6(H6)));
    for (name, off, more, range) in
        [("first", 0u16, true, 0..24), ("middle", 3, true, 24..48), ("last", 6, false, 48..64)]
    {
        expect(
            &h,
            &format!("4->6 {name} fragment"),
            &v4_raw(R4, pool, 0x99, if more { 0x2000 } else { 0 } | off, 17, &u4b[range.clone()]),
            XDP_PASS,
            &v6_raw(R6, H6, 44, &frag_hdr(17, off, more, 0x99), &u6b[range]),
        );
    }
    let n = h.count(Counter::DropNatFragmentBeforeFirst);
    assert_eq!(h.run(&v4_raw(R4, pool, 0x98, 6, 17, &u4b[48..])).action, XDP_DROP, "4->6 later before first");
    assert_eq!(h.count(Counter::DropNatFragmentBeforeFirst), n + 1);
    // An echo in fragments to an identifier nobody holds: XDP (no general path here)
    // drops it before anything is mapped, TC maps it like a whole one (see
    // `stateful_nat64_icmp_echo_in_fragments`).
    let c = if matches!(kind, Kind::Xdp) { Counter::DropIcmpFragment } else { Counter::DropNatNoMapping };
    let n = h.count(c);
    let frag_echo = [8, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(h.run(&v4_raw(R4, pool, 0x97, 0x2000, 1, &frag_echo)).action, XDP_DROP, "fragmented ICMP");
    assert_eq!(h.count(c), n + 1);

    // With routes: the translator's own errors after the NAT stage quote the port as
    // sent. IPv6 -> IPv4, a 1300-byte IPv4 egress: Packet Too Big 1320.
    let (x6, x4) = two_ports();
    h.port(x6, true);
    h.port(x4, true);
    sh("ip link set x4 mtu 1300 && ip link set x6 mtu 1280");
    let big6 = in6(H6, R6, &L4::Udp { sport: 5000, dport: 33434, data: vec![1; 1352], zero_checksum: false });
    let out = h.run_on(&big6, x6);
    assert_eq!(out.action, XDP_TX);
    if let Some(d) = diff(
        &out.frame,
        &back(icmp6_err("3fff::1", H6, 2, 0, 1320u32.to_be_bytes(), &big6[14..14 + 1280 - 48])),
    ) {
        panic!("packet too big after the NAT stage: {d}");
    }
    // IPv4 -> IPv6 with DF, a 1280-byte IPv6 egress: Fragmentation Needed 1260.
    let big4 = eth4(&ipv4(
        v4(R4),
        v4(pool),
        V4Opts::default(),
        &[],
        &L4::Udp { sport: 33434, dport: port, data: vec![2; 1272], zero_checksum: false },
    ));
    let out = h.run_on(&big4, x4);
    assert_eq!(out.action, XDP_TX);
    // From the pool4 address the sender talked to (RFC 6146 §3.5), not ipv4-addr.
    let mut want = back(icmp4_err(pool, R4, 3, 4, [0, 0, 0x04, 0xec], &big4[14..14 + 576 - 28]));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("fragmentation needed after the NAT stage: {d}");
    }
    // Without DF, longer than lowest-ipv6-mtu once translated: to the general path as
    // it came (the kernel cuts it there, the fragments come back to be mapped).
    sh("ip link add nat64 type veth peer name nat64p && ip link set nat64 up && ip link set nat64p up");
    let mut g = h.tables.globals().unwrap();
    g.general_ifindex = ifindex("nat64p");
    h.tables.set_globals(g).unwrap();
    let nodf = eth4(&ipv4(
        v4(R4),
        v4(pool),
        V4Opts { df: false, ..Default::default() },
        &[],
        &L4::Udp { sport: 33434, dport: port, data: vec![3; 1272], zero_checksum: false },
    ));
    let out = h.run_on(&nodf, x4);
    assert_eq!(out.action, XDP_PASS);
    if let Some(d) = diff(&out.frame, &nodf) {
        panic!("to the general path untouched: {d}");
    }
}

/// Stateful NAT64 port blocks (RFC 7422, #15): a host of `port-block-prefix` gets its
/// block (2001:db8:6::5 is the second /128 of 2001:db8:6::4/126: ports 40002-40003 of
/// the one pool4 address) and no other port; when the block is used up, Address
/// Unreachable; a host outside the prefix gets Address Unreachable too, counted apart.
/// With `bib-log`, each new BIB entry is reported in the ring buffer (time, both
/// transport addresses, protocol).
fn stateful_nat64_port_blocks_and_bib_events(kind: Kind) {
    let config = NAT64_CONFIG.replace(
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],"#,
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40007"}],
    "port-block-size": 2, "port-block-prefix": "2001:db8:6::4/126", "port-block-host-length": 128,
    "bib-log": "stdout","#,
    );
    assert_ne!(config, NAT64_CONFIG);
    let mut h = Harness::with(kind, &config);
    let udp_from = |sport: u16| L4::Udp { sport, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    let mut ports = Vec::new();
    for sport in [5000, 5001] {
        let out = h.run(&in6(H6, R6, &udp_from(sport)));
        assert_eq!(out.action, XDP_PASS, "a port of the block for {sport}");
        assert_eq!(out.frame[26..30], [203, 0, 113, 8]);
        ports.push(u16::from_be_bytes([out.frame[34], out.frame[35]]));
    }
    ports.sort();
    assert_eq!(ports, [40002, 40003], "the host's block and nothing else");
    let q = in6(H6, R6, &udp_from(5002));
    let out = h.run(&q);
    assert_eq!(out.action, XDP_TX, "the block is used up");
    if let Some(d) = diff(&out.frame, &back(icmp6_err("3fff::1", H6, 1, 3, [0; 4], &q[14..]))) {
        panic!("block used up: {d}");
    }
    let outside = in6("2001:db8:6::9", R6, &udp_from(5000));
    let out = h.run(&outside);
    assert_eq!(out.action, XDP_TX, "outside the prefix");
    if let Some(d) =
        diff(&out.frame, &back(icmp6_err("3fff::1", "2001:db8:6::9", 1, 3, [0; 4], &outside[14..])))
    {
        panic!("outside the prefix: {d}");
    }
    assert_eq!(h.count(Counter::DropNatNoPortBlock), 1);
    assert_eq!(h.count(Counter::DropNatPortsExhausted), 1);

    // The two BIB entries, as the data path reported them.
    let mut ring: aya::maps::RingBuf<&mut aya::maps::MapData> =
        aya::maps::RingBuf::try_from(h.ebpf.map_mut("NAT_EVENTS").expect("NAT_EVENTS")).unwrap();
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<nat64_common::maps::NatEvent>());
        // SAFETY: a NatEvent the data path wrote (length checked).
        events
            .push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<nat64_common::maps::NatEvent>()) });
    }
    let now = nat64_ctl::stateful::boot_ns();
    let mut seen: Vec<(u16, u16)> = events
        .iter()
        .map(|e| {
            assert_eq!((e.v6, e.v4, e.proto, e.kind), (v6(H6).octets(), [203, 0, 113, 8], 17, 1), "{e:?}");
            assert!(e.time <= now && now - e.time < 60_000_000_000, "stamped with boot time: {e:?}");
            (e.v6_port, e.v4_port)
        })
        .collect();
    seen.sort();
    let mut want = vec![(5000, 0), (5001, 0)];
    for (w, s) in want.iter_mut().zip(&seen) {
        w.1 = s.1;
    }
    assert_eq!(seen, want, "one event per BIB entry");
    assert!(seen.iter().all(|(_, p)| (40002..=40003).contains(p)), "{seen:?}");

    // Ten minutes on the sweep ends both, each reported; with port blocks a port only
    // ever goes back to its own host, so nothing is held back.
    let ten_min = now + 600_000_000_000;
    let r = h.sweep(ten_min);
    assert_eq!((r.sessions, r.released, r.removed), (2, 0, 2));
    let mut ring: aya::maps::RingBuf<&mut aya::maps::MapData> =
        aya::maps::RingBuf::try_from(h.ebpf.map_mut("NAT_EVENTS").expect("NAT_EVENTS")).unwrap();
    let mut ended = Vec::new();
    while let Some(item) = ring.next() {
        // SAFETY: a NatEvent the sweep wrote (length checked).
        assert_eq!(item.len(), std::mem::size_of::<nat64_common::maps::NatEvent>());
        let e = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<nat64_common::maps::NatEvent>()) };
        assert_eq!(
            (e.v6, e.v4, e.proto, e.kind, e.time),
            (v6(H6).octets(), [203, 0, 113, 8], 17, 2, ten_min)
        );
        ended.push((e.v6_port, e.v4_port));
    }
    ended.sort();
    assert_eq!(ended, seen, "one bib-expire event per BIB entry");
    assert_eq!(h.run(&q).action, XDP_PASS, "the block's ports are the host's again at once");
}

/// RFC 6946 in the NAT stage: an ICMPv6 echo request with an atomic fragment header
/// (offset 0, no more fragments) is a whole datagram: mapped and translated as SIIT
/// translates one (the IPv4 identification from the fragment header, no DF), not
/// dropped as an ICMP fragment.
fn stateful_nat64_atomic_fragments(kind: Kind) {
    let h = Harness::with(kind, NAT64_CONFIG);
    let pool = "203.0.113.8";
    let echo = |id: u16, src: &str, dst: &str| {
        let l4 = L4::Echo { request: true, id, seq: 1, data: b"atomic".to_vec() };
        if src.contains(':') {
            l4.bytes(&packet::Ip::V6(v6(src), v6(dst)))
        } else {
            l4.bytes(&packet::Ip::V4(v4(src), v4(dst)))
        }
    };
    let input = v6_raw(H6, R6, 44, &frag_hdr(58, 0, false, 0x0102_0304), &echo(0x4242, H6, R6));
    let out = h.run(&input);
    assert_eq!(out.action, XDP_PASS, "translated, not dropped");
    assert!(out.frame.len() >= 40, "{:02x?}", out.frame);
    let port = u16::from_be_bytes([out.frame[38], out.frame[39]]);
    assert!((40000..=40003).contains(&port), "the identifier mapped into pool4's range: {port}");
    let want = v4_raw(pool, R4, 0x0304, 0, 1, &echo(port, pool, R4));
    if let Some(d) = diff(&out.frame, &want) {
        panic!("atomic fragment echo through the NAT stage: {d}");
    }
    assert_eq!(h.count(Counter::Xlat6to4Icmp), 1);
    assert_eq!(h.count(Counter::NatSessionCreated), 1);
    assert_eq!(h.count(Counter::DropIcmpFragment), 0);
}

/// A pool4 address fills before anyone is refused: 1,024 ports, one host after
/// another (each a /64 of its own) takes one until the first refusal, which comes with
/// more than 600 of them taken (a host's 32 candidates land anywhere in the range; the
/// chance of a refusal earlier is below one in a million), each port given once,
/// inside the range; the refusal is RFC 6146's ICMPv6 Address Unreachable, counted.
fn stateful_nat64_pool_fills_before_refusing(kind: Kind) {
    let config = NAT64_CONFIG.replace(
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],"#,
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "1024-2047"}],"#,
    );
    assert_ne!(config, NAT64_CONFIG);
    let h = Harness::with(kind, &config);
    let mut ports = std::collections::BTreeSet::new();
    let mut refusal = None;
    for i in 0..1024u16 {
        let host = format!("2001:db8:{:x}::5", 0x1000 + i);
        let q = in6(
            &host,
            R6,
            &L4::Udp { sport: 5000, dport: 53, data: b"query".to_vec(), zero_checksum: false },
        );
        let out = h.run(&q);
        if out.action == XDP_TX {
            if let Some(d) = diff(&out.frame, &back(icmp6_err("3fff::1", &host, 1, 3, [0; 4], &q[14..]))) {
                panic!("{host} refused: {d}");
            }
            refusal = Some(ports.len());
            break;
        }
        assert_eq!(out.action, XDP_PASS, "{host} mapped");
        assert_eq!(out.frame[26..30], [203, 0, 113, 8], "{host}: the pool4 address");
        let port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
        assert!((1024..=2047).contains(&port), "{host}: port {port} outside the range");
        assert!(ports.insert(port), "{host}: port {port} given twice");
    }
    let taken = refusal.unwrap_or(ports.len());
    assert!(taken > 600, "a host refused with only {taken} of 1024 ports taken");
    assert_eq!(h.count(Counter::NatBibCreated), ports.len() as u64);
    assert_eq!(h.count(Counter::DropNatPortsExhausted), refusal.map_or(0, |_| 1));
    eprintln!("first refusal with {taken} of 1024 ports taken");
}

/// RFC 6888 for a carrier-grade NAT: a subscriber (here a /64) may hold
/// `max-ports-per-host` BIB entries and no more (REQ-4: ICMPv6 Destination Unreachable,
/// Administratively Prohibited, counted); the limit changes live; when pool4 runs out,
/// new mappings are refused and no existing one is evicted (REQ-11); a released port
/// is held back `port-reuse-delay` seconds (REQ-8), and at 0 it is free at once; the
/// subscribers' counts follow, and the busiest subscribers are listed.
fn stateful_nat64_cgn_limits(kind: Kind) {
    let config = NAT64_CONFIG.replace(
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],"#,
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40007"}],
    "max-ports-per-host": 3, "subscriber-prefix-length": 64, "port-reuse-delay": 30,"#,
    );
    assert_ne!(config, NAT64_CONFIG);
    let mut h = Harness::with(kind, &config);
    let pool = "203.0.113.8";
    let udp_from = |sport: u16| L4::Udp { sport, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    // (host, its port) -> pool4 port
    let mut mapped: Vec<(&str, u16, u16)> = Vec::new();
    let map = |h: &Harness, host: &'static str, sport: u16, mapped: &mut Vec<(&str, u16, u16)>| {
        let out = h.run(&in6(host, R6, &udp_from(sport)));
        assert_eq!(out.action, XDP_PASS, "{host} port {sport} mapped");
        mapped.push((host, sport, u16::from_be_bytes([out.frame[34], out.frame[35]])));
    };
    let refused = |h: &Harness, host: &str, sport: u16, code: u8| {
        let q = in6(host, R6, &udp_from(sport));
        let out = h.run(&q);
        assert_eq!(out.action, XDP_TX, "{host} port {sport} refused");
        if let Some(d) = diff(&out.frame, &back(icmp6_err("3fff::1", host, 1, code, [0; 4], &q[14..]))) {
            panic!("{host} port {sport} refused with code {code}: {d}");
        }
    };
    let (a, a2, b, c) = ("2001:db8:6::5", "2001:db8:6::6", "2001:db8:7::5", "2001:db8:8::5");
    for sport in [5000, 5001, 5002] {
        map(&h, a, sport, &mut mapped);
    }
    refused(&h, a, 5003, 1);
    refused(&h, a2, 5000, 1);
    assert_eq!(h.count(Counter::DropNatSubscriberLimit), 2, "another host of the same /64 shares its limit");
    // Live: one more.
    h.tables.nat.as_mut().unwrap().set_value("max-ports-per-host", 4).unwrap();
    map(&h, a2, 5000, &mut mapped);
    refused(&h, a, 5003, 1);
    for sport in [6000, 6001, 6002] {
        map(&h, b, sport, &mut mapped);
    }
    let top = h.tables.nat.as_ref().unwrap().top_subscribers(10);
    let shown: Vec<(String, u64)> = top.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    assert_eq!(shown, [("2001:db8:6::/64".to_string(), 4), ("2001:db8:7::/64".to_string(), 3)]);
    // Eight ports, seven held: c takes the last, then pool4 is exhausted (REQ-11: no
    // mapping is taken from anyone; RFC 6146: Address Unreachable).
    map(&h, c, 7000, &mut mapped);
    refused(&h, c, 7001, 3);
    assert_eq!(h.count(Counter::DropNatPortsExhausted), 1);
    assert_eq!(h.count(Counter::DropNatSubscriberLimit), 3);
    let mut ports: Vec<u16> = mapped.iter().map(|m| m.2).collect();
    ports.sort();
    assert_eq!(ports, (40000..=40007).collect::<Vec<_>>(), "every port, each once");
    for (host, sport, port) in &mapped {
        let answer = L4::Udp { sport: 53, dport: *port, data: b"answer".to_vec(), zero_checksum: false };
        let out = h.run(&in4(R4, pool, &answer));
        let back6 = L4::Udp { sport: 53, dport: *sport, data: b"answer".to_vec(), zero_checksum: false };
        if let Some(d) = diff(&out.frame, &want6(R6, host, 0, 64, &back6)) {
            panic!("{host} port {sport} still mapped after exhaustion: {d}");
        }
    }

    // Ten minutes on, every mapping ends; the ports are held back 30 s, and nobody,
    // not even a new subscriber, gets one; then they are free.
    let now = nat64_ctl::stateful::boot_ns();
    let r = h.sweep(now + 600_000_000_000);
    assert_eq!((r.sessions, r.released, r.removed, r.subscribers), (8, 8, 0, 3));
    assert!(h.tables.nat.as_ref().unwrap().top_subscribers(10).is_empty());
    assert_eq!(h.tables.nat.as_ref().unwrap().subscribers.keys().count(), 0, "the subscribers went");
    let held: Vec<serde_json::Value> = h.tables.nat.as_ref().unwrap().pool4_use();
    assert_eq!((held[0]["in-use"].as_u64(), held[0]["held-back"].as_u64()), (Some(0), Some(8)));
    let d = "2001:db8:9::5";
    refused(&h, d, 8000, 3);
    // An IPv4 packet to a held-back port finds no mapping.
    let late = L4::Udp { sport: 53, dport: mapped[0].2, data: b"late".to_vec(), zero_checksum: false };
    let before = h.count(Counter::DropNatNoMapping);
    assert_eq!(h.run(&in4(R4, pool, &late)).action, XDP_TX, "Port Unreachable");
    assert_eq!(h.count(Counter::DropNatNoMapping), before + 1);
    let r = h.sweep(now + 631_000_000_000);
    assert_eq!((r.released, r.removed), (0, 8));
    map(&h, d, 8000, &mut mapped);

    // port-reuse-delay 0 (live): a port is free as soon as its mapping ends.
    h.tables.nat.as_mut().unwrap().set_value("port-reuse-delay", 0).unwrap();
    let r = h.sweep(now + 1_300_000_000_000);
    assert_eq!((r.sessions, r.released, r.removed), (1, 0, 1));
    assert_eq!(h.tables.nat.as_ref().unwrap().bib4.keys().count(), 0);
    assert_eq!(h.count(Counter::NatBibExpired), 9);
}

/// Two CPUs mapping the same new flows at the same moment (RFC 6146 allows one mapping
/// per IPv6 transport address): both packets of each flow leave translated, by the
/// same pool4 port; each flow has one BIB entry and one session; the subscriber's
/// count is exact (a CPU that lost the race gives back what it counted); what lost is
/// counted as a race resolved, never as a drop.
fn stateful_nat64_races_between_cpus(kind: Kind) {
    let config = NAT64_CONFIG.replace(r#""ports": "40000-40003""#, r#""ports": "1024-65535""#);
    let h = Harness::with(kind, &config);
    const FLOWS: u16 = 3000;
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            in6(
                H6,
                R6,
                &L4::Udp { sport: 10_000 + i, dport: 53, data: b"race".to_vec(), zero_checksum: false },
            )
        })
        .collect();
    let barrier = std::sync::Barrier::new(2);
    let ports: Vec<Vec<u16>> = std::thread::scope(|sc| {
        let run = |cpu: usize| {
            let (h, frames, barrier) = (&h, &frames, &barrier);
            sc.spawn(move || {
                pin_to_cpu(cpu);
                frames
                    .iter()
                    .map(|f| {
                        barrier.wait();
                        let out = h.run(f);
                        assert_eq!(out.action, XDP_PASS, "translated on CPU {cpu}");
                        u16::from_be_bytes([out.frame[34], out.frame[35]])
                    })
                    .collect::<Vec<u16>>()
            })
        };
        let (t0, t1) = (run(0), run(1));
        vec![t0.join().unwrap(), t1.join().unwrap()]
    });
    assert_eq!(ports[0], ports[1], "both CPUs took each flow by the same pool4 port");
    let nat = h.tables.nat.as_ref().unwrap();
    assert_eq!(nat.bib4.keys().count(), FLOWS as usize);
    assert_eq!(nat.bib6.keys().count(), FLOWS as usize);
    assert_eq!(nat.sessions.keys().count(), FLOWS as usize);
    let subs: Vec<u64> = nat.subscribers.iter().filter_map(|e| e.ok()).map(|(_, s)| s.ports).collect();
    assert_eq!(subs, [FLOWS as u64], "the subscriber's count is exact");
    let c = h.counters();
    assert_eq!(c["nat_bib_created"], FLOWS as u64);
    assert_eq!(c["nat_session_created"], FLOWS as u64);
    assert_eq!(c["xlat_6to4_udp"], 2 * FLOWS as u64);
    let dropped: u64 = Counter::ALL
        .iter()
        .filter(|k| matches!(k.kind(), nat64_common::counters::Kind::Drop))
        .map(|k| c[k.name()])
        .sum();
    assert_eq!(dropped, 0);
    eprintln!("races resolved: {} of {FLOWS} flows sent twice at once", c["nat_race_resolved"]);
}

/// An ICMPv4 error from `router` to `to` carrying `inner` (an IPv4 packet), as an
/// Ethernet frame with correct checksums (DF=0, TTL 64).
fn icmp4_err(router: &str, to: &str, typ: u8, code: u8, rest: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(inner);
    let c = packet::inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v4_raw(router, to, 0x4321, 0, 1, &m)
}

/// An ICMPv4 error frame cut to `len` bytes of IP, its lengths and checksums made right.
fn cut_icmp4(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    f.truncate(14 + len);
    f[16..18].copy_from_slice(&(len as u16).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[36..38].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[34..]]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ICMPv6 error frame cut short by the caller: payload length and checksum made
/// right for what is left.
fn fix_icmp6_lengths(mut f: Vec<u8>) -> Vec<u8> {
    let plen = f.len() - 54;
    f[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
    f[56..58].copy_from_slice(&[0, 0]);
    let mut ph = f[22..54].to_vec();
    ph.extend_from_slice(&(plen as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = packet::inet_checksum(&[&ph, &f[54..]]);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ICMPv6 error from `router` to `to` carrying `inner`, hop limit 64.
fn icmp6_err(router: &str, to: &str, typ: u8, code: u8, rest: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(inner);
    let mut ph = v6(router).octets().to_vec();
    ph.extend_from_slice(&v6(to).octets());
    ph.extend_from_slice(&(m.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = packet::inet_checksum(&[&ph, &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v6_raw(router, to, 58, &[], &m)
}

/// RFC 7915 §4.2-4.3: ICMPv4 errors about packets an IPv6 host sent (which left as
/// IPv4 H4 -> R4) become ICMPv6 errors to that host, with the packet inside translated.
fn icmpv4_errors_to_icmpv6(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let hop1 = V4Opts { ttl: 1, id: 77, df: false, tos: 0 };
    let hop1_6 = V6Opts { hop_limit: 1, ..Default::default() };
    let probe = udp(b"traceroute probe");
    let in4 = ipv4(v4(H4), v4(R4), hop1, &[], &probe);
    let in6 = ipv6(v6(H6), v6(R6), hop1_6, &probe);
    let ping = L4::Echo { request: true, id: 5, seq: 9, data: b"icmp traceroute".to_vec() };
    let ping4 = ipv4(v4(H4), v4(R4), hop1, &[], &ping);
    let ping6 = ipv6(v6(H6), v6(R6), hop1_6, &ping);
    // Fragmentation Needed about a 1500-byte datagram of which the router quotes the
    // first 28 bytes (header + UDP header), as RFC 792 asks.
    let big = udp(&[0x42; 1472]);
    let big4 = ipv4(v4(H4), v4(R4), V4Opts::default(), &[], &big);
    let big6 = ipv6(v6(H6), v6(R6), V6Opts::default(), &big);
    let mut big6_quoted = big6[..48].to_vec();
    big6_quoted[7] = 64;
    // A quoted packet so long that the ICMPv6 error must be cut to 1280 bytes.
    let long = udp(&[0x17; 1400]);
    let long4 = ipv4(v4(H4), v4(R4), hop1, &[], &long);
    let long6 = ipv6(v6(H6), v6(R6), hop1_6, &long);
    let router = "9.9.9.1";
    let router6 = "64:ff9b::909:901";
    let nested = ipv4(v4(H4), v4(R4), hop1, &[], &L4::Raw { proto: 1, data: vec![3, 3, 0, 0, 0, 0, 0, 0] });
    let mut truncated = icmp6_err(router6, H6, 1, 4, [0; 4], &long6);
    truncated.truncate(14 + 1280);
    let truncated = fix_icmp6_lengths(truncated);
    run_table(
        &h,
        vec![
            xlat(
                "time exceeded",
                icmp4_err(router, H4, 11, 0, [0; 4], &in4),
                icmp6_err(router6, H6, 3, 0, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "an illegal source (127.0.0.1) translated through pool6 all the same (RFC 7915 §4.1)",
                icmp4_err("127.0.0.1", H4, 11, 0, [0; 4], &in4),
                icmp6_err("64:ff9b::7f00:1", H6, 3, 0, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "an illegal source (0.0.0.0) too",
                icmp4_err("0.0.0.0", H4, 3, 3, [0; 4], &in4),
                icmp6_err("64:ff9b::", H6, 1, 4, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "time exceeded about an echo request (inner ICMP -> ICMPv6)",
                icmp4_err(router, H4, 11, 0, [0; 4], &ping4),
                icmp6_err(router6, H6, 3, 0, [0; 4], &ping6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "port unreachable",
                icmp4_err(router, H4, 3, 3, [0; 4], &in4),
                icmp6_err(router6, H6, 1, 4, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "host unreachable",
                icmp4_err(router, H4, 3, 1, [0; 4], &in4),
                icmp6_err(router6, H6, 1, 0, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "admin prohibited",
                icmp4_err(router, H4, 3, 13, [0; 4], &in4),
                icmp6_err(router6, H6, 1, 1, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "protocol unreachable -> parameter problem at next header",
                icmp4_err(router, H4, 3, 2, [0; 4], &in4),
                icmp6_err(router6, H6, 4, 1, [0, 0, 0, 6], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "fragmentation needed, MTU 1400 -> packet too big 1420",
                icmp4_err(router, H4, 3, 4, [0, 0, 0x05, 0x78], &big4[..28]),
                icmp6_err(router6, H6, 2, 0, 1420u32.to_be_bytes(), &big6_quoted),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "fragmentation needed, MTU 0 -> plateau 1492 + 20",
                icmp4_err(router, H4, 3, 4, [0; 4], &big4[..28]),
                icmp6_err(router6, H6, 2, 0, 1512u32.to_be_bytes(), &big6_quoted),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "parameter problem, pointer 9 (protocol) -> 6 (next header)",
                icmp4_err(router, H4, 12, 0, [9, 0, 0, 0], &in4),
                icmp6_err(router6, H6, 4, 0, [0, 0, 0, 6], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "router without mapping: RFC 6791 falls back to the translator's own address",
                icmp4_err("10.0.0.1", H4, 11, 0, [0; 4], &in4),
                icmp6_err("3fff::1", H6, 3, 0, [0; 4], &in6),
                Counter::Xlat4to6IcmpError,
            ),
            xlat(
                "truncated to 1280 bytes",
                icmp4_err(router, H4, 3, 3, [0; 4], &long4),
                truncated,
                Counter::Xlat4to6IcmpError,
            ),
            dropped(
                "parameter problem pointing at the ID (no IPv6 counterpart)",
                icmp4_err(router, H4, 12, 0, [4, 0, 0, 0], &in4),
                Counter::DropIcmpUntranslated,
            ),
            dropped("redirect", icmp4_err(router, H4, 5, 1, [0; 4], &in4), Counter::DropIcmpUntranslated),
            dropped(
                "bad checksum",
                {
                    let mut f = icmp4_err(router, H4, 11, 0, [0; 4], &in4);
                    f[36] ^= 1;
                    f
                },
                Counter::DropIcmpBadChecksum,
            ),
            dropped(
                "source quench",
                icmp4_err(router, H4, 4, 0, [0; 4], &in4),
                Counter::DropIcmpUntranslated,
            ),
            dropped(
                "error about an error",
                icmp4_err(router, H4, 3, 1, [0; 4], &nested),
                Counter::DropIcmpErrorNested,
            ),
            dropped(
                "quoted packet cut inside its header",
                icmp4_err(router, H4, 11, 0, [0; 4], &in4[..12]),
                Counter::DropIcmpErrorInner,
            ),
        ],
    );
}

/// RFC 7915 §4.2 and §5.2: a translated Packet Too Big / Fragmentation Needed says no
/// more than the next hops carry. Here both routes are 1500 bytes (x6 towards the IPv6
/// host, x4 towards 8.8.8.0/24): Fragmentation Needed 1496 and 1600 become Packet Too
/// Big 1500 (not 1516, 1620), Packet Too Big 1600 becomes Fragmentation Needed 1480 (the
/// IPv6 next hop's 1500 - 20, not 1580); within them nothing changes (1400 -> 1420,
/// 1280 -> 1260), and with a 1300-byte IPv4 route 1600 becomes 1320 and 1300.
fn translated_mtu_capped_by_the_next_hops(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    two_ports();
    // 4 -> 6: a router's Fragmentation Needed about H4 -> R4 (the quoted 28 bytes).
    let big = udp(&[0x42; 1472]);
    let big4 = ipv4(v4(H4), v4(R4), V4Opts::default(), &[], &big);
    let big6 = ipv6(v6(H6), v6(R6), V6Opts::default(), &big);
    let mut big6_quoted = big6[..48].to_vec();
    big6_quoted[7] = 64;
    let (router, router6) = ("9.9.9.1", "64:ff9b::909:901");
    let frag_needed = |mtu: u16, ptb: u32, name: &'static str| {
        let m = mtu.to_be_bytes();
        xlat(
            name,
            icmp4_err(router, H4, 3, 4, [0, 0, m[0], m[1]], &big4[..28]),
            icmp6_err(router6, H6, 2, 0, ptb.to_be_bytes(), &big6_quoted),
            Counter::Xlat4to6IcmpError,
        )
    };
    // 6 -> 4: an IPv6 router's Packet Too Big about R6 -> H6.
    let probe = udp(b"probe from the IPv4 side");
    let in6 = ipv6(v6(R6), v6(H6), V6Opts { hop_limit: 1, ..Default::default() }, &probe);
    let in4 = ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &probe);
    let (router_v6, router4) = ("2001:db8:6::fe", "192.0.2.254");
    let too_big = |mtu: u32, fn_mtu: u16, name: &'static str| {
        let m = fn_mtu.to_be_bytes();
        xlat(
            name,
            icmp6_err(router_v6, R6, 2, 0, mtu.to_be_bytes(), &in6),
            icmp4_err(router4, R4, 3, 4, [0, 0, m[0], m[1]], &in4),
            Counter::Xlat6to4IcmpError,
        )
    };
    run_table(
        &h,
        vec![
            frag_needed(1496, 1500, "fragmentation needed 1496 -> packet too big 1500 (the IPv6 route's)"),
            frag_needed(1600, 1500, "fragmentation needed 1600 -> packet too big 1500"),
            frag_needed(1400, 1420, "fragmentation needed 1400 -> 1420, within both routes"),
            too_big(1600, 1480, "packet too big 1600 -> fragmentation needed 1480 (the IPv6 route's - 20)"),
            too_big(1280, 1260, "packet too big 1280 -> 1260, within both routes"),
        ],
    );
    sh("ip link set x4 mtu 1300");
    run_table(
        &h,
        vec![
            frag_needed(1600, 1320, "a 1300-byte IPv4 route: packet too big 1320"),
            too_big(1600, 1300, "a 1300-byte IPv4 route: fragmentation needed 1300"),
        ],
    );
}

/// RFC 7915 §5.2-5.3: ICMPv6 errors about packets an IPv4 host sent (which arrived as
/// IPv6 R6 -> H6) become ICMPv4 errors to that host.
fn icmpv6_errors_to_icmpv4(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let probe = udp(b"probe from the IPv4 side");
    let in6 = ipv6(v6(R6), v6(H6), V6Opts { hop_limit: 1, ..Default::default() }, &probe);
    let in4 = ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &probe);
    // The IPv6 router 2001:db8:6::fe maps through the EAM entry to 192.0.2.254.
    let (router, router4) = ("2001:db8:6::fe", "192.0.2.254");
    let long = udp(&[0x17; 1000]);
    let long6 = ipv6(v6(R6), v6(H6), V6Opts { hop_limit: 1, ..Default::default() }, &long);
    let long4 = ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &long);
    let truncated = cut_icmp4(icmp4_err(router4, R4, 3, 3, [0; 4], &long4), 576);
    // Packet Too Big about a 1400-byte packet: inside, the IPv4 header its own
    // translation would have had (longer than 1260 bytes: DF set, ID 0).
    let big = udp(&[0x33; 1352]);
    let big6 = ipv6(v6(R6), v6(H6), V6Opts::default(), &big);
    let big4 = ipv4(v4(R4), v4(H4), V4Opts { ttl: 64, id: 0, df: true, tos: 0 }, &[], &big);
    let mut ptb6 = icmp6_err(router, R6, 2, 0, 1280u32.to_be_bytes(), &big6);
    ptb6.truncate(14 + 1280);
    let ptb4 = cut_icmp4(icmp4_err(router4, R4, 3, 4, [0, 0, 0x04, 0xec], &big4), 576);
    let nested =
        ipv6(v6(R6), v6(H6), V6Opts::default(), &L4::Raw { proto: 58, data: vec![1, 4, 0, 0, 0, 0, 0, 0] });
    run_table(
        &h,
        vec![
            xlat(
                "time exceeded",
                icmp6_err(router, R6, 3, 0, [0; 4], &in6),
                icmp4_err(router4, R4, 11, 0, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "port unreachable",
                icmp6_err(router, R6, 1, 4, [0; 4], &in6),
                icmp4_err(router4, R4, 3, 3, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "no route -> host unreachable",
                icmp6_err(router, R6, 1, 0, [0; 4], &in6),
                icmp4_err(router4, R4, 3, 1, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "admin prohibited",
                icmp6_err(router, R6, 1, 1, [0; 4], &in6),
                icmp4_err(router4, R4, 3, 10, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "packet too big 1500 -> fragmentation needed 1480",
                icmp6_err(router, R6, 2, 0, 1500u32.to_be_bytes(), &in6),
                icmp4_err(router4, R4, 3, 4, [0, 0, 0x05, 0xc8], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "time exceeded behind an atomic fragment header (RFC 6946: a whole message)",
                v6_raw(
                    router,
                    R6,
                    44,
                    &frag_hdr(58, 0, false, 0x5151),
                    &icmp6_err(router, R6, 3, 0, [0; 4], &in6)[54..],
                ),
                icmp4_err(router4, R4, 11, 0, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "parameter problem, pointer 7 (hop limit) -> 8 (TTL)",
                icmp6_err(router, R6, 4, 0, [0, 0, 0, 7], &in6),
                icmp4_err(router4, R4, 12, 0, [8, 0, 0, 0], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "unrecognized next header -> protocol unreachable",
                icmp6_err(router, R6, 4, 1, [0, 0, 0, 6], &in6),
                icmp4_err(router4, R4, 3, 2, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "router without mapping: RFC 6791 falls back to the translator's own address",
                icmp6_err("2001:db8:ff::1", R6, 3, 0, [0; 4], &in6),
                icmp4_err("198.51.100.1", R4, 11, 0, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "router outside 2000::/3 (the peer's 6791v64: 4000::1), DF not set either side",
                icmp6_err("4000::1", R6, 1, 0, [0; 4], &in6),
                icmp4_err("198.51.100.1", R4, 3, 1, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "truncated to 576 bytes",
                icmp6_err(router, R6, 1, 4, [0; 4], &long6),
                truncated,
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "packet too big about a long packet: DF inside",
                fix_icmp6_lengths(ptb6),
                ptb4,
                Counter::Xlat6to4IcmpError,
            ),
            dropped(
                "parameter problem pointing at the flow label",
                icmp6_err(router, R6, 4, 0, [0, 0, 0, 2], &in6),
                Counter::DropIcmpUntranslated,
            ),
            dropped(
                "beyond scope of source... code 5",
                icmp6_err(router, R6, 1, 5, [0; 4], &in6),
                Counter::DropIcmpUntranslated,
            ),
            dropped(
                "error about an error",
                icmp6_err(router, R6, 1, 4, [0; 4], &nested),
                Counter::DropIcmpErrorNested,
            ),
        ],
    );
}

/// `v` cut or padded with zeros to `n` bytes.
fn sized(v: &[u8], n: usize) -> Vec<u8> {
    let mut v = v.to_vec();
    v.resize(n, 0);
    v
}

/// An RFC 4884 extension structure of `n` bytes (opaque to the translator).
fn extension(n: usize) -> Vec<u8> {
    (0..n).map(|i| if i == 0 { 0x20 } else { (i * 7) as u8 }).collect()
}

/// RFC 4884 extensions in translated errors (RFC 7915 §4.2, §5.2), the cases of the
/// peer's conformance suite: the length attribute converted between 32- and 64-bit
/// units, the original datagram cut to a whole unit or padded to 128 bytes, cut
/// further to make room for the extension within 576 / 1280 bytes, the extension
/// carried intact or, when it does not fit even then, left out whole (length 0); a
/// length that lies past the end, or one with nothing after it, is no extension.
fn icmp_extensions_rfc4884(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let hop1 = V4Opts { ttl: 1, id: 0, df: false, tos: 0 };
    let hop1_6 = V6Opts { hop_limit: 1, ..Default::default() };
    // ICMPv6 -> ICMPv4: a Port Unreachable from the IPv6 router 2001:db8:6::fe
    // (192.0.2.254 by EAM) about what R4 sent to H4.
    let to4 = |name: &'static str, n: usize, len6: u8, ext: usize, keep: usize, len4: u8, ext_out: usize| {
        let (in6, in4) = (
            ipv6(v6(R6), v6(H6), hop1_6, &udp(&vec![0x44; n])),
            ipv4(v4(R4), v4(H4), hop1, &[], &udp(&vec![0x44; n])),
        );
        let field6 = if len6 == 0 { in6.clone() } else { sized(&in6, len6 as usize * 8) };
        let field4 = if len4 == 0 { sized(&in4, keep) } else { sized(&sized(&in4, keep), len4 as usize * 4) };
        xlat(
            name,
            icmp6_err("2001:db8:6::fe", R6, 1, 4, [len6, 0, 0, 0], &[field6, extension(ext)].concat()),
            icmp4_err("192.0.2.254", R4, 3, 3, [0, len4, 0, 0], &[field4, extension(ext_out)].concat()),
            Counter::Xlat6to4IcmpError,
        )
    };
    // ICMPv4 -> ICMPv6: from the IPv4 router 9.9.9.1 about what H4 sent to R4.
    let to6 = |name: &'static str, n: usize, len4: u8, ext: usize, keep: usize, len6: u8, ext_out: usize| {
        let (in4, in6) = (
            ipv4(v4(H4), v4(R4), hop1, &[], &udp(&vec![0x66; n])),
            ipv6(v6(H6), v6(R6), hop1_6, &udp(&vec![0x66; n])),
        );
        let field4 = sized(&in4, len4 as usize * 4);
        let field6 = if len6 == 0 { sized(&in6, keep) } else { sized(&sized(&in6, keep), len6 as usize * 8) };
        xlat(
            name,
            icmp4_err("9.9.9.1", H4, 3, 3, [0, len4, 0, 0], &[field4, extension(ext)].concat()),
            icmp6_err("64:ff9b::909:901", H6, 1, 4, [len6, 0, 0, 0], &[field6, extension(ext_out)].concat()),
            Counter::Xlat4to6IcmpError,
        )
    };
    let lying6 = ipv6(v6(R6), v6(H6), hop1_6, &udp(&[0x44; 80]));
    let lying4 = ipv4(v4(R4), v4(H4), hop1, &[], &udp(&[0x44; 80]));
    let pp4 = ipv4(v4(H4), v4(R4), hop1, &[], &udp(&[0x66; 104]));
    let pp6 = ipv6(v6(H6), v6(R6), hop1_6, &udp(&[0x66; 104]));
    run_table(
        &h,
        vec![
            // (name, UDP payload, length in, extension in, datagram kept, length out, extension out)
            to4("6->4, datagram and extension fit (ic1)", 480, 66, 40, 508, 127, 40),
            to4("6->4, datagram cut for the extension (ic2)", 488, 67, 40, 508, 127, 40),
            to4("6->4, datagram padded to 128, extension just fits (ic4)", 80, 16, 420, 108, 32, 420),
            to4("6->4, extension too large: left out (ic5)", 80, 16, 421, 108, 0, 0),
            to4("6->4, datagram shorter than 128 bytes: padded (ic7)", 0, 6, 40, 28, 32, 40),
            to4("6->4, a length with nothing after it: no extension", 80, 16, 0, 108, 0, 0),
            to6("4->6, datagram and extension fit (ida)", 104, 33, 40, 152, 19, 40),
            to6("4->6, datagram cut to a whole 8 bytes (ib2)", 98, 32, 20, 144, 18, 20),
            to6("4->6, datagram cut to 128 for a large extension (as idg)", 300, 82, 1104, 128, 16, 1104),
            to6("4->6, extension too large: left out (idh)", 100, 32, 1105, 148, 0, 0),
            to6("4->6, datagram shorter than 128 bytes: padded (idk)", 0, 7, 40, 48, 16, 40),
            xlat(
                "6->4, a length past the end: no extension, everything is datagram",
                icmp6_err("2001:db8:6::fe", R6, 1, 4, [100, 0, 0, 0], &[lying6, extension(40)].concat()),
                icmp4_err("192.0.2.254", R4, 3, 3, [0; 4], &[lying4, extension(40)].concat()),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "4->6, parameter problem: ICMPv6's has no length, the extension is left out",
                icmp4_err("9.9.9.1", H4, 12, 0, [8, 33, 0, 0], &[pp4, extension(40)].concat()),
                icmp6_err("64:ff9b::909:901", H6, 4, 0, [0, 0, 0, 7], &pp6),
                Counter::Xlat4to6IcmpError,
            ),
        ],
    );
}

/// RFC 6791 pools, set live: errors from unmapped routers take a source from them.
fn rfc6791_pools(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let mut g = h.tables.globals().unwrap();
    nat64_ctl::config::apply_setting(&mut g, "rfc6791v4-prefix", "203.0.113.9/32").unwrap();
    nat64_ctl::config::apply_setting(&mut g, "rfc6791v6-prefix", "2001:db8:791::/96").unwrap();
    h.tables.set_globals(g).unwrap();
    let probe = udp(b"x");
    let in6 = ipv6(v6(R6), v6(H6), V6Opts { hop_limit: 1, ..Default::default() }, &probe);
    let in4 = ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &probe);
    let out4 = ipv4(v4(H4), v4(R4), V4Opts { ttl: 1, id: 0, df: false, tos: 0 }, &[], &probe);
    let out6 = ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &probe);
    run_table(
        &h,
        vec![
            xlat(
                "unmapped IPv6 router -> rfc6791v4",
                icmp6_err("2001:db8:ff::1", R6, 3, 0, [0; 4], &in6),
                icmp4_err("203.0.113.9", R4, 11, 0, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "unmapped IPv4 router -> rfc6791v6 (router address in the low bits)",
                icmp4_err("10.0.0.1", H4, 11, 0, [0; 4], &out4),
                icmp6_err("2001:db8:791::a00:1", H6, 3, 0, [0; 4], &out6),
                Counter::Xlat4to6IcmpError,
            ),
        ],
    );
    // No pool: the address of the interface the error leaves by (its route's preferred
    // source), ahead of ipv4-addr / ipv6-addr, which are left for no route at all.
    let mut g = h.tables.globals().unwrap();
    nat64_ctl::config::apply_setting(&mut g, "rfc6791v4-prefix", "none").unwrap();
    nat64_ctl::config::apply_setting(&mut g, "rfc6791v6-prefix", "none").unwrap();
    h.tables.set_globals(g).unwrap();
    two_ports();
    sh(
        "ip addr add 198.51.100.77/32 dev x4 && ip route replace 8.8.8.0/24 via 198.51.100.2 dev x4 src 198.51.100.77",
    );
    run_table(
        &h,
        vec![
            xlat(
                "no pool: unmapped IPv6 router -> the IPv4 egress's address",
                icmp6_err("2001:db8:ff::1", R6, 3, 0, [0; 4], &in6),
                icmp4_err("198.51.100.77", R4, 11, 0, [0; 4], &in4),
                Counter::Xlat6to4IcmpError,
            ),
            xlat(
                "no pool: unmapped IPv4 router -> the IPv6 egress's address",
                icmp4_err("10.0.0.1", H4, 11, 0, [0; 4], &out4),
                icmp6_err("2001:db8:6::1", H6, 3, 0, [0; 4], &out6),
                Counter::Xlat4to6IcmpError,
            ),
        ],
    );
    // Without ipv4-addr / ipv6-addr, the translator's own errors come from the address
    // of the interface they leave by as well.
    let mut g = h.tables.globals().unwrap();
    g.flags &= !(Globals::FLAG_HAS_IPV4_ADDR | Globals::FLAG_HAS_IPV6_ADDR);
    h.tables.set_globals(g).unwrap();
    let hl1 = eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &udp(b"own")));
    let ttl1 = eth4(&ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, id: 9, df: false, tos: 0 }, &[], &udp(b"own")));
    run_table(
        &h,
        vec![
            replied(
                "no ipv6-addr: time exceeded from the IPv6 egress's address",
                hl1.clone(),
                back(icmp6_err("2001:db8:6::1", H6, 3, 0, [0; 4], &hl1[14..])),
                Counter::DropTtlExpired,
            ),
            replied(
                "no ipv4-addr: time exceeded from the IPv4 egress's address",
                ttl1.clone(),
                back(icmp4_err("198.51.100.77", R4, 11, 0, [0; 4], &ttl1[14..])),
                Counter::DropTtlExpired,
            ),
        ],
    );
}

/// Spec §2, §3, §6: too big for the egress MTU once translated. With DF (IPv4) or from
/// IPv6 (whose packets routers never fragment), the sender gets Packet Too Big /
/// Fragmentation Needed with the MTU that fits after translation; an IPv4 packet
/// without DF goes to the kernel, which fragments it.
fn too_big_for_the_egress_mtu(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    sh("ip link add x6 type veth peer name x6p && ip link add x4 type veth peer name x4p");
    sh("for i in x6 x6p x4 x4p; do ip link set $i up; done");
    sh("ip link set x4 mtu 1300 && ip link set x6 mtu 1280");
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    sh("ip addr add 2001:db8:6::1/64 dev x6 nodad && ip addr add 198.51.100.1/24 dev x4");
    sh("ip route add 8.8.8.0/24 via 198.51.100.2 dev x4");
    let (x6, x4) = (ifindex("x6"), ifindex("x4"));
    h.port(x6, true);
    h.port(x4, true);

    // IPv6 -> IPv4: 1400 bytes become 1380 > 1300 with DF: PTB 1300 + 20.
    let big6 = in6(H6, R6, &udp(&[1; 1352]));
    let out = h.run_on(&big6, x6);
    assert_eq!(out.action, XDP_TX);
    let want = back(icmp6_err("3fff::1", H6, 2, 0, 1320u32.to_be_bytes(), &big6[14..14 + 1280 - 48]));
    if let Some(d) = diff(&out.frame, &want) {
        panic!("packet too big: {d}");
    }
    // A small one still passes (DF=0 below 1260 bytes; the kernel would fragment).
    assert_eq!(h.run_on(&in6(H6, R6, &udp(&[1; 1000])), x6).action, XDP_PASS);
    // An IPv6 fragment (DF=0 once translated) of 1348 bytes, 1320 as IPv4: Packet Too
    // Big with 1300 + 20, as the kernel-module peer answers ("cg"), so that the sender
    // cuts its fragments to fit.
    let frag6 = v6_raw(H6, R6, 44, &frag_hdr(17, 0, true, 0x0102_0304), &[4; 1300]);
    let out = h.run_on(&frag6, x6);
    assert_eq!(out.action, XDP_TX);
    let want = back(icmp6_err("3fff::1", H6, 2, 0, 1320u32.to_be_bytes(), &frag6[14..14 + 1280 - 48]));
    if let Some(d) = diff(&out.frame, &want) {
        panic!("packet too big for a fragment: {d}");
    }

    // IPv4 -> IPv6 with DF: 1300 bytes become 1320 > 1280: fragmentation needed 1260.
    let big4 = eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &[], &udp(&[2; 1272])));
    let out = h.run_on(&big4, x4);
    assert_eq!(out.action, XDP_TX);
    let mut want = back(icmp4_err("198.51.100.1", R4, 3, 4, [0, 0, 0x04, 0xec], &big4[14..14 + 576 - 28]));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("fragmentation needed: {d}");
    }
    // Without DF it is translated and left to the kernel.
    let big4_nodf =
        eth4(&ipv4(v4(R4), v4(H4), V4Opts { df: false, ..Default::default() }, &[], &udp(&[2; 1272])));
    let out = h.run_on(&big4_nodf, x4);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame[12..14], [0x86, 0xdd], "translated");
    assert_eq!(h.count(Counter::DropMtuExceeded), 3);
    assert_eq!(h.count(Counter::IcmpSent), 3);
    // Towards an IPv4 egress narrower than 1260 no MTU an IPv6 sender may be told would
    // fit: the translated fragment goes to the kernel, which cuts it again.
    sh("ip link set x4 mtu 1000");
    let out = h.run_on(&frag6, x6);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!((out.frame[12..14].to_vec(), out.frame.len()), (vec![0x08, 0x00], 14 + 1320), "translated");
}

/// RFC 7915 §4 (#17 items 1 and 2): without DF, an IPv4 packet that would become an
/// IPv6 packet longer than lowest-ipv6-mtu goes to the general path to be cut into
/// fragments, even when the egress would take it whole (an ICMP echo too: its
/// fragments cross through the held stage); so does one too big for an egress smaller than
/// lowest-ipv6-mtu. With DF, lowest-ipv6-mtu does not apply: what fits the egress
/// leaves whole, what does not gets Fragmentation Needed with the IPv6 MTU - 20, for a
/// first fragment too, and a later fragment with DF is dropped, counted.
fn lowest_ipv6_mtu_and_df(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    sh("ip link add nat64 type veth peer name nat64p && ip link set nat64 up && ip link set nat64p up");
    let gp = ifindex("nat64p");
    h.port(x6, true);
    h.port(x4, true);
    let mut g = h.tables.globals().unwrap();
    g.general_ifindex = gp;
    assert_eq!(g.lowest_ipv6_mtu, 1280, "the default");
    h.tables.set_globals(g).unwrap();
    let nodf = V4Opts { df: false, ..Default::default() };
    // An IPv4 packet of `len` bytes: UDP, or an echo request.
    let udp4 = |len: usize, o: V4Opts| eth4(&ipv4(v4(R4), v4(H4), o, &[], &udp(&vec![7; len - 28])));
    let fast = |mut want: Vec<u8>| {
        want[0..6].copy_from_slice(&[2, 0, 0, 0, 6, 5]);
        want[6..12].copy_from_slice(&[2, 0, 0, 0, 6, 1]);
        want
    };
    fn check(h: &Harness, name: &str, input: &[u8], ingress: u32, action: u32, want: &[u8]) {
        let out = h.run_on(input, ingress);
        assert_eq!(out.action, action, "{name}: verdict");
        if let Some(d) = diff(&out.frame, want) {
            panic!("{name}: {d}");
        }
    }

    // 1261 bytes without DF would be 1281 > 1280: to the general path, untouched.
    let big = udp4(1261, nodf);
    check(&h, "DF=0, 1281 once translated", &big, x4, XDP_PASS, &big);
    assert_eq!(h.count(Counter::PassGeneralPath), 1);
    // 1260 bytes: exactly 1280, translated whole (no fragment header).
    let want = fast(want6(R6, H6, 0, 63, &udp(&[7; 1232])));
    check(&h, "DF=0, 1280 once translated", &udp4(1260, nodf), x4, XDP_REDIRECT, &want);
    // With DF, lowest-ipv6-mtu does not apply: 1420 fits the 1500-byte egress.
    let want = fast(want6(R6, H6, 0, 63, &udp(&[7; 1372])));
    check(&h, "DF=1, 1420 once translated", &udp4(1400, V4Opts::default()), x4, XDP_REDIRECT, &want);
    // An echo request without DF is cut too: its fragments cross (the held stage).
    let echo = packet::L4::Echo { request: true, id: 9, seq: 1, data: vec![3; 1372] };
    let big_echo = eth4(&ipv4(v4(R4), v4(H4), nodf, &[], &echo));
    check(&h, "DF=0 echo, 1420 once translated", &big_echo, x4, XDP_PASS, &big_echo);
    assert_eq!(h.count(Counter::PassGeneralPath), 2);
    // Out of the general path: a 1252-byte first fragment (route MTU 1280 - 28) becomes
    // a 1280-byte IPv6 fragment and leaves.
    let out = h.run_on(&v4_raw(R4, H4, 0x77, 0x2000, 17, &vec![5; 1232]), gp);
    assert_eq!(out.action, XDP_REDIRECT, "a fragment out of the general path");
    assert_eq!(out.frame.len() - 14, 1280);
    assert_eq!(h.count(Counter::PassGeneralPath), 2, "only the first two");

    // An egress smaller than lowest-ipv6-mtu: 1500 configured, a 1280-byte link. 1300
    // bytes without DF (1320 once translated) go to the general path all the same.
    let mut g = h.tables.globals().unwrap();
    g.lowest_ipv6_mtu = 1500;
    h.tables.set_globals(g).unwrap();
    sh("ip link set x6 mtu 1280");
    let mid = udp4(1300, nodf);
    check(&h, "DF=0, 1320 for a 1280-byte egress", &mid, x4, XDP_PASS, &mid);
    assert_eq!(h.count(Counter::PassGeneralPath), 3);

    // With DF, the MTU changed at run time (1400): Fragmentation Needed with 1380, for a
    // whole packet and for a first fragment (DF and MF); a later fragment is dropped.
    sh("ip link set x6 mtu 1400");
    let whole = udp4(1400, V4Opts::default());
    let first = v4_raw(R4, H4, 0x78, 0x6000, 17, &vec![6; 1380]);
    let later = v4_raw(R4, H4, 0x79, 0x4000 | 100, 17, &vec![6; 1380]);
    for (name, input) in [("DF, whole", &whole), ("DF and MF, first fragment", &first)] {
        let out = h.run_on(input, x4);
        assert_eq!(out.action, XDP_TX, "{name}");
        let mut want =
            back(icmp4_err("198.51.100.1", R4, 3, 4, 1380u32.to_be_bytes(), &input[14..14 + 576 - 28]));
        adopt_ipv4_id(&out.frame, &mut want);
        if let Some(d) = diff(&out.frame, &want) {
            panic!("{name}: fragmentation needed: {d}");
        }
    }
    let dropped = h.count(Counter::DropMtuExceeded);
    assert_eq!(h.run_on(&later, x4).action, XDP_DROP, "a later fragment with DF");
    assert_eq!(h.count(Counter::DropMtuExceeded), dropped + 1);
    assert_eq!(h.count(Counter::IcmpSent), 2);
}

/// The general path (spec §2, §7): an IPv4 packet without DF that is too big once
/// translated is handed to the kernel untranslated, to be fragmented into the general
/// path; what comes out of the general path is translated with the hop the kernel
/// already took off given back, so the node counts one hop whichever way it leaves.
fn general_path_takes_what_xdp_cannot_finish(kind: Kind) {
    let mut h = Harness::with(kind, TEST_CONFIG);
    let (x6, x4) = two_ports();
    sh("ip link set x4 mtu 1300 && ip link set x6 mtu 1280");
    sh("ip link add nat64 type veth peer name nat64p && ip link set nat64 up && ip link set nat64p up");
    let gp = ifindex("nat64p");
    h.port(x6, true);
    h.port(x4, true);
    let mut g = h.tables.globals().unwrap();
    g.general_ifindex = gp;
    h.tables.set_globals(g).unwrap();

    // Too big without DF: untouched to the kernel, counted.
    let big4_nodf =
        eth4(&ipv4(v4(R4), v4(H4), V4Opts { df: false, ..Default::default() }, &[], &udp(&[2; 1272])));
    let out = h.run_on(&big4_nodf, x4);
    assert_eq!(out.action, XDP_PASS);
    assert!(diff(&out.frame, &big4_nodf).is_none(), "handed on untranslated");
    assert_eq!(h.count(Counter::PassGeneralPath), 1);
    // With DF the sender still learns the MTU (the general path does not hide it).
    let big4 = eth4(&ipv4(v4(R4), v4(H4), V4Opts::default(), &[], &udp(&[2; 1272])));
    assert_eq!(h.run_on(&big4, x4).action, XDP_TX);

    // Out of the general path, TTL 63 (the kernel took 64 -> 63): redirected with 63.
    let from_kernel = eth4(&ipv4(v4(R4), v4(H4), V4Opts { ttl: 63, ..Default::default() }, &[], &tcp(b"gp")));
    let out = h.run_on(&from_kernel, gp);
    assert_eq!(out.action, XDP_REDIRECT);
    let mut want = want6(R6, H6, 0, 63, &tcp(b"gp"));
    want[0..6].copy_from_slice(&[2, 0, 0, 0, 6, 5]);
    want[6..12].copy_from_slice(&[2, 0, 0, 0, 6, 1]);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("4->6 out of the general path: {d}");
    }
    // TTL 1 there arrived with 2: it still has its hop, no Time Exceeded.
    let last_hop = eth4(&ipv4(v4(R4), v4(H4), V4Opts { ttl: 1, ..Default::default() }, &[], &tcp(b"gp")));
    let out = h.run_on(&last_hop, gp);
    assert_eq!(out.action, XDP_REDIRECT);
    assert_eq!(out.frame[14 + 7], 1, "hop limit 1");
    // The same TTL 1 from a wire has no hop left.
    assert_eq!(h.run_on(&last_hop, x4).action, XDP_TX, "Time Exceeded");

    // 6->4 the same way. To the kernel (no neighbour), the hop is not given back: the
    // kernel takes a second one, so a packet the routes would send round the general
    // path again cannot loop for ever.
    let from_kernel6 =
        eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 63, ..Default::default() }, &udp(b"gp6")));
    let out = h.run_on(&from_kernel6, gp);
    assert_eq!(out.action, XDP_REDIRECT);
    assert_eq!(out.frame[14 + 8], 63, "TTL 63");
    let to_kernel6 = eth6(&ipv6(
        v6(H6),
        v6("64:ff9b::909:909"),
        V6Opts { hop_limit: 63, ..Default::default() },
        &udp(b"gp6"),
    ));
    let out = h.run_on(&to_kernel6, gp);
    assert_eq!(out.action, XDP_PASS);
    let mut want = want4(H4, "9.9.9.9", 0, 63, &udp(b"gp6"));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("6->4 out of the general path to the kernel: {d}");
    }
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

/// Spec §6: never an error about an error, a source address of the right family or
/// none, and a rate limit.
fn translator_errors_are_limited(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    // An ICMPv4 error whose TTL runs out here is dropped without an answer.
    let probe = ipv4(v4(H4), v4(R4), V4Opts { ttl: 1, ..Default::default() }, &[], &udp(b"x"));
    let mut err = icmp4_err("9.9.9.1", H4, 11, 0, [0; 4], &probe);
    err[22] = 1;
    err[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&err[14..34]]);
    err[24..26].copy_from_slice(&c.to_be_bytes());
    let before = h.count(Counter::IcmpSent);
    assert_eq!(h.run(&err).action, XDP_DROP);
    assert_eq!(h.count(Counter::IcmpSent), before, "no error about an error");

    // A flood of expiring packets gets at most the burst of errors, then the limit.
    let ttl1 = with_ttl(in4(R4, H4, &udp(b"flood")), 1);
    // The bucket is per CPU, and it refills with time: one CPU, and the bound is what
    // the loop's own duration allows (a loaded machine runs it slower).
    // The flood goes on (500 packets at a time) until the limit has refused some: on a
    // slow or busy machine the refill keeps up with 500 for longer.
    pin_to_cpu(0);
    let (mut sent, mut n) = (0u64, 0u64);
    let t = std::time::Instant::now();
    while n < 20_000 && (n == 0 || h.count(Counter::IcmpRateLimited) == 0) {
        for _ in 0..500 {
            if h.run(&ttl1).action == XDP_TX {
                sent += 1;
            }
        }
        n += 500;
    }
    let allowed = nat64_common::maps::ICMP_ERRORS_BURST
        + (t.elapsed().as_secs_f64() * nat64_common::maps::ICMP_ERRORS_PER_SEC as f64).ceil() as u64
        + 1;
    let limited = h.count(Counter::IcmpRateLimited);
    assert!(
        sent >= nat64_common::maps::ICMP_ERRORS_BURST && sent <= allowed && limited > 0,
        "{sent} errors for {n} expiring packets (the burst of 50 and the refill allow {allowed})"
    );
    assert_eq!(sent + limited, n);
    assert_eq!(h.count(Counter::DropTtlExpired), n + 1, "each counted once as expired (and the error above)");

    // Without an own IPv6 address there is no source for ICMPv6 errors.
    let h = Harness::with(kind, &TEST_CONFIG.replace(r#""ipv6-addr": "3fff::1","#, ""));
    let hl1 = eth6(&ipv6(v6(H6), v6(R6), V6Opts { hop_limit: 1, ..Default::default() }, &udp(b"x")));
    assert_eq!(h.run(&hl1).action, XDP_DROP);
    assert_eq!(h.count(Counter::IcmpNoSource), 1);
}

/// NAT64 dynamic pool: four addresses, of which the translator's own (.1) is never
/// handed out, so three hosts fill it. Lease 2 s.
const POOL_CONFIG: &str = r#"{
    "interfaces": [{"name": "lo", "attach": "xdp"}],
    "ipv4-addr": "203.0.113.1",
    "ipv6-addr": "3fff::1",
    "pool6": "64:ff9b::/96",
    "dynamic-pool": "203.0.113.0/30",
    "dynamic-pool-lease": 2
}"#;

/// Allocation on the first packet (translated, not dropped), reuse by the same host,
/// return traffic, expiry after the lease (with an ICMPv4 error for what still comes
/// to the address), least-recently-used order, the old address back for a returning
/// host, exhaustion (ICMPv6 error), flush, and the state file round trip.
fn dynamic_pool_allocation_reuse_expiry_exhaustion(kind: Kind) {
    use nat64_ctl::pool;
    let mut h = Harness::with(kind, POOL_CONFIG);
    let spec = pool::Spec::of(&h.tables.globals().unwrap()).expect("pool configured");
    assert_eq!(spec.capacity(&h.tables).unwrap(), 3, "four addresses less the own one");
    let (a, b, c, d) = ("2001:db8:a::1", "2001:db8:b::1", "2001:db8:c::1", "2001:db8:d::1");
    // A static entry is either static or handed out: none inside the pool.
    let inside =
        nat64_ctl::config::EamtEntry::new("203.0.113.2".parse().unwrap(), "2001:db8:9::2".parse().unwrap());
    let err = h.tables.eamt_add(&inside.unwrap(), false).unwrap_err().to_string();
    assert!(err.contains("overlaps the dynamic pool 203.0.113.0/30"), "{err}");
    let allocated = |h: &Harness| h.count(Counter::PoolAllocated);
    let held = |h: &Harness| -> Vec<(String, String)> {
        pool::list(&h.tables).unwrap().into_iter().map(|m| (m.v6.to_string(), m.v4.to_string())).collect()
    };

    // Host A's first packet gets the first free address and is translated at once; it
    // goes through the kernel (for its masquerade), so the TTL is the hop limit.
    pin_to_cpu(0);
    run_table(
        &h,
        vec![
            xlat(
                "first packet of a new host",
                in6(a, R6, &udp(b"first")),
                want4("203.0.113.0", R4, 0, 64, &udp(b"first")),
                Counter::Xlat6to4Udp,
            ),
            xlat(
                "same host, same address",
                in6(a, R6, &tcp(b"again")),
                want4("203.0.113.0", R4, 0, 64, &tcp(b"again")),
                Counter::Xlat6to4Tcp,
            ),
            xlat(
                "return traffic to the pool address",
                in4(R4, "203.0.113.0", &udp(b"back")),
                want6(R6, a, 0, 64, &udp(b"back")),
                Counter::Xlat4to6Udp,
            ),
        ],
    );
    assert_eq!(allocated(&h), 1, "one host, one allocation");
    run_table(
        &h,
        vec![
            dropped(
                "link-local source gets no address",
                in6("fe80::1", R6, &udp(b"ll")),
                Counter::DropSrcUnmapped,
            ),
            dropped(
                "unspecified source gets no address",
                in6("::", R6, &udp(b"un")),
                Counter::DropSrcUnmapped,
            ),
        ],
    );
    assert_eq!(allocated(&h), 1);
    assert_eq!(held(&h), vec![(a.to_string(), "203.0.113.0".to_string())]);
    let unmapped = in4(R4, "203.0.113.3", &udp(b"nobody"));
    run_table(
        &h,
        vec![replied(
            "to a pool address nobody holds: host unreachable",
            unmapped.clone(),
            back(icmp4_err("203.0.113.1", R4, 3, 1, [0; 4], &unmapped[14..])),
            Counter::DropPoolUnmapped,
        )],
    );

    // The lease runs out: A's mapping goes, its address answers with an error again.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let swept = pool::sweep(&mut h.tables, &spec, pool::mono_now(), nat64_ctl::instance::unix_now()).unwrap();
    assert_eq!(swept.expired.len(), 1);
    assert_eq!(swept.active, 0);
    assert!(held(&h).is_empty());
    let late = in4(R4, "203.0.113.0", &udp(b"late"));
    run_table(
        &h,
        vec![replied(
            "after expiry",
            late.clone(),
            back(icmp4_err("203.0.113.1", R4, 3, 1, [0; 4], &late[14..])),
            Counter::DropPoolUnmapped,
        )],
    );
    pool::refill(&mut h.tables, &spec).unwrap();

    // B is new: it gets an address free the longest (.2, never used), not the one A
    // just left, also on a CPU that has not walked the ring yet. A comes back and gets
    // its own address again; C takes the last.
    pin_to_cpu(1);
    let first = |h: &Harness, host: &str| {
        let out = h.run(&in6(host, R6, &udp(b"hi")));
        assert_eq!(out.action, XDP_PASS, "{host}");
        assert_eq!(&out.frame[12..14], &[0x08, 0x00], "{host}: translated to IPv4");
        Ipv4Addr::from(<[u8; 4]>::try_from(&out.frame[26..30]).unwrap()).to_string()
    };
    assert_eq!(first(&h, b), "203.0.113.2");
    assert_eq!(first(&h, a), "203.0.113.0");
    assert_eq!(first(&h, c), "203.0.113.3");
    assert_eq!(allocated(&h), 4);

    // The pool is full: D is told with Destination Unreachable, Address Unreachable.
    let from_c = in6(d, R6, &udp(b"full"));
    run_table(
        &h,
        vec![replied(
            "pool exhausted",
            from_c.clone(),
            back(icmp6_err("3fff::1", d, 1, 3, [0; 4], &from_c[14..])),
            Counter::DropPoolExhausted,
        )],
    );
    assert_eq!(allocated(&h), 4);

    // The state file keeps the mappings: flushed and read back, they are the same.
    let dir = std::env::temp_dir().join(format!("nat64-pool-test-{}-{kind:?}", std::process::id()));
    let file = dir.join("state.json");
    let before = held(&h);
    assert_eq!(pool::save(&h.tables, &spec, &file, nat64_ctl::instance::unix_now()).unwrap(), 3);
    assert_eq!(pool::flush(&mut h.tables).unwrap(), 3);
    assert!(held(&h).is_empty());
    let r = pool::restore(&mut h.tables, &spec, &file, nat64_ctl::instance::unix_now()).unwrap();
    assert_eq!((r.mappings, r.skipped), (3, 0));
    assert_eq!(held(&h), before);
    run_table(
        &h,
        vec![xlat(
            "restored mapping translates",
            in4(R4, "203.0.113.2", &udp(b"kept")),
            want6(R6, b, 0, 64, &udp(b"kept")),
            Counter::Xlat4to6Udp,
        )],
    );

    // Flushed, the pool is free again and D gets an address.
    pool::flush(&mut h.tables).unwrap();
    pool::refill(&mut h.tables, &spec).unwrap();
    let got = first(&h, d);
    assert!(["203.0.113.0", "203.0.113.2", "203.0.113.3"].contains(&got.as_str()), "{got}");
    assert_eq!(allocated(&h), 5);

    // A state file that cannot be read is set aside, and the translator starts empty
    // rather than not at all.
    std::fs::write(&file, b"{\"version\": 1, \"mappings\": [").unwrap();
    let r = pool::restore(&mut h.tables, &spec, &file, nat64_ctl::instance::unix_now()).unwrap();
    assert_eq!(r, pool::Restored::default());
    assert!(!file.exists() && file.with_extension("bad").exists(), "moved aside");
    assert_eq!(held(&h).len(), 1, "what was held stays");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bulk load (`map add --file`) is seen by the data path all at once or not at all:
/// entries of the next EAMT generation are ignored until the configuration's
/// generation moves on; an overlap refuses the whole load and leaves nothing behind.
fn eamt_bulk_load_is_all_or_nothing(kind: Kind) {
    use nat64_ctl::config::{EamtEntry, Prefix4, Prefix6};
    let mut h = Harness::with(kind, TEST_CONFIG);
    let e = |i: u32| {
        let v4 = Prefix4 { addr: Ipv4Addr::from(0xc612_0000 + i), len: 32 }; // 198.18.x.y
        let v6 = Prefix6 {
            addr: Ipv6Addr::from(0x2001_0db8_0008_0000_0000_0000_0000_0000u128 + i as u128),
            len: 128,
        };
        EamtEntry::new(v4, v6).unwrap()
    };
    let from = |i: u32| {
        in6(
            &Ipv6Addr::from(0x2001_0db8_0008_0000_0000_0000_0000_0000u128 + i as u128).to_string(),
            R6,
            &udp(b"bulk"),
        )
    };
    let to = |i: u32| in4(R4, &Ipv4Addr::from(0xc612_0000 + i).to_string(), &udp(b"bulk"));

    // Written with the next generation: not used yet.
    let g = h.tables.globals().unwrap();
    h.tables.eamt_insert(&e(7), g.eam_gen + 1).unwrap();
    run_table(
        &h,
        vec![
            prohibited6("pending entry: source not mapped yet", from(7), Counter::DropSrcUnmapped),
            passed("pending entry: destination not ours yet", to(7), Counter::PassV4NotOurs),
        ],
    );
    let mut g2 = g;
    g2.eam_gen += 1;
    h.tables.set_globals(g2).unwrap();
    run_table(
        &h,
        vec![xlat(
            "once the generation moves on",
            from(7),
            want4("198.18.0.7", R4, 0, 64, &udp(b"bulk")),
            Counter::Xlat6to4Udp,
        )],
    );

    // A load with one overlap is refused as a whole.
    let mut load: Vec<EamtEntry> = (100..1100).map(e).collect();
    load.push(e(500));
    let err = h.tables.eamt_add_bulk(&load, |i| format!("line {}", i + 1)).unwrap_err().to_string();
    assert!(err.contains("line 1001") && err.contains("overlaps line 401"), "{err}");
    assert_eq!(h.tables.eamt().unwrap().len(), 3, "nothing added");
    load.pop();
    h.tables.eamt_add_bulk(&load, |i| format!("line {}", i + 1)).unwrap();
    assert_eq!(h.tables.eamt().unwrap().len(), 1003);
    assert_eq!(h.tables.globals().unwrap().eam_gen, g.eam_gen + 2);
    run_table(
        &h,
        vec![xlat(
            "bulk entry",
            to(1099),
            want6(R6, "2001:db8:8::44b", 0, 64, &udp(b"bulk")),
            Counter::Xlat4to6Udp,
        )],
    );
}

/// The TC program for L3 devices (WireGuard, TUN) passes the kernel's verifier.
/// BPF_PROG_TEST_RUN always hands TC programs a frame with an Ethernet header, so it
/// cannot run that program on bare IP packets: the end-to-end tests carry real traffic
/// through it on a real L3 device.
#[test]
fn tc_program_for_l3_devices_verifies() {
    nat64_tests::require_root();
    if let Err(e) = nat64_ctl::instance::load(&[nat64_ctl::instance::TC_L3_PROGRAM]) {
        panic!("{e:#}");
    }
}

#[path = "packets/long_errors.rs"]
mod long_errors;
#[path = "packets/own_pool4.rs"]
mod own_pool4;
#[path = "packets/simopen.rs"]
mod simopen;
#[path = "packets/stateful_hairpin.rs"]
mod stateful_hairpin;
use long_errors::icmp_errors_of_any_length;
use own_pool4::stateful_nat64_own_address_in_pool4;
use simopen::stateful_nat64_simultaneous_open;
use stateful_hairpin::stateful_nat64_hairpinned_errors_in_one_pass;

/// Every packet test runs through the XDP program and the TC program (Ethernet).
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Kind;

            #[test]
            fn xdp() {
                super::$name(Kind::Xdp)
            }

            #[test]
            fn tc() {
                super::$name(Kind::Tc)
            }
        }
    )*};
}

both!(
    ipv6_to_ipv4_each_protocol,
    ipv4_to_ipv6_each_protocol,
    not_for_translation_passes_untouched,
    untranslatable_packets_are_dropped_and_counted,
    options_amend_udp_zero_checksum_and_zeroize_traffic_class,
    well_known_prefix_rule_can_be_switched_off,
    every_rfc6052_prefix_length,
    unconfigured_program_passes_everything,
    ipv4_identifications_do_not_repeat,
    known_route_and_neighbour_redirect_with_one_hop,
    xdp_tcp_gro_hands_data_segments_to_the_kernel,
    a_port_that_takes_no_xdp_frames_gets_no_xdp_redirects,
    replies_leave_by_the_port_they_came_in,
    ipv4_translatable_destinations,
    eam_with_unequal_suffixes,
    own_ipv6_address_inside_pool6,
    hairpinning,
    hairpinned_errors_quote_what_the_sender_sent,
    stateful_nat64_udp_icmp_tcp,
    stateful_nat64_errors_fragments_and_hop_limits,
    stateful_nat64_port_blocks_and_bib_events,
    stateful_nat64_cgn_limits,
    stateful_nat64_pool_fills_before_refusing,
    stateful_nat64_simultaneous_open,
    stateful_nat64_own_address_in_pool4,
    stateful_nat64_hairpinned_errors_in_one_pass,
    stateful_nat64_atomic_fragments,
    stateful_nat64_races_between_cpus,
    next_hop_cache_follows_changes_and_keeps_the_mtu,
    address_memo_follows_table_changes,
    eamt_longest_prefix_match_both_ways,
    fragments_and_extension_headers,
    icmp_echo_in_fragments,
    stateful_nat64_icmp_echo_in_fragments,
    icmpv4_errors_to_icmpv6,
    icmpv6_errors_to_icmpv4,
    icmp_errors_of_any_length,
    translated_mtu_capped_by_the_next_hops,
    icmp_extensions_rfc4884,
    rfc6791_pools,
    too_big_for_the_egress_mtu,
    general_path_takes_what_xdp_cannot_finish,
    lowest_ipv6_mtu_and_df,
    unexpired_source_route_fails,
    translator_errors_are_limited,
    dynamic_pool_allocation_reuse_expiry_exhaustion,
    eamt_bulk_load_is_all_or_nothing,
);
