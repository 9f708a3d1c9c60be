"""Fitting speed on the CPU with glibc's default allocator settings against
``combiner.allocator.keep_freed_memory``, each in a fresh process, measured in the same run.

    python benches/allocator_bench.py [--images 5] [--steps 20] [--data DIR]

The workload is the first fitting steps of a photo-q1 encode of the first N Kodak images in one
batch (what ``combiner eval`` does: up to 512 patches per batch). Prints one JSON line per
setting: seconds per step, user and kernel CPU seconds, minor page faults and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# The evaluation data: $COMBINER_DATA, or else ../shared/data next to the repository.
DATA_ROOT = Path(os.environ.get("COMBINER_DATA")
                 or Path(__file__).resolve().parents[1].parent / "shared" / "data")
DATA = DATA_ROOT / "kodak"


def run_fit(images: int, steps: int, data: Path, tuned: bool) -> dict:
    """In this process: fit ``steps`` steps on a batch of ``images`` Kodak images."""
    if tuned:
        from combiner.allocator import keep_freed_memory

        assert keep_freed_memory(), "glibc refused the thresholds"
    import numpy as np
    import torch

    from combiner import codec, fit, media, quality
    from combiner.tiling import patch_coords, to_patches

    torch.set_num_threads(1)
    signals = [media.read(p) for p in sorted(data.glob("*.png"))[:images]]
    prior, opts = quality.resolve(signals[0], quality=1)
    patch = prior.kind.patch_shape
    cut = [to_patches(s.values, patch) for s in signals]
    targets = torch.from_numpy(np.concatenate([v for v, _ in cut]))
    weights = torch.from_numpy(np.concatenate([w for _, w in cut]))
    model = codec.initial_model(prior, targets.shape[0], opts, torch.device("cpu"))
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fit.fit(model, patch_coords(patch), targets, prior, torch.from_numpy(prior.block_index),
            steps=steps, lr=opts.lr, beta=float(prior.kind.beta or 1e-6), weights=weights,
            pixel_fraction=opts.pixel_fraction)
    seconds, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return dict(keep_freed_memory=tuned, images=images, patches=int(targets.shape[0]), steps=steps,
                s_per_step=seconds / steps, user_s=after.ru_utime - before.ru_utime,
                kernel_s=after.ru_stime - before.ru_stime,
                minor_faults=after.ru_minflt - before.ru_minflt, peak_rss_mb=after.ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_fit(a.images, a.steps, a.data, a.child == "tuned")))
        return
    rows = []
    for setting in ("default", "tuned"):
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--images", str(a.images),
                              "--steps", str(a.steps), "--data", str(a.data)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(dict(speedup=rows[0]["s_per_step"] / rows[1]["s_per_step"])))


if __name__ == "__main__":
    main()
