//! NAT64 dynamic pool (spec §8): an IPv6 host the EAMT does not map gets an IPv4
//! address of its own on its first packet. The mappings live in POOL6/POOL4 and are
//! used by the translation like /32 <-> /128 EAM entries; handing one out is the
//! allocation stage's work. nat64-ctl expires idle mappings and keeps the ring of free
//! addresses (least recently used first).

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated as h};
use nat64_common::{
    counters::Counter,
    icmp,
    maps::{EamEntry, Globals, POOL_REFRESH_NS, POOL_RING_SLOTS, PoolEntry},
};

use nat64_common::stages;

use super::step::Step;
use crate::{
    counters::bump,
    maps::{EAMT4, POOL_DORMANT, POOL_HEAD, POOL_RING, POOL_TAIL, POOL4, POOL6, scratch},
    packet::Packet,
    verdict::{Action, pack},
};

/// Notes a use of the mapping, at most once per [`POOL_REFRESH_NS`].
#[inline(always)]
fn touch(p: *mut PoolEntry) -> &'static EamEntry {
    // SAFETY: helper without arguments; `p` points into a map value, which stays valid
    // for the program's run (an 8-byte store is atomic, a race only loses a refresh).
    unsafe {
        let now = h::bpf_ktime_get_coarse_ns();
        if now.wrapping_sub((*p).last_use) > POOL_REFRESH_NS {
            (*p).last_use = now;
        }
        &(*p).eam
    }
}

/// The mapping of an IPv6 host, if it holds a pool address.
#[inline(always)]
pub fn lookup6(a: &[u8; 16]) -> Option<&'static EamEntry> {
    POOL6.get_ptr_mut(a).map(touch)
}

/// The mapping of a pool address, if a host holds it.
#[inline(always)]
pub fn lookup4(a: [u8; 4]) -> Option<&'static EamEntry> {
    POOL4.get_ptr_mut(&a).map(touch)
}

/// Whether `a` may be handed out: in the pool, not the translator's own address,
/// not (any longer) covered by a static EAM entry.
#[inline(always)]
fn usable(g: &Globals, a: [u8; 4]) -> bool {
    g.in_dyn_pool(a)
        && !(g.has_ipv4_addr() && a == g.ipv4_addr)
        && EAMT4.get(aya_ebpf::maps::lpm_trie::Key::new(32, a)).is_none_or(|e| e.generation > g.eam_gen)
}

/// Takes `a` for the host in `scratch().pool` if nobody holds it: the insert into POOL4
/// succeeds on one CPU only.
#[inline(always)]
fn claim(g: &Globals, a: [u8; 4]) -> bool {
    let Some(s) = scratch() else { return false };
    if !usable(g, a) {
        return false;
    }
    s.pool.eam.v4 = a;
    POOL4.insert(&a, &s.pool, BPF_NOEXIST as u64).is_ok()
}

/// This CPU's walk along the ring, shared with its bpf_loop callback.
#[repr(C)]
struct RingWalk {
    head: u64,
    tail: u64,
    /// 1 << 32 | the address, once one is taken.
    found: u64,
}

extern "C" fn ring_step(_i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop hands back the pointer `alloc` gave it.
    let w = unsafe { &mut *(ctx as *mut RingWalk) };
    if w.head >= w.tail {
        return 1;
    }
    let slot = (w.head % POOL_RING_SLOTS as u64) as u32;
    w.head += 1;
    let (Some(a), Some(g)) = (POOL_RING.get(slot).copied(), crate::maps::globals()) else { return 1 };
    if claim(g, a) {
        w.found = 1 << 32 | u32::from_be_bytes(a) as u64;
        return 1;
    }
    0
}

/// The allocation stage: the IPv6 source of the packet gets a pool address (the one it
/// had before, if still free; else the least recently used free one), then the packet
/// goes back to the translation stage. With none free the host is told by an ICMPv6
/// Destination Unreachable, Address Unreachable (RFC 6146 §3.5.1.1... as for a failed
/// binding).
#[inline(always)]
pub fn alloc<P: Packet>(pkt: &P) -> Step {
    let (Some(g), Some(s)) = (crate::maps::globals(), scratch()) else {
        return Step::Finish(pack(Action::Pass, Counter::DropInternal));
    };
    let Some(src) = pkt.load::<[u8; 16]>(P::L2_LEN + 8) else {
        return Step::Finish(pack(Action::Drop, Counter::DropMalformed));
    };
    s.src6 = src;
    // Only a unicast host address gets one: not the unspecified or loopback address, not
    // link-local or multicast.
    let loopback_or_unspecified = src[..15].iter().all(|&b| b == 0) && src[15] <= 1;
    if loopback_or_unspecified || src[0] == 0xff || (src[0] == 0xfe && src[1] & 0xc0 == 0x80) {
        return Step::Finish(pack(Action::Drop, Counter::DropSrcUnmapped));
    }
    // Another CPU may have been quicker for the same host.
    if POOL6.get_ptr(&s.src6).is_some() {
        return Step::Jump(stages::XLAT6);
    }
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_coarse_ns() };
    s.pool = PoolEntry::new([0; 4], s.src6, now);

    let mut taken = None;
    // SAFETY: the value is copied out at once.
    if let Some(d) = POOL_DORMANT.get_ptr(&s.src6).map(|d| unsafe { (*d).v4 })
        && claim(g, d)
    {
        taken = Some(d);
    }
    if taken.is_none() {
        let Some(head) = POOL_HEAD.get_ptr_mut(0) else {
            return Step::Finish(pack(Action::Drop, Counter::DropInternal));
        };
        let tail = POOL_TAIL.get(0).copied().unwrap_or(0);
        let floor = POOL_TAIL.get(1).copied().unwrap_or(0);
        // SAFETY: this CPU's slot.
        let mut w = RingWalk { head: unsafe { *head }.max(floor), tail, found: 0 };
        // Slots overwritten since this CPU last looked are gone; nat64-ctl keeps every
        // free address within the last ring's worth.
        if w.tail.saturating_sub(w.head) > POOL_RING_SLOTS as u64 {
            w.head = w.tail - POOL_RING_SLOTS as u64;
        }
        // SAFETY: the callback and its context match bpf_loop's contract; flags are 0.
        unsafe {
            h::bpf_loop(
                POOL_RING_SLOTS,
                ring_step as *mut core::ffi::c_void,
                &mut w as *mut RingWalk as *mut core::ffi::c_void,
                0,
            );
            *head = w.head;
        }
        if w.found != 0 {
            taken = Some((w.found as u32).to_be_bytes());
        }
    }
    let Some(a) = taken else {
        s.verdict = pack(Action::Reply(icmp::ICMP6_DEST_UNREACH, 3, 0), Counter::DropPoolExhausted).raw();
        return Step::Jump(stages::REPLY6);
    };
    s.pool.eam.v4 = a;
    if POOL6.insert(&s.src6, &s.pool, BPF_NOEXIST as u64).is_err() {
        // The same host got one on another CPU meanwhile: give this one back. It is
        // still in the ring for whoever comes next, or nat64-ctl puts it back.
        let _ = POOL4.remove(&a);
        return Step::Jump(stages::XLAT6);
    }
    // Its claim on an old address is answered now, whichever it got.
    let _ = POOL_DORMANT.remove(&s.src6);
    bump(Counter::PoolAllocated, 0);
    Step::Jump(stages::XLAT6)
}
