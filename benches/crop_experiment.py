"""Quick encoder experiments: code the 256 x 256 centre crop of Kodak images (64 patches, about
3 minutes on one CPU core instead of 20 for a whole image) with a photo prior at the shipped
`photo` encoder settings, and print one JSON line per image.

    python benches/crop_experiment.py PRIOR kodim03 [kodim01 ...] [--data ../shared/data/kodak]

PRIOR is a shipped prior name (photo-q1) or a prior file, e.g. one learned by
``training/train_priors.py photo --out /tmp/p --iterations 10 ...``. Every prior of one rate gives
the same file size on a crop, so the PSNRs compare directly.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from combiner import codec, quality, registry
from combiner.media import image_from_array

CROP = 256


def centre_crop(path: Path) -> np.ndarray:
    x = np.asarray(Image.open(path).convert("RGB"))
    top, left = x.shape[0] // 2 - CROP // 2, x.shape[1] // 2 - CROP // 2
    return x[top:top + CROP, left:left + CROP]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prior")
    ap.add_argument("images", nargs="+", help="Kodak image names, e.g. kodim03")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/kodak")
    a = ap.parse_args()
    torch.set_num_threads(1)
    prior = registry.resolve(a.prior)
    opts = codec.EncodeOptions(**quality.ENCODE_DEFAULTS["photo"], progress=False)
    for name in a.images:
        t = time.perf_counter()
        res = codec.encode_signal(image_from_array(centre_crop(a.data / f"{name}.png")), prior, opts)
        print(json.dumps(dict(prior=a.prior, image=name, bytes=len(res.data), bpp=res.bits_per_unit,
                              psnr=res.psnr, seconds=time.perf_counter() - t)), flush=True)


if __name__ == "__main__":
    main()
