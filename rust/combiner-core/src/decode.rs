//! Bitstream + prior -> output samples (docs/format.md sections 3, 4.1 and 7).
//!
//! Memory: the output, the indices and, per worker, one patch's weights, parameters and
//! activations; with spread blocks also the P x D weights and their permutation (8 bytes per
//! weight, at most 2^27 weights). Patches are computed in parallel in batches and written in
//! order, so the result does not depend on the number of threads.

use rayon::prelude::*;
use thiserror::Error;

use crate::container::{self, Header, Modality};
use crate::error::FormatError;
use crate::kernels::Isa;
use crate::layout;
use crate::network::{self, Scratch};
use crate::prior::{Prior, PriorFormatError};

/// The most weights (patches x parameters per patch) a signal may have (section 3, check 5).
pub const MAX_SIGNAL_WEIGHTS: u64 = 1 << 27;
/// Patches computed in one parallel batch before they are written to the output.
const BATCH_PATCHES: usize = 256;

/// Why a bitstream could not be decoded with a prior.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Prior(#[from] PriorFormatError),
    /// The bitstream is well formed but belongs to another prior.
    #[error("{0}")]
    PriorMismatch(String),
}

/// The decoded signal: 8-bit image samples `[H][W][C]` or 16-bit audio samples `[T]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Samples {
    Image(Vec<u8>),
    Audio(Vec<i16>),
}

/// Patches per axis of a signal (section 7.1): `[R, Q]` for images, `[P]` for audio.
pub fn patch_grid(header: &Header, patch: &[usize]) -> Vec<usize> {
    let spatial: Vec<usize> = match header.modality {
        Modality::Image => vec![header.height as usize, header.width as usize],
        Modality::Audio => vec![header.height as usize],
    };
    spatial
        .iter()
        .zip(patch)
        .map(|(&s, &p)| s.div_ceil(p))
        .collect()
}

/// Decode a bitstream with `prior` on the current rayon pool, the forward pass compiled for
/// `isa` (`Isa::detect()` in normal use; every `Isa` gives the same samples).
pub fn decode(data: &[u8], prior: &Prior, isa: Isa) -> Result<(Header, Samples), DecodeError> {
    let (header, indices) = container::unpack(data)?;
    let num_patches = check_against_prior(&header, indices.len(), prior)?;
    let generator = header.generator();
    let samples = if header.spread_blocks {
        let weights = layout::spread_weights(generator, prior, header.seed, num_patches, &indices);
        let d = prior.num_params();
        render(&header, prior, isa, num_patches, |p, out| {
            out.copy_from_slice(&weights[p * d..(p + 1) * d])
        })
    } else {
        let parts = prior.part_members();
        render(&header, prior, isa, num_patches, |p, out| {
            layout::patch_weights(generator, prior, &parts, header.seed, p, &indices, out)
        })
    };
    Ok((header, samples))
}

/// The output of the flat weights `[P * D]` of a signal with `header`'s shape (section 7),
/// without regenerating them: the reconstruction alone, for benchmarks and for callers that
/// hold the weights already. `header` must have passed `check_against_prior`.
pub fn reconstruct(header: &Header, prior: &Prior, isa: Isa, weights: &[f32]) -> Samples {
    let d = prior.num_params();
    let num_patches = weights.len() / d;
    assert_eq!(num_patches * d, weights.len(), "whole patches of D weights");
    render(header, prior, isa, num_patches, |p, out| {
        out.copy_from_slice(&weights[p * d..(p + 1) * d])
    })
}

/// The checks of section 3 against the prior, in order; returns the patch count.
pub fn check_against_prior(
    header: &Header,
    blocks: usize,
    prior: &Prior,
) -> Result<usize, DecodeError> {
    let mismatch = |why: String| Err(DecodeError::PriorMismatch(why));
    if header.prior_hash[..] != prior.hash[..8] {
        return mismatch(format!(
            "the bitstream was encoded with prior {:?} (hash {}), not with {:?} (hash {})",
            header.prior_id,
            hex(&header.prior_hash),
            prior.name,
            hex(&prior.hash[..8])
        ));
    }
    if header.kappa != prior.kappa {
        return mismatch(format!(
            "kappa {} differs from the prior's {}",
            header.kappa, prior.kappa
        ));
    }
    if header.modality != prior.modality {
        return mismatch(format!("the prior is for {}", prior.modality.name()));
    }
    if usize::from(header.channels) != prior.config.out_dim {
        return mismatch(format!(
            "the bitstream has {} channels, the prior's network outputs {}",
            header.channels, prior.config.out_dim
        ));
    }
    let num_patches: usize = patch_grid(header, &prior.patch_shape).iter().product();
    let weights = num_patches as u64 * prior.num_params() as u64;
    if weights > MAX_SIGNAL_WEIGHTS {
        return Err(FormatError::InvalidField {
            field: "shape",
            why: format!(
                "the signal needs {weights} weights ({num_patches} patches of {}); the limit is 2^27",
                prior.num_params()
            ),
        }
        .into());
    }
    let expected = num_patches * prior.num_parts;
    if blocks != expected {
        return mismatch(format!(
            "the bitstream has {blocks} blocks, the prior implies {expected}"
        ));
    }
    let largest = if header.spread_blocks {
        layout::max_spread_block(weights as usize, expected)
    } else {
        prior.part_members().iter().map(Vec::len).max().unwrap_or(0)
    };
    if largest > layout::MAX_BLOCK_DIM {
        return Err(FormatError::InvalidField {
            field: "block_count",
            why: format!("a block would have {largest} weights, more than 2^16"),
        }
        .into());
    }
    Ok(num_patches)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run the network of every patch (weights from `weights_of`) and assemble the output samples.
fn render(
    header: &Header,
    prior: &Prior,
    isa: Isa,
    num_patches: usize,
    weights_of: impl Fn(usize, &mut [f32]) + Sync,
) -> Samples {
    let config = &prior.config;
    let features = network::patch_features(config, &prior.patch_shape);
    let n = prior.patch_points();
    let (d, c) = (prior.num_params(), config.out_dim);
    let mix = prior.mix.as_deref();
    let grid = patch_grid(header, &prior.patch_shape);
    let total = header.height as usize * header.width as usize * c;
    let mut values = Values::new(header.modality, total);
    let mut batch: Vec<Vec<f32>> = Vec::new();
    for first in (0..num_patches).step_by(BATCH_PATCHES) {
        let last = num_patches.min(first + BATCH_PATCHES);
        batch.resize_with(last - first, Vec::new);
        batch.par_iter_mut().enumerate().for_each_init(
            || (vec![0.0f32; d], vec![0.0f32; d], Scratch::new(config)),
            |(theta, params, scratch), (k, out)| {
                weights_of(first + k, theta);
                network::effective_params(config, theta, mix, params);
                out.resize(n * c, 0.0);
                network::forward(isa, config, params, &features, n, scratch, out);
            },
        );
        for (k, out) in batch.iter().enumerate() {
            values.put(header, &grid, &prior.patch_shape, first + k, out, c);
        }
    }
    values.finish()
}

/// The output being assembled.
enum Values {
    Image(Vec<u8>),
    Audio(Vec<i16>),
}

impl Values {
    fn new(modality: Modality, total: usize) -> Values {
        match modality {
            Modality::Image => Values::Image(vec![0; total]),
            Modality::Audio => Values::Audio(vec![0; total]),
        }
    }

    /// Write patch `p`'s outputs (point-major, `c` per point) where they fall inside the signal.
    fn put(
        &mut self,
        header: &Header,
        grid: &[usize],
        patch: &[usize],
        p: usize,
        out: &[f32],
        c: usize,
    ) {
        match self {
            Values::Image(image) => {
                let (h, w) = (header.height as usize, header.width as usize);
                let (ph, pw) = (patch[0], patch[1]);
                let (row0, col0) = ((p / grid[1]) * ph, (p % grid[1]) * pw);
                for i in 0..ph.min(h.saturating_sub(row0)) {
                    let cols = pw.min(w - col0);
                    let src = &out[i * pw * c..(i * pw + cols) * c];
                    let start = ((row0 + i) * w + col0) * c;
                    for (dst, &y) in image[start..start + cols * c].iter_mut().zip(src) {
                        *dst = to_u8(y);
                    }
                }
            }
            Values::Audio(audio) => {
                let start = p * patch[0];
                let len = patch[0].min(audio.len() - start);
                for (dst, &y) in audio[start..start + len].iter_mut().zip(out) {
                    *dst = to_i16(y);
                }
            }
        }
    }

    fn finish(self) -> Samples {
        match self {
            Values::Image(v) => Samples::Image(v),
            Values::Audio(v) => Samples::Audio(v),
        }
    }
}

/// Clamp to [0, 1], NaN to 0 (section 7.5): `!(y >= 0.0)` is the document's test, true for NaN.
#[inline]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn clamp01(y: f32) -> f32 {
    if !(y >= 0.0) {
        0.0
    } else if y > 1.0 {
        1.0
    } else {
        y
    }
}

/// An output value as an 8-bit image sample (section 7.5).
#[inline]
pub fn to_u8(y: f32) -> u8 {
    (clamp01(y) * 255.0).round_ties_even() as u8
}

/// An output value as a 16-bit audio sample (section 7.5).
#[inline]
pub fn to_i16(y: f32) -> i16 {
    ((clamp01(y) * 2.0 - 1.0) * 32767.0).round_ties_even() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_clamped_and_rounded_ties_to_even() {
        assert_eq!(to_u8(f32::NAN), 0);
        assert_eq!(to_u8(-3.0), 0);
        assert_eq!(to_u8(7.0), 255);
        assert_eq!(to_u8(0.5), 128); // 127.5 -> 128 (even)
        assert_eq!(to_i16(f32::NAN), -32767);
        assert_eq!(to_i16(1.0), 32767);
        assert_eq!(to_i16(0.5), 0);
    }
}
