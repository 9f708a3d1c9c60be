"""Priors shipped inside the package (``combiner/priors/*.safetensors``), found by name.

A bitstream records the name of its prior, so files coded with a shipped prior decode without
naming it; ``--prior`` also accepts a shipped name instead of a path. Shipped priors come in
families of quality levels, ``NAME-q0`` (lowest rate) to ``NAME-qK``; the family name alone picks
the middle level.

When a shipped prior is replaced by a better one of the same name, the old file moves to
``priors/retired/NAME.HASH.safetensors`` (HASH: the 16 hex digits of the prior hash a bitstream
records), so that every bitstream an earlier version wrote still decodes. A bitstream's prior is
looked up by exact name and hash among shipped files only, never as a path: the name comes from
untrusted input.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from combiner.errors import PriorMismatchError
from combiner.prior import Prior


def _folder() -> Path:
    return Path(str(resources.files("combiner") / "priors"))


def shipped() -> dict[str, Path]:
    """Name -> path of every prior shipped with the package."""
    folder = _folder()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))}


def retired() -> dict[str, Path]:
    """``NAME.HASH`` -> path of every superseded prior kept for decoding old bitstreams."""
    folder = _folder() / "retired"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))}


def for_bitstream(prior_id: str, prior_hash: bytes) -> Prior:
    """The shipped prior a bitstream names: the current file of that name when its hash matches,
    else the retired one with that name and hash. An empty name (a prior named by its hash
    alone) matches any shipped or retired prior with that hash."""
    if not prior_id:
        return _by_hash(prior_hash)
    current = shipped().get(prior_id)
    if current is not None:
        prior = Prior.load(current)
        if prior.content_hash()[:len(prior_hash)] == prior_hash:
            return prior
    old = retired().get(f"{prior_id}.{prior_hash.hex()}")
    if old is not None:
        return Prior.load(old)
    raise PriorMismatchError(
        f"the bitstream was encoded with prior {prior_id!r} (hash {prior_hash.hex()}), which this "
        "version of combiner does not ship; pass the prior file it was encoded with (--prior)")


def _by_hash(prior_hash: bytes) -> Prior:
    for stem, path in retired().items():
        if stem.endswith("." + prior_hash.hex()):
            return Prior.load(path)
    for path in shipped().values():
        prior = Prior.load(path)
        if prior.content_hash()[:len(prior_hash)] == prior_hash:
            return prior
    raise PriorMismatchError(
        f"the bitstream names its prior by hash alone ({prior_hash.hex()}), and no prior this "
        "version of combiner ships has it; pass the prior file it was encoded with (--prior)")


def load_shipped(name: str) -> Prior:
    """The shipped prior ``name`` (e.g. ``photo-q1``); ValueError when it is not installed."""
    known = shipped()
    if name not in known:
        raise ValueError(f"the shipped prior {name!r} is not installed "
                         f"(shipped: {', '.join(known) or 'none'})")
    return Prior.load(known[name])


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
