//! Batch kernels behind the sampler and the search: the same IEEE-exact operations as the scalar
//! reference code (`normal::inverse_normal_cdf`, `libm::log`, `LogRatio`), restructured into
//! straight-line loops over slices that the compiler can vectorise.
//!
//! Bit-exactness: every kernel performs, per element, exactly the operations of its scalar
//! reference in the same order (each `+ - * /` and `sqrt` rounded separately; Rust never fuses
//! them and we never enable "fma"). Vectorising an elementwise loop only changes how many
//! elements one instruction handles, never the value of any element, so the results are the same
//! bits on every CPU. Inputs a kernel's fast path does not cover (tails, special values) are
//! recomputed by the scalar reference in a fix-up pass.
//!
//! CPU dispatch: each kernel body is `#[inline(always)]` and instantiated twice, once for the
//! baseline target and once inside a `#[target_feature(enable = "avx2")]` function chosen at run
//! time. `Isa` lets tests force either path and compare them bit for bit.

use crate::normal;

/// Which instantiation of a kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Compiled for the baseline target only (SSE2 on x86_64).
    Portable,
    /// Compiled with AVX2 enabled; only valid where `Isa::avx2_available()`.
    Avx2,
}

impl Isa {
    /// The fastest instantiation this CPU supports.
    #[inline]
    pub fn detect() -> Isa {
        if Isa::avx2_available() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether the AVX2 instantiation may run here.
    #[inline]
    pub fn avx2_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Define `pub fn $name(isa: Isa, args..)` running `$body` (an `#[inline(always)]` fn) compiled
/// either for the baseline target or with AVX2.
macro_rules! dispatched {
    ($(#[$doc:meta])* $name:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if isa == Isa::Avx2 {
                    assert!(Isa::avx2_available(), "AVX2 kernel requested on a CPU without AVX2");
                    // SAFETY: the CPU supports AVX2 (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Word -> standard normal.

/// q = u - 1/2 for the open uniform u = (k + 1/2) 2^-52 of `word` (k = word >> 12). Equal to
/// `rng::word_to_open_uniform(word) - 0.5` bit for bit: both are exact. Built from the bits
/// because u64 -> f64 conversion does not vectorise before AVX-512: 1 + k 2^-52 is the double
/// with mantissa k, subtracting 1.5 is exact (Sterbenz), and adding 2^-53 is exact too (the
/// result needs at most 53 significant bits).
#[inline(always)]
fn centred_uniform(word: u64) -> f64 {
    const HALF_ULP: f64 = 1.0 / (1u64 << 53) as f64;
    (f64::from_bits(0x3FF0_0000_0000_0000 | (word >> 12)) - 1.5) + HALF_ULP
}

/// The central region in terms of k = word >> 12: |q| <= SPLIT1 exactly for k in
/// CENTRAL_K_LO ..= CENTRAL_K_LO + CENTRAL_K_SPAN (q is increasing in k; the test
/// `central_k_range_is_exact` checks both ends against the floating-point comparison).
const CENTRAL_K_LO: u64 = 0x0001_3333_3333_3333;
const CENTRAL_K_SPAN: u64 = 0x000D_9999_9999_9999;

/// `centred_uniform(word).abs() > SPLIT1`, as one integer compare.
#[inline(always)]
fn is_tail(word: u64) -> bool {
    (word >> 12).wrapping_sub(CENTRAL_K_LO) > CENTRAL_K_SPAN
}

#[inline(always)]
fn normals_body(words: &[u64], out: &mut [f64]) {
    assert_eq!(words.len(), out.len());
    // Pass 1, branch-free: the central-region rational for every entry (about 85% are central).
    for (o, &w) in out.iter_mut().zip(words) {
        *o = normal::central(centred_uniform(w));
    }
    // Pass 2: the tails (|q| > SPLIT1), gathered into small dense batches so that their log,
    // sqrt and rational also run as straight-line loops.
    const BATCH: usize = 256;
    let mut index = [0u32; BATCH];
    let mut tail = [0.0f64; BATCH];
    let mut radius = [0.0f64; BATCH];
    let mut magnitude = [0.0f64; BATCH];
    for (base, ws) in words.chunks(BATCH).enumerate() {
        // Branch-free compaction of the tail positions.
        let mut n = 0;
        for (i, &w) in ws.iter().enumerate() {
            index[n] = i as u32;
            n += usize::from(is_tail(w));
        }
        let (index, tail) = (&index[..n], &mut tail[..n]);
        for (t, &i) in tail.iter_mut().zip(index) {
            // min(p, 1 - p), as `inverse_normal_cdf` picks it (both exact).
            let q = centred_uniform(ws[i as usize]);
            *t = if q < 0.0 { q + 0.5 } else { 1.0 - (q + 0.5) };
        }
        // r = sqrt(-log(tail)); tail >= 2^-53 is normal, so the log main path applies.
        let (radius, magnitude) = (&mut radius[..n], &mut magnitude[..n]);
        for ((r, m), &t) in radius.iter_mut().zip(magnitude.iter_mut()).zip(tail.iter()) {
            *r = (-log_main_path(t)).sqrt();
            *m = normal::intermediate_tail(*r);
        }
        let out = &mut out[base * BATCH..];
        for ((&i, &r), &m) in index.iter().zip(radius.iter()).zip(magnitude.iter()) {
            let i = i as usize;
            let q = centred_uniform(ws[i]);
            out[i] = if r > normal::SPLIT2 {
                // Far tail (p < 1.4e-11): rare, so the scalar reference handles it.
                normal::inverse_normal_cdf(q + 0.5)
            } else if q < 0.0 {
                -m
            } else {
                m
            };
        }
    }
}

dispatched!(
    /// `out[i] = inverse_normal_cdf(word_to_open_uniform(words[i]))`, bit for bit.
    normals_from_words => normals_body(words: &[u64], out: &mut [f64])
);

// ---------------------------------------------------------------------------------------------
// libm::log, batched. The constants are FreeBSD e_log.c's, as published (more digits than binary64
// holds; each rounds to the value libm uses), hence the allow.

#[allow(clippy::excessive_precision)]
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
#[allow(clippy::excessive_precision)]
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
#[allow(clippy::excessive_precision)]
const LG1: f64 = 6.666_666_666_666_735_130e-1;
#[allow(clippy::excessive_precision)]
const LG2: f64 = 3.999_999_999_940_941_908e-1;
#[allow(clippy::excessive_precision)]
const LG3: f64 = 2.857_142_874_366_239_149e-1;
#[allow(clippy::excessive_precision)]
const LG4: f64 = 2.222_219_843_214_978_396e-1;
#[allow(clippy::excessive_precision)]
const LG5: f64 = 1.818_357_216_161_805_012e-1;
#[allow(clippy::excessive_precision)]
const LG6: f64 = 1.531_383_769_920_937_332e-1;
#[allow(clippy::excessive_precision)]
const LG7: f64 = 1.479_819_860_511_658_591e-1;

/// The main path of the pinned `libm::log` (FreeBSD e_log.c) for positive normal finite x, op for
/// op, with the exponent handled in integer lanes: k + 1023 (0..2047) becomes a double exactly
/// via the 2^52 trick, because i32/i64 -> f64 conversion does not vectorise on AVX2.
#[inline(always)]
fn log_main_path(x: f64) -> f64 {
    const TWO52: f64 = (1u64 << 52) as f64;
    let ui = x.to_bits();
    // hx += 0x3ff00000 - 0x3fe6a09e; k = (hx >> 20) - 0x3ff; hx = (hx & 0xfffff) + 0x3fe6a09e.
    let hx = (ui >> 32) + (0x3ff0_0000 - 0x3fe6_a09e);
    let biased_k = hx >> 20;
    let hx = (hx & 0x000f_ffff) + 0x3fe6_a09e;
    let x = f64::from_bits((hx << 32) | (ui & 0xffff_ffff));
    let dk = (f64::from_bits(0x4330_0000_0000_0000 | biased_k) - TWO52) - 1023.0;

    let f = x - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// Whether `log_main_path` is `libm::log` for x: positive, normal, finite.
#[inline(always)]
fn log_main_path_applies(x: f64) -> bool {
    (f64::MIN_POSITIVE..f64::INFINITY).contains(&x)
}

#[inline(always)]
fn neg_log_body(x: &[f64], out: &mut [f64]) {
    assert_eq!(x.len(), out.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = -log_main_path(v);
    }
    for (o, &v) in out.iter_mut().zip(x) {
        if !log_main_path_applies(v) {
            *o = -libm::log(v);
        }
    }
}

dispatched!(
    /// `out[i] = -libm::log(x[i])`, bit for bit.
    neg_log => neg_log_body(x: &[f64], out: &mut [f64])
);

#[inline(always)]
fn neg_log_uniform_body(words: &[u64], out: &mut [f64]) {
    assert_eq!(words.len(), out.len());
    // The open uniform is always positive, normal and finite: no fix-up needed.
    for (o, &w) in out.iter_mut().zip(words) {
        *o = -log_main_path(centred_uniform(w) + 0.5);
    }
}

dispatched!(
    /// `out[i] = -libm::log(word_to_open_uniform(words[i]))` (an exponential variate), bit for
    /// bit. `centred_uniform(w) + 0.5` is the open uniform exactly.
    neg_log_uniform => neg_log_uniform_body(words: &[u64], out: &mut [f64])
);

// ---------------------------------------------------------------------------------------------
// Search: per-element log-ratio terms.

/// Per-dimension parameters of `log q(x)/p(x)`, tiled over a run of whole candidates so that a
/// batch of candidates is one flat elementwise loop.
pub struct TiledTerms {
    pub dim: usize,
    mean_p: Vec<f32>,
    std_p: Vec<f32>,
    m: Vec<f64>,
    inv_s: Vec<f64>,
    mu: Vec<f64>,
    inv_sig: Vec<f64>,
}

impl TiledTerms {
    /// Tile per-dimension (mean_p, std_p, m, 1/s, mu, 1/sigma) over `candidates` candidates.
    pub fn new(mean_p: &[f32], std_p: &[f32], terms: &[[f64; 4]], candidates: usize) -> Self {
        let dim = mean_p.len();
        let tile = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            (0..candidates * dim).map(|i| f(i % dim)).collect()
        };
        TiledTerms {
            dim,
            mean_p: (0..candidates * dim).map(|i| mean_p[i % dim]).collect(),
            std_p: (0..candidates * dim).map(|i| std_p[i % dim]).collect(),
            m: tile(&|j| terms[j][0]),
            inv_s: tile(&|j| terms[j][1]),
            mu: tile(&|j| terms[j][2]),
            inv_sig: tile(&|j| terms[j][3]),
        }
    }

    /// How many whole candidates one call to `log_ratio_terms` may cover.
    pub fn candidates(&self) -> usize {
        self.m.len() / self.dim
    }
}

#[inline(always)]
fn terms_body(p: &TiledTerms, z: &[f64], out: &mut [f64]) {
    let n = z.len();
    assert!(n <= p.m.len() && out.len() == n);
    let (mp, sp) = (&p.mean_p[..n], &p.std_p[..n]);
    let (m, inv_s, mu, inv_sig) = (&p.m[..n], &p.inv_s[..n], &p.mu[..n], &p.inv_sig[..n]);
    for i in 0..n {
        // x = m + s * z32 in binary32, exactly `sampler::scale_normal`.
        let z32 = z[i] as f32;
        let x = f64::from(mp[i] + sp[i] * z32);
        let a = (x - m[i]) * inv_s[i];
        let b = (x - mu[i]) * inv_sig[i];
        out[i] = a * a - b * b;
    }
}

dispatched!(
    /// `out[i] = a*a - b*b` of `LogRatio::eval` for the candidate-major normals `z` (whole
    /// candidates, at most `p.candidates()` of them).
    log_ratio_terms => terms_body(p: &TiledTerms, z: &[f64], out: &mut [f64])
);

/// Sum each row of `t` (rows of `dim` entries) strictly left to right from 0.0, as
/// `LogRatio::eval` does; four rows at a time so four dependency chains overlap.
pub fn row_sums(t: &[f64], dim: usize, out: &mut [f64]) {
    assert_eq!(t.len(), out.len() * dim);
    let mut rows = t.chunks_exact(4 * dim);
    let mut outs = out.chunks_exact_mut(4);
    for (block, o) in (&mut rows).zip(&mut outs) {
        let (r0, rest) = block.split_at(dim);
        let (r1, rest) = rest.split_at(dim);
        let (r2, r3) = rest.split_at(dim);
        let mut acc = [0.0f64; 4];
        for j in 0..dim {
            acc[0] += r0[j];
            acc[1] += r1[j];
            acc[2] += r2[j];
            acc[3] += r3[j];
        }
        o.copy_from_slice(&acc);
    }
    for (row, o) in rows
        .remainder()
        .chunks_exact(dim)
        .zip(outs.into_remainder())
    {
        let mut acc = 0.0f64;
        for &v in row {
            acc += v;
        }
        *o = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normal::SPLIT1;
    use crate::rng::{CANDIDATE_DOMAIN, WordStream, word_to_open_uniform};

    fn words(n: usize, seed: u64) -> Vec<u64> {
        let mut w = vec![0u64; n];
        WordStream::new(CANDIDATE_DOMAIN, seed, 99, 0).fill_words(&mut w);
        // Edge words: extremes of the uniform, the split points' neighbourhood, far tails.
        w.extend([
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            1 << 12,
            !(1 << 12),
            1u64 << 63,
        ]);
        w.extend((0..64).map(|i| 1u64 << i));
        w.extend((0..64).map(|i| !(1u64 << i)));
        w
    }

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        if Isa::avx2_available() {
            v.push(Isa::Avx2);
        }
        v
    }

    #[test]
    fn centred_uniform_is_exact() {
        for w in words(10_000, 1) {
            assert_eq!(
                centred_uniform(w).to_bits(),
                (word_to_open_uniform(w) - 0.5).to_bits()
            );
            assert_eq!(
                (centred_uniform(w) + 0.5).to_bits(),
                word_to_open_uniform(w).to_bits()
            );
        }
    }

    #[test]
    fn central_k_range_is_exact() {
        let tail = |k: u64| centred_uniform(k << 12).abs() > SPLIT1;
        let (lo, hi) = (CENTRAL_K_LO, CENTRAL_K_LO + CENTRAL_K_SPAN);
        assert!(tail(lo - 1) && !tail(lo) && !tail(hi) && tail(hi + 1));
        for k in [
            0,
            1,
            lo - 2,
            lo - 1,
            lo,
            lo + 1,
            hi - 1,
            hi,
            hi + 1,
            hi + 2,
            (1 << 52) - 1,
        ] {
            for low_bits in [0u64, 0xfff] {
                let w = (k << 12) | low_bits;
                assert_eq!(is_tail(w), tail(k), "k = {k:#x}");
            }
        }
    }

    #[test]
    fn normals_match_the_scalar_reference_on_every_isa() {
        let w = words(200_003, 2);
        let want: Vec<u64> = w
            .iter()
            .map(|&x| normal::inverse_normal_cdf(word_to_open_uniform(x)).to_bits())
            .collect();
        for isa in isas() {
            let mut out = vec![0.0; w.len()];
            normals_from_words(isa, &w, &mut out);
            let got: Vec<u64> = out.iter().map(|x| x.to_bits()).collect();
            assert!(got == want, "{isa:?}");
        }
    }

    #[test]
    fn logs_match_libm_on_every_isa() {
        let w = words(100_000, 3);
        let mut x: Vec<f64> = w.iter().map(|&v| word_to_open_uniform(v)).collect();
        // Sums of exponentials as in the Gumbel sequence, and special values for the fix-up.
        x.extend((1..20_000).map(|i| i as f64 * 0.731_3 + 1e-3 * (i % 7) as f64));
        x.extend([
            1.0,
            2.0,
            0.5,
            f64::MIN_POSITIVE,
            1e-310,
            0.0,
            -1.0,
            f64::INFINITY,
            f64::NAN,
        ]);
        x.extend(w.iter().take(10_000).map(|&v| f64::from_bits(v >> 1)));
        let want: Vec<u64> = x.iter().map(|&v| (-libm::log(v)).to_bits()).collect();
        let want_u: Vec<u64> = w
            .iter()
            .map(|&v| (-libm::log(word_to_open_uniform(v))).to_bits())
            .collect();
        for isa in isas() {
            let mut out = vec![0.0; x.len()];
            neg_log(isa, &x, &mut out);
            let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
            assert!(got == want, "{isa:?}");
            let mut out = vec![0.0; w.len()];
            neg_log_uniform(isa, &w, &mut out);
            let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
            assert!(got == want_u, "{isa:?} uniform");
        }
    }

    #[test]
    fn terms_match_on_every_isa() {
        let dim = 7;
        let mean_p: Vec<f32> = (0..dim).map(|j| 0.3 * j as f32 - 1.0).collect();
        let std_p: Vec<f32> = (0..dim).map(|j| 0.05 + 0.1 * j as f32).collect();
        let terms: Vec<[f64; 4]> = (0..dim)
            .map(|j| {
                let (s, sig) = (f64::from(std_p[j]), f64::from(std_p[j]) * 0.3);
                [
                    f64::from(mean_p[j]),
                    1.0 / s,
                    f64::from(mean_p[j]) + 0.01,
                    1.0 / sig,
                ]
            })
            .collect();
        let p = TiledTerms::new(&mean_p, &std_p, &terms, 100);
        let w = words(700, 4);
        let mut z = vec![0.0; 700];
        normals_from_words(Isa::Portable, &w[..700], &mut z);
        let want: Vec<u64> = z
            .iter()
            .enumerate()
            .map(|(i, &zi)| {
                let j = i % dim;
                let x = f64::from(crate::sampler::scale_normal(mean_p[j], std_p[j], zi));
                let [m, inv_s, mu, inv_sig] = terms[j];
                let (a, b) = ((x - m) * inv_s, (x - mu) * inv_sig);
                (a * a - b * b).to_bits()
            })
            .collect();
        for isa in isas() {
            let mut out = vec![0.0; 700];
            log_ratio_terms(isa, &p, &z, &mut out);
            let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
            assert!(got == want, "{isa:?}");
        }
    }

    #[test]
    fn row_sums_are_left_to_right() {
        let t: Vec<f64> = (0..7 * 11)
            .map(|i| ((i * 37 % 101) as f64).sin() * 1e3)
            .collect();
        let mut out = vec![0.0; 11];
        row_sums(&t, 7, &mut out);
        for (r, &o) in out.iter().enumerate() {
            let mut acc = 0.0f64;
            for &v in &t[r * 7..r * 7 + 7] {
                acc += v;
            }
            assert_eq!(acc.to_bits(), o.to_bits());
        }
    }
}
