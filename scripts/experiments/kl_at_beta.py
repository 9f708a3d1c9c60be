"""At what rate does a fixed beta put a posterior? Fit the 256 x 256 centre crop of Kodak images
against a photo prior at one beta, without per-block beta control, and print the KL per patch
(bits) and the posterior-mean PSNR. Used to see which rate a prior learned at that beta suits.

    python scripts/experiments/kl_at_beta.py photo-q1 kodim03 kodim01 [--beta 1e-5 --steps 600]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from crop_experiment import DATA_ROOT, centre_crop

from combiner import codec, registry
from combiner.fit import evaluate, fit
from combiner.tiling import patch_coords, to_patches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prior")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--beta", type=float, default=1e-5)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--data", type=Path, default=DATA_ROOT / "kodak")
    a = ap.parse_args()
    torch.set_num_threads(1)
    prior = registry.resolve(a.prior)
    patch = prior.kind.patch_shape
    coords, blocks = patch_coords(patch), torch.from_numpy(prior.block_index)
    for name in a.images:
        values, _ = to_patches(centre_crop(a.data / f"{name}.png").astype(np.float32) / 255.0, patch)
        targets = torch.from_numpy(values)
        model = codec.initial_model(prior, targets.shape[0], codec.EncodeOptions(), "cpu")
        fit(model, coords, targets, prior, blocks, steps=a.steps, lr=1e-3, beta=a.beta,
            beta_control=False, pixel_fraction=0.25)
        ev = evaluate(model, coords, targets, prior, blocks)
        print(json.dumps(dict(prior=a.prior, image=name, beta=a.beta, steps=a.steps,
                              kl_bits_per_patch=round(ev["kl_bits"].mean().item(), 1),
                              posterior_mean_psnr=round(ev["psnr"].mean().item(), 2))), flush=True)


if __name__ == "__main__":
    main()
