//! How translated packets leave: redirect with one hop, the next-hop cache,
//! `xdp-tcp-gro`, ports that take no XDP frames, replies by the port they came in.

use nat64_common::{counters::Counter, maps::Globals};
use nat64_tests::{
    packet::{L4, V6Opts, diff, eth6, ipv6},
    pin_to_cpu,
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG, XDP_PASS, XDP_REDIRECT, XDP_TX, sh},
};

use crate::common::{
    adopt_ipv4_id, back, both, icmp4_err, icmp6_err, in4, in6, tcp, two_ports, udp, v6, want4, want6,
    with_ttl,
};

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

both!(
    known_route_and_neighbour_redirect_with_one_hop,
    xdp_tcp_gro_hands_data_segments_to_the_kernel,
    a_port_that_takes_no_xdp_frames_gets_no_xdp_redirects,
    replies_leave_by_the_port_they_came_in,
    next_hop_cache_follows_changes_and_keeps_the_mtu,
);
