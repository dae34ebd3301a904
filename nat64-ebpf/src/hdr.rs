//! Header sizes and protocol numbers: the bottom layer, imported by every other.

pub const ETH_LEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
/// An ICMP header up to its rest-of-header word (either family).
pub const ICMP_HLEN: usize = 8;
/// An IPv6 Fragment header.
pub const FRAG_HLEN: usize = 8;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
