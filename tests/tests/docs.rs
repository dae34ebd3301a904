//! The documentation against the code: every configuration key and every nat64-ctl
//! subcommand is documented, and every link in README.md and docs/ leads somewhere.

use std::{collections::BTreeSet, path::Path};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The top-level configuration keys, as the code knows them: serde lists them when it
/// meets a key it does not know.
fn config_keys() -> Vec<String> {
    let err = nat64_ctl::config::Config::from_json(r#"{"no-such-key-here": 1}"#).unwrap_err();
    let msg = format!("{err:#}");
    let list = msg.split("expected one of").nth(1).unwrap_or_else(|| panic!("no key list in {msg:?}"));
    let keys: Vec<String> = list.split('`').skip(1).step_by(2).map(str::to_string).collect();
    assert!(keys.len() > 30, "{keys:?}");
    keys
}

#[test]
fn every_configuration_key_is_documented() {
    let doc = read("docs/configuration.md");
    let missing: Vec<String> =
        config_keys().into_iter().filter(|k| !doc.contains(&format!("| `{k}` |"))).collect();
    assert!(missing.is_empty(), "keys without a row in docs/configuration.md: {missing:?}");
}

#[test]
fn every_subcommand_is_documented() {
    let doc = read("docs/nat64-ctl.md");
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `nat64-ctl ")).collect();
    let mut missing = Vec::new();
    for cmd in nat64_ctl::cli::subcommands() {
        let mut words = cmd.split(' ');
        let top = words.next().unwrap();
        let sub = words.next();
        let found = rows.iter().any(|r| {
            r.starts_with(&format!("| `nat64-ctl {top}"))
                && sub.is_none_or(|s| r.split(|c: char| !c.is_alphanumeric() && c != '-').any(|w| w == s))
        });
        if !found {
            missing.push(cmd);
        }
    }
    assert!(missing.is_empty(), "subcommands without a row in docs/nat64-ctl.md: {missing:?}");
}

#[test]
fn every_counter_is_documented_and_no_other() {
    let doc = read("docs/counters.md");
    // A row's first cell names one counter or several: `xlat_6to4_tcp`, `_udp`, ...
    // (a name starting with `_` replaces the first one's last part).
    let mut documented = BTreeSet::new();
    for l in doc.lines().filter(|l| l.starts_with("| `")) {
        let cell = l[2..].split(" |").next().unwrap_or("");
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = names.first() else { continue };
        if !first.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            continue;
        }
        for n in &names {
            let full = match n.strip_prefix('_') {
                Some(_) => format!("{}{n}", &first[..first.rfind('_').unwrap_or(0)]),
                None => n.to_string(),
            };
            documented.insert(full);
        }
    }
    let known: BTreeSet<String> =
        nat64_common::counters::Counter::ALL.iter().map(|c| c.name().to_string()).collect();
    let missing: Vec<&String> = known.difference(&documented).collect();
    let stale: Vec<&String> = documented.difference(&known).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/counters.md: missing {missing:?}, no such counter {stale:?}"
    );
}

/// GitHub's anchor for a heading.
fn slug(h: &str) -> String {
    h.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if l.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && l.starts_with('#') {
            out.insert(slug(l.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_link_leads_somewhere() {
    let mut files = vec!["README.md".to_string()];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut broken = Vec::new();
    for f in &files {
        let text = read(f);
        let dir = Path::new(f).parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.starts_with("http://") || target.starts_with("https://") || target.contains(' ') {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target, None),
            };
            let rel = if path.is_empty() { f.clone() } else { dir.join(path).to_string_lossy().into_owned() };
            let Ok(linked) = std::fs::read_to_string(root().join(&rel)) else {
                broken.push(format!("{f}: {target} (no file {rel})"));
                continue;
            };
            if let Some(a) = anchor
                && !anchors(&linked).contains(a)
            {
                broken.push(format!("{f}: {target} (no heading #{a} in {rel})"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_short_and_starts_with_the_two_commands() {
    let readme = read("README.md");
    assert!(readme.lines().count() <= 200, "README.md: {} lines", readme.lines().count());
    let first: Vec<&str> = readme.lines().take(5).collect();
    assert!(first.iter().any(|l| l.trim_start().starts_with("cargo xtask demo")), "{first:?}");
    assert!(first.iter().any(|l| l.trim_start().starts_with("cargo xtask test")), "{first:?}");
}
