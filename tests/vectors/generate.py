"""Regenerate the golden vectors of the candidate sampler and the search.

Run ONLY when the format changes on purpose, and only for the files that change: these files
pin what every platform and every future build must reproduce bit for bit. They are checked from
Rust (rust/combiner-core/tests/golden.rs) and from Python (tests/test_golden.py).

    python tests/vectors/generate.py [candidates] [search] [permutation]   (default: all)
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

from combiner import _core

HERE = Path(__file__).parent


def f64_hex(values: np.ndarray) -> list[str]:
    return [struct.pack(">d", float(v)).hex() for v in values]


def f32_hex(values: np.ndarray) -> list[str]:
    return [struct.pack(">f", float(v)).hex() for v in values]


def candidates() -> dict:
    cases = []
    for seed, block, index, dim in [
        (0, 0, 0, 8), (0, 0, 1, 8), (1, 0, 0, 8), (0, 1, 0, 8), (42, 7, 65535, 25),
        (2**64 - 1, 2**40 + 3, 1048575, 64), (123456789, 99, 31337, 1), (5, 5, 5, 3),
    ]:
        z = _core.candidate_normals(seed=seed, block_id=block, dim=dim, index=index)
        mean = np.linspace(-0.5, 0.5, dim, dtype=np.float32)
        std = np.geomspace(1e-3, 0.7, dim).astype(np.float32)
        sample = _core.decode_block(mean, std, seed=seed, block_id=block, index=index, kappa=20)
        cases.append({
            "seed": str(seed), "block_id": str(block), "index": index, "dim": dim,
            "normals_f64_be_hex": f64_hex(z),
            "prior_mean_f32_be_hex": f32_hex(mean), "prior_std_f32_be_hex": f32_hex(std),
            "sample_f32_be_hex": f32_hex(sample),
        })
    return {"description": "Candidate standard normals (binary64) and prior samples (binary32), "
            "big-endian hex bit patterns. seed and block_id are decimal strings (u64).",
            "cases": cases}


def searches() -> dict:
    cases = []
    rng = np.random.default_rng(2026)
    for seed, block, kappa, dim in [(1, 0, 8, 4), (2, 3, 12, 8), (3, 9, 16, 25), (4, 1, 10, 2)]:
        mu_p = rng.normal(0, 0.1, dim).astype(np.float32)
        sigma_p = rng.uniform(0.05, 0.2, dim).astype(np.float32)
        mu_q = (mu_p + rng.normal(0, 0.05, dim)).astype(np.float32)
        sigma_q = (sigma_p * rng.uniform(0.1, 0.9, dim)).astype(np.float32)
        index, sample, _ = _core.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=seed,
                                              block_id=block, kappa=kappa, early_stop=False)
        cases.append({
            "seed": str(seed), "block_id": str(block), "kappa": kappa,
            "mu_q": f32_hex(mu_q), "sigma_q": f32_hex(sigma_q),
            "mu_p": f32_hex(mu_p), "sigma_p": f32_hex(sigma_p),
            "index": int(index), "sample_f32_be_hex": f32_hex(sample),
        })
    return {"description": "Selected indices of the A* coding search for fixed inputs "
            "(float32 arrays as big-endian hex).", "cases": cases}


def weighted_sum(perm: np.ndarray) -> int:
    """sum over t of (t + 1) * perm[t], mod 2^64: a digest both languages compute exactly."""
    t = np.arange(1, len(perm) + 1, dtype=np.uint64)
    return int(np.sum(t * perm.astype(np.uint64), dtype=np.uint64))


def permutations() -> dict:
    cases = []
    for seed, n in [(0, 1), (0, 2), (0, 10), (1, 10), (7, 64), (2**64 - 1, 33), (12345, 313632)]:
        perm = _core.permutation(seed=seed, n=n)
        cases.append({"seed": str(seed), "n": n, "first": perm[:64].tolist(),
                      "weighted_sum": str(weighted_sum(perm))})
    return {"description": "The spread-block permutation (docs/format.md, section 4.1): its first "
            "64 entries and sum over t of (t + 1) * pi[t] mod 2^64. seed and weighted_sum are "
            "decimal strings (u64).", "cases": cases}


GENERATORS = {"candidates": candidates, "search": searches, "permutation": permutations}

if __name__ == "__main__":
    for name in sys.argv[1:] or GENERATORS:
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(GENERATORS[name](), indent=1) + "\n")
        print("wrote", path)
