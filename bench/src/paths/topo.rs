//! A path's topology: its namespaces, links, addresses and the translator or
//! forwarder in the middle, and TCP through it.

use std::{thread, time::Duration};

use anyhow::{Context as _, Result, ensure};
use aya::programs::xdp::XdpLinkId;
use nat64_tests::lab::Lab;

use super::{
    net::{
        Dir, H4, H4_AS_V6, H6, H6_AS_V4, MAC_H4, MAC_H6, MAC_X4, MAC_X6, MASQ_POOL, POOL6, Path, frame,
        ifindex, in_netns, mac, veth,
    },
    traffic::Progs,
};

/// One topology with one path in the middle; removed when dropped.
pub(crate) struct Topo {
    pub(crate) lab: Lab,
    pub(crate) h6: String,
    pub(crate) x: String,
    pub(crate) h4: String,
    /// The senders' packets come through TUN devices (`Path::l3`).
    pub(crate) l3: bool,
    /// XDP links of the benchmark's programs: (program, link).
    pub(crate) links: Vec<(&'static str, XdpLinkId)>,
}

impl Topo {
    pub(crate) fn build(path: Path) -> Result<Self> {
        let mut lab = Lab::new();
        let h6 = lab.add_ns("b6");
        let x = lab.add_ns("bx");
        let h4 = lab.add_ns("b4");
        veth(&lab, &x, "to6", MAC_X6, &h6, "eth0", MAC_H6);
        veth(&lab, &x, "to4", MAC_X4, &h4, "eth0", MAC_H4);
        // The hosts send what a wire delivers: MTU-sized packets with complete
        // checksums (no CHECKSUM_PARTIAL, which XDP cannot see). The middle's veths
        // keep GRO, as a NIC's driver does, and may merge them again.
        for ns in [&h6, &h4] {
            lab.must_in(ns, "ethtool -K eth0 tx off >/dev/null");
        }
        lab.must_in(
            &h6,
            &format!(
                "ip addr add {H6}/64 dev eth0 nodad && ip -6 route add {POOL6} via 2001:db8:6::1 \
                 && ip neigh add 2001:db8:6::1 lladdr {} dev eth0 nud permanent",
                mac(MAC_X6)
            ),
        );
        lab.must_in(
            &x,
            &format!(
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
                 && ip addr add 2001:db8:6::1/64 dev to6 nodad && ip addr add 198.51.100.1/24 dev to4 \
                 && ip neigh add {H6} lladdr {} dev to6 nud permanent \
                 && ip neigh add {H4} lladdr {} dev to4 nud permanent",
                mac(MAC_H6),
                mac(MAC_H4)
            ),
        );
        lab.must_in(
            &h4,
            &format!(
                "ip addr add {H4}/24 dev eth0 && ip route add 192.0.2.0/24 via 198.51.100.1 \
                 && ip neigh add 198.51.100.1 lladdr {} dev eth0 nud permanent",
                mac(MAC_X4)
            ),
        );
        if !path.translates() {
            // The same packets, untranslated: each host also holds the address the
            // other side sends to, and the middle routes them.
            lab.must_in(
                &h6,
                &format!(
                    "ip addr add {H6_AS_V4}/24 dev eth0 && ip route add 198.51.100.0/24 via 192.0.2.1 \
                     && ip neigh add 192.0.2.1 lladdr {} dev eth0 nud permanent",
                    mac(MAC_X6)
                ),
            );
            lab.must_in(
                &x,
                &format!(
                    "ip addr add 192.0.2.1/24 dev to6 && ip addr add 2001:db8:4::1/64 dev to4 nodad \
                     && ip -6 route add {POOL6} via 2001:db8:4::2 \
                     && ip neigh add {H6_AS_V4} lladdr {} dev to6 nud permanent \
                     && ip neigh add 2001:db8:4::2 lladdr {} dev to4 nud permanent",
                    mac(MAC_H6),
                    mac(MAC_H4)
                ),
            );
            lab.must_in(
                &h4,
                &format!(
                    "ip addr add 2001:db8:4::2/64 dev eth0 nodad && ip addr add {H4_AS_V6}/128 dev eth0 nodad \
                     && ip -6 route add 2001:db8:6::/64 via 2001:db8:4::1 \
                     && ip neigh add 2001:db8:4::1 lladdr {} dev eth0 nud permanent",
                    mac(MAC_X4)
                ),
            );
        }
        if path.l3() {
            // One queue per generating CPU; what comes out of them is routed (or
            // translated) like what comes straight from the ports.
            lab.must_in(
                &x,
                "ip tuntap add dev tun6 mode tun multi_queue && ip tuntap add dev tun4 mode tun multi_queue \
                 && ip link set tun6 up && ip link set tun4 up \
                 && sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.tun4.rp_filter=0",
            );
        }
        Ok(Self { lab, h6, x, h4, l3: path.l3(), links: Vec::new() })
    }

    /// Puts the path in place (the reference forwarding needs nothing more).
    pub(crate) fn start(&mut self, path: Path, progs: &mut Progs, ctl: &str) -> Result<()> {
        match path {
            Path::Forward | Path::ForwardL3 => {}
            Path::XdpFwd => {
                for i in ["to6", "to4"] {
                    let id = progs.attach("bench_fwd", &self.x, i)?;
                    self.links.push(("bench_fwd", id));
                }
                // A device map resolves an ifindex in the namespace of whoever writes it.
                in_netns(&self.x, || progs.set_ports(&[ifindex("to6")?, ifindex("to4")?]))?;
            }
            Path::Tayga | Path::TaygaMasq => {
                let dir = std::env::temp_dir().join(format!("nat64-bench-tayga-{}", self.lab.tag));
                std::fs::create_dir_all(&dir)?;
                let conf = dir.join("tayga.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "tun-device nat64t\nipv4-addr 192.0.2.254\nprefix {POOL6}\n{}\ndata-dir {}\n",
                        if path == Path::TaygaMasq {
                            format!("dynamic-pool {MASQ_POOL}")
                        } else {
                            format!("map {H6_AS_V4} {H6}")
                        },
                        dir.display()
                    ),
                )?;
                self.lab.dirs.push(dir);
                let conf = conf.display().to_string();
                self.lab.must_in(
                    &self.x,
                    &format!(
                        "tayga --mktun -c {conf} >/dev/null && ip link set nat64t up \
                         && ip route add {POOL6} dev nat64t && ip route add 192.0.2.0/24 dev nat64t"
                    ),
                );
                if path == Path::TaygaMasq {
                    self.lab.must_in(
                        &self.x,
                        &format!(
                            "ip route add {MASQ_POOL} dev nat64t && nft add table ip bench_masq && \
                             nft add chain ip bench_masq post '{{ type nat hook postrouting priority 100; }}' && \
                             nft add rule ip bench_masq post oifname to4 ip saddr {MASQ_POOL} masquerade"
                        ),
                    );
                }
                // TAYGA is one thread: it gets the second CPU to itself (the kernel's
                // half of its path runs on the generator's CPU).
                self.lab.spawn_in(&self.x, &format!("taskset -c 1 tayga -c {conf} --nodetach"));
                thread::sleep(Duration::from_millis(300));
                let running = self.lab.last_child().try_wait()?.is_none();
                ensure!(running, "tayga exited at once: {conf}");
            }
            Path::Nat64Xdp
            | Path::Nat64XdpGro
            | Path::Nat64Tc
            | Path::StatefulXdp
            | Path::StatefulTc
            | Path::MasqXdp
            | Path::Nat64TcL3 => {
                let attach =
                    if matches!(path, Path::Nat64Xdp | Path::Nat64XdpGro | Path::StatefulXdp | Path::MasqXdp)
                    {
                        "xdp"
                    } else {
                        "tc"
                    };
                // SIIT: an EAM entry for the IPv6 host. Stateful: the IPv6 host's generator
                // flow (port 40000) gets a dynamic mapping with its first frame; the IPv4
                // host's generator sends to H6_AS_V4:9, which a static entry maps to the
                // IPv6 host's port 9 (the sinks count the discard port): after the first
                // frame each way, every frame is an established session's.
                let mode = if matches!(path, Path::StatefulXdp | Path::StatefulTc) {
                    // 64 addresses: room for a million mappings (the PLAT section).
                    format!(
                        r#""mode": "nat64", "pool4": [{{"prefix": "192.0.2.0/26"}}],
    "bib": [{{"protocol": "udp", "ipv6": "[{H6}]:9", "ipv4": "{H6_AS_V4}:9"}}]"#
                    )
                } else if path == Path::MasqXdp {
                    format!(r#""dynamic-pool": "{MASQ_POOL}", "masquerade": {{"interface": "to4"}}"#)
                } else {
                    let gro = if path == Path::Nat64XdpGro { r#""xdp-tcp-gro": true, "# } else { "" };
                    format!(r#"{gro}"eamt": [{{"ipv4": "{H6_AS_V4}", "ipv6": "{H6}"}}]"#)
                };
                let interfaces = if path == Path::Nat64TcL3 {
                    r#"{"name": "tun6", "attach": "tc"}, {"name": "tun4", "attach": "tc"},
        {"name": "to6", "attach": "xdp"}, {"name": "to4", "attach": "xdp"}"#
                        .to_string()
                } else {
                    format!(
                        r#"{{"name": "to6", "attach": "{attach}"}}, {{"name": "to4", "attach": "{attach}"}}"#
                    )
                };
                let instance = self.instance();
                let config = std::env::temp_dir().join(format!("nat64-{instance}.json"));
                std::fs::write(
                    &config,
                    format!(
                        r#"{{
    "instance": "{instance}",
    "interfaces": [{interfaces}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "2001:db8:6::1",
    "pool6": "{POOL6}",
    {mode}
}}
"#
                    ),
                )?;
                self.lab.files.push(config.clone());
                let x = self.x.clone();
                self.lab.start_ctl(&x, ctl, &config, &instance);
            }
        }
        Ok(())
    }

    pub(crate) fn attach_sinks(&mut self, progs: &mut Progs, at: &[(&str, &str)]) -> Result<()> {
        for (ns, i) in at {
            let id = progs.attach("bench_sink", ns, i)?;
            self.links.push(("bench_sink", id));
        }
        Ok(())
    }

    /// The nat64 instance's name (the translating paths nat64-ctl runs).
    pub(crate) fn instance(&self) -> String {
        format!("bench{}", self.lab.tag)
    }

    pub(crate) fn detach(&mut self, progs: &mut Progs, which: &str) -> Result<()> {
        let (gone, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.links).into_iter().partition(|l| l.0 == which);
        self.links = keep;
        for (name, id) in gone {
            progs.detach(name, id)?;
        }
        Ok(())
    }

    /// Where the generator sends from and what: a host's port and the frame, or (L3)
    /// the translator's TUN device and the frame's IP packet.
    pub(crate) fn sender(&self, dir: Dir) -> (&str, Vec<u8>) {
        if self.l3 {
            return (&self.x, frame(dir)[14..].to_vec());
        }
        match dir {
            Dir::SixToFour => (&self.h6, frame(dir)),
            Dir::FourToSix => (&self.h4, frame(dir)),
        }
    }

    /// The TUN device the generator writes into (L3 paths).
    pub(crate) fn tun(&self, dir: Dir) -> Option<&'static str> {
        self.l3.then_some(if dir == Dir::SixToFour { "tun6" } else { "tun4" })
    }
}

/// One iperf3 run from the IPv6 host to the IPv4 host: Gbit/s received.
pub(crate) fn tcp(topo: &Topo, streams: u32, secs: u32) -> Result<f64> {
    let o = topo.lab.exec(&topo.h6, &format!("iperf3 -c {H4_AS_V6} -t {secs} -P {streams} -J"));
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("iperf3 printed no JSON: {text}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 failed: {}", v["error"].as_str().unwrap_or(&text)))?;
    Ok(bps / 1e9)
}
