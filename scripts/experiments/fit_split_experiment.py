"""Crop experiments that change the fitting within one encode, without an encoder option:
the first FRACTION of the fitting steps with one weight sample per patch (noise "weights"), the
rest with the photo settings' noise; and/or the refinement steps on a share of the points.

    python scripts/experiments/fit_split_experiment.py WEIGHTS_FRACTION REFINE_SHARE kodim03 [kodim20 ...]
        [--set OPTION=VALUE ...]

WEIGHTS_FRACTION 0.5: half the fitting steps with weight samples; REFINE_SHARE 0.5: every
refinement step on half the points of a fitting step (1.0: as shipped). Other arguments as in
crop_experiment.py (prior photo-q1, one thread). Prints one JSON line per image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crop_experiment  # noqa: E402

from combiner import codec  # noqa: E402
from combiner import fit as fitting  # noqa: E402


def split_fit(weights_fraction: float, refine_share: float):
    plain = fitting.fit

    def fit(model, coords, targets, prior, block_index, *, steps, lr, beta, **kw):
        if kw.get("beta_control") is False:  # a refinement between two rounds (codec passes it)
            if refine_share < 1.0:
                kw = {**kw, "pixel_fraction": kw["pixel_fraction"] * refine_share, "pool": None}
            return plain(model, coords, targets, prior, block_index, steps=steps, lr=lr, beta=beta, **kw)
        optimizer = torch.optim.Adam([model.mu, model.rho], lr=lr)
        first = int(weights_fraction * steps)
        if first:
            beta = plain(model, coords, targets, prior, block_index, steps=first, lr=lr, beta=beta,
                         optimizer=optimizer, lr_decay_at=1.0, **{**kw, "noise": "weights", "pool": None})
        decay_at = (0.8 * steps - first) / (steps - first)  # the shipped halving at 80 % of all steps
        return plain(model, coords, targets, prior, block_index, steps=steps - first, lr=lr, beta=beta,
                     optimizer=optimizer, lr_decay_at=decay_at, **{**kw, "control_start": 0.0})

    return fit


def main() -> None:
    weights_fraction, refine_share, *rest = sys.argv[1:]
    codec.fit = split_fit(float(weights_fraction), float(refine_share))
    sys.argv = [sys.argv[0], "photo-q1", *rest, "--set", "threads=1"]
    crop_experiment.main()


if __name__ == "__main__":
    main()
