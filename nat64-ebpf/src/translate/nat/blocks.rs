//! Dynamic port-block allocation: a subscriber takes a block of pool4 ports from the
//! free ones with its first mapping, and another when those it holds are nearly used
//! up (up to `port-blocks-per-host`); its mappings pick their ports in its blocks. The
//! sweep gives a block back once no mapping has used it for `port-reuse-delay`. Each
//! block taken or given back is one event for the NAT log (RFC 6888 REQ-13/14: one
//! record a block, not one a flow), and so are a subscriber at its limit and a pool4
//! out of ports (rate-limited: [`LIMIT_EVENT_NS`]).
//!
//! Who may touch what: the data path claims a block by adding to its `used` and fills a
//! free place in its subscriber's list (compare and exchange); only the sweep empties
//! a place and gives a block back, after adding [`PortBlock::RELEASING`] to a `used` of
//! 0, so that a data path claiming it at that moment sees it go and lets it be.

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    counters::Counter,
    maps::{LIMIT_EVENT_NS, MAX_BLOCKS_PER_HOST, NatConfig, NatEvent, PortBlock, Subscriber},
};

use crate::{
    atomic::{compare_exchange, fetch_add},
    counters::bump,
    maps::{NAT_BLOCKS, NAT_EVENTS, NAT_EXHAUSTED_AT, NAT_FREE_BLOCKS, NAT_SUBSCRIBERS, scratch},
};

/// A block this full (in eighths) is used up: the subscriber takes another if it may.
const FULL_EIGHTHS: u64 = 7;
/// "None" for the places [`Scan`] looks for.
const NONE: u64 = MAX_BLOCKS_PER_HOST as u64;

/// What the look over a subscriber's blocks found (the `bpf_loop` callback's state):
/// the first place holding a block with room, the first free place it may fill, the
/// first block not wholly used; each [`NONE`] when there is none.
#[repr(C)]
struct Scan {
    size: u64,
    max: u64,
    room: u64,
    free: u64,
    fallback: u64,
}

/// Looks at place `i` of the subscriber's list (copied to `NatScratch::held`). A
/// `bpf_loop` callback, so that the verifier checks it once rather than each place.
extern "C" fn scan_place(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `take` passes its `Scan`.
    let c = unsafe { &mut *(ctx as *mut Scan) };
    let Some(s) = scratch() else { return 1 };
    let i = i & (NONE - 1);
    let held = s.nat.held[i as usize];
    if held == 0 {
        if i < c.max && c.free == NONE {
            c.free = i;
        }
        return 0;
    }
    let Some(b) = NAT_BLOCKS.get_ptr((held - 1) as u32) else { return 0 };
    // SAFETY: a field of the map value, read once.
    let used = unsafe { core::ptr::read_volatile(&raw const (*b).used) };
    if used * 8 < c.size * FULL_EIGHTHS {
        c.room = i;
        return 1;
    }
    if used < c.size && c.fallback == NONE {
        c.fallback = i;
    }
    0
}

/// A block for a new mapping of the subscriber in `NatScratch::sub` (counted by
/// `subscriber_take`): the first of its blocks with room, else a new one, else the
/// first not wholly used. Its index; the block is claimed (`NatScratch::block`) until
/// [`give_back`] or the mapping is made. Out of line, as `open_session`.
#[inline(never)]
pub(crate) fn take(cfg: &NatConfig, now: u64) -> Result<u32, Counter> {
    let Some(s) = scratch() else {
        return Err(Counter::DropInternal);
    };
    let Some(sub) = NAT_SUBSCRIBERS.get_ptr_mut(&s.nat.sub) else {
        return Err(Counter::DropNatAllocFailed);
    };
    // SAFETY: a field of the map value, copied (a racing change is seen by `claim`).
    s.nat.held = unsafe { core::ptr::read_volatile(&raw const (*sub).blocks) };
    let mut c = Scan {
        size: cfg.block_size as u64,
        max: (cfg.max_blocks as u64).min(NONE),
        room: NONE,
        free: NONE,
        fallback: NONE,
    };
    // SAFETY: helper call with a callback of the kernel's signature and our state.
    unsafe { h::bpf_loop(NONE as u32, scan_place as *mut _, (&raw mut c).cast(), 0) };
    if c.room < NONE && claim(sub, c.room) {
        return Ok(claimed(s.nat.held[(c.room & (NONE - 1)) as usize]));
    }
    if c.free < NONE {
        match NAT_FREE_BLOCKS.pop() {
            Ok(Some(index)) => {
                if let Some(index) = fresh(cfg, sub, c.free, index, now) {
                    return Ok(index);
                }
            }
            _ => exhausted(cfg, [0; 4], 0, now),
        }
    }
    if c.fallback < NONE && claim(sub, c.fallback) {
        return Ok(claimed(s.nat.held[(c.fallback & (NONE - 1)) as usize]));
    }
    if c.free < NONE {
        return Err(Counter::DropNatPortsExhausted);
    }
    quota(cfg, NatEvent::LIMIT_BLOCKS, &s.nat.sub, now);
    Err(Counter::DropNatSubscriberLimit)
}

/// Notes the claimed block (index + 1) for [`give_back`]; its index.
#[inline(always)]
fn claimed(held: u64) -> u32 {
    if let Some(s) = scratch() {
        s.nat.block = held;
    }
    held.wrapping_sub(1) as u32
}

/// Block `index`, just taken from the free ones, made the subscriber's at free place
/// `place` of its list; None (the block back to the free ones) when another CPU
/// filled that place meanwhile.
#[inline(always)]
fn fresh(cfg: &NatConfig, sub: *mut Subscriber, place: u64, index: u32, now: u64) -> Option<u32> {
    let s = scratch()?;
    if let Some(b) = NAT_BLOCKS.get_ptr_mut(index) {
        // SAFETY: a value of the map, ours alone: taken from the free ones.
        unsafe {
            fetch_add(&raw mut (*b).used, 1);
            (*b).owner = s.nat.sub;
            (*b).idle = now;
            (*b).held = 1;
        }
        // SAFETY: a field of the map value.
        let at = unsafe { &raw mut (*sub).blocks[(place & (NONE - 1)) as usize] };
        // SAFETY: as above.
        if unsafe { compare_exchange(at, 0, index as u64 + 1) } == 0 {
            if cfg.flags & NatConfig::FLAG_LOG != 0 {
                event(NatEvent::BLOCK_ALLOCATED, &s.nat.sub, index, now);
            }
            bump(Counter::NatBlockAllocated, 0);
            s.nat.block = index as u64 + 1;
            return Some(index);
        }
        // SAFETY: as above.
        unsafe {
            (*b).held = 0;
            fetch_add(&raw mut (*b).used, u64::MAX);
        }
    }
    let _ = NAT_FREE_BLOCKS.push(index, 0);
    None
}

/// Claims the block at place `i` of subscriber `sub`'s list (as copied to
/// `NatScratch::held`) for a mapping: whether it is still the subscriber's (the sweep
/// may be giving it back).
#[inline(always)]
fn claim(sub: *mut Subscriber, i: u64) -> bool {
    let i = (i & (NONE - 1)) as usize;
    let Some(s) = scratch() else { return false };
    let held = s.nat.held[i];
    let Some(b) = NAT_BLOCKS.get_ptr_mut(held.wrapping_sub(1) as u32) else { return false };
    // SAFETY: a field of the map value.
    let before = unsafe { fetch_add(&raw mut (*b).used, 1) };
    // SAFETY: a field of the map value, read once (after the add: a block the sweep
    // gives back leaves the list before it is free).
    let still = unsafe { core::ptr::read_volatile(&raw const (*sub).blocks[i]) } == held;
    if before < PortBlock::RELEASING && still {
        return true;
    }
    // SAFETY: as above.
    unsafe { fetch_add(&raw mut (*b).used, u64::MAX) };
    false
}

/// Lets go of the block [`take`] claimed (no mapping made in it), if any.
#[inline(always)]
pub(crate) fn give_back(block: u64) {
    if block == 0 {
        return;
    }
    if let Some(b) = NAT_BLOCKS.get_ptr_mut(block as u32 - 1) {
        // SAFETY: a field of the map value this CPU added one to.
        unsafe { fetch_add(&raw mut (*b).used, u64::MAX) };
    }
}

/// RFC 6888 REQ-4's limit reached by the subscriber in `NatScratch::sub` (`which`: a
/// `NatEvent::LIMIT_*`; `addr` the IPv6 source refused, which the reader cuts to the
/// subscriber, or with RFC 7422 blocks to the block's subnet): reported at most once in
/// [`LIMIT_EVENT_NS`] for the subscriber.
#[inline(never)]
pub(crate) fn quota(cfg: &NatConfig, which: u8, addr: &[u8; 16], now: u64) {
    if cfg.flags & NatConfig::FLAG_LOG == 0 {
        return;
    }
    let Some(s) = scratch() else { return };
    let Some(sub) = NAT_SUBSCRIBERS.get_ptr_mut(&s.nat.sub) else { return };
    // SAFETY: fields of the map value; a racing CPU at worst reports once more.
    unsafe {
        if (*sub).limited != 0 && (*sub).limited + LIMIT_EVENT_NS > now {
            return;
        }
        (*sub).limited = now;
    }
    event_for(NatEvent::QUOTA_EXCEEDED, addr, [0; 4], 0, 0, which, now);
}

/// Pool4 out of ports: on `addr` for `proto`, or (0.0.0.0) out of dynamic blocks;
/// reported at most once in [`LIMIT_EVENT_NS`] by each CPU.
#[inline(never)]
pub(crate) fn exhausted(cfg: &NatConfig, addr: [u8; 4], proto: u8, now: u64) {
    if cfg.flags & NatConfig::FLAG_LOG == 0 {
        return;
    }
    let Some(at) = NAT_EXHAUSTED_AT.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot.
    unsafe {
        if *at != 0 && *at + LIMIT_EVENT_NS > now {
            return;
        }
        *at = now;
    }
    event_for(NatEvent::EXHAUSTED, &[0; 16], addr, 0, proto, 0, now);
}

/// Reports block `index` taken or given back by subscriber `sub` (`kind`); the index
/// goes in `v4`: the reader knows the blocks' addresses and ports from it.
#[inline(never)]
pub(crate) fn event(kind: u8, sub: &[u8; 16], index: u32, now: u64) {
    event_for(kind, sub, index.to_be_bytes(), 0, 0, 0, now);
}

/// One NAT log event; a full ring is counted.
#[inline(always)]
fn event_for(kind: u8, v6: &[u8; 16], v4: [u8; 4], v4_port: u16, proto: u8, state: u8, now: u64) {
    let ev = NatEvent { time: now, v6: *v6, v4, v4_port, proto, kind, state, ..NatEvent::default() };
    if NAT_EVENTS.output::<NatEvent>(&ev, 0).is_err() {
        bump(Counter::NatLogLost, 0);
    }
}
