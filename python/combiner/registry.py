"""Priors shipped inside the package (``combiner/priors/*.safetensors``), found by name.

A bitstream records the name of its prior, so files coded with a shipped prior decode without
naming it; ``--prior`` also accepts a shipped name instead of a path. Shipped priors come in
families of quality levels, ``NAME-q0`` (lowest rate) to ``NAME-qK``; the family name alone picks
the middle level.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from combiner.prior import Prior


def _folder() -> Path:
    return Path(str(resources.files("combiner") / "priors"))


def shipped() -> dict[str, Path]:
    """Name -> path of every prior shipped with the package."""
    folder = _folder()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))}


def resolve(prior: Prior | str | os.PathLike) -> Prior:
    """A Prior from a Prior, a file path, or the name of a shipped prior."""
    if isinstance(prior, Prior):
        return prior
    path = Path(prior)
    if path.is_file():
        return Prior.load(path)
    known = shipped()
    name = str(prior)
    if name in known:
        return Prior.load(known[name])
    family = sorted(k for k in known if k.startswith(name + "-q"))
    if family:  # a family name alone means its middle quality level
        return Prior.load(known[family[len(family) // 2]])
    names = ", ".join(known) or "none"
    raise ValueError(f"no prior file or shipped prior named {str(prior)!r} (shipped: {names})")
