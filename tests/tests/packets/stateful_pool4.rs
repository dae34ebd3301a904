//! Stateful NAT64's pool4: port blocks and BIB events, a pool filling before anyone is
//! refused, carrier-grade NAT limits (RFC 6888), the own address lent as pool4.

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{L4, V4Opts, diff, eth4, ipv4},
    xdp::{H6, Harness, Kind, R4, R6, XDP_PASS, XDP_TX},
};

use crate::common::{
    NAT64_CONFIG, adopt_ipv4_id, back, both, icmp4_err, icmp6_err, in4, in6, v4, v6, want4, want6,
};

/// Stateful NAT64 port blocks (RFC 7422, #15): a host of `port-block-prefix` gets its
/// block (2001:db8:6::5 is the second /128 of 2001:db8:6::4/126: ports 40002-40003 of
/// the one pool4 address) and no other port; when the block is used up, Address
/// Unreachable; a host outside the prefix gets Address Unreachable too, counted apart.
/// With `bib-log`, each new BIB entry is reported in the ring buffer (time, both
/// transport addresses, protocol).
fn stateful_nat64_port_blocks_and_bib_events(kind: Kind) {
    use nat64_common::maps::NatEvent;
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
    let mut events = ring_events(&mut h);
    let now = nat64_ctl::sys::boot_ns();
    // Last, the host's block used up: a quota event (once, however many are refused),
    // naming the host.
    let quota = events.pop().expect("events");
    assert_eq!(
        (quota.kind, quota.state, quota.v6),
        (NatEvent::QUOTA_EXCEEDED, NatEvent::LIMIT_BLOCKS, v6(H6).octets())
    );
    assert_eq!(h.run(&q).action, XDP_TX, "still used up");
    assert!(ring_events(&mut h).is_empty(), "reported once in 10 s");
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
    let mut ended = Vec::new();
    for e in ring_events(&mut h) {
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
    let now = nat64_ctl::sys::boot_ns();
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

/// With `ipv4-addr` inside pool4, the flows mapped onto it cross as on any pool4
/// address (both ways, and ICMP errors about them), while what no mapping takes (a
/// port outside the mappings, an echo to it, an ICMP error about the host's own
/// traffic, a later fragment without its first) is the host's: handed to the kernel
/// untouched (`pass_own_address`), never held, answered or dropped.
fn stateful_nat64_own_address_in_pool4(kind: Kind) {
    let config = NAT64_CONFIG.replace(r#""ipv4-addr": "198.51.100.1","#, r#""ipv4-addr": "203.0.113.8","#);
    assert_ne!(config, NAT64_CONFIG);
    let h = Harness::with(kind, &config);
    let own = "203.0.113.8";
    let udp =
        |sport: u16, dport: u16| L4::Udp { sport, dport, data: b"query".to_vec(), zero_checksum: false };
    let out = h.run(&in6(H6, R6, &udp(5000, 53)));
    assert_eq!(out.action, XDP_PASS);
    let port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let mut want = want4(own, R4, 0, 64, &udp(port, 53));
    adopt_ipv4_id(&out.frame, &mut want);
    if let Some(d) = diff(&out.frame, &want) {
        panic!("mapped onto the own address: {d}");
    }
    let answer = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, port)));
    let out = h.run(&answer);
    if let Some(d) = diff(&out.frame, &want6(R6, H6, 0, 64, &udp(53, 5000))) {
        panic!("the answer reaches the host: {d}");
    }
    // An ICMP error about the mapped flow goes to the IPv6 host.
    let sent = ipv4(v4(own), v4(R4), V4Opts::default(), &[], &udp(port, 53));
    let err = icmp4_err("192.0.2.77", own, 3, 3, [0; 4], &sent);
    let passed = h.count(Counter::PassOwnAddress);
    let out = h.run(&err);
    assert_eq!(out.frame[12..14], [0x86, 0xdd], "translated to ICMPv6");
    assert_eq!(h.count(Counter::PassOwnAddress), passed);

    // What no mapping takes is the host's.
    let ssh = eth4(&ipv4(
        v4(R4),
        v4(own),
        V4Opts::default(),
        &[],
        &L4::Tcp { sport: 4444, dport: 22, seq: 1, flags: 0x02, data: vec![] },
    ));
    let dns = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, 40100)));
    let ping = eth4(&ipv4(
        v4(R4),
        v4(own),
        V4Opts::default(),
        &[],
        &L4::Echo { request: true, id: 0x7777, seq: 1, data: b"ping".to_vec() },
    ));
    let own_sent = ipv4(v4(own), v4(R4), V4Opts::default(), &[], &udp(33000, 53));
    let own_err = icmp4_err("192.0.2.77", own, 3, 3, [0; 4], &own_sent);
    let mut later = eth4(&ipv4(v4(R4), v4(own), V4Opts::default(), &[], &udp(53, 33000)));
    later[20..22].copy_from_slice(&185u16.to_be_bytes());
    let c = nat64_tests::packet::inet_checksum(&[&{
        let mut hd = later[14..34].to_vec();
        hd[10..12].copy_from_slice(&[0, 0]);
        hd
    }]);
    later[24..26].copy_from_slice(&c.to_be_bytes());
    for (what, frame) in [
        ("TCP SYN to port 22", ssh),
        ("UDP", dns),
        ("echo", ping),
        ("an error about its own", own_err),
        ("a later fragment", later),
    ] {
        let before = h.count(Counter::PassOwnAddress);
        let out = h.run(&frame);
        assert_eq!(out.action, XDP_PASS, "{what}");
        assert_eq!(out.frame, frame, "{what}: handed on untouched");
        assert_eq!(h.count(Counter::PassOwnAddress), before + 1, "{what}: counted as the host's");
    }
    assert_eq!(h.count(Counter::DropNatSynHeld), 0);
}

/// The NAT events in the ring buffer, oldest first.
fn ring_events(h: &mut Harness) -> Vec<nat64_common::maps::NatEvent> {
    let mut ring: aya::maps::RingBuf<&mut aya::maps::MapData> =
        aya::maps::RingBuf::try_from(h.ebpf.map_mut("NAT_EVENTS").expect("NAT_EVENTS")).unwrap();
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<nat64_common::maps::NatEvent>());
        // SAFETY: a NatEvent the data path wrote (length checked).
        events
            .push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<nat64_common::maps::NatEvent>()) });
    }
    events
}

/// Dynamic port-block allocation: pool4 203.0.113.8/31 ports 40000-40015 in blocks of
/// 4 (8 blocks), 2 a subscriber at most. A subscriber's first mapping takes a block
/// (one event, not one per BIB entry), its mappings stay in it until it is used up,
/// the next block then; with both used up the subscriber is refused (ICMPv6
/// Administratively Prohibited, a quota event). Another subscriber gets other blocks;
/// with every block held, a new subscriber gets Address Unreachable and pool4 is
/// reported out of blocks. `nat64-ctl port-block` names each block's holder. The
/// sweep ends the mappings, and gives each block back (one event each) only once it
/// has been unused for `port-reuse-delay`.
fn stateful_nat64_dynamic_port_blocks(kind: Kind) {
    use nat64_common::maps::NatEvent;
    let config = NAT64_CONFIG.replace(
        r#""pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],"#,
        r#""pool4": [{"prefix": "203.0.113.8/31", "ports": "40000-40015"}],
    "port-block-size": 4, "port-blocks-per-host": 2, "port-reuse-delay": 30, "bib-log": "stdout","#,
    );
    assert_ne!(config, NAT64_CONFIG);
    let cfg = nat64_ctl::config::Config::from_json(&config).unwrap();
    let n = cfg.nat64.as_ref().unwrap();
    let (blocks, slots) = (n.port_blocks.unwrap(), n.slots());
    assert!(blocks.dynamic());
    let mut h = Harness::with(kind, &config);
    let udp_from = |sport: u16| L4::Udp { sport, dport: 53, data: b"query".to_vec(), zero_checksum: false };
    let map = |h: &Harness, host: &str, sport: u16| {
        let out = h.run(&in6(host, R6, &udp_from(sport)));
        assert_eq!(out.action, XDP_PASS, "{host} port {sport} mapped");
        let v4: std::net::Ipv4Addr = <[u8; 4]>::try_from(&out.frame[26..30]).unwrap().into();
        (v4, u16::from_be_bytes([out.frame[34], out.frame[35]]))
    };
    let block_of = |a: (std::net::Ipv4Addr, u16)| blocks.index_of(a.0, a.1, &slots).expect("in a block");

    // The first subscriber: 4 mappings in one block, 4 in a second.
    let mapped: Vec<_> = (0..8).map(|i| map(&h, H6, 5000 + i)).collect();
    let (first, second) = (block_of(mapped[0]), block_of(mapped[4]));
    assert_ne!(first, second);
    assert!(mapped[..4].iter().all(|m| block_of(*m) == first), "{mapped:?}");
    assert!(mapped[4..].iter().all(|m| block_of(*m) == second), "{mapped:?}");
    let mut ports: Vec<_> = mapped.clone();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 8, "each mapping its own port: {mapped:?}");
    let q = in6(H6, R6, &udp_from(5008));
    let out = h.run(&q);
    assert_eq!(out.action, XDP_TX, "both blocks used up");
    if let Some(d) = diff(&out.frame, &back(icmp6_err("3fff::1", H6, 1, 1, [0; 4], &q[14..]))) {
        panic!("at the subscriber's limit: {d}");
    }
    assert_eq!(h.count(Counter::DropNatSubscriberLimit), 1);
    assert_eq!(h.count(Counter::NatBlockAllocated), 2);
    let sub6 = v6("2001:db8:6::").octets();
    let events = ring_events(&mut h);
    let kinds: Vec<(u8, [u8; 16], u32)> =
        events.iter().map(|e| (e.kind, e.v6, u32::from_be_bytes(e.v4))).collect();
    assert_eq!(
        kinds,
        vec![
            (NatEvent::BLOCK_ALLOCATED, sub6, first),
            (NatEvent::BLOCK_ALLOCATED, sub6, second),
            (NatEvent::QUOTA_EXCEEDED, sub6, 0),
        ],
        "one event a block and the limit, none a BIB entry"
    );
    assert_eq!(events[2].state, NatEvent::LIMIT_BLOCKS);

    // Three more subscribers take the other six blocks; a fifth finds none.
    let mut taken = vec![first, second];
    for s in 7..10 {
        let host = format!("2001:db8:{s}::5");
        for i in 0..8 {
            taken.push(block_of(map(&h, &host, 5000 + i)));
        }
    }
    taken.sort();
    taken.dedup();
    assert_eq!(taken, (0..8).collect::<Vec<u32>>(), "every block, each to one subscriber");
    let late = in6("2001:db8:10::5", R6, &udp_from(5000));
    let out = h.run(&late);
    assert_eq!(out.action, XDP_TX, "no block left");
    if let Some(d) =
        diff(&out.frame, &back(icmp6_err("3fff::1", "2001:db8:10::5", 1, 3, [0; 4], &late[14..])))
    {
        panic!("pool4 out of blocks: {d}");
    }
    assert_eq!(h.count(Counter::DropNatPortsExhausted), 1);
    let events = ring_events(&mut h);
    assert_eq!(events.iter().filter(|e| e.kind == NatEvent::BLOCK_ALLOCATED).count(), 6);
    let out_of = events.iter().find(|e| e.kind == NatEvent::EXHAUSTED).expect("an exhaustion event");
    assert_eq!(out_of.v4, [0; 4], "out of blocks, not of one address's ports");

    // Who holds a port, and what a host holds, from the running tables.
    let held = h.tables.nat.as_ref().unwrap().held_blocks();
    assert_eq!(held.len(), 8);
    let at = format!("{}:{}", mapped[0].0, mapped[0].1);
    let line = nat64_ctl::cli::nat::dynamic_port_block_line(&blocks, &slots, &held, 64, &at).unwrap();
    assert!(line.starts_with(&format!("{at} -> 2001:db8:6::/64 (block ")), "{line}");
    assert!(line.ends_with(", 4 in use)"), "{line}");
    let line = nat64_ctl::cli::nat::dynamic_port_block_line(&blocks, &slots, &held, 64, H6).unwrap();
    assert!(line.contains(" ports ") && line.ends_with("(subscriber 2001:db8:6::/64)"), "{line}");

    // Ten minutes on every mapping ends, no block yet: they go unused for 30 s first.
    let ten_min = nat64_ctl::sys::boot_ns() + 600_000_000_000;
    let r = h.sweep(ten_min);
    assert_eq!((r.sessions, r.removed, r.blocks), (32, 32, 0));
    assert!(ring_events(&mut h).is_empty(), "BIB entries ending are not logged with dynamic blocks");
    let later = ten_min + 31_000_000_000;
    let r = h.sweep(later);
    assert_eq!(r.blocks, 8);
    let events = ring_events(&mut h);
    assert_eq!(events.len(), 8);
    assert!(events.iter().all(|e| e.kind == NatEvent::BLOCK_RELEASED && e.time == later), "{events:?}");
    assert!(events.iter().any(|e| (e.v6, u32::from_be_bytes(e.v4)) == (sub6, first)));
    assert_eq!(h.count(Counter::NatBlockReleased), 8);
    assert!(h.tables.nat.as_ref().unwrap().held_blocks().is_empty());
    // Every block free again: the late subscriber is mapped.
    assert_eq!(h.run(&late).action, XDP_PASS);
}

both!(
    stateful_nat64_port_blocks_and_bib_events,
    stateful_nat64_dynamic_port_blocks,
    stateful_nat64_pool_fills_before_refusing,
    stateful_nat64_cgn_limits,
    stateful_nat64_own_address_in_pool4,
);
