//! The system calls nat64-ctl makes itself: interface ioctls, signals, the clock,
//! whether a process lives.

use std::fs;

use anyhow::{Context as _, Result, bail};

/// An `ifreq` ioctl (`request`) about `name`, asked of the kernel in this network
/// namespace (not through /sys, which under `nsenter --net` is the host's).
pub(crate) fn ifreq(name: &str, request: libc::c_ulong) -> Result<libc::ifreq> {
    let c = std::ffi::CString::new(name).with_context(|| format!("interface name {name:?}"))?;
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq holding a NUL-terminated name
    // shorter than IFNAMSIZ (checked by the config), and the socket closed after.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("{name}: socket: {}", std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
            *d = *s as libc::c_char;
        }
        let rc = libc::ioctl(fd, request, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            bail!("interface {name}: {err}");
        }
        Ok(req)
    }
}

/// The link-layer type (ARPHRD_*) and address of `name`.
pub(crate) fn hwaddr(name: &str) -> Result<(u16, [u8; 6])> {
    // SAFETY: SIOCGIFHWADDR fills the union's hardware-address member.
    let sa = unsafe { ifreq(name, libc::SIOCGIFHWADDR)?.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok((sa.sa_family, mac))
}

/// Whether `name` carries Ethernet frames (else it is an L3 device: WireGuard, TUN).
pub fn is_ethernet(name: &str) -> Result<bool> {
    Ok(hwaddr(name)?.0 == libc::ARPHRD_ETHER)
}

pub fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).with_context(|| format!("interface name {name:?}"))?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => bail!("interface {name} does not exist in this network namespace"),
        i => Ok(i),
    }
}

/// Whether process `pid` exists and has not exited (a zombie waiting for its parent
/// to reap it has).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Blocks SIGINT and SIGTERM so they are only taken by [`wait_for_signal`]: a signal
/// during start-up then still ends in a clean detach.
pub fn block_signals() -> Result<libc::sigset_t> {
    // SAFETY: plain libc signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        // `nat64-ctl pool flush` asks the running instance to refill the pool at once.
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGHUP);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            bail!("blocking signals failed");
        }
        Ok(set)
    }
}

/// Waits for one of the signals blocked by [`block_signals`].
pub fn wait_for_signal(set: &libc::sigset_t) -> Result<i32> {
    let mut sig = 0;
    // SAFETY: valid sigset and out pointer.
    if unsafe { libc::sigwait(set, &mut sig) } != 0 {
        bail!("sigwait failed");
    }
    Ok(sig)
}

/// Like [`wait_for_signal`], giving up after `timeout` (None: wait for ever).
pub fn wait_for_signal_timeout(
    set: &libc::sigset_t,
    timeout: Option<std::time::Duration>,
) -> Result<Option<i32>> {
    let Some(t) = timeout else { return wait_for_signal(set).map(Some) };
    let ts =
        libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as libc::c_long };
    // SAFETY: valid sigset and timespec; the siginfo out pointer may be null.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    if sig >= 0 {
        return Ok(Some(sig));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => bail!("sigtimedwait failed: {}", std::io::Error::last_os_error()),
    }
}

/// Milliseconds since the epoch, to tell one reload from the next.
pub fn unix_now_ms() -> u64 {
    std::time::UNIX_EPOCH.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn unix_now() -> u64 {
    std::time::UNIX_EPOCH.elapsed().map(|d| d.as_secs()).unwrap_or(0)
}

/// The kernel's boot-time clock in ns (what the data path stamps sessions with).
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Boot-time ns as Unix-time ns, by the two clocks' offset now.
pub fn wall_ns(boot_ns: u64) -> u64 {
    let now_boot = self::boot_ns();
    let now_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    now_wall.saturating_sub(now_boot.saturating_sub(boot_ns))
}
