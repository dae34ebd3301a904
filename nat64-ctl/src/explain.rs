//! `nat64-ctl translate`: how one address maps, through which rule, or why not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nat64_common::{
    addr::{self, Rule, Untranslatable},
    maps::{EamEntry, Globals},
    rfc6052,
};

use crate::{
    config::{Config, Prefix4},
    tables::Tables,
};

/// Where `explain` looks things up: a running instance's maps (the kernel's own
/// longest-prefix match) or a configuration file (the same match done in user space).
pub trait Lookup {
    fn globals(&self) -> anyhow::Result<Globals>;
    fn eam4(&self, a: Ipv4Addr) -> Option<EamEntry>;
    fn eam6(&self, a: Ipv6Addr) -> Option<EamEntry>;
    fn denylisted(&self, a: Ipv4Addr) -> bool;
    /// The longest `ipv4-translatable` prefix holding `a`.
    fn translatable(&self, a: Ipv4Addr) -> Option<Prefix4>;
    /// The dynamic-pool mapping of an IPv4 / IPv6 address (a file holds none).
    fn pool4(&self, _a: Ipv4Addr) -> Option<EamEntry> {
        None
    }
    fn pool6(&self, _a: Ipv6Addr) -> Option<EamEntry> {
        None
    }
}

impl Lookup for Tables {
    fn globals(&self) -> anyhow::Result<Globals> {
        Tables::globals(self)
    }
    fn eam4(&self, a: Ipv4Addr) -> Option<EamEntry> {
        self.eam_lookup4(a)
    }
    fn eam6(&self, a: Ipv6Addr) -> Option<EamEntry> {
        self.eam_lookup6(a)
    }
    fn denylisted(&self, a: Ipv4Addr) -> bool {
        self.denylist4_contains(a)
    }
    fn translatable(&self, a: Ipv4Addr) -> Option<Prefix4> {
        longest(&self.ipv4_translatable().ok()?, a)
    }
    fn pool4(&self, a: Ipv4Addr) -> Option<EamEntry> {
        self.pool4.get(&a.octets(), 0).ok().map(|e| e.eam)
    }
    fn pool6(&self, a: Ipv6Addr) -> Option<EamEntry> {
        self.pool6.get(&a.octets(), 0).ok().map(|e| e.eam)
    }
}

impl Lookup for Config {
    fn globals(&self) -> anyhow::Result<Globals> {
        Ok(Config::globals(self))
    }
    fn eam4(&self, a: Ipv4Addr) -> Option<EamEntry> {
        let t: Vec<EamEntry> = self.eamt.iter().map(|e| e.to_entry()).collect();
        addr::eam_longest4(&t, a.octets()).copied()
    }
    fn eam6(&self, a: Ipv6Addr) -> Option<EamEntry> {
        let t: Vec<EamEntry> = self.eamt.iter().map(|e| e.to_entry()).collect();
        addr::eam_longest6(&t, &a.octets()).copied()
    }
    fn denylisted(&self, a: Ipv4Addr) -> bool {
        self.denylist4.iter().any(|p| p.contains_addr(a))
    }
    fn translatable(&self, a: Ipv4Addr) -> Option<Prefix4> {
        longest(&self.ipv4_translatable, a)
    }
}

fn longest(list: &[Prefix4], a: Ipv4Addr) -> Option<Prefix4> {
    list.iter().filter(|p| p.contains_addr(a)).max_by_key(|p| p.prefix_len()).copied()
}

fn reason(e: Untranslatable) -> &'static str {
    match e {
        Untranslatable::NoMapping => "no EAMT entry covers it and it is outside pool6 (or no pool6 is set)",
        Untranslatable::Reserved => {
            "it is in a range never translated (0/8, 127/8, 169.254/16, 224/4, 240/4 with 255.255.255.255)"
        }
        Untranslatable::OwnAddress => "it is the translator's own address",
        Untranslatable::Denylisted => "it is in denylist4",
        Untranslatable::WkpNonGlobal => {
            "pool6 is the Well-Known Prefix 64:ff9b::/96 and the address is not global (RFC 6052 §3.1; \
             set \"wkp-allow-non-global\" to allow it)"
        }
    }
}

fn in_pool6(g: &Globals, a: Ipv6Addr) -> bool {
    g.pool6_len != 0 && rfc6052::in_pool6(&a.octets(), &g.pool6, g.pool6_len)
}

fn eam_text(e: &EamEntry) -> String {
    format!("EAM {}/{} <-> {}/{}", Ipv4Addr::from(e.v4), e.v4_len, Ipv6Addr::from(e.v6), e.v6_len)
}

fn pool6_text(g: &Globals) -> String {
    format!("pool6 {}/{}", Ipv6Addr::from(g.pool6), g.pool6_len)
}

fn dyn_pool_text(g: &Globals) -> String {
    format!("dynamic pool {}/{}", Ipv4Addr::from(g.dyn_pool), g.dyn_pool_len)
}

/// One line saying what `a` becomes and why, or why it is not translated.
pub fn explain(tables: &impl Lookup, a: IpAddr) -> anyhow::Result<String> {
    let g = tables.globals()?;
    let dynamic = g.flag(Globals::FLAG_DYNAMIC_POOL);
    Ok(match a {
        IpAddr::V4(v4) if g.in_dyn_pool(v4.octets()) && tables.eam4(v4).is_none() => match tables.pool4(v4) {
            Some(e) => format!("{v4} -> {} ({}, held now)", Ipv6Addr::from(e.v6), dyn_pool_text(&g)),
            None => format!(
                "{v4} is not translated: no host holds this address of the {} now (answered with ICMP host unreachable)",
                dyn_pool_text(&g)
            ),
        },
        IpAddr::V6(v6) if dynamic && tables.eam6(v6).is_none() && !in_pool6(&g, v6) => match tables.pool6(v6)
        {
            Some(e) => format!("{v6} -> {} ({}, held now)", Ipv4Addr::from(e.v4), dyn_pool_text(&g)),
            None => {
                format!("{v6} -> an address of the {}, handed out on its first packet", dyn_pool_text(&g))
            }
        },
        IpAddr::V4(v4) => {
            let eam = tables.eam4(v4);
            let deny = eam.is_none() && tables.denylisted(v4);
            match addr::map4to6(&g, v4.octets(), eam.as_ref(), deny) {
                Ok((v6, Rule::Eam)) => {
                    format!(
                        "{v4} -> {} ({})",
                        Ipv6Addr::from(v6),
                        eam_text(&eam.expect("EAM rule has an entry"))
                    )
                }
                Ok((v6, Rule::Pool6)) => match tables.translatable(v4) {
                    Some(p) => format!(
                        "{v4} -> {} ({}; ipv4-translatable {p}: IPv4 packets addressed to it are translated)",
                        Ipv6Addr::from(v6),
                        pool6_text(&g)
                    ),
                    None => format!("{v4} -> {} ({})", Ipv6Addr::from(v6), pool6_text(&g)),
                },
                Err(e) => format!("{v4} is not translated: {}", reason(e)),
            }
        }
        IpAddr::V6(v6) => {
            let eam = tables.eam6(v6);
            match addr::map6to4(&g, &v6.octets(), eam.as_ref(), |x| tables.denylisted(Ipv4Addr::from(x))) {
                Ok((v4, Rule::Eam)) => {
                    format!(
                        "{v6} -> {} ({})",
                        Ipv4Addr::from(v4),
                        eam_text(&eam.expect("EAM rule has an entry"))
                    )
                }
                Ok((v4, Rule::Pool6)) => format!("{v6} -> {} ({})", Ipv4Addr::from(v4), pool6_text(&g)),
                Err(e) => format!("{v6} is not translated: {}", reason(e)),
            }
        }
    })
}
