"""The Rust A* searches against a fair vectorised NumPy search, one thread each, in the same run.

    python -m pytest benches/bench_rec.py --benchmark-only -s

Every search scores the 2^16 candidates of one block of dimension d: prior samples m + s z, the
log density ratio log q/p summed over the block, the ordered Gumbel sequence, argmax. The NumPy
side is float32 throughout and one vectorised pass (NumPy's own normal generator, which is
faster than a portable one); NumPy runs on one thread. The Rust side is
`combiner.rec.encode_block` on one thread: the version-2 search (ChaCha20 candidates, binary64
scores) and the version-3 search (Philox candidates, binary32 scores), each exhaustive and with
`early_stop` (version 2: the exact early stop; version 3: the exact early stop and per-candidate
skip). The summary prints each time, its ratio to NumPy's, the candidate normals per second per
core (2^16 d divided by the time: for a pruned search, the rate of the whole search it replaces)
and the peak resident memory of each search, measured in a fresh child process. How much the
pruning saves depends on the block's candidates (how soon a good one turns up), so a second
table times each search over the same 16 blocks with different ids (NumPy: 16 seeds).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from combiner import rec

KAPPA = 16
DIMS = (8, 25, 64)
REPEAT = 7
# name -> (version, early_stop) of the Rust searches.
RUST = {"v2": (2, False), "v2 stop": (2, True), "v3": (3, False), "v3 stop+skip": (3, True)}


def block(d: int):
    """A block with a KL of about 11 nats (16 bits), as the codec produces."""
    rng = np.random.default_rng(d)
    mu_p = np.zeros(d, np.float32)
    sigma_p = np.full(d, 0.1, np.float32)
    sigma_q = np.full(d, 0.1 * np.exp(-11.0 / d), np.float32)
    mu_q = (0.01 * rng.standard_normal(d)).astype(np.float32)
    return mu_q, sigma_q, mu_p, sigma_p


def numpy_search(mu_q, sigma_q, mu_p, sigma_p, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = 1 << KAPPA
    z = rng.standard_normal((n, mu_q.size), dtype=np.float32)
    x = mu_p + sigma_p * z
    log_ratio = np.sum(0.5 * z * z - 0.5 * np.square((x - mu_q) / sigma_q), axis=1)
    log_ratio += np.sum(np.log(sigma_p / sigma_q))
    gumbel = -np.log(np.cumsum(rng.standard_exponential(n, dtype=np.float32)))
    return int(np.argmax(log_ratio + gumbel))


def rust_search(mu_q, sigma_q, mu_p, sigma_p, version: int = 3, early_stop: bool = False,
                block_id: int = 1) -> int:
    return rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=0, block_id=block_id, kappa=KAPPA,
                            early_stop=early_stop, threads=1, version=version)[0]


def searches(d: int, block_id: int = 1) -> dict[str, Callable[[], int]]:
    """Each search of one block of dimension d: block id `block_id` (NumPy: seed `block_id`)."""
    args = block(d)
    out: dict[str, Callable[[], int]] = {"numpy": lambda: numpy_search(*args, seed=block_id)}
    for name, (version, early) in RUST.items():
        out[name] = lambda v=version, e=early: rust_search(*args, version=v, early_stop=e,
                                                           block_id=block_id)
    return out


def best_times(fns: dict[str, Callable[[], int]], repeat: int = REPEAT) -> dict[str, float]:
    """The best wall time of each function, taking turns so that a busy neighbour on the machine
    slows every one of them alike."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def _child(name: str, d: int, queue) -> None:  # runs in the child process
    os.environ["OMP_NUM_THREADS"] = "1"
    fn = searches(d)[name]
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so the peak measured after the
    # call belongs to the call, not to the imports before it.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    queue.put((_status_kib("VmHWM") - before) / 1024.0)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mib(name: str, d: int) -> float:
    ctx = mp.get_context("spawn")  # not fork: a forked child would inherit a dead rayon pool
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, d, queue))
    proc.start()
    peak = queue.get()
    proc.join()
    return peak


def machine() -> str:
    model = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} logical cores, Python {platform.python_version()}, NumPy {np.__version__}"


def summary(blocks: int = 16) -> str:
    """The same-run tables: times, ratios to NumPy, candidate normals per second per core, memory;
    then the times over `blocks` blocks."""
    names = ["numpy", *RUST]
    lines = [f"machine: {machine()}",
             f"one block (id 1), 2^{KAPPA} candidates; one thread each; best of {REPEAT} (round robin)",
             "", f"{'d':>3} {'search':<13} {'ms':>8} {'vs numpy':>9} {'M normals/s/core':>17} "
             f"{'peak +MiB':>10}"]
    for d in DIMS:
        t = best_times(searches(d))
        for name in names:
            rate = (d << KAPPA) / t[name] / 1e6
            lines.append(f"{d:>3} {name:<13} {t[name] * 1e3:>8.2f} {t['numpy'] / t[name]:>8.1f}x "
                         f"{rate:>17.0f} {peak_rss_mib(name, d):>10.1f}")
        lines.append("")
    lines += [f"{blocks} blocks (ids 1 .. {blocks}; NumPy seeds 1 .. {blocks}): the sum over the "
              "blocks of each block's best of 3 (round robin)",
              "", f"{'d':>3} {'search':<13} {'ms':>8} {'vs numpy':>9} {'M normals/s/core':>17}"]
    for d in DIMS:
        t = {name: 0.0 for name in names}
        for block_id in range(1, blocks + 1):
            for name, seconds in best_times(searches(d, block_id), repeat=3).items():
                t[name] += seconds
        for name in names:
            rate = blocks * (d << KAPPA) / t[name] / 1e6
            lines.append(f"{d:>3} {name:<13} {t[name] * 1e3:>8.1f} {t['numpy'] / t[name]:>8.1f}x "
                         f"{rate:>17.0f}")
        lines.append("")
    return "\n".join(lines)


@pytest.mark.parametrize("d", DIMS)
def test_numpy_search(benchmark, d):
    benchmark(numpy_search, *block(d))


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", list(RUST))
def test_rust_search(benchmark, d, name):
    version, early = RUST[name]
    benchmark(rust_search, *block(d), version, early)


def test_summary_ratio(benchmark):
    """Same-run ratios, rates and peak memory (printed with -s)."""
    print("\n" + summary())
    benchmark.pedantic(lambda: None, rounds=1)


if __name__ == "__main__":
    print(summary())
