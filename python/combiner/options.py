"""How hard the encoder works: `EncoderSettings` (the recipe a prior is measured with and stores)
and `EncodeOptions` (the recipe plus the choices of one call). No PyTorch needed to build either.

A prior file records the settings it was measured with (metadata key ``encoder``, docs/format.md
section 5), and ``combiner.quality.resolve`` starts from them; the defaults below apply to a prior
that records none.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

__all__ = ["EncodeOptions", "EncoderSettings", "Search"]

# Where the A* search runs: "cpu" (Rust), "gpu" (the CUDA kernel, same indices), or "auto": the
# GPU when fitting on CUDA and CuPy is installed.
Search = Literal["auto", "cpu", "gpu"]
# How a fitting step draws the network (`combiner.inr.BayesianINR.forward_features`):
# "local": local reparameterisation, fresh noise per (patch, point, unit) (Kingma, Salimans and
#          Welling 2015);
# "marginal": with mixing matrices, each pre-activation from its exact marginal given the layer
#          input, independently across units: the correlations R creates between the units of a
#          point are left out, which saves the per-point R products of "local";
# "folded": local reparameterisation on the effective weights L Theta R, each with its own
#          variance, ignoring the correlations that the mixing matrices create between them:
#          half the matmuls of "local" (no per-point L and R products);
# "weights": one weight sample per patch and step, the plain reparameterisation trick, a
#          deterministic network per draw.
Noise = Literal["local", "marginal", "folded", "weights"]
# How the fitting learning rate changes over a fit (`combiner.fit.fit`).
LrSchedule = Literal["step", "cosine"]

MAX_STEPS = 1_000_000  # a bound on every step count, so that a prior file cannot ask for ages
MAX_TARGET_BITS = 64.0  # a block index has at most 64 bits (kappa)
_WRITTEN_WHEN_SET = ("max_refine_steps",)  # see EncoderSettings.to_dict


@dataclass(frozen=True)
class EncoderSettings:
    """The encoding recipe: how the posterior is fitted and how its blocks are laid out.

    Every field is checked when the object is built (``ValueError``): integer fields take
    integers, float fields any real number (kept as float), flags only ``True`` or ``False``.
    """

    fit_steps: int = 1500
    lr: float = 1e-3
    refine_steps: int = 10  # fine-tuning steps after each coded round of blocks
    # A bound on the refinement steps of all rounds together (None: no bound), so that the
    # highest levels, whose rounds are many, keep to the time budget: see `refine_steps_per_round`.
    max_refine_steps: int | None = None
    init_std_ratio: float = 0.5  # initial posterior std as a fraction of the prior std
    beta: float | None = None  # starting beta; default: the prior's training beta
    control_every: int = 25
    target_bits: float | None = None  # per-block KL target; default kappa - 0.5
    pixel_fraction: float = 1.0  # the share of points each fitting step uses
    # Blocks that span patches (combiner.blocks.spread) instead of each patch's own blocks.
    spread_blocks: bool = False
    # How the fitting steps draw the network (`Noise` above); their costs per step are in
    # benches/profile_fit.py ("weights": about a third of "local").
    noise: Noise = "local"
    # The noise of the refinement steps between coded rounds; None: the same as `noise`.
    # "local" there keeps the exact draws where the last weights are settled, at about 1.5x the
    # step time of "folded" and 1.2x that of "marginal" (results/experiments/README.md, "The
    # encoder's speed").
    refine_noise: Noise | None = None
    weight_samples: int = 1  # with noise="weights": weight draws per patch and step
    # Each step's normals as windows of one pool drawn once (combiner.inr.noise_pool).
    pooled_noise: bool = False
    # How the fitting learning rate changes: "step" (halved at 80 % of the steps) or "cosine".
    lr_schedule: LrSchedule = "step"

    def __post_init__(self) -> None:
        _integer(self, "fit_steps", 0, MAX_STEPS)
        _integer(self, "refine_steps", 0, MAX_STEPS)
        if self.max_refine_steps is not None:
            _integer(self, "max_refine_steps", 0, MAX_STEPS)
        _integer(self, "control_every", 1, MAX_STEPS)
        _real(self, "lr", 0.0, 1.0)
        _real(self, "init_std_ratio", 0.0, 1.0)
        _real(self, "pixel_fraction", 0.0, 1.0)
        _real(self, "beta", 0.0, math.inf, optional=True)
        _real(self, "target_bits", 0.0, MAX_TARGET_BITS, optional=True)
        _flag(self, "spread_blocks")
        _integer(self, "weight_samples", 1, 4096)
        _flag(self, "pooled_noise")
        if self.lr_schedule not in get_args(LrSchedule):
            raise ValueError(f"lr_schedule must be one of {get_args(LrSchedule)}, not {self.lr_schedule!r}")
        if self.noise not in get_args(Noise):
            raise ValueError(f"noise must be one of {get_args(Noise)}, not {self.noise!r}")
        if self.refine_noise is not None and self.refine_noise not in get_args(Noise):
            raise ValueError(f"refine_noise must be one of {get_args(Noise)} or None, not {self.refine_noise!r}")

    def refine_steps_per_round(self, rounds: int) -> int:
        """The fine-tuning steps after each of the first ``rounds - 1`` coded rounds (none
        follows the last): ``refine_steps``, or fewer when ``max_refine_steps`` bounds their sum,
        ``max_refine_steps // (rounds - 1)`` but at least one (when ``refine_steps`` is not 0)."""
        refinements = max(0, rounds - 1)
        if self.max_refine_steps is None or refinements == 0 or self.refine_steps == 0:
            return self.refine_steps
        return min(self.refine_steps, max(1, self.max_refine_steps // refinements))

    @property
    def refinement_noise(self) -> Noise:
        """The noise the refinement steps draw: `refine_noise`, or `noise` when that is None."""
        return self.refine_noise or self.noise

    def to_dict(self) -> dict[str, Any]:
        """The recipe's fields (only those of `EncoderSettings`), for the prior file; a field
        added after the files were first written (`_WRITTEN_WHEN_SET`) only when it is set, so
        that a file without it is saved again byte for byte."""
        return {f.name: getattr(self, f.name) for f in fields(EncoderSettings)
                if not (f.name in _WRITTEN_WHEN_SET and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderSettings:
        """Settings from a dict of field values; absent fields take the defaults, unknown ones
        are refused (``ValueError``)."""
        if not isinstance(values, dict):
            raise ValueError(f"encoder settings must be a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(EncoderSettings)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown encoder settings {unknown}; known: {sorted(known)}")
        return EncoderSettings(**values)

    @classmethod
    def of(cls, settings: EncoderSettings) -> EncoderSettings:
        """The recipe part of ``settings`` (e.g. of an `EncodeOptions`)."""
        return EncoderSettings(**settings.to_dict())

    def options(self, **per_call: Any) -> EncodeOptions:
        """`EncodeOptions` with this recipe and ``per_call`` (fields of `EncodeOptions`; a recipe
        field given here replaces the recipe's)."""
        return EncodeOptions(**{**self.to_dict(), **per_call})


@dataclass(frozen=True)
class EncodeOptions(EncoderSettings):
    """How one encode runs: the recipe (`EncoderSettings`: fitting steps, learning rate ...)
    and the choices of the call (seed, device, progress output, where the search runs).

    Defaults suit a CPU; raise ``fit_steps`` on a GPU."""

    seed: int = 0
    device: str | None = None
    early_stop: bool = True  # stop each block's search once no candidate can win (same indices)
    progress: bool = True
    search: Search = "auto"
    # Threads for fitting and for the search (one after the other); None: combiner.threads picks
    # from the free cores and the size of the signal.
    threads: int | None = None
    # Fitting steps through torch.compile (combiner.fit.compiled_elbo): True, False, or None for
    # when it pays (combiner.fit.compile_pays: a C++ compiler and a long enough fit).
    compile: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compile is not None:
            _flag(self, "compile")
        _integer(self, "seed", 0, 2**64 - 1)
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda:1', or None, got {self.device!r}")
        _flag(self, "early_stop")
        _flag(self, "progress")
        if self.search not in get_args(Search):
            raise ValueError(f"search must be 'auto', 'cpu' or 'gpu', not {self.search!r}")
        if self.threads is not None:
            _integer(self, "threads", 1, 4096)


def _integer(obj: object, name: str, lo: int, hi: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    object.__setattr__(obj, name, int(value))


def _real(obj: object, name: str, lo: float, hi: float, optional: bool = False) -> None:
    """A finite number in (lo, hi] (or None when ``optional``), stored as float."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if not (ok and math.isfinite(float(value)) and lo < float(value) <= hi):
        bound = "" if hi == math.inf else f" and at most {hi:g}"
        none = " (or None)" if optional else ""
        raise ValueError(f"{name} must be a finite number above {lo:g}{bound}{none}, got {value!r}")
    object.__setattr__(obj, name, float(value))


def _flag(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")

