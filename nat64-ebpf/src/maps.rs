//! The maps, named as in `nat64_common::maps` so nat64-ctl finds and pins them.

use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, Queue, RingBuf},
};
use nat64_common::{
    counters::{COUNTER_SLOTS, CounterValue},
    maps::{
        AdfKey, BIB_MAX_ENTRIES, Bib4Entry, Bib4Key, Bib6Key, DENYLIST4_MAX_ENTRIES, EAMT_MAX_ENTRIES,
        EamEntry, FragEntry, FragKey, Globals, HeldSyn, NAT_EVENTS_BYTES, NAT_FRAGS_MAX_ENTRIES,
        NAT_POOL4_MAX, NAT_SYNS_MAX_ENTRIES, NatConfig, POOL_MAX, POOL_RING_SLOTS, Pool4Slot, PoolDormant,
        PoolEntry, PortBlock, PortState, SESSIONS_MAX_ENTRIES, Session, SessionKey, Subscriber, Sweep,
        SynKey, SyncImport, TX_PORTS_MAX_ENTRIES, V4XLAT_MAX_ENTRIES,
    },
    words::W6,
};

#[map(name = "GLOBALS")]
pub static GLOBALS: Array<Globals> = Array::with_max_entries(2, 0);

/// The maps' layout fingerprint (nat64-ctl's business; see `nat64_common::maps::LAYOUT`).
#[map(name = "LAYOUT")]
pub static LAYOUT: Array<u64> = Array::with_max_entries(1, 0);

#[map(name = "GLOBALS_ACTIVE")]
pub static GLOBALS_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// The configuration in force (see `nat64_common::maps::MAP_GLOBALS`).
#[inline(always)]
pub fn globals() -> Option<&'static Globals> {
    let slot = GLOBALS_ACTIVE.get(0).copied().unwrap_or(0) & 1;
    GLOBALS.get(slot)
}

#[map(name = "EAMT4")]
pub static EAMT4: LpmTrie<[u8; 4], EamEntry> = LpmTrie::with_max_entries(EAMT_MAX_ENTRIES, 0);

#[map(name = "EAMT6")]
pub static EAMT6: LpmTrie<[u8; 16], EamEntry> = LpmTrie::with_max_entries(EAMT_MAX_ENTRIES, 0);

#[map(name = "DENYLIST4")]
pub static DENYLIST4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(DENYLIST4_MAX_ENTRIES, 0);

/// See `nat64_common::maps::MAP_V4XLAT`.
#[map(name = "V4XLAT")]
pub static V4XLAT: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(V4XLAT_MAX_ENTRIES, 0);

/// The dynamic pool (see `nat64_common::maps::MAP_POOL6` and the others).
#[map(name = "POOL6")]
pub static POOL6: HashMap<[u8; 16], PoolEntry> = HashMap::with_max_entries(POOL_MAX, 0);

#[map(name = "POOL4")]
pub static POOL4: HashMap<[u8; 4], PoolEntry> = HashMap::with_max_entries(POOL_MAX, 0);

#[map(name = "POOL_DORMANT")]
pub static POOL_DORMANT: LruHashMap<[u8; 16], PoolDormant> = LruHashMap::with_max_entries(POOL_MAX, 0);

#[map(name = "POOL_RING")]
pub static POOL_RING: Array<[u8; 4]> = Array::with_max_entries(POOL_RING_SLOTS, 0);

#[map(name = "POOL_TAIL")]
pub static POOL_TAIL: Array<u64> = Array::with_max_entries(2, 0);

#[map(name = "POOL_HEAD")]
pub static POOL_HEAD: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Stateful NAT64 (see `nat64_common::maps::MAP_NAT_CFG` and the rest). The BIB and
/// the sessions take memory as they fill (no preallocation): nothing in the other
/// modes.
#[map(name = "NAT_CFG")]
pub static NAT_CFG: Array<NatConfig> = Array::with_max_entries(1, 0);

#[map(name = "NAT_POOL4")]
pub static NAT_POOL4: Array<Pool4Slot> = Array::with_max_entries(NAT_POOL4_MAX, 0);

#[map(name = "NAT_ADDRS")]
pub static NAT_ADDRS: HashMap<[u8; 4], u32> = HashMap::with_max_entries(NAT_POOL4_MAX, 0);

const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "BIB6")]
pub static BIB6: HashMap<Bib6Key, Bib4Key> = HashMap::with_max_entries(BIB_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "BIB4")]
pub static BIB4: HashMap<Bib4Key, Bib4Entry> = HashMap::with_max_entries(BIB_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "SESSIONS")]
pub static SESSIONS: HashMap<SessionKey, Session> =
    HashMap::with_max_entries(SESSIONS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "NAT_ADF")]
pub static NAT_ADF: HashMap<AdfKey, u64> = HashMap::with_max_entries(SESSIONS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

/// BIB entries per subscriber (`nat64_common::maps::MAP_NAT_SUBSCRIBERS`).
#[map(name = "NAT_SUBSCRIBERS")]
pub static NAT_SUBSCRIBERS: HashMap<[u8; 16], Subscriber> =
    HashMap::with_max_entries(BIB_MAX_ENTRIES, BPF_F_NO_PREALLOC);

/// Dynamic port blocks (`nat64_common::maps::MAP_NAT_BLOCKS`, `MAP_NAT_FREE_BLOCKS`):
/// one entry here, sized by nat64-ctl at load.
#[map(name = "NAT_BLOCKS")]
pub static NAT_BLOCKS: Array<PortBlock> = Array::with_max_entries(1, 0);
#[map(name = "NAT_FREE_BLOCKS")]
pub static NAT_FREE_BLOCKS: Queue<u32> = Queue::with_max_entries(1, 0);
/// When this CPU last reported pool4 out of ports (`NatEvent::EXHAUSTED`, one every
/// `LIMIT_EVENT_NS` at most).
#[map(name = "NAT_EXHAUSTED_AT")]
pub static NAT_EXHAUSTED_AT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// SYNs held for a simultaneous open (`nat64_common::maps::MAP_NAT_SYNS`), how many
/// (`MAP_NAT_SYN_COUNT`), and where one is put together before it is stored (a
/// `HeldSyn` does not fit on the stack).
#[map(name = "NAT_SYNS")]
pub static NAT_SYNS: HashMap<SynKey, HeldSyn> =
    HashMap::with_max_entries(NAT_SYNS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

#[map(name = "NAT_SYN_COUNT")]
pub static NAT_SYN_COUNT: Array<u64> = Array::with_max_entries(2, 0);

#[map(name = "SYN_STAGING")]
pub static SYN_STAGING: PerCpuArray<HeldSyn> = PerCpuArray::with_max_entries(1, 0);

/// The sweep's clock and results (`nat64_common::maps::MAP_NAT_SWEEP`).
#[map(name = "NAT_SWEEP")]
pub static NAT_SWEEP: Array<Sweep> = Array::with_max_entries(1, 0);

/// Session sync's import: the peer's sessions and what the import did
/// (`nat64_common::maps::MAP_NAT_SYNC_IN`).
#[map(name = "NAT_SYNC_IN")]
pub static NAT_SYNC_IN: Array<SyncImport> = Array::with_max_entries(1, 0);

/// Where the first fragment of a datagram went (`nat64_common::maps::MAP_NAT_FRAGS`).
#[map(name = "NAT_FRAGS")]
pub static NAT_FRAGS: LruHashMap<FragKey, FragEntry> = LruHashMap::with_max_entries(NAT_FRAGS_MAX_ENTRIES, 0);

/// The longest translated first fragment of an ICMP echo the TC program holds (its
/// frame from the link-layer header on).
pub const HELD_MAX: usize = 1600;

/// A translated first fragment of an ICMP echo waiting for its datagram's length, or
/// that length, known from the fragment that ends the datagram, waiting for the first
/// (see `translate::held`).
#[repr(C)]
pub struct Held {
    /// The first fragment's verdict (packed, see `packet::pack`); 0 with `len` 0.
    pub verdict: u64,
    /// The held frame's length; 0: nothing held, only `total` known.
    pub len: u32,
    /// The ICMP checksum's offset in the frame.
    pub check: u32,
    /// The message length the held checksum was computed with (the first fragment's).
    pub part: u32,
    /// The whole message's length (0: not known yet).
    pub total: u32,
    /// 1: the frame is IPv4 (the pseudo-header's length leaves the sum), 0: IPv6 (it
    /// joins it).
    pub to_v4: u32,
    pub _pad: u32,
    pub frame: [u8; HELD_MAX],
}

/// ICMP echoes in fragments, by the datagram as it arrived (addresses and
/// identification): LRU, the fragments of one datagram follow each other closely.
#[map(name = "ICMP_HELD")]
pub static ICMP_HELD: LruHashMap<FragKey, Held> = LruHashMap::with_max_entries(512, 0);

/// Per CPU: a `Held` being filled before it goes into `ICMP_HELD` (too big for the stack).
#[map(name = "HELD_STAGING")]
pub static HELD_STAGING: PerCpuArray<Held> = PerCpuArray::with_max_entries(1, 0);

/// BIB entries the data path made, for nat64-ctl's `bib-log` (`NatConfig::FLAG_LOG`).
#[map(name = "NAT_EVENTS")]
pub static NAT_EVENTS: RingBuf = RingBuf::with_byte_size(NAT_EVENTS_BYTES, 0);

/// Per CPU: RFC 6056's counter, moved on every port allocation.
#[map(name = "NAT_COUNTER")]
pub static NAT_COUNTER: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The devices XDP programs may send out of: attached Ethernet ports that accept XDP
/// frames (see `nat64_common::maps::MAP_TX_PORTS`). An XDP_REDIRECT to any other
/// device would be dropped by the kernel, so those packets go to the kernel.
#[map(name = "TX_PORTS")]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(TX_PORTS_MAX_ENTRIES, 0);

/// Every attached Ethernet port (see `nat64_common::maps::MAP_PORTS`): TC programs
/// redirect into any of them.
#[map(name = "PORTS")]
pub static PORTS: HashMap<u32, PortState> = HashMap::with_max_entries(TX_PORTS_MAX_ENTRIES, 0);

/// [tokens in nanotoken units, last refill in ns] for the ICMP errors this CPU sends.
#[map(name = "RATELIMIT")]
pub static RATELIMIT: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Next hops the FIB gave (see `forward::run`), per CPU, direct-mapped.
#[repr(C)]
pub struct NextHop {
    /// The lookup's inputs (`forward::KEY_WORDS`).
    pub key: [u32; 11],
    /// The egress.
    pub ifindex: u32,
    /// The largest total length the FIB accepted for this egress (its MTU check).
    pub ok_len: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// `NEXTHOP_GEN` when the lookup was made.
    pub generation: u64,
    /// bpf_jiffies64() of the lookup; 0: not valid.
    pub stamp: u64,
}

pub const NEXTHOP_SLOTS: u32 = 256;

#[map(name = "NEXTHOPS")]
pub static NEXTHOPS: PerCpuArray<NextHop> = PerCpuArray::with_max_entries(NEXTHOP_SLOTS, 0);

/// See `nat64_common::maps::MAP_NEXTHOP_GEN`.
#[map(name = "NEXTHOP_GEN")]
pub static NEXTHOP_GEN: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn nexthop_gen() -> u64 {
    NEXTHOP_GEN.get(0).copied().unwrap_or(0)
}

/// What one address maps to through the address tables (see `translate::memo`).
#[repr(C)]
pub struct AddrMemo {
    /// The address (IPv4: the first word, the others 0).
    pub key: W6,
    /// `Globals::tables_gen` + 1 when written (0: never written).
    pub stamp: u32,
    /// `memo::EAM`, `memo::BACK`, `memo::XLAT`; bits 8-15: 0 when the address maps,
    /// else 1 + the drop counter saying why not.
    pub flags: u32,
    /// The address it maps to (IPv4: the first word).
    pub to: W6,
}

/// Slots per role and CPU (a power of two).
pub const MEMO_SLOTS: u32 = 1024;

/// Per CPU, direct-mapped: four regions of `MEMO_SLOTS`, one per role (`memo::SRC6`
/// and the others), so that the answers a packet holds never share a slot.
#[map(name = "ADDR_MEMO")]
pub static ADDR_MEMO: PerCpuArray<AddrMemo> = PerCpuArray::with_max_entries(4 * MEMO_SLOTS, 0);

#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<CounterValue> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Size of the scratch buffer for bulk checksums.
pub const SUM_BUF: usize = 2048;

/// Per-CPU scratch space. Headers and addresses live here rather than on the
/// 512-byte stack: LLVM splits stack arrays into byte-sized values and spills each one
/// across helper calls, which overflows the stack; map memory is left alone.
///
/// What every stage uses is at the top level (the packet's headers and addresses, the
/// FIB lookup, the pipeline's own notes); what one feature's stages hand each other is
/// in a part of its own: [`ErrorScratch`] for the ICMP error stages, [`NatScratch`] for
/// stateful NAT64, [`HeldScratch`] for ICMP echoes in fragments, [`Hairpin`] for the
/// hairpin stage.
#[repr(C)]
pub struct Scratch {
    pub fib: aya_ebpf::bindings::bpf_fib_lookup,
    pub src6: [u8; 16],
    pub dst6: [u8; 16],
    pub key6: aya_ebpf::maps::lpm_trie::Key<[u8; 16]>,
    pub _pad: [u8; 4],
    pub hdr6: [u8; 40],
    pub hdr4: [u8; 20],
    pub _pad2: [u8; 4],
    /// IPv6 fragment header added for an IPv4 fragment.
    pub frag6: [u8; 8],
    /// The ICMP error stages' part.
    pub err: ErrorScratch,
    /// The translation's headers and addresses as words (`nat64_common::words`):
    /// LLVM moves and compares `[u8; N]` one byte at a time, these a word at a time.
    pub hdr6w: [u32; 10],
    pub hdr4w: [u32; 5],
    /// 1 when this packet's egress is an attached port that takes no XDP frames (an
    /// XDP program hands the packet to the kernel instead): counted apart.
    pub no_xdp_xmit: u32,
    pub src6w: W6,
    pub dst6w: W6,
    pub key6w: Key6,
    pub frag6w: [u32; 2],
    /// The packet's length on arrival, for the counters at the end of the pipeline.
    pub len: u64,
    /// What the translation stage asked the reply stage to send.
    pub verdict: u64,
    /// The mapping the dynamic pool's allocation stage is about to insert.
    pub pool: PoolEntry,
    /// Bytes to checksum in bulk with bpf_csum_diff (IPv4 options, UDP payloads).
    pub buf: [u8; SUM_BUF],
    /// The hairpin stage's part.
    pub hairpin: Hairpin,
    /// Stateful NAT64's part.
    pub nat: NatScratch,
    /// The held stage's part.
    pub held: HeldScratch,
    /// The translated packet's addresses hashed (`forward`'s `addr_hash`, for the
    /// TC flow hash).
    pub flow_hash: u32,
    /// `forward::gro_mark`'s mark (1: to the kernel for GRO).
    pub gro_mark: u32,
    /// This CPU's IPv4 Identification counter (low half) and key (high half)
    /// (`v6_to_v4::fresh_id`); 0: not started.
    pub id_seq: u32,
}

/// The ICMP error stages' part of [`Scratch`]: the packet inside an error, in both
/// families, and how an RFC 4884 extension crosses.
#[repr(C)]
pub struct ErrorScratch {
    /// The packet inside: its addresses and headers in both families.
    pub isrc6: [u8; 16],
    pub idst6: [u8; 16],
    pub ihdr6: [u8; 40],
    pub ihdr4: [u8; 20],
    /// The error's own ICMP header, as read and then as written.
    pub icmp: [u8; 8],
    /// The fragment header of the packet inside, in IPv6.
    pub ifrag6: [u8; 8],
    /// An RFC 4884 extension crossing in a translated error: the new original-datagram
    /// field's length, the datagram bytes it keeps, the extension's length (0s: none),
    /// the padding's length.
    pub ext: [u32; 4],
    /// The ICMPv6 error being translated is about a hairpinned packet
    /// (`translate::icmp_err::comes_back`): 1.
    pub again: u32,
    /// Never written: the zero padding of an RFC 4884 original-datagram field.
    pub zeros: [u8; nat64_common::icmp::EXT_MIN_DATAGRAM],
}

/// What the hairpin stage needs (RFC 7757 §4), from the stage that sends it there.
#[repr(C)]
pub struct Hairpin {
    /// The IPv4 source and destination the IPv6 addresses mapped to.
    pub src4: u32,
    pub dst4: u32,
    /// The transport header's offset.
    pub off: u32,
    /// Next header | first fragment or whole << 8 | hop limit << 16.
    pub meta: u32,
}

/// Stateful NAT64's part of [`Scratch`]: what the translation and NAT stages hand
/// each other.
#[repr(C)]
pub struct NatScratch {
    /// 1 once the NAT stage has mapped this packet (the translation stage then takes
    /// `addr4` as the IPv4 source, or `dst6` as the IPv6 destination, instead of
    /// mapping the address statelessly); 2 for a packet hairpinned (RFC 6146 §3.8).
    pub flag: u32,
    pub addr4: [u8; 4],
    pub dst6: W6,
    /// What the 6->4 translation stage found for the NAT stage: the transport header's
    /// offset, next header | fragment header present << 8 | first fragment << 9 |
    /// hop limit << 16, the fragment header's identification.
    pub l4: [u32; 3],
    /// How to undo the NAT stage's port rewrite when the packet is handed back
    /// untranslated (to the kernel's general path) or quoted in the translator's own
    /// ICMP error: the port's offset | the checksum's << 16 (0: nothing to undo), the
    /// port before | after << 16, kind (0 TCP/UDP, 1 UDP, 2 ICMP).
    pub undo: [u32; 3],
    /// The subscriber (RFC 6888) of the IPv6 source being mapped.
    pub sub: [u8; 16],
    /// The dynamic port block a new mapping is being made in, its index + 1 (0: none):
    /// claimed (`PortBlock::used`) until the mapping is made or given up.
    pub block: u64,
    /// The subscriber's list of dynamic port blocks, as read for the new mapping.
    pub held: [u64; nat64_common::maps::MAX_BLOCKS_PER_HOST],
    /// The key of a SYN being held or looked for (`translate::simopen`).
    pub syn_key: nat64_common::maps::SynKey,
}

/// The held stage's part of [`Scratch`]: an ICMP echo in fragments (TC).
#[repr(C)]
pub struct HeldScratch {
    /// 1 the first fragment, 2 the one that ends the datagram (0: neither); the
    /// message length its checksum was computed with (first) or the whole message's
    /// (last); the checksum's offset; 1 when translated to IPv4.
    pub note: [u32; 4],
    /// The datagram of that fragment as it arrived.
    pub key: FragKey,
}

/// An EAMT6 key (`Key<[u8; 16]>`, whose `repr(packed)` makes LLVM write it byte by
/// byte) with the address as words.
#[repr(C)]
pub struct Key6 {
    pub prefix_len: u32,
    pub data: W6,
}

/// An EAMT4 or DENYLIST4 key, as `Key6`.
#[repr(C)]
pub struct Key4 {
    pub prefix_len: u32,
    pub data: u32,
}

impl Key6 {
    #[inline(always)]
    pub fn key(&self) -> &Key<[u8; 16]> {
        // SAFETY: the same 20 bytes (a u32, then the address in memory order); the
        // packed type has alignment 1.
        unsafe { &*(self as *const Key6).cast::<Key<[u8; 16]>>() }
    }
}

impl Key4 {
    #[inline(always)]
    pub fn new(a: [u8; 4]) -> Self {
        Self { prefix_len: 32, data: u32::from_ne_bytes(a) }
    }

    #[inline(always)]
    pub fn key(&self) -> &Key<[u8; 4]> {
        // SAFETY: as for Key6, 8 bytes.
        unsafe { &*(self as *const Key4).cast::<Key<[u8; 4]>>() }
    }
}

const _: () = assert!(
    core::mem::size_of::<Key6>() == core::mem::size_of::<Key<[u8; 16]>>()
        && core::mem::size_of::<Key4>() == core::mem::size_of::<Key<[u8; 4]>>()
);

#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch space.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: the per-CPU slot is only used by this program run on this CPU.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// The jump tables of the pipeline's stages (see `nat64_common::stages`), one per attach
/// point: a tail call only reaches programs of its own type. nat64-ctl fills them.
#[map(name = "JUMP_XDP")]
pub static JUMP_XDP: ProgramArray = ProgramArray::with_max_entries(nat64_common::stages::COUNT, 0);

#[map(name = "JUMP_TC")]
pub static JUMP_TC: ProgramArray = ProgramArray::with_max_entries(nat64_common::stages::COUNT, 0);

#[map(name = "JUMP_TC_L3")]
pub static JUMP_TC_L3: ProgramArray = ProgramArray::with_max_entries(nat64_common::stages::COUNT, 0);
