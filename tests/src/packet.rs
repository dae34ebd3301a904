//! Packet builders. Checksums are computed here from scratch, independently of the
//! translator's incremental arithmetic, so a test compares against the truth.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];

/// RFC 1071 checksum over `chunks` laid end to end (computed with a 64-bit
/// accumulator, unlike the translator's code).
pub fn inet_checksum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let mut acc: u64 = 0;
    for pair in bytes.chunks(2) {
        let w = if pair.len() == 2 { (pair[0] as u64) << 8 | pair[1] as u64 } else { (pair[0] as u64) << 8 };
        acc += w;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Does the checksum over these bytes verify (sum to all ones)?
pub fn checksum_ok(chunks: &[&[u8]]) -> bool {
    inet_checksum(chunks) == 0
}

#[derive(Clone, Copy, Debug)]
pub enum Ip {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Ip {
    fn pseudo(&self, proto: u8, len: usize) -> Vec<u8> {
        match self {
            Ip::V4(s, d) => {
                let mut p = Vec::new();
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&[0, proto]);
                p.extend_from_slice(&(len as u16).to_be_bytes());
                p
            }
            Ip::V6(s, d) => {
                let mut p = Vec::new();
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&(len as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, proto]);
                p
            }
        }
    }
}

/// A transport payload: header plus data, checksum computed for the given IP pair.
#[derive(Clone, Debug)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
        data: Vec<u8>,
        zero_checksum: bool,
    },
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// ICMP (v4) or ICMPv6 echo: the protocol follows the IP version.
    Echo {
        request: bool,
        id: u16,
        seq: u16,
        data: Vec<u8>,
    },
    Raw {
        proto: u8,
        data: Vec<u8>,
    },
}

impl L4 {
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Udp { .. } => 17,
            L4::Tcp { .. } => 6,
            L4::Echo { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }

    pub fn bytes(&self, ip: &Ip) -> Vec<u8> {
        let v6 = matches!(ip, Ip::V6(..));
        match self {
            L4::Udp { sport, dport, data, zero_checksum } => {
                let len = 8 + data.len();
                let mut b = Vec::new();
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&(len as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(data);
                if !zero_checksum {
                    let mut c = inet_checksum(&[&ip.pseudo(17, len), &b]);
                    if c == 0 {
                        c = 0xffff;
                    }
                    b[6..8].copy_from_slice(&c.to_be_bytes());
                }
                b
            }
            L4::Tcp { sport, dport, seq, flags, data } => {
                let mut b = Vec::new();
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&0u32.to_be_bytes());
                b.extend_from_slice(&[0x50, *flags]);
                b.extend_from_slice(&65535u16.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]);
                b.extend_from_slice(data);
                let c = inet_checksum(&[&ip.pseudo(6, b.len()), &b]);
                b[16..18].copy_from_slice(&c.to_be_bytes());
                b
            }
            L4::Echo { request, id, seq, data } => {
                let t = match (v6, request) {
                    (false, true) => 8,
                    (false, false) => 0,
                    (true, true) => 128,
                    (true, false) => 129,
                };
                let mut b = vec![t, 0, 0, 0];
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(data);
                let c = if v6 { inet_checksum(&[&ip.pseudo(58, b.len()), &b]) } else { inet_checksum(&[&b]) };
                b[2..4].copy_from_slice(&c.to_be_bytes());
                b
            }
            L4::Raw { data, .. } => data.clone(),
        }
    }
}

/// IPv4 header fields a test may want to set.
#[derive(Clone, Copy, Debug)]
pub struct V4Opts {
    pub tos: u8,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
}

impl Default for V4Opts {
    fn default() -> Self {
        Self { tos: 0, ttl: 64, id: 0x1234, df: true }
    }
}

/// IPv6 header fields a test may want to set.
#[derive(Clone, Copy, Debug)]
pub struct V6Opts {
    pub tc: u8,
    pub hop_limit: u8,
    pub flow_label: u32,
}

impl Default for V6Opts {
    fn default() -> Self {
        Self { tc: 0, hop_limit: 64, flow_label: 0 }
    }
}

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 datagram (no Ethernet) with a correct header checksum.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, o: V4Opts, options: &[u8], l4: &L4) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let payload = l4.bytes(&Ip::V4(src, dst));
    let ihl = 20 + options.len();
    let mut h = vec![0x40 | (ihl / 4) as u8, o.tos];
    h.extend_from_slice(&((ihl + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&o.id.to_be_bytes());
    h.extend_from_slice(&(if o.df { 0x4000u16 } else { 0 }).to_be_bytes());
    h.extend_from_slice(&[o.ttl, l4.proto(false), 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(&payload);
    h
}

/// An IPv6 packet (no Ethernet).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, o: V6Opts, l4: &L4) -> Vec<u8> {
    let payload = l4.bytes(&Ip::V6(src, dst));
    let first = 0x6000_0000u32 | (o.tc as u32) << 20 | (o.flow_label & 0xfffff);
    let mut h = first.to_be_bytes().to_vec();
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[l4.proto(true), o.hop_limit]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&payload);
    h
}

pub fn eth4(p: &[u8]) -> Vec<u8> {
    eth(0x0800, p)
}

pub fn eth6(p: &[u8]) -> Vec<u8> {
    eth(0x86dd, p)
}

/// A readable description of the first difference between two frames.
pub fn diff(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let field = |off: usize, v6: bool| -> &'static str {
        let l3 = off.saturating_sub(14);
        if off < 14 {
            "ethernet"
        } else if v6 {
            match l3 {
                0..=3 => "ipv6 version/tc/flow",
                4..=5 => "ipv6 payload length",
                6 => "ipv6 next header",
                7 => "ipv6 hop limit",
                8..=23 => "ipv6 source",
                24..=39 => "ipv6 destination",
                _ => "ipv6 payload",
            }
        } else {
            match l3 {
                0..=1 => "ipv4 version/ihl/tos",
                2..=3 => "ipv4 total length",
                4..=7 => "ipv4 id/flags/offset",
                8 => "ipv4 ttl",
                9 => "ipv4 protocol",
                10..=11 => "ipv4 header checksum",
                12..=15 => "ipv4 source",
                16..=19 => "ipv4 destination",
                _ => "ipv4 payload",
            }
        }
    };
    let v6 = want.len() > 13 && want[12..14] == [0x86, 0xdd];
    Some(format!(
        "frames differ (got {} bytes, want {}): first at byte {first} ({}): got {:02x?}, want {:02x?}\n got: {:02x?}\nwant: {:02x?}",
        got.len(),
        want.len(),
        field(first, v6),
        got.get(first..(first + 8).min(got.len())).unwrap_or(&[]),
        want.get(first..(first + 8).min(want.len())).unwrap_or(&[]),
        got,
        want
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        assert_eq!(inet_checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]), 0x220d);
        assert_eq!(inet_checksum(&[&[0x00, 0x01], &[0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]), 0x220d);
    }

    #[test]
    fn built_packets_carry_valid_checksums() {
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let (s4, d4) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2));
        let l4s = [
            L4::Udp { sport: 1, dport: 2, data: b"odd".to_vec(), zero_checksum: false },
            L4::Tcp { sport: 1, dport: 2, seq: 9, flags: 2, data: b"even".to_vec() },
            L4::Echo { request: true, id: 1, seq: 1, data: b"x".to_vec() },
        ];
        for l4 in &l4s {
            let p = ipv4(s4, d4, V4Opts::default(), &[], l4);
            assert!(checksum_ok(&[&p[..20]]), "IPv4 header");
            let mut ph = p[12..20].to_vec();
            ph.extend_from_slice(&[0, p[9]]);
            ph.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
            if p[9] == 1 {
                assert!(checksum_ok(&[&p[20..]]));
            } else {
                assert!(checksum_ok(&[&ph, &p[20..]]), "{l4:?} over IPv4");
            }
            let p = ipv6(s6, d6, V6Opts::default(), l4);
            let mut ph = p[8..40].to_vec();
            ph.extend_from_slice(&((p.len() - 40) as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, p[6]]);
            assert!(checksum_ok(&[&ph, &p[40..]]), "{l4:?} over IPv6");
        }
    }
}
