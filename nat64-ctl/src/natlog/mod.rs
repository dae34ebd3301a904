//! The NAT event log (`nat-log`; `bib-log` is one JSON sink), for abuse handling (who
//! held an IPv4 transport address when): BIB entries made and ended or, with dynamic
//! port blocks, blocks taken and given back; and subscribers at their limit and pool4
//! out of ports. The data path reports what it makes, and the sweep program what it
//! ends, through the `NAT_EVENTS` ring buffer; the session events in the same ring go
//! to session sync. No destination is logged (RFC 6888 REQ-12). Each event goes to
//! every sink:
//!
//! - JSON lines: `{"event":"bib-create","ipv4":"203.0.113.8:40001",
//!   "ipv6":"[2001:db8::5]:5000","protocol":"udp","time":"2026-12-03T13:45:01.123Z"}`
//!   (`bib-expire` when ended), to a file or stdout;
//! - IPFIX to a collector ([`ipfix`]): RFC 8158's records, the events of one drain of
//!   the ring in as few messages as fit;
//! - syslog ([`syslog`]): one RFC 5424 message an event.

pub mod ipfix;
pub mod record;
pub mod syslog;

pub use record::{BibRecord, NatRecord, json_line};

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
use aya::maps::{MapData, PerCpuArray, RingBuf};
use log::warn;
use nat64_common::{
    counters::{Counter, CounterValue},
    maps::{MAP_NAT_EVENTS, NatEvent},
};

use crate::config::{
    Prefix6,
    nat::{BibLog, BlockAssign, LogSink, Nat64, PortBlocks, Slot4},
};

/// How often an IPFIX sink sends its template again (RFC 7011 §8.4: over UDP a
/// collector that starts later, or lost the first, learns it then).
pub const TEMPLATE_EVERY: Duration = Duration::from_secs(60);

enum Sink {
    Json(Box<dyn Write + Send>),
    Ipfix {
        socket: UdpSocket,
        to: SocketAddr,
        exporter: ipfix::Exporter,
        pending: Vec<ipfix::Record>,
        template_at: Option<Instant>,
    },
    Syslog(syslog::Sender),
}

/// What turns the data path's events into records: the instance's port blocks and
/// limits.
#[derive(Clone, Debug)]
pub struct Decoder {
    blocks: Option<(PortBlocks, Vec<Slot4>)>,
    subscriber_len: u8,
    max_ports: u32,
}

impl Decoder {
    pub fn of(n: &Nat64) -> Self {
        Self {
            blocks: n.port_blocks.map(|b| (b, n.slots())),
            subscriber_len: n.limits.subscriber_len,
            max_ports: n.limits.max_ports,
        }
    }

    /// The record of a NAT log event; None for another kind (session sync's) or one
    /// that names no block of this instance.
    pub fn record(&self, ev: &NatEvent, unix_ns: u64) -> Option<NatRecord> {
        let subscriber = || {
            Prefix6::new(
                Ipv6Addr::from(nat64_common::nat::cut6(&ev.v6, self.subscriber_len)),
                self.subscriber_len,
            )
            .ok()
        };
        Some(match ev.kind {
            NatEvent::BIB_CREATED | NatEvent::BIB_EXPIRED => NatRecord::Bib(BibRecord {
                created: ev.kind == NatEvent::BIB_CREATED,
                proto: ev.proto,
                v6: SocketAddrV6::new(Ipv6Addr::from(ev.v6), ev.v6_port, 0, 0),
                v4: SocketAddrV4::new(Ipv4Addr::from(ev.v4), ev.v4_port),
                unix_ns,
            }),
            NatEvent::BLOCK_ALLOCATED | NatEvent::BLOCK_RELEASED => {
                let (b, slots) = self.blocks.as_ref()?;
                let (v4, first, last) = b.block(u32::from_be_bytes(ev.v4), slots)?;
                NatRecord::Block {
                    allocated: ev.kind == NatEvent::BLOCK_ALLOCATED,
                    subscriber: subscriber()?,
                    v4,
                    first,
                    last,
                    unix_ns,
                }
            }
            NatEvent::QUOTA_EXCEEDED => {
                let blocks = ev.state == NatEvent::LIMIT_BLOCKS;
                // The limit in ports (maxEntriesPerUser), and whose: a deterministic
                // block is its subnet's.
                let (limit, len) = match self.blocks.as_ref().map(|b| (b.0.size, b.0.assign)) {
                    Some((size, BlockAssign::Dynamic { per_host })) if blocks => {
                        (size * per_host as u32, self.subscriber_len)
                    }
                    Some((size, BlockAssign::Prefix { host_len, .. })) if blocks => (size, host_len),
                    _ => (self.max_ports, self.subscriber_len),
                };
                let cut = nat64_common::nat::cut6(&ev.v6, len);
                NatRecord::Quota {
                    subscriber: Prefix6::new(Ipv6Addr::from(cut), len).ok()?,
                    blocks,
                    limit,
                    unix_ns,
                }
            }
            NatEvent::EXHAUSTED => {
                let v4 = Some(Ipv4Addr::from(ev.v4)).filter(|a| !a.is_unspecified());
                NatRecord::Exhausted { v4, proto: ev.proto, unix_ns }
            }
            _ => return None,
        })
    }
}

/// Every sink of the instance; `flush` after each drain of the ring.
pub struct Sinks {
    sinks: Mutex<Vec<(String, Sink)>>,
    pub decoder: Decoder,
}

impl Sinks {
    /// Opens every sink (a file is appended to, created if need be); None without any.
    pub fn open(list: &[LogSink], instance: &str, decoder: Decoder) -> Result<Option<Sinks>> {
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
        let me = Sinks { sinks: Mutex::new(sinks), decoder };
        // The collectors hear the template before any record.
        me.flush();
        Ok(Some(me))
    }

    /// Hands one event to every sink (IPFIX keeps it for the next [`Sinks::flush`]).
    pub fn write(&self, r: &NatRecord) {
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
    let counters = crate::tables::open_map(dir, nat64_common::maps::MAP_COUNTERS)?;
    let mut lost =
        Lost { counters: PerCpuArray::try_from(counters).context("COUNTERS")?, seen: None, at: None };
    thread::Builder::new()
        .name("nat-log".into())
        .spawn(move || {
            loop {
                if sinks.is_some() {
                    lost.say();
                }
                let mut any = false;
                while let Some(item) = ring.next() {
                    if item.len() < std::mem::size_of::<NatEvent>() {
                        continue;
                    }
                    // SAFETY: the record holds a NatEvent the data path wrote (size checked);
                    // read unaligned from the ring's memory.
                    let ev: NatEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                    if matches!(ev.kind, NatEvent::SESSION_OPENED | NatEvent::SESSION_CHANGED) {
                        if let (Some(q), Some(r)) = (&sync, crate::sync::export::event(&ev)) {
                            q.put(r);
                        }
                        continue;
                    }
                    let Some(sinks) = &sinks else { continue };
                    match sinks.decoder.record(&ev, crate::sys::wall_ns(ev.time)) {
                        Some(r) => sinks.write(&r),
                        None => {
                            warn!("nat-log: an event of kind {} that names nothing of this instance", ev.kind)
                        }
                    }
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

/// `nat_log_lost` as last seen, said when it grows (checked every [`LOST_EVERY`]).
struct Lost {
    counters: PerCpuArray<MapData, CounterValue>,
    seen: Option<u64>,
    at: Option<Instant>,
}

/// How often the reader looks at `nat_log_lost`.
const LOST_EVERY: Duration = Duration::from_secs(10);

impl Lost {
    fn say(&mut self) {
        if self.at.is_some_and(|t| t.elapsed() < LOST_EVERY) {
            return;
        }
        self.at = Some(Instant::now());
        let Ok(v) = self.counters.get(&(Counter::NatLogLost as u32), 0) else { return };
        let now: u64 = v.iter().map(|c| c.packets).sum();
        if self.seen.is_none() && now > 0 {
            warn!("nat-log: {now} events lost since the instance started (counter nat_log_lost)");
        } else if let Some(before) = self.seen
            && now > before
        {
            warn!(
                "nat-log: {} events lost in the last {}s (the ring buffer was full: this reader fell behind the data \
                 path); {now} lost since the instance started (counter nat_log_lost)",
                now - before,
                LOST_EVERY.as_secs()
            );
        }
        self.seen = Some(now);
    }
}

/// Whether an IPFIX sink's template is due.
fn sinks_due(sinks: &Sinks) -> bool {
    let list = sinks.sinks.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().any(|(_, s)| {
        matches!(s, Sink::Ipfix { template_at, .. } if template_at.is_none_or(|t| t.elapsed() >= TEMPLATE_EVERY))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn decoder(extra: &str) -> Decoder {
        let cfg = Config::from_json(&format!(
            r#"{{"interfaces": [{{"name": "eth0", "attach": "xdp"}}], "mode": "nat64", "pool6": "64:ff9b::/96",
            "pool4": [{{"prefix": "203.0.113.8/31"}}], "subscriber-prefix-length": 56{extra}}}"#
        ))
        .unwrap();
        Decoder::of(cfg.nat64.as_ref().unwrap())
    }

    fn event(kind: u8, v6: &str, v4: [u8; 4], state: u8) -> NatEvent {
        let v6: Ipv6Addr = v6.parse().unwrap();
        NatEvent { kind, v6: v6.octets(), v4, state, proto: 6, ..NatEvent::default() }
    }

    /// The data path's events as the sinks get them: a block by its index, a limit in
    /// ports and whose, pool4 out of blocks or of one address's ports; session events
    /// are not the log's.
    #[test]
    fn events_are_decoded_with_the_instances_blocks_and_limits() {
        let d = decoder(r#", "port-block-size": 512, "port-blocks-per-host": 3"#);
        let r =
            d.record(&event(NatEvent::BLOCK_ALLOCATED, "2001:db8:1::", 127u32.to_be_bytes(), 0), 7).unwrap();
        let NatRecord::Block { allocated, subscriber, v4, first, last, unix_ns } = r else { panic!("{r:?}") };
        assert!(allocated);
        assert_eq!(subscriber.to_string(), "2001:db8:1::/56");
        assert_eq!((v4.to_string(), first, last, unix_ns), ("203.0.113.9".into(), 1536, 2047, 7));
        let past = event(NatEvent::BLOCK_RELEASED, "2001:db8:1::", 252u32.to_be_bytes(), 0);
        assert!(d.record(&past, 7).is_none(), "block 252 is past pool4's 252");
        let q =
            d.record(&event(NatEvent::QUOTA_EXCEEDED, "2001:db8:1:2::9", [0; 4], NatEvent::LIMIT_BLOCKS), 7);
        let Some(NatRecord::Quota { subscriber, blocks: true, limit: 1536, .. }) = q else { panic!("{q:?}") };
        assert_eq!(subscriber.to_string(), "2001:db8:1::/56");
        let e = d.record(&event(NatEvent::EXHAUSTED, "::", [0; 4], 0), 7);
        assert!(matches!(e, Some(NatRecord::Exhausted { v4: None, .. })), "{e:?}");
        assert!(d.record(&event(NatEvent::SESSION_OPENED, "::", [0; 4], 0), 7).is_none());

        let fixed = decoder(
            r#", "port-block-size": 2048, "port-block-prefix": "2001:db8:100::/59", "port-block-host-length": 64,
            "max-ports-per-host": 900"#,
        );
        let q = fixed
            .record(&event(NatEvent::QUOTA_EXCEEDED, "2001:db8:100:7::5", [0; 4], NatEvent::LIMIT_BLOCKS), 1);
        let Some(NatRecord::Quota { subscriber, limit: 2048, .. }) = q else { panic!("{q:?}") };
        assert_eq!(subscriber.to_string(), "2001:db8:100:7::/64", "the block's subnet");
        let q = fixed
            .record(&event(NatEvent::QUOTA_EXCEEDED, "2001:db8:100:7::5", [0; 4], NatEvent::LIMIT_PORTS), 1);
        let Some(NatRecord::Quota { subscriber, blocks: false, limit: 900, .. }) = q else { panic!("{q:?}") };
        assert_eq!(subscriber.to_string(), "2001:db8:100::/56", "the subscriber (its /56)");
        let e = fixed.record(&event(NatEvent::EXHAUSTED, "::", [203, 0, 113, 8], 0), 1);
        let Some(r @ NatRecord::Exhausted { v4: Some(a), proto: 6, .. }) = e else { panic!("{e:?}") };
        assert_eq!((a.to_string(), r.event_name()), ("203.0.113.8".into(), "ports-exhausted"));
        assert_eq!(
            json_line(&r),
            r#"{"event":"ports-exhausted","ipv4":"203.0.113.8","protocol":"tcp","time":"1970-01-01T00:00:00.000Z"}"#
        );
    }
}
