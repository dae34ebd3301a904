//! PLAT end to end: IPv6-only hosts reach IPv4-only servers through nat64 as a NAT64.
//!
//! Stateful NAT64 (mode "nat64") in the SIIT lab (`nat64_lab`: [`SiitLab`] with pool4
//! 203.0.113.8 and no EAM entries), and through its IPv4 router: hosts sharing one
//! pool4 address, traceroute, path MTU discovery and fragments, the BIB log and port
//! blocks, an exhausted port range, TCP simultaneous open, static BIB entries, a full
//! session table.
//!
//! The KVM-host setup: IPv6-only hosts (one namespace holding HOSTS source addresses,
//! and a "VM" namespace of its own) reach an IPv4-only HTTP server through nat64's
//! dynamic pool and the kernel's masquerade behind the translator's one uplink address,
//! or through stateful NAT64 on one pool4 address; two stateful nodes behind ECMP.
//! Names resolve through unbound's DNS64.
//!
//! ```text
//!  [hosts] 2001:db8:100::1:0 .. +HOSTS --\
//!                                         [plat] pa, pb (XDP) -- nat64 (pool6 64:ff9b::/96,
//!  [vm]    2001:db8:200::2 --------------/          dynamic pool 10.64.0.0/23, unbound DNS64)
//!                                                  pu 192.0.2.1 (masquerade) -- 192.0.2.2 [up]
//!                                                                    www.v4only.test = 93.184.215.14
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use nat64_tests::lab::{
    Lab, ROUTED_V4_HOST_AS_V6, ROUTER4_AS_V6, SiitLab, V4_HOST, V4_HOST_AS_V6, V6_HOST, V6_SPARE, hops, json,
    one_datagram, packets, peers, sha256_file, start_dns64, wait_listening, wait_until,
};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-test");
/// IPv6 sources in the hosts namespace.
const HOSTS: usize = 220;
const FIRST_HOST: &str = "2001:db8:100::1:0";
const VM: &str = "2001:db8:200::2";
const RESOLVER: &str = "2001:db8:100::ffff";
/// A global address: the Well-Known Prefix does not carry non-global ones (RFC 6052 §3.1).
const WEB: &str = "93.184.215.14";
const UPLINK: &str = "192.0.2.1";
const URL: &str = "http://www.v4only.test:8080";

/// 2001:db8:100::1/64 and the HOSTS host addresses from FIRST_HOST on `dev` in `ns`
/// (one `ip -batch`).
fn add_hosts(lab: &mut Lab, ns: &str, dev: &str) {
    let mut batch = format!("address add 2001:db8:100::1/64 dev {dev} nodad\n");
    for i in 0..HOSTS {
        batch += &format!("address add 2001:db8:100::1:{i:x}/128 dev {dev} nodad\n");
    }
    let batch_file = std::env::temp_dir().join(format!("nat64-hosts-{}-{ns}.batch", lab.tag));
    std::fs::write(&batch_file, batch).unwrap();
    lab.files.push(batch_file.clone());
    lab.must_in(ns, &format!("ip -6 -batch {}", batch_file.display()));
}

/// Starts fetching the 24 MB file at 4 MiB/s from namespace `vm` into `got` (curl, in a
/// thread), and checks 1.5 s later that it is still running.
fn start_download(vm: &str, got: &std::path::Path) -> std::thread::JoinHandle<std::process::Output> {
    let (vm, got) = (vm.to_string(), got.to_path_buf());
    let download = std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &vm, "curl", "-sS", "--max-time", "90", "--limit-rate", "4M", "-o"])
            .arg(&got)
            .arg(format!("{URL}/big"))
            .output()
            .expect("curl")
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!download.is_finished(), "the download is still running when nat64-ctl stops");
    download
}

/// The web server's address in pool6 form (64:ff9b::/96).
fn web6() -> String {
    let b = WEB.parse::<std::net::Ipv4Addr>().unwrap().octets();
    format!("64:ff9b::{:x}:{:x}", u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]]))
}

/// HOSTS hosts of namespace `ns`, each from its own address (32 at a time), fetch
/// /whoami by name: every one gets an answer, and the server saw each as `seen`.
fn every_host_seen_as(lab: &Lab, ns: &str, seen: &str) {
    let t = Instant::now();
    let out = lab.must_in(
        ns,
        &format!("python3 {} http-many www.v4only.test 8080 /whoami {FIRST_HOST} {HOSTS}", peers()),
    );
    println!("{HOSTS} hosts: first requests in {:?}", t.elapsed());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOSTS, "{out}");
    assert!(lines.iter().all(|l| l.ends_with(&format!(" {seen}"))), "every host seen as {seen}:\n{out}");
}

/// The pool's (IPv6, IPv4) pairs.
fn pairs(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .expect("pool list --json is a list")
        .iter()
        .map(|m| (m["ipv6"].as_str().unwrap().to_string(), m["ipv4"].as_str().unwrap().to_string()))
        .collect()
}

/// The lab both PLATs run in (see the module's picture): namespaces, links, addresses,
/// unbound's DNS64 and the HTTP server with a 24 MB file whose SHA-256 is `want_sha`.
struct Topo {
    lab: Lab,
    t: String,
    hosts: String,
    vm: String,
    plat: String,
    up: String,
    pa: String,
    pb: String,
    pu: String,
    dir: std::path::PathBuf,
    want_sha: String,
}

fn topology() -> Topo {
    let mut lab = Lab::new();
    for tool in ["unbound", "nft", "curl"] {
        assert!(
            nat64_tests::lab::run(&format!("command -v {tool}")).status.success(),
            "`{tool}` is missing: run `cargo xtask setup`"
        );
    }
    let t = lab.tag.clone();
    let hosts = lab.add_ns("hosts");
    let vm = lab.add_ns("vm");
    let plat = lab.add_ns("plat");
    let up = lab.add_ns("up");
    let (pa, pb, pu) = (format!("pa{t}"), format!("pb{t}"), format!("pu{t}"));
    lab.link(&hosts, &format!("ha{t}"), &plat, &pa);
    lab.link(&vm, &format!("va{t}"), &plat, &pb);
    lab.link(&plat, &pu, &up, &format!("uu{t}"));

    // The hosts: IPv6 only, HOSTS addresses in one namespace.
    add_hosts(&mut lab, &hosts, &format!("ha{t}"));
    lab.must_in(&hosts, &format!("ip -6 route add default via {RESOLVER}"));
    lab.must_in(
        &vm,
        &format!("ip -6 addr add {VM}/64 dev va{t} nodad && ip -6 route add default via 2001:db8:200::ffff"),
    );
    for (ns, dev) in [(&hosts, format!("ha{t}")), (&vm, format!("va{t}"))] {
        lab.resolver(ns, RESOLVER);
        // A veth receives frames redirected by XDP into its peer only with NAPI on.
        lab.must_in(ns, &format!("ethtool -K {dev} gro on >/dev/null"));
    }
    // The PLAT: a router with one IPv4 address upstream.
    lab.must_in(
        &plat,
        &format!(
            "ip -6 addr add {RESOLVER}/64 dev {pa} nodad && ip -6 addr add 2001:db8:200::ffff/64 dev {pb} nodad && \
             ip addr add {UPLINK}/24 dev {pu} && ip route add default via 192.0.2.2 && \
             sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
        ),
    );
    // The IPv4 Internet: knows nothing of the pool (10.64.0.0/23), only the uplink.
    lab.must_in(&up, &format!("ip addr add 192.0.2.2/24 dev uu{t} && ip addr add {WEB}/32 dev lo"));

    let dir = std::env::temp_dir().join(format!("nat64-plat-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    start_dns64(&mut lab, &plat, &dir, RESOLVER, "64:ff9b::/96", &[("www", WEB)]);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let blob: Vec<u8> = (0..24_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(www.join("big"), &blob).unwrap();
    let want_sha = sha256_file(&www.join("big"));
    lab.spawn_in(&up, &format!("python3 {} http-serve 8080 {}", peers(), www.display()));
    wait_listening(&lab, &up, 8080, "tcp");

    Topo { lab, t, hosts, vm, plat, up, pa, pb, pu, dir, want_sha }
}

#[test]
fn ipv6_only_hosts_reach_an_ipv4_server_through_the_pool_behind_one_address() {
    let Topo { mut lab, t, hosts, vm, plat, up: _, pa, pb, pu, dir, want_sha } = topology();
    let instance = format!("plat-{t}");
    let state = dir.join("pool.json");
    let config = dir.join("plat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{
    "instance": "{instance}",
    "interfaces": [{{"name": "{pa}", "attach": "xdp"}}, {{"name": "{pb}", "attach": "xdp"}}],
    "ipv4-addr": "{UPLINK}",
    "ipv6-addr": "{RESOLVER}",
    "pool6": "64:ff9b::/96",
    "dynamic-pool": "10.64.0.0/23",
    "state-file": "{}",
    "masquerade": {{"interface": "{pu}"}}
}}"#,
            state.display()
        ),
    )
    .unwrap();
    let mut ctl = lab.start_ctl(&plat, CTL, &config, &instance);

    let status = json(lab.ctl(&plat, CTL, &instance, &["status", "--json"]), "status");
    assert_eq!(status["dynamic-pool"]["prefix"], "10.64.0.0/23", "{status}");
    assert_eq!(status["dynamic-pool"]["free"], 512, "{status}");

    // One host by name with curl: the server sees the uplink address.
    let t0 = Instant::now();
    let who = lab.must_in(&vm, &format!("curl -sS --max-time 20 {URL}/whoami"));
    let first = t0.elapsed();
    let t1 = Instant::now();
    let again = lab.must_in(&vm, &format!("curl -sS --max-time 20 {URL}/whoami"));
    println!("vm: first request (DNS64, allocation) {first:?}, second {:?}", t1.elapsed());
    assert_eq!((who.as_str(), again.as_str()), (UPLINK, UPLINK), "masqueraded behind the uplink address");

    // First-packet latency: a new host's first echo request takes the allocation.
    lab.must_in(&hosts, &format!("ip -6 addr add 2001:db8:100::2:0/128 dev ha{t} nodad"));
    let target = web6();
    let ping = lab.must_in(&hosts, &format!("ping -c 5 -i 0.2 -W 2 -I 2001:db8:100::2:0 {target}"));
    let rtts: Vec<&str> = ping.lines().filter_map(|l| l.split("time=").nth(1)).collect();
    assert_eq!(rtts.len(), 5, "{ping}");
    println!("ping from a new host (first one allocates): {}", rtts.join(", "));

    // HOSTS more, each from its own address, 32 at a time.
    every_host_seen_as(&lab, &hosts, UPLINK);

    // One pool address per host, all distinct, all in the pool.
    let before = pairs(&json(lab.ctl(&plat, CTL, &instance, &["pool", "list", "--json"]), "pool list"));
    assert_eq!(before.len(), HOSTS + 2, "{before:?}");
    let v4s: BTreeSet<&String> = before.iter().map(|(_, a)| a).collect();
    assert_eq!(v4s.len(), HOSTS + 2, "addresses are not shared");
    assert!(v4s.iter().all(|a| a.starts_with("10.64.0.") || a.starts_with("10.64.1.")), "{v4s:?}");
    assert!(before.iter().any(|(h, _)| h == VM), "{before:?}");
    let stats = json(lab.ctl(&plat, CTL, &instance, &["stats", "--json"]), "stats");
    assert_eq!(packets(&stats, "pool_allocated"), (HOSTS + 2) as u64);
    assert_eq!(packets(&stats, "drop_pool_exhausted"), 0);
    let text =
        String::from_utf8_lossy(&lab.ctl(&plat, CTL, &instance, &["pool", "list"]).stdout).into_owned();
    assert!(text.contains("expires in") && text.contains(VM), "{text}");

    // A long download from the VM while nat64-ctl restarts: it completes, intact.
    let got = dir.join("got");
    let download = start_download(&vm, &got);
    let stopped = lab.stop_child(ctl);
    assert!(stopped.status.success(), "nat64-ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    let table = format!("nat64_{}", instance.replace('-', "_"));
    lab.must_in(&plat, &format!("nft list table ip {table} >/dev/null"));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).expect("state file written")).unwrap();
    assert_eq!(saved["mappings"].as_array().map(Vec::len), Some(HOSTS + 2), "state file: {saved}");
    let restart = Instant::now();
    ctl = lab.start_ctl(&plat, CTL, &config, &instance);
    println!("restart: up again in {:?}", restart.elapsed());
    let dl = download.join().unwrap();
    assert!(dl.status.success(), "download across the restart: {}", String::from_utf8_lossy(&dl.stderr));
    let sha = sha256_file(&got);
    assert_eq!(sha, want_sha, "the download arrived intact");

    // Every host kept its address: the same pairs, and no new allocation when they all
    // come back.
    let after = pairs(&json(lab.ctl(&plat, CTL, &instance, &["pool", "list", "--json"]), "pool list"));
    assert_eq!(after, before, "mappings across the restart");
    lab.must_in(
        &hosts,
        &format!("python3 {} http-many www.v4only.test 8080 /whoami {FIRST_HOST} {HOSTS}", peers()),
    );
    let stats = json(lab.ctl(&plat, CTL, &instance, &["stats", "--json"]), "stats");
    // The counters live in the pinned maps: they go on across the restart.
    assert_eq!(packets(&stats, "pool_allocated"), (HOSTS + 2) as u64, "nobody needed a new address");
    assert_eq!(
        pairs(&json(lab.ctl(&plat, CTL, &instance, &["pool", "list", "--json"]), "pool list")),
        before
    );

    // Flush: everybody gets an address afresh.
    let out = lab.ctl(&plat, CTL, &instance, &["pool", "flush"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("flushed {} dynamic mappings", HOSTS + 2))
    );
    let who = lab.must_in(&vm, &format!("curl -sS --max-time 20 {URL}/whoami"));
    assert_eq!(who, UPLINK);
    let n = pairs(&json(lab.ctl(&plat, CTL, &instance, &["pool", "list", "--json"]), "pool list")).len();
    assert_eq!(n, 1, "only the VM came back");

    // Detach stops the instance and removes the masquerade table.
    let out = lab.ctl(&plat, CTL, &instance, &["detach"]);
    assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("stopped instance") && said.contains(&table), "{said}");
    assert!(!lab.exec(&plat, &format!("nft list table ip {table}")).status.success(), "table removed");
    let _ = lab.stop_child(ctl);
}

/// Stateful NAT64 (#15) as the PLAT: the same hosts, the same DNS64, and no dynamic
/// pool, masquerade, nftables or conntrack: every host shares the one pool4 address
/// 192.0.2.8 (routed to the PLAT by its upstream) by port, mapped in the data path. By
/// name with curl; HOSTS hosts each from its own address; ICMP echo and UDP; a
/// rate-limited 24 MB download across a restart of nat64-ctl completes intact, every
/// session kept.
#[test]
fn stateful_nat64_hosts_share_one_address_through_dns64() {
    const POOL4: &str = "192.0.2.8";
    let Topo { mut lab, t, hosts, vm, plat, up, pa, pb, pu: _, dir, want_sha } = topology();
    // From the server's address (a UDP server answers from the route's source).
    lab.must_in(&up, &format!("ip route add {POOL4}/32 via {UPLINK} src {WEB}"));
    let instance = format!("plat-{t}");
    let config = dir.join("plat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{
    "instance": "{instance}",
    "mode": "nat64",
    "interfaces": [{{"name": "{pa}", "attach": "xdp"}}, {{"name": "{pb}", "attach": "xdp"}}],
    "ipv4-addr": "{UPLINK}",
    "ipv6-addr": "{RESOLVER}",
    "pool6": "64:ff9b::/96",
    "pool4": [{{"prefix": "{POOL4}/32"}}]
}}"#
        ),
    )
    .unwrap();
    let mut ctl = lab.start_ctl(&plat, CTL, &config, &instance);

    let who = lab.must_in(&vm, &format!("curl -sS --max-time 20 {URL}/whoami"));
    assert_eq!(who, POOL4, "the server sees the pool4 address");
    every_host_seen_as(&lab, &hosts, POOL4);
    let target = web6();
    let ping = lab.must_in(&hosts, &format!("ping -c 3 -i 0.2 -W 2 -I {FIRST_HOST} {target}"));
    assert!(ping.contains("3 received"), "{ping}");
    lab.spawn_in(&up, &format!("python3 {} udp-whoami 5300", peers()));
    wait_listening(&lab, &up, 5300, "udp");
    let udp = lab.must_in(&vm, &format!("python3 {} udp-ask {target} 5300", peers()));
    assert_eq!(udp.trim(), POOL4);

    // Every host in the BIB, all on the one address; no nftables, no conntrack.
    let sessions = json(lab.ctl(&plat, CTL, &instance, &["session", "list", "--json"]), "session list");
    let tcp_hosts: BTreeSet<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["protocol"] == "tcp")
        .map(|s| {
            assert!(s["ipv4"].as_str().unwrap().starts_with(&format!("{POOL4}:")), "{s}");
            let v6 = s["ipv6"].as_str().unwrap();
            v6[1..v6.find(']').unwrap()].to_string()
        })
        .collect();
    assert!(tcp_hosts.len() > HOSTS, "{} hosts with TCP sessions", tcp_hosts.len());
    let nft = lab.exec(&plat, "nft list ruleset");
    assert!(String::from_utf8_lossy(&nft.stdout).trim().is_empty(), "no nftables involved");
    let tracked = lab.exec(&plat, "cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0");
    assert_eq!(String::from_utf8_lossy(&tracked.stdout).trim(), "0", "no conntrack entries");
    let stats = json(lab.ctl(&plat, CTL, &instance, &["stats", "--json"]), "stats");
    assert!(packets(&stats, "nat_bib_created") > HOSTS as u64, "{stats}");

    // 24 MB (over 20 MiB) at 4 MiB/s from the VM while nat64-ctl restarts: intact,
    // every mapping kept.
    let got = dir.join("got");
    let download = start_download(&vm, &got);
    let before = json(lab.ctl(&plat, CTL, &instance, &["bib", "list", "--json"]), "bib list");
    let stopped = lab.stop_child(ctl);
    assert!(stopped.status.success(), "nat64-ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    ctl = lab.start_ctl(&plat, CTL, &config, &instance);
    let dl = download.join().unwrap();
    assert!(dl.status.success(), "download across the restart: {}", String::from_utf8_lossy(&dl.stderr));
    assert!(std::fs::metadata(&got).unwrap().len() > 20 * 1024 * 1024, "more than 20 MiB");
    let sha = sha256_file(&got);
    assert_eq!(sha, want_sha, "the download arrived intact");
    let after = json(lab.ctl(&plat, CTL, &instance, &["bib", "list", "--json"]), "bib list");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| format!("{} {} {}", b["protocol"], b["ipv6"], b["ipv4"]))
            .collect()
    };
    assert!(keys(&before).is_subset(&keys(&after)), "every mapping kept across the restart");
    let out = lab.ctl(&plat, CTL, &instance, &["detach"]);
    assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
    let _ = lab.stop_child(ctl);
}

/// Scale-out (#15): two stateful NAT64 nodes, each with its own pool4 slice, behind an
/// IPv6 router that spreads pool6 over both by the kernel's multipath routing (ECMP,
/// layer-4 hash). The IPv4 side routes each slice back to its node, so every flow
/// stays on one node both ways without any state shared between them: HOSTS sources
/// all reach the server, both slices carry some of them, and no host's flow is
/// mapped by both nodes.
#[test]
fn stateful_nat64_two_nodes_behind_ecmp() {
    let mut lab = Lab::new();
    let t = lab.tag.clone();
    let (c, r, s) = (lab.add_ns("c"), lab.add_ns("r"), lab.add_ns("s"));
    let nodes = [lab.add_ns("n1"), lab.add_ns("n2")];
    lab.link(&c, "eth0", &r, "lan");
    add_hosts(&mut lab, &c, "eth0");
    lab.must_in(
        &c,
        "ip -6 route add default via 2001:db8:100::ffff && ethtool -K eth0 gro on >/dev/null && \
         sysctl -qw net.core.txrehash=0",
    );
    lab.must_in(
        &r,
        "ip -6 addr add 2001:db8:100::ffff/64 dev lan nodad && \
         sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.fib_multipath_hash_policy=1",
    );
    let dir = std::env::temp_dir().join(format!("nat64-ecmp-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    nat64_tests::lab::two_nodes(&lab, &r, &s, &nodes, None, |k1| {
        format!("ip route add 203.0.113.0/24 via 198.51.10{k1}.2")
    });
    let mut ctls = Vec::new();
    let mut instances = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let k1 = k + 1;
        let instance = format!("ecmp{k1}-{t}");
        let config = dir.join(format!("n{k1}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{
    "instance": "{instance}",
    "mode": "nat64",
    "interfaces": [{{"name": "north", "attach": "xdp"}}, {{"name": "south", "attach": "xdp"}}],
    "ipv4-addr": "198.51.10{k1}.1",
    "ipv6-addr": "2001:db8:{k1}::2",
    "pool6": "64:ff9b::/96",
    "pool4": [{{"prefix": "192.0.2.{k1}/32"}}],
    "wkp-allow-non-global": true
}}"#
            ),
        )
        .unwrap();
        ctls.push(lab.start_ctl(n, CTL, &config, &instance));
        instances.push(instance);
    }
    // pool6 over both nodes, by the 5-tuple hash. (Between namespaces the router takes
    // the hash the sender's socket put on the packet, which TCP draws anew when it
    // retransmits: the client keeps it, as a router hashing the headers would.)
    lab.must_in(&r, "ip -6 route add 64:ff9b::/96 nexthop via 2001:db8:1::2 nexthop via 2001:db8:2::2");
    lab.must_in(&s, "ip addr add 203.0.113.2/32 dev lo && sysctl -qw net.ipv4.ip_forward=0");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    lab.spawn_in(&s, &format!("python3 {} http-serve 8080 {}", peers(), www.display()));
    wait_listening(&lab, &s, 8080, "tcp");

    let out = lab.must_in(
        &c,
        &format!("python3 {} http-many 64:ff9b::cb00:7102 8080 /whoami {FIRST_HOST} {HOSTS}", peers()),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOSTS, "every host reached the server:\n{out}");
    let by1 = lines.iter().filter(|l| l.ends_with(" 192.0.2.1")).count();
    let by2 = lines.iter().filter(|l| l.ends_with(" 192.0.2.2")).count();
    println!("ECMP: {by1} flows through node 1, {by2} through node 2");
    assert_eq!(by1 + by2, HOSTS, "{out}");
    assert!(by1 > HOSTS / 10 && by2 > HOSTS / 10, "both nodes carry flows: {by1} / {by2}");

    // Each node mapped only its own share, on its own slice.
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    for (k, (n, instance)) in nodes.iter().zip(&instances).enumerate() {
        let sessions = json(lab.ctl(n, CTL, instance, &["session", "list", "--json"]), "session list");
        let tcp: BTreeSet<String> = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["protocol"] == "tcp")
            .map(|x| {
                assert!(x["ipv4"].as_str().unwrap().starts_with(&format!("192.0.2.{}:", k + 1)), "{x}");
                x["ipv6"].as_str().unwrap().to_string()
            })
            .collect();
        seen.push(tcp);
    }
    let both: Vec<&String> = seen[0].intersection(&seen[1]).collect();
    assert!(both.is_empty(), "no flow mapped by both nodes: {both:?}");
    assert_eq!(seen[0].len() + seen[1].len(), HOSTS, "{seen:?}");
    for (n, instance) in nodes.iter().zip(&instances) {
        let out = lab.ctl(n, CTL, instance, &["detach"]);
        assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
    }
    for c in ctls {
        let _ = lab.stop_child(c);
    }
}

/// Stateful NAT64 (#15, mode "nat64"): two IPv6 sources share the one pool4 address
/// 203.0.113.8, mapped by the data path itself (no nftables, no conntrack): pings from
/// each, a UDP exchange whose IPv4 end sees 203.0.113.8, a 4 MiB TCP transfer (SHA-256
/// checked); `session list` shows their sessions; the IPv4 host reaching 203.0.113.8
/// unasked gets nowhere.
#[test]
fn stateful_nat64_hosts_share_one_ipv4_address() {
    let mut lab = nat64_lab(serde_json::json!({}));
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());

    for src in [V6_HOST, V6_SPARE] {
        let out = lab.lab.must_in(&v6, &format!("ping -6 -c 3 -i 0.2 -W 2 -I {src} {V4_HOST_AS_V6}"));
        assert!(out.contains("3 received"), "ping from {src}:\n{out}");
    }
    lab.lab.spawn_in(&v4, &format!("python3 {} udp-whoami 5200", peers()));
    wait_listening(&lab.lab, &v4, 5200, "udp");
    let out = lab.lab.must_in(&v6, &format!("python3 {} udp-ask {V4_HOST_AS_V6} 5200", peers()));
    assert_eq!(out.trim(), "203.0.113.8", "the IPv4 host sees the pool4 address");
    lab.lab.spawn_in(&v4, &format!("python3 {} tcp-sink 5201", peers()));
    wait_listening(&lab.lab, &v4, 5201, "tcp");
    let out = lab.lab.must_in(&v6, &format!("python3 {} tcp-send {V4_HOST_AS_V6} 5201 4194304", peers()));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "TCP through the BIB: {out}");

    let out = lab.ctl(CTL, &["session", "list", "--json"]);
    assert!(out.status.success(), "session list: {}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).expect("session list --json is JSON");
    let list = list.as_array().expect("a list");
    let has = |proto: &str, host: &str| {
        list.iter().any(|s| {
            s["protocol"] == proto
                && s["ipv6"].as_str().is_some_and(|a| a.starts_with(&format!("[{host}]:")))
                && s["ipv4"].as_str().is_some_and(|a| a.starts_with("203.0.113.8:"))
        })
    };
    assert!(has("icmp", V6_HOST) && has("icmp", V6_SPARE), "both hosts' pings share 203.0.113.8: {list:?}");
    assert!(has("udp", V6_HOST) && has("tcp", V6_HOST), "{list:?}");
    let tcp = list.iter().find(|s| s["protocol"] == "tcp").unwrap();
    assert!(
        ["Established", "V4FinRcv", "V6FinRcv", "V4FinV6FinRcv"].contains(&tcp["state"].as_str().unwrap()),
        "{tcp}"
    );
    let out = lab.ctl(CTL, &["session", "list", "--protocol", "udp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("udp") && !text.contains("icmp"), "{text}");

    let st: Value =
        serde_json::from_slice(&lab.ctl(CTL, &["status", "--json"]).stdout).expect("status --json");
    assert!(st["nat64"]["protocols"]["tcp"]["sessions"].as_u64() >= Some(1), "{st}");
    assert_eq!(st["nat64"]["pool4"][0]["address"], "203.0.113.8", "{st}");
    let text = String::from_utf8_lossy(&lab.ctl(CTL, &["status"]).stdout).into_owned();
    assert!(text.contains("pool4      203.0.113.8 ports 1024-65535"), "{text}");

    // A restart of nat64-ctl keeps every mapping and session (pinned maps).
    let tcp_v4 = tcp["ipv4"].clone();
    lab.stop();
    lab.start(CTL);
    let out = lab.ctl(CTL, &["session", "list", "--json"]);
    let after: Value = serde_json::from_slice(&out.stdout).expect("session list --json");
    assert!(
        after.as_array().unwrap().iter().any(|s| s["ipv4"] == tcp_v4),
        "kept across the restart: {after}"
    );
    let out = lab.lab.must_in(&v6, &format!("ping -6 -c 2 -i 0.2 -W 2 {V4_HOST_AS_V6}"));
    assert!(out.contains("2 received"), "after the restart:\n{out}");

    // Lifetimes change live, checked as the file is; nat64-ctl's sweep then ends the
    // ICMP sessions (and their BIB entries) a second after their last packet.
    let out = lab.ctl(CTL, &["set", "udp-timeout", "60"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("at least 120"),
        "{out:?}"
    );
    let out = lab.ctl(CTL, &["set", "icmp-timeout", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let icmp = |lab: &SiitLab| -> Vec<String> {
        let out = lab.ctl(CTL, &["session", "list", "--json", "--protocol", "icmp"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("session list --json");
        v.as_array().unwrap().iter().map(|s| format!("{} {}", s["ipv6"], s["remote"])).collect()
    };
    let before = icmp(&lab);
    lab.lab.must_in(&v6, &format!("ping -6 -c 1 -W 2 {V4_HOST_AS_V6}"));
    let with_new = icmp(&lab);
    assert_eq!(with_new.len(), before.len() + 1, "the new ping's session: {with_new:?}");
    // The older sessions keep the 60 s their last packet gave them; the new one goes.
    let gone = wait_until(Duration::from_secs(6), || icmp(&lab) == before);
    assert!(gone, "the new ICMP session swept after its 1 s lifetime: {:?}", icmp(&lab));

    // Unasked, from the IPv4 side: nothing.
    let out = lab.lab.exec(&v4, "ping -c 1 -W 1 203.0.113.8");
    assert!(!out.status.success(), "no mapping for an echo request from IPv4");
    let s = lab.stats(CTL);
    assert!(packets(&s, "nat_bib_created") >= 4 && packets(&s, "nat_session_created") >= 4, "{s}");
    assert!(packets(&s, "xlat_6to4_tcp") > 100, "{s}");
    let nft = lab.lab.exec(&lab.x, "nft list ruleset");
    assert!(String::from_utf8_lossy(&nft.stdout).trim().is_empty(), "no nftables involved");
}

/// The SIIT lab as a stateful NAT64 (pool4 203.0.113.8, no EAM entries), with `extra`
/// keys, started.
fn nat64_lab(extra: Value) -> SiitLab {
    nat64_lab_in(SiitLab::new(), "203.0.113.8/32", extra)
}

/// `nat64_lab` on `lab` with `pool4` (the routed lab's IPv4 host sits in 203.0.113.0/24).
fn nat64_lab_in(mut lab: SiitLab, pool4: &str, extra: Value) -> SiitLab {
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    let o = cfg.as_object_mut().unwrap();
    o.remove("eamt");
    o.remove("general-path");
    o.insert("mode".into(), "nat64".into());
    o.insert("pool4".into(), serde_json::json!([{ "prefix": pool4 }]));
    for (k, v) in extra.as_object().unwrap() {
        o.insert(k.clone(), v.clone());
    }
    std::fs::write(&lab.config, cfg.to_string()).unwrap();
    lab.start(CTL);
    lab
}

/// Stateful NAT64 (#15) through an IPv4 router: traceroute (UDP and ICMP) shows the
/// translator, the router (its Time Exceeded mapped back through the BIB) and the host;
/// 3000-byte UDP datagrams cross intact both ways as fragments (the answer, too big for
/// lowest-ipv6-mtu, cut by the kernel in the general path and mapped by its first
/// fragment), and so does a 3000-byte ICMP echo and its reply; path MTU discovery works both ways: an IPv4 client's upload to an
/// IPv6-only server behind a narrower IPv6 link (the translator's Fragmentation Needed
/// quoting the port the client sent to), and the IPv6 host's upload across a narrower
/// IPv4 link (the router's Fragmentation Needed mapped back as Packet Too Big).
#[test]
fn stateful_nat64_traceroute_pmtud_and_fragments() {
    let bib = serde_json::json!({"bib": [{"protocol": "tcp", "ipv6": format!("[{V6_HOST}]:5300"), "ipv4": "192.0.2.8:8080"}]});
    let mut lab = nat64_lab_in(SiitLab::routed(), "192.0.2.8/32", bib);
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    for (flag, what) in [("", "UDP"), ("-I", "ICMP")] {
        let out =
            lab.lab.must_in(&v6, &format!("traceroute -6 {flag} -n -q 1 -w 2 -m 6 {ROUTED_V4_HOST_AS_V6}"));
        assert_eq!(
            hops(&out),
            ["2001:db8:6::1", ROUTER4_AS_V6, ROUTED_V4_HOST_AS_V6],
            "{what} traceroute through the PLAT:\n{out}"
        );
    }
    let s = lab.stats(CTL);
    assert!(packets(&s, "xlat_4to6_icmp_error") >= 4, "the router's and the host's errors mapped: {s}");

    one_datagram(&mut lab.lab, &v6, &v4, ROUTED_V4_HOST_AS_V6, 5355, 3000);
    lab.lab.spawn_in(&v4, &format!("python3 {} udp-echo 5356", peers()));
    wait_listening(&lab.lab, &v4, 5356, "udp");
    let out =
        lab.lab.must_in(&v6, &format!("python3 {} udp-roundtrip {ROUTED_V4_HOST_AS_V6} 5356 3000", peers()));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "3000 bytes there and back: {out}");
    let s = lab.stats(CTL);
    assert!(packets(&s, "pass_general_path") >= 2, "the answer's fragments took the general path: {s}");
    // An echo of 3000 bytes, both ways in fragments, its identifier mapped.
    let out = lab.lab.must_in(&v6, &format!("ping -6 -c 3 -i 0.3 -W 2 -s 3000 {ROUTED_V4_HOST_AS_V6}"));
    assert!(
        out.contains("3 received") && !out.contains("wrong data"),
        "ping -s 3000 through the PLAT:\n{out}"
    );
    let s = lab.stats(CTL);
    assert!(packets(&s, "xlat_icmp_fragment_held") >= 6, "first fragments held: {s}");

    // An IPv4 client uploads to the IPv6-only server (static entry 192.0.2.8:8080)
    // behind a 1400-byte IPv6 link the client does not know about.
    lab.lab.must_in(&lab.x, "ip link set to6 mtu 1400");
    lab.lab.spawn_in(&v6, &format!("python3 {} tcp-sink 5300", peers()));
    wait_listening(&lab.lab, &v6, 5300, "tcp");
    let out =
        lab.lab.must_in(&v4, &format!("timeout 60 python3 {} tcp-send 192.0.2.8 8080 4194304", peers()));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "upload through the forward after PMTUD: {out}");
    let pmtu = lab.lab.must_in(&v4, "ip route get 192.0.2.8");
    assert!(pmtu.contains("mtu 1380"), "the IPv4 client learned 1400 - 20: {pmtu}");
    lab.lab.must_in(&lab.x, "ip link set to6 mtu 1500");

    // The IPv6 host uploads across a 1280-byte IPv4 link behind the router.
    lab.set_v4_mtu_step(1280);
    lab.lab.spawn_in(&v4, &format!("python3 {} tcp-sink 5002", peers()));
    wait_listening(&lab.lab, &v4, 5002, "tcp");
    let out = lab.lab.must_in(
        &v6,
        &format!("timeout 60 python3 {} tcp-send {ROUTED_V4_HOST_AS_V6} 5002 4194304", peers()),
    );
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "upload across the MTU step: {out}");
    let pmtu = lab.lab.must_in(&v6, &format!("ip -6 route get {ROUTED_V4_HOST_AS_V6}"));
    assert!(pmtu.contains("mtu 1300"), "the IPv6 host learned 1280 + 20: {pmtu}");
    let s = lab.stats(CTL);
    assert_eq!(packets(&s, "drop_nat_icmp_error_no_session"), 0, "{s}");
}

/// Stateful NAT64 logging and port blocks (#15): with `bib-log` every BIB entry the
/// data path makes is written as a JSON line (time, event, protocol, both transport
/// addresses) and every one the sweep ends too; with port blocks (RFC 7422) each host
/// of 2001:db8:6::/124 maps into its own 2048 ports (::2 to 5120-7167, ::3 to
/// 7168-9215), and `nat64-ctl port-block` tells who held an IPv4 transport address,
/// from the running instance and from the configuration file alone. A reload that
/// would move the log is refused, the instance unchanged.
#[test]
fn stateful_nat64_bib_log_and_port_blocks() {
    let log = std::env::temp_dir().join(format!("nat64-bib-{}.jsonl", nat64_tests::lab::unique_tag()));
    let extra = serde_json::json!({
        "bib-log": log.to_string_lossy(),
        "port-block-size": 2048,
        "port-block-prefix": "2001:db8:6::/124",
        "port-block-host-length": 128,
    });
    let mut lab = nat64_lab(extra);
    lab.lab.files.push(log.clone());
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    for src in [V6_HOST, V6_SPARE] {
        let out = lab.lab.must_in(&v6, &format!("ping -6 -c 2 -i 0.2 -W 2 -I {src} {V4_HOST_AS_V6}"));
        assert!(out.contains("2 received"), "ping from {src}:\n{out}");
    }
    lab.lab.spawn_in(&v4, &format!("python3 {} udp-whoami 5200", peers()));
    wait_listening(&lab.lab, &v4, 5200, "udp");
    let out = lab.lab.must_in(&v6, &format!("python3 {} udp-ask {V4_HOST_AS_V6} 5200", peers()));
    assert_eq!(out.trim(), "203.0.113.8");

    // Every mapping inside its host's block.
    let out = lab.ctl(CTL, &["session", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("session list --json");
    let mut udp_v4 = String::new();
    for s in list.as_array().unwrap() {
        let v6a = s["ipv6"].as_str().unwrap();
        let v4a: std::net::SocketAddrV4 = s["ipv4"].as_str().unwrap().parse().unwrap();
        let range = if v6a.starts_with(&format!("[{V6_HOST}]")) { 5120..=7167 } else { 7168..=9215 };
        assert!(range.contains(&v4a.port()), "{v6a} -> {v4a} outside its block");
        if s["protocol"] == "udp" {
            udp_v4 = v4a.to_string();
        }
    }
    assert!(!udp_v4.is_empty(), "{list}");
    let out = lab.ctl(CTL, &["port-block", &udp_v4]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{udp_v4} -> {V6_HOST}/128"), "{out:?}");
    let config = lab.config.to_string_lossy().into_owned();
    let out = lab.ctl(CTL, &["port-block", "--config", &config, V6_SPARE]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{V6_SPARE} -> 203.0.113.8 ports 7168-9215"),
        "{out:?}"
    );
    let out = lab.ctl(CTL, &["port-block", "203.0.113.8"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give IPV4:PORT"), "{out:?}");

    // The log: a bib-create line for each entry made (two hosts' pings, one UDP).
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    };
    let created = |v: &[Value]| v.iter().filter(|l| l["event"] == "bib-create").count();
    assert!(wait_until(Duration::from_secs(5), || created(&lines()) >= 3), "{:?}", lines());
    let all = lines();
    for l in &all {
        let t = l["time"].as_str().unwrap();
        assert!(t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T', "RFC 3339 UTC: {l}");
        assert!(l["ipv4"].as_str().unwrap().starts_with("203.0.113.8:"), "{l}");
    }
    assert!(
        all.iter().any(|l| l["protocol"] == "udp"
            && l["ipv4"] == udp_v4.as_str()
            && l["ipv6"].as_str().unwrap().starts_with(&format!("[{V6_HOST}]:"))),
        "the UDP mapping logged: {all:?}"
    );
    assert!(all.iter().any(
        |l| l["protocol"] == "icmp" && l["ipv6"].as_str().unwrap().starts_with(&format!("[{V6_SPARE}]:"))
    ));

    // Ended by the sweep: a short ICMP lifetime, a new ping, its bib-expire line.
    let out = lab.ctl(CTL, &["set", "icmp-timeout", "1"]);
    assert!(out.status.success(), "{out:?}");
    lab.lab.must_in(&v6, &format!("ping -6 -c 1 -W 2 {V4_HOST_AS_V6}"));
    let expired = wait_until(Duration::from_secs(10), || lines().iter().any(|l| l["event"] == "bib-expire"));
    assert!(expired, "a bib-expire line: {:?}", lines());
    let s = lab.stats(CTL);
    assert_eq!(packets(&s, "nat_log_lost"), 0, "{s}");

    // Moving the log needs a restart: a reload says so and changes nothing.
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    cfg["bib-log"] = "stdout".into();
    std::fs::write(&lab.config, cfg.to_string()).unwrap();
    let out = lab.ctl(CTL, &["reload"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("bib-log: a reload does not change"),
        "{out:?}"
    );
    std::fs::write(&lab.config, text).unwrap();
}

/// pmacct's nfacctd listening for IPFIX on 127.0.0.1:4739 in the lab's IPv4 side,
/// printing what it decodes (the NAT record's fields, `extra` aggregates more, with
/// `primitives` defining them) as JSON lines every second: the lab's scratch
/// directory and the file of lines.
fn start_nfacctd(
    lab: &mut SiitLab,
    extra: &str,
    primitives: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("nat64-natlog-{}", lab.lab.tag));
    std::fs::create_dir_all(&dir).unwrap();
    lab.lab.dirs.push(dir.clone());
    let records = dir.join("ipfix.json");
    let conf = dir.join("nfacctd.conf");
    let mut text = format!(
        "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: 4739\nplugins: print[nat]\n\
         aggregate[nat]: src_host, src_port, post_nat_src_host, post_nat_src_port, proto, nat_event, \
         timestamp_start{extra}\nprint_output[nat]: json\nprint_output_file[nat]: {}\n\
         print_output_file_append[nat]: true\nprint_refresh_time[nat]: 1\n\
         timestamps_since_epoch[nat]: true\n",
        records.display()
    );
    if !primitives.is_empty() {
        let list = dir.join("primitives.lst");
        std::fs::write(&list, primitives).unwrap();
        text.push_str(&format!("aggregate_primitives: {}\n", list.display()));
    }
    std::fs::write(&conf, text).unwrap();
    let x = lab.x.clone();
    lab.lab.spawn_in(&x, &format!("nfacctd -f {}", conf.display()));
    wait_listening(&lab.lab, &x, 4739, "udp");
    (dir, records)
}

/// The JSON lines the collector wrote to `records` so far.
fn collector_lines(records: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(records)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Two pings (one from each IPv6 host) and a UDP exchange through the lab's PLAT:
/// three mappings, two of the first host's.
fn three_mappings(lab: &mut SiitLab) {
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    for src in [V6_HOST, V6_SPARE] {
        lab.lab.must_in(&v6, &format!("ping -6 -c 1 -W 2 -I {src} {V4_HOST_AS_V6}"));
    }
    lab.lab.spawn_in(&v4, &format!("python3 {} udp-whoami 5200", peers()));
    wait_listening(&lab.lab, &v4, 5200, "udp");
    lab.lab.must_in(&v6, &format!("python3 {} udp-ask {V4_HOST_AS_V6} 5200", peers()));
}

/// Unix time in ms.
fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The collector's `timestamp_start` (observationTimeMilliseconds, printed as
/// seconds.microseconds) in ms, checked to lie within `t0..t1` (a second's slack).
fn stamped_within(r: &Value, t0: i64, t1: i64) -> i64 {
    let ts = r["timestamp_start"].as_str().unwrap();
    let ms = (ts.parse::<f64>().unwrap() * 1000.0).round() as i64;
    assert!((t0 - 1000..=t1 + 1000).contains(&ms), "{ts} not within the run ({t0}..{t1} ms): {r}");
    ms
}

/// Carrier logging: the BIB entries of a PLAT run reach a real IPFIX collector (pmacct's
/// nfacctd, started first) as RFC 8158 NAT64 BIB records, and a syslog socket as RFC
/// 5424 messages: every mapping `session list` shows, with its IPv6 source and port,
/// pool4 address and port, protocol, event and time, and no destination anywhere.
#[test]
fn stateful_nat64_logs_to_an_ipfix_collector_and_syslog() {
    use std::os::unix::net::UnixDatagram;
    let mut lab = SiitLab::new();
    let (dir, records) = start_nfacctd(&mut lab, "", "");
    let sock_path = dir.join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let extra = serde_json::json!({"nat-log": [
        {"ipfix": "127.0.0.1:4739"},
        {"syslog": format!("unix:{}", sock_path.display())},
    ]});
    let t0 = unix_ms();
    let mut lab = nat64_lab_in(lab, "203.0.113.8/32", extra);
    three_mappings(&mut lab);
    let t1 = unix_ms();
    // Every mapping, as `session list` has it: (protocol, IPv6 side, IPv4 side).
    let list: Value = serde_json::from_slice(&lab.ctl(CTL, &["session", "list", "--json"]).stdout).unwrap();
    let mappings: BTreeSet<(String, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["protocol"].as_str().unwrap().into(),
                s["ipv6"].as_str().unwrap().into(),
                s["ipv4"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(mappings.len(), 3, "two pings and a UDP exchange: {list}");
    let no_destination = |text: &str| {
        assert!(!text.contains(V4_HOST) && !text.contains(V4_HOST_AS_V6), "a destination is logged: {text}");
    };

    // Syslog: one RFC 5424 message a mapping.
    let mut logged = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    while logged.len() < mappings.len() && Instant::now() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        no_destination(&m);
        let head: Vec<&str> = m.splitn(7, ' ').collect();
        assert_eq!((head[0], head[3], head[5]), ("<134>1", "nat64", "bib-create"), "{m}");
        assert!(head[1].ends_with('Z') && head[1].len() == 24, "RFC 3339 UTC time: {m}");
        let sd = |k: &str| {
            let at = m.find(&format!(" {k}=\"")).unwrap_or_else(|| panic!("no {k} in {m}")) + k.len() + 3;
            m[at..at + m[at..].find('"').unwrap()].to_string()
        };
        assert!(head[6].starts_with("[nat64@32473 "), "{m}");
        let v6 = format!("[{}]:{}", sd("ipv6"), sd("ipv6-port"));
        let v4 = format!("{}:{}", sd("ipv4"), sd("ipv4-port"));
        logged.insert((sd("protocol"), v6, v4));
    }
    assert_eq!(logged, mappings, "syslog");

    // IPFIX: the collector writes what it decoded every second.
    let decoded = || collector_lines(&records);
    assert!(
        wait_until(Duration::from_secs(15), || decoded().len() >= mappings.len()),
        "the collector decoded {:?}",
        decoded()
    );
    let text = std::fs::read_to_string(&records).unwrap();
    no_destination(&text);
    let mut got = BTreeSet::new();
    for r in decoded() {
        assert_eq!(r["nat_event"], 10, "NAT64 BIB create (RFC 8158): {r}");
        let proto = r["ip_proto"].as_str().unwrap().to_lowercase();
        let v6 = format!("[{}]:{}", r["ip_src"].as_str().unwrap(), r["port_src"]);
        let v4 = format!("{}:{}", r["post_nat_ip_src"].as_str().unwrap(), r["post_nat_port_src"]);
        let ms = stamped_within(&r, t0, t1);
        println!("collector: {proto} {v6} -> {v4} at {ms} ms");
        got.insert((proto, v6, v4));
    }
    assert_eq!(got, mappings, "IPFIX");
}

/// Dynamic port blocks, logged per block: each host (a subscriber of its own) takes a
/// block of 512 ports with its first mapping; the collector decodes one RFC 8158 port
/// block allocation record for each (natEvent 16, the host, the pool4 address, the
/// first and last port, the time), and every mapping `session list` shows lies in its
/// host's logged block; no BIB entry and no destination is logged. `nat64-ctl
/// port-block` names the host holding a mapped port. Flushing the mappings gives the
/// blocks back, each logged (natEvent 17), to the collector and to syslog alike. Events
/// lost for want of room in the ring are said in nat64-ctl's log.
#[test]
fn stateful_nat64_dynamic_port_blocks_are_logged_per_block() {
    use std::os::unix::net::UnixDatagram;
    let mut lab = SiitLab::new();
    let (dir, records) = start_nfacctd(
        &mut lab,
        ", port_range_start, port_range_end",
        "name=port_range_start field_type=361 len=2 semantics=u_int\n\
         name=port_range_end field_type=362 len=2 semantics=u_int\n",
    );
    let sock_path = dir.join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let extra = serde_json::json!({
        "port-block-size": 512,
        "subscriber-prefix-length": 128,
        "port-reuse-delay": 0,
        "nat-log": [{"ipfix": "127.0.0.1:4739"}, {"syslog": format!("unix:{}", sock_path.display())}],
    });
    let t0 = unix_ms();
    let mut lab = nat64_lab_in(lab, "203.0.113.8/31", extra);
    three_mappings(&mut lab);
    let t1 = unix_ms();
    let list: Value = serde_json::from_slice(&lab.ctl(CTL, &["session", "list", "--json"]).stdout).unwrap();
    let mappings: Vec<(String, std::net::SocketAddrV4)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let v6: std::net::SocketAddrV6 = s["ipv6"].as_str().unwrap().parse().unwrap();
            (v6.ip().to_string(), s["ipv4"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(mappings.len(), 3, "two pings and a UDP exchange: {list}");
    let no_destination = |text: &str| {
        assert!(!text.contains(V4_HOST) && !text.contains(V4_HOST_AS_V6), "a destination is logged: {text}");
    };

    // The collector: one allocation a host, and each mapping in its host's block.
    let allocations = |event: u64| -> Vec<Value> {
        collector_lines(&records).into_iter().filter(|r| r["nat_event"] == event).collect()
    };
    assert!(
        wait_until(Duration::from_secs(15), || allocations(16).len() >= 2),
        "the collector decoded {:?}",
        collector_lines(&records)
    );
    let text = std::fs::read_to_string(&records).unwrap();
    no_destination(&text);
    assert!(collector_lines(&records).iter().all(|r| r["nat_event"] == 16), "only blocks are logged: {text}");
    let mut blocks = BTreeMap::new();
    for r in allocations(16) {
        stamped_within(&r, t0, t1);
        let host = r["ip_src"].as_str().unwrap().to_string();
        let first: u16 = r["port_range_start"].as_str().unwrap().parse().unwrap();
        let last: u16 = r["port_range_end"].as_str().unwrap().parse().unwrap();
        assert_eq!(last - first + 1, 512, "{r}");
        let v4: std::net::Ipv4Addr = r["post_nat_ip_src"].as_str().unwrap().parse().unwrap();
        assert!(blocks.insert(host, (v4, first, last)).is_none(), "one block a host: {text}");
    }
    let hosts: BTreeSet<String> = [V6_HOST, V6_SPARE].iter().map(|h| h.to_string()).collect();
    assert_eq!(blocks.keys().cloned().collect::<BTreeSet<_>>(), hosts, "{text}");
    for (host, v4) in &mappings {
        let (a, first, last) = blocks[host];
        assert!(*v4.ip() == a && (first..=last).contains(&v4.port()), "{host} -> {v4} outside {blocks:?}");
        // The abuse desk's question, asked of the running instance.
        let out = lab.ctl(CTL, &["port-block", &v4.to_string()]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(line.starts_with(&format!("{v4} -> {host}/128 (block {first}-{last} since ")), "{line}");
    }

    // Syslog: the same two allocations.
    let syslog = |want: &str, n: usize| {
        let mut got = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 2048];
        while got.len() < n && Instant::now() < deadline {
            let Ok(len) = sock.recv(&mut buf) else { continue };
            let m = String::from_utf8_lossy(&buf[..len]).into_owned();
            no_destination(&m);
            let head: Vec<&str> = m.splitn(7, ' ').collect();
            assert_eq!((head[0], head[5]), ("<134>1", want), "{m}");
            let sd = |k: &str| {
                let at = m.find(&format!(" {k}=\"")).unwrap_or_else(|| panic!("no {k} in {m}")) + k.len() + 3;
                m[at..at + m[at..].find('"').unwrap()].to_string()
            };
            let (first, last) =
                sd("ports").split_once('-').map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())).unwrap();
            let host = sd("subscriber").trim_end_matches("/128").to_string();
            got.insert(host, (sd("ipv4").parse::<std::net::Ipv4Addr>().unwrap(), first, last));
        }
        got
    };
    assert_eq!(syslog("block-allocate", 2), blocks, "syslog");
    let status: Value = serde_json::from_slice(&lab.ctl(CTL, &["status", "--json"]).stdout).unwrap();
    let held = &status["nat64"]["dynamic-port-blocks"];
    assert_eq!(
        (held["held"].as_u64(), held["total"].as_u64(), held["ports-in-use"].as_u64()),
        (Some(2), Some(252), Some(3)),
        "{held}"
    );

    // The mappings flushed: each block given back, logged.
    lab.ctl(CTL, &["session", "flush"]);
    assert!(
        wait_until(Duration::from_secs(15), || allocations(17).len() >= 2),
        "the collector decoded {:?}",
        collector_lines(&records)
    );
    let released: BTreeMap<String, (std::net::Ipv4Addr, u16, u16)> = allocations(17)
        .iter()
        .map(|r| {
            let first: u16 = r["port_range_start"].as_str().unwrap().parse().unwrap();
            let last: u16 = r["port_range_end"].as_str().unwrap().parse().unwrap();
            (
                r["ip_src"].as_str().unwrap().to_string(),
                (r["post_nat_ip_src"].as_str().unwrap().parse().unwrap(), first, last),
            )
        })
        .collect();
    assert_eq!(released, blocks, "each block given back");
    assert_eq!(syslog("block-release", 2), blocks, "syslog");
    let s = lab.stats(CTL);
    assert_eq!((packets(&s, "nat_block_allocated"), packets(&s, "nat_block_released")), (2, 2), "{s}");

    // Events the ring had no room for (counted by the data path as nat_log_lost; 7
    // counted here, in the pinned counters) are said in nat64-ctl's log.
    let mut tables =
        nat64_ctl::tables::Tables::open_pinned(&nat64_ctl::load::pin_dir(&lab.instance)).unwrap();
    tables.add_event(nat64_common::counters::Counter::NatLogLost, 7, 0).unwrap();
    thread::sleep(Duration::from_secs(11));
    let out = lab.stop();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("nat-log: 7 events lost in the last 10s"), "{log}");
}

/// A tiny port range (#15, RFC 6146 §3.5.1.1): pool4 lends two ports; two pings (each
/// with its own identifier) take them; the third gets ICMPv6 Destination Unreachable,
/// Address Unreachable from the translator, counted.
#[test]
fn stateful_nat64_tiny_port_range_is_exhausted_with_the_rfc_answer() {
    let lab = nat64_lab(serde_json::json!({"pool4": [{"prefix": "203.0.113.8/32", "ports": "5000-5001"}]}));
    let v6 = lab.v6.clone();
    for i in 0..2 {
        let out = lab.lab.must_in(&v6, &format!("ping -6 -c 1 -W 2 {V4_HOST_AS_V6}"));
        assert!(out.contains("1 received"), "ping {i} takes a port:\n{out}");
    }
    let out = lab.lab.exec(&v6, &format!("ping -6 -c 1 -W 2 {V4_HOST_AS_V6}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success() && text.contains("From 2001:db8:6::1") && text.contains("Address unreachable"),
        "the third ping: {text}"
    );
    let s = lab.stats(CTL);
    assert!(packets(&s, "drop_nat_ports_exhausted") >= 1 && packets(&s, "icmp_sent") >= 1, "{s}");
}

/// TCP simultaneous open through the PLAT (RFC 6146 §3.5.2.2, RFC 5382 REQ-4): an IPv4
/// host and an IPv6 host connect to each other at once, each bound to a port of its
/// own, neither listening. The IPv4 host's SYN to a pool4 port is held until the IPv6
/// host's SYN takes that port, and the connection opens: each side reads what the
/// other sent. An IPv4 host connecting to a pool4 port that no one takes is refused
/// (the Port Unreachable nat64-ctl sends for its SYN) after the 6 s the SYN is held.
#[test]
fn stateful_nat64_tcp_simultaneous_open() {
    let lab = nat64_lab(serde_json::json!({}));
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    let peers_py = peers();
    let v4_side = {
        let (ns, peers_py) = (v4.clone(), peers_py.clone());
        std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "timeout", "30", "python3", &peers_py, "tcp-simopen"])
                .args([V4_HOST, "5555", "203.0.113.8", "61000", "0", "from-ipv4"])
                .output()
                .expect("python3")
        })
    };
    // The IPv4 SYN goes first (and is held); the IPv6 one a second later.
    std::thread::sleep(Duration::from_millis(1200));
    let got6 = lab.lab.must_in(
        &v6,
        &format!("timeout 30 python3 {peers_py} tcp-simopen {V6_HOST} 6000 {V4_HOST_AS_V6} 5555 0 from-ipv6"),
    );
    let out4 = v4_side.join().unwrap();
    assert!(out4.status.success(), "the IPv4 side: {}", String::from_utf8_lossy(&out4.stderr));
    assert_eq!(got6.trim(), "from-ipv4", "the IPv6 host reads the IPv4 host");
    assert_eq!(String::from_utf8_lossy(&out4.stdout).trim(), "from-ipv6", "and the other way");
    let s = lab.stats(CTL);
    assert!(packets(&s, "nat_simultaneous_open") == 1 && packets(&s, "drop_nat_syn_held") >= 1, "{s}");
    let sessions = lab.ctl(CTL, &["session", "list", "--json"]);
    let list: Value = serde_json::from_slice(&sessions.stdout).expect("session list --json");
    assert!(
        list.as_array().unwrap().iter().any(|x| x["protocol"] == "tcp"
            && x["ipv4"] == "203.0.113.8:61000"
            && x["ipv6"] == format!("[{V6_HOST}]:6000")),
        "the IPv6 host's mapping took the port the IPv4 SYN was sent to: {list}"
    );

    // Nobody takes 203.0.113.8:61001: refused after 6 s.
    let out = lab.lab.must_in(&v4, &format!("python3 {peers_py} tcp-refused 203.0.113.8 61001 20"));
    let secs: f64 = out
        .trim()
        .strip_prefix("refused ")
        .unwrap_or_else(|| panic!("connect to an unheld pool4 port: {out}"))
        .parse()
        .unwrap();
    assert!(
        (5.5..12.0).contains(&secs),
        "refused after {secs} s: the SYN is held 6 s, answered in the second after"
    );
    let s = lab.stats(CTL);
    assert!(packets(&s, "nat_syn_answered") >= 1 && packets(&s, "drop_nat_syn_pending") >= 1, "{s}");
}

/// Static BIB entries (#15): port forwards that let IPv4 clients reach an IPv6-only
/// server through a pool4 transport address, from the configuration (TCP, 4 MiB with
/// SHA-256 checked; from the IPv6 side too, hairpinned through pool6, and an ICMP echo
/// hairpinned back to the host that sent it) and added live
/// (UDP: the server sees the client's pool6 address); `bib list` shows them; removed,
/// the forward is gone.
#[test]
fn stateful_nat64_static_bib_forwards_ipv4_clients_to_an_ipv6_server() {
    let bib = serde_json::json!({"bib": [{"protocol": "tcp", "ipv6": format!("[{V6_HOST}]:5300"), "ipv4": "203.0.113.8:8080"}]});
    let mut lab = nat64_lab(bib);
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    lab.lab.spawn_in(&v6, &format!("python3 {} tcp-sink 5300", peers()));
    wait_listening(&lab.lab, &v6, 5300, "tcp");
    let out =
        lab.lab.must_in(&v4, &format!("timeout 20 python3 {} tcp-send 203.0.113.8 8080 4194304", peers()));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "TCP through the static BIB entry: {out}");

    // Hairpinning (RFC 6146 §3.8): the IPv6 side reaches the forward through pool6.
    lab.lab.spawn_in(&v6, &format!("python3 {} tcp-sink 5300", peers()));
    wait_listening(&lab.lab, &v6, 5300, "tcp");
    let out = lab
        .lab
        .must_in(&v6, &format!("timeout 20 python3 {} tcp-send 64:ff9b:1::cb00:7108 8080 1048576", peers()));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert!(parts.len() == 2 && parts[0] == parts[1], "TCP hairpinned to the forward: {out}");
    assert!(packets(&lab.stats(CTL), "xlat_hairpin") > 10, "{}", lab.stats(CTL));
    // A hairpinned echo: the host pings its own pool4 address through pool6; request and
    // reply come back to it as from that address.
    let hairpins = packets(&lab.stats(CTL), "xlat_hairpin");
    let out = lab.lab.must_in(&v6, "ping -6 -c 2 -i 0.2 -W 2 64:ff9b:1::cb00:7108");
    assert!(out.contains("2 received"), "hairpinned echo:\n{out}");
    assert!(packets(&lab.stats(CTL), "xlat_hairpin") >= hairpins + 4, "{}", lab.stats(CTL));

    let out = lab.ctl(CTL, &["bib", "add", "udp", "[2001:db8:6::2]:5301", "203.0.113.8:5301"]);
    assert!(out.status.success(), "bib add: {}", String::from_utf8_lossy(&out.stderr));
    lab.lab.spawn_in(&v6, &format!("python3 {} udp-whoami 5301", peers()));
    wait_listening(&lab.lab, &v6, 5301, "udp");
    let out = lab.lab.must_in(&v4, &format!("python3 {} udp-ask 203.0.113.8 5301", peers()));
    assert_eq!(out.trim(), V4_HOST_AS_V6, "the server sees the client's pool6 address");
    let out = lab.ctl(CTL, &["bib", "add", "udp", "[2001:db8:6::2]:5302", "198.51.100.7:5302"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a pool4 address"),
        "{out:?}"
    );

    let out = lab.ctl(CTL, &["bib", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("bib list --json");
    let statics: Vec<&Value> = list.as_array().unwrap().iter().filter(|b| b["static"] == true).collect();
    assert_eq!(statics.len(), 2, "{list}");
    assert!(statics.iter().any(|b| b["protocol"] == "tcp" && b["ipv4"] == "203.0.113.8:8080"), "{list}");

    let out = lab.ctl(CTL, &["bib", "del", "tcp", "203.0.113.8:8080"]);
    assert!(out.status.success(), "bib del: {}", String::from_utf8_lossy(&out.stderr));
    let tcp_before = packets(&lab.stats(CTL), "xlat_4to6_tcp");
    lab.lab.spawn_in(&v6, &format!("python3 {} tcp-sink 5300", peers()));
    wait_listening(&lab.lab, &v6, 5300, "tcp");
    let out = lab.lab.exec(&v4, &format!("timeout 3 python3 {} tcp-send 203.0.113.8 8080 1000", peers()));
    assert!(!out.status.success(), "no forward once the entry is gone");
    let s = lab.stats(CTL);
    // Its SYN finds no mapping: held for a simultaneous open, never forwarded.
    assert!(packets(&s, "drop_nat_syn_held") >= 1 && packets(&s, "xlat_4to6_tcp") == tcp_before, "{s}");
}

/// Carrier scale in miniature: a stateful NAT64 with `max-sessions` 1024 filled from 32
/// IPv6 sources (ICMP echo, one mapping per source and identifier, a raw socket each).
/// When the table is full, an established UDP flow (made before) still crosses both
/// ways, a new flow gets nothing and is counted (`drop_nat_table_full`), and the table
/// never holds more than 1024. When the sources stop, their sessions run out (ICMP
/// lifetime 2 s), the in-kernel sweep ends them and their mappings (ports held back
/// 1 s), reports what each run cost in `status`, and the kernel memory the tables hold
/// (as the kernel accounts it per map) comes back to what it was before the fill.
#[test]
fn stateful_nat64_full_table_keeps_established_flows_and_recovers() {
    let extra = serde_json::json!({"max-sessions": 1024, "icmp-timeout": 2, "port-reuse-delay": 1});
    let mut lab = nat64_lab(extra);
    let (v6, v4) = (lab.v6.clone(), lab.v4.clone());
    let sources: Vec<String> = (0..32).map(|i| format!("2001:db8:6::1{i:02x}")).collect();
    for s in &sources {
        lab.lab.must_in(&v6, &format!("ip addr add {s}/64 dev eth0 nodad"));
    }
    lab.lab.spawn_in(&v4, &format!("python3 {} udp-whoami 5200", peers()));
    wait_listening(&lab.lab, &v4, 5200, "udp");
    // A UDP flow from a fixed port: each call is one more exchange of the same flow.
    let ask = |lab: &SiitLab, sport: u16| -> String {
        let py = format!(
            "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('{V6_HOST}',{sport}))\n\
             s.settimeout(1)\ns.sendto(b'who',('{V4_HOST_AS_V6}',5200))\n\
             try:\n  print(s.recv(100).decode())\nexcept OSError:\n  print('timeout')\n"
        );
        lab.lab.must_in(&v6, &format!("python3 -c \"{py}\"")).trim().to_string()
    };
    assert_eq!(ask(&lab, 40123), "203.0.113.8", "the established flow, before the fill");
    let status = |lab: &SiitLab| -> Value {
        let out = lab.ctl(CTL, &["status", "--json"]);
        assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json")
    };
    let n = |v: &Value, proto: &str, what: &str| v["nat64"]["protocols"][proto][what].as_u64().unwrap();
    assert_eq!(status(&lab)["nat64"]["max-sessions"], 1024);
    // What the kernel accounts to the session and BIB tables (fdinfo "memlock", which
    // for tables that allocate per entry follows the entries held).
    let dir = nat64_ctl::load::pin_dir(&lab.instance);
    let memlock = |name: &str| -> u64 {
        let data = aya::maps::MapData::from_pin(dir.join(name)).expect("pinned map");
        nat64_ctl::tables::nat::memlock(&data).expect("fdinfo memlock")
    };
    let tables = ["SESSIONS", "BIB4", "BIB6", "NAT_ADF", "NAT_SUBSCRIBERS"];
    let mem = || -> u64 { tables.iter().map(|t| memlock(t)).sum() };
    let before = mem();

    // The fill: every source sends echo requests with 40 identifiers, twice a second,
    // for 25 s (long enough for the checks below on a loaded machine): 1,280 flows for
    // 1,024 places.
    let filler = format!(
        "import socket,struct,time\nsocks=[]\nfor a in '{}'.split(','):\n  s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_ICMPV6)\n  s.bind((a,0))\n  socks.append(s)\n\
         end=time.time()+25\nwhile time.time()<end:\n  for i,s in enumerate(socks):\n    for j in range(40):\n      s.sendto(struct.pack('!BBHHH',128,0,0,1000+i*40+j,1)+b'fill',('{V4_HOST_AS_V6}',0))\n  time.sleep(0.5)\n",
        sources.join(",")
    );
    let script = std::env::temp_dir().join(format!("nat64-fill-{}.py", lab.instance));
    std::fs::write(&script, filler).unwrap();
    lab.lab.files.push(script.clone());
    lab.lab.spawn_in(&v6, &format!("python3 {}", script.display()));
    let full = wait_until(Duration::from_secs(8), || packets(&lab.stats(CTL), "drop_nat_table_full") > 0);
    assert!(full, "the table filled: {}", lab.stats(CTL));
    thread::sleep(Duration::from_secs(2));
    let s = status(&lab);
    let (bib, sessions) = (n(&s, "icmp", "bib") + n(&s, "udp", "bib"), n(&s, "icmp", "sessions"));
    assert!((1000..=1024).contains(&bib), "the BIB full, never over: {bib}\n{s}");
    assert!((1000..=1024).contains(&sessions), "{sessions}\n{s}");
    let at_full = mem();
    assert!(at_full > before, "the tables took memory: {before} -> {at_full}");
    // `status` says what each table holds, as the kernel accounts it.
    let shown = &s["nat64"]["memory"];
    for t in tables {
        assert!(shown[t].as_u64().is_some_and(|b| b > 0), "status shows {t}'s memory: {shown}");
    }
    let text = String::from_utf8_lossy(&lab.ctl(CTL, &["status"]).stdout).to_string();
    assert!(text.contains(" kB in the NAT tables (") && text.contains("SESSIONS "), "status text:\n{text}");
    // Established: still both ways; new: nothing, counted.
    for _ in 0..3 {
        assert_eq!(ask(&lab, 40123), "203.0.113.8", "the established flow with the table full");
    }
    let refused = packets(&lab.stats(CTL), "drop_nat_table_full");
    assert_eq!(ask(&lab, 40124), "timeout", "a new flow with the table full");
    assert!(packets(&lab.stats(CTL), "drop_nat_table_full") > refused, "counted");
    let out = lab.lab.exec(&v6, &format!("ping -6 -c 1 -W 1 {V4_HOST_AS_V6}"));
    assert!(!out.status.success(), "a new ping with the table full");

    // The sources stop (25 s): their sessions end 2 s later, their ports 1 s after that.
    let recovered = wait_until(Duration::from_secs(30), || {
        let s = status(&lab);
        n(&s, "icmp", "sessions") == 0 && n(&s, "icmp", "bib") == 0
    });
    let s = status(&lab);
    assert!(recovered, "the fill's sessions and mappings ended:\n{s}");
    assert_eq!(
        (n(&s, "udp", "bib"), n(&s, "udp", "sessions")),
        (1, 1),
        "the established UDP flow stays (120 s)"
    );
    let w = &s["nat64"]["sweep"];
    assert!(w["runs"].as_u64().unwrap() > 5, "the sweep ran once a second: {w}");
    let ms = w["ms"].as_f64().unwrap();
    eprintln!("sweep: {w}");
    assert!(ms < 1000.0, "a sweep of about 1,000 entries stays far below a second: {ms} ms");
    let st = lab.stats(CTL);
    assert!(packets(&st, "nat_session_expired") >= 1000 && packets(&st, "nat_bib_expired") >= 1000, "{st}");
    // The memory: back to what it was before the fill.
    let after = wait_until(Duration::from_secs(5), || mem() <= before + (at_full - before) / 100);
    assert!(after, "memory came back: before {before}, full {at_full}, after {}", mem());
    assert_eq!(ask(&lab, 40123), "203.0.113.8", "the established flow after it all");
    let out = lab.lab.must_in(&v6, &format!("ping -6 -c 2 -i 0.2 -W 2 {V4_HOST_AS_V6}"));
    assert!(out.contains("2 received"), "new flows again:\n{out}");
    // `session flush` ends what is left at once (the UDP flow and the ping's).
    let out = lab.ctl(CTL, &["session", "flush"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.starts_with("ended 2 sessions and 2 BIB entries in "), "{out:?}");
    let s = status(&lab);
    assert_eq!((n(&s, "udp", "sessions"), n(&s, "icmp", "sessions"), n(&s, "icmp", "bib")), (0, 0, 0), "{s}");
}
