"""Baselines at exactly combiner's file size, image by image, after a ``combiner eval`` run.

    python scripts/eval/matched_rates.py results/kodak --data "$COMBINER_DATA/kodak"

For every combiner row of ``DIR/rows.csv``, each image baseline is coded at the setting whose
file is closest in size to combiner's (JPEG, WebP, AVIF: a search over quality 0/1-100; JPEG 2000:
its rate control set to combiner's bpp), decoded, and measured the same way as in the eval.
Writes ``DIR/matched.csv`` and prints a markdown table. The baselines are deterministic, so this
pass gives what the eval run itself would have measured at those settings.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from combiner import baselines, evaluate

QUALITY_RANGE = {"jpeg": range(1, 101), "webp": range(0, 101), "avif": range(0, 101)}


def closest(baseline: baselines.Baseline, img, target_bytes: int, bpp: float):
    """(setting, bytes) of the baseline setting whose file size is closest to target_bytes."""
    if baseline.name == "jpeg2000":
        return round(bpp, 4), len(baselines.encode(baseline, img, round(bpp, 4)))
    qs = list(QUALITY_RANGE[baseline.name])
    lo, hi = 0, len(qs) - 1  # file size grows with quality: bisect, then check the neighbours
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(baselines.encode(baseline, img, qs[mid])) < target_bytes:
            lo = mid
        else:
            hi = mid
    sizes = {q: len(baselines.encode(baseline, img, q)) for q in (qs[lo], qs[hi])}
    q = min(sizes, key=lambda k: abs(sizes[k] - target_bytes))
    return q, sizes[q]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--baselines", default="jpeg,webp,avif,jpeg2000")
    args = ap.parse_args()
    items = {it.name: it for it in evaluate.load_items(args.data)}
    rows = [r for r in csv.DictReader(open(args.folder / "rows.csv")) if r["codec"] == "combiner"]
    out = []
    for r in rows:
        it = items[r["item"]]
        line = dict(item=r["item"], prior=r["setting"], bpp=float(r["rate"]), psnr=float(r["psnr"]))
        for name in args.baselines.split(","):
            b = baselines.get(name)
            setting, _ = closest(b, it.original, int(r["bytes"]), float(r["rate"]))
            data = baselines.encode(b, it.original, setting)
            p, _ = it.distortion(baselines.decode(b, data, it.original))
            line.update({f"{name}_setting": setting, f"{name}_bpp": it.rate(len(data)), f"{name}_psnr": p})
        out.append(line)
    with open(args.folder / "matched.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    names = args.baselines.split(",")
    columns = " | ".join(f"{n} bpp / PSNR (setting)" for n in names)
    print(f"| image | prior | combiner bpp | combiner PSNR | {columns} |")
    print("|---" * (4 + len(names)) + "|")
    for x in out:
        cells = [f"{x[f'{n}_bpp']:.3f} / {x[f'{n}_psnr']:.2f} ({x[f'{n}_setting']})" for n in names]
        print(f"| {x['item']} | {x['prior']} | {x['bpp']:.3f} | {x['psnr']:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
