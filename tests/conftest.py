"""Fixtures shared by several test files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TRAIN_PRIORS = Path(__file__).resolve().parents[1] / "training" / "train_priors.py"


@pytest.fixture(scope="module")
def train_priors():
    """training/train_priors.py imported as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("train_priors", TRAIN_PRIORS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
