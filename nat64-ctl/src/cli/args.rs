//! What every subcommand on a running instance starts from: the instance it names
//! and the tables pinned for it.

use anyhow::Result;

use crate::{load, tables::Tables};

pub fn instance_name(cli: &Option<String>) -> String {
    cli.clone().unwrap_or_else(load::default_instance)
}

pub fn open(name: &str) -> Result<Tables> {
    Tables::open_pinned(&load::find_running(name)?)
}
