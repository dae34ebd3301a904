//! The fast path's redirect targets. An XDP program's `XDP_REDIRECT` into a device
//! that takes no XDP frames (no `ndo_xdp_xmit`: a veth whose peer has neither GRO nor
//! an XDP program, a bridge, some NIC drivers) fails inside the kernel after the
//! program returned, and the packet is gone without a trace. So before an attached
//! Ethernet port becomes a target of XDP redirects (`TX_PORTS`), nat64-ctl asks the
//! kernel whether it takes XDP frames (`netdev` generic netlink, `xdp-features` flag
//! `ndo-xmit`), and follows the answer as it changes: on every `netdev` notification
//! and at least once a second. A port that does not take them stays a target of TC
//! redirects (`PORTS`); XDP programs hand packets for it to the kernel, counted as
//! `fwd_kernel_no_xdp_xmit`.

use std::{collections::HashMap, path::Path, sync::Mutex, thread, time::Duration};

use anyhow::{Context as _, Result};
use log::{info, warn};
use nat64_common::maps::{PortState, PortWhy};

use crate::{netdev::Netdev, tables::Tables};

/// How often the ports are asked again without a notification.
const RECHECK: Duration = Duration::from_secs(1);

/// What an operator can do about a port that takes no XDP frames.
pub const REMEDIES: &str = "turn GRO on at its veth peer once the link is up (`ethtool -K PEER gro on`), or \
     attach an XDP program to the peer, or attach the interfaces by TC (\"attach\": \"tc\")";

/// Why a port is, or is not, a target of XDP redirects, for people.
pub fn why_text(why: PortWhy) -> &'static str {
    match why {
        PortWhy::NdoXmit => "takes XDP frames",
        PortWhy::VethPeer => "a veth whose peer has neither GRO nor an XDP program: it takes no XDP frames",
        PortWhy::NoNdoXmit => {
            "its driver has no XDP transmit (ndo_xdp_xmit), as a bridge: it takes no XDP frames"
        }
        PortWhy::Unknown => {
            "taken as a target: this kernel cannot tell whether it takes XDP frames (no netdev netlink family, \
             Linux < 6.3)"
        }
    }
}

/// The attached Ethernet ports and what was last written for each.
struct Watch {
    tables: Tables,
    netdev: Option<Netdev>,
    /// (name, ifindex) of every attached Ethernet port.
    ports: Vec<(String, u32)>,
    /// Whether any interface is attached by XDP: only XDP programs need XDP frames
    /// taken, so only then is a port that takes none worth a warning.
    xdp_ingress: bool,
    known: HashMap<u32, PortState>,
    /// The general path's IPv4 route MTU last seen (it follows the ports' MTUs).
    general_mtu: Option<u32>,
}

static WATCH: Mutex<Option<Watch>> = Mutex::new(None);

/// Asks the kernel about one port.
fn decide(netdev: Option<&mut Netdev>, name: &str, ifindex: u32) -> Result<Option<PortState>> {
    let Some(n) = netdev else {
        return Ok(Some(PortState { flags: PortState::XDP_TARGET, why: PortWhy::Unknown as u32 }));
    };
    let Some(features) = n.xdp_features(ifindex)? else { return Ok(None) };
    Ok(Some(if features & crate::netdev::XDP_ACT_NDO_XMIT != 0 {
        PortState { flags: PortState::XDP_TARGET, why: PortWhy::NdoXmit as u32 }
    } else if driver(name).as_deref() == Some("veth") {
        PortState { flags: 0, why: PortWhy::VethPeer as u32 }
    } else {
        PortState { flags: 0, why: PortWhy::NoNdoXmit as u32 }
    }))
}

impl Watch {
    /// Asks again about every port and writes what changed; a change moves the
    /// next-hop cache's generation, so no CPU keeps sending out of a port by an answer
    /// cached under the old state.
    fn sync(&mut self) {
        let mut changed = false;
        for (name, ifindex) in &self.ports {
            let state = match decide(self.netdev.as_mut(), name, *ifindex) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    if self.known.remove(ifindex).is_some() {
                        self.tables.port_del(*ifindex);
                        changed = true;
                    }
                    continue;
                }
                Err(e) => {
                    warn!("{name}: asking whether it takes XDP frames: {e:#}; keeping what was known");
                    continue;
                }
            };
            let old = self.known.get(ifindex).copied();
            if old == Some(state) {
                continue;
            }
            if let Err(e) = self.tables.port_set(*ifindex, state) {
                warn!("{name}: {e:#}");
                continue;
            }
            self.known.insert(*ifindex, state);
            changed = true;
            let why = PortWhy::from_u32(state.why).unwrap_or(PortWhy::Unknown);
            if !state.xdp_target() && self.xdp_ingress {
                warn!(
                    "{name}: not a target of XDP redirects, it takes no XDP frames ({}); packets translated towards \
                     it are handed to the kernel, which forwards them (counter fwd_kernel_no_xdp_xmit). For the fast \
                     path: {REMEDIES}",
                    why_text(why)
                );
            } else if old.is_some_and(|o| !o.xdp_target()) && state.xdp_target() && self.xdp_ingress {
                info!("{name}: now a target of XDP redirects ({})", why_text(why));
            } else if why == PortWhy::Unknown {
                warn!("{name}: {}", why_text(why));
            }
        }
        if changed {
            crate::nexthop::bump();
        }
        self.follow_mtu();
    }

    /// A port's MTU changed (`ip link set mtu`): the general path's routes follow, so
    /// that the IPv6 fragments it makes still fit the smallest port. The first value
    /// seen is the one the start routed with.
    fn follow_mtu(&mut self) {
        let mtu = match crate::general::general_path_mtu(&self.tables) {
            Ok(m) => m,
            Err(e) => {
                warn!("general path: {e:#}");
                return;
            }
        };
        if mtu == self.general_mtu {
            return;
        }
        if let (Some(old), Some(new)) = (self.general_mtu, mtu) {
            match crate::general::general_path_sync(&self.tables, None) {
                Ok(()) => info!(
                    "general path: IPv4 route MTU {old} -> {new} (lowest-ipv6-mtu or an attached link's MTU changed)"
                ),
                Err(e) => {
                    warn!("general path: following an MTU change: {e:#}");
                    return;
                }
            }
        }
        self.general_mtu = mtu;
    }
}

/// Starts following the ports of the instance pinned under `dir`: a thread of its own
/// for as long as the process runs. `set` names the ports.
pub fn watch(dir: &Path) -> Result<()> {
    let tables = Tables::open_pinned(dir)?;
    let netdev = Netdev::open().context("opening the netdev generic-netlink family")?;
    let notes = match netdev.as_ref().map(|n| n.subscribe(RECHECK)).transpose() {
        Ok(s) => s,
        Err(e) => {
            warn!("{e:#}; interfaces are asked again every second only");
            None
        }
    };
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watch {
        tables,
        netdev,
        ports: Vec::new(),
        xdp_ingress: false,
        known: HashMap::new(),
        general_mtu: None,
    });
    thread::Builder::new()
        .name("ports-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut notes = notes;
            loop {
                // Any notification may concern a port (a change of its own, or one its
                // veth peer caused); a quiet second asks again all the same.
                match &notes {
                    Some(s) => {
                        if let Err(e) = crate::netdev::recv(s, &mut buf) {
                            warn!("{e:#}; interfaces are asked again every second only");
                            notes = None;
                        }
                    }
                    None => thread::sleep(RECHECK),
                }
                if let Some(w) = WATCH.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    w.sync();
                }
            }
        })
        .context("starting the ports watch thread")?;
    Ok(())
}

/// The attached Ethernet ports are now `ports` (name, ifindex); `xdp_ingress`: some
/// interface is attached by XDP. Ports no longer attached stop being targets at once.
pub fn set(ports: Vec<(String, u32)>, xdp_ingress: bool) -> Result<()> {
    let mut guard = WATCH.lock().unwrap_or_else(|e| e.into_inner());
    let w = guard.as_mut().context("the ports watch has not started")?;
    let warn_again = xdp_ingress && !w.xdp_ingress;
    w.ports = ports;
    w.xdp_ingress = xdp_ingress;
    if warn_again {
        // An XDP attachment makes the ports that take no XDP frames matter: say so.
        w.known.retain(|_, s| s.xdp_target());
    }
    let wanted: Vec<u32> = w.ports.iter().map(|p| p.1).collect();
    for (i, _) in w.tables.ports() {
        if !wanted.contains(&i) {
            w.tables.port_del(i);
            w.known.remove(&i);
        }
    }
    w.sync();
    // A cached next hop out of a port no longer attached would be lost.
    crate::nexthop::bump();
    Ok(())
}

/// The driver of `name` (ETHTOOL_GDRVINFO), asked in this network namespace.
fn driver(name: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 3;
    /// `struct ethtool_drvinfo`.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    let mut info = DrvInfo { cmd: ETHTOOL_GDRVINFO, driver: [0; 32], rest: [0; 160] };
    // SAFETY: socket/ioctl on a zeroed ifreq holding a NUL-terminated name shorter than
    // IFNAMSIZ (checked below) and a pointer to a drvinfo struct of the kernel's size
    // that outlives the call; the socket is closed after.
    unsafe {
        if name.len() >= libc::IFNAMSIZ {
            return None;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        let rc = libc::ioctl(fd, libc::SIOCETHTOOL, &mut req);
        libc::close(fd);
        if rc < 0 {
            return None;
        }
    }
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(info.driver.len());
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_words() {
        for w in [PortWhy::NdoXmit, PortWhy::VethPeer, PortWhy::NoNdoXmit, PortWhy::Unknown] {
            assert_eq!(PortWhy::from_u32(w as u32), Some(w));
            assert!(!why_text(w).is_empty());
        }
        assert_eq!(PortWhy::from_u32(99), None);
    }

    #[test]
    fn the_loopback_driver_is_not_a_veth() {
        assert_ne!(driver("lo").as_deref(), Some("veth"));
        assert_eq!(driver("an-interface-name-far-too-long"), None);
    }
}
