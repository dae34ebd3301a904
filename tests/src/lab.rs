//! Network-namespace labs for end-to-end tests: created by the test, removed when
//! the lab is dropped (also on panic).

use std::{
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

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
}

impl Lab {
    pub fn new() -> Self {
        crate::require_root();
        for tool in ["ip", "ping", "nsenter", "ethtool", "python3"] {
            assert!(run(&format!("command -v {tool}")).status.success(), "`{tool}` is missing: run `cargo xtask setup`");
        }
        Self { tag: unique_tag(), namespaces: Vec::new(), children: Vec::new(), files: Vec::new() }
    }

    /// Namespace name for a role (e.g. "v6" -> "n64-v6-<tag>").
    pub fn ns(&self, role: &str) -> String {
        format!("n64-{role}-{}", self.tag)
    }

    pub fn add_ns(&mut self, role: &str) -> String {
        let n = self.ns(role);
        must(&format!("ip netns add {n}"));
        self.namespaces.push(n.clone());
        must(&format!("ip -n {n} link set lo up"));
        n
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

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
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
