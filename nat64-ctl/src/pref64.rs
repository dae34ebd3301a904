//! `"pref64": "auto"`: the PLAT prefix learned from DNS64 (RFC 7050). The AAAA
//! records of `ipv4only.arpa` are the well-known addresses 192.0.0.170 and
//! 192.0.0.171 synthesised under the prefix; finding one of them inside an answer at
//! one of the RFC 6052 positions gives the prefix and its length. The answer's TTL
//! says when to ask again.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use nat64_common::rfc6052::{self, POOL6_LENGTHS};

use crate::config::Prefix6;

/// The name whose A records are the well-known IPv4 addresses (RFC 7050 §2.2).
pub const NAME: &str = "ipv4only.arpa";
const WELL_KNOWN: [[u8; 4]; 2] = [[192, 0, 0, 170], [192, 0, 0, 171]];
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// A prefix found, and how long the resolver (or the router) said it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discovered {
    pub prefix: Prefix6,
    pub ttl: u32,
    /// The DNS64 resolver asked, or the router that advertised it.
    pub resolver: IpAddr,
    /// From a router advertisement's PREF64 option (RFC 8781), not DNS64.
    pub ra: bool,
}

impl Discovered {
    pub fn from_ra(a: &crate::ra::Announced) -> Self {
        Self { prefix: a.prefix, ttl: a.lifetime, resolver: IpAddr::V6(a.router), ra: true }
    }
}

/// The prefix one synthesised address stands under, if any: the longest RFC 6052
/// length at which a well-known address sits in it.
pub fn prefix_of(a: Ipv6Addr) -> Option<Prefix6> {
    let octets = a.octets();
    POOL6_LENGTHS.iter().rev().find_map(|&len| {
        let v4 = rfc6052::extract(&octets, len)?;
        if !WELL_KNOWN.contains(&v4) {
            return None;
        }
        let mut p = [0u8; 16];
        p[..len as usize / 8].copy_from_slice(&octets[..len as usize / 8]);
        Prefix6::new(Ipv6Addr::from(p), len).ok()
    })
}

/// The first nameserver of a resolv.conf text.
pub fn nameserver(resolv_conf: &str) -> Option<IpAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next()?.split('%').next()?.parse().ok())?
    })
}

/// An AAAA query for `name` with message id `id`.
pub fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_AAAA.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)? as usize;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + l,
        }
    }
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

/// The AAAA answers (address, TTL) of a response to the query with id `id`.
pub fn answers(m: &[u8], id: u16) -> Result<Vec<(Ipv6Addr, u32)>> {
    let bad = || anyhow::anyhow!("malformed DNS response ({} bytes)", m.len());
    if m.len() < 12 || u16_at(m, 0) != Some(id) || m[2] & 0x80 == 0 {
        bail!("not a response to our query");
    }
    match m[3] & 0x0f {
        0 => {}
        3 => bail!("{NAME} does not exist (NXDOMAIN): no DNS64 on this resolver"),
        rcode => bail!("the resolver answered with error code {rcode}"),
    }
    let (qd, an) = (u16_at(m, 4).ok_or_else(bad)?, u16_at(m, 6).ok_or_else(bad)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(m, at).ok_or_else(bad)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(m, at).ok_or_else(bad)?;
        let rtype = u16_at(m, at).ok_or_else(bad)?;
        let ttl = u32::from_be_bytes(m.get(at + 4..at + 8).ok_or_else(bad)?.try_into()?);
        let rdlen = u16_at(m, at + 8).ok_or_else(bad)? as usize;
        let rdata = m.get(at + 10..at + 10 + rdlen).ok_or_else(bad)?;
        if rtype == TYPE_AAAA && rdlen == 16 {
            let a: [u8; 16] = rdata.try_into()?;
            out.push((Ipv6Addr::from(a), ttl));
        }
        at += 10 + rdlen;
    }
    Ok(out)
}

/// Asks `resolver` (or the system's, from /etc/resolv.conf) for the prefix.
pub fn discover(resolver: Option<IpAddr>) -> Result<Discovered> {
    let resolver = match resolver {
        Some(r) => r,
        None => {
            let text = std::fs::read_to_string("/etc/resolv.conf")
                .context("pref64 auto: reading /etc/resolv.conf")?;
            nameserver(&text)
                .context("pref64 auto: no nameserver in /etc/resolv.conf; set \"pref64-resolver\"")?
        }
    };
    let server = SocketAddr::new(resolver, 53);
    let bind: SocketAddr = if resolver.is_ipv6() { "[::]:0".parse()? } else { "0.0.0.0:0".parse()? };
    let sock = UdpSocket::bind(bind).context("pref64 auto: opening a UDP socket")?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let id = (std::process::id() as u16)
        ^ (std::time::UNIX_EPOCH.elapsed().map(|d| d.subsec_nanos()).unwrap_or(0) as u16);
    let q = query(NAME, id);
    let mut buf = [0u8; 1500];
    let mut last = None;
    for _ in 0..3 {
        sock.send_to(&q, server).with_context(|| format!("pref64 auto: asking {server}"))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == server => {
                let found = answers(&buf[..n], id).with_context(|| format!("pref64 auto: {server}"))?;
                // RFC 7050 §3: every answer that holds a well-known address counts; the
                // first one gives the prefix, the smallest TTL the time to ask again.
                let mut hits = found.iter().filter_map(|&(a, ttl)| Some((prefix_of(a)?, ttl)));
                let Some((prefix, mut ttl)) = hits.next() else {
                    bail!(
                        "pref64 auto: {server} has no AAAA for {NAME} holding 192.0.0.170/171: no DNS64 there"
                    );
                };
                ttl = hits.fold(ttl, |t, (_, u)| t.min(u));
                return Ok(Discovered { prefix, ttl, resolver, ra: false });
            }
            Ok(_) => continue,
            Err(e) => last = Some(e),
        }
    }
    bail!(
        "pref64 auto: no answer from {server} for {NAME}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_every_length() {
        let cases = [
            ("64:ff9b::c000:aa", "64:ff9b::/96"),
            ("64:ff9b:1::c000:ab", "64:ff9b:1::/96"),
            ("2001:db8:1:2:c0:0:aa00:0", "2001:db8:1:2::/64"),
            ("2001:db8:1:2c0:0:aa::", "2001:db8:1:200::/56"),
            ("2001:db8:100:c000:0:aa00::", "2001:db8:100::/48"),
            ("2001:db8:c0:0:ab::", "2001:db8::/40"),
            ("2001:db8:c000:aa::", "2001:db8::/32"),
        ];
        for (a, p) in cases {
            let got = prefix_of(a.parse().unwrap()).map(|p| p.to_string());
            assert_eq!(got.as_deref(), Some(p), "{a}");
        }
        assert_eq!(prefix_of("64:ff9b::c000:201".parse().unwrap()), None, "not a well-known address");
        assert_eq!(prefix_of("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn resolv_conf_first_nameserver() {
        assert_eq!(
            nameserver("# x\nsearch lan\nnameserver fe80::1%eth0\nnameserver 9.9.9.9\n"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(nameserver("options ndots:2\nnameserver 192.0.2.53"), Some("192.0.2.53".parse().unwrap()));
        assert_eq!(nameserver("search lan\n"), None);
    }

    /// A response as a resolver sends it: the question, then the answers, their
    /// names compressed to the question's.
    fn response(id: u16, rcode: u8, answers: &[(Ipv6Addr, u32)]) -> Vec<u8> {
        let mut m = query(NAME, id);
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (a, ttl) in answers {
            m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&[0, 16]);
            m.extend_from_slice(&a.octets());
        }
        m
    }

    #[test]
    fn answers_parsed_and_refused() {
        let a1: Ipv6Addr = "64:ff9b:1::c000:aa".parse().unwrap();
        let a2: Ipv6Addr = "64:ff9b:1::c000:ab".parse().unwrap();
        let m = response(7, 0, &[(a1, 300), (a2, 200)]);
        assert_eq!(answers(&m, 7).unwrap(), vec![(a1, 300), (a2, 200)]);
        assert!(answers(&m, 8).unwrap_err().to_string().contains("not a response"));
        assert!(answers(&response(7, 3, &[]), 7).unwrap_err().to_string().contains("NXDOMAIN"));
        assert!(answers(&response(7, 2, &[]), 7).unwrap_err().to_string().contains("error code 2"));
        let cut = &m[..m.len() - 5];
        assert!(answers(cut, 7).unwrap_err().to_string().contains("malformed"));
        assert!(answers(&response(7, 0, &[]), 7).unwrap().is_empty());
    }
}
