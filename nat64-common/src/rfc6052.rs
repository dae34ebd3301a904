//! Where an IPv4 address sits inside an IPv6 one, on bytes: RFC 6052 §2.2's positions
//! under a pool6 prefix, RFC 7757 §3.2's suffix bits after an EAM entry's IPv6 prefix,
//! and the masks both use. The bottom of the address logic: no table, no rule.

/// RFC 6052 §2.2: the prefix lengths an IPv4-embedded IPv6 address may use.
pub const POOL6_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// Byte positions of the four IPv4 octets inside an IPv4-embedded IPv6 address with a
/// prefix of `len` bits. Bits 64..71 (byte 8, the "u" octet) are skipped.
#[inline(always)]
pub const fn v4_positions(len: u8) -> Option<[usize; 4]> {
    match len {
        32 => Some([4, 5, 6, 7]),
        40 => Some([5, 6, 7, 9]),
        48 => Some([6, 7, 9, 10]),
        56 => Some([7, 9, 10, 11]),
        64 => Some([9, 10, 11, 12]),
        96 => Some([12, 13, 14, 15]),
        _ => None,
    }
}

/// Builds the IPv4-embedded IPv6 address of `v4` under `prefix/len` (RFC 6052 §2.2).
/// The u-octet and the suffix are zero.
#[inline(always)]
pub fn embed(prefix: &[u8; 16], len: u8, v4: [u8; 4]) -> Option<[u8; 16]> {
    let pos = v4_positions(len)?;
    let mut out = [0u8; 16];
    let nbytes = (len / 8) as usize;
    let mut i = 0;
    while i < 16 {
        if i < nbytes {
            out[i] = prefix[i];
        }
        i += 1;
    }
    out[pos[0]] = v4[0];
    out[pos[1]] = v4[1];
    out[pos[2]] = v4[2];
    out[pos[3]] = v4[3];
    Some(out)
}

/// Extracts the IPv4 address embedded in `addr` with a prefix of `len` bits. The
/// u-octet and suffix are ignored (RFC 6052 §2.2).
#[inline(always)]
pub fn extract(addr: &[u8; 16], len: u8) -> Option<[u8; 4]> {
    let pos = v4_positions(len)?;
    Some([addr[pos[0]], addr[pos[1]], addr[pos[2]], addr[pos[3]]])
}

/// Whether `addr` lies inside `prefix/len` (whole bytes: pool6 lengths are multiples of 8).
#[inline(always)]
pub fn in_pool6(addr: &[u8; 16], prefix: &[u8; 16], len: u8) -> bool {
    if v4_positions(len).is_none() {
        return false;
    }
    let nbytes = (len / 8) as usize;
    let mut i = 0;
    while i < 16 {
        if i < nbytes && addr[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Low `bits` bits set (`bits` <= 32).
#[inline(always)]
pub const fn suffix_mask(bits: u8) -> u32 {
    if bits >= 32 { u32::MAX } else { (1u32 << bits) - 1 }
}

/// Mask with the high `len` bits of a 32-bit word set (`len` <= 32).
#[inline(always)]
pub const fn prefix_mask4(len: u8) -> u32 {
    !suffix_mask(32 - if len > 32 { 32 } else { len })
}

/// An address as four host-order words (bit 0: the top bit of word 0).
#[inline(always)]
pub fn host_words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

#[inline(always)]
pub fn host_words_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = w[i].to_be_bytes();
        out[4 * i] = b[0];
        out[4 * i + 1] = b[1];
        out[4 * i + 2] = b[2];
        out[4 * i + 3] = b[3];
        i += 1;
    }
    out
}

/// RFC 7757 §3.2: the `s4` low bits of `x` (an IPv4 suffix) written right after the
/// first `p6` bits of `w` (host-order words); the bits after them are left alone.
#[inline(always)]
pub fn put_suffix(w: &mut [u32; 4], p6: u8, s4: u8, x: u32) {
    let (p6, s4) = (p6 as u32, s4 as u32);
    if s4 == 0 || s4 > 32 || p6 + s4 > 128 {
        return;
    }
    let i = (p6 / 32) as usize;
    let o = p6 % 32;
    // The suffix at the top of the 64-bit window that starts at word i (o + s4 <= 63).
    let v = ((x as u64) & ((1u64 << s4) - 1)) << (64 - o - s4);
    let (hi, lo) = ((v >> 32) as u32, v as u32);
    // Constant indices: the verifier refuses a variable-offset read of the stack.
    match i {
        0 => {
            w[0] |= hi;
            w[1] |= lo;
        }
        1 => {
            w[1] |= hi;
            w[2] |= lo;
        }
        2 => {
            w[2] |= hi;
            w[3] |= lo;
        }
        _ => w[3] |= hi,
    }
}

/// RFC 7757 §3.3: the `s4` bits of `w` right after its first `p6` bits.
#[inline(always)]
pub fn get_suffix(w: &[u32; 4], p6: u8, s4: u8) -> u32 {
    let (p6, s4) = (p6 as u32, s4 as u32);
    if s4 == 0 || s4 > 32 || p6 + s4 > 128 {
        return 0;
    }
    let i = (p6 / 32) as usize;
    let o = p6 % 32;
    let (hi, lo) = match i {
        0 => (w[0], w[1]),
        1 => (w[1], w[2]),
        2 => (w[2], w[3]),
        _ => (w[3], 0),
    };
    (((((hi as u64) << 32) | lo as u64) >> (64 - o - s4)) as u32) & suffix_mask(s4 as u8)
}
