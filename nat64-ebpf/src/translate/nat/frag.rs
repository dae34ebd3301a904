//! Fragments: what a first fragment was mapped to, kept in `NAT_FRAGS` for the
//! fragments after it, which carry no ports.

use aya_ebpf::helpers::generated as h;
use nat64_common::{
    maps::{FragEntry, FragKey},
    words,
};

use super::transport::FRAG_LIFETIME_NS;
use crate::maps::{NAT_FRAGS, Scratch, scratch};

/// The address the first fragment of datagram `key` was mapped to, if it came.
#[inline(always)]
pub(crate) fn frag_lookup(key: &FragKey) -> Option<[u8; 16]> {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    // SAFETY: a value of the map, copied out at once.
    let e = NAT_FRAGS.get_ptr(key).map(|p| unsafe { *p })?;
    if e.expires > now { Some(e.addr) } else { None }
}

/// Notes what the first fragment of datagram `key` was mapped to.
#[inline(always)]
pub(crate) fn frag_note(key: &FragKey, addr: [u8; 16]) {
    // SAFETY: helper without arguments.
    let now = unsafe { h::bpf_ktime_get_boot_ns() };
    let _ = NAT_FRAGS.insert(key, &FragEntry { addr, expires: now + FRAG_LIFETIME_NS }, 0);
}

/// Notes what the first fragment of the IPv6 datagram in scratch space (its addresses
/// in `src6w` and `dst6w`, its identification in `NatScratch::l4[2]`) was mapped to:
/// `addr4`, as read from memory. Out of line: the NAT stage's frame is full.
#[inline(never)]
pub(crate) fn note_first6(addr4: u32) {
    let Some(s) = scratch() else { return };
    frag_note(&frag_key6(s), crate::translate::held::addr4_in16(addr4.to_ne_bytes()));
}

/// The datagram of the IPv6 fragment in scratch space (see [`note_first6`]).
#[inline(always)]
pub(crate) fn frag_key6(s: &Scratch) -> FragKey {
    FragKey {
        src: words::to_bytes(&s.src6w),
        dst: words::to_bytes(&s.dst6w),
        id: s.nat.l4[2],
        proto: 0,
        family: 6,
        _pad: [0; 2],
    }
}
