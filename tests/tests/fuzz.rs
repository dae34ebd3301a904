//! Mutation fuzzing through BPF_PROG_TEST_RUN: mutated copies of well-formed packets
//! (bit flips, byte overwrites, truncation, lying lengths, random extension) go through
//! the real program; every output must be the input untouched (pass), a drop, or a
//! well-formed packet of the other family with consistent lengths and checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, eth4, eth6, ipv4, ipv6},
    xdp::{H4, H6, Harness, R4, R6, TEST_CONFIG, XDP_DROP, XDP_PASS, XDP_TX},
};

/// Small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let (h6, r6): (Ipv6Addr, Ipv6Addr) = (H6.parse().unwrap(), R6.parse().unwrap());
    let (h4, r4): (Ipv4Addr, Ipv4Addr) = (H4.parse().unwrap(), R4.parse().unwrap());
    let l4s = [
        L4::Udp { sport: 1000, dport: 53, data: b"query".to_vec(), zero_checksum: false },
        L4::Udp { sport: 1000, dport: 53, data: vec![7; 300], zero_checksum: false },
        L4::Tcp { sport: 1000, dport: 80, seq: 1, flags: 0x18, data: b"GET / HTTP/1.1\r\n\r\n".to_vec() },
        L4::Echo { request: true, id: 9, seq: 1, data: b"ping".to_vec() },
        L4::Echo { request: false, id: 9, seq: 1, data: vec![1; 100] },
        L4::Raw { proto: 47, data: vec![0, 0, 8, 0, 1, 2, 3, 4] },
    ];
    let mut out = Vec::new();
    for l4 in &l4s {
        out.push(eth6(&ipv6(h6, r6, V6Opts::default(), l4)));
        out.push(eth4(&ipv4(r4, h4, V4Opts::default(), &[], l4)));
        out.push(eth4(&ipv4(r4, h4, V4Opts { df: false, ..Default::default() }, &[1, 1, 1, 1], l4)));
    }
    // ICMP errors with a packet inside, both ways
    let inner4 = ipv4(h4, r4, V4Opts { ttl: 1, ..Default::default() }, &[], &l4s[0]);
    let inner6 = ipv6(r6, h6, V6Opts { hop_limit: 1, ..Default::default() }, &l4s[2]);
    let mut m4 = vec![11, 0, 0, 0, 0, 0, 0, 0];
    m4.extend_from_slice(&inner4);
    let c = packet::inet_checksum(&[&m4]);
    m4[2..4].copy_from_slice(&c.to_be_bytes());
    out.push(eth4(&ipv4(
        Ipv4Addr::new(9, 9, 9, 1),
        h4,
        V4Opts::default(),
        &[],
        &L4::Raw { proto: 1, data: m4 },
    )));
    let router: Ipv6Addr = "2001:db8:6::fe".parse().unwrap();
    let mut m6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
    m6.extend_from_slice(&inner6);
    let mut ph = router.octets().to_vec();
    ph.extend_from_slice(&r6.octets());
    ph.extend_from_slice(&(m6.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = packet::inet_checksum(&[&ph, &m6]);
    m6[2..4].copy_from_slice(&c.to_be_bytes());
    out.push(eth6(&ipv6(router, r6, V6Opts::default(), &L4::Raw { proto: 58, data: m6 })));
    // extension headers and a fragment header
    let mut p =
        eth6(&ipv6(h6, r6, V6Opts::default(), &L4::Raw { proto: 0, data: vec![17, 0, 1, 4, 0, 0, 0, 0] }));
    p.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 8, 0, 0]);
    p[18..20].copy_from_slice(&16u16.to_be_bytes());
    out.push(p);
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut p = seed.to_vec();
    let n = 1 + rng.below(4);
    for _ in 0..n {
        match rng.below(6) {
            // flip a bit in the headers (most interesting) or anywhere
            0 | 1 => {
                let limit = if rng.below(2) == 0 { p.len().min(80) } else { p.len() };
                let i = 14 + rng.below(limit.saturating_sub(14).max(1));
                if i < p.len() {
                    p[i] ^= 1 << rng.below(8);
                }
            }
            // overwrite a byte
            2 => {
                let i = 14 + rng.below(p.len().saturating_sub(14).max(1));
                if i < p.len() {
                    p[i] = rng.next() as u8;
                }
            }
            // truncate (not below an Ethernet header: the kernel refuses that)
            3 => {
                let keep = 14 + rng.below(p.len() - 13);
                p.truncate(keep.max(14));
            }
            // lie in a length field
            4 => {
                let v = rng.next() as u16;
                if p.len() > 20 {
                    if p[12..14] == [0x86, 0xdd] {
                        p[18..20].copy_from_slice(&v.to_be_bytes());
                    } else {
                        p[16..18].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            // append garbage
            _ => {
                for _ in 0..rng.below(64) {
                    p.push(rng.next() as u8);
                }
            }
        }
    }
    p
}

/// Is the transport checksum of this IP datagram (no Ethernet) right, if it has one
/// that can be checked (not a fragment, TCP/UDP/ICMP, long enough)?
fn l4_ok(ip: &[u8]) -> Option<bool> {
    if ip.is_empty() {
        return None;
    }
    if ip[0] >> 4 == 4 {
        let ihl = ((ip[0] & 0xf) as usize) * 4;
        let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        if ihl < 20 || tot < ihl || tot > ip.len() || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            return None;
        }
        let l4 = &ip[ihl..tot];
        let mut ph = ip[12..20].to_vec();
        ph.extend_from_slice(&[0, ip[9]]);
        ph.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        match ip[9] {
            6 if l4.len() >= 20 => Some(packet::checksum_ok(&[&ph, l4])),
            17 if l4.len() >= 8 && l4[6..8] != [0, 0] => Some(packet::checksum_ok(&[&ph, l4])),
            1 if l4.len() >= 8 => Some(packet::checksum_ok(&[l4])),
            _ => None,
        }
    } else {
        if ip.len() < 40 {
            return None;
        }
        let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        if 40 + plen > ip.len() {
            return None;
        }
        let l4 = &ip[40..40 + plen];
        let mut ph = ip[8..40].to_vec();
        ph.extend_from_slice(&(l4.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, ip[6]]);
        match ip[6] {
            6 if l4.len() >= 20 => Some(packet::checksum_ok(&[&ph, l4])),
            17 if l4.len() >= 8 => Some(packet::checksum_ok(&[&ph, l4])),
            58 if l4.len() >= 8 => Some(packet::checksum_ok(&[&ph, l4])),
            _ => None,
        }
    }
}

/// The checks on one translated output; `Err` says what is wrong.
fn check_translated(input: &[u8], out: &[u8]) -> Result<(), String> {
    let in_v6 = input[12..14] == [0x86, 0xdd];
    let out_et = u16::from_be_bytes([out[12], out[13]]);
    let ip = &out[14..];
    if in_v6 {
        if out_et != 0x0800 || ip.len() < 20 || ip[0] != 0x45 {
            return Err("IPv6 in, but not a plain IPv4 header out".into());
        }
        if u16::from_be_bytes([ip[2], ip[3]]) as usize != ip.len() {
            return Err(format!(
                "IPv4 total length {} but {} bytes",
                u16::from_be_bytes([ip[2], ip[3]]),
                ip.len()
            ));
        }
        if !packet::checksum_ok(&[&ip[..20]]) {
            return Err("IPv4 header checksum wrong".into());
        }
    } else {
        if out_et != 0x86dd || ip.len() < 40 || ip[0] >> 4 != 6 {
            return Err("IPv4 in, but not IPv6 out".into());
        }
        if u16::from_be_bytes([ip[4], ip[5]]) as usize + 40 != ip.len() {
            return Err(format!(
                "IPv6 payload length {} but {} bytes",
                u16::from_be_bytes([ip[4], ip[5]]),
                ip.len()
            ));
        }
    }
    // A correct transport checksum stays correct; a wrong one stays wrong.
    if let (Some(before), Some(after)) = (l4_ok(&input[14..]), l4_ok(ip))
        && before != after
    {
        return Err(format!("transport checksum was {} and is now {}", ok_word(before), ok_word(after)));
    }
    Ok(())
}

/// An ICMP error the translator sent back: same family as the input, to its source,
/// within the size limit, with right lengths and checksums, quoting the input.
fn check_reply(input: &[u8], out: &[u8]) -> Result<(), String> {
    if out[12..14] != input[12..14] {
        return Err("a reply must be in the sender's family".into());
    }
    let ip = &out[14..];
    if input[12..14] == [0x08, 0x00] {
        if ip.len() > 576 || ip.len() < 28 || u16::from_be_bytes([ip[2], ip[3]]) as usize != ip.len() {
            return Err(format!("ICMPv4 error of {} bytes", ip.len()));
        }
        if !packet::checksum_ok(&[&ip[..20]]) || !packet::checksum_ok(&[&ip[20..]]) || ip[9] != 1 {
            return Err("ICMPv4 error checksums".into());
        }
        if ip[16..20] != input[26..30] || !matches!(ip[20], 3 | 11 | 12) {
            return Err("ICMPv4 error not to the sender, or not an error type".into());
        }
        if ip[28..] != input[14..14 + ip.len() - 28] {
            return Err("ICMPv4 error does not quote the packet".into());
        }
    } else {
        if ip.len() > 1280 || ip.len() < 48 || u16::from_be_bytes([ip[4], ip[5]]) as usize + 40 != ip.len() {
            return Err(format!("ICMPv6 error of {} bytes", ip.len()));
        }
        if ip[24..40] != input[22..38] || ip[6] != 58 || ip[40] >= 128 {
            return Err("ICMPv6 error not to the sender, or not an error type".into());
        }
        if l4_ok(ip) != Some(true) {
            return Err("ICMPv6 error checksum".into());
        }
        if ip[48..] != input[14..14 + ip.len() - 48] {
            return Err("ICMPv6 error does not quote the packet".into());
        }
    }
    Ok(())
}

fn ok_word(b: bool) -> &'static str {
    if b { "right" } else { "wrong" }
}

#[test]
fn mutated_packets_are_passed_dropped_or_translated_well_formed() {
    let h = Harness::new(TEST_CONFIG);
    let seeds = seeds();
    let mut rng = Rng(0x6e61_7436_3421_0001);
    let runs: u32 = 100_000;
    let (mut passed, mut dropped, mut translated, mut replied) = (0u32, 0u32, 0u32, 0u32);
    let mut failures = Vec::new();
    for i in 0..runs {
        let input = mutate(&mut rng, &seeds[i as usize % seeds.len()]);
        let out = h.run(&input);
        match out.action {
            XDP_DROP => dropped += 1,
            XDP_PASS if out.frame == input => passed += 1,
            XDP_PASS => {
                translated += 1;
                if let Err(e) = check_translated(&input, &out.frame) {
                    failures.push(format!("run {i}: {e}\n  in:  {input:02x?}\n  out: {:02x?}", out.frame));
                }
            }
            XDP_TX => {
                replied += 1;
                if let Err(e) = check_reply(&input, &out.frame) {
                    failures.push(format!("run {i}: {e}\n  in:  {input:02x?}\n  out: {:02x?}", out.frame));
                }
            }
            other => failures.push(format!("run {i}: unexpected verdict {other}")),
        }
    }
    println!(
        "{runs} mutated packets: {passed} passed untouched, {dropped} dropped, {translated} translated, \
         {replied} answered with an ICMP error"
    );
    assert!(
        failures.is_empty(),
        "{} bad outputs, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    assert!(translated > runs / 20 && dropped > runs / 20, "the mutations must exercise every outcome");
}
