//! The 464XLAT lab: IPv4-only clients inside a real WireGuard tunnel (Debian's
//! wireguard-go, an L3 device), a concentrator running nat64 as CLAT on its WireGuard
//! interface, an IPv6-only core, a PLAT running nat64 as SIIT, an IPv4-only server.
//!
//! ```text
//!  [c1] wg 100.64.0.2 --\                                     PLAT pool6 64:ff9b:1::/96
//!  [c2] wg 100.64.0.3 ---+-- underlay 10.9.N.0/24 -- [cc] wg  (CLAT: 100.64.0.0/24 <-> 2001:db8:c1a7::/120,
//!                                                          pref64 64:ff9b:1::/96)
//!                    [cc] core 2001:db8:100::1 ---- 2001:db8:100::2 north [plat] south 198.51.100.1
//!                                                    (SIIT: 192.0.2.0/24 <-> 2001:db8:c1a7::/120)
//!                                                                  198.51.100.2 eth0 [srv] (IPv4 only)
//! ```
//!
//! The clients have no IPv6 at all; the core has no IPv4. The concentrator is a host
//! CLAT too: its own IPv4 (100.64.0.1 <-> 2001:db8:c1a7::1) goes out through its general
//! path. A client's packet to
//! 198.51.100.2 leaves the CLAT as 2001:db8:c1a7::2 -> 64:ff9b:1::c633:6402 and the
//! PLAT as 192.0.2.2 -> 198.51.100.2. The PLAT also runs unbound with DNS64 on
//! 2001:db8:100::2, for `"pref64": "auto"`.

use std::{path::PathBuf, process::Output};

use crate::lab::{Lab, must, run};

pub const SERVER: &str = "198.51.100.2";
pub const PLAT_RESOLVER: &str = "2001:db8:100::2";
pub const PREF64: &str = "64:ff9b:1::/96";
/// The concentrator's own IPv4 address as a host CLAT (its general path's pair).
pub const HOST_CLAT_V4: &str = "100.64.0.1";

pub struct XlatLab {
    pub lab: Lab,
    /// Client namespaces, client i holding 100.64.0.(i+2).
    pub clients: Vec<String>,
    pub cc: String,
    pub plat: String,
    pub srv: String,
    pub clat_instance: String,
    pub plat_instance: String,
    /// The concentrator's WireGuard interface.
    pub wg: String,
    dir: PathBuf,
}

/// The client's IPv4 address inside the tunnel.
pub fn client_addr(i: usize) -> String {
    format!("100.64.0.{}", i + 2)
}

fn wg_key(dir: &std::path::Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    must(&format!("umask 077 && wg genkey > {}", path.display()));
    let public = must(&format!("wg pubkey < {}", path.display())).trim().to_string();
    (path, public)
}

impl XlatLab {
    /// Builds the lab with `clients` WireGuard clients. Nothing runs nat64 yet.
    pub fn new(clients: usize) -> Self {
        let mut lab = Lab::new();
        for tool in ["wg", "wireguard-go", "unbound"] {
            assert!(
                run(&format!("command -v {tool}")).status.success(),
                "`{tool}` is missing: run `cargo xtask setup`"
            );
        }
        let dir = std::env::temp_dir().join(format!("nat64-xlat-{}", lab.tag));
        std::fs::create_dir_all(&dir).expect("lab directory");
        let cc = lab.add_ns("cc");
        let plat = lab.add_ns("plat");
        let srv = lab.add_ns("srv");
        let tag = lab.tag.clone();
        let wg = format!("wgcc{tag}");

        // The IPv6-only core and the IPv4-only server side.
        lab.link(&cc, "core", &plat, "north");
        lab.link(&plat, "south", &srv, "eth0");
        lab.must_in(
            &cc,
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
             && ip addr add 2001:db8:100::1/64 dev core nodad && ip -6 route add default via 2001:db8:100::2 \
             && ethtool -K core gro on >/dev/null",
        );
        lab.must_in(
            &plat,
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
             && ip addr add 2001:db8:100::2/64 dev north nodad && ip addr add 198.51.100.1/24 dev south \
             && ip -6 route add 2001:db8:c1a7::/120 via 2001:db8:100::1 \
             && ethtool -K north gro on >/dev/null && ethtool -K south gro on >/dev/null",
        );
        lab.must_in(
            &srv,
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && ip addr add 198.51.100.2/24 dev eth0 \
             && ip route add default via 198.51.100.1 && ethtool -K eth0 gro on >/dev/null",
        );

        // WireGuard: the concentrator, then each client over its own IPv4 underlay.
        let (cc_key, cc_pub) = wg_key(&dir, "cc");
        lab.must_in(&cc, &format!("wireguard-go {wg} 2>&1"));
        lab.must_in(
            &cc,
            &format!("wg set {wg} listen-port 51820 private-key {} && ip link set {wg} up", cc_key.display()),
        );
        let mut names = Vec::new();
        for i in 0..clients {
            let c = lab.add_ns(&format!("c{i}"));
            let (under_c, under_cc) = (format!("u{i}"), format!("u{i}cc"));
            lab.link(&c, &under_c, &cc, &under_cc);
            let net = i + 1;
            lab.must_in(&cc, &format!("ip addr add 10.9.{net}.1/24 dev {under_cc}"));
            let (key, public) = wg_key(&dir, &format!("c{i}"));
            let cwg = format!("wgc{i}{tag}");
            let addr = client_addr(i);
            lab.must_in(
                &c,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            );
            lab.must_in(&c, &format!("ip addr add 10.9.{net}.2/24 dev {under_c} && wireguard-go {cwg} 2>&1"));
            lab.must_in(
                &c,
                &format!(
                    "wg set {cwg} private-key {} peer {cc_pub} endpoint 10.9.{net}.1:51820 allowed-ips 0.0.0.0/0 \
                     persistent-keepalive 1 && ip addr add {addr}/32 dev {cwg} && ip link set {cwg} up \
                     && ip route add default dev {cwg}",
                    key.display()
                ),
            );
            lab.must_in(
                &cc,
                &format!(
                    "wg set {wg} peer {public} allowed-ips {addr}/32 && ip route add {addr}/32 dev {wg}"
                ),
            );
            names.push(c);
        }
        let clat_instance = format!("clat{tag}");
        let plat_instance = format!("plat{tag}");
        Self { lab, clients: names, cc, plat, srv, clat_instance, plat_instance, wg, dir }
    }

    fn write(&mut self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("writing a lab file");
        path
    }

    /// Starts the PLAT (SIIT) and the CLAT; `pref64` is the CLAT's "pref64" value
    /// (a prefix, or "auto" to ask the PLAT's DNS64).
    pub fn start(&mut self, bin: &str, pref64: &str) {
        let plat_cfg = format!(
            r#"{{
    "instance": "{}",
    "interfaces": [{{"name": "north", "attach": "xdp"}}, {{"name": "south", "attach": "xdp"}}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "2001:db8:100::2",
    "pool6": "{PREF64}",
    "eamt": [{{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:c1a7::/120"}}]
}}"#,
            self.plat_instance
        );
        let resolver = if pref64 == "auto" {
            format!(r#", "pref64-resolver": "{PLAT_RESOLVER}""#)
        } else {
            String::new()
        };
        let clat_cfg = format!(
            r#"{{
    "instance": "{}",
    "mode": "clat",
    "interfaces": [{{"name": "{}", "attach": "tc"}}, {{"name": "core", "attach": "tc"}}],
    "ipv4-addr": "10.9.0.1",
    "ipv6-addr": "2001:db8:100::1",
    "pref64": "{pref64}"{resolver},
    "eamt": [{{"ipv4": "100.64.0.0/24", "ipv6": "2001:db8:c1a7::/120"}}],
    "general-path": {{"interface": "clat", "ipv4-addr": "{HOST_CLAT_V4}", "ipv6-addr": "2001:db8:c1a7::1"}}
}}"#,
            self.clat_instance, self.wg
        );
        let p = self.write("plat.json", &plat_cfg);
        let c = self.write("clat.json", &clat_cfg);
        let (plat, cc) = (self.plat.clone(), self.cc.clone());
        let plat_instance = self.plat_instance.clone();
        let clat_instance = self.clat_instance.clone();
        self.lab.start_ctl(&plat, bin, &p, &plat_instance);
        self.lab.start_ctl(&cc, bin, &c, &clat_instance);
    }

    /// Runs unbound on the PLAT as a DNS64 resolver (prefix `prefix`) answering from a
    /// local authoritative zone: ipv4only.arpa (RFC 7050) and `www.v4only.test`, an
    /// IPv4-only name (198.51.100.2). Waits until it answers.
    pub fn start_dns64(&mut self, prefix: &str) {
        let plat = self.plat.clone();
        crate::lab::start_dns64(&mut self.lab, &plat, &self.dir, PLAT_RESOLVER, prefix, &[("www", SERVER)]);
    }

    pub fn clat_ctl(&self, bin: &str, args: &[&str]) -> Output {
        self.lab.ctl(&self.cc, bin, &self.clat_instance, args)
    }

    pub fn plat_ctl(&self, bin: &str, args: &[&str]) -> Output {
        self.lab.ctl(&self.plat, bin, &self.plat_instance, args)
    }
}

impl Drop for XlatLab {
    fn drop(&mut self) {
        // wireguard-go runs on in the background, holding its namespace, until its
        // device goes away.
        let tag = &self.lab.tag;
        let _ = self.lab.exec(&self.cc, &format!("ip link del {}", self.wg));
        for (i, c) in self.clients.iter().enumerate() {
            let _ = self.lab.exec(c, &format!("ip link del wgc{i}{tag}"));
        }
        let _ = run(&format!("pkill -f 'wireguard-go wg(cc|c[0-9]+){tag}'"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
