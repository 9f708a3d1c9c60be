"""A CUDA correctness check for a lent GPU machine (run by ``scripts/eval/device_train.sh``).

Encodes a 96 x 64 crop of a training photo at ``photo-q1`` with fitting on CUDA (the mixed,
linearly reparameterised network) and decodes it on the CPU: the decoded pixels must equal what
the encoder says it sent, and the PSNR must be that of a working encoder. Then the mixed forward
pass on CUDA must match the CPU's on the same weights.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import combiner
from combiner.api import encode_detailed
from combiner.inr import BayesianINR
from combiner.media import to_output
from combiner.registry import resolve

photo = sorted(Path(sys.argv[1]).glob("*.png"))[0]
crop = np.asarray(Image.open(photo).convert("RGB"))[200:264, 300:396]
t0 = time.perf_counter()
res = encode_detailed(crop, quality=1, device="cuda", fit_steps=300, refine_steps=2, progress=False)
same = np.array_equal(combiner.decode(res.data), to_output(res.decoded))
print(f"cuda encode of {photo.name} crop: {len(res.data)} bytes, {res.psnr:.2f} dB, "
      f"{time.perf_counter() - t0:.1f} s; CPU decode equals the encoder's output: {same}")

prior = resolve("photo-q1")
model = BayesianINR(prior.config, 2, mix=prior.mix, generator=torch.Generator().manual_seed(0))
coords = torch.rand(500, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
with torch.no_grad():
    cpu = model.forward_mean(coords)
    gpu = model.to("cuda").forward_mean(coords.cuda())
err = (cpu - gpu.cpu()).abs().max().item()
print(f"mixed forward, CUDA against CPU: max abs difference {err:.2e}")
ok = same and res.psnr > 15.0 and err < 1e-4
print("CUDA CHECK", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
