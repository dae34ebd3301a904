//! IPFIX (RFC 7011) messages carrying RFC 8158's NAT events, as carriers' collectors
//! take them: a template set describing each kind of record, then data sets of
//! records, each message with its export time, the count of records sent before it
//! and the observation domain.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The IPFIX version number in every message header.
pub const VERSION: u16 = 10;
/// A message header's length.
pub const HEADER_LEN: usize = 16;
/// A set header's length.
pub const SET_HEADER_LEN: usize = 4;
/// The set ID of a template set.
pub const TEMPLATE_SET: u16 = 2;
/// The templates, one per kind of record (data set IDs start at 256).
pub const TEMPLATE_NAT64_BIB: u16 = 256;
pub const TEMPLATE_PORT_BLOCK: u16 = 257;
pub const TEMPLATE_ADDRESSES_EXHAUSTED: u16 = 258;
pub const TEMPLATE_PORTS_EXHAUSTED: u16 = 259;
pub const TEMPLATE_QUOTA_PER_USER: u16 = 260;
/// Messages stay within this many bytes, so that a UDP datagram fits a 1500-byte MTU
/// without fragments (RFC 7011 §10.3.3).
pub const MAX_MESSAGE: usize = 1400;

/// RFC 8158's natEvent values (IANA's registry) of the events nat64 exports.
pub const NAT_ADDRESSES_EXHAUSTED: u8 = 3;
pub const NAT64_BIB_CREATE: u8 = 10;
pub const NAT64_BIB_DELETE: u8 = 11;
pub const NAT_PORTS_EXHAUSTED: u8 = 12;
pub const QUOTA_EXCEEDED: u8 = 13;
pub const PORT_BLOCK_ALLOCATION: u8 = 16;
pub const PORT_BLOCK_DEALLOCATION: u8 = 17;
/// natQuotaExceededEvent: maximum entries per user.
pub const MAX_ENTRIES_PER_USER: u32 = 3;
/// The natPoolId of pool4 (one pool).
pub const POOL_ID: u32 = 1;

/// Each template: its ID and its fields (IANA information element, length), in order.
/// No destination in any: RFC 6888 REQ-12.
pub const TEMPLATES: [(u16, &[(u16, u16)]); 5] = [
    (
        TEMPLATE_NAT64_BIB,
        &[
            (323, 8), // observationTimeMilliseconds
            (230, 1), // natEvent
            (27, 16), // sourceIPv6Address
            (225, 4), // postNATSourceIPv4Address
            (4, 1),   // protocolIdentifier
            (7, 2),   // sourceTransportPort
            (227, 2), // postNAPTSourceTransportPort
        ],
    ),
    (
        TEMPLATE_PORT_BLOCK,
        &[
            (323, 8), // observationTimeMilliseconds
            (230, 1), // natEvent
            (27, 16), // sourceIPv6Address: the subscriber's prefix
            (29, 1),  // sourceIPv6PrefixLength
            (225, 4), // postNATSourceIPv4Address
            (361, 2), // portRangeStart
            (362, 2), // portRangeEnd
            (363, 2), // portRangeStepSize
            (364, 2), // portRangeNumPorts
        ],
    ),
    (
        TEMPLATE_ADDRESSES_EXHAUSTED,
        &[
            (323, 8), // observationTimeMilliseconds
            (230, 1), // natEvent
            (283, 4), // natPoolId
        ],
    ),
    (
        TEMPLATE_PORTS_EXHAUSTED,
        &[
            (323, 8), // observationTimeMilliseconds
            (230, 1), // natEvent
            (225, 4), // postNATSourceIPv4Address
            (4, 1),   // protocolIdentifier
        ],
    ),
    (
        TEMPLATE_QUOTA_PER_USER,
        &[
            (323, 8), // observationTimeMilliseconds
            (230, 1), // natEvent
            (466, 4), // natQuotaExceededEvent
            (473, 4), // maxEntriesPerUser
            (27, 16), // sourceIPv6Address: the subscriber's prefix
        ],
    ),
];

/// One record's length under template `id`: the sum of its field lengths.
pub fn record_len(id: u16) -> usize {
    TEMPLATES.iter().find(|t| t.0 == id).map_or(0, |t| t.1.iter().map(|f| f.1 as usize).sum())
}

/// The NAT64 BIB record's length.
pub const NAT64_BIB_LEN: usize = 34;

/// One NAT event record, as its template lays it out (times in Unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// A NAT64 BIB entry made or ended ([`NAT64_BIB_CREATE`], [`NAT64_BIB_DELETE`]):
    /// the IPv6 side's port (ICMP: the echo identifier) and the pool4 side's.
    Bib { time_ms: u64, event: u8, v6: Ipv6Addr, v4: Ipv4Addr, proto: u8, port6: u16, port4: u16 },
    /// A port block taken or given back ([`PORT_BLOCK_ALLOCATION`],
    /// [`PORT_BLOCK_DEALLOCATION`]) by the subscriber `v6`/`v6_len`.
    Block { time_ms: u64, event: u8, v6: Ipv6Addr, v6_len: u8, v4: Ipv4Addr, first: u16, last: u16 },
    /// No dynamic port block left in pool4.
    AddressesExhausted { time_ms: u64 },
    /// No port left on pool4 address `v4` for `proto`.
    PortsExhausted { time_ms: u64, v4: Ipv4Addr, proto: u8 },
    /// The subscriber `v6` refused a mapping at its limit of `limit` entries.
    Quota { time_ms: u64, v6: Ipv6Addr, limit: u32 },
}

impl Record {
    /// The template the record is laid out by.
    pub fn template(&self) -> u16 {
        match self {
            Record::Bib { .. } => TEMPLATE_NAT64_BIB,
            Record::Block { .. } => TEMPLATE_PORT_BLOCK,
            Record::AddressesExhausted { .. } => TEMPLATE_ADDRESSES_EXHAUSTED,
            Record::PortsExhausted { .. } => TEMPLATE_PORTS_EXHAUSTED,
            Record::Quota { .. } => TEMPLATE_QUOTA_PER_USER,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match *self {
            Record::Bib { time_ms, event, v6, v4, proto, port6, port4 } => {
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(event);
                out.extend_from_slice(&v6.octets());
                out.extend_from_slice(&v4.octets());
                out.push(proto);
                out.extend_from_slice(&port6.to_be_bytes());
                out.extend_from_slice(&port4.to_be_bytes());
            }
            Record::Block { time_ms, event, v6, v6_len, v4, first, last } => {
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(event);
                out.extend_from_slice(&v6.octets());
                out.push(v6_len);
                out.extend_from_slice(&v4.octets());
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&last.to_be_bytes());
                out.extend_from_slice(&1u16.to_be_bytes());
                out.extend_from_slice(&(last.wrapping_sub(first).wrapping_add(1)).to_be_bytes());
            }
            Record::AddressesExhausted { time_ms } => {
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(NAT_ADDRESSES_EXHAUSTED);
                out.extend_from_slice(&POOL_ID.to_be_bytes());
            }
            Record::PortsExhausted { time_ms, v4, proto } => {
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(NAT_PORTS_EXHAUSTED);
                out.extend_from_slice(&v4.octets());
                out.push(proto);
            }
            Record::Quota { time_ms, v6, limit } => {
                out.extend_from_slice(&time_ms.to_be_bytes());
                out.push(QUOTA_EXCEEDED);
                out.extend_from_slice(&MAX_ENTRIES_PER_USER.to_be_bytes());
                out.extend_from_slice(&limit.to_be_bytes());
                out.extend_from_slice(&v6.octets());
            }
        }
    }
}

/// The observation domain of an instance's records: a hash of its name, so that
/// instances (and nodes with different names) stay apart at the collector.
pub fn domain_of(instance: &str) -> u32 {
    instance.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// One exporting process's state for one observation domain: the sequence number is
/// the count of data records sent before the message (RFC 7011 §3.1), modulo 2^32.
#[derive(Debug)]
pub struct Exporter {
    pub domain: u32,
    sequence: u32,
}

impl Exporter {
    pub fn new(domain: u32) -> Self {
        Self { domain, sequence: 0 }
    }

    fn header(&self, out: &mut Vec<u8>, export_secs: u32) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // length, set when the message is complete
        out.extend_from_slice(&export_secs.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.domain.to_be_bytes());
    }

    fn finish(out: &mut [u8]) {
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// A message with the template set (sent first, and again every so often: over UDP
    /// a collector that starts later learns it then, RFC 7011 §8.4).
    pub fn template_message(&self, export_secs: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.header(&mut out, export_secs);
        let set_len = SET_HEADER_LEN + TEMPLATES.iter().map(|t| 4 + 4 * t.1.len()).sum::<usize>();
        out.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
        out.extend_from_slice(&(set_len as u16).to_be_bytes());
        for (id, fields) in TEMPLATES {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
            for (ie, len) in fields {
                out.extend_from_slice(&ie.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        Self::finish(&mut out);
        out
    }

    /// Data messages holding `records` in order, each at most [`MAX_MESSAGE`] bytes, a
    /// data set for each run of records of one template; the sequence number moves on
    /// by the records sent.
    pub fn data_messages(&mut self, export_secs: u32, records: &[Record]) -> Vec<Vec<u8>> {
        let mut msgs = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        let mut set_at = 0;
        let mut set_id = 0;
        let mut in_msg = 0u32;
        for r in records {
            let (id, len) = (r.template(), record_len(r.template()));
            let new_set = id != set_id || out.is_empty();
            let need = len + if new_set { SET_HEADER_LEN } else { 0 };
            if !out.is_empty() && out.len() + need > MAX_MESSAGE {
                self.close(&mut out, set_at, &mut msgs, in_msg);
                in_msg = 0;
            }
            if out.is_empty() {
                self.header(&mut out, export_secs);
                set_id = 0;
            }
            if id != set_id {
                if set_id != 0 {
                    Self::close_set(&mut out, set_at);
                }
                set_at = out.len();
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                set_id = id;
            }
            r.put(&mut out);
            in_msg += 1;
        }
        if !out.is_empty() {
            self.close(&mut out, set_at, &mut msgs, in_msg);
        }
        msgs
    }

    fn close_set(out: &mut [u8], set_at: usize) {
        let len = (out.len() - set_at) as u16;
        out[set_at + 2..set_at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn close(&mut self, out: &mut Vec<u8>, set_at: usize, msgs: &mut Vec<Vec<u8>>, records: u32) {
        Self::close_set(out, set_at);
        Self::finish(out);
        msgs.push(std::mem::take(out));
        self.sequence = self.sequence.wrapping_add(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn the_record_lengths_are_the_sums_of_the_fields() {
        assert_eq!(record_len(TEMPLATE_NAT64_BIB), NAT64_BIB_LEN);
        let lens: Vec<usize> = TEMPLATES.iter().map(|t| record_len(t.0)).collect();
        assert_eq!(lens, vec![34, 38, 13, 14, 33]);
    }

    /// RFC 7011 §3.1 (message header), §3.3.1 (set header), §3.4.1 (template record):
    /// every byte of the template message.
    #[test]
    fn the_template_message_is_rfc_7011s_wire_format() {
        let x = Exporter::new(7);
        let m = x.template_message(0x6571_0000);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x00, 0x0a, 0x00, 0x98, 0x65, 0x71, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 7, // header, 152 bytes
            0x00, 0x02, 0x00, 0x88, // template set, 136 bytes
            0x01, 0x00, 0x00, 0x07, // template 256, 7 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds (323), 8
            0x00, 0xe6, 0x00, 0x01, // natEvent (230), 1
            0x00, 0x1b, 0x00, 0x10, // sourceIPv6Address (27), 16
            0x00, 0xe1, 0x00, 0x04, // postNATSourceIPv4Address (225), 4
            0x00, 0x04, 0x00, 0x01, // protocolIdentifier (4), 1
            0x00, 0x07, 0x00, 0x02, // sourceTransportPort (7), 2
            0x00, 0xe3, 0x00, 0x02, // postNAPTSourceTransportPort (227), 2
            0x01, 0x01, 0x00, 0x09, // template 257, 9 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds
            0x00, 0xe6, 0x00, 0x01, // natEvent
            0x00, 0x1b, 0x00, 0x10, // sourceIPv6Address
            0x00, 0x1d, 0x00, 0x01, // sourceIPv6PrefixLength (29), 1
            0x00, 0xe1, 0x00, 0x04, // postNATSourceIPv4Address
            0x01, 0x69, 0x00, 0x02, // portRangeStart (361), 2
            0x01, 0x6a, 0x00, 0x02, // portRangeEnd (362), 2
            0x01, 0x6b, 0x00, 0x02, // portRangeStepSize (363), 2
            0x01, 0x6c, 0x00, 0x02, // portRangeNumPorts (364), 2
            0x01, 0x02, 0x00, 0x03, // template 258, 3 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds
            0x00, 0xe6, 0x00, 0x01, // natEvent
            0x01, 0x1b, 0x00, 0x04, // natPoolId (283), 4
            0x01, 0x03, 0x00, 0x04, // template 259, 4 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds
            0x00, 0xe6, 0x00, 0x01, // natEvent
            0x00, 0xe1, 0x00, 0x04, // postNATSourceIPv4Address
            0x00, 0x04, 0x00, 0x01, // protocolIdentifier
            0x01, 0x04, 0x00, 0x05, // template 260, 5 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds
            0x00, 0xe6, 0x00, 0x01, // natEvent
            0x01, 0xd2, 0x00, 0x04, // natQuotaExceededEvent (466), 4
            0x01, 0xd9, 0x00, 0x04, // maxEntriesPerUser (473), 4
            0x00, 0x1b, 0x00, 0x10, // sourceIPv6Address
        ];
        assert_eq!(m, want);
    }

    fn event(i: u16) -> Record {
        Record::Bib {
            time_ms: 1_796_305_501_123,
            event: NAT64_BIB_CREATE,
            v6: "2001:db8::5".parse().unwrap(),
            v4: "203.0.113.8".parse().unwrap(),
            proto: 17,
            port6: 5000 + i,
            port4: 40000 + i,
        }
    }

    /// A data message: header, data set under the template's ID, each record's fields
    /// in the template's order and lengths, network byte order.
    #[test]
    fn a_data_record_is_laid_out_as_its_template_says() {
        let mut x = Exporter::new(1);
        let m = x.data_messages(1000, &[event(1)]).remove(0);
        assert_eq!(m.len(), HEADER_LEN + SET_HEADER_LEN + NAT64_BIB_LEN);
        assert_eq!((be16(&m, 0), be16(&m, 2) as usize), (10, m.len()));
        assert_eq!((be32(&m, 4), be32(&m, 8), be32(&m, 12)), (1000, 0, 1));
        assert_eq!((be16(&m, 16), be16(&m, 18) as usize), (256, SET_HEADER_LEN + NAT64_BIB_LEN));
        let r = &m[20..];
        assert_eq!(u64::from_be_bytes(r[0..8].try_into().unwrap()), 1_796_305_501_123);
        assert_eq!(r[8], 10, "natEvent: NAT64 BIB create");
        assert_eq!(
            Ipv6Addr::from(<[u8; 16]>::try_from(&r[9..25]).unwrap()),
            "2001:db8::5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(&r[25..29], &[203, 0, 113, 8]);
        assert_eq!(r[29], 17);
        assert_eq!((be16(r, 30), be16(r, 32)), (5001, 40001));
    }

    /// Every byte of the other records: a port block allocated, pool4 out of blocks and
    /// of ports, a subscriber over its quota; one data set each, in order.
    #[test]
    fn port_block_limit_and_exhaustion_records_are_laid_out_as_their_templates_say() {
        let t: u64 = 0x0000_01a2_3b4c_5d6e;
        let v6: Ipv6Addr = "2001:db8:1::".parse().unwrap();
        let v4: Ipv4Addr = "203.0.113.8".parse().unwrap();
        let records = [
            Record::Block {
                time_ms: t,
                event: PORT_BLOCK_ALLOCATION,
                v6,
                v6_len: 56,
                v4,
                first: 1536,
                last: 2047,
            },
            Record::AddressesExhausted { time_ms: t },
            Record::PortsExhausted { time_ms: t, v4, proto: 6 },
            Record::Quota { time_ms: t, v6, limit: 2000 },
        ];
        let m = Exporter::new(9).data_messages(5, &records).remove(0);
        let time = [0x00, 0x00, 0x01, 0xa2, 0x3b, 0x4c, 0x5d, 0x6e];
        let sub = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut want: Vec<u8> = vec![0x00, 0x0a, 0x00, 0x82, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9];
        want.extend([0x01, 0x01, 0x00, 0x2a]);
        want.extend(time);
        want.push(16);
        want.extend(sub);
        want.extend([56, 203, 0, 113, 8, 0x06, 0x00, 0x07, 0xff, 0x00, 0x01, 0x02, 0x00]);
        want.extend([0x01, 0x02, 0x00, 0x11]);
        want.extend(time);
        want.extend([3, 0, 0, 0, 1]);
        want.extend([0x01, 0x03, 0x00, 0x12]);
        want.extend(time);
        want.extend([12, 203, 0, 113, 8, 6]);
        want.extend([0x01, 0x04, 0x00, 0x25]);
        want.extend(time);
        want.extend([13, 0, 0, 0, 3, 0, 0, 0x07, 0xd0]);
        want.extend(sub);
        assert_eq!(m, want);
    }

    /// Sequence numbers count the data records sent before each message, messages stay
    /// under the size limit, and nothing is dropped at a boundary.
    #[test]
    fn records_are_split_across_messages_and_counted() {
        let mut x = Exporter::new(1);
        let events: Vec<Record> = (0..100).map(event).collect();
        let msgs = x.data_messages(1, &events);
        assert_eq!(msgs.len(), 3);
        let seqs: Vec<u32> = msgs.iter().map(|m| be32(m, 8)).collect();
        assert_eq!(seqs, vec![0, 40, 80]);
        assert!(msgs.iter().all(|m| m.len() <= MAX_MESSAGE));
        let ports: Vec<u16> = msgs
            .iter()
            .flat_map(|m| m[20..].chunks(NAT64_BIB_LEN).map(|r| be16(r, 32)).collect::<Vec<_>>())
            .collect();
        assert_eq!(ports, (0..100).map(|i| 40000 + i).collect::<Vec<_>>());
        // The next message goes on from there; the template message carries it too.
        assert_eq!(be32(&x.data_messages(1, &events[..1])[0], 8), 100);
        assert_eq!(be32(&x.template_message(1), 8), 101);
    }
}
