//! TCP simultaneous open (RFC 6146 §3.5.2.2, RFC 5382 REQ-4) as nat64-ctl sees it.
//!
//! The data path holds an unsolicited IPv4 SYN to a pool4 transport address in
//! `NAT_SYNS` for 6 s (`nat64-ebpf`'s `translate::simopen`), and gives its port to an
//! IPv6 SYN that comes for it in that time. What the data path cannot do is answer
//! later: nat64-ctl removes each entry once its time is up ([`expire`]) and, when no
//! IPv6 SYN took it and no session with its sender was made meanwhile, answers it with
//! ICMP Port Unreachable, built here and sent through a raw socket ([`RawSender`]):
//! ICMPv4 from the pool4 address the SYN was sent to; for a hairpinned SYN (an IPv6
//! host's), ICMPv6 from the address that host sent it to.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use nat64_common::{
    checksum,
    maps::{HeldSyn, SessionKey, SynKey},
    nat::TcpState,
};

use crate::tables::nat::NatTables;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// The longest ICMP errors (RFC 1812 §4.3.2.3, RFC 4443 §2.4 (c)).
const MAX_ICMP4_ERROR: usize = 576;
const MAX_ICMP6_ERROR: usize = 1280;
/// The hop limit of the errors, as the data path's own.
const HOP_LIMIT: u8 = 64;

/// An ICMP error to send: the whole IP packet and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub to: IpAddr,
    pub packet: Vec<u8>,
}

/// What one [`expire`] did with the SYNs whose time was up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Answered with Port Unreachable (the answer handed to the sender).
    pub answered: u64,
    /// Their bytes (of the answers).
    pub bytes: u64,
    /// Taken by an IPv6 SYN, or superseded by a session with the sender: nothing sent.
    pub opened: u64,
    /// Not answered: the packet held was not one an error may be about, or sending
    /// failed (logged).
    pub unanswered: u64,
}

/// ICMPv4 Destination Unreachable, Port Unreachable (3/3) from `from` about the IPv4
/// packet `held` (as much of it as a 576-byte error carries), with `id` as its
/// Identification. `None`: `held` is no IPv4 packet one may answer (RFC 1812
/// §4.3.2.7: from no single host).
pub fn port_unreachable4(from: [u8; 4], held: &[u8], id: u16) -> Option<Answer> {
    if held.len() < 20 || held[0] >> 4 != 4 {
        return None;
    }
    let to = [held[12], held[13], held[14], held[15]];
    if to[0] == 0 || to[0] == 127 || to[0] >= 224 {
        return None;
    }
    let quote = &held[..held.len().min(MAX_ICMP4_ERROR - 28)];
    let total = 28 + quote.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0, HOP_LIMIT, IPPROTO_ICMP, 0, 0]);
    p.extend_from_slice(&from);
    p.extend_from_slice(&to);
    let c = checksum::finish(checksum::add_bytes(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quote);
    let c = checksum::finish(checksum::add_bytes(0, &p[20..]));
    p[22..24].copy_from_slice(&c.to_be_bytes());
    Some(Answer { to: IpAddr::V4(to.into()), packet: p })
}

/// ICMPv6 Destination Unreachable, Port Unreachable (1/4) about the IPv6 packet
/// `held`, back to its source from the address it was sent to (as much of it as a
/// 1280-byte error carries). `None`: `held` is no IPv6 packet one may answer (RFC 4443
/// §2.4 (e): from no single node).
pub fn port_unreachable6(held: &[u8]) -> Option<Answer> {
    if held.len() < 40 || held[0] >> 4 != 6 {
        return None;
    }
    let to: [u8; 16] = held[8..24].try_into().ok()?;
    let from: [u8; 16] = held[24..40].try_into().ok()?;
    let to_addr = Ipv6Addr::from(to);
    if to_addr.is_multicast() || to_addr.is_unspecified() || to_addr.is_loopback() {
        return None;
    }
    let quote = &held[..held.len().min(MAX_ICMP6_ERROR - 48)];
    let plen = 8 + quote.len();
    let mut p = Vec::with_capacity(40 + plen);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.extend_from_slice(&[IPPROTO_ICMPV6, HOP_LIMIT]);
    p.extend_from_slice(&from);
    p.extend_from_slice(&to);
    p.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quote);
    let pseudo = checksum::sum16(&from)
        + checksum::sum16(&to)
        + (plen as u32 >> 16)
        + (plen as u32 & 0xffff)
        + IPPROTO_ICMPV6 as u32;
    let c = checksum::finish(checksum::add_bytes(pseudo, &p[40..]));
    p[42..44].copy_from_slice(&c.to_be_bytes());
    Some(Answer { to: IpAddr::V6(to_addr), packet: p })
}

/// The answer to the held SYN `h`: Port Unreachable in its family.
pub fn answer(h: &HeldSyn) -> Option<Answer> {
    let held = &h.bytes[..(h.len as usize).min(h.bytes.len())];
    if h.flags & HeldSyn::FLAG_V6 != 0 {
        port_unreachable6(held)
    } else {
        port_unreachable4(h.local, held, rand_id())
    }
}

/// A random IPv4 Identification, never 0 (as the data path's errors).
fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes the two bytes we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, libc::GRND_NONBLOCK) };
    u16::from_ne_bytes(b) | 1
}

/// Removes every held SYN whose time is up at `now` (boot-time ns) and hands the
/// answer of each that nothing took to `send`: what it did. The removed ones are
/// counted in `NAT_SYN_COUNT` for the data path's limit.
pub fn expire(
    nat: &mut NatTables,
    now: u64,
    mut send: impl FnMut(&Answer) -> io::Result<()>,
) -> Result<Expired> {
    let due: Vec<(SynKey, HeldSyn)> =
        nat.syns.iter().filter_map(|e| e.ok()).filter(|(_, h)| h.expires <= now).collect();
    let mut done = Expired::default();
    let mut removed = 0u64;
    for (k, h) in due {
        if nat.syns.remove(&k).is_err() {
            continue;
        }
        removed += 1;
        // The data path may have marked it taken since it was read.
        let taken = h.flags & HeldSyn::FLAG_TAKEN != 0;
        let key = SessionKey {
            local: h.local,
            remote: k.remote,
            local_port: h.local_port,
            remote_port: k.remote_port,
            proto: IPPROTO_TCP,
            _pad: [0; 3],
        };
        let session =
            nat.sessions.get(&key, 0).is_ok_and(|s| s.expires > now && s.state != TcpState::Closed as u8);
        if taken || session {
            done.opened += 1;
            continue;
        }
        match answer(&h) {
            Some(a) => match send(&a) {
                Ok(()) => {
                    done.answered += 1;
                    done.bytes += a.packet.len() as u64;
                }
                Err(e) => {
                    log::warn!("nat64: Port Unreachable to {} for a held SYN: {e}", a.to);
                    done.unanswered += 1;
                }
            },
            None => done.unanswered += 1,
        }
    }
    if removed > 0 {
        let before = nat.syn_count.get(&1, 0).context("reading NAT_SYN_COUNT")?;
        nat.syn_count.set(1, before + removed, 0).context("writing NAT_SYN_COUNT")?;
    }
    Ok(done)
}

/// How many SYNs are held now.
pub fn held(nat: &NatTables) -> u64 {
    let stored = nat.syn_count.get(&0, 0).unwrap_or(0);
    let removed = nat.syn_count.get(&1, 0).unwrap_or(0);
    stored.saturating_sub(removed)
}

/// Raw sockets that send whole IP packets (the header included) where the kernel's
/// routes take them.
pub struct RawSender {
    v4: OwnedFd,
    v6: OwnedFd,
}

impl RawSender {
    pub fn new() -> Result<Self> {
        Ok(Self {
            v4: raw_socket(libc::AF_INET).context("opening a raw IPv4 socket for Port Unreachable")?,
            v6: raw_socket(libc::AF_INET6).context("opening a raw IPv6 socket for Port Unreachable")?,
        })
    }

    /// Sends `a`.
    pub fn send(&self, a: &Answer) -> io::Result<()> {
        let rc = match a.to {
            IpAddr::V4(ip) => send_to(&self.v4, &a.packet, &sockaddr4(ip)),
            IpAddr::V6(ip) => {
                // SAFETY: an all-zero sockaddr_in6 is valid.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_addr.s6_addr = ip.octets();
                send_to(&self.v6, &a.packet, &sa)
            }
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

/// sendto(2) of `packet` on `fd` to the socket address `sa` (a `sockaddr_in` or
/// `sockaddr_in6`).
fn send_to<T>(fd: &OwnedFd, packet: &[u8], sa: &T) -> isize {
    // SAFETY: sendto(2) with a buffer and an address we own, of the lengths given.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (sa as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    }
}

fn sockaddr4(ip: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
    sa
}

/// A raw socket of `family` for IPPROTO_RAW: the packets sent carry their own IP header
/// (IP_HDRINCL, and its IPv6 equivalent, are implied).
fn raw_socket(family: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn4() -> Vec<u8> {
        // 198.51.100.7:5555 -> 203.0.113.8:40000, SYN, no options.
        let mut p = vec![
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 63, 6, 0, 0, 198, 51, 100, 7, 203, 0, 113, 8, 0x15, 0xb3,
            0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        let c = checksum::finish(checksum::add_bytes(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn port_unreachable4_quotes_the_syn_whole_from_the_pool4_address() {
        let syn = syn4();
        let a = port_unreachable4([203, 0, 113, 8], &syn, 0x4321).unwrap();
        assert_eq!(a.to, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
        let p = &a.packet;
        assert_eq!(p.len(), 28 + syn.len());
        assert_eq!(p[..12], [0x45, 0, 0, 68, 0x43, 0x21, 0, 0, 64, 1, p[10], p[11]]);
        assert_eq!(p[12..20], [203, 0, 113, 8, 198, 51, 100, 7]);
        assert_eq!(checksum::fold(checksum::add_bytes(0, &p[..20])), 0xffff, "IPv4 header checksum");
        assert_eq!(p[20..22], [3, 3]);
        assert_eq!(p[24..28], [0; 4]);
        assert_eq!(checksum::fold(checksum::add_bytes(0, &p[20..])), 0xffff, "ICMP checksum");
        assert_eq!(p[28..], syn[..]);
    }

    #[test]
    fn port_unreachable4_is_at_most_576_bytes_and_never_to_a_group() {
        let mut long = syn4();
        long.resize(700, 0xab);
        assert_eq!(port_unreachable4([203, 0, 113, 8], &long, 1).unwrap().packet.len(), 576);
        let mut multicast = syn4();
        multicast[12] = 224;
        assert_eq!(port_unreachable4([203, 0, 113, 8], &multicast, 1), None);
        assert_eq!(port_unreachable4([203, 0, 113, 8], &syn4()[..19], 1), None);
    }

    #[test]
    fn port_unreachable6_goes_back_from_the_address_the_host_sent_to() {
        let host: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let pool6: Ipv6Addr = "64:ff9b::cb00:7108".parse().unwrap();
        let mut syn = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        syn.extend_from_slice(&host.octets());
        syn.extend_from_slice(&pool6.octets());
        syn.extend_from_slice(&[
            0x15, 0xb3, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let a = port_unreachable6(&syn).unwrap();
        assert_eq!(a.to, IpAddr::V6(host));
        let p = &a.packet;
        assert_eq!(p[..8], [0x60, 0, 0, 0, 0, 68, 58, 64]);
        assert_eq!(p[8..24], pool6.octets());
        assert_eq!(p[24..40], host.octets());
        assert_eq!(p[40..42], [1, 4]);
        assert_eq!(p[44..48], [0; 4]);
        assert_eq!(p[48..], syn[..]);
        let pseudo = checksum::sum16(&pool6.octets()) + checksum::sum16(&host.octets()) + 68 + 58;
        assert_eq!(checksum::fold(checksum::add_bytes(pseudo, &p[40..])), 0xffff, "ICMPv6 checksum");
        let mut from_nobody = syn.clone();
        from_nobody[8..24].copy_from_slice(&[0; 16]);
        assert_eq!(port_unreachable6(&from_nobody), None);
    }
}
