//! A portable inverse normal CDF: Wichura's algorithm AS241 (PPND16, Applied Statistics 37,
//! 1988), relative accuracy about 1e-16.
//!
//! Portability: the central region (|p - 1/2| <= 0.425, 85% of draws) is a ratio of two
//! degree-7 polynomials evaluated with separate multiplies and adds, which IEEE 754 binary64
//! rounds identically on every conforming platform. Rust never contracts `a * b + c` into a fused
//! multiply-add on its own, and we never call `mul_add`. The tails need `log` and `sqrt`, taken
//! from the pinned pure-Rust `libm` crate, never from the platform's libm.

/// Central region: |p - 1/2| <= SPLIT1.
pub(crate) const SPLIT1: f64 = 0.425;
/// Intermediate tail: r <= SPLIT2.
pub(crate) const SPLIT2: f64 = 5.0;
const CONST1: f64 = 0.180625;
const CONST2: f64 = 1.6;

// The coefficients below are written as Wichura published them (more digits than binary64 holds);
// each literal rounds to the value the format specifies (docs/format.md section 4), so clippy's
// excessive_precision is allowed for them alone.

// Central region, |q| <= 0.425.
#[allow(clippy::excessive_precision)]
const A: [f64; 8] = [
    3.387_132_872_796_366_608,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
#[allow(clippy::excessive_precision)]
const B: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561e3,
];
// Intermediate tail, r = sqrt(-log(min(p, 1 - p))) <= 5.
#[allow(clippy::excessive_precision)]
const C: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_9,
    5.769_497_221_460_691_405_5,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_7e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_4e-4,
];
#[allow(clippy::excessive_precision)]
const D: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_4,
    6.897_673_349_851_000_045_5e-1,
    1.481_039_764_274_800_745_9e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946e-4,
    1.050_750_071_644_416_843_24e-9,
];
// Far tail, r > 5.
#[allow(clippy::excessive_precision)]
const E: [f64; 8] = [
    6.657_904_643_501_103_777_2,
    5.463_784_911_164_114_369_9,
    1.784_826_539_917_291_335_8,
    2.965_605_718_285_048_912_3e-1,
    2.653_218_952_657_612_309_3e-2,
    1.242_660_947_388_078_438_6e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)]
const F: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_9e-1,
    1.369_298_809_227_358_053_1e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591e-4,
    1.846_318_317_510_054_681_8e-5,
    1.421_511_758_316_445_888_7e-7,
    2.044_263_103_389_939_785_64e-15,
];

/// Horner evaluation, highest coefficient first, with separate (unfused) multiply and add.
#[inline(always)]
fn poly(c: &[f64; 8], x: f64) -> f64 {
    let mut acc = c[7];
    let mut i = 7;
    while i > 0 {
        i -= 1;
        acc = acc * x + c[i];
    }
    acc
}

/// The central-region rational at q = p - 1/2 (meaningful for |q| <= SPLIT1). Shared with the
/// batch kernels, which evaluate it for every entry before fixing up the tails.
#[inline(always)]
pub(crate) fn central(q: f64) -> f64 {
    let r = CONST1 - q * q;
    q * poly(&A, r) / poly(&B, r)
}

/// The intermediate-tail rational at r = sqrt(-log(min(p, 1 - p))) (meaningful for r <= SPLIT2):
/// the magnitude of the quantile.
#[inline(always)]
pub(crate) fn intermediate_tail(r: f64) -> f64 {
    let r = r - CONST2;
    poly(&C, r) / poly(&D, r)
}

/// The standard normal quantile of `p`, for p strictly inside (0, 1).
///
/// Callers pass `rng::word_to_open_uniform` output, for which `1 - p` is exact, making the
/// result exactly antisymmetric under p -> 1 - p.
#[inline]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= SPLIT1 {
        return central(q);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = libm::sqrt(-libm::log(tail));
    let magnitude = if r <= SPLIT2 {
        intermediate_tail(r)
    } else {
        let r = r - SPLIT2;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 { -magnitude } else { magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard normal CDF from the pinned libm's erfc (independent of AS241's coefficients).
    fn phi(z: f64) -> f64 {
        0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
    }

    #[test]
    fn inverts_the_normal_cdf_to_near_machine_precision() {
        let mut worst: f64 = 0.0;
        for i in 1..20_000 {
            let p = i as f64 / 20_000.0;
            let z = inverse_normal_cdf(p);
            let back = phi(z);
            let rel = ((back - p) / p.min(1.0 - p)).abs();
            worst = worst.max(rel);
        }
        for e in 3..300 {
            let p = 10f64.powi(-e);
            let z = inverse_normal_cdf(p);
            let rel = ((phi(z) - p) / p).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-12, "worst relative CDF error {worst}");
    }

    #[test]
    fn known_quantiles() {
        assert_eq!(inverse_normal_cdf(0.5), 0.0);
        assert!((inverse_normal_cdf(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
        assert!((inverse_normal_cdf(0.025) + 1.959_963_984_540_054).abs() < 1e-14);
        assert!((inverse_normal_cdf(1e-10) + 6.361_340_902_404_056).abs() < 1e-12);
    }
}
