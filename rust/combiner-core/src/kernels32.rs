//! Batch kernels of format version 3: Philox words, binary32 normals and the search's log
//! ratios for eight candidates at a time, one candidate per lane.
//!
//! Layout: a batch covers a list of groups of eight consecutive candidates (group i: candidates
//! `starts[i] .. starts[i] + 7`) and a range of dimensions `j0 .. j1`. Its normals are stored
//! lane-major, `z[i * (j1 - j0) + (j - j0)][lane]`, so that a candidate's dimensions are summed
//! in order by one lane of a vector and no horizontal operation is ever needed.
//!
//! Passes, each a straight loop over the batch:
//! 1. Philox4x32-10 (four dimensions per call, eight candidates per vector) and the central
//!    rational of every word (85% of the words are central); the tail words (|q| > 0.425) are
//!    compacted, with their positions, into a dense list;
//! 2. the tail formula (log, sqrt, rational) on the dense list, four vectors at a time, and a
//!    scatter of the results into place: the costly tail runs on tails only;
//! 3. (search) per candidate, the log-ratio terms summed over the dimensions in order.
//!
//! Bit-exactness: each normal is `normal32::normal_from_word` of its word, whichever pass
//! computed it, and pass 3 performs per lane the operations of `search32`'s scalar reference;
//! the AVX2 and portable instantiations give the same bits (`tests`).

use crate::kernels::Isa;
use crate::normal32::{SIGN_BIT, central_lanes, ln, ln_lanes, tail_lanes};
use crate::philox::{GUMBEL_STREAM, M0, M1, ROUNDS, W0, W1, mulhilo};
use crate::simd::{LANES, Portable, Simd};

/// Tail lists are processed this many vectors at a time (independent dependency chains).
const TAIL_VECTORS: usize = 4;
/// 2^-24: the spacing of the Gumbel stream's uniforms.
const UNIFORM_SCALE: f32 = f32::from_bits(0x3380_0000);

/// The round keys of Philox4x32-10 for `key`, splat over the lanes: round r uses
/// `key + r (W0, W1)` (wrapping).
#[derive(Clone, Copy)]
pub(crate) struct RoundKeys<S: Simd> {
    scalar: [[u32; 2]; ROUNDS],
    lanes: [[S::U; 2]; ROUNDS],
}

impl<S: Simd> RoundKeys<S> {
    #[inline(always)]
    pub(crate) fn new(key: [u32; 2]) -> Self {
        let mut scalar = [key; ROUNDS];
        for r in 1..ROUNDS {
            scalar[r] = [
                scalar[r - 1][0].wrapping_add(W0),
                scalar[r - 1][1].wrapping_add(W1),
            ];
        }
        let mut lanes = [[S::splat_u(0); 2]; ROUNDS];
        for (l, k) in lanes.iter_mut().zip(&scalar) {
            *l = [S::splat_u(k[0]), S::splat_u(k[1])];
        }
        RoundKeys { scalar, lanes }
    }
}

/// Philox4x32-10 on N sets of eight counters, each set differing in word 0 only: set i is
/// `(x0[i][lane], c1[i], c2, c3)`, all under the key of `keys`. The N sets run interleaved (one
/// Philox call is a chain of dependent operations); rounds 1 and 2 use that words 1 to 3 are
/// the same in every lane (their products are scalars). The result is exactly
/// `philox::philox4x32_10` of each lane's counter.
#[inline(always)]
pub(crate) fn philox_lanes<S: Simd, const N: usize>(
    x0: [S::U; N],
    c1: [u32; N],
    c2: u32,
    c3: u32,
    keys: &RoundKeys<S>,
) -> [[S::U; 4]; N] {
    let mut x = [[S::splat_u(0); 4]; N];
    // Rounds 1 and 2, with the scalar products.
    let ([k0, k1], [l0, l1]) = (keys.scalar[0], keys.scalar[1]);
    let (s_hi1, s_lo1) = mulhilo(M1, c2);
    for i in 0..N {
        // Round 1: x0 varies, x2 = c2 is a scalar.
        let (hi0, lo0) = S::mulhilo(x0[i], M0);
        let s_x0 = s_hi1 ^ c1[i] ^ k0;
        let x2 = S::xor(hi0, S::splat_u(c3 ^ k1));
        // Round 2: x0 and x1 are scalars.
        let (s_hi0, s_lo0) = mulhilo(M0, s_x0);
        let (hi1, lo1) = S::mulhilo(x2, M1);
        x[i] = [
            S::xor(hi1, S::splat_u(s_lo1 ^ l0)),
            lo1,
            S::xor(lo0, S::splat_u(s_hi0 ^ l1)),
            S::splat_u(s_lo0),
        ];
    }
    for [k0, k1] in &keys.lanes[2..] {
        for xi in x.iter_mut() {
            let [x0, x1, x2, x3] = *xi;
            let (hi0, lo0) = S::mulhilo(x0, M0);
            let (hi1, lo1) = S::mulhilo(x2, M1);
            *xi = [
                S::xor(S::xor(hi1, x1), *k0),
                lo1,
                S::xor(S::xor(hi0, x3), *k1),
                lo0,
            ];
        }
    }
    x
}

/// The candidate indices of the lanes of a group whose lane 0 is candidate `start`.
#[inline(always)]
fn group_indices<S: Simd>(start: u32) -> S::U {
    S::add_u(S::splat_u(start), S::load_u(&[0, 1, 2, 3, 4, 5, 6, 7]))
}

/// Which candidates and dimensions a batch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Philox key (`philox::key_of(seed)`).
    pub key: [u32; 2],
    /// Block id.
    pub block_id: u64,
    /// The groups: group i holds candidates `starts[i] .. starts[i] + 7`, one per lane.
    pub starts: &'a [u32],
    /// First dimension, a multiple of 4.
    pub j0: usize,
    /// End of the dimensions (exclusive), above `j0`.
    pub j1: usize,
}

impl Batch<'_> {
    fn dims(&self) -> usize {
        self.j1 - self.j0
    }

    /// Vectors of normals the batch holds.
    pub fn len(&self) -> usize {
        self.starts.len() * self.dims()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Buffers of the version-3 kernels, reused from batch to batch.
#[derive(Default)]
pub struct Workspace {
    /// The batch's normals, lane-major (see the module docs).
    pub z: Vec<[f32; LANES]>,
    tail_words: Vec<u32>,
    tail_at: Vec<u32>,
}

impl Workspace {
    fn prepare(&mut self, batch: &Batch) {
        let n = batch.len();
        self.z.resize(n, [0.0; LANES]);
        // Every lane may be a tail; one spare vector for the last compaction's store. The lists
        // only grow: their entries beyond the tails of a batch are never read.
        let room = (n + 1) * LANES + TAIL_VECTORS * LANES;
        if self.tail_words.len() < room {
            self.tail_words.resize(room, 0);
            self.tail_at.resize(room, 0);
        }
    }
}

/// Pass 1: words and central normals of the batch; returns the number of tail lanes listed.
/// (Running two Philox calls interleaved measured no faster: one call per step.)
#[inline(always)]
fn central_pass<S: Simd>(ws: &mut Workspace, b: &Batch) -> usize {
    assert!(
        b.j0 % 4 == 0 && b.j0 < b.j1,
        "dimension ranges start at a multiple of 4"
    );
    let dims = b.dims();
    let iota = S::load_u(&[0, 1, 2, 3, 4, 5, 6, 7]);
    let (c2, c3) = (b.block_id as u32, (b.block_id >> 32) as u32);
    let keys = RoundKeys::<S>::new(b.key);
    let mut tails = 0;
    for (group, &start) in b.starts.iter().enumerate() {
        let index = group_indices::<S>(start);
        for g in b.j0 / 4..b.j1.div_ceil(4) {
            let [words] = philox_lanes::<S, 1>([index], [g as u32], c2, c3, &keys);
            let (z, is_tail) = central_lanes::<S, 4>(&words);
            for q in 0..(b.j1 - 4 * g).min(4) {
                let slot = group * dims + (4 * g + q - b.j0);
                S::store_f(z[q], &mut ws.z[slot]);
                // Branch-free compaction of the tail lanes and of their flat positions.
                let bits = S::mask_bits(is_tail[q]);
                let at = S::add_u(S::splat_u((slot * LANES) as u32), iota);
                S::compress_store(bits, words[q], lanes_at(&mut ws.tail_words, tails));
                tails += S::compress_store(bits, at, lanes_at(&mut ws.tail_at, tails));
            }
        }
    }
    tails
}

/// The eight entries of `v` from `at`.
#[inline(always)]
fn lanes_at(v: &mut [u32], at: usize) -> &mut [u32; LANES] {
    (&mut v[at..at + LANES]).try_into().expect("eight lanes")
}

/// Pass 2: the tail normals of the listed words, scattered into place.
#[inline(always)]
fn tail_pass<S: Simd>(ws: &mut Workspace, tails: usize) {
    let step = TAIL_VECTORS * LANES;
    let flat = ws.z.as_flattened_mut();
    for start in (0..tails).step_by(step) {
        let mut words = [S::splat_u(0); TAIL_VECTORS];
        for (v, w) in words.iter_mut().enumerate() {
            *w = S::load_u(lanes_at(&mut ws.tail_words, start + v * LANES));
        }
        let mut z = [[0.0f32; LANES]; TAIL_VECTORS];
        for (out, v) in z.iter_mut().zip(tail_lanes::<S, TAIL_VECTORS>(&words)) {
            S::store_f(v, out);
        }
        let count = step.min(tails - start);
        for (&at, &v) in ws.tail_at[start..start + count]
            .iter()
            .zip(z.as_flattened())
        {
            flat[at as usize] = v;
        }
    }
}

#[inline(always)]
fn normals_body<S: Simd>(ws: &mut Workspace, batch: &Batch) {
    ws.prepare(batch);
    let tails = central_pass::<S>(ws, batch);
    tail_pass::<S>(ws, tails);
}

/// Per-dimension coefficients of the version-3 log ratio, `t_j(z) = z^2 - (c1_j z + c0_j)^2`.
#[derive(Clone, Debug, Default)]
pub struct Coefficients {
    pub c1: Vec<f32>,
    pub c0: Vec<f32>,
}

/// Pass 3: `acc[group][lane] += sum over the batch's dimensions j, in order, of t_j(z)`, each
/// term `(z * z) - (b * b)` with `b = (c1_j * z) + c0_j`, every operation rounded to binary32.
#[inline(always)]
fn ratio_body<S: Simd>(
    z: &[[f32; LANES]],
    batch: &Batch,
    k: &Coefficients,
    acc: &mut [[f32; LANES]],
) {
    let dims = batch.dims();
    let (c1, c0) = (&k.c1[batch.j0..batch.j1], &k.c0[batch.j0..batch.j1]);
    for (rows, out) in z.chunks_exact(dims).zip(acc.iter_mut()) {
        let mut sum = S::load_f(out);
        for ((row, &a), &c) in rows.iter().zip(c1).zip(c0) {
            let z = S::load_f(row);
            let b = S::add(S::mul(S::splat_f(a), z), S::splat_f(c));
            sum = S::add(sum, S::sub(S::mul(z, z), S::mul(b, b)));
        }
        S::store_f(sum, out);
    }
}

#[inline(always)]
fn batch_ratio_body<S: Simd>(
    ws: &mut Workspace,
    batch: &Batch,
    k: &Coefficients,
    acc: &mut [[f32; LANES]],
) {
    normals_body::<S>(ws, batch);
    ratio_body::<S>(&ws.z, batch, k, acc);
}

/// Pass over the encoder's Gumbel stream: `out[i] = -ln(u)` for Gumbel word `first + i`, with
/// `u = (2m + 1) 2^-24` from the word's top 23 bits m (an open uniform on 2^23 points, exact in
/// binary32). Word w is output word `w mod 4` of Philox counter `(w / 4, GUMBEL_STREAM, b mod
/// 2^32, b >> 32)`. `first` is a multiple of 32.
#[inline(always)]
fn exponentials_body<S: Simd>(key: [u32; 2], block_id: u64, first: u64, out: &mut [f32]) {
    assert!(first % 32 == 0, "Gumbel words are generated 32 at a time");
    let keys = RoundKeys::<S>::new(key);
    let (c2, c3) = (block_id as u32, (block_id >> 32) as u32);
    for (unit, chunk) in out.chunks_mut(4 * LANES).enumerate() {
        let counter = (first / 4) as u32 + (unit * LANES) as u32;
        let [words] = philox_lanes::<S, 1>(
            [group_indices::<S>(counter)],
            [GUMBEL_STREAM],
            c2,
            c3,
            &keys,
        );
        let mut u = [S::splat_f(0.0); 4];
        for (v, w) in u.iter_mut().zip(words) {
            let odd = S::or(S::add_u(S::shr::<9>(w), S::shr::<9>(w)), S::splat_u(1));
            *v = S::mul(S::to_f(odd), S::splat_f(UNIFORM_SCALE));
        }
        let ln = ln_lanes::<S, 4>(&u);
        let mut e = [[0.0f32; LANES]; 4];
        for (q, l) in ln.into_iter().enumerate() {
            S::store_f(
                S::from_bits(S::xor(S::bits(l), S::splat_u(SIGN_BIT))),
                &mut e[q],
            );
        }
        // Word 4 (counter + lane) + q sits in lane `lane` of output vector q.
        for (i, o) in chunk.iter_mut().enumerate() {
            *o = e[i % 4][i / 4];
        }
    }
}

/// `x[i] = -ln(x[i])` for positive normal finite binary32 values (`normal32::ln`).
#[inline(always)]
fn neg_ln_body<S: Simd>(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(4 * LANES);
    for chunk in &mut chunks {
        let mut v = [S::splat_f(0.0); 4];
        for (q, lane) in v.iter_mut().zip(chunk.chunks_exact(LANES)) {
            *q = S::load_f(lane.try_into().expect("eight lanes"));
        }
        let ln = ln_lanes::<S, 4>(&v);
        for (l, lane) in ln.into_iter().zip(chunk.chunks_exact_mut(LANES)) {
            let neg = S::from_bits(S::xor(S::bits(l), S::splat_u(SIGN_BIT)));
            S::store_f(neg, lane.try_into().expect("eight lanes"));
        }
    }
    for v in chunks.into_remainder() {
        *v = -ln(*v);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use crate::simd::Avx2;

    #[target_feature(enable = "avx2")]
    pub(super) fn normals(ws: &mut Workspace, batch: &Batch) {
        normals_body::<Avx2>(ws, batch)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn batch_ratios(
        ws: &mut Workspace,
        batch: &Batch,
        k: &Coefficients,
        acc: &mut [[f32; LANES]],
    ) {
        batch_ratio_body::<Avx2>(ws, batch, k, acc)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn exponentials(key: [u32; 2], block_id: u64, first: u64, out: &mut [f32]) {
        exponentials_body::<Avx2>(key, block_id, first, out)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn neg_ln(x: &mut [f32]) {
        neg_ln_body::<Avx2>(x)
    }
}

/// Whether to run the AVX2 instantiation (panics when it is requested on a CPU without AVX2).
fn use_avx2(isa: Isa) -> bool {
    if isa == Isa::Avx2 {
        assert!(
            Isa::avx2_available(),
            "AVX2 kernel requested on a CPU without AVX2"
        );
        return true;
    }
    false
}

/// The normals of `batch` into `ws.z` (lane-major).
pub fn normals(isa: Isa, ws: &mut Workspace, batch: &Batch) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(isa) {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        return unsafe { avx2::normals(ws, batch) };
    }
    let _ = use_avx2(isa);
    normals_body::<Portable>(ws, batch)
}

/// The normals of `batch` and their log-ratio sums added to `acc` (one vector per group).
pub fn batch_ratios(
    isa: Isa,
    ws: &mut Workspace,
    batch: &Batch,
    k: &Coefficients,
    acc: &mut [[f32; LANES]],
) {
    assert!(acc.len() >= batch.starts.len() && k.c1.len() >= batch.j1 && k.c0.len() >= batch.j1);
    #[cfg(target_arch = "x86_64")]
    if use_avx2(isa) {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        return unsafe { avx2::batch_ratios(ws, batch, k, acc) };
    }
    let _ = use_avx2(isa);
    batch_ratio_body::<Portable>(ws, batch, k, acc)
}

/// The encoder's exponentials `-ln(u)` of Gumbel words `first ..` (see `exponentials_body`).
pub fn exponentials(isa: Isa, key: [u32; 2], block_id: u64, first: u64, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(isa) {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        return unsafe { avx2::exponentials(key, block_id, first, out) };
    }
    let _ = use_avx2(isa);
    exponentials_body::<Portable>(key, block_id, first, out)
}

/// `x[i] = -normal32::ln(x[i])` for positive normal finite values.
pub fn neg_ln(isa: Isa, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(isa) {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        return unsafe { avx2::neg_ln(x) };
    }
    let _ = use_avx2(isa);
    neg_ln_body::<Portable>(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normal32::normal_from_word;
    use crate::philox::{candidate_word, key_of, philox4x32_10};

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        if Isa::avx2_available() {
            v.push(Isa::Avx2);
        }
        v
    }

    #[test]
    fn lane_philox_is_philox() {
        let key = [0xDEAD_BEEF, 0x0123_4567];
        let x0: [u32; LANES] = std::array::from_fn(|i| (i as u32).wrapping_mul(0x3779_B97F));
        let x1: [u32; LANES] = std::array::from_fn(|i| !x0[i]);
        let got =
            philox_lanes::<Portable, 2>([x0, x1], [77, 78], 0xFFFF_FFF0, 3, &RoundKeys::new(key));
        for (set, (counter0, c1)) in [(x0, 77), (x1, 78)].into_iter().enumerate() {
            for lane in 0..LANES {
                let want = philox4x32_10([counter0[lane], c1, 0xFFFF_FFF0, 3], key);
                assert_eq!(std::array::from_fn(|w| got[set][w][lane]), want);
            }
        }
    }

    #[test]
    fn batch_normals_are_the_scalar_reference_on_every_isa() {
        let seed = 0xFEED_F00D_1234_5678;
        for (first, groups, j0, j1) in [
            (0u32, 3usize, 0usize, 9usize),
            (1 << 19, 2, 4, 7),
            (13, 5, 8, 64),
        ] {
            let starts: Vec<u32> = (0..groups).map(|g| first + (g * LANES) as u32).collect();
            let batch = Batch {
                key: key_of(seed),
                block_id: (5 << 32) | 17,
                starts: &starts,
                j0,
                j1,
            };
            for isa in isas() {
                let mut ws = Workspace::default();
                normals(isa, &mut ws, &batch);
                for g in 0..groups {
                    for j in j0..j1 {
                        for lane in 0..LANES {
                            let k = first + (g * LANES + lane) as u32;
                            let want =
                                normal_from_word(candidate_word(seed, batch.block_id, k, j as u32));
                            let got = ws.z[g * (j1 - j0) + j - j0][lane];
                            assert_eq!(got.to_bits(), want.to_bits(), "{isa:?} k={k} j={j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batch_ratios_sum_the_terms_in_order_on_every_isa() {
        let (dims, groups) = (11usize, 4usize);
        let k = Coefficients {
            c1: (0..dims).map(|j| 1.5 + 0.25 * j as f32).collect(),
            c0: (0..dims).map(|j| 0.1 * j as f32 - 0.4).collect(),
        };
        // Any list of groups: the search's skip drops some between slices of dimensions.
        let starts = [40u32, 48, 56, 64];
        let batch = Batch {
            key: key_of(9),
            block_id: 2,
            starts: &starts,
            j0: 0,
            j1: dims,
        };
        let mut want = vec![[0.0f32; LANES]; groups];
        for (g, out) in want.iter_mut().enumerate() {
            for (lane, sum) in out.iter_mut().enumerate() {
                let index = 40 + (g * LANES + lane) as u32;
                for j in 0..dims {
                    let z = normal_from_word(candidate_word(9, 2, index, j as u32));
                    let b = k.c1[j] * z + k.c0[j];
                    *sum += z * z - b * b;
                }
            }
        }
        for isa in isas() {
            let mut acc = vec![[0.0f32; LANES]; groups];
            // In two slices of dimensions, as the search's skip does.
            for (j0, j1) in [(0, 8), (8, dims)] {
                let part = Batch { j0, j1, ..batch };
                batch_ratios(isa, &mut Workspace::default(), &part, &k, &mut acc);
            }
            assert_eq!(
                acc.as_flattened()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                want.as_flattened()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                "{isa:?}"
            );
        }
    }

    #[test]
    fn gumbel_exponentials_are_the_scalar_reference_on_every_isa() {
        let (seed, block) = (31u64, (1u64 << 33) | 5);
        let first = 4096u64;
        let want: Vec<u32> = (first..first + 1000)
            .map(|w| {
                let out = philox4x32_10([(w / 4) as u32, GUMBEL_STREAM, 5, 2], key_of(seed));
                let m = out[(w % 4) as usize] >> 9;
                let u = (2 * m + 1) as f32 * UNIFORM_SCALE;
                (-ln(u)).to_bits()
            })
            .collect();
        for isa in isas() {
            let mut e = vec![0.0f32; 1000];
            exponentials(isa, key_of(seed), block, first, &mut e);
            assert_eq!(
                e.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want,
                "{isa:?}"
            );
            let mut x: Vec<f32> = (1..1000).map(|i| i as f32 * 0.37).collect();
            let want_ln: Vec<u32> = x.iter().map(|&v| (-ln(v)).to_bits()).collect();
            neg_ln(isa, &mut x);
            assert_eq!(
                x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want_ln,
                "{isa:?}"
            );
        }
    }

    #[test]
    fn gumbel_exponentials_are_never_negative() {
        // Every uniform of the Gumbel stream: ln(u) <= 0, so the partial sums never decrease.
        let step = if cfg!(debug_assertions) { 61 } else { 1 };
        for m in (0..1u32 << 23).step_by(step) {
            let u = (2 * m + 1) as f32 * UNIFORM_SCALE;
            assert!(ln(u) <= 0.0, "m = {m}");
        }
    }
}
