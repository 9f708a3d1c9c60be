"""Rate-distortion summaries of ``combiner eval`` rows: dataset curves, BD-rate, plot, files.

Rows are dicts with the fields of :data:`combiner.evaluate.ROW_FIELDS`, one per (codec, setting,
item). A codec's curve has one point per setting: the mean rate over items, the mean of per-item
PSNRs (``psnr``) and the PSNR of the mean MSE (``psnr_of_mean_mse``).

Lossless points: an item coded exactly (MSE 0) has an infinite PSNR, and so has the mean PSNR of
any setting that codes one of its items exactly (``lossless_items`` counts them). Such points are
kept in the rows and curves, left out of BD-rate (which interpolates finite PSNRs; the entry says
how many were left out, or why none could be computed) and drawn above the plot's finite points
with their own marker. JSON has no infinity: JSON files (``summary.json``, ``rows.jsonl``) write
every non-finite number as ``null``, CSV files write ``inf``.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from combiner import fileio

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
            lossless_items=int(np.sum(mse == 0)),
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
        left_out = {n: k for n, k in ((anchor, _lossless(curve_map[anchor])), (name, _lossless(points)))
                    if k}
        if left_out:
            entry["lossless_left_out"] = left_out
        if len(test) < 2 or len(ref) < 2:
            reasons = [_too_few(f"the anchor {anchor}", curve_map[anchor], ref),
                       _too_few(name, points, test)]
            entry["note"] = ("; ".join(r for r in reasons if r) + ": BD needs at least two points "
                             "per curve with finite PSNR, rising in rate and PSNR")
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


def _lossless(points: list[dict]) -> int:
    """How many of the points have an infinite PSNR (an item coded exactly)."""
    return sum(1 for p in points if p["psnr"] == math.inf)


def _too_few(label: str, points: list[dict], kept: list[dict]) -> str | None:
    """Why a curve has fewer than two points BD can use (None if it has enough)."""
    if len(kept) >= 2:
        return None
    lossless = _lossless(points)
    flat = len(_finite(points)) - len(kept)
    reasons = [f"{lossless} coded exactly with PSNR = inf" if lossless else "",
               f"{flat} adding no rate or PSNR over a cheaper one" if flat else ""]
    why = " and ".join(w for w in reasons if w)
    return f"{label} has {len(kept)} usable of {len(points)} point(s)" + (f" ({why})" if why else "")


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
    """An RD plot (PNG): one line per codec, dashed published reference curves if given.

    Points with an infinite PSNR are drawn as triangles on a dotted line 3 dB above the highest
    finite PSNR, labelled as such (a line through them would have no meaning)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ceiling = _lossless_level(curve_map, reference or {})
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for name, points in curve_map.items():
        pts = _finite(points)
        style = dict(linewidth=2.5, marker="o") if name == "combiner" else dict(marker=".")
        (line,) = ax.plot([p["rate"] for p in pts], [p["psnr"] for p in pts],
                          label=name if pts else "_nolegend_", **style)
        exact = [p["rate"] for p in points if p["psnr"] == math.inf]
        if exact:
            ax.plot(exact, [ceiling] * len(exact), linestyle="none", marker="^", markersize=8,
                    color=line.get_color(), label=f"{name}: PSNR = inf")
    if any(p["psnr"] == math.inf for pts in curve_map.values() for p in pts):
        ax.axhline(ceiling, color="grey", linestyle=":", linewidth=1)
        ax.annotate("PSNR = inf (coded exactly)", (0.01, ceiling), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(0, 4), fontsize=8, color="grey")
    for name, pairs in (reference or {}).items():
        ax.plot([r for r, _ in pairs], [d for _, d in pairs], linestyle="--", marker="x",
                label=f"{name} (published)")
    ax.set_xlabel("bits per pixel" if unit == "bpp" else "kbit/s")
    ax.set_ylabel("PSNR (dB), mean over items")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with fileio.replacing(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _lossless_level(curve_map: dict[str, list[dict]], reference: dict[str, list]) -> float:
    """The PSNR (dB) at which infinite-PSNR points are drawn: 3 dB above every finite one
    (40 dB when there is none)."""
    finite = [p["psnr"] for pts in curve_map.values() for p in _finite(pts)]
    finite += [d for pairs in reference.values() for _, d in pairs]
    return (max(finite) if finite else 40.0) + 3.0


def write_csv(rows: list[dict], fields: tuple[str, ...], path: Path) -> None:
    """Write ``rows`` as CSV (``inf`` for an infinite PSNR), whole or not at all."""
    with fileio.replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def jsonable(obj):
    """``obj`` (dicts, lists, tuples, numbers, strings) with every non-finite float as None:
    JSON has no infinity or NaN (see the module docstring)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def json_line(obj: dict) -> str:
    """One line of a JSON Lines file (non-finite numbers as null), without its newline."""
    return json.dumps(jsonable(obj), allow_nan=False)


def write_json(obj: dict, path: Path) -> None:
    """Write ``obj`` as valid JSON (non-finite numbers as null), whole or not at all."""
    fileio.write_text(path, json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n")
