//! Rewriting a port or ICMP identifier with its checksums: the packet's own, the one
//! noted for it, and the packet inside an ICMP error.

use super::transport::L4At;
use crate::{
    maps::{Scratch, scratch},
    packet::Packet,
    translate::l4,
};

/// Rewrites the port (or identifier) at `at.port` from `old` to `new`, the checksum
/// following.
#[inline(always)]
pub(crate) fn rewrite_port<P: Packet>(pkt: &mut P, at: &L4At, old: u16, new: u16, icmp: bool) -> Option<()> {
    if old == new {
        return Some(());
    }
    pkt.store(at.port, new.to_be_bytes())?;
    if icmp {
        // ICMP checksums are never left to the device.
        l4::fix_check(pkt, at.check, old as u32, new as u32, false)
    } else if at.udp && pkt.load::<[u8; 2]>(at.check)? == [0, 0] {
        // IPv4 UDP without a checksum stays without one (the translation decides).
        Some(())
    } else {
        pkt.fix_l4_check(at.check, old as u32, new as u32, at.udp)
    }
}

/// `rewrite_port` for the packet's own transport header, noting how to undo it (see
/// `NatScratch::undo`).
#[inline(always)]
pub(crate) fn rewrite_noted<P: Packet>(
    pkt: &mut P,
    s: &mut Scratch,
    at: &L4At,
    old: u16,
    new: u16,
    icmp: bool,
) -> Option<()> {
    s.nat.undo = [
        (at.port as u32 & 0xffff) | (at.check as u32) << 16,
        old as u32 | (new as u32) << 16,
        if icmp { 2 } else { at.udp as u32 },
    ];
    rewrite_port(pkt, at, old, new, icmp)
}

/// Puts back the port the NAT stage rewrote: the packet leaves untranslated (to the
/// kernel's general path, which brings it back as fragments to be mapped anew) or is
/// quoted in the translator's own ICMP error, which must show what the host sent.
#[inline(never)]
pub(crate) fn undo<P: Packet>(pkt: &mut P) -> u64 {
    let Some(s) = scratch() else { return 0 };
    let u = s.nat.undo;
    if u[0] == 0 {
        return 0;
    }
    s.nat.undo[0] = 0;
    // Offsets within the first 4 KiB: the verifier takes a bounds check only of a
    // pointer whose offset and access together stay within 64 KiB.
    let at = L4At { port: (u[0] & 0xfff) as usize, check: (u[0] >> 16 & 0xfff) as usize, udp: u[2] == 1 };
    let _ = rewrite_port(pkt, &at, (u[1] >> 16) as u16, u[1] as u16, u[2] == 2);
    0
}

/// Rewrites the port of the packet inside an ICMP error, from `old` to `new`: its
/// transport checksum when the error quotes it (a zero UDP checksum stays zero), and
/// the error's own checksum at `outer` for both changes.
#[inline(always)]
pub(crate) fn rewrite_inner<P: Packet>(
    pkt: &mut P,
    at: &L4At,
    old: u16,
    new: u16,
    outer: usize,
) -> Option<()> {
    // Opaque to LLVM: it would drop the bounds check of the outer checksum as implied
    // by the larger inner ones, which the verifier tracks on other registers.
    // SAFETY: reading a local.
    let outer = unsafe { core::ptr::read_volatile(&outer) };
    let Some(c0) = pkt.load::<[u8; 2]>(at.check) else {
        // The error quotes too little of the packet to hold its checksum.
        pkt.store(at.port, new.to_be_bytes())?;
        return l4::fix_check(pkt, outer, old as u32, new as u32, false);
    };
    let c0 = u16::from_be_bytes(c0) as u32;
    pkt.store(at.port, new.to_be_bytes())?;
    if at.udp && c0 == 0 {
        return l4::fix_check(pkt, outer, old as u32, new as u32, false);
    }
    l4::fix_check(pkt, at.check, old as u32, new as u32, at.udp)?;
    let c1 = u16::from_be_bytes(pkt.load::<[u8; 2]>(at.check)?) as u32;
    l4::fix_check(pkt, outer, old as u32 + c0, new as u32 + c1, false)
}
