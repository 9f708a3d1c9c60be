//! Candidate samples from the prior, regenerated identically by encoder and decoder.
//!
//! Candidate `k` of block `block_id` (dimension `d`) under `seed` is built from u64 words
//! `k*d .. k*d + d` of the candidate stream (see `rng`): word -> open uniform -> AS241 normal
//! `z` (binary64) -> `z32 = z as f32` (round to nearest) -> sample `x = m + s * z32`, evaluated
//! in binary32 as one multiply and one add, each rounded (never fused). These are the weights the
//! decoder puts into the network, so they are defined here once and used by both sides.

use crate::kernels::{Isa, normals_from_words};
use crate::rng::{CANDIDATE_DOMAIN, WordStream};

/// A reader of consecutive candidates of one block, starting anywhere.
pub struct CandidateReader {
    stream: WordStream,
    dim: usize,
    words: Vec<u64>,
    isa: Isa,
}

impl CandidateReader {
    /// Positioned at candidate `first` of `block_id`; `dim` is the block's dimension (>= 1).
    pub fn new(seed: u64, block_id: u64, dim: usize, first: u64) -> Self {
        let word = first * dim as u64;
        CandidateReader {
            stream: WordStream::new(CANDIDATE_DOMAIN, seed, block_id, word),
            dim,
            words: Vec::new(),
            isa: Isa::detect(),
        }
    }

    /// The standard normals of the next `count` candidates, candidate-major (`count * dim`).
    pub fn next_normals(&mut self, count: usize, out: &mut Vec<f64>) {
        out.resize(count * self.dim, 0.0);
        self.fill_normals(out);
    }

    /// Fill `out` (a whole number of candidates) with the normals of the next candidates.
    pub fn fill_normals(&mut self, out: &mut [f64]) {
        debug_assert_eq!(out.len() % self.dim, 0);
        // Words are generated and transformed in L1-sized pieces (the word order is unchanged).
        const PIECE: usize = 1024;
        self.words.resize(PIECE.min(out.len()), 0);
        for piece in out.chunks_mut(PIECE) {
            let words = &mut self.words[..piece.len()];
            self.stream.fill_words(words);
            normals_from_words(self.isa, words, piece);
        }
    }

    /// Reposition at candidate `first` of the same block, keeping the buffers.
    pub fn seek(&mut self, first: u64) {
        self.stream.seek(first * self.dim as u64);
    }
}

/// Standard normals (binary64) of candidate `index` of a block: `dim` values.
pub fn candidate_normals(seed: u64, block_id: u64, dim: usize, index: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(dim);
    CandidateReader::new(seed, block_id, dim, index).next_normals(1, &mut out);
    out
}

/// The prior sample `m + s * z32` for one dimension, exactly as the decoder computes it.
#[inline(always)]
pub fn scale_normal(mean: f32, std: f32, z: f64) -> f32 {
    let z32 = z as f32;
    let scaled = std * z32;
    mean + scaled
}

/// Write candidate `index` of a block with prior (`mean`, `std`) into `out`. O(d).
pub fn candidate_sample(
    seed: u64,
    block_id: u64,
    index: u64,
    mean: &[f32],
    std: &[f32],
    out: &mut [f32],
) {
    let z = candidate_normals(seed, block_id, mean.len(), index);
    for (((o, &m), &s), &zi) in out.iter_mut().zip(mean).zip(std).zip(&z) {
        *o = scale_normal(m, s, zi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_matches_random_access() {
        let dim = 7;
        let mut reader = CandidateReader::new(11, 5, dim, 3);
        let mut buf = Vec::new();
        reader.next_normals(40, &mut buf);
        for k in 0..40u64 {
            let direct = candidate_normals(11, 5, dim, 3 + k);
            let from_reader = &buf[k as usize * dim..(k as usize + 1) * dim];
            assert_eq!(direct.as_slice(), from_reader);
        }
    }

    #[test]
    fn blocks_and_seeds_get_different_candidates() {
        let a = candidate_normals(1, 0, 8, 0);
        assert_ne!(a, candidate_normals(1, 1, 8, 0));
        assert_ne!(a, candidate_normals(2, 0, 8, 0));
        assert_ne!(a, candidate_normals(1, 0, 8, 1));
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut reader = CandidateReader::new(3, 0, 16, 0);
        let mut z = Vec::new();
        reader.next_normals(20_000, &mut z);
        let n = z.len() as f64;
        let mean = z.iter().sum::<f64>() / n;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }
}
