//! Shared helpers for the nat64 test suites: packet builders with independently
//! computed checksums, a BPF_PROG_TEST_RUN harness, and network-namespace labs.

pub mod clat;
pub mod lab;
pub mod packet;
pub mod sync_load;
pub mod xdp;

/// Fails the test loudly unless it runs as root: these tests load eBPF programs and
/// create network namespaces, and a skipped test must never count as passed.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "these tests need root (CAP_BPF, CAP_NET_ADMIN): run them with sudo");
}

/// Pins the calling thread to CPU `cpu` (modulo the CPUs online), for what keeps
/// per-CPU state: the dynamic pool's ring positions, the next-hop cache, a generator
/// per CPU. (Not available_parallelism: it counts the cgroup's CPU quota, not the CPUs.)
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    let rc = unsafe {
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0, "pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
}
