//! Which weights form each block (docs/format.md section 4.1), and the weights they decode to.
//!
//! A signal of P patches has P x D weights, flat index `p * D + i`. Per-patch blocks keep each
//! patch's weights to itself, so a patch's weights are regenerated on their own
//! (`patch_weights`) and decoding never holds more than a few patches. Spread blocks mix the
//! weights of all patches: `spread_weights` regenerates all of them at once, in parallel over
//! blocks and in bounded chunks (memory: the permutation, the weights and one chunk).

use rayon::prelude::*;

use crate::prior::Prior;
use crate::sampler::{Generator, candidate_sample};
use crate::shuffle;

/// The largest block dimension a bitstream may imply (section 3, check 7).
pub const MAX_BLOCK_DIM: usize = crate::search::MAX_BLOCK_DIM;

/// Blocks regenerated together in one parallel step of `spread_weights`.
const CHUNK_BLOCKS: usize = 4096;

/// The weights of patch `p` under per-patch blocks (block `p * J + j` is part j of patch p),
/// with the candidates of `generator`. `parts` is `prior.part_members()`; `out` has D entries.
pub fn patch_weights(
    generator: Generator,
    prior: &Prior,
    parts: &[Vec<u32>],
    seed: u64,
    patch: usize,
    indices: &[u32],
    out: &mut [f32],
) {
    let j_count = parts.len();
    let mut mean = Vec::new();
    let mut std = Vec::new();
    let mut sample = Vec::new();
    for (j, members) in parts.iter().enumerate() {
        let block = patch * j_count + j;
        gather(
            prior,
            members.iter().map(|&i| i as usize),
            &mut mean,
            &mut std,
        );
        sample.resize(members.len(), 0.0);
        candidate_sample(
            generator,
            seed,
            block as u64,
            u64::from(indices[block]),
            &mean,
            &std,
            &mut sample,
        );
        for (&i, &v) in members.iter().zip(&sample) {
            out[i as usize] = v;
        }
    }
}

/// The flat index range of the shuffled order that spread block `b` takes: `n` weights in
/// `blocks` blocks, `floor(b n / blocks) .. floor((b + 1) n / blocks)`.
pub fn spread_bounds(b: usize, n: usize, blocks: usize) -> std::ops::Range<usize> {
    let edge = |b: usize| ((b as u128 * n as u128) / blocks as u128) as usize;
    edge(b)..edge(b + 1)
}

/// The largest spread block of `n` weights in `blocks` blocks.
pub fn max_spread_block(n: usize, blocks: usize) -> usize {
    n.div_ceil(blocks)
}

/// All P x D weights under spread blocks, with the candidates of `generator`.
pub fn spread_weights(
    generator: Generator,
    prior: &Prior,
    seed: u64,
    num_patches: usize,
    indices: &[u32],
) -> Vec<f32> {
    let d = prior.num_params();
    let n = num_patches * d;
    let blocks = indices.len();
    let perm = shuffle::permutation(seed, n as u64).expect("n <= 2^27 was checked");
    let mut weights = vec![0.0f32; n];
    for first in (0..blocks).step_by(CHUNK_BLOCKS) {
        let chunk: Vec<(Vec<u32>, Vec<f32>)> = (first..blocks.min(first + CHUNK_BLOCKS))
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(mean, std), b| {
                    let mut members = perm[spread_bounds(b, n, blocks)].to_vec();
                    members.sort_unstable();
                    gather(prior, members.iter().map(|&f| f as usize % d), mean, std);
                    let mut sample = vec![0.0; members.len()];
                    candidate_sample(
                        generator,
                        seed,
                        b as u64,
                        u64::from(indices[b]),
                        mean,
                        std,
                        &mut sample,
                    );
                    (members, sample)
                },
            )
            .collect();
        for (members, sample) in chunk {
            for (&f, &v) in members.iter().zip(&sample) {
                weights[f as usize] = v;
            }
        }
    }
    weights
}

fn gather(
    prior: &Prior,
    params: impl Iterator<Item = usize>,
    mean: &mut Vec<f32>,
    std: &mut Vec<f32>,
) {
    mean.clear();
    std.clear();
    for i in params {
        mean.push(prior.mean[i]);
        std.push(prior.std[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_bounds_tile_the_weights_in_nearly_equal_blocks() {
        for (n, blocks) in [(10, 3), (3267 * 5, 213 * 5), (7, 7)] {
            let mut next = 0;
            for b in 0..blocks {
                let r = spread_bounds(b, n, blocks);
                assert_eq!(r.start, next);
                assert!(!r.is_empty() && r.len() <= max_spread_block(n, blocks));
                next = r.end;
            }
            assert_eq!(next, n);
        }
    }
}
