//! Telling the service manager how `run` is doing (sd_notify(3)): `KEY=value` lines in
//! a datagram to the Unix socket `NOTIFY_SOCKET` names (a path, or `@` and an abstract
//! name), when it names one. `READY=1` once the programs are attached and the maps
//! written; `RELOADING=1` around a reload; `STOPPING=1` on the way out; `STATUS=` a
//! line of what `status` shows. Without `NOTIFY_SOCKET` (not started by systemd's
//! `Type=notify`) nothing is sent.

use std::os::{
    linux::net::SocketAddrExt as _,
    unix::net::{SocketAddr, UnixDatagram},
};

use log::debug;

/// Sends `state` (newline-separated assignments); a failure is logged, never fatal:
/// the translator runs whether or not the service manager hears.
pub fn send(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let target = target.to_string_lossy().into_owned();
    let sent = UnixDatagram::unbound().and_then(|s| match target.strip_prefix('@') {
        Some(name) => s.send_to_addr(state.as_bytes(), &SocketAddr::from_abstract_name(name.as_bytes())?),
        None => s.send_to(state.as_bytes(), &target),
    });
    if let Err(e) = sent {
        debug!("NOTIFY_SOCKET {target}: {e}");
    }
}

/// `READY=1` with the status line.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}"));
}

/// `RELOADING=1`, stamped with the monotonic clock as systemd asks.
pub fn reloading() {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a timespec of ours.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

pub fn stopping() {
    send("STOPPING=1");
}
