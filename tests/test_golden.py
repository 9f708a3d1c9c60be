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


@pytest.mark.parametrize("version", [1, 2])  # candidates.json pins the ChaCha20 generator
@pytest.mark.parametrize("case", load("candidates.json"))
def test_candidates_bit_exact(case: dict, version: int) -> None:
    seed, block = int(case["seed"]), int(case["block_id"])
    z = rec.candidate_normals(seed=seed, block_id=block, dim=case["dim"], index=case["index"],
                              version=version)
    assert z.view(np.uint64).tolist() == f64s(case["normals_f64_be_hex"]).view(np.uint64).tolist()
    sample = rec.decode_block(
        f32s(case["prior_mean_f32_be_hex"]), f32s(case["prior_std_f32_be_hex"]),
        seed=seed, block_id=block, index=case["index"], kappa=20, version=version,
    )
    expected = f32s(case["sample_f32_be_hex"])
    assert sample.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


@pytest.mark.parametrize("case", load("search.json"))
@pytest.mark.parametrize("early_stop", [False, True])
def test_search_indices(case: dict, early_stop: bool) -> None:
    index, sample = rec.encode_block(
        f32s(case["mu_q"]), f32s(case["sigma_q"]), f32s(case["mu_p"]), f32s(case["sigma_p"]),
        seed=int(case["seed"]), block_id=int(case["block_id"]), kappa=case["kappa"],
        early_stop=early_stop, version=2,  # search.json pins the version-2 search
    )
    assert index == case["index"]
    expected = f32s(case["sample_f32_be_hex"])
    assert sample.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


def test_philox_known_answers_in_the_vectors() -> None:
    """candidates_v3.json carries Random123's known answers (checked against the Rust Philox in
    rust/combiner-core/tests/golden.rs and against the spec decoder's in test_spec_decoder.py)."""
    kat = json.loads((VECTORS / "candidates_v3.json").read_text())["philox4x32_10"]
    assert [case["output"][0] for case in kat] == ["6627e8d5", "408f276d", "d16cfe09"]


@pytest.mark.parametrize("case", load("candidates_v3.json"))
def test_version_3_candidates_bit_exact(case: dict) -> None:
    seed, block = int(case["seed"]), int(case["block_id"])
    z = rec.candidate_normals(seed=seed, block_id=block, dim=case["dim"], index=case["index"],
                              version=3)
    assert z.dtype == np.float32
    assert z.view(np.uint32).tolist() == f32s(case["normals_f32_be_hex"]).view(np.uint32).tolist()
    sample = rec.decode_block(
        f32s(case["prior_mean_f32_be_hex"]), f32s(case["prior_std_f32_be_hex"]),
        seed=seed, block_id=block, index=case["index"], kappa=20, version=3,
    )
    assert sample.view(np.uint32).tolist() == f32s(case["sample_f32_be_hex"]).view(np.uint32).tolist()


@pytest.mark.parametrize("case", load("search_v3.json"))
@pytest.mark.parametrize("early_stop", [False, True])
def test_version_3_search_indices(case: dict, early_stop: bool) -> None:
    index, sample = rec.encode_block(
        f32s(case["mu_q"]), f32s(case["sigma_q"]), f32s(case["mu_p"]), f32s(case["sigma_p"]),
        seed=int(case["seed"]), block_id=int(case["block_id"]), kappa=case["kappa"],
        early_stop=early_stop, version=3,
    )
    assert index == case["index"]
    assert sample.view(np.uint32).tolist() == f32s(case["sample_f32_be_hex"]).view(np.uint32).tolist()


def spec_permutation(seed: int, n: int) -> list[int]:
    """docs/format.md section 4.1 written out in Python, on the raw ChaCha20 keystream: an
    independent check that the Rust shuffle does what the specification says."""
    key = b"combiner/perm/v1" + seed.to_bytes(8, "little") + bytes(8)
    # Lemire's method rejects a word with probability < s / 2^64: 4 words per step is plenty here.
    raw = _core.chacha20_keystream(key, stream=0, word_pos=0, nbytes=8 * (4 * n + 16))
    words = iter(struct.unpack(f"<{len(raw) // 8}Q", raw))
    perm = list(range(n))
    for t in range(n - 1, 0, -1):
        s = t + 1
        while True:
            m = next(words) * s
            if m % 2**64 >= 2**64 % s:
                break
        u = m >> 64
        perm[t], perm[u] = perm[u], perm[t]
    return perm


@pytest.mark.parametrize("case", load("permutation.json"), ids=lambda c: f"{c['seed']}-{c['n']}")
def test_permutation(case: dict) -> None:
    seed, n = int(case["seed"]), case["n"]
    perm = _core.permutation(seed=seed, n=n)
    assert perm.dtype == np.uint32 and sorted(perm.tolist()) == list(range(n))
    assert perm[:64].tolist() == case["first"]
    t = np.arange(1, n + 1, dtype=np.uint64)
    assert int(np.sum(t * perm.astype(np.uint64), dtype=np.uint64)) == int(case["weighted_sum"])
    if n <= 1000:
        assert perm.tolist() == spec_permutation(seed, n)
