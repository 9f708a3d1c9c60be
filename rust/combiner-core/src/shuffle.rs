//! A portable seeded permutation: which weights share a block when blocks span patches.
//!
//! Encoder and decoder must cut the weights into the same blocks, so the permutation is part of
//! the bitstream format (docs/format.md, "Spread blocks"). It uses integer arithmetic only:
//!
//! * words: the ChaCha20 stream 0 of the key derived from (`PERMUTATION_DOMAIN`, `seed`), read as
//!   little-endian u64 words from word 0 (see [`crate::rng`]);
//! * a Fisher-Yates shuffle of `0..n`: for i = n-1 down to 1, swap positions i and j, with j
//!   uniform in 0..=i drawn from the next words by Lemire's multiply-and-reject method (unbiased:
//!   a word x gives j = (x * (i+1)) >> 64 unless the low 64 bits of that product fall below
//!   2^64 mod (i+1), in which case the next word is tried).

use crate::error::InputError;
use crate::rng::WordStream;

/// Domain tag of the permutation stream.
pub const PERMUTATION_DOMAIN: &[u8; 16] = b"combiner/perm/v1";

/// The largest permutation length: element values must fit in u32.
pub const MAX_PERMUTATION_LEN: u64 = 1 << 32;

/// The permutation of `0..n` for `seed`; see the module docs.
pub fn permutation(seed: u64, n: u64) -> Result<Vec<u32>, InputError> {
    if n > MAX_PERMUTATION_LEN {
        return Err(InputError::PermutationLength {
            got: n,
            max: MAX_PERMUTATION_LEN,
        });
    }
    let mut out: Vec<u32> = (0..n).map(|v| v as u32).collect();
    let mut words = WordStream::new(PERMUTATION_DOMAIN, seed, 0, 0);
    for i in (1..out.len()).rev() {
        let j = bounded(&mut words, i as u64 + 1);
        out.swap(i, j as usize);
    }
    Ok(out)
}

/// Uniform in 0..s (s >= 1), unbiased (Lemire 2019).
fn bounded(words: &mut WordStream, s: u64) -> u64 {
    let threshold = s.wrapping_neg() % s; // 2^64 mod s
    loop {
        let m = u128::from(words.next_word()) * u128::from(s);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_permutation() {
        for n in [0u64, 1, 2, 3, 10, 1000] {
            let mut p = permutation(7, n).unwrap();
            p.sort_unstable();
            assert_eq!(p, (0..n as u32).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn depends_on_the_seed_and_is_repeatable() {
        assert_eq!(permutation(1, 500).unwrap(), permutation(1, 500).unwrap());
        assert_ne!(permutation(1, 500).unwrap(), permutation(2, 500).unwrap());
    }

    #[test]
    fn every_position_is_reached_evenly() {
        // Element 0 of a length-4 permutation over 4000 seeds: each position about 1000 times.
        let mut counts = [0u32; 4];
        for seed in 0..4000 {
            let p = permutation(seed, 4).unwrap();
            counts[p.iter().position(|&v| v == 0).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (880..1120).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn bounded_rejects_the_biased_tail() {
        // s = 3: threshold = 2^64 mod 3 = 1, so only the word 0 (low product 0) is rejected.
        let mut w = WordStream::new(PERMUTATION_DOMAIN, 0, 0, 0);
        for _ in 0..100 {
            assert!(bounded(&mut w, 3) < 3);
        }
        assert_eq!(bounded(&mut w, 1), 0);
    }

    #[test]
    fn refuses_lengths_beyond_u32() {
        assert!(permutation(0, MAX_PERMUTATION_LEN + 1).is_err());
    }
}
