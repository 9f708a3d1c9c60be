//! The counter-based generator of format version 3: Philox4x32-10.
//!
//! Philox4x32-10 is the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random
//! numbers: as easy as 1, 2, 3" (SC 2011): a 10-round keyed bijection of a 128-bit counter. The
//! authors report that it passes the whole TestU01 BigCrush battery for every key with a wide
//! margin (7 rounds already pass; 10 is their recommended default and what Random123, cuRAND's
//! `Philox4_32_10` and most GPU frameworks use). It suits the candidate generator because:
//!
//! * any word is addressable: candidate k, dimension j of block b is one function call, so the
//!   decoder regenerates one candidate in O(d) and the search splits candidates over threads freely;
//! * its only nonlinear operation is a 32 x 32 -> 64-bit multiply, which AVX2 performs four at a
//!   time (`vpmuludq`), so eight candidates run in the lanes of one vector (ChaCha20 needs twenty
//!   rounds of 32-bit rotations, which AVX2 lacks, and Threefry more rounds than Philox);
//! * it is integer arithmetic only, hence the same bits on every platform.
//!
//! The mapping of our parameters to Philox's key and counter is part of the bitstream format
//! (docs/format.md, section 4, version 3):
//!
//! * key = (seed mod 2^32, seed >> 32);
//! * counter = (k, g, b mod 2^32, b >> 32) for candidate k (0 <= k < 2^20), dimension group
//!   g = j / 4 (0 <= g < 2^14) and block b; output word j mod 4 is dimension j's.
//!
//! Counter word 1 (g) stays below 2^14 for candidates; values from 2^16 up are left to other
//! streams of the same key (the reference encoder draws its Gumbel sequence from 2^31).

/// Multiplier of counter word 0.
pub const M0: u32 = 0xD251_1F53;
/// Multiplier of counter word 2.
pub const M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 between rounds (the golden ratio).
pub const W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 between rounds (sqrt(3) - 1).
pub const W1: u32 = 0xBB67_AE85;
/// Rounds of the bijection.
pub const ROUNDS: usize = 10;
/// Counter word 1 of the encoder's Gumbel stream (never a candidate's dimension group).
pub const GUMBEL_STREAM: u32 = 1 << 31;

/// The high and low 32 bits of the 64-bit product a * b.
#[inline(always)]
pub fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32-10 of `counter` under `key`: the four output words.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..ROUNDS {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, x0);
        let (hi1, lo1) = mulhilo(M1, x2);
        (x0, x1, x2, x3) = (hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0);
    }
    [x0, x1, x2, x3]
}

/// The Philox key of a bitstream's `seed`.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The counter of dimension group `group` (dimensions 4 group .. 4 group + 3) of candidate
/// `index` of block `block_id`.
#[inline]
pub fn candidate_counter(block_id: u64, index: u32, group: u32) -> [u32; 4] {
    [index, group, block_id as u32, (block_id >> 32) as u32]
}

/// The 32-bit word of dimension `dim` of candidate `index` of block `block_id` under `seed`.
pub fn candidate_word(seed: u64, block_id: u64, index: u32, dim: u32) -> u32 {
    let out = philox4x32_10(candidate_counter(block_id, index, dim / 4), key_of(seed));
    out[(dim % 4) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The known-answer vectors of Random123 (kat_vectors, "philox4x32 10"): counter, key, output.
    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];

    #[test]
    fn matches_the_random123_known_answers() {
        for (counter, key, want) in KAT {
            assert_eq!(philox4x32_10(counter, key), want);
        }
    }

    #[test]
    fn words_follow_the_counter_layout() {
        let (seed, block) = (0x0123_4567_89ab_cdef_u64, (7u64 << 32) | 9);
        for (index, dim) in [(0u32, 0u32), (5, 3), (5, 4), (1 << 19, 1023)] {
            let counter = [index, dim / 4, 9, 7];
            let want = philox4x32_10(counter, [0x89ab_cdef, 0x0123_4567])[(dim % 4) as usize];
            assert_eq!(candidate_word(seed, block, index, dim), want);
        }
    }
}
