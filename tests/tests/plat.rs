//! NAT64 PLAT end to end, the KVM-host setup: IPv6-only hosts (one namespace holding
//! HOSTS source addresses, and a "VM" namespace of its own) reach an IPv4-only HTTP
//! server through nat64's dynamic pool and the kernel's masquerade behind the
//! translator's one uplink address. Names resolve through unbound's DNS64.
//!
//! ```text
//!  [hosts] 2001:db8:100::1:0 .. +HOSTS --\
//!                                         [plat] pa, pb (XDP) -- nat64 (pool6 64:ff9b::/96,
//!  [vm]    2001:db8:200::2 --------------/          dynamic pool 10.64.0.0/23, unbound DNS64)
//!                                                  pu 192.0.2.1 (masquerade) -- 192.0.2.2 [up]
//!                                                                    www.v4only.test = 93.184.215.14
//! ```

use std::{collections::BTreeSet, process::Command, time::Instant};

use nat64_tests::lab::{Lab, json, packets, peers, sha256_file, start_dns64, wait_listening};
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
    let mut ctls = Vec::new();
    let mut instances = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let k1 = k + 1;
        lab.link(&r, &format!("to{k1}"), n, "north");
        lab.link(n, "south", &s, &format!("from{k1}"));
        lab.must_in(
            &r,
            &format!(
                "ip -6 addr add 2001:db8:{k1}::1/64 dev to{k1} nodad && ethtool -K to{k1} gro on >/dev/null"
            ),
        );
        lab.must_in(
            n,
            &format!(
                "ip -6 addr add 2001:db8:{k1}::2/64 dev north nodad && ip addr add 198.51.10{k1}.1/24 dev south && \
                 ip -6 route add default via 2001:db8:{k1}::1 && ip route add 203.0.113.0/24 via 198.51.10{k1}.2 && \
                 sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
            ),
        );
        lab.must_in(
            &s,
            &format!(
                "ip addr add 198.51.10{k1}.2/24 dev from{k1} && ip route add 192.0.2.{k1}/32 via 198.51.10{k1}.1 && \
                 ethtool -K from{k1} gro on >/dev/null"
            ),
        );
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
