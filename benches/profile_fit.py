"""Where an encode's time goes: one fitting step of a Kodak-size signal, op by op, against the
machine's matmul peak, and the A* search per round; for each way of running the step.

    python benches/profile_fit.py [--threads 1] [--steps 20] [--prior photo-q1]

The signal is the shipped prior's Kodak layout: 96 patches of 64 x 64 points (768 x 512), a step
on the prior's pixel fraction of them, with the prior's mixing matrices. Variants of the step:

- ``local``: local reparameterisation (fresh noise per activation), eager PyTorch;
- ``local+pool``: the same with the normals taken from a noise pool (``pooled_noise``);
- ``local+pool+compile``: that through ``torch.compile`` (the warm-up column includes compiling);
- ``folded+pool``, ``folded+pool+compile``: local reparameterisation on the effective weights;
- ``weights``, ``weights+compile``: one weight sample per patch and step.

For each: milliseconds per step, the step's matmul FLOPs (forward and backward, counted from the
shapes), the FLOP/s this amounts to and its ratio to a 1024^3 float32 matmul (sgemm) measured
in the same run on the same threads; then the eager variants' time per kind of op
(torch.profiler's self CPU time, grouped). The search line times one round of the prior's blocks
(96 blocks, 2^kappa candidates each) in the Rust search. Prints a report; commit it as
results/benchmarks/profile.txt.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections import defaultdict

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from combiner import rec, registry
from combiner.allocator import keep_freed_memory
from combiner.fit import beta_elbo, compiled_elbo, make_pool
from combiner.inr import BayesianINR, fourier_features
from combiner.tiling import patch_coords

PATCHES = 96  # a 768 x 512 Kodak image in 64 x 64 patches

# torch.profiler op names -> the parts of a step they belong to
GROUPS = {
    "matmul": ("aten::bmm", "aten::mm", "aten::baddbmm", "aten::addmm"),
    "noise": ("aten::normal_", "aten::randperm"),
    "sine": ("aten::sin", "aten::cos"),
    "KL": ("aten::log", "aten::softplus", "aten::softplus_backward", "aten::index_add", "aten::index_add_"),
    "optimiser": ("Optimizer.step#Adam.step", "aten::_foreach_", "aten::addcmul_", "aten::addcdiv_", "aten::lerp_"),
}


def group_of(name: str) -> str:
    for group, names in GROUPS.items():
        if any(name.startswith(n) for n in names):
            return group
    return "other elementwise and copies"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sgemm_gflops(repeat: int = 10) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * 1024**3 * repeat / (time.perf_counter() - t) / 1e9


def step_flops(config, n: int, noise: str) -> float:
    """Matmul FLOPs of one step (forward + backward = 3x the forward's), counted from the shapes."""
    fwd = 0
    for i, o in config.layer_shapes:
        if noise == "weights":
            fwd += 2 * i * o  # x @ W, per point
        elif noise == "folded":
            fwd += 4 * i * o  # mean and variance products
        else:  # [x, 1] L, then mean and variance products, then R
            fwd += 2 * (i + 1) ** 2 + 4 * (i + 1) * o + 2 * o * o
    return 3.0 * fwd * n * PATCHES


class Step:
    """One fitting step (subset, noise, loss, backward, Adam) on the Kodak layout."""

    def __init__(self, prior, noise: str, compiled: bool, pooled: bool) -> None:
        self.noise = noise
        cfg = prior.config
        self.model = BayesianINR(cfg, PATCHES, mix=torch.from_numpy(prior.mix), mean=torch.from_numpy(prior.mean),
                                 std=torch.from_numpy(prior.std * 0.5))
        h, w = prior.kind.patch_shape
        self.N = h * w
        self.n = round(self.N * prior.encoder.pixel_fraction)
        self.feats = fourier_features(patch_coords((h, w)), self.model.freqs)
        self.targets = torch.rand(PATCHES, self.N, cfg.out_dim, generator=torch.Generator().manual_seed(1))
        self.block_index = torch.from_numpy(prior.block_index)
        self.beta = torch.full((PATCHES, prior.num_blocks), float(prior.kind.beta))
        self.prior = torch.from_numpy(prior.mean), torch.from_numpy(prior.std)
        self.gen = torch.Generator().manual_seed(0)
        self.opt = torch.optim.Adam([self.model.mu, self.model.rho], lr=1e-3)
        self.elbo = compiled_elbo() if compiled else beta_elbo
        self.pool = make_pool(self.model, self.n, noise) if pooled else None

    def __call__(self) -> None:
        idx = torch.randperm(self.N, generator=self.gen)[:self.n]
        self.opt.zero_grad(set_to_none=True)
        eps = self.model.draw_noise(self.n, self.gen, self.noise, pool=self.pool)
        loss, _, _ = self.elbo(self.model, self.feats[idx], self.targets[:, idx], None, *self.prior,
                               self.block_index, self.beta, eps, self.noise)
        loss.backward()
        self.opt.step()


def ops_table(step: Step, steps: int) -> dict[str, float]:
    """Self CPU milliseconds per step of each group of ops."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    out: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        out[group_of(event.key)] += event.self_cpu_time_total / 1e3 / steps
    return dict(out)


def search_round(prior, threads: int) -> tuple[float, float]:
    """Seconds of one round's search (PATCHES blocks of the prior's block size) and candidate
    normals per second, on posteriors with about kappa - 0.5 bits of KL per block."""
    D, J = prior.config.num_params, prior.num_blocks
    d = D // J
    n = PATCHES * d
    rng = np.random.default_rng(0)
    sigma_p = np.full(n, 0.1, np.float32)
    ratio = 0.5  # sigma_q / sigma_p; the mean shift supplies the rest of the KL
    kl_dim = (prior.kappa - 0.5) * np.log(2) / d
    shift = np.sqrt(2 * max(kl_dim - 0.5 * (ratio**2 - 1 - 2 * np.log(ratio)), 0.0)) * 0.1
    mu_q = (shift * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    t = time.perf_counter()
    res = rec.encode_blocks(mu_q, np.full(n, 0.1 * ratio, np.float32), np.zeros(n, np.float32), sigma_p,
                            np.full(PATCHES, d), seed=0, block_ids=np.arange(PATCHES), kappa=prior.kappa,
                            threads=threads)
    dt = time.perf_counter() - t
    return dt, res.scored * d / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prior", default="photo-q1")
    a = ap.parse_args()
    keep_freed_memory()  # as the command line does
    torch.set_num_threads(a.threads)
    prior = registry.load_shipped(a.prior)
    peak = sgemm_gflops()
    print(f"# python benches/profile_fit.py --threads {a.threads} --steps {a.steps} --prior {a.prior}")
    print(f"# {cpu_name()}, torch {torch.__version__}, {a.threads} thread(s)")
    print(f"sgemm 1024^3 float32: {peak:.1f} GFLOP/s")
    print(f"\nfitting step, {PATCHES} patches of {prior.kind.patch_shape}, "
          f"pixel fraction {prior.encoder.pixel_fraction}:")
    print(f"{'variant':<20} {'ms/step':>8} {'GFLOP':>6} {'GFLOP/s':>8} {'of sgemm':>9} {'warm-up s':>9}")
    tables = {}
    variants = (("local", "local", False, False), ("local+pool", "local", False, True),
                ("local+pool+compile", "local", True, True), ("folded+pool", "folded", False, True),
                ("folded+pool+compile", "folded", True, True), ("weights", "weights", False, False),
                ("weights+compile", "weights", True, False))
    for name, noise, compiled, pooled in variants:
        step = Step(prior, noise, compiled, pooled)
        t = time.perf_counter()
        for _ in range(3):
            step()
        warm = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(a.steps):
            step()
        ms = (time.perf_counter() - t) / a.steps * 1e3
        flops = step_flops(prior.config, step.n, noise)
        print(f"{name:<20} {ms:8.1f} {flops / 1e9:6.2f} {flops / ms / 1e6:8.1f} "
              f"{flops / ms / 1e6 / peak:9.2f} {warm:9.1f}")
        if not compiled:
            tables[name] = ops_table(step, max(3, a.steps // 4))
    print("\nself CPU ms per step by kind of op (torch.profiler, eager):")
    groups = sorted({g for t in tables.values() for g in t}, key=lambda g: -tables["local"].get(g, 0.0))
    print(f"{'op':<30}" + "".join(f"{n:>14}" for n in tables))
    for g in groups:
        print(f"{g:<30}" + "".join(f"{t.get(g, 0.0):14.1f}" for t in tables.values()))
    seconds, rate = search_round(prior, a.threads)
    print(f"\nsearch, one round ({PATCHES} blocks of {prior.config.num_params // prior.num_blocks} weights, "
          f"2^{prior.kappa} candidates): {seconds:.2f} s, {rate / 1e6:.0f} M candidate normals/s; "
          f"x {prior.num_blocks} rounds = {seconds * prior.num_blocks:.0f} s per image")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
