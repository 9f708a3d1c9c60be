"""Which prior and which encoder settings an encode uses: ``resolve``, the one place that decides,
for ``combiner.encode``, ``combiner encode``, ``combiner demo`` and ``combiner eval``.

- An explicit prior (a ``Prior``, a file, or a shipped name) is used with the encoder settings
  stored in it (``Prior.encoder``), or ``EncoderSettings``' defaults when it stores none.
- Otherwise a quality level (default ``DEFAULT_QUALITY``) picks the shipped prior of the signal's
  family (``combiner.families``: thumbnail, photo or speech), used with the settings stored in
  it, the settings its family was measured with.
- A budget (``BUDGETS``) scales the recipe's steps: ``"cpu"`` (the default) keeps them,
  ``"gpu"`` fits for tens of thousands of steps, the references' order, for a GPU.
- Explicit overrides (fields of ``EncodeOptions``: ``fit_steps``, ``spread_blocks``, ``seed``,
  ``progress`` ...) replace what the prior and the budget say; an explicit ``refine_steps`` is
  run after every round, free of the stored ``max_refine_steps`` unless that is given too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from combiner import families, registry
from combiner.media import Signal
from combiner.options import EncodeOptions, EncoderSettings
from combiner.prior import Prior

__all__ = ["BUDGETS", "DEFAULT_QUALITY", "Budget", "PriorLike", "budget_settings",
           "prior_name_for", "resolve", "settings_of"]

DEFAULT_QUALITY = 1

PriorLike = Prior | str | os.PathLike


@dataclass(frozen=True)
class Budget:
    """How much longer than its recipe an encode fits: the recipe's fitting steps times
    ``fit_scale``, its refinement steps (after each coded round) times ``refine_scale``, its
    learning rate times ``lr_scale``."""

    fit_scale: int
    refine_scale: int
    lr_scale: float


# "cpu": the recipe as stored in the prior, sized for a 2-core CPU (a Kodak image in about 3
# minutes). "gpu": 40,000 fitting steps for `photo` (2,000 x 20), the order of the references'
# budget (COMBINER, Guo et al., NeurIPS 2023: 25,000 steps per Kodak image), at half the learning
# rate, with three times the refinement. Measured when photo's recipe had 1,200 steps (so 24,000
# here): +0.33 dB on Kodak crops at photo-q1, and +0.61 dB on CIFAR-10 at thumbnail-q1 (30,000
# steps), for about 10 times the encode time on one CPU thread (results/experiments/README.md,
# "A GPU budget for the encoder").
BUDGETS: dict[str, Budget] = {
    "cpu": Budget(fit_scale=1, refine_scale=1, lr_scale=1.0),
    "gpu": Budget(fit_scale=20, refine_scale=3, lr_scale=0.5),
}


def prior_name_for(signal: Signal, quality: int) -> str:
    """The shipped prior for ``signal`` at ``quality`` (0 = lowest rate)."""
    family = families.for_signal(signal)
    names = family.levels
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise ValueError(f"quality must be an integer, got {quality!r}")
    if not 0 <= quality < len(names):
        raise ValueError(f"quality {quality} is out of range for {family.name} signals: "
                         f"choose 0 (lowest rate) to {len(names) - 1} (highest)")
    if family.sample_rate is not None and signal.sample_rate != family.sample_rate:
        raise ValueError(f"the shipped {family.name} priors are for {family.sample_rate // 1000} kHz "
                         f"audio, got {signal.sample_rate} Hz; resample the clip or pass a prior "
                         "learned at its rate")
    return names[quality]


def settings_of(prior: Prior) -> EncoderSettings:
    """The encoder settings ``prior`` was measured with: those it stores, else the defaults."""
    return prior.encoder if prior.encoder is not None else EncoderSettings()


def budget_settings(settings: EncoderSettings, budget: str) -> EncoderSettings:
    """``settings`` with the steps and learning rate of ``budget`` (a key of ``BUDGETS``;
    ``ValueError`` for another)."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, not {budget!r}")
    b = BUDGETS[budget]
    bound = None if settings.max_refine_steps is None else settings.max_refine_steps * b.refine_scale
    return replace(settings, fit_steps=settings.fit_steps * b.fit_scale,
                   refine_steps=settings.refine_steps * b.refine_scale, max_refine_steps=bound,
                   lr=settings.lr * b.lr_scale)


def resolve(signal: Signal, *, prior: PriorLike | None = None, quality: int | None = None,
            overrides: Mapping[str, Any] | None = None) -> tuple[Prior, EncodeOptions]:
    """The prior to encode ``signal`` with and the options to encode it with (see the module
    docstring). ``prior`` and ``quality`` exclude each other; ``overrides`` are fields of
    `EncodeOptions`, and ``budget``, a key of ``BUDGETS`` (default ``"cpu"``); ``TypeError`` for
    an unknown name, ``ValueError`` for a bad value."""
    if prior is not None and quality is not None:
        raise ValueError("give either a prior or a quality level, not both")
    overrides = dict(overrides or {})
    budget = overrides.pop("budget", "cpu")
    known = {f.name for f in fields(EncodeOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown encoder options {unknown}; known: {sorted(known)}")
    if prior is None:
        name = prior_name_for(signal, DEFAULT_QUALITY if quality is None else quality)
        chosen = registry.load_shipped(name)
    else:
        chosen = registry.resolve(prior)
    if "refine_steps" in overrides:  # steps per round asked for are run in every round
        overrides.setdefault("max_refine_steps", None)
    return chosen, replace(budget_settings(settings_of(chosen), budget).options(), **overrides)
