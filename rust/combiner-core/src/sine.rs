//! The portable sine and cosine of the reconstruction (docs/format.md section 7.4).
//!
//! `libm`'s `sinf` would be portable too, but a range reduction and polynomial written out in
//! binary32 operations is easier to reproduce from the document (the NumPy reference in
//! `tests/spec_decoder.py` does) and vectorises across points: every step below is a plain
//! `+ - *`, a compare or a bit operation, with no branch and no table.
//!
//! Invariants (tested below): the result is exactly the document's for every binary32 input;
//! it is within 1e-6 of the true sine and cosine for |t| <= 65536; it is +0.0 outside that range
//! and for NaN.

/// 2 / pi rounded to binary32.
const TWO_OVER_PI: f32 = f32::from_bits(0x3f22_f983);
/// 1.5 x 2^23: adding and subtracting it rounds a binary32 of magnitude < 2^22 to an integer,
/// ties to even, and leaves that integer's low bits in the low bits of the sum's encoding.
const MAGIC: f32 = f32::from_bits(0x4b40_0000);
/// pi / 2 split into three parts (Cephes' `sinf` constants, doubled): P1 has 8 significant
/// bits, so `j * P1` is exact for |j| < 2^16.
const P1: f32 = f32::from_bits(0x3fc9_0000);
const P2: f32 = f32::from_bits(0x39fd_a000);
const P3: f32 = f32::from_bits(0x33a2_2169);
/// Cephes' minimax polynomials for sin and cos on [-pi/4, pi/4].
const S1: f32 = f32::from_bits(0xbe2a_aaa3);
const S2: f32 = f32::from_bits(0x3c08_839e);
const S3: f32 = f32::from_bits(0xb94c_a1f9);
const C1: f32 = f32::from_bits(0x3d2a_aaa5);
const C2: f32 = f32::from_bits(0xbab6_061a);
const C3: f32 = f32::from_bits(0x37cc_f5ce);
/// Arguments beyond this magnitude (and NaN) give +0.0.
pub const MAX_ARGUMENT: f32 = 65536.0;

/// sin(t), or cos(t) when `quarter` is 1: the reduced argument's quadrant is shifted by one.
#[inline(always)]
fn sin_quadrant(t: f32, quarter: u32) -> f32 {
    let shifted = t * TWO_OVER_PI + MAGIC;
    let j = shifted - MAGIC;
    // The low bits of the encoding of `shifted` are j mod 4 (two's complement for negative j).
    let q = shifted.to_bits().wrapping_add(quarter);
    let r = ((t - j * P1) - j * P2) - j * P3;
    let z = r * r;
    let sr = (((S3 * z + S2) * z + S1) * z) * r + r;
    let cr = ((((C3 * z + C2) * z + C1) * z) * z - 0.5 * z) + 1.0;
    let v = if q & 1 == 0 { sr } else { cr };
    let v = f32::from_bits(v.to_bits() ^ ((q & 2) << 30));
    if t.abs() <= MAX_ARGUMENT { v } else { 0.0 }
}

/// The sine of section 7.4.
#[inline(always)]
pub fn sin(t: f32) -> f32 {
    sin_quadrant(t, 0)
}

/// The cosine of section 7.4.
#[inline(always)]
pub fn cos(t: f32) -> f32 {
    sin_quadrant(t, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's steps one by one, with an explicit quadrant table: an independent reading
    /// of section 7.4 against the branch-free form above.
    #[allow(clippy::assign_op_pattern, clippy::neg_cmp_op_on_partial_ord)] // the document's words
    fn literal(t: f32, cosine: bool) -> f32 {
        if !(t.abs() <= 65536.0) {
            return 0.0;
        }
        let j = (t * TWO_OVER_PI + MAGIC) - MAGIC;
        let r = ((t - j * P1) - j * P2) - j * P3;
        let z = r * r;
        let mut a = S3 * z;
        a = a + S2;
        a = a * z;
        a = a + S1;
        a = a * z;
        a = a * r;
        let sr = a + r;
        let mut b = C3 * z;
        b = b + C2;
        b = b * z;
        b = b + C1;
        b = b * z;
        b = b * z;
        b = b - 0.5 * z;
        let cr = b + 1.0;
        let q = (j as i64).rem_euclid(4);
        let table = if cosine {
            [cr, -sr, -cr, sr]
        } else {
            [sr, cr, -sr, -cr]
        };
        table[q as usize]
    }

    fn arguments() -> impl Iterator<Item = f32> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..400_000).map(move |i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 40) as f32 / (1u64 << 24) as f32;
            match i % 4 {
                0 => (u - 0.5) * 8.0,
                1 => (u - 0.5) * 400.0,
                2 => (u - 0.5) * 131_072.0,
                _ => f32::from_bits(x as u32),
            }
        })
    }

    #[test]
    fn matches_the_document_step_by_step() {
        for t in arguments() {
            assert_eq!(sin(t).to_bits(), literal(t, false).to_bits(), "sin({t})");
            assert_eq!(cos(t).to_bits(), literal(t, true).to_bits(), "cos({t})");
        }
    }

    #[test]
    fn is_within_1e_6_of_the_true_functions() {
        let mut worst = 0.0f64;
        for t in arguments().filter(|t| t.abs() <= MAX_ARGUMENT) {
            let exact = f64::from(t);
            worst = worst.max((f64::from(sin(t)) - exact.sin()).abs());
            worst = worst.max((f64::from(cos(t)) - exact.cos()).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
    }

    #[test]
    fn is_zero_outside_the_range_and_for_nan() {
        for t in [
            65536.01f32,
            -70000.0,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ] {
            assert_eq!(sin(t).to_bits(), 0);
            assert_eq!(cos(t).to_bits(), 0);
        }
        assert_eq!(sin(0.0), 0.0);
        assert_eq!(cos(0.0), 1.0);
    }
}
