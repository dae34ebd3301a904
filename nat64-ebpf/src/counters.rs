//! Per-CPU packet and byte counters.

use nat64_common::counters::{Counter, Kind};

use crate::{
    maps::COUNTERS,
    verdict::{KIND_DROP, KIND_HELD, KIND_REDIRECT, KIND_TX, Verdict},
};

#[inline(always)]
pub fn bump(c: Counter, bytes: usize) {
    if let Some(v) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot owned by this CPU for the duration of the program.
        unsafe {
            (*v).packets += 1;
            (*v).bytes += bytes as u64;
        }
    }
}

/// Counts the outcome of a packed result (`packet::pack`); a translated packet also
/// counts how it left (`no_xdp_xmit`: to the kernel because its egress takes no XDP
/// frames).
#[inline(always)]
pub fn record(v: Verdict, bytes: usize, no_xdp_xmit: bool) {
    let c = crate::verdict::Verdict::counter(v);
    bump(c, bytes);
    // A held fragment leaves later, counted with the fragment it leaves with.
    if matches!(c.kind(), Kind::Translated) && !matches!(v.kind(), KIND_TX | KIND_DROP | KIND_HELD) {
        match v.kind() {
            KIND_REDIRECT => bump(Counter::FwdRedirect, bytes),
            _ if no_xdp_xmit => bump(Counter::FwdKernelNoXdpXmit, bytes),
            _ => bump(Counter::FwdKernel, bytes),
        }
    }
}
