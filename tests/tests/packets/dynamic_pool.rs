//! The dynamic pool (a pool address a host): allocation, reuse, expiry, exhaustion, the
//! state file.

use std::net::Ipv4Addr;

use nat64_common::counters::Counter;
use nat64_tests::{
    pin_to_cpu,
    xdp::{Harness, Kind, R4, R6, XDP_PASS},
};

use crate::common::{
    back, both, dropped, icmp4_err, icmp6_err, in4, in6, replied, run_table, tcp, udp, want4, want6, xlat,
};

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
    let swept = pool::sweep(&mut h.tables, &spec, pool::mono_now(), nat64_ctl::sys::unix_now()).unwrap();
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
    assert_eq!(pool::save(&h.tables, &spec, &file, nat64_ctl::sys::unix_now()).unwrap(), 3);
    assert_eq!(pool::flush(&mut h.tables).unwrap(), 3);
    assert!(held(&h).is_empty());
    let r = pool::restore(&mut h.tables, &spec, &file, nat64_ctl::sys::unix_now()).unwrap();
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
    let r = pool::restore(&mut h.tables, &spec, &file, nat64_ctl::sys::unix_now()).unwrap();
    assert_eq!(r, pool::Restored::default());
    assert!(!file.exists() && file.with_extension("bad").exists(), "moved aside");
    assert_eq!(held(&h).len(), 1, "what was held stays");
    let _ = std::fs::remove_dir_all(&dir);
}

both!(dynamic_pool_allocation_reuse_expiry_exhaustion);
