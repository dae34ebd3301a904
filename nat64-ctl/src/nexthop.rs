//! Keeps the data path's next-hop cache honest. The programs keep, per CPU, the
//! answers of recent FIB lookups (egress, MACs) for up to 250 kernel ticks (a second
//! at HZ=250); every route, neighbour, address or link change the kernel announces in
//! this network namespace bumps `NEXTHOP_GEN`, and every cached answer of an older
//! generation is asked again.

use std::{io, os::fd::AsRawFd as _, sync::Mutex, thread};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use log::warn;
use nat64_common::maps::MAP_NEXTHOP_GEN;

/// The rtnetlink multicast groups whose messages can change a lookup's answer.
const GROUPS: u32 = (libc::RTMGRP_LINK
    | libc::RTMGRP_NEIGH
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV6_ROUTE) as u32;

/// The programs' `NEXTHOP_GEN` and its last value, once `watch` has started.
static GENERATION: Mutex<Option<(Array<MapData, u64>, u64)>> = Mutex::new(None);

/// Makes every CPU ask the FIB again (also for what rtnetlink does not announce:
/// nat64-ctl changing the ports the fast path may send out of).
pub fn bump() {
    let mut g = GENERATION.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((map, n)) = g.as_mut() {
        *n += 1;
        if let Err(e) = map.set(0, *n, 0) {
            warn!("next-hop cache: writing {MAP_NEXTHOP_GEN}: {e}");
        }
    }
}

/// Starts the watcher thread on the programs' `NEXTHOP_GEN` (taken from `ebpf`). It
/// runs as long as the process.
pub fn watch(ebpf: &mut Ebpf) -> Result<()> {
    let map = ebpf
        .take_map(MAP_NEXTHOP_GEN)
        .with_context(|| format!("the eBPF object has no map {MAP_NEXTHOP_GEN}"))?;
    let generation: Array<MapData, u64> = Array::try_from(map)?;
    let sock = socket()?;
    *GENERATION.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, 0));
    thread::Builder::new()
        .name("nexthop-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: recv into a buffer we own, of its length.
                let got = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if got < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EINTR) => continue,
                        // Messages were lost: what they said is unknown, so bump.
                        Some(libc::ENOBUFS) => {}
                        _ => {
                            warn!("next-hop watch stopped ({e}); cached next hops now expire after 250 kernel ticks only (1 s at HZ=250)");
                            return;
                        }
                    }
                }
                bump();
            }
        })
        .context("starting the next-hop watch thread")?;
    Ok(())
}

fn socket() -> Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2).
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        bail!("rtnetlink socket: {}", io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if let Err(e) = crate::netdev::bind(&fd, GROUPS) {
        bail!("binding the rtnetlink socket to route, neighbour, address and link changes: {e}");
    }
    Ok(fd)
}
