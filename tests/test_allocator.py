"""combiner.allocator: glibc's thresholds are set where they apply, and skipped cleanly elsewhere."""

from __future__ import annotations

import platform
import sys

import pytest
import torch

from combiner import allocator


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc only")
def test_glibc_accepts_the_thresholds_and_tensors_still_work():
    assert allocator.keep_freed_memory()
    for _ in range(3):  # freed blocks are reused: same values as ever
        x = torch.ones(4 << 20)
        assert float(x.sum()) == 4 << 20
        del x


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
