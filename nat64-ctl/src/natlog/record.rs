//! A NAT event as every sink takes it, and the forms two of them share: the JSON line
//! and RFC 3339 time.

use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};

use super::ipfix;
use crate::{config::Prefix6, tables::nat::proto_name};

/// A BIB entry made or ended, as the sinks take it.
#[derive(Clone, Copy, Debug)]
pub struct BibRecord {
    pub created: bool,
    pub proto: u8,
    pub v6: SocketAddrV6,
    pub v4: SocketAddrV4,
    /// Unix time, ns.
    pub unix_ns: u64,
}

/// One event of the NAT log.
#[derive(Clone, Copy, Debug)]
pub enum NatRecord {
    Bib(BibRecord),
    /// A dynamic port block taken (`allocated`) or given back by a subscriber.
    Block {
        allocated: bool,
        subscriber: Prefix6,
        v4: Ipv4Addr,
        first: u16,
        last: u16,
        unix_ns: u64,
    },
    /// A subscriber refused a mapping at its limit of `limit` ports: BIB entries
    /// (`max-ports-per-host`) or, `blocks`, the ports of the blocks it may hold.
    Quota {
        subscriber: Prefix6,
        blocks: bool,
        limit: u32,
        unix_ns: u64,
    },
    /// Pool4 out of ports: on `v4` for `proto`, or (None) out of dynamic port blocks.
    Exhausted {
        v4: Option<Ipv4Addr>,
        proto: u8,
        unix_ns: u64,
    },
}

impl NatRecord {
    /// The event's name in the JSON and syslog forms.
    pub fn event_name(&self) -> &'static str {
        match self {
            NatRecord::Bib(b) if b.created => "bib-create",
            NatRecord::Bib(_) => "bib-expire",
            NatRecord::Block { allocated: true, .. } => "block-allocate",
            NatRecord::Block { .. } => "block-release",
            NatRecord::Quota { .. } => "quota-exceeded",
            NatRecord::Exhausted { v4: Some(_), .. } => "ports-exhausted",
            NatRecord::Exhausted { .. } => "addresses-exhausted",
        }
    }

    pub fn unix_ns(&self) -> u64 {
        match *self {
            NatRecord::Bib(b) => b.unix_ns,
            NatRecord::Block { unix_ns, .. }
            | NatRecord::Quota { unix_ns, .. }
            | NatRecord::Exhausted { unix_ns, .. } => unix_ns,
        }
    }

    /// The IPFIX record of the event (RFC 8158).
    pub fn ipfix(&self) -> ipfix::Record {
        let time_ms = self.unix_ns() / 1_000_000;
        match *self {
            NatRecord::Bib(r) => ipfix::Record::Bib {
                time_ms,
                event: if r.created { ipfix::NAT64_BIB_CREATE } else { ipfix::NAT64_BIB_DELETE },
                v6: *r.v6.ip(),
                v4: *r.v4.ip(),
                proto: r.proto,
                port6: r.v6.port(),
                port4: r.v4.port(),
            },
            NatRecord::Block { allocated, subscriber, v4, first, last, .. } => ipfix::Record::Block {
                time_ms,
                event: if allocated { ipfix::PORT_BLOCK_ALLOCATION } else { ipfix::PORT_BLOCK_DEALLOCATION },
                v6: subscriber.addr(),
                v6_len: subscriber.prefix_len(),
                v4,
                first,
                last,
            },
            NatRecord::Quota { subscriber, limit, .. } => {
                ipfix::Record::Quota { time_ms, v6: subscriber.addr(), limit }
            }
            NatRecord::Exhausted { v4: Some(v4), proto, .. } => {
                ipfix::Record::PortsExhausted { time_ms, v4, proto }
            }
            NatRecord::Exhausted { v4: None, .. } => ipfix::Record::AddressesExhausted { time_ms },
        }
    }

    /// The event's fields as (name, value) pairs, in order: the JSON line's and the
    /// syslog structured data's.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match *self {
            NatRecord::Bib(r) => vec![
                ("protocol", proto_name(r.proto).to_string()),
                ("ipv6", r.v6.to_string()),
                ("ipv4", r.v4.to_string()),
            ],
            NatRecord::Block { subscriber, v4, first, last, .. } => vec![
                ("subscriber", subscriber.to_string()),
                ("ipv4", v4.to_string()),
                ("ports", format!("{first}-{last}")),
            ],
            NatRecord::Quota { subscriber, blocks, limit, .. } => vec![
                ("subscriber", subscriber.to_string()),
                ("limit", if blocks { "port-blocks" } else { "max-ports-per-host" }.to_string()),
                ("max", limit.to_string()),
            ],
            NatRecord::Exhausted { v4: Some(v4), proto, .. } => {
                vec![("protocol", proto_name(proto).to_string()), ("ipv4", v4.to_string())]
            }
            NatRecord::Exhausted { v4: None, .. } => vec![],
        }
    }
}

/// The JSON line of an event (without its newline).
pub fn json_line(r: &NatRecord) -> String {
    let mut m = serde_json::Map::new();
    m.insert("time".into(), rfc3339(r.unix_ns()).into());
    m.insert("event".into(), r.event_name().into());
    for (k, v) in r.fields() {
        m.insert(k.into(), v.into());
    }
    serde_json::Value::Object(m).to_string()
}

/// Unix-time ns as RFC 3339 UTC with milliseconds.
pub fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let ms = unix_ns / 1_000_000 % 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, era arithmetic).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_305_501_123_000_000), "2026-12-03T13:45:01.123Z");
        assert_eq!(rfc3339(4_107_542_399_999_000_000), "2100-02-28T23:59:59.999Z");
    }
}
