//! What every stage shares: how it ends ([`Step`]), the drop that answers with an
//! ICMP error, and the redirect's last touch.

use aya_ebpf::bindings::bpf_fib_lookup;
use nat64_common::{addr::Untranslatable, counters::Counter, icmp, maps::Globals};

use crate::{
    forward::Route,
    packet::Packet,
    verdict::{Action, Verdict, pack},
};

/// What a stage leaves to its program: finish with a packed verdict, or go on with
/// another stage.
pub enum Step {
    Finish(Verdict),
    Jump(u32),
}

/// RFC 7915 §4.4 (IPv4) and §5.4 (IPv6): a packet dropped because one of its
/// addresses cannot be translated (`counter`) is answered with Destination
/// Unreachable, Communication Administratively Prohibited (ICMPv4 3/13, ICMPv6 1/1),
/// unless the operator switched that off (`icmp-errors-on-drop`). The reply stage
/// sends it, rate-limited, and never about an ICMP error, a fragment after the first
/// or to a source that is not one host; the drop is counted either way.
#[inline(always)]
pub fn refuse(g: &Globals, counter: Counter, ipv6: bool) -> Verdict {
    let address = matches!(
        counter,
        Counter::DropSrcUnmapped
            | Counter::DropReservedAddr
            | Counter::DropDenylist4
            | Counter::DropWkpNonGlobal
            | Counter::DropOwnAddress
    );
    if !address || g.flag(Globals::FLAG_NO_DROP_ERRORS) {
        return pack(Action::Drop, counter);
    }
    let (typ, code) = if ipv6 { (icmp::ICMP6_DEST_UNREACH, 1) } else { (icmp::ICMP4_DEST_UNREACH, 13) };
    pack(Action::Reply(typ, code, 0), counter)
}

/// [`refuse`] for an address memo's outcome (the drop counter + 1, not 0).
#[inline(always)]
pub fn refuse_outcome(g: &Globals, outcome: u32, ipv6: bool) -> Verdict {
    refuse(g, Counter::ALL.get(outcome as usize - 1).copied().unwrap_or(Counter::DropInternal), ipv6)
}

/// The drop counter for an address that cannot be translated.
#[inline(always)]
pub(super) fn drop_reason(e: Untranslatable) -> Counter {
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
pub(super) fn general_path_credit<P: Packet>(pkt: &P, g: &Globals) -> u8 {
    (g.general_ifindex != 0 && pkt.ingress_ifindex() == g.general_ifindex) as u8
}

const _: () = assert!(
    core::mem::offset_of!(bpf_fib_lookup, smac) % 2 == 0
        && core::mem::offset_of!(bpf_fib_lookup, dmac) % 2 == 0
        && core::mem::align_of::<bpf_fib_lookup>() >= 2
);

/// Writes the next hop's MAC addresses when the packet leaves by redirect.
/// `flow_hash`: the translated addresses' hash the route lookup noted (`s.flow_hash`),
/// for a packet that arrived without one (`Packet::set_flow_hash`).
#[inline(always)]
pub(super) fn finish<P: Packet>(pkt: &mut P, route: Route, fib: &bpf_fib_lookup, flow_hash: u32) -> Action {
    match route {
        Route::Out(ifindex) => {
            // From an L3 device: room for the Ethernet header first, its type from the
            // packet's protocol (else the kernel sends it on, translated).
            if !P::HAS_ETH && !pkt.push_eth() {
                return Action::Pass;
            }
            // Six two-byte copies (both MACs lie 2-byte aligned in the struct) rather
            // than twelve one-byte ones.
            let Some(p) = pkt.ptr_at::<[u16; 6]>(0) else {
                return Action::Pass;
            };
            let p = p as *mut u16;
            let d = core::ptr::addr_of!(fib.dmac).cast::<u16>();
            let s = core::ptr::addr_of!(fib.smac).cast::<u16>();
            let mut i = 0;
            while i < 3 {
                // SAFETY: 12 packet bytes were bounds-checked (unaligned access is allowed
                // for packet memory); `dmac` and `smac` are 6 bytes each at even offsets
                // of a 4-byte aligned struct.
                unsafe {
                    core::ptr::write_volatile(p.add(i), core::ptr::read(d.add(i)));
                    core::ptr::write_volatile(p.add(3 + i), core::ptr::read(s.add(i)));
                }
                i += 1;
            }
            pkt.set_flow_hash(flow_hash);
            Action::Redirect(ifindex)
        }
        Route::Kernel | Route::TooBig(_) => Action::Pass,
    }
}
