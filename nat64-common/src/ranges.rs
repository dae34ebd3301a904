//! IPv4 ranges with special meaning for a translator.

/// Spec §1 / RFC 7915 §4.1: addresses never translated to or from: this network
/// (0/8), loopback (127/8), link-local (169.254/16), multicast and reserved (224/4,
/// which with 240/4 covers limited broadcast 255.255.255.255).
#[inline(always)]
pub const fn is_reserved4(a: [u8; 4]) -> bool {
    a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || a[0] >= 224
}

/// RFC 6052 §3.1: IPv4 space that must not be reached through the Well-Known Prefix
/// (the non-global ranges of the IANA special-purpose registry, RFC 6890).
#[inline(always)]
pub const fn is_non_global4(a: [u8; 4]) -> bool {
    a[0] == 0
        || a[0] == 10
        || (a[0] == 100 && (a[1] & 0xc0) == 64)
        || a[0] == 127
        || (a[0] == 169 && a[1] == 254)
        || (a[0] == 172 && (a[1] & 0xf0) == 16)
        || (a[0] == 192 && a[1] == 0 && a[2] == 0)
        || (a[0] == 192 && a[1] == 0 && a[2] == 2)
        || (a[0] == 192 && a[1] == 168)
        || (a[0] == 198 && (a[1] & 0xfe) == 18)
        || (a[0] == 198 && a[1] == 51 && a[2] == 100)
        || (a[0] == 203 && a[1] == 0 && a[2] == 113)
        || a[0] >= 224
}

/// The Well-Known Prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub const WKP: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Whether pool6 is the Well-Known Prefix (the §3.1 rule applies only to it; the
/// RFC 8215 local-use prefix 64:ff9b:1::/48 is exempt).
#[inline(always)]
pub fn is_wkp(prefix: &[u8; 16], len: u8) -> bool {
    len == 96 && *prefix == WKP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges() {
        for a in [
            [0, 0, 0, 0],
            [0, 255, 1, 1],
            [127, 0, 0, 1],
            [127, 255, 255, 255],
            [169, 254, 0, 1],
            [224, 0, 0, 1],
            [239, 255, 255, 255],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            assert!(is_reserved4(a), "{a:?}");
        }
        for a in [
            [1, 0, 0, 0],
            [126, 255, 255, 255],
            [128, 0, 0, 0],
            [169, 253, 0, 1],
            [169, 255, 0, 1],
            [223, 255, 255, 255],
            [10, 0, 0, 1],
            [192, 0, 2, 1],
        ] {
            assert!(!is_reserved4(a), "{a:?}");
        }
    }

    #[test]
    fn non_global_ranges() {
        for a in [
            [10, 1, 1, 1],
            [100, 64, 0, 1],
            [100, 127, 255, 255],
            [172, 16, 0, 0],
            [172, 31, 255, 255],
            [192, 168, 0, 1],
            [192, 0, 2, 1],
            [198, 18, 0, 1],
            [198, 19, 255, 255],
            [198, 51, 100, 1],
            [203, 0, 113, 1],
            [192, 0, 0, 8],
        ] {
            assert!(is_non_global4(a), "{a:?}");
        }
        for a in [
            [8, 8, 8, 8],
            [100, 63, 255, 255],
            [100, 128, 0, 0],
            [172, 15, 255, 255],
            [172, 32, 0, 0],
            [192, 169, 0, 1],
            [198, 20, 0, 0],
            [1, 1, 1, 1],
        ] {
            assert!(!is_non_global4(a), "{a:?}");
        }
    }

    #[test]
    fn wkp_detection() {
        assert!(is_wkp(&WKP, 96));
        assert!(!is_wkp(&WKP, 64));
        let mut local = WKP;
        local[5] = 1;
        assert!(!is_wkp(&local, 96));
    }
}
