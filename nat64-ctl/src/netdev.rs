//! The kernel's `netdev` generic-netlink family (Linux >= 6.3): which XDP features a
//! device has (`dev-get`, attribute `xdp-features`), and notifications when they change
//! (`dev-change-ntf` in the `mgmt` group). Only what deciding the fast path's redirect
//! targets needs, on raw netlink sockets of this network namespace.

use std::{
    io, mem,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// `NETDEV_XDP_ACT_NDO_XMIT`: the device takes frames redirected by XDP programs.
pub const XDP_ACT_NDO_XMIT: u64 = 4;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: i32 = 270;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;

/// A generic-netlink socket bound to the `netdev` family.
pub struct Netdev {
    sock: OwnedFd,
    family: u16,
    mgmt: Option<u32>,
    seq: u32,
}

impl Netdev {
    /// `Ok(None)` when this kernel has no `netdev` family (before 6.3): XDP features
    /// cannot be asked there.
    pub fn open() -> Result<Option<Self>> {
        let sock = socket()?;
        let mut me = Self { sock, family: GENL_ID_CTRL, mgmt: None, seq: 0 };
        let mut req = Vec::new();
        attr(&mut req, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
        let reply = match me.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &req)? {
            Ok(r) => r,
            Err(e) if e == libc::ENOENT => return Ok(None),
            Err(e) => {
                bail!("asking the kernel for the netdev netlink family: {}", io::Error::from_raw_os_error(e))
            }
        };
        let mut family = None;
        for (t, v) in attrs(&reply) {
            match t {
                CTRL_ATTR_FAMILY_ID if v.len() >= 2 => family = Some(u16::from_ne_bytes([v[0], v[1]])),
                CTRL_ATTR_MCAST_GROUPS => {
                    for (_, group) in attrs(v) {
                        let (mut name, mut id) = (None, None);
                        for (t, v) in attrs(group) {
                            match t {
                                CTRL_ATTR_MCAST_GRP_NAME => name = Some(v),
                                CTRL_ATTR_MCAST_GRP_ID if v.len() >= 4 => {
                                    id = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
                                }
                                _ => {}
                            }
                        }
                        if name == Some(b"mgmt\0".as_slice()) {
                            me.mgmt = id;
                        }
                    }
                }
                _ => {}
            }
        }
        me.family = family.context("the kernel's answer for the netdev family has no family id")?;
        Ok(Some(me))
    }

    /// The device's `xdp-features` (NETDEV_XDP_ACT_* bits); `Ok(None)` when there is no
    /// such device.
    pub fn xdp_features(&mut self, ifindex: u32) -> Result<Option<u64>> {
        let mut req = Vec::new();
        attr(&mut req, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
        let reply = match self.request(self.family, NETDEV_CMD_DEV_GET, &req)? {
            Ok(r) => r,
            Err(e) if e == libc::ENODEV => return Ok(None),
            Err(e) => bail!("netdev dev-get of ifindex {ifindex}: {}", io::Error::from_raw_os_error(e)),
        };
        let features =
            attrs(&reply).find(|(t, v)| *t == NETDEV_A_DEV_XDP_FEATURES && v.len() >= 8).map(|(_, v)| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v[..8]);
                u64::from_ne_bytes(b)
            });
        Ok(Some(features.with_context(|| format!("netdev dev-get of ifindex {ifindex}: no xdp-features"))?))
    }

    /// A second socket of the same family that receives the `mgmt` group's
    /// notifications (devices added, removed, their XDP features changed), waiting at
    /// most `timeout` per read.
    pub fn subscribe(&self, timeout: Duration) -> Result<OwnedFd> {
        let group = self.mgmt.context("the kernel's netdev family has no mgmt notification group")?;
        let sock = socket()?;
        // Bound, so that it has a port id of its own: the kernel skips listeners whose id
        // is its own (0) when it multicasts.
        bind(&sock, 0).map_err(|e| anyhow::anyhow!("binding the netdev notification socket: {e}"))?;
        setsockopt(&sock, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group)
            .map_err(|e| anyhow::anyhow!("joining the netdev mgmt group: {e}"))?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as _,
        };
        setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
            .map_err(|e| anyhow::anyhow!("setting a receive timeout on the netdev socket: {e}"))?;
        Ok(sock)
    }

    /// Sends one request and returns the attributes of its answer, or the kernel's
    /// error number.
    fn request(&mut self, family: u16, cmd: u8, attrs: &[u8]) -> Result<Result<Vec<u8>, i32>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = 16 + 4 + attrs.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&[cmd, 1, 0, 0]);
        msg.extend_from_slice(attrs);
        // SAFETY: send(2) of a buffer we own, of its length.
        let sent = unsafe { libc::send(self.sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            bail!("sending a generic-netlink request: {}", io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = recv(&self.sock, &mut buf)?;
            for (h, body) in messages(&buf[..n]) {
                if h.seq != seq {
                    continue;
                }
                match h.kind {
                    NLMSG_ERROR => {
                        let e =
                            body.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                        return Ok(Err(-e));
                    }
                    NLMSG_DONE => return Ok(Err(libc::ENOENT)),
                    _ => return Ok(Ok(body.get(4..).unwrap_or_default().to_vec())),
                }
            }
        }
    }
}

/// Binds a netlink socket of this process to the multicast `groups` (a bitmask; 0 for
/// none), which also gives it a port id of its own.
pub fn bind(sock: &OwnedFd, groups: u32) -> io::Result<()> {
    // SAFETY: a zeroed sockaddr_nl is valid; the fields set are plain integers.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    let len = mem::size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: bind(2) with the address and its size.
    let rc = unsafe { libc::bind(sock.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// setsockopt(2) with a plain value of its size.
pub fn setsockopt<T>(sock: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    let len = mem::size_of::<T>() as u32;
    // SAFETY: the value is a plain, initialised `T` of the size given.
    let rc = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) };
    if fd < 0 {
        bail!("generic-netlink socket: {}", io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One read from a netlink socket: its length, 0 when the receive timeout passed;
/// messages lost for want of buffer room (ENOBUFS) read as an empty batch too.
pub fn recv(sock: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    loop {
        // SAFETY: recv(2) into a buffer we own, of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => return Ok(0),
            _ => bail!("reading a netlink socket: {e}"),
        }
    }
}

struct Header {
    kind: u16,
    seq: u32,
}

/// The netlink messages in one read: header and body.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let h = Header {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
        };
        let body = &buf[16..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((h, body))
    })
}

/// The attributes (type, payload) in `buf`.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            return None;
        }
        let t = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        let v = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((t, v))
    })
}

fn attr(out: &mut Vec<u8>, t: u16, v: &[u8]) {
    out.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&t.to_ne_bytes());
    out.extend_from_slice(v);
    out.resize(align4(out.len()), 0);
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut b = Vec::new();
        attr(&mut b, 2, b"netdev\0");
        attr(&mut b, 1, &7u32.to_ne_bytes());
        assert_eq!(b.len(), 12 + 8);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(got, vec![(2, b"netdev\0".to_vec()), (1, 7u32.to_ne_bytes().to_vec())]);
    }

    #[test]
    fn truncated_attributes_end_the_walk() {
        let mut b = Vec::new();
        attr(&mut b, 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(attrs(&b[..10]).count(), 0, "a length past the end is not read");
        assert_eq!(attrs(&[4, 0]).count(), 0);
    }
}
