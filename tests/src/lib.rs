//! Shared helpers for the nat64 test suites: packet builders with independently
//! computed checksums, a BPF_PROG_TEST_RUN harness, and network-namespace labs.

pub mod lab;
pub mod packet;
pub mod xdp;
pub mod xlat;

/// Fails the test loudly unless it runs as root: these tests load eBPF programs and
/// create network namespaces, and a skipped test must never count as passed.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "these tests need root (CAP_BPF, CAP_NET_ADMIN): run them with sudo");
}
