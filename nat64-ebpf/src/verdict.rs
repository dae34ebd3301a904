//! The outcome of a stage, packed into one register (see [`pack`]), and the program
//! verdicts made from it.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::generated as h,
};
use nat64_common::counters::Counter;

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

/// A stage's outcome packed into one register (see [`pack`]): bits 0-7 the counter,
/// 8-15 the kind (`KIND_*`), 16-23 and 24-31 an ICMP type and code, 32-63 an ifindex
/// or the rest of an ICMP header. Subprograms (BPF-to-BPF calls) must return a scalar,
/// as the verifier refuses a returned stack pointer, which LLVM may leave in R0 when a
/// tuple is returned through memory; `repr(transparent)` keeps this one a `u64`.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Verdict(u64);

/// The kinds of action a verdict carries.
pub const KIND_PASS: u64 = 0;
pub const KIND_DROP: u64 = 1;
pub const KIND_REDIRECT: u64 = 2;
pub const KIND_ICMP_ERROR: u64 = 3;
pub const KIND_REPLY: u64 = 4;
pub const KIND_TX: u64 = 5;
pub const KIND_ALLOC: u64 = 6;
pub const KIND_HAIRPIN: u64 = 7;
pub const KIND_NAT: u64 = 8;
pub const KIND_HELD: u64 = 9;

impl Verdict {
    /// The packed value, to keep in a map (the held first fragment's, the reply
    /// stage's request).
    #[inline(always)]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// A verdict kept by [`Verdict::raw`].
    #[inline(always)]
    pub const fn from_raw(v: u64) -> Self {
        Self(v)
    }

    /// The action's kind (`KIND_*`).
    #[inline(always)]
    pub const fn kind(self) -> u64 {
        (self.0 >> 8) & 0xff
    }

    /// The ifindex (or the rest of an ICMP header).
    #[inline(always)]
    pub const fn high(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The counter's slot, compared without the table lookup of [`Verdict::counter`].
    #[inline(always)]
    pub const fn counter_slot(self) -> u64 {
        self.0 & 0xff
    }

    /// The counter.
    #[inline(always)]
    pub fn counter(self) -> Counter {
        match Counter::ALL.get(self.counter_slot() as usize) {
            Some(c) => *c,
            None => Counter::DropInternal,
        }
    }

    /// Whether it hands the packet to the NAT stage.
    #[inline(always)]
    pub const fn is_nat(self) -> bool {
        self.kind() == KIND_NAT
    }

    /// Whether it asks for an ICMP error to be sent back.
    #[inline(always)]
    pub const fn is_reply(self) -> bool {
        self.kind() == KIND_REPLY
    }

    /// Whether it hands the packet to the ICMP error path.
    #[inline(always)]
    pub const fn is_icmp_error(self) -> bool {
        self.kind() == KIND_ICMP_ERROR
    }

    /// Whether it hands the packet to the hairpin stage.
    #[inline(always)]
    pub const fn is_hairpin(self) -> bool {
        self.kind() == KIND_HAIRPIN
    }

    /// Whether it asks for a dynamic-pool address for the source.
    #[inline(always)]
    pub const fn is_alloc(self) -> bool {
        self.kind() == KIND_ALLOC
    }

    /// The action and counter it packs.
    #[inline(always)]
    pub fn unpack(self) -> (Action, Counter) {
        let action = match self.kind() {
            KIND_PASS => Action::Pass,
            KIND_DROP => Action::Drop,
            KIND_REDIRECT => Action::Redirect(self.high()),
            KIND_ICMP_ERROR => Action::IcmpError,
            KIND_REPLY => Action::Reply((self.0 >> 16) as u8, (self.0 >> 24) as u8, self.high()),
            KIND_TX => Action::Tx,
            KIND_HAIRPIN => Action::Hairpin,
            _ => Action::Alloc,
        };
        (action, self.counter())
    }

    /// The XDP program's verdict. Read from the packed value rather than from an
    /// unpacked `Action`: LLVM widens the ifindex of `Redirect` on every path,
    /// undefined on the others, where the verifier may find a pointer left in that
    /// register and refuse the shift.
    #[inline(always)]
    pub fn xdp(self) -> u32 {
        match self.kind() {
            KIND_PASS => xdp_action::XDP_PASS,
            KIND_TX => xdp_action::XDP_TX,
            // The port was found in TX_PORTS before the packet was rewritten for it;
            // should it vanish meanwhile the kernel still gets the packet.
            KIND_REDIRECT => match crate::maps::TX_PORTS.redirect(self.high(), xdp_action::XDP_PASS as u64) {
                Ok(a) | Err(a) => a,
            },
            // Drop, and what only the engine sees (an ICMP error, a reply, an allocation).
            _ => xdp_action::XDP_DROP,
        }
    }

    /// The TC program's verdict; `ifindex` is the device the packet arrived on (for
    /// `Tx`).
    #[inline(always)]
    pub fn tc(self, ifindex: u32) -> i32 {
        match self.kind() {
            KIND_PASS => TC_ACT_OK,
            // SAFETY: helper call; bpf_redirect returns TC_ACT_REDIRECT or TC_ACT_SHOT.
            KIND_TX => unsafe { h::bpf_redirect(ifindex, 0) as i32 },
            // SAFETY: as above.
            KIND_REDIRECT => unsafe { h::bpf_redirect(self.high(), 0) as i32 },
            _ => TC_ACT_SHOT,
        }
    }
}

/// An engine result packed into one register.
#[inline(always)]
pub fn pack(action: Action, counter: Counter) -> Verdict {
    let (kind, tc, high) = match action {
        Action::Pass => (KIND_PASS, 0u64, 0u32),
        Action::Drop => (KIND_DROP, 0, 0),
        Action::Redirect(i) => (KIND_REDIRECT, 0, i),
        Action::IcmpError => (KIND_ICMP_ERROR, 0, 0),
        Action::Reply(t, c, rest) => (KIND_REPLY, (t as u64) << 16 | (c as u64) << 24, rest),
        Action::Tx => (KIND_TX, 0, 0),
        Action::Alloc => (KIND_ALLOC, 0, 0),
        Action::Hairpin => (KIND_HAIRPIN, 0, 0),
        Action::Nat => (KIND_NAT, 0, 0),
        Action::Held => (KIND_HELD, 0, 0),
    };
    Verdict((high as u64) << 32 | tc | kind << 8 | counter as u64)
}
