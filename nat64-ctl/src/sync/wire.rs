//! The session-sync datagram: what one node tells its peers about stateful NAT64's
//! sessions, sealed with HMAC-SHA256 under the key the nodes share.
//!
//! ```text
//! header (40 bytes, network byte order)
//!    0  magic "N64S"
//!    4  version (1)
//!    5  kind (KIND_*)
//!    6  records (u16)
//!    8  node (u32): the sender's node id
//!   12  flags (u32): FLAG_LAST ends a bulk copy
//!   16  epoch (u64): when the sender started, Unix ns; a restart starts a new one
//!   24  sequence (u64): from 1 within an epoch
//!   32  time (u64): when it was sent, Unix ms
//! 40    the records, RECORD_LEN bytes each
//! end   tag (32 bytes): HMAC-SHA256 over everything before it
//! ```
//!
//! A record is one session with its BIB entry: enough to make both again on a peer.
//!
//! ```text
//!    0  IPv6 address (16)         16  IPv6 port (u16)       18  pool4 port (u16)
//!   20  pool4 address (4)         24  remote address (4)    28  remote port (u16)
//!   30  protocol (6, 17, 1)       31  TCP state (0 else)    32  lifetime left, ms (u32)
//!   36  flags (RECORD_ENDED)      37  zero (3)
//! ```
//!
//! [`open`] checks the tag before it reads anything but the header's first bytes, so
//! that nothing from a sender without the key is parsed; then every field is checked,
//! and one bad record refuses the whole datagram.

use std::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use nat64_common::nat::TcpState;
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"N64S";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
pub const TAG_LEN: usize = 32;
pub const RECORD_LEN: usize = 40;
/// A datagram fits the UDP payload of an IPv6 packet of the minimum MTU (1,280 - 48).
pub const MAX_DATAGRAM: usize = 1232;
/// Records in one datagram.
pub const MAX_RECORDS: usize = (MAX_DATAGRAM - HEADER_LEN - TAG_LEN) / RECORD_LEN;

/// Sessions made, changed or ended on the sender.
pub const KIND_EVENTS: u8 = 1;
/// A node that starts asks a peer for a full copy of its sessions (no records).
pub const KIND_BULK_REQUEST: u8 = 2;
/// A part of the full copy; the last has [`FLAG_LAST`].
pub const KIND_BULK: u8 = 3;
/// Nothing to say, sent so that peers know the node is there (no records).
pub const KIND_HELLO: u8 = 4;

/// The last datagram of a bulk copy.
pub const FLAG_LAST: u32 = 1;
/// The session ended on the sender.
pub const RECORD_ENDED: u8 = 1;

/// The longest lifetime a record may carry: RFC 6146's longest (TCP established, 2 h
/// 4 min) with room for a longer configured one.
pub const MAX_LIFETIME_MS: u32 = 24 * 3600 * 1000;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The key the nodes share. At least [`SyncKey::MIN_LEN`] bytes.
/// Compared only to tell whether a reload changes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncKey(Vec<u8>);

impl SyncKey {
    pub const MIN_LEN: usize = 32;

    /// The key from the bytes of a key file, one line ending at its end left out (a
    /// key written by `head -c 48 /dev/urandom | base64 > FILE` is the base64 text).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        let key = bytes.strip_suffix(b"\n").map_or(bytes, |k| k.strip_suffix(b"\r").unwrap_or(k));
        if key.len() < Self::MIN_LEN {
            return Err(format!("the key is {} bytes; it must be at least {}", key.len(), Self::MIN_LEN));
        }
        Ok(Self(key.to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

impl std::fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncKey({} bytes)", self.0.len())
    }
}

/// One session with its BIB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub v6: [u8; 16],
    pub v6_port: u16,
    pub v4: Ipv4Addr,
    pub v4_port: u16,
    pub remote: Ipv4Addr,
    pub remote_port: u16,
    /// 6, 17, or 1 for ICMP (whose ports are the query identifiers).
    pub proto: u8,
    /// For TCP, RFC 6146's state ([`TcpState`] as a number); 0 otherwise.
    pub state: u8,
    /// What is left of its lifetime on the sender.
    pub lifetime_ms: u32,
    pub ended: bool,
}

/// One datagram's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub node: u32,
    pub flags: u32,
    pub epoch: u64,
    pub seq: u64,
    pub time_ms: u64,
    pub records: Vec<SessionRecord>,
}

/// Why a datagram was refused, one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a sync datagram, or not one of this version: too short, another magic or
    /// version.
    Malformed(&'static str),
    /// The tag is not the key's: a sender without the key, or the datagram was
    /// changed on the way.
    Unauthenticated,
    /// Authentic, but a field is out of range (a peer of another build, or a bug).
    Invalid(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed: {why}"),
            Self::Unauthenticated => write!(f, "refused by authentication"),
            Self::Invalid(why) => write!(f, "invalid: {why}"),
        }
    }
}

/// The datagram for `m`, sealed with `key`. At most [`MAX_RECORDS`] records.
pub fn seal(key: &SyncKey, m: &Message) -> Vec<u8> {
    assert!(m.records.len() <= MAX_RECORDS, "at most {MAX_RECORDS} records a datagram");
    let mut out = Vec::with_capacity(HEADER_LEN + m.records.len() * RECORD_LEN + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(m.kind);
    out.extend_from_slice(&(m.records.len() as u16).to_be_bytes());
    out.extend_from_slice(&m.node.to_be_bytes());
    out.extend_from_slice(&m.flags.to_be_bytes());
    out.extend_from_slice(&m.epoch.to_be_bytes());
    out.extend_from_slice(&m.seq.to_be_bytes());
    out.extend_from_slice(&m.time_ms.to_be_bytes());
    for r in &m.records {
        out.extend_from_slice(&r.v6);
        out.extend_from_slice(&r.v6_port.to_be_bytes());
        out.extend_from_slice(&r.v4_port.to_be_bytes());
        out.extend_from_slice(&r.v4.octets());
        out.extend_from_slice(&r.remote.octets());
        out.extend_from_slice(&r.remote_port.to_be_bytes());
        out.push(r.proto);
        out.push(r.state);
        out.extend_from_slice(&r.lifetime_ms.to_be_bytes());
        out.push(if r.ended { RECORD_ENDED } else { 0 });
        out.extend_from_slice(&[0; 3]);
    }
    let mut mac = key.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out
}

/// The message in datagram `d` if `key` sealed it and every field is in range.
pub fn open(key: &SyncKey, d: &[u8]) -> Result<Message, Refusal> {
    if d.len() < HEADER_LEN + TAG_LEN {
        return Err(Refusal::Malformed("shorter than a header and a tag"));
    }
    if d.len() > MAX_DATAGRAM {
        return Err(Refusal::Malformed("longer than a sync datagram may be"));
    }
    if d[..4] != MAGIC {
        return Err(Refusal::Malformed("not a sync datagram (magic)"));
    }
    if d[4] != VERSION {
        return Err(Refusal::Malformed("another version"));
    }
    let (body, tag) = d.split_at(d.len() - TAG_LEN);
    let mut mac = key.mac();
    mac.update(body);
    // In constant time.
    mac.verify_slice(tag).map_err(|_| Refusal::Unauthenticated)?;

    let u16_at = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let kind = body[5];
    let count = u16_at(6) as usize;
    let flags = u32_at(12);
    if !matches!(kind, KIND_EVENTS | KIND_BULK_REQUEST | KIND_BULK | KIND_HELLO) {
        return Err(Refusal::Invalid("unknown kind"));
    }
    if body.len() != HEADER_LEN + count * RECORD_LEN {
        return Err(Refusal::Invalid("the record count does not match the length"));
    }
    if count != 0 && !matches!(kind, KIND_EVENTS | KIND_BULK) {
        return Err(Refusal::Invalid("records in a message that has none"));
    }
    if flags & !FLAG_LAST != 0 || (flags & FLAG_LAST != 0 && kind != KIND_BULK) {
        return Err(Refusal::Invalid("unknown flags"));
    }
    let seq = u64_at(24);
    if seq == 0 {
        return Err(Refusal::Invalid("sequence 0"));
    }
    let records = body[HEADER_LEN..].chunks_exact(RECORD_LEN).map(record).collect::<Result<Vec<_>, _>>()?;
    Ok(Message { kind, node: u32_at(8), flags, epoch: u64_at(16), seq, time_ms: u64_at(32), records })
}

fn record(b: &[u8]) -> Result<SessionRecord, Refusal> {
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let v4 = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let r = SessionRecord {
        v6: b[..16].try_into().expect("16 bytes"),
        v6_port: u16_at(16),
        v4_port: u16_at(18),
        v4: v4(20),
        remote: v4(24),
        remote_port: u16_at(28),
        proto: b[30],
        state: b[31],
        lifetime_ms: u32::from_be_bytes(b[32..36].try_into().expect("4 bytes")),
        ended: b[36] == RECORD_ENDED,
    };
    if b[36] & !RECORD_ENDED != 0 || b[37..40] != [0; 3] {
        return Err(Refusal::Invalid("a record's flags or padding"));
    }
    match r.proto {
        PROTO_TCP => {
            if TcpState::from_u8(r.state) as u8 != r.state || r.state == TcpState::Closed as u8 {
                return Err(Refusal::Invalid("a TCP record's state"));
            }
        }
        PROTO_UDP | PROTO_ICMP if r.state == 0 => {}
        PROTO_UDP | PROTO_ICMP => return Err(Refusal::Invalid("a state in a record that is not TCP")),
        _ => return Err(Refusal::Invalid("a record's protocol")),
    }
    if r.v4_port == 0 || (r.proto != PROTO_ICMP && (r.v6_port == 0 || r.remote_port == 0)) {
        return Err(Refusal::Invalid("a record's port 0"));
    }
    if r.lifetime_ms > MAX_LIFETIME_MS {
        return Err(Refusal::Invalid("a record's lifetime"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SyncKey {
        SyncKey::from_file_bytes(&[b; 32]).unwrap()
    }

    fn rec(i: u16) -> SessionRecord {
        SessionRecord {
            v6: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            v6_port: 40000 + i,
            v4: Ipv4Addr::new(192, 0, 2, 1),
            v4_port: 1024 + i,
            remote: Ipv4Addr::new(198, 51, 100, 7),
            remote_port: 443,
            proto: PROTO_TCP,
            state: TcpState::Established as u8,
            lifetime_ms: 7_440_000,
            ended: false,
        }
    }

    fn msg(n: usize) -> Message {
        Message {
            kind: KIND_EVENTS,
            node: 7,
            flags: 0,
            epoch: 1_700_000_000_000_000_000,
            seq: 42,
            time_ms: 1_700_000_000_000,
            records: (0..n as u16).map(rec).collect(),
        }
    }

    #[test]
    fn a_sealed_message_opens_to_itself() {
        for n in [0, 1, MAX_RECORDS] {
            let m = msg(n);
            let d = seal(&key(1), &m);
            assert_eq!(d.len(), HEADER_LEN + n * RECORD_LEN + TAG_LEN);
            assert!(d.len() <= MAX_DATAGRAM);
            assert_eq!(open(&key(1), &d), Ok(m));
        }
    }

    #[test]
    fn the_header_is_where_the_format_says() {
        let d = seal(&key(1), &msg(1));
        assert_eq!(&d[..4], b"N64S");
        assert_eq!(d[4], 1);
        assert_eq!(d[5], KIND_EVENTS);
        assert_eq!(d[6..8], [0, 1]);
        assert_eq!(d[8..12], [0, 0, 0, 7]);
        assert_eq!(d[24..32], 42u64.to_be_bytes());
        let r = &d[HEADER_LEN..HEADER_LEN + RECORD_LEN];
        assert_eq!(r[16..18], 40000u16.to_be_bytes());
        assert_eq!(r[18..20], 1024u16.to_be_bytes());
        assert_eq!(r[20..24], [192, 0, 2, 1]);
        assert_eq!(r[30], 6);
        assert_eq!(r[31], 3);
    }

    #[test]
    fn another_key_is_refused() {
        let d = seal(&key(1), &msg(3));
        assert_eq!(open(&key(2), &d), Err(Refusal::Unauthenticated));
    }

    #[test]
    fn every_changed_bit_is_refused() {
        let d = seal(&key(1), &msg(2));
        for i in 0..d.len() * 8 {
            let mut x = d.clone();
            x[i / 8] ^= 1 << (i % 8);
            assert!(open(&key(1), &x).is_err(), "bit {i} changed and accepted");
        }
    }

    #[test]
    fn truncated_and_padded_datagrams_are_refused() {
        let d = seal(&key(1), &msg(2));
        for len in 0..d.len() {
            assert!(open(&key(1), &d[..len]).is_err(), "cut to {len} and accepted");
        }
        let mut long = d.clone();
        long.push(0);
        assert!(open(&key(1), &long).is_err());
    }

    #[test]
    fn authentic_nonsense_is_refused_field_by_field() {
        let k = key(1);
        let bad = |f: &dyn Fn(&mut Message)| {
            let mut m = msg(1);
            f(&mut m);
            open(&k, &seal(&k, &m))
        };
        assert!(matches!(bad(&|m| m.kind = 9), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.seq = 0), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.flags = FLAG_LAST), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.kind = KIND_HELLO), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.records[0].proto = 47), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.records[0].state = 0), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.records[0].state = 8), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.records[0].v4_port = 0), Err(Refusal::Invalid(_))));
        assert!(matches!(bad(&|m| m.records[0].lifetime_ms = MAX_LIFETIME_MS + 1), Err(Refusal::Invalid(_))));
        assert!(matches!(
            bad(&|m| {
                m.records[0].proto = PROTO_UDP;
                m.records[0].state = 3;
            }),
            Err(Refusal::Invalid(_))
        ));
        // ICMP: the identifier is the only port that matters.
        assert!(
            bad(&|m| {
                m.records[0].proto = PROTO_ICMP;
                m.records[0].state = 0;
                m.records[0].remote_port = 0;
            })
            .is_ok()
        );
        let mut m = msg(0);
        m.kind = KIND_BULK;
        m.flags = FLAG_LAST;
        assert_eq!(open(&k, &seal(&k, &m)), Ok(m));
    }

    #[test]
    fn a_short_key_is_refused_and_a_line_ending_is_not_key() {
        assert!(SyncKey::from_file_bytes(&[7; 31]).is_err());
        assert!(SyncKey::from_file_bytes(b"0123456789012345678901234567890\r\n").is_err());
        let a = SyncKey::from_file_bytes(b"01234567890123456789012345678901\r\n").unwrap();
        let b = SyncKey::from_file_bytes(b"01234567890123456789012345678901").unwrap();
        let c = SyncKey::from_file_bytes(b"01234567890123456789012345678901\n").unwrap();
        assert_eq!(open(&c, &seal(&a, &msg(1))), Ok(msg(1)));
        // Other whitespace is key: a binary key may end in any byte.
        assert!(SyncKey::from_file_bytes(&[b' '; 32]).is_ok());
        assert_eq!(open(&b, &seal(&a, &msg(1))), Ok(msg(1)));
        assert_eq!(format!("{a:?}"), "SyncKey(32 bytes)");
    }

    /// The decoder against mutated copies of authentic datagrams and against garbage:
    /// it never panics, and accepts a datagram only when it is one a sender sealed.
    #[test]
    fn decoder_fuzz() {
        let k = key(3);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let seeds: Vec<Vec<u8>> = [0, 1, 5, MAX_RECORDS].iter().map(|&n| seal(&k, &msg(n))).collect();
        for round in 0..20_000 {
            let mut d = if round % 4 == 0 {
                let len = (next() % (MAX_DATAGRAM as u64 + 64)) as usize;
                let mut g: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if len >= 5 && round % 8 == 0 {
                    g[..4].copy_from_slice(&MAGIC);
                    g[4] = VERSION;
                }
                g
            } else {
                seeds[(next() % seeds.len() as u64) as usize].clone()
            };
            let original = d.clone();
            for _ in 0..1 + next() % 4 {
                match next() % 4 {
                    0 if !d.is_empty() => {
                        let i = (next() % d.len() as u64) as usize;
                        d[i] ^= 1 << (next() % 8);
                    }
                    1 if !d.is_empty() => {
                        let i = (next() % d.len() as u64) as usize;
                        d[i] = next() as u8;
                    }
                    2 => d.truncate((next() % (d.len() as u64 + 1)) as usize),
                    _ => d.extend((0..next() % 48).map(|_| next() as u8)),
                }
            }
            if let Ok(m) = open(&k, &d) {
                assert_eq!(d, original, "round {round}: a changed datagram was accepted");
                assert_eq!(seal(&k, &m), d);
            }
        }
    }
}
