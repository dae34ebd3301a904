//! ICMP errors both ways (RFC 7915 §4.2-4.3, §5.2-5.3): the error's type, code and
//! pointer or MTU, and the packet inside it (addresses, IP header, transport checksum),
//! truncated to 1280 bytes (ICMPv6) or 576 bytes (ICMPv4), outer checksum recomputed.
//!
//! Layout change, IPv4 -> IPv6 (IPv6 -> IPv4 is the mirror image):
//!   [eth][IPv4 ihl][ICMP 8][inner IPv4 ihl'][inner payload ...]
//!   [eth][IPv6 40 ][ICMPv6 8][inner IPv6 40 (+8 fragment header)][inner payload ...]
//! The inner payload stays where it is; everything before it is rewritten.

mod common;
mod v4_to_v6;
mod v6_to_v4;

pub use common::comes_back;
pub use v4_to_v6::v4_to_v6;
pub use v6_to_v4::v6_to_v4;
