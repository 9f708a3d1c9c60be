"""Time the A* search on the GPU (``gpu_search``) against the Rust search on the CPU, on the
blocks of one coding round of a Kodak image at photo-q1 (384 patches, blocks of 163 weights,
2^16 candidates each), and check that both pick the same indices.

    python benches/gpu_search_bench.py [--blocks 384] [--cpu-blocks 48] [--json OUT.json]

The CPU is timed on ``--cpu-blocks`` of the blocks (it is slow) and the GPU on the same ones and
on all of them; the speed-up is taken on the same blocks. Prints JSON with the times, the
candidates per second, peak GPU memory of the scores and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

from combiner import gpu_search, rec


def round_of_blocks(n: int, d: int, seed: int = 0):
    """Posteriors like those of a fitted photo-q1 round: about 16 bits of KL per block."""
    rng = np.random.default_rng(seed)
    mu_p = rng.normal(0, 0.05, n * d).astype(np.float32)
    sigma_p = (0.05 * rng.uniform(0.5, 1.5, n * d)).astype(np.float32)
    sigma_q = (sigma_p * rng.uniform(0.6, 1.0, n * d)).astype(np.float32)
    mu_q = (mu_p + sigma_p * rng.normal(0, 0.25, n * d)).astype(np.float32)
    return mu_q, sigma_q, mu_p, sigma_p


def timed(f, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=384)
    ap.add_argument("--cpu-blocks", type=int, default=48)
    ap.add_argument("--dim", type=int, default=163)
    ap.add_argument("--kappa", type=int, default=16)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not gpu_search.available():
        raise SystemExit("needs a CUDA GPU and CuPy")
    import cupy

    n, d, kappa = a.blocks, a.dim, a.kappa
    blocks = round_of_blocks(n, d)
    few = [b[: a.cpu_blocks * d] for b in blocks]
    sizes, ids = np.full(n, d), np.arange(n)
    cand = 2**kappa

    gpu_search.encode_blocks(*few, sizes[: a.cpu_blocks], seed=1, block_ids=ids[: a.cpu_blocks],
                             kappa=kappa)  # compile and warm up
    cupy.get_default_memory_pool().free_all_blocks()
    t_gpu_few, g_few = timed(lambda: gpu_search.encode_blocks(
        *few, sizes[: a.cpu_blocks], seed=1, block_ids=ids[: a.cpu_blocks], kappa=kappa), 3)
    t_gpu_all, _ = timed(lambda: gpu_search.encode_blocks(
        *blocks, sizes, seed=1, block_ids=ids, kappa=kappa), 2)
    gpu_bytes = cupy.get_default_memory_pool().total_bytes()
    t_cpu, c_few = timed(lambda: rec.encode_blocks(
        *few, sizes[: a.cpu_blocks], seed=1, block_ids=ids[: a.cpu_blocks], kappa=kappa,
        early_stop=True))
    result = dict(
        blocks=n, cpu_blocks=a.cpu_blocks, dim=d, kappa=kappa, cpu_count=os.cpu_count(),
        cpu_affinity=len(os.sched_getaffinity(0)), rayon_threads=os.environ.get("RAYON_NUM_THREADS"),
        gpu=cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        same_indices=bool((g_few.indices == c_few.indices).all()),
        same_samples=g_few.samples.tobytes() == c_few.samples.tobytes(),
        cpu_s=t_cpu, cpu_scored=c_few.scored, gpu_s_same_blocks=t_gpu_few, gpu_s_all_blocks=t_gpu_all,
        speedup_same_blocks=t_cpu / t_gpu_few,
        cpu_candidates_per_s=c_few.scored / t_cpu,
        gpu_candidates_per_s=n * cand / t_gpu_all,
        gpu_pool_bytes=int(gpu_bytes),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
