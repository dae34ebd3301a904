//! Network-namespace labs for end-to-end tests: created by the test, removed when
//! the lab is dropped (also on panic).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short unique tag so concurrent tests and leftover runs never collide.
pub fn unique_tag() -> String {
    format!("{:x}{}", std::process::id() % 0xffff, SEQ.fetch_add(1, Ordering::SeqCst))
}

pub fn run(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("spawning sh")
}

/// Runs a host shell command and panics with its output on failure.
pub fn must(cmd: &str) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A set of namespaces that is torn down on drop.
pub struct Lab {
    pub tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    pub files: Vec<PathBuf>,
    /// Folders removed with everything in them when the lab goes.
    pub dirs: Vec<PathBuf>,
    /// Instances started with [`Lab::start_ctl`] (namespace, nat64-ctl, instance): a
    /// stopped nat64-ctl leaves its programs attached, so the lab detaches each.
    instances: Vec<(String, String, String)>,
}

impl Lab {
    pub fn new() -> Self {
        crate::require_root();
        for tool in ["ip", "ping", "nsenter", "ethtool", "python3"] {
            assert!(
                run(&format!("command -v {tool}")).status.success(),
                "`{tool}` is missing: run `cargo xtask setup`"
            );
        }
        Self {
            tag: unique_tag(),
            namespaces: Vec::new(),
            children: Vec::new(),
            files: Vec::new(),
            dirs: Vec::new(),
            instances: Vec::new(),
        }
    }

    /// Namespace name for a role (e.g. "v6" -> "n64-v6-<tag>").
    pub fn ns(&self, role: &str) -> String {
        format!("n64-{role}-{}", self.tag)
    }

    pub fn add_ns(&mut self, role: &str) -> String {
        let n = self.ns(role);
        must(&format!("ip netns add {n}"));
        self.namespaces.push(n.clone());
        // No duplicate address detection: a tentative link-local address makes the
        // first neighbour discovery of a fresh lab race the test.
        must(&format!(
            "ip -n {n} link set lo up && ip netns exec {n} sysctl -qw net.ipv6.conf.all.accept_dad=0 \
             net.ipv6.conf.default.accept_dad=0"
        ));
        n
    }

    /// Gives `ns` its own resolver: `ip netns exec` mounts /etc/netns/<ns>/resolv.conf
    /// over /etc/resolv.conf for what it runs.
    pub fn resolver(&mut self, ns: &str, server: &str) {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("creating /etc/netns/<ns>");
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {server}\n"))
            .expect("writing resolv.conf");
        self.dirs.push(dir);
    }

    /// Runs `cmd` inside namespace `ns` (shell syntax allowed).
    pub fn exec(&self, ns: &str, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .output()
            .expect("spawning ip netns exec")
    }

    pub fn must_in(&self, ns: &str, cmd: &str) -> String {
        let out = self.exec(ns, cmd);
        assert!(
            out.status.success(),
            "`{cmd}` in {ns} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A veth pair between two namespaces, both ends up, tx checksum offload off (so
    /// packets carry full checksums, as from a real wire).
    pub fn link(&self, a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) {
        must(&format!("ip link add {a_if} netns {a_ns} type veth peer name {b_if} netns {b_ns}"));
        for (ns, i) in [(a_ns, a_if), (b_ns, b_if)] {
            self.must_in(ns, &format!("ip link set {i} up && ethtool -K {i} tx off >/dev/null"));
        }
    }

    /// Starts a long-running command inside `ns`, killed when the lab is dropped.
    pub fn spawn_in(&mut self, ns: &str, cmd: &str) -> &mut Child {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", &format!("exec {cmd}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning background command");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    /// Starts `bin args` in `ns`'s network namespace only (keeping the host's /sys and
    /// bpffs, so pins are visible), killed (SIGTERM) when the lab is dropped.
    pub fn spawn_netns_only(&mut self, ns: &str, bin: &str, args: &[&str]) -> usize {
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{ns}"))
            .arg(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning nsenter");
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn last_child(&mut self) -> &mut Child {
        self.children.last_mut().expect("a child was spawned")
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Starts `bin run --config <config>` (nat64-ctl) in `ns`'s network namespace and
    /// waits until instance `instance` is up (its status file, written last, names the
    /// new process); the child's index. The lab detaches the instance when it goes.
    pub fn start_ctl(&mut self, ns: &str, bin: &str, config: &Path, instance: &str) -> usize {
        self.start_ctl_with(ns, &[], bin, &[], config, instance)
    }

    /// [`Lab::start_ctl`] with a command `wrapper` in front (e.g. `setpriv` with its
    /// options) and `extra` arguments after `run --config FILE`.
    pub fn start_ctl_with(
        &mut self,
        ns: &str,
        wrapper: &[&str],
        bin: &str,
        extra: &[&str],
        config: &Path,
        instance: &str,
    ) -> usize {
        let cfg = config.to_string_lossy().into_owned();
        let mut argv: Vec<&str> = wrapper.to_vec();
        argv.extend([bin, "run", "--config", &cfg]);
        argv.extend(extra);
        self.start_argv(ns, &argv, bin, instance)
    }

    /// Starts the command line `argv`, which runs nat64-ctl instance `instance` (e.g. a
    /// systemd unit's `ExecStart`), as [`Lab::start_ctl`] does; `bin` is the nat64-ctl
    /// that detaches the instance when the lab goes.
    pub fn start_argv(&mut self, ns: &str, argv: &[&str], bin: &str, instance: &str) -> usize {
        let i = self.spawn_netns_only(ns, argv[0], &argv[1..]);
        let key = (ns.to_string(), bin.to_string(), instance.to_string());
        if !self.instances.contains(&key) {
            self.instances.push(key);
        }
        let pid = self.children[i].id() as u64;
        let status = nat64_ctl::load::status_file(instance);
        let up = wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&status)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["pid"].as_u64() == Some(pid))
        });
        if !up {
            let out = self.stop_child(i);
            panic!(
                "nat64-ctl run ({instance} in {ns}) did not come up within 30 s:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        i
    }

    /// Runs `bin --instance <instance> args...` in `ns`'s network namespace.
    pub fn ctl(&self, ns: &str, bin: &str, instance: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{ns}"))
            .arg(bin)
            .arg("--instance")
            .arg(instance)
            .args(args)
            .output()
            .expect("running nat64-ctl")
    }

    /// Sends SIGTERM to child `i` and waits for it; returns its output.
    pub fn stop_child(&mut self, i: usize) -> Output {
        let pid = self.children[i].id() as i32;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = self.children[i].try_wait() {
                break;
            }
            assert!(Instant::now() < deadline, "child {pid} did not stop within 10 s of SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
        let child = self.children.remove(i);
        child.wait_with_output().expect("collecting output")
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (ns, bin, instance) in std::mem::take(&mut self.instances) {
            let _ = self.ctl(&ns, &bin, &instance, &["detach"]);
        }
        for c in &mut self.children {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.namespaces {
            let _ = run(&format!("ip netns pids {n} | xargs -r kill -9; ip netns del {n}"));
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// The SIIT lab: an IPv6-only host, the translator, an IPv4-only host.
///
/// ```text
///  [v6] eth0 2001:db8:6::2/64 (+ ::3)      [x] to6 2001:db8:6::1/64   to4 198.51.100.1/24      [v4] eth0 198.51.100.2/24
///       default via 2001:db8:6::1 -------------- nat64 (XDP on to6 and to4) ---------------- default via 198.51.100.1
/// ```
///
/// pool6 is the RFC 8215 local-use prefix 64:ff9b:1::/96, so the IPv4 host is
/// 64:ff9b:1::c633:6402 from the IPv6 side; the IPv6 host is 192.0.2.2 from the IPv4
/// side through an EAM entry.
pub struct SiitLab {
    pub lab: Lab,
    pub v6: String,
    pub x: String,
    pub v4: String,
    pub instance: String,
    pub config: PathBuf,
    translator: Option<usize>,
}

/// Addresses of the lab, as each side sees the other.
pub const V6_HOST: &str = "2001:db8:6::2";
pub const V6_HOST_AS_V4: &str = "192.0.2.2";
pub const V4_HOST: &str = "198.51.100.2";
pub const V4_HOST_AS_V6: &str = "64:ff9b:1::c633:6402";
/// A second address of the IPv6 host with no mapping until a test adds one.
pub const V6_SPARE: &str = "2001:db8:6::3";
pub const V6_SPARE_AS_V4: &str = "192.0.2.3";

/// In the routed lab ([`SiitLab::routed`]) an IPv4 router sits between the
/// translator and the IPv4 host.
pub const ROUTER4: &str = "198.51.100.254";
pub const ROUTER4_AS_V6: &str = "64:ff9b:1::c633:64fe";
pub const ROUTED_V4_HOST: &str = "203.0.113.2";
pub const ROUTED_V4_HOST_AS_V6: &str = "64:ff9b:1::cb00:7102";

impl SiitLab {
    pub fn new() -> Self {
        Self::build(false, "xdp", true)
    }

    /// [`SiitLab::new`] with the translator started (`nat64-ctl run`, binary `bin`).
    pub fn started(bin: &str) -> Self {
        let mut lab = Self::new();
        lab.start(bin);
        lab
    }

    /// The lab as `ip link add` leaves it: the hosts' veth ends have neither GRO nor an
    /// XDP program, so the translator's ports take no XDP frames.
    pub fn plain() -> Self {
        Self::build(false, "xdp", false)
    }

    /// The lab with an IPv4 router `r` between the translator and the IPv4 host:
    /// `x` to4 198.51.100.1 -- 198.51.100.254 `r` 203.0.113.1 -- 203.0.113.2 `v4`.
    pub fn routed() -> Self {
        Self::build(true, "xdp", true)
    }

    /// Narrows the router's link towards the IPv4 host to `mtu` bytes (a path-MTU
    /// step the IPv4 host does not know about, so its MSS does not hide it).
    pub fn set_v4_mtu_step(&self, mtu: u32) {
        let r = self.lab.ns("r");
        self.lab.must_in(&r, &format!("ip link set south mtu {mtu}"));
    }

    /// The plain lab with the translator attached by TC (TCX) instead of XDP.
    pub fn tc() -> Self {
        Self::build(false, "tc", true)
    }

    fn build(routed: bool, attach: &str, far_gro: bool) -> Self {
        let mut lab = Lab::new();
        let v6 = lab.add_ns("v6");
        let x = lab.add_ns("x");
        let v4 = lab.add_ns("v4");
        lab.link(&v6, "eth0", &x, "to6");
        if routed {
            let r = lab.add_ns("r");
            lab.link(&x, "to4", &r, "north");
            lab.link(&r, "south", &v4, "eth0");
            lab.must_in(
                &r,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.ip_forward=1 \
                 && ip addr add 198.51.100.254/24 dev north && ip addr add 203.0.113.1/24 dev south \
                 && ip route add default via 198.51.100.1 && ethtool -K north gro on >/dev/null",
            );
        } else {
            lab.link(&x, "to4", &v4, "eth0");
        }
        lab.must_in(
            &v6,
            "ip addr add 2001:db8:6::2/64 dev eth0 nodad && ip addr add 2001:db8:6::3/64 dev eth0 nodad preferred_lft 0 \
             && ip -6 route add default via 2001:db8:6::1",
        );
        lab.must_in(
            &x,
            "ip addr add 2001:db8:6::1/64 dev to6 nodad && ip addr add 198.51.100.1/24 dev to4 \
             && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
        );
        if routed {
            lab.must_in(&x, "ip route add 203.0.113.0/24 via 198.51.100.254");
            lab.must_in(
                &v4,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && ip addr add 203.0.113.2/24 dev eth0 \
                 && ip route add default via 203.0.113.1",
            );
        } else {
            lab.must_in(
                &v4,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && ip addr add 198.51.100.2/24 dev eth0 \
                 && ip route add default via 198.51.100.1",
            );
        }
        // XDP_REDIRECT into a veth needs the receiving end to run NAPI: give the
        // hosts' ends GRO, as a real NIC's driver would have (after the link is up: the
        // kernel decides whether a veth takes XDP frames when its peer's features change
        // while it runs).
        if far_gro {
            lab.must_in(&v6, "ethtool -K eth0 gro on >/dev/null");
            lab.must_in(&v4, "ethtool -K eth0 gro on >/dev/null");
        }
        for ns in [&v6, &x] {
            let ready = wait_until(Duration::from_secs(5), || {
                lab.exec(ns, "ip -6 addr show tentative").stdout.is_empty()
            });
            assert!(ready, "IPv6 addresses in {ns} stayed tentative");
        }
        let instance = format!("lab{}", lab.tag);
        let config = std::env::temp_dir().join(format!("nat64-{instance}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{
    "instance": "{instance}",
    "interfaces": [{{"name": "to6", "attach": "{attach}"}}, {{"name": "to4", "attach": "{attach}"}}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "2001:db8:6::1",
    "pool6": "64:ff9b:1::/96",
    "eamt": [
        {{"ipv4": "192.0.2.2", "ipv6": "2001:db8:6::2"}},
        {{"ipv4": "192.0.2.100", "ipv6": "2001:db8:46::100"}}
    ],
    "general-path": {{"interface": "nat64", "ipv4-addr": "192.0.2.100", "ipv6-addr": "2001:db8:46::100"}}
}}
"#
            ),
        )
        .expect("writing lab config");
        lab.files.push(config.clone());
        Self { lab, v6, x, v4, instance, config, translator: None }
    }

    /// Starts `nat64-ctl run` (binary `bin`) in the translator namespace and waits
    /// until its maps are pinned.
    pub fn start(&mut self, bin: &str) {
        self.start_with(&[], bin, &[]);
    }

    /// [`SiitLab::start`] with a command wrapper and extra `run` arguments.
    pub fn start_with(&mut self, wrapper: &[&str], bin: &str, extra: &[&str]) {
        let i = self.lab.start_ctl_with(&self.x, wrapper, bin, extra, &self.config, &self.instance);
        self.translator = Some(i);
    }

    /// Starts the translator with the command line `argv` (see [`Lab::start_argv`]).
    pub fn start_argv(&mut self, argv: &[&str], bin: &str) {
        let i = self.lab.start_argv(&self.x, argv, bin, &self.instance);
        self.translator = Some(i);
    }

    /// Stops the translator (SIGTERM) and returns what it printed.
    pub fn stop(&mut self) -> Output {
        let i = self.translator.take().expect("translator running");
        self.lab.stop_child(i)
    }

    /// Runs `bin --instance <lab> args...` in the translator's network namespace.
    pub fn ctl(&self, bin: &str, args: &[&str]) -> Output {
        self.lab.ctl(&self.x, bin, &self.instance, args)
    }

    /// The translator's counters (`stats --json`); read one with [`packets`].
    pub fn stats(&self, bin: &str) -> Value {
        json(self.ctl(bin, &["stats", "--json"]), "stats")
    }
}

impl Default for SiitLab {
    fn default() -> Self {
        Self::new()
    }
}

/// A steady UDP stream from the IPv6 host of a [`SiitLab`] to the IPv4 host (port
/// 7000, by its pool6 address), every datagram numbered and counted by a receiver: an
/// operator's work in between (a restart, an upgrade) must lose none.
pub struct UdpStream {
    sender: thread::JoinHandle<u64>,
    report: std::process::ChildStdout,
    rate: f64,
    secs: f64,
}

impl UdpStream {
    /// Starts the receiver, then `rate` datagrams a second for `secs` seconds.
    pub fn start(lab: &mut SiitLab, rate: f64, secs: f64) -> Self {
        let recv = lab.lab.spawn_in(&lab.v4, &format!("python3 {} udp-count 7000 4", peers()));
        let report = recv.stdout.take().expect("stdout piped");
        wait_listening(&lab.lab, &lab.v4, 7000, "udp");
        let v6 = lab.v6.clone();
        let sender = thread::spawn(move || {
            let o = Command::new("ip")
                .args(["netns", "exec", &v6, "python3", &peers(), "udp-stream", V4_HOST_AS_V6, "7000"])
                .arg(rate.to_string())
                .arg(secs.to_string())
                .output()
                .expect("sender");
            String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().expect("sent count")
        });
        Self { sender, report, rate, secs }
    }

    /// Waits for the stream's end and asserts that every datagram arrived, once and
    /// intact, from the IPv6 host's mapped address; the number sent.
    pub fn finish_intact(self) -> u64 {
        use std::io::{BufRead as _, BufReader};
        let sent = self.sender.join().expect("sender thread");
        let mut r = BufReader::new(self.report);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(r.read_line(&mut line).expect("receiver output") > 0, "receiver ended without a report");
            if line.trim() != "ready" {
                break;
            }
        }
        let got: Value = serde_json::from_str(&line).expect("receiver report");
        println!("sent {sent}, receiver: {got}");
        assert_eq!(sent, (self.rate * self.secs) as u64);
        assert_eq!(got["bad"], 0, "mistranslated: {got}");
        assert_eq!(got["missing_count"], 0, "lost: {got}");
        assert_eq!(got["distinct"].as_u64(), Some(sent), "{got}");
        assert_eq!(got["sources"], serde_json::json!([V6_HOST_AS_V4]), "{got}");
        sent
    }
}

/// Path of the traffic-peer script (tests/peers.py).
pub fn peers() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/peers.py").to_string()
}

/// Reads stdout lines of a background peer until one that is not "ready", or panics
/// after `timeout`.
pub fn wait_line(child: &mut Child, timeout: Duration) -> String {
    use std::io::{BufRead as _, BufReader};
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() != "ready" {
                let _ = tx.send(line);
                break;
            }
        }
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("no answer from the peer within {timeout:?}"))
}

/// Starts unbound in `ns` as a DNS64 resolver (prefix `prefix`) on `listen` (IPv6,
/// port 53), with two local authoritative zones: ipv4only.arpa (RFC 7050) and
/// v4only.test, whose names (`records`: name, IPv4 address) exist as A records only.
/// Its files go in `dir`. Waits until it answers. (unbound serves "test." itself as an
/// empty zone, RFC 6761, unless told otherwise: `nodefault` lets the auth-zone answer
/// through the iterator, where DNS64 sees the A-only answer and synthesizes.)
pub fn start_dns64(
    lab: &mut Lab,
    ns: &str,
    dir: &Path,
    listen: &str,
    prefix: &str,
    records: &[(&str, &str)],
) {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    };
    let soa = "$TTL 10\n@ IN SOA ns.test. host.test. 1 3600 600 86400 10\n@ IN NS ns.test.\n";
    let arpa = write(
        "ipv4only.arpa.db",
        &format!("$ORIGIN ipv4only.arpa.\n{soa}@ IN A 192.0.0.170\n@ IN A 192.0.0.171\n"),
    );
    let a: String = records.iter().map(|(n, a)| format!("{n} IN A {a}\n")).collect();
    let test = write("v4only.test.db", &format!("$ORIGIN v4only.test.\n{soa}{a}"));
    let conf = write(
        "unbound.conf",
        &format!(
            "server:\n  interface: {listen}\n  port: 53\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  do-ip4: no\n  \
             access-control: ::/0 allow\n  module-config: \"dns64 iterator\"\n  dns64-prefix: {prefix}\n  \
             auto-trust-anchor-file: \"\"\n  trust-anchor-file: \"\"\n  local-zone: \"test.\" nodefault\n\
             auth-zone:\n  name: \"ipv4only.arpa.\"\n  zonefile: \"{arpa}\"\n  for-upstream: yes\n  for-downstream: no\n\
             auth-zone:\n  name: \"v4only.test.\"\n  zonefile: \"{test}\"\n  for-upstream: yes\n  for-downstream: no\n",
            dir = dir.display(),
            arpa = arpa.display(),
            test = test.display(),
        ),
    );
    lab.spawn_in(ns, &format!("unbound -d -c {}", conf.display()));
    let up = wait_until(Duration::from_secs(10), || {
        let out = lab.exec(ns, &format!("python3 {} dns-aaaa {listen} ipv4only.arpa", peers()));
        out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(up, "unbound did not answer on {listen}");
}

/// What a `nat64-ctl ... --json` command printed, as JSON; panics with its output if it
/// failed or printed something else. `what` names the command in the message.
pub fn json(out: Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

/// The packets of counter `name` in what `stats --json` printed.
pub fn packets(stats: &Value, name: &str) -> u64 {
    stats[name]["packets"].as_u64().unwrap_or_else(|| panic!("counter {name} missing"))
}

/// Waits until a `proto` ("tcp" or "udp") socket listens on `port` in namespace `ns`,
/// so that a client never races the peer it started there.
pub fn wait_listening(lab: &Lab, ns: &str, port: u16, proto: &str) {
    let flag = if proto == "udp" { "-lun" } else { "-ltn" };
    let ok = wait_until(Duration::from_secs(10), || {
        let out = lab.exec(ns, &format!("ss -H {flag} sport = :{port}"));
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(ok, "{proto} peer on port {port} in {ns} did not start");
}

/// Sends one `len`-byte UDP datagram from namespace `from` to `to_addr`:`port`, where a
/// receiver in `to` checks it arrives whole (length and SHA-256).
pub fn one_datagram(lab: &mut Lab, from: &str, to: &str, to_addr: &str, port: u16, len: usize) {
    lab.spawn_in(to, &format!("python3 {} udp-recv {port}", peers()));
    wait_listening(lab, to, port, "udp");
    let sent = lab.must_in(from, &format!("python3 {} udp-send {to_addr} {port} {len}", peers()));
    let got = wait_line(lab.last_child(), Duration::from_secs(5));
    assert_eq!(got.trim(), sent.trim(), "{len}-byte datagram as sent (length, sha256) vs as received");
}

/// The hop addresses traceroute printed, in order ("*" for a silent hop).
pub fn hops(out: &str) -> Vec<String> {
    out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1).map(str::to_string)).collect()
}

/// The SHA-256 of `data` in hex, as sha256sum prints it.
pub fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning sha256sum");
    child.stdin.take().expect("stdin piped").write_all(data).expect("writing to sha256sum");
    digest(child.wait_with_output().expect("sha256sum"))
}

/// The SHA-256 of the file at `path` in hex, as sha256sum prints it.
pub fn sha256_file(path: &Path) -> String {
    digest(Command::new("sha256sum").arg(path).output().expect("spawning sha256sum"))
}

fn digest(out: Output) -> String {
    assert!(out.status.success(), "sha256sum: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_string()
}

/// Runs `f` in a thread that has entered network namespace `ns` (sockets it opens live
/// there); its result.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns(2) on a namespace file we hold open, for this thread.
                let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "entering {ns}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("the thread in the namespace")
    })
}

/// A session-sync key file in `dir`: 48 random bytes, mode 600.
pub fn sync_key(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let key = dir.join("sync.key");
    let mut k = [0u8; 48];
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut k).expect("48 random bytes");
    std::fs::write(&key, k).expect("writing the key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    key
}

/// Two PLAT nodes side by side between router `r` and server `s`: node K (1, 2) is
/// linked to the router (its `north`, 2001:db8:K::2/64, the router's `toK`
/// 2001:db8:K::1/64, the node's default route) and to the server (its `south`,
/// 198.51.10K.1/24, the server's `fromK` 198.51.10K.2/24, routing 192.0.2.K/32 back to
/// it from `src` when given), forwarding on; `more(K)` adds commands on node K.
pub fn two_nodes(
    lab: &Lab,
    r: &str,
    s: &str,
    nodes: &[String; 2],
    src: Option<&str>,
    more: impl Fn(usize) -> String,
) {
    for (k, n) in nodes.iter().enumerate() {
        let k1 = k + 1;
        lab.link(r, &format!("to{k1}"), n, "north");
        lab.link(n, "south", s, &format!("from{k1}"));
        lab.must_in(
            r,
            &format!(
                "ip -6 addr add 2001:db8:{k1}::1/64 dev to{k1} nodad && ethtool -K to{k1} gro on >/dev/null"
            ),
        );
        lab.must_in(
            n,
            &format!(
                "ip -6 addr add 2001:db8:{k1}::2/64 dev north nodad && ip addr add 198.51.10{k1}.1/24 dev south && \
                 ip -6 route add default via 2001:db8:{k1}::1 && sysctl -qw net.ipv4.ip_forward=1 \
                 net.ipv6.conf.all.forwarding=1 && {}",
                more(k1)
            ),
        );
        let src = src.map(|a| format!(" src {a}")).unwrap_or_default();
        lab.must_in(
            s,
            &format!(
                "ip addr add 198.51.10{k1}.2/24 dev from{k1} && ip route add 192.0.2.{k1}/32 via 198.51.10{k1}.1{src} && \
                 ethtool -K from{k1} gro on >/dev/null"
            ),
        );
    }
}
