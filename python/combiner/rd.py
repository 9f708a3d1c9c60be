"""Rate-distortion summaries of ``combiner eval`` rows: dataset curves, BD-rate, plot, files.

Rows are dicts with the fields of :data:`combiner.evaluate.ROW_FIELDS`, one per (codec, setting,
item). A codec's curve has one point per setting: the mean rate over items, the mean of per-item
PSNRs (``psnr``) and the PSNR of the mean MSE (``psnr_of_mean_mse``).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

CURVE_FIELDS = ("codec", "setting", "items", "rate", "psnr", "psnr_of_mean_mse", "encode_s", "decode_s")


def curves(rows: list[dict], items: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    """(codec -> its points sorted by rate, incomplete settings). A point needs every one of
    ``items``, so that all points average the same items; settings still missing some are
    returned apart as ``{codec, setting, items}``."""
    by_setting: dict[tuple[str, str], list[dict]] = defaultdict(list)
    wanted = set(items)
    for r in (r for r in rows if r["item"] in wanted):  # a journal may hold other items too
        by_setting[(r["codec"], r["setting"])].append(r)
    out: dict[str, list[dict]] = defaultdict(list)
    incomplete = []
    for (name, setting), group in by_setting.items():
        if {r["item"] for r in group} != wanted:
            incomplete.append(dict(codec=name, setting=setting, items=len(group)))
            continue
        mse = np.array([r["mse"] for r in group], dtype=np.float64)
        peak2 = 255.0**2 if group[0]["unit"] == "bpp" else 1.0
        out[name].append(dict(
            codec=name, setting=setting, items=len(group),
            rate=float(np.mean([r["rate"] for r in group])),
            psnr=float(np.mean([r["psnr"] for r in group])),
            psnr_of_mean_mse=float(10 * math.log10(peak2 / mse.mean())) if mse.mean() > 0 else math.inf,
            encode_s=float(np.mean([r["encode_s"] for r in group])),
            decode_s=float(np.mean([r["decode_s"] for r in group])),
        ))
    return {k: sorted(v, key=lambda p: p["rate"]) for k, v in out.items()}, incomplete


def bd_table(curve_map: dict[str, list[dict]], anchor: str) -> dict[str, dict]:
    """BD-rate (%, negative = fewer bits than the anchor at equal PSNR) and BD-PSNR (dB) of each
    codec against ``anchor``, or the reason it could not be computed."""
    import bjontegaard

    if anchor not in curve_map:
        raise ValueError(f"anchor {anchor!r} was not evaluated (have: {', '.join(curve_map)})")
    ref = _monotone(curve_map[anchor])
    table = {}
    for name, points in curve_map.items():
        if name == anchor:
            continue
        test = _monotone(points)
        entry: dict = {"anchor": anchor, "bd_rate_percent": None, "bd_psnr_db": None}
        if len(test) < 2 or len(ref) < 2:
            entry["note"] = "needs at least two rate points per curve"
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    args = ([p["rate"] for p in ref], [p["psnr"] for p in ref],
                            [p["rate"] for p in test], [p["psnr"] for p in test])
                    entry["bd_rate_percent"] = float(bjontegaard.bd_rate(
                        *args, method="akima", require_matching_points=False))
                    entry["bd_psnr_db"] = float(bjontegaard.bd_psnr(
                        *args, method="akima", require_matching_points=False))
                except Exception as e:  # the package raises on curves it cannot interpolate
                    entry["note"] = f"not computable: {e}"
            messages = sorted({str(w.message) for w in caught})
            if messages:
                entry["warning"] = "; ".join(messages)
            if any("do not overlap" in m for m in messages) or any(
                    v is not None and not math.isfinite(v)
                    for v in (entry["bd_rate_percent"], entry["bd_psnr_db"])):
                # The package still returns a number here; it has no meaning, so none is reported.
                entry["bd_rate_percent"] = entry["bd_psnr_db"] = None
                entry.setdefault("note", "the curves do not overlap: BD is undefined")
        table[name] = entry
    return table


def _finite(points: list[dict]) -> list[dict]:
    return [p for p in points if math.isfinite(p["psnr"]) and p["rate"] > 0]


def _monotone(points: list[dict]) -> list[dict]:
    """The points that raise both rate and PSNR over every cheaper point: interpolation needs a
    strictly increasing curve, and a setting that saturates (e.g. a codec's minimum file size on a
    tiny image) adds no information."""
    kept: list[dict] = []
    for p in sorted(_finite(points), key=lambda q: (q["rate"], -q["psnr"])):
        if not kept or (p["rate"] > kept[-1]["rate"] and p["psnr"] > kept[-1]["psnr"]):
            kept.append(p)
    return kept


def plot(curve_map: dict[str, list[dict]], path: Path, *, title: str, unit: str,
         reference: dict[str, list] | None = None) -> None:
    """An RD plot (PNG): one line per codec, dashed published reference curves if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for name, points in curve_map.items():
        pts = _finite(points)
        style = dict(linewidth=2.5, marker="o") if name == "combiner" else dict(marker=".")
        ax.plot([p["rate"] for p in pts], [p["psnr"] for p in pts], label=name, **style)
    for name, pairs in (reference or {}).items():
        ax.plot([r for r, _ in pairs], [d for _, d in pairs], linestyle="--", marker="x",
                label=f"{name} (published)")
    ax.set_xlabel("bits per pixel" if unit == "bpp" else "kbit/s")
    ax.set_ylabel("PSNR (dB), mean over items")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_csv(rows: list[dict], fields: tuple[str, ...], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_json(obj: dict, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, allow_nan=True) + "\n")
