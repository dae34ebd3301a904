use std::{fmt, str::FromStr};

use crate::config::nat::{BibLog, BlockAssign, LogSink};

use super::*;

#[test]
fn mode_and_pref64_are_checked() {
    let eam = r#""eamt": [{"ipv4": "100.64.0.0/24", "ipv6": "2001:db8:c1a7::/120"}]"#;
    let clat = |extra: &str| without_pool6(&format!(r#"{eam}, "mode": "clat", {extra}"#));
    let c = clat(r#""pref64": "64:ff9b:1::/96""#).unwrap();
    assert_eq!((c.mode, c.pool6.map(|p| p.to_string())), (Mode::Clat, Some("64:ff9b:1::/96".into())));
    assert!(c.globals().flag(Globals::FLAG_CLAT));
    let a = clat(r#""pref64": "auto", "pref64-resolver": "2001:db8::53""#).unwrap();
    assert!(a.pref64_auto && a.pool6.is_none());
    assert_eq!(a.pref64_resolver, Some("2001:db8::53".parse().unwrap()));
    let siit = without_pool6(r#""pool6": "64:ff9b::/96""#).unwrap();
    assert_eq!(siit.mode, Mode::Siit);
    assert!(!siit.globals().flag(Globals::FLAG_CLAT));
    assert_eq!(with(r#""mode": "siit""#).unwrap().mode, Mode::Siit);
    for (cfg, msg) in [
        (with(r#""mode": "nat46""#), r#"mode: "nat46": must be "siit", "clat" or "nat64""#),
        (with(r#""mode": 1"#), "mode: invalid type"),
        (with(r#""pref64": "64:ff9b::/96""#), "pool6, pref64: two names for the same prefix"),
        (without_pool6(r#""pref64": "64:ff9b::/95""#), "pref64: \"64:ff9b::/95\": length 95 is not one of"),
        (
            without_pool6(r#""mode": "clat", "pref64": "auto""#),
            "eamt: mode \"clat\" maps its local IPv4 clients",
        ),
        (clat(r#""eamt2": 1"#), "unknown field `eamt2`"),
        (without_pool6(&format!(r#"{eam}, "mode": "clat""#)), "pref64: mode \"clat\" needs the PLAT prefix"),
        (with(r#""pref64-resolver": "192.0.2.53""#), "pref64-resolver: only used with"),
        (
            clat(r#""pref64": "auto", "pref64-resolver": "dns""#),
            "pref64-resolver: \"dns\": not an IPv4 or IPv6 address",
        ),
    ] {
        let err = cfg.unwrap_err().to_string();
        assert!(err.contains(msg), "{msg}: {err}");
    }
}

#[test]
fn dynamic_pool_is_checked() {
    let ok = with(r#""dynamic-pool": "10.64.0.0/24""#).unwrap();
    let d = ok.dynamic_pool.clone().unwrap();
    assert_eq!((d.prefix, d.lease), (p4("10.64.0.0/24"), DEFAULT_POOL_LEASE));
    assert_eq!(d.state_file, Path::new("/var/lib/nat64/default.pool.json"));
    assert_eq!(ok.masquerade, None);
    let g = ok.globals();
    assert!(
        g.flag(Globals::FLAG_DYNAMIC_POOL) && g.in_dyn_pool([10, 64, 0, 9]) && !g.in_dyn_pool([10, 64, 1, 0])
    );
    assert_eq!((g.dyn_pool_len, g.dyn_pool_lease), (24, 7200));

    let ok = with(
        r#""dynamic-pool": "10.64.0.0/16", "dynamic-pool-lease": 60, "state-file": "/tmp/p.json",
           "masquerade": {"interface": "wan0"}"#,
    )
    .unwrap();
    assert_eq!(ok.dynamic_pool.as_ref().map(|d| d.lease), Some(60));
    assert_eq!(ok.masquerade.as_deref(), Some("wan0"));
    // The kernel hands un-masqueraded replies to the general path: one is made.
    assert_eq!(ok.general_path.map(|g| g.interface), Some("nat64gp".to_string()));

    for (extra, msg) in [
        (r#""dynamic-pool": "10.64.0.0/15""#, "dynamic-pool: \"10.64.0.0/15\": at most 65536 addresses"),
        (r#""dynamic-pool": "10.64.0.1/24""#, "dynamic-pool: \"10.64.0.1/24\": host bits are set"),
        (r#""dynamic-pool": "2001:db8::/120""#, "that is an IPv6 address"),
        (r#""dynamic-pool": "127.0.0.0/24""#, "is in a range that is never translated"),
        (r#""dynamic-pool": 7"#, "dynamic-pool: invalid type: integer"),
        (
            r#""dynamic-pool": "10.64.0.0/24", "eamt": [{"ipv4": "10.64.0.5", "ipv6": "2001:db8::5"}]"#,
            "dynamic-pool: 10.64.0.0/24: overlaps eamt[0] (10.64.0.5/32 <-> 2001:db8::5/128)",
        ),
        (r#""dynamic-pool": "10.64.0.0/24", "dynamic-pool-lease": 0"#, "dynamic-pool-lease: 0: must be 1 to"),
        (r#""dynamic-pool": "10.64.0.0/24", "dynamic-pool-lease": "2h""#, "dynamic-pool-lease: invalid type"),
        (r#""dynamic-pool": "10.64.0.0/24", "state-file": """#, "state-file: \"\": empty path"),
        (r#""dynamic-pool-lease": 60"#, "dynamic-pool-lease: belongs to the dynamic pool"),
        (r#""masquerade": {"interface": "eth1"}"#, "masquerade: hides the dynamic pool"),
        (r#""dynamic-pool": "10.64.0.0/24", "masquerade": {"interface": "a/b"}"#, "masquerade.interface"),
        (r#""dynamic-pool": "10.64.0.0/24", "masquerade": {"iface": "x"}"#, "unknown field `iface`"),
        (
            r#""dynamic-pool": "10.64.0.0/24", "mode": "clat", "eamt": [{"ipv4": "192.0.0.1", "ipv6": "2001:db8::1"}]"#,
            "a CLAT maps its clients",
        ),
    ] {
        let err = with(extra).unwrap_err().to_string();
        assert!(err.contains(msg), "{extra}: {err}");
    }
    let err = without_pool6(
        r#""dynamic-pool": "10.64.0.0/24", "eamt": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("dynamic-pool: IPv6 hosts reach IPv4 through pool6"), "{err}");
}

#[test]
fn pool_lease_is_a_live_setting() {
    let mut g = with(r#""dynamic-pool": "10.64.0.0/24""#).unwrap().globals();
    apply_setting(&mut g, "dynamic-pool-lease", "30").unwrap();
    assert_eq!(g.dyn_pool_lease, 30);
    let before = g;
    assert!(
        apply_setting(&mut g, "dynamic-pool-lease", "-1").unwrap_err().to_string().contains("must be 1 to")
    );
    assert_eq!(g, before, "a refused setting changes nothing");
    let mut g = without_pool6(r#""pool6": "64:ff9b::/96""#).unwrap().globals();
    assert!(
        apply_setting(&mut g, "dynamic-pool-lease", "30")
            .unwrap_err()
            .to_string()
            .contains("no dynamic pool")
    );
}

#[test]
fn general_path_is_checked() {
    let ok = with(r#""general-path": {"interface": "nat64"}"#).unwrap();
    assert_eq!(ok.general_path, Some(GeneralPathConfig { interface: "nat64".into(), local: None }));
    let eam = r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:46::/120"}]"#;
    let ok = with(&format!(
        r#"{eam}, "general-path": {{"interface": "nat64", "ipv4-addr": "192.0.2.1", "ipv6-addr": "2001:db8:46::1"}}"#
    ))
    .unwrap();
    let local = ok.general_path.and_then(|g| g.local);
    assert_eq!(local, Some(("192.0.2.1".parse().unwrap(), "2001:db8:46::1".parse().unwrap())));
    for (v, msg) in [
        (r#""nat64""#, "general-path: invalid type: string"),
        ("true", "general-path: true: there is one unless the key is false"),
        (r#"{"interface": ""}"#, "general-path.interface: \"\": must be 1 to 14"),
        (r#"{"interface": "a-name-far-too-long"}"#, "must be 1 to 14"),
        (r#"{"interface": "bad/name"}"#, "must be 1 to 14"),
        (r#"{"interface": "eth0"}"#, "interfaces[0] names one of them"),
        (r#"{"ipv4-addr": "192.0.2.1"}"#, "general-path: missing field `interface`"),
        (r#"{"interface": "n", "mtu": 1}"#, "unknown field `mtu`"),
        (r#"{"interface": "n", "ipv4-addr": "192.0.2.1"}"#, "give both or neither"),
        (
            r#"{"interface": "n", "ipv4-addr": "192.0.2.x", "ipv6-addr": "2001:db8:46::1"}"#,
            "general-path.ipv4-addr: \"192.0.2.x\": not an IPv4",
        ),
        (
            r#"{"interface": "n", "ipv4-addr": "192.0.2.1", "ipv6-addr": "2001:db8:46::2"}"#,
            "maps general-path.ipv4-addr 192.0.2.1 to 2001:db8:46::1",
        ),
        (
            r#"{"interface": "n", "ipv4-addr": "192.0.3.1", "ipv6-addr": "2001:db8:46::1"}"#,
            "general-path.ipv4-addr: 192.0.3.1: no eamt entry covers it",
        ),
    ] {
        let err = with(&format!(r#"{eam}, "general-path": {v}"#)).unwrap_err().to_string();
        assert!(err.contains(msg), "{v}: {err}");
    }
}

/// Without the key nat64-ctl makes a general path of its own (RFC 7915 §4 needs one for
/// IPv4 without DF longer than lowest-ipv6-mtu), named after the instance so that two
/// instances in one namespace never share it; `false` goes without.
#[test]
fn general_path_is_made_unless_switched_off() {
    let name = |instance: &str| {
        with(&format!(r#""instance": "{instance}""#)).unwrap().general_path.map(|g| g.interface).unwrap()
    };
    let default = Config::from_json(MINIMAL).unwrap();
    assert_eq!(default.general_path.map(|g| g.interface).as_deref(), Some("nat64gp"));
    assert_eq!(name("edge-1"), "n64gp-edge-1");
    assert_eq!(name("lab12345"), "n64gp-lab12345");
    let (a, b) = (name("instance-one"), name("instance-two"));
    assert!(a.len() == 14 && b.len() == 14 && a.starts_with("n64gp-") && a != b, "{a} {b}");
    assert_eq!(a, name("instance-one"), "the same name on every start");
    assert_eq!(with(r#""general-path": false"#).unwrap().general_path, None);
    assert_err_contains(
        with(r#""general-path": false, "dynamic-pool": "10.64.0.0/24", "masquerade": {"interface": "wan0"}"#),
        "general-path: false: masquerade needs the general path",
    );
}

#[test]
fn live_settings_apply_and_refuse() {
    let mut g = Globals::zeroed();
    apply_setting(&mut g, "lowest-ipv6-mtu", "1400").unwrap();
    assert_eq!(g.lowest_ipv6_mtu, 1400);
    apply_setting(&mut g, "amend-udp-checksum-zero", "true").unwrap();
    apply_setting(&mut g, "zeroize-traffic-class", "on").unwrap();
    apply_setting(&mut g, "wkp-allow-non-global", "yes").unwrap();
    assert!(g.flag(Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO));
    assert!(g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS));
    assert!(g.flag(Globals::FLAG_WKP_ALLOW_NON_GLOBAL));
    apply_setting(&mut g, "zeroize-traffic-class", "false").unwrap();
    assert!(!g.flag(Globals::FLAG_ZEROIZE_TRAFFIC_CLASS));
    apply_setting(&mut g, "xdp-tcp-gro", "on").unwrap();
    assert!(g.flag(Globals::FLAG_XDP_TCP_GRO));
    apply_setting(&mut g, "xdp-tcp-gro", "off").unwrap();
    assert!(!g.flag(Globals::FLAG_XDP_TCP_GRO));
    apply_setting(&mut g, "icmp-errors-on-drop", "off").unwrap();
    assert!(g.flag(Globals::FLAG_NO_DROP_ERRORS));
    apply_setting(&mut g, "icmp-errors-on-drop", "on").unwrap();
    assert!(!g.flag(Globals::FLAG_NO_DROP_ERRORS));
    assert_err_contains(
        apply_setting(&mut g, "icmpv6-error-source", "router"),
        "icmpv6-error-source: belongs to stateful NAT64",
    );
    g.flags |= Globals::FLAG_STATEFUL;
    apply_setting(&mut g, "icmpv6-error-source", "inner-destination").unwrap();
    assert!(g.flag(Globals::FLAG_ICMP6_SOURCE_INNER));
    assert_err_contains(
        apply_setting(&mut g, "icmpv6-error-source", "server"),
        r#"icmpv6-error-source: "server": "router""#,
    );
    assert!(g.flag(Globals::FLAG_ICMP6_SOURCE_INNER), "a refused value changes nothing");
    apply_setting(&mut g, "icmpv6-error-source", "router").unwrap();
    assert!(!g.flag(Globals::FLAG_ICMP6_SOURCE_INNER));
    g.flags &= !Globals::FLAG_STATEFUL;
    apply_setting(&mut g, "rfc6791v4-prefix", "198.51.100.0/24").unwrap();
    assert_eq!((g.rfc6791v4, g.rfc6791v4_len), ([198, 51, 100, 0], 24));
    apply_setting(&mut g, "rfc6791v4-prefix", "none").unwrap();
    assert_eq!(g.rfc6791v4_len, 0);
    apply_setting(&mut g, "rfc6791v6-prefix", "2001:db8:f::/64").unwrap();
    assert_eq!(g.rfc6791v6_len, 64);

    let before = g;
    for (k, v, msg) in [
        ("lowest-ipv6-mtu", "1000", "must be between 1280"),
        ("lowest-ipv6-mtu", "lots", "not a number"),
        ("amend-udp-checksum-zero", "maybe", "expected true or false"),
        ("rfc6791v4-prefix", "127.0.0.0/8", "never translated"),
        ("rfc6791v4-prefix", "198.51.100.1/24", "host bits"),
        ("rfc6791v6-prefix", "ff02::/16", "multicast"),
        ("pool6", "64:ff9b::/96", "cannot be changed on a running instance"),
    ] {
        let err = apply_setting(&mut g, k, v).unwrap_err().to_string();
        assert!(err.contains(k) && err.contains(msg), "{k} {v}: {err}");
        assert_eq!(g, before, "a refused setting changes nothing");
    }
}

fn p4(s: &str) -> Prefix4 {
    s.parse().unwrap()
}

fn p6(s: &str) -> Prefix6 {
    s.parse().unwrap()
}

fn eam(v4: &str, v6: &str) -> EamtEntry {
    EamtEntry::new(p4(v4), p6(v6)).unwrap()
}

/// The full message of an error, context included.
fn err<T: fmt::Debug>(r: Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[track_caller]
fn assert_err_contains<T: fmt::Debug>(r: Result<T>, want: &str) {
    let msg = err(r);
    assert!(msg.contains(want), "error {msg:?} does not contain {want:?}");
}

const MINIMAL: &str = r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "pool6": "64:ff9b::/96"}"#;

/// MINIMAL with `extra` (a JSON fragment of keys) added.
fn with(extra: &str) -> Result<Config> {
    Config::from_json(&format!(
        r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "pool6": "64:ff9b::/96", {extra}}}"#
    ))
}

/// MINIMAL without pool6, with `extra` added.
fn without_pool6(extra: &str) -> Result<Config> {
    Config::from_json(&format!(r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], {extra}}}"#))
}

// --- Prefix parsing ---

#[test]
fn prefix4_parses_address_and_prefix() {
    assert_eq!(p4("192.0.2.1"), Prefix4::new(Ipv4Addr::new(192, 0, 2, 1), 32).unwrap());
    assert_eq!(p4("192.0.2.0/24"), Prefix4::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap());
    assert_eq!(p4("0.0.0.0/0"), Prefix4::new(Ipv4Addr::UNSPECIFIED, 0).unwrap());
    assert_eq!(p4("192.0.2.0/24").to_string(), "192.0.2.0/24");
    assert_eq!(p4("192.0.2.7").to_string(), "192.0.2.7/32");
    assert_eq!(format!("{:<15}|", p4("10.0.0.0/8")), "10.0.0.0/8     |");
}

#[test]
fn prefix6_parses_address_and_prefix() {
    assert_eq!(p6("2001:db8::1"), Prefix6::new("2001:db8::1".parse().unwrap(), 128).unwrap());
    assert_eq!(p6("64:ff9b::/96"), Prefix6::new("64:ff9b::".parse().unwrap(), 96).unwrap());
    assert_eq!(p6("::/0").prefix_len(), 0);
    assert_eq!(p6("2001:db8::/32").to_string(), "2001:db8::/32");
}

#[test]
fn prefix_not_an_address() {
    assert_err_contains("192.0.2.300".parse::<Prefix4>(), r#""192.0.2.300": not an IPv4 address"#);
    assert_err_contains(
        "192.0.2.300/24".parse::<Prefix4>(),
        r#""192.0.2.300/24": "192.0.2.300" is not an IPv4 address"#,
    );
    assert_err_contains("".parse::<Prefix4>(), r#""": not an IPv4 address"#);
    assert_err_contains("2001:db8::x".parse::<Prefix6>(), r#""2001:db8::x": not an IPv6 address"#);
}

#[test]
fn prefix_of_the_other_family() {
    assert_err_contains("2001:db8::/32".parse::<Prefix4>(), "(that is an IPv6 address)");
    assert_err_contains("192.0.2.0/24".parse::<Prefix6>(), "(that is an IPv4 address)");
}

#[test]
fn prefix_length_not_a_number() {
    assert_err_contains(
        "192.0.2.0/x".parse::<Prefix4>(),
        r#""192.0.2.0/x": prefix length "x" is not a number"#,
    );
    assert_err_contains("192.0.2.0/".parse::<Prefix4>(), r#"prefix length "" is not a number"#);
    assert_err_contains("2001:db8::/+32".parse::<Prefix6>(), r#"prefix length "+32" is not a number"#);
}

#[test]
fn prefix_length_too_long() {
    assert_err_contains(
        "192.0.2.0/33".parse::<Prefix4>(),
        r#""192.0.2.0/33": prefix length 33 is longer than 32"#,
    );
    assert_err_contains("192.0.2.0/4000".parse::<Prefix4>(), "prefix length 4000 is longer than 32");
    assert_err_contains("2001:db8::/129".parse::<Prefix6>(), "prefix length 129 is longer than 128");
}

#[test]
fn prefix_host_bits_set() {
    assert_err_contains(
        "192.0.2.1/24".parse::<Prefix4>(),
        r#""192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
    );
    assert_err_contains(
        "2001:db8::1/64".parse::<Prefix6>(),
        "host bits are set (did you mean 2001:db8::/64?)",
    );
    assert_err_contains("10.0.0.1/0".parse::<Prefix4>(), "did you mean 0.0.0.0/0?");
}

#[test]
fn prefix_contains_and_overlaps() {
    let a = p4("192.0.2.0/24");
    assert!(a.contains(&p4("192.0.2.128/25")));
    assert!(a.contains(&p4("192.0.2.77")));
    assert!(a.contains(&a));
    assert!(!a.contains(&p4("192.0.3.0/24")));
    assert!(!p4("192.0.2.128/25").contains(&a));
    assert!(p4("0.0.0.0/0").contains(&p4("255.255.255.255")));
    assert!(a.overlaps(&p4("192.0.0.0/16")));
    assert!(p4("192.0.0.0/16").overlaps(&a));
    assert!(!a.overlaps(&p4("192.0.3.0/24")));

    let b = p6("2001:db8::/32");
    assert!(b.contains(&p6("2001:db8:1::/48")));
    assert!(!b.contains(&p6("2001:db9::/48")));
    assert!(!p6("2001:db8:1::/48").contains(&b));
    assert!(p6("::/0").contains(&p6("ffff::1")));
    assert!(b.overlaps(&p6("2001:db8::1")));
    assert!(!p6("2001:db8::/120").overlaps(&p6("2001:db8::100/120")));
}

// --- EamtEntry ---

#[test]
fn eamt_entry_new_and_to_entry() {
    let e = eam("192.0.2.0/24", "2001:db8::/120");
    let raw = e.to_entry();
    assert_eq!(raw.v4, [192, 0, 2, 0]);
    assert_eq!((raw.v4_len, raw.v6_len), (24, 120));
    assert_eq!(raw.v6, Ipv6Addr::from_str("2001:db8::").unwrap().octets());
    assert_eq!(e.to_string(), "192.0.2.0/24 <-> 2001:db8::/120");
    assert!(EamtEntry::new(p4("0.0.0.0/0"), p6("2001:db8::/96")).is_ok());
    assert!(EamtEntry::new(p4("198.51.100.7"), p6("2001:db8::abcd")).is_ok());
}

#[test]
fn eamt_entry_suffix_lengths() {
    // RFC 7757 §3.2: a longer IPv6 suffix is fine (the IPv4 suffix follows the prefix).
    let e = EamtEntry::new(p4("198.51.100.0/24"), p6("2001:db8:1c6:3364::/72")).unwrap();
    assert_eq!(e.to_string(), "198.51.100.0/24 <-> 2001:db8:1c6:3364::/72");
    assert!(EamtEntry::new(p4("192.0.2.7"), p6("2001:db8::/64")).is_ok());
    assert_err_contains(
        EamtEntry::new(p4("192.0.2.0/24"), p6("2001:db8::/124")),
        "EAM 192.0.2.0/24 <-> 2001:db8::/124: the IPv4 suffix (8 bits) is longer than the IPv6 suffix \
         (4 bits); the IPv6 prefix must be /120 or shorter (RFC 7757 §3.2)",
    );
}

#[test]
fn eamt_entry_bad_side() {
    let bad4 = Prefix4::new(Ipv4Addr::new(192, 0, 2, 1), 24).unwrap();
    assert_err_contains(EamtEntry::new(bad4, p6("2001:db8::/120")), "IPv4 side: host bits are set");
    let bad6 = Prefix6::new("2001:db8::1".parse().unwrap(), 120).unwrap();
    assert_err_contains(
        EamtEntry::new(p4("192.0.2.0/24"), bad6),
        "IPv6 side: host bits are set (did you mean 2001:db8::/120?)",
    );
    assert_err_contains(
        Prefix6::new("2001:db8::".parse().unwrap(), 130),
        "prefix length 130 is longer than 128",
    );
}

#[test]
fn eamt_insert_accepts_disjoint() {
    let t = [eam("192.0.2.0/24", "2001:db8::/120"), eam("198.51.100.0/24", "2001:db8::100/120")];
    assert!(check_eamt_insert(&t, &eam("203.0.113.0/25", "2001:db8:1::/121")).is_ok());
    assert!(check_eamt_insert(&[], &t[0]).is_ok());
}

#[test]
fn eamt_insert_already_present() {
    let t = [eam("192.0.2.0/24", "2001:db8::/120")];
    assert_err_contains(
        check_eamt_insert(&t, &t[0]),
        "EAM 192.0.2.0/24 <-> 2001:db8::/120 is already present",
    );
}

#[test]
fn eamt_insert_ipv4_overlap() {
    let t = [eam("198.51.100.0/24", "2001:db8::100/120"), eam("192.0.2.0/24", "2001:db8::/120")];
    assert_err_contains(
        check_eamt_insert(&t, &eam("192.0.2.128/25", "2001:db8:1::/121")),
        "its IPv4 prefix 192.0.2.128/25 overlaps existing entry 192.0.2.0/24 <-> 2001:db8::/120",
    );
}

#[test]
fn eamt_insert_ipv6_overlap() {
    let t = [eam("192.0.2.0/24", "2001:db8::/120")];
    assert_err_contains(
        check_eamt_insert(&t, &eam("198.51.100.7", "2001:db8::7")),
        "its IPv6 prefix 2001:db8::7/128 overlaps existing entry 192.0.2.0/24 <-> 2001:db8::/120",
    );
}

// --- Config: valid files ---

const FULL: &str = r#"{
    "instance": "lab-1",
    "interfaces": [
        {"name": "eth0", "attach": "xdp"},
        {"name": "veth_b", "attach": "xdp-generic"}
    ],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "2001:db8:ffff::1",
    "pool6": "2001:db8:64::/96",
    "eamt": [
        {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:aaaa::/120"},
        {"ipv4": "203.0.113.5", "ipv6": "2001:db8:bbbb::5"}
    ],
    "denylist4": ["198.51.100.0/28", "203.0.113.128/25"],
    "wkp-allow-non-global": true,
    "amend-udp-checksum-zero": true,
    "zeroize-traffic-class": true,
    "lowest-ipv6-mtu": 1500
}"#;

#[test]
fn full_config_parses() {
    let c = Config::from_json(FULL).unwrap();
    assert_eq!(c.instance, "lab-1");
    assert_eq!(
        c.interfaces,
        vec![
            Interface { name: "eth0".into(), attach: AttachMode::Xdp },
            Interface { name: "veth_b".into(), attach: AttachMode::XdpGeneric },
        ]
    );
    assert_eq!(c.ipv4_addr, Some(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(c.ipv6_addr, Some("2001:db8:ffff::1".parse().unwrap()));
    assert_eq!(c.pool6, Some(p6("2001:db8:64::/96")));
    assert_eq!(
        c.eamt,
        vec![eam("192.0.2.0/24", "2001:db8:aaaa::/120"), eam("203.0.113.5", "2001:db8:bbbb::5")]
    );
    assert_eq!(c.denylist4, vec![p4("198.51.100.0/28"), p4("203.0.113.128/25")]);
    assert!(c.wkp_allow_non_global && c.amend_udp_checksum_zero && c.zeroize_traffic_class);
    assert_eq!(c.lowest_ipv6_mtu, 1500);
}

#[test]
fn minimal_config_takes_defaults() {
    let c = Config::from_json(MINIMAL).unwrap();
    assert_eq!(c.instance, "default");
    assert_eq!(c.ipv4_addr, None);
    assert_eq!(c.ipv6_addr, None);
    assert!(c.eamt.is_empty() && c.denylist4.is_empty());
    assert!(
        !c.wkp_allow_non_global && !c.amend_udp_checksum_zero && !c.zeroize_traffic_class && !c.xdp_tcp_gro
    );
    assert_eq!(c.lowest_ipv6_mtu, 1280);
}

#[test]
fn eamt_alone_is_enough() {
    let c = without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#).unwrap();
    assert_eq!(c.pool6, None);
    assert_eq!(c.globals().pool6_len, 0);
}

#[test]
fn every_pool6_length_is_accepted() {
    for p in ["2001:db8::/32", "2001:db8:100::/40", "2001:db8:122::/48", "2001:db8:122:300::/56"] {
        assert!(without_pool6(&format!(r#""pool6": "{p}""#)).is_ok(), "{p}");
    }
    for p in ["2001:db8:122:344::/64", "64:ff9b::/96", "64:ff9b:1::/96"] {
        assert!(without_pool6(&format!(r#""pool6": "{p}""#)).is_ok(), "{p}");
    }
}

#[test]
fn globals_of_full_config() {
    let g = Config::from_json(FULL).unwrap().globals();
    let mut want = Globals::zeroed();
    want.pool6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    want.pool6_len = 96;
    want.ipv4_addr = [198, 51, 100, 1];
    want.ipv6_addr = [0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    want.lowest_ipv6_mtu = 1500;
    want.flags = Globals::FLAG_ENABLED
        | Globals::FLAG_HAS_IPV4_ADDR
        | Globals::FLAG_HAS_IPV6_ADDR
        | Globals::FLAG_WKP_ALLOW_NON_GLOBAL
        | Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO
        | Globals::FLAG_ZEROIZE_TRAFFIC_CLASS;
    assert_eq!(g, want);
}

#[test]
fn globals_of_minimal_config() {
    let g = Config::from_json(MINIMAL).unwrap().globals();
    assert_eq!(g.flags, Globals::FLAG_ENABLED);
    assert_eq!(g.pool6, nat64_common::ranges::WKP);
    assert_eq!(g.pool6_len, 96);
    assert_eq!(g.ipv4_addr, [0; 4]);
    assert_eq!(g.ipv6_addr, [0; 16]);
    assert_eq!(g.lowest_ipv6_mtu, 1280);
    assert!(!g.has_ipv4_addr() && !g.has_ipv6_addr());
}

#[test]
fn each_flag_maps_to_its_bit() {
    for (key, flag) in [
        ("wkp-allow-non-global", Globals::FLAG_WKP_ALLOW_NON_GLOBAL),
        ("amend-udp-checksum-zero", Globals::FLAG_AMEND_UDP_CHECKSUM_ZERO),
        ("zeroize-traffic-class", Globals::FLAG_ZEROIZE_TRAFFIC_CLASS),
        ("xdp-tcp-gro", Globals::FLAG_XDP_TCP_GRO),
    ] {
        let g = with(&format!(r#""{key}": true"#)).unwrap().globals();
        assert_eq!(g.flags, Globals::FLAG_ENABLED | flag, "{key}");
    }
    // On unless switched off: the bit says off.
    let g = with(r#""icmp-errors-on-drop": false"#).unwrap().globals();
    assert_eq!(g.flags, Globals::FLAG_ENABLED | Globals::FLAG_NO_DROP_ERRORS);
    let g = with(r#""icmp-errors-on-drop": true"#).unwrap().globals();
    assert_eq!(g.flags, Globals::FLAG_ENABLED);
    assert!(with(r#""icmp-errors-on-drop": "no""#).unwrap_err().to_string().contains("icmp-errors-on-drop"));
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("nat64-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    let bad = dir.join("bad.json");
    std::fs::write(&good, FULL).unwrap();
    std::fs::write(&bad, r#"{"interfaces": []}"#).unwrap();
    assert_eq!(Config::load(&good).unwrap(), Config::from_json(FULL).unwrap());
    let msg = err(Config::load(&bad));
    assert!(msg.starts_with(&format!("config file {}: interfaces:", bad.display())), "{msg}");
    let missing = dir.join("missing.json");
    assert_err_contains(Config::load(&missing), &format!("reading config file {}", missing.display()));
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Config: serde errors ---

#[test]
fn unknown_key_is_named_with_position() {
    assert_err_contains(with(r#""pool5": "x""#), "unknown field `pool5`");
    assert_err_contains(with(r#""pool5": "x""#), "at line 1 column");
    assert_err_contains(
        Config::from_json(r#"{"interfaces": [{"name": "eth0", "attach": "xdp", "mtu": 9000}]}"#),
        "interfaces[0]: unknown field `mtu`",
    );
    assert_err_contains(
        without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120", "x": 1}]"#),
        "eamt[0]: unknown field `x`",
    );
}

#[test]
fn missing_key_is_named() {
    assert_err_contains(Config::from_json(r#"{"pool6": "64:ff9b::/96"}"#), "missing field `interfaces`");
    assert_err_contains(
        Config::from_json(r#"{"interfaces": [{"name": "eth0"}], "pool6": "64:ff9b::/96"}"#),
        "interfaces[0]: missing field `attach`",
    );
    assert_err_contains(
        without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24"}]"#),
        "eamt[0]: missing field `ipv6`",
    );
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let json = "{\n  \"interfaces\": [{\"name\": \"eth0\", \"attach\": \"xdp\"}],\n  \"pool6\": \"64:ff9b::/96\",\n  \
                \"lowest-ipv6-mtu\": \"1500\"\n}";
    let msg = err(Config::from_json(json));
    assert!(msg.starts_with("lowest-ipv6-mtu: invalid type: string \"1500\""), "{msg}");
    assert!(msg.ends_with("at line 4 column 27"), "{msg}");
    // Once, not once per wrapping level.
    assert_eq!(msg.matches(" at line ").count(), 1, "{msg}");

    for (extra, want) in [
        (r#""instance": 5"#, "instance: invalid type: integer `5`"),
        (r#""ipv4-addr": [1]"#, "ipv4-addr: invalid type: sequence"),
        (r#""ipv6-addr": 1"#, "ipv6-addr: invalid type"),
        (r#""wkp-allow-non-global": "yes""#, "wkp-allow-non-global: invalid type: string \"yes\""),
        (r#""amend-udp-checksum-zero": 1"#, "amend-udp-checksum-zero: invalid type"),
        (r#""zeroize-traffic-class": null"#, "zeroize-traffic-class: invalid type: null"),
        (r#""lowest-ipv6-mtu": -1"#, "lowest-ipv6-mtu: invalid value: integer `-1`"),
        (
            r#""denylist4": "192.0.2.0/24""#,
            "denylist4: invalid type: string \"192.0.2.0/24\", expected a list",
        ),
        (r#""denylist4": ["192.0.2.0/24", 7]"#, "denylist4[1]: invalid type: integer `7`"),
        (r#""eamt": {}"#, "eamt: invalid type: map, expected a list"),
        (r#""eamt": [{"ipv4": 1, "ipv6": "2001:db8::/120"}]"#, "eamt[0].ipv4: invalid type: integer `1`"),
        (r#""eamt": ["192.0.2.0/24"]"#, "eamt[0]: invalid type: string \"192.0.2.0/24\", expected an object"),
    ] {
        let msg = err(with(extra));
        assert!(msg.starts_with(want), "{extra}: {msg:?} does not start with {want:?}");
        assert!(msg.contains(" at line 1 column "), "{extra}: {msg}");
    }
    for (json, want) in [
        (r#"{"interfaces": "eth0", "pool6": "64:ff9b::/96"}"#, "interfaces: invalid type: string \"eth0\""),
        (
            r#"{"interfaces": [{"name": 0, "attach": "xdp"}]}"#,
            "interfaces[0].name: invalid type: integer `0`",
        ),
        (
            r#"{"interfaces": [{"name": "a", "attach": "xdp"}, {"name": "b", "attach": true}]}"#,
            "interfaces[1].attach: invalid type: boolean `true`",
        ),
        (r#"{"interfaces": [], "pool6": 96}"#, "pool6: invalid type: integer `96`"),
        ("5", "invalid type: integer `5`, expected a JSON object of nat64 settings"),
    ] {
        let msg = err(Config::from_json(json));
        assert!(msg.starts_with(want), "{json}: {msg:?} does not start with {want:?}");
    }
}

#[test]
fn syntax_error_has_position() {
    assert_err_contains(Config::from_json("{\"interfaces\": [,]}"), "at line 1 column 17");
}

// --- Config: validation errors, one per message ---

#[test]
fn bad_instance() {
    for name in ["", "Lab", "a b", "x/y", "a.b", "abcdefghijklmnopqrstuvwxyz0123456"] {
        assert_err_contains(
            with(&format!(r#""instance": "{name}""#)),
            &format!("instance: {name:?}: must be 1 to 32 characters from a-z, 0-9, '_' and '-'"),
        );
    }
    assert!(with(r#""instance": "abcdefghijklmnopqrstuvwxyz012345""#).is_ok());
}

#[test]
fn no_interfaces() {
    assert_err_contains(
        Config::from_json(r#"{"interfaces": [], "pool6": "64:ff9b::/96"}"#),
        "interfaces: []: the list is empty; name at least one interface to attach to",
    );
}

fn iface(name: &str, attach: &str) -> Result<Config> {
    Config::from_json(&format!(
        r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}, {{"name": "{name}", "attach": "{attach}"}}],
            "pool6": "64:ff9b::/96"}}"#
    ))
}

#[test]
fn interface_name_length() {
    assert_err_contains(
        iface("", "xdp"),
        r#"interfaces[1].name: "": must be 1 to 15 bytes long (Linux IFNAMSIZ)"#,
    );
    assert_err_contains(
        iface("abcdefghijklmnop", "xdp"),
        r#""abcdefghijklmnop": must be 1 to 15 bytes long"#,
    );
    assert!(iface("abcdefghijklmno", "xdp").is_ok());
}

#[test]
fn interface_name_characters() {
    for name in ["a/b", "eth0:1", "eth 0", "eth\\t0"] {
        assert_err_contains(iface(name, "xdp"), "must not contain '/', ':' or whitespace");
    }
}

#[test]
fn interface_name_dots() {
    assert_err_contains(iface("..", "xdp"), r#"interfaces[1].name: "..": is not a valid interface name"#);
    assert_err_contains(iface(".", "xdp"), "is not a valid interface name");
}

#[test]
fn interface_listed_twice() {
    assert_err_contains(
        iface("eth0", "xdp-generic"),
        r#"interfaces[1].name: "eth0": listed twice (also interfaces[0])"#,
    );
}

#[test]
fn attach_mode_unsupported() {
    assert_err_contains(
        Config::from_json(r#"{"interfaces": [{"name": "eth0", "attach": "tcx"}], "pool6": "64:ff9b::/96"}"#),
        r#"interfaces[0].attach: "tcx" is not supported (use "xdp", "xdp-generic" or "tc")"#,
    );
    assert_err_contains(iface("eth1", "XDP"), r#"interfaces[1].attach: "XDP" is not supported"#);
    let tc =
        Config::from_json(r#"{"interfaces": [{"name": "wg0", "attach": "tc"}], "pool6": "64:ff9b::/96"}"#);
    assert_eq!(tc.unwrap().interfaces[0].attach, AttachMode::Tc);
}

#[test]
fn pool6_unparsable() {
    assert_err_contains(
        without_pool6(r#""pool6": "64:ff9b::/96x""#),
        r#"pool6: "64:ff9b::/96x": prefix length"#,
    );
    assert_err_contains(
        without_pool6(r#""pool6": "64:ff9b::1/96""#),
        r#"pool6: "64:ff9b::1/96": host bits are set (did you mean 64:ff9b::/96?)"#,
    );
}

#[test]
fn pool6_bad_length() {
    assert_err_contains(
        without_pool6(r#""pool6": "64:ff9b::/80""#),
        r#"pool6: "64:ff9b::/80": length 80 is not one of 32, 40, 48, 56, 64, 96 (RFC 6052)"#,
    );
    assert_err_contains(without_pool6(r#""pool6": "64:ff9b::""#), "length 128 is not one of");
}

#[test]
fn ipv4_translatable_is_checked() {
    let c = with(r#""ipv4-translatable": ["0.0.0.0/0", "192.0.2.0/24"]"#).unwrap();
    assert_eq!(c.ipv4_translatable, vec![p4("0.0.0.0/0"), p4("192.0.2.0/24")]);
    assert!(c.globals().flag(Globals::FLAG_IPV4_TRANSLATABLE));
    assert!(
        !Config::from_json(MINIMAL).unwrap().globals().flag(Globals::FLAG_IPV4_TRANSLATABLE),
        "off by default"
    );
    for (cfg, msg) in [
        (
            with(r#""ipv4-translatable": ["192.0.2.1/24"]"#),
            r#"ipv4-translatable[0]: "192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
        ),
        (
            with(r#""ipv4-translatable": ["10.0.0.0/8", "10.0.0.0/8"]"#),
            "ipv4-translatable[1]: 10.0.0.0/8 is ipv4-translatable[0] again",
        ),
        (
            with(r#""ipv4-translatable": "0.0.0.0/0""#),
            r#"ipv4-translatable: invalid type: string "0.0.0.0/0", expected a list"#,
        ),
        (
            without_pool6(
                r#""eamt": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}], "ipv4-translatable": ["0.0.0.0/0"]"#,
            ),
            "ipv4-translatable: its addresses are reached through pool6, which is not set",
        ),
        (
            without_pool6(
                r#""mode": "clat", "pref64": "64:ff9b::/96", "eamt": [{"ipv4": "192.0.0.1", "ipv6": "2001:db8::1"}],
                "ipv4-translatable": ["0.0.0.0/0"]"#,
            ),
            r#"ipv4-translatable: not in mode "clat""#,
        ),
    ] {
        assert_err_contains(cfg, msg);
    }
    assert_eq!(parse_ipv4_translatable("none").unwrap(), vec![]);
    assert_eq!(
        parse_ipv4_translatable("10.0.0.0/8, 1.2.3.4").unwrap(),
        vec![p4("10.0.0.0/8"), p4("1.2.3.4/32")]
    );
    assert_err_contains(parse_ipv4_translatable("10.0.0.0/8,x"), r#"ipv4-translatable[1]: "x""#);
}

#[test]
fn pool6_u_octet_set() {
    assert_err_contains(
        without_pool6(r#""pool6": "2001:db8:0:0:ff00::/96""#),
        r#"pool6: "2001:db8:0:0:ff00::/96": bits 64 to 71 (the u-octet) must be zero (RFC 6052 §2.2)"#,
    );
}

#[test]
fn eamt_entry_unparsable() {
    assert_err_contains(
        without_pool6(r#""eamt": [{"ipv4": "192.0.2.300/24", "ipv6": "2001:db8::/120"}]"#),
        r#"eamt[0].ipv4: "192.0.2.300/24": "192.0.2.300" is not an IPv4 address"#,
    );
    assert_err_contains(
        without_pool6(r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::1/120"}]"#),
        r#"eamt[0].ipv6: "2001:db8::1/120": host bits are set (did you mean 2001:db8::/120?)"#,
    );
}

#[test]
fn eamt_entry_suffix_mismatch_in_config() {
    assert_err_contains(
        with(
            r#""eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}, {"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:1::/126"}]"#,
        ),
        "eamt[1]: EAM 198.51.100.0/24 <-> 2001:db8:1::/126: the IPv4 suffix (8 bits) is longer than the \
         IPv6 suffix (2 bits)",
    );
}

#[test]
fn eamt_overlap_in_config_names_the_index() {
    let base = r#"{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:9::/120"}, {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}"#;
    assert_err_contains(
        with(&format!(r#""eamt": [{base}, {{"ipv4": "192.0.2.8/29", "ipv6": "2001:db8:1::/125"}}]"#)),
        "eamt[2]: EAM 192.0.2.8/29 <-> 2001:db8:1::/125: its IPv4 prefix 192.0.2.8/29 overlaps eamt[1] \
         (192.0.2.0/24 <-> 2001:db8::/120)",
    );
    assert_err_contains(
        with(&format!(r#""eamt": [{base}, {{"ipv4": "203.0.113.0/24", "ipv6": "2001:db8:9::/120"}}]"#)),
        "eamt[2]: EAM 203.0.113.0/24 <-> 2001:db8:9::/120: its IPv6 prefix 2001:db8:9::/120 overlaps eamt[0]",
    );
    assert_err_contains(
        with(&format!(r#""eamt": [{base}, {{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}}]"#)),
        "eamt[2]: EAM 192.0.2.0/24 <-> 2001:db8::/120 is already present (eamt[1] (",
    );
}

#[test]
fn nothing_to_translate() {
    assert_err_contains(
        Config::from_json(r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "eamt": []}"#),
        "pool6, eamt: neither is set, so nothing would be translated",
    );
}

#[test]
fn denylist4_unparsable() {
    assert_err_contains(
        with(r#""denylist4": ["10.0.0.0/8", "192.0.2.1/24"]"#),
        r#"denylist4[1]: "192.0.2.1/24": host bits are set (did you mean 192.0.2.0/24?)"#,
    );
}

#[test]
fn ipv4_addr_unparsable() {
    assert_err_contains(
        with(r#""ipv4-addr": "192.0.2.300""#),
        r#"ipv4-addr: "192.0.2.300": not an IPv4 address"#,
    );
    assert_err_contains(
        with(r#""ipv4-addr": "192.0.2.1/32""#),
        "not an IPv4 address (give the address alone, without a prefix length)",
    );
    assert_err_contains(
        with(r#""ipv4-addr": "2001:db8::1""#),
        "not an IPv4 address (that is an IPv6 address)",
    );
}

#[test]
fn ipv4_addr_reserved() {
    for a in ["0.1.2.3", "127.0.0.1", "169.254.0.1", "224.0.0.1", "255.255.255.255"] {
        assert_err_contains(
            with(&format!(r#""ipv4-addr": "{a}""#)),
            &format!("ipv4-addr: {a:?}: is in a range that is never translated"),
        );
    }
}

#[test]
fn ipv4_addr_inside_eam() {
    assert_err_contains(
        with(r#""ipv4-addr": "192.0.2.1", "eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#),
        r#"ipv4-addr: "192.0.2.1": is inside eamt[0] (192.0.2.0/24 <-> 2001:db8::/120); the translator's own address cannot be mapped"#,
    );
}

#[test]
fn ipv6_addr_unparsable() {
    assert_err_contains(
        with(r#""ipv6-addr": "2001:db8::g""#),
        r#"ipv6-addr: "2001:db8::g": not an IPv6 address"#,
    );
    assert_err_contains(with(r#""ipv6-addr": "192.0.2.1""#), "not an IPv6 address (that is an IPv4 address)");
}

#[test]
fn ipv6_addr_inside_pool6_is_accepted() {
    let c = with(r#""ipv6-addr": "64:ff9b::c000:201""#).unwrap();
    assert_eq!(c.ipv6_addr, Some("64:ff9b::c000:201".parse().unwrap()));
}

#[test]
fn ipv6_addr_inside_eam() {
    assert_err_contains(
        with(r#""ipv6-addr": "2001:db8::ff", "eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/120"}]"#),
        r#"ipv6-addr: "2001:db8::ff": is inside eamt[0] (192.0.2.0/24 <-> 2001:db8::/120)"#,
    );
}

#[test]
fn lowest_ipv6_mtu_out_of_range() {
    for mtu in [0u64, 1279, 65536, 1 << 40] {
        assert_err_contains(
            with(&format!(r#""lowest-ipv6-mtu": {mtu}"#)),
            &format!(
                "lowest-ipv6-mtu: {mtu}: must be between 1280 (the IPv6 minimum, RFC 8200 §5) and 65535"
            ),
        );
    }
    assert_eq!(with(r#""lowest-ipv6-mtu": 65535"#).unwrap().lowest_ipv6_mtu, 65535);
    assert_eq!(with(r#""lowest-ipv6-mtu": 1280"#).unwrap().lowest_ipv6_mtu, 1280);
}

/// Mode "nat64": pool4 (ports, overlaps, size), filtering and the lifetimes, each
/// refusal naming its key; its keys refused in the other modes, and the SIIT keys in it.
#[test]
fn nat64_mode_is_checked() {
    let nat = |extra: &str| {
        Config::from_json(&format!(
            r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "mode": "nat64", "pool6": "64:ff9b::/96"{extra}}}"#
        ))
    };
    let ok =
        nat(r#", "pool4": [{"prefix": "203.0.113.8/30", "ports": "2000-2999"}, {"prefix": "198.51.100.9"}],
        "filtering": "endpoint-independent", "udp-timeout": 600"#)
        .unwrap();
    assert_eq!(ok.mode, Mode::Nat64);
    assert!(ok.globals().flag(Globals::FLAG_STATEFUL));
    let n = ok.nat64.unwrap();
    assert_eq!(n.filtering, crate::config::nat::Filtering::EndpointIndependent);
    assert_eq!(n.timeouts.udp, 600);
    assert_eq!(n.timeouts.tcp_established, 7440);
    let slots = n.slots();
    assert_eq!(slots.len(), 5);
    assert_eq!(slots[0], ("203.0.113.8".parse().unwrap(), 2000, 2999));
    assert_eq!(slots[4], ("198.51.100.9".parse().unwrap(), 1024, 65535));
    let with_bib = nat(r#", "pool4": [{"prefix": "203.0.113.8"}],
        "bib": [{"protocol": "tcp", "ipv6": "[2001:db8::10]:443", "ipv4": "203.0.113.8:443"}]"#)
    .unwrap();
    let b = with_bib.nat64.unwrap().bib[0];
    assert_eq!((b.proto, b.v6.port(), b.v4.to_string()), (6, 443, "203.0.113.8:443".to_string()));
    for (extra, msg) in [
        ("", "pool4: mode \"nat64\" needs the IPv4 addresses"),
        (r#", "pool4": [{"prefix": "203.0.113.8/33"}]"#, "pool4[0].prefix"),
        (
            r#", "pool4": [{"prefix": "127.0.0.1"}]"#,
            "pool4[0].prefix: 127.0.0.1/32: in a range that is never translated",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8", "ports": "9-1"}]"#,
            "pool4[0].ports: \"9-1\": the range runs backwards",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8", "ports": "1-70000"}]"#,
            "pool4[0].ports: \"1-70000\": \"70000\" is not a port",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8/30"}, {"prefix": "203.0.113.9"}]"#,
            "pool4[1].prefix: 203.0.113.9/32: overlaps pool4[0]",
        ),
        (r#", "pool4": [{"prefix": "10.0.0.0/23"}]"#, "pool4: 512 addresses; at most 256"),
        (r#", "pool4": [{"prefix": "203.0.113.8", "port": "1"}]"#, "unknown field `port`"),
        (r#", "pool4": [{"prefix": "203.0.113.8"}], "filtering": "open""#, "filtering: \"open\""),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "udp-timeout": 60"#,
            "udp-timeout: 60: at least 120 seconds",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "tcp-established-timeout": 600"#,
            "tcp-established-timeout: 600: at least 7440",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "eamt": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]"#,
            "eamt: not used in mode \"nat64\"",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "bib": [{"protocol": "sctp", "ipv6": "[2001:db8::1]:1", "ipv4": "203.0.113.8:1"}]"#,
            "bib[0].protocol: \"sctp\": tcp, udp or icmp",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "bib": [{"protocol": "tcp", "ipv6": "2001:db8::1", "ipv4": "203.0.113.8:1"}]"#,
            "bib[0].ipv6: \"2001:db8::1\": not [IPV6]:PORT",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "bib": [{"protocol": "tcp", "ipv6": "[2001:db8::1]:1", "ipv4": "203.0.113.9:1"}]"#,
            "bib[0].ipv4: 203.0.113.9:1: not a pool4 address",
        ),
        (
            r#", "pool4": [{"prefix": "203.0.113.8"}], "bib": [{"protocol": "tcp", "ipv6": "[2001:db8::1]:1", "ipv4": "203.0.113.8:1"}, {"protocol": "tcp", "ipv6": "[2001:db8::2]:1", "ipv4": "203.0.113.8:1"}]"#,
            "bib[1]: tcp [2001:db8::2]:1 <-> 203.0.113.8:1: bib[0] maps one of them already",
        ),
    ] {
        let err = nat(extra).unwrap_err().to_string();
        assert!(err.contains(msg), "{extra}: {err}");
    }
    assert_err_contains(with(r#""pool4": [{"prefix": "203.0.113.8"}]"#), "pool4: belongs to stateful NAT64");
    assert_err_contains(with(r#""icmp-timeout": 30"#), "icmp-timeout: belongs to stateful NAT64");
    assert_err_contains(
        with(r#""bib": [{"protocol": "tcp", "ipv6": "[::1]:1", "ipv4": "192.0.2.1:1"}]"#),
        "bib: belongs to stateful NAT64",
    );
    assert_err_contains(with(r#""mode": "napt""#), "mode: \"napt\": must be \"siit\", \"clat\" or \"nat64\"");
}

/// A mode "nat64" file with pool4 203.0.113.8/31, with `extra` (", KEY: VALUE...") added.
fn nat(extra: &str) -> Result<Config> {
    Config::from_json(&format!(
        r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "mode": "nat64", "pool6": "64:ff9b::/96",
        "pool4": [{{"prefix": "203.0.113.8/31"}}]{extra}}}"#
    ))
}

/// RFC 7422 port blocks and `bib-log`: the settings, the block arithmetic both ways
/// (host -> address and ports, IPv4 transport address -> subnet), and every refusal.
#[test]
fn nat64_port_blocks_and_bib_log_are_checked() {
    let ok =
        nat(r#", "port-block-size": 2048, "port-block-prefix": "2001:db8:100::/59", "bib-log": "stdout""#)
            .unwrap()
            .nat64
            .unwrap();
    assert_eq!(ok.nat_log, vec![LogSink::Json(BibLog::Stdout)]);
    let b = ok.port_blocks.expect("port blocks");
    assert_eq!((b.size, b.per_addr), (2048, 31));
    assert!(matches!(b.assign, BlockAssign::Prefix { host_len: 64, .. }));
    let slots = ok.slots();
    let host = |s: &str| b.of_host(s.parse().unwrap(), &slots);
    assert_eq!(host("2001:db8:100::1"), Some(("203.0.113.8".parse().unwrap(), 1024, 3071)));
    assert_eq!(host("2001:db8:100:1e::1"), Some(("203.0.113.8".parse().unwrap(), 62464, 64511)));
    assert_eq!(host("2001:db8:100:1f::1"), Some(("203.0.113.9".parse().unwrap(), 1024, 3071)));
    assert_eq!(host("2001:db8:200::1"), None, "outside the prefix");
    let port = |a: &str, p: u16| b.of_port(a.parse().unwrap(), p, &slots).map(|x| x.to_string());
    assert_eq!(port("203.0.113.8", 1024), Some("2001:db8:100::/64".into()));
    assert_eq!(port("203.0.113.9", 3071), Some("2001:db8:100:1f::/64".into()));
    assert_eq!(port("203.0.113.9", 1023), None, "below the pool4 ports");
    assert_eq!(port("203.0.113.9", 65535), None, "past the last whole block");
    assert_eq!(port("203.0.113.7", 2000), None, "not a pool4 address");
    for i in 0..32u32 {
        let a: std::net::Ipv6Addr = format!("2001:db8:100:{i:x}::7").parse().unwrap();
        let (v4, first, last) = b.of_host(a, &slots).expect("every /64 has a block");
        for p in [first, last] {
            let want: std::net::Ipv6Addr = format!("2001:db8:100:{i:x}::").parse().unwrap();
            assert_eq!(b.of_port(v4, p, &slots).unwrap().to_string(), format!("{want}/64"));
        }
    }
    // Without a prefix: blocks taken as subscribers need them, 4 a subscriber by default.
    let dynamic = nat(r#", "port-block-size": 512"#).unwrap();
    let d = dynamic.nat64.as_ref().unwrap().port_blocks.unwrap();
    assert_eq!((d.size, d.per_addr, d.assign), (512, 126, BlockAssign::Dynamic { per_host: 4 }));
    assert_eq!(dynamic.nat_sizes().1, 252, "one entry a block in the block maps");
    assert_eq!(
        d.block(126, &dynamic.nat64.as_ref().unwrap().slots()),
        Some(("203.0.113.9".parse().unwrap(), 1024, 1535))
    );
    assert_eq!(d.of_host("2001:db8::1".parse().unwrap(), &slots), None, "no block from the configuration");
    let err = crate::cli::nat::port_block_line(&d, &slots, "203.0.113.8:1024").unwrap_err().to_string();
    assert!(err.contains("dynamic port blocks are handed out as subscribers need them"), "{err}");
    let eight = nat(r#", "port-block-size": 512, "port-blocks-per-host": 8"#).unwrap().nat64.unwrap();
    assert_eq!(eight.port_blocks.unwrap().assign, BlockAssign::Dynamic { per_host: 8 });
    let log = nat(r#", "bib-log": "/tmp/nat64-bib.jsonl""#).unwrap().nat64.unwrap();
    assert_eq!(log.nat_log, vec![LogSink::Json(BibLog::File("/tmp/nat64-bib.jsonl".into()))]);
    for (extra, msg) in [
        (r#", "port-block-prefix": "2001:db8::/56""#, "port-block-size: port-block-prefix needs the ports"),
        (r#", "port-block-host-length": 64"#, "port-block-host-length: goes with port-block-size"),
        (r#", "port-blocks-per-host": 2"#, "port-blocks-per-host: goes with port-block-size"),
        (
            r#", "port-block-size": 2048, "port-block-host-length": 64"#,
            "port-block-host-length: goes with port-block-prefix",
        ),
        (
            r#", "port-block-size": 2048, "port-block-prefix": "2001:db8::/60", "port-blocks-per-host": 2"#,
            "port-blocks-per-host: goes with dynamic port blocks",
        ),
        (r#", "port-block-size": 2048, "port-blocks-per-host": 9"#, "port-blocks-per-host: 9: from 1 to 8"),
        (r#", "port-block-size": 2048, "port-blocks-per-host": 0"#, "port-blocks-per-host: 0: from 1 to 8"),
        (
            r#", "port-block-size": 512, "sync": {"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "/k"}"#,
            "sync: session sync does not carry dynamic port blocks",
        ),
        (
            r#", "port-block-size": 2048, "port-block-prefix": "2001:db8::/56", "port-block-host-length": 56"#,
            "port-block-host-length: 56: from 57 to 80 for port-block-prefix /56",
        ),
        (
            r#", "port-block-size": 2048, "port-block-prefix": "2001:db8::/48""#,
            "port-block-size: 2048: 65536 /64 subnets of 2001:db8::/48 need as many blocks; pool4 has 62 (2 addresses x 31 blocks of 2048 ports)",
        ),
        (
            r#", "port-block-size": 70000, "port-block-prefix": "2001:db8::/60""#,
            "port-block-size: 70000: from 1 to 64512",
        ),
        (r#", "port-block-size": 1024, "port-block-prefix": "2001:db8::/129""#, "port-block-prefix"),
        (r#", "bib-log": "relative.log""#, "bib-log: \"relative.log\": \"stdout\" or an absolute file path"),
        (
            r#", "bib-log": "/nonexistent-dir/x.log""#,
            "bib-log: \"/nonexistent-dir/x.log\": its directory does not exist",
        ),
    ] {
        let err = nat(extra).unwrap_err().to_string();
        assert!(err.contains(msg), "{extra}: {err}");
    }
    let two_ranges = Config::from_json(
        r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "mode": "nat64", "pool6": "64:ff9b::/96",
        "pool4": [{"prefix": "203.0.113.8"}, {"prefix": "203.0.113.9", "ports": "2000-3000"}],
        "port-block-size": 100, "port-block-prefix": "2001:db8::/60"}"#,
    );
    assert_err_contains(
        two_ranges,
        "pool4[1].ports: 2000-3000: with port blocks every pool4 entry lends the same ports",
    );
    assert_err_contains(with(r#""port-block-size": 64"#), "port-block-size: belongs to stateful NAT64");
    assert_err_contains(with(r#""bib-log": "stdout""#), "bib-log: belongs to stateful NAT64");
}

/// `nat-log`: each sink's form, `bib-log` as one JSON sink more, and every refusal
/// naming its key.
#[test]
fn nat64_nat_log_sinks_are_checked() {
    use crate::config::nat::SyslogTarget;
    let ok = nat(r#", "nat-log": [{"ipfix": "192.0.2.9:4739"}, {"ipfix": "[2001:db8::9]:4739"},
        {"syslog": "unix:/dev/log"}, {"syslog": "udp:192.0.2.9:514"}, {"json": "stdout"}],
        "bib-log": "/tmp/nat64-bib.jsonl""#)
    .unwrap()
    .nat64
    .unwrap();
    assert_eq!(
        ok.nat_log,
        vec![
            LogSink::Ipfix("192.0.2.9:4739".parse().unwrap()),
            LogSink::Ipfix("[2001:db8::9]:4739".parse().unwrap()),
            LogSink::Syslog(SyslogTarget::Unix("/dev/log".into())),
            LogSink::Syslog(SyslogTarget::Udp("192.0.2.9:514".parse().unwrap())),
            LogSink::Json(BibLog::Stdout),
            LogSink::Json(BibLog::File("/tmp/nat64-bib.jsonl".into())),
        ]
    );
    assert!(nat("").unwrap().nat64.unwrap().nat_log.is_empty());
    for (extra, msg) in [
        (
            r#", "nat-log": [{"ipfix": "192.0.2.9"}]"#,
            r#"nat-log[0].ipfix: "192.0.2.9": not ADDR:PORT (e.g. 192.0.2.9:4739)"#,
        ),
        (r#", "nat-log": [{"ipfix": "192.0.2.9:0"}]"#, r#"nat-log[0].ipfix: "192.0.2.9:0": port 0"#),
        (r#", "nat-log": [{"ipfix": 4739}]"#, "nat-log[0].ipfix: invalid type"),
        (
            r#", "nat-log": [{"ipfix": "192.0.2.9:4739", "json": "stdout"}]"#,
            r#"nat-log[0]: give exactly one of "ipfix", "syslog" and "json""#,
        ),
        (r#", "nat-log": [{}]"#, r#"nat-log[0]: give exactly one of"#),
        (r#", "nat-log": [{"netflow": "192.0.2.9:2055"}]"#, "nat-log[0]: unknown field `netflow`"),
        (
            r#", "nat-log": [{"syslog": "/dev/log"}]"#,
            r#"nat-log[0].syslog: "/dev/log": "unix:PATH" or "udp:ADDR:PORT""#,
        ),
        (
            r#", "nat-log": [{"syslog": "unix:dev/log"}]"#,
            r#"nat-log[0].syslog: "unix:dev/log": the socket's path must be absolute"#,
        ),
        (
            r#", "nat-log": [{"syslog": "udp:logs.example:514"}]"#,
            r#"nat-log[0].syslog: "logs.example:514": not ADDR:PORT"#,
        ),
        (
            r#", "nat-log": [{"json": "x.log"}]"#,
            r#"nat-log[0].json: "x.log": "stdout" or an absolute file path"#,
        ),
        (
            r#", "nat-log": [{"json": "stdout"}, {"json": "stdout"}]"#,
            "nat-log[1]: json to stdout is given twice",
        ),
        (
            r#", "nat-log": [{"json": "stdout"}], "bib-log": "stdout""#,
            "bib-log: json to stdout is in nat-log too",
        ),
        (r#", "nat-log": {"ipfix": "192.0.2.9:4739"}"#, "nat-log: invalid type"),
    ] {
        let err = nat(extra).unwrap_err().to_string();
        assert!(err.contains(msg), "{extra}: {err}");
    }
    assert_err_contains(with(r#""nat-log": [{"json": "stdout"}]"#), "nat-log: belongs to stateful NAT64");
}

/// RFC 6888's limits: defaults (no port limit, a /64 per subscriber, 120 s before a
/// port is lent again), the values a file may give, and every refusal naming its key.
#[test]
fn nat64_cgn_limits_are_checked() {
    use crate::config::nat::{Limits, parse_limit};
    assert_eq!(nat("").unwrap().nat64.unwrap().limits, Limits::DEFAULT);
    // The translator's own address may be lent too (what no mapping takes stays the host's).
    assert!(nat(r#", "ipv4-addr": "203.0.113.9""#).is_ok());
    let g = nat(r#", "icmpv6-error-source": "inner-destination""#).unwrap().globals();
    assert!(g.flag(Globals::FLAG_ICMP6_SOURCE_INNER));
    assert!(!nat("").unwrap().globals().flag(Globals::FLAG_ICMP6_SOURCE_INNER));
    assert_err_contains(nat(r#", "icmpv6-error-source": "nearest""#), "icmpv6-error-source: \"nearest\"");
    assert_err_contains(
        with(r#""icmpv6-error-source": "router""#),
        "icmpv6-error-source: belongs to stateful NAT64",
    );
    assert_eq!(
        Limits::DEFAULT,
        Limits { max_ports: 0, subscriber_len: 64, reuse_delay: 120, max_syns: 1024 }
    );
    let l = nat(r#", "max-ports-per-host": 2000, "subscriber-prefix-length": 56, "port-reuse-delay": 0,
        "max-simultaneous-opens": 0"#)
    .unwrap()
    .nat64
    .unwrap()
    .limits;
    assert_eq!(l, Limits { max_ports: 2000, subscriber_len: 56, reuse_delay: 0, max_syns: 0 });
    for (extra, msg) in [
        (r#", "subscriber-prefix-length": 24"#, "subscriber-prefix-length: 24: from 32 to 128"),
        (r#", "subscriber-prefix-length": 129"#, "subscriber-prefix-length: 129: from 32 to 128"),
        (r#", "port-reuse-delay": 3601"#, "port-reuse-delay: 3601: at most 3600 seconds"),
        (r#", "max-ports-per-host": 99999999"#, "max-ports-per-host: 99999999: at most 50331648"),
        (r#", "max-ports-per-host": -1"#, "max-ports-per-host"),
        (r#", "max-ports-per-host": "many""#, "max-ports-per-host"),
        (r#", "max-simultaneous-opens": 65537"#, "max-simultaneous-opens: 65537: at most 65536"),
        (r#", "max-simultaneous-opens": -1"#, "max-simultaneous-opens"),
    ] {
        let err = format!("{:#}", nat(extra).unwrap_err());
        assert!(err.contains(msg), "{extra}: {err}");
    }
    assert_eq!(parse_limit("max-ports-per-host", 64).unwrap(), 64);
    assert_eq!(parse_limit("max-simultaneous-opens", 10).unwrap(), 10);
    assert!(parse_limit("udp-timeout", 64).unwrap_err().to_string().contains("not one of"));
    assert_err_contains(with(r#""max-ports-per-host": 10"#), "max-ports-per-host: belongs to stateful NAT64");
    assert_err_contains(with(r#""port-reuse-delay": 10"#), "port-reuse-delay: belongs to stateful NAT64");
    assert_err_contains(
        with(r#""max-simultaneous-opens": 10"#),
        "max-simultaneous-opens: belongs to stateful NAT64",
    );
}

/// `"sync"`: the addresses, the peers and the key file, each refusal naming its key.
#[test]
fn sync_is_checked() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("nat64-sync-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, [9u8; 40]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let short = dir.join("short");
    std::fs::write(&short, [9u8; 31]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let open = dir.join("open");
    std::fs::write(&open, [9u8; 40]).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nat = |sync: &str| {
        Config::from_json(&format!(
            r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "mode": "nat64", "pool6": "64:ff9b::/96",
            "pool4": [{{"prefix": "203.0.113.8/31"}}], "sync": {sync}}}"#
        ))
    };
    let k = key.display();
    let ok = nat(&format!(r#"{{"listen": "10.0.0.1:6464", "peers": ["10.0.0.2:6464"], "key-file": "{k}"}}"#))
        .unwrap()
        .nat64
        .unwrap()
        .sync
        .expect("sync");
    assert_eq!(ok.listen, "10.0.0.1:6464".parse().unwrap());
    assert_eq!(ok.peers, vec!["10.0.0.2:6464".parse().unwrap()]);
    let v6 = nat(&format!(
        r#"{{"listen": "[2001:db8::1]:6464", "peers": ["[2001:db8::2]:6464"], "key-file": "{k}"}}"#
    ));
    assert!(v6.is_ok(), "{v6:?}");
    for (sync, msg) in [
        (
            format!(r#"{{"listen": "10.0.0.1", "peers": ["10.0.0.2:1"], "key-file": "{k}"}}"#),
            "sync.listen: \"10.0.0.1\": not an address and port",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:0", "peers": ["10.0.0.2:1"], "key-file": "{k}"}}"#),
            "sync.listen: \"10.0.0.1:0\": give a port",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": [], "key-file": "{k}"}}"#),
            "sync.peers: give at least one",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.1:1"], "key-file": "{k}"}}"#),
            "sync.peers[0]: \"10.0.0.1:1\": this node's own sync.listen",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": ["[2001:db8::2]:1"], "key-file": "{k}"}}"#),
            "sync.peers[0]: \"[2001:db8::2]:1\": another address family",
        ),
        (
            format!(
                r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1", "10.0.0.2:1"], "key-file": "{k}"}}"#
            ),
            "sync.peers[1]: \"10.0.0.2:1\": the same as sync.peers[0]",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": ["0.0.0.0:1"], "key-file": "{k}"}}"#),
            "sync.peers[0]: \"0.0.0.0:1\": the unspecified address",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": ["224.0.0.1:1"], "key-file": "{k}"}}"#),
            "sync.peers[0]: \"224.0.0.1:1\": a multicast address",
        ),
        (
            r#"{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "key"}"#.to_string(),
            "sync.key-file: \"key\": give an absolute path",
        ),
        (
            r#"{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "/nonexistent/key"}"#
                .to_string(),
            "sync.key-file: /nonexistent/key: No such file",
        ),
        (
            format!(
                r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "{}"}}"#,
                dir.display()
            ),
            "not a regular file",
        ),
        (
            format!(
                r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "{}"}}"#,
                short.display()
            ),
            "the key is 31 bytes; it must be at least 32",
        ),
        (
            format!(
                r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "{}"}}"#,
                open.display()
            ),
            "readable or writable by others than its owner (mode 0644)",
        ),
        (
            format!(r#"{{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "{k}", "port": 1}}"#),
            "unknown field `port`",
        ),
        (r#"{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"]}"#.to_string(), "missing field `key-file`"),
        (
            r#"{"listen": 5, "peers": ["10.0.0.2:1"], "key-file": "/k"}"#.to_string(),
            "sync.listen: invalid type",
        ),
    ] {
        assert_err_contains(nat(&sync), msg);
    }
    // Only in mode "nat64".
    assert_err_contains(
        with(&format!(r#""sync": {{"listen": "10.0.0.1:1", "peers": ["10.0.0.2:1"], "key-file": "{k}"}}"#)),
        "sync: belongs to stateful NAT64",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--instance` (the systemd unit's `%i`) names the instance of a file without
/// "instance", and its state file with it; a file naming another is refused.
#[test]
fn the_command_line_instance_names_a_file_without_one() {
    let base = r#"{"interfaces": [{"name": "eth0", "attach": "xdp"}], "pool6": "64:ff9b::/96""#;
    let plain = format!("{base}}}");
    let named = format!(r#"{base}, "instance": "plat"}}"#);
    assert_eq!(Config::from_json_for(&plain, None).unwrap().instance, "default");
    let c = Config::from_json_for(&plain, Some("plat")).unwrap();
    assert_eq!(c.instance, "plat");
    assert_eq!(Config::from_json_for(&named, Some("plat")).unwrap().instance, "plat");
    let err = Config::from_json_for(&named, Some("edge")).unwrap_err().to_string();
    assert!(
        err.contains(r#"instance: "plat": the file is for another instance than --instance "edge""#),
        "{err}"
    );
    let err = Config::from_json_for(&plain, Some("Bad Name")).unwrap_err().to_string();
    assert!(err.starts_with("instance: \"Bad Name\": must be"), "{err}");
}
