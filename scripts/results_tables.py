"""The results tables of README.md and results/**/README.md, made from the committed results.

    python scripts/results_tables.py            # rewrite the tables in place
    python scripts/results_tables.py --check    # exit 1, with a diff, where a table differs

A table lives between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in a Markdown file
(README.md, results/README.md and results/*/README.md are searched). NAME is

- a dataset (``kodak``, ``cifar10``, ``librispeech``): the shipped defaults at each of their
  levels against the baselines and the published curves, at combiner's own rates;
- ``DATASET-points``: every rate-distortion point of the dataset's run, with encode and decode
  times, and its BD table;
- ``headline``: one line per dataset, at the default quality.

Everything comes from the committed files: ``results/DATASET/summary.json`` (curves, BD table,
items), ``results/DATASET/matched.csv`` where it exists (each baseline re-coded at combiner's file
size, image by image) and ``results/reference/DATASET.json`` (published points). A baseline
without ``matched.csv``, and every published curve, is read at combiner's rate by linear
interpolation in log-rate between its two neighbouring points, and not at all outside its range.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
DATASETS = {  # folder -> (title, what an item is, plural)
    "kodak": ("Kodak", "image", "images"),
    "cifar10": ("CIFAR-10", "test image", "test images"),
    "librispeech": ("LibriSpeech test-other", "clip, first 3 s", "clips, first 3 s"),
}
DEFAULT_LEVEL = 1
CODEC_NAMES = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "jpeg2000": "JPEG 2000",
               "mp3": "MP3", "vorbis": "Vorbis", "opus": "Opus"}
UNITS = {"bpp": "bpp", "kbps": "kbit/s"}
DASH = "—"
MARKER = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results:\2 -->)", re.S)


def load(dataset: str) -> dict:
    folder = RESULTS / dataset
    summary = json.loads((folder / "summary.json").read_text())
    matched = None
    if (folder / "matched.csv").exists():
        with open(folder / "matched.csv", newline="") as f:
            matched = list(csv.DictReader(f))
    reference = json.loads((RESULTS / "reference" / f"{dataset}.json").read_text())
    return dict(summary=summary, matched=matched, reference=reference)


def name(codec: str) -> str:
    return CODEC_NAMES.get(codec, codec)


def rate_text(rate: float, unit: str) -> str:
    return f"{rate:.3f} bpp" if unit == "bpp" else f"{rate:.2f} kbit/s"


def at_rate(points: list[tuple[float, float]], rate: float) -> float | None:
    """PSNR of a curve at ``rate``, linear in log-rate between its neighbours; None outside it."""
    by_rate: dict[float, float] = {}
    for r, p in sorted(points):
        by_rate.setdefault(r, p)
    pts = sorted(by_rate.items())
    if not pts or rate < pts[0][0] or rate > pts[-1][0]:
        return None
    for (r0, p0), (r1, p1) in zip(pts, pts[1:]):
        if r0 <= rate <= r1:
            t = (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return p0 + t * (p1 - p0)
    return pts[0][1]  # a curve of one point, at exactly that rate


def combiner_points(summary: dict) -> list[dict]:
    return sorted(summary["curves"]["combiner"], key=lambda p: p["rate"])


def baselines(summary: dict) -> list[str]:
    return [c for c in summary["curves"] if c != "combiner"]


def overlap_note(bd: dict) -> str:
    return "*" if "overlap" in (bd.get("warning") or "") else ""


def bd_cell(summary: dict, codec: str) -> str:
    if codec == summary["anchor"]:
        return "anchor"
    bd = summary["bd"].get(codec)
    if not bd or bd.get("bd_rate_percent") is None:
        return DASH
    return f"{bd['bd_rate_percent']:+.1f} %{overlap_note(bd)}"


def dataset_table(dataset: str, base: Path, here: Path) -> str:
    """The shipped defaults against the baselines and the published curves, at combiner's rates."""
    d = load(dataset)
    s, matched = d["summary"], d["matched"]
    title, _, plural = DATASETS[dataset]
    unit = s["unit"]
    levels = combiner_points(s)
    show_bd = (s["bd"].get("combiner") or {}).get("bd_rate_percent") is not None
    folder = RESULTS / dataset
    links = [f"[RD plot]({rel(folder / 'rd.png', base)})"]
    if here != folder / "README.md":
        links.append(f"[details]({rel(folder / 'README.md', base)})")
    lines = [f"**{title}**: {len(s['items'])} {plural}, mean of per-item PSNR at combiner's rate "
             f"({', '.join(links)}).", ""]
    head = ["PSNR (dB)"] + [f"`{p['setting']}`, {rate_text(p['rate'], unit)}" for p in levels]
    if matched:
        head.append(f"{plural.split(',')[0]} where combiner is higher")
    if show_bd:
        head.append(f"BD-rate vs {name(s['anchor'])}")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, cells: list[str], extra: list[str]) -> None:
        lines.append("| " + " | ".join([label] + cells + extra) + " |")

    extra = [""] if matched else []
    row("**combiner**, shipped defaults", [f"**{p['psnr']:.2f}**" for p in levels],
        extra + ([bd_cell(s, "combiner")] if show_bd else []))
    for codec in baselines(s):
        if matched:
            cells, wins = [], []
            for p in levels:
                rows = [r for r in matched if r["prior"] == p["setting"]]
                cells.append(f"{mean(float(r[codec + '_psnr']) for r in rows):.2f}")
                wins.append(f"{sum(float(r['psnr']) > float(r[codec + '_psnr']) for r in rows)} of {len(rows)}")
            ext = [", ".join(wins)]
        else:
            curve = [(p["rate"], p["psnr"]) for p in s["curves"][codec]]
            cells = [fmt(at_rate(curve, p["rate"])) for p in levels]
            ext = []
        row(name(codec), cells, ext + ([bd_cell(s, codec)] if show_bd else []))
    for ref, points in d["reference"].items():
        curve = [(r, p) for r, p in points]
        row(f"{ref} (published)", [fmt(at_rate(curve, p["rate"])) for p in levels],
            extra + ([""] if show_bd else []))
    lines.append("")
    read = (f"read at combiner's rate by linear interpolation in log-rate between their points; "
            f"{DASH} where a curve does not reach that rate.")
    if matched:
        lines.append(f"Baselines: each coded at combiner's file size, image by image "
                     f"(`matched.csv`). Published curves: {read}")
    else:
        lines.append(f"Baselines (measured in the same run) and published curves: {read}")
    if show_bd:
        lines[-1] += (f" BD-rate: the whole curve against {name(s['anchor'])}'s, over their overlap"
                      f" (`bjontegaard`, Akima)")
        if any(overlap_note(bd) for bd in s["bd"].values()):
            lines[-1] += "; * the curves overlap on less than 75 % of their range"
        lines[-1] += "."
    return "\n".join(lines) + "\n"


def points_table(dataset: str) -> str:
    """Every RD point of the run (codec, setting, rate, PSNR, times) and its BD table."""
    s = load(dataset)["summary"]
    unit = UNITS[s["unit"]]
    lines = [f"| codec | setting | {unit} | PSNR (dB) | PSNR of mean MSE (dB) | encode s/item | "
             "decode s/item |", "|---|---|---|---|---|---|---|"]
    for codec in baselines(s) + ["combiner"]:
        for p in s["curves"][codec]:
            lines.append(f"| {codec} | {p['setting']} | {p['rate']:.4f} | {p['psnr']:.2f} | "
                         f"{p['psnr_of_mean_mse']:.2f} | {p['encode_s']:.3g} | {p['decode_s']:.3g} |")
    if s["bd"]:
        lines += ["", f"| codec | BD-rate vs {s['anchor']} | BD-PSNR (dB) | overlap of the curves |",
                  "|---|---|---|---|"]
        for codec, bd in s["bd"].items():
            overlaps = re.findall(r"Insufficient curve overlap: '([\d.]+)'", bd.get("warning") or "")
            note = (", ".join(f"{float(o):.0f} %" for o in overlaps) + " (under 75 %)") if overlaps else ""
            if bd.get("bd_rate_percent") is None:
                lines.append(f"| {codec} | {DASH} | {DASH} | {bd.get('warning') or ''} |")
            else:
                lines.append(f"| {codec} | {bd['bd_rate_percent']:+.1f} % | {bd['bd_psnr_db']:+.2f} | {note} |")
    return "\n".join(lines) + "\n"


def headline(base: Path) -> str:
    """One line per dataset: the default quality against the anchor and RECOMBINER."""
    lines = ["| dataset | combiner, default quality | the BD anchor at that rate | "
             "RECOMBINER (published) at that rate | BD-rate vs the anchor, all levels |",
             "|---|---|---|---|---|"]
    for dataset, (title, _, plural) in DATASETS.items():
        d = load(dataset)
        s = d["summary"]
        p = next(p for p in combiner_points(s) if p["setting"].endswith(f"-q{DEFAULT_LEVEL}"))
        anchor = s["anchor"]
        if d["matched"]:
            rows = [r for r in d["matched"] if r["prior"] == p["setting"]]
            anchor_psnr = f"{mean(float(r[anchor + '_psnr']) for r in rows):.2f} dB (same file size)"
        else:
            anchor_psnr = fmt(at_rate([(q["rate"], q["psnr"]) for q in s["curves"][anchor]], p["rate"]), " dB")
        rec = fmt(at_rate([tuple(x) for x in d["reference"]["RECOMBINER"]], p["rate"]), " dB")
        bd = s["bd"].get("combiner")
        bd_text = f"{bd['bd_rate_percent']:+.1f} %" if bd and bd.get("bd_rate_percent") is not None \
            else f"{DASH} (one level measured)"
        link = rel(RESULTS / dataset / "README.md", base)
        lines.append(f"| [{title}]({link}), {len(s['items'])} {plural} | `{p['setting']}`: "
                     f"{rate_text(p['rate'], s['unit'])}, **{p['psnr']:.2f} dB** | {name(anchor)}: "
                     f"{anchor_psnr} | {rec} | {bd_text} |")
    return "\n".join(lines) + "\n"


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def fmt(value: float | None, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.2f}{suffix}"


def rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def render(table: str, md: Path) -> str:
    if table == "headline":
        return headline(md.parent)
    if table.endswith("-points") and table[: -len("-points")] in DATASETS:
        return points_table(table[: -len("-points")])
    if table in DATASETS:
        return dataset_table(table, md.parent, md)
    raise SystemExit(f"{md.relative_to(ROOT)}: unknown results table {table!r}")


def files() -> list[Path]:
    return [ROOT / "README.md", RESULTS / "README.md"] + sorted(RESULTS.glob("*/README.md"))


def update(text: str, md: Path) -> str:
    return MARKER.sub(lambda m: m.group(1) + render(m.group(2), md) + m.group(4), text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for md in files():
        if not md.exists():
            continue
        old = md.read_text()
        new = update(old, md)
        if new == old:
            continue
        stale.append(md)
        if check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True), str(md.relative_to(ROOT)),
                str(md.relative_to(ROOT)) + " (from results/)"))
        else:
            md.write_text(new)
            print(f"updated {md.relative_to(ROOT)}")
    if check and stale:
        print(f"\nresults tables out of date in: {', '.join(str(m.relative_to(ROOT)) for m in stale)}"
              f"\nrun: python scripts/results_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
