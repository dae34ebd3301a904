//! `"sync"`: session synchronisation with other stateful NAT64 nodes (`crate::sync`).

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};

use super::raw::RawSync;
use crate::sync::wire::SyncKey;

/// The checked `"sync"` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    /// The UDP address this node takes its peers' datagrams on (and sends from).
    pub listen: SocketAddr,
    /// The other nodes' `listen` addresses.
    pub peers: Vec<SocketAddr>,
    pub key_file: PathBuf,
    /// The shared secret, read from `key_file` when the configuration is loaded.
    pub key: SyncKey,
}

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr> {
    let a: SocketAddr = s.parse().map_err(|_| {
        anyhow::anyhow!(
            "{key}: {s:?}: not an address and port (\"192.0.2.1:6464\" or \"[2001:db8::1]:6464\")"
        )
    })?;
    if a.port() == 0 {
        bail!("{key}: {s:?}: give a port (not 0)");
    }
    if a.ip().is_multicast() {
        bail!("{key}: {s:?}: a multicast address; give the nodes' unicast addresses");
    }
    Ok(a)
}

/// The key file: an absolute path to a regular file only its owner may read, holding
/// at least [`SyncKey::MIN_LEN`] bytes.
fn key_from(path: &str) -> Result<SyncKey> {
    let key = "sync.key-file";
    let p = Path::new(path);
    if !p.is_absolute() {
        bail!("{key}: {path:?}: give an absolute path");
    }
    let meta = std::fs::metadata(p).map_err(|e| anyhow::anyhow!("{key}: {path}: {e}"))?;
    if !meta.is_file() {
        bail!("{key}: {path}: not a regular file");
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{key}: {path}: readable or writable by others than its owner (mode {mode:04o}): `chmod 600 {path}`"
        );
    }
    let bytes = std::fs::read(p).map_err(|e| anyhow::anyhow!("{key}: {path}: {e}"))?;
    SyncKey::from_file_bytes(&bytes).map_err(|e| anyhow::anyhow!("{key}: {path}: {e}"))
}

pub(super) fn check(raw: &RawSync) -> Result<Sync> {
    let listen = socket_addr("sync.listen", &raw.listen)?;
    if raw.peers.is_empty() {
        bail!("sync.peers: give at least one other node's sync address");
    }
    let mut peers: Vec<SocketAddr> = Vec::new();
    for (i, s) in raw.peers.iter().enumerate() {
        let k = format!("sync.peers[{i}]");
        let p = socket_addr(&k, s)?;
        if p.ip().is_unspecified() {
            bail!("{k}: {s:?}: the unspecified address; give the peer's own address");
        }
        if p.is_ipv4() != listen.is_ipv4() {
            bail!("{k}: {s:?}: another address family than sync.listen ({listen})");
        }
        if p == listen {
            bail!("{k}: {s:?}: this node's own sync.listen");
        }
        if let Some(j) = peers.iter().position(|o| *o == p) {
            bail!("{k}: {s:?}: the same as sync.peers[{j}]");
        }
        peers.push(p);
    }
    let key = key_from(&raw.key_file)?;
    Ok(Sync { listen, peers, key_file: PathBuf::from(&raw.key_file), key })
}
