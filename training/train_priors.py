"""Rebuild the priors shipped in ``python/combiner/priors/`` from ``../shared/data``.

    python training/train_priors.py thumbnail --out python/combiner/priors
    python training/train_priors.py photo --out python/combiner/priors
    python training/train_priors.py speech --out python/combiner/priors

The priors are written as ``NAME-q0`` (lowest rate) ... ``NAME-qK``. Every family is
rate-targeted: one prior per level, learned with beta adapted to that level's rate and with the
mixing matrices of the linear reparameterisation (``--levels 0 2`` learns only those, e.g. to
spread the levels over processes). The recipes below are the exact settings, seeds and data of
the shipped files; on this project's 2-core CPU with one torch thread (``--threads``) a level
takes about 10 minutes for thumbnail, 19 for speech and 20 for photo. Training never reads Kodak
or the test splits: those are for evaluation.

``--mix`` / ``--no-mix`` and ``--rate-targeted`` / ``--no-rate-targeted`` override the recipe
(which does both). ``--iterations``, ``--steps``, ``--first-steps``, ``--beta`` (the starting
beta), ``--config`` (a network preset of ``combiner.api.CONFIGS``), ``--patch`` and ``--bits``
(bits per patch of each level) change the recipe for experiments (write those elsewhere than the
shipped folder; ``results/experiments/README.md`` gives the commands it ran). ``--per-file``
sets the random crops per training file, and ``--checkpoint`` also saves the priors after every
round (``NAME.roundNNN.safetensors``, exactly what ``--iterations NNN`` gives), so that a run
stopped by a deadline, e.g. on a lent GPU (``benches/device_train.sh``), still leaves priors.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from combiner.allocator import keep_freed_memory
from combiner.api import learn_prior_from_folder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# folder, modality, patch, files, crops per file, architecture, payload bits per patch per level.
RECIPES = {
    # CIFAR-10 train images 0-999, each one whole 32 x 32 image (about 10 minutes per level).
    "thumbnail": dict(folder="cifar10/train", modality="image", patch=(32, 32), max_files=1000,
                      per_file=1, config="small", iterations=10,
                      bits_per_patch=[600.0, 1000.0, 1800.0, 2800.0]),
    # 10 random 64 x 64 crops from each of the 30 training photos (300 patches), RECOMBINER's patch
    # size; twice the steps of the other families (about 20 minutes per level).
    "photo": dict(folder="train_photos", modality="image", patch=(64, 64), max_files=None,
                  per_file=10, config="small64", iterations=10, steps=100, first_steps=300,
                  bits_per_patch=[4096 * b for b in (0.15, 0.3, 0.6, 1.0)]),
    # 40 random 0.05 s chunks (800 samples, RECOMBINER's audio patch) from each of the 40
    # train-clean-100 clips (1,600 chunks); 16 rounds from a starting beta suited to waveforms
    # (at 1e-5 the posteriors carry under 100 bits per chunk); about 19 minutes per level.
    "speech": dict(folder="audio/librispeech_train-clean-100", modality="audio", patch=(800,),
                   max_files=None, per_file=40, config="audio800", iterations=16, beta=3e-7,
                   bits_per_patch=[50 * k for k in (6.0, 12.0, 24.0, 48.0)]),
}
# Shared by every family unless its recipe says otherwise: beta, kappa, seed, the fitting schedule
# of each learning round, and how every family learns since session 9 (photo since 7, thumbnail
# since 8): one prior per level, at its rate, with the mixing matrices.
COMMON = dict(beta=1e-5, kappa=16, seed=0, steps=50, first_steps=150, lr=1e-3, pixel_fraction=0.25,
              rate_targeted=True, learn_mix=True)


def save_checkpoint(out: Path, round_index: int, learned) -> None:
    """Write the priors as they stand after a round as ``NAME.roundNNN.safetensors`` (NNN = the
    rounds done, i.e. the ``--iterations`` that gives this file); written then renamed, so a run
    stopped mid-write leaves whole files."""
    out.mkdir(parents=True, exist_ok=True)
    for prior in learned if isinstance(learned, list) else [learned]:
        path = out / f"{prior.kind['name']}.round{round_index + 1:03d}.safetensors"
        prior.save(path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        print(json.dumps(dict(prior=prior.kind["name"], rounds=round_index + 1, hash=prior.prior_id,
                              train_bits_per_patch=prior.kind.get("train_bits_per_patch"))), flush=True)


def train(family: str, out: Path, data: Path, device: str | None,
          budget: dict | None = None, levels: list[int] | None = None,
          checkpoint: bool = False) -> list[dict]:
    """Learn ``family`` with its recipe; ``budget`` overrides iterations/steps/first_steps/
    per_file/beta/config/patch/bits_per_patch/learn_mix/rate_targeted.

    A rate-targeted recipe learns one prior per level (``levels``: only those, e.g. to spread
    the levels over several processes); the others learn one prior for all levels.
    ``checkpoint``: also save the priors after every round (see ``save_checkpoint``).
    """
    budget = budget or {}
    settings = {**COMMON, **RECIPES[family], **budget}
    folder = data / settings.pop("folder")
    rates = settings.pop("bits_per_patch")
    rate_targeted = settings.pop("rate_targeted", False)
    if levels is not None and not rate_targeted:
        raise SystemExit(f"--levels needs a rate-targeted recipe; {family} learns all levels at once")
    if levels is not None and not all(0 <= q < len(rates) for q in levels):
        raise SystemExit(f"--levels: {family} has levels 0 to {len(rates) - 1}")
    if checkpoint:
        settings["on_round"] = lambda r, learned: save_checkpoint(out, r, learned)
    t0 = time.perf_counter()
    if rate_targeted:
        priors = [learn_prior_from_folder(folder, name=f"{family}-q{q}", device=device, progress=False,
                                          bits_per_patch=rates[q], rate_target_bits=rates[q], **settings)
                  for q in (range(len(rates)) if levels is None else levels)]
    else:
        priors = learn_prior_from_folder(folder, name=family, device=device, progress=False,
                                         bits_per_patch=rates, **settings)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for prior in priors:
        path = out / f"{prior.kind['name']}.safetensors"
        prior.save(path)
        rows.append(dict(prior=prior.kind["name"], bits_per_patch=prior.kind["bits_per_patch"],
                         blocks=prior.num_blocks, hash=prior.prior_id, learn_s=round(seconds, 1)))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(RECIPES))
    ap.add_argument("--out", type=Path, default=Path("python/combiner/priors"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (the shipped files) or cuda")
    ap.add_argument("--iterations", type=int, default=None, help="learning rounds (experiments)")
    ap.add_argument("--steps", type=int, default=None, help="fitting steps per round (experiments)")
    ap.add_argument("--first-steps", type=int, default=None, help="steps of the first round")
    ap.add_argument("--per-file", type=int, default=None, help="random crops per training file (experiments)")
    ap.add_argument("--beta", type=float, default=None, help="starting beta (experiments)")
    ap.add_argument("--config", default=None, help="network preset of combiner.api.CONFIGS (experiments)")
    ap.add_argument("--patch", type=int, nargs="+", default=None, help="patch shape (experiments)")
    ap.add_argument("--bits", type=float, nargs="+", default=None,
                    help="bits per patch of each level (experiments)")
    ap.add_argument("--checkpoint", action="store_true",
                    help="also save the priors after every round (NAME.roundNNN.safetensors)")
    ap.add_argument("--mix", action=argparse.BooleanOptionalAction, default=None,
                    help="learn the linear reparameterisation's mixing matrices or not (default: the recipe's)")
    ap.add_argument("--rate-targeted", action=argparse.BooleanOptionalAction, default=None,
                    help="learn one prior per level at its rate or one for all levels (default: the recipe's)")
    ap.add_argument("--levels", type=int, nargs="+", default=None,
                    help="rate-targeted recipes: learn only these levels (e.g. 1 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    budget = {k: v for k, v in dict(iterations=args.iterations, steps=args.steps,
                                    first_steps=args.first_steps, per_file=args.per_file, beta=args.beta,
                                    config=args.config, patch=tuple(args.patch) if args.patch else None,
                                    bits_per_patch=args.bits,
                                    learn_mix=args.mix, rate_targeted=args.rate_targeted).items()
              if v is not None}
    train(args.family, args.out, args.data, args.device, budget, args.levels, args.checkpoint)


if __name__ == "__main__":
    main()
