//! Candidate samples from the prior, regenerated identically by encoder and decoder.
//!
//! Two generators exist (docs/format.md, section 4), chosen by the bitstream's version:
//!
//! * [`Generator::ChaCha20`] (versions 1 and 2): candidate `k` of block `block_id` (dimension
//!   `d`) under `seed` is built from u64 words `k*d .. k*d + d` of the candidate stream (see
//!   `rng`): word -> open uniform -> AS241 normal `z` (binary64) -> `z32 = z as f32` (round to
//!   nearest).
//! * [`Generator::Philox`] (version 3): dimension j of candidate k is the 32-bit Philox word of
//!   `philox::candidate_word` -> `z32 = normal32::normal_from_word(word)`, binary32 throughout.
//!
//! Either way the sample is `x = m + s * z32`, evaluated in binary32 as one multiply and one
//! add, each rounded (never fused). These are the weights the decoder puts into the network, so
//! they are defined here once and used by both sides.

use crate::kernels::{Isa, normals_from_words};
use crate::normal32::normal_from_word;
use crate::philox::{candidate_counter, key_of, philox4x32_10};
use crate::rng::{CANDIDATE_DOMAIN, WordStream};

/// The candidate generator of a bitstream (docs/format.md, section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generator {
    /// Versions 1 and 2: ChaCha20 u64 words and the binary64 AS241 (PPND16) normal.
    ChaCha20,
    /// Version 3: Philox4x32-10 words and the binary32 PPND7 normal.
    Philox,
}

impl Generator {
    /// The generator of format version `version`, if the version exists.
    pub fn of_version(version: u8) -> Option<Generator> {
        match version {
            1 | 2 => Some(Generator::ChaCha20),
            3 => Some(Generator::Philox),
            _ => None,
        }
    }
}

/// A reader of consecutive candidates of one block, starting anywhere, as binary64 normals.
pub struct CandidateReader {
    source: Source,
    dim: usize,
    words: Vec<u64>,
    isa: Isa,
}

/// Where a reader's normals come from.
enum Source {
    /// The ChaCha20 word stream, positioned at the next candidate's first word.
    ChaCha20(Box<WordStream>),
    /// The version-3 generator: the next candidate's index (scalar code, one candidate at a time;
    /// the version-3 search has its own batch kernels).
    Philox { seed: u64, block_id: u64, next: u64 },
}

impl CandidateReader {
    /// Positioned at candidate `first` of `block_id`; `dim` is the block's dimension (>= 1).
    pub fn new(generator: Generator, seed: u64, block_id: u64, dim: usize, first: u64) -> Self {
        let source = match generator {
            Generator::ChaCha20 => {
                let word = first * dim as u64;
                Source::ChaCha20(Box::new(WordStream::new(
                    CANDIDATE_DOMAIN,
                    seed,
                    block_id,
                    word,
                )))
            }
            Generator::Philox => Source::Philox {
                seed,
                block_id,
                next: first,
            },
        };
        CandidateReader {
            source,
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
        match &mut self.source {
            Source::ChaCha20(stream) => {
                // Words are generated and transformed in L1-sized pieces (the word order is
                // unchanged).
                const PIECE: usize = 1024;
                self.words.resize(PIECE.min(out.len()), 0);
                for piece in out.chunks_mut(PIECE) {
                    let words = &mut self.words[..piece.len()];
                    stream.fill_words(words);
                    normals_from_words(self.isa, words, piece);
                }
            }
            Source::Philox {
                seed,
                block_id,
                next,
            } => {
                for candidate in out.chunks_mut(self.dim) {
                    let index = u32::try_from(*next).expect("version-3 indices are below 2^20");
                    let z = candidate_normals32(*seed, *block_id, self.dim, index);
                    for (o, v) in candidate.iter_mut().zip(z) {
                        *o = f64::from(v);
                    }
                    *next += 1;
                }
            }
        }
    }

    /// Reposition at candidate `first` of the same block, keeping the buffers.
    pub fn seek(&mut self, first: u64) {
        match &mut self.source {
            Source::ChaCha20(stream) => stream.seek(first * self.dim as u64),
            Source::Philox { next, .. } => *next = first,
        }
    }
}

/// Standard normals (binary64) of candidate `index` of a block under the ChaCha20 generator
/// (versions 1 and 2): `dim` values.
pub fn candidate_normals(seed: u64, block_id: u64, dim: usize, index: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(dim);
    CandidateReader::new(Generator::ChaCha20, seed, block_id, dim, index).next_normals(1, &mut out);
    out
}

/// Standard normals (binary32) of candidate `index` (below 2^20) of a block under the version-3
/// generator: `dim` values, one Philox call per four dimensions.
pub fn candidate_normals32(seed: u64, block_id: u64, dim: usize, index: u32) -> Vec<f32> {
    let key = key_of(seed);
    let mut out = Vec::with_capacity(dim);
    for group in 0..dim.div_ceil(4) {
        let words = philox4x32_10(candidate_counter(block_id, index, group as u32), key);
        let valid = (dim - 4 * group).min(4);
        out.extend(words[..valid].iter().map(|&w| normal_from_word(w)));
    }
    out
}

/// The prior sample `m + s * z32` for one dimension, exactly as the decoder computes it.
#[inline(always)]
pub fn scale_normal32(mean: f32, std: f32, z32: f32) -> f32 {
    let scaled = std * z32;
    mean + scaled
}

/// The prior sample `m + s * float32(z)` for one dimension (versions 1 and 2).
#[inline(always)]
pub fn scale_normal(mean: f32, std: f32, z: f64) -> f32 {
    scale_normal32(mean, std, z as f32)
}

/// Write candidate `index` of a block with prior (`mean`, `std`) into `out`. O(d). Version-3
/// indices are below 2^20 (the largest kappa is 20).
pub fn candidate_sample(
    generator: Generator,
    seed: u64,
    block_id: u64,
    index: u64,
    mean: &[f32],
    std: &[f32],
    out: &mut [f32],
) {
    let z: Vec<f32> = match generator {
        Generator::ChaCha20 => candidate_normals(seed, block_id, mean.len(), index)
            .into_iter()
            .map(|z| z as f32)
            .collect(),
        Generator::Philox => {
            let index = u32::try_from(index).expect("version-3 candidate indices are below 2^20");
            candidate_normals32(seed, block_id, mean.len(), index)
        }
    };
    for (((o, &m), &s), &zi) in out.iter_mut().zip(mean).zip(std).zip(&z) {
        *o = scale_normal32(m, s, zi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_matches_random_access() {
        let dim = 7;
        let mut reader = CandidateReader::new(Generator::ChaCha20, 11, 5, dim, 3);
        let mut buf = Vec::new();
        reader.next_normals(40, &mut buf);
        for k in 0..40u64 {
            let direct = candidate_normals(11, 5, dim, 3 + k);
            let from_reader = &buf[k as usize * dim..(k as usize + 1) * dim];
            assert_eq!(direct.as_slice(), from_reader);
        }
        let mut reader = CandidateReader::new(Generator::Philox, 11, 5, dim, 3);
        reader.next_normals(40, &mut buf);
        reader.seek(9);
        let mut again = Vec::new();
        reader.next_normals(1, &mut again);
        assert_eq!(again.as_slice(), &buf[6 * dim..7 * dim]);
        for k in 0..40u32 {
            let direct: Vec<f64> = candidate_normals32(11, 5, dim, 3 + k)
                .into_iter()
                .map(f64::from)
                .collect();
            assert_eq!(
                direct.as_slice(),
                &buf[k as usize * dim..(k as usize + 1) * dim]
            );
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
    fn version_3_normals_are_the_philox_words_transformed() {
        use crate::philox::candidate_word;
        for (seed, block, dim, index) in [
            (0u64, 0u64, 1usize, 0u32),
            (7, 1 << 40, 9, 12345),
            (u64::MAX, 3, 64, (1 << 20) - 1),
        ] {
            let z = candidate_normals32(seed, block, dim, index);
            assert_eq!(z.len(), dim);
            for (j, &v) in z.iter().enumerate() {
                let w = candidate_word(seed, block, index, j as u32);
                assert_eq!(v.to_bits(), normal_from_word(w).to_bits());
            }
        }
    }

    #[test]
    fn the_version_picks_the_generator() {
        assert_eq!(Generator::of_version(1), Some(Generator::ChaCha20));
        assert_eq!(Generator::of_version(2), Some(Generator::ChaCha20));
        assert_eq!(Generator::of_version(3), Some(Generator::Philox));
        assert_eq!(Generator::of_version(0), None);
        assert_eq!(Generator::of_version(4), None);
    }

    #[test]
    fn normals_have_unit_moments() {
        for generator in [Generator::ChaCha20, Generator::Philox] {
            let mut reader = CandidateReader::new(generator, 3, 0, 16, 0);
            let mut z = Vec::new();
            reader.next_normals(20_000, &mut z);
            let n = z.len() as f64;
            let mean = z.iter().sum::<f64>() / n;
            let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            assert!(mean.abs() < 0.01, "{generator:?} mean {mean}");
            assert!((var - 1.0).abs() < 0.01, "{generator:?} var {var}");
        }
    }
}
