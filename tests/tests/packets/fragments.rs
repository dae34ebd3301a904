//! Fragments and IPv6 extension headers (RFC 7915 §4.1, §5.1), ICMP echoes in fragments.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet,
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG},
};

use crate::common::{
    back, both, dropped, frag_hdr, icmp4_err, icmp6_err, opts_hdr, passed, replied, run_table, udp, v4,
    v4_raw, v6, v6_raw, want4, xlat,
};

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

both!(fragments_and_extension_headers, icmp_echo_in_fragments);
