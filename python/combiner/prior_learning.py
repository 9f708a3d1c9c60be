"""Learning a prior from training signals: the closed-form updates of the prior's means and
standard deviations, the block partition, and the alternation with fitting the training
posteriors (COMBINER's EM-style prior learning, with RECOMBINER's rate targeting and linear
reparameterisation). The prior's type and file are in `combiner.prior`.

Across ranks (``torch.distributed`` initialised with several processes, e.g. under ``torchrun``;
see `combiner.distributed`): every rank calls `learn_prior` with the same arguments and fits a
contiguous share of the training minibatches; each update that needs all the posteriors (the
prior's means and stds, the training KL behind rate targeting and the partition) is computed from
sums over the ranks, identical on every rank, and the mixing matrices are averaged over the ranks
after every round. With one process nothing of this runs: the computation is the one-process one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from combiner import distributed
from combiner.config import INRConfig
from combiner.fit import evaluate, fit, pick_device
from combiner.inr import BayesianINR, identity_mix, init_bounds, kl_per_param, siren_init
from combiner.options import EncoderSettings, Noise
from combiner.prior import Prior, PriorKind

log = logging.getLogger(__name__)

__all__ = ["initial_prior", "update_prior", "make_partition", "partition_for_rate", "learn_prior"]


def initial_prior(config: INRConfig) -> tuple[np.ndarray, np.ndarray]:
    """Starting prior: mean 0, std = 0.5 * std of the SIREN init U(-a, a) = 0.5 * a / sqrt(3)."""
    a = init_bounds(config).numpy()
    return np.zeros_like(a), (0.5 * a / math.sqrt(3.0)).astype(np.float32)


def update_prior(mu, sigma, min_std: float = 1e-6, *, across_ranks: bool = False):
    """Closed-form M-step over M posteriors [M, D]: m = mean_k mu_k,
    s^2 = mean_k (sigma_k^2 + (mu_k - m)^2), s floored at `min_std` (keeps the KL finite when all
    training posteriors agree). Returns (m, s) [D] as float32, numpy in -> numpy out.

    ``across_ranks`` with several ranks (`combiner.distributed`): mu and sigma are this rank's
    posteriors, and m and s are those of every rank's posteriors together: float64 sums of mu, then
    of sigma^2 + (mu - m)^2, over the ranks (two passes, as the one-process form), identical on
    every rank. With one rank it is the one-process computation."""
    is_np = isinstance(mu, np.ndarray)
    mu64 = torch.as_tensor(mu).detach().to(torch.float64)
    sg64 = torch.as_tensor(sigma).detach().to(torch.float64)
    if mu64.ndim != 2 or mu64.shape != sg64.shape:
        raise ValueError(f"mu and sigma must both be [M, D], got {tuple(mu64.shape)} {tuple(sg64.shape)}")
    if across_ranks and distributed.active():
        count = distributed.sum_across(torch.tensor([float(mu64.shape[0])]))
        m = distributed.sum_across(mu64.sum(0)) / count
        s = torch.sqrt(distributed.sum_across((sg64.square() + (mu64 - m).square()).sum(0)) / count)
        s = s.clamp_min(min_std)
    else:
        m = mu64.mean(0)
        s = torch.sqrt((sg64.square() + (mu64 - m).square()).mean(0)).clamp_min(min_std)
    m, s = m.to(torch.float32), s.to(torch.float32)
    return (m.cpu().numpy(), s.cpu().numpy()) if is_np else (m, s)


def make_partition(avg_kl_bits, kappa: float, max_block_size: int = 25, seed: int = 0) -> np.ndarray:
    """Greedy partition of D parameters into REC blocks -> block_index int64 [D] (ids 0..J-1).

    Parameters are visited in one seeded random order (numpy Generator(PCG64(seed)).permutation)
    so that each block mixes layers; a new block starts when adding the next parameter would push
    the block's summed training-average KL above `kappa` bits or the block already holds
    `max_block_size` parameters. Every parameter is assigned, near-zero-KL ones included; a single
    parameter whose own KL exceeds kappa gets a block to itself. Block ids follow creation order.
    The partition lives in the prior and is never transmitted.
    """
    kl = np.clip(np.nan_to_num(np.asarray(avg_kl_bits, dtype=np.float64), nan=0.0), 0.0, None)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError("avg_kl_bits must be a non-empty 1-D array")
    if max_block_size < 1 or kappa <= 0:
        raise ValueError("need max_block_size >= 1 and kappa > 0")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(kl.size)
    out = np.empty(kl.size, dtype=np.int64)
    block, total, count = 0, 0.0, 0
    for i in order:  # D is ~1e4: a plain loop is fast enough and obviously correct
        k = kl[i]
        if count > 0 and (total + k > kappa or count >= max_block_size):
            block, total, count = block + 1, 0.0, 0
        out[i] = block
        total += k
        count += 1
    return out


def partition_for_rate(avg_kl_bits, kappa: int, bits_per_patch: float, seed: int = 0) -> np.ndarray:
    """A partition with about ``bits_per_patch / kappa`` blocks: the rate of a coded patch.

    The training-average KL sets how the budget is shared between parameters (informative
    parameters get small blocks); scaling it to ``bits_per_patch`` sets the number of blocks, so
    one learned prior serves several rates. The block-size cap is raised so that it never binds
    before the budget does (at most twice the mean block size).
    """
    kl = np.clip(np.nan_to_num(np.asarray(avg_kl_bits, dtype=np.float64), nan=0.0), 0.0, None)
    if bits_per_patch <= 0:
        raise ValueError("bits_per_patch must be > 0")
    # A floor keeps near-zero-KL parameters from piling into huge blocks.
    kl = kl + 0.01 * kl.mean() + 1e-12
    scaled = kl * (bits_per_patch / kl.sum())
    cap = max(1, int(np.ceil(2.0 * kl.size * kappa / bits_per_patch)))
    return make_partition(scaled, kappa, max_block_size=cap, seed=seed)


def _stack_signals(signals: Sequence) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[(coords [N, in], values [P_i, N, C] or [N, C](, weights [P_i, N]))...] -> coords, values, weights."""
    coords, vals, wts = None, [], []
    for item in signals:
        c, v = torch.as_tensor(item[0], dtype=torch.float32), torch.as_tensor(item[1], dtype=torch.float32)
        w = torch.as_tensor(item[2], dtype=torch.float32) if len(item) > 2 and item[2] is not None else None
        if v.ndim == 2:
            v = v[None]
            w = None if w is None else w.reshape(1, -1)
        if w is None:
            w = torch.ones(v.shape[:2])
        if coords is None:
            coords = c
        elif not torch.equal(coords, c):
            raise ValueError("all training patches must share one coordinate grid (same patch size)")
        if v.shape[1] != c.shape[0] or w.shape != v.shape[:2]:
            raise ValueError(f"inconsistent shapes: coords {tuple(c.shape)}, values {tuple(v.shape)}")
        vals.append(v)
        wts.append(w)
    if coords is None:
        raise ValueError("no training signals")
    return coords, torch.cat(vals), torch.cat(wts)


def _training_kl_bits(mu_all: torch.Tensor, rho_all: torch.Tensor, mean: np.ndarray,
                      std: np.ndarray) -> torch.Tensor:
    """KL (bits) of every training posterior [M, D] under the prior (mean, std).

    With several ranks (`combiner.distributed`) the posteriors are this rank's, and the result is
    [1, D] float64: the mean over every rank's posteriors, identical on every rank. Learning uses
    only that mean (``.mean(0)``: per parameter, ``.sum(1).mean()``: per patch), which the
    one-process [M, D] gives the same."""
    sigma = torch.nn.functional.softplus(rho_all)
    kl = kl_per_param(mu_all, sigma, torch.from_numpy(mean), torch.from_numpy(std)) / math.log(2.0)
    if not distributed.active():
        return kl
    total = distributed.sum_across(torch.cat([kl.to(torch.float64).sum(0),
                                              torch.tensor([float(kl.shape[0])], dtype=torch.float64)]))
    return (total[:-1] / total[-1])[None]


def learn_prior(
    signals: Sequence,
    config: INRConfig,
    *,
    modality: str,
    patch_shape: Sequence[int],
    iterations: int,
    steps_per_iteration: int,
    first_steps: int | None = None,
    lr: float = 1e-4,
    kappa: int = 16,
    beta: float,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    batch_patches: int = 256,
    pixel_fraction: float = 1.0,
    max_block_size: int = 25,
    rho_init: float = -10.0,
    kind: dict | None = None,
    bits_per_patch: float | Sequence[float] | None = None,
    rate_target_bits: float | None = None,
    learn_mix: bool = False,
    start: Prior | None = None,
    noise: Noise = "local",
    on_round: Callable[[int, Prior | list[Prior]], None] | None = None,
) -> Prior | list[Prior]:
    """Learn a prior by alternating posterior fitting and the closed-form M-step.

    signals: training patches, each item (coords [N, in], values [P_i, N, C] or [N, C]
    [, weights [P_i, N]]), all with the same coords; they are pooled into M patches. Each of
    `iterations` rounds fits every posterior (warm-started from the previous round; a fresh Adam
    per round and minibatch) for `steps_per_iteration` steps (`first_steps` in round 0) against
    the current prior with one global beta and KL summed over all parameters, then applies
    `update_prior`. Posteriors live on the CPU between rounds and are moved to `device` in
    minibatches of `batch_patches`, bounding device memory. Finally the partition is made from the
    training-average per-parameter KL (bits) under the final prior: by `make_partition` (blocks of
    up to kappa bits of training KL) or, with `bits_per_patch`, by `partition_for_rate` for that
    rate; a sequence of rates returns one prior per rate (same means and stds).

    ``beta``: the rate-distortion weight of the KL (nats) against the MSE, the same for every
    patch; required here, so that the default lives in one place (``combiner.learn_prior``).

    ``rate_target_bits``: learn the prior for that rate (RECOMBINER's rate targeting). After each
    round's M-step, beta is scaled by the ratio of the training-average KL per patch (bits, under
    the new prior) to the target, clipped to [1/2, 2], so the training posteriors, and with them
    the prior's stds, end up at the rate the prior is coded at instead of at whatever rate the
    starting beta gives. The final beta is recorded in ``kind.beta`` (the encoder's starting
    beta) and the last measured rate in ``kind.train_bits_per_patch``.

    ``start``: refine this prior instead of learning one from scratch. The prior starts at its
    means and stds and keeps its mixing matrices (``learn_mix`` must be False); every training
    posterior starts where the encoder starts one under it (its means, ``init_std_ratio`` of its
    stds, from ``start.encoder``); and each minibatch keeps its posteriors' Adam state from round
    to round, so that the rounds continue one fit, as the encoder's fitting does, instead of
    restarting it. ``noise``: how fitting draws the network (`BayesianINR.forward_features`);
    refinement with the encoder's own (e.g. "folded") learns the prior in the regime it is used
    in.

    ``on_round(r, priors)``: called after every round r (0-based) with what learning would return
    if it stopped there, i.e. exactly the result of ``iterations=r + 1``: a checkpoint, so that a
    long run stopped by a deadline still leaves usable priors.

    ``kind``: further fields of the priors' `PriorKind` (``name``, ``beta`` ...) as a dict; one
    that `PriorKind.from_dict` refuses raises ``ValueError`` before learning starts.

    Across ranks (`combiner.distributed`; every rank calls this with the same arguments): the
    minibatches of ``batch_patches`` patches are shared out in contiguous runs (rank 0 the first),
    so ``batch_patches`` should give at least one minibatch per rank. A posterior's randomness is
    keyed by its round and minibatch, never by the rank, so without ``learn_mix`` every rank count
    fits the same posteriors and learns the same prior up to the rounding of the sums. With
    ``learn_mix`` each rank carries the mixing matrices from minibatch to minibatch through its
    share, as one process does through all of them, and after each round every rank takes their
    average over the ranks weighted by the patches each fitted (model averaging): one process
    moves the matrices by every minibatch in turn, several ranks by the average of their runs.
    Every rank returns the same priors; ``on_round`` is called on rank 0 only. With no device
    given, a rank fits on GPU ``LOCAL_RANK`` when there is one.
    """
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    if start is not None and (start.config != config or learn_mix):
        raise ValueError("refining a prior needs its own network config and learn_mix=False")
    PriorKind.from_dict({"modality": modality, "patch_shape": [int(p) for p in patch_shape], **(kind or {})})
    dev = pick_device(distributed.device_for_rank(None if device is None else str(device)))
    coords, values, weights = _stack_signals(signals)
    if values.shape[2] != config.out_dim or coords.shape[1] != config.in_dim:
        raise ValueError("signals do not match config in_dim/out_dim")
    M, D = values.shape[0], config.num_params
    # The minibatches of this rank (all of them in one process) and the patches lo..hi they hold.
    n_batches = -(-M // batch_patches)
    mine = distributed.share(n_batches)
    lo, hi = min(M, mine.start * batch_patches), min(M, mine.stop * batch_patches)
    if distributed.active() and distributed.is_main() and n_batches < distributed.world_size():
        log.warning("%d minibatches of %d patches for %d ranks: ranks %d and above have nothing to fit",
                    n_batches, batch_patches, distributed.world_size(), n_batches)
    values, weights = values[lo:hi], weights[lo:hi]
    # Checkpoints need the partition (a collective): every rank makes them if any rank has on_round.
    checkpoints = on_round is not None
    if distributed.active():
        checkpoints = bool(distributed.sum_across(torch.tensor([float(checkpoints)]))[0] > 0)
    mu_all, rho_all, mean, std, mix = _starting_point(config, hi - lo, seed, rho_init, learn_mix, start)
    single_block = torch.zeros(D, dtype=torch.long)
    kept: dict[int, tuple[BayesianINR, torch.optim.Adam]] = {}  # refining: each minibatch's fit

    def batches():  # (minibatch number, its rows among this rank's posteriors)
        for b in mine:
            yield b, slice(b * batch_patches - lo, min(M, (b + 1) * batch_patches) - lo)

    for it in range(iterations):
        steps = first_steps if (it == 0 and first_steps is not None) else steps_per_iteration
        mse_all = torch.empty(hi - lo)
        for b, sl in batches():
            model, adam = kept.get(b) or _posteriors(config, mu_all[sl], rho_all[sl], dev, mix, learn_mix, lr)
            if start is not None:
                kept[b] = (model, adam)
            fit_seed = seed + it * n_batches + b + 1  # keyed by round and minibatch, not by rank
            fit(model, coords, values[sl], (mean, std), single_block, steps=steps, lr=lr, beta=beta,
                beta_control=False, weights=weights[sl], pixel_fraction=pixel_fraction,
                seed=fit_seed, progress=progress, noise=noise, optimizer=adam)
            # Diagnostics only (no randomness, no gradients): the posterior-mean fit of this round.
            mse_all[sl] = evaluate(model, coords, values[sl], (mean, std), weights=weights[sl])["mse"].cpu()
            mu_all[sl] = model.mu.detach().cpu()
            rho_all[sl] = model.rho.detach().cpu()
            if learn_mix and model.mix is not None:
                mix = model.mix.detach().cpu()
        if learn_mix and mix is not None and distributed.active():  # a start's matrices stay as they are
            mix = distributed.weighted_average(mix, hi - lo)
        mean, std = update_prior(mu_all.numpy(), torch.nn.functional.softplus(rho_all).numpy(), across_ranks=True)
        bits = _training_kl_bits(mu_all, rho_all, mean, std).sum(1).mean().item()
        psnr = _mean_psnr(mse_all)
        if distributed.is_main():
            log.info("round %d: %.0f bits per patch, training PSNR %.2f dB (posterior means, beta %.3g)",
                     it, bits, psnr, beta)
        if rate_target_bits is not None:
            beta *= float(np.clip(bits / rate_target_bits, 0.5, 2.0))
        if checkpoints or it == iterations - 1:
            learned = _finish(config, mu_all, rho_all, mean, std, mix, beta, kappa=kappa, seed=seed,
                              max_block_size=max_block_size, bits_per_patch=bits_per_patch,
                              rate_targeted=rate_target_bits is not None,
                              meta={"modality": modality, "patch_shape": [int(p) for p in patch_shape],
                                    **(kind or {})})
            if on_round is not None and distributed.is_main():
                on_round(it, learned)
    return learned


def _posteriors(config: INRConfig, mu: torch.Tensor, rho: torch.Tensor, device: torch.device,
                mix: torch.Tensor | None, learn_mix: bool, lr: float) -> tuple[BayesianINR, torch.optim.Adam]:
    """A minibatch's posteriors on ``device`` and a fresh Adam for them. fit()'s own Adam covers only
    mu and rho, so with learned mixing matrices this one covers every parameter."""
    model = BayesianINR(config, mu.shape[0], device=device, mix=mix, learn_mix=learn_mix)
    with torch.no_grad():
        model.mu.copy_(mu)
        model.rho.copy_(rho)
    return model, torch.optim.Adam(list(model.parameters()) if learn_mix else [model.mu, model.rho], lr=lr)


def _starting_point(config: INRConfig, count: int, seed: int, rho_init: float, learn_mix: bool,
                    start: Prior | None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray,
                                                  torch.Tensor | None]:
    """The ``count`` training posteriors (mu, rho [count, D]), the prior (mean, std [D]) and the
    mixing matrices that learning starts from: see `learn_prior`'s ``start``."""
    D = config.num_params
    if start is not None:
        mean, std = start.mean.astype(np.float32), start.std.astype(np.float32)
        ratio = (start.encoder or EncoderSettings()).init_std_ratio
        sigma = torch.from_numpy(ratio * std)
        rho = torch.log(torch.expm1(sigma))  # softplus^-1
        mix = None if start.mix is None else torch.from_numpy(np.array(start.mix))
        return (torch.from_numpy(mean).expand(count, D).clone(), rho.expand(count, D).clone(),
                mean.copy(), std.copy(), mix)
    # Every training posterior starts from the SAME initialisation. Independent random inits put
    # the posteriors in unrelated modes (SIREN weights of random sign), so their average, the
    # prior mean, would collapse to ~0 and the prior std would only measure the init's spread.
    # From a shared start they stay in one basin and the prior mean is a useful network.
    mu = siren_init(config, 1, torch.Generator().manual_seed(seed)).expand(count, D).clone()
    mean, std = initial_prior(config)
    return mu, torch.full((count, D), float(rho_init)), mean, std, identity_mix(config) if learn_mix else None


def _mean_psnr(mse: torch.Tensor) -> float:
    """Mean PSNR (dB) of the training posteriors' means from their MSEs (of every rank's)."""
    log_mse = torch.log10(mse.clamp_min(1e-20))
    if not distributed.active():
        return -10.0 * log_mse.mean().item()
    total = distributed.sum_across(torch.stack([log_mse.to(torch.float64).sum(),
                                                torch.tensor(float(log_mse.numel()), dtype=torch.float64)]))
    return float(-10.0 * total[0] / total[1])


def _finish(config: INRConfig, mu_all: torch.Tensor, rho_all: torch.Tensor, mean: np.ndarray,
            std: np.ndarray, mix: torch.Tensor | None, beta: float, *, kappa: int, seed: int,
            max_block_size: int, bits_per_patch, rate_targeted: bool, meta: dict) -> Prior | list[Prior]:
    """The learned prior(s) from the training posteriors and the prior after a round's M-step:
    the partition comes from the training-average per-parameter KL under that prior."""
    kl_bits = _training_kl_bits(mu_all, rho_all, mean, std)
    avg_kl = kl_bits.mean(0).numpy()
    mix_np = None if mix is None else mix.numpy()
    if rate_targeted:
        meta["beta"] = float(beta)
        meta["train_bits_per_patch"] = round(float(kl_bits.sum(1).mean()), 1)
    if bits_per_patch is None:
        block_index = make_partition(avg_kl, kappa, max_block_size, seed)
        return Prior(config, mean, std, block_index, kappa=int(kappa), seed=int(seed),
                     kind=PriorKind.from_dict(meta), mix=mix_np)
    # Several rates from one learned prior: only the partition differs.
    single = isinstance(bits_per_patch, (int, float, np.number))
    rates = [float(bits_per_patch)] if single else [float(b) for b in bits_per_patch]
    priors = [
        Prior(config, mean, std, partition_for_rate(avg_kl, kappa, float(b), seed), kappa=int(kappa),
              seed=int(seed), kind=PriorKind.from_dict({**meta, "bits_per_patch": float(b)}), mix=mix_np)
        for b in rates
    ]
    return priors[0] if np.isscalar(bits_per_patch) else priors
