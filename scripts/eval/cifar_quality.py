"""CIFAR-10 quality run: learn priors at several rates, code test images, report bpp and PSNR.

    python scripts/eval/cifar_quality.py --train 1000 --test 100 --bits 600 900 1600 \\
        --out results/archive/first-runs/cifar10_quality.json

One prior is learned from $COMBINER_DATA/cifar10/train (the first --train images) and
partitioned for each rate (--bits: payload bits per image); then the first --test images of
$COMBINER_DATA/cifar10/test are encoded together (batched) at each rate and decoded again from
the bitstream. bpp counts whole files. PSNR is per image (peak 255 on uint8
output), averaged over images; the PSNR of the mean MSE is reported too. Everything here runs on
this machine's CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import combiner
from combiner import codec, media
from combiner.api import learn_prior

# The evaluation data: $COMBINER_DATA, or else ../shared/data next to the repository.
DATA_ROOT = Path(os.environ.get("COMBINER_DATA")
                 or Path(__file__).resolve().parents[2].parent / "shared" / "data")
DATA = DATA_ROOT / "cifar10"


def load(split: str, n: int) -> np.ndarray:
    files = sorted((DATA / split).glob("*.png"))[:n]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--bits", type=float, nargs="+", default=[600, 900, 1600])
    ap.add_argument("--beta", type=float, default=1e-5)
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--first-steps", type=int, default=150)
    ap.add_argument("--pixel-fraction", type=float, default=0.25)
    ap.add_argument("--fit-steps", type=int, default=1500)
    ap.add_argument("--refine-steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--priors-dir", default="results/priors")
    ap.add_argument("--out", default="results/archive/first-runs/cifar10_quality.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train = load("train", args.train).reshape(args.train, -1, 3).astype(np.float32) / 255.0
    test = load("test", args.test)
    signals = [media.image_from_array(x) for x in test]
    Path(args.priors_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    priors = learn_prior(train, modality="image", patch=(32, 32), beta=args.beta, kappa=16,
                         iterations=args.iterations, steps=args.steps,
                         first_steps=args.first_steps, lr=args.lr, seed=0, device=args.device,
                         name="thumbnail", pixel_fraction=args.pixel_fraction,
                         bits_per_patch=args.bits, progress=False)
    learn_s = time.perf_counter() - t0
    print(f"prior learned in {learn_s:.0f} s", flush=True)
    for prior in priors:
        prior.save(Path(args.priors_dir) / f"{prior.kind.name}.safetensors")
        opts = combiner.EncodeOptions(fit_steps=args.fit_steps, refine_steps=args.refine_steps,
                                      lr=args.lr, device=args.device, progress=False)
        t1 = time.perf_counter()
        results = codec.encode_signals(signals, prior, opts)
        encode_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        decoded = [combiner.decode(r.data, prior=prior) for r in results]
        decode_s = time.perf_counter() - t2
        mse = np.array([np.mean((d.astype(np.float64) - x) ** 2) for d, x in zip(decoded, test)])
        psnrs = 10 * np.log10(255.0**2 / mse)
        bpp = np.array([8 * len(r.data) / 1024 for r in results])
        row = dict(prior=prior.kind.name, bits_per_patch=prior.kind.bits_per_patch,
                   blocks_per_image=prior.num_blocks, bpp=float(bpp.mean()),
                   bpp_payload_only=prior.num_blocks * 16 / 1024, psnr_mean=float(psnrs.mean()),
                   psnr_of_mean_mse=float(10 * np.log10(255.0**2 / mse.mean())),
                   learn_prior_s=learn_s, encode_s_per_image=encode_s / len(signals),
                   decode_s_per_image=decode_s / len(signals))
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = dict(
        command="python scripts/eval/cifar_quality.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if v is not None),
        machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                f"device {args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}",
        torch=torch.__version__, train_images=args.train, test_images=args.test, rows=rows,
        reference={"RECOMBINER": [[0.297, 23.59], [0.719, 27.22], [0.938, 28.51], [1.531, 30.91]],
                   "COIN++": [[0.548, 24.22], [1.099, 27.03], [1.647, 28.90]],
                   "BPG 4:4:4": [[1.0, 27.11], [1.25, 28.74], [1.875, 31.97]]},
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
