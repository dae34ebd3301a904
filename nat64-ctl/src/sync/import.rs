//! A peer's sessions into this node's tables: the import program (`nat64-ebpf`'s
//! `sync_import`), loaded with the instance's maps and run by `BPF_PROG_RUN` with up to
//! [`SYNC_IMPORT_MAX`] records at a time.

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::ProgramFd,
};
use nat64_common::maps::{Bib4Key, Bib6Key, MAP_NAT_SYNC_IN, SYNC_IMPORT_MAX, SyncImport, SyncRecord};

use super::wire::SessionRecord;
use crate::sweep::prog_run;

/// The import program in the eBPF object (never attached; run by [`Importer`]).
pub const IMPORT_PROGRAM: &str = "nat64_sync_import";

/// What imports did, summed over their runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Sessions made (with their BIB entries when this node had none).
    pub made: u64,
    /// Sessions this node held already, their lifetime or TCP state moved on.
    pub refreshed: u64,
    /// Sessions ended because the peer's ended.
    pub ended: u64,
    /// Refused: this node does not hold the pool4 address, or maps the IPv4 or IPv6
    /// transport address to another.
    pub conflicts: u64,
    /// Refused for want of room in the tables (or an unknown protocol).
    pub failed: u64,
}

/// The import program and its map.
pub struct Importer {
    prog: ProgramFd,
    io: Array<MapData, SyncImport>,
}

impl Importer {
    /// Loads the import program into `ebpf` (whose maps it then works on).
    pub fn load(ebpf: &mut Ebpf) -> Result<Self> {
        crate::load::load_entry(ebpf, IMPORT_PROGRAM)?;
        let prog = ebpf
            .program(IMPORT_PROGRAM)
            .with_context(|| format!("the eBPF object has no program {IMPORT_PROGRAM}"))?
            .fd()?
            .try_clone()?;
        let map = ebpf
            .take_map(MAP_NAT_SYNC_IN)
            .with_context(|| format!("the eBPF object has no map {MAP_NAT_SYNC_IN}"))?;
        Ok(Self { prog, io: Array::try_from(map)? })
    }

    /// Makes or moves on `records` as of `now` (boot-time ns; `None`: the clock's).
    pub fn import(&mut self, records: &[SessionRecord], now: Option<u64>) -> Result<Imported> {
        let mut sum = Imported::default();
        for chunk in records.chunks(SYNC_IMPORT_MAX) {
            let mut io =
                SyncImport { now: now.unwrap_or(0), count: chunk.len() as u32, ..Default::default() };
            for (slot, r) in io.records.iter_mut().zip(chunk) {
                *slot = record(r);
            }
            self.io.set(0, io, 0).context("writing NAT_SYNC_IN")?;
            let ret = prog_run(&self.prog).context("running the sync import (BPF_PROG_RUN)")?;
            if ret != 0 {
                bail!("the sync import found no NAT settings (returned {ret})");
            }
            let done = self.io.get(&0, 0).context("reading NAT_SYNC_IN")?;
            sum.made += done.made as u64;
            sum.refreshed += done.refreshed as u64;
            sum.ended += done.ended as u64;
            sum.conflicts += done.conflicts as u64;
            sum.failed += done.failed as u64;
        }
        Ok(sum)
    }
}

/// A record as the import program takes it.
fn record(r: &SessionRecord) -> SyncRecord {
    SyncRecord {
        v6: Bib6Key { addr: r.v6, port: r.v6_port, proto: r.proto, _pad: 0 },
        v4: Bib4Key { addr: r.v4.octets(), port: r.v4_port, proto: r.proto, _pad: 0 },
        remote: r.remote.octets(),
        remote_port: r.remote_port,
        state: r.state,
        flags: if r.ended { SyncRecord::ENDED } else { 0 },
        lifetime_ms: r.lifetime_ms,
    }
}
