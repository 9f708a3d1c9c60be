"""Fixtures shared by several test files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PRIORS = ROOT / "training" / "train_priors.py"


def _script(name: str, path: Path):
    """A script of the repository (not part of the package) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_priors():
    """training/train_priors.py imported as a module."""
    return _script("train_priors", TRAIN_PRIORS)


@pytest.fixture(scope="module")
def merge_runs():
    """scripts/eval/merge_runs.py imported as a module."""
    return _script("merge_runs", ROOT / "scripts" / "eval" / "merge_runs.py")
