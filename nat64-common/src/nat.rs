//! Stateful NAT64 (RFC 6146): the decisions that do not depend on where the state
//! lives, written once for the data path and nat64-ctl and tested here on the host.
//!
//! - [`tcp_step`]: the TCP session state machine of RFC 6146 §3.5.2.2, with the
//!   lifetime each transition gives the session;
//! - [`Timeouts`]: the session lifetimes of RFC 6146 §4 and their lower bounds;
//! - [`PortRange`] and [`pick_port`]: the port an IPv6 transport address gets, chosen
//!   as RFC 6056 §3.3.3 (Algorithm 3) chooses ephemeral ports, keyed by a secret so
//!   that an outsider cannot predict it, in the port's own range (RFC 6146 §3.5.1.1);
//! - [`pick_address`]: "paired" pooling (RFC 4787 REQ-2): every session of one IPv6
//!   host gets the same IPv4 address, without a lookup;
//! - [`siphash`]: the keyed hash both use (SipHash-1-3 over 64-bit words, bounded and
//!   branch-free enough for the verifier).

/// Transport protocols with a BIB of their own (ICMP: query identifiers as ports).
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMP: u8 = 1;

/// RFC 6146 §3.5.2.2: the states of a TCP session.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Closed = 0,
    V4Init = 1,
    V6Init = 2,
    Established = 3,
    V4FinRcv = 4,
    V6FinRcv = 5,
    V4FinV6FinRcv = 6,
    Trans = 7,
}

impl TcpState {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::V4Init,
            2 => Self::V6Init,
            3 => Self::Established,
            4 => Self::V4FinRcv,
            5 => Self::V6FinRcv,
            6 => Self::V4FinV6FinRcv,
            7 => Self::Trans,
            _ => Self::Closed,
        }
    }
}

/// What a transition does to the session's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Left as it was.
    Keep,
    /// Set to the established-connection idle timeout (2 h 4 min at least).
    Established,
    /// Set to the transitory timeout (4 min at least).
    Transitory,
    /// Set to the incoming-SYN timeout (6 s): an IPv4 SYN waiting for the IPv6 side.
    IncomingSyn,
}

/// TCP flags the machine looks at.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Whether TCP `flags` ask for a connection: SYN, without ACK or RST.
pub const fn opening_syn(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
}

/// One step of RFC 6146 §3.5.2.2 for a packet of an existing (or, from `Closed`, a
/// new) session: the new state and what happens to its lifetime. `from_v6`: the
/// packet came from the IPv6 side; `flags`: the packet's TCP flags.
pub const fn tcp_step(state: TcpState, from_v6: bool, flags: u8) -> (TcpState, Lifetime) {
    let syn = flags & TCP_SYN != 0;
    let fin = flags & TCP_FIN != 0;
    let rst = flags & TCP_RST != 0;
    match state {
        // A session starts with a SYN from either side (the IPv4 one only where the
        // filtering lets it in; the caller decides that).
        TcpState::Closed => match (syn, from_v6) {
            (true, true) => (TcpState::V6Init, Lifetime::Transitory),
            (true, false) => (TcpState::V4Init, Lifetime::IncomingSyn),
            _ => (TcpState::Closed, Lifetime::Keep),
        },
        TcpState::V4Init => {
            if syn && from_v6 {
                (TcpState::Established, Lifetime::Established)
            } else {
                (TcpState::V4Init, Lifetime::Keep)
            }
        }
        TcpState::V6Init => {
            if syn && !from_v6 {
                (TcpState::Established, Lifetime::Established)
            } else if syn {
                (TcpState::V6Init, Lifetime::Transitory)
            } else {
                (TcpState::V6Init, Lifetime::Keep)
            }
        }
        TcpState::Established => {
            if rst {
                (TcpState::Trans, Lifetime::Transitory)
            } else if fin && from_v6 {
                (TcpState::V6FinRcv, Lifetime::Established)
            } else if fin {
                (TcpState::V4FinRcv, Lifetime::Established)
            } else {
                (TcpState::Established, Lifetime::Established)
            }
        }
        TcpState::V4FinRcv => {
            if fin && from_v6 {
                (TcpState::V4FinV6FinRcv, Lifetime::Transitory)
            } else {
                (TcpState::V4FinRcv, Lifetime::Established)
            }
        }
        TcpState::V6FinRcv => {
            if fin && !from_v6 {
                (TcpState::V4FinV6FinRcv, Lifetime::Transitory)
            } else {
                (TcpState::V6FinRcv, Lifetime::Established)
            }
        }
        TcpState::V4FinV6FinRcv => (TcpState::V4FinV6FinRcv, Lifetime::Keep),
        TcpState::Trans => {
            if rst {
                (TcpState::Trans, Lifetime::Keep)
            } else {
                (TcpState::Established, Lifetime::Established)
            }
        }
    }
}

/// Session lifetimes in seconds (RFC 6146 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub udp: u32,
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub icmp: u32,
}

impl Timeouts {
    /// The RFC's defaults: UDP 5 min, TCP established 2 h 4 min, TCP transitory
    /// 4 min, ICMP query 60 s.
    pub const DEFAULT: Self = Self { udp: 300, tcp_established: 7440, tcp_transitory: 240, icmp: 60 };
    /// The lower bounds the RFC sets (UDP 2 min, TCP established 2 h 4 min, TCP
    /// transitory 4 min); ICMP has none, 1 s is the least that means anything.
    pub const MIN: Self = Self { udp: 120, tcp_established: 7440, tcp_transitory: 240, icmp: 1 };
    /// RFC 6146 §3.5.2.2: an unanswered IPv4 SYN is kept this long.
    pub const INCOMING_SYN: u32 = 6;

    /// The lifetime, in seconds, that `l` stands for (`None`: keep the current one).
    pub const fn seconds(&self, l: Lifetime) -> Option<u32> {
        match l {
            Lifetime::Keep => None,
            Lifetime::Established => Some(self.tcp_established),
            Lifetime::Transitory => Some(self.tcp_transitory),
            Lifetime::IncomingSyn => Some(Self::INCOMING_SYN),
        }
    }
}

/// A range of ports an IPv4 pool address lends, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ALL: Self = Self { first: 0, last: 65535 };

    pub const fn len(&self) -> u32 {
        self.last as u32 - self.first as u32 + 1
    }

    pub const fn is_empty(&self) -> bool {
        self.last < self.first
    }

    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    /// RFC 6146 §3.5.1.1: a port below 1024 is mapped within 0-1023, any other within
    /// 1024-65535 (ICMP identifiers: the whole range). The part of `self` in that
    /// class; empty when `self` has none of it.
    pub const fn for_source(&self, proto: u8, port: u16) -> Self {
        if proto == PROTO_ICMP {
            return *self;
        }
        let (lo, hi) = if port < 1024 { (0u16, 1023u16) } else { (1024, 65535) };
        let first = if self.first > lo { self.first } else { lo };
        let last = if self.last < hi { self.last } else { hi };
        Self { first, last }
    }
}

/// SipHash-1-3 of `words` under `key` (one compression round per word, three
/// finalization rounds): the keyed hash of RFC 6056 §3.3.3's F(). A fixed number of
/// words, so that the data path's loop is bounded.
pub fn siphash<const N: usize>(key: [u64; 2], words: &[u64; N]) -> u64 {
    sip::<1, 3, N>(key, words)
}

/// SipHash-c-d over `N` 64-bit words (the message is their little-endian bytes).
fn sip<const C: usize, const D: usize, const N: usize>(key: [u64; 2], words: &[u64; N]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    let mut i = 0;
    while i < N {
        v[3] ^= words[i];
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= words[i];
        i += 1;
    }
    let b = (N as u64 * 8) << 56;
    v[3] ^= b;
    for _ in 0..C {
        sip_round(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The 16-byte IPv6 address as two words for [`siphash`].
pub fn addr_words(a: &[u8; 16]) -> [u64; 2] {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&a[..8]);
    lo.copy_from_slice(&a[8..]);
    [u64::from_be_bytes(hi), u64::from_be_bytes(lo)]
}

/// "Paired" pooling (RFC 4787 REQ-2, RFC 6146 §3.5.1.1): the index, among `count`
/// pool4 addresses, of the one every session of the IPv6 host `src6` gets. A keyed
/// hash of the host's address: no table to consult, the same answer on every CPU and
/// after a restart (the key is kept with the maps), and not guessable from outside.
pub fn pick_address(key: [u64; 2], src6: &[u8; 16], count: u32) -> u32 {
    // checked_rem: no division-by-zero panic path, which the verifier would refuse.
    siphash(key, &addr_words(src6)).checked_rem(count as u64).unwrap_or(0) as u32
}

/// RFC 6056 §3.3.3 (Algorithm 3, "simple hash-based") for a NAT64 mapping: the
/// `attempt`-th candidate port in `range` for the IPv6 transport address (`src6`,
/// `port6`) of protocol `proto`. The offset is a keyed hash of that address, so the
/// ports a host gets tell nothing about the next one; `counter` (bumped on every
/// allocation) spreads successive mappings of the same address. Where Algorithm 3
/// tries the next port, the attempts here land apart across the range (see
/// [`port_at`]): consecutive candidates find the runs of taken ports that earlier
/// allocations left and run out of attempts while most of the range is free.
/// `None` for an empty range.
pub fn pick_port(
    key: [u64; 2],
    proto: u8,
    src6: &[u8; 16],
    port6: u16,
    range: PortRange,
    counter: u32,
    attempt: u32,
) -> Option<u16> {
    if range.is_empty() {
        return None;
    }
    Some(port_at(range, port_offset(key, proto, src6, port6), counter, attempt))
}

/// F() of RFC 6056 §3.3.3 for [`pick_port`]: computed once per allocation.
pub fn port_offset(key: [u64; 2], proto: u8, src6: &[u8; 16], port6: u16) -> u64 {
    let [hi, lo] = addr_words(src6);
    siphash(key, &[hi, lo, (proto as u64) << 16 | port6 as u64])
}

/// Candidate ports the data path tries for a new BIB entry before the host counts as
/// out of ports: with attempts that land anywhere in the range, a host is refused
/// with a share of about (taken share)^32 (none in a million below two thirds taken,
/// 3% at 90%).
pub const PORT_TRIES: u32 = 32;

/// The `attempt`-th candidate of [`pick_port`] from its offset; `range` not empty. In
/// a range of up to twice [`PORT_TRIES`] ports the attempts take the next port, so
/// that a small range is visited whole; in a larger one each attempt lands anywhere
/// in it, apart from the others.
pub fn port_at(range: PortRange, offset: u64, counter: u32, attempt: u32) -> u16 {
    let n = range.len() as u64;
    let seed = offset.wrapping_add(counter as u64);
    let at = if n <= 2 * PORT_TRIES as u64 {
        seed.wrapping_add(attempt as u64)
    } else if attempt == 0 {
        seed
    } else {
        mix64(seed ^ (attempt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    };
    (range.first as u64 + at.checked_rem(n).unwrap_or(0)) as u16
}

/// SplitMix64's finalizer: every bit of the result depends on every bit of `z`.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// RFC 7422 deterministic port blocks: the index of the host `src6` among the
/// `host_len` subnets of the prefix of length `prefix_len` it is in (`host_len -
/// prefix_len` at most 24 bits, `host_len` at least 32: nat64-ctl checks both). The
/// caller checks that `src6` is inside the prefix.
pub fn block_index(src6: &[u8; 16], prefix_len: u8, host_len: u8) -> u32 {
    let bits = host_len.saturating_sub(prefix_len) as u32;
    if bits == 0 || bits > 24 || !(32..=128).contains(&host_len) {
        return 0;
    }
    // The 32 bits that end with bit `host_len`.
    let last = (host_len as usize).div_ceil(8) - 1;
    let w = match last.checked_sub(3).and_then(|f| src6.get(f..f + 4)) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => return 0,
    };
    let shift = (8 - host_len as u32 % 8) % 8;
    (w >> shift) & ((1u32 << bits) - 1)
}

/// `a` cut to its first `len` bits, the rest zero: the subscriber an IPv6 host
/// belongs to (RFC 6888 REQ-4, `subscriber-prefix-length`).
pub fn cut6(a: &[u8; 16], len: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let bits = (len as i32 - 8 * i as i32).clamp(0, 8) as u32;
        out[i] = a[i] & (0xff00u32 >> bits) as u8;
        i += 1;
    }
    out
}

/// Whether `a` lies in the IPv6 prefix `p`/`len` (any length).
pub fn in_prefix6(a: &[u8; 16], p: &[u8; 16], len: u8) -> bool {
    let mut i = 0;
    while i < 16 {
        let bits = (len as i32 - 8 * i as i32).clamp(0, 8) as u32;
        let mask = (0xff00u32 >> bits) as u8;
        if (a[i] ^ p[i]) & mask != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// The pool4 slot and port range of block `index` (blocks of `size` ports, `per_addr`
/// of them on each address from `first`). `None` past the last block.
pub fn port_block(index: u32, size: u32, per_addr: u32, slots: u32, first: u16) -> Option<(u32, PortRange)> {
    let slot = index.checked_div(per_addr)?;
    if slot >= slots || size == 0 {
        return None;
    }
    let block = index.checked_rem(per_addr)?;
    let lo = first as u32 + block * size;
    let hi = lo + size - 1;
    if hi > 65535 {
        return None;
    }
    Some((slot, PortRange { first: lo as u16, last: hi as u16 }))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::HashSet, vec::Vec};

    use super::*;

    #[test]
    fn port_blocks_are_deterministic_and_disjoint() {
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        // /64s of 2001:db8:100::/56: the 8 bits after the /56.
        assert_eq!(block_index(&a("2001:db8:100::1"), 56, 64), 0);
        assert_eq!(block_index(&a("2001:db8:100:5::1"), 56, 64), 5);
        assert_eq!(block_index(&a("2001:db8:100:ff:1:2:3:4"), 56, 64), 255);
        // Whole hosts of 2001:db8::/108: the last 20 bits.
        assert_eq!(block_index(&a("2001:db8::a:bcde"), 108, 128), 0xabcde);
        // A prefix boundary inside a byte (/60 -> /64: 4 bits).
        assert_eq!(block_index(&a("2001:db8:0:1234::"), 60, 64), 4);
        assert_eq!(block_index(&a("2001:db8::"), 64, 64), 0, "no bits");
        assert!(in_prefix6(&a("2001:db8:100:ff::1"), &a("2001:db8:100::"), 56));
        assert!(!in_prefix6(&a("2001:db8:101::1"), &a("2001:db8:100::"), 56));
        assert!(in_prefix6(&a("2001:db8:10f::1"), &a("2001:db8:100::"), 44));
        assert!(!in_prefix6(&a("2001:db8:110::1"), &a("2001:db8:100::"), 44));
        assert!(in_prefix6(&a("::1"), &a("2001:db8::"), 0));
        assert_eq!(cut6(&a("2001:db8:100:ff:1:2:3:4"), 64), a("2001:db8:100:ff::"));
        assert_eq!(cut6(&a("2001:db8:100:ff:1:2:3:4"), 60), a("2001:db8:100:f0::"));
        assert_eq!(cut6(&a("2001:db8:100:ff:1:2:3:4"), 128), a("2001:db8:100:ff:1:2:3:4"));
        assert_eq!(cut6(&a("2001:db8:100:ff:1:2:3:4"), 0), a("::"));
        for len in 0..=128u8 {
            let c = cut6(&a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), len);
            assert_eq!(u128::from_be_bytes(c).count_ones(), len as u32);
            assert!(in_prefix6(&a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), &c, len));
        }
        // 2048-port blocks from 1024: 31 per address, 2 addresses.
        assert_eq!(port_block(0, 2048, 31, 2, 1024), Some((0, PortRange { first: 1024, last: 3071 })));
        assert_eq!(port_block(30, 2048, 31, 2, 1024), Some((0, PortRange { first: 62464, last: 64511 })));
        assert_eq!(port_block(31, 2048, 31, 2, 1024), Some((1, PortRange { first: 1024, last: 3071 })));
        assert_eq!(port_block(62, 2048, 31, 2, 1024), None, "past the last block");
        let mut seen = HashSet::new();
        for i in 0..62 {
            let (slot, r) = port_block(i, 2048, 31, 2, 1024).unwrap();
            for p in r.first..=r.last {
                assert!(seen.insert((slot, p)), "block {i} overlaps at {slot}:{p}");
            }
        }
    }

    /// RFC 6146 §3.5.2.2, every transition the figure and text name.
    #[test]
    fn tcp_state_machine_follows_rfc6146() {
        use Lifetime as L;
        use TcpState::*;
        let (v6, v4) = (true, false);
        let cases = [
            (Closed, v6, TCP_SYN, V6Init, L::Transitory),
            (Closed, v4, TCP_SYN, V4Init, L::IncomingSyn),
            (Closed, v6, 0, Closed, L::Keep),
            (Closed, v4, TCP_FIN, Closed, L::Keep),
            (V6Init, v4, TCP_SYN | 0x10, Established, L::Established),
            (V6Init, v6, TCP_SYN, V6Init, L::Transitory),
            (V6Init, v6, 0x10, V6Init, L::Keep),
            (V4Init, v6, TCP_SYN, Established, L::Established),
            (V4Init, v4, TCP_SYN, V4Init, L::Keep),
            (Established, v6, 0x10, Established, L::Established),
            (Established, v4, 0x18, Established, L::Established),
            (Established, v4, TCP_FIN | 0x10, V4FinRcv, L::Established),
            (Established, v6, TCP_FIN, V6FinRcv, L::Established),
            (Established, v4, TCP_RST, Trans, L::Transitory),
            (Established, v6, TCP_RST, Trans, L::Transitory),
            (V4FinRcv, v4, 0x10, V4FinRcv, L::Established),
            (V4FinRcv, v6, TCP_FIN | 0x10, V4FinV6FinRcv, L::Transitory),
            (V6FinRcv, v6, TCP_FIN, V6FinRcv, L::Established),
            (V6FinRcv, v4, TCP_FIN, V4FinV6FinRcv, L::Transitory),
            (V4FinV6FinRcv, v4, 0x10, V4FinV6FinRcv, L::Keep),
            (V4FinV6FinRcv, v6, TCP_SYN, V4FinV6FinRcv, L::Keep),
            (Trans, v6, 0x10, Established, L::Established),
            (Trans, v4, TCP_RST, Trans, L::Keep),
        ];
        for (from, dir, flags, to, life) in cases {
            assert_eq!(tcp_step(from, dir, flags), (to, life), "{from:?} from_v6={dir} flags={flags:#x}");
        }
        for v in 0..=8u8 {
            let s = TcpState::from_u8(v);
            assert!(v > 7 && s == Closed || s as u8 == v, "{v}");
        }
    }

    #[test]
    fn timeouts_are_the_rfcs() {
        let t = Timeouts::DEFAULT;
        assert_eq!((t.udp, t.tcp_established, t.tcp_transitory, t.icmp), (300, 7440, 240, 60));
        assert_eq!(t.seconds(Lifetime::Keep), None);
        assert_eq!(t.seconds(Lifetime::Established), Some(7440));
        assert_eq!(t.seconds(Lifetime::Transitory), Some(240));
        assert_eq!(t.seconds(Lifetime::IncomingSyn), Some(6));
        let m = Timeouts::MIN;
        assert!(
            m.udp <= t.udp && m.tcp_established <= t.tcp_established && m.tcp_transitory <= t.tcp_transitory
        );
    }

    /// The rounds and the finalization are SipHash's: with 2 and 4 rounds the same code
    /// gives what the standard library's SipHash-2-4 gives for the same bytes.
    #[test]
    #[allow(deprecated)]
    fn sip_2_4_matches_the_standard_library() {
        use std::hash::{Hasher, SipHasher};
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        let words = [0x1122_3344_5566_7788u64, 0, u64::MAX];
        let mut h = SipHasher::new_with_keys(key[0], key[1]);
        for w in words {
            h.write(&w.to_le_bytes());
        }
        assert_eq!(sip::<2, 4, 3>(key, &words), h.finish());
        let mut h = SipHasher::new_with_keys(key[0], key[1]);
        h.write(&42u64.to_le_bytes());
        assert_eq!(sip::<2, 4, 1>(key, &[42]), h.finish());
    }

    /// The keyed hash itself: the key matters, every word matters, the order matters,
    /// and the output spreads.
    #[test]
    fn siphash_depends_on_key_words_and_order() {
        let k = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        let a = siphash(k, &[1, 2]);
        assert_ne!(a, siphash([k[0] ^ 1, k[1]], &[1, 2]));
        assert_ne!(a, siphash(k, &[1, 3]));
        assert_ne!(a, siphash(k, &[2, 1]));
        assert_ne!(siphash(k, &[0]), siphash(k, &[0, 0]), "the length is hashed in");
        let outs: HashSet<u64> = (0..10_000u64).map(|i| siphash(k, &[i])).collect();
        assert_eq!(outs.len(), 10_000);
        let ones: u32 = (0..1000u64).map(|i| siphash(k, &[i]).count_ones()).sum();
        assert!((30_000..34_000).contains(&ones), "about half the bits set: {ones}");
    }

    #[test]
    fn port_classes_follow_rfc6146() {
        let pool = PortRange { first: 1000, last: 2000 };
        assert_eq!(pool.for_source(PROTO_UDP, 53), PortRange { first: 1000, last: 1023 });
        assert_eq!(pool.for_source(PROTO_TCP, 40000), PortRange { first: 1024, last: 2000 });
        assert_eq!(pool.for_source(PROTO_ICMP, 7), pool);
        let high = PortRange { first: 1024, last: 65535 };
        assert!(high.for_source(PROTO_TCP, 80).is_empty(), "no low port to lend");
        assert_eq!(PortRange::ALL.len(), 65536);
    }

    /// A range fills as the data path fills it ([`PORT_TRIES`] attempts an allocation, the
    /// counter bumped each time): no host is refused a port while the range is less
    /// than 70% taken, and under 0.5% of them on the way to 90%.
    #[test]
    fn a_range_fills_before_hosts_are_refused() {
        let key = [0x0123_4567_89ab_cdef, 0x5555_aaaa_1234_4321];
        let range = PortRange { first: 1024, last: 65535 };
        let n = range.len() as usize;
        let mut taken = std::vec![false; n];
        let (mut used, mut refused, mut first_refusal) = (0usize, 0usize, None);
        let mut counter = 0u32;
        for host in 0u32.. {
            if used * 10 >= n * 9 {
                break;
            }
            let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
            src[4..8].copy_from_slice(&host.to_be_bytes());
            counter = counter.wrapping_add(1);
            let free = (0..PORT_TRIES)
                .map(|a| pick_port(key, PROTO_UDP, &src, 40000, range, counter, a).unwrap())
                .find(|p| !taken[(*p - range.first) as usize]);
            match free {
                Some(p) => {
                    taken[(p - range.first) as usize] = true;
                    used += 1;
                }
                None => {
                    refused += 1;
                    first_refusal.get_or_insert(used);
                }
            }
        }
        let first = first_refusal.unwrap_or(n);
        assert!(first * 10 >= n * 7, "a host refused with {first} of {n} ports taken");
        assert!(refused * 200 < n, "{refused} hosts refused on the way to 90% of {n} ports");
    }

    /// The candidates stay in the range, differ from host to host and port to port,
    /// move with the counter and the attempt, and cover the range.
    #[test]
    fn ports_are_keyed_and_spread() {
        let key = [0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321];
        let range = PortRange { first: 1024, last: 65535 };
        let h1 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut h2 = h1;
        h2[15] = 2;
        let p = |src: &[u8; 16], port: u16, counter: u32, attempt: u32| {
            pick_port(key, PROTO_UDP, src, port, range, counter, attempt).unwrap()
        };
        assert_ne!(p(&h1, 5000, 0, 0), p(&h2, 5000, 0, 0));
        assert_ne!(p(&h1, 5000, 0, 0), p(&h1, 5001, 0, 0));
        assert_ne!(p(&h1, 5000, 0, 0), p(&h1, 5000, 1, 0), "the counter moves the first candidate");
        let tries: HashSet<u16> = (0..16).map(|a| p(&h1, 5000, 0, a)).collect();
        assert_eq!(tries.len(), 16, "every attempt a port not tried before");
        assert!(
            (1..16).any(|a| p(&h1, 5000, 0, a).abs_diff(p(&h1, 5000, 0, a - 1)) > 16),
            "attempts step across the range, not to the next port"
        );
        assert_ne!(
            p(&h1, 5000, 0, 0),
            pick_port([key[0], key[1] ^ 1], PROTO_UDP, &h1, 5000, range, 0, 0).unwrap(),
            "another key, another port"
        );
        let small = PortRange { first: 2000, last: 2009 };
        let all: HashSet<u16> =
            (0..10).map(|a| pick_port(key, PROTO_TCP, &h1, 80, small, 7, a).unwrap()).collect();
        assert_eq!(all.len(), 10, "ten attempts visit the ten ports");
        assert!(all.iter().all(|p| (2000..=2009).contains(p)));
        assert_eq!(pick_port(key, PROTO_TCP, &h1, 80, PortRange { first: 5, last: 4 }, 0, 0), None);
        // Across many hosts the first candidates spread over the range.
        let firsts: Vec<u16> = (0..1000u16)
            .map(|i| {
                let mut h = h1;
                h[14..16].copy_from_slice(&i.to_be_bytes());
                p(&h, 40000, 0, 0)
            })
            .collect();
        let distinct: HashSet<u16> = firsts.iter().copied().collect();
        assert!(distinct.len() > 990, "{}", distinct.len());
    }

    /// Paired pooling: one address per host whatever its ports, spread over the pool.
    #[test]
    fn one_address_per_host_spread_over_the_pool() {
        let key = [1, 2];
        let mut counts = [0u32; 4];
        for i in 0..4000u16 {
            let mut h = [0u8; 16];
            h[0] = 0x20;
            h[14..16].copy_from_slice(&i.to_be_bytes());
            let a = pick_address(key, &h, 4);
            assert_eq!(a, pick_address(key, &h, 4), "the same every time");
            counts[a as usize] += 1;
        }
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
        assert_eq!(pick_address(key, &[0; 16], 0), 0);
        assert_eq!(pick_address(key, &[0; 16], 1), 0);
    }
}
