//! The running side of session sync: one UDP socket on `sync.listen`, and threads that
//!
//! - send this node's session events (from the data path, through the ring buffer
//!   `natlog` reads) to every peer, many to a datagram, from a bounded queue;
//! - send every session again, paced, once a refresh period (a peer's copy lives as long
//!   as the session here: its lifetime moves on in these batches, not per packet);
//! - take the peers' datagrams: authenticated, checked for replay, then imported
//!   ([`super::import`]); a peer asking for a bulk copy gets every session;
//! - count all of it in the `sync_*` counters and report the peers in a status file.

use std::{
    collections::HashSet,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData};
use log::{info, warn};
use nat64_common::{
    counters::Counter,
    maps::{MAP_NAT_ADDRS, NAT_ADDR_PEER},
};

use super::{
    export,
    import::Importer,
    replay::Replay,
    wire::{
        self, FLAG_LAST, KIND_BULK, KIND_BULK_REQUEST, KIND_EVENTS, KIND_HELLO, MAX_RECORDS, Message,
        SessionRecord,
    },
};
use crate::{config::sync::Sync as SyncConfig, sys, tables::Tables};

/// Session events waiting to be sent: some 2.6 MB at most. A full queue drops the
/// event (counted, logged); the session reaches the peers with the next refresh.
pub const QUEUE: usize = 65_536;
/// How long an event may wait for others to fill its datagram.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// How often a node greets its peers (their "last contact") and writes its report.
const TICK: Duration = Duration::from_secs(1);
/// How often the counts reach the counters map.
const FLUSH: Duration = Duration::from_millis(250);
/// Datagrams a second a refresh or a bulk copy sends at most (some 580,000 sessions a
/// second), so that a walk of the whole table does not overrun the peer.
const PACE: u32 = 20_000;
/// The socket's receive buffer: bursts of some 7,000 datagrams wait in it.
const RCVBUF: libc::c_int = 8 << 20;
/// How long a starting node waits for a peer to begin its bulk copy.
pub const BULK_ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How long a bulk copy that has begun may take to end.
pub const BULK_WAIT: Duration = Duration::from_secs(120);

/// A map update's flag: only if the key is not there.
const BPF_NOEXIST: u64 = 1;

/// The counts, as the threads make them; [`Counts::flush`] adds them to the counters.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    records_sent: AtomicU64,
    /// Shared with the [`EventSink`] that counts them.
    dropped: Arc<AtomicU64>,
    accepted: AtomicU64,
    refused_auth: AtomicU64,
    malformed: AtomicU64,
    replayed: AtomicU64,
    made: AtomicU64,
    refreshed: AtomicU64,
    conflict: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
}

impl Counts {
    fn each(&self) -> [(Counter, &AtomicU64); 11] {
        [
            (Counter::SyncMessagesSent, &self.sent),
            (Counter::SyncRecordsSent, &self.records_sent),
            (Counter::SyncEventsDropped, &*self.dropped),
            (Counter::SyncMessagesAccepted, &self.accepted),
            (Counter::SyncRefusedAuth, &self.refused_auth),
            (Counter::SyncMalformed, &self.malformed),
            (Counter::SyncReplayed, &self.replayed),
            (Counter::SyncSessionsMade, &self.made),
            (Counter::SyncSessionsRefreshed, &self.refreshed),
            (Counter::SyncSessionsConflict, &self.conflict),
            (Counter::SyncSessionsFailed, &self.failed),
        ]
    }

    /// Adds what was counted since the last flush (`done`) to the counters map.
    fn flush(&self, tables: &mut Tables, done: &mut [u64; 11]) {
        for (i, (c, v)) in self.each().into_iter().enumerate() {
            let now = v.load(Relaxed);
            if now > done[i] {
                match tables.add_event(c, now - done[i], 0) {
                    Ok(()) => done[i] = now,
                    Err(e) => log::debug!("sync: {e:#}"),
                }
            }
        }
    }
}

/// What this node knows of one peer.
#[derive(Default)]
struct Peer {
    replay: Replay,
    /// When its last accepted datagram came (Unix ms; 0: never).
    last_ms: u64,
    /// How old it was then, by the two nodes' clocks.
    lag_ms: i64,
    accepted: u64,
    records: u64,
    /// Its bulk copy to this node ended (a datagram with [`FLAG_LAST`]).
    bulk_done: bool,
    /// Datagrams lost on the way: sequence numbers skipped and not (yet) arrived.
    missing: u64,
}

struct Shared {
    cfg: SyncConfig,
    socket: UdpSocket,
    node: u32,
    epoch: u64,
    /// The last sequence number sent, held while a datagram is sealed and sent: the
    /// threads that send (events, refreshes, bulk copies) put their datagrams on the
    /// wire in sequence order, which the peer's replay window needs.
    seq: Mutex<u64>,
    counts: Counts,
    peers: Mutex<Vec<Peer>>,
    /// The peers' datagrams are imported (set when this node asks for its bulk copy).
    ready: AtomicBool,
    dir: PathBuf,
    report: PathBuf,
    refresh: Duration,
}

impl Shared {
    /// Seals `records` (at most [`MAX_RECORDS`]) and sends them to `to`.
    fn send(&self, to: &[SocketAddr], kind: u8, flags: u32, records: Vec<SessionRecord>) {
        let n = records.len() as u64;
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        let m = Message {
            kind,
            node: self.node,
            flags,
            epoch: self.epoch,
            seq: *seq,
            time_ms: sys::unix_now_ms(),
            records,
        };
        let d = wire::seal(&self.cfg.key, &m);
        for a in to {
            match self.socket.send_to(&d, a) {
                Ok(_) => {
                    self.counts.sent.fetch_add(1, Relaxed);
                    self.counts.records_sent.fetch_add(n, Relaxed);
                }
                // Unreachable now (the peer down): its bulk copy mends this later.
                Err(e) => log::debug!("sync: to {a}: {e}"),
            }
        }
    }

    /// Sends every live session to `to` as `kind`, paced; a bulk copy's last datagram
    /// says so ([`FLAG_LAST`], sent even when there is no session).
    fn send_all(&self, to: &[SocketAddr], kind: u8) -> Result<u64> {
        let tables = Tables::open_pinned(&self.dir)?;
        let nat = tables.nat.as_ref().context("no NAT tables pinned")?;
        let (mut batch, mut total, mut sent) = (Vec::with_capacity(MAX_RECORDS), 0u64, 0u32);
        let started = Instant::now();
        export::walk(nat, sys::boot_ns(), |r| {
            batch.push(r);
            if batch.len() == MAX_RECORDS {
                total += batch.len() as u64;
                self.send(to, kind, 0, std::mem::replace(&mut batch, Vec::with_capacity(MAX_RECORDS)));
                sent += 1;
                pace(started, sent);
            }
        });
        total += batch.len() as u64;
        let last = if kind == KIND_BULK { FLAG_LAST } else { 0 };
        if !batch.is_empty() || last != 0 {
            self.send(to, kind, last, batch);
        }
        Ok(total)
    }
}

/// Sleeps as long as sending `sent` datagrams since `started` at [`PACE`] a second
/// takes beyond the time already gone.
fn pace(started: Instant, sent: u32) {
    let due = Duration::from_secs(1) * sent / PACE;
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        thread::sleep(wait);
    }
}

/// How often every session is sent again: a third of the shortest lifetime a session
/// can be given (so that a peer's copy outlives two lost refreshes), from 2 to 30 s.
pub fn refresh_every(t: &nat64_common::nat::Timeouts) -> Duration {
    let shortest = t.udp.min(t.icmp).min(t.tcp_transitory);
    Duration::from_secs(u64::from(shortest / 3).clamp(2, 30))
}

/// A running sync node.
pub struct Node {
    shared: Arc<Shared>,
}

impl Node {
    /// Binds `sync.listen` and starts the threads; the peers' datagrams are taken but
    /// not imported before [`Node::bulk_copy`]. `events`: the data path's session
    /// events, from the ring buffer's reader. `refresh`: how often every session is
    /// sent again.
    pub fn start(
        cfg: &SyncConfig,
        dir: &Path,
        importer: Importer,
        events: Events,
        refresh: Duration,
        report: PathBuf,
    ) -> Result<Self> {
        let socket =
            UdpSocket::bind(cfg.listen).with_context(|| format!("sync.listen: binding {}", cfg.listen))?;
        // SAFETY: a socket option of our socket, an int's worth. Root may go past
        // rmem_max (SO_RCVBUFFORCE); if refused the default stays, logged.
        let size = RCVBUF;
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            warn!("sync: the receive buffer stays the kernel's default: {}", std::io::Error::last_os_error());
        }
        socket.set_read_timeout(Some(TICK)).context("sync socket")?;
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            socket,
            node: rand_u32(),
            epoch: sys::unix_now_ms() * 1_000_000 + u64::from(std::process::id() % 1000),
            seq: Mutex::new(0),
            counts: Counts { dropped: events.dropped.clone(), ..Counts::default() },
            peers: Mutex::new(cfg.peers.iter().map(|_| Peer::default()).collect()),
            ready: AtomicBool::new(false),
            dir: dir.to_path_buf(),
            report,
            refresh,
        });
        let addrs = HashMap::try_from(crate::tables::open_map(dir, MAP_NAT_ADDRS)?)?;
        let s = shared.clone();
        spawn("sync-recv", move || receiver(&s, importer, addrs))?;
        let s = shared.clone();
        let tables = Tables::open_pinned(dir)?;
        spawn("sync-send", move || sender(&s, &events.rx, tables))?;
        let s = shared.clone();
        spawn("sync-refresh", move || {
            loop {
                thread::sleep(s.refresh);
                let t = Instant::now();
                match s.send_all(&s.cfg.peers, KIND_EVENTS) {
                    Ok(n) => {
                        log::debug!("sync: refreshed {n} sessions in {:.1} s", t.elapsed().as_secs_f64())
                    }
                    Err(e) => warn!("sync: refresh: {e:#}"),
                }
            }
        })?;
        info!(
            "sync: listening on {}, peers {}",
            cfg.listen,
            cfg.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        Ok(Self { shared })
    }

    /// Asks every peer for its sessions and waits for the first whole copy (or, when
    /// no peer answers in [`BULK_ANSWER_WAIT`], goes on without: the first node up).
    /// From now on the peers' datagrams are imported.
    pub fn bulk_copy(&self) {
        let s = &self.shared;
        s.ready.store(true, Relaxed);
        s.send(&s.cfg.peers, KIND_BULK_REQUEST, 0, Vec::new());
        let started = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(20));
            let (done, begun) = {
                let peers = s.peers.lock().unwrap_or_else(|e| e.into_inner());
                (peers.iter().any(|p| p.bulk_done), peers.iter().any(|p| p.records > 0))
            };
            if done {
                info!(
                    "sync: bulk copy from a peer in {:.1} s ({} sessions made)",
                    started.elapsed().as_secs_f64(),
                    s.counts.made.load(Relaxed)
                );
                return;
            }
            let limit = if begun { BULK_WAIT } else { BULK_ANSWER_WAIT };
            if started.elapsed() >= limit {
                warn!(
                    "sync: no whole bulk copy from a peer in {} s; taking traffic with the sessions this node holds",
                    limit.as_secs()
                );
                return;
            }
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    thread::Builder::new().name(name.into()).spawn(f).map(|_| ()).with_context(|| format!("starting {name}"))
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: a buffer of ours, its length given.
    let _ = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    u32::from_ne_bytes(b)
}

/// The queue from the ring buffer's reader to the sender: its two ends.
pub fn queue() -> (EventSink, Events) {
    let (tx, rx) = sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (EventSink { tx, dropped: dropped.clone(), last_log: Mutex::new(None) }, Events { rx, dropped })
}

/// The sender's end of [`queue`].
pub struct Events {
    rx: Receiver<SessionRecord>,
    dropped: Arc<AtomicU64>,
}

/// Where the ring buffer's reader puts session events.
pub struct EventSink {
    tx: SyncSender<SessionRecord>,
    dropped: Arc<AtomicU64>,
    last_log: Mutex<Option<Instant>>,
}

impl EventSink {
    /// Queues `r` for the peers; a full queue drops it, counted (and said in the log
    /// at most every 10 s).
    pub fn put(&self, r: SessionRecord) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(r) {
            let n = self.dropped.fetch_add(1, Relaxed) + 1;
            let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                warn!(
                    "sync: the queue to the peers is full: {n} session events dropped so far (the next refresh sends them)"
                );
            }
        }
    }
}

fn sender(s: &Shared, events: &Receiver<SessionRecord>, mut tables: Tables) {
    let mut batch: Vec<SessionRecord> = Vec::with_capacity(MAX_RECORDS);
    let mut first: Option<Instant> = None;
    let mut next_tick = Instant::now();
    let mut next_flush = Instant::now();
    let mut done = [0u64; 11];
    loop {
        let deadline = first.map_or(next_flush, |f| (f + BATCH_WAIT).min(next_flush));
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                batch.push(r);
                first.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if batch.len() == MAX_RECORDS || first.is_some_and(|f| f.elapsed() >= BATCH_WAIT) {
            s.send(
                &s.cfg.peers,
                KIND_EVENTS,
                0,
                std::mem::replace(&mut batch, Vec::with_capacity(MAX_RECORDS)),
            );
            first = None;
        }
        if Instant::now() >= next_flush {
            next_flush = Instant::now() + FLUSH;
            s.counts.flush(&mut tables, &mut done);
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            s.send(&s.cfg.peers, KIND_HELLO, 0, Vec::new());
            write_report(s);
        }
    }
}

fn receiver(s: &Arc<Shared>, mut importer: Importer, mut addrs: HashMap<MapData, [u8; 4], u32>) {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
    let mut known: HashSet<[u8; 4]> = HashSet::new();
    loop {
        let (n, from) = match s.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) => {
                warn!("sync: receiving: {e}");
                thread::sleep(TICK);
                continue;
            }
        };
        let Some(i) = s.cfg.peers.iter().position(|p| *p == from) else {
            s.counts.refused_auth.fetch_add(1, Relaxed);
            log::debug!("sync: a datagram from {from}, not a peer");
            continue;
        };
        let m = match wire::open(&s.cfg.key, &buf[..n]) {
            Ok(m) => m,
            Err(wire::Refusal::Unauthenticated) => {
                s.counts.refused_auth.fetch_add(1, Relaxed);
                continue;
            }
            Err(e) => {
                s.counts.malformed.fetch_add(1, Relaxed);
                log::debug!("sync: from {from}: {e}");
                continue;
            }
        };
        {
            let mut peers = s.peers.lock().unwrap_or_else(|e| e.into_inner());
            let p = &mut peers[i];
            let (before_top, before_epoch) = (p.replay.top(), p.replay.epoch());
            if !p.replay.accept(m.epoch, m.seq) {
                s.counts.replayed.fetch_add(1, Relaxed);
                continue;
            }
            if m.epoch != before_epoch {
                p.missing = 0;
                p.bulk_done = false;
            } else if m.seq > before_top {
                p.missing += m.seq - before_top - 1;
            } else {
                p.missing = p.missing.saturating_sub(1);
            }
            let now = sys::unix_now_ms();
            p.last_ms = now;
            p.lag_ms = now as i64 - m.time_ms as i64;
            p.accepted += 1;
            p.records += m.records.len() as u64;
        }
        s.counts.accepted.fetch_add(1, Relaxed);
        s.counts.received.fetch_add(m.records.len() as u64, Relaxed);
        match m.kind {
            KIND_BULK_REQUEST => {
                let (s, to) = (s.clone(), from);
                let _ = spawn("sync-bulk", move || match s.send_all(&[to], KIND_BULK) {
                    Ok(n) => info!("sync: bulk copy of {n} sessions sent to {to}"),
                    Err(e) => warn!("sync: bulk copy to {to}: {e:#}"),
                });
            }
            KIND_EVENTS | KIND_BULK if s.ready.load(Relaxed) => {
                learn_addresses(&m.records, &mut known, &mut addrs);
                match importer.import(&m.records, None) {
                    Ok(d) => {
                        s.counts.made.fetch_add(d.made, Relaxed);
                        s.counts.refreshed.fetch_add(d.refreshed + d.ended, Relaxed);
                        s.counts.conflict.fetch_add(d.conflicts, Relaxed);
                        s.counts.failed.fetch_add(d.failed, Relaxed);
                    }
                    Err(e) => warn!("sync: importing from {from}: {e:#}"),
                }
                if m.kind == KIND_BULK && m.flags & FLAG_LAST != 0 {
                    s.peers.lock().unwrap_or_else(|e| e.into_inner())[i].bulk_done = true;
                }
            }
            // A greeting (its last contact noted above), or sessions sent before this
            // node asked for its bulk copy, which brings them.
            _ => {}
        }
    }
}

/// Active/active: a peer's pool4 addresses become this node's too (marked as the
/// peer's, [`NAT_ADDR_PEER`]), so that the IPv4 packets of the peer's flows that
/// routing moves here are translated by the sessions taken over.
fn learn_addresses(
    records: &[SessionRecord],
    known: &mut HashSet<[u8; 4]>,
    addrs: &mut HashMap<MapData, [u8; 4], u32>,
) {
    for r in records {
        let a = r.v4.octets();
        if known.contains(&a) {
            continue;
        }
        if addrs.get(&a, 0).is_err() {
            match addrs.insert(a, NAT_ADDR_PEER, BPF_NOEXIST) {
                Ok(()) => info!("sync: taking over the peers' pool4 address {}", r.v4),
                Err(e) => {
                    warn!("sync: adding the peers' pool4 address {}: {e}", r.v4);
                    continue;
                }
            }
        }
        known.insert(a);
    }
}

/// Where the sync of `instance` reports its peers.
pub fn sync_report(instance: &str) -> PathBuf {
    crate::load::status_file(instance).with_extension("sync.json")
}

fn write_report(s: &Shared) {
    let now = sys::unix_now_ms();
    let peers: Vec<serde_json::Value> = {
        let peers = s.peers.lock().unwrap_or_else(|e| e.into_inner());
        s.cfg
            .peers
            .iter()
            .zip(peers.iter())
            .map(|(a, p)| {
                serde_json::json!({
                    "address": a.to_string(),
                    "last-contact-ms-ago": (p.last_ms != 0).then(|| now.saturating_sub(p.last_ms)),
                    "lag-ms": (p.last_ms != 0).then_some(p.lag_ms),
                    "messages": p.accepted,
                    "records": p.records,
                    "missing": p.missing,
                    "bulk-copy-received": p.bulk_done,
                })
            })
            .collect()
    };
    let c = &s.counts;
    let v = serde_json::json!({
        "at": now,
        "listen": s.cfg.listen.to_string(),
        "node": format!("{:08x}", s.node),
        "peers": peers,
        "refresh-s": s.refresh.as_secs(),
        "messages-sent": c.sent.load(Relaxed),
        "records-sent": c.records_sent.load(Relaxed),
        "records-received": c.received.load(Relaxed),
        "events-dropped": c.dropped.load(Relaxed),
    });
    let tmp = s.report.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, &s.report)) {
        log::debug!("sync: writing {}: {e}", s.report.display());
    }
}
