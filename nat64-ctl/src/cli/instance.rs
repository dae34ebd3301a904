//! A running instance as a process: `detach` and `reload`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};

use crate::{config::Config, load, status, sys};

pub fn detach(name: &str) -> Result<()> {
    let mut did = Vec::new();
    if let Some(pid) =
        std::fs::read_to_string(load::pid_file(name)).ok().and_then(|p| p.trim().parse::<i32>().ok())
        && sys::process_alive(pid)
    {
        // SAFETY: asks the instance's process to stop.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while sys::process_alive(pid) {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("instance '{name}' (pid {pid}) did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        did.push(format!("stopped instance '{name}' (pid {pid})"));
    }
    did.extend(crate::running::teardown(name, None)?);
    if did.is_empty() {
        println!("instance '{name}': nothing to detach");
    } else {
        println!("{}", did.join("; "));
    }
    Ok(())
}

/// `nat64-ctl reload`: checks the file here (a bad one is refused before the running
/// instance hears of it), then asks the instance (SIGHUP) and reports its answer.
pub fn reload(name: &str, config: Option<PathBuf>) -> Result<()> {
    let status = status::read_status(name);
    if status.is_null() {
        anyhow::bail!(
            "instance '{name}' has no status file {}; is it running?",
            load::status_file(name).display()
        );
    }
    let pid = status["pid"].as_i64().unwrap_or(0) as i32;
    if !sys::process_alive(pid) {
        anyhow::bail!(
            "instance '{name}': nat64-ctl run is not running (pid {pid}); start it to load a configuration"
        );
    }
    let path = match config {
        Some(p) => p.canonicalize().with_context(|| format!("--config {}", p.display()))?,
        None => PathBuf::from(status["config"].as_str().context("the status file names no config file")?),
    };
    if status["config"].as_str() != Some(&*path.to_string_lossy()) {
        anyhow::bail!(
            "--config {}: the instance reloads its own file ({}); edit that one",
            path.display(),
            status["config"].as_str().unwrap_or("?")
        );
    }
    let cfg = Config::load_for(&path, Some(name))?;
    if cfg.instance != name {
        anyhow::bail!("instance: {:?}: the file is for another instance than '{name}'", cfg.instance);
    }
    let before = status["last-reload"]["at"].clone();
    // SAFETY: asks the instance's process to reload.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = status::read_status(name);
        let r = &now["last-reload"];
        if r["at"] != before && !r["at"].is_null() {
            if r["ok"] == true {
                println!("instance '{name}': reloaded {}", path.display());
                return Ok(());
            }
            anyhow::bail!(
                "instance '{name}' refused the new configuration, the running one stays: {}",
                r["error"].as_str().unwrap_or("?")
            );
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("instance '{name}' did not answer the reload within 30 s");
        }
    }
}
