//! TCP simultaneous open (RFC 6146 §3.5.2.2, RFC 5382 REQ-4) in the NAT stages.
//!
//! An IPv4 SYN to a pool4 transport address that no mapping lets in is not dropped
//! unanswered: it is held in `NAT_SYNS` for 6 s, by the transport address it came from.
//! An IPv6 SYN to that address within the time, from a host with no mapping for its
//! source yet, is given the pool4 transport address the IPv4 SYN was sent to, so both
//! SYNs meet and the connection opens; the held SYN is then marked taken. nat64-ctl
//! removes every entry once its time is up and answers the SYNs nothing took with ICMP
//! Port Unreachable. A hairpinned SYN (from an IPv6 host to a pool4 transport address
//! without a mapping) is held the same way, as the IPv6 packet its host sent.

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    counters::Counter,
    maps::{HELD_SYN_BYTES, HeldSyn, SynKey},
    nat::Timeouts,
};

use crate::{
    atomic::fetch_add,
    counters::bump,
    maps::{NAT_ADDRS, NAT_CFG, NAT_POOL4, NAT_SYN_COUNT, NAT_SYNS, SYN_STAGING, scratch},
    packet::Packet,
};

const EEXIST: i64 = 17;
const E2BIG: i64 = 7;
const BPF_NOEXIST: u64 = 1;

/// An IPv4 transport address in one register: the address's bytes as read, the port
/// above them.
#[inline(always)]
pub fn pack4(addr: [u8; 4], port: u16) -> u64 {
    u32::from_ne_bytes(addr) as u64 | (port as u64) << 32
}

/// The address and port a [`pack4`]ed value holds (bits above 48 ignored).
#[inline(always)]
pub fn unpack4(v: u64) -> ([u8; 4], u16) {
    ((v as u32).to_ne_bytes(), (v >> 32) as u16)
}

/// Holds the SYN in `pkt` (its IP packet `len` bytes long; `v6`: an IPv6 one), which
/// came from `remote` and was sent to `local` (both [`pack4`]ed), if fewer than `max`
/// are held: the packet's counter. Out of line: the NAT stages' frames are full.
#[inline(never)]
pub fn hold<P: Packet>(pkt: &P, remote: u64, local: u64, len: u64, max: u64) -> Counter {
    let Some(s) = scratch() else {
        return Counter::DropInternal;
    };
    // The key in scratch space: this runs on the deepest stack of the NAT stages.
    let (raddr, rport) = unpack4(remote);
    s.nat.syn_key = SynKey { remote: raddr, remote_port: rport, _pad: 0 };
    let key = &s.nat.syn_key;
    if NAT_SYNS.get_ptr(key).is_some() {
        return Counter::DropNatSynPending;
    }
    let (Some(stored), Some(removed)) = (NAT_SYN_COUNT.get(0), NAT_SYN_COUNT.get(1)) else {
        return Counter::DropInternal;
    };
    if stored.wrapping_sub(*removed) >= max & 0xffff_ffff {
        return Counter::DropNatSynStoreFull;
    }
    let Some(st) = SYN_STAGING.get_ptr_mut(0) else {
        return Counter::DropInternal;
    };
    // SAFETY: this CPU's staging slot, used by this program run alone.
    let st = unsafe { &mut *st };
    let mut n = (len & 0xffff) as usize;
    let have = pkt.len().saturating_sub(P::L2_LEN);
    if n > have {
        n = have;
    }
    if n > HELD_SYN_BYTES {
        n = HELD_SYN_BYTES;
    }
    if n == 0 || !pkt.load_bytes(P::L2_LEN, st.bytes.as_mut_ptr(), n as u32) {
        return Counter::DropMalformed;
    }
    let (laddr, lport) = unpack4(local);
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    st.expires = now + Timeouts::INCOMING_SYN as u64 * 1_000_000_000;
    st.local = laddr;
    st.local_port = lport;
    st.flags = if len >> 32 != 0 { HeldSyn::FLAG_V6 } else { 0 };
    st.len = n as u16;
    match NAT_SYNS.insert(key, st, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if -(e as i64) == EEXIST => return Counter::DropNatSynPending,
        Err(e) if -(e as i64) == E2BIG => return Counter::DropNatSynStoreFull,
        Err(_) => return Counter::DropNatAllocFailed,
    }
    if let Some(c) = NAT_SYN_COUNT.get_ptr_mut(0) {
        // SAFETY: a value of the map.
        unsafe { fetch_add(c, 1) };
    }
    Counter::DropNatSynHeld
}

/// The pool4 transport address a SYN held from `remote` ([`pack4`]ed) was sent to,
/// [`pack4`]ed, with bit 48 set, if a new mapping may take it: one is held (not taken,
/// its time not up), its port is in the range its pool4 address lends, and mappings are
/// not made from port blocks (RFC 7422: a host's ports are its block's). Else 0.
#[inline(never)]
pub fn wanted(remote: u64) -> u64 {
    let Some(s) = scratch() else {
        return 0;
    };
    // Kept for `took`.
    let (raddr, rport) = unpack4(remote);
    s.nat.syn_key = SynKey { remote: raddr, remote_port: rport, _pad: 0 };
    let Some(p) = NAT_SYNS.get_ptr(&s.nat.syn_key) else {
        return 0;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    // SAFETY: a value of the map, its small fields read at once.
    let (expires, flags, local, port) = unsafe { ((*p).expires, (*p).flags, (*p).local, (*p).local_port) };
    if expires <= now || flags & HeldSyn::FLAG_TAKEN != 0 {
        return 0;
    }
    if NAT_CFG.get(0).is_none_or(|c| c.block_size != 0) {
        return 0;
    }
    // SAFETY: a value of the map, copied out at once.
    let Some(slot) = NAT_ADDRS.get_ptr(&local).and_then(|i| NAT_POOL4.get(unsafe { *i })) else {
        return 0;
    };
    if port < slot.first || port > slot.last {
        return 0;
    }
    pack4(local, port) | 1 << 48
}

/// Marks the SYN [`wanted`] found taken: an IPv6 SYN opened its connection.
#[inline(never)]
pub fn took() {
    let Some(s) = scratch() else { return };
    if let Some(p) = NAT_SYNS.get_ptr_mut(&s.nat.syn_key) {
        // SAFETY: a field of the map value (nat64-ctl only reads it).
        unsafe { (*p).flags |= HeldSyn::FLAG_TAKEN };
        bump(Counter::NatSimultaneousOpen, 0);
    }
}
