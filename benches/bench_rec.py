"""The Rust A* search against a fair vectorised NumPy search, in the same run.

    python -m pytest benches/bench_rec.py --benchmark-only -s

Both score all 2^16 candidates of one block of dimension d: prior samples m + s z, the log
density ratio log q/p summed over the block, the ordered Gumbel sequence, argmax. The NumPy side
is float32 throughout and one vectorised pass (NumPy's own normal generator, which is faster than
a portable one). The Rust side is `combiner.rec.encode_block` (exhaustive, and with the exact
early stop), on all cores. The summary prints the time ratio and the peak resident memory of each
side, measured in a fresh child process.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from combiner import rec

KAPPA = 16
DIMS = (8, 25, 64)


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


def rust_search(mu_q, sigma_q, mu_p, sigma_p, early_stop: bool = False) -> int:
    return rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=0, block_id=1, kappa=KAPPA,
                            early_stop=early_stop)[0]


def best_time(fn, repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _child(name: str, d: int, queue) -> None:  # runs in the child process
    args = block(d)
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so the peak measured after the
    # call belongs to the call, not to the imports before it.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    {"numpy": lambda: numpy_search(*args), "rust": lambda: rust_search(*args)}[name]()
    queue.put((_status_kib("VmHWM") - before) / 1024.0)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mb(name: str, d: int) -> float:
    ctx = mp.get_context("spawn")  # not fork: a forked child would inherit a dead rayon pool
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, d, queue))
    proc.start()
    peak = queue.get()
    proc.join()
    return peak


@pytest.mark.parametrize("d", DIMS)
def test_numpy_search(benchmark, d):
    benchmark(numpy_search, *block(d))


@pytest.mark.parametrize("d", DIMS)
def test_rust_search(benchmark, d):
    benchmark(rust_search, *block(d))


@pytest.mark.parametrize("d", DIMS)
def test_rust_search_early_stop(benchmark, d):
    benchmark(rust_search, *block(d), True)


def test_summary_ratio(benchmark):
    """Same-run ratios and peak memory (printed with -s)."""
    lines = [f"{'d':>4} {'numpy ms':>9} {'rust ms':>8} {'early ms':>9} {'speed-up':>9} "
             f"{'np +MiB':>7} {'rust +MiB':>9}"]
    for d in DIMS:
        args = block(d)
        t_np = best_time(lambda args=args: numpy_search(*args))
        t_rs = best_time(lambda args=args: rust_search(*args))
        t_es = best_time(lambda args=args: rust_search(*args, True))
        lines.append(f"{d:>4} {t_np * 1e3:>9.2f} {t_rs * 1e3:>8.2f} {t_es * 1e3:>9.2f} "
                     f"{t_np / t_rs:>8.1f}x {peak_rss_mb('numpy', d):>7.1f} {peak_rss_mb('rust', d):>9.1f}")
    print("\n" + "\n".join(lines))
    benchmark.pedantic(lambda: None, rounds=1)
