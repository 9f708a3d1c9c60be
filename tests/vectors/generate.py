"""Regenerate the golden vectors of the candidate sampler and the search.

Run ONLY when the format changes on purpose, and only for the files that change: these files
pin what every platform and every future build must reproduce bit for bit. They are checked from
Rust (rust/combiner-core/tests/golden.rs) and from Python (tests/test_golden.py).

    python tests/vectors/generate.py [candidates] [candidates_v3] [search] [search_v3]
                                     [permutation] [decoded]   (default: all)

`decoded` pins what the committed bitstreams of tests/data decode to (docs/format.md section 8):
regenerate it only when adding a bitstream, never to follow a change of the decoder.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

from combiner import _core

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PRIORS = ROOT / "python" / "combiner" / "priors"


def f64_hex(values: np.ndarray) -> list[str]:
    return [struct.pack(">d", float(v)).hex() for v in values]


def f32_hex(values: np.ndarray) -> list[str]:
    return [struct.pack(">f", float(v)).hex() for v in values]


def candidates() -> dict:
    """The ChaCha20 generator of format versions 1 and 2."""
    cases = []
    for seed, block, index, dim in [
        (0, 0, 0, 8), (0, 0, 1, 8), (1, 0, 0, 8), (0, 1, 0, 8), (42, 7, 65535, 25),
        (2**64 - 1, 2**40 + 3, 1048575, 64), (123456789, 99, 31337, 1), (5, 5, 5, 3),
    ]:
        z = _core.candidate_normals(seed=seed, block_id=block, dim=dim, index=index, version=2)
        mean = np.linspace(-0.5, 0.5, dim, dtype=np.float32)
        std = np.geomspace(1e-3, 0.7, dim).astype(np.float32)
        sample = _core.decode_block(mean, std, seed=seed, block_id=block, index=index, kappa=20,
                                    version=2)
        cases.append({
            "seed": str(seed), "block_id": str(block), "index": index, "dim": dim,
            "normals_f64_be_hex": f64_hex(z),
            "prior_mean_f32_be_hex": f32_hex(mean), "prior_std_f32_be_hex": f32_hex(std),
            "sample_f32_be_hex": f32_hex(sample),
        })
    return {"description": "Candidate standard normals (binary64) and prior samples (binary32), "
            "big-endian hex bit patterns. seed and block_id are decimal strings (u64).",
            "cases": cases}


# Random123's known-answer vectors of Philox4x32-10 (kat_vectors): counter, key, output.
PHILOX_KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def candidates_v3() -> dict:
    """The Philox generator of format version 3 (docs/format.md section 4.2)."""
    cases = []
    for seed, block, index, dim in [
        (0, 0, 0, 8), (0, 0, 1, 8), (1, 0, 0, 8), (0, 1, 0, 8), (42, 7, 65535, 25),
        (2**64 - 1, 2**40 + 3, 1048575, 64), (123456789, 99, 31337, 1), (5, 5, 5, 3),
        (2**32 + 1, 2**24 - 1, 777, 1000),
    ]:
        z = _core.candidate_normals(seed=seed, block_id=block, dim=dim, index=index, version=3)
        mean = np.linspace(-0.5, 0.5, dim, dtype=np.float32)
        std = np.geomspace(1e-3, 0.7, dim).astype(np.float32)
        sample = _core.decode_block(mean, std, seed=seed, block_id=block, index=index, kappa=20,
                                    version=3)
        cases.append({
            "seed": str(seed), "block_id": str(block), "index": index, "dim": dim,
            "normals_f32_be_hex": f32_hex(z),
            "prior_mean_f32_be_hex": f32_hex(mean), "prior_std_f32_be_hex": f32_hex(std),
            "sample_f32_be_hex": f32_hex(sample),
        })
    return {"description": "Format version 3 (docs/format.md section 4.2): Random123's known answers "
            "of Philox4x32-10 (hex u32 words: counter, key, output), and candidate standard normals "
            "and prior samples (binary32, big-endian hex bit patterns). seed and block_id are decimal "
            "strings (u64).",
            "philox4x32_10": [{"counter": [f"{w:08x}" for w in c], "key": [f"{w:08x}" for w in k],
                               "output": [f"{w:08x}" for w in o]} for c, k, o in PHILOX_KAT],
            "cases": cases}


def searches(version: int = 2) -> dict:
    cases = []
    rng = np.random.default_rng(2026)
    for seed, block, kappa, dim in [(1, 0, 8, 4), (2, 3, 12, 8), (3, 9, 16, 25), (4, 1, 10, 2)]:
        mu_p = rng.normal(0, 0.1, dim).astype(np.float32)
        sigma_p = rng.uniform(0.05, 0.2, dim).astype(np.float32)
        mu_q = (mu_p + rng.normal(0, 0.05, dim)).astype(np.float32)
        sigma_q = (sigma_p * rng.uniform(0.1, 0.9, dim)).astype(np.float32)
        index, sample, _ = _core.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=seed,
                                              block_id=block, kappa=kappa, early_stop=False,
                                              version=version)
        cases.append({
            "seed": str(seed), "block_id": str(block), "kappa": kappa,
            "mu_q": f32_hex(mu_q), "sigma_q": f32_hex(sigma_q),
            "mu_p": f32_hex(mu_p), "sigma_p": f32_hex(sigma_p),
            "index": int(index), "sample_f32_be_hex": f32_hex(sample),
        })
    if version == 2:
        return {"description": "Selected indices of the A* coding search for fixed inputs "
                "(float32 arrays as big-endian hex).", "cases": cases}
    return {"description": f"Selected indices of the version-{version} A* coding search (binary32 "
            "scores) for fixed inputs (float32 arrays as big-endian hex). The search is the "
            "encoder's, not part of the format: these pin its behaviour.", "cases": cases}


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


def prior_file_for(data: bytes) -> Path:
    """The shipped or retired prior file a committed bitstream names (name and hash prefix)."""
    fields, _ = _core.unpack(data)
    name, prefix = fields["prior_id"], fields["prior_hash"]
    for path in [PRIORS / f"{name}.safetensors", PRIORS / "retired" / f"{name}.{prefix.hex()}.safetensors"]:
        if path.is_file() and _core.prior_content_hash(path.read_bytes())[:8] == prefix:
            return path
    raise LookupError(f"no prior file for {name} {prefix.hex()}")


def output_sha256(samples: np.ndarray) -> str:
    """SHA-256 of decoded samples as section 8 defines it (uint8 bytes, int16 little-endian)."""
    return hashlib.sha256(samples.astype(samples.dtype.newbyteorder("<")).tobytes()).hexdigest()


def decoded() -> dict:
    cases = []
    for path in sorted((ROOT / "tests" / "data").glob("*.cmb")):
        data = path.read_bytes()
        prior = prior_file_for(data)
        _, samples = _core.decode(data, prior.read_bytes())
        cases.append({"bitstream": str(path.relative_to(ROOT)), "prior": str(prior.relative_to(ROOT)),
                      "shape": list(samples.shape), "dtype": samples.dtype.name,
                      "sha256": output_sha256(samples)})
    return {"description": "SHA-256 of the output samples every committed bitstream decodes to "
            "with its prior (docs/format.md sections 7 and 8): image bytes in H, W, C order, or "
            "audio samples as int16 little-endian.", "cases": cases}


GENERATORS = {"candidates": candidates, "candidates_v3": candidates_v3, "search": searches,
              "search_v3": lambda: searches(version=3), "permutation": permutations,
              "decoded": decoded}

if __name__ == "__main__":
    for name in sys.argv[1:] or GENERATORS:
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(GENERATORS[name](), indent=1) + "\n")
        print("wrote", path)
