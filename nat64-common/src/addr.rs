//! Address mapping: RFC 6052 IPv4-embedded IPv6 addresses (pool6) and RFC 7757
//! explicit address mappings (EAMT).

use crate::{
    maps::{EamEntry, Globals},
    ranges,
    rfc6052::{
        embed, extract, get_suffix, host_words, host_words_bytes, in_pool6, prefix_mask4, put_suffix,
        suffix_mask,
    },
    words::{self, W6, from_bytes, to_bytes},
};

impl EamEntry {
    /// Number of host bits on the IPv4 side (the suffix copied between the sides).
    #[inline(always)]
    pub const fn suffix_bits(&self) -> u8 {
        32 - self.v4_len
    }

    /// Whether both sides leave the same number of host bits (the IPv6 prefix is then
    /// /96 or longer and the suffix is the address's last bits).
    #[inline(always)]
    pub const fn equal_suffixes(&self) -> bool {
        self.v6_len as u32 == 96 + self.v4_len as u32
    }

    /// RFC 7757 §3.2: IPv4 -> IPv6: the IPv4 suffix bits follow the IPv6 prefix (the
    /// bits after them are zero when the IPv6 suffix is longer).
    #[inline(always)]
    pub fn map4to6(&self, v4: [u8; 4]) -> [u8; 16] {
        if !self.equal_suffixes() {
            let mut w = host_words(&self.v6);
            put_suffix(&mut w, self.v6_len, self.suffix_bits(), u32::from_be_bytes(v4));
            return host_words_bytes(w);
        }
        let mask = suffix_mask(self.suffix_bits());
        let low6 = u32::from_be_bytes([self.v6[12], self.v6[13], self.v6[14], self.v6[15]]);
        let low = (low6 & !mask) | (u32::from_be_bytes(v4) & mask);
        let mut out = self.v6;
        let b = low.to_be_bytes();
        out[12] = b[0];
        out[13] = b[1];
        out[14] = b[2];
        out[15] = b[3];
        out
    }

    /// RFC 7757 §3.3: IPv6 -> IPv4: the IPv4 suffix is read right after the IPv6
    /// prefix (what follows it is not looked at).
    #[inline(always)]
    pub fn map6to4(&self, v6: &[u8; 16]) -> [u8; 4] {
        let mask = suffix_mask(self.suffix_bits());
        let low = if self.equal_suffixes() {
            u32::from_be_bytes([v6[12], v6[13], v6[14], v6[15]])
        } else {
            get_suffix(&host_words(v6), self.v6_len, self.suffix_bits())
        };
        ((u32::from_be_bytes(self.v4) & !mask) | (low & mask)).to_be_bytes()
    }
}

impl EamEntry {
    /// Whether the entry's IPv4 prefix covers `a`.
    #[inline(always)]
    pub fn covers4(&self, a: [u8; 4]) -> bool {
        u32::from_be_bytes(a) & prefix_mask4(self.v4_len) == u32::from_be_bytes(self.v4)
    }

    /// Whether the entry's IPv6 prefix covers `a`.
    #[inline(always)]
    pub fn covers6(&self, a: &[u8; 16]) -> bool {
        let (aw, pw) = (host_words(a), host_words(&self.v6));
        let mut i = 0;
        while i < 4 {
            let len = (self.v6_len as i32 - 32 * i as i32).clamp(0, 32) as u8;
            if (aw[i] ^ pw[i]) & prefix_mask4(len) != 0 {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// RFC 7757 §3: the entry with the longest IPv4 prefix covering `a` (what the data
/// path's LPM trie answers), for user space working from a list.
pub fn eam_longest4(entries: &[EamEntry], a: [u8; 4]) -> Option<&EamEntry> {
    entries.iter().filter(|e| e.covers4(a)).max_by_key(|e| e.v4_len)
}

/// The entry with the longest IPv6 prefix covering `a`.
pub fn eam_longest6<'a>(entries: &'a [EamEntry], a: &[u8; 16]) -> Option<&'a EamEntry> {
    entries.iter().filter(|e| e.covers6(a)).max_by_key(|e| e.v6_len)
}

/// RFC 6791: a source address for an ICMP error from a router that has no mapping,
/// picked in `prefix/len` by a hash of the router's address (so one router keeps one
/// address, and several routers spread over the pool).
#[inline(always)]
pub fn rfc6791_v4(prefix: [u8; 4], len: u8, router: &[u8; 16]) -> [u8; 4] {
    let mut h: u32 = 0x9e37_79b9;
    let mut i = 0;
    while i < 16 {
        h = (h ^ router[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    let mask = suffix_mask(32 - if len > 32 { 32 } else { len });
    ((u32::from_be_bytes(prefix) & !mask) | (h & mask)).to_be_bytes()
}

/// RFC 6791 for the other direction: an IPv6 source in `prefix/len` (the low 32
/// bits at most vary) for an ICMPv6 error from an unmapped IPv4 router.
#[inline(always)]
pub fn rfc6791_v6(prefix: &[u8; 16], len: u8, router: [u8; 4]) -> [u8; 16] {
    let mut out = *prefix;
    let host_bits = 128 - if len > 128 { 128 } else { len } as u32;
    let mask = if host_bits >= 32 { u32::MAX } else { (1u32 << host_bits) - 1 };
    let low = u32::from_be_bytes([out[12], out[13], out[14], out[15]]);
    let v = ((low & !mask) | (u32::from_be_bytes(router) & mask)).to_be_bytes();
    out[12] = v[0];
    out[13] = v[1];
    out[14] = v[2];
    out[15] = v[3];
    out
}

/// Why an address could not be translated. Each maps to a drop/pass counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untranslatable {
    /// Neither an EAM entry nor pool6 covers the address.
    NoMapping,
    /// RFC 7915 / spec §1 reserved ranges (0/8, 127/8, 169.254/16, 224/4, 240/4 with broadcast).
    Reserved,
    /// The translator's own address.
    OwnAddress,
    /// The operator's denylist4 (pool6 mappings only).
    Denylisted,
    /// RFC 6052 §3.1: the Well-Known Prefix with non-global IPv4 space.
    WkpNonGlobal,
}

/// Which rule mapped an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Eam,
    Pool6,
}

/// Spec §1: never translate to or from reserved IPv4 space or the translator itself.
#[inline(always)]
pub(crate) fn check_v4(g: &Globals, v4: [u8; 4]) -> Result<(), Untranslatable> {
    if ranges::is_reserved4(v4) {
        return Err(Untranslatable::Reserved);
    }
    if g.has_ipv4_addr() && u32::from_ne_bytes(v4) == g.ipv4_addr_word() {
        return Err(Untranslatable::OwnAddress);
    }
    Ok(())
}

/// The checks every pool6-mapped IPv4 address passes: reserved ranges, own address,
/// denylist4 and the Well-Known-Prefix rule.
#[inline(always)]
pub(crate) fn check_pool6_v4(g: &Globals, v4: [u8; 4], denylisted: bool) -> Result<(), Untranslatable> {
    check_v4(g, v4)?;
    if denylisted {
        return Err(Untranslatable::Denylisted);
    }
    if !g.flag(Globals::FLAG_WKP_ALLOW_NON_GLOBAL) && g.pool6_is_wkp() && ranges::is_non_global4(v4) {
        return Err(Untranslatable::WkpNonGlobal);
    }
    Ok(())
}

/// Maps an IPv4 address to IPv6: EAM first (longest match, looked up by the caller),
/// then pool6. `eam` is the EAMT lookup result; `denylisted` the denylist4 result.
#[inline(always)]
pub fn map4to6(
    g: &Globals,
    v4: [u8; 4],
    eam: Option<&EamEntry>,
    denylisted: bool,
) -> Result<([u8; 16], Rule), Untranslatable> {
    check_v4(g, v4)?;
    if let Some(e) = eam {
        return Ok((e.map4to6(v4), Rule::Eam));
    }
    if g.pool6_len == 0 {
        return Err(Untranslatable::NoMapping);
    }
    check_pool6_v4(g, v4, denylisted)?;
    match embed(&g.pool6, g.pool6_len, v4) {
        Some(a) => Ok((a, Rule::Pool6)),
        None => Err(Untranslatable::NoMapping),
    }
}

/// Maps an IPv6 address to IPv4: EAM first, then pool6. `denylist` is asked only for
/// a pool6-extracted address.
#[inline(always)]
pub fn map6to4(
    g: &Globals,
    v6: &[u8; 16],
    eam: Option<&EamEntry>,
    denylist: impl FnOnce([u8; 4]) -> bool,
) -> Result<([u8; 4], Rule), Untranslatable> {
    if g.has_ipv6_addr() && *v6 == g.ipv6_addr {
        return Err(Untranslatable::OwnAddress);
    }
    if let Some(e) = eam {
        let v4 = e.map6to4(v6);
        check_v4(g, v4)?;
        return Ok((v4, Rule::Eam));
    }
    if g.pool6_len == 0 || !in_pool6(v6, &g.pool6, g.pool6_len) {
        return Err(Untranslatable::NoMapping);
    }
    let v4 = match extract(v6, g.pool6_len) {
        Some(a) => a,
        None => return Err(Untranslatable::NoMapping),
    };
    check_pool6_v4(g, v4, denylist(v4))?;
    Ok((v4, Rule::Pool6))
}

/// [`EamEntry::map4to6`] on words (the data path's form, see [`crate::words`]); an entry with unequal suffixes (RFC 7757 §3.2, rare)
/// through the byte version.
#[inline(always)]
pub fn eam_map4to6_words(e: &EamEntry, v4: [u8; 4]) -> W6 {
    if !e.equal_suffixes() {
        return from_bytes(&e.map4to6(v4));
    }
    let mask = suffix_mask(e.suffix_bits());
    let v6 = e.v6_words();
    let low = (u32::from_be(v6[3]) & !mask) | (u32::from_be_bytes(v4) & mask);
    [v6[0], v6[1], v6[2], low.to_be()]
}

/// [`EamEntry::map6to4`] on words (unequal suffixes through the byte version).
#[inline(always)]
pub fn eam_map6to4_words(e: &EamEntry, v6: &W6) -> [u8; 4] {
    if !e.equal_suffixes() {
        return e.map6to4(&to_bytes(v6));
    }
    let mask = suffix_mask(e.suffix_bits());
    ((u32::from_be_bytes(e.v4) & !mask) | (u32::from_be(v6[3]) & mask)).to_be_bytes()
}

/// `map4to6` on words.
#[inline(always)]
pub fn map4to6_words(
    g: &Globals,
    v4: [u8; 4],
    eam: Option<&EamEntry>,
    denylisted: bool,
) -> Result<(W6, Rule), Untranslatable> {
    check_v4(g, v4)?;
    if let Some(e) = eam {
        return Ok((eam_map4to6_words(e, v4), Rule::Eam));
    }
    if g.pool6_len == 0 {
        return Err(Untranslatable::NoMapping);
    }
    check_pool6_v4(g, v4, denylisted)?;
    match words::embed(&g.pool6_words(), g.pool6_len, v4) {
        Some(a) => Ok((a, Rule::Pool6)),
        None => Err(Untranslatable::NoMapping),
    }
}

/// `map6to4` on words.
#[inline(always)]
pub fn map6to4_words(
    g: &Globals,
    v6: &W6,
    eam: Option<&EamEntry>,
    denylist: impl FnOnce([u8; 4]) -> bool,
) -> Result<([u8; 4], Rule), Untranslatable> {
    if g.has_ipv6_addr() && *v6 == g.ipv6_addr_words() {
        return Err(Untranslatable::OwnAddress);
    }
    if let Some(e) = eam {
        let v4 = eam_map6to4_words(e, v6);
        check_v4(g, v4)?;
        return Ok((v4, Rule::Eam));
    }
    if g.pool6_len == 0 || !words::in_pool6(v6, &g.pool6_words(), g.pool6_len) {
        return Err(Untranslatable::NoMapping);
    }
    let v4 = match words::extract(v6, g.pool6_len) {
        Some(a) => a,
        None => return Err(Untranslatable::NoMapping),
    };
    check_pool6_v4(g, v4, denylist(v4))?;
    Ok((v4, Rule::Pool6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc6052::POOL6_LENGTHS;

    fn g(prefix: [u8; 16], len: u8) -> Globals {
        let mut g = Globals::zeroed();
        g.pool6 = prefix;
        g.pool6_len = len;
        g
    }

    /// RFC 7757 §3.2 with a longer IPv6 suffix: the IPv4 suffix bits right after the
    /// IPv6 prefix, zeros after them; and back, ignoring what follows them.
    #[test]
    fn eam_unequal_suffixes() {
        let v6 = |s: &str| s.parse::<core::net::Ipv6Addr>().unwrap().octets();
        let e = EamEntry::new([198, 51, 100, 0], 24, v6("2001:db8:1c6:3364::"), 72);
        assert!(!e.equal_suffixes());
        assert_eq!(e.map4to6([198, 51, 100, 7]), v6("2001:db8:1c6:3364:7::"));
        assert_eq!(e.map6to4(&v6("2001:db8:1c6:3364:7::")), [198, 51, 100, 7]);
        assert_eq!(e.map6to4(&v6("2001:db8:1c6:3364:7:ffff:ffff:ffff")), [198, 51, 100, 7]);
        assert!(e.covers6(&v6("2001:db8:1c6:3364:ff::1")) && !e.covers6(&v6("2001:db8:1c6:3365::")));
        // A suffix across a word boundary: /20 <-> /90 (12 bits at 90..101).
        let e = EamEntry::new([10, 0x10, 0, 0], 20, v6("2001:db8:0:0:0:40::"), 90);
        assert_eq!(e.map4to6([10, 16, 12, 153]), v6("2001:db8::72:6400:0"));
        assert_eq!(e.map6to4(&v6("2001:db8::72:67ff:ffff")), [10, 16, 12, 153]);
        // Host bits of the IPv6 side are cleared by the constructor.
        assert_eq!(EamEntry::new([1, 2, 3, 0], 24, v6("2001:db8::ffff"), 64).v6, v6("2001:db8::"));
    }

    /// The bit arithmetic against a 128-bit reference, for every IPv6 prefix length an
    /// IPv4 suffix fits after and a spread of addresses.
    #[test]
    fn eam_suffixes_match_a_128_bit_reference() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for v4_len in 0..=32u8 {
            let s4 = 32 - v4_len as u32;
            for v6_len in 0..=(128 - s4) as u8 {
                let a4 = (next() as u32).to_be_bytes();
                let p6 = ((next() as u128) << 64 | next() as u128)
                    & !(u128::MAX.checked_shr(v6_len as u32).unwrap_or(0));
                let e = EamEntry::new(a4, v4_len, p6.to_be_bytes(), v6_len);
                let low = |bits: u32| if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 };
                let after = 128 - v6_len as u32 - s4;
                let want6 = p6 | (u32::from_be_bytes(a4) as u128 & low(s4)).checked_shl(after).unwrap_or(0);
                let got6 = u128::from_be_bytes(e.map4to6(a4));
                assert_eq!(got6, want6, "/{v4_len} <-> /{v6_len}");
                let noise = (next() as u128 | (next() as u128) << 64) & low(after);
                let back = e.map6to4(&(got6 | noise).to_be_bytes());
                let m = prefix_mask4(v4_len);
                assert_eq!(u32::from_be_bytes(back), u32::from_be_bytes(a4), "/{v4_len} <-> /{v6_len} back");
                assert!(e.covers6(&(got6 | noise).to_be_bytes()));
                assert!(e.covers4(a4) && u32::from_be_bytes(e.v4) & m == u32::from_be_bytes(e.v4));
            }
        }
    }

    // RFC 6052 §2.4 table: 192.0.2.33 under each prefix length of 2001:db8:...
    #[test]
    fn rfc6052_table() {
        let v4 = [192, 0, 2, 33];
        let cases: [([u8; 16], u8, [u8; 16]); 6] = [
            (
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                32,
                [0x20, 0x01, 0x0d, 0xb8, 0xc0, 0x00, 0x02, 0x21, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                40,
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0xc0, 0x00, 0x02, 0x00, 0x21, 0, 0, 0, 0, 0, 0],
            ),
            (
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                48,
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0xc0, 0x00, 0x00, 0x02, 0x21, 0, 0, 0, 0, 0],
            ),
            (
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                56,
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0xc0, 0x00, 0x00, 0x02, 0x21, 0, 0, 0, 0],
            ),
            (
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0x44, 0, 0, 0, 0, 0, 0, 0, 0],
                64,
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0x44, 0x00, 0xc0, 0x00, 0x02, 0x21, 0, 0, 0],
            ),
            (
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0x44, 0, 0, 0, 0, 0, 0, 0, 0],
                96,
                [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0x44, 0, 0, 0, 0, 0xc0, 0x00, 0x02, 0x21],
            ),
        ];
        for (prefix, len, want) in cases {
            assert_eq!(embed(&prefix, len, v4), Some(want), "embed /{len}");
            assert_eq!(extract(&want, len), Some(v4), "extract /{len}");
            assert!(in_pool6(&want, &prefix, len));
        }
    }

    #[test]
    fn roundtrip_all_lengths_many_addresses() {
        let prefix = [0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            // xorshift: deterministic spread over the whole IPv4 space
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v4 = x.to_be_bytes();
            for len in POOL6_LENGTHS {
                let v6 = embed(&prefix, len, v4).unwrap();
                assert_eq!(v6[8], 0, "u-octet must be zero for /{len}");
                assert_eq!(extract(&v6, len), Some(v4));
                assert!(in_pool6(&v6, &prefix, len));
            }
        }
    }

    #[test]
    fn extract_ignores_u_octet_and_suffix() {
        let mut v6 =
            embed(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40, [10, 1, 2, 3]).unwrap();
        v6[8] = 0xff;
        v6[15] = 0xee;
        assert_eq!(extract(&v6, 40), Some([10, 1, 2, 3]));
    }

    #[test]
    fn bad_length_is_refused() {
        for len in [0u8, 8, 33, 72, 80, 95, 97, 128] {
            assert_eq!(embed(&[0; 16], len, [1, 2, 3, 4]), None);
            assert_eq!(extract(&[0; 16], len), None);
            assert!(!in_pool6(&[0; 16], &[0; 16], len));
        }
    }

    #[test]
    fn eam_maps_suffix_both_ways() {
        // 192.0.2.0/24 <-> 2001:db8::/120 (RFC 7757 §3 example shape)
        let e =
            EamEntry::new([192, 0, 2, 0], 24, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 120);
        let v6 = e.map4to6([192, 0, 2, 77]);
        assert_eq!(v6, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 77]);
        assert_eq!(e.map6to4(&v6), [192, 0, 2, 77]);
        // single address entry
        let e = EamEntry::new(
            [198, 51, 100, 7],
            32,
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
            128,
        );
        assert_eq!(e.map4to6([198, 51, 100, 7])[14..], [0xab, 0xcd]);
        assert_eq!(e.map6to4(&e.v6), [198, 51, 100, 7]);
        // whole-space entry (/0 <-> /96)
        let e = EamEntry::new([0; 4], 0, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        assert_eq!(e.map4to6([1, 2, 3, 4])[12..], [1, 2, 3, 4]);
        assert_eq!(e.map6to4(&e.map4to6([1, 2, 3, 4])), [1, 2, 3, 4]);
    }

    fn v6(last: [u8; 4]) -> [u8; 16] {
        [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, last[0], last[1], last[2], last[3]]
    }

    #[test]
    fn eam_longest_prefix_match_both_ways() {
        // a /24 with a nested /25 and a nested single address, as an operator may
        // configure with `map add --force`
        let wide = EamEntry::new([192, 0, 2, 0], 24, v6([0, 0, 0, 0]), 120);
        let half = EamEntry::new([192, 0, 2, 128], 25, v6([0, 0, 9, 0x80]), 121);
        let one = EamEntry::new([192, 0, 2, 200], 32, v6([0, 0, 7, 7]), 128);
        let t = [wide, half, one];
        assert_eq!(eam_longest4(&t, [192, 0, 2, 5]), Some(&wide));
        assert_eq!(eam_longest4(&t, [192, 0, 2, 130]), Some(&half));
        assert_eq!(eam_longest4(&t, [192, 0, 2, 200]), Some(&one));
        assert_eq!(eam_longest4(&t, [192, 0, 3, 1]), None);
        assert_eq!(eam_longest6(&t, &v6([0, 0, 0, 5])), Some(&wide));
        assert_eq!(eam_longest6(&t, &v6([0, 0, 9, 0x82])), Some(&half));
        assert_eq!(eam_longest6(&t, &v6([0, 0, 7, 7])), Some(&one));
        assert_eq!(eam_longest6(&t, &v6([0, 0, 7, 8])), None);
        assert_eq!(eam_longest6(&t, &[0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]), None);
        // and the mapping follows the entry that matched
        assert_eq!(half.map4to6([192, 0, 2, 130]), v6([0, 0, 9, 0x82]));
        assert_eq!(half.map6to4(&v6([0, 0, 9, 0x82])), [192, 0, 2, 130]);
        // every address of the /24 round-trips through the longest match
        for last in 0..=255u8 {
            let a = [192, 0, 2, last];
            let e = eam_longest4(&t, a).unwrap();
            let b = e.map4to6(a);
            assert_eq!(eam_longest6(&t, &b).unwrap().map6to4(&b), a, "{a:?}");
        }
    }

    #[test]
    fn rfc6791_addresses_stay_in_the_pool() {
        for i in 0..=255u8 {
            let r = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i];
            let a = rfc6791_v4([203, 0, 113, 0], 28, &r);
            assert_eq!(&a[..3], &[203, 0, 113]);
            assert!(a[3] < 16, "{a:?} outside 203.0.113.0/28");
            assert_eq!(rfc6791_v4([203, 0, 113, 9], 32, &r), [203, 0, 113, 9]);
        }
        let r1 = rfc6791_v4([10, 0, 0, 0], 8, &[1; 16]);
        assert_eq!(r1, rfc6791_v4([10, 0, 0, 0], 8, &[1; 16]), "stable for one router");
        let p6 = [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let a = rfc6791_v6(&p6, 64, [192, 0, 2, 1]);
        assert_eq!(a[..12], p6[..12]);
        assert_eq!(a[12..], [192, 0, 2, 1]);
        assert_eq!(rfc6791_v6(&p6, 128, [192, 0, 2, 1]), p6);
    }

    #[test]
    fn eam_takes_precedence_over_pool6() {
        let gl = g([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        let e = EamEntry::new(
            [93, 184, 216, 34],
            32,
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            128,
        );
        let (v6, rule) = map4to6(&gl, [93, 184, 216, 34], Some(&e), false).unwrap();
        assert_eq!(rule, Rule::Eam);
        assert_eq!(v6, e.v6);
        let (v6, rule) = map4to6(&gl, [93, 184, 216, 34], None, false).unwrap();
        assert_eq!(rule, Rule::Pool6);
        assert_eq!(v6[12..], [93, 184, 216, 34]);
    }

    #[test]
    fn reserved_never_translated_even_by_eam() {
        let gl = g([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        let e = EamEntry::new([0; 4], 0, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        for v4 in [
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [169, 254, 1, 1],
            [224, 0, 0, 1],
            [239, 1, 1, 1],
            [255, 255, 255, 255],
        ] {
            assert_eq!(map4to6(&gl, v4, Some(&e), false), Err(Untranslatable::Reserved), "{v4:?}");
            assert_eq!(map4to6(&gl, v4, None, false), Err(Untranslatable::Reserved), "{v4:?}");
            let v6 = e.map4to6(v4);
            assert_eq!(map6to4(&gl, &v6, Some(&e), |_| false), Err(Untranslatable::Reserved));
            assert_eq!(map6to4(&gl, &v6, None, |_| false), Err(Untranslatable::Reserved));
        }
    }

    #[test]
    fn denylist_applies_to_pool6_only() {
        let gl = g([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        assert_eq!(map4to6(&gl, [192, 0, 2, 9], None, true), Err(Untranslatable::Denylisted));
        let e =
            EamEntry::new([192, 0, 2, 9], 32, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], 128);
        assert!(map4to6(&gl, [192, 0, 2, 9], Some(&e), true).is_ok());
        let v6 = embed(&gl.pool6, 96, [192, 0, 2, 9]).unwrap();
        assert_eq!(map6to4(&gl, &v6, None, |_| true), Err(Untranslatable::Denylisted));
    }

    #[test]
    fn well_known_prefix_rule() {
        let mut gl = g([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        for v4 in [[10, 0, 0, 1], [172, 16, 0, 1], [192, 168, 1, 1], [100, 64, 0, 1]] {
            assert_eq!(map4to6(&gl, v4, None, false), Err(Untranslatable::WkpNonGlobal));
            let v6 = embed(&gl.pool6, 96, v4).unwrap();
            assert_eq!(map6to4(&gl, &v6, None, |_| false), Err(Untranslatable::WkpNonGlobal));
        }
        assert!(map4to6(&gl, [8, 8, 8, 8], None, false).is_ok());
        gl.flags |= Globals::FLAG_WKP_ALLOW_NON_GLOBAL;
        assert!(map4to6(&gl, [10, 0, 0, 1], None, false).is_ok());
        // RFC 8215 local-use prefix has no such rule
        let gl = g([0, 0x64, 0xff, 0x9b, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        assert!(map4to6(&gl, [10, 0, 0, 1], None, false).is_ok());
    }

    #[test]
    fn own_addresses_are_not_translated() {
        let mut gl = g([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96);
        gl.ipv4_addr = [192, 0, 2, 254];
        gl.ipv6_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe];
        gl.flags |= Globals::FLAG_HAS_IPV4_ADDR | Globals::FLAG_HAS_IPV6_ADDR;
        assert_eq!(map4to6(&gl, [192, 0, 2, 254], None, false), Err(Untranslatable::OwnAddress));
        assert_eq!(map6to4(&gl, &gl.ipv6_addr.clone(), None, |_| false), Err(Untranslatable::OwnAddress));
    }

    #[test]
    fn no_pool6_no_mapping() {
        let gl = Globals::zeroed();
        assert_eq!(map4to6(&gl, [8, 8, 8, 8], None, false), Err(Untranslatable::NoMapping));
        assert_eq!(
            map6to4(&gl, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8], None, |_| false),
            Err(Untranslatable::NoMapping)
        );
    }
}
