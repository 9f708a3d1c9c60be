"""The coding pipeline: fit a posterior, code it block by block with progressive refinement, and
write the bitstream; parse, regenerate the weights and run the network to decode.

Layout of a coded signal. The signal is cut into patches of the prior's patch shape (one patch
when the signal is that size); every patch p has its own INR whose D parameters are split into
the prior's J blocks. Block j of patch p has the global id ``p * J + j``: it keys its candidates
and is its position in the bitstream's index list. The coding order is block-major (block 0 of
every patch in one batched search, then block 1, ...), so the not-yet-coded blocks of every patch
are fine-tuned together between rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from combiner import bitstream, gpu_search, rec
from combiner.bitstream import Header
from combiner.errors import PriorMismatchError
from combiner.fit import fit, pick_device
from combiner.inr import BayesianINR, network_forward
from combiner.media import Signal, psnr
from combiner.prior import Prior
from combiner.tiling import from_patches, patch_coords, patch_grid, to_patches

SIGMA_FLOOR = 1e-30  # a softplus that underflows to 0 would be an invalid posterior for the search


@dataclass(frozen=True)
class EncodeOptions:
    """How hard the encoder works. Defaults suit a CPU; raise ``fit_steps`` on a GPU."""

    fit_steps: int = 1500
    lr: float = 1e-3
    refine_steps: int = 10  # fine-tuning steps after each coded round of blocks
    init_std_ratio: float = 0.5  # initial posterior std as a fraction of the prior std
    beta: float | None = None  # starting beta; default: the prior's training beta
    control_every: int = 25
    target_bits: float | None = None  # per-block KL target; default kappa - 0.5
    pixel_fraction: float = 1.0
    seed: int = 0
    device: str | None = None
    early_stop: bool = True
    progress: bool = True
    # Where the A* search runs: "cpu" (Rust), "gpu" (the CUDA kernel, same indices), or "auto":
    # the GPU when fitting on CUDA and CuPy is installed.
    search: str = "auto"


@dataclass(frozen=True)
class EncodeResult:
    data: bytes
    weights: np.ndarray  # float32 [P, D]: exactly what the decoder regenerates
    decoded: Signal
    psnr: float
    bits_per_unit: float  # bits per pixel (images) or kbit/s (audio), from the whole file
    fit_seconds: float
    code_seconds: float


def _patch_shape(prior: Prior) -> tuple[int, ...]:
    patch = prior.kind.get("patch_shape")
    if not patch:
        raise ValueError("the prior does not define a patch shape")
    return tuple(int(p) for p in patch)


def prior_name(prior: Prior) -> str:
    """The id a bitstream records: the prior's name if it has one, else its hash prefix."""
    return str(prior.kind.get("name") or prior.prior_id)


def block_members(prior: Prior) -> list[np.ndarray]:
    """Parameter indices of each block j (ascending), from the prior's partition."""
    order = np.argsort(prior.block_index, kind="stable")
    counts = np.bincount(prior.block_index, minlength=prior.num_blocks)
    return np.split(order, np.cumsum(counts)[:-1])


def reconstruct(prior: Prior, weights: np.ndarray, header: Header) -> Signal:
    """Run the INRs with flat weights [P, D] on the patch grid and reassemble the signal (CPU)."""
    patch = _patch_shape(prior)
    coords = patch_coords(patch)
    freqs = prior.config.frequencies().to(torch.float32)
    with torch.no_grad():
        mix = None if prior.mix is None else torch.from_numpy(prior.mix)
        out = network_forward(prior.config, coords, freqs, torch.from_numpy(np.ascontiguousarray(weights)), mix)
    values = from_patches(out.numpy(), header.shape if header.modality == "image" else (header.height, 1), patch)
    values = np.clip(values, 0.0, 1.0).astype(np.float32)
    if header.modality == "audio":
        values = values[:, 0]
    return Signal(header.modality, values, header.sample_rate)


def _header(signal: Signal, prior: Prior, seed: int) -> Header:
    v = signal.values
    if signal.modality == "image":
        h, w, c = v.shape
    else:
        h, w, c = v.shape[0], 1, 1
    return Header(modality=signal.modality, kappa=prior.kappa, height=h, width=w, channels=c,
                  sample_rate=signal.sample_rate, seed=seed,
                  prior_hash=prior.content_hash()[:bitstream.PRIOR_HASH_LEN],
                  prior_id=prior_name(prior))


def check_prior_matches(prior: Prior, signal: Signal) -> None:
    modality = prior.kind.get("modality")
    if modality != signal.modality:
        raise ValueError(f"prior {prior_name(prior)!r} is for {modality}, the input is {signal.modality}")
    channels = 3 if signal.modality == "image" else 1
    if prior.config.out_dim != channels:
        raise ValueError(f"prior outputs {prior.config.out_dim} channels, the input has {channels}")


def initial_model(prior: Prior, num_patches: int, opts: EncodeOptions, device) -> BayesianINR:
    """The posteriors the encoder starts fitting from: the prior mean, a fraction of its std."""
    gen = torch.Generator().manual_seed(opts.seed)
    mix = None if prior.mix is None else torch.from_numpy(prior.mix)
    model = BayesianINR(prior.config, num_patches, generator=gen, device=device, mix=mix)
    std = torch.from_numpy(prior.std * opts.init_std_ratio).to(device)
    with torch.no_grad():
        model.mu.copy_(torch.from_numpy(prior.mean).to(device).expand_as(model.mu))
        model.rho.copy_(torch.log(torch.expm1(std)).expand_as(model.rho))  # softplus^-1
    return model


def encode_signal(signal: Signal, prior: Prior, opts: EncodeOptions = EncodeOptions()) -> EncodeResult:
    """Compress one signal with ``prior``; see the module docstring for the layout."""
    return encode_signals([signal], prior, opts)[0]


def encode_signals(signals: list[Signal], prior: Prior,
                   opts: EncodeOptions = EncodeOptions()) -> list[EncodeResult]:
    """Compress several signals at once, one bitstream each.

    The patches of all signals are fitted and coded together (one batched forward pass, one
    search call per round), which is how a set of thumbnails is encoded efficiently. Each
    signal's bitstream is independent: its block ids start at 0.
    """
    for signal in signals:
        check_prior_matches(prior, signal)
    device = pick_device(opts.device)
    patch = _patch_shape(prior)
    cut = [to_patches(s.values, patch) for s in signals]
    targets = torch.from_numpy(np.concatenate([v for v, _ in cut]))
    weights = torch.from_numpy(np.concatenate([w for _, w in cut]))
    counts = [v.shape[0] for v, _ in cut]
    local_patch = np.concatenate([np.arange(c) for c in counts])  # patch index inside its signal
    coords = patch_coords(patch)
    P = targets.shape[0]
    model = initial_model(prior, P, opts, device)
    block_index = torch.from_numpy(prior.block_index)
    beta = opts.beta if opts.beta is not None else float(prior.kind.get("beta", 1e-6))
    common = dict(kappa_bits=float(prior.kappa), target_bits=opts.target_bits, weights=weights,
                  pixel_fraction=opts.pixel_fraction)

    t0 = time.perf_counter()
    beta_t = fit(model, coords, targets, prior, block_index, steps=opts.fit_steps, lr=opts.lr,
                 beta=beta, control_every=opts.control_every, seed=opts.seed,
                 progress=opts.progress, **common)
    t1 = time.perf_counter()
    final, indices = _code_progressively(model, prior, coords, targets, block_index, beta_t,
                                         local_patch, opts, common)
    t2 = time.perf_counter()

    results, start = [], 0
    for signal, count in zip(signals, counts):
        w, idx = final[start:start + count], indices[start:start + count]
        start += count
        header = _header(signal, prior, opts.seed)
        data = bitstream.pack(header, idx.reshape(-1))
        decoded = reconstruct(prior, w, header)
        results.append(EncodeResult(
            data=data, weights=w, decoded=decoded, psnr=psnr(signal.values, decoded.values),
            bits_per_unit=rate_of(header, len(data)),
            fit_seconds=(t1 - t0) / len(signals), code_seconds=(t2 - t1) / len(signals),
        ))
    return results


def _code_progressively(model, prior, coords, targets, block_index, beta, local_patch, opts,
                        common) -> tuple[np.ndarray, np.ndarray]:
    """Code block j of every patch in one search call, fix it, fine-tune the rest; repeat.

    Returns the final weights [P, D] (every entry a transmitted sample) and indices [P, J].
    """
    device = model.mu.device
    P, J = targets.shape[0], prior.num_blocks
    members = block_members(prior)
    fixed = np.zeros((P, prior.config.num_params), dtype=bool)
    final = np.zeros((P, prior.config.num_params), dtype=np.float32)
    indices = np.zeros((P, J), dtype=np.uint32)
    optimizer = torch.optim.Adam([model.mu, model.rho], lr=opts.lr * 0.5)
    search = block_search(opts.search, device)
    for j in tqdm(range(J), disable=not opts.progress, desc="code blocks", leave=False):
        idx = members[j]
        with torch.no_grad():
            mu, sigma = (t.detach().cpu().numpy() for t in model.posterior())
        res = search(
            mu[:, idx].reshape(-1), np.maximum(sigma[:, idx], SIGMA_FLOOR).reshape(-1),
            np.tile(prior.mean[idx], P), np.tile(prior.std[idx], P), np.full(P, len(idx)),
            seed=opts.seed, block_ids=local_patch * J + j, kappa=prior.kappa,
            early_stop=opts.early_stop,
        )
        indices[:, j] = res.indices
        final[:, idx] = res.samples.reshape(P, len(idx))
        fixed[:, idx] = True
        model.set_fixed(torch.from_numpy(fixed).to(device), torch.from_numpy(final).to(device))
        if opts.refine_steps > 0 and j + 1 < J:
            fit(model, coords, targets, prior, block_index, steps=opts.refine_steps,
                lr=opts.lr * 0.5, beta=beta, beta_control=False, lr_decay_at=1.0,
                seed=opts.seed + 1 + j, optimizer=optimizer, **common)
    return final, indices


def block_search(where: str, device: torch.device) -> Callable[..., rec.BatchResult]:
    """The block search for ``EncodeOptions.search``: both give the same indices (gpu_search
    ports the Rust scoring op for op), the GPU's in a fraction of the time. The GPU search runs
    on CuPy's current device (GPU 0 unless the caller selects another)."""
    if where not in ("auto", "cpu", "gpu"):
        raise ValueError(f"search must be 'auto', 'cpu' or 'gpu', not {where!r}")
    if where == "gpu" and not gpu_search.available():
        raise RuntimeError("search='gpu' needs a CUDA GPU and CuPy (pip install cupy-cuda12x)")
    if where == "gpu" or (where == "auto" and device.type == "cuda" and gpu_search.available()):
        def on_gpu(*args, early_stop: bool = True, **kwargs) -> rec.BatchResult:
            return gpu_search.encode_blocks(*args, **kwargs)  # scores every candidate anyway
        return on_gpu
    return rec.encode_blocks


def rate_of(header: Header, nbytes: int) -> float:
    """Bits per pixel (images) or kbit/s (audio) of a file of ``nbytes`` bytes."""
    if header.modality == "image":
        return 8.0 * nbytes / (header.height * header.width)
    return 8.0 * nbytes / (header.height / header.sample_rate) / 1000.0


def decode_weights(data: bytes, prior: Prior) -> tuple[Header, np.ndarray]:
    """Parse a bitstream and regenerate the flat weights [P, D] the encoder ended with."""
    header, indices = bitstream.unpack(data)
    if header.prior_hash != prior.content_hash()[:bitstream.PRIOR_HASH_LEN]:
        raise PriorMismatchError(
            f"the bitstream was encoded with prior {header.prior_id!r} "
            f"(hash {header.prior_hash.hex()[:16]}), not with {prior_name(prior)!r} "
            f"(hash {prior.content_hash().hex()[:16]})")
    if header.kappa != prior.kappa:
        raise PriorMismatchError("kappa of the bitstream and of the prior differ")
    if prior.kind.get("modality") != header.modality:
        raise PriorMismatchError("the prior is for another modality")
    patch = _patch_shape(prior)
    spatial = (header.height, header.width) if header.modality == "image" else (header.height,)
    P, J = math.prod(patch_grid(spatial, patch)), prior.num_blocks
    if len(indices) != P * J:
        raise PriorMismatchError(f"the bitstream has {len(indices)} blocks, the prior implies {P * J}")
    members = block_members(prior)
    order = np.concatenate(members)
    sizes = np.tile(np.array([len(m) for m in members]), P)
    samples = rec.decode_blocks(
        np.tile(prior.mean[order], P), np.tile(prior.std[order], P), sizes,
        seed=header.seed, block_ids=np.arange(P * J), indices=indices, kappa=header.kappa,
    )
    weights = np.zeros((P, prior.config.num_params), dtype=np.float32)
    weights[:, order] = samples.reshape(P, -1)
    return header, weights


def decode_bitstream(data: bytes, prior: Prior) -> Signal:
    header, weights = decode_weights(data, prior)
    return reconstruct(prior, weights, header)
