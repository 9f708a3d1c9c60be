"""The encoder's thread count (combiner.threads): explicit, from the environment, or from the
free cores and the size of the signal."""

from __future__ import annotations

import numpy as np
import pytest

import combiner
from combiner import threads


def test_an_explicit_count_is_used_up_to_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.resolve(3, 10) == 3
    assert threads.resolve(64, 10) == 4
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.resolve(None, 10**9) == 2
    assert threads.resolve(1, 10**9) == 1  # the argument wins over the environment
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(threads.ENV, bad)
        with pytest.raises(ValueError, match=threads.ENV):
            threads.resolve(None, 10)
    with pytest.raises(ValueError):
        threads.resolve(0, 10)


def test_the_default_follows_the_work_and_the_free_cores(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "others_running", lambda: 0)
    assert threads.resolve(None, 1024) == 1  # a thumbnail
    assert threads.resolve(None, 3 * threads.POINTS_PER_THREAD) == 3
    assert threads.resolve(None, 10**9) == 8
    monkeypatch.setattr(threads, "others_running", lambda: 6)
    assert threads.resolve(None, 10**9) == 2
    monkeypatch.setattr(threads, "others_running", lambda: 50)
    assert threads.resolve(None, 10**9) == 1


def test_others_running_reads_a_count():
    assert threads.others_running() >= 0


def test_encode_options_take_a_thread_count_and_the_encoder_restores_torch_threads():
    import torch

    with pytest.raises(ValueError, match="threads"):
        combiner.EncodeOptions(threads=0)
    before = torch.get_num_threads()
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    data = combiner.encode(img, prior="thumbnail-q0", fit_steps=5, refine_steps=0, threads=1, progress=False)
    assert combiner.decode(data).shape == (16, 16, 3)
    assert torch.get_num_threads() == before
