"""Quick experiment (not a test): fit one CIFAR-10 test image with a zero-mean prior.

Reports, per beta: PSNR of the posterior-mean network, total KL in bits (= the rate REC would
need, before block overhead), bits per pixel, and wall time per Adam step on this machine.

    PYTHONPATH=python python3 scripts/experiments/quick_fit.py --steps 2000 --betas 1e-7 1e-6 1e-5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
# The evaluation data: $COMBINER_DATA, or else ../shared/data next to the repository.
DATA_ROOT = Path(os.environ.get("COMBINER_DATA")
                 or ROOT.parent / "shared" / "data")
if "combiner" not in sys.modules:
    # Import our modules without running the package __init__, which needs the compiled Rust
    # extension (combiner._core); this script only uses the pure-PyTorch modules.
    pkg = types.ModuleType("combiner")
    pkg.__path__ = [str(ROOT / "python" / "combiner")]
    sys.modules["combiner"] = pkg

from combiner.fit import evaluate, fit, pick_device  # noqa: E402
from combiner.inr import BayesianINR, INRConfig  # noqa: E402
from combiner.prior_learning import initial_prior  # noqa: E402
from combiner.tiling import patch_coords, to_patches  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=DATA_ROOT / "cifar10" / "test" / "00000.png")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--betas", type=float, nargs="+", default=[1e-7, 1e-6, 1e-5])
    ap.add_argument("--num-freqs", type=int, default=8)
    ap.add_argument("--max-freq", type=float, default=16.0)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=3, help="hidden layers (3 -> 4 linear layers)")
    ap.add_argument("--rho-init", type=float, default=-10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    img = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32) / 255.0
    H, W, _ = img.shape
    values, weights = to_patches(img, (H, W))  # one patch = the whole image
    coords = patch_coords((H, W))
    cfg = INRConfig(in_dim=2, out_dim=3, num_freqs=args.num_freqs, max_freq=args.max_freq,
                    width=args.width, depth=args.depth)
    prior = initial_prior(cfg)  # mean 0, std = 0.5 * SIREN-init std per layer
    blocks = torch.zeros(cfg.num_params, dtype=torch.long)  # one block: global beta, no control
    print(f"image {args.image} {H}x{W}; config {cfg.to_dict()}; D = {cfg.num_params}; "
          f"device {device}, threads {args.threads}; steps {args.steps}, lr {args.lr}")
    print(f"{'beta':>8} {'PSNR dB':>8} {'KL bits':>9} {'bpp':>7} {'ms/step':>8}")
    for beta in args.betas:
        model = BayesianINR(cfg, 1, rho_init=args.rho_init, generator=torch.Generator().manual_seed(args.seed),
                            device=device)
        t0 = time.perf_counter()
        fit(model, coords, torch.from_numpy(values), prior, blocks, steps=args.steps, lr=args.lr, beta=beta,
            beta_control=False, weights=torch.from_numpy(weights), seed=args.seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        ev = evaluate(model, coords, torch.from_numpy(values), prior)
        kl = float(ev["kl_bits"][0])
        print(f"{beta:8.0e} {float(ev['psnr'][0]):8.2f} {kl:9.0f} {kl / (H * W):7.2f} {1e3 * dt / args.steps:8.2f}")


if __name__ == "__main__":
    main()
