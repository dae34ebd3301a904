//! IPFIX (RFC 7011) messages carrying RFC 8158's NAT64 BIB events, as carriers'
//! collectors take them: a template set describing the record, then data sets of
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
/// The template of the NAT64 BIB record (data set IDs start at 256).
pub const TEMPLATE_NAT64_BIB: u16 = 256;
/// Messages stay within this many bytes, so that a UDP datagram fits a 1500-byte MTU
/// without fragments (RFC 7011 §10.3.3).
pub const MAX_MESSAGE: usize = 1400;

/// RFC 8158's natEvent values (IANA's registry) of the events nat64 exports.
pub const NAT64_BIB_CREATE: u8 = 8;
pub const NAT64_BIB_DELETE: u8 = 9;

/// RFC 8158's NAT64 BIB create/delete record: IANA information element and
/// length of each field, in order. No destination: RFC 6888 REQ-12.
pub const NAT64_BIB_FIELDS: [(u16, u16); 7] = [
    (323, 8), // observationTimeMilliseconds
    (230, 1), // natEvent
    (27, 16), // sourceIPv6Address
    (225, 4), // postNATSourceIPv4Address
    (4, 1),   // protocolIdentifier
    (7, 2),   // sourceTransportPort
    (227, 2), // postNAPTSourceTransportPort
];

/// One record's length: the sum of the template's field lengths.
pub const NAT64_BIB_LEN: usize = 34;

/// A NAT64 BIB entry made or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BibEvent {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// [`NAT64_BIB_CREATE`] or [`NAT64_BIB_DELETE`].
    pub event: u8,
    pub v6: Ipv6Addr,
    pub v4: Ipv4Addr,
    pub proto: u8,
    /// The IPv6 side's port (ICMP: the echo identifier).
    pub port6: u16,
    /// The pool4 side's port (ICMP: the mapped identifier).
    pub port4: u16,
}

impl BibEvent {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.push(self.event);
        out.extend_from_slice(&self.v6.octets());
        out.extend_from_slice(&self.v4.octets());
        out.push(self.proto);
        out.extend_from_slice(&self.port6.to_be_bytes());
        out.extend_from_slice(&self.port4.to_be_bytes());
    }
}

/// The records a message holds at most, with its headers.
pub const RECORDS_PER_MESSAGE: usize = (MAX_MESSAGE - HEADER_LEN - SET_HEADER_LEN) / NAT64_BIB_LEN;

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
        let mut out = Vec::with_capacity(64);
        self.header(&mut out, export_secs);
        let set_len = SET_HEADER_LEN + 4 + 4 * NAT64_BIB_FIELDS.len();
        out.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
        out.extend_from_slice(&(set_len as u16).to_be_bytes());
        out.extend_from_slice(&TEMPLATE_NAT64_BIB.to_be_bytes());
        out.extend_from_slice(&(NAT64_BIB_FIELDS.len() as u16).to_be_bytes());
        for (ie, len) in NAT64_BIB_FIELDS {
            out.extend_from_slice(&ie.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        Self::finish(&mut out);
        out
    }

    /// Data messages holding `records`, [`RECORDS_PER_MESSAGE`] at most each; the
    /// sequence number moves on by the records sent.
    pub fn data_messages(&mut self, export_secs: u32, records: &[BibEvent]) -> Vec<Vec<u8>> {
        records
            .chunks(RECORDS_PER_MESSAGE)
            .map(|chunk| {
                let mut out = Vec::with_capacity(HEADER_LEN + SET_HEADER_LEN + chunk.len() * NAT64_BIB_LEN);
                self.header(&mut out, export_secs);
                out.extend_from_slice(&TEMPLATE_NAT64_BIB.to_be_bytes());
                out.extend_from_slice(&((SET_HEADER_LEN + chunk.len() * NAT64_BIB_LEN) as u16).to_be_bytes());
                for r in chunk {
                    r.put(&mut out);
                }
                Self::finish(&mut out);
                self.sequence = self.sequence.wrapping_add(chunk.len() as u32);
                out
            })
            .collect()
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
    fn the_record_length_is_the_sum_of_the_fields() {
        assert_eq!(NAT64_BIB_FIELDS.iter().map(|f| f.1 as usize).sum::<usize>(), NAT64_BIB_LEN);
        assert_eq!(RECORDS_PER_MESSAGE, 40);
    }

    /// RFC 7011 §3.1 (message header), §3.3.1 (set header), §3.4.1 (template record):
    /// every byte of the template message.
    #[test]
    fn the_template_message_is_rfc_7011s_wire_format() {
        let x = Exporter::new(7);
        let m = x.template_message(0x6571_0000);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x00, 0x0a, 0x00, 0x34, 0x65, 0x71, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 7, // header, 52 bytes
            0x00, 0x02, 0x00, 0x24, // template set, 36 bytes
            0x01, 0x00, 0x00, 0x07, // template 256, 7 fields
            0x01, 0x43, 0x00, 0x08, // observationTimeMilliseconds (323), 8
            0x00, 0xe6, 0x00, 0x01, // natEvent (230), 1
            0x00, 0x1b, 0x00, 0x10, // sourceIPv6Address (27), 16
            0x00, 0xe1, 0x00, 0x04, // postNATSourceIPv4Address (225), 4
            0x00, 0x04, 0x00, 0x01, // protocolIdentifier (4), 1
            0x00, 0x07, 0x00, 0x02, // sourceTransportPort (7), 2
            0x00, 0xe3, 0x00, 0x02, // postNAPTSourceTransportPort (227), 2
        ];
        assert_eq!(m, want);
    }

    fn event(i: u16) -> BibEvent {
        BibEvent {
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
        assert_eq!(r[8], 8);
        assert_eq!(
            Ipv6Addr::from(<[u8; 16]>::try_from(&r[9..25]).unwrap()),
            "2001:db8::5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(&r[25..29], &[203, 0, 113, 8]);
        assert_eq!(r[29], 17);
        assert_eq!((be16(r, 30), be16(r, 32)), (5001, 40001));
    }

    /// Sequence numbers count the data records sent before each message, messages stay
    /// under the size limit, and nothing is dropped at a boundary.
    #[test]
    fn records_are_split_across_messages_and_counted() {
        let mut x = Exporter::new(1);
        let events: Vec<BibEvent> = (0..100).map(event).collect();
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
