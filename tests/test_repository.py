"""The repository reads as a product: its results tables match the committed results, and no
tracked text file carries development history (work sessions, dated notes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Recorded data, not prose: skipped by the history check (binary files are skipped too).
DATA_SUFFIXES = {".safetensors", ".cmb", ".png", ".wav", ".flac", ".so"}  # binary data; JSON records are text
HISTORY = re.compile(
    r"\bsession[- ]?\d+"
    r"|\bsessions? \d+"
    r"|\b(?:since|until|before|after) (?:the )?(?:last |previous |next )?session\b"
    r"|\b(?:tried|measured) (?:on|in) (?:20\d\d|session)",
    re.IGNORECASE,
)
def tracked_text_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    files = []
    for name in out.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or Path(name).suffix in DATA_SUFFIXES or not path.is_file():
            continue
        if b"\0" in path.read_bytes()[:8192]:  # binary
            continue
        files.append(name)
    return files


def history_hits(names) -> list[str]:
    hits = []
    for name in names:
        if name == "tests/test_repository.py":
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{name}:{number}: {line.strip()[:120]}")
    return hits


def test_readme_results_tables_match_results_folder():
    """README.md and results/**/README.md hold exactly the tables that scripts/results_tables.py
    writes from the committed results (summary.json, matched.csv, reference/*.json)."""
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--check"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr


def test_every_readme_table_marker_is_filled():
    """Every dataset has its table in README.md, and every marker pair is closed."""
    readme = (ROOT / "README.md").read_text()
    for dataset in ("kodak", "cifar10", "librispeech"):
        start, end = f"<!-- results:{dataset} -->", f"<!-- /results:{dataset} -->"
        assert readme.count(start) == 1 and readme.count(end) == 1, dataset
        body = readme[readme.index(start) + len(start):readme.index(end)]
        assert "| **combiner**" in body and f"results/{dataset}/rd.png" in body, dataset


def test_no_development_history():
    """No tracked text file mentions work sessions or dated trials: documents and comments say
    what is; git history says how it came to be."""
    hits = history_hits(tracked_text_files())
    assert not hits, "development history in tracked files:\n" + "\n".join(hits)


def test_history_pattern():
    word = "ses" + "sion"  # assembled, so that this file holds no history phrase itself
    for text in (f"{word} 12", f"{word.title()}-5 priors", f"since {word}", f"{word}s 4 and 5",
                 f"measured in {word}", "tried on " + "2024-01-02", f"until {word} 10"):
        assert HISTORY.search(text), text
    for text in ("in a session", "the pytest session fixture", "a session-scoped cache"):
        assert not HISTORY.search(text), text
