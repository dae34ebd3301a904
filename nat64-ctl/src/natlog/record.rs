//! A BIB event as every sink takes it, and the forms two of them share: the JSON
//! line and RFC 3339 time.

use std::net::{SocketAddrV4, SocketAddrV6};

use super::ipfix;
use crate::tables::nat::proto_name;

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

impl BibRecord {
    pub fn event_name(&self) -> &'static str {
        if self.created { "bib-create" } else { "bib-expire" }
    }

    /// The IPFIX record of the event.
    pub fn ipfix(&self) -> ipfix::BibEvent {
        ipfix::BibEvent {
            time_ms: self.unix_ns / 1_000_000,
            event: if self.created { ipfix::NAT64_BIB_CREATE } else { ipfix::NAT64_BIB_DELETE },
            v6: *self.v6.ip(),
            v4: *self.v4.ip(),
            proto: self.proto,
            port6: self.v6.port(),
            port4: self.v4.port(),
        }
    }
}

/// The JSON line of an event (without its newline).
pub fn json_line(r: &BibRecord) -> String {
    serde_json::json!({
        "time": rfc3339(r.unix_ns),
        "event": r.event_name(),
        "protocol": proto_name(r.proto),
        "ipv6": r.v6.to_string(),
        "ipv4": r.v4.to_string(),
    })
    .to_string()
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
