//! Stateful NAT64's sweep, in the kernel: nat64-ctl runs the sweep program
//! (`BPF_PROG_RUN`) once a second, and it walks the tables where they live
//! (`bpf_for_each_map_elem`), with no system call per entry:
//!
//! - a session whose lifetime ran out ends; its BIB entry and its address-dependent
//!   filtering entry count one session fewer;
//! - a dynamic BIB entry with no session left (and older than [`YOUNG_NS`]) ends: out
//!   of BIB6 at once, so that its host gets a new mapping, and its subscriber holds one
//!   port fewer; its port stays taken in BIB4, released, for `port-reuse-delay` (RFC
//!   6888 REQ-8), after which the entry goes;
//! - a dynamic port block no mapping has used for `port-reuse-delay` goes back to the
//!   free ones (reported to the NAT log);
//! - a subscriber with no port and no block left goes, some seconds after its last new
//!   mapping.
//!
//! The counts are kept exact by atomic adds: the data path adds, only the sweep
//! (one at a time, from one nat64-ctl) takes off.

use core::ffi::c_void;

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    counters::Counter,
    maps::{
        AdfKey, Bib4Entry, Bib4Key, MAX_BLOCKS_PER_HOST, NatConfig, NatEvent, PortBlock, Session, SessionKey,
        Subscriber,
    },
    nat,
};

use crate::{
    atomic::{compare_exchange, fetch_add, take_one},
    counters::bump,
    maps::{
        BIB4, BIB6, NAT_ADDRS, NAT_ADF, NAT_BLOCKS, NAT_CFG, NAT_FREE_BLOCKS, NAT_POOL4, NAT_SUBSCRIBERS,
        NAT_SWEEP, SESSIONS,
    },
    translate::nat::blocks,
};

/// A BIB entry younger than this is left alone even without a session: the data path
/// makes the entry first and its session right after.
const YOUNG_NS: u64 = 2_000_000_000;
/// A subscriber with no port is removed only this long after its latest new mapping.
const SUBSCRIBER_IDLE_NS: u64 = 10_000_000_000;

/// What the callbacks share (on the sweep program's stack).
#[repr(C)]
struct Walk {
    now: u64,
    /// `port-reuse-delay` in ns; 0: a BIB entry goes at once.
    delay: u64,
    /// End everything dynamic now (`Sweep::flush`).
    all: u64,
    cfg_flags: u32,
    subscriber_len: u32,
    /// Dynamic port blocks: their size, how many on each address, the first port of
    /// each address (0 size: none), and how long one stays unused before it goes back.
    block_size: u32,
    blocks_per_addr: u32,
    first_port: u64,
    block_delay: u64,
    sessions: u64,
    released: u64,
    removed: u64,
    subscribers: u64,
    blocks: u64,
    visited: u64,
}

/// `bpf_for_each_map_elem` over [`SESSIONS`].
extern "C" fn session_cb(_map: *mut c_void, key: *mut c_void, value: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: the kernel passes this map's key and value and our `Walk`.
    let (k, s, w) =
        unsafe { (&*(key as *const SessionKey), &*(value as *const Session), &mut *(ctx as *mut Walk)) };
    w.visited += 1;
    if s.expires > w.now && w.all == 0 {
        return 0;
    }
    let key = *k;
    let tag = s.bib_tag;
    if SESSIONS.remove(&key).is_err() {
        return 0;
    }
    w.sessions += 1;
    bump(Counter::NatSessionExpired, 0);
    let k4 = Bib4Key { addr: key.local, port: key.local_port, proto: key.proto, _pad: 0 };
    if let Some(e) = BIB4.get_ptr_mut(&k4) {
        // Only the entry the session was made on (a port released and lent again since
        // is another mapping).
        // SAFETY: a value of the map.
        unsafe {
            if (*e).born as u32 == tag {
                take_one(&raw mut (*e).sessions);
            }
        }
    }
    let ak = AdfKey::of(&key);
    // SAFETY: a value of the map.
    if let Some(c) = NAT_ADF.get_ptr_mut(&ak)
        && unsafe { take_one(c) } <= 1
    {
        // A session the data path makes with this remote right now may lose its entry:
        // only other ports of that remote are then filtered until its next session.
        let _ = NAT_ADF.remove(&ak);
    }
    0
}

/// `bpf_for_each_map_elem` over [`BIB4`].
extern "C" fn bib_cb(_map: *mut c_void, key: *mut c_void, value: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: the kernel passes this map's key and value and our `Walk`.
    let (k, e, w) =
        unsafe { (&*(key as *const Bib4Key), &mut *(value as *mut Bib4Entry), &mut *(ctx as *mut Walk)) };
    w.visited += 1;
    if e.flags & Bib4Entry::FLAG_STATIC != 0 {
        return 0;
    }
    let k4 = *k;
    if !e.live() {
        if (w.all != 0 || e.born.saturating_add(w.delay) <= w.now) && BIB4.remove(&k4).is_ok() {
            w.removed += 1;
        }
        return 0;
    }
    // SAFETY: a field of the map value, read once.
    let sessions = unsafe { core::ptr::read_volatile(&raw const e.sessions) };
    if sessions != 0 || (e.born.saturating_add(YOUNG_NS) > w.now && w.all == 0) {
        return 0;
    }
    let v6 = e.v6;
    // BIB6 first: a packet of the host then makes a new mapping rather than finding one
    // whose other half is gone. Only if it still names this entry.
    // SAFETY: a value of the map, read at once.
    if BIB6.get_ptr(&v6).is_some_and(|p| unsafe { *p } == k4) {
        let _ = BIB6.remove(&v6);
    }
    let sub = nat::cut6(&v6.addr, w.subscriber_len as u8);
    if let Some(s) = NAT_SUBSCRIBERS.get_ptr_mut(&sub) {
        // SAFETY: a value of the map.
        unsafe { take_one(&raw mut (*s).ports) };
    }
    if w.block_size != 0 {
        block_unused(w, &k4);
    } else if w.cfg_flags & NatConfig::FLAG_LOG != 0 {
        crate::translate::nat::session::log_bib(&v6, &k4, w.now, NatEvent::BIB_EXPIRED);
    }
    bump(Counter::NatBibExpired, 0);
    if w.delay == 0 || w.all != 0 {
        if BIB4.remove(&k4).is_ok() {
            w.removed += 1;
        }
    } else {
        e.flags |= Bib4Entry::FLAG_RELEASED;
        e.born = w.now;
        w.released += 1;
    }
    0
}

/// `bpf_for_each_map_elem` over [`NAT_SUBSCRIBERS`].
extern "C" fn subscriber_cb(
    _map: *mut c_void,
    key: *mut c_void,
    value: *mut c_void,
    ctx: *mut c_void,
) -> i64 {
    // SAFETY: the kernel passes this map's key and value and our `Walk`.
    let (k, s, w) =
        unsafe { (&*(key as *const [u8; 16]), &mut *(value as *mut Subscriber), &mut *(ctx as *mut Walk)) };
    // SAFETY: a field of the map value, read once.
    let ports = unsafe { core::ptr::read_volatile(&raw const s.ports) };
    let holds_blocks = s.blocks.iter().any(|b| *b != 0);
    if ports == 0 && !holds_blocks && (w.all != 0 || s.last.saturating_add(SUBSCRIBER_IDLE_NS) <= w.now) {
        let key = *k;
        if NAT_SUBSCRIBERS.remove(&key).is_ok() {
            w.subscribers += 1;
        }
    }
    0
}

/// A dynamic BIB entry `k4` ended: its port block has one mapping fewer, and is idle
/// from now if that was its last.
#[inline(always)]
fn block_unused(w: &Walk, k4: &Bib4Key) {
    let Some(slot) = NAT_ADDRS.get_ptr(&k4.addr) else { return };
    // SAFETY: a value of the map, read at once.
    let slot = unsafe { *slot } as u64;
    let port = k4.port as u64;
    if port < w.first_port {
        return;
    }
    let Some(within) = (port - w.first_port).checked_div(w.block_size as u64) else { return };
    if within >= w.blocks_per_addr as u64 {
        return;
    }
    let index = slot * w.blocks_per_addr as u64 + within;
    if let Some(b) = NAT_BLOCKS.get_ptr_mut(index as u32) {
        // SAFETY: fields of the map value; only the sweep takes off.
        unsafe {
            if take_one(&raw mut (*b).used) == 1 {
                (*b).idle = w.now;
            }
        }
    }
}

/// `bpf_for_each_map_elem` over [`NAT_BLOCKS`]: a held block unused long enough goes
/// back to the free ones, out of its subscriber's list first.
extern "C" fn block_cb(_map: *mut c_void, key: *mut c_void, value: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: the kernel passes this map's key and value and our `Walk`.
    let (k, b, w) =
        unsafe { (*(key as *const u32), &mut *(value as *mut PortBlock), &mut *(ctx as *mut Walk)) };
    // SAFETY: a field of the map value, read once.
    let used = unsafe { core::ptr::read_volatile(&raw const b.used) };
    if b.held == 0 || used != 0 || (w.all == 0 && b.idle.saturating_add(w.block_delay) > w.now) {
        return 0;
    }
    // SAFETY: a field of the map value. From here a claim of the data path fails.
    if unsafe { compare_exchange(&raw mut b.used, 0, PortBlock::RELEASING) } != 0 {
        return 0;
    }
    let owner = b.owner;
    if let Some(s) = NAT_SUBSCRIBERS.get_ptr_mut(&owner) {
        for i in 0..MAX_BLOCKS_PER_HOST {
            // SAFETY: a field of the map value; the data path fills only empty places.
            unsafe {
                if core::ptr::read_volatile(&raw const (*s).blocks[i]) == k as u64 + 1 {
                    core::ptr::write_volatile(&raw mut (*s).blocks[i], 0);
                }
            }
        }
    }
    b.held = 0;
    if w.cfg_flags & NatConfig::FLAG_LOG != 0 {
        blocks::event(NatEvent::BLOCK_RELEASED, &owner, k, w.now);
    }
    bump(Counter::NatBlockReleased, 0);
    // SAFETY: as above: takes off what was added, whatever claims came and went.
    unsafe { fetch_add(&raw mut b.used, PortBlock::RELEASING.wrapping_neg()) };
    let _ = NAT_FREE_BLOCKS.push(k, 0);
    w.blocks += 1;
    0
}

/// The sweep program's body: one walk of each table, the results in [`NAT_SWEEP`].
/// Returns 0 when it ran, 1 without the settings.
#[inline(always)]
pub fn run() -> u32 {
    let (Some(cfg), Some(out)) = (NAT_CFG.get(0), NAT_SWEEP.get_ptr_mut(0)) else {
        return 1;
    };
    // SAFETY: the one entry of the sweep's array, written by nat64-ctl before the run.
    let out = unsafe { &mut *out };
    // SAFETY: helper without arguments.
    let now = if out.now != 0 { out.now } else { unsafe { h::bpf_ktime_get_boot_ns() } };
    // With port blocks a port only ever goes back to its own subscriber: no delay (a
    // dynamic block has its own, once it is unused).
    let delay = if cfg.block_size != 0 { 0 } else { cfg.lifetime_ns(cfg.reuse_delay) };
    let dynamic = cfg.flags & NatConfig::FLAG_DYNAMIC_BLOCKS != 0;
    let first_port = NAT_POOL4.get(0).map_or(0, |s| s.first as u64);
    let mut w = Walk {
        now,
        delay,
        all: out.flush,
        cfg_flags: cfg.flags,
        subscriber_len: cfg.subscriber_len as u32,
        block_size: if dynamic { cfg.block_size } else { 0 },
        blocks_per_addr: cfg.blocks_per_addr,
        first_port,
        block_delay: cfg.lifetime_ns(cfg.reuse_delay),
        sessions: 0,
        released: 0,
        removed: 0,
        subscribers: 0,
        blocks: 0,
        visited: 0,
    };
    let ctx = (&raw mut w).cast::<c_void>();
    // SAFETY: each call names a map of this object, a callback of the signature
    // `bpf_for_each_map_elem` takes, and a context that outlives the call.
    unsafe {
        h::bpf_for_each_map_elem((&raw const SESSIONS).cast_mut().cast(), session_cb as *mut c_void, ctx, 0);
        h::bpf_for_each_map_elem((&raw const BIB4).cast_mut().cast(), bib_cb as *mut c_void, ctx, 0);
        if dynamic {
            h::bpf_for_each_map_elem(
                (&raw const NAT_BLOCKS).cast_mut().cast(),
                block_cb as *mut c_void,
                ctx,
                0,
            );
        }
        h::bpf_for_each_map_elem(
            (&raw const NAT_SUBSCRIBERS).cast_mut().cast(),
            subscriber_cb as *mut c_void,
            ctx,
            0,
        );
    }
    out.sessions = w.sessions;
    out.released = w.released;
    out.removed = w.removed;
    out.subscribers = w.subscribers;
    out.blocks = w.blocks;
    out.visited = w.visited;
    0
}
