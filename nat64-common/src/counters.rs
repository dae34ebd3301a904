//! Counter indices: every packet the programs see is counted under exactly one
//! outcome counter (translated per direction and protocol, passed or dropped with a
//! reason), plus forwarding counters for translated packets.

/// Packets and bytes for one counter on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

/// What kind of outcome a counter records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Translated,
    Forward,
    Pass,
    Drop,
    /// Events besides the packets' outcomes.
    Event,
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident = $idx:expr, $label:expr, $kind:ident; )*) => {
        /// Index into the counters map.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $( $(#[$doc])* $name = $idx, )*
        }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];

            /// Stable snake_case name used by `nat64-ctl stats`.
            pub const fn name(self) -> &'static str {
                match self { $(Counter::$name => $label,)* }
            }

            // Inlined: in the kernel programs a call costs a BPF-to-BPF call and return
            // per packet (the return through the kernel's return thunk).
            #[inline(always)]
            pub const fn kind(self) -> Kind {
                match self { $(Counter::$name => Kind::$kind,)* }
            }
        }
    };
}

counters! {
    /// IPv6 -> IPv4, TCP.
    Xlat6to4Tcp = 0, "xlat_6to4_tcp", Translated;
    /// IPv6 -> IPv4, UDP.
    Xlat6to4Udp = 1, "xlat_6to4_udp", Translated;
    /// IPv6 -> IPv4, ICMPv6 echo -> ICMP echo.
    Xlat6to4Icmp = 2, "xlat_6to4_icmp", Translated;
    /// IPv6 -> IPv4, any other protocol (payload copied unchanged).
    Xlat6to4Other = 3, "xlat_6to4_other", Translated;
    /// IPv4 -> IPv6, TCP.
    Xlat4to6Tcp = 4, "xlat_4to6_tcp", Translated;
    /// IPv4 -> IPv6, UDP.
    Xlat4to6Udp = 5, "xlat_4to6_udp", Translated;
    /// IPv4 -> IPv6, ICMP echo -> ICMPv6 echo.
    Xlat4to6Icmp = 6, "xlat_4to6_icmp", Translated;
    /// IPv4 -> IPv6, any other protocol (payload copied unchanged).
    Xlat4to6Other = 7, "xlat_4to6_other", Translated;
    /// Translated and sent straight out of the egress device (bpf_fib_lookup + redirect).
    FwdRedirect = 8, "fwd_redirect", Forward;
    /// Translated and handed to the kernel stack (route or neighbour not known yet).
    FwdKernel = 9, "fwd_kernel", Forward;
    /// Not IPv4/IPv6 (ARP, LLDP, VLAN-tagged, ...): passed.
    PassNotIp = 10, "pass_not_ip", Pass;
    /// IPv4 destination not covered by the EAMT (or broadcast/multicast): passed.
    PassV4NotOurs = 11, "pass_ipv4_not_ours", Pass;
    /// IPv6 destination outside pool6 and the EAMT (or multicast): passed.
    PassV6NotOurs = 12, "pass_ipv6_not_ours", Pass;
    /// Destination is the translator's own address: passed to the host.
    PassOwnAddress = 13, "pass_own_address", Pass;
    /// No configuration loaded yet: passed.
    PassDisabled = 14, "pass_disabled", Pass;
    /// Source address has no mapping (neither EAM nor pool6).
    DropSrcUnmapped = 15, "drop_src_unmapped", Drop;
    /// An address is in a never-translate range (0/8, 127/8, 169.254/16, 224/4, 240/4 with 255.255.255.255).
    DropReservedAddr = 16, "drop_reserved_address", Drop;
    /// The pool6-mapped IPv4 address is in denylist4.
    DropDenylist4 = 17, "drop_denylist4", Drop;
    /// Well-Known Prefix with a non-global IPv4 address (RFC 6052 §3.1).
    DropWkpNonGlobal = 18, "drop_wkp_non_global", Drop;
    /// An address maps to the translator's own address.
    DropOwnAddress = 19, "drop_own_address", Drop;
    /// Truncated packet, bad version, bad IHL or a length field that lies.
    DropMalformed = 20, "drop_malformed", Drop;
    /// IPv4 header checksum is wrong.
    DropBadIpv4Checksum = 21, "drop_bad_ipv4_checksum", Drop;
    /// IPv4 protocol number that exists only in IPv6 (0, 43, 44, 58, 60).
    DropV6OnlyProtocol = 22, "drop_ipv6_only_protocol", Drop;
    /// TTL or hop limit would reach zero on this hop (Time Exceeded sent).
    DropTtlExpired = 23, "drop_ttl_expired", Drop;
    /// IPv6 extension-header chain longer than the data path walks, or one after a fragment header.
    DropExtensionHeader = 24, "drop_extension_header", Drop;
    /// UDP with checksum zero: IPv4 without amend-udp-checksum-zero, or any IPv6.
    DropUdpChecksumZero = 25, "drop_udp_checksum_zero", Drop;
    /// An ICMP type or code with no counterpart in the other family (RFC 7915 §4.2,
    /// §5.2: Redirect, Router Advertisement, Parameter Problem pointing at a field the
    /// other header lacks, ...).
    DropIcmpUntranslated = 26, "drop_icmp_untranslated", Drop;
    /// IPv4 UDP with checksum zero too long to checksum in the fast path (over 1480 bytes).
    DropTooBig = 27, "drop_too_big", Drop;
    /// What should not fail did: a helper the kernel refused (resizing the packet, a
    /// store), a map that has no slot 0.
    DropInternal = 28, "drop_internal", Drop;
    /// IPv6 routing header with segments left > 0 (RFC 7915 §5.1; Parameter Problem sent).
    DropRoutingHeader = 29, "drop_routing_header", Drop;
    /// Fragmented ICMP that cannot cross: an error (never translated in pieces), a first
    /// fragment too long to hold or whose datagram could not be finished, an XDP port
    /// without a general path to hand it to.
    DropIcmpFragment = 30, "drop_icmp_fragment", Drop;
    /// IPv6 -> IPv4, ICMPv6 error (with the packet inside it) -> ICMP error.
    Xlat6to4IcmpError = 31, "xlat_6to4_icmp_error", Translated;
    /// IPv4 -> IPv6, ICMP error -> ICMPv6 error.
    Xlat4to6IcmpError = 32, "xlat_4to6_icmp_error", Translated;
    /// An ICMP error about an ICMP error (RFC 7915 §4.2, §5.2).
    DropIcmpErrorNested = 33, "drop_icmp_error_nested", Drop;
    /// An ICMP error whose packet inside is too short or cannot be translated.
    DropIcmpErrorInner = 34, "drop_icmp_error_inner", Drop;
    /// An ICMP error from an unmapped router with no RFC 6791 pool and no own address to use.
    DropRfc6791NoSource = 35, "drop_rfc6791_no_source", Drop;
    /// An ICMP error whose checksum is wrong (its checksum is recomputed, so it is checked first).
    DropIcmpBadChecksum = 36, "drop_icmp_bad_checksum", Drop;
    /// Too big for the egress MTU with DF set (or IPv6): Packet Too Big / Fragmentation Needed sent.
    DropMtuExceeded = 37, "drop_mtu_exceeded", Drop;
    /// ICMP errors the translator sent itself (Time Exceeded, Packet Too Big, ...).
    IcmpSent = 38, "icmp_sent", Forward;
    /// ICMP errors the translator did not send: over the rate limit.
    IcmpRateLimited = 39, "icmp_rate_limited", Drop;
    /// ICMP errors the translator could not send: no own address of that family configured.
    IcmpNoSource = 40, "icmp_no_source", Drop;
    /// IPv4 without DF too big once translated: handed untranslated to the kernel, which
    /// fragments it into the general path, where the pieces are translated.
    PassGeneralPath = 41, "pass_general_path", Pass;
    /// IPv4 with an unexpired source route option: answered with Source Route Failed.
    DropSourceRoute = 42, "drop_source_route", Drop;
    /// An IPv6 host needed a dynamic-pool address and none was free (ICMPv6 error sent).
    DropPoolExhausted = 43, "drop_pool_exhausted", Drop;
    /// IPv4 to a dynamic-pool address that no host holds (ICMPv4 error sent).
    DropPoolUnmapped = 44, "drop_pool_unmapped", Drop;
    /// A dynamic-pool address handed out (an event, counted besides the packet's outcome).
    PoolAllocated = 45, "pool_allocated", Event;
    /// Translated and handed to the kernel stack because the egress, an attached port,
    /// does not accept XDP frames (a veth whose peer has neither GRO nor an XDP program,
    /// a bridge, a driver without XDP transmit); the kernel forwards it.
    FwdKernelNoXdpXmit = 46, "fwd_kernel_no_xdp_xmit", Forward;
    /// IPv6 -> IPv6 through an IPv4 address that maps back (RFC 7757 §4 hairpinning):
    /// an IPv6 host reaching another by its IPv4 address.
    XlatHairpin = 47, "xlat_hairpin", Translated;
    /// Stateful NAT64: a BIB entry made (an IPv6 transport address got a pool4 one).
    NatBibCreated = 48, "nat_bib_created", Event;
    /// Stateful NAT64: a session made.
    NatSessionCreated = 49, "nat_session_created", Event;
    /// Stateful NAT64: IPv4 to a pool4 transport address no BIB entry holds.
    DropNatNoMapping = 50, "drop_nat_no_mapping", Drop;
    /// Stateful NAT64: IPv4 from a remote no session exists with (filtering), or TCP
    /// other than a SYN opening a session.
    DropNatFiltered = 51, "drop_nat_filtered", Drop;
    /// Stateful NAT64: no port of the host's pool4 address (or of its port block) was
    /// free, or no dynamic port block was left (RFC 6146 §3.5.1.1: ICMPv6 Destination
    /// Unreachable, Address Unreachable, sent).
    DropNatPortsExhausted = 52, "drop_nat_ports_exhausted", Drop;
    /// Stateful NAT64: what is not translated statefully: protocols other than TCP, UDP
    /// and ICMP echo, ICMP errors about them or quoting a later fragment, hairpinned ICMP
    /// echo, hairpinned fragments.
    DropNatUnsupported = 53, "drop_nat_unsupported", Drop;
    /// Stateful NAT64: the BIB or session table is full.
    DropNatTableFull = 54, "drop_nat_table_full", Drop;
    /// Stateful NAT64: an IPv4 fragment after the first whose first fragment has not
    /// been seen (arrived out of order, or lost): its IPv6 host is unknown.
    DropNatFragmentBeforeFirst = 55, "drop_nat_fragment_before_first", Drop;
    /// Stateful NAT64: an ICMP error about a packet that no session knows (the BIB
    /// lookup of the packet inside failed, or the session is gone).
    DropNatIcmpErrorNoSession = 56, "drop_nat_icmp_error_no_session", Drop;
    /// Stateful NAT64 with port blocks: an IPv6 source outside `port-block-prefix`, or
    /// whose block lies past the pool (ICMPv6 Address Unreachable sent).
    DropNatNoPortBlock = 57, "drop_nat_no_port_block", Drop;
    /// Stateful NAT64 `bib-log`: a BIB event the ring buffer had no room for (nat64-ctl
    /// not reading, or behind); the mapping itself was made.
    NatLogLost = 58, "nat_log_lost", Event;
    /// An ICMP fragment arriving by XDP: handed to the kernel untranslated, whose routes
    /// take the translator's destinations into the general path, where the TC program
    /// holds its first fragment until the checksum can be finished.
    PassIcmpFragment = 59, "pass_icmp_fragment", Pass;
    /// The translated first fragment of an ICMP echo, held (TC) until the fragment that
    /// ends the datagram tells the whole message's length, which the ICMPv6 checksum
    /// covers; it leaves then, with that fragment.
    XlatIcmpFragmentHeld = 60, "xlat_icmp_fragment_held", Translated;
    /// Stateful NAT64: the IPv6 source's subscriber already holds `max-ports-per-host`
    /// BIB entries, or `port-blocks-per-host` dynamic blocks with no port left (RFC 6888
    /// REQ-4; ICMPv6 Destination Unreachable, Communication Administratively
    /// Prohibited, sent).
    DropNatSubscriberLimit = 61, "drop_nat_subscriber_limit", Drop;
    /// Stateful NAT64: the kernel could not allocate a BIB entry, a session or a
    /// subscriber's count (out of memory; a full table is `drop_nat_table_full`).
    DropNatAllocFailed = 62, "drop_nat_alloc_failed", Drop;
    /// Stateful NAT64: two CPUs made the same BIB entry or session at once; the one that
    /// lost took the other's and its packet went on.
    NatRaceResolved = 63, "nat_race_resolved", Event;
    /// Stateful NAT64: a session the sweep ended (its lifetime ran out).
    NatSessionExpired = 64, "nat_session_expired", Event;
    /// Stateful NAT64: a BIB entry the sweep ended (its last session gone); its port
    /// stays out of use for `port-reuse-delay` seconds.
    NatBibExpired = 65, "nat_bib_expired", Event;
    /// Stateful NAT64: an IPv4 SYN to a pool4 transport address that no mapping lets in,
    /// held up to 6 s for a simultaneous open (RFC 6146 §3.5.2.2); answered with ICMP
    /// Port Unreachable then (`nat_syn_answered`) unless an IPv6 SYN opened the
    /// connection (`nat_simultaneous_open`). An IPv6 host's SYN to such an address
    /// (hairpinned) is held likewise.
    DropNatSynHeld = 66, "drop_nat_syn_held", Drop;
    /// Stateful NAT64: an unsolicited SYN not held, `max-simultaneous-opens` SYNs held
    /// already.
    DropNatSynStoreFull = 67, "drop_nat_syn_store_full", Drop;
    /// Stateful NAT64: a SYN from a transport address whose earlier SYN is held (a
    /// retransmission).
    DropNatSynPending = 68, "drop_nat_syn_pending", Drop;
    /// Stateful NAT64: an IPv6 SYN opened a connection a held IPv4 SYN asked for (TCP
    /// simultaneous open); its host was given the port the IPv4 SYN was sent to.
    NatSimultaneousOpen = 69, "nat_simultaneous_open", Event;
    /// Stateful NAT64: held SYNs nothing took in 6 s, answered with ICMP Port
    /// Unreachable by nat64-ctl.
    NatSynAnswered = 70, "nat_syn_answered", Event;
    /// A tail call to a stage its jump table lacks (`nat64_common::stages`); nothing was
    /// changed yet, the packet passes untouched. Never counted while nat64-ctl holds the
    /// programs it loaded.
    PassStageMissing = 71, "pass_stage_missing", Pass;
    /// Session sync: a session event the ring buffer had no room for (nat64-ctl not
    /// reading, or behind); the peers learn the session at the next refresh.
    SyncEventsLost = 72, "sync_events_lost", Event;
    /// Session sync (counted by nat64-ctl): datagrams sent to the peers.
    SyncMessagesSent = 73, "sync_messages_sent", Event;
    /// Session sync: session records sent to the peers (events, refreshes, bulk copies).
    SyncRecordsSent = 74, "sync_records_sent", Event;
    /// Session sync: session events not sent, the queue to the peers full (a log line
    /// says so); the peers learn the session at the next refresh.
    SyncEventsDropped = 75, "sync_events_dropped", Event;
    /// Session sync: datagrams from a peer taken (authentic, in range, not replayed).
    SyncMessagesAccepted = 76, "sync_messages_accepted", Event;
    /// Session sync: datagrams refused by authentication (a wrong key, a forgery, or a
    /// sender that is not a configured peer).
    SyncRefusedAuth = 77, "sync_refused_auth", Event;
    /// Session sync: datagrams refused as malformed (not a sync datagram, truncated,
    /// another version, or an authentic one with a field out of range).
    SyncMalformed = 78, "sync_malformed", Event;
    /// Session sync: authentic datagrams refused as replays (seen before, too old, or
    /// from an earlier epoch of the peer).
    SyncReplayed = 79, "sync_replayed", Event;
    /// Session sync: a peer's sessions made in this node's tables.
    SyncSessionsMade = 80, "sync_sessions_made", Event;
    /// Session sync: a peer's sessions this node held, their lifetime or state moved on
    /// (or ended).
    SyncSessionsRefreshed = 81, "sync_sessions_refreshed", Event;
    /// Session sync: a peer's sessions refused, this node mapping one of their
    /// transport addresses to another.
    SyncSessionsConflict = 82, "sync_sessions_conflict", Event;
    /// Session sync: a peer's sessions not made for want of room in the tables.
    SyncSessionsFailed = 83, "sync_sessions_failed", Event;
    /// Stateful NAT64 with dynamic port blocks: blocks subscribers took.
    NatBlockAllocated = 84, "nat_block_allocated", Event;
    /// Stateful NAT64 with dynamic port blocks: blocks the sweep gave back, unused for
    /// `port-reuse-delay`.
    NatBlockReleased = 85, "nat_block_released", Event;
}

/// Number of counter slots (the map's `max_entries`).
pub const COUNTER_SLOTS: u32 = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_unique_and_fit() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
            assert!((*c as u32) < COUNTER_SLOTS);
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        for (i, a) in Counter::ALL.iter().enumerate() {
            assert!(a.name().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            for b in &Counter::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
