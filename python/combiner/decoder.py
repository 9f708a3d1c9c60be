"""Decoding: a bitstream and its prior to pixels or samples, by the Rust reconstruction.

The output is defined bit for bit by docs/format.md (sections 3 to 7) and computed by
`combiner-core`, so a bitstream decodes to the same samples on every machine and every number of
threads. Nothing here needs PyTorch: a decode-only install works without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from combiner import _core, bitstream
from combiner.bitstream import Header
from combiner.errors import PriorMismatchError
from combiner.media import Signal
from combiner.prior import Prior

__all__ = ["Decoded", "decode", "decode_weights", "rate_of"]

# Audio samples are 16-bit integers s on [-32767, 32767] (docs/format.md section 7.5).
AUDIO_SCALE = 32767.0


@dataclass(frozen=True)
class Decoded:
    """A decoded bitstream: its header and its samples, uint8 [H, W, C] (images) or int16 [T]
    (audio), exactly as docs/format.md section 7.5 defines them."""

    header: Header
    samples: np.ndarray

    def signal(self) -> Signal:
        """The samples on the encoder's [0, 1] scale (float32): b / 255 for images,
        (s / 32767 + 1) / 2 for audio. PSNR is measured on this scale."""
        if self.header.modality == "image":
            return Signal("image", self.samples.astype(np.float32) / np.float32(255.0))
        wave = self.samples.astype(np.float32) / np.float32(AUDIO_SCALE)
        return Signal("audio", (wave + np.float32(1.0)) / np.float32(2.0), self.header.sample_rate)

    def waveform(self) -> np.ndarray:
        """Audio as float32 on [-1, 1] (s / 32767). Raises ValueError for an image."""
        if self.header.modality != "audio":
            raise ValueError("waveform() is for audio; an image's samples are in .samples")
        return self.samples.astype(np.float32) / np.float32(AUDIO_SCALE)


def decode(data: bytes, prior: Prior, *, threads: int | None = None) -> Decoded:
    """Decode ``data`` with ``prior`` on ``threads`` threads (default: all cores).

    Raises a subclass of :class:`combiner.FormatError` for a malformed bitstream (or a signal
    above the weight limit), :class:`combiner.errors.PriorMismatchError` when the bitstream was
    encoded with another prior or does not fit it (kappa, modality, channels, block count), and
    :class:`combiner.PriorFormatError` for an invalid prior. The checks come before any weight is
    regenerated.
    """
    fields, samples = _core.decode(bytes(data), prior.to_bytes(), threads=threads)
    return Decoded(Header(**fields), samples)


def rate_of(header: Header, nbytes: int) -> float:
    """Bits per pixel (images) or kbit/s (audio) of a file of ``nbytes`` bytes."""
    if header.modality == "image":
        return 8.0 * nbytes / (header.height * header.width)
    return 8.0 * nbytes / (header.height / header.sample_rate) / 1000.0


def decode_weights(data: bytes, prior: Prior) -> tuple[Header, np.ndarray]:
    """The flat weights float32 [P, D] a bitstream regenerates, for inspection and tests
    (`decode` regenerates them inside the Rust reconstruction and does not call this).

    Raises :class:`combiner.errors.PriorMismatchError` when ``prior`` is not the bitstream's.
    """
    from combiner import blocks, rec
    from combiner.tiling import patch_grid

    header, indices = bitstream.unpack(data)
    if header.prior_hash != prior.content_hash()[:bitstream.PRIOR_HASH_LEN]:
        raise PriorMismatchError(f"the bitstream was encoded with prior {header.prior_id!r}, "
                                 f"not with {prior.kind.name or prior.hash_hex!r}")
    patch = prior.kind.patch_shape
    spatial = (header.height, header.width) if header.modality == "image" else (header.height,)
    P, D = int(np.prod(patch_grid(spatial, patch))), prior.config.num_params
    layout = blocks.layout(prior, P, header.spread_blocks, header.seed)
    block_ids = np.arange(len(indices))
    flat, sizes = layout.gather(block_ids)
    samples = rec.decode_blocks(prior.mean[flat % D], prior.std[flat % D], sizes, seed=header.seed,
                                block_ids=block_ids, indices=indices, kappa=header.kappa,
                                version=header.version)
    weights = np.zeros(P * D, dtype=np.float32)
    weights[flat] = samples
    return header, weights.reshape(P, D)
