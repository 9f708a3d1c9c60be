"""Quick encoder experiments on speech: code the first N LibriSpeech test-other clips (first 3 s)
at one shipped speech level with the shipped encoder settings plus overrides, and print one JSON
row per clip (the rows of `combiner eval`, with the overrides added).

    python scripts/experiments/speech_experiment.py 0 --limit 2 [--set lr=2e-3 ...] [--data DIR]

Compare with the same clips' rows of an eval at the shipped settings (e.g.
results/librispeech/rows.csv): the file sizes are equal, so the PSNRs compare directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from crop_experiment import DATA_ROOT, parse_override

from combiner import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("quality", type=int)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--data", type=Path, default=DATA_ROOT / "audio" / "librispeech_test-other")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="override one of the shipped speech encoder settings (EncodeOptions field)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    overrides = dict(parse_override(item) for item in a.set)
    items = evaluate.load_items(a.data, limit=a.limit, seconds=a.seconds)
    for rows in evaluate.run_combiner(items, a.quality, overrides=overrides, progress=False,
                                      max_patches=120):
        for row in rows:
            print(json.dumps({**row, "overrides": overrides}), flush=True)


if __name__ == "__main__":
    main()
