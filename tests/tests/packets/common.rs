//! What every packet test uses: frame builders, the table runner, the `both!` macro
//! that runs each test through XDP and TC, the stateful NAT64 configuration.

use std::net::{Ipv4Addr, Ipv6Addr};

use nat64_common::counters::Counter;
use nat64_tests::{
    packet::{self, L4, V4Opts, V6Opts, diff, eth4, eth6, ipv4, ipv6},
    xdp::{Harness, XDP_DROP, XDP_PASS, XDP_TX, sh},
};

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn udp(data: &[u8]) -> L4 {
    L4::Udp { sport: 40000, dport: 53, data: data.to_vec(), zero_checksum: false }
}

pub fn tcp(data: &[u8]) -> L4 {
    L4::Tcp { sport: 40001, dport: 80, seq: 0x01020304, flags: 0x18, data: data.to_vec() }
}

pub fn echo(request: bool) -> L4 {
    L4::Echo { request, id: 0x4242, seq: 7, data: b"abcdefgh-ping-payload".to_vec() }
}

/// Copies the IPv4 Identification the program chose into `want` (it is random by
/// design, RFC 7915 §5.1) after checking it is non-zero, and fixes the header checksum.
pub fn adopt_ipv4_id(got: &[u8], want: &mut [u8]) {
    assert!(got.len() > 34 && want.len() > 34);
    let id = u16::from_be_bytes([got[18], got[19]]);
    assert_ne!(id, 0, "a translated packet of at most 1260 bytes gets a non-zero ID");
    want[18..20].copy_from_slice(&id.to_be_bytes());
    want[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&want[14..34]]);
    want[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Checks the output's IP and L4 checksums from scratch.
fn assert_checksums_valid(frame: &[u8]) {
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == 0x0800 {
        let ihl = ((frame[14] & 0xf) * 4) as usize;
        assert!(packet::checksum_ok(&[&frame[14..14 + ihl]]), "IPv4 header checksum");
        if u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0 {
            return; // a fragment's transport checksum covers the whole datagram
        }
        let l4 = &frame[14 + ihl..];
        let mut ph = frame[26..34].to_vec();
        ph.extend_from_slice(&[0, frame[23]]);
        ph.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        match frame[23] {
            6 | 17 => assert!(packet::checksum_ok(&[&ph, l4]), "L4 checksum (v4)"),
            1 => assert!(packet::checksum_ok(&[l4]), "ICMP checksum"),
            _ => {}
        }
    } else {
        if frame[20] == 44 {
            return; // a fragment's transport checksum covers the whole datagram
        }
        let l4 = &frame[54..];
        let mut ph = frame[22..54].to_vec();
        ph.extend_from_slice(&(l4.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, frame[20]]);
        if matches!(frame[20], 6 | 17 | 58) {
            assert!(packet::checksum_ok(&[&ph, l4]), "L4 checksum (v6)");
        }
    }
}

pub struct Case {
    name: &'static str,
    input: Vec<u8>,
    verdict: u32,
    /// Expected output; `None` for drops (the frame is not looked at).
    output: Option<Vec<u8>>,
    counter: Counter,
}

pub fn run_table(h: &Harness, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for mut c in cases {
        let before = h.count(c.counter);
        let out = h.run(&c.input);
        if out.action != c.verdict {
            failures.push(format!("{}: verdict {} want {}", c.name, out.action, c.verdict));
            continue;
        }
        if let Some(want) = c.output.as_mut() {
            let v4_out = want.len() > 14
                && want[12..14] == [0x08, 0x00]
                && (c.input[12..14] == [0x86, 0xdd] || c.verdict == XDP_TX);
            if v4_out && want[20] & 0x40 == 0 {
                adopt_ipv4_id(&out.frame, want);
            }
            if let Some(d) = diff(&out.frame, want) {
                failures.push(format!("{}: {d}", c.name));
                continue;
            }
            if c.verdict != XDP_PASS || out.frame != c.input {
                assert_checksums_valid(&out.frame);
            }
        }
        let after = h.count(c.counter);
        if after != before + 1 {
            failures.push(format!("{}: counter {} went {before} -> {after}", c.name, c.counter.name()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Dropped and answered with ICMPv6 Destination Unreachable, Communication
/// Administratively Prohibited, from the translator's IPv6 address (RFC 7915 §5.4).
pub fn prohibited6(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&input[22..38]).unwrap()).to_string();
    let output = back(icmp6_err("3fff::1", &src, 1, 1, [0; 4], &input[14..]));
    replied(name, input, output, counter)
}

/// Dropped and answered with ICMPv4 Destination Unreachable, Communication
/// Administratively Prohibited, from the translator's IPv4 address (RFC 7915 §4.4).
pub fn prohibited4(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&input[26..30]).unwrap()).to_string();
    let output = back(icmp4_err("198.51.100.1", &src, 3, 13, [0; 4], &input[14..]));
    replied(name, input, output, counter)
}

pub fn xlat(name: &'static str, input: Vec<u8>, output: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_PASS, output: Some(output), counter }
}

pub fn passed(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    Case { name, output: Some(input.clone()), input, verdict: XDP_PASS, counter }
}

/// The translator answers with an ICMP error, sent back out (XDP_TX).
pub fn replied(name: &'static str, input: Vec<u8>, reply: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_TX, output: Some(reply), counter }
}

/// `frame` as sent back: MAC addresses swapped.
pub fn back(mut frame: Vec<u8>) -> Vec<u8> {
    let (a, b) = (frame[0..6].to_vec(), frame[6..12].to_vec());
    frame[0..6].copy_from_slice(&b);
    frame[6..12].copy_from_slice(&a);
    frame
}

pub fn dropped(name: &'static str, input: Vec<u8>, counter: Counter) -> Case {
    Case { name, input, verdict: XDP_DROP, output: None, counter }
}

/// The IPv4 form of an IPv6 packet of this test's two hosts, as RFC 7915 §5.1 says
/// (the kernel forwards it, so TTL = hop limit here).
pub fn want4(src: &str, dst: &str, tos: u8, ttl: u8, l4: &L4) -> Vec<u8> {
    let p = ipv4(v4(src), v4(dst), V4Opts { tos, ttl, id: 0, df: false }, &[], l4);
    let mut f = eth4(&p);
    if f.len() - 14 > 1260 {
        f[20] = 0x40; // DF
        f[24..26].copy_from_slice(&[0, 0]);
        let c = packet::inet_checksum(&[&f[14..34]]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

pub fn want6(src: &str, dst: &str, tc: u8, hl: u8, l4: &L4) -> Vec<u8> {
    eth6(&ipv6(v6(src), v6(dst), V6Opts { tc, hop_limit: hl, flow_label: 0 }, l4))
}

pub fn in6(src: &str, dst: &str, l4: &L4) -> Vec<u8> {
    eth6(&ipv6(v6(src), v6(dst), V6Opts::default(), l4))
}

/// An IPv4 frame with its TTL set to `ttl`, the header checksum following.
pub fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    f[22] = ttl;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

pub fn in4(src: &str, dst: &str, l4: &L4) -> Vec<u8> {
    eth4(&ipv4(v4(src), v4(dst), V4Opts::default(), &[], l4))
}

pub fn ifindex(name: &str) -> u32 {
    sh(&format!("ip -o link show {name} | cut -d: -f1")).trim().parse().unwrap()
}

/// Two ports in the harness's namespace, forwarding on: x6 (02:00:00:00:06:01,
/// 2001:db8:6::1/64, neighbour H6 at 02:00:00:00:06:05) and x4 (02:00:00:00:04:01,
/// 198.51.100.1/24, 8.8.8.0/24 via the known neighbour 198.51.100.2 at
/// 02:00:00:00:04:02, 9.9.9.0/24 via 198.51.100.3, not resolved). Their ifindexes.
pub fn two_ports() -> (u32, u32) {
    sh("ip link add x6 type veth peer name x6p && ip link add x4 type veth peer name x4p");
    sh("ip link set x6 address 02:00:00:00:06:01 && ip link set x4 address 02:00:00:00:04:01");
    sh("for i in x6 x6p x4 x4p; do ip link set $i up; done");
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    sh("ip addr add 2001:db8:6::1/64 dev x6 nodad && ip addr add 198.51.100.1/24 dev x4");
    sh("ip route add 8.8.8.0/24 via 198.51.100.2 dev x4 && ip route add 9.9.9.0/24 via 198.51.100.3 dev x4");
    sh("ip neigh add 198.51.100.2 lladdr 02:00:00:00:04:02 dev x4 nud permanent");
    sh("ip neigh add 2001:db8:6::5 lladdr 02:00:00:00:06:05 dev x6 nud permanent");
    let (x6, x4) = (ifindex("x6"), ifindex("x4"));
    (x6, x4)
}

pub const NAT64_CONFIG: &str = r#"{
    "mode": "nat64",
    "interfaces": [{"name": "lo", "attach": "xdp"}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "3fff::1",
    "pool6": "64:ff9b::/96",
    "pool4": [{"prefix": "203.0.113.8/32", "ports": "40000-40003"}],
    "wkp-allow-non-global": true
}"#;

/// An IPv6 frame whose header chain is given raw: `first` is the IPv6 next header,
/// `chain` the encoded extension headers, `payload` what follows them.
pub fn v6_raw(src: &str, dst: &str, first: u8, chain: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&v6(src).octets());
    p.extend_from_slice(&v6(dst).octets());
    p.extend_from_slice(chain);
    p.extend_from_slice(payload);
    eth6(&p)
}

/// An IPv4 frame with the given ID, flags/offset word and raw payload.
pub fn v4_raw(src: &str, dst: &str, id: u16, flags_off: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags_off.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&v4(src).octets());
    h.extend_from_slice(&v4(dst).octets());
    let c = packet::inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    eth4(&h)
}

pub fn frag_hdr(nh: u8, offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    let mut f = vec![nh, 0];
    f.extend_from_slice(&(offset_units << 3 | more as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// Options header (hop-by-hop or destination options) of 8 bytes: PadN only.
pub fn opts_hdr(nh: u8) -> Vec<u8> {
    vec![nh, 0, 1, 4, 0, 0, 0, 0]
}

/// An ICMPv4 error from `router` to `to` carrying `inner` (an IPv4 packet), as an
/// Ethernet frame with correct checksums (DF=0, TTL 64).
pub fn icmp4_err(router: &str, to: &str, typ: u8, code: u8, rest: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(inner);
    let c = packet::inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v4_raw(router, to, 0x4321, 0, 1, &m)
}

/// An ICMPv4 error frame cut to `len` bytes of IP, its lengths and checksums made right.
pub fn cut_icmp4(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    f.truncate(14 + len);
    f[16..18].copy_from_slice(&(len as u16).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[36..38].copy_from_slice(&[0, 0]);
    let c = packet::inet_checksum(&[&f[34..]]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ICMPv6 error from `router` to `to` carrying `inner`, hop limit 64.
pub fn icmp6_err(router: &str, to: &str, typ: u8, code: u8, rest: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(inner);
    let mut ph = v6(router).octets().to_vec();
    ph.extend_from_slice(&v6(to).octets());
    ph.extend_from_slice(&(m.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = packet::inet_checksum(&[&ph, &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v6_raw(router, to, 58, &[], &m)
}

/// Every packet test runs through the XDP program and the TC program (Ethernet):
/// `both!(name, ...)` makes, for each function `name(kind: Kind)` of the calling
/// module, a module `name` with the tests `xdp` and `tc`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Kind;

            #[test]
            fn xdp() {
                super::$name(Kind::Xdp)
            }

            #[test]
            fn tc() {
                super::$name(Kind::Tc)
            }
        }
    )*};
}
pub(crate) use both;
