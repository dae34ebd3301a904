//! Syslog (RFC 5424) messages for the NAT event log: one message an event, its fields
//! as structured data (what a collector parses) and again as text, over a local
//! datagram socket (`unix:/dev/log`) or UDP (RFC 5426).
//!
//! `<134>1 2026-12-03T13:45:01.123Z router nat64 812 bib-create [nat64@32473
//! instance="plat" protocol="udp" ipv6="2001:db8::5" ipv6-port="5000" ipv4="203.0.113.8"
//! ipv4-port="40001"] bib-create udp [2001:db8::5]:5000 -> 203.0.113.8:40001`

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
};

use anyhow::{Context as _, Result};

use super::record::{BibRecord, rfc3339};
use crate::{config::nat::SyslogTarget, tables::nat::proto_name};

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

    pub fn send(&self, r: &BibRecord) -> io::Result<()> {
        let m = message(&self.host, self.pid, &self.instance, r);
        match &self.to {
            To::Unix(s, p) => s.send_to(m.as_bytes(), p).map(|_| ()),
            To::Udp(s, a) => s.send_to(m.as_bytes(), a).map(|_| ()),
        }
    }
}

/// The message of one event.
pub fn message(host: &str, pid: u32, instance: &str, r: &BibRecord) -> String {
    let event = r.event_name();
    let proto = proto_name(r.proto);
    format!(
        "<{PRI}>1 {} {host} nat64 {pid} {event} [{SD_ID} instance=\"{instance}\" protocol=\"{proto}\" \
         ipv6=\"{}\" ipv6-port=\"{}\" ipv4=\"{}\" ipv4-port=\"{}\"] {event} {proto} {} -> {}",
        rfc3339(r.unix_ns),
        r.v6.ip(),
        r.v6.port(),
        r.v4.ip(),
        r.v4.port(),
        r.v6,
        r.v4,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5424 §6: PRI, version, timestamp, host, app, procid, msgid, structured
    /// data, message; every value what the event holds.
    #[test]
    fn a_message_is_rfc_5424() {
        let r = BibRecord {
            created: true,
            proto: 17,
            v6: "[2001:db8::5]:5000".parse().unwrap(),
            v4: "203.0.113.8:40001".parse().unwrap(),
            unix_ns: 1_796_305_501_123_000_000,
        };
        assert_eq!(
            message("router", 812, "plat", &r),
            "<134>1 2026-12-03T13:45:01.123Z router nat64 812 bib-create [nat64@32473 instance=\"plat\" \
             protocol=\"udp\" ipv6=\"2001:db8::5\" ipv6-port=\"5000\" ipv4=\"203.0.113.8\" ipv4-port=\"40001\"] \
             bib-create udp [2001:db8::5]:5000 -> 203.0.113.8:40001"
        );
        let gone = BibRecord { created: false, proto: 1, ..r };
        let m = message("-", 1, "default", &gone);
        assert!(m.starts_with("<134>1 2026-12-03T13:45:01.123Z - nat64 1 bib-expire [nat64@32473 "), "{m}");
        assert!(m.contains("protocol=\"icmp\""), "{m}");
    }
}
