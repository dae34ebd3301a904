//! ICMP errors longer than a 1500-byte link carries (jumbo links, RFC 4884).

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{V4Opts, V6Opts, ipv4, ipv6},
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG},
};

use super::{
    cut_icmp4, dropped, extension, fix_icmp6_lengths, icmp4_err, icmp6_err, run_table, sized, udp, v4, v6,
    xlat,
};

/// An ICMP error of any length a link carries is translated: an ICMPv4 Port
/// Unreachable of 3,056 bytes (a router on a jumbo link quoting a 3,028-byte datagram
/// whole) becomes an ICMPv6 error cut to 1,280 bytes, and an ICMPv6 error of 2,048
/// bytes an ICMPv4 error cut to 576; the checksum of the whole message is still
/// checked (one bit off: dropped, counted).
pub fn icmp_errors_of_any_length(kind: Kind) {
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
