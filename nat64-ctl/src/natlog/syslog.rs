//! Syslog (RFC 5424) messages for the NAT event log: one message an event, its fields
//! as structured data (what a collector parses) and again as text, over a local
//! datagram socket (`unix:/dev/log`) or UDP (RFC 5426).
//!
//! `<134>1 2026-12-03T13:45:01.123Z router nat64 812 bib-create [nat64@32473
//! instance="plat" protocol="udp" ipv6="2001:db8::5" ipv6-port="5000" ipv4="203.0.113.8"
//! ipv4-port="40001"] bib-create protocol=udp ipv6=2001:db8::5 ipv6-port=5000
//! ipv4=203.0.113.8 ipv4-port=40001`
//!
//! A port block: `block-allocate [nat64@32473 instance="plat" subscriber="2001:db8:1::/56"
//! ipv4="203.0.113.8" ports="1536-2047"]`.

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
};

use anyhow::{Context as _, Result};

use super::record::{NatRecord, rfc3339};
use crate::config::nat::SyslogTarget;

/// Facility local0 (16), severity informational (6): 16 * 8 + 6.
pub const PRI: u8 = 134;
/// The structured data's ID: a private one (`name@enterprise`) under the enterprise
/// number RFC 5612 reserves for documentation, 32473.
pub const SD_ID: &str = "nat64@32473";

enum To {
    Unix(UnixDatagram, PathBuf),
    Udp(UdpSocket, SocketAddr),
}

pub struct Sender {
    to: To,
    host: String,
    instance: String,
    pid: u32,
}

impl Sender {
    pub fn open(target: &SyslogTarget, instance: &str) -> Result<Sender> {
        let to = match target {
            SyslogTarget::Unix(p) => {
                To::Unix(UnixDatagram::unbound().context("nat-log: syslog socket")?, p.clone())
            }
            SyslogTarget::Udp(a) => {
                let local: SocketAddr = if a.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
                To::Udp(UdpSocket::bind(local).with_context(|| format!("nat-log: syslog to {a}"))?, *a)
            }
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "-".into());
        Ok(Sender { to, host, instance: instance.to_string(), pid: std::process::id() })
    }

    pub fn send(&self, r: &NatRecord) -> io::Result<()> {
        let m = message(&self.host, self.pid, &self.instance, r);
        match &self.to {
            To::Unix(s, p) => s.send_to(m.as_bytes(), p).map(|_| ()),
            To::Udp(s, a) => s.send_to(m.as_bytes(), a).map(|_| ()),
        }
    }
}

/// The message of one event: its fields as structured data, then as text.
pub fn message(host: &str, pid: u32, instance: &str, r: &NatRecord) -> String {
    let event = r.event_name();
    // A BIB entry's transport addresses as address and port apart (no brackets for
    // the parser), the other events' fields as the JSON line has them.
    let fields = match r {
        NatRecord::Bib(b) => vec![
            ("protocol", crate::tables::nat::proto_name(b.proto).to_string()),
            ("ipv6", b.v6.ip().to_string()),
            ("ipv6-port", b.v6.port().to_string()),
            ("ipv4", b.v4.ip().to_string()),
            ("ipv4-port", b.v4.port().to_string()),
        ],
        _ => r.fields(),
    };
    // RFC 5424 §6.3.3: '"', '\\' and ']' escaped in a parameter value.
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
    let mut sd = format!("[{SD_ID} instance=\"{}\"", escape(instance));
    let mut text = event.to_string();
    for (k, v) in &fields {
        sd.push_str(&format!(" {k}=\"{}\"", escape(v)));
        text.push_str(&format!(" {k}={v}"));
    }
    sd.push(']');
    format!("<{PRI}>1 {} {host} nat64 {pid} {event} {sd} {text}", rfc3339(r.unix_ns()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5424 §6: PRI, version, timestamp, host, app, procid, msgid, structured
    /// data, message; every value what the event holds.
    #[test]
    fn a_message_is_rfc_5424() {
        use crate::natlog::record::BibRecord;
        let r = NatRecord::Bib(BibRecord {
            created: true,
            proto: 17,
            v6: "[2001:db8::5]:5000".parse().unwrap(),
            v4: "203.0.113.8:40001".parse().unwrap(),
            unix_ns: 1_796_305_501_123_000_000,
        });
        assert_eq!(
            message("router", 812, "plat", &r),
            "<134>1 2026-12-03T13:45:01.123Z router nat64 812 bib-create [nat64@32473 instance=\"plat\" \
             protocol=\"udp\" ipv6=\"2001:db8::5\" ipv6-port=\"5000\" ipv4=\"203.0.113.8\" ipv4-port=\"40001\"] \
             bib-create protocol=udp ipv6=2001:db8::5 ipv6-port=5000 ipv4=203.0.113.8 ipv4-port=40001"
        );
        let NatRecord::Bib(b) = r else { unreachable!() };
        let gone = NatRecord::Bib(BibRecord { created: false, proto: 1, ..b });
        let m = message("-", 1, "default", &gone);
        assert!(m.starts_with("<134>1 2026-12-03T13:45:01.123Z - nat64 1 bib-expire [nat64@32473 "), "{m}");
        assert!(m.contains("protocol=\"icmp\""), "{m}");
        let block = NatRecord::Block {
            allocated: true,
            subscriber: "2001:db8:1::/56".parse().unwrap(),
            v4: "203.0.113.8".parse().unwrap(),
            first: 1536,
            last: 2047,
            unix_ns: 1_796_305_501_123_000_000,
        };
        assert_eq!(
            message("router", 812, "plat", &block),
            "<134>1 2026-12-03T13:45:01.123Z router nat64 812 block-allocate [nat64@32473 instance=\"plat\" \
             subscriber=\"2001:db8:1::/56\" ipv4=\"203.0.113.8\" ports=\"1536-2047\"] \
             block-allocate subscriber=2001:db8:1::/56 ipv4=203.0.113.8 ports=1536-2047"
        );
        let quota = NatRecord::Quota {
            subscriber: "2001:db8:1::/56".parse().unwrap(),
            blocks: true,
            limit: 4,
            unix_ns: 0,
        };
        assert!(message("-", 1, "a\"b]", &quota).contains(
            "quota-exceeded [nat64@32473 instance=\"a\\\"b\\]\" subscriber=\"2001:db8:1::/56\" \
             limit=\"port-blocks\" max=\"4\"]"
        ));
    }
}
