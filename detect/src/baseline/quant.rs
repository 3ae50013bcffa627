//! Log-quantized 16-bit rate codes.
//!
//! A rate is first turned into integer *units* of 1/[`SCALE`] pps (or bps), rounded to
//! nearest, then into a float-like 16-bit code: values below 2048 units are stored exactly,
//! larger ones keep their 11 most significant bits (an implicit leading one and a 10-bit
//! mantissa) and a 6-bit exponent, rounded to nearest. Codes are **monotone** (comparing codes
//! compares values) and **contiguous** (code + 1 is the next representable value), so the
//! sketch keeps and compares codes only and decodes just the few it reports.
//!
//! Error: at most 1/2048 ≈ 0.049 % relative for rates ≥ 2048/[`SCALE`] = 128 per second, and
//! at most 1/(2·[`SCALE`]) = 1/32 absolute below that. Every `u64` unit value is representable
//! (rates up to ≈ 1.15 × 10¹⁸ per second).

/// Units per pps (or bps): rates are kept with a resolution of 1/16 per second.
pub(crate) const SCALE: f64 = 16.0;

/// Largest code: the encoding of `u64::MAX` units.
pub(crate) const MAX_CODE: u16 = 56_319;

/// Encodes a unit count (rate × [`SCALE`]), rounding to the nearest representable value.
#[inline]
pub(crate) fn encode_units(x: u64) -> u16 {
    if x < 2048 {
        return x as u16;
    }
    let high = 63 - x.leading_zeros(); // >= 11
    let shift = high - 10; // >= 1
    let mantissa = x >> shift; // in [1024, 2048)
    let round_up = (x >> (shift - 1)) & 1; // the first dropped bit: remainder >= half a step
    let code = (u64::from(shift) << 10) + mantissa + round_up;
    code.min(u64::from(MAX_CODE)) as u16
}

/// Decodes a code to its unit count. Codes above [`MAX_CODE`] decode as [`MAX_CODE`].
#[inline]
pub(crate) fn decode_units(code: u16) -> u64 {
    let code = code.min(MAX_CODE);
    if code < 2048 {
        return u64::from(code);
    }
    let shift = u32::from(code >> 10) - 1;
    (u64::from(code) - (u64::from(shift) << 10)) << shift
}

/// Encodes a non-negative rate given in units (rate × [`SCALE`]) as `f64`.
/// NaN and negative values encode as 0, huge values saturate.
#[inline]
pub(crate) fn encode_f64_units(units: f64) -> u16 {
    // `as` saturates and maps NaN to 0.
    encode_units((units + 0.5) as u64)
}

/// Decodes a code to a rate per second.
#[inline]
pub(crate) fn decode_rate(code: u16) -> f64 {
    decode_units(code) as f64 / SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for x in 0..4096u64 {
            let c = encode_units(x);
            if x < 2048 {
                assert_eq!(decode_units(c), x);
            }
        }
    }

    #[test]
    fn monotone_contiguous_and_bounded_error() {
        let mut prev = 0u16;
        let mut x = 1u64;
        let mut worst = 0f64;
        while x < u64::MAX / 3 {
            for d in [0u64, 1, 2, 3, x / 7, x / 3, x / 2] {
                let v = x + d;
                let c = encode_units(v);
                let back = decode_units(c) as f64;
                let rel = (back - v as f64).abs() / v as f64;
                worst = worst.max(rel);
                assert!(rel <= 1.0 / 2048.0 + 1e-12, "{v} -> {c} -> {back}");
            }
            let c = encode_units(x);
            assert!(c >= prev, "not monotone at {x}");
            prev = c;
            x = x + x / 5 + 1;
        }
        assert!(worst > 0.0004, "bound should be nearly tight, got {worst}");
        // Contiguity: decode(c + 1) is the next value above decode(c).
        for c in 0..MAX_CODE {
            let (a, b) = (decode_units(c), decode_units(c + 1));
            assert!(b > a);
            assert_eq!(encode_units(a), c);
        }
        assert_eq!(encode_units(u64::MAX), MAX_CODE);
        assert_eq!(decode_units(u16::MAX), decode_units(MAX_CODE));
        assert_eq!(encode_f64_units(f64::NAN), 0);
        assert_eq!(encode_f64_units(-5.0), 0);
        assert_eq!(encode_f64_units(f64::INFINITY), MAX_CODE);
    }
}
