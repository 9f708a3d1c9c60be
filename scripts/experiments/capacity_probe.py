"""How well can a network fit the Kodak crops with no rate at all? Fits the plain (deterministic,
float32) weights of every 64 x 64 patch of the 256 x 256 centre crops by Adam on all pixels, and
prints the PSNR of each network preset after each step count: the ceiling that no level of a
prior with that network can pass, whatever its rate.

    python scripts/experiments/capacity_probe.py kodim03 kodim20 kodim01 --steps 2000 8000
        [--net small64 --net w48=num_freqs:8,max_freq:32,width:48,depth:3 ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from crop_experiment import DATA_ROOT, centre_crop

from combiner.config import INRConfig
from combiner.families import network
from combiner.inr import network_forward, siren_init
from combiner.media import psnr
from combiner.tiling import patch_coords, to_patches


def parse_net(item: str) -> tuple[str, INRConfig]:
    """'small64' (a preset) or 'NAME=key:value,key:value' (fields of a custom image network)."""
    name, sep, spec = item.partition("=")
    if not sep:
        return name, network(name, "image")
    fields = {k: (float(v) if k == "max_freq" else int(v)) for k, v in (kv.split(":") for kv in spec.split(","))}
    return name, INRConfig(in_dim=2, out_dim=3, **fields)


def mean_psnr(pred: torch.Tensor, target: torch.Tensor, images: int) -> float:
    """The mean over the images of each image's PSNR (its patches are consecutive), on the
    float output clamped to [0, 1]."""
    pairs = zip(target.reshape(images, -1).numpy(), pred.clamp(0, 1).reshape(images, -1).numpy())
    return float(np.mean([psnr(t, p) for t, p in pairs]))


def probe(config: INRConfig, targets: torch.Tensor, images: int, checkpoints: list[int], lr: float) -> list[dict]:
    """Adam on the plain weights of every patch at once; the PSNR at each checkpoint."""
    coords = patch_coords((64, 64))
    freqs = torch.from_numpy(config.frequencies()).to(torch.float32)
    weights = torch.nn.Parameter(siren_init(config, targets.shape[0], torch.Generator().manual_seed(0)))
    optimizer = torch.optim.Adam([weights], lr=lr)
    out, t0 = [], time.perf_counter()
    for step in range(1, max(checkpoints) + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((network_forward(config, coords, freqs, weights) - targets) ** 2)
        loss.backward()
        optimizer.step()
        if step in checkpoints:
            with torch.no_grad():
                fitted = network_forward(config, coords, freqs, weights)
                out.append(dict(steps=step, psnr=mean_psnr(fitted, targets, images),
                                seconds=time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--steps", type=int, nargs="+", default=[2000, 8000])
    ap.add_argument("--net", action="append", default=None)
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    crops = [to_patches(centre_crop(DATA_ROOT / "kodak" / f"{n}.png").astype(np.float32) / 255.0, (64, 64))[0]
             for n in a.images]
    targets = torch.from_numpy(np.concatenate(crops))
    for item in a.net or ["small64"]:
        name, config = parse_net(item)
        for row in probe(config, targets, len(a.images), sorted(a.steps), a.lr):
            print(json.dumps(dict(net=name, params=config.num_params, images=a.images, lr=a.lr, **row)), flush=True)


if __name__ == "__main__":
    main()
