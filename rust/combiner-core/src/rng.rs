//! Seeded, seekable ChaCha20 keystreams.
//!
//! Every random number `combiner` shares between encoder and decoder comes from the RFC 8439
//! ChaCha20 block function as implemented by `rand_chacha` (pinned to an exact version). The
//! mapping from our parameters to ChaCha's key, stream and position is ours and is part of the
//! bitstream format (docs/format.md, "Candidate generation"):
//!
//! * key (32 bytes) = 16-byte ASCII domain tag, then the 64-bit `seed` little-endian, then 8 zero
//!   bytes. The domain tag separates the candidate stream from the encoder-only Gumbel stream.
//! * stream (ChaCha's 64-bit nonce, words 14-15 of the state) = the global block id.
//! * position: the stream is read as little-endian u64 words (two consecutive 32-bit ChaCha
//!   output words, low word first); word `w` starts at 32-bit word offset `2 * w`.
//!
//! Seeking is O(1): a reader for word `w` sets the 64-bit block counter to `w / 8` and skips the
//! remainder, so candidate k never requires generating candidates 0..k-1.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Domain tag of the prior-candidate stream (shared by encoder and decoder).
pub const CANDIDATE_DOMAIN: &[u8; 16] = b"combiner/cand/v1";
/// Domain tag of the encoder-only stream that drives the ordered Gumbel sequence.
pub const GUMBEL_DOMAIN: &[u8; 16] = b"combiner/gumb/v1";

/// The ChaCha20 key for `seed` under a domain tag.
pub fn derive_key(domain: &[u8; 16], seed: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(domain);
    key[16..24].copy_from_slice(&seed.to_le_bytes());
    key
}

/// A reader of little-endian u64 words from one ChaCha20 stream, positioned anywhere.
pub struct WordStream {
    rng: ChaCha20Rng,
}

impl WordStream {
    /// Stream `stream` of the key derived from (`domain`, `seed`), positioned at u64 word `word`.
    pub fn new(domain: &[u8; 16], seed: u64, stream: u64, word: u64) -> Self {
        Self::from_key(derive_key(domain, seed), stream, word)
    }

    /// Stream `stream` of a raw 32-byte key, positioned at u64 word `word`.
    pub fn from_key(key: [u8; 32], stream: u64, word: u64) -> Self {
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_stream(stream);
        rng.set_word_pos(u128::from(word) * 2);
        WordStream { rng }
    }

    /// Reposition the same stream at u64 word `word`.
    pub fn seek(&mut self, word: u64) {
        self.rng.set_word_pos(u128::from(word) * 2);
    }

    /// Direct access to the underlying generator (test vectors need 32-bit positions).
    pub fn rng_mut(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// The next u64 word.
    #[inline]
    pub fn next_word(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Fill `out` with the next `out.len()` words.
    pub fn fill_words(&mut self, out: &mut [u64]) {
        // Byte-wise fill then little-endian decode: identical to repeated `next_word` (both read
        // the keystream bytes in order, low 32-bit word first) but lets the generator work in
        // whole 4-block batches. The bytes land directly in `out`'s memory; decoding them in
        // place is a no-op on little-endian targets.
        // SAFETY: any byte pattern is a valid u64, and the byte view covers exactly `out`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                out.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(out),
            )
        };
        self.rng.fill_bytes(bytes);
        for w in out.iter_mut() {
            *w = u64::from_le(*w);
        }
    }
}

/// Map a u64 word to a uniform double strictly inside (0, 1): u = (k + 1/2) * 2^-52 with k the
/// top 52 bits of the word. Every step is exact in binary64 (k + 1/2 needs 53 significant bits),
/// so the result is identical everywhere; u is never 0 or 1, and `!word` maps exactly to 1 - u,
/// which makes the normal transform exactly antisymmetric.
#[inline]
pub fn word_to_open_uniform(word: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 52) as f64;
    ((word >> 12) as f64 + 0.5) * SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_words_equals_next_word() {
        let mut a = WordStream::new(CANDIDATE_DOMAIN, 7, 3, 5);
        let mut b = WordStream::new(CANDIDATE_DOMAIN, 7, 3, 5);
        let mut buf = vec![0u64; 203];
        a.fill_words(&mut buf);
        for w in buf {
            assert_eq!(w, b.next_word());
        }
    }

    #[test]
    fn seeking_matches_sequential_reading() {
        let mut seq = WordStream::new(CANDIDATE_DOMAIN, 42, 9, 0);
        let words: Vec<u64> = (0..300).map(|_| seq.next_word()).collect();
        for start in [0u64, 1, 7, 8, 9, 31, 32, 33, 150, 299] {
            let mut s = WordStream::new(CANDIDATE_DOMAIN, 42, 9, start);
            assert_eq!(s.next_word(), words[start as usize], "word {start}");
        }
    }

    #[test]
    fn uniform_is_open_and_symmetric() {
        assert!(word_to_open_uniform(0) > 0.0);
        assert!(word_to_open_uniform(u64::MAX) < 1.0);
        for w in [0u64, 1, 12345, u64::MAX / 3, u64::MAX] {
            assert_eq!(word_to_open_uniform(w), 1.0 - word_to_open_uniform(!w));
        }
    }
}
