//! Stateful NAT64 (RFC 6146): mapping, filtering, TCP states, ICMP errors about stateful
//! flows, fragments, hop limits, races between CPUs.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, diff, eth4, eth6, ipv4, ipv6},
    pin_to_cpu,
    xdp::{H6, Harness, Kind, R4, R6, XDP_DROP, XDP_PASS, XDP_TX, sh},
};

use crate::common::{
    NAT64_CONFIG, adopt_ipv4_id, back, both, cut_icmp4, dropped, frag_hdr, icmp4_err, icmp6_err, ifindex,
    in6, opts_hdr, passed, run_table, two_ports, v4, v4_raw, v6, v6_raw, want4, want6, xlat,
};

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
    let ten_min = nat64_ctl::sys::boot_ns() + 600_000_000_000;
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

both!(
    stateful_nat64_udp_icmp_tcp,
    stateful_nat64_icmp_echo_in_fragments,
    stateful_nat64_errors_fragments_and_hop_limits,
    stateful_nat64_atomic_fragments,
    stateful_nat64_races_between_cpus,
);
