"""The architecture of one implicit neural representation (INR): `INRConfig`.

Shared by the prior file (which stores it as JSON), the fitting network (`combiner.inr`) and the
decoder (docs/format.md section 7.2); it needs neither PyTorch nor the extension.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["INRConfig"]


@dataclass(frozen=True)
class INRConfig:
    """Architecture of one INR. ``depth`` counts hidden (sine-activated) layers.

    The COMBINER Kodak network (64 -> 48, four 48 -> 48, 48 -> 3) is
    ``INRConfig(in_dim=2, out_dim=3, num_freqs=16, max_freq=1024.0, width=48, depth=5)``.
    """

    in_dim: int = 2
    out_dim: int = 3
    num_freqs: int = 16
    max_freq: float = 1024.0
    width: int = 48
    depth: int = 5
    w0: float = 30.0

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim", "num_freqs", "width", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"INRConfig.{name} must be a positive int, got {v!r}")
        for name in ("max_freq", "w0"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"INRConfig.{name} must be a finite positive number, got {v!r}")
        if self.max_freq < 1.0:
            raise ValueError(f"INRConfig.max_freq must be >= 1 (frequencies start at 1), got {self.max_freq}")
        # Canonical float type so equal configs compare/serialise equally (1024 vs 1024.0).
        object.__setattr__(self, "max_freq", float(self.max_freq))
        object.__setattr__(self, "w0", float(self.w0))

    @property
    def feature_dim(self) -> int:
        """Number of Fourier features: the network's input."""
        return 2 * self.in_dim * self.num_freqs

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer, in layout order."""
        dims = [self.feature_dim] + [self.width] * self.depth + [self.out_dim]
        return list(zip(dims[:-1], dims[1:]))

    @property
    def num_params(self) -> int:
        """D, the parameters coded per patch: every layer's weights and biases."""
        return sum(i * o + o for i, o in self.layer_shapes)

    @property
    def mix_size(self) -> int:
        """Length of the flat mixing matrices: L_l [in+1, in+1] and R_l [out, out] per layer."""
        return sum((i + 1) ** 2 + o * o for i, o in self.layer_shapes)

    def layer_offsets(self) -> list[tuple[int, int, int]]:
        """(weight_start, bias_start, end) flat offsets of every layer."""
        out, pos = [], 0
        for i, o in self.layer_shapes:
            out.append((pos, pos + i * o, pos + i * o + o))
            pos += i * o + o
        return out

    def frequencies(self) -> np.ndarray:
        """The Fourier feature frequencies exp(linspace(0, ln max_freq, num_freqs)), float64
        [num_freqs]. The fitting network rounds them to float32; the decoder's definition
        (docs/format.md section 7.2) gives the same float32 values for the shipped configs."""
        return np.exp(np.linspace(0.0, math.log(self.max_freq), self.num_freqs, dtype=np.float64))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> INRConfig:
        if not isinstance(d, dict):
            raise ValueError(f"INRConfig must be a JSON object, got {type(d).__name__}")
        # Per-patch latent grids are not part of the format (docs/format.md section 7.2): the keys
        # may appear with the value 0 only.
        latent = {k: d[k] for k in ("latent_grid", "latent_channels") if k in d}
        if any(v != 0 or isinstance(v, bool) for v in latent.values()):
            raise ValueError("per-patch latent grids (latent_grid, latent_channels) are not supported")
        d = {k: v for k, v in d.items() if k not in latent}
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown INRConfig keys: {sorted(unknown)}")
        missing = known - set(d)
        if missing:
            raise ValueError(f"missing INRConfig keys: {sorted(missing)}")
        return cls(**d)
