//! `bib-log`: BIB entries made and ended, one JSON line each, for abuse handling (who
//! held an IPv4 transport address when). The data path reports what it makes, and the
//! sweep program what it ends, through the `NAT_EVENTS` ring buffer; the session
//! events in the same ring go to session sync.
//!
//! A line: `{"time":"2026-12-03T13:45:01.123Z","event":"bib-create","protocol":"udp",
//! "ipv6":"[2001:db8::5]:5000","ipv4":"203.0.113.8:40001"}` (`bib-expire` when ended).

use std::{
    io::Write,
    net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd as _,
    path::Path,
    sync::{Arc, Mutex},
    thread,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use log::warn;
use nat64_common::maps::{MAP_NAT_EVENTS, NatEvent};

use crate::{config::nat::BibLog, tables::nat::proto_name};

/// Where the lines go.
pub struct Sink {
    out: Mutex<Box<dyn Write + Send>>,
}

pub type Shared = Arc<Sink>;

impl Sink {
    /// Opens the target (a file is appended to, created if need be).
    pub fn open(target: &BibLog) -> Result<Shared> {
        let out: Box<dyn Write + Send> = match target {
            BibLog::Stdout => Box::new(std::io::stdout()),
            BibLog::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("bib-log: opening {}", p.display()))?,
            ),
        };
        Ok(Arc::new(Self { out: Mutex::new(out) }))
    }

    /// Writes one event (`boot_ns`: when, on the boot-time clock the data path uses).
    pub fn write(&self, event: &str, proto: u8, v6: SocketAddrV6, v4: SocketAddrV4, boot_ns: u64) {
        let line = serde_json::json!({
            "time": rfc3339(wall_ns(boot_ns)),
            "event": event,
            "protocol": proto_name(proto),
            "ipv6": v6.to_string(),
            "ipv4": v4.to_string(),
        });
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            warn!("bib-log: {e}");
        }
    }
}

/// Reads the data path's events from the ring buffer pinned under `dir`, in a thread
/// of its own, for as long as the process runs: BIB events to `sink` (`bib-log`),
/// session events to `sync` (session sync's queue to the peers).
pub fn reader(dir: &Path, sink: Option<Shared>, sync: Option<crate::sync::node::EventSink>) -> Result<()> {
    let map = crate::tables::open_map(dir, MAP_NAT_EVENTS)?;
    let mut ring: RingBuf<MapData> = RingBuf::try_from(map).context("NAT_EVENTS is not a ring buffer")?;
    thread::Builder::new()
        .name("nat-log".into())
        .spawn(move || {
            loop {
                while let Some(item) = ring.next() {
                    if item.len() < std::mem::size_of::<NatEvent>() {
                        continue;
                    }
                    // SAFETY: the record holds a NatEvent the data path wrote (size checked);
                    // read unaligned from the ring's memory.
                    let ev: NatEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                    let event = match ev.kind {
                        NatEvent::BIB_CREATED => "bib-create",
                        NatEvent::BIB_EXPIRED => "bib-expire",
                        _ => {
                            if let (Some(q), Some(r)) = (&sync, crate::sync::export::event(&ev)) {
                                q.put(r);
                            }
                            continue;
                        }
                    };
                    let Some(sink) = &sink else { continue };
                    let v6 = SocketAddrV6::new(Ipv6Addr::from(ev.v6), ev.v6_port, 0, 0);
                    let v4 = SocketAddrV4::new(Ipv4Addr::from(ev.v4), ev.v4_port);
                    sink.write(event, ev.proto, v6, v4, ev.time);
                }
                let mut fd = libc::pollfd { fd: ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one pollfd we own; a timeout so that nothing waits for ever.
                unsafe { libc::poll(&mut fd, 1, 1000) };
            }
        })
        .map(|_| ())
        .context("starting the NAT event reader thread")
}

/// Boot-time ns as Unix-time ns, by the two clocks' offset now.
fn wall_ns(boot_ns: u64) -> u64 {
    let now_boot = crate::sys::boot_ns();
    let now_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    now_wall.saturating_sub(now_boot.saturating_sub(boot_ns))
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
