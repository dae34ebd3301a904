//! PLAT high availability end to end: two stateful NAT64 nodes that synchronise their
//! sessions (`"sync"`), and flows that survive the loss of the node carrying them.
//!
//! Active/standby: keepalived (VRRP) holds the gateway addresses on both sides on
//! node 1; node 1 is stopped hard (its links down, nat64-ctl killed), keepalived moves
//! the addresses to node 2, which carries on with the sessions it was sent.
//!
//! ```text
//!                      [sw] bridge b6                 bridge b4
//!  [c] 2001:db8:100::10 --+-- n1 north ::2 [n1] south .2 --+-- 198.51.100.10 [s]
//!      via VIP6 ::1       +-- n2 north ::3 [n2] south .3 --+   203.0.113.8 via VIP4 .1
//!                                   n1 ha 10.99.0.1 == 10.99.0.2 n2 (sync)
//! ```
//!
//! Active/active: each node its own pool4 address, routes moving flows from one node to
//! the other (as BIRD or FRR do when a node's announcements change).
//!
//! ```text
//!  [c] -- [r] 64:ff9b::/96 via n1 (then n2) --+-- [n1] 192.0.2.1 --+-- [s] 192.0.2.1 via n1 (then n2)
//!                                             +-- [n2] 192.0.2.2 --+       192.0.2.2 via n2
//! ```

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    thread,
    time::Duration,
};

use nat64_tests::lab::{Lab, json, packets, peers, sha256_file, wait_listening, wait_until};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-test");
/// The file downloaded across the failover: 20 MiB.
const BIG: usize = 20 << 20;
/// The server as the IPv6 client reaches it (pool6 64:ff9b::/96).
const SERVER6: &str = "64:ff9b::c633:640a";
const SERVER4: &str = "198.51.100.10";

/// nat64-ctl's configuration for node `k` (1 or 2): XDP on north and south, `pool4`,
/// sync over the `ha` link.
fn node_config(dir: &Path, instance: &str, k: usize, pool4: &str, key: &Path) -> PathBuf {
    let other = 3 - k;
    let config = dir.join(format!("n{k}.json"));
    let v = serde_json::json!({
        "instance": instance,
        "mode": "nat64",
        "interfaces": [{"name": "north", "attach": "xdp"}, {"name": "south", "attach": "xdp"}],
        "pool6": "64:ff9b::/96",
        "pool4": [{"prefix": pool4}],
        "wkp-allow-non-global": true,
        "sync": {
            "listen": format!("10.99.0.{k}:6464"),
            "peers": [format!("10.99.0.{other}:6464")],
            "key-file": key.display().to_string(),
        },
    });
    std::fs::write(&config, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    config
}

/// The server's HTTP (port 8080, a BIG-byte file) and UDP (port 5000: answers with the
/// transport address it saw) peers in namespace `s`; the file's SHA-256.
fn serve(lab: &mut Lab, s: &str, dir: &Path) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let blob: Vec<u8> = (0..BIG as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(www.join("big"), &blob).unwrap();
    lab.spawn_in(s, &format!("python3 {} http-serve 8080 {}", peers(), www.display()));
    wait_listening(lab, s, 8080, "tcp");
    lab.spawn_in(s, &format!("python3 {} udp-whoami-port 5000", peers()));
    wait_listening(lab, s, 5000, "udp");
    sha256_file(&www.join("big"))
}

/// The flows across the move: a BIG-byte download at 3 MiB/s (some 7 s) and a UDP
/// flow of 20 datagrams a second for 12 s, from namespace `c`.
struct Flows {
    download: thread::JoinHandle<Output>,
    udp: thread::JoinHandle<Output>,
    got: PathBuf,
}

fn start_flows(c: &str, dir: &Path) -> Flows {
    let got = dir.join("got");
    let (ns, file) = (c.to_string(), got.clone());
    let download = thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "curl", "-sS", "--max-time", "60", "--limit-rate", "3M", "-o"])
            .arg(&file)
            .arg(format!("http://[{SERVER6}]:8080/big"))
            .output()
            .expect("curl")
    });
    let ns = c.to_string();
    let udp = thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "python3", &peers(), "udp-flow", SERVER6, "5000", "12", "0.05"])
            .output()
            .expect("udp-flow")
    });
    Flows { download, udp, got }
}

/// Waits for both flows: the download whole (its SHA-256 `want`), and the UDP flow
/// answered after the move, the server seeing one transport address on `pool4` all
/// along. The UDP flow's output.
fn check_flows(f: Flows, want: &str, pool4: &str) -> String {
    let out = f.download.join().unwrap();
    assert!(out.status.success(), "the download failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_file(&f.got), want, "the download arrived intact");
    let out = f.udp.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "udp-flow: {text}{}", String::from_utf8_lossy(&out.stderr));
    let seen: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("seen ")).collect();
    assert_eq!(seen.len(), 1, "the server saw one transport address all along:\n{text}");
    assert!(seen[0].starts_with(&format!("{pool4}:")), "seen through pool4 {pool4}:\n{text}");
    let last = text.lines().last().unwrap_or_default();
    let w: Vec<&str> = last.split_whitespace().collect();
    let (sent, got, gap): (u64, u64, f64) =
        (w[1].parse().unwrap(), w[3].parse().unwrap(), w[5].parse().unwrap());
    println!("UDP flow: {sent} sent, {got} answered, longest silence {gap:.2} s");
    assert!(gap < 5.0, "the UDP flow went on after the move: {text}");
    assert!(got * 10 >= sent * 6, "most datagrams answered: {text}");
    text
}

/// The sessions of `instance` in `ns` (`session list --json`).
fn sessions(lab: &Lab, ns: &str, instance: &str) -> Vec<Value> {
    json(lab.ctl(ns, CTL, instance, &["session", "list", "--json"]), "session list")
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until node `ns` holds a TCP session to port 8080 and a UDP one to port 5000
/// (its peer's, by sync); the IPv4 transport addresses they map.
fn wait_synced(lab: &Lab, ns: &str, instance: &str) -> (String, String) {
    let mut found = (String::new(), String::new());
    let ok = wait_until(Duration::from_secs(5), || {
        let s = sessions(lab, ns, instance);
        let find = |proto: &str, port: &str| {
            s.iter()
                .find(|x| x["protocol"] == proto && x["remote"].as_str().is_some_and(|r| r.ends_with(port)))
                .map(|x| x["ipv4"].as_str().unwrap_or_default().to_string())
        };
        match (find("tcp", ":8080"), find("udp", ":5000")) {
            (Some(t), Some(u)) => {
                found = (t, u);
                true
            }
            _ => false,
        }
    });
    assert!(ok, "node {ns} holds its peer's sessions: {:#?}", sessions(lab, ns, instance));
    found
}

/// Whether keepalived gave node `n` the IPv4 gateway address.
fn master(lab: &Lab, n: &str) -> bool {
    lab.exec(n, "ip -4 addr show dev south").stdout.windows(13).any(|w| w == b"198.51.100.1/")
}

fn stats(lab: &Lab, ns: &str, instance: &str) -> Value {
    json(lab.ctl(ns, CTL, instance, &["stats", "--json"]), "stats")
}

/// The sync counters both nodes must show after a clean run: nothing refused.
fn sync_clean(lab: &Lab, ns: &str, instance: &str) -> Value {
    let s = stats(lab, ns, instance);
    for c in [
        "sync_refused_auth",
        "sync_malformed",
        "sync_replayed",
        "sync_sessions_conflict",
        "sync_sessions_failed",
    ] {
        assert_eq!(packets(&s, c), 0, "{c} on {ns}: {s}");
    }
    s
}

#[test]
fn stateful_nat64_active_standby_failover_with_keepalived() {
    let mut lab = Lab::new();
    assert!(
        nat64_tests::lab::run("command -v keepalived").status.success(),
        "`keepalived` is missing: run `cargo xtask setup`"
    );
    let t = lab.tag.clone();
    let (c, s, sw) = (lab.add_ns("c"), lab.add_ns("s"), lab.add_ns("sw"));
    let nodes = [lab.add_ns("n1"), lab.add_ns("n2")];
    lab.must_in(
        &sw,
        "ip link add b6 type bridge && ip link add b4 type bridge && ip link set b6 up && ip link set b4 up",
    );
    lab.link(&c, "eth0", &sw, "pc");
    lab.link(&s, "eth0", &sw, "ps");
    lab.must_in(&sw, "ip link set pc master b6 && ip link set ps master b4");
    lab.link(&nodes[0], "ha", &nodes[1], "ha");
    let dir = std::env::temp_dir().join(format!("nat64-ha-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    let key = nat64_tests::lab::sync_key(&dir);
    for (k, n) in nodes.iter().enumerate() {
        let k1 = k + 1;
        lab.link(n, "north", &sw, &format!("p{k1}n"));
        lab.link(n, "south", &sw, &format!("p{k1}s"));
        lab.must_in(&sw, &format!("ip link set p{k1}n master b6 && ip link set p{k1}s master b4"));
        lab.must_in(
            n,
            &format!(
                "ip -6 addr add 2001:db8:100::{}/64 dev north nodad && ip addr add 198.51.100.{}/24 dev south && \
                 ip addr add 10.99.0.{k1}/24 dev ha && \
                 sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                k1 + 1,
                k1 + 1
            ),
        );
    }
    // A veth receives frames redirected by XDP into its peer only with NAPI on.
    lab.must_in(&sw, "for i in pc ps p1n p1s p2n p2s; do ethtool -K $i gro on >/dev/null; done");
    lab.must_in(
        &c,
        "ip -6 addr add 2001:db8:100::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:100::1",
    );
    lab.must_in(
        &s,
        &format!("ip addr add {SERVER4}/24 dev eth0 && ip route add 203.0.113.8/32 via 198.51.100.1"),
    );
    let want = serve(&mut lab, &s, &dir);

    // VRRP: one sync group holds both gateway addresses, node 1 preferred.
    for (k, n) in nodes.iter().enumerate() {
        let conf = dir.join(format!("keepalived{}.conf", k + 1));
        let prio = if k == 0 { 150 } else { 100 };
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id n{k}\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n}}\n\
                 vrrp_sync_group G {{\n  group {{\n    V4\n    V6\n  }}\n}}\n\
                 vrrp_instance V4 {{\n  state BACKUP\n  nopreempt\n  interface south\n  virtual_router_id 51\n  priority {prio}\n  \
                 advert_int 0.2\n  virtual_ipaddress {{\n    198.51.100.1/24\n  }}\n}}\n\
                 vrrp_instance V6 {{\n  state BACKUP\n  nopreempt\n  interface north\n  virtual_router_id 52\n  priority {prio}\n  \
                 advert_int 0.2\n  virtual_ipaddress {{\n    2001:db8:100::1/64\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let pid = |what: &str| dir.join(format!("keepalived{}-{what}.pid", k + 1)).display().to_string();
        lab.spawn_in(
            n,
            &format!(
                "keepalived --dont-fork --log-console --vrrp --use-file {} --pid {} --vrrp_pid {} --checkers_pid {}",
                conf.display(),
                pid("main"),
                pid("vrrp"),
                pid("checkers")
            ),
        );
    }
    assert!(wait_until(Duration::from_secs(15), || master(&lab, &nodes[0])), "keepalived made node 1 master");

    let mut ctls = Vec::new();
    let mut instances = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let instance = format!("ha{}-{t}", k + 1);
        let config = node_config(&dir, &instance, k + 1, "203.0.113.8/32", &key);
        ctls.push(lab.start_ctl(n, CTL, &config, &instance));
        instances.push(instance);
    }

    let flows = start_flows(&c, &dir);
    thread::sleep(Duration::from_millis(1500));
    assert!(!flows.download.is_finished(), "the download still runs when node 1 goes");
    let on1 = wait_synced(&lab, &nodes[0], &instances[0]);
    let on2 = wait_synced(&lab, &nodes[1], &instances[1]);
    assert_eq!(on1, on2, "node 2 holds node 1's mappings as node 1 made them");
    println!("mapped on node 1 and synced to node 2: tcp {}, udp {}", on1.0, on1.1);

    // Node 1 stops hard: its links down, nat64-ctl killed.
    lab.must_in(&nodes[0], "ip link set north down && ip link set south down && ip link set ha down");
    let _ = lab.child(ctls[0]).kill();
    let t0 = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(10), || master(&lab, &nodes[1])), "keepalived made node 2 master");
    println!("node 2 master {:.2} s after node 1 went", t0.elapsed().as_secs_f64());

    let udp = check_flows(flows, &want, "203.0.113.8");
    assert!(udp.contains(&format!("seen {}", on1.1)), "the UDP flow kept {}: {udp}", on1.1);
    let s2 = sync_clean(&lab, &nodes[1], &instances[1]);
    assert!(packets(&s2, "sync_sessions_made") >= 2, "node 2 made node 1's sessions: {s2}");
    assert!(packets(&s2, "sync_messages_accepted") > 0, "{s2}");
    assert!(packets(&s2, "xlat_4to6_tcp") > 0, "node 2 carried the download after the failover: {s2}");
    let text = lab.ctl(&nodes[1], CTL, &instances[1], &["status"]);
    println!("{}", String::from_utf8_lossy(&text.stdout));
    let status = json(lab.ctl(&nodes[1], CTL, &instances[1], &["status", "--json"]), "status");
    assert_eq!(status["sync"]["peers"][0]["address"], "10.99.0.1:6464", "{status}");
}

#[test]
fn stateful_nat64_active_active_flows_moved_by_routes() {
    let mut lab = Lab::new();
    let t = lab.tag.clone();
    let (c, r, s) = (lab.add_ns("c"), lab.add_ns("r"), lab.add_ns("s"));
    let nodes = [lab.add_ns("n1"), lab.add_ns("n2")];
    lab.link(&c, "eth0", &r, "lan");
    lab.link(&nodes[0], "ha", &nodes[1], "ha");
    lab.must_in(
        &c,
        "ip -6 addr add 2001:db8:100::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:100::1",
    );
    lab.must_in(
        &r,
        "ip -6 addr add 2001:db8:100::1/64 dev lan nodad && ethtool -K lan gro on >/dev/null && \
         sysctl -qw net.ipv6.conf.all.forwarding=1",
    );
    lab.must_in(&s, &format!("ip addr add {SERVER4}/32 dev lo"));
    let dir = std::env::temp_dir().join(format!("nat64-aa-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    let key = nat64_tests::lab::sync_key(&dir);
    nat64_tests::lab::two_nodes(&lab, &r, &s, &nodes, Some(SERVER4), |k1| {
        format!("ip addr add 10.99.0.{k1}/24 dev ha && ip route add {SERVER4}/32 via 198.51.10{k1}.2")
    });
    let mut instances = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let k1 = k + 1;
        let instance = format!("aa{k1}-{t}");
        let config = node_config(&dir, &instance, k1, &format!("192.0.2.{k1}/32"), &key);
        lab.start_ctl(n, CTL, &config, &instance);
        instances.push(instance);
    }
    let want = serve(&mut lab, &s, &dir);
    // Everything through node 1 first.
    lab.must_in(&r, "ip -6 route add 64:ff9b::/96 via 2001:db8:1::2");

    let flows = start_flows(&c, &dir);
    thread::sleep(Duration::from_millis(1500));
    let on1 = wait_synced(&lab, &nodes[0], &instances[0]);
    let on2 = wait_synced(&lab, &nodes[1], &instances[1]);
    assert_eq!(on1, on2, "node 2 holds node 1's mappings");
    assert!(on1.0.starts_with("192.0.2.1:"), "mapped on node 1's slice: {on1:?}");

    // Routing moves node 1's flows to node 2, both ways.
    lab.must_in(&r, "ip -6 route replace 64:ff9b::/96 via 2001:db8:2::2");
    lab.must_in(&s, &format!("ip route replace 192.0.2.1/32 via 198.51.102.1 src {SERVER4}"));
    check_flows(flows, &want, "192.0.2.1");
    let s2 = sync_clean(&lab, &nodes[1], &instances[1]);
    assert!(packets(&s2, "xlat_4to6_tcp") > 0, "node 2 carried the moved download: {s2}");
    assert!(packets(&s2, "xlat_6to4_udp") > 0, "node 2 carried the moved UDP flow: {s2}");
    sync_clean(&lab, &nodes[0], &instances[0]);
}

/// 100,000 new sessions a second on node A for 10 s: every one A made is on node B at
/// the end, or counted where it was lost (A's ring buffer or queue, datagrams B saw
/// missing); B refuses none; neither nat64-ctl's memory grows past its bounded queue.
/// (How fast B catches up is the benchmark's sync section's figure.)
#[test]
fn stateful_nat64_sync_under_load_accounts_for_every_session() {
    let r = nat64_tests::sync_load::run(CTL, 100_000, 10);
    println!("{r:#?}");
    assert_eq!(r.sent, 1_000_000, "{r:#?}");
    assert!(r.made_on_a > 0 && r.made_on_a <= r.sent, "{r:#?}");
    assert_eq!(r.refused_on_b, 0, "{r:#?}");
    let lost = r.lost_ring + r.dropped_queue;
    assert!(
        r.on_b + lost >= r.made_on_a || r.missing_datagrams > 0,
        "every session on B or counted lost: {r:#?}"
    );
    assert!(r.on_b <= r.made_on_a, "{r:#?}");
    if r.on_b + lost < r.made_on_a {
        let short = r.made_on_a - r.on_b - lost;
        assert!(
            short <= r.missing_datagrams * wire_records(),
            "the shortfall lies in datagrams B saw missing: {r:#?}"
        );
    }
    // The queue holds at most 65,536 records of 40 bytes; the tables are the kernel's.
    for (who, (before, after)) in [("A", r.rss_a), ("B", r.rss_b)] {
        assert!(after < before + 64 * 1024, "nat64-ctl's memory on {who}: {before} KiB -> {after} KiB");
    }
}

fn wire_records() -> u64 {
    nat64_ctl::sync::wire::MAX_RECORDS as u64
}

/// Datagrams to a sync node that must change nothing: sealed with another key,
/// garbage, cut short (below a header, and by one byte), an authentic one again (a
/// replay), an authentic one from an address that is not a peer, one whose record is
/// out of range. Each is counted; the
/// only session made is the one authentic datagram's.
#[test]
fn stateful_nat64_sync_refuses_and_counts_bad_datagrams() {
    use nat64_ctl::sync::wire::{self, KIND_EVENTS, Message, SessionRecord, SyncKey};
    let mut lab = Lab::new();
    let t = lab.tag.clone();
    let (n, peer, x) = (lab.add_ns("n"), lab.add_ns("peer"), lab.add_ns("x"));
    lab.link(&n, "ha", &peer, "ha");
    lab.link(&n, "hx", &x, "hx");
    lab.must_in(&n, "ip addr add 10.99.0.2/24 dev ha && ip addr add 10.98.0.2/24 dev hx");
    lab.must_in(&peer, "ip addr add 10.99.0.1/24 dev ha");
    lab.must_in(&x, "ip addr add 10.98.0.1/24 dev hx");
    let dir = std::env::temp_dir().join(format!("nat64-syncbad-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    let key_file = nat64_tests::lab::sync_key(&dir);
    let instance = format!("sb-{t}");
    let v = serde_json::json!({
        "instance": instance,
        "mode": "nat64",
        "interfaces": [{"name": "ha", "attach": "xdp"}],
        "pool6": "64:ff9b::/96",
        "pool4": [{"prefix": "203.0.113.8/32"}],
        "sync": {"listen": "0.0.0.0:6464", "peers": ["10.99.0.1:6464"], "key-file": key_file.display().to_string()},
    });
    let config = dir.join("n.json");
    std::fs::write(&config, v.to_string()).unwrap();
    lab.start_ctl(&n, CTL, &config, &instance);

    let key = SyncKey::from_file_bytes(&std::fs::read(&key_file).unwrap()).unwrap();
    let other = SyncKey::from_file_bytes(&[7u8; 48]).unwrap();
    let record = |port: u16| SessionRecord {
        v6: "2001:db8::5".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        v6_port: port,
        v4: "203.0.113.8".parse().unwrap(),
        v4_port: 40000 + port,
        remote: "198.51.100.7".parse().unwrap(),
        remote_port: 53,
        proto: 17,
        state: 0,
        lifetime_ms: 300_000,
        ended: false,
    };
    let msg = |seq: u64, r: SessionRecord| Message {
        kind: KIND_EVENTS,
        node: 9,
        flags: 0,
        epoch: 1,
        seq,
        time_ms: nat64_ctl::sys::unix_now_ms(),
        records: vec![r],
    };
    let good = wire::seal(&key, &msg(1, record(1)));
    // Authentic, but a protocol no session has.
    let out_of_range = wire::seal(&key, &msg(2, SessionRecord { proto: 47, ..record(2) }));
    let from_peer: Vec<Vec<u8>> = vec![
        wire::seal(&other, &msg(3, record(3))),
        vec![0x5a; 200],
        good[..50].to_vec(),
        good[..good.len() - 1].to_vec(),
        good.clone(),
        good.clone(),
        out_of_range,
    ];
    nat64_tests::lab::in_netns(&peer, || {
        let s = std::net::UdpSocket::bind("10.99.0.1:6464").unwrap();
        for d in &from_peer {
            s.send_to(d, "10.99.0.2:6464").unwrap();
            thread::sleep(Duration::from_millis(20));
        }
    });
    nat64_tests::lab::in_netns(&x, || {
        let s = std::net::UdpSocket::bind("10.98.0.1:6464").unwrap();
        s.send_to(&wire::seal(&key, &msg(4, record(4))), "10.98.0.2:6464").unwrap();
    });
    let want = [
        ("sync_refused_auth", 3),
        ("sync_malformed", 3),
        ("sync_replayed", 1),
        ("sync_messages_accepted", 1),
        ("sync_sessions_made", 1),
    ];
    let ok = wait_until(Duration::from_secs(5), || {
        let s = stats(&lab, &n, &instance);
        want.iter().all(|(c, v)| packets(&s, c) == *v)
    });
    let s = stats(&lab, &n, &instance);
    assert!(ok, "each bad datagram counted once, the good one taken once: {s}");
    let list = sessions(&lab, &n, &instance);
    assert_eq!(list.len(), 1, "only the authentic datagram's session: {list:#?}");
    assert_eq!(list[0]["ipv4"], "203.0.113.8:40001", "{list:#?}");
}
