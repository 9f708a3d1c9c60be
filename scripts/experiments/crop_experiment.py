"""Quick encoder experiments: code the 256 x 256 centre crop of Kodak images (16 patches of the
shipped 64 x 64 priors, 90-124 s on one CPU core; 64 patches and about 3 minutes with 32 x 32 ones)
with a photo prior at the shipped `photo` encoder settings, and print one JSON line per image.

    python scripts/experiments/crop_experiment.py PRIOR kodim03 [kodim01 ...] [--data ../shared/data/kodak]
        [--set refine_steps=30 --set pixel_fraction=0.5 ...]

PRIOR is a shipped prior name (photo-q1) or a prior file, e.g. one learned by
``training/train_priors.py photo --out /tmp/p --iterations 20 ...``. Priors with the same patch
shape and partition give the same file size on a crop, so their PSNRs compare directly; others
differ in size (their number of blocks).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from combiner import codec, quality, registry
from combiner.media import image_from_array

# The evaluation data: $COMBINER_DATA, or else ../shared/data next to the repository.
DATA_ROOT = Path(os.environ.get("COMBINER_DATA")
                 or Path(__file__).resolve().parents[2].parent / "shared" / "data")
CROP = 256


def centre_crop(path: Path) -> np.ndarray:
    x = np.asarray(Image.open(path).convert("RGB"))
    top, left = x.shape[0] // 2 - CROP // 2, x.shape[1] // 2 - CROP // 2
    return x[top:top + CROP, left:left + CROP]


def parse_override(item: str) -> tuple[str, int | float | str]:
    """'refine_steps=30' -> ('refine_steps', 30); a value that is not a number stays a string
    ('noise=weights'); true and false are flags."""
    key, sep, value = item.partition("=")
    if not sep or key not in codec.EncodeOptions.__dataclass_fields__:
        raise SystemExit(f"--set wants OPTION=VALUE with an EncodeOptions field, got {item!r}")
    if value in ("true", "false"):
        return key, value == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def image_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the Kodak experiments: PRIOR, image names, --data and --set overrides."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("prior")
    ap.add_argument("images", nargs="+", help="Kodak image names, e.g. kodim03")
    ap.add_argument("--data", type=Path, default=DATA_ROOT / "kodak")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="override one of the shipped photo encoder settings (EncodeOptions field)")
    return ap


def main() -> None:
    a = image_parser(__doc__.split("\n\n")[0]).parse_args()
    torch.set_num_threads(1)
    prior = registry.resolve(a.prior)
    overrides = dict(parse_override(item) for item in a.set)
    _, opts = quality.resolve(image_from_array(centre_crop(a.data / f"{a.images[0]}.png")),
                              prior=prior, overrides={**overrides, "progress": False})
    for name in a.images:
        t = time.perf_counter()
        res = codec.encode_signal(image_from_array(centre_crop(a.data / f"{name}.png")), prior, opts)
        print(json.dumps(dict(prior=a.prior, image=name, overrides=overrides, bytes=len(res.data),
                              bpp=res.bits_per_unit, psnr=res.psnr,
                              seconds=time.perf_counter() - t)), flush=True)


if __name__ == "__main__":
    main()
