//! Map names, keys and values shared by the eBPF programs and `nat64-ctl`.
//!
//! All values are `#[repr(C)]` plain data with explicit padding so both sides agree
//! byte for byte.

/// Array map of two [`Globals`] slots: the translator's configuration. The data path
/// reads the slot named by [`MAP_GLOBALS_ACTIVE`]; nat64-ctl writes the other slot and
/// then flips the selector, so a packet never sees a half-written configuration.
pub const MAP_GLOBALS: &str = "GLOBALS";
/// Array map, one `u32`: the active slot of [`MAP_GLOBALS`] (0 or 1).
pub const MAP_GLOBALS_ACTIVE: &str = "GLOBALS_ACTIVE";
/// LPM trie keyed by IPv4 prefix: the EAMT, IPv4 side.
pub const MAP_EAMT4: &str = "EAMT4";
/// LPM trie keyed by IPv6 prefix: the EAMT, IPv6 side.
pub const MAP_EAMT6: &str = "EAMT6";
/// LPM trie keyed by IPv4 prefix: denylist4 (pool6 only).
pub const MAP_DENYLIST4: &str = "DENYLIST4";
/// Per-CPU array of [`crate::counters::CounterValue`], indexed by [`crate::counters::Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";

/// Devmap of the interfaces the fast path may redirect to (key = value = ifindex).
pub const MAP_TX_PORTS: &str = "TX_PORTS";
pub const TX_PORTS_MAX_ENTRIES: u32 = 64;

/// Per-CPU token bucket for the ICMP errors the translator sends (spec §6).
pub const MAP_RATELIMIT: &str = "RATELIMIT";
/// ICMP errors per second per CPU, and the burst allowed.
pub const ICMP_ERRORS_PER_SEC: u64 = 1000;
pub const ICMP_ERRORS_BURST: u64 = 50;

/// Capacity of each EAMT trie.
pub const EAMT_MAX_ENTRIES: u32 = 131_072;
/// Capacity of denylist4.
pub const DENYLIST4_MAX_ENTRIES: u32 = 4096;

/// The translator's global settings (one entry of [`MAP_GLOBALS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    /// RFC 6052 prefix (pool6); only the first `pool6_len / 8` bytes are meaningful.
    pub pool6: [u8; 16],
    /// pool6 length in bits, 0 when no pool6 is configured.
    pub pool6_len: u8,
    pub _pad0: [u8; 3],
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The translator's own IPv4 address (valid with `FLAG_HAS_IPV4_ADDR`).
    pub ipv4_addr: [u8; 4],
    /// The translator's own IPv6 address (valid with `FLAG_HAS_IPV6_ADDR`).
    pub ipv6_addr: [u8; 16],
    /// RFC 7915 lowest-ipv6-mtu.
    pub lowest_ipv6_mtu: u32,
    /// RFC 6791 pool for the sources of ICMPv4 errors from untranslatable IPv6 routers
    /// (length 0: none, use `ipv4_addr`).
    pub rfc6791v4: [u8; 4],
    pub rfc6791v4_len: u8,
    /// Likewise for ICMPv6 errors from untranslatable IPv4 routers.
    pub rfc6791v6_len: u8,
    pub _pad1: [u8; 2],
    pub rfc6791v6: [u8; 16],
    /// Interface index of the general path's XDP side (0: no general path). Packets
    /// arriving there were routed by the kernel, which already counted the hop.
    pub general_ifindex: u32,
}

impl Globals {
    /// The configuration has been written; until then every packet passes.
    pub const FLAG_ENABLED: u32 = 1 << 0;
    pub const FLAG_HAS_IPV4_ADDR: u32 = 1 << 1;
    pub const FLAG_HAS_IPV6_ADDR: u32 = 1 << 2;
    /// Switch off the RFC 6052 §3.1 Well-Known-Prefix rule.
    pub const FLAG_WKP_ALLOW_NON_GLOBAL: u32 = 1 << 3;
    /// Compute the checksum of unfragmented IPv4 UDP with checksum 0 (else drop).
    pub const FLAG_AMEND_UDP_CHECKSUM_ZERO: u32 = 1 << 4;
    /// Set the IPv6 traffic class to zero instead of copying the IPv4 TOS.
    pub const FLAG_ZEROIZE_TRAFFIC_CLASS: u32 = 1 << 5;
    /// CLAT (RFC 6877): IPv4 from a local client (source in the EAMT) is translated
    /// whatever its destination, which maps through pool6 (the PLAT prefix).
    pub const FLAG_CLAT: u32 = 1 << 6;

    pub const fn zeroed() -> Self {
        Self {
            pool6: [0; 16],
            pool6_len: 0,
            _pad0: [0; 3],
            flags: 0,
            ipv4_addr: [0; 4],
            ipv6_addr: [0; 16],
            lowest_ipv6_mtu: 1280,
            rfc6791v4: [0; 4],
            rfc6791v4_len: 0,
            rfc6791v6_len: 0,
            _pad1: [0; 2],
            rfc6791v6: [0; 16],
            general_ifindex: 0,
        }
    }

    #[inline(always)]
    pub const fn flag(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    #[inline(always)]
    pub const fn has_ipv4_addr(&self) -> bool {
        self.flag(Self::FLAG_HAS_IPV4_ADDR)
    }

    #[inline(always)]
    pub const fn has_ipv6_addr(&self) -> bool {
        self.flag(Self::FLAG_HAS_IPV6_ADDR)
    }
}

/// One EAMT entry (RFC 7757), stored as the value of both tries so that a match on
/// either side has everything it needs to map the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EamEntry {
    pub v4: [u8; 4],
    pub v4_len: u8,
    pub v6_len: u8,
    pub _pad: [u8; 2],
    pub v6: [u8; 16],
}

impl EamEntry {
    /// `v4_len` and `v6_len` must leave equal suffixes (`32 - v4_len == 128 - v6_len`);
    /// host bits of both prefixes are cleared.
    pub const fn new(v4: [u8; 4], v4_len: u8, v6: [u8; 16], v6_len: u8) -> Self {
        let mask = crate::addr::prefix_mask4(v4_len);
        let v4 = (u32::from_be_bytes(v4) & mask).to_be_bytes();
        let mut v6c = v6;
        let low = (u32::from_be_bytes([v6[12], v6[13], v6[14], v6[15]]) & mask).to_be_bytes();
        v6c[12] = low[0];
        v6c[13] = low[1];
        v6c[14] = low[2];
        v6c[15] = low[3];
        Self { v4, v4_len, v6_len, _pad: [0; 2], v6: v6c }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` data with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for super::Globals {}
    unsafe impl aya::Pod for super::EamEntry {}
    unsafe impl aya::Pod for crate::counters::CounterValue {}
}
