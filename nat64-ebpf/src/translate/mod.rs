//! The translation engine (RFC 7915), written once over [`Packet`] for every attach
//! point, as a pipeline of stages (`entry`, `xlat`, `err`, `reply`) that the programs
//! chain by tail calls; the per-direction modules do the work.

pub(crate) mod held;
mod icmp_err;
mod l4;
mod memo;
pub(crate) mod nat;
mod pool;
mod reply;
mod simopen;
pub use l4::{IPPROTO_TCP, IPPROTO_UDP, SUM_BUF};
mod v4_to_v6;
mod v6_to_v4;

use aya_ebpf::{bindings::bpf_fib_lookup, maps::lpm_trie::Key};
use nat64_common::{
    addr::Untranslatable,
    counters::Counter,
    icmp,
    maps::{EamEntry, Globals},
    words::{self, W6},
};

use crate::{
    forward::Route,
    maps::{DENYLIST4, EAMT4, EAMT6, Key4, Key6, V4XLAT, globals, scratch},
    packet::{
        Action, ETH_P_IP, ETH_P_IPV6, KIND_PASS, KIND_REDIRECT, Packet, is_alloc, is_hairpin, is_icmp_error,
        is_nat, is_reply, kind, pack,
    },
};

/// The pipeline's stages after the entry, each a program of its own reached by tail
/// call (index into the attach point's jump table), so that the kernel's verifier
/// checks each apart: one program holding them all came close to its limit of a
/// million instructions.
pub const STAGE_XLAT4: u32 = 0;
pub const STAGE_XLAT6: u32 = 1;
pub const STAGE_ERR4: u32 = 2;
pub const STAGE_ERR6: u32 = 3;
pub const STAGE_REPLY4: u32 = 4;
pub const STAGE_REPLY6: u32 = 5;
pub const STAGE_ALLOC6: u32 = 6;
pub const STAGE_HAIRPIN6: u32 = 7;
pub const STAGE_NAT4: u32 = 8;
pub const STAGE_NAT6: u32 = 9;
pub const STAGE_HELD: u32 = 10;
pub const STAGES: u32 = 11;

/// What a stage leaves to its program: finish with a packed verdict, or go on with
/// another stage.
pub enum Step {
    Finish(u64),
    Jump(u32),
}

/// The entry: notes the packet's length (for the counters, whichever stage ends) and
/// picks the first stage, or finishes at once for what is not to be translated.
#[inline(always)]
pub fn entry<P: Packet>(pkt: &P) -> Step {
    let Some(s) = scratch() else {
        return Step::Finish(pack(Action::Pass, Counter::DropInternal));
    };
    s.len = pkt.len() as u64;
    s.no_xdp_xmit = 0;
    s.nat_flag = 0;
    s.nat_undo[0] = 0;
    s.held[0] = 0;
    // Whether the translator is on is the translation stage's to ask: it reads the
    // settings anyway (each read is two map lookups).
    match pkt.l3_proto() {
        Some(ETH_P_IP) => Step::Jump(STAGE_XLAT4),
        Some(ETH_P_IPV6) => Step::Jump(STAGE_XLAT6),
        _ => Step::Finish(pack(Action::Pass, Counter::PassNotIp)),
    }
}

/// Translation of one direction. ICMP errors (a packet inside) and the errors the
/// translator answers itself (spec §6) go on to stages of their own.
#[inline(always)]
pub fn xlat<P: Packet>(pkt: &mut P, from_v6: bool) -> Step {
    let (Some(g), Some(s)) = (globals(), scratch()) else {
        return Step::Finish(pack(Action::Pass, Counter::PassDisabled));
    };
    if !g.flag(Globals::FLAG_ENABLED) {
        return Step::Finish(pack(Action::Pass, Counter::PassDisabled));
    }
    let v = if from_v6 {
        v6_to_v4::translate(pkt, g)
    } else {
        match v4_to_v6::source_route_failed(pkt, g) {
            0 => v4_to_v6::translate(pkt, g),
            v => v,
        }
    };
    // Stateful NAT64: a packet handed back untranslated (to the general path) or quoted
    // in the translator's own error gets its port back.
    if s.nat_flag == 1 && (is_reply(v) || v & 0xff == Counter::PassGeneralPath as u64) {
        nat::undo(pkt);
    }
    // A first or last fragment of an ICMP echo, translated (TC): the held stage.
    if s.held[0] != 0
        && matches!(kind(v), KIND_PASS | KIND_REDIRECT)
        && (v & 0xff == Counter::Xlat6to4Icmp as u64 || v & 0xff == Counter::Xlat4to6Icmp as u64)
    {
        s.verdict = v;
        return Step::Jump(STAGE_HELD);
    }
    // Decided on the packed value: merging two unpacked enums would copy an undefined
    // payload, which the verifier refuses to read.
    if is_icmp_error(v) {
        return Step::Jump(if from_v6 { STAGE_ERR6 } else { STAGE_ERR4 });
    }
    if is_alloc(v) {
        return Step::Jump(STAGE_ALLOC6);
    }
    if is_hairpin(v) {
        return Step::Jump(STAGE_HAIRPIN6);
    }
    if is_nat(v) {
        return Step::Jump(if from_v6 { STAGE_NAT6 } else { STAGE_NAT4 });
    }
    if is_reply(v) {
        s.verdict = v;
        return Step::Jump(if from_v6 { STAGE_REPLY6 } else { STAGE_REPLY4 });
    }
    Step::Finish(v)
}

/// RFC 7757 §4: an IPv6 packet whose IPv4 destination maps back to IPv6 leaves as IPv6.
#[inline(always)]
pub fn hairpin<P: Packet>(pkt: &mut P) -> u64 {
    v6_to_v4::hairpin(pkt)
}

/// Stateful NAT64: the BIB and the session, then translation again.
#[inline(always)]
pub fn nat<P: Packet>(pkt: &mut P, from_v6: bool) -> Step {
    if from_v6 { nat::nat6(pkt) } else { nat::nat4(pkt) }
}

/// A translated first or last fragment of an ICMP echo (see `held`).
#[inline(always)]
pub fn held<P: Packet>(pkt: &mut P) -> u64 {
    if !pkt.linearize() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    held::held(pkt)
}

/// A dynamic-pool address for the IPv6 source, then translation again.
#[inline(always)]
pub fn alloc<P: Packet>(pkt: &P) -> Step {
    pool::alloc(pkt)
}

/// An ICMP error and the packet inside it. An ICMPv6 error about a hairpinned packet,
/// translated, is for an IPv6 host again: it goes through the IPv4 side at once, as
/// though it had come in there (one pass, one hop, as the packet it is about).
#[inline(always)]
pub fn err<P: Packet>(pkt: &mut P, from_v6: bool) -> Step {
    let (Some(g), Some(s)) = (globals(), scratch()) else {
        return Step::Finish(pack(Action::Pass, Counter::DropInternal));
    };
    if !pkt.linearize() {
        return Step::Finish(pack(Action::Drop, Counter::DropInternal));
    }
    let v = if from_v6 {
        s.err_again = match pkt.load::<[u8; 16]>(P::L2_LEN + 24) {
            Some(d) => {
                s.dst6 = d;
                icmp_err::comes_back(g, &s.dst6)
            }
            None => 0,
        };
        icmp_err::v6_to_v4(pkt, g)
    } else {
        icmp_err::v4_to_v6(pkt, g)
    };
    if from_v6 && is_hairpin(v) {
        s.nat_flag = 0;
        s.nat_undo[0] = 0;
        s.held[0] = 0;
        return Step::Jump(STAGE_XLAT4);
    }
    Step::Finish(v)
}

/// The ICMP error the translator answers with (the request left by `xlat`).
#[inline(always)]
pub fn reply<P: Packet>(pkt: &mut P, to_v6: bool) -> u64 {
    let (Some(g), Some(s)) = (globals(), scratch()) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    let v = s.verdict;
    if !pkt.linearize() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if to_v6 { reply::icmp6(pkt, g, v) } else { reply::icmp4(pkt, g, v) }
}

/// The end of every stage: the outcome counted with the packet's length on arrival;
/// the packed result is handed on for the verdict.
#[inline(always)]
pub fn conclude(v: u64) -> u64 {
    let (len, no_xdp_xmit) = scratch().map(|s| (s.len as usize, s.no_xdp_xmit != 0)).unwrap_or((0, false));
    crate::counters::record(v, len, no_xdp_xmit);
    v
}

/// RFC 7915 §4.4 (IPv4) and §5.4 (IPv6): a packet dropped because one of its
/// addresses cannot be translated (`counter`) is answered with Destination
/// Unreachable, Communication Administratively Prohibited (ICMPv4 3/13, ICMPv6 1/1),
/// unless the operator switched that off (`icmp-errors-on-drop`). The reply stage
/// sends it, rate-limited, and never about an ICMP error, a fragment after the first
/// or to a source that is not one host; the drop is counted either way.
#[inline(always)]
pub fn refuse(g: &Globals, counter: Counter, ipv6: bool) -> u64 {
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
pub fn refuse_outcome(g: &Globals, outcome: u32, ipv6: bool) -> u64 {
    refuse(g, Counter::ALL.get(outcome as usize - 1).copied().unwrap_or(Counter::DropInternal), ipv6)
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

/// The EAM entry for an IPv4 address (one of a bulk load not yet complete does not
/// count); a dynamic-pool address held by a host maps like a /32 entry.
#[inline(always)]
fn eamt4(g: &Globals, a: [u8; 4]) -> Option<&'static EamEntry> {
    match EAMT4.get(Key4::new(a).key()).filter(|e| e.generation <= g.eam_gen) {
        Some(e) => Some(e),
        None if g.in_dyn_pool(a) => pool::lookup4(a),
        None => None,
    }
}

/// The EAM entry for an IPv6 address; with `pool`, a host holding a dynamic-pool
/// address maps like a /128 entry (pool6 destinations are not looked for there). The key lives in scratch memory: a 20-byte key on the stack costs 16
/// spilled bytes.
#[inline(always)]
fn eamt6(g: &Globals, key: &mut Key<[u8; 16]>, a: &[u8; 16], pool: bool) -> Option<&'static EamEntry> {
    key.prefix_len = 128;
    key.data = *a;
    match EAMT6.get(&*key).filter(|e| e.generation <= g.eam_gen) {
        Some(e) => Some(e),
        None if pool && g.flag(Globals::FLAG_DYNAMIC_POOL) => pool::lookup6(a),
        None => None,
    }
}

/// `eamt6` for an address held as words.
#[inline(always)]
fn eamt6w(g: &Globals, key: &mut Key6, a: &W6, pool: bool) -> Option<&'static EamEntry> {
    key.prefix_len = 128;
    key.data = *a;
    match EAMT6.get(key.key()).filter(|e| e.generation <= g.eam_gen) {
        Some(e) => Some(e),
        None if pool && g.flag(Globals::FLAG_DYNAMIC_POOL) => pool::lookup6(words::as_bytes(a)),
        None => None,
    }
}

/// Whether an IPv4 destination is IPv4-translatable (`ipv4-translatable`): an IPv6
/// host holds its pool6 form, so what is sent to it is for translation.
#[inline(always)]
fn ipv4_translatable(g: &Globals, a: [u8; 4]) -> bool {
    g.flag(Globals::FLAG_IPV4_TRANSLATABLE) && V4XLAT.get(Key4::new(a).key()).is_some()
}

#[inline(always)]
fn denylisted4(a: [u8; 4]) -> bool {
    DENYLIST4.get(Key4::new(a).key()).is_some()
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
fn finish<P: Packet>(pkt: &mut P, route: Route, fib: &bpf_fib_lookup, flow_hash: u32) -> Action {
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
