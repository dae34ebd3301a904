//! The address tables as the stages ask them: EAM entries (with the dynamic pool's
//! addresses), IPv4-translatable prefixes, denylist4.

use aya_ebpf::maps::lpm_trie::Key;
use nat64_common::{
    maps::{EamEntry, Globals},
    words::{self, W6},
};

use super::pool;
use crate::maps::{DENYLIST4, EAMT4, EAMT6, Key4, Key6, V4XLAT};

/// The EAM entry for an IPv4 address (one of a bulk load not yet complete does not
/// count); a dynamic-pool address held by a host maps like a /32 entry.
#[inline(always)]
pub(super) fn eamt4(g: &Globals, a: [u8; 4]) -> Option<&'static EamEntry> {
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
pub(super) fn eamt6(
    g: &Globals,
    key: &mut Key<[u8; 16]>,
    a: &[u8; 16],
    pool: bool,
) -> Option<&'static EamEntry> {
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
pub(super) fn eamt6w(g: &Globals, key: &mut Key6, a: &W6, pool: bool) -> Option<&'static EamEntry> {
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
pub(super) fn ipv4_translatable(g: &Globals, a: [u8; 4]) -> bool {
    g.flag(Globals::FLAG_IPV4_TRANSLATABLE) && V4XLAT.get(Key4::new(a).key()).is_some()
}

#[inline(always)]
pub(super) fn denylisted4(a: [u8; 4]) -> bool {
    DENYLIST4.get(Key4::new(a).key()).is_some()
}
