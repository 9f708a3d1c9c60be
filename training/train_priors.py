"""Rebuild the priors shipped in ``python/combiner/priors/`` from ``../shared/data``.

    python training/train_priors.py thumbnail --out python/combiner/priors
    python training/train_priors.py photo --out python/combiner/priors
    python training/train_priors.py speech --out python/combiner/priors

The priors are written as ``NAME-q0`` (lowest rate) ... ``NAME-qK``. Every family is
rate-targeted: one prior per level, learned with beta adapted to that level's rate and with the
mixing matrices of the linear reparameterisation (``--levels 0 2`` learns only those, e.g. to
spread the levels over processes). The recipes (``combiner.families``) are the exact settings,
seeds and data of the shipped files; on this project's 2-core CPU with one torch thread
(``--threads``) a level takes about 10 minutes for thumbnail, 19 for speech and 35 for photo.
A recipe with a refinement stage (``TrainingRecipe.refine``, photo's) then refines each level's
prior with its training posteriors started and fitted as the encoder does; ``--base FILE ...``
(one per level learned) refines those first-stage priors instead of learning them, e.g. the
retired files the shipped ones were refined from.
Training never reads Kodak or the test splits: those are for evaluation. Every prior written
carries its family's encoder settings (``Prior.encoder``); ``--settings-only`` writes them into
the family's existing priors in ``--out`` without learning (their content hashes stay as they
are, so bitstreams coded with them stay valid).

``--mix`` / ``--no-mix`` and ``--rate-targeted`` / ``--no-rate-targeted`` override the recipe
(which does both). ``--iterations``, ``--steps``, ``--first-steps``, ``--beta`` (the starting
beta), ``--config`` (a network preset of ``combiner.families.CONFIGS``), ``--patch`` and ``--bits``
(bits per patch of each level) change the recipe for experiments (write those elsewhere than the
shipped folder; ``results/experiments/README.md`` gives the commands it ran). ``--per-file``
sets the random crops per training file, ``--folders`` the training folders (e.g.
``train_photos train_photos_extra``), ``--flips`` mirrors image crops at random, ``--lr`` sets
the training posteriors' learning rate, ``--seed`` the seed of the crops and of the learning,
and ``--checkpoint`` also saves the priors after every round (``NAME.roundNNN.safetensors``,
exactly what ``--iterations NNN`` gives; a refinement stage's rounds as ``NAME.refineNNN``),
so that a run stopped by a deadline, e.g. on a lent GPU (``scripts/eval/device_train.sh``),
still leaves priors.

On several processes (``torchrun --nproc-per-node N training/train_priors.py thumbnail ...``, on
one machine or several: ``docs/distributed.md``) the ranks share each level's training
posteriors (``combiner.prior_learning.learn_prior``) and rank 0 writes the priors and the
checkpoints. ``--batch-patches`` sets the minibatches the ranks share (default 256 patches: give at
least one per rank); ``--device cuda`` puts rank k on GPU ``LOCAL_RANK``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import fields
from pathlib import Path

import torch

from combiner import distributed
from combiner.allocator import keep_freed_memory
from combiner.api import learn_prior_from_folder
from combiner.families import FAMILIES, Refinement
from combiner.prior import Prior

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def recipe(family: str) -> dict:
    """The arguments of ``learn_prior_from_folder`` that learn ``family`` (``combiner.families``),
    plus ``folders``, ``bits_per_patch`` (one entry per level), ``rate_targeted`` and ``refine``
    (the refinement stage: a ``Refinement`` or None)."""
    fam = FAMILIES[family]
    # Field by field, not asdict(): that would turn the Refinement into a dict as well.
    training = {f.name: getattr(fam.training, f.name) for f in fields(fam.training)}
    return dict(modality=fam.modality, patch=fam.patch, config=fam.config, **training)


def refined(base: Prior, stage: Refinement, settings: dict, folders: list[Path], device: str | None,
            rate: float) -> Prior:
    """``base`` refined by ``stage`` on the recipe's training patches (``settings``), at ``rate``
    bits per patch, from ``base``'s final beta; it keeps ``base``'s name and mixing matrices."""
    settings = {**settings, "iterations": stage.iterations, "steps": stage.steps, "first_steps": stage.steps,
                "lr": stage.lr, "noise": stage.noise, "learn_mix": False, "beta": None}  # None: base's
    return learn_prior_from_folder(folders, name=base.kind.name, device=device, progress=False, start=base,
                                   bits_per_patch=rate, rate_target_bits=rate, **settings)


def with_settings(family: str, learned: Prior | list[Prior]) -> list[Prior]:
    """The learned priors, carrying the family's encoder settings (not hashed: see Prior.encoder)."""
    priors = learned if isinstance(learned, list) else [learned]
    for prior in priors:
        prior.encoder = FAMILIES[family].encoder
    return priors


def save_checkpoint(family: str, out: Path, round_index: int, learned: Prior | list[Prior],
                    stage: str = "round") -> None:
    """Write the priors as they stand after a round as ``NAME.roundNNN.safetensors`` (NNN = the
    rounds done, i.e. the ``--iterations`` that gives this file), or, for a refinement stage's
    rounds (``stage="refine"``), ``NAME.refineNNN.safetensors``; written then renamed, so a run
    stopped mid-write leaves whole files."""
    out.mkdir(parents=True, exist_ok=True)
    for prior in with_settings(family, learned):
        path = out / f"{prior.kind.name}.{stage}{round_index + 1:03d}.safetensors"
        prior.save(path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        print(json.dumps(dict(prior=prior.kind.name, rounds=round_index + 1, hash=prior.hash_hex,
                              train_bits_per_patch=prior.kind.train_bits_per_patch)), flush=True)


def train(family: str, out: Path, data: Path, device: str | None,
          budget: dict | None = None, levels: list[int] | None = None,
          checkpoint: bool = False, bases: list[Path] | None = None) -> list[dict]:
    """Learn ``family`` with its recipe; ``budget`` overrides iterations/steps/first_steps/
    per_file/beta/config/patch/bits_per_patch/learn_mix/rate_targeted/batch_patches/folders/
    flips/lr/seed.

    A rate-targeted recipe learns one prior per level (``levels``: only those, e.g. to spread
    the levels over several processes); the others learn one prior for all levels.
    ``checkpoint``: also save the priors after every round (see ``save_checkpoint``; the
    refinement stage's rounds as ``NAME.refineNNN``).
    ``bases``: with a refinement stage, the first stage's priors (files, one per level learned,
    in order) instead of learning them; the stage's output from them is the same.
    """
    budget = budget or {}
    settings = {**recipe(family), **budget}
    folders = [data / f for f in settings.pop("folders")]
    rates = list(settings.pop("bits_per_patch"))
    rate_targeted = settings.pop("rate_targeted")
    if levels is not None and not rate_targeted:
        raise SystemExit(f"--levels needs a rate-targeted recipe; {family} learns all levels at once")
    if levels is not None and not all(0 <= q < len(rates) for q in levels):
        raise SystemExit(f"--levels: {family} has levels 0 to {len(rates) - 1}")
    stage = settings.pop("refine")
    if bases is not None and (stage is None or not rate_targeted):
        raise SystemExit(f"--base needs a recipe with a refinement stage; {family} has none")
    refine_checkpoints = {}
    if checkpoint:
        settings["on_round"] = lambda r, learned: save_checkpoint(family, out, r, learned)
        refine_checkpoints["on_round"] = lambda r, learned: save_checkpoint(family, out, r, learned, "refine")
    t0 = time.perf_counter()
    if rate_targeted:
        chosen = list(range(len(rates)) if levels is None else levels)
        if bases is not None and len(bases) != len(chosen):
            raise SystemExit(f"--base: give one prior per level learned ({len(chosen)})")
        priors = []
        for k, q in enumerate(chosen):
            if bases is not None:
                prior = Prior.load(bases[k])
                if prior.kind.name != f"{family}-q{q}":
                    raise SystemExit(f"--base: {bases[k]} holds {prior.kind.name}, not {family}-q{q}")
            else:
                prior = learn_prior_from_folder(folders, name=f"{family}-q{q}", device=device, progress=False,
                                                bits_per_patch=rates[q], rate_target_bits=rates[q], **settings)
            if stage is not None:  # refined from where the family's encoder starts a fit
                prior = refined(with_settings(family, prior)[0], stage, {**settings, **refine_checkpoints},
                                folders, device, rates[q])
            priors.append(prior)
    else:
        priors = learn_prior_from_folder(folders, name=family, device=device, progress=False,
                                         bits_per_patch=rates, **settings)
    seconds = time.perf_counter() - t0
    if not distributed.is_main():  # every rank learned the same priors: rank 0 writes them
        return []
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for prior in with_settings(family, priors):
        path = out / f"{prior.kind.name}.safetensors"
        prior.save(path)
        rows.append(dict(prior=prior.kind.name, bits_per_patch=prior.kind.bits_per_patch,
                         blocks=prior.num_blocks, hash=prior.hash_hex, learn_s=round(seconds, 1)))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_settings(family: str, out: Path) -> list[dict]:
    """Write ``family``'s encoder settings into its priors in ``out``, keeping everything their
    content hash covers (checked before each file is replaced)."""
    rows = []
    for name in FAMILIES[family].levels:
        path = out / f"{name}.safetensors"
        prior = Prior.load(path)
        before = prior.content_hash()
        with_settings(family, prior)
        data = prior.to_bytes()
        if Prior.from_bytes(data).content_hash() != before:
            raise SystemExit(f"{path}: writing the encoder settings would change the content hash")
        path.with_suffix(".tmp").write_bytes(data)
        path.with_suffix(".tmp").replace(path)
        rows.append(dict(prior=name, hash=prior.hash_hex, encoder=prior.encoder.to_dict()))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("--out", type=Path, default=Path("python/combiner/priors"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (the shipped files) or cuda")
    ap.add_argument("--iterations", type=int, default=None, help="learning rounds (experiments)")
    ap.add_argument("--steps", type=int, default=None, help="fitting steps per round (experiments)")
    ap.add_argument("--first-steps", type=int, default=None, help="steps of the first round")
    ap.add_argument("--per-file", type=int, default=None, help="random crops per training file (experiments)")
    ap.add_argument("--folders", nargs="+", default=None,
                    help="training folders under --data instead of the recipe's (experiments)")
    ap.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                    help="mirror image crops at random or not (default: the recipe's)")
    ap.add_argument("--lr", type=float, default=None, help="the training posteriors' learning rate (experiments)")
    ap.add_argument("--seed", type=int, default=None, help="the crops' and the learning's seed (experiments)")
    ap.add_argument("--beta", type=float, default=None, help="starting beta (experiments)")
    ap.add_argument("--config", default=None, help="network preset of combiner.families.CONFIGS (experiments)")
    ap.add_argument("--patch", type=int, nargs="+", default=None, help="patch shape (experiments)")
    ap.add_argument("--bits", type=float, nargs="+", default=None,
                    help="bits per patch of each level (experiments)")
    ap.add_argument("--batch-patches", type=int, default=None,
                    help="training posteriors fitted together (default 256); the unit the ranks share")
    ap.add_argument("--checkpoint", action="store_true",
                    help="also save the priors after every round (NAME.roundNNN.safetensors; "
                         "a refinement stage's rounds: NAME.refineNNN.safetensors)")
    ap.add_argument("--mix", action=argparse.BooleanOptionalAction, default=None,
                    help="learn the linear reparameterisation's mixing matrices or not (default: the recipe's)")
    ap.add_argument("--rate-targeted", action=argparse.BooleanOptionalAction, default=None,
                    help="learn one prior per level at its rate or one for all levels (default: the recipe's)")
    ap.add_argument("--levels", type=int, nargs="+", default=None,
                    help="rate-targeted recipes: learn only these levels (e.g. 1 2)")
    ap.add_argument("--base", type=Path, nargs="+", default=None, metavar="FILE",
                    help="recipes with a refinement stage: refine these priors (one per level learned, "
                         "e.g. the retired first-stage files) instead of learning them first")
    ap.add_argument("--settings-only", action="store_true",
                    help="learn nothing: write the family's encoder settings into its priors in --out")
    args = ap.parse_args()
    if args.settings_only:
        write_settings(args.family, args.out)
        return
    torch.set_num_threads(args.threads)
    distributed.init_from_env()  # under torchrun: share the learning with the other ranks
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    budget = {k: v for k, v in dict(iterations=args.iterations, steps=args.steps,
                                    first_steps=args.first_steps, per_file=args.per_file, beta=args.beta,
                                    config=args.config, patch=tuple(args.patch) if args.patch else None,
                                    bits_per_patch=args.bits, batch_patches=args.batch_patches,
                                    learn_mix=args.mix, rate_targeted=args.rate_targeted,
                                    folders=tuple(args.folders) if args.folders else None,
                                    flips=args.flips, lr=args.lr, seed=args.seed).items()
              if v is not None}
    done = False
    try:
        train(args.family, args.out, args.data, args.device, budget, args.levels, args.checkpoint, args.base)
        done = True
    finally:
        distributed.finish(wait=done)


if __name__ == "__main__":
    main()
