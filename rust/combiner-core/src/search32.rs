//! The A* coding search of format version 3, scored in binary32.
//!
//! Candidates come from the version-3 generator (`kernels32`, eight candidates per vector). The
//! score of candidate k is, in binary32 with every operation rounded separately,
//!
//! ```text
//! score_k = (C + 0.5 * S_k) + G_k,   S_k = sum over j in order of (z_j^2 - (c1_j z_j + c0_j)^2)
//! ```
//!
//! with `c1_j = s_j / sigma_j`, `c0_j = (m_j - mu_j) / sigma_j` and `C = sum_j ln(s_j / sigma_j)`
//! (computed in binary64, then rounded): the log density ratio log q(x)/p(x) of the candidate
//! x = m + s z. `G_k` is the ordered Gumbel sequence of the encoder's Philox Gumbel stream
//! (`Gumbels32`). The score is not part of the format; these invariants are:
//!
//! * the index does not depend on the thread count or the CPU: every candidate's score is the
//!   same sequence of rounded operations whichever thread and instantiation computes it, the
//!   Gumbel prefix sums use fixed chunk boundaries, and the reduction (max score, then min index)
//!   is associative and commutative;
//! * the early stop and the per-candidate skip are exact: they only drop candidates whose score,
//!   as computed, cannot exceed the best one found before them (`Ratio32::score_bound`, a
//!   rigorous upper bound that accounts for every rounding), so the index is the exhaustive
//!   search's;
//! * memory is O(N + batch) per thread.
//!
//! A block whose coefficients could overflow binary32 (a posterior more than about 10^14 times
//! narrower than its prior) is scored in binary64 on the same candidates instead
//! (`search::encode_block`): `Ratio32::new` returns `None` for it.

use rayon::prelude::*;

use crate::kernels::Isa;
use crate::kernels32::{Batch, Coefficients, Workspace, batch_ratios, exponentials, neg_ln};
use crate::philox::key_of;
use crate::search::{Best, Block, CHUNK, GUMBEL_CHUNK, TASK_CHUNKS};
use crate::simd::LANES;

/// An upper bound of |z| for every version-3 normal (the largest is 5.4199834).
const Z_MAX: f64 = 5.42;
/// The unit roundoff of binary32, 2^-24.
const UNIT: f64 = 1.0 / (1u64 << 24) as f64;
/// How much a later Gumbel value may exceed an earlier one: the binary32 `ln` is not exactly
/// monotone (its error is below 1e-6 on the Gumbel sums, 6e-8 .. 2^21); generous.
const GUMBEL_SLACK: f64 = 1e-4;
/// Blocks whose summed term bounds reach this are scored in binary64 (no binary32 overflow).
const MAX_TERM_TOTAL: f64 = 1e30;
/// Normals per batch: the batch's buffers stay in the L1 cache.
const BATCH_VECTORS: usize = 256;
/// Dimensions per slice of the exhaustive scoring (a multiple of 4).
const SLICE: usize = 64;
/// The first slice when skipping: the skip test runs after it, then after slices twice as long.
const FIRST_SKIP_SLICE: usize = 4;
/// The relative margin of the binary32 skip test (`Ratio32::lanes_may_win`): 2^-12, thousands
/// of times the rounding errors of its own evaluation (about 10 u = 6e-7).
const SKIP_MARGIN: f32 = 1.0 / 4096.0;

/// The binary32 log ratio of one block and the bounds of the early stop and skip.
pub(crate) struct Ratio32 {
    constant: f32,
    k: Coefficients,
    /// `suffix[j]`: an upper bound of what dimensions j.. can add to a computed partial sum
    /// (`suffix[d] = 0`).
    suffix: Vec<f64>,
    /// The relative error bound of recursive binary32 summation over d terms.
    gamma: f64,
}

impl Ratio32 {
    /// The block's coefficients and bounds, or `None` when they could overflow binary32.
    pub(crate) fn new(b: &Block) -> Option<Ratio32> {
        let d = b.mu_q.len();
        let (mut constant, mut k) = (0.0f64, Coefficients::default());
        let mut term_bounds = Vec::with_capacity(d);
        let mut total = 0.0f64;
        for j in 0..d {
            let (s, sig) = (f64::from(b.sigma_p[j]), f64::from(b.sigma_q[j]));
            constant += libm::log(s / sig);
            let c1 = (s / sig) as f32;
            let c0 = ((f64::from(b.mu_p[j]) - f64::from(b.mu_q[j])) / sig) as f32;
            let (t, size) = term_bound(f64::from(c1), f64::from(c0));
            total += size;
            term_bounds.push((t, size));
            k.c1.push(c1);
            k.c0.push(c0);
        }
        if !total.is_finite() || total >= MAX_TERM_TOTAL {
            return None;
        }
        let gamma = d as f64 * UNIT / (1.0 - d as f64 * UNIT);
        // Each remaining term t may grow by gamma |t| through the roundings of the sum; the f64
        // sums of the bounds err by far less than 1e-10 of the magnitudes, added on top.
        let mut suffix = vec![0.0f64; d + 1];
        let (mut sum, mut size) = (0.0f64, 0.0f64);
        for j in (0..d).rev() {
            let (t, s) = term_bounds[j];
            sum += t + gamma * t.abs();
            size += s;
            suffix[j] = sum + 1e-10 * size;
        }
        Some(Ratio32 {
            constant: constant as f32,
            k,
            suffix,
            gamma,
        })
    }

    fn dim(&self) -> usize {
        self.k.c1.len()
    }

    /// The score of a candidate from its summed terms and its Gumbel value, as the search
    /// computes it.
    #[inline]
    pub(crate) fn score(&self, sum: f32, gumbel: f32) -> f32 {
        (self.constant + 0.5 * sum) + gumbel
    }

    /// An upper bound of the computed score of any candidate whose computed partial sum over
    /// dimensions 0..j is `partial` and whose Gumbel value is at most `gumbel`.
    ///
    /// Recursive summation gives `S_d <= S_j + gamma |S_j| + suffix[j]`; the three roundings of
    /// `score` add at most 2.01 u (|C| + 0.5 |S_d| + |G|), bounded here by 4 u with u = 2^-24,
    /// which also covers the binary64 rounding of this evaluation.
    #[inline]
    pub(crate) fn score_bound(&self, partial: f64, j: usize, gumbel: f64) -> f64 {
        let upper = partial + self.gamma * partial.abs() + self.suffix[j];
        let c = f64::from(self.constant);
        let x = c + 0.5 * upper + gumbel;
        x + 4.0 * UNIT * (c.abs() + 0.5 * upper.abs() + gumbel.abs()) + 1e-30
    }

    /// Whether some lane may still score above `best` after dimensions 0..j, given the lanes'
    /// partial sums and Gumbel values: `score_bound` evaluated in binary32 with the relative
    /// margin `SKIP_MARGIN` on every magnitude (also on `gamma`), which exceeds the binary32
    /// rounding of this evaluation, so it never says "no" when `score_bound` exceeds `best`.
    #[inline]
    fn lanes_may_win(
        &self,
        sums: &[f32; LANES],
        gumbels: &[f32; LANES],
        j: usize,
        best: f32,
    ) -> bool {
        let (c, r) = (self.constant, self.suffix[j] as f32);
        let gamma = self.gamma as f32 + SKIP_MARGIN;
        let mut alive = [false; LANES];
        for ((a, &s), &g) in alive.iter_mut().zip(sums).zip(gumbels) {
            let upper = s + gamma * s.abs() + r;
            let size = c.abs() + 0.5 * (s.abs() + r.abs()) + g.abs();
            *a = (c + 0.5 * upper + g) + SKIP_MARGIN * size > best;
        }
        alive.iter().any(|&a| a)
    }

    /// The bound of the early stop: no candidate at or after a Gumbel value of `gumbel` scores
    /// above it.
    pub(crate) fn stop_bound(&self, gumbel: f64) -> f64 {
        self.score_bound(0.0, 0, gumbel + GUMBEL_SLACK)
    }
}

/// An upper bound of the computed term `(z * z) - (b * b)`, `b = (c1 * z) + c0`, over every
/// |z| <= Z_MAX, and the magnitude `Z_MAX^2 + B^2` (B = |c1| Z_MAX + |c0|) that bounds its
/// rounding: the exact quadratic's maximum (at an end of the interval or at its vertex) plus
/// 8 u (Z_MAX^2 + B^2), which covers the four roundings, plus 1e-12 of the magnitude for the
/// binary64 evaluation.
fn term_bound(c1: f64, c0: f64) -> (f64, f64) {
    let f = |z: f64| z * z - (c1 * z + c0) * (c1 * z + c0);
    let mut best = f(-Z_MAX).max(f(Z_MAX));
    if c1 * c1 > 1.0 {
        let vertex = -c1 * c0 / (c1 * c1 - 1.0);
        if vertex.abs() <= Z_MAX {
            best = best.max(f(vertex));
        }
    }
    let b = c1.abs() * Z_MAX + c0.abs();
    let size = Z_MAX * Z_MAX + b * b;
    (best + 8.0 * UNIT * size + 1e-12 * size, size)
}

/// The ordered Gumbel sequence of the version-3 encoder: `G_n = -ln(float32(S_n))` with
/// `S_n = E_0 + ... + E_n` in binary64 and `E_i = -ln(u_i)` (binary32) from the Philox Gumbel
/// stream of (seed, block id) (`kernels32::exponentials`). Chunk c of `GUMBEL_CHUNK` values sums
/// its exponentials from 0.0 and adds the left-to-right sum of the totals of chunks 0..c, so every
/// value is the same bits however the sequence is extended (the early stop extends it on demand).
pub(crate) struct Gumbels32 {
    key: [u32; 2],
    block_id: u64,
    n: usize,
    pub(crate) values: Vec<f32>,
    running: f64,
    isa: Isa,
}

impl Gumbels32 {
    pub(crate) fn new(seed: u64, block_id: u64, n: usize) -> Self {
        Gumbels32 {
            key: key_of(seed),
            block_id,
            n,
            values: Vec::with_capacity(n),
            running: 0.0,
            isa: Isa::detect(),
        }
    }

    /// Make G_0 .. G_{upto-1} available (rounded up to whole chunks, capped at n).
    pub(crate) fn ensure(&mut self, upto: usize) {
        let done = self.values.len();
        if upto <= done {
            return;
        }
        let target = upto.next_multiple_of(GUMBEL_CHUNK).min(self.n);
        let (key, block_id, isa) = (self.key, self.block_id, self.isa);
        let first_chunk = done / GUMBEL_CHUNK;
        self.values.resize(target, 0.0);
        let new = &mut self.values[done..];
        // Pass 1 (parallel): each chunk's exponentials and their running sums from 0.0.
        let mut partial = vec![0.0f64; new.len()];
        let totals: Vec<f64> = new
            .par_chunks_mut(GUMBEL_CHUNK)
            .zip(partial.par_chunks_mut(GUMBEL_CHUNK))
            .enumerate()
            .map(|(i, (chunk, sums))| {
                let first = ((first_chunk + i) * GUMBEL_CHUNK) as u64;
                exponentials(isa, key, block_id, first, chunk);
                let mut acc = 0.0f64;
                for (s, &e) in sums.iter_mut().zip(chunk.iter()) {
                    acc += f64::from(e);
                    *s = acc;
                }
                acc
            })
            .collect();
        // Pass 2: the chunks' offsets; pass 3 (parallel): the sums and their -ln.
        let mut offsets = Vec::with_capacity(totals.len());
        for t in totals {
            offsets.push(self.running);
            self.running += t;
        }
        new.par_chunks_mut(GUMBEL_CHUNK)
            .zip(partial.par_chunks(GUMBEL_CHUNK))
            .zip(offsets)
            .for_each(|((chunk, sums), offset)| {
                for (v, &s) in chunk.iter_mut().zip(sums) {
                    *v = (offset + s) as f32;
                }
                neg_ln(isa, chunk);
            });
    }
}

/// The dimension slices a batch is scored in: with `skip`, short first slices so that hopeless
/// candidates are dropped early, then doubling ones; all start at multiples of 4.
fn slices(d: usize, skip: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut j0, mut len) = (0, if skip { FIRST_SKIP_SLICE } else { SLICE });
    while j0 < d {
        let j1 = (j0 + len).min(d);
        out.push((j0, j1));
        j0 = j1;
        if skip {
            len = (2 * len).min(SLICE);
        }
    }
    out
}

/// Everything a scoring task reads.
pub(crate) struct Task<'a> {
    ratio: &'a Ratio32,
    gumbels: &'a [f32],
    seed: u64,
    block_id: u64,
    skip: bool,
    isa: Isa,
}

impl<'a> Task<'a> {
    /// A task of the fastest kernels for this CPU.
    pub(crate) fn new(
        ratio: &'a Ratio32,
        gumbels: &'a [f32],
        seed: u64,
        block_id: u64,
        skip: bool,
    ) -> Self {
        Task {
            ratio,
            gumbels,
            seed,
            block_id,
            skip,
            isa: Isa::detect(),
        }
    }

    /// Whether some lane of the group starting at `start` (candidates below `stop`) may still
    /// score above `best` after dimensions 0..j.
    fn may_win(&self, start: u32, sums: &[f32; LANES], j: usize, stop: usize, best: f64) -> bool {
        let start = start as usize;
        if start + LANES <= stop {
            let g: &[f32; LANES] = self.gumbels[start..start + LANES]
                .try_into()
                .expect("lanes");
            return self.ratio.lanes_may_win(sums, g, j, best as f32);
        }
        (start..stop).any(|k| {
            let sum = f64::from(sums[k - start]);
            self.ratio.score_bound(sum, j, f64::from(self.gumbels[k])) > best
        })
    }

    /// `best` and the group's candidates below `stop`, given their sums over all dimensions.
    fn pick(&self, start: u32, sums: &[f32; LANES], stop: usize, mut best: Best) -> Best {
        let start = start as usize;
        let lanes = LANES.min(stop - start);
        let threshold = best.score as f32;
        let scores: [f32; LANES] = std::array::from_fn(|lane| {
            self.ratio
                .score(sums[lane], self.gumbels[(start + lane).min(stop - 1)])
        });
        // Most groups hold no candidate above the best: one comparison of all lanes first. A tie
        // with the best never wins here: the best so far has a smaller index (tasks visit their
        // candidates in order, after those of earlier waves).
        if scores[..lanes].iter().any(|&s| s > threshold) {
            for (lane, &score) in scores[..lanes].iter().enumerate() {
                let cand = Best {
                    score: f64::from(score),
                    index: (start + lane) as u32,
                };
                best = Best::pick(best, cand);
            }
        }
        best
    }

    /// The best candidate of `start .. stop` and `best`, scoring batch by batch.
    fn run(&self, ws: &mut Workspace, start: usize, stop: usize, mut best: Best) -> Best {
        let d = self.ratio.dim();
        let slices = slices(d, self.skip);
        let groups = (BATCH_VECTORS / slices[0].1.min(SLICE)).max(1);
        let key = key_of(self.seed);
        let mut starts = Vec::with_capacity(groups);
        let mut acc = Vec::with_capacity(groups);
        for batch_start in (start..stop).step_by(groups * LANES) {
            let batch_stop = stop.min(batch_start + groups * LANES);
            starts.clear();
            starts.extend((batch_start..batch_stop).step_by(LANES).map(|k| k as u32));
            acc.clear();
            acc.resize(starts.len(), [0.0f32; LANES]);
            for &(j0, j1) in &slices {
                let batch = Batch {
                    key,
                    block_id: self.block_id,
                    starts: &starts,
                    j0,
                    j1,
                };
                batch_ratios(self.isa, ws, &batch, &self.ratio.k, &mut acc);
                if self.skip && j1 < d {
                    let mut kept = 0;
                    for i in 0..starts.len() {
                        if self.may_win(starts[i], &acc[i], j1, batch_stop, best.score) {
                            starts[kept] = starts[i];
                            acc[kept] = acc[i];
                            kept += 1;
                        }
                    }
                    starts.truncate(kept);
                    acc.truncate(kept);
                    if kept == 0 {
                        break;
                    }
                }
            }
            for (&s, sums) in starts.iter().zip(&acc) {
                best = self.pick(s, sums, batch_stop, best);
            }
        }
        best
    }
}

/// The best of `best` and the candidates of chunks `chunks` (chunk c: candidates c * CHUNK ..,
/// below n), scored in parallel tasks of fixed boundaries.
pub(crate) fn score_chunks32(
    task: &Task,
    n: usize,
    chunks: std::ops::Range<usize>,
    best: Best,
) -> Best {
    let first = chunks.start * CHUNK;
    let end = (chunks.end * CHUNK).min(n);
    assert!(task.gumbels.len() >= end);
    let size = TASK_CHUNKS * CHUNK;
    (first..end)
        .into_par_iter()
        .step_by(size)
        .map_init(Workspace::default, |ws, start| {
            task.run(ws, start, (start + size).min(end), best)
        })
        .reduce(|| best, Best::pick)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::normal32::ln;
    use crate::philox::{GUMBEL_STREAM, philox4x32_10};
    use crate::sampler::candidate_normals32;

    /// The Gumbel sequence as `Gumbels32` defines it, one value at a time with scalar code.
    pub(crate) fn reference_gumbels32(seed: u64, block_id: u64, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        let mut offset = 0.0f64;
        for c in 0..n.div_ceil(GUMBEL_CHUNK) {
            let (lo, hi) = (c * GUMBEL_CHUNK, ((c + 1) * GUMBEL_CHUNK).min(n));
            let e: Vec<f32> = (lo..hi)
                .map(|w| {
                    let counter = [
                        (w / 4) as u32,
                        GUMBEL_STREAM,
                        block_id as u32,
                        (block_id >> 32) as u32,
                    ];
                    let word = philox4x32_10(counter, key_of(seed))[w % 4];
                    -ln((2 * (word >> 9) + 1) as f32 / (1u32 << 24) as f32)
                })
                .collect();
            let mut partial = 0.0f64;
            for &v in &e {
                partial += f64::from(v);
                out.push(-ln((offset + partial) as f32));
            }
            offset += e.iter().fold(0.0f64, |a, &v| a + f64::from(v));
        }
        out
    }

    /// The score of every candidate, one candidate at a time, as this module defines it.
    pub(crate) fn reference_index32(b: &Block, seed: u64, block_id: u64, kappa: u32) -> u32 {
        let ratio = Ratio32::new(b).expect("a binary32 block");
        let g = reference_gumbels32(seed, block_id, 1 << kappa);
        let d = b.mu_q.len();
        let mut best = Best::NONE;
        for (k, &gk) in g.iter().enumerate() {
            let z = candidate_normals32(seed, block_id, d, k as u32);
            let mut sum = 0.0f32;
            for ((&zj, &c1), &c0) in z.iter().zip(&ratio.k.c1).zip(&ratio.k.c0) {
                let bj = c1 * zj + c0;
                sum += zj * zj - bj * bj;
            }
            let cand = Best {
                score: f64::from(ratio.score(sum, gk)),
                index: k as u32,
            };
            best = Best::pick(best, cand);
        }
        best.index
    }

    #[test]
    fn gumbels_match_the_scalar_reference() {
        for (seed, id, n) in [
            (1u64, 0u64, 10_000usize),
            (5, 77, 1 << 14),
            (9, 3, 4096),
            (2, 2, 33),
        ] {
            let mut g = Gumbels32::new(seed, id, n);
            // Extended in two steps, as the early stop does.
            g.ensure(5000.min(n));
            g.ensure(n);
            let got: Vec<u32> = g.values.iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = reference_gumbels32(seed, id, n)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert!(got == want, "seed {seed} block {id}");
            assert!(
                g.values
                    .windows(2)
                    .all(|w| f64::from(w[1]) <= f64::from(w[0]) + GUMBEL_SLACK)
            );
        }
    }

    #[test]
    fn term_bounds_hold_for_every_normal_of_a_sample() {
        use crate::normal32::normal_from_word;
        for (c1, c0) in [
            (4.0f32, 0.01f32),
            (1.0, 0.0),
            (0.3, -2.0),
            (25.0, 300.0),
            (1.0001, 1e-4),
        ] {
            let (t, _) = term_bound(f64::from(c1), f64::from(c0));
            for w in (0..1u32 << 24)
                .step_by(97)
                .chain([0x007F_FFFF, 0x807F_FFFF])
            {
                let z = normal_from_word(w);
                let b = c1 * z + c0;
                assert!(f64::from(z * z - b * b) <= t, "c1 {c1} c0 {c0} z {z}");
            }
        }
    }

    #[test]
    fn extreme_posteriors_are_left_to_binary64() {
        let (mu, s) = (vec![0.0f32; 3], vec![1.0f32; 3]);
        let narrow = vec![1e-30f32; 3];
        let b = Block {
            mu_q: &mu,
            sigma_q: &narrow,
            mu_p: &mu,
            sigma_p: &s,
        };
        assert!(Ratio32::new(&b).is_none());
        let usual = vec![0.05f32; 3];
        let b = Block {
            mu_q: &mu,
            sigma_q: &usual,
            mu_p: &mu,
            sigma_p: &s,
        };
        assert!(Ratio32::new(&b).is_some());
    }
}
