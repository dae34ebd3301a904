//! The translation engine (RFC 7915), written once over [`Packet`] for every attach
//! point, as a pipeline of stages (`entry`, `xlat`, `err`, `reply`) that the programs
//! chain by tail calls; the per-direction modules do the work.

pub(crate) mod held;
mod icmp_err;
mod l4;
mod lookup;
mod memo;
pub(crate) mod nat;
mod pool;
mod reply;
mod simopen;
mod step;
mod v4_to_v6;
mod v6_to_v4;

use nat64_common::{counters::Counter, maps::Globals, stages};
pub use step::Step;

use crate::{
    hdr::{ETH_P_IP, ETH_P_IPV6},
    maps::{globals, scratch},
    packet::Packet,
    verdict::{Action, KIND_PASS, KIND_REDIRECT, Verdict, pack},
};

/// The entry: notes the packet's length (for the counters, whichever stage ends) and
/// picks the first stage, or finishes at once for what is not to be translated.
#[inline(always)]
pub fn entry<P: Packet>(pkt: &P) -> Step {
    let Some(s) = scratch() else {
        return Step::Finish(pack(Action::Pass, Counter::DropInternal));
    };
    s.len = pkt.len() as u64;
    s.no_xdp_xmit = 0;
    s.nat.flag = 0;
    s.nat.undo[0] = 0;
    s.held.note[0] = 0;
    // Whether the translator is on is the translation stage's to ask: it reads the
    // settings anyway (each read is two map lookups).
    match pkt.l3_proto() {
        Some(ETH_P_IP) => Step::Jump(stages::XLAT4),
        Some(ETH_P_IPV6) => Step::Jump(stages::XLAT6),
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
            v => Verdict::from_raw(v),
        }
    };
    // Stateful NAT64: a packet handed back untranslated (to the general path) or quoted
    // in the translator's own error gets its port back.
    if s.nat.flag == 1 && (v.is_reply() || v.counter_slot() == Counter::PassGeneralPath as u64) {
        nat::rewrite::undo(pkt);
    }
    // A first or last fragment of an ICMP echo, translated (TC): the held stage.
    if s.held.note[0] != 0
        && matches!(v.kind(), KIND_PASS | KIND_REDIRECT)
        && (v.counter_slot() == Counter::Xlat6to4Icmp as u64
            || v.counter_slot() == Counter::Xlat4to6Icmp as u64)
    {
        s.verdict = v.raw();
        return Step::Jump(stages::HELD);
    }
    // Decided on the packed value: merging two unpacked enums would copy an undefined
    // payload, which the verifier refuses to read.
    if v.is_icmp_error() {
        return Step::Jump(if from_v6 { stages::ERR6 } else { stages::ERR4 });
    }
    if v.is_alloc() {
        return Step::Jump(stages::ALLOC6);
    }
    if v.is_hairpin() {
        return Step::Jump(stages::HAIRPIN6);
    }
    if v.is_nat() {
        return Step::Jump(if from_v6 { stages::NAT6 } else { stages::NAT4 });
    }
    if v.is_reply() {
        s.verdict = v.raw();
        return Step::Jump(if from_v6 { stages::REPLY6 } else { stages::REPLY4 });
    }
    Step::Finish(v)
}

/// RFC 7757 §4: an IPv6 packet whose IPv4 destination maps back to IPv6 leaves as IPv6.
#[inline(always)]
pub fn hairpin<P: Packet>(pkt: &mut P) -> Verdict {
    v6_to_v4::hairpin(pkt)
}

/// Stateful NAT64: the BIB and the session, then translation again.
#[inline(always)]
pub fn nat<P: Packet>(pkt: &mut P, from_v6: bool) -> Step {
    if from_v6 { nat::nat6(pkt) } else { nat::nat4(pkt) }
}

/// A translated first or last fragment of an ICMP echo (see `held`).
#[inline(always)]
pub fn held<P: Packet>(pkt: &mut P) -> Verdict {
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
        s.err.again = match pkt.load::<[u8; 16]>(P::L2_LEN + 24) {
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
    if from_v6 && v.is_hairpin() {
        s.nat.flag = 0;
        s.nat.undo[0] = 0;
        s.held.note[0] = 0;
        return Step::Jump(stages::XLAT4);
    }
    Step::Finish(v)
}

/// The ICMP error the translator answers with (the request left by `xlat`).
#[inline(always)]
pub fn reply<P: Packet>(pkt: &mut P, to_v6: bool) -> Verdict {
    let (Some(g), Some(s)) = (globals(), scratch()) else {
        return pack(Action::Drop, Counter::DropInternal);
    };
    let v = Verdict::from_raw(s.verdict);
    if !pkt.linearize() {
        return pack(Action::Drop, Counter::DropInternal);
    }
    if to_v6 { reply::icmp6(pkt, g, v) } else { reply::icmp4(pkt, g, v) }
}

/// The end of every stage: the outcome counted with the packet's length on arrival;
/// the packed result is handed on for the verdict.
#[inline(always)]
pub fn conclude(v: Verdict) -> Verdict {
    let (len, no_xdp_xmit) = scratch().map(|s| (s.len as usize, s.no_xdp_xmit != 0)).unwrap_or((0, false));
    crate::counters::record(v, len, no_xdp_xmit);
    v
}
