//! The translation engine (RFC 7915), written once over [`Packet`] for every attach
//! point. `process` picks the direction; the per-direction modules do the work.

mod icmp_err;
mod l4;
mod reply;
pub use l4::SUM_BUF;
mod v4_to_v6;
mod v6_to_v4;

use aya_ebpf::{bindings::bpf_fib_lookup, maps::lpm_trie::Key};
use nat64_common::{
    addr::Untranslatable,
    counters::Counter,
    maps::{EamEntry, Globals},
};

use crate::{
    forward::Route,
    maps::{DENYLIST4, EAMT4, EAMT6, globals},
    packet::{Action, ETH_P_IP, ETH_P_IPV6, Packet, is_icmp_error, is_reply, unpack},
};

/// Runs the translator on one packet: what to do with it, the counter that records
/// the outcome, and the packet's length on arrival.
#[inline(always)]
pub fn process<P: Packet>(pkt: &mut P) -> (Action, Counter, usize) {
    let len = pkt.len();
    let proto = match pkt.l3_proto() {
        Some(p) => p,
        None => return (Action::Pass, Counter::PassNotIp, len),
    };
    if proto != ETH_P_IP && proto != ETH_P_IPV6 {
        return (Action::Pass, Counter::PassNotIp, len);
    }
    let g = match globals() {
        Some(g) if g.flag(Globals::FLAG_ENABLED) => g,
        _ => return (Action::Pass, Counter::PassDisabled, len),
    };
    let v = if proto == ETH_P_IP {
        match v4_to_v6::source_route_failed(pkt) {
            0 => v4_to_v6::translate(pkt, g),
            v => v,
        }
    } else {
        v6_to_v4::translate(pkt, g)
    };
    // ICMP errors carry a packet inside; they have their own path (own stack frame).
    // Decided on the packed value: merging two unpacked enums would copy an undefined
    // payload, which the verifier refuses to read.
    let v = if is_icmp_error(v) {
        if proto == ETH_P_IP { icmp_err::v4_to_v6(pkt, g) } else { icmp_err::v6_to_v4(pkt, g) }
    } else {
        v
    };
    // Errors the translator answers itself (spec §6) are built by their own path too.
    let v = if is_reply(v) {
        if proto == ETH_P_IP { reply::icmp4(pkt, g, v) } else { reply::icmp6(pkt, g, v) }
    } else {
        v
    };
    let (action, counter) = unpack(v);
    (action, counter, len)
}

/// The drop counter for an address that cannot be translated.
#[inline(always)]
fn drop_reason(e: Untranslatable) -> Counter {
    match e {
        Untranslatable::NoMapping => Counter::DropSrcUnmapped,
        Untranslatable::Reserved => Counter::DropReservedAddr,
        Untranslatable::OwnAddress => Counter::DropOwnAddress,
        Untranslatable::Denylisted => Counter::DropDenylist4,
        Untranslatable::WkpNonGlobal => Counter::DropWkpNonGlobal,
    }
}

/// 1 for a packet that arrived through the general path (the kernel routed it there
/// and took one off its TTL or hop limit), else 0.
#[inline(always)]
fn general_path_credit<P: Packet>(pkt: &P, g: &Globals) -> u8 {
    (g.general_ifindex != 0 && pkt.ingress_ifindex() == g.general_ifindex) as u8
}

#[inline(always)]
fn eamt4(a: [u8; 4]) -> Option<&'static EamEntry> {
    EAMT4.get(Key::new(32, a))
}

/// The key lives in scratch memory: a 20-byte key on the stack costs 16 spilled bytes.
#[inline(always)]
fn eamt6(key: &mut Key<[u8; 16]>, a: &[u8; 16]) -> Option<&'static EamEntry> {
    key.prefix_len = 128;
    key.data = *a;
    EAMT6.get(&*key)
}

#[inline(always)]
fn denylisted4(a: [u8; 4]) -> bool {
    DENYLIST4.get(Key::new(32, a)).is_some()
}

/// Writes the next hop's MAC addresses when the packet leaves by redirect.
#[inline(always)]
fn finish<P: Packet>(pkt: &mut P, route: Route, fib: &bpf_fib_lookup) -> Action {
    match route {
        Route::Out(ifindex) => {
            if pkt.store(0, fib.dmac).is_none() || pkt.store(6, fib.smac).is_none() {
                return Action::Pass;
            }
            Action::Redirect(ifindex)
        }
        Route::Kernel | Route::TooBig(_) => Action::Pass,
    }
}
