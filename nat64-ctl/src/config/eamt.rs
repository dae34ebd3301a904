//! EAMT entries (RFC 7757): one mapping, the checks that keep the table one-to-one
//! (one entry, or a bulk file sorted in O(n log n)), and bulk files.

use std::{fmt, path::Path};

use anyhow::{Context as _, Result, anyhow, bail};
use nat64_common::maps::EamEntry;

use super::prefix::{Prefix4, Prefix6};

/// One explicit address mapping (RFC 7757).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EamtEntry {
    pub v4: Prefix4,
    pub v6: Prefix6,
}

impl fmt::Display for EamtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.v4, self.v6)
    }
}

impl EamtEntry {
    pub fn new(v4: Prefix4, v6: Prefix6) -> Result<Self> {
        let e = Self { v4, v6 };
        // A prefix made with `new` (not read by FromStr) may have host bits.
        if let Some(p) = v4.problem() {
            bail!("EAM {e}: IPv4 side: {p}");
        }
        if let Some(p) = v6.problem() {
            bail!("EAM {e}: IPv6 side: {p}");
        }
        // RFC 7757 §3.2: the IPv4 suffix bits follow the IPv6 prefix, so they must fit in
        // the IPv6 side's host bits (more host bits there are zero, and not looked at).
        let (s4, s6) = (32 - v4.prefix_len() as u32, 128 - v6.prefix_len() as u32);
        if s4 > s6 {
            bail!(
                "EAM {e}: the IPv4 suffix ({s4} bits) is longer than the IPv6 suffix ({s6} bits); \
                 the IPv6 prefix must be /{} or shorter (RFC 7757 §3.2)",
                96 + v4.prefix_len()
            );
        }
        Ok(e)
    }

    pub fn to_entry(&self) -> EamEntry {
        EamEntry::new(
            self.v4.addr().octets(),
            self.v4.prefix_len(),
            self.v6.addr().octets(),
            self.v6.prefix_len(),
        )
    }
}

/// Checks `new` against `existing`, naming a conflicting entry with `name(index, entry)`.
pub(super) fn eamt_conflict(
    existing: &[EamtEntry],
    new: &EamtEntry,
    name: impl Fn(usize, &EamtEntry) -> String,
) -> Result<()> {
    if let Some(i) = existing.iter().position(|e| e == new) {
        bail!("EAM {new} is already present ({})", name(i, &existing[i]));
    }
    // RFC 7757 tolerates overlapping entries (longest-prefix match picks one), but then
    // an address can leave through one entry and come back through another, so the
    // translation is no longer reversible. Keep the table one-to-one instead.
    for (i, e) in existing.iter().enumerate() {
        if e.v4.overlaps(&new.v4) {
            bail!("EAM {new}: its IPv4 prefix {} overlaps {}", new.v4, name(i, e));
        }
        if e.v6.overlaps(&new.v6) {
            bail!("EAM {new}: its IPv6 prefix {} overlaps {}", new.v6, name(i, e));
        }
    }
    Ok(())
}

/// Refuses an entry that is already present or whose IPv4 or IPv6 prefix overlaps
/// one of `existing`.
pub fn check_eamt_insert(existing: &[EamtEntry], new: &EamtEntry) -> Result<()> {
    eamt_conflict(existing, new, |_, e| format!("existing entry {e}"))
}

/// The first two entries (indices into `entries`) whose IPv4 prefixes (`true`) or IPv6
/// prefixes (`false`) overlap or are equal, found by sorting: O(n log n), for tables of
/// a hundred thousand entries.
pub fn eamt_first_overlap(entries: &[EamtEntry]) -> Option<(usize, usize, bool)> {
    fn scan(ranges: &[(u128, u128)]) -> Option<(usize, usize)> {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_unstable_by_key(|&i| ranges[i]);
        let mut widest: Option<usize> = None;
        for &i in &order {
            if let Some(w) = widest {
                if ranges[i].0 <= ranges[w].1 {
                    return Some((w, i));
                }
                if ranges[i].1 > ranges[w].1 {
                    widest = Some(i);
                }
            } else {
                widest = Some(i);
            }
        }
        None
    }
    let v4: Vec<(u128, u128)> = entries
        .iter()
        .map(|e| (u32::from(e.v4.network()).into(), u32::from(e.v4.broadcast()).into()))
        .collect();
    if let Some((a, b)) = scan(&v4) {
        return Some((a, b, true));
    }
    let v6: Vec<(u128, u128)> =
        entries.iter().map(|e| (u128::from(e.v6.network()), u128::from(e.v6.broadcast()))).collect();
    scan(&v6).map(|(a, b)| (a, b, false))
}

/// Reads an EAMT file for `map add --file`: one entry a line, `IPV4[/LEN] IPV6[/LEN]`;
/// blank lines and `#` comments are skipped. Errors name the file and line.
pub fn parse_eamt_file(path: &Path) -> Result<Vec<(usize, EamtEntry)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |e: anyhow::Error| anyhow!("{}:{}: {e:#}", path.display(), n + 1);
        let mut words = line.split_whitespace();
        let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
            return Err(at(anyhow!("{line:?}: want two words, an IPv4 and an IPv6 prefix")));
        };
        let v4: Prefix4 = a.parse().map_err(at)?;
        let v6: Prefix6 = b.parse().map_err(at)?;
        out.push((n + 1, EamtEntry::new(v4, v6).map_err(at)?));
    }
    if out.is_empty() {
        bail!("{}: no entries", path.display());
    }
    Ok(out)
}

/// `map add --force`: overlapping (nested) entries are accepted and resolved by
/// longest-prefix match, as in Jool; an identical IPv4 or IPv6 prefix is still refused,
/// because it would silently replace the other entry in one direction only.
pub fn check_eamt_insert_forced(existing: &[EamtEntry], new: &EamtEntry) -> Result<()> {
    for e in existing {
        if e.v4 == new.v4 {
            bail!("EAM {new}: the IPv4 prefix {} is already mapped by existing entry {e}", new.v4);
        }
        if e.v6 == new.v6 {
            bail!("EAM {new}: the IPv6 prefix {} is already mapped by existing entry {e}", new.v6);
        }
    }
    Ok(())
}
