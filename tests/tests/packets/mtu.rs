//! MTUs: translated Packet Too Big capped by the next hops, too big for the egress,
//! lowest-ipv6-mtu and DF, the general path.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{self, V4Opts, V6Opts, diff, eth4, eth6, ipv4, ipv6},
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, sh},
};

use crate::common::{
    adopt_ipv4_id, back, both, frag_hdr, icmp4_err, icmp6_err, ifindex, in6, run_table, tcp, two_ports, udp,
    v4, v4_raw, v6, v6_raw, want4, want6, xlat,
};

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

both!(
    translated_mtu_capped_by_the_next_hops,
    too_big_for_the_egress_mtu,
    lowest_ipv6_mtu_and_df,
    general_path_takes_what_xdp_cannot_finish,
);
