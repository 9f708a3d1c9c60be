"""What a learned positional encoding over the whole image could gain for `photo`, before building it.

RECOMBINER (He et al., ICLR 2024) feeds each patch's INR extra inputs made by a small learned
convolutional network from a low-resolution latent grid over the whole signal; the latents are
coded like the weights. This experiment tests a cheaper form of the same idea on a shipped
photo prior (``--prior``, default `photo-q1`), without coding anything:

- a latent grid of C channels with one cell per 16 x 16 pixels over the whole crop, with a
  factorised Gaussian posterior and a learned per-channel Gaussian prior;
- an upsampler: bilinear x4, conv 3x3 C -> H, LeakyReLU, conv 3x3 H -> H, LeakyReLU, conv 1x1
  H -> 32, giving one value per first-layer unit at every 4 x 4 pixels, read at each point by
  bilinear interpolation (``grid_sample``);
- the result is added to the first layer's pre-activation (after w0), a spatially varying
  phase shift of the first SIREN layer: a shift modulation (Dupont et al., COIN++, TMLR 2022)
  made from a shared grid. It equals RECOMBINER's concatenation with the coded first-layer
  rows for those inputs replaced by fixed ones, so the weight prior keeps its shape.

Learning: the upsampler and the latent prior are learned with the posteriors of ``--train``
256 x 256 crops of ``train_photos`` jointly (one Adam, every crop every step), the weight
prior and its mixing matrices fixed at the shipped prior's.
Testing: the centre crops of Kodak images, fitted with the upsampler frozen, each crop's total
KL (weights and latents) held at the budget of a file of that prior by a beta controller. The
same loop without latents (``--channels 0``) is the baseline. Reported: PSNR of the posterior
mean and the mean PSNR of four posterior samples, and the KL of the weights and the latents.
The rate is the KL, not a coded file; the real encoder sends one sample after progressive
refinement, so the absolute figures differ from `crop_experiment.py`'s; the comparison is
between the two variants of this loop.

    PYTHONPATH=python python3 scripts/experiments/positional_shift.py --channels 8 --learn-steps 2000 \
        --save /tmp/pe8.pt kodim03 kodim20 kodim01
    PYTHONPATH=python python3 scripts/experiments/positional_shift.py --channels 0 kodim03 kodim20 kodim01

With ``--learn-weight-prior`` the weight prior is learned too (both variants alike), and
``--save-prior FILE`` writes it as a prior file that ``crop_experiment.py FILE ...`` codes with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from crop_experiment import DATA_ROOT, centre_crop
from PIL import Image
from torch import Tensor

from combiner import registry
from combiner.inr import BayesianINR, effective_layers, effective_variances, fourier_features, kl_per_param
from combiner.prior_learning import update_prior
from combiner.tiling import patch_coords, to_patches

PATCH = 64
CROP = 256
CELL = 16  # pixels per latent cell along each axis
MAP_STRIDE = 4  # pixels per cell of the upsampler's output
LN2 = math.log(2.0)


class Upsampler(torch.nn.Module):
    """Latents [B, C, h, w] -> first-layer phase shifts [B, width, 4h, 4w]. The last layer starts
    at a tenth of PyTorch's default scale: small shifts, but not zero, for a zero last layer
    would give the latents no gradient and let their KL pull them onto the prior at once."""

    def __init__(self, channels: int, hidden: int, width: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(hidden, hidden, 3, padding=1)
        self.out = torch.nn.Conv2d(hidden, width, 1)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, z: Tensor) -> Tensor:
        x = F.interpolate(z, scale_factor=CELL // MAP_STRIDE, mode="bilinear", align_corners=False)
        x = F.leaky_relu(self.conv1(x))
        x = F.leaky_relu(self.conv2(x))
        return self.out(x)


def crops_as_patches(crops: np.ndarray) -> Tensor:
    """uint8 [B, 256, 256, 3] -> float [B * 16, 4096, 3] on [0, 1], in `to_patches`' order."""
    return torch.cat([torch.from_numpy(to_patches(c.astype(np.float32) / 255.0, (PATCH, PATCH))[0])
                      for c in crops])


def point_grid() -> Tensor:
    """[16, 4096, 2] (x, y) of every point of every patch of a crop, on grid_sample's [-1, 1]
    (align_corners=False: pixel centres), in the order of `crops_as_patches`."""
    r, c = np.meshgrid(np.arange(CROP), np.arange(CROP), indexing="ij")
    centres = (np.stack([c, r], axis=-1).astype(np.float32) + 0.5) / CROP * 2 - 1
    return torch.from_numpy(to_patches(centres, (PATCH, PATCH))[0])


class Variant:
    """Posteriors of B crops (16 patches each), with or without the latent grid."""

    def __init__(self, prior, crops: np.ndarray, channels: int, upsampler: Upsampler | None,
                 latent_prior: tuple[Tensor, Tensor] | None, seed: int,
                 weight_prior: tuple[Tensor, Tensor] | None = None) -> None:
        self.cfg = prior.config
        self.mean, self.std = weight_prior or (torch.from_numpy(prior.mean).float(),
                                               torch.from_numpy(prior.std).float())
        self.targets = crops_as_patches(crops)
        self.B = crops.shape[0]
        P = self.targets.shape[0]
        enc = prior.encoder
        self.model = BayesianINR(self.cfg, P, mix=torch.from_numpy(prior.mix).float(), mean=self.mean,
                                 std=self.std * enc.init_std_ratio)
        self.feats = fourier_features(patch_coords((PATCH, PATCH)), self.model.freqs)
        self.where = point_grid()
        self.channels = channels
        self.gen = torch.Generator().manual_seed(seed)
        self.up = upsampler
        side = CROP // CELL
        if channels:
            assert upsampler is not None and latent_prior is not None
            self.z_mu = torch.zeros(self.B, channels, side, side, requires_grad=True)
            self.z_rho = torch.full((self.B, channels, side, side), math.log(math.expm1(0.3)), requires_grad=True)
            self.z_prior_mean, self.z_prior_logstd = latent_prior

    def latent_params(self) -> list[Tensor]:
        return [self.z_mu, self.z_rho] if self.channels else []

    def kl_bits(self) -> tuple[Tensor, Tensor]:
        """KL per crop [B] of the weights and of the latents, in bits."""
        mean, sigma = self.model.posterior()
        kw = kl_per_param(mean, sigma, self.mean, self.std).sum(-1).reshape(self.B, -1).sum(-1) / LN2
        if not self.channels:
            return kw, torch.zeros_like(kw)
        m = self.z_prior_mean.view(1, -1, 1, 1)
        s = self.z_prior_logstd.exp().view(1, -1, 1, 1)
        kz = kl_per_param(self.z_mu, F.softplus(self.z_rho), m, s).sum((1, 2, 3)) / LN2
        return kw, kz

    def shifts(self, idx: Tensor, z: Tensor) -> Tensor:
        """Phase shifts [B * 16, n, width] at the points ``idx`` of every patch for latents z."""
        assert self.up is not None
        smap = self.up(z)  # [B, width, 64, 64]
        where = self.where[:, idx].unsqueeze(0).expand(self.B, -1, -1, -1)  # [B, 16, n, 2]
        s = F.grid_sample(smap, where, mode="bilinear", align_corners=False)  # [B, width, 16, n]
        return s.permute(0, 2, 3, 1).reshape(-1, idx.numel(), smap.shape[1])

    def forward(self, idx: Tensor, z: Tensor | None, weights: Tensor | None = None) -> Tensor:
        """The network at points ``idx`` [n] with latents ``z`` (None without a grid): with
        ``weights`` [P, D] the deterministic network, else a draw by the folded local
        reparameterisation of the posterior."""
        mean, sigma = self.model.posterior()
        mix = self.model.mix
        layers = effective_layers(self.cfg, mean if weights is None else weights, mix, scale_hidden=True)
        variances = effective_variances(self.cfg, sigma * sigma, mix, scale_hidden=True)
        P = mean.shape[0]
        x = self.feats[idx].expand(P, -1, -1)
        shift = self.shifts(idx, z) if z is not None else None
        for l, ((W, b), (V, c)) in enumerate(zip(layers, variances)):
            h = torch.baddbmm(b, x, W)
            if weights is None:
                v = torch.baddbmm(c, x * x, V).clamp_min(1e-20)
                h = h + v.sqrt() * torch.randn(h.shape, generator=self.gen)
            if l == 0 and shift is not None:
                h = h + shift
            x = torch.sin(h) if l < len(layers) - 1 else h
        return x

    def draw_latents(self) -> Tensor | None:
        if not self.channels:
            return None
        eps = torch.randn(self.z_mu.shape, generator=self.gen)
        return self.z_mu + F.softplus(self.z_rho) * eps

    def crop_mse(self, pred: Tensor, idx: Tensor) -> Tensor:
        """Sum over each crop's patches of the patch MSE: [B]."""
        se = (pred - self.targets[:, idx]).pow(2).mean((-1, -2))
        return se.reshape(self.B, -1).sum(-1)


def fit(v: Variant, steps: int, budget_bits: float, extra_params: list[dict], lr: float, beta0: float,
        fraction: float = 0.25, log_every: int = 0, warmup: float = 0.0, m_step_every: int = 0) -> Tensor:
    """Adam on the beta-ELBO, each crop's beta steered so that its total KL meets ``budget_bits``
    (x 1.1 above 1 % over, / 1.1 below 1 % under, every 25 steps after the first 10 %).
    ``warmup``: the latents' KL weight rises linearly from 0 to 1 over this share of the steps
    (learning only: it keeps the latents in use while the upsampler learns what to do with them).
    ``m_step_every``: from a quarter of the steps on, the weight prior becomes the closed-form
    M-step of the current posteriors (`combiner.prior_learning.update_prior`) this often."""
    groups = [{"params": [v.model.mu, v.model.rho], "lr": lr}]
    if v.channels:
        groups.append({"params": v.latent_params(), "lr": 10 * lr})
    opt = torch.optim.Adam(groups + extra_params)
    beta = torch.full((v.B,), beta0)
    n = round(fraction * PATCH * PATCH)
    t0 = time.perf_counter()
    for step in range(steps):
        if step == int(0.8 * steps):
            for g in opt.param_groups:
                g["lr"] /= 2
        idx = torch.randperm(PATCH * PATCH, generator=v.gen)[:n]
        pred = v.forward(idx, v.draw_latents())
        kw, kz = v.kl_bits()
        ramp = min(1.0, step / (warmup * steps)) if warmup else 1.0
        loss = (v.crop_mse(pred, idx) + beta * (kw + ramp * kz) * LN2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if m_step_every and step >= steps // 4 and step % m_step_every == 0:
            v.mean, v.std = update_prior(*(t.detach() for t in v.model.posterior()))
        if step >= steps // 10 and step % 25 == 0:
            total = (kw + kz).detach()
            beta = torch.where(total > 1.01 * budget_bits, beta * 1.1,
                               torch.where(total < 0.99 * budget_bits, beta / 1.1, beta))
        if log_every and step % log_every == 0:
            print(json.dumps(dict(step=step, seconds=round(time.perf_counter() - t0, 1),
                                  mse=float(v.crop_mse(pred, idx).detach().mean() / 16),
                                  kl_weights=float(kw.detach().mean()),
                                  kl_latents=float(kz.detach().mean()), beta=float(beta.mean()))), flush=True)
    return beta


@torch.no_grad()
def measure(v: Variant) -> list[dict]:
    """Per crop: PSNR of the posterior mean and the mean PSNR of four posterior samples, KL bits."""
    idx = torch.arange(PATCH * PATCH)
    mean, sigma = v.model.posterior()
    z_mean = v.z_mu if v.channels else None
    psnr_mean = -10 * torch.log10(v.crop_mse(v.forward(idx, z_mean, mean), idx) / 16)
    samples = []
    for _ in range(4):
        z = v.draw_latents()
        w = mean + sigma * torch.randn(mean.shape, generator=v.gen)
        samples.append(-10 * torch.log10(v.crop_mse(v.forward(idx, z, w), idx) / 16))
    kw, kz = v.kl_bits()
    return [dict(psnr_mean=a, psnr_sample=b, kl_weights=c, kl_latents=d)
            for a, b, c, d in zip(psnr_mean.tolist(), torch.stack(samples).mean(0).tolist(),
                                  kw.tolist(), kz.tolist())]


def training_crops(count: int, seed: int) -> np.ndarray:
    """``count`` random 256 x 256 crops of the training photos, cycling through the photos."""
    files = sorted((DATA_ROOT / "train_photos").glob("*.png"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        x = np.asarray(Image.open(files[i % len(files)]).convert("RGB"))
        top = int(rng.integers(0, x.shape[0] - CROP + 1))
        left = int(rng.integers(0, x.shape[1] - CROP + 1))
        out.append(x[top:top + CROP, left:left + CROP])
    return np.stack(out)


def learn(prior, a, up: Upsampler | None, latent_prior, budget: float) -> tuple[Tensor, Tensor]:
    """Learn the upsampler and latent prior (with a grid) and, with ``--learn-weight-prior``, the
    weight prior, on ``--train`` crops; returns the weight prior (mean, std) [D] to test with."""
    t = time.perf_counter()
    train = Variant(prior, training_crops(a.train, seed=a.seed), a.channels, up, latent_prior, seed=a.seed + 1)
    extra = []
    if a.channels:
        extra = [{"params": list(up.parameters()), "lr": 1e-3}, {"params": list(latent_prior), "lr": 1e-2}]
    fit(train, a.learn_steps, budget, extra, prior.encoder.lr, prior.kind.beta, log_every=100,
        warmup=0.5, m_step_every=100 if a.learn_weight_prior else 0)
    print(json.dumps(dict(learning_seconds=time.perf_counter() - t,
                          latent_std=latent_prior[1].exp().tolist() if a.channels else None)), flush=True)
    return train.mean, train.std


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="Kodak image names, e.g. kodim03")
    ap.add_argument("--prior", default="photo-q1")
    ap.add_argument("--channels", type=int, default=8, help="latent channels; 0: no latent grid")
    ap.add_argument("--hidden", type=int, default=32, help="upsampler channels")
    ap.add_argument("--learn-weight-prior", action="store_true",
                    help="also learn the weight prior (closed-form M-step every 100 steps) with the grid")
    ap.add_argument("--train", type=int, default=16, help="training crops")
    ap.add_argument("--seed", type=int, default=0, help="seed of the training crops and of the learning's noise")
    ap.add_argument("--learn-steps", type=int, default=2000)
    ap.add_argument("--fit-steps", type=int, default=2000)
    ap.add_argument("--load", type=Path, help="what --save wrote")
    ap.add_argument("--save", type=Path, help="save the learned upsampler, latent prior and weight prior")
    ap.add_argument("--save-prior", type=Path, metavar="FILE",
                    help="with --learn-weight-prior: write the learned weight prior as a prior file for the "
                         "encoder (named FILE's stem), with --prior's partition, mixing matrices and settings")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    prior = registry.resolve(a.prior)
    budget = prior.num_blocks * prior.kappa * (CROP // PATCH) ** 2  # bits per crop, as in the files
    up = latent_prior = None
    if a.channels:
        up = Upsampler(a.channels, a.hidden, prior.config.width)
        latent_prior = (torch.zeros(a.channels, requires_grad=True), torch.zeros(a.channels, requires_grad=True))
    weight_prior = torch.from_numpy(prior.mean).float(), torch.from_numpy(prior.std).float()
    if a.load:
        state = torch.load(a.load)
        weight_prior = state["weight_mean"], state["weight_std"]
        if up is not None:
            if state["upsampler"] is None:
                raise SystemExit(f"{a.load} was learned without a latent grid")
            up.load_state_dict(state["upsampler"])
            latent_prior = (state["latent_mean"], state["latent_logstd"])
    elif a.channels or a.learn_weight_prior:
        weight_prior = learn(prior, a, up, latent_prior, budget)
        if a.save:
            torch.save(dict(upsampler=up.state_dict() if up else None,
                            latent_mean=latent_prior[0].detach() if latent_prior else None,
                            latent_logstd=latent_prior[1].detach() if latent_prior else None,
                            weight_mean=weight_prior[0], weight_std=weight_prior[1]), a.save)
    if a.save_prior:
        learned = dataclasses.replace(prior, mean=weight_prior[0].numpy(), std=weight_prior[1].numpy(),
                                      kind=dataclasses.replace(prior.kind, name=a.save_prior.stem))
        learned.save(a.save_prior)
    if up is not None and latent_prior is not None:
        up.requires_grad_(False)
        latent_prior = (latent_prior[0].detach(), latent_prior[1].detach())
    for name in a.images:
        t = time.perf_counter()
        crop = centre_crop(DATA_ROOT / "kodak" / f"{name}.png")[None]
        v = Variant(prior, crop, a.channels, up, latent_prior, seed=2, weight_prior=weight_prior)
        fit(v, a.fit_steps, budget, [], prior.encoder.lr, prior.kind.beta)
        row = measure(v)[0]
        print(json.dumps(dict(image=name, channels=a.channels, hidden=a.hidden,
                              weight_prior="learned here" if a.learn_weight_prior else a.prior,
                              budget_bits=budget, seconds=round(time.perf_counter() - t, 1), **row)), flush=True)


if __name__ == "__main__":
    main()
