//! The data path's pipeline: the stages after each entry program, each a program of
//! its own reached by tail call, so that the kernel's verifier checks each apart (one
//! program holding them all came close to its limit of a million instructions).
//!
//! This table is the one place that says which slot of an attach point's jump table
//! holds which stage: the kernel programs jump by these indexes, and nat64-ctl loads
//! the program named `<entry>_<suffix>` into slot `index`.

/// One stage: its slot in the jump table and its program's name after the entry's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub index: u32,
    pub suffix: &'static str,
    pub what: &'static str,
}

/// Translation of an IPv4 packet to IPv6.
pub const XLAT4: u32 = 0;
/// Translation of an IPv6 packet to IPv4.
pub const XLAT6: u32 = 1;
/// An ICMPv4 error and the packet inside it.
pub const ERR4: u32 = 2;
/// An ICMPv6 error and the packet inside it.
pub const ERR6: u32 = 3;
/// The translator's own ICMPv4 error, built in place.
pub const REPLY4: u32 = 4;
/// The translator's own ICMPv6 error, built in place.
pub const REPLY6: u32 = 5;
/// A dynamic-pool address for an IPv6 source.
pub const ALLOC6: u32 = 6;
/// RFC 7757 §4: an IPv6 packet whose IPv4 destination maps back to IPv6.
pub const HAIRPIN6: u32 = 7;
/// Stateful NAT64 for an IPv4 packet: its session, then translation again.
pub const NAT4: u32 = 8;
/// Stateful NAT64 for an IPv6 packet: its BIB entry and session.
pub const NAT6: u32 = 9;
/// A translated first or last fragment of an ICMP echo, held or sent with its copy.
pub const HELD: u32 = 10;

/// Every stage, in slot order.
pub const ALL: [Stage; 11] = [
    Stage { index: XLAT4, suffix: "x4", what: "translation 4->6" },
    Stage { index: XLAT6, suffix: "x6", what: "translation 6->4" },
    Stage { index: ERR4, suffix: "e4", what: "ICMP errors 4->6" },
    Stage { index: ERR6, suffix: "e6", what: "ICMP errors 6->4" },
    Stage { index: REPLY4, suffix: "r4", what: "own ICMPv4 errors" },
    Stage { index: REPLY6, suffix: "r6", what: "own ICMPv6 errors" },
    Stage { index: ALLOC6, suffix: "a6", what: "dynamic-pool allocation" },
    Stage { index: HAIRPIN6, suffix: "h6", what: "RFC 7757 hairpinning" },
    Stage { index: NAT4, suffix: "n4", what: "stateful NAT64 4->6" },
    Stage { index: NAT6, suffix: "n6", what: "stateful NAT64 6->4" },
    Stage { index: HELD, suffix: "hd", what: "ICMP echoes in fragments held" },
];

/// The size of each jump table.
pub const COUNT: u32 = ALL.len() as u32;

const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        assert!(ALL[i].index == i as u32, "stages::ALL is in slot order");
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_distinct_and_short() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(a.suffix.len(), 2, "{a:?}");
            assert!(ALL[i + 1..].iter().all(|b| b.suffix != a.suffix), "{a:?}");
        }
    }
}
