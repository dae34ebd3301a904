//! 464XLAT end to end (RFC 6877): IPv4-only clients in a real WireGuard tunnel, nat64
//! as CLAT on the concentrator's WireGuard interface (TC on an L3 device), an
//! IPv6-only core, nat64 as PLAT (SIIT), an IPv4-only server. See `XlatLab`.

use std::{path::Path, time::Duration};

use nat64_tests::{
    clat::{PREF64, SERVER, XlatLab},
    lab::{json, packets, peers, sha256_file, wait_listening, wait_until},
};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-test");

/// From IPv4-only clients inside WireGuard, across the CLAT and the PLAT: ping, an
/// HTTP fetch by IPv4 literal, UDP both ways, a multi-megabyte TCP transfer with its
/// content checked, traceroute; two clients at once, each seen by the server under
/// its own address; what the CLAT translates out of WireGuard leaves by redirect.
#[test]
fn ipv4_clients_in_wireguard_reach_an_ipv4_server_over_an_ipv6_core() {
    let mut lab = XlatLab::new(2);
    lab.start(CTL, PREF64);
    let c0 = lab.clients[0].clone();
    let c1 = lab.clients[1].clone();

    // The clients have no IPv6 at all.
    let v6 = lab.lab.exec(&c0, "ip -6 addr show");
    assert!(String::from_utf8_lossy(&v6.stdout).trim().is_empty(), "client has IPv6: {v6:?}");

    let out = lab.lab.must_in(&c0, &format!("ping -c 3 -i 0.2 -W 3 {SERVER}"));
    assert!(out.contains("3 received"), "client 0 pings the IPv4 literal:\n{out}");

    // HTTP by literal.
    let dir = std::env::temp_dir().join(format!("nat64-www-{}", lab.lab.tag));
    std::fs::create_dir_all(&dir).unwrap();
    let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(dir.join("blob"), &blob).unwrap();
    lab.lab.files.push(dir.join("blob"));
    let srv = lab.srv.clone();
    lab.lab
        .spawn_in(&srv, &format!("python3 -m http.server 8080 --bind 0.0.0.0 --directory {}", dir.display()));
    wait_listening(&lab.lab, &lab.srv, 8080, "tcp");
    let got = lab.lab.must_in(&c0, &format!("curl -sS --max-time 30 http://{SERVER}:8080/blob | sha256sum"));
    let want = sha256_file(&dir.join("blob"));
    assert_eq!(got.split_whitespace().next(), Some(want.as_str()), "HTTP body");
    let _ = std::fs::remove_dir_all(Path::new(&dir));

    // UDP both ways: 50 datagrams echoed.
    lab.lab.spawn_in(&srv, &format!("python3 {} udp-echo 5400", peers()));
    wait_listening(&lab.lab, &lab.srv, 5400, "udp");
    let out = lab.lab.must_in(&c0, &format!("python3 {} udp-ping {SERVER} 5400 50", peers()));
    assert_eq!(out.trim(), "50", "UDP datagrams echoed back intact");

    // TCP, 6 MiB, content checked by the server.
    lab.lab.spawn_in(&srv, &format!("python3 {} tcp-sink 5401", peers()));
    wait_listening(&lab.lab, &lab.srv, 5401, "tcp");
    let out = lab.lab.must_in(&c0, &format!("python3 {} tcp-send {SERVER} 5401 {}", peers(), 6 << 20));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "TCP content sent vs received: {out}");

    // Two clients at once, each under its own address (through the PLAT's EAM).
    lab.lab.spawn_in(&srv, &format!("python3 {} udp-whoami 5402", peers()));
    wait_listening(&lab.lab, &lab.srv, 5402, "udp");
    let ask = |c: &str| {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", c, "python3", &peers(), "udp-ask", SERVER, "5402"])
            .output();
        String::from_utf8_lossy(&child.expect("udp-ask").stdout).trim().to_string()
    };
    let (a0, a1) = std::thread::scope(|s| {
        let h0 = s.spawn(|| ask(&c0));
        let h1 = s.spawn(|| ask(&c1));
        (h0.join().unwrap(), h1.join().unwrap())
    });
    assert_eq!((a0.as_str(), a1.as_str()), ("192.0.2.2", "192.0.2.3"), "the server sees each client apart");
    let out = lab.lab.must_in(&c1, &format!("ping -c 2 -i 0.2 -W 3 {SERVER}"));
    assert!(out.contains("2 received"), "client 1:\n{out}");

    // traceroute (UDP): the CLAT answers as a hop from its own address, the PLAT's
    // error comes back translated twice, and the server is reached.
    let out = lab.lab.must_in(&c0, &format!("traceroute -n -w 2 -q 1 -m 6 {SERVER}"));
    let hops: Vec<&str> = out.lines().skip(1).collect();
    assert!(hops.len() >= 3, "at least CLAT, PLAT, server:\n{out}");
    assert!(hops[0].contains("10.9.0.1"), "first hop is the CLAT's ipv4-addr:\n{out}");
    assert!(hops.last().is_some_and(|l| l.contains(SERVER)), "the server is reached:\n{out}");

    // The CLAT keeps the next hop of what it redirects out of WireGuard (per CPU, for a
    // second at most) and asks the FIB again as soon as nat64-ctl hears of a route or
    // neighbour change. With pings every 50 ms, the concentrator's neighbour entry for
    // the PLAT gets another MAC address (the PLAT's XDP takes frames whatever their
    // destination MAC); every echo request leaving the core port from 200 ms after the
    // change carries the new one.
    next_hop_follows_the_neighbour(&mut lab, &c0);

    let clat = json(lab.clat_ctl(CTL, &["stats", "--json"]), "stats");
    // Downloads merged by GRO on the core are judged by their segments, not their
    // total length: nothing here needed a Packet Too Big.
    assert_eq!(packets(&clat, "drop_mtu_exceeded"), 0, "{clat}");
    assert!(packets(&clat, "xlat_4to6_tcp") > 1000 && packets(&clat, "xlat_6to4_tcp") > 100, "{clat}");
    assert!(packets(&clat, "xlat_4to6_udp") >= 50 && packets(&clat, "xlat_4to6_icmp") >= 3, "{clat}");
    // What comes out of WireGuard (an L3 device) leaves the CLAT by redirect, given an
    // Ethernet header for the uplink, rather than through the kernel's forwarding.
    assert!(packets(&clat, "fwd_redirect") > 1000, "{clat}");
    let plat = json(lab.plat_ctl(CTL, &["stats", "--json"]), "stats");
    assert!(packets(&plat, "xlat_6to4_tcp") > 1000, "{plat}");

    let status = lab.clat_ctl(CTL, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("mode       clat")
            && text.contains("(tcx-l3, nat64_tc_l3 id ")
            && text.contains(PREF64),
        "{text}"
    );
}

/// See the call in `ipv4_clients_in_wireguard_reach_an_ipv4_server_over_an_ipv6_core`.
/// Two changes half a second apart: a cache that only expired its entries after their
/// second would send stale frames in one of the two windows checked, wherever its
/// second began.
fn next_hop_follows_the_neighbour(lab: &mut XlatLab, client: &str) {
    const MACS: [&str; 2] = ["02:00:00:00:0a:98", "02:00:00:00:0a:99"];
    let (cc, plat) = (lab.cc.clone(), lab.plat.clone());
    let real = lab.lab.must_in(&plat, "cat /sys/class/net/north/address").trim().to_string();
    let dump = lab.lab.spawn_netns_only(
        &cc,
        "timeout",
        &[
            "10",
            "tcpdump",
            "--immediate-mode",
            "-l",
            "-n",
            "-e",
            "-tt",
            "-i",
            "core",
            "icmp6[icmp6type] == icmp6-echo",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let ping = lab.lab.spawn_netns_only(client, "ping", &["-c", "60", "-i", "0.05", "-W", "1", SERVER]);
    std::thread::sleep(Duration::from_millis(1000));
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut changed = [0.0; 2];
    for (i, mac) in MACS.iter().enumerate() {
        changed[i] = now();
        lab.lab
            .must_in(&cc, &format!("ip neigh replace 2001:db8:100::2 lladdr {mac} dev core nud permanent"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let done = wait_until(Duration::from_secs(10), || matches!(lab.lab.child(ping).try_wait(), Ok(Some(_))));
    assert!(done, "the pings ended");
    let out = lab.lab.stop_child(dump);
    // The PLAT's real address back (ND takes it from there).
    lab.lab.must_in(&cc, &format!("ip neigh replace 2001:db8:100::2 lladdr {real} dev core nud reachable"));
    let text = String::from_utf8_lossy(&out.stdout);
    // "<epoch seconds> <source MAC> > <destination MAC>, ethertype IPv6 ..."
    let requests: Vec<(f64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t = w.next()?.parse().ok()?;
            let dst = w.nth(2)?.trim_end_matches(',').to_string();
            Some((t, dst))
        })
        .collect();
    let within = |from: f64, to: f64| {
        requests.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, d)| d.as_str()).collect::<Vec<_>>()
    };
    for (from, to, mac, least) in [
        (0.0, changed[0], real.as_str(), 10),
        (changed[0] + 0.2, changed[1], MACS[0], 3),
        (changed[1] + 0.2, f64::MAX, MACS[1], 10),
    ] {
        let dsts = within(from, to);
        assert!(
            dsts.len() >= least && dsts.iter().all(|d| *d == mac),
            "echo requests from {from:.3} to {to:.3} all go to {mac} (changes at {changed:?}):\n{text}"
        );
    }
}

/// `"pref64": "auto"`: the CLAT learns the PLAT prefix from a real DNS64 resolver
/// (unbound with its dns64 module) by asking for ipv4only.arpa (RFC 7050), shows it in
/// `status`, and traffic flows through it.
#[test]
fn pref64_is_discovered_from_dns64() {
    let mut lab = XlatLab::new(1);
    lab.start_dns64(PREF64);
    lab.start(CTL, "auto");
    let out = lab.clat_ctl(CTL, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status: {out:?}"));
    assert_eq!(v["pool6"], PREF64, "{v}");
    assert_eq!(v["pref64"]["source"], "auto", "{v}");
    assert_eq!(v["pref64"]["resolver"], "2001:db8:100::2", "{v}");
    assert_eq!(v["mode"], "clat", "{v}");
    let c0 = lab.clients[0].clone();
    let out = lab.lab.must_in(&c0, &format!("ping -c 2 -i 0.2 -W 3 {SERVER}"));
    assert!(out.contains("2 received"), "{out}");
}

/// `"pref64": "auto"` from router advertisements (RFC 8781), preferred to DNS64 (§5;
/// there is no DNS64 here, so asking it would fail): the CLAT solicits an advertisement
/// at start, takes the PLAT prefix from its PREF64 option, `status` says so, and traffic
/// flows through it; another prefix advertised later is followed without a restart.
#[test]
fn pref64_is_learned_from_router_advertisements() {
    let mut lab = XlatLab::new(1);
    let plat = lab.plat.clone();
    let first = lab.lab.spawn_in(&plat, &format!("python3 {} ra-send north {PREF64} 1800 0.5", peers())).id();
    lab.start(CTL, "auto");
    let status = |lab: &XlatLab| -> Value {
        let out = lab.clat_ctl(CTL, &["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status: {out:?}"))
    };
    let v = status(&lab);
    assert_eq!(v["pool6"], PREF64, "{v}");
    assert_eq!((&v["pref64"]["source"], &v["pref64"]["via"]), (&"auto".into(), &"ra".into()), "{v}");
    assert!(v["pref64"]["router"].as_str().is_some_and(|r| r.starts_with("fe80::")), "{v}");
    assert_eq!(v["pref64"]["lifetime"], 1800, "{v}");
    let text = String::from_utf8_lossy(&lab.clat_ctl(CTL, &["status"]).stdout).into_owned();
    assert!(text.contains("router advertisement from fe80::"), "{text}");
    let c0 = lab.clients[0].clone();
    let out = lab.lab.must_in(&c0, &format!("ping -c 2 -i 0.2 -W 3 {SERVER}"));
    assert!(out.contains("2 received"), "through the advertised prefix:\n{out}");

    // The router advertises another prefix: followed within a few seconds.
    // SAFETY: plain kill(2) of a child of this test.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    lab.lab.spawn_in(&plat, &format!("python3 {} ra-send north 64:ff9b:7::/96 600 0.5", peers()));
    let moved = wait_until(Duration::from_secs(5), || status(&lab)["pool6"] == "64:ff9b:7::/96");
    let v = status(&lab);
    assert!(moved, "the new prefix is in force: {v}");
    assert_eq!(v["pref64"]["lifetime"], 600, "{v}");
}

/// Host CLAT: a process on the concentrator, which has no IPv4 route of its own,
/// reaches the IPv4 server by literal through the general path. PMTUD through the
/// CLAT: with a 1280-byte IPv6 core, a client's full-size TCP segments (1420 bytes,
/// WireGuard's MTU) are answered with Fragmentation Needed 1260, and the transfer
/// completes.
#[test]
fn host_clat_and_path_mtu_discovery_through_the_clat() {
    let mut lab = XlatLab::new(1);
    lab.start(CTL, PREF64);
    let (cc, srv, c0) = (lab.cc.clone(), lab.srv.clone(), lab.clients[0].clone());

    let out = lab.lab.must_in(&cc, &format!("ping -c 2 -i 0.2 -W 3 {SERVER}"));
    assert!(out.contains("2 received"), "the concentrator pings an IPv4 literal:\n{out}");
    lab.lab.spawn_in(&srv, &format!("python3 {} tcp-sink 5410", peers()));
    wait_listening(&lab.lab, &lab.srv, 5410, "tcp");
    let out = lab.lab.must_in(&cc, &format!("python3 {} tcp-send {SERVER} 5410 {}", peers(), 2 << 20));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "host CLAT TCP content: {out}");
    lab.lab.spawn_in(&srv, &format!("python3 {} udp-whoami 5411", peers()));
    wait_listening(&lab.lab, &lab.srv, 5411, "udp");
    let who = lab.lab.must_in(&cc, &format!("python3 {} udp-ask {SERVER} 5411", peers()));
    assert_eq!(who.trim(), "192.0.2.1", "the server sees the host CLAT's address through the PLAT");

    let plat = lab.plat.clone();
    lab.lab.must_in(&cc, "ip link set core mtu 1280");
    lab.lab.must_in(&plat, "ip link set north mtu 1280");
    lab.lab.spawn_in(&srv, &format!("python3 {} tcp-sink 5412", peers()));
    wait_listening(&lab.lab, &lab.srv, 5412, "tcp");
    let out = lab.lab.must_in(&c0, &format!("python3 {} tcp-send {SERVER} 5412 {}", peers(), 3 << 20));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "TCP across the 1280 core: {out}");
    let route = lab.lab.must_in(&c0, &format!("ip route get {SERVER}"));
    assert!(route.contains("mtu 1260"), "the client learned 1280 - 20 from the CLAT: {route}");
    let s = json(lab.clat_ctl(CTL, &["stats", "--json"]), "stats");
    assert!(packets(&s, "drop_mtu_exceeded") >= 1 && packets(&s, "icmp_sent") >= 1, "{s}");
}
