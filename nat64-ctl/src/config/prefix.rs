//! IPv4 and IPv6 prefixes as the configuration writes them: parsing with errors that
//! say what is wrong, host bits, containment and overlap.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use anyhow::{Result, anyhow, bail};

/// What the prefix code needs of an address family.
pub(super) trait Family: Copy + FromStr + fmt::Display {
    const NAME: &'static str;
    const WIDTH: u8;
    const OTHER: &'static str;
    fn to_bits(self) -> u128;
    fn from_bits(bits: u128) -> Self;
    fn is_other_family(s: &str) -> bool;
}

impl Family for Ipv4Addr {
    const NAME: &'static str = "IPv4";
    const WIDTH: u8 = 32;
    const OTHER: &'static str = "IPv6";
    fn to_bits(self) -> u128 {
        u32::from(self).into()
    }
    fn from_bits(bits: u128) -> Self {
        Ipv4Addr::from(bits as u32)
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv6Addr>().is_ok()
    }
}

impl Family for Ipv6Addr {
    const NAME: &'static str = "IPv6";
    const WIDTH: u8 = 128;
    const OTHER: &'static str = "IPv4";
    fn to_bits(self) -> u128 {
        self.into()
    }
    fn from_bits(bits: u128) -> Self {
        bits.into()
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv4Addr>().is_ok()
    }
}

/// The high `len` bits of a `width`-bit number.
pub(super) fn net_mask(len: u8, width: u8) -> u128 {
    let len = len.min(width);
    if len == 0 { 0 } else { (u128::MAX << (128 - len)) >> (128 - width) }
}

/// Whether `b/blen` lies inside `a/alen`.
pub(super) fn bits_contain(a: u128, alen: u8, b: u128, blen: u8, width: u8) -> bool {
    alen <= blen && (a ^ b) & net_mask(alen, width) == 0
}

/// Why `addr/len` is not a valid prefix, if it is not.
pub(super) fn prefix_problem<A: Family>(addr: A, len: u8) -> Option<String> {
    if len > A::WIDTH {
        return Some(format!("prefix length {len} is longer than {}", A::WIDTH));
    }
    let bits = addr.to_bits();
    let net = bits & net_mask(len, A::WIDTH);
    // A prefix with host bits set is almost always a typo for another prefix; taking
    // it silently would translate a range the operator did not mean.
    (net != bits).then(|| format!("host bits are set (did you mean {}/{len}?)", A::from_bits(net)))
}

pub(super) fn parse_prefix<A: Family>(s: &str) -> Result<(A, u8)> {
    let (addr_s, len_s) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(addr) = addr_s.parse::<A>() else {
        let what = if len_s.is_some() { format!("{addr_s:?} is not") } else { "not".to_string() };
        let hint = if A::is_other_family(addr_s) {
            format!(" (that is an {} address)", A::OTHER)
        } else {
            String::new()
        };
        bail!("{s:?}: {what} an {} address{hint}", A::NAME);
    };
    let len = match len_s {
        None => A::WIDTH,
        Some(l) if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) => {
            bail!("{s:?}: prefix length {l:?} is not a number")
        }
        Some(l) => match l.parse::<u8>() {
            Ok(n) => n,
            Err(_) => bail!("{s:?}: prefix length {l} is longer than {}", A::WIDTH),
        },
    };
    if let Some(problem) = prefix_problem(addr, len) {
        bail!("{s:?}: {problem}");
    }
    Ok((addr, len))
}

/// An IPv4 prefix without host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix4 {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv6 prefix without host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Prefix4 {
    /// Whether `other` lies inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        bits_contain(Family::to_bits(self.addr), self.len, Family::to_bits(other.addr), other.len, 32)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn contains_addr(&self, a: Ipv4Addr) -> bool {
        self.contains(&Prefix4 { addr: a, len: 32 })
    }
}

impl Prefix6 {
    /// Whether `other` lies inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        bits_contain(Family::to_bits(self.addr), self.len, Family::to_bits(other.addr), other.len, 128)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn contains_addr(&self, a: Ipv6Addr) -> bool {
        self.contains(&Prefix6 { addr: a, len: 128 })
    }
}

impl FromStr for Prefix4 {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_prefix(s).map(|(addr, len)| Self { addr, len })
    }
}

impl FromStr for Prefix6 {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_prefix(s).map(|(addr, len)| Self { addr, len })
    }
}

impl fmt::Display for Prefix4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}/{}", self.addr, self.len))
    }
}

impl fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}/{}", self.addr, self.len))
    }
}

/// The netmask of an IPv4 prefix length.
pub fn mask4(len: u8) -> u32 {
    net_mask(len, 32) as u32
}

/// A list of IPv4 prefixes under config key `key`; errors name `key[index]`.
pub(super) fn prefixes4<S: AsRef<str>>(key: &str, list: &[S]) -> Result<Vec<Prefix4>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| s.as_ref().parse::<Prefix4>().map_err(at(format!("{key}[{i}]"))))
        .collect()
}

/// Puts the key in front of an error, in the same message (not as anyhow context) so
/// that `{}` shows all of it.
pub(crate) fn at(key: impl fmt::Display) -> impl FnOnce(anyhow::Error) -> anyhow::Error {
    move |e| anyhow!("{key}: {e:#}")
}

/// An address of family `A` under config key `key`, or an error saying what it is instead.
pub(crate) fn parse_addr<A: Family>(key: &str, s: &str) -> Result<A> {
    s.parse::<A>().map_err(|_| {
        let hint = if s.contains('/') {
            " (give the address alone, without a prefix length)".to_string()
        } else if A::is_other_family(s) {
            format!(" (that is an {} address)", A::OTHER)
        } else {
            String::new()
        };
        anyhow!("{key}: {s:?}: not an {} address{hint}", A::NAME)
    })
}
