"""Merge ``combiner eval`` folders that coded different items of one dataset (runs split over
processes or machines) into the first one, then rebuild its outputs.

    python scripts/eval/merge_runs.py results/kodak /tmp/kodak-part2 [...]

Rows of the other folders' ``rows.jsonl`` are appended to the first folder's journal (rebuilt
from its ``rows.csv`` in a fresh clone, where journals are not committed) unless it already has
that (codec, setting, item). The summary then covers the items that have a row for
every (codec, setting) in the journal, so that every point of every curve averages the same
items; rows of items still missing a setting stay in the journal for a later merge or
``--resume``. The commands of all runs are kept in the summary, and the machines of all runs in
its ``machines`` list (its ``machine`` stays the first folder's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from combiner import evaluate

SUFFIX = " (merged by scripts/eval/merge_runs.py)"
# Older summaries name the script by its former path.
SUFFIXES = (SUFFIX, " (merged by benches/merge_runs.py)")


def commands_of(summary: dict) -> list[str]:
    """The commands of a summary, without the merge suffix."""
    command = summary["command"]
    for suffix in SUFFIXES:
        command = command.removesuffix(suffix)
    return command.split(" ; ")


def complete_items(rows: list[dict]) -> list[str]:
    """Items with a row for every (codec, setting) present in ``rows``, sorted by name."""
    settings = {(r["codec"], r["setting"]) for r in rows}
    have: dict[str, set] = {}
    for r in rows:
        have.setdefault(r["item"], set()).add((r["codec"], r["setting"]))
    return sorted(item for item, s in have.items() if s == settings)


def journal_conflict(dest: Path) -> str | None:
    """Why ``dest``'s journal cannot be merged into: a row of its ``rows.csv`` that the journal
    lacks or measures differently (a journal left from an earlier run, e.g. in a results folder
    whose ``rows.csv`` was committed since), or None when they agree or one is missing."""
    if not ((dest / "rows.jsonl").exists() and (dest / "rows.csv").exists()):
        return None
    journal = {(r["codec"], r["setting"], r["item"]): r for r in evaluate.read_journal(dest / "rows.jsonl")}
    for row in evaluate.read_csv_rows(dest):
        key = (row["codec"], row["setting"], row["item"])
        if key not in journal:
            return f"rows.jsonl has no row for {key}, which rows.csv has"
        differ = sorted(k for k, v in row.items() if journal[key].get(k) != v)
        if differ:
            return f"rows.jsonl and rows.csv disagree on {key} ({', '.join(differ)})"
    return None


def merge(dest: Path, sources: list[Path]) -> dict:
    conflict = journal_conflict(dest)
    if conflict:
        raise SystemExit(f"{dest}: {conflict}; delete the stale file (a committed folder keeps "
                         "rows.csv only) and merge again")
    rows = evaluate.read_rows(dest)
    seen = {(r["codec"], r["setting"], r["item"]) for r in rows}
    summary = json.loads((dest / "summary.json").read_text())
    commands = commands_of(summary)
    machines = summary.get("machines") or [summary["machine"]]
    for src in sources:
        for r in evaluate.read_journal(src / "rows.jsonl"):
            key = (r["codec"], r["setting"], r["item"])
            if key not in seen:
                rows.append(r)
                seen.add(key)
        other = json.loads((src / "summary.json").read_text())
        commands += commands_of(other)
        machines += [m for m in other.get("machines") or [other["machine"]] if m not in machines]
    (dest / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary["items"] = complete_items(rows)
    summary["command"] = " ; ".join(dict.fromkeys(commands)) + SUFFIX
    summary["machines"] = machines
    (dest / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return evaluate.rebuild(dest)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    merged = merge(Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]])
    print(f"{sys.argv[1]}: {len(merged['items'])} items: {', '.join(merged['items'])}")
