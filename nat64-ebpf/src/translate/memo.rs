//! What an address maps to through the address tables, remembered per CPU.
//!
//! Mapping one address asks the LPM tries: an IPv6 destination the EAMT6, then the
//! denylist for its pool6 form and the EAMT4 for the form it maps to (RFC 7757 §4
//! hairpinning); an IPv4 address the EAMT4, the denylist and the `ipv4-translatable`
//! trie. A trie lookup costs 25-45 ns, and a packet made four of them both ways. The
//! answers depend on the address, the tables and the settings only, so each CPU keeps
//! them in a direct-mapped array (`ADDR_MEMO`), stamped with the settings' generation
//! (`Globals::tables_gen`). nat64-ctl moves the generation on with every change of the
//! settings or the tables, after the change: an answer stamped with the generation in
//! force was found in tables at least as new, and older answers are found again.
//!
//! The dynamic pool is not remembered: its mappings come and go with traffic. The
//! callers look there themselves, as they did (`eamt4`, `eamt6w` with the pool).

use nat64_common::{addr, maps::Globals, words::W6};

use super::{
    lookup::{self, denylisted4},
    step::drop_reason,
};
use crate::maps::{ADDR_MEMO, AddrMemo, EAMT4, Key4, MEMO_SLOTS, V4XLAT, scratch};

/// The roles, each with its own region of the array.
pub const SRC6: u32 = 0;
pub const DST6: u32 = 1;
pub const SRC4: u32 = 2;
pub const DST4: u32 = 3;

/// An EAM entry covers the address.
pub const EAM: u32 = 1 << 0;
/// IPv6: the IPv4 address it maps to is covered by an EAM entry (maps back to IPv6).
pub const BACK: u32 = 1 << 1;
/// IPv4: the address is `ipv4-translatable` (with the setting on).
pub const XLAT: u32 = 1 << 2;

const _: () = assert!(MEMO_SLOTS.is_power_of_two() && MEMO_SLOTS <= 1 << 16);

impl AddrMemo {
    /// 0 when the address maps, else 1 + the drop counter.
    #[inline(always)]
    pub fn outcome(&self) -> u32 {
        (self.flags >> 8) & 0xff
    }

    #[inline(always)]
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The IPv6 address an IPv4 one maps to, copied into `dst` a word at a time (a
    /// plain copy between two map values becomes a call to a byte-wise memmove).
    #[inline(always)]
    pub fn to6_into(&self, dst: &mut W6) {
        let mut i = 0;
        while i < 4 {
            // SAFETY: both are four aligned words.
            unsafe { core::ptr::write_volatile(&mut dst[i], core::ptr::read_volatile(&self.to[i])) };
            i += 1;
        }
    }

    /// The IPv4 address an IPv6 one maps to.
    #[inline(always)]
    pub fn to4(&self) -> [u8; 4] {
        self.to[0].to_ne_bytes()
    }
}

/// This CPU's slot for `h` (the address folded to a word) in `role`.
#[inline(always)]
fn slot(role: u32, h: u32) -> Option<&'static mut AddrMemo> {
    let i = role * MEMO_SLOTS + (h.wrapping_mul(0x9e37_79b1) >> (32 - MEMO_SLOTS.trailing_zeros()));
    // SAFETY: this CPU's slot; a program run is the only one using it.
    ADDR_MEMO.get_ptr_mut(i).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn stamp(g: &Globals) -> u32 {
    g.tables_gen.wrapping_add(1)
}

/// What the IPv6 address `a` maps to (`role`: SRC6 or DST6), without the dynamic pool.
#[inline(always)]
pub fn v6(g: &Globals, role: u32, a: &W6) -> Option<&'static AddrMemo> {
    let m = slot(role, a[0] ^ a[1] ^ a[2] ^ a[3])?;
    if m.stamp != stamp(g) || m.key != *a {
        fill6(g, m, a);
    }
    Some(m)
}

/// What the IPv4 address `a` maps to (`role`: SRC4 or DST4), for an address outside
/// the dynamic pool.
#[inline(always)]
pub fn v4(g: &Globals, role: u32, a: [u8; 4]) -> Option<&'static AddrMemo> {
    let w = u32::from_ne_bytes(a);
    let m = slot(role, w)?;
    if m.stamp != stamp(g) || m.key[0] != w {
        fill4(g, m, w);
    }
    Some(m)
}

/// The lookups, for a slot that does not hold `a`'s answer. A subprogram: its tries
/// and branches are walked by the verifier once, not once per caller's path.
#[inline(never)]
fn fill6(g: &Globals, m: &mut AddrMemo, a: &W6) {
    let Some(s) = scratch() else { return };
    let eam = lookup::eamt6w(g, &mut s.key6w, a, false);
    let mut flags = if eam.is_some() { EAM } else { 0 };
    let mut to = 0;
    match addr::map6to4_words(g, a, eam, denylisted4) {
        Ok((v4, _)) => {
            to = u32::from_ne_bytes(v4);
            if EAMT4.get(Key4::new(v4).key()).is_some_and(|e| e.generation <= g.eam_gen) {
                flags |= BACK;
            }
        }
        Err(e) => flags |= (drop_reason(e) as u32 + 1) << 8,
    }
    m.key = *a;
    m.to = [to, 0, 0, 0];
    m.flags = flags;
    m.stamp = stamp(g);
}

#[inline(never)]
fn fill4(g: &Globals, m: &mut AddrMemo, w: u32) {
    let a = w.to_ne_bytes();
    let eam = EAMT4.get(Key4::new(a).key()).filter(|e| e.generation <= g.eam_gen);
    let mut flags = if eam.is_some() { EAM } else { 0 };
    if g.flag(Globals::FLAG_IPV4_TRANSLATABLE) && V4XLAT.get(Key4::new(a).key()).is_some() {
        flags |= XLAT;
    }
    let deny = eam.is_none() && denylisted4(a);
    m.to = [0; 4];
    match addr::map4to6_words(g, a, eam, deny) {
        Ok((v6, _)) => m.to = v6,
        Err(e) => flags |= (drop_reason(e) as u32 + 1) << 8,
    }
    m.key = [w, 0, 0, 0];
    m.flags = flags;
    m.stamp = stamp(g);
}
