//! The NAT event log (`nat-log`; `bib-log` is one JSON sink): BIB entries made and
//! ended, for abuse handling (who held an IPv4 transport address when). The data path
//! reports what it makes, and the sweep program what it ends, through the `NAT_EVENTS`
//! ring buffer; the session events in the same ring go to session sync. No
//! destination is logged (RFC 6888 REQ-12). Each event goes to every sink:
//!
//! - JSON lines: `{"time":"2026-12-03T13:45:01.123Z","event":"bib-create",
//!   "protocol":"udp","ipv6":"[2001:db8::5]:5000","ipv4":"203.0.113.8:40001"}`
//!   (`bib-expire` when ended), to a file or stdout;
//! - IPFIX to a collector ([`ipfix`]): RFC 8158's NAT64 BIB create and delete records,
//!   the events of one drain of the ring in as few messages as fit;
//! - syslog ([`syslog`]): one RFC 5424 message an event.

pub mod ipfix;
pub mod record;
pub mod syslog;

pub use record::{BibRecord, json_line};

use std::{
    io::Write,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd as _,
    path::Path,
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use log::warn;
use nat64_common::maps::{MAP_NAT_EVENTS, NatEvent};

use crate::config::nat::{BibLog, LogSink};

/// How often an IPFIX sink sends its template again (RFC 7011 §8.4: over UDP a
/// collector that starts later, or lost the first, learns it then).
pub const TEMPLATE_EVERY: Duration = Duration::from_secs(60);

enum Sink {
    Json(Box<dyn Write + Send>),
    Ipfix {
        socket: UdpSocket,
        to: SocketAddr,
        exporter: ipfix::Exporter,
        pending: Vec<ipfix::BibEvent>,
        template_at: Option<Instant>,
    },
    Syslog(syslog::Sender),
}

/// Every sink of the instance; `flush` after each drain of the ring.
pub struct Sinks {
    sinks: Mutex<Vec<(String, Sink)>>,
}

impl Sinks {
    /// Opens every sink (a file is appended to, created if need be); None without any.
    pub fn open(list: &[LogSink], instance: &str) -> Result<Option<Sinks>> {
        if list.is_empty() {
            return Ok(None);
        }
        let mut sinks = Vec::new();
        for s in list {
            let sink = match s {
                LogSink::Json(BibLog::Stdout) => Sink::Json(Box::new(std::io::stdout())),
                LogSink::Json(BibLog::File(p)) => Sink::Json(Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .with_context(|| format!("nat-log: opening {}", p.display()))?,
                )),
                LogSink::Ipfix(to) => {
                    let local: SocketAddr =
                        if to.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
                    let socket = UdpSocket::bind(local).with_context(|| format!("nat-log: ipfix to {to}"))?;
                    Sink::Ipfix {
                        socket,
                        to: *to,
                        exporter: ipfix::Exporter::new(ipfix::domain_of(instance)),
                        pending: Vec::new(),
                        template_at: None,
                    }
                }
                LogSink::Syslog(t) => Sink::Syslog(syslog::Sender::open(t, instance)?),
            };
            sinks.push((s.to_string(), sink));
        }
        let me = Sinks { sinks: Mutex::new(sinks) };
        // The collectors hear the template before any record.
        me.flush();
        Ok(Some(me))
    }

    /// Hands one event to every sink (IPFIX keeps it for the next [`Sinks::flush`]).
    pub fn write(&self, r: &BibRecord) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for (name, sink) in sinks.iter_mut() {
            let result = match sink {
                Sink::Json(out) => writeln!(out, "{}", json_line(r)).and_then(|_| out.flush()),
                Sink::Ipfix { pending, .. } => {
                    pending.push(r.ipfix());
                    Ok(())
                }
                Sink::Syslog(s) => s.send(r),
            };
            if let Err(e) = result {
                warn!("nat-log: {name}: {e}");
            }
        }
    }

    /// Sends what the IPFIX sinks hold, with the template first when it is due.
    pub fn flush(&self) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let now = crate::sys::unix_now() as u32;
        for (name, sink) in sinks.iter_mut() {
            let Sink::Ipfix { socket, to, exporter, pending, template_at } = sink else { continue };
            let mut msgs = Vec::new();
            if template_at.is_none_or(|t| t.elapsed() >= TEMPLATE_EVERY) {
                msgs.push(exporter.template_message(now));
                *template_at = Some(Instant::now());
            }
            msgs.extend(exporter.data_messages(now, pending));
            let records = pending.len();
            pending.clear();
            for m in msgs {
                if let Err(e) = socket.send_to(&m, *to) {
                    warn!("nat-log: {name}: {e} ({records} records in this round)");
                    break;
                }
            }
        }
    }
}

/// Reads the data path's events from the ring buffer pinned under `dir`, in a thread
/// of its own, for as long as the process runs: BIB events to `sinks` (`nat-log`),
/// session events to `sync` (session sync's queue to the peers).
pub fn reader(dir: &Path, sinks: Option<Sinks>, sync: Option<crate::sync::node::EventSink>) -> Result<()> {
    let map = crate::tables::open_map(dir, MAP_NAT_EVENTS)?;
    let mut ring: RingBuf<MapData> = RingBuf::try_from(map).context("NAT_EVENTS is not a ring buffer")?;
    thread::Builder::new()
        .name("nat-log".into())
        .spawn(move || {
            loop {
                let mut any = false;
                while let Some(item) = ring.next() {
                    if item.len() < std::mem::size_of::<NatEvent>() {
                        continue;
                    }
                    // SAFETY: the record holds a NatEvent the data path wrote (size checked);
                    // read unaligned from the ring's memory.
                    let ev: NatEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                    let created = match ev.kind {
                        NatEvent::BIB_CREATED => true,
                        NatEvent::BIB_EXPIRED => false,
                        _ => {
                            if let (Some(q), Some(r)) = (&sync, crate::sync::export::event(&ev)) {
                                q.put(r);
                            }
                            continue;
                        }
                    };
                    let Some(sinks) = &sinks else { continue };
                    sinks.write(&BibRecord {
                        created,
                        proto: ev.proto,
                        v6: SocketAddrV6::new(Ipv6Addr::from(ev.v6), ev.v6_port, 0, 0),
                        v4: SocketAddrV4::new(Ipv4Addr::from(ev.v4), ev.v4_port),
                        unix_ns: wall_ns(ev.time),
                    });
                    any = true;
                }
                if let Some(sinks) = &sinks {
                    // Records go out when the ring is drained, and the template when due.
                    if any || sinks_due(sinks) {
                        sinks.flush();
                    }
                }
                let mut fd = libc::pollfd { fd: ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one pollfd we own; a timeout so that the template goes out on time.
                unsafe { libc::poll(&mut fd, 1, 1000) };
            }
        })
        .map(|_| ())
        .context("starting the NAT event reader thread")
}

/// Whether an IPFIX sink's template is due.
fn sinks_due(sinks: &Sinks) -> bool {
    let list = sinks.sinks.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().any(|(_, s)| {
        matches!(s, Sink::Ipfix { template_at, .. } if template_at.is_none_or(|t| t.elapsed() >= TEMPLATE_EVERY))
    })
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
