"""Golden vectors (tests/vectors/) checked from Python; Rust checks the same files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from combiner import _core, rec

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> list[dict]:
    return json.loads((VECTORS / name).read_text())["cases"]


def f64s(hexes: list[str]) -> np.ndarray:
    return np.array([struct.unpack(">d", bytes.fromhex(h))[0] for h in hexes], dtype=np.float64)


def f32s(hexes: list[str]) -> np.ndarray:
    return np.array([struct.unpack(">f", bytes.fromhex(h))[0] for h in hexes], dtype=np.float32)


@pytest.mark.parametrize("case", load("chacha20_rfc8439.json"), ids=lambda c: c["name"])
def test_chacha20_rfc8439(case: dict) -> None:
    nonce = bytes.fromhex(case["nonce"])
    high = int.from_bytes(nonce[:4], "little")
    stream = int.from_bytes(nonce[4:], "little")
    block = _core.chacha20_keystream(
        bytes.fromhex(case["key"]), stream=stream,
        word_pos=(case["counter"] | (high << 32)) * 16, nbytes=64,
    )
    assert block.hex() == case["keystream"]


@pytest.mark.parametrize("case", load("candidates.json"))
def test_candidates_bit_exact(case: dict) -> None:
    seed, block = int(case["seed"]), int(case["block_id"])
    z = rec.candidate_normals(seed=seed, block_id=block, dim=case["dim"], index=case["index"])
    assert z.view(np.uint64).tolist() == f64s(case["normals_f64_be_hex"]).view(np.uint64).tolist()
    sample = rec.decode_block(
        f32s(case["prior_mean_f32_be_hex"]), f32s(case["prior_std_f32_be_hex"]),
        seed=seed, block_id=block, index=case["index"], kappa=20,
    )
    expected = f32s(case["sample_f32_be_hex"])
    assert sample.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


@pytest.mark.parametrize("case", load("search.json"))
@pytest.mark.parametrize("early_stop", [False, True])
def test_search_indices(case: dict, early_stop: bool) -> None:
    index, sample = rec.encode_block(
        f32s(case["mu_q"]), f32s(case["sigma_q"]), f32s(case["mu_p"]), f32s(case["sigma_p"]),
        seed=int(case["seed"]), block_id=int(case["block_id"]), kappa=case["kappa"],
        early_stop=early_stop,
    )
    assert index == case["index"]
    expected = f32s(case["sample_f32_be_hex"])
    assert sample.view(np.uint32).tolist() == expected.view(np.uint32).tolist()
