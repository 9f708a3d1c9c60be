"""Markdown tables from ``combiner eval`` summaries, for results/README.md.

    python scripts/eval/rd_tables.py [--rebuild] results/kodak results/cifar10 results/librispeech

``--rebuild`` first rewrites each folder's summary from its ``rows.jsonl`` (see
``combiner.evaluate.rebuild``): for a run that was stopped before it finished.

Prints, per folder, one row per codec and setting (rate, mean PSNR, PSNR of the mean MSE, encode
and decode time per item) and the BD table, straight from ``summary.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(folder: Path) -> str:
    s = json.loads((folder / "summary.json").read_text())
    unit = s["unit"]
    lines = [f"### {folder.name}: {s['data']} ({len(s['items'])} items: {', '.join(s['items'][:4])}"
             f"{' ...' if len(s['items']) > 4 else ''})", "",
             f"| codec | setting | {unit} | PSNR (dB) | PSNR of mean MSE | encode s/item | decode s/item |",
             "|---|---|---|---|---|---|---|"]
    for points in s["curves"].values():
        for p in points:
            lines.append(f"| {p['codec']} | {p['setting']} | {p['rate']:.4f} | {p['psnr']:.2f} | "
                         f"{p['psnr_of_mean_mse']:.2f} | {p['encode_s']:.3g} | {p['decode_s']:.3g} |")
    if s["bd"]:
        lines += ["", "| codec | BD-rate vs anchor | BD-PSNR (dB) | note |", "|---|---|---|---|"]
        for name, e in s["bd"].items():
            rate = "n/a" if e["bd_rate_percent"] is None else f"{e['bd_rate_percent']:+.1f} % vs {e['anchor']}"
            dpsnr = "n/a" if e["bd_psnr_db"] is None else f"{e['bd_psnr_db']:+.2f}"
            note = "; ".join(x for x in (e.get("note"), e.get("warning")) if x)
            lines.append(f"| {name} | {rate} | {dpsnr} | {note} |")
    machines = "; ".join(
        f"{m['processor']}, {m['device']}"
        f"{(', ' + str(m['cpu_count']) + ' CPUs') if m.get('cpu_count') else ''}, torch {m['torch']} with "
        f"{m['torch_threads']} thread(s)" for m in s.get("machines") or [s["machine"]])
    lines += ["", f"Command: `{s.get('command')}`", "",
              f"Machine{'s' if len(s.get('machines') or []) > 1 else ''}: {machines}. "
              f"Encoder overrides: {s['encoder_overrides'] or 'none'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    folders = [a for a in sys.argv[1:] if a != "--rebuild"]
    if "--rebuild" in sys.argv:  # redo summary.json, curves.csv and rd.png from rows.jsonl first
        from combiner import evaluate

        for f in folders:
            evaluate.rebuild(f)
    print("\n\n".join(table(Path(f)) for f in folders))
