"""Relative entropy coding of weight blocks (A* coding over 2^kappa prior candidates).

Thin, validated NumPy front-end of the Rust search in ``combiner._core``. A block is a vector of
``d`` independent Gaussian weights with posterior ``N(mu_q, sigma_q^2)`` and prior
``N(mu_p, sigma_p^2)``. The encoder returns the index of the chosen prior candidate (``kappa``
bits) and the sample itself; the decoder regenerates that sample bit for bit from the prior, the
seed, the block id and the index, on any platform.

``version`` is the bitstream format version whose candidate generator is used (docs/format.md
section 4): 3 (the default: Philox4x32-10 and a binary32 normal transform, searched in binary32)
or 1 and 2 (ChaCha20 and a binary64 normal transform). Encoder and decoder must agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from combiner import _core

MAX_KAPPA: int = _core.MAX_KAPPA
FORMAT_VERSION: int = _core.FORMAT_VERSION


def _f32(a: object) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32).reshape(-1))


def _u64(a: object) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size and (arr.min() < 0):
        raise ValueError("sizes and block ids must be non-negative")
    return np.ascontiguousarray(arr.astype(np.uint64).reshape(-1))


def encode_block(
    mu_q: object,
    sigma_q: object,
    mu_p: object,
    sigma_p: object,
    *,
    seed: int,
    block_id: int,
    kappa: int = 16,
    early_stop: bool = True,
    threads: int | None = None,
    version: int = FORMAT_VERSION,
) -> tuple[int, np.ndarray]:
    """Code one block; returns ``(index, sample)`` with ``sample`` float32 of length d."""
    index, sample, _ = _core.encode_block(
        _f32(mu_q),
        _f32(sigma_q),
        _f32(mu_p),
        _f32(sigma_p),
        seed=seed,
        block_id=block_id,
        kappa=kappa,
        early_stop=early_stop,
        threads=threads,
        version=version,
    )
    return int(index), sample


def decode_block(
    mu_p: object, sigma_p: object, *, seed: int, block_id: int, index: int, kappa: int = 16,
    version: int = FORMAT_VERSION,
) -> np.ndarray:
    """Regenerate the sample of one block from its prior and transmitted index. O(d)."""
    return _core.decode_block(
        _f32(mu_p), _f32(sigma_p),
        seed=seed, block_id=block_id, index=int(index), kappa=kappa, version=version,
    )


@dataclass(frozen=True)
class BatchResult:
    """Result of :func:`encode_blocks`."""

    indices: np.ndarray  # uint32, one per block
    samples: np.ndarray  # float32, the blocks' samples concatenated
    scored: int  # candidates scored in total (fewer than blocks * 2^kappa with the early stop)


def encode_blocks(
    mu_q: object,
    sigma_q: object,
    mu_p: object,
    sigma_p: object,
    sizes: object,
    *,
    seed: int,
    block_ids: object,
    kappa: int = 16,
    early_stop: bool = True,
    threads: int | None = None,
    version: int = FORMAT_VERSION,
) -> BatchResult:
    """Code many independent blocks in one parallel call.

    ``mu_q`` ... ``sigma_p`` hold the blocks concatenated; ``sizes[i]`` is the length of block i
    and ``block_ids[i]`` its global id (ids must differ between blocks of one bitstream so that
    every block draws its own candidates).
    """
    indices, samples, scored = _core.encode_blocks(
        _f32(mu_q), _f32(sigma_q), _f32(mu_p), _f32(sigma_p),
        _u64(sizes), _u64(block_ids),
        seed=seed, kappa=kappa, early_stop=early_stop, threads=threads, version=version,
    )
    return BatchResult(indices=indices, samples=samples, scored=int(scored))


def decode_blocks(
    mu_p: object, sigma_p: object, sizes: object, *, seed: int, block_ids: object,
    indices: object, kappa: int = 16, version: int = FORMAT_VERSION,
) -> np.ndarray:
    """Regenerate many blocks; returns their samples concatenated (float32)."""
    idx = np.asarray(indices)
    if idx.size and (idx.min() < 0 or idx.max() >= 2**kappa):
        raise ValueError(f"indices must be in [0, 2^{kappa})")
    return _core.decode_blocks(
        _f32(mu_p), _f32(sigma_p), _u64(sizes), _u64(block_ids),
        np.ascontiguousarray(idx.astype(np.uint32).reshape(-1)), seed=seed, kappa=kappa,
        version=version,
    )


def candidate_normals(
    *, seed: int, block_id: int, dim: int, index: int, version: int = FORMAT_VERSION
) -> np.ndarray:
    """The standard normals behind candidate ``index`` (for golden vectors and tests): float32
    for version 3, float64 for versions 1 and 2."""
    return _core.candidate_normals(
        seed=seed, block_id=block_id, dim=dim, index=index, version=version
    )
