//! The paths' shared ground: the hosts' addresses, the paths and directions, the
//! frame every path carries, namespaces and veth pairs.

use std::{fs::File, os::fd::AsRawFd, thread};

use anyhow::{Context as _, Result, bail, ensure};
use nat64_tests::{
    lab::Lab,
    packet::{L4, V4Opts, V6Opts, eth4, eth6, ipv4, ipv6},
};

pub(crate) const H6: &str = "2001:db8:6::5";
pub(crate) const H6_AS_V4: &str = "192.0.2.5";
pub(crate) const H4: &str = "198.51.100.2";
pub(crate) const H4_AS_V6: &str = "2001:db8:64::c633:6402";
pub(crate) const POOL6: &str = "2001:db8:64::/96";
/// The dynamic pool of the masquerade PLATs (the PLAT section).
pub(crate) const MASQ_POOL: &str = "10.64.0.0/18";

pub(crate) const MAC_H6: [u8; 6] = [2, 0, 0, 0, 6, 5];
pub(crate) const MAC_X6: [u8; 6] = [2, 0, 0, 0, 6, 1];
pub(crate) const MAC_X4: [u8; 6] = [2, 0, 0, 0, 4, 1];
pub(crate) const MAC_H4: [u8; 6] = [2, 0, 0, 0, 4, 2];

pub(crate) fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Every path's `--paths` name.
pub(crate) fn keys() -> Vec<&'static str> {
    Path::ALL.iter().chain(&[Path::MasqXdp, Path::TaygaMasq]).map(|p| p.key()).collect()
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Path {
    Forward,
    XdpFwd,
    Tayga,
    Nat64Xdp,
    /// nat64 XDP with `xdp-tcp-gro`: translated TCP data goes to the kernel's GRO and
    /// forwarding (TCP rows only: the setting changes nothing else).
    Nat64XdpGro,
    Nat64Tc,
    /// Stateful NAT64 (mode "nat64"): the generator's flows are established sessions
    /// (a dynamic mapping 6->4, a static BIB entry 4->6).
    StatefulXdp,
    StatefulTc,
    /// The PLAT section's references ([`crate::plat`]): nat64's dynamic pool behind the
    /// kernel's masquerade (XDP), and TAYGA's dynamic pool behind it.
    MasqXdp,
    TaygaMasq,
    /// The senders' packets arrive on TUN devices (L3: no Ethernet header), as a
    /// CLAT's clients arrive through WireGuard, written by a process on the translator
    /// (the generator here): kernel forwarding of what comes out of them, and nat64's
    /// TC program for L3 devices attached to them (the Ethernet ports by XDP).
    ForwardL3,
    Nat64TcL3,
}

impl Path {
    pub(crate) const ALL: [Path; 10] = [
        Path::Forward,
        Path::XdpFwd,
        Path::Tayga,
        Path::Nat64Xdp,
        Path::Nat64XdpGro,
        Path::Nat64Tc,
        Path::StatefulXdp,
        Path::StatefulTc,
        Path::ForwardL3,
        Path::Nat64TcL3,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Forward => "kernel forwarding (no translation)",
            Path::XdpFwd => "XDP forwarding (no translation)",
            Path::Tayga => "TAYGA",
            Path::Nat64Xdp => "nat64, XDP",
            Path::Nat64XdpGro => "nat64, XDP, xdp-tcp-gro",
            Path::Nat64Tc => "nat64, TC",
            Path::StatefulXdp => "nat64 stateful (NAT64), XDP",
            Path::StatefulTc => "nat64 stateful (NAT64), TC",
            Path::MasqXdp => "nat64 dynamic pool + masquerade, XDP",
            Path::TaygaMasq => "TAYGA dynamic pool + masquerade",
            Path::ForwardL3 => "TUN (L3): kernel forwarding",
            Path::Nat64TcL3 => "TUN (L3): nat64, TC",
        }
    }

    /// The name `--paths` takes.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Path::Forward => "forward",
            Path::XdpFwd => "xdp-forward",
            Path::Tayga => "tayga",
            Path::Nat64Xdp => "nat64-xdp",
            Path::Nat64XdpGro => "nat64-xdp-gro",
            Path::Nat64Tc => "nat64-tc",
            Path::StatefulXdp => "stateful-xdp",
            Path::StatefulTc => "stateful-tc",
            Path::MasqXdp => "masquerade-xdp",
            Path::TaygaMasq => "tayga-masquerade",
            Path::ForwardL3 => "forward-l3",
            Path::Nat64TcL3 => "nat64-tc-l3",
        }
    }

    pub(crate) fn translates(self) -> bool {
        !matches!(self, Path::Forward | Path::XdpFwd | Path::ForwardL3)
    }

    /// Whether the senders' packets come through TUN devices.
    pub(crate) fn l3(self) -> bool {
        matches!(self, Path::ForwardL3 | Path::Nat64TcL3)
    }

    /// The kernel forwarding the path is measured against: through the same devices.
    pub(crate) fn reference(self) -> Path {
        if self.l3() { Path::ForwardL3 } else { Path::Forward }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Dir {
    SixToFour,
    FourToSix,
}

impl Dir {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dir::SixToFour => "IPv6 -> IPv4",
            Dir::FourToSix => "IPv4 -> IPv6",
        }
    }
}

/// The generator's frame: 64 bytes of UDP to port 9, addressed for the path's ingress.
pub(crate) fn frame(dir: Dir) -> Vec<u8> {
    let udp = |len: usize| L4::Udp { sport: 40000, dport: 9, data: vec![0x5a; len], zero_checksum: false };
    let mut f = match dir {
        Dir::SixToFour => eth6(&ipv6(
            H6.parse().unwrap(),
            H4_AS_V6.parse().unwrap(),
            V6Opts::default(),
            &udp(64 - 14 - 40 - 8),
        )),
        Dir::FourToSix => eth4(&ipv4(
            H4.parse().unwrap(),
            H6_AS_V4.parse().unwrap(),
            V4Opts::default(),
            &[],
            &udp(64 - 14 - 20 - 8),
        )),
    };
    let (dst, src) = match dir {
        Dir::SixToFour => (MAC_X6, MAC_H6),
        Dir::FourToSix => (MAC_X4, MAC_H4),
    };
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    assert_eq!(f.len(), 64);
    f
}

/// Runs `f` on a thread of its own inside network namespace `ns`.
pub(crate) fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|s| {
        s.spawn(|| enter_netns(ns).and_then(|()| f())).join().expect("namespace thread panicked")
    })
}

pub(crate) fn enter_netns(ns: &str) -> Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}")).with_context(|| format!("opening netns {ns}"))?;
    // SAFETY: setns(2) on this thread only, with an fd we hold open.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {ns}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    ensure!(i != 0, "no interface {name}");
    Ok(i)
}

pub(crate) fn veth(
    lab: &Lab,
    a_ns: &str,
    a_if: &str,
    a_mac: [u8; 6],
    b_ns: &str,
    b_if: &str,
    b_mac: [u8; 6],
) {
    // Two queues a side: each generating CPU gets its own (veth picks the receive
    // queue by the sending CPU).
    nat64_tests::lab::must(&format!(
        "ip link add {a_if} netns {a_ns} address {} numtxqueues 2 numrxqueues 2 type veth \
         peer name {b_if} netns {b_ns} address {} numtxqueues 2 numrxqueues 2",
        mac(a_mac),
        mac(b_mac)
    ));
    for (ns, i) in [(a_ns, a_if), (b_ns, b_if)] {
        // GRO on, as a NIC driver has it: a veth takes XDP frames only with NAPI.
        // A transmit queue per CPU (XPS), as a multi-queue NIC's driver sets up: what
        // a CPU sends stays on its own queue, and so on the peer's receive queue of
        // the same number, whatever the flow.
        lab.must_in(
            ns,
            &format!(
                "ip link set {i} up && ethtool -K {i} gro on >/dev/null \
                 && echo 1 > /sys/class/net/{i}/queues/tx-0/xps_cpus \
                 && echo 2 > /sys/class/net/{i}/queues/tx-1/xps_cpus"
            ),
        );
    }
}
