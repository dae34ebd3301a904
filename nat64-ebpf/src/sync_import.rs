//! Session sync's import, in the kernel: nat64-ctl writes the sessions a peer reported
//! into [`NAT_SYNC_IN`] and runs this program (`BPF_PROG_RUN`), which makes their BIB
//! entries and sessions the way the data path makes its own (the same atomic counts on
//! the BIB entry, the subscriber and address-dependent filtering), so that the sweep
//! ends them as it ends any other:
//!
//! - a session this node holds already takes the later of the two lifetimes and the
//!   peer's TCP state, or ends (its lifetime is up at once) when the peer's ended;
//! - else its BIB entry is found or made (BIB4, then BIB6, the subscriber counted as
//!   for a mapping of its own, without its limit: the peer admitted the subscriber),
//!   then the session;
//! - a record whose pool4 address this node does not hold, or whose IPv4 or IPv6
//!   transport address this node maps to another, is refused: a conflict.

use core::ffi::c_void;

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated as h};
use nat64_common::{
    maps::{Bib4Entry, Bib4Key, Bib6Key, NatConfig, SYNC_IMPORT_MAX, SessionKey, SyncImport, SyncRecord},
    nat::PROTO_ICMP,
};

use crate::{
    hdr::{IPPROTO_TCP, IPPROTO_UDP},
    maps::{BIB4, BIB6, NAT_ADDRS, NAT_CFG, NAT_SYNC_IN, SESSIONS},
    translate::nat::{
        session::{open_session, subscriber_give_back, subscriber_take},
        transport::EEXIST,
    },
};

/// What one record came to.
const MADE: u32 = 0;
const REFRESHED: u32 = 1;
const ENDED: u32 = 2;
const CONFLICT: u32 = 3;
const FAILED: u32 = 4;
/// An ended session this node never had.
const NOTHING: u32 = 5;

/// What the loop's callback works with (on the program's stack). Its counts go
/// straight into the map value: counts on the stack, a value the verifier follows
/// exactly, would make every turn of the loop a state of its own.
#[repr(C)]
struct Run {
    io: *mut SyncImport,
    /// The NAT settings with no per-subscriber limit, and no session reports.
    cfg: NatConfig,
    now: u64,
}

/// The import program's body: 0, or 1 without NAT settings.
#[inline(always)]
pub fn run() -> u32 {
    let (Some(cfg), Some(io)) = (NAT_CFG.get(0), NAT_SYNC_IN.get_ptr_mut(0)) else {
        return 1;
    };
    let mut r = Run { io, cfg: *cfg, now: 0 };
    r.cfg.max_ports = 0;
    // A peer's sessions are not reported back to the peers.
    r.cfg.flags &= !NatConfig::FLAG_SYNC;
    // SAFETY: the one entry of the import's array, written by nat64-ctl before the run;
    // helper without arguments.
    let (count, now) = unsafe {
        (*io).made = 0;
        (*io).refreshed = 0;
        (*io).ended = 0;
        (*io).conflicts = 0;
        (*io).failed = 0;
        ((*io).count, (*io).now)
    };
    r.now = if now != 0 { now } else { unsafe { h::bpf_ktime_get_boot_ns() } };
    // SAFETY: the callback and its context match bpf_loop's contract; flags are 0.
    unsafe {
        h::bpf_loop(
            count.min(SYNC_IMPORT_MAX as u32),
            record_cb as *mut c_void,
            (&raw mut r).cast::<c_void>(),
            0,
        );
    }
    0
}

extern "C" fn record_cb(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `run` passes its `Run`, whose `io` is the map value.
    let r = unsafe { &mut *(ctx as *mut Run) };
    if i >= SYNC_IMPORT_MAX as u64 {
        return 1;
    }
    // SAFETY: as above; the index is within the array.
    let rec = unsafe { (*r.io).records[i as usize] };
    // SAFETY: as above.
    let io = unsafe { &mut *r.io };
    match import(&r.cfg, &rec, r.now) {
        MADE => io.made += 1,
        REFRESHED => io.refreshed += 1,
        ENDED => io.ended += 1,
        CONFLICT => io.conflicts += 1,
        FAILED => io.failed += 1,
        _ => {}
    }
    0
}

#[inline(always)]
fn import(cfg: &NatConfig, rec: &SyncRecord, now: u64) -> u32 {
    let proto = rec.v6.proto;
    if !matches!(proto, IPPROTO_TCP | IPPROTO_UDP | PROTO_ICMP) || rec.v4.proto != proto {
        return FAILED;
    }
    if NAT_ADDRS.get_ptr(&rec.v4.addr).is_none() {
        return CONFLICT;
    }
    let key = SessionKey {
        local: rec.v4.addr,
        remote: rec.remote,
        local_port: rec.v4.port,
        // An ICMP query session knows the remote by the mapped identifier.
        remote_port: if proto == PROTO_ICMP { rec.v4.port } else { rec.remote_port },
        proto,
        _pad: [0; 3],
    };
    let expires = now + rec.lifetime_ms as u64 * 1_000_000;
    let ended = rec.flags & SyncRecord::ENDED != 0;
    if let Some(s) = SESSIONS.get_ptr_mut(&key) {
        // SAFETY: a value of the map; a racing packet writes the same fields.
        unsafe {
            if ended {
                (*s).expires = now;
                return ENDED;
            }
            if expires > (*s).expires {
                (*s).expires = expires;
            }
            if proto == IPPROTO_TCP {
                (*s).state = rec.state;
            }
        }
        return REFRESHED;
    }
    if ended {
        return NOTHING;
    }
    let bib = bib_entry(cfg, &rec.v6, &rec.v4, now);
    if bib != MADE {
        return bib;
    }
    let state = if proto == IPPROTO_TCP { rec.state } else { 0 };
    match open_session(cfg, &key, expires, state) {
        Ok(()) => MADE,
        Err(_) => FAILED,
    }
}

/// The BIB entry `v6` <-> `v4`, found or made: [`MADE`] when it is there now.
#[inline(always)]
fn bib_entry(cfg: &NatConfig, v6: &Bib6Key, v4: &Bib4Key, now: u64) -> u32 {
    if let Some(e) = BIB4.get_ptr(v4) {
        // SAFETY: a value of the map, read at once.
        let (live, held) = unsafe { ((*e).live(), (*e).v6) };
        if !live || !same6(&held, v6) {
            return CONFLICT;
        }
        return match BIB6.get_ptr(v6) {
            // SAFETY: as above.
            Some(k) if same4(unsafe { &*k }, v4) => MADE,
            Some(_) => CONFLICT,
            None => match BIB6.insert(v6, v4, BPF_NOEXIST as u64) {
                Ok(()) => MADE,
                Err(_) => CONFLICT,
            },
        };
    }
    if subscriber_take(cfg, &v6.addr, now).is_err() {
        return FAILED;
    }
    let entry = Bib4Entry { v6: *v6, flags: 0, sessions: 0, born: now };
    if let Err(e) = BIB4.insert(v4, &entry, BPF_NOEXIST as u64) {
        subscriber_give_back();
        return if -(e as i64) == EEXIST { CONFLICT } else { FAILED };
    }
    match BIB6.insert(v6, v4, BPF_NOEXIST as u64) {
        Ok(()) => MADE,
        Err(e) => {
            let _ = BIB4.remove(v4);
            subscriber_give_back();
            if -(e as i64) == EEXIST { CONFLICT } else { FAILED }
        }
    }
}

#[inline(always)]
fn same6(a: &Bib6Key, b: &Bib6Key) -> bool {
    let w = |k: &Bib6Key, i: usize| {
        u64::from_ne_bytes([
            k.addr[i],
            k.addr[i + 1],
            k.addr[i + 2],
            k.addr[i + 3],
            k.addr[i + 4],
            k.addr[i + 5],
            k.addr[i + 6],
            k.addr[i + 7],
        ])
    };
    w(a, 0) == w(b, 0) && w(a, 8) == w(b, 8) && a.port == b.port && a.proto == b.proto
}

#[inline(always)]
fn same4(a: &Bib4Key, b: &Bib4Key) -> bool {
    a.addr == b.addr && a.port == b.port && a.proto == b.proto
}
