//! IPv4 and IPv6 prefixes as the configuration writes them: ipnet's `Ipv4Net` and
//! `Ipv6Net`, read strictly (host bits are refused) with errors that say what is wrong.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    ops::Deref,
    str::FromStr,
};

use anyhow::{Result, anyhow, bail};
use ipnet::{Ipv4Net, Ipv6Net};

/// What the prefix code needs of an address family.
pub(super) trait Family: Copy + FromStr + fmt::Display {
    const NAME: &'static str;
    const WIDTH: u8;
    const OTHER: &'static str;
    /// ipnet's prefix of this family.
    type Net: Copy + PartialEq + FromStr + fmt::Display + From<Self>;
    fn trunc(net: Self::Net) -> Self::Net;
    fn is_other_family(s: &str) -> bool;
}

impl Family for Ipv4Addr {
    const NAME: &'static str = "IPv4";
    const WIDTH: u8 = 32;
    const OTHER: &'static str = "IPv6";
    type Net = Ipv4Net;
    fn trunc(net: Ipv4Net) -> Ipv4Net {
        net.trunc()
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv6Addr>().is_ok()
    }
}

impl Family for Ipv6Addr {
    const NAME: &'static str = "IPv6";
    const WIDTH: u8 = 128;
    const OTHER: &'static str = "IPv4";
    type Net = Ipv6Net;
    fn trunc(net: Ipv6Net) -> Ipv6Net {
        net.trunc()
    }
    fn is_other_family(s: &str) -> bool {
        s.parse::<Ipv4Addr>().is_ok()
    }
}

/// Why `net` is not a valid prefix, if it is not: host bits are set. A prefix with
/// host bits is almost always a typo for another prefix; taking it silently would
/// translate a range the operator did not mean.
fn host_bits<A: Family>(net: A::Net) -> Option<String> {
    let trunc = A::trunc(net);
    (trunc != net).then(|| format!("host bits are set (did you mean {trunc}?)"))
}

/// A prefix (`ADDR/LEN`, or an address alone: all of it) read by ipnet; the errors say
/// which part is wrong and how.
fn parse_prefix<A: Family>(s: &str) -> Result<A::Net> {
    let net = match s.split_once('/') {
        None => s.parse::<A>().ok().map(A::Net::from),
        Some(_) => s.parse::<A::Net>().ok(),
    };
    match net {
        Some(net) => match host_bits::<A>(net) {
            Some(problem) => bail!("{s:?}: {problem}"),
            None => Ok(net),
        },
        None => Err(why_not::<A>(s)),
    }
}

/// What is wrong with `s`, which ipnet refused.
fn why_not<A: Family>(s: &str) -> anyhow::Error {
    let (addr_s, len_s) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    if addr_s.parse::<A>().is_err() {
        let what = if len_s.is_some() { format!("{addr_s:?} is not") } else { "not".to_string() };
        let hint = if A::is_other_family(addr_s) {
            format!(" (that is an {} address)", A::OTHER)
        } else {
            String::new()
        };
        return anyhow!("{s:?}: {what} an {} address{hint}", A::NAME);
    }
    match len_s {
        Some(l) if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) => {
            anyhow!("{s:?}: prefix length {l:?} is not a number")
        }
        Some(l) => anyhow!("{s:?}: prefix length {} is longer than {}", l.trim_start_matches('0'), A::WIDTH),
        None => anyhow!("{s:?}: not an {} prefix", A::NAME),
    }
}

macro_rules! prefix {
    ($(#[$doc:meta])* $name:ident, $net:ty, $addr:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($net);

        impl $name {
            /// `addr/len`; an error if `len` is longer than the address.
            pub fn new(addr: $addr, len: u8) -> Result<Self> {
                <$net>::new(addr, len)
                    .map(Self)
                    .map_err(|_| anyhow!("prefix length {len} is longer than {}", <$addr as Family>::WIDTH))
            }

            /// The prefix of one address.
            pub fn host(addr: $addr) -> Self {
                Self(<$net>::from(addr))
            }

            /// ipnet's value.
            pub fn net(&self) -> $net {
                self.0
            }

            /// Whether `other` lies inside `self`.
            pub fn contains(&self, other: &Self) -> bool {
                self.0.contains(&other.0)
            }

            pub fn overlaps(&self, other: &Self) -> bool {
                self.contains(other) || other.contains(self)
            }

            pub fn contains_addr(&self, a: $addr) -> bool {
                self.0.contains(&a)
            }

            /// Why this is not a valid prefix (host bits set), if it is not.
            pub fn problem(&self) -> Option<String> {
                host_bits::<$addr>(self.0)
            }
        }

        impl Deref for $name {
            type Target = $net;

            fn deref(&self) -> &$net {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = anyhow::Error;

            fn from_str(s: &str) -> Result<Self> {
                parse_prefix::<$addr>(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0.to_string())
            }
        }
    };
}

prefix!(
    /// An IPv4 prefix (ipnet's, parsed without host bits).
    Prefix4,
    Ipv4Net,
    Ipv4Addr
);
prefix!(
    /// An IPv6 prefix (ipnet's, parsed without host bits).
    Prefix6,
    Ipv6Net,
    Ipv6Addr
);

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
