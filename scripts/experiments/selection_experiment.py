"""Which candidate to send (results/experiments/README.md, "Which candidate to send"): the A*
sample, the candidate closest to the posterior mean in the posterior's own metric (highest
density), or the candidate of largest log(q/p) + T * G (T = 0: largest importance weight).

    python scripts/experiments/selection_experiment.py simulate            # Gaussian blocks, no network
    python scripts/experiments/selection_experiment.py crop photo-q1 kodim03 [kodim01 ...] [--set k=v ...]
    python scripts/experiments/selection_experiment.py tempered T photo-q1 kodim03 [...] [--set k=v ...]

`simulate` prints, for blocks of 32 weights at several KLs, the mean squared distance
sum(((x - mu_q) / sigma_q)^2) / d of the A* sample and of the closest of the 2^16 prior
candidates. `crop` runs `crop_experiment.py` with the encoder's search replaced by an exhaustive
scan for the closest candidate: the bitstream format and decoder are unchanged (any index is
valid), only the encoder's choice differs. It regenerates and scores every candidate in NumPy,
with no early stop: the kodim03 crop took 331 s, beside other jobs on a 2-core machine.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np

from combiner import codec, rec

CANDIDATES = 1 << 16


def scan_search(choose):
    """`rec.encode_blocks`'s interface: every block's 2^kappa candidates are regenerated exactly
    as the decoder makes them, and ``choose(x, mu_q, sigma_q, mu_p, sigma_p, rng)`` (x: float32
    [2^kappa, d]) picks the index to send."""
    def search(mu_q, sigma_q, mu_p, sigma_p, sizes, *, seed, block_ids, kappa, version=rec.FORMAT_VERSION,
               **_) -> rec.BatchResult:
        n = 1 << kappa
        ends = np.cumsum(sizes)
        indices = np.zeros(len(sizes), dtype=np.uint32)
        samples = np.zeros(int(ends[-1]) if len(ends) else 0, dtype=np.float32)
        every = np.arange(n, dtype=np.uint32)
        rng = np.random.default_rng([seed, int(block_ids[0])] if len(block_ids) else seed)
        for i, (a, b) in enumerate(zip(ends - sizes, ends)):
            d = int(b - a)
            x = rec.decode_blocks(np.tile(mu_p[a:b], n), np.tile(sigma_p[a:b], n), np.full(n, d),
                                  seed=seed, block_ids=np.full(n, block_ids[i]), indices=every,
                                  kappa=kappa, version=version).reshape(n, d)
            k = choose(x.astype(np.float64), mu_q[a:b], sigma_q[a:b], mu_p[a:b], sigma_p[a:b], rng)
            indices[i], samples[a:b] = k, x[k]
        return rec.BatchResult(indices=indices, samples=samples, scored=len(sizes) * n)
    return search


def closest(x, mu_q, sigma_q, mu_p, sigma_p, rng) -> int:
    """The highest-density candidate: the smallest sum(((x - mu_q) / sigma_q)^2)."""
    z = (x - mu_q) / sigma_q
    return int(np.argmin((z * z).sum(1)))


def tempered(temperature: float):
    """The candidate of largest log(q/p) + temperature * G, G the ordered Gumbel process of A*
    coding (an encoder-side draw). Temperature 1 is A* coding's own rule; 0 sends the candidate
    of largest importance weight q/p."""
    def choose(x, mu_q, sigma_q, mu_p, sigma_p, rng) -> int:
        log_w = (0.5 * ((x - mu_p) / sigma_p) ** 2 - 0.5 * ((x - mu_q) / sigma_q) ** 2).sum(1)
        gumbels = -np.log(np.cumsum(rng.exponential(size=len(x))))
        return int(np.argmax(log_w + temperature * gumbels))
    return choose


def simulate(dim: int = 32, trials: int = 20, seed: int = 0) -> None:
    """Unit-variance prior, posterior std s and mean offset s per weight, s set by the KL."""
    rng = np.random.default_rng(seed)
    print("KL bits  A* sample  closest   (mean squared posterior distance per weight)")
    for kl_bits in (15.5, 14.0, 12.0, 10.0, 8.0):
        per_weight = kl_bits * np.log(2) / dim
        # KL of N(s, s^2) from N(0, 1) is -log s + s^2 - 1/2: solve for s by bisection.
        lo, hi = 1e-6, 1.0
        for _ in range(100):
            s = (lo + hi) / 2
            lo, hi = (s, hi) if -np.log(s) + s * s - 0.5 > per_weight else (lo, s)
        out = []
        for _ in range(trials):
            mu = s * rng.choice([-1.0, 1.0], dim)
            x = rng.standard_normal((CANDIDATES, dim))
            dist = (((x - mu) / s) ** 2).sum(1)
            log_ratio = -0.5 * dist + 0.5 * (x * x).sum(1)
            gumbels = -np.log(np.cumsum(rng.exponential(size=CANDIDATES)))
            out.append((dist[np.argmax(log_ratio + gumbels)] / dim, dist.min() / dim))
        a_star, closest = np.mean(out, axis=0)
        print(f"{kl_bits:7.1f}  {a_star:9.3f}  {closest:7.3f}")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("simulate", "crop", "tempered"):
        sys.exit(__doc__)
    if sys.argv[1] == "simulate":
        simulate()
        return
    if sys.argv[1] == "tempered":
        rule, rest = tempered(float(sys.argv[2])), sys.argv[3:]
    else:
        rule, rest = closest, sys.argv[2:]
    search = scan_search(rule)
    codec.block_search = lambda where, device: search
    # The candidates are the Rust search's (the newest generator): the header must say so.
    codec.search_version = lambda search, spread_blocks: rec.FORMAT_VERSION
    sys.argv = ["crop_experiment.py"] + rest
    runpy.run_path(str(Path(__file__).with_name("crop_experiment.py")), run_name="__main__")


if __name__ == "__main__":
    main()
