//! ICMP echoes in fragments (TC). The ICMPv6 checksum covers a pseudo-header holding
//! the whole message's length, which ICMPv4's does not: a first fragment cannot have
//! its checksum finished until the fragment that ends the datagram tells that length
//! (RFC 7915 §4.2, §5.2). So the first fragment is translated with its own length in
//! the sum and held in `ICMP_HELD`; middle fragments cross as they come; the last one
//! leaves as a clone, then the packet becomes the held first fragment, its checksum
//! corrected by the difference of the two lengths, and leaves the way it was to. When
//! the last fragment comes first, its length waits for the first instead.
//!
//! XDP cannot send two packets for one: an XDP program hands ICMP fragments to the
//! kernel (`Counter::PassIcmpFragment`), whose routes take the translator's
//! destinations into the general path, whose peer runs this TC program.

use nat64_common::{
    counters::Counter,
    maps::{FragKey, Globals},
    words,
};

use super::{l4, step};
use crate::{
    counters,
    hdr::{IPPROTO_ICMP, IPPROTO_ICMPV6},
    maps::{HELD_MAX, HELD_STAGING, Held, ICMP_HELD, Scratch, scratch},
    packet::Packet,
    verdict::{Action, KIND_PASS, KIND_REDIRECT, Verdict, pack},
};

/// What `Scratch::held` says of this packet.
pub const FIRST: u32 = 1;
pub const LAST: u32 = 2;

/// XDP's answer to an ICMP echo fragment for translation: to the kernel, whose routes
/// take it into the general path (counted), or dropped (counted) without one.
#[inline(always)]
pub fn to_kernel<P: Packet>(pkt: &P, g: &Globals) -> Verdict {
    if g.general_ifindex != 0 && step::general_path_credit(pkt, g) == 0 {
        pack(Action::Pass, Counter::PassIcmpFragment)
    } else {
        pack(Action::Drop, Counter::DropIcmpFragment)
    }
}

/// An IPv4 address in the 16 bytes of a `FragKey` address.
#[inline(always)]
pub fn addr4_in16(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[0] = a[0];
    x[1] = a[1];
    x[2] = a[2];
    x[3] = a[3];
    x
}

/// Notes a fragment of an ICMP echo for the held stage, which runs once it is
/// translated: a first fragment is held, the last one finishes the datagram, a middle
/// one needs nothing. `at`: fragment offset (8-byte units) | more fragments << 16;
/// `len_check`: the ICMP bytes it carries | where its translated checksum lies << 32.
/// The datagram's key is `HeldScratch::key`, filled by the caller with what `note6` and
/// `note4` take. Subprograms: a key on the callers' stacks would not fit there.
#[inline(always)]
fn note(s: &mut Scratch, at: u64, len_check: u64, to_v4: bool) {
    let off = at as u16 & 0x1fff;
    let more = at >> 16 & 1 != 0;
    let len = len_check as u32 & 0xffff;
    let (state, n) = match (off, more) {
        (0, true) => (FIRST, len),
        (o, false) if o != 0 => (LAST, o as u32 * 8 + len),
        _ => {
            s.held.note[0] = 0;
            return;
        }
    };
    s.held.note = [state, n, (len_check >> 32) as u32, to_v4 as u32];
}

/// `note` for an IPv6 fragment (its addresses in `src6w` and `dst6w`), `id` its
/// identification.
#[inline(never)]
pub fn note6(s: &mut Scratch, id: u64, at: u64, len_check: u64) {
    s.held.key.src = words::to_bytes(&s.src6w);
    s.held.key.dst = words::to_bytes(&s.dst6w);
    s.held.key.id = id as u32;
    s.held.key.proto = IPPROTO_ICMPV6;
    s.held.key.family = 6;
    s.held.key._pad = [0; 2];
    note(s, at, len_check, true);
}

/// `note` for an IPv4 fragment: source | destination << 32 (each in memory order),
/// `id` its identification.
#[inline(never)]
pub fn note4(s: &mut Scratch, addrs: u64, id: u64, at: u64, len_check: u64) {
    s.held.key.src = addr4_in16((addrs as u32).to_ne_bytes());
    s.held.key.dst = addr4_in16(((addrs >> 32) as u32).to_ne_bytes());
    s.held.key.id = id as u32 & 0xffff;
    s.held.key.proto = IPPROTO_ICMP;
    s.held.key.family = 4;
    s.held.key._pad = [0; 2];
    note(s, at, len_check, false);
}

/// The held stage: `s.verdict` is the translated fragment's verdict.
#[inline(always)]
pub fn held<P: Packet>(pkt: &mut P) -> Verdict {
    let Some(s) = scratch() else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    let v = Verdict::from_raw(s.verdict);
    let [state, n, check, to_v4] = s.held.note;
    let key = s.held.key;
    let e = ICMP_HELD.get_ptr_mut(&key);
    if state == FIRST {
        // SAFETY: a value of the map, read at once.
        if let Some(total) = e.map(|e| unsafe { (*e).total }).filter(|t| *t != 0) {
            let _ = ICMP_HELD.remove(&key);
            return match finish_check(pkt, check, to_v4, n, total) {
                Some(()) => v,
                None => pack(Action::Drop, Counter::DropInternal),
            };
        }
        return hold(pkt, &key, v, n, check, to_v4);
    }
    match e {
        // SAFETY: as above.
        Some(e) if unsafe { (*e).len } != 0 => release(pkt, &key, e, v, n),
        _ => {
            // The end came first: its length waits for the first fragment.
            if let Some(st) = HELD_STAGING.get_ptr_mut(0) {
                // SAFETY: this CPU's staging slot.
                let st = unsafe { &mut *st };
                st.verdict = 0;
                st.len = 0;
                st.total = n;
                let _ = ICMP_HELD.insert(&key, st, 0);
            }
            v
        }
    }
}

/// Corrects the ICMP checksum at `check` computed with a message of `part` bytes to
/// one of `total` bytes: the pseudo-header's length leaves the sum (to IPv4) or joins
/// it (to IPv6).
#[inline(always)]
fn finish_check<P: Packet>(pkt: &mut P, check: u32, to_v4: u32, part: u32, total: u32) -> Option<()> {
    let at = (check & 0xfff) as usize;
    if to_v4 != 0 {
        l4::fix_check(pkt, at, total, part, false)
    } else {
        l4::fix_check(pkt, at, part, total, false)
    }
}

/// Keeps the translated first fragment (its whole frame) until its datagram's end.
#[inline(always)]
fn hold<P: Packet>(pkt: &mut P, key: &FragKey, v: Verdict, part: u32, check: u32, to_v4: u32) -> Verdict {
    let Some(st) = HELD_STAGING.get_ptr_mut(0) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    // SAFETY: this CPU's staging slot.
    let st: &mut Held = unsafe { &mut *st };
    // The helper needs a length the verifier knows to be within the frame buffer; the
    // volatile read keeps LLVM from folding the test into another.
    // SAFETY: reading a local.
    let len = unsafe { core::ptr::read_volatile(&(pkt.len() as u32)) };
    if len == 0 || len > HELD_MAX as u32 {
        return pack(Action::Drop, Counter::DropIcmpFragment);
    }
    if !pkt.load_bytes(0, st.frame.as_mut_ptr(), len) {
        return pack(Action::Drop, Counter::DropInternal);
    }
    st.verdict = v.raw();
    st.len = len;
    st.check = check;
    st.part = part;
    st.total = 0;
    st.to_v4 = to_v4;
    if ICMP_HELD.insert(key, st, 0).is_err() {
        return pack(Action::Drop, Counter::DropIcmpFragment);
    }
    pack(Action::Held, Counter::XlatIcmpFragmentHeld)
}

/// The datagram's end with its first fragment held: this fragment leaves as a clone,
/// the packet becomes the held one, its checksum finished, and leaves its way.
#[inline(always)]
fn release<P: Packet>(pkt: &mut P, key: &FragKey, e: *mut Held, v: Verdict, total: u32) -> Verdict {
    // From an L3 device a frame that leaves by redirect has an Ethernet header, one
    // handed to the kernel none: the packet can only become a frame of its own kind.
    // SAFETY: a value of the map, read at once.
    let same_kind = P::HAS_ETH || Verdict::from_raw(unsafe { (*e).verdict }).kind() == v.kind();
    let sent = same_kind
        && match v.kind() {
            KIND_REDIRECT => pkt.clone_to(v.high(), false),
            KIND_PASS => pkt.clone_to(pkt.ingress_ifindex(), true),
            _ => false,
        };
    if !sent {
        // This fragment leaves as it is; the held one is lost, counted.
        let _ = ICMP_HELD.remove(key);
        counters::bump(Counter::DropIcmpFragment, 0);
        return v;
    }
    // SAFETY: a value of the map (read and copied from before it is removed).
    let (len, hv, check, part, to_v4) =
        unsafe { ((*e).len, (*e).verdict, (*e).check, (*e).part, (*e).to_v4) };
    // SAFETY: reading a local (as in `hold`).
    let len = unsafe { core::ptr::read_volatile(&len) };
    if len == 0 || len > HELD_MAX as u32 || pkt.set_len(len as usize).is_err() {
        let _ = ICMP_HELD.remove(key);
        return pack(Action::Drop, Counter::DropIcmpFragment);
    }
    // SAFETY: `len` bytes of the value's frame, bounded above.
    let copied = pkt.store_bytes(0, unsafe { (*e).frame.as_ptr() }, len);
    let _ = ICMP_HELD.remove(key);
    if !copied || finish_check(pkt, check, to_v4, part, total).is_none() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    // The held frame's way out, counted as this fragment's translation.
    Verdict::from_raw((hv & !0xff) | v.counter_slot())
}
