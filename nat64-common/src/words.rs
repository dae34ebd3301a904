//! IPv6 addresses held as four `u32` words in memory order (each word is
//! `u32::from_ne_bytes` of four address bytes): conversions, checksum sums, and
//! [`crate::rfc6052`] on them. The address mapping in this form is
//! `crate::addr::map4to6_words` / `map6to4_words`.
//!
//! Why: LLVM's BPF backend may not assume more alignment than a type promises, so
//! every load, store, copy and comparison of a `[u8; 16]` becomes sixteen one-byte
//! instructions; `[u32; 4]` moves in four. The results are those of the byte
//! versions, bit for bit (see the tests).

use crate::rfc6052;

/// An IPv6 address (or prefix) as four words in memory order.
pub type W6 = [u32; 4];

#[inline(always)]
pub const fn from_bytes(a: &[u8; 16]) -> W6 {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

#[inline(always)]
pub const fn to_bytes(w: &W6) -> [u8; 16] {
    let (a, b, c, d) = (w[0].to_ne_bytes(), w[1].to_ne_bytes(), w[2].to_ne_bytes(), w[3].to_ne_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3]]
}

/// The address's bytes in memory order, without a copy (a map key).
#[inline(always)]
pub fn as_bytes(w: &W6) -> &[u8; 16] {
    // SAFETY: same size, and `[u8; 16]` has no alignment or validity requirement.
    unsafe { &*(w as *const W6).cast::<[u8; 16]>() }
}

/// The sum of the address's eight big-endian 16-bit words: the same number as
/// `checksum::sum16` of its bytes.
#[inline(always)]
pub const fn sum(w: &W6) -> u32 {
    sum_word(w[0]) + sum_word(w[1]) + sum_word(w[2]) + sum_word(w[3])
}

/// The sum of the two big-endian 16-bit words in a memory-order word.
#[inline(always)]
pub const fn sum_word(w: u32) -> u32 {
    let v = u32::from_be(w);
    (v >> 16) + (v & 0xffff)
}

/// The memory-order word whose first `n` bytes (0 to 4) are ones.
#[inline(always)]
const fn byte_mask(n: u32) -> u32 {
    let ones = if n >= 4 { u32::MAX } else { (1u32 << (8 * n)) - 1 };
    if cfg!(target_endian = "little") { ones } else { ones.reverse_bits() }
}

/// `rfc6052::in_pool6` on words.
#[inline(always)]
pub fn in_pool6(a: &W6, prefix: &W6, len: u8) -> bool {
    if rfc6052::v4_positions(len).is_none() {
        return false;
    }
    // The lengths allowed (32 to 64 and 96 bits) cover word 0 whole, word 1 in part
    // or whole, word 2 only at /96 and word 3 never.
    let n = (len / 8) as u32;
    let m1 = byte_mask(if n >= 8 { 4 } else { n - 4 });
    let m2 = if n >= 12 { u32::MAX } else { 0 };
    ((a[0] ^ prefix[0]) | ((a[1] ^ prefix[1]) & m1) | ((a[2] ^ prefix[2]) & m2)) == 0
}

/// `rfc6052::embed` on words; the /96 prefix (by far the most used) without bytes.
#[inline(always)]
pub fn embed(prefix: &W6, len: u8, v4: [u8; 4]) -> Option<W6> {
    if len == 96 {
        return Some([prefix[0], prefix[1], prefix[2], u32::from_ne_bytes(v4)]);
    }
    rfc6052::embed(&to_bytes(prefix), len, v4).map(|a| from_bytes(&a))
}

/// `rfc6052::extract` on words.
#[inline(always)]
pub fn extract(a: &W6, len: u8) -> Option<[u8; 4]> {
    if len == 96 {
        return Some(a[3].to_ne_bytes());
    }
    rfc6052::extract(&to_bytes(a), len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        addr, checksum,
        maps::{EamEntry, Globals},
    };

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes16(&mut self) -> [u8; 16] {
            let (a, b) = (self.next().to_ne_bytes(), self.next().to_ne_bytes());
            core::array::from_fn(|i| if i < 8 { a[i] } else { b[i - 8] })
        }
        fn v4(&mut self) -> [u8; 4] {
            (self.next() as u32).to_ne_bytes()
        }
    }

    const LENS: [u8; 9] = [0, 24, 32, 40, 48, 56, 64, 96, 128];

    #[test]
    fn round_trip_and_sum() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..10_000 {
            let a = r.bytes16();
            assert_eq!(to_bytes(&from_bytes(&a)), a);
            assert_eq!(sum(&from_bytes(&a)), checksum::sum16(&a));
        }
    }

    #[test]
    fn pool6_membership_embed_extract_as_bytes() {
        let mut r = Rng(0xfeed_f00d_dead_beef);
        for i in 0..20_000 {
            let p = r.bytes16();
            let len = LENS[i % LENS.len()];
            let mut a = r.bytes16();
            if i % 2 == 0 {
                // inside the prefix, or differing in one byte only
                let n = (len / 8) as usize;
                a[..n.min(16)].copy_from_slice(&p[..n.min(16)]);
                if i % 4 == 0 && n > 0 {
                    a[(r.next() as usize) % n] ^= 1 << (r.next() % 8);
                }
            }
            let (pw, aw) = (from_bytes(&p), from_bytes(&a));
            assert_eq!(in_pool6(&aw, &pw, len), rfc6052::in_pool6(&a, &p, len), "{len} {a:?} {p:?}");
            let v4 = r.v4();
            assert_eq!(embed(&pw, len, v4).map(|w| to_bytes(&w)), rfc6052::embed(&p, len, v4));
            assert_eq!(extract(&aw, len), rfc6052::extract(&a, len));
        }
    }

    #[test]
    fn mappings_as_bytes() {
        let mut r = Rng(0x0bad_cafe_0bad_cafe);
        for i in 0..20_000 {
            let mut g = Globals::zeroed();
            g.pool6 = if i % 3 == 0 { crate::ranges::WKP } else { r.bytes16() };
            g.pool6_len = LENS[i % LENS.len()];
            g.flags = (r.next() as u32) & 0xff;
            g.ipv4_addr = r.v4();
            g.ipv6_addr = r.bytes16();
            // Equal suffixes, and every third entry an IPv6 side up to 40 bits shorter.
            let v4_len = 16 + (i % 17) as u8;
            let v6_len = 96 + v4_len - if i % 3 == 0 { (i % 41) as u8 } else { 0 };
            let mut e = EamEntry::new(r.v4(), v4_len, r.bytes16(), v6_len);
            e.generation = r.next() as u32;
            let v4 = if i % 5 == 0 { g.ipv4_addr } else { r.v4() };
            let deny = i % 7 == 0;
            for eam in [None, Some(&e)] {
                let want = addr::map4to6(&g, v4, eam, deny);
                let got = addr::map4to6_words(&g, v4, eam, deny).map(|(w, rule)| (to_bytes(&w), rule));
                assert_eq!(got, want);
            }
            let mut v6 = r.bytes16();
            match i % 4 {
                0 => v6 = g.ipv6_addr,
                1 => v6[..12].copy_from_slice(&g.pool6[..12]),
                _ => {}
            }
            for eam in [None, Some(&e)] {
                let want = addr::map6to4(&g, &v6, eam, |a| a[0] & 1 == 0);
                assert_eq!(addr::map6to4_words(&g, &from_bytes(&v6), eam, |a| a[0] & 1 == 0), want);
            }
        }
    }
}
