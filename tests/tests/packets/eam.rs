//! The EAM table (RFC 7757): unequal suffixes, longest-prefix match, bulk loads, the
//! per-CPU address memo, and IPv4-translatable destinations.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{V4Opts, V6Opts, ipv4, ipv6},
    xdp::{H4, H6, Harness, Kind, R4, R6, TEST_CONFIG},
};

use crate::common::{
    Case, both, echo, icmp4_err, icmp6_err, in4, in6, passed, prohibited4, prohibited6, run_table, tcp, udp,
    v4, v6, want4, want6, xlat,
};

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

/// A bulk load (`map add --file`) is seen by the data path all at once or not at all:
/// entries of the next EAMT generation are ignored until the configuration's
/// generation moves on; an overlap refuses the whole load and leaves nothing behind.
fn eamt_bulk_load_is_all_or_nothing(kind: Kind) {
    use nat64_ctl::config::{EamtEntry, Prefix4, Prefix6};
    let mut h = Harness::with(kind, TEST_CONFIG);
    let e = |i: u32| {
        let v4 = Prefix4::host(Ipv4Addr::from(0xc612_0000 + i)); // 198.18.x.y
        let v6 = Prefix6::host(Ipv6Addr::from(0x2001_0db8_0008_0000_0000_0000_0000_0000u128 + i as u128));
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

both!(
    eam_with_unequal_suffixes,
    ipv4_translatable_destinations,
    address_memo_follows_table_changes,
    eamt_longest_prefix_match_both_ways,
    eamt_bulk_load_is_all_or_nothing,
);
