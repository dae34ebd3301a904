//! Per-CPU packet and byte counters.

use nat64_common::counters::{Counter, Kind};

use crate::{maps::COUNTERS, packet::Action};

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

/// Counts the outcome; a translated packet also counts how it left.
#[inline(always)]
pub fn record(c: Counter, action: Action, bytes: usize) {
    bump(c, bytes);
    if matches!(c.kind(), Kind::Translated) && action != Action::Tx {
        match action {
            Action::Redirect(_) => bump(Counter::FwdRedirect, bytes),
            _ => bump(Counter::FwdKernel, bytes),
        }
    }
}
