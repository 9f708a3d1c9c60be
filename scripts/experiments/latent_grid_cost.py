"""What a learned positional encoding over the whole image would add to a fitting step.

Design measurement for RECOMBINER-style positional encodings (He et al., ICLR 2024): a
low-resolution latent grid over the whole image (C channels, one cell per ``s`` x ``s``
pixels), sampled by the reparameterisation trick each step, read at every point of the step by
bilinear interpolation (`torch.nn.functional.grid_sample`), passed through a small frozen
pointwise network (C -> K -> K, sine), and concatenated with each patch's Fourier features, so
that the INR's first layer takes 32 + K inputs. Only the cost is measured, not the quality: the
step is the shipped photo fitting step (folded noise, pooled normals, compiled) on the Kodak
layout, without mixing matrices, with a factorised prior for the grid.

    PYTHONPATH=python python3 scripts/experiments/latent_grid_cost.py [--threads 2] [--steps 30]

Prints ms per step for each (s, C, K) and for the plain step, timed before and after them,
all in the same run.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from combiner.config import INRConfig
from combiner.fit import block_kl, make_pool, weighted_mse
from combiner.inr import BayesianINR, fourier_features, kl_per_param
from combiner.tiling import patch_coords, patch_grid

H, W, PATCH = 512, 768, 64
ROWS, COLS = patch_grid((H, W), (PATCH, PATCH))
PATCHES = ROWS * COLS  # 96
FRACTION = 0.25
BLOCKS = 81  # per patch, as in photo-q1


def config_for(extra: int) -> INRConfig:
    """The photo network (small64) with ``extra`` more first-layer inputs. The layer shapes follow
    from feature_dim = 4 * num_freqs, so ``extra`` must be a multiple of 4."""
    if extra % 4:
        raise ValueError(f"extra inputs must be a multiple of 4, not {extra}")
    return INRConfig(in_dim=2, out_dim=3, num_freqs=8 + extra // 4, max_freq=32.0, width=32, depth=3)


def patch_origins() -> torch.Tensor:
    """[P, 2] (row, column) of every patch's top-left pixel, in `combiner.tiling`'s row-major
    patch order."""
    rows = torch.arange(ROWS).repeat_interleave(COLS) * PATCH
    cols = torch.arange(COLS).repeat(ROWS) * PATCH
    return torch.stack([rows, cols], dim=-1).to(torch.float32)


class Step:
    """One fitting step with an optional latent grid (``extra`` = K > 0)."""

    def __init__(self, stride: int, channels: int, extra: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.extra = extra
        cfg = config_for(extra)
        D = cfg.num_params
        self.model = BayesianINR(cfg, PATCHES, mix=None, mean=torch.zeros(D), std=torch.full((D,), 0.03))
        self.prior = torch.zeros(D), torch.full((D,), 0.1)
        self.n = round(PATCH * PATCH * FRACTION)
        coords = patch_coords((PATCH, PATCH))  # [N, 2] on [-1, 1]
        self.feats = fourier_features(coords, torch.from_numpy(config_for(0).frequencies()).float())
        pixel = (coords + 1) / 2 * (PATCH - 1)  # pixel offsets inside a patch
        origin = patch_origins()
        absolute = origin[:, None, :] + pixel[None]  # [P, N, 2] (row, col)
        # grid_sample wants (x, y) on [-1, 1] over the whole image
        self.where = torch.stack([absolute[..., 1] / (W - 1), absolute[..., 0] / (H - 1)], -1) * 2 - 1
        self.targets = torch.rand(PATCHES, PATCH * PATCH, 3, generator=gen)
        self.block_index = torch.arange(D) % BLOCKS
        self.beta = torch.full((PATCHES, BLOCKS), 1e-6)
        params = [self.model.mu, self.model.rho]
        if extra:
            h, w = math.ceil(H / stride), math.ceil(W / stride)
            self.z_mu = torch.zeros(1, channels, h, w, requires_grad=True)
            self.z_rho = torch.full((1, channels, h, w), -3.0, requires_grad=True)
            self.up1 = torch.randn(channels, extra, generator=gen) / math.sqrt(channels)
            self.up2 = torch.randn(extra, extra, generator=gen) / math.sqrt(extra)
            params += [self.z_mu, self.z_rho]
        self.opt = torch.optim.Adam(params, lr=1e-3)
        self.pool = make_pool(self.model, self.n, "folded")
        self.gen = gen
        self.loss = torch.compile(self._loss, dynamic=False)

    def _loss(self, feats, where, targets, eps, z_eps):
        if self.extra:
            z = self.z_mu + F.softplus(self.z_rho) * z_eps  # one draw of the grid per step
            grid = F.grid_sample(z, where[None], mode="bilinear", align_corners=True)  # [1, C, P, n]
            lat = grid[0].permute(1, 2, 0)  # [P, n, C]
            lat = torch.sin(torch.sin(lat @ self.up1) @ self.up2)  # the frozen upsampler
            x = torch.cat([feats.expand(PATCHES, *feats.shape), lat], dim=-1)
            z_kl = kl_per_param(self.z_mu, F.softplus(self.z_rho), 0.0, 1.0).sum()
        else:
            x, z_kl = feats, 0.0
        pred = self.model.forward_features(x, eps, "folded")
        kl = block_kl(self.model.kl(*self.prior), self.block_index, BLOCKS)
        return weighted_mse(pred, targets, None).sum() + (self.beta * kl).sum() + 1e-6 * z_kl

    def __call__(self) -> None:
        idx = torch.randperm(PATCH * PATCH, generator=self.gen)[:self.n]
        self.opt.zero_grad(set_to_none=True)
        eps = self.model.draw_noise(self.n, self.gen, "folded", pool=self.pool)
        z_eps = torch.randn(self.z_mu.shape, generator=self.gen) if self.extra else None
        loss = self.loss(self.feats[idx], self.where[:, idx], self.targets[:, idx], eps, z_eps)
        loss.backward()
        self.opt.step()


def time_step(step: Step, steps: int) -> float:
    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plain = Step(stride=1, channels=0, extra=0)
    first = time_step(plain, a.steps)
    rows = []
    for stride, channels, extra in ((16, 4, 8), (8, 4, 8), (8, 4, 16), (4, 4, 16), (8, 8, 16)):
        latents = channels * math.ceil(H / stride) * math.ceil(W / stride)
        rows.append((stride, channels, extra, latents, time_step(Step(stride, channels, extra), a.steps)))
    last = time_step(plain, a.steps)  # timed before and after the variants: the machine drifts
    base = min(first, last)
    print(f"# latent_grid_cost.py --threads {a.threads} --steps {a.steps}; Kodak layout, {PATCHES} "
          f"patches, {FRACTION} of the points per step")
    print(f"plain step (Fourier features only): {first:.1f} ms before the variants, {last:.1f} ms after")
    print(f"{'stride s':>8} {'C':>3} {'K':>3} {'latents':>8} {'ms/step':>8} {'x plain':>8}")  # x the faster plain time
    for stride, channels, extra, latents, ms in rows:
        print(f"{stride:>8} {channels:>3} {extra:>3} {latents:>8} {ms:8.1f} {ms / base:8.2f}")


if __name__ == "__main__":
    main()
