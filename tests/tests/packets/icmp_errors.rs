//! ICMP errors translated both ways (RFC 7915 §4.2-4.3, §5.2-5.3), RFC 4884 extensions,
//! errors of any length, RFC 6791 pools, the translator's own errors limited.

use nat64_common::{counters::Counter, maps::Globals};
use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, eth4, eth6, ipv4, ipv6},
    pin_to_cpu,
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG, XDP_DROP, XDP_TX, sh},
};

use crate::common::{
    back, both, cut_icmp4, dropped, frag_hdr, icmp4_err, icmp6_err, in4, replied, run_table, two_ports, udp,
    v4, v6, v6_raw, with_ttl, xlat,
};

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

/// An ICMP error of any length a link carries is translated: an ICMPv4 Port
/// Unreachable of 3,056 bytes (a router on a jumbo link quoting a 3,028-byte datagram
/// whole) becomes an ICMPv6 error cut to 1,280 bytes, and an ICMPv6 error of 2,048
/// bytes an ICMPv4 error cut to 576; the checksum of the whole message is still
/// checked (one bit off: dropped, counted).
fn icmp_errors_of_any_length(kind: Kind) {
    let h = Harness::with(kind, TEST_CONFIG);
    let (router, router6) = ("9.9.9.1", "64:ff9b::909:901");
    let long = udp(&[0x5a; 3000]);
    let hop1 = V4Opts { ttl: 1, id: 0, df: false, tos: 0 };
    let hop1_6 = V6Opts { hop_limit: 1, ..Default::default() };
    let long4 = ipv4(v4(H4), v4(R4), hop1, &[], &long);
    let long6 = ipv6(v6(H6), v6(R6), hop1_6, &long);
    let err4 = icmp4_err(router, H4, 3, 3, [0; 4], &long4);
    assert_eq!(err4.len(), 14 + 3056);
    let mut want6 = icmp6_err(router6, H6, 1, 4, [0; 4], &long6);
    want6.truncate(14 + 1280);
    let want6 = fix_icmp6_lengths(want6);
    let mut bad4 = err4.clone();
    bad4[14 + 2000] ^= 1;

    // The other way: the IPv6 router 2001:db8:6::fe (192.0.2.254 by the EAM entry)
    // about what the IPv4 host sent.
    let (router_v6, router_v4) = ("2001:db8:6::fe", "192.0.2.254");
    let back = udp(&[0xa5; 1952]);
    let back6 = ipv6(v6(R6), v6(H6), hop1_6, &back);
    // Inside, the header its own translation would have had: over 1260 bytes, DF.
    let back4 = ipv4(v4(R4), v4(H4), V4Opts { df: true, ..hop1 }, &[], &back);
    let err6 = icmp6_err(router_v6, R6, 1, 4, [0; 4], &back6);
    assert_eq!(err6.len(), 14 + 2048);
    let want4 = cut_icmp4(icmp4_err(router_v4, R4, 3, 3, [0; 4], &back4), 576);
    let mut bad6 = err6.clone();
    bad6[14 + 1900] ^= 0x80;
    // RFC 4884 on a jumbo link: a 1020-byte original datagram (the most its length
    // attribute tells) and a 1000-byte extension, 2028 bytes of message: the datagram
    // is cut to the 232 bytes that leave the extension room in 1280.
    let ext4 = ipv4(v4(H4), v4(R4), hop1, &[], &udp(&[0x66; 992]));
    let ext6 = ipv6(v6(H6), v6(R6), hop1_6, &udp(&[0x66; 992]));
    let with_ext = icmp4_err(router, H4, 3, 3, [0, 255, 0, 0], &[ext4, extension(1000)].concat());
    assert_eq!(with_ext.len(), 14 + 20 + 8 + 1020 + 1000);
    let want_ext =
        icmp6_err(router6, H6, 1, 4, [29, 0, 0, 0], &[sized(&ext6, 232), extension(1000)].concat());
    run_table(
        &h,
        vec![
            xlat("a 3056-byte ICMPv4 error", err4, want6, Counter::Xlat4to6IcmpError),
            xlat(
                "a 2048-byte ICMPv4 error with an RFC 4884 extension",
                with_ext,
                want_ext,
                Counter::Xlat4to6IcmpError,
            ),
            dropped("its checksum still checked", bad4, Counter::DropIcmpBadChecksum),
            xlat("a 2048-byte ICMPv6 error", err6, want4, Counter::Xlat6to4IcmpError),
            dropped("likewise", bad6, Counter::DropIcmpBadChecksum),
        ],
    );
}

both!(
    icmpv4_errors_to_icmpv6,
    icmpv6_errors_to_icmpv4,
    icmp_extensions_rfc4884,
    rfc6791_pools,
    translator_errors_are_limited,
    icmp_errors_of_any_length,
);
