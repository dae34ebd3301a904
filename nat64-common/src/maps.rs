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

/// Devmap of the interfaces XDP programs may redirect to (key = value = ifindex):
/// the attached Ethernet ports that accept XDP frames (see [`MAP_PORTS`]).
pub const MAP_TX_PORTS: &str = "TX_PORTS";
pub const TX_PORTS_MAX_ENTRIES: u32 = 64;

/// Hash map, ifindex -> [`PortState`]: every Ethernet port nat64-ctl attached to, with
/// what the fast path may do with it. TC programs redirect into any of them
/// (bpf_redirect takes any device); XDP programs only into those that accept XDP frames
/// (in [`MAP_TX_PORTS`] too): an `XDP_REDIRECT` into a device without `ndo_xdp_xmit`
/// (a veth whose peer has neither GRO nor an XDP program, a bridge, some NIC drivers)
/// is dropped by the kernel after the program returned, so those packets go to the
/// kernel instead, counted as `fwd_kernel_no_xdp_xmit`. Kept up to date by nat64-ctl
/// from the kernel's `netdev` generic-netlink family.
pub const MAP_PORTS: &str = "PORTS";

/// One attached Ethernet port (a value of [`MAP_PORTS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortState {
    /// [`PortState::XDP_TARGET`] when XDP programs may redirect into it.
    pub flags: u32,
    /// Why not, or how it was decided: a [`PortWhy`] as a number.
    pub why: u32,
}

impl PortState {
    /// The port accepts XDP frames (it is in [`MAP_TX_PORTS`]).
    pub const XDP_TARGET: u32 = 1;

    pub fn xdp_target(&self) -> bool {
        self.flags & Self::XDP_TARGET != 0
    }
}

/// How a port's ability to take XDP frames was decided (`PortState::why`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortWhy {
    /// The kernel says it accepts XDP frames (`xdp-features` has `ndo-xmit`).
    NdoXmit = 0,
    /// A veth whose peer has neither GRO nor an XDP program.
    VethPeer = 1,
    /// A device whose driver has no XDP transmit (`ndo_xdp_xmit`): a bridge, some NICs.
    NoNdoXmit = 2,
    /// The kernel cannot tell (no `netdev` generic-netlink family, kernel < 6.3):
    /// taken as a redirect target, as before the check existed.
    Unknown = 3,
}

impl PortWhy {
    pub fn from_u32(v: u32) -> Option<Self> {
        [Self::NdoXmit, Self::VethPeer, Self::NoNdoXmit, Self::Unknown].into_iter().find(|w| *w as u32 == v)
    }
}

/// Per-CPU token bucket for the ICMP errors the translator sends (spec §6).
pub const MAP_RATELIMIT: &str = "RATELIMIT";
/// ICMP errors per second per CPU, and the burst allowed.
pub const ICMP_ERRORS_PER_SEC: u64 = 1000;
pub const ICMP_ERRORS_BURST: u64 = 50;

/// Hash map, IPv6 host address -> [`PoolEntry`]: the NAT64 dynamic pool's mappings
/// (one IPv4 address per IPv6 host), looked up for IPv6 sources the EAMT does not map.
pub const MAP_POOL6: &str = "POOL6";
/// Hash map, pool IPv4 address -> [`PoolEntry`]: the same mappings the other way. An
/// address is handed out by inserting it here (BPF_NOEXIST: one CPU wins), so this
/// map is the truth of which addresses are taken.
pub const MAP_POOL4: &str = "POOL4";
/// LRU hash map, IPv6 host address -> [`PoolDormant`]: the address a host had when
/// its mapping expired, offered to it again first should it come back.
pub const MAP_POOL_DORMANT: &str = "POOL_DORMANT";
/// Array of [`POOL_RING_SLOTS`] IPv4 addresses: the free addresses in the order they are
/// to be handed out (least recently used first), appended by nat64-ctl.
pub const MAP_POOL_RING: &str = "POOL_RING";
/// Array, two `u64`: [0] how many addresses nat64-ctl has ever appended to the ring
/// (the tail), [1] the floor: every free address has a copy at or after it, so a
/// CPU that lags behind it skips ahead (older copies would break the least recently
/// used order).
pub const MAP_POOL_TAIL: &str = "POOL_TAIL";
/// Per-CPU array, one `u64`: how far this CPU has read the ring. Each CPU walks the
/// ring on its own, skipping addresses another CPU took meanwhile: no locks.
pub const MAP_POOL_HEAD: &str = "POOL_HEAD";
/// Most addresses a dynamic pool may hold (a /16).
pub const POOL_MAX: u32 = 65_536;
/// Ring slots: nat64-ctl keeps at most one copy of each free address ahead of every
/// CPU, so twice the pool leaves room for the copies slower CPUs have not read yet.
pub const POOL_RING_SLOTS: u32 = 2 * POOL_MAX;
/// The data path refreshes a mapping's last use at most this often (ns), so that
/// busy hosts do not write the same cache line on every packet.
pub const POOL_REFRESH_NS: u64 = 1_000_000_000;

/// Array map, one `u64`: bumped by nat64-ctl on every route, neighbour, address or
/// link change; the data path's cached next hops of an older value are asked again.
/// Not pinned: each load of the programs has its own, and its nat64-ctl.
pub const MAP_NEXTHOP_GEN: &str = "NEXTHOP_GEN";

/// Array map, one `u64`: the [`LAYOUT`] of the maps, written by the nat64-ctl that
/// created them. A later nat64-ctl takes pinned maps over only when its layout is the
/// same (an upgrade that changed a map's layout must detach first).
pub const MAP_LAYOUT: &str = "LAYOUT";

/// A fingerprint of the pinned maps' layout: the sizes of their values and their
/// capacities, and a number to move when a meaning changes without a size.
pub const LAYOUT: u64 = {
    let parts: [u64; 18] = [
        3, // meaning revision
        core::mem::size_of::<PortBlock>() as u64,
        core::mem::size_of::<Globals>() as u64,
        core::mem::size_of::<EamEntry>() as u64,
        core::mem::size_of::<PoolEntry>() as u64,
        core::mem::size_of::<PoolDormant>() as u64,
        core::mem::size_of::<crate::counters::CounterValue>() as u64,
        crate::counters::COUNTER_SLOTS as u64,
        EAMT_MAX_ENTRIES as u64,
        POOL_MAX as u64,
        core::mem::size_of::<NatConfig>() as u64,
        core::mem::size_of::<Bib4Entry>() as u64,
        core::mem::size_of::<Session>() as u64,
        core::mem::size_of::<FragEntry>() as u64,
        core::mem::size_of::<NatEvent>() as u64,
        core::mem::size_of::<Subscriber>() as u64,
        core::mem::size_of::<Sweep>() as u64,
        core::mem::size_of::<HeldSyn>() as u64,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        h = (h ^ parts[i]).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
};

/// Capacity of each EAMT trie.
pub const EAMT_MAX_ENTRIES: u32 = 131_072;
/// Capacity of denylist4.
pub const DENYLIST4_MAX_ENTRIES: u32 = 4096;

/// LPM trie keyed by IPv4 prefix: the `ipv4-translatable` prefixes (RFC 6052 §2,
/// RFC 7915 §1.3), whose addresses are reached through pool6 when IPv4 packets are
/// addressed to them (IPv6 hosts holding IPv4-translatable addresses). Looked up only
/// with [`Globals::FLAG_IPV4_TRANSLATABLE`].
pub const MAP_V4XLAT: &str = "V4XLAT";
/// Capacity of the `ipv4-translatable` trie.
pub const V4XLAT_MAX_ENTRIES: u32 = 1024;

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
    /// The NAT64 dynamic pool (valid with `FLAG_DYNAMIC_POOL`): IPv4 prefix and length.
    pub dyn_pool: [u8; 4],
    pub dyn_pool_len: u8,
    pub _pad2: [u8; 3],
    /// Seconds an unused pool mapping lives (nat64-ctl's business, kept here so that
    /// every nat64-ctl command sees the running value).
    pub dyn_pool_lease: u32,
    /// EAMT entries of a generation above this one are not used yet (see
    /// [`EamEntry::generation`]).
    pub eam_gen: u32,
    /// Moved on by nat64-ctl with every write of the settings and every change of the
    /// address tables (EAMT, denylist4, `ipv4-translatable`): the data path's
    /// per-CPU memo of what an address maps to (`ADDR_MEMO`) holds answers of this
    /// value only.
    pub tables_gen: u32,
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
    /// NAT64 PLAT: IPv6 sources the EAMT does not map get an address from `dyn_pool`
    /// (POOL6/POOL4), and what they send goes through the kernel (its NAT44).
    pub const FLAG_DYNAMIC_POOL: u32 = 1 << 7;
    /// IPv4 destinations inside a prefix of [`MAP_V4XLAT`] are for translation (through
    /// pool6), as EAM-covered ones are.
    pub const FLAG_IPV4_TRANSLATABLE: u32 = 1 << 8;
    /// Stateful NAT64 (`"mode": "nat64"`, RFC 6146): IPv6 sources share pool4
    /// addresses by port, through the BIB and sessions (`MAP_NAT_CFG` and the rest).
    pub const FLAG_STATEFUL: u32 = 1 << 9;
    /// XDP hands translated TCP segments that carry data to the kernel (XDP_PASS) so
    /// that GRO merges them before it forwards them, instead of redirecting each.
    pub const FLAG_XDP_TCP_GRO: u32 = 1 << 10;
    /// RFC 7915 §4.4 and §5.4 switched off: a packet dropped because an address cannot
    /// be translated gets no ICMP error (Communication Administratively Prohibited).
    pub const FLAG_NO_DROP_ERRORS: u32 = 1 << 11;
    /// Stateful NAT64: an ICMPv4 error translated for an IPv6 host comes from the pool6
    /// form of the inner packet's destination (RFC 6146 §3.6's literal rule), not from
    /// the router that sent it (`"icmpv6-error-source": "inner-destination"`).
    pub const FLAG_ICMP6_SOURCE_INNER: u32 = 1 << 12;

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
            dyn_pool: [0; 4],
            dyn_pool_len: 0,
            _pad2: [0; 3],
            dyn_pool_lease: 0,
            eam_gen: 0,
            tables_gen: 0,
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

    /// Whether `a` lies in the dynamic pool (false without one).
    /// `pool6` as words (see [`crate::words`]): four aligned loads in the kernel
    /// programs, where LLVM copies a `[u8; 16]` byte by byte.
    #[inline(always)]
    pub fn pool6_words(&self) -> crate::words::W6 {
        // SAFETY: `pool6` lies 4-byte aligned in a `repr(C)` struct of alignment 4
        // (checked below); any bit pattern is a valid `u32`.
        unsafe { core::ptr::read(core::ptr::addr_of!(self.pool6).cast::<crate::words::W6>()) }
    }

    /// `ipv6_addr` as words.
    #[inline(always)]
    pub fn ipv6_addr_words(&self) -> crate::words::W6 {
        // SAFETY: as in `pool6_words`.
        unsafe { core::ptr::read(core::ptr::addr_of!(self.ipv6_addr).cast::<crate::words::W6>()) }
    }

    /// `ipv4_addr` as one word in memory order.
    #[inline(always)]
    pub fn ipv4_addr_word(&self) -> u32 {
        // SAFETY: as in `pool6_words`.
        unsafe { core::ptr::read(core::ptr::addr_of!(self.ipv4_addr).cast::<u32>()) }
    }

    /// Whether pool6 is the Well-Known Prefix (`ranges::is_wkp`).
    #[inline(always)]
    pub fn pool6_is_wkp(&self) -> bool {
        self.pool6_len == 96 && self.pool6_words() == crate::words::from_bytes(&crate::ranges::WKP)
    }

    #[inline(always)]
    pub const fn in_dyn_pool(&self, a: [u8; 4]) -> bool {
        let mask = crate::rfc6052::prefix_mask4(self.dyn_pool_len);
        self.flag(Self::FLAG_DYNAMIC_POOL)
            && u32::from_be_bytes(a) & mask == u32::from_be_bytes(self.dyn_pool) & mask
    }
}

/// One dynamic-pool mapping, the value of both POOL6 and POOL4: a /32 <-> /128 EAM
/// entry (so the translation treats it as one) and when it was last used.
// The word accessors read these fields as aligned `u32`s.
const _: () = {
    assert!(core::mem::align_of::<Globals>() >= 4 && core::mem::align_of::<EamEntry>() >= 4);
    assert!(core::mem::offset_of!(Globals, pool6) % 4 == 0);
    assert!(core::mem::offset_of!(Globals, ipv6_addr) % 4 == 0);
    assert!(core::mem::offset_of!(Globals, ipv4_addr) % 4 == 0);
    assert!(core::mem::offset_of!(EamEntry, v6) % 4 == 0);
};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolEntry {
    pub eam: EamEntry,
    pub _pad: u32,
    /// CLOCK_MONOTONIC_COARSE in ns (bpf_ktime_get_coarse_ns), refreshed by the data
    /// path at most every [`POOL_REFRESH_NS`].
    pub last_use: u64,
}

impl PoolEntry {
    pub const fn new(v4: [u8; 4], v6: [u8; 16], last_use: u64) -> Self {
        Self { eam: EamEntry::new(v4, 32, v6, 128), _pad: 0, last_use }
    }
}

/// What a host had when its mapping expired (value of POOL_DORMANT).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDormant {
    pub v4: [u8; 4],
    pub _pad: [u8; 4],
    /// When the mapping expired (Unix seconds), for nat64-ctl's least-recently-used order.
    pub freed: u64,
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
    /// The EAMT generation the entry belongs to: the data path uses it once the
    /// configuration's `eam_gen` has reached it. 0 for entries added one at a time;
    /// a bulk load writes all its entries with the next generation, then moves
    /// `eam_gen` on, so the data path sees all of them at once or none.
    pub generation: u32,
}

impl EamEntry {
    /// `v6` as words (see `Globals::pool6_words`).
    #[inline(always)]
    pub fn v6_words(&self) -> crate::words::W6 {
        // SAFETY: `v6` lies 4-byte aligned in a `repr(C)` struct of alignment 4.
        unsafe { core::ptr::read(core::ptr::addr_of!(self.v6).cast::<crate::words::W6>()) }
    }

    /// The IPv6 side must leave at least as many host bits as the IPv4 side
    /// (`32 - v4_len <= 128 - v6_len`, RFC 7757 §3.2); host bits of both prefixes are
    /// cleared.
    pub const fn new(v4: [u8; 4], v4_len: u8, v6: [u8; 16], v6_len: u8) -> Self {
        let mask = crate::rfc6052::prefix_mask4(v4_len);
        let v4 = (u32::from_be_bytes(v4) & mask).to_be_bytes();
        let mut v6c = v6;
        let mut i = 0;
        while i < 16 {
            let bit = 8 * i as u32;
            if bit >= v6_len as u32 {
                v6c[i] = 0;
            } else if bit + 8 > v6_len as u32 {
                v6c[i] &= 0xffu8 << (8 - (v6_len as u32 - bit));
            }
            i += 1;
        }
        Self { v4, v4_len, v6_len, _pad: [0; 2], v6: v6c, generation: 0 }
    }
}

/// Stateful NAT64 (RFC 6146, `"mode": "nat64"`): its settings (Array, one
/// [`NatConfig`]).
pub const MAP_NAT_CFG: &str = "NAT_CFG";
/// pool4 as the data path picks from it (Array of [`Pool4Slot`], index from
/// [`crate::nat::pick_address`]).
pub const MAP_NAT_POOL4: &str = "NAT_POOL4";
/// pool4's addresses (Hash: address -> its slot): an IPv4 packet to one of them is the
/// stateful translator's.
pub const MAP_NAT_ADDRS: &str = "NAT_ADDRS";
/// The value in [`MAP_NAT_ADDRS`] of a session-sync peer's pool4 address: translated
/// for the sessions taken over from the peer, never lent by this node.
pub const NAT_ADDR_PEER: u32 = u32::MAX;
/// The BIB, both ways (Hash [`Bib6Key`] -> [`Bib4Key`], Hash [`Bib4Key`] ->
/// [`Bib4Entry`]), and the sessions (Hash [`SessionKey`] -> [`Session`]). A session
/// is keyed by the IPv4 side alone: the IPv6 side's remote address is the pool6 form of
/// the IPv4 remote, so one map serves both directions.
pub const MAP_BIB6: &str = "BIB6";
pub const MAP_BIB4: &str = "BIB4";
pub const MAP_SESSIONS: &str = "SESSIONS";
/// Address-dependent filtering (Hash [`AdfKey`] -> u64): the remote addresses a mapping
/// has sessions with, whatever their ports, and how many (made with the sessions,
/// counted down by the sweep as they end, removed at 0).
pub const MAP_NAT_ADF: &str = "NAT_ADF";
/// Stateful NAT64 fragments (LRU Hash [`FragKey`] -> [`FragEntry`]): what the first
/// fragment of a datagram was mapped to, for the fragments after it, which carry no
/// ports. Least recently used entries make way: fragments of one datagram follow each
/// other closely.
pub const MAP_NAT_FRAGS: &str = "NAT_FRAGS";
pub const NAT_FRAGS_MAX_ENTRIES: u32 = 16384;
pub const NAT_POOL4_MAX: u32 = 256;
/// The capacity the programs' object gives the BIB, session and filtering maps;
/// nat64-ctl sizes them at load by `max-sessions` ([`nat_capacities`]).
pub const BIB_MAX_ENTRIES: u32 = 1 << 20;
pub const SESSIONS_MAX_ENTRIES: u32 = 1 << 20;

/// Each stateful map sized by `max-sessions` (`sessions`; 1 outside mode "nat64", where
/// they stay empty: a hash map's buckets take memory from its creation): BIB4 holds the
/// released entries too, so it gets as many as the sessions; a subscriber needs at
/// least one session, and a quarter of them is room for carriers' mixes. The SYNs held
/// for a simultaneous open are bounded by `max-simultaneous-opens` as they come, and
/// by [`NAT_SYNS_MAX_ENTRIES`] (or the sessions, if fewer). The dynamic port blocks'
/// maps get one entry per block (`blocks`, 1 without them).
pub fn nat_capacities(sessions: u32, blocks: u32) -> [(&'static str, u32); 8] {
    [
        (MAP_NAT_BLOCKS, blocks.max(1)),
        (MAP_NAT_FREE_BLOCKS, blocks.max(1)),
        (MAP_BIB6, sessions),
        (MAP_BIB4, sessions),
        (MAP_SESSIONS, sessions),
        (MAP_NAT_ADF, sessions),
        (MAP_NAT_SUBSCRIBERS, (sessions / 4).max(1)),
        (MAP_NAT_SYNS, sessions.min(NAT_SYNS_MAX_ENTRIES)),
    ]
}

/// The value of [`MAP_NAT_CFG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// The secret of [`crate::nat::siphash`] (port and address choice).
    pub key: [u64; 2],
    /// Slots of [`MAP_NAT_POOL4`] in use.
    pub pool4_count: u32,
    pub flags: u32,
    /// Session lifetimes in seconds (RFC 6146 §4).
    pub udp: u32,
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub icmp: u32,
    /// RFC 7422 port blocks (`port-block-size`; 0: off): ports per block, blocks per
    /// pool4 address, and the IPv6 prefix whose `block_host_len` subnets get a block
    /// each (see [`crate::nat::port_block`]).
    pub block_size: u32,
    pub blocks_per_addr: u32,
    pub block_prefix: [u8; 16],
    pub block_prefix_len: u8,
    pub block_host_len: u8,
    /// RFC 6888 REQ-4: the IPv6 prefix length that makes one subscriber (128: each
    /// host); the data path counts every subscriber's BIB entries in
    /// [`MAP_NAT_SUBSCRIBERS`] by its address cut to this length.
    pub subscriber_len: u8,
    pub _pad: u8,
    /// RFC 6888 REQ-4: the most BIB entries (ports and ICMP identifiers, every
    /// protocol) one subscriber may hold; 0: no limit.
    pub max_ports: u32,
    /// RFC 6888 REQ-8: seconds a port whose BIB entry ended stays out of use (kept in
    /// BIB4 with [`Bib4Entry::FLAG_RELEASED`]); 0: free at once.
    pub reuse_delay: u32,
    /// RFC 6146 §3.5.2.2: the most unsolicited IPv4 SYNs held at once for a
    /// simultaneous open (`max-simultaneous-opens`, see [`MAP_NAT_SYNS`]); 0: none is
    /// held, and such a SYN is dropped (counted) unanswered.
    pub max_syns: u32,
    /// Dynamic port blocks ([`NatConfig::FLAG_DYNAMIC_BLOCKS`]): the most one
    /// subscriber holds at once (up to [`MAX_BLOCKS_PER_HOST`]).
    pub max_blocks: u32,
    pub _pad2: u32,
}

impl NatConfig {
    /// Port blocks (`block_size`) handed out as subscribers need them (from
    /// [`MAP_NAT_FREE_BLOCKS`]) rather than by a prefix; events report blocks, not BIB
    /// entries.
    pub const FLAG_DYNAMIC_BLOCKS: u32 = 16;

    /// BIB entries made by the data path are reported in [`MAP_NAT_EVENTS`].
    pub const FLAG_LOG: u32 = 4;
    /// Sessions made, and TCP sessions' changes of state, are reported in
    /// [`MAP_NAT_EVENTS`] for session sync.
    pub const FLAG_SYNC: u32 = 8;

    /// Endpoint-independent filtering: an IPv4 packet to a mapped transport address
    /// is let in whoever sends it.
    pub const FLAG_EIF: u32 = 1;
    /// Address-and-port-dependent filtering: only from a remote transport address a
    /// session exists with. Without either flag: address-dependent (from a remote
    /// address a session exists with, any port; RFC 4787 REQ-8's recommendation).
    pub const FLAG_APDF: u32 = 2;

    /// The lifetime in nanoseconds for a protocol's sessions (TCP: see
    /// [`crate::nat::tcp_step`]).
    pub const fn lifetime_ns(&self, seconds: u32) -> u64 {
        seconds as u64 * 1_000_000_000
    }
}

/// A value of [`MAP_NAT_POOL4`]: one pool4 address and the ports it lends.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool4Slot {
    pub addr: [u8; 4],
    pub first: u16,
    pub last: u16,
}

/// An IPv6 transport address of the BIB (ICMP: the query identifier as port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bib6Key {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// An IPv4 transport address of the BIB.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bib4Key {
    pub addr: [u8; 4],
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// A value of [`MAP_BIB4`]: the IPv6 side, how many sessions use the entry, and when
/// it was made (boot-time ns: the sweep leaves young entries alone while their first
/// session is being made) or, released, when it ended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bib4Entry {
    pub v6: Bib6Key,
    pub flags: u32,
    /// Sessions of this mapping in [`MAP_SESSIONS`]: the data path adds one for each it
    /// makes, the sweep takes one off for each it ends; at 0 the entry is released.
    pub sessions: u64,
    pub born: u64,
}

impl Bib4Entry {
    /// Configured (`"bib"`), never expires.
    pub const FLAG_STATIC: u32 = 1;
    /// Ended (RFC 6888 REQ-8): no packet goes through it, its port is not lent again
    /// until `born` + [`NatConfig::reuse_delay`], when the sweep removes it.
    pub const FLAG_RELEASED: u32 = 2;

    /// Whether packets may go through it (not released).
    #[inline(always)]
    pub const fn live(&self) -> bool {
        self.flags & Self::FLAG_RELEASED == 0
    }
}

/// RFC 6888 REQ-4: the BIB entries of each subscriber (Hash `[u8; 16]`, the IPv6
/// address cut to [`NatConfig::subscriber_len`] -> [`Subscriber`]). Made by the
/// data path with a subscriber's first BIB entry, removed by the sweep a while after
/// its last one ended.
pub const MAP_NAT_SUBSCRIBERS: &str = "NAT_SUBSCRIBERS";

/// A value of [`MAP_NAT_SUBSCRIBERS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subscriber {
    /// BIB entries the subscriber holds now.
    pub ports: u64,
    /// Boot-time ns of its latest new BIB entry (the sweep removes an entry at 0
    /// ports only some seconds after it, so that a CPU between its lookup and its
    /// increment does not count into a removed entry).
    pub last: u64,
    /// Boot-time ns of the latest [`NatEvent::QUOTA_EXCEEDED`] reported for it (one
    /// every [`LIMIT_EVENT_NS`] at most).
    pub limited: u64,
    /// Dynamic port blocks: the blocks it holds, each its index in
    /// [`MAP_NAT_BLOCKS`] + 1 (0: a free place). The data path fills a free place
    /// (compare and exchange), only the sweep empties one.
    pub blocks: [u64; MAX_BLOCKS_PER_HOST],
}

/// The most dynamic port blocks one subscriber may hold (`port-blocks-per-host`).
pub const MAX_BLOCKS_PER_HOST: usize = 8;
/// A subscriber at its limit, or a pool4 out of ports, is reported in
/// [`MAP_NAT_EVENTS`] once in this long at most (per subscriber, per CPU).
pub const LIMIT_EVENT_NS: u64 = 10_000_000_000;

/// Dynamic port blocks (Array of [`PortBlock`], one per block: block `i` is
/// [`crate::nat::port_block`]`(i, ...)`): who holds each and how many of its ports
/// BIB entries hold. Sized by nat64-ctl at load (1 without dynamic blocks).
pub const MAP_NAT_BLOCKS: &str = "NAT_BLOCKS";
/// The free dynamic port blocks (Queue of `u32` indexes of [`MAP_NAT_BLOCKS`]):
/// filled by nat64-ctl in a random order when the instance starts, taken from by the
/// data path, given back by the sweep.
pub const MAP_NAT_FREE_BLOCKS: &str = "NAT_FREE_BLOCKS";
/// The most dynamic port blocks an instance may have.
pub const NAT_BLOCKS_MAX: u32 = 1 << 20;

/// A value of [`MAP_NAT_BLOCKS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortBlock {
    /// The subscriber holding it (its address cut to the subscriber length).
    pub owner: [u8; 16],
    /// BIB entries in its ports, and a claim of the data path on it while it picks
    /// one; [`PortBlock::RELEASING`] added while the sweep gives it back.
    pub used: u64,
    /// Boot-time ns it was taken, or its last BIB entry ended: the sweep gives a block
    /// back when `used` has been 0 for `port-reuse-delay` (RFC 6888 REQ-8 for blocks).
    pub idle: u64,
    /// Non-zero while a subscriber holds it.
    pub held: u64,
}

impl PortBlock {
    /// Added to `used` by the sweep while it gives the block back: a data path that
    /// sees it lets the block be.
    pub const RELEASING: u64 = 1 << 62;
}

/// TCP simultaneous open (RFC 6146 §3.5.2.2, RFC 5382 REQ-4; Hash [`SynKey`] ->
/// [`HeldSyn`]): an IPv4 SYN to a pool4 transport address that no mapping lets in
/// (none holds the port, or filtering keeps the sender out) is held here for
/// [`crate::nat::Timeouts::INCOMING_SYN`] seconds, by its sender's transport address.
/// An IPv6 SYN to that sender within the time opens the connection: a host without a
/// mapping for its source gets the port the IPv4 SYN was sent to. The data path stores
/// and marks [`HeldSyn::FLAG_TAKEN`]; nat64-ctl removes each entry once its time is up
/// and answers the SYNs nothing took with ICMP Port Unreachable.
///
/// A SYN an IPv6 host sends to a pool4 transport address without a mapping (the
/// hairpinned form) is held likewise, as the IPv6 packet the host sent
/// ([`HeldSyn::FLAG_V6`]), keyed by the pool4 transport address it came from.
pub const MAP_NAT_SYNS: &str = "NAT_SYNS";
/// The store's capacity, whatever `max-simultaneous-opens` asks (the map takes memory
/// only as it fills).
pub const NAT_SYNS_MAX_ENTRIES: u32 = 65536;
/// How many SYNs [`MAP_NAT_SYNS`] holds (Array of two u64): slot 0 counts the ones the
/// data path stored (atomic adds), slot 1 the ones nat64-ctl removed (written by it
/// alone); the store holds the difference.
pub const MAP_NAT_SYN_COUNT: &str = "NAT_SYN_COUNT";
/// The most bytes of a SYN held: what an ICMPv4 error of 576 bytes quotes.
pub const HELD_SYN_BYTES: usize = 548;

/// A key of [`MAP_NAT_SYNS`]: the IPv4 transport address the SYN came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SynKey {
    pub remote: [u8; 4],
    pub remote_port: u16,
    pub _pad: u16,
}

/// A value of [`MAP_NAT_SYNS`]: the pool4 transport address the SYN was sent to, until
/// when it is held (boot-time ns), and the packet from its IP header on (`len` bytes of
/// `bytes`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldSyn {
    pub expires: u64,
    pub local: [u8; 4],
    pub local_port: u16,
    pub flags: u8,
    pub _pad: u8,
    pub len: u16,
    pub _pad2: [u8; 6],
    pub bytes: [u8; HELD_SYN_BYTES],
    pub _pad3: [u8; 4],
}

impl HeldSyn {
    /// An IPv6 SYN took the port: the connection opened, nothing is answered.
    pub const FLAG_TAKEN: u8 = 1;
    /// `bytes` hold the IPv6 SYN a host of this translator sent (hairpinned), to be
    /// answered with ICMPv6.
    pub const FLAG_V6: u8 = 2;
}

/// The in-kernel sweep (Array, one [`Sweep`]): nat64-ctl writes `now`, runs the sweep
/// program (`BPF_PROG_RUN`), and reads back what it did.
pub const MAP_NAT_SWEEP: &str = "NAT_SWEEP";

/// The value of [`MAP_NAT_SWEEP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Boot-time ns the sweep takes as now (0: the clock's).
    pub now: u64,
    /// Non-zero: end every dynamic session and BIB entry, whatever their lifetimes, and
    /// free the ports at once (`nat64-ctl session flush`).
    pub flush: u64,
    /// What the last run did: sessions ended, BIB entries released (their port held
    /// back, RFC 6888 REQ-8), BIB entries removed, subscribers removed.
    pub sessions: u64,
    pub released: u64,
    pub removed: u64,
    pub subscribers: u64,
    /// Dynamic port blocks given back.
    pub blocks: u64,
    /// Sessions and BIB entries it looked at.
    pub visited: u64,
}

/// Session sync's import (Array, one [`SyncImport`]): nat64-ctl writes the sessions a
/// peer reported and runs the import program (`BPF_PROG_RUN`), which makes their BIB
/// entries and sessions as the data path would, and reads back what it did.
pub const MAP_NAT_SYNC_IN: &str = "NAT_SYNC_IN";
/// Sessions one import run takes.
pub const SYNC_IMPORT_MAX: usize = 32;

/// A session a peer reported, for the import program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncRecord {
    pub v6: Bib6Key,
    pub v4: Bib4Key,
    pub remote: [u8; 4],
    pub remote_port: u16,
    /// For TCP a [`crate::nat::TcpState`]; 0 otherwise.
    pub state: u8,
    /// [`SyncRecord::ENDED`].
    pub flags: u8,
    /// What is left of its lifetime on the peer.
    pub lifetime_ms: u32,
}

impl SyncRecord {
    /// The session ended on the peer.
    pub const ENDED: u8 = 1;
}

/// The value of [`MAP_NAT_SYNC_IN`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncImport {
    /// Boot-time ns the import takes as now (0: the clock's).
    pub now: u64,
    /// Records to import, at most [`SYNC_IMPORT_MAX`].
    pub count: u32,
    /// What the run did: sessions made, sessions whose lifetime or state moved on,
    /// sessions ended, records refused because this node maps their IPv4 or IPv6
    /// transport address otherwise (or does not hold the pool4 address), records the
    /// tables had no room for.
    pub made: u32,
    pub refreshed: u32,
    pub ended: u32,
    pub conflicts: u32,
    pub failed: u32,
    pub records: [SyncRecord; SYNC_IMPORT_MAX],
}

impl Default for SyncImport {
    fn default() -> Self {
        Self {
            now: 0,
            count: 0,
            made: 0,
            refreshed: 0,
            ended: 0,
            conflicts: 0,
            failed: 0,
            records: [SyncRecord::default(); SYNC_IMPORT_MAX],
        }
    }
}

/// A key of [`MAP_SESSIONS`]: the mapped IPv4 transport address and the IPv4 remote.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub local: [u8; 4],
    pub remote: [u8; 4],
    pub local_port: u16,
    pub remote_port: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// A key of [`MAP_NAT_ADF`]: a [`SessionKey`] without the remote port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdfKey {
    pub local: [u8; 4],
    pub remote: [u8; 4],
    pub local_port: u16,
    pub proto: u8,
    pub _pad: u8,
}

impl AdfKey {
    pub const fn of(k: &SessionKey) -> Self {
        Self { local: k.local, remote: k.remote, local_port: k.local_port, proto: k.proto, _pad: 0 }
    }
}

/// Stateful NAT64 events (ring buffer of [`NatEvent`]): BIB entries made by the data
/// path and ended by the sweep, for nat64-ctl's `bib-log`, and sessions made or moved
/// to another TCP state, for session sync. 4 MiB: some 75,000 events, a second's worth
/// at carrier rates while nat64-ctl catches up.
pub const MAP_NAT_EVENTS: &str = "NAT_EVENTS";
pub const NAT_EVENTS_BYTES: u32 = 1 << 22;

/// A record of [`MAP_NAT_EVENTS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEvent {
    /// Boot-time ns.
    pub time: u64,
    pub v6: [u8; 16],
    pub v6_port: u16,
    pub v4_port: u16,
    pub v4: [u8; 4],
    pub proto: u8,
    /// [`NatEvent::BIB_CREATED`] and the others.
    pub kind: u8,
    /// Session events: the TCP state (0 for UDP and ICMP).
    pub state: u8,
    pub _pad: u8,
    /// Session events: the remote IPv4 address and port (ICMP: the mapped identifier).
    pub remote: [u8; 4],
    pub remote_port: u16,
    pub _pad2: [u8; 2],
    /// Session events: milliseconds of lifetime left at `time`.
    pub lifetime_ms: u32,
}

impl NatEvent {
    pub const BIB_CREATED: u8 = 1;
    /// The sweep ended a BIB entry (its last session ended); `time` is when.
    pub const BIB_EXPIRED: u8 = 2;
    /// A session made by the data path (or an expired one taken up again in place).
    pub const SESSION_OPENED: u8 = 3;
    /// A TCP session moved to another state.
    pub const SESSION_CHANGED: u8 = 4;
    /// A subscriber (`v6`, cut to its length) took a dynamic port block: its index in
    /// [`MAP_NAT_BLOCKS`] in `v4` (big-endian), whose address and ports follow from it.
    pub const BLOCK_ALLOCATED: u8 = 5;
    /// The sweep gave that block back (`time`: when).
    pub const BLOCK_RELEASED: u8 = 6;
    /// A subscriber was refused a mapping at its limit (`v6`: the source refused, or
    /// the subscriber): `state` 1 for `max-ports-per-host` (BIB entries), 2 for its
    /// port blocks used up.
    pub const QUOTA_EXCEEDED: u8 = 7;
    /// Pool4 had no port for a new mapping: on address `v4` for protocol `proto`, or
    /// (`v4` 0.0.0.0) no dynamic port block left on any address.
    pub const EXHAUSTED: u8 = 8;

    /// `state` of a [`NatEvent::QUOTA_EXCEEDED`]: BIB entries.
    pub const LIMIT_PORTS: u8 = 1;
    /// `state` of a [`NatEvent::QUOTA_EXCEEDED`]: port blocks.
    pub const LIMIT_BLOCKS: u8 = 2;
}

/// A key of [`MAP_NAT_FRAGS`]: a datagram as its fragments name it (RFC 791 / RFC 8200:
/// source, destination, identification, and for IPv4 the protocol).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub proto: u8,
    /// 4 or 6: which family the addresses are.
    pub family: u8,
    pub _pad: [u8; 2],
}

/// A value of [`MAP_NAT_FRAGS`]: the address the datagram's first fragment was mapped
/// to (an IPv4 source in the first four bytes, or an IPv6 destination).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragEntry {
    pub addr: [u8; 16],
    /// Boot-time ns after which the entry is stale.
    pub expires: u64,
}

/// A value of [`MAP_SESSIONS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// Boot-time ns after which the session is gone.
    pub expires: u64,
    /// A [`crate::nat::TcpState`] for TCP.
    pub state: u8,
    pub _pad: [u8; 3],
    /// The low 32 bits of its BIB4 entry's `born` when the session was made: the sweep
    /// takes the session off that entry's count only if it is still the same entry.
    pub bib_tag: u32,
}

const _: () = assert!(core::mem::size_of::<Bib6Key>() == 20);
const _: () = assert!(core::mem::size_of::<Bib4Key>() == 8);
const _: () = assert!(core::mem::size_of::<SessionKey>() == 16);
const _: () = assert!(core::mem::size_of::<Session>() == 16);
const _: () = assert!(core::mem::size_of::<FragKey>() == 40);
const _: () = assert!(core::mem::size_of::<FragEntry>() == 24);
const _: () = assert!(core::mem::size_of::<NatEvent>() == 48);
const _: () = assert!(core::mem::size_of::<NatConfig>() == 88);
const _: () = assert!(core::mem::size_of::<Bib4Entry>() == 40);
const _: () = assert!(core::mem::size_of::<Subscriber>() == 24 + 8 * MAX_BLOCKS_PER_HOST);
const _: () = assert!(core::mem::size_of::<PortBlock>() == 40);
const _: () = assert!(core::mem::size_of::<HeldSyn>() == 28 + HELD_SYN_BYTES);
const _: () = assert!(core::mem::size_of::<SyncRecord>() == 40);
const _: () = assert!(core::mem::size_of::<SyncImport>() == 32 + 40 * SYNC_IMPORT_MAX);

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` data with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for super::Globals {}
    unsafe impl aya::Pod for super::EamEntry {}
    unsafe impl aya::Pod for super::PoolEntry {}
    unsafe impl aya::Pod for super::PoolDormant {}
    unsafe impl aya::Pod for super::PortState {}
    unsafe impl aya::Pod for super::NatConfig {}
    unsafe impl aya::Pod for super::Pool4Slot {}
    unsafe impl aya::Pod for super::Bib6Key {}
    unsafe impl aya::Pod for super::Bib4Key {}
    unsafe impl aya::Pod for super::Bib4Entry {}
    unsafe impl aya::Pod for super::SessionKey {}
    unsafe impl aya::Pod for super::AdfKey {}
    unsafe impl aya::Pod for super::Session {}
    unsafe impl aya::Pod for super::Subscriber {}
    unsafe impl aya::Pod for super::PortBlock {}
    unsafe impl aya::Pod for super::Sweep {}
    unsafe impl aya::Pod for super::SynKey {}
    unsafe impl aya::Pod for super::HeldSyn {}
    unsafe impl aya::Pod for super::SyncRecord {}
    unsafe impl aya::Pod for super::SyncImport {}
    unsafe impl aya::Pod for crate::counters::CounterValue {}
}
