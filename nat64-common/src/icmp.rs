//! ICMP <-> ICMPv6 type, code, pointer and MTU translation (RFC 7915 §4.2, §5.2).

/// What happens to the four bytes after the checksum of an ICMP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rest {
    /// Unused: zero.
    Zero,
    /// Packet Too Big / Fragmentation Needed: recompute the MTU.
    Mtu,
    /// Parameter Problem: translate the pointer (drop if it has no counterpart).
    Pointer,
    /// A fixed pointer (protocol unreachable -> Parameter Problem at Next Header).
    FixedPointer(u8),
}

/// An ICMP error's translation: new type and code, and what to do with the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorXlat {
    pub typ: u8,
    pub code: u8,
    pub rest: Rest,
}

const fn x(typ: u8, code: u8, rest: Rest) -> Option<ErrorXlat> {
    Some(ErrorXlat { typ, code, rest })
}

pub const ICMP4_ECHO_REPLY: u8 = 0;
pub const ICMP4_DEST_UNREACH: u8 = 3;
pub const ICMP4_ECHO_REQUEST: u8 = 8;
pub const ICMP4_TIME_EXCEEDED: u8 = 11;
pub const ICMP4_PARAM_PROBLEM: u8 = 12;
pub const ICMP6_DEST_UNREACH: u8 = 1;
pub const ICMP6_PACKET_TOO_BIG: u8 = 2;
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
pub const ICMP6_PARAM_PROBLEM: u8 = 4;
pub const ICMP6_ECHO_REQUEST: u8 = 128;
pub const ICMP6_ECHO_REPLY: u8 = 129;

/// Whether an ICMPv4 type is an error (carries the packet in error).
#[inline(always)]
pub const fn is_error4(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// Whether an ICMPv6 type is an error (types below 128, RFC 4443 §2.1).
#[inline(always)]
pub const fn is_error6(t: u8) -> bool {
    t < 128
}

/// RFC 7915 §4.2: ICMPv4 error -> ICMPv6 error; `None` means drop.
#[inline(always)]
pub const fn error4_to_6(typ: u8, code: u8) -> Option<ErrorXlat> {
    match (typ, code) {
        (ICMP4_DEST_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => x(ICMP6_DEST_UNREACH, 0, Rest::Zero),
        (ICMP4_DEST_UNREACH, 2) => x(ICMP6_PARAM_PROBLEM, 1, Rest::FixedPointer(6)),
        (ICMP4_DEST_UNREACH, 3) => x(ICMP6_DEST_UNREACH, 4, Rest::Zero),
        (ICMP4_DEST_UNREACH, 4) => x(ICMP6_PACKET_TOO_BIG, 0, Rest::Mtu),
        (ICMP4_DEST_UNREACH, 9 | 10 | 13 | 15) => x(ICMP6_DEST_UNREACH, 1, Rest::Zero),
        (ICMP4_TIME_EXCEEDED, 0 | 1) => x(ICMP6_TIME_EXCEEDED, code, Rest::Zero),
        (ICMP4_PARAM_PROBLEM, 0 | 2) => x(ICMP6_PARAM_PROBLEM, 0, Rest::Pointer),
        // host precedence violation (3/14), source quench, redirect, missing option,
        // unknown codes: silently dropped
        _ => None,
    }
}

/// RFC 7915 §5.2: ICMPv6 error -> ICMPv4 error; `None` means drop.
#[inline(always)]
pub const fn error6_to_4(typ: u8, code: u8) -> Option<ErrorXlat> {
    match (typ, code) {
        (ICMP6_DEST_UNREACH, 0 | 2 | 3) => x(ICMP4_DEST_UNREACH, 1, Rest::Zero),
        (ICMP6_DEST_UNREACH, 1) => x(ICMP4_DEST_UNREACH, 10, Rest::Zero),
        (ICMP6_DEST_UNREACH, 4) => x(ICMP4_DEST_UNREACH, 3, Rest::Zero),
        (ICMP6_PACKET_TOO_BIG, 0) => x(ICMP4_DEST_UNREACH, 4, Rest::Mtu),
        (ICMP6_TIME_EXCEEDED, 0 | 1) => x(ICMP4_TIME_EXCEEDED, code, Rest::Zero),
        (ICMP6_PARAM_PROBLEM, 0) => x(ICMP4_PARAM_PROBLEM, 0, Rest::Pointer),
        (ICMP6_PARAM_PROBLEM, 1) => x(ICMP4_DEST_UNREACH, 2, Rest::Zero),
        _ => None,
    }
}

/// RFC 7915 §4.2 Figure 3: IPv4 header byte -> IPv6 header byte.
#[inline(always)]
pub const fn pointer4_to_6(p: u8) -> Option<u8> {
    match p {
        0 => Some(0),
        1 => Some(1),
        2 | 3 => Some(4),
        8 => Some(7),
        9 => Some(6),
        12..=15 => Some(8),
        16..=19 => Some(24),
        _ => None,
    }
}

/// RFC 7915 §5.2 Figure 6: IPv6 header byte -> IPv4 header byte.
#[inline(always)]
pub const fn pointer6_to_4(p: u32) -> Option<u8> {
    match p {
        0 => Some(0),
        1 => Some(1),
        4 | 5 => Some(2),
        6 => Some(9),
        7 => Some(8),
        8..=23 => Some(12),
        24..=39 => Some(16),
        _ => None,
    }
}

/// RFC 1191 §7 plateau table, for Fragmentation Needed messages that carry no MTU.
pub const PLATEAUS: [u16; 11] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// The largest plateau below the length of the packet that was too big.
#[inline(always)]
pub const fn plateau_below(tot_len: u16) -> u16 {
    let mut i = 0;
    while i < PLATEAUS.len() {
        if PLATEAUS[i] < tot_len {
            return PLATEAUS[i];
        }
        i += 1;
    }
    68
}

/// RFC 7915 §4.2: the MTU of an ICMPv6 Packet Too Big made from an ICMPv4
/// Fragmentation Needed: the IPv4 MTU (or the plateau below the inner packet's
/// length when it says 0) plus the 20 bytes IPv6 adds, never below the IPv6 minimum.
#[inline(always)]
pub const fn mtu4_to_6(mtu4: u16, inner_tot_len: u16) -> u32 {
    let m = if mtu4 == 0 { plateau_below(inner_tot_len) } else { mtu4 } as u32;
    let m = m + 20;
    if m < 1280 { 1280 } else { m }
}

/// RFC 7915 §5.2: the MTU of an ICMPv4 Fragmentation Needed made from an ICMPv6
/// Packet Too Big: 20 bytes less, capped to what the 16-bit field holds.
#[inline(always)]
pub const fn mtu6_to_4(mtu6: u32) -> u16 {
    let m = mtu6.saturating_sub(20);
    if m > 0xffff { 0xffff } else { m as u16 }
}

/// RFC 7915 §4.2: a translated Packet Too Big's MTU (`mtu6`, from [`mtu4_to_6`]) no
/// larger than the next hops carry: minimum(advertised + 20, MTU of the IPv6 next hop,
/// MTU of the IPv4 next hop + 20), never below IPv6's 1280. `u32::MAX` for a next hop
/// whose MTU is not known.
#[inline(always)]
pub const fn cap_mtu6(mtu6: u32, next6: u32, next4: u32) -> u32 {
    let mut m = mtu6;
    if next6 < m {
        m = next6;
    }
    if next4.saturating_add(20) < m {
        m = next4 + 20;
    }
    if m < 1280 { 1280 } else { m }
}

/// RFC 7915 §5.2: a translated Fragmentation Needed's MTU (`mtu4`, from
/// [`mtu6_to_4`]) no larger than the next hops carry: minimum(advertised - 20, MTU of
/// the IPv4 next hop, MTU of the IPv6 next hop - 20). `u32::MAX` for a next hop whose
/// MTU is not known.
#[inline(always)]
pub const fn cap_mtu4(mtu4: u16, next4: u32, next6: u32) -> u16 {
    let mut m = mtu4 as u32;
    if next4 < m {
        m = next4;
    }
    if next6.saturating_sub(20) < m {
        m = next6 - 20;
    }
    m as u16
}

/// RFC 4884 §4.1: with an extension, the original-datagram field is at least this long.
pub const EXT_MIN_DATAGRAM: usize = 128;

/// Whether an error of this type has an RFC 4884 length attribute: ICMPv6 (`v6`)
/// Destination Unreachable and Time Exceeded; ICMPv4 Destination Unreachable, Time
/// Exceeded and Parameter Problem (RFC 4884 §4.1, §4.5). ICMPv6 Parameter Problem and
/// Packet Too Big carry a pointer or an MTU there: no extension crosses into them.
#[inline(always)]
pub const fn has_length_attr(v6: bool, typ: u8) -> bool {
    if v6 {
        typ == ICMP6_DEST_UNREACH || typ == ICMP6_TIME_EXCEEDED
    } else {
        typ == ICMP4_DEST_UNREACH || typ == ICMP4_TIME_EXCEEDED || typ == ICMP4_PARAM_PROBLEM
    }
}

/// RFC 4884 in a translated error (RFC 7915 §4.2, §5.2): how long the new
/// original-datagram field is (`ipl`, a multiple of `unit`: 4 for ICMPv4, 8 for
/// ICMPv6) and how much of the translated datagram (`content` bytes) it keeps, the
/// rest zero padding. `ext` is the extension structure's length and `room` what the
/// message may hold after its ICMP header (576 or 1280 less the IP and ICMP
/// headers). The parts give way in this order: the datagram beyond its first 128
/// bytes is cut first, then the extension goes whole (`None`: the error is then
/// translated without it, length attribute 0); the extension is never cut. A datagram
/// longer than a whole number of units is cut to one, a shorter one than 128 bytes
/// padded to 128.
#[inline(always)]
pub const fn extension_layout(
    content: usize,
    ext: usize,
    room: usize,
    unit: usize,
) -> Option<(usize, usize)> {
    if ext == 0 || unit == 0 || ext > room {
        return None;
    }
    let max = (room - ext) / unit * unit;
    let mut ipl = content / unit * unit;
    if ipl < EXT_MIN_DATAGRAM {
        ipl = EXT_MIN_DATAGRAM;
    }
    if ipl > max {
        ipl = max;
    }
    // The attribute counts units in one byte.
    if ipl > 255 * unit {
        ipl = 255 * unit;
    }
    if ipl < EXT_MIN_DATAGRAM {
        return None;
    }
    let keep = if content < ipl { content } else { ipl };
    Some((ipl, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icmpv4_type_and_code() {
        let mut translated = 0;
        for t in 0..=255u8 {
            for c in 0..=255u8 {
                if let Some(e) = error4_to_6(t, c) {
                    translated += 1;
                    assert!(is_error4(t) && is_error6(e.typ), "{t}/{c}");
                }
            }
        }
        // 3/0-13,15 (14 codes, 14 dropped) + 11/0-1 + 12/0,2
        assert_eq!(translated, 15 + 2 + 2);
        assert_eq!(error4_to_6(3, 4), x(2, 0, Rest::Mtu));
        assert_eq!(error4_to_6(3, 2), x(4, 1, Rest::FixedPointer(6)));
        assert_eq!(error4_to_6(3, 3), x(1, 4, Rest::Zero));
        assert_eq!(error4_to_6(3, 13), x(1, 1, Rest::Zero));
        assert_eq!(error4_to_6(3, 14), None);
        assert_eq!(error4_to_6(11, 1), x(3, 1, Rest::Zero));
        assert_eq!(error4_to_6(12, 1), None);
        assert_eq!(error4_to_6(5, 0), None, "redirect");
        assert_eq!(error4_to_6(4, 0), None, "source quench");
    }

    #[test]
    fn every_icmpv6_type_and_code() {
        let mut translated = 0;
        for t in 0..=255u8 {
            for c in 0..=255u8 {
                if error6_to_4(t, c).is_some() {
                    translated += 1;
                    assert!(is_error6(t), "{t}/{c}");
                }
            }
        }
        assert_eq!(translated, 5 + 1 + 2 + 2);
        assert_eq!(error6_to_4(1, 1), x(3, 10, Rest::Zero));
        assert_eq!(error6_to_4(1, 4), x(3, 3, Rest::Zero));
        assert_eq!(error6_to_4(2, 0), x(3, 4, Rest::Mtu));
        assert_eq!(error6_to_4(4, 1), x(3, 2, Rest::Zero));
        assert_eq!(error6_to_4(4, 2), None);
        assert_eq!(error6_to_4(1, 5), None);
    }

    #[test]
    fn pointer_tables() {
        let want4to6 = [
            (0, Some(0)),
            (1, Some(1)),
            (2, Some(4)),
            (3, Some(4)),
            (4, None),
            (7, None),
            (8, Some(7)),
            (9, Some(6)),
            (10, None),
            (11, None),
            (12, Some(8)),
            (15, Some(8)),
            (16, Some(24)),
            (19, Some(24)),
            (20, None),
            (255, None),
        ];
        for (p, w) in want4to6 {
            assert_eq!(pointer4_to_6(p), w, "{p}");
        }
        let want6to4 = [
            (0, Some(0)),
            (1, Some(1)),
            (2, None),
            (3, None),
            (4, Some(2)),
            (5, Some(2)),
            (6, Some(9)),
            (7, Some(8)),
            (8, Some(12)),
            (23, Some(12)),
            (24, Some(16)),
            (39, Some(16)),
            (40, None),
            (70000, None),
        ];
        for (p, w) in want6to4 {
            assert_eq!(pointer6_to_4(p), w, "{p}");
        }
    }

    #[test]
    fn mtu_arithmetic() {
        assert_eq!(mtu4_to_6(1400, 1500), 1420);
        assert_eq!(mtu4_to_6(1000, 1500), 1280, "never below the IPv6 minimum");
        assert_eq!(mtu4_to_6(0, 1500), 1492 + 20, "plateau below 1500 is 1492");
        assert_eq!(mtu4_to_6(0, 4000), 2002 + 20);
        assert_eq!(mtu4_to_6(0, 1000), 1280);
        assert_eq!(plateau_below(68), 68);
        assert_eq!(plateau_below(65535), 32000);
        assert_eq!(mtu6_to_4(1280), 1260);
        assert_eq!(mtu6_to_4(1500), 1480);
        assert_eq!(mtu6_to_4(100_000), 65535);
        assert_eq!(mtu6_to_4(10), 0);
    }

    /// RFC 7915 §4.2 and §5.2 with the next hops' MTUs (1500 both, as the peer's lab).
    #[test]
    fn mtu_capped_by_the_next_hops() {
        let none = u32::MAX;
        // Fragmentation Needed 1496 -> Packet Too Big 1516, but the IPv6 link is 1500.
        assert_eq!(cap_mtu6(mtu4_to_6(1496, 1500), 1500, 1500), 1500);
        assert_eq!(cap_mtu6(mtu4_to_6(1600, 1500), 1500, 1500), 1500);
        // The IPv4 next hop is the smaller: its MTU + 20.
        assert_eq!(cap_mtu6(mtu4_to_6(1600, 1500), 9000, 1400), 1420);
        assert_eq!(cap_mtu6(1420, none, none), 1420, "nothing known, nothing capped");
        assert_eq!(cap_mtu6(1500, 1500, 576), 1280, "never below 1280");
        // Packet Too Big 1600 -> Fragmentation Needed 1580, but the IPv6 next hop is
        // 1500: 1480.
        assert_eq!(cap_mtu4(mtu6_to_4(1600), 1500, 1500), 1480);
        assert_eq!(cap_mtu4(mtu6_to_4(1600), 1300, 9000), 1300);
        assert_eq!(cap_mtu4(mtu6_to_4(1280), none, none), 1260);
    }

    /// The peer's conformance cases for RFC 4884 (its graybox suite, "ib", "ic", "id"):
    /// (content, extension, room, unit) -> (length, kept) or the extension dropped.
    #[test]
    fn extension_layout_as_the_peer_suite() {
        let v4 = 576 - 28;
        let v6 = 1280 - 48;
        /// (datagram, extension, room, unit) -> (length, kept) or dropped.
        type Case = (usize, usize, usize, usize, Option<(usize, usize)>);
        let cases: [Case; 22] = [
            (508, 40, v4, 4, Some((508, 508))),     // ic1
            (516, 40, v4, 4, Some((508, 508))),     // ic2
            (1172, 40, v4, 4, Some((508, 508))),    // ic3
            (108, 420, v4, 4, Some((128, 108))),    // ic4: padded to 128
            (108, 421, v4, 4, None),                // ic5: extension dropped
            (556, 521, v4, 4, None),                // ic6
            (28, 40, v4, 4, Some((128, 28))),       // ic7: invalidly small, padded
            (108, 20, v4, 4, Some((128, 108))),     // ib1
            (146, 20, v6, 8, Some((144, 144))),     // ib2: cut to a whole unit
            (148, 20, v6, 8, Some((144, 144))),     // ib3
            (152, 40, v6, 8, Some((152, 152))),     // ida
            (592, 640, v6, 8, Some((592, 592))),    // idb
            (1040, 192, v6, 8, Some((1040, 1040))), // idc
            (152, 1080, v6, 8, Some((152, 152))),   // idd
            (600, 640, v6, 8, Some((592, 592))),    // ide
            (1040, 200, v6, 8, Some((1032, 1032))), // idf
            (1040, 1104, v6, 8, Some((128, 128))),  // idg
            (148, 1105, v6, 8, None),               // idh
            (1040, 1105, v6, 8, None),              // idi
            (48, 40, v6, 8, Some((128, 48))),       // idk
            (596, 640, v6, 8, Some((592, 592))),    // idz
            (0, 0, v6, 8, None),                    // no extension at all
        ];
        for (content, ext, room, unit, want) in cases {
            assert_eq!(extension_layout(content, ext, room, unit), want, "{content} {ext} {room} {unit}");
        }
        // The length byte's limit.
        assert_eq!(extension_layout(1100, 8, 2000, 4), Some((1020, 1020)));
    }

    #[test]
    fn length_attribute_types() {
        assert!(has_length_attr(true, ICMP6_DEST_UNREACH) && has_length_attr(true, ICMP6_TIME_EXCEEDED));
        assert!(!has_length_attr(true, ICMP6_PACKET_TOO_BIG) && !has_length_attr(true, ICMP6_PARAM_PROBLEM));
        assert!(has_length_attr(false, ICMP4_DEST_UNREACH) && has_length_attr(false, ICMP4_TIME_EXCEEDED));
        assert!(has_length_attr(false, ICMP4_PARAM_PROBLEM) && !has_length_attr(false, ICMP4_ECHO_REPLY));
    }
}
