//! A validated configuration written into the maps.

use anyhow::{Context as _, Result};

use crate::{config::Config, tables::Tables};

/// Writes a validated configuration into the maps. The globals go last: until they
/// are written (FLAG_ENABLED) the data path passes every packet untouched.
/// A dynamic pool starts with every address free (no state file is read).
pub fn apply_config(tables: &mut Tables, cfg: &Config) -> Result<()> {
    apply_config_with(tables, cfg, 0)?;
    if let Some(spec) = crate::pool::Spec::of(&tables.globals()?) {
        crate::pool::refill(tables, &spec)?;
    }
    Ok(())
}

pub(crate) fn apply_config_with(tables: &mut Tables, cfg: &Config, general_ifindex: u32) -> Result<()> {
    for e in &cfg.eamt {
        tables.eamt_add(e, false)?;
    }
    for p in &cfg.denylist4 {
        tables.denylist4_add(*p)?;
    }
    tables.ipv4_translatable_set(&cfg.ipv4_translatable)?;
    apply_nat64(tables, cfg)?;
    let mut g = cfg.globals();
    g.general_ifindex = general_ifindex;
    tables.set_globals(g)
}

/// Stateful NAT64's settings (before the mode switches on in the globals).
pub(crate) fn apply_nat64(tables: &mut Tables, cfg: &Config) -> Result<()> {
    let Some(n) = &cfg.nat64 else { return Ok(()) };
    let t = tables
        .nat
        .as_mut()
        .context("mode \"nat64\": the instance's maps have no BIB (pins of an older nat64-ctl)")?;
    t.apply(n)
}
