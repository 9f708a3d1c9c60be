"""Posterior fitting: beta-ELBO with per-block beta control (COMBINER test-time training).

Loss for patch p (summed over patches, so each patch's optimisation does not depend on how many
patches share the batch):

    L_p = MSE_p + sum_j beta[p, j] * KL_p,j

MSE_p is the validity-weighted mean of squared errors over the patch's points and channels (values
on [0, 1]); KL_p,j is the closed-form KL in nats of the parameters of block j of patch p, where
`block_index[D]` maps every flat parameter to its block (the same partition for every patch).

The training step is free of host synchronisation (no .item(), no data-dependent shapes): beta
control uses torch.where on device tensors, random subsets have a fixed size, so the step could be
captured in a CUDA graph. Randomness comes only from an explicit torch.Generator.
"""

from __future__ import annotations

import math
import shutil
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from .inr import BayesianINR, Noise, fourier_features, noise_pool
from .options import LrSchedule

__all__ = ["compile_pays", "compiled_elbo", "make_pool", "pick_device",
           "as_prior_tensors", "block_kl", "weighted_mse", "beta_elbo", "fit", "evaluate"]

LN2 = math.log(2.0)


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """`preferred` if given (e.g. "cpu", "cuda:1"), else "cuda" when available, else "cpu"."""
    if preferred is not None:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_prior_tensors(prior: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    """Accept a `Prior` (anything with .mean/.std) or a (mean, std) pair; return float32 tensors."""
    if hasattr(prior, "mean") and hasattr(prior, "std"):
        mean, std = prior.mean, prior.std
    else:
        mean, std = prior
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std = torch.as_tensor(std, dtype=torch.float32, device=device)
    return mean, std


def block_kl(kl: Tensor, block_index: Tensor, num_blocks: int) -> Tensor:
    """Per-parameter KL [P, D] -> per-block KL.

    block_index [D] (every patch partitioned alike): [P, J], a scatter-add along D.
    block_index [P, D] (blocks that span patches, ids 0..n-1 over the whole batch): [1, n].
    """
    if block_index.ndim == 2:
        out = torch.zeros((1, num_blocks), dtype=kl.dtype, device=kl.device)
        return out.index_add(1, block_index.reshape(-1), kl.reshape(1, -1))
    out = torch.zeros((kl.shape[0], num_blocks), dtype=kl.dtype, device=kl.device)
    return out.index_add(1, block_index, kl)


def weighted_mse(pred: Tensor, target: Tensor, weights: Tensor | None) -> Tensor:
    """Per-patch MSE [P] over points and channels; `weights` [P, N] (0 = padding) or None."""
    se = (pred - target).pow(2).mean(dim=-1)  # [P, N], mean over channels
    if weights is None:
        return se.mean(dim=-1)
    return (se * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)


def beta_elbo(
    model: BayesianINR,
    feats: Tensor,
    targets: Tensor,
    weights: Tensor | None,
    prior_mean: Tensor,
    prior_std: Tensor,
    block_index: Tensor,
    beta: Tensor,
    eps: list[Tensor],
    noise: Noise = "local",
) -> tuple[Tensor, Tensor, Tensor]:
    """(scalar loss, mse [P], block KL [P, J] in nats) for one stochastic forward pass on
    Fourier features ``feats`` [N, F] (`combiner.inr.fourier_features` of the points) with the
    normals ``eps`` (`BayesianINR.draw_noise`). A pure function of its inputs."""
    pred = model.forward_features(feats, eps, noise)
    mse = weighted_mse(pred, targets, weights)
    kl_blocks = block_kl(model.kl(prior_mean, prior_std), block_index, beta.shape[1])
    if block_index.ndim == 2:  # blocks span patches: one rate term for the whole batch
        loss = mse.sum() + (beta * kl_blocks).sum()
    else:  # blocks per patch: the same sum, patch by patch, the order its pinned bitstreams were fitted in
        loss = (mse + (beta * kl_blocks).sum(-1)).sum()
    return loss, mse, kl_blocks


_COMPILED: Any = None
# Point-steps (points per step x steps) above which compiling pays on a CPU: compiling takes
# 10-25 s, and saves about 0.8 microseconds per point-step on one core with the photo settings
# (benches/profile_fit.py).
COMPILE_MIN_POINT_STEPS = 20_000_000


def compile_pays(device: torch.device, points_per_step: int, steps: int) -> bool:
    """Whether `fit(compile=True)` is expected to save time: on a CPU with a C++ compiler
    (TorchInductor's code generator needs one) for a fit of at least COMPILE_MIN_POINT_STEPS."""
    if device.type != "cpu" or points_per_step * steps < COMPILE_MIN_POINT_STEPS:
        return False
    return any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++"))


def compiled_elbo() -> Any:
    """`beta_elbo` through `torch.compile` (TorchInductor), made once per process.

    On a CPU Inductor fuses the elementwise work of a step (sine, its derivative, the noise, the
    squared error, the KL) into a few vectorised loops around the BLAS matmuls: 1.3-1.6x fewer
    seconds per step (benches/profile_fit.py). The first step of a new shape
    compiles (seconds to tens of seconds; Inductor caches the code on disk for later processes).
    Same values as `beta_elbo` up to float rounding.
    """
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(beta_elbo, dynamic=False)
    return _COMPILED


def make_pool(model: BayesianINR, points_per_patch: int, noise: Noise | tuple[Noise, ...] = "local",
              weight_samples: int = 1, seed: int = 0) -> Tensor:
    """A noise pool (`combiner.inr.noise_pool`) large enough for `fit` on ``points_per_patch``
    points of each of the model's patches with each of the ``noise`` modes (one or a tuple),
    on the model's device; drawn from ``seed``."""
    P, D = model.mu.shape
    width = max(o for _, o in model.config.layer_shapes)
    modes = (noise,) if isinstance(noise, str) else noise
    largest = max(P * weight_samples * D if mode == "weights" else P * points_per_patch * width
                  for mode in modes)
    generator = torch.Generator(device=model.mu.device).manual_seed(seed)
    return noise_pool(largest, generator, model.mu.device)


class _PointSubsets:
    """Each step's subset of points of the targets [P, N, C] and weights [P, N], taken from
    point-major copies ([N, P, ...]): one contiguous ``index_select`` of whole rows, where
    advanced indexing along dim 1 is about 10x slower on a CPU (about 4 ms of a 73 ms Kodak step on
    two threads)."""

    def __init__(self, targets: Tensor, weights: Tensor | None) -> None:
        self._targets = targets.transpose(0, 1).contiguous()
        self._weights = None if weights is None else weights.transpose(0, 1).contiguous()

    def take(self, idx: Tensor) -> tuple[Tensor, Tensor | None]:
        """(targets[:, idx], weights[:, idx]), contiguous."""
        t = self._targets.index_select(0, idx).transpose(0, 1).contiguous()
        if self._weights is None:
            return t, None
        return t, self._weights.index_select(0, idx).transpose(0, 1).contiguous()


def _expand_beta(beta: float | Tensor, P: int, J: int, device: torch.device) -> Tensor:
    b = torch.as_tensor(beta, dtype=torch.float32, device=device)
    if b.ndim == 0:
        b = b.expand(P, J)
    elif b.ndim == 1:
        b = b.expand(P, J) if b.shape[0] == J else b[:, None].expand(P, J)
    if b.shape != (P, J):
        raise ValueError(f"beta must broadcast to [P={P}, J={J}], got {tuple(b.shape)}")
    return b.clone()


def fit(
    model: BayesianINR,
    coords: Tensor,
    targets: Tensor,
    prior: Any,
    block_index: Tensor,
    *,
    steps: int,
    lr: float,
    beta: float | Tensor,
    kappa_bits: float = 16.0,
    target_bits: float | None = None,
    band_bits: float = 0.2,
    beta_factor: float = 1.1,
    control_every: int = 100,
    control_start: float = 0.1,
    beta_control: bool = True,
    lr_decay_at: float = 0.8,
    lr_schedule: LrSchedule = "step",
    fixed_mask: Tensor | None = None,
    fixed_values: Tensor | None = None,
    weights: Tensor | None = None,
    pixel_fraction: float = 1.0,
    seed: int = 0,
    generator: torch.Generator | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    noise: Noise = "local",
    weight_samples: int = 1,
    pool: Tensor | None = None,
    compile: bool = False,
    progress: bool = False,
) -> Tensor:
    """Fit the posteriors of `model` to `targets` [P, N, out] at `coords` [N, in] with Adam.

    prior: `Prior` or (mean, std), each [D] or [P, D]. block_index: LongTensor [D] in 0..J-1, J =
    max + 1. beta: scalar, [J], [P] or [P, J] starting value. Returns the final beta [P, J].
    With block_index [P, D] (blocks spanning patches, ids 0..n-1) beta and the result are [1, n]
    and the rate term is summed over the batch, so the patches share one rate budget.

    Beta control (if `beta_control`): from `control_start * steps` on, every `control_every` steps,
    each block's KL in bits is compared with `target_bits` (default kappa_bits - 0.5): above
    target + band -> beta *= beta_factor, below target - band -> beta /= beta_factor. Blocks whose
    parameters are all fixed are left alone. `lr_schedule` "step": the learning rate halves at
    `lr_decay_at * steps`; "cosine": it follows lr * (1 + cos(pi * step / steps)) / 2 (Loshchilov
    and Hutter 2017, without restarts).

    fixed_mask / fixed_values [P, D]: if given, installed on the model first (see
    `BayesianINR.set_fixed`); otherwise the model's current fixed set is used.
    pixel_fraction < 1: each step uses a random subset of round(fraction * N) points, the same
    subset for every patch. Randomness comes from `generator` if given, else a fresh generator on
    the model's device seeded with `seed` (CPU runs are bit-reproducible).
    `optimizer`: reuse an existing Adam (progressive refinement); a new one is made otherwise.
    `noise`: how each step draws the network (`BayesianINR.forward_features`); with "weights",
    `weight_samples` draws per patch and step (the points per step are rounded down to a
    multiple of it). `pool`: take each step's normals as windows of this pool (`make_pool`)
    instead of drawing them afresh.
    `compile`: run the loss and its gradient through `torch.compile` (`compiled_elbo`).
    """
    device = model.mu.device
    P, D = model.mu.shape
    if targets.shape[:2] != (P, coords.shape[-2]):
        raise ValueError(f"targets {tuple(targets.shape)} do not match P={P}, N={coords.shape[-2]}")
    block_index = torch.as_tensor(block_index, dtype=torch.long, device=device)
    if block_index.shape not in ((D,), (P, D)):
        raise ValueError(f"block_index must be [D={D}] or [P={P}, D], got {tuple(block_index.shape)}")
    J = int(block_index.max()) + 1
    if int(block_index.min()) < 0:
        raise ValueError("block_index must be non-negative")
    if fixed_mask is not None:
        if fixed_values is None:
            raise ValueError("fixed_values is required with fixed_mask")
        model.set_fixed(fixed_mask, fixed_values)
    prior_mean, prior_std = as_prior_tensors(prior, device)
    coords = coords.to(device=device, dtype=torch.float32)
    feats = fourier_features(coords, model.freqs)  # fixed points: computed once, not every step
    targets = targets.to(device=device, dtype=torch.float32)
    if weights is not None:
        weights = weights.to(device=device, dtype=torch.float32)
    beta_t = _expand_beta(beta, P if block_index.ndim == 1 else 1, J, device)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(seed)
    if optimizer is None:
        optimizer = torch.optim.Adam([model.mu, model.rho], lr=lr)
    else:
        for g in optimizer.param_groups:
            g["lr"] = lr

    # Blocks with no free parameter left: their KL is exactly 0, control must not drive beta to 0.
    free_per_block = block_kl((~model.fixed_mask).to(torch.float32), block_index, J)
    controllable = free_per_block > 0
    target = (kappa_bits - 0.5) if target_bits is None else target_bits
    hi, lo = (target + band_bits) * LN2, (target - band_bits) * LN2  # compare in nats: no division
    N = coords.shape[-2]
    n_sub = max(1, int(round(N * pixel_fraction))) if pixel_fraction < 1.0 else N
    samples = weight_samples if noise == "weights" else 1
    if n_sub % samples:
        n_sub = max(samples, n_sub - n_sub % samples)
        if n_sub > N:
            raise ValueError(f"{N} points cannot be split among {samples} weight samples")
    decay_step = int(lr_decay_at * steps)
    start_step = int(control_start * steps)

    subsets = _PointSubsets(targets, weights) if n_sub < N else None
    elbo = compiled_elbo() if compile else beta_elbo
    model.train()
    bar = tqdm(range(steps), disable=not progress, desc="fit", leave=False)
    for step in bar:
        if lr_schedule == "cosine":
            for g in optimizer.param_groups:
                g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        elif step == decay_step and step > 0:
            for g in optimizer.param_groups:
                g["lr"] = lr * 0.5
        if subsets is not None:
            idx = torch.randperm(N, generator=generator, device=device)[:n_sub]
            f, (t, w) = feats[..., idx, :], subsets.take(idx)
        else:
            f, t, w = feats, targets, weights
        optimizer.zero_grad(set_to_none=True)
        eps = model.draw_noise(f.shape[-2], generator, noise, samples, pool)
        loss, mse, kl_blocks = elbo(model, f, t, w, prior_mean, prior_std, block_index, beta_t, eps, noise)
        loss.backward()
        optimizer.step()
        if beta_control and step >= start_step and (step - start_step) % control_every == 0:
            with torch.no_grad():
                kl = kl_blocks.detach()
                up = controllable & (kl > hi)
                down = controllable & (kl < lo)
                beta_t = torch.where(up, beta_t * beta_factor, torch.where(down, beta_t / beta_factor, beta_t))
        if progress and step % max(1, control_every) == 0:
            bar.set_postfix(mse=f"{mse.mean().item():.2e}", kl_bits=f"{kl_blocks.sum().item() / LN2 / P:.0f}")
    return beta_t


@torch.no_grad()
def evaluate(
    model: BayesianINR,
    coords: Tensor,
    targets: Tensor,
    prior: Any,
    block_index: Tensor | None = None,
    weights: Tensor | None = None,
) -> dict[str, Tensor]:
    """Deterministic diagnostics: posterior-mean MSE / PSNR per patch and KL (bits) per block.

    PSNR is for values on [0, 1] (peak 1) of the posterior-mean network, per patch.
    """
    device = model.mu.device
    prior_mean, prior_std = as_prior_tensors(prior, device)
    coords = coords.to(device=device, dtype=torch.float32)
    targets = targets.to(device=device, dtype=torch.float32)
    if weights is not None:
        weights = weights.to(device=device, dtype=torch.float32)
    mse = weighted_mse(model.forward_mean(coords), targets, weights)
    kl_bits = model.kl(prior_mean, prior_std) / LN2
    if block_index is None:
        block_index = torch.zeros(model.mu.shape[1], dtype=torch.long, device=device)
    block_index = torch.as_tensor(block_index, dtype=torch.long, device=device)
    blocks = block_kl(kl_bits, block_index, int(block_index.max()) + 1)
    return {
        "mse": mse,
        "psnr": -10.0 * torch.log10(mse.clamp_min(1e-20)),
        "kl_bits_per_param": kl_bits,
        "kl_bits_blocks": blocks,
        "kl_bits": blocks.sum(-1),
    }
