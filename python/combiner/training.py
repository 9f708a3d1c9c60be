"""Training data for priors: fixed-size patches cut from a folder of images or audio clips.

Used by ``combiner learn-prior`` and the training scripts. Deterministic for a given seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from combiner.media import AUDIO_SUFFIXES, read

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_files(folder: str | os.PathLike, modality: str) -> list[Path]:
    """The image or audio files directly in ``folder``, sorted by name; ``ValueError`` if none."""
    suffixes = IMAGE_SUFFIXES if modality == "image" else AUDIO_SUFFIXES
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"no {modality} files in {folder}")
    return files


def random_patches(files: list[Path], patch: tuple[int, ...], per_file: int, seed: int,
                   flips: bool = False) -> np.ndarray:
    """``per_file`` random crops of shape ``patch`` from each file: [M, N, C] float32 values on
    [0, 1], N the patch's samples in row-major order.

    A signal exactly the patch size gives itself once; smaller signals are skipped. ``flips``
    (images): each crop is mirrored left-right with probability 1/2, a standard augmentation for
    natural photos. The flips are drawn from their own stream, so the crops' positions are the same
    with and without them.
    """
    rng = np.random.default_rng(seed)
    flip_rng = np.random.default_rng([seed, 1])
    out = []
    for path in files:
        values = read(path).values
        if values.ndim == 1:
            values = values[:, None]
        spatial = values.shape[: len(patch)]
        if any(s < p for s, p in zip(spatial, patch)):
            continue
        n = 1 if tuple(spatial) == tuple(patch) else per_file
        for _ in range(n):
            start = [int(rng.integers(0, s - p + 1)) for s, p in zip(spatial, patch)]
            crop = values[tuple(slice(a, a + p) for a, p in zip(start, patch))]
            if flips and len(patch) == 2 and flip_rng.random() < 0.5:
                crop = crop[:, ::-1]
            out.append(crop.reshape(-1, values.shape[-1]))
    if not out:
        raise ValueError("no training signal is as large as the patch")
    return np.stack(out).astype(np.float32)
