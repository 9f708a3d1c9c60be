"""The coding pipeline: fit a posterior, code it block by block with progressive refinement, and
write the bitstream. Decoding is `combiner.decoder` (the Rust reconstruction); the encoder decodes
its own bitstream with it, so the PSNR it reports is what every decoder produces.

Layout of a coded signal. The signal is cut into patches of the prior's patch shape (one patch
when the signal is that size); every patch p has its own INR with the prior's D parameters. The
P x D weights are cut into P x J blocks (J: the prior's number of parts), either each patch by
the prior's partition or, with ``spread_blocks``, across patches (`combiner.blocks`). A block's
id keys its candidates and is its position in the bitstream's index list. Coding goes in J
rounds of P blocks (one batched search each); the weights not yet coded are fine-tuned together
between rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from combiner import _core, bitstream, blocks, decoder, gpu_search, rec, threads
from combiner.bitstream import Header
from combiner.decoder import rate_of
from combiner.fit import compile_pays, fit, make_pool, pick_device
from combiner.inr import BayesianINR
from combiner.media import Signal, psnr
from combiner.options import EncodeOptions
from combiner.prior import Prior
from combiner.tiling import patch_coords, patch_grid, to_patches

SIGMA_FLOOR = 1e-30  # a softplus that underflows to 0 would be an invalid posterior for the search
# The most weights (patches x parameters per patch) one signal may have: the decoder's limit
# (docs/format.md section 3), so the encoder never writes a bitstream it would refuse. A Kodak
# image with the photo priors has 313,632 weights; a 100-megapixel photo about 80 million.
MAX_SIGNAL_WEIGHTS = _core.MAX_SIGNAL_WEIGHTS


@dataclass(frozen=True)
class EncodeResult:
    data: bytes
    weights: np.ndarray  # float32 [P, D]: exactly what the decoder regenerates
    decoded: Signal  # what every decoder outputs, on the [0, 1] scale of the input
    psnr: float
    bits_per_unit: float  # bits per pixel (images) or kbit/s (audio), from the whole file
    fit_seconds: float  # fitting the posterior before coding
    code_seconds: float  # coding: the block searches and the refinement steps between them
    search_seconds: float  # of which the block searches


def prior_name(prior: Prior) -> str:
    """A label for messages and result rows: the prior's name, else its hash prefix."""
    return prior.kind.name or prior.hash_hex


def _header(signal: Signal, prior: Prior, seed: int, spread_blocks: bool, version: int) -> Header:
    v = signal.values
    if signal.modality == "image":
        h, w, c = v.shape
    else:
        h, w, c = v.shape[0], 1, 1
    return Header(modality=signal.modality, kappa=prior.kappa, height=h, width=w, channels=c,
                  sample_rate=signal.sample_rate, seed=seed,
                  prior_hash=prior.content_hash()[:bitstream.PRIOR_HASH_LEN],
                  prior_id=prior.kind.name, spread_blocks=spread_blocks, version=version)


def check_prior_matches(prior: Prior, signal: Signal) -> None:
    modality = prior.kind.modality
    if modality != signal.modality:
        raise ValueError(f"prior {prior_name(prior)!r} is for {modality}, the input is {signal.modality}")
    channels = 3 if signal.modality == "image" else 1
    if prior.config.out_dim != channels:
        raise ValueError(f"prior outputs {prior.config.out_dim} channels, the input has {channels}")


def check_weight_count(num_patches: int, prior: Prior, error: type[Exception]) -> None:
    """Refuse a signal with more than MAX_SIGNAL_WEIGHTS weights (raising ``error``)."""
    count = num_patches * prior.config.num_params
    if count > MAX_SIGNAL_WEIGHTS:
        raise error(f"the signal needs {count:,} weights ({num_patches:,} patches of "
                    f"{prior.config.num_params:,}); the limit is {MAX_SIGNAL_WEIGHTS:,}")


def initial_model(prior: Prior, num_patches: int, opts: EncodeOptions, device) -> BayesianINR:
    """The posteriors the encoder starts fitting from: the prior mean, a fraction of its std."""
    mix = None if prior.mix is None else torch.from_numpy(prior.mix)
    return BayesianINR(prior.config, num_patches, device=device, mix=mix,
                       mean=torch.from_numpy(prior.mean), std=torch.from_numpy(prior.std * opts.init_std_ratio))


def encode_signal(signal: Signal, prior: Prior, opts: EncodeOptions | None = None) -> EncodeResult:
    """Compress one signal with ``prior`` (default options when ``opts`` is None); see the module
    docstring for the layout."""
    return encode_signals([signal], prior, opts)[0]


def encode_signals(signals: list[Signal], prior: Prior,
                   opts: EncodeOptions | None = None) -> list[EncodeResult]:
    """Compress several signals at once, one bitstream each.

    The patches of all signals are fitted and coded together (one batched forward pass, one
    search call per round), which is how a set of thumbnails is encoded efficiently. Each
    signal's bitstream is independent: its block ids start at 0.
    """
    opts = opts if opts is not None else EncodeOptions()
    patch = prior.kind.patch_shape
    for signal in signals:
        check_prior_matches(prior, signal)
        spatial = signal.values.shape[:2] if signal.modality == "image" else signal.values.shape[:1]
        check_weight_count(math.prod(patch_grid(spatial, patch)), prior, ValueError)
    device = pick_device(opts.device)
    cut = [to_patches(s.values, patch) for s in signals]
    targets = torch.from_numpy(np.concatenate([v for v, _ in cut]))
    weights = torch.from_numpy(np.concatenate([w for _, w in cut]))
    counts = [v.shape[0] for v, _ in cut]
    layouts = [blocks.layout(prior, c, opts.spread_blocks, opts.seed) for c in counts]
    coords = patch_coords(patch)
    P = targets.shape[0]
    model = initial_model(prior, P, opts, device)
    block_index = torch.from_numpy(_fit_assignment(prior, layouts, opts.spread_blocks))
    beta = opts.beta if opts.beta is not None else float(prior.kind.beta or 1e-6)
    common: dict[str, Any] = dict(kappa_bits=float(prior.kappa), target_bits=opts.target_bits,
                                  weights=weights, pixel_fraction=opts.pixel_fraction,
                                  noise=opts.noise, weight_samples=opts.weight_samples)
    points_per_step = math.ceil(targets.shape[0] * targets.shape[1] * opts.pixel_fraction)
    n_threads = threads.resolve(opts.threads, points_per_step)
    rounds = len(layouts[0].rounds)
    total_steps = opts.fit_steps + opts.refine_steps_per_round(rounds) * max(0, rounds - 1)
    common["compile"] = (compile_pays(device, points_per_step, total_steps) if opts.compile is None
                         else opts.compile)
    if opts.pooled_noise:  # one pool for the whole encode; windows at seeded random offsets
        common["pool"] = make_pool(model, math.ceil(targets.shape[1] * opts.pixel_fraction),
                                   (opts.noise, opts.refinement_noise),
                                   opts.weight_samples, seed=(opts.seed + 0x5EED) % 2**64)

    t0 = time.perf_counter()
    with threads.torch_threads(n_threads):
        beta_t = fit(model, coords, targets, prior, block_index, steps=opts.fit_steps, lr=opts.lr,
                     lr_schedule=opts.lr_schedule, beta=beta, control_every=opts.control_every,
                     seed=opts.seed, progress=opts.progress, **common)
        t1 = time.perf_counter()
        search = block_search(opts.search, device)
        version = search_version(search, opts.spread_blocks)
        final, indices, search_seconds = _code_progressively(
            model, prior, coords, targets, block_index, beta_t, layouts, opts, common, n_threads, search, version)
    t2 = time.perf_counter()

    results, start = [], 0
    for signal, count, idx in zip(signals, counts, indices):
        w = final[start:start + count]
        start += count
        header = _header(signal, prior, opts.seed, opts.spread_blocks, version)
        data = bitstream.pack(header, idx)
        decoded = decoder.decode(data, prior).signal()
        results.append(EncodeResult(
            data=data, weights=w, decoded=decoded, psnr=psnr(signal.values, decoded.values),
            bits_per_unit=rate_of(header, len(data)),
            fit_seconds=(t1 - t0) / len(signals), code_seconds=(t2 - t1) / len(signals),
            search_seconds=search_seconds / len(signals),
        ))
    return results


def _fit_assignment(prior: Prior, layouts: list[blocks.BlockLayout], spread: bool) -> np.ndarray:
    """`fit`'s block_index: the prior's partition [D], or with spread blocks the block of every
    weight [P, D], numbered across the batch (each signal's blocks after the previous ones)."""
    if not spread:
        return prior.block_index
    parts, offset = [], 0
    for layout in layouts:
        parts.append(layout.assignment() + offset)
        offset += layout.num_blocks
    return np.concatenate(parts)


def _code_progressively(model, prior, coords, targets, block_index, beta, layouts, opts,
                        common, n_threads: int, search: Callable[..., rec.BatchResult],
                        version: int) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Code the blocks of one round of every signal in one search call, fix them, fine-tune the
    rest (noise ``opts.refinement_noise``); repeat for every round (see `combiner.blocks`).

    Returns the final weights [P, D] (every entry a transmitted sample), each signal's indices
    in block-id order and the seconds spent in the searches.
    """
    device = model.mu.device
    P, D = targets.shape[0], prior.config.num_params
    offsets = np.cumsum([0] + [layout.num_patches * D for layout in layouts])  # flat start of each signal
    fixed = np.zeros(P * D, dtype=bool)
    final = np.zeros(P * D, dtype=np.float32)
    indices = [np.zeros(layout.num_blocks, dtype=np.uint32) for layout in layouts]
    optimizer = torch.optim.Adam([model.mu, model.rho], lr=opts.lr * 0.5)
    refine = {**common, "noise": opts.refinement_noise}
    num_rounds = len(layouts[0].rounds)
    refine_steps = opts.refine_steps_per_round(num_rounds)
    search_seconds = 0.0
    for r in tqdm(range(num_rounds), disable=not opts.progress, desc="code blocks", leave=False):
        ids = [layout.rounds[r] for layout in layouts]
        parts = [layout.gather(bs) for layout, bs in zip(layouts, ids)]
        flat = np.concatenate([f + off for (f, _), off in zip(parts, offsets)])
        with torch.no_grad():
            mu, sigma = (t.detach().cpu().numpy().reshape(-1) for t in model.posterior())
        t = time.perf_counter()
        res = search(
            mu[flat], np.maximum(sigma[flat], SIGMA_FLOOR), prior.mean[flat % D], prior.std[flat % D],
            np.concatenate([sizes for _, sizes in parts]), seed=opts.seed,
            block_ids=np.concatenate(ids), kappa=prior.kappa, early_stop=opts.early_stop,
            threads=n_threads, version=version,
        )
        search_seconds += time.perf_counter() - t
        start = 0
        for signal_indices, bs in zip(indices, ids):
            signal_indices[bs] = res.indices[start:start + len(bs)]
            start += len(bs)
        final[flat] = res.samples
        fixed[flat] = True
        model.set_fixed(torch.from_numpy(fixed.reshape(P, D)).to(device),
                        torch.from_numpy(final.reshape(P, D)).to(device))
        if refine_steps > 0 and r + 1 < num_rounds:
            fit(model, coords, targets, prior, block_index, steps=refine_steps,
                lr=opts.lr * 0.5, beta=beta, beta_control=False, lr_decay_at=1.0,
                seed=opts.seed + 1 + r, optimizer=optimizer, **refine)
    return final.reshape(P, D), indices, search_seconds


def search_version(search: Callable[..., rec.BatchResult], spread_blocks: bool) -> int:
    """The format version the encoder writes when ``search`` codes the blocks: the newest (3)
    with the Rust search; with the GPU search, which generates the ChaCha20 candidates only, 2
    with spread blocks and 1 without (docs/format.md section 6)."""
    if search is rec.encode_blocks:
        return bitstream.FORMAT_VERSION
    return 2 if spread_blocks else 1


def block_search(where: str, device: torch.device) -> Callable[..., rec.BatchResult]:
    """The block search for ``EncodeOptions.search``: on the version-2 generator both give the
    same indices (gpu_search ports the Rust scoring op for op), the GPU's in a fraction of the
    time; `search_version` gives the version each writes. The GPU search runs on CuPy's current
    device (GPU 0 unless the caller selects another)."""
    if where not in ("auto", "cpu", "gpu"):
        raise ValueError(f"search must be 'auto', 'cpu' or 'gpu', not {where!r}")
    if where == "gpu" and not gpu_search.available():
        raise RuntimeError("search='gpu' needs a CUDA GPU and CuPy (pip install cupy-cuda12x)")
    if where == "gpu" or (where == "auto" and device.type == "cuda" and gpu_search.available()):
        def on_gpu(*args, early_stop: bool = True, threads: int | None = None, **kwargs) -> rec.BatchResult:
            return gpu_search.encode_blocks(*args, **kwargs)  # scores every candidate anyway
        return on_gpu
    return rec.encode_blocks


