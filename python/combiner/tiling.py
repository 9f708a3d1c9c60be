"""Cutting signals into equal-size patches and putting them back.

Images [H, W, C] are cut into a row-major grid of (ph, pw) patches; audio [T] or [T, C] into
chunks of length L. Every patch has the same size so that all patches share one INR architecture
and one coordinate grid. Edge patches that stick out of the signal are padded (reflection by
default) to full size and come with a validity weight of 0 on padded points, so the loss ignores
them; reassembly crops the padding away. Padding content only affects how easy the edge patch is
to fit, never the reconstruction.

Within a patch, points are flattened row-major (axis 0 slowest), matching `patch_coords`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["patch_grid", "patch_coords", "to_patches", "from_patches"]

_PAD_MODES = ("reflect", "edge", "constant")


def _check_patch(spatial: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    patch = tuple(int(p) for p in patch)
    if len(patch) not in (1, 2):
        raise ValueError(f"patch must have 1 (audio) or 2 (image) dims, got {patch}")
    if any(p < 1 for p in patch):
        raise ValueError(f"patch sizes must be >= 1, got {patch}")
    if len(spatial) < len(patch) or any(s < 1 for s in spatial[: len(patch)]):
        raise ValueError(f"signal shape {tuple(spatial)} does not fit patch {patch}")
    return patch


def patch_grid(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Number of patches along each patched axis: (rows, cols) for images, (chunks,) for audio.

    `shape` is the signal shape; only its first len(patch) axes are patched (trailing = channels).
    """
    patch = _check_patch(shape, patch)
    return tuple(math.ceil(int(s) / p) for s, p in zip(shape, patch))


def patch_coords(patch: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """[N, len(patch)] coordinates of the points of one patch, shared by all patches.

    Pixel/sample centres map to [-1, 1] per axis: index i of n -> -1 + 2 i / (n - 1) (0 if n = 1),
    i.e. torch.linspace(-1, 1, n). Row-major: the last axis varies fastest.
    """
    patch = _check_patch(patch, patch)
    axes = [torch.linspace(-1.0, 1.0, p, dtype=torch.float64) if p > 1 else torch.zeros(1, dtype=torch.float64)
            for p in patch]
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=-1).to(dtype)


def _as_numpy(x) -> tuple[np.ndarray, bool]:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy(), True
    return np.asarray(x), False


def to_patches(signal, patch: Sequence[int], pad_mode: str = "reflect"):
    """Cut a signal into patches.

    signal: image [H, W] / [H, W, C] or audio [T] / [T, C] (numpy or torch).
    Returns (values [P, N, C], weights [P, N]) with N = prod(patch), patches in row-major grid
    order, weights 1.0 on real points and 0.0 on padding. Same array type as the input
    (torch in -> torch out); weights are float32.
    """
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    arr, is_torch = _as_numpy(signal)
    patch = _check_patch(arr.shape, patch)
    k = len(patch)
    if arr.ndim == k:
        arr = arr[..., None]
    if arr.ndim != k + 1:
        raise ValueError(f"signal of shape {arr.shape} is not [{'H, W' if k == 2 else 'T'}(, C)]")
    grid = patch_grid(arr.shape, patch)
    pads = [(0, g * p - s) for g, p, s in zip(grid, patch, arr.shape)]
    # numpy's reflect mode reflects repeatedly when the pad exceeds the axis, but needs >= 2 samples.
    mode = pad_mode if not (pad_mode == "reflect" and min(arr.shape[:k]) < 2) else "edge"
    padded = np.pad(arr, pads + [(0, 0)], mode=mode)  # type: ignore[call-overload]
    valid = np.pad(np.ones(arr.shape[:k], dtype=np.float32), pads, mode="constant")
    C = arr.shape[-1]
    if k == 2:
        (R, Cc), (ph, pw) = grid, patch
        vals = padded.reshape(R, ph, Cc, pw, C).transpose(0, 2, 1, 3, 4).reshape(R * Cc, ph * pw, C)
        w = valid.reshape(R, ph, Cc, pw).transpose(0, 2, 1, 3).reshape(R * Cc, ph * pw)
    else:
        (n,), (L,) = grid, patch
        vals = padded.reshape(n, L, C)
        w = valid.reshape(n, L)
    vals, w = np.ascontiguousarray(vals), np.ascontiguousarray(w)
    if is_torch:
        return torch.from_numpy(vals), torch.from_numpy(w)
    return vals, w


def from_patches(patches, shape: Sequence[int], patch: Sequence[int]):
    """Inverse of `to_patches`: patches [P, N, C] -> signal of `shape` (padding cropped).

    `shape` is the original signal shape ([H, W], [H, W, C], [T] or [T, C]); a missing channel
    axis in `shape` is squeezed away again (C must then be 1).
    """
    arr, is_torch = _as_numpy(patches)
    shape = tuple(int(s) for s in shape)
    patch = _check_patch(shape, patch)
    k = len(patch)
    grid = patch_grid(shape, patch)
    P, N = int(np.prod(grid)), int(np.prod(patch))
    if arr.ndim != 3 or arr.shape[0] != P or arr.shape[1] != N:
        raise ValueError(f"expected patches [{P}, {N}, C], got {arr.shape}")
    C = arr.shape[2]
    if len(shape) == k + 1 and shape[-1] != C:
        raise ValueError(f"channel mismatch: shape {shape} vs patches with C={C}")
    if len(shape) == k and C != 1:
        raise ValueError(f"shape {shape} has no channel axis but patches have C={C}")
    if k == 2:
        (R, Cc), (ph, pw) = grid, patch
        full = arr.reshape(R, Cc, ph, pw, C).transpose(0, 2, 1, 3, 4).reshape(R * ph, Cc * pw, C)
        out = full[: shape[0], : shape[1]]
    else:
        out = arr.reshape(grid[0] * patch[0], C)[: shape[0]]
    out = np.ascontiguousarray(out.reshape(shape))
    return torch.from_numpy(out) if is_torch else out
