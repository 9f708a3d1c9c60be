//! The binary32 normal transform of format version 3 (docs/format.md, section 4, version 3):
//! a 32-bit word to a standard normal `z`, from IEEE 754 binary32 `+ - * /` and `sqrt` and
//! integer operations only, each rounded separately (no fused multiply-add, no platform `log`).
//!
//! * Uniform: the word's bit 31 is the sign, its low 23 bits `m` give the magnitude
//!   `h = (2m + 1) 2^-25` of q = u - 1/2 (exact in binary32), so u = 1/2 +- h is an open uniform
//!   on 2^24 points and the transform is exactly antisymmetric (the sign bit flips z's sign).
//! * Quantile: Wichura's PPND7 (algorithm AS241, Applied Statistics 37, 1988, the version
//!   "accurate to about 1 part in 10^7"): a degree-3/3 rational in `r = 0.180625 - h^2` for
//!   h <= 0.425, else a degree-3/2 rational in `sqrt(-ln(1/2 - h)) - 1.6`. PPND7's third region
//!   (`sqrt(-ln p) > 5`, p < 1.4e-11) is never reached: the smallest tail probability is 2^-25.
//! * `ln`: Moshier's Cephes `logf` (the polynomial also used by the SSE/AVX "mathfun" libraries),
//!   written as bit manipulation plus a fixed polynomial, defined here for positive normal
//!   binary32 arguments.
//!
//! Range: |z| <= 5.41998 (bits 0x40ad7081, the word with m = 2^23 - 1; checked exhaustively by the tests, with the accuracy against the binary64
//! AS241 and the monotonicity in the word). The lane-parallel forms (`central_lanes`,
//! `tail_lanes`) perform per lane exactly the operations of the scalar `normal_from_word`.

use crate::simd::Simd;

/// Central region: m <= CENTRAL_MAX (equivalently h <= 0.425; 2 * 7130316 + 1 = 14260633 and
/// 0.425 * 2^25 = 14260633.6).
pub const CENTRAL_MAX: u32 = 7_130_316;
/// The low 23 bits of a word: the magnitude index m.
pub const MAGNITUDE_MASK: u32 = 0x007F_FFFF;
/// Bit 31 of a word: the sign.
pub const SIGN_BIT: u32 = 0x8000_0000;

/// 2^-25.
const SCALE: f32 = f32::from_bits(0x3300_0000);
/// 0.180625 = 0.425^2, PPND7's CONST1.
const CONST1: f32 = f32::from_bits(0x3E38_F5C3);
/// 1.6, PPND7's CONST2.
const CONST2: f32 = f32::from_bits(0x3FCC_CCCD);
const HALF: f32 = 0.5;
const ONE: f32 = 1.0;

// PPND7's coefficients (AS241), as the binary32 values nearest to the published decimals.
const A0: f32 = f32::from_bits(0x4058_C6C8); // 3.3871327179
const A1: f32 = f32::from_bits(0x4249_BCB2); // 50.434271938
const A2: f32 = f32::from_bits(0x431F_4A88); // 159.29113202
const A3: f32 = f32::from_bits(0x426C_7000); // 59.109374720
const B1: f32 = f32::from_bits(0x418F_294F); // 17.895169469
const B2: f32 = f32::from_bits(0x429D_83F9); // 78.757757664
const B3: f32 = f32::from_bits(0x4286_6008); // 67.187563600
const C0: f32 = f32::from_bits(0x3FB6_3331); // 1.4234372777
const C1: f32 = f32::from_bits(0x4030_6FAA); // 2.7568153900
const C2: f32 = f32::from_bits(0x3FA7_42E1); // 1.3067284816
const C3: f32 = f32::from_bits(0x3E2E_52ED); // 0.17023821103
const D1: f32 = f32::from_bits(0x3F3C_AC24); // 0.73700164250
const D2: f32 = f32::from_bits(0x3DF6_315C); // 0.12021132975

// Cephes logf: sqrt(1/2), the polynomial P0 (highest degree) .. P8, and ln 2 = Q2 - Q1 split.
const SQRT_HALF: f32 = f32::from_bits(0x3F35_04F3); // 0.707106781186547524
const P: [f32; 9] = [
    f32::from_bits(0x3D90_21BB), // 7.0376836292e-2
    f32::from_bits(0xBDEB_D1B8), // -1.1514610310e-1
    f32::from_bits(0x3DEF_251A), // 1.1676998740e-1
    f32::from_bits(0xBDFE_5D4F), // -1.2420140846e-1
    f32::from_bits(0x3E11_E9BF), // 1.4249322787e-1
    f32::from_bits(0xBE2A_AE50), // -1.6668057665e-1
    f32::from_bits(0x3E4C_CEAC), // 2.0000714765e-1
    f32::from_bits(0xBE7F_FFFC), // -2.4999993993e-1
    f32::from_bits(0x3EAA_AAAA), // 3.3333331174e-1
];
const Q1: f32 = f32::from_bits(0xB95E_8083); // -2.12194440e-4
const Q2: f32 = f32::from_bits(0x3F31_8000); // 0.693359375

/// The natural logarithm of a positive normal finite binary32 `x` (Cephes `logf`), to about
/// 1 ulp: x = x0 2^e with x0 in [1/2, 1); f = x0 - 1 (or 2 x0 - 1 and e - 1 when x0 < sqrt(1/2),
/// both exact); ln x = f - f^2/2 + f^3 P(f) + e ln 2, with ln 2 split in two.
#[inline]
pub fn ln(x: f32) -> f32 {
    let b = x.to_bits();
    let mut e = (b >> 23) as i32 - 126;
    let x0 = f32::from_bits((b & MAGNITUDE_MASK) | 0x3F00_0000);
    let f = if x0 < SQRT_HALF {
        e -= 1;
        (x0 + x0) - ONE
    } else {
        x0 - ONE
    };
    let z = f * f;
    let mut y = P[0];
    for &p in &P[1..] {
        y = y * f + p;
    }
    y = (y * f) * z;
    let fe = e as f32;
    y += fe * Q1;
    y -= HALF * z;
    (f + y) + fe * Q2
}

/// The magnitude h = (2m + 1) 2^-25 of word `w`.
#[inline(always)]
fn magnitude(w: u32) -> f32 {
    (2 * (w & MAGNITUDE_MASK) + 1) as f32 * SCALE
}

/// The standard normal of format version 3 for the 32-bit word `w`.
#[inline]
pub fn normal_from_word(w: u32) -> f32 {
    let h = magnitude(w);
    let (num, den) = if w & MAGNITUDE_MASK <= CENTRAL_MAX {
        let r = CONST1 - h * h;
        let num = h * (((A3 * r + A2) * r + A1) * r + A0);
        let den = ((B3 * r + B2) * r + B1) * r + ONE;
        (num, den)
    } else {
        let t = HALF - h;
        let r = (-ln(t)).sqrt() - CONST2;
        let num = ((C3 * r + C2) * r + C1) * r + C0;
        let den = (D2 * r + D1) * r + ONE;
        (num, den)
    };
    f32::from_bits((num / den).to_bits() | (w & SIGN_BIT))
}

// The lane forms below take N vectors at once and interleave their operations, so that N
// independent dependency chains are in flight (the formulas are long chains of dependent
// operations). `each!(|i| e)` builds the array of the N results with a plain loop: no closure,
// whose body would be compiled without the AVX2 target feature of the kernel that inlines it.
macro_rules! each {
    (|$i:ident| $e:expr) => {{
        let $i = 0;
        let mut out = [$e; N];
        for $i in 1..N {
            out[$i] = $e;
        }
        out
    }};
}

#[inline(always)]
fn magnitude_lanes<S: Simd, const N: usize>(w: &[S::U; N]) -> ([S::U; N], [S::F; N]) {
    let m: [S::U; N] = each!(|i| S::and(w[i], S::splat_u(MAGNITUDE_MASK)));
    let h = each!(|i| {
        let odd = S::or(S::add_u(m[i], m[i]), S::splat_u(1));
        S::mul(S::to_f(odd), S::splat_f(SCALE))
    });
    (m, h)
}

#[inline(always)]
fn with_sign<S: Simd, const N: usize>(z: &[S::F; N], w: &[S::U; N]) -> [S::F; N] {
    each!(|i| S::from_bits(S::or(S::bits(z[i]), S::and(w[i], S::splat_u(SIGN_BIT)))))
}

/// `ln` on every lane (positive normal finite arguments).
#[inline(always)]
pub(crate) fn ln_lanes<S: Simd, const N: usize>(x: &[S::F; N]) -> [S::F; N] {
    let b: [S::U; N] = each!(|i| S::bits(x[i]));
    let e: [S::U; N] = each!(|i| S::add_u(S::shr::<23>(b[i]), S::splat_u((-126i32) as u32)));
    let x0: [S::F; N] = each!(|i| S::from_bits(S::or(
        S::and(b[i], S::splat_u(MAGNITUDE_MASK)),
        S::splat_u(0x3F00_0000)
    )));
    let small: [S::M; N] = each!(|i| S::lt(x0[i], S::splat_f(SQRT_HALF)));
    let e: [S::U; N] = each!(|i| S::select_u(small[i], S::add_u(e[i], S::splat_u(u32::MAX)), e[i]));
    let f: [S::F; N] = each!(|i| S::sub(
        S::select_f(small[i], S::add(x0[i], x0[i]), x0[i]),
        S::splat_f(ONE)
    ));
    let z: [S::F; N] = each!(|i| S::mul(f[i], f[i]));
    let mut y: [S::F; N] = [S::splat_f(P[0]); N];
    for &p in &P[1..] {
        y = each!(|i| S::add(S::mul(y[i], f[i]), S::splat_f(p)));
    }
    y = each!(|i| S::mul(S::mul(y[i], f[i]), z[i]));
    let fe: [S::F; N] = each!(|i| S::to_f(e[i]));
    y = each!(|i| S::add(y[i], S::mul(fe[i], S::splat_f(Q1))));
    y = each!(|i| S::sub(y[i], S::mul(S::splat_f(HALF), z[i])));
    each!(|i| S::add(S::add(f[i], y[i]), S::mul(fe[i], S::splat_f(Q2))))
}

/// The central-region value of every lane's word and which lanes are tails (their value is
/// unspecified: `tail_lanes` computes it). A central lane's value is `normal_from_word`'s.
#[inline(always)]
pub(crate) fn central_lanes<S: Simd, const N: usize>(w: &[S::U; N]) -> ([S::F; N], [S::M; N]) {
    let (m, h) = magnitude_lanes::<S, N>(w);
    let r: [S::F; N] = each!(|i| S::sub(S::splat_f(CONST1), S::mul(h[i], h[i])));
    let mut num: [S::F; N] = [S::splat_f(A3); N];
    let mut den: [S::F; N] = [S::splat_f(B3); N];
    for (a, b) in [(A2, B2), (A1, B1), (A0, ONE)] {
        num = each!(|i| S::add(S::mul(num[i], r[i]), S::splat_f(a)));
        den = each!(|i| S::add(S::mul(den[i], r[i]), S::splat_f(b)));
    }
    let z: [S::F; N] = each!(|i| S::div(S::mul(h[i], num[i]), den[i]));
    let tail = each!(|i| S::gt_u(m[i], S::splat_u(CENTRAL_MAX)));
    (with_sign::<S, N>(&z, w), tail)
}

/// The tail-region value of every lane's word: `normal_from_word` for tail words. Any word gives
/// a finite value (1/2 - h is a positive normal number for every m).
#[inline(always)]
pub(crate) fn tail_lanes<S: Simd, const N: usize>(w: &[S::U; N]) -> [S::F; N] {
    let (_, h) = magnitude_lanes::<S, N>(w);
    let t: [S::F; N] = each!(|i| S::sub(S::splat_f(HALF), h[i]));
    let l = ln_lanes::<S, N>(&t);
    let r: [S::F; N] = each!(|i| {
        let minus_ln = S::from_bits(S::xor(S::bits(l[i]), S::splat_u(SIGN_BIT)));
        S::sub(S::sqrt(minus_ln), S::splat_f(CONST2))
    });
    let mut num: [S::F; N] = [S::splat_f(C3); N];
    for c in [C2, C1, C0] {
        num = each!(|i| S::add(S::mul(num[i], r[i]), S::splat_f(c)));
    }
    let mut den: [S::F; N] = [S::splat_f(D2); N];
    for c in [D1, ONE] {
        den = each!(|i| S::add(S::mul(den[i], r[i]), S::splat_f(c)));
    }
    let z: [S::F; N] = each!(|i| S::div(num[i], den[i]));
    with_sign::<S, N>(&z, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normal::inverse_normal_cdf;
    use crate::simd::{LANES, Portable};

    fn ulp(x: f32) -> f32 {
        f32::from_bits(x.to_bits() + 1) - x
    }

    /// Every magnitude index in release builds, a large sample of them in debug builds.
    fn magnitudes() -> impl Iterator<Item = u32> {
        let step = if cfg!(debug_assertions) { 97 } else { 1 };
        let edges = [
            CENTRAL_MAX - 1,
            CENTRAL_MAX,
            CENTRAL_MAX + 1,
            MAGNITUDE_MASK,
        ];
        let mut all: Vec<u32> = (0..=MAGNITUDE_MASK).step_by(step).chain(edges).collect();
        all.sort_unstable();
        all.dedup();
        all.into_iter()
    }

    #[test]
    fn central_region_boundary_is_h_of_0_425() {
        assert!(magnitude(CENTRAL_MAX) <= 0.425 && magnitude(CENTRAL_MAX + 1) > 0.425);
    }

    #[test]
    fn accurate_nearly_monotone_and_bounded_over_every_word() {
        let (mut worst, mut prev, mut top, mut dip) = (0.0f64, 0.0f32, 0.0f32, 0.0f32);
        for m in magnitudes() {
            let z = normal_from_word(m);
            // The exact quantile of u = 1/2 + h, by the binary64 AS241 (relative error 1e-16).
            let exact = inverse_normal_cdf(0.5 + f64::from(magnitude(m)));
            worst = worst.max(((f64::from(z) - exact) / exact).abs());
            // Rounding makes z step down by one ulp here and there, never by more.
            dip = dip.max((prev - z) / ulp(prev));
            prev = z;
            top = top.max(z);
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert!(dip <= 1.0, "z decreases by {dip} ulps");
        assert_eq!(top, normal_from_word(MAGNITUDE_MASK));
        assert!((5.419..5.421).contains(&top), "largest |z| {top}");
    }

    #[test]
    fn antisymmetric_in_the_sign_bit() {
        for m in magnitudes().step_by(1013) {
            assert_eq!(normal_from_word(m | SIGN_BIT), -normal_from_word(m));
        }
    }

    #[test]
    fn ln_is_accurate_on_positive_normal_numbers() {
        let mut worst = 0.0f64;
        for i in 0..200_000u32 {
            // Spread over [2^-126, 2^127]: every exponent, many significands.
            let x = f32::from_bits(0x0080_0000 + i.wrapping_mul(10_627) % 0x7E80_0000);
            let exact = f64::from(x).ln();
            let err = (f64::from(ln(x)) - exact).abs() / exact.abs().max(1e-30);
            if exact.abs() > 1e-3 {
                worst = worst.max(err);
            }
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn lane_forms_match_the_scalar_reference() {
        let words: Vec<u32> = (0..4096u32)
            .map(|i| i.wrapping_mul(0x9E37_79B9) ^ (i << 7))
            .chain([0, 1, CENTRAL_MAX, CENTRAL_MAX + 1, MAGNITUDE_MASK, u32::MAX])
            .collect();
        for chunk in words.chunks(LANES) {
            let w: [u32; LANES] = std::array::from_fn(|i| chunk[i % chunk.len()]);
            let ([central], [tail]) = central_lanes::<Portable, 1>(&[w]);
            let [tails] = tail_lanes::<Portable, 1>(&[w]);
            for i in 0..LANES {
                let z = if tail[i] { tails[i] } else { central[i] };
                assert_eq!(z.to_bits(), normal_from_word(w[i]).to_bits(), "{:#x}", w[i]);
            }
        }
    }
}
