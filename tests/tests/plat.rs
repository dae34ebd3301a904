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

use nat64_tests::lab::{Lab, must, peers, start_dns64, wait_until};
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

fn json(out: std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

/// The pool's (IPv6, IPv4) pairs.
fn pairs(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .expect("pool list --json is a list")
        .iter()
        .map(|m| (m["ipv6"].as_str().unwrap().to_string(), m["ipv4"].as_str().unwrap().to_string()))
        .collect()
}

fn counter(v: &Value, name: &str) -> u64 {
    v[name]["packets"].as_u64().unwrap_or_else(|| panic!("counter {name} missing"))
}

#[test]
fn ipv6_only_hosts_reach_an_ipv4_server_through_the_pool_behind_one_address() {
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
    let mut batch = format!("address add 2001:db8:100::1/64 dev ha{t}\n");
    for i in 0..HOSTS {
        batch += &format!("address add 2001:db8:100::1:{i:x}/128 dev ha{t} nodad\n");
    }
    let batch_file = std::env::temp_dir().join(format!("nat64-plat-{t}.batch"));
    std::fs::write(&batch_file, batch).unwrap();
    lab.files.push(batch_file.clone());
    lab.must_in(
        &hosts,
        &format!("ip -6 -batch {} && ip -6 route add default via {RESOLVER}", batch_file.display()),
    );
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
    let want_sha = must(&format!("sha256sum {} | cut -d' ' -f1", www.join("big").display()));
    lab.spawn_in(&up, &format!("python3 {} http-serve 8080 {}", peers(), www.display()));
    let listening = wait_until(std::time::Duration::from_secs(10), || {
        !String::from_utf8_lossy(&lab.exec(&up, "ss -Hltn sport = :8080").stdout).trim().is_empty()
    });
    assert!(listening, "the HTTP server did not start");

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
    let target = format!("64:ff9b::{}", {
        let o: std::net::Ipv4Addr = WEB.parse().unwrap();
        let b = o.octets();
        format!("{:x}:{:x}", u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]]))
    });
    let ping = lab.must_in(&hosts, &format!("ping -c 5 -i 0.2 -W 2 -I 2001:db8:100::2:0 {target}"));
    let rtts: Vec<&str> = ping.lines().filter_map(|l| l.split("time=").nth(1)).collect();
    assert_eq!(rtts.len(), 5, "{ping}");
    println!("ping from a new host (first one allocates): {}", rtts.join(", "));

    // HOSTS more, each from its own address, 32 at a time.
    let t2 = Instant::now();
    let out = lab.must_in(
        &hosts,
        &format!("python3 {} http-many www.v4only.test 8080 /whoami {FIRST_HOST} {HOSTS}", peers()),
    );
    println!("{HOSTS} hosts: first requests in {:?}", t2.elapsed());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), HOSTS, "{out}");
    assert!(lines.iter().all(|l| l.ends_with(&format!(" {UPLINK}"))), "every host seen as {UPLINK}:\n{out}");

    // One pool address per host, all distinct, all in the pool.
    let before = pairs(&json(lab.ctl(&plat, CTL, &instance, &["pool", "list", "--json"]), "pool list"));
    assert_eq!(before.len(), HOSTS + 2, "{before:?}");
    let v4s: BTreeSet<&String> = before.iter().map(|(_, a)| a).collect();
    assert_eq!(v4s.len(), HOSTS + 2, "addresses are not shared");
    assert!(v4s.iter().all(|a| a.starts_with("10.64.0.") || a.starts_with("10.64.1.")), "{v4s:?}");
    assert!(before.iter().any(|(h, _)| h == VM), "{before:?}");
    let stats = json(lab.ctl(&plat, CTL, &instance, &["stats", "--json"]), "stats");
    assert_eq!(counter(&stats, "pool_allocated"), (HOSTS + 2) as u64);
    assert_eq!(counter(&stats, "drop_pool_exhausted"), 0);
    let text =
        String::from_utf8_lossy(&lab.ctl(&plat, CTL, &instance, &["pool", "list"]).stdout).into_owned();
    assert!(text.contains("expires in") && text.contains(VM), "{text}");

    // A long download from the VM while nat64-ctl restarts: it completes, intact.
    let got = dir.join("got");
    let (vm2, got2) = (vm.clone(), got.clone());
    let download = std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &vm2, "curl", "-sS", "--max-time", "90", "--limit-rate", "4M", "-o"])
            .arg(&got2)
            .arg(format!("{URL}/big"))
            .output()
            .expect("curl")
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!download.is_finished(), "the download is still running when nat64-ctl stops");
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
    let sha = must(&format!("sha256sum {} | cut -d' ' -f1", got.display()));
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
    assert_eq!(counter(&stats, "pool_allocated"), (HOSTS + 2) as u64, "nobody needed a new address");
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
