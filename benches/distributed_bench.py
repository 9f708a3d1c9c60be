"""Prior learning on one process against two ranks of ``torchrun`` on the same machine.

    python benches/distributed_bench.py [--images 64] [--batch-patches 32] [--iterations 8] [--repeats 2]

Writes smooth random 32 x 32 training images to a temporary folder, then times the same
``combiner learn-prior`` (network ``small``, rate-targeted) in one process and with
``torchrun --standalone --nproc-per-node 2 -m combiner learn-prior``, every process on one torch
thread (``OMP_NUM_THREADS=1``), in the same run, alternating. Each command runs
``combiner.cli.main`` in this file's worker mode, which also reports the seconds spent in it
(joining the process group, reading the images, learning and writing the prior), so that the
wall time of the whole command (starting Python, PyTorch and ``torchrun`` included) and the
time of the learning are both printed, with their ratios, and how far the two priors are apart
(the largest difference of a mean in units of its std, the largest relative difference of a std,
whether the partitions are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def smooth_images(folder: Path, count: int, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for k in range(count):
        f = rng.uniform(1.0, 6.0, (3, 2))
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack([0.5 + 0.45 * np.sin(f[c, 0] * xx * np.pi + f[c, 1] * yy * np.pi + phase[c])
                        for c in range(3)], -1)
        Image.fromarray((255 * img).round().astype(np.uint8)).save(folder / f"{k:04d}.png")


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds of the command, the longest of its ranks' seconds in combiner.cli.main)."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    inside = [json.loads(line)["cli_s"] for line in done.stdout.splitlines() if line.startswith('{"cli_s"')]
    return wall, max(inside)


def worker(argv: list[str]) -> None:
    """Run the command line on ``argv``, then print the seconds it took as JSON."""
    t = time.perf_counter()
    from combiner import cli

    imported = time.perf_counter()
    code = cli.main(argv)
    print(json.dumps({"cli_s": time.perf_counter() - imported, "import_s": imported - t}), flush=True)
    raise SystemExit(code)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64, help="training images (one 32 x 32 patch each)")
    ap.add_argument("--batch-patches", type=int, default=32, help="minibatch: the unit the ranks share")
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--first-steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2, help="timings of each (alternating)")
    args = ap.parse_args()

    from combiner.prior import Prior

    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train"
        data.mkdir()
        smooth_images(data, args.images)
        common = ["-q", "learn-prior", str(data), "--patch", "32", "32", "--config", "small", "--crops", "1",
                  "--iterations", str(args.iterations), "--steps", str(args.steps),
                  "--first-steps", str(args.first_steps), "--bits-per-patch", "600",
                  "--batch-patches", str(args.batch_patches), "--device", "cpu"]
        me = str(Path(__file__).resolve())
        one_cmd = [sys.executable, me, "--worker", *common, "-o", str(Path(tmp) / "one.safetensors")]
        two_cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   me, "--worker", *common, "-o", str(Path(tmp) / "two.safetensors")]
        times: dict[str, list[tuple[float, float]]] = {"one": [], "two": []}
        for _ in range(args.repeats):
            times["one"].append(run(one_cmd, env))
            times["two"].append(run(two_cmd, env))
        one, two = Prior.load(Path(tmp) / "one.safetensors"), Prior.load(Path(tmp) / "two.safetensors")

    minibatches = -(-args.images // args.batch_patches)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"workload: {args.images} patches of 32 x 32 in {minibatches} minibatches of <= {args.batch_patches}, "
          f"{args.iterations} rounds ({args.first_steps} steps, then {args.steps}), network small, "
          f"{one.config.num_params} parameters; OMP_NUM_THREADS=1")
    print("seconds: wall time of the whole command / time in combiner.cli.main (the slower rank)")
    for k in range(args.repeats):
        (w1, c1), (w2, c2) = times["one"][k], times["two"][k]
        print(f"run {k + 1}: 1 process {w1:.1f} / {c1:.1f} s, 2 processes {w2:.1f} / {c2:.1f} s, "
              f"speed-up {w1 / w2:.2f}x / {c1 / c2:.2f}x")
    w1, c1 = min(w for w, _ in times["one"]), min(c for _, c in times["one"])
    w2, c2 = min(w for w, _ in times["two"]), min(c for _, c in times["two"])
    print(f"best: 1 process {w1:.1f} / {c1:.1f} s, 2 processes {w2:.1f} / {c2:.1f} s, "
          f"speed-up {w1 / w2:.2f}x / {c1 / c2:.2f}x")
    d_mean = float(np.max(np.abs(two.mean - one.mean) / one.std))
    d_std = float(np.max(np.abs(two.std / one.std - 1)))
    print(f"priors: largest difference of a mean {d_mean:.1e} of its std, largest relative difference of "
          f"a std {d_std:.1e}; same partition: {bool(np.array_equal(one.block_index, two.block_index))}")


if __name__ == "__main__":
    main()
