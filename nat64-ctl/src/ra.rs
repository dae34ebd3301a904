//! `"pref64": "auto"` from router advertisements: the PREF64 option (RFC 8781), which
//! RFC 8781 §5 prefers to DNS64 discovery (RFC 7050). A thread listens to the router
//! advertisements of this network namespace on a raw ICMPv6 socket and keeps the
//! latest PREF64 with its lifetime; `run` asks for one with a router solicitation at
//! start and follows what the routers say afterwards.

use std::{
    io, mem,
    net::Ipv6Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use log::warn;

use crate::config::Prefix6;

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
/// RFC 8781 §4: the PREF64 option's type.
const OPT_PREF64: u8 = 38;
/// The fixed part of a router advertisement before its options (RFC 4861 §4.2).
const RA_HLEN: usize = 16;

/// A PREF64 a router announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announced {
    pub prefix: Prefix6,
    /// Seconds it holds from `at` (0: withdrawn).
    pub lifetime: u32,
    pub router: Ipv6Addr,
    pub at: Instant,
}

impl Announced {
    /// Whether it still holds.
    pub fn valid(&self) -> bool {
        self.lifetime != 0 && self.at.elapsed() < Duration::from_secs(self.lifetime.into())
    }
}

static LATEST: Mutex<Option<Announced>> = Mutex::new(None);

/// The latest PREF64 heard, while it holds.
pub fn latest() -> Option<Announced> {
    LATEST.lock().unwrap_or_else(|e| e.into_inner()).filter(Announced::valid)
}

/// RFC 8781 §4: the prefix length code (PLC) to a length.
fn plc_len(plc: u8) -> Option<u8> {
    match plc {
        0 => Some(96),
        1 => Some(64),
        2 => Some(56),
        3 => Some(48),
        4 => Some(40),
        5 => Some(32),
        _ => None,
    }
}

/// The PREF64 option of a router advertisement (the ICMPv6 message), if it has a
/// valid one: the prefix and its lifetime in seconds (the scaled lifetime times 8).
pub fn pref64_of(ra: &[u8]) -> Option<(Prefix6, u32)> {
    if ra.len() < RA_HLEN || ra[0] != ND_ROUTER_ADVERT || ra[1] != 0 {
        return None;
    }
    let mut at = RA_HLEN;
    while at + 2 <= ra.len() {
        let len = ra[at + 1] as usize * 8;
        if len == 0 || at + len > ra.len() {
            return None;
        }
        if ra[at] == OPT_PREF64 && len == 16 {
            let word = u16::from_be_bytes([ra[at + 2], ra[at + 3]]);
            let plen = plc_len((word & 7) as u8)?;
            let mut p = [0u8; 16];
            p[..12].copy_from_slice(&ra[at + 4..at + 16]);
            // Bits beyond the length are ignored (RFC 8781 §4).
            for b in p.iter_mut().skip(plen as usize / 8) {
                *b = 0;
            }
            return Some((Prefix6::new(Ipv6Addr::from(p), plen).ok()?, u32::from(word >> 3) * 8));
        }
        at += len;
    }
    None
}

fn socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd =
        unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMPV6) };
    if fd < 0 {
        bail!("raw ICMPv6 socket: {}", io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Router messages carry hop limit 255 (RFC 4861 §4.1).
    let hops: libc::c_int = 255;
    if let Err(e) = crate::netdev::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops) {
        bail!("setting the hop limit of router solicitations: {e}");
    }
    Ok(fd)
}

/// Asks the routers on `ifindex` for an advertisement (RFC 4861 §6.3.7).
fn solicit(sock: &OwnedFd, ifindex: u32) -> Result<()> {
    // SAFETY: a zeroed sockaddr_in6 is valid; the fields set are plain data.
    let mut to: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    to.sin6_family = libc::AF_INET6 as u16;
    to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2).octets();
    to.sin6_scope_id = ifindex;
    let rs = [ND_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: sendto(2) of a buffer we own to an address of its size.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            rs.as_ptr().cast(),
            rs.len(),
            0,
            (&to as *const libc::sockaddr_in6).cast(),
            mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    if n < 0 {
        bail!("router solicitation on ifindex {ifindex}: {}", io::Error::last_os_error());
    }
    Ok(())
}

/// Starts listening to router advertisements (for as long as the process runs), asks
/// the routers on `ifindexes` for one, and waits up to `wait` for a PREF64.
pub fn listen(ifindexes: &[u32], wait: Duration) -> Result<Option<Announced>> {
    let sock = socket().context("pref64 auto: listening to router advertisements")?;
    for i in ifindexes {
        if let Err(e) = solicit(&sock, *i) {
            warn!("pref64 auto: {e:#}");
        }
    }
    thread::Builder::new()
        .name("ra-pref64".into())
        .spawn(move || {
            let mut buf = [0u8; 1500];
            loop {
                // SAFETY: a zeroed sockaddr_in6 is valid to receive into.
                let mut from: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                let mut flen = mem::size_of::<libc::sockaddr_in6>() as u32;
                // SAFETY: recvfrom(2) into buffers we own, with their sizes.
                let n = unsafe {
                    libc::recvfrom(
                        sock.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut from as *mut libc::sockaddr_in6).cast(),
                        &mut flen,
                    )
                };
                if n < 0 {
                    if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    warn!("pref64 auto: router advertisements: {}", io::Error::last_os_error());
                    return;
                }
                let router = Ipv6Addr::from(from.sin6_addr.s6_addr);
                // RFC 4861 §6.1.2: advertisements come from link-local addresses.
                if router.segments()[0] & 0xffc0 != 0xfe80 {
                    continue;
                }
                if let Some((prefix, lifetime)) = pref64_of(&buf[..n as usize]) {
                    *LATEST.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Announced { prefix, lifetime, router, at: Instant::now() });
                }
            }
        })
        .context("starting the router advertisement thread")?;
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if let Some(a) = latest() {
            return Ok(Some(a));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra(options: &[&[u8]]) -> Vec<u8> {
        let mut m = vec![ND_ROUTER_ADVERT, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        for o in options {
            m.extend_from_slice(o);
        }
        m
    }

    /// RFC 8781 §4's layout: scaled lifetime (13 bits) and PLC (3 bits), then the
    /// prefix's 96 highest bits.
    fn pref64(lifetime_units: u16, plc: u8, prefix: &str) -> Vec<u8> {
        let mut o = vec![OPT_PREF64, 2];
        o.extend_from_slice(&(lifetime_units << 3 | plc as u16).to_be_bytes());
        o.extend_from_slice(&prefix.parse::<Ipv6Addr>().unwrap().octets()[..12]);
        o
    }

    #[test]
    fn pref64_option_parsed() {
        let mtu = [5u8, 1, 0, 0, 0, 0, 0x05, 0xdc];
        let m = ra(&[&mtu, &pref64(225, 0, "64:ff9b::")]);
        let (p, life) = pref64_of(&m).unwrap();
        assert_eq!((p.to_string(), life), ("64:ff9b::/96".to_string(), 1800));
        let m = ra(&[&pref64(1, 1, "2001:db8:1:2:ff::")]);
        assert_eq!(
            pref64_of(&m).map(|(p, l)| (p.to_string(), l)),
            Some(("2001:db8:1:2::/64".to_string(), 8))
        );
        for (plc, len) in [(2, 56), (3, 48), (4, 40), (5, 32)] {
            assert_eq!(pref64_of(&ra(&[&pref64(10, plc, "2001:db8::")])).unwrap().0.prefix_len(), len);
        }
        assert_eq!(pref64_of(&ra(&[&pref64(10, 6, "2001:db8::")])), None, "PLC 6 is not defined");
        assert_eq!(pref64_of(&ra(&[&mtu])), None, "no PREF64");
        assert_eq!(pref64_of(&ra(&[&[38, 0]])), None, "an option of length 0 ends the walk");
        let mut solicitation = ra(&[&pref64(10, 0, "64:ff9b::")]);
        solicitation[0] = ND_ROUTER_SOLICIT;
        assert_eq!(pref64_of(&solicitation), None, "not an advertisement");
        let cut = ra(&[&pref64(10, 0, "64:ff9b::")]);
        assert_eq!(pref64_of(&cut[..cut.len() - 1]), None, "an option past the end");
    }
}
