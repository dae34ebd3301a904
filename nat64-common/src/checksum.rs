//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624).
//!
//! Sums are kept as unfolded `u32` accumulations of big-endian 16-bit words so that
//! fixed-size pieces (addresses, headers) can be added cheaply and folded once.

/// Adds the big-endian 16-bit words of `data` to `sum`. An odd trailing byte is padded
/// with zero, as RFC 1071 says.
#[inline(always)]
pub fn add_bytes(mut sum: u32, data: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
        i += 2;
    }
    if i < data.len() {
        sum += (data[i] as u32) << 8;
    }
    sum
}

/// Sum of the eight words of an IPv6 address.
#[inline(always)]
pub fn sum16(a: &[u8; 16]) -> u32 {
    add_bytes(0, a)
}

/// Sum of the two words of an IPv4 address.
#[inline(always)]
pub fn sum4(a: &[u8; 4]) -> u32 {
    u16::from_be_bytes([a[0], a[1]]) as u32 + u16::from_be_bytes([a[2], a[3]]) as u32
}

/// Folds a 32-bit accumulation into 16 bits with end-around carry.
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum field value for data whose word sum is `sum`.
#[inline(always)]
pub const fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`, where `old` and `new` are the sums of
/// the words that changed. A wrong input checksum stays exactly as wrong.
#[inline(always)]
pub const fn update(check: u16, old: u32, new: u32) -> u16 {
    let s = (!check) as u32 + (!fold(old)) as u32 + fold(new) as u32;
    !fold(s)
}

/// UDP transmits a computed checksum of zero as all ones (RFC 768).
#[inline(always)]
pub const fn udp_nonzero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(data: &[u8]) -> u16 {
        finish(add_bytes(0, data))
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded)
        assert_eq!(fold(add_bytes(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add_bytes(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_full_recomputation() {
        let mut x: u32 = 0xdead_beef;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..5_000 {
            let mut buf = [0u8; 40];
            for b in buf.iter_mut() {
                *b = next() as u8;
            }
            let check = full(&buf);
            // replace a 16-byte "address" at 8..24 by another
            let mut new = buf;
            for b in new[8..24].iter_mut() {
                *b = next() as u8;
            }
            let old_sum = add_bytes(0, &buf[8..24]);
            let new_sum = add_bytes(0, &new[8..24]);
            let inc = update(check, old_sum, new_sum);
            // both are valid representations; verify by summing with the checksum
            let mut with = add_bytes(0, &new);
            with += inc as u32;
            assert_eq!(fold(with), 0xffff, "incremental result must verify");
        }
    }

    #[test]
    fn wrong_checksum_stays_wrong() {
        let buf = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let good = full(&buf);
        let bad = good.wrapping_add(5);
        let new = [9u8, 9, 3, 4, 5, 6, 7, 8];
        let inc = update(bad, add_bytes(0, &buf[..2]), add_bytes(0, &new[..2]));
        let mut with = add_bytes(0, &new);
        with += inc as u32;
        assert_ne!(fold(with), 0xffff);
    }

    #[test]
    fn udp_zero_becomes_ones() {
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(0x1234), 0x1234);
    }
}
