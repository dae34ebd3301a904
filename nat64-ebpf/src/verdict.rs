//! The outcome of a stage, packed into one register (see [`pack`]), and the program
//! verdicts made from it.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::generated as h,
};

/// What to do with the packet once the engine is done.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hand to the kernel stack (untouched, or translated when the route is unknown).
    Pass,
    Drop,
    /// Send out of this interface index (already rewritten for it).
    Redirect(u32),
    /// Inside the engine only: an ICMP error, for the error path to translate.
    IcmpError,
    /// Inside the engine only: answer the sender with this ICMP error (type, code,
    /// the four bytes after the checksum), spec §6.
    Reply(u8, u8, u32),
    /// Send back out of the interface it came in on (a reply built in place).
    Tx,
    /// Inside the engine only: the IPv6 source needs a dynamic-pool address first.
    Alloc,
    /// Inside the engine only: the IPv6 packet goes back to IPv6 (RFC 7757 §4), the
    /// hairpin stage's work (what it needs is in the scratch space's `hairpin`).
    Hairpin,
    /// Inside the engine only: stateful NAT64 maps the packet first (the NAT stage).
    Nat,
    /// Kept by the program (a copy of a first fragment held, see `translate::held`):
    /// the packet itself goes (TC_ACT_SHOT: TCX takes TC_ACT_STOLEN as "next").
    Held,
}

/// The program's verdict from a packed result (see `pack`). Read from the packed
/// value rather than from an unpacked `Action`: LLVM widens the ifindex of
/// `Redirect` on every path, undefined on the others, where the verifier may find a
/// pointer left in that register and refuse the shift.
#[inline(always)]
pub fn verdict_xdp(v: u64) -> u32 {
    match kind(v) {
        KIND_PASS => xdp_action::XDP_PASS,
        KIND_TX => xdp_action::XDP_TX,
        // The port was found in TX_PORTS before the packet was rewritten for it;
        // should it vanish meanwhile the kernel still gets the packet.
        KIND_REDIRECT => match crate::maps::TX_PORTS.redirect(high(v), xdp_action::XDP_PASS as u64) {
            Ok(a) | Err(a) => a,
        },
        // Drop, and what only the engine sees (an ICMP error, a reply, an allocation).
        _ => xdp_action::XDP_DROP,
    }
}

/// The TC verdict from a packed result; `ifindex` is the device the packet arrived
/// on (for `Tx`).
#[inline(always)]
pub fn verdict_tc(v: u64, ifindex: u32) -> i32 {
    match kind(v) {
        KIND_PASS => TC_ACT_OK,
        // SAFETY: helper call; bpf_redirect returns TC_ACT_REDIRECT or TC_ACT_SHOT.
        KIND_TX => unsafe { h::bpf_redirect(ifindex, 0) as i32 },
        // SAFETY: as above.
        KIND_REDIRECT => unsafe { h::bpf_redirect(high(v), 0) as i32 },
        _ => TC_ACT_SHOT,
    }
}

pub const KIND_PASS: u64 = 0;
pub const KIND_REDIRECT: u64 = 2;
pub const KIND_TX: u64 = 5;
pub const KIND_DROP: u64 = 1;
pub const KIND_HELD: u64 = 9;

/// The action's kind in a packed result.
#[inline(always)]
pub fn kind(v: u64) -> u64 {
    (v >> 8) & 0xff
}

/// The ifindex (or the rest of an ICMP header) in a packed result.
#[inline(always)]
pub fn high(v: u64) -> u32 {
    (v >> 32) as u32
}

/// The counter in a packed result.
#[inline(always)]
pub fn counter(v: u64) -> nat64_common::counters::Counter {
    match nat64_common::counters::Counter::ALL.get((v & 0xff) as usize) {
        Some(c) => *c,
        None => nat64_common::counters::Counter::DropInternal,
    }
}

/// An engine result packed into one register: subprograms (BPF-to-BPF calls) must
/// return a scalar, as the verifier refuses a returned stack pointer, which LLVM may
/// leave in R0 when a tuple is returned through memory.
#[inline(always)]
pub fn pack(action: Action, counter: nat64_common::counters::Counter) -> u64 {
    // bits 0-7 counter, 8-15 kind, 16-23 / 24-31 ICMP type / code, 32-63 ifindex or rest
    let (kind, tc, high) = match action {
        Action::Pass => (KIND_PASS, 0u64, 0u32),
        Action::Drop => (KIND_DROP, 0, 0),
        Action::Redirect(i) => (KIND_REDIRECT, 0, i),
        Action::IcmpError => (3, 0, 0),
        Action::Reply(t, c, rest) => (4, (t as u64) << 16 | (c as u64) << 24, rest),
        Action::Tx => (KIND_TX, 0, 0),
        Action::Alloc => (6, 0, 0),
        Action::Hairpin => (7, 0, 0),
        Action::Nat => (8, 0, 0),
        Action::Held => (KIND_HELD, 0, 0),
    };
    (high as u64) << 32 | tc | kind << 8 | counter as u64
}

/// Whether a packed result hands the packet to the NAT stage.
#[inline(always)]
pub fn is_nat(v: u64) -> bool {
    (v >> 8) & 0xff == 8
}

/// Whether a packed result asks for an ICMP error to be sent back.
#[inline(always)]
pub fn is_reply(v: u64) -> bool {
    (v >> 8) & 0xff == 4
}

/// Whether a packed result hands the packet to the ICMP error path.
#[inline(always)]
pub fn is_icmp_error(v: u64) -> bool {
    (v >> 8) & 0xff == 3
}

/// Whether a packed result hands the packet to the hairpin stage.
#[inline(always)]
pub fn is_hairpin(v: u64) -> bool {
    (v >> 8) & 0xff == 7
}

/// Whether a packed result asks for a dynamic-pool address for the source.
#[inline(always)]
pub fn is_alloc(v: u64) -> bool {
    (v >> 8) & 0xff == 6
}

#[inline(always)]
pub fn unpack(v: u64) -> (Action, nat64_common::counters::Counter) {
    let action = match kind(v) {
        KIND_PASS => Action::Pass,
        1 => Action::Drop,
        KIND_REDIRECT => Action::Redirect(high(v)),
        3 => Action::IcmpError,
        4 => Action::Reply((v >> 16) as u8, (v >> 24) as u8, high(v)),
        KIND_TX => Action::Tx,
        7 => Action::Hairpin,
        _ => Action::Alloc,
    };
    (action, counter(v))
}
