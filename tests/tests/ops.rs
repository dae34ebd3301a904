//! Operations: what happens when an operator touches a running translator. Bad input
//! never changes it; map churn, a reload and a restart lose no packet; the metrics
//! endpoint tells what `stats` tells; a bulk load of 100,000 entries; the systemd
//! unit's capabilities are enough and each is needed.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use nat64_tests::lab::{SiitLab, UdpStream, V4_HOST_AS_V6, V6_HOST_AS_V4};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-test");

fn out_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ctl_ok(lab: &SiitLab, args: &[&str]) -> String {
    let o = lab.ctl(CTL, args);
    assert!(o.status.success(), "nat64-ctl {args:?}: {}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(lab: &SiitLab, args: &[&str]) -> Value {
    serde_json::from_str(&ctl_ok(lab, args)).unwrap_or_else(|e| panic!("nat64-ctl {args:?}: not JSON: {e}"))
}

/// Everything an operator could change: settings, tables, what is attached (with the
/// program ids), the pins.
fn snapshot(lab: &SiitLab) -> String {
    let status = json(lab, &["status", "--json"]);
    let pins: Vec<String> = std::fs::read_dir(format!("/sys/fs/bpf/nat64/{}", lab.instance))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    format!(
        "show {}\nmap {}\ndeny {}\ninterfaces {}\npins {pins:?}",
        json(lab, &["show"]),
        json(lab, &["map", "list", "--json"]),
        json(lab, &["denylist4", "list", "--json"]),
        status["interfaces"],
    )
}

fn ping_v4_host(lab: &SiitLab) {
    lab.lab.must_in(&lab.v6, &format!("ping -6 -c 1 -W 2 {V4_HOST_AS_V6}"));
}

/// More than thirty bad inputs, command-line arguments and configuration files given
/// to `reload`: each is refused with the exact reason, and the running instance is
/// exactly as it was (settings, tables, links, programs, pins) and still translates.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let lab = SiitLab::started(CTL);
    let before = snapshot(&lab);
    let dir = std::env::temp_dir().join(format!("nat64-ops-{}", lab.lab.tag));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let bad_lines = file("bad.txt", "192.0.3.1 2001:db8:77::1\n# fine so far\n192.0.3.2 2001:db8:77::zz\n");
    let overlapping = file("overlap.txt", "192.0.3.1 2001:db8:77::1\n192.0.3.0/30 2001:db8:78::/126\n");
    let other_cfg = file("other.json", "{}");
    let own_cfg = lab.config.to_string_lossy().into_owned();
    let overlap_want = format!(
        "{overlapping}:2 (192.0.3.0/30 <-> 2001:db8:78::/126): its IPv4 prefix 192.0.3.0/30 overlaps \
         {overlapping}:1 (192.0.3.1/32 <-> 2001:db8:77::1/128)"
    );
    let cli: Vec<(Vec<&str>, &str)> = vec![
        (vec!["map", "add", "192.0.2.300", "2001:db8::1"], "\"192.0.2.300\": not an IPv4 address"),
        (
            vec!["map", "add", "192.0.3.7/24", "2001:db8:77::/120"],
            "host bits are set (did you mean 192.0.3.0/24?)",
        ),
        (
            vec!["map", "add", "192.0.3.0/24", "2001:db8:77::/124"],
            "the IPv4 suffix (8 bits) is longer than the IPv6 suffix (4 bits); the IPv6 prefix must be /120 or \
             shorter",
        ),
        (
            vec!["map", "add", "192.0.2.2", "2001:db8:77::2"],
            "overlaps existing entry 192.0.2.2/32 <-> 2001:db8:6::2/128",
        ),
        (
            vec!["map", "add", "192.0.3.9", "2001:db8:6::2"],
            "its IPv6 prefix 2001:db8:6::2/128 overlaps existing entry",
        ),
        (vec!["map", "add", "2001:db8::1", "192.0.3.9"], "that is an IPv6 address"),
        (vec!["map", "add", "192.0.3.9"], "required"),
        (
            vec!["map", "add", "192.0.3.9", "2001:db8::9/64"],
            "host bits are set (did you mean 2001:db8::/64?)",
        ),
        (vec!["map", "del", "192.0.3.99"], "no EAMT entry 192.0.3.99/32"),
        (vec!["map", "add", "--file", "/nonexistent/eamt.txt"], "reading /nonexistent/eamt.txt"),
        (vec!["map", "add", "--file", &bad_lines], "bad.txt:3: \"2001:db8:77::zz\": not an IPv6 address"),
        (vec!["map", "add", "--file", &overlapping], &overlap_want),
        (vec!["map", "add", "--file", &bad_lines, "192.0.3.1"], "cannot be used with"),
        (vec!["set", "lowest-ipv6-mtu", "100"], "lowest-ipv6-mtu: 100: must be between 1280"),
        (vec!["set", "lowest-ipv6-mtu", "abc"], "lowest-ipv6-mtu"),
        (
            vec!["set", "zeroize-traffic-class", "maybe"],
            "zeroize-traffic-class: \"maybe\": expected true or false",
        ),
        (vec!["set", "rfc6791v4-prefix", "10.0.0.1/8"], "host bits are set"),
        (vec!["set", "no-such-key", "1"], "\"no-such-key\" cannot be changed on a running instance"),
        (vec!["set", "dynamic-pool-lease", "30"], "dynamic-pool-lease: the instance has no dynamic pool"),
        (vec!["denylist4", "add", "8.8.8.0/33"], "prefix length 33 is longer than 32"),
        (vec!["denylist4", "del", "9.9.9.0/24"], "9.9.9.0/24 is not in denylist4"),
        (vec!["translate", "not-an-address"], "invalid IP address syntax"),
        (vec!["pool", "list"], "has no dynamic pool"),
        (vec!["reload", "--config", &other_cfg], "the instance reloads its own file"),
        (vec!["run", "--config", &own_cfg], "is already running"),
    ];
    let good = std::fs::read_to_string(&lab.config).unwrap();
    let cfg_rows: Vec<(String, &str)> = vec![
        (good[..good.len() / 2].to_string(), "EOF while parsing"),
        (good.replace("\"eamt\"", "\"eamtt\""), "unknown field `eamtt`"),
        (
            good.replace("64:ff9b:1::/96", "64:ff9b:1::/80"),
            "pool6: \"64:ff9b:1::/80\": length 80 is not one of",
        ),
        (
            good.replace(
                r#"{"ipv4": "192.0.2.100""#,
                r#"{"ipv4": "192.0.2.2/31", "ipv6": "2001:db8:99::/127"}, {"ipv4": "192.0.2.100""#,
            ),
            "eamt[1]: EAM 192.0.2.2/31 <-> 2001:db8:99::/127: its IPv4 prefix 192.0.2.2/31 overlaps eamt[0]",
        ),
        (
            good.replace(
                r#"{"name": "to4", "attach": "xdp"}"#,
                r#"{"name": "to4", "attach": "xdp"}, {"name": "eth9", "attach": "xdp"}"#,
            ),
            "interfaces[2].name: \"eth9\": no such interface",
        ),
        (
            good.replace(r#""pool6""#, r#""dynamic-pool": "192.0.2.0/24", "pool6""#),
            "dynamic-pool: 192.0.2.0/24: overlaps eamt[0]",
        ),
        (
            good.replace(r#""pool6""#, r#""lowest-ipv6-mtu": 70000, "pool6""#),
            "lowest-ipv6-mtu: 70000: must be between 1280",
        ),
        (good.replace(r#""interface": "nat64""#, r#""interface": "a-name-far-too-long""#), "must be 1 to 14"),
        (
            good.replace(r#""ipv4-addr": "198.51.100.1""#, r#""ipv4-addr": "192.0.2.2""#),
            "ipv4-addr: \"192.0.2.2\": is inside eamt[0]",
        ),
        (
            good.replace(r#""pool6""#, r#""masquerade": {"interface": "to4"}, "pool6""#),
            "masquerade: hides the dynamic pool",
        ),
        (
            good.replace(r#""pool6""#, r#""mode": "nat46", "pool6""#),
            "mode: \"nat46\": must be \"siit\", \"clat\" or \"nat64\"",
        ),
        (
            good.replace(&format!(r#""instance": "{}""#, lab.instance), r#""instance": "other""#),
            "the file is for another instance",
        ),
    ];
    // Another instance's name, without the lab's --instance.
    let o = std::process::Command::new(CTL).args(["--instance", "nosuch", "stats"]).output().unwrap();
    assert!(
        !o.status.success() && out_text(&o).contains("no nat64 instance 'nosuch' is running"),
        "{}",
        out_text(&o)
    );
    assert!(cli.len() + cfg_rows.len() + 1 >= 30);
    let mut failures = Vec::new();
    for (args, want) in &cli {
        let o = lab.ctl(CTL, args);
        let text = out_text(&o);
        if o.status.success() || !text.contains(want) {
            failures.push(format!("{args:?}: exit {}, want {want:?} in: {text}", o.status));
        }
        if snapshot(&lab) != before {
            failures.push(format!("{args:?} changed the running instance"));
        }
    }
    for (text, want) in &cfg_rows {
        std::fs::write(&lab.config, text).unwrap();
        let o = lab.ctl(CTL, &["reload"]);
        let said = out_text(&o);
        if o.status.success() || !said.contains(want) {
            failures.push(format!("reload with {want:?}: exit {}, said: {said}", o.status));
        }
        if snapshot(&lab) != before {
            failures.push(format!("reload with {want:?} changed the running instance"));
        }
    }
    std::fs::write(&lab.config, &good).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cli.len() + cfg_rows.len(),
        failures.join("\n")
    );
    ping_v4_host(&lab);
    // The refused reloads were answered by the instance and say so.
    let status = ctl_ok(&lab, &["status"]);
    assert!(status.contains("reload     refused"), "{status}");
}

/// Steady UDP across the translator while the operator works: 1,000 map adds and
/// deletes of other entries, a reload of a changed file, and a stop and start of
/// nat64-ctl (a new process taking over the attached programs). Every datagram
/// arrives, intact, from the mapped address.
#[test]
fn no_packet_lost_during_map_churn_reload_and_restart() {
    let mut lab = SiitLab::started(CTL);
    let secs = 30.0;
    let stream = UdpStream::start(&mut lab, 500.0, secs);
    let t = Instant::now();
    for i in 0..500u32 {
        let (v4, v6) = (format!("10.77.{}.{}", i / 250, i % 250), format!("2001:db8:77::{i:x}"));
        ctl_ok(&lab, &["map", "add", &v4, &v6]);
        ctl_ok(&lab, &["map", "del", &v4]);
    }
    println!("1000 map add/del in {:?}", t.elapsed());
    let good = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        good.replace(r#""pool6""#, r#""zeroize-traffic-class": true, "denylist4": ["9.9.9.0/24"], "pool6""#)
            .replace(
                r#"{"ipv4": "192.0.2.100""#,
                r#"{"ipv4": "192.0.2.50", "ipv6": "2001:db8:6::50"}, {"ipv4": "192.0.2.100""#,
            ),
    )
    .unwrap();
    let said = ctl_ok(&lab, &["reload"]);
    assert!(said.contains("reloaded"), "{said}");
    assert_eq!(
        json(&lab, &["map", "list", "--json"]).as_array().unwrap().len(),
        3,
        "the reload added an entry"
    );
    assert_eq!(json(&lab, &["show"])["zeroize-traffic-class"], true);
    let stopped = lab.stop();
    assert!(stopped.status.success(), "{}", out_text(&stopped));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    lab.start(CTL);
    println!("restart: the new process took over in {:?}", t.elapsed());
    assert!(
        t.elapsed() < Duration::from_secs_f64(secs) - Duration::from_secs(1),
        "the stream outlasts the work"
    );
    stream.finish_intact();
}

/// Parses the Prometheus text into (name{labels}, value).
fn scrape(lab: &SiitLab, path: &str) -> (String, Vec<(String, f64)>) {
    let o = lab.lab.exec(&lab.x, &format!("curl -sS -w '\\n%{{http_code}}' http://127.0.0.1:9464{path}"));
    assert!(o.status.success(), "curl: {}", out_text(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    if code != "200" {
        return (code.to_string(), Vec::new());
    }
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse::<f64>().unwrap_or_else(|e| panic!("{l:?}: {e}")))
        })
        .collect();
    (code.to_string(), samples)
}

/// `--metrics`: Prometheus text over HTTP, on loopback, scraped by the test; every
/// counter equals `stats --json`, labelled by direction, protocol and result/reason;
/// map fill and build info are there.
#[test]
fn metrics_endpoint_matches_stats() {
    let mut lab = SiitLab::new();
    lab.start_with(&[], CTL, &["--metrics"]);
    ping_v4_host(&lab);
    lab.lab.must_in(&lab.v4, &format!("ping -c 2 -i 0.2 -W 2 {V6_HOST_AS_V4}"));
    std::thread::sleep(Duration::from_millis(300));
    // Neighbour discovery goes on meanwhile: each value must lie between two readings of
    // `stats` taken around the scrape.
    let stats = json(&lab, &["stats", "--json"]);
    let (code, samples) = scrape(&lab, "/metrics");
    let stats_after = json(&lab, &["stats", "--json"]);
    assert_eq!(code, "200");
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(labels))
            .map(|(_, v)| *v as u64)
            .unwrap_or_else(|| panic!("{name} with {labels} missing"))
    };
    let mut checked = 0;
    for (counter, v) in stats.as_object().unwrap() {
        let c = nat64_common::counters::Counter::ALL.iter().find(|c| c.name() == counter).unwrap();
        let labels: String =
            nat64_ctl::stats::labels(*c).iter().map(|(k, v)| format!(",{k}=\"{v}\"")).collect();
        for (metric, field) in [("nat64_packets_total", "packets"), ("nat64_bytes_total", "bytes")] {
            let got = value(metric, &labels);
            let (lo, hi) = (v[field].as_u64().unwrap(), stats_after[counter][field].as_u64().unwrap());
            assert!((lo..=hi).contains(&got), "{metric} {counter}: {got} not in {lo}..={hi}");
        }
        checked += 1;
    }
    assert_eq!(checked, nat64_common::counters::Counter::ALL.len());
    assert!(
        value("nat64_packets_total", "direction=\"6to4\",protocol=\"icmp\",result=\"translated\"") >= 1,
        "echo requests counted"
    );
    assert_eq!(value("nat64_eamt_entries", "instance="), 2);
    // The lab's ports take XDP frames (GRO on at the far ends): both are XDP targets.
    for port in ["to6", "to4"] {
        assert_eq!(
            value("nat64_interface_xdp_redirect_target", &format!("interface=\"{port}\"")),
            1,
            "{port}"
        );
    }
    assert_eq!(value("nat64_build_info", &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), 1);
    let (code, _) = scrape(&lab, "/other");
    assert_eq!(code, "404");
    // Loopback only by default.
    let listening =
        String::from_utf8_lossy(&lab.lab.exec(&lab.x, "ss -Hltn sport = :9464").stdout).into_owned();
    assert!(listening.contains("127.0.0.1:9464"), "{listening}");
}

/// `map add --file` with 100,000 entries: loaded in seconds, all visible, translating.
#[test]
fn bulk_map_add_of_100000_entries() {
    let lab = SiitLab::started(CTL);
    let path = std::env::temp_dir().join(format!("nat64-bulk-{}.txt", lab.lab.tag));
    let mut text = String::from("# 100,000 hosts\n");
    for i in 0..100_000u32 {
        let a = 0x0a40_0000 + i; // 10.64.0.0 + i
        let (hi, lo) = (i >> 16, i & 0xffff);
        text += &format!(
            "{}.{}.{}.{} 2001:db8:bb::{hi:x}:{lo:x}\n",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        );
    }
    std::fs::write(&path, text).unwrap();
    let t = Instant::now();
    let said = ctl_ok(&lab, &["map", "add", "--file", &path.to_string_lossy()]);
    let took = t.elapsed();
    println!("{said}(wall time with process start: {took:?})");
    assert!(said.contains("added 100000 entries"), "{said}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(json(&lab, &["status", "--json"])["maps"]["eamt"]["entries"], 100_002);
    let out = ctl_ok(&lab, &["translate", "2001:db8:bb::1:869f"]);
    assert!(out.contains("-> 10.65.134.159"), "{out}");
    let _ = std::fs::remove_file(&path);
    ping_v4_host(&lab);
}

/// The systemd unit's CapabilityBoundingSet is enough to run the translator, and
/// each capability in it is needed.
#[test]
fn the_unit_capabilities_are_enough_and_each_is_needed() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/nat64@.service"))
        .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let set = |caps: &[String]| {
        format!("--bounding-set=-all,{}", caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(","))
    };
    let mut lab = SiitLab::new();
    let all = set(&caps);
    lab.start_with(&["setpriv", &all], CTL, &[]);
    ping_v4_host(&lab);
    let status = ctl_ok(&lab, &["status"]);
    assert!(status.contains("(driver, nat64_xdp id"), "{status}");
    let stopped = lab.stop();
    assert!(stopped.status.success(), "{}", out_text(&stopped));
    ctl_ok(&lab, &["detach"]);
    for drop in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| c != &drop).cloned().collect();
        // nsenter, not `ip netns exec`: the latter hides bpffs.
        let o = nat64_tests::lab::run(&format!(
            "timeout 30 nsenter --net=/var/run/netns/{} setpriv {} {CTL} run --config {}",
            lab.x,
            set(&fewer),
            lab.config.display()
        ));
        let code = o.status.code();
        assert!(code != Some(0) && code != Some(124), "without {drop}: exit {code:?}: {}", out_text(&o));
        let said = out_text(&o);
        assert!(said.contains("error:"), "without {drop}: {said}");
        ctl_ok(&lab, &["detach"]);
    }
}

/// A reload that drops an interface detaches from it; one that lists it again attaches
/// to it; the other interface's link (and program) is left alone throughout.
#[test]
fn reload_attaches_and_detaches_interfaces() {
    let lab = SiitLab::started(CTL);
    let ids = |lab: &SiitLab| -> Vec<(String, Value)> {
        json(lab, &["status", "--json"])["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap().to_string(), i["program-id"].clone()))
            .collect()
    };
    let before = ids(&lab);
    let xdp_on = |dev: &str| lab.lab.must_in(&lab.x, &format!("ip -d link show {dev}")).contains("prog/xdp");
    assert!(xdp_on("to4") && xdp_on("to6"));
    let good = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(&lab.config, good.replace(r#", {"name": "to4", "attach": "xdp"}"#, "")).unwrap();
    assert!(ctl_ok(&lab, &["reload"]).contains("reloaded"));
    assert!(!xdp_on("to4"), "detached from to4");
    assert!(xdp_on("to6"));
    let pins = format!("/sys/fs/bpf/nat64/{}", lab.instance);
    assert!(!Path::new(&pins).join("link_to4").exists() && Path::new(&pins).join("link_to6").exists());
    std::fs::write(&lab.config, &good).unwrap();
    assert!(ctl_ok(&lab, &["reload"]).contains("reloaded"));
    assert!(xdp_on("to4"), "attached to to4 again");
    let after = ids(&lab);
    assert_eq!(
        after.iter().find(|(n, _)| n == "to6"),
        before.iter().find(|(n, _)| n == "to6"),
        "to6 untouched"
    );
    ping_v4_host(&lab);
}

/// A nat64-ctl whose maps have another layout (an upgrade that changed them) refuses to
/// take the pinned ones over, says what to do, and leaves translation running.
#[test]
fn another_map_layout_is_not_taken_over() {
    use aya::maps::{Array, Map, MapData};
    let mut lab = SiitLab::started(CTL);
    assert!(lab.stop().status.success());
    let path = format!("/sys/fs/bpf/nat64/{}/LAYOUT", lab.instance);
    let set = |v: u64| {
        let map = Map::from_map_data(MapData::from_pin(&path).unwrap()).unwrap();
        let mut a: Array<MapData, u64> = Array::try_from(map).unwrap();
        let old = a.get(&0, 0).unwrap();
        a.set(0, v, 0).unwrap();
        old
    };
    let ours = set(0x1234);
    let o = nat64_tests::lab::run(&format!(
        "timeout 30 nsenter --net=/var/run/netns/{} {CTL} run --config {}",
        lab.x,
        lab.config.display()
    ));
    let said = out_text(&o);
    assert!(
        !o.status.success() && said.contains("have another layout (0x1234)") && said.contains("detach"),
        "{said}"
    );
    ping_v4_host(&lab);
    set(ours);
    lab.start(CTL);
    ping_v4_host(&lab);
}

/// One datagram from the service manager's socket, as text.
fn notified(sock: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `run` under a service manager (`NOTIFY_SOCKET`, as systemd's `Type=notify` sets it,
/// a path or an abstract name): `READY=1` first, with a `STATUS=` line, once the
/// programs are attached; `RELOADING=1` with the monotonic time, then `READY=1`, around
/// a reload; `STOPPING=1` at SIGTERM. The unit asks for it.
#[test]
fn the_service_manager_is_told_ready_reloading_and_stopping() {
    use std::os::{linux::net::SocketAddrExt as _, unix::net::UnixDatagram};
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/nat64@.service"))
        .unwrap();
    assert!(unit.lines().any(|l| l == "Type=notify"), "the unit waits for READY=1:\n{unit}");
    let mut lab = SiitLab::new();
    let path = std::env::temp_dir().join(format!("nat64-notify-{}", lab.lab.tag));
    let abstract_name = format!("nat64-notify-{}", lab.lab.tag);
    let by_path = UnixDatagram::bind(&path).unwrap();
    lab.lab.files.push(path.clone());
    // Abstract names belong to a network namespace: bound in the translator's.
    let by_name = nat64_tests::lab::in_netns(&lab.x, || {
        UnixDatagram::bind_addr(
            &std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap(),
        )
        .unwrap()
    });
    for (sock, target) in [(&by_path, path.display().to_string()), (&by_name, format!("@{abstract_name}"))] {
        sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let env = format!("NOTIFY_SOCKET={target}");
        lab.start_with(&["env", &env], CTL, &[]);
        let ready = notified(sock);
        assert!(ready.lines().any(|l| l == "READY=1"), "the first notification is READY=1: {ready:?}");
        let line = ready.lines().find_map(|l| l.strip_prefix("STATUS=")).expect("a STATUS= line");
        assert!(line.starts_with("siit on to6 (driver), to4 (driver), "), "{line}");
        assert!(line.ends_with("; pool6 64:ff9b:1::/96; 2 EAMT entries"), "{line}");
        let status = ctl_ok(&lab, &["status"]);
        assert!(status.contains("(driver, nat64_xdp id"), "attached when READY=1 came: {status}");
        ping_v4_host(&lab);

        ctl_ok(&lab, &["reload"]);
        let reloading = notified(sock);
        assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading:?}");
        let usec = reloading.lines().find_map(|l| l.strip_prefix("MONOTONIC_USEC=")).expect("MONOTONIC_USEC");
        assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading:?}");
        let again = notified(sock);
        assert!(again.lines().any(|l| l == "READY=1"), "READY=1 after the reload: {again:?}");

        let stopped = lab.stop();
        assert!(stopped.status.success(), "{}", out_text(&stopped));
        assert_eq!(notified(sock), "STOPPING=1");
    }
    ctl_ok(&lab, &["detach"]);
}
