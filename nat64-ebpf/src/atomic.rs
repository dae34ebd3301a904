//! Atomic adds on map memory. The BPF target of Rust offers no atomic read-modify-write
//! (its `AtomicU64` has loads and stores only), while the kernel has the instruction
//! (`BPF_ATOMIC | BPF_FETCH`, kernel 5.12): written here in assembly.

/// Adds `v` to the `u64` at `p` atomically and returns what it held before.
///
/// # Safety
/// `p` points to a live, 8-byte aligned `u64` in map memory.
#[inline(always)]
pub unsafe fn fetch_add(p: *mut u64, v: u64) -> u64 {
    let mut r = v;
    // SAFETY: the caller's promise; the instruction reads and writes `*p` only.
    unsafe {
        core::arch::asm!(
            "{r} = atomic_fetch_add((u64 *)({p} + 0), {r})",
            p = in(reg) p,
            r = inout(reg) r,
        )
    };
    r
}

/// Takes one off the `u64` at `p` unless it is 0 already; what it held before.
///
/// # Safety
/// As [`fetch_add`]. Only one program at a time takes off (the sweep); others only add,
/// so the value read cannot reach 0 before the subtraction.
#[inline(always)]
pub unsafe fn take_one(p: *mut u64) -> u64 {
    // SAFETY: the caller's promise.
    unsafe {
        if core::ptr::read_volatile(p) == 0 {
            return 0;
        }
        fetch_add(p, u64::MAX)
    }
}

/// Stores `new` at `p` if it holds `old`, atomically; returns what it held (`old`
/// when the store happened).
///
/// # Safety
/// As [`fetch_add`].
#[inline(always)]
pub unsafe fn compare_exchange(p: *mut u64, old: u64, new: u64) -> u64 {
    let mut r0 = old;
    // SAFETY: the caller's promise; the instruction reads and writes `*p` only.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64({p} + 0, r0, {new})",
            p = in(reg) p,
            new = in(reg) new,
            inout("r0") r0,
        )
    };
    r0
}
