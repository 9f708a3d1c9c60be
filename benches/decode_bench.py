"""Decoding speed and memory: the Rust reconstruction against the PyTorch one it replaced, and
the peak memory of the largest signal a bitstream may describe.

    python benches/decode_bench.py [--repeat 5]

Prints, on one thread each and in the same run:
- the reconstruction of kodim01 at photo-q1 (768 x 512, weights already regenerated): Rust
  (``combiner-core``) and PyTorch (the network of ``combiner.inr`` run on all patches at once, as
  combiner 0.1.0 decoded), with their ratio;
- the whole ``combiner.decode`` of that file;
- ``import combiner`` and ``combiner decode`` as fresh processes (wall time, peak RSS);
- decoding a 336 KB bitstream of a 64 x 262,144 image at photo-q0 (4,096 patches, inside the
  2^27-weight limit; random indices are a valid bitstream) in a fresh process: wall time and
  peak RSS.
The Criterion benchmark ``cargo bench -p combiner-core --bench decode`` times the Rust side alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KODIM01 = ROOT / "tests" / "data" / "kodim01.photo-q1.25311fac.spread.cmb"


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def torch_reconstruction(prior, weights, header):
    """The PyTorch reconstruction: every patch's network in one batched pass."""
    import torch

    from combiner.inr import network_forward
    from combiner.tiling import from_patches, patch_coords

    patch = prior.kind.patch_shape
    coords = patch_coords(patch)
    freqs = torch.from_numpy(prior.config.frequencies()).to(torch.float32)
    with torch.no_grad():
        out = network_forward(prior.config, coords, freqs, torch.from_numpy(weights), torch.from_numpy(prior.mix))
    values = np.clip(from_patches(out.numpy(), header.shape, patch), 0.0, 1.0)
    return np.round(values * 255.0).astype(np.uint8)


def fresh_process(code: str) -> tuple[float, float]:
    """Wall seconds (process start included) and peak RSS (MB) of ``python -c code``."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forking parent.
    report = ("; print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code + report], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    return wall, int(run.stdout.split()[-1]) / 1024.0


def size_limit_bitstream(path: Path) -> int:
    from combiner import bitstream, registry
    from combiner.codec import prior_name

    prior = registry.resolve("photo-q0")
    blocks = 4096 * prior.num_blocks  # 1 x 4096 patches of 64 x 64
    header = bitstream.Header(modality="image", kappa=prior.kappa, height=64, width=262_144, channels=3,
                              sample_rate=0, seed=0, prior_hash=prior.content_hash()[:8],
                              prior_id=prior_name(prior), spread_blocks=True)
    indices = np.random.default_rng(0).integers(0, 2**prior.kappa, blocks, dtype=np.uint32)
    data = bitstream.pack(header, indices)
    path.write_bytes(data)
    return len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from combiner import _core, decoder, registry
    from combiner.decoder import decode_weights

    data = KODIM01.read_bytes()
    header = decoder.decode(data, registry.resolve("photo-q1")).header
    prior = registry.for_bitstream(header.prior_id, header.prior_hash)
    _, weights = decode_weights(data, prior)
    rust = best_of(args.repeat, lambda: _core.decode(data, prior.to_bytes(), threads=1))
    torch_s = best_of(args.repeat, lambda: torch_reconstruction(prior, weights, header))
    print(f"kodim01 768 x 512, one thread: whole Rust decode {1000 * rust:.1f} ms; "
          f"PyTorch reconstruction alone {1000 * torch_s:.1f} ms; ratio {torch_s / rust:.1f}x")
    ours = decoder.decode(data, prior).samples
    theirs = torch_reconstruction(prior, weights, header)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    print(f"  outputs differ by at most {diff.max()} level on {np.mean(diff > 0):.2e} of the samples")

    wall, peak = fresh_process("import combiner")
    print(f"import combiner (fresh process): {wall:.2f} s, peak RSS {peak:.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "kodim01.png"
        decode = f"from combiner import cli; cli.main(['-q', 'decode', {str(KODIM01)!r}, {str(out)!r}])"
        wall, peak = fresh_process(decode)
        print(f"combiner decode kodim01 (fresh process): {wall:.2f} s, peak RSS {peak:.0f} MB")
        big = Path(tmp) / "limit.cmb"
        size = size_limit_bitstream(big)
        script = (f"import combiner; x = combiner.decode(open({str(big)!r}, 'rb').read()); "
                  f"assert x.shape == (64, 262144, 3)")
        wall, peak = fresh_process(script)
        print(f"64 x 262,144 image at photo-q0 ({size / 1000:.0f} KB bitstream, 4,096 patches): "
              f"{wall:.1f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
