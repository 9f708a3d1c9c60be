"""The model prior: per-parameter Gaussian N(mean, std^2) and the block partition, as an object
and as a file (docs/format.md section 5). Learning a prior is `combiner.prior_learning`.

A prior is learned once from a training set and shared by encoder and decoder; a fitted network is
per signal. The partition `block_index[D]` (which parameters are coded together in one REC block)
is *shared data that lives in the prior*: it is never transmitted, so encoder and decoder must use
the very same prior file (checked through `content_hash`).

File format: safetensors with tensors `mean` (float32 [D]), `std` (float32 [D]) and
`block_index` (int64 [D]), and string metadata `format` = "combiner-prior", `version` = "1",
`config` (INRConfig JSON), `kappa`, `seed` (decimal), `kind` (JSON object: modality, patch shape, name and
how the prior was learned; `PriorKind` lists its keys, and a file with any other is refused).
Version "2" adds one tensor, `mix` (float32 [K]): the learned mixing matrices of the linear
reparameterisation (see `combiner.inr`); a prior without them is written as version "1", byte for
byte as before, so existing priors keep their hashes. Metadata must be in the canonical form this
module writes, so that the content hash computed here from the parsed values equals the one the
Rust decoder computes from the stored strings.

The optional metadata key `encoder` holds the encoder settings the prior was measured with
(`EncoderSettings` as a JSON object). It is not part of the content hash and decoders do not
read it: adding or changing it leaves every bitstream coded with the prior valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_args

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from combiner.config import INRConfig
from combiner.errors import PriorFormatError
from combiner.families import Modality
from combiner.options import EncoderSettings

__all__ = ["Prior", "PriorFormatError", "PriorKind"]

FORMAT = "combiner-prior"
VERSION = "1"
VERSION_MIX = "2"
_TENSORS = {"mean": np.float32, "std": np.float32, "block_index": np.int64}
_MIX_DTYPE = np.float32
_MAX_FILE_BYTES = 1 << 30  # a prior is kilobytes to a few megabytes; refuse absurd inputs early
_HASH_DOMAIN = b"combiner-prior-hash-v1\0"
ENCODER_KEY = "encoder"  # optional, not hashed: the encoder settings the prior was measured with
MAX_PATCH_SIZE = 1 << 16  # the largest patch extent along one axis (docs/format.md section 5)
_AXES = {"image": 2, "audio": 1}  # coordinate axes of a patch, per modality


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass(frozen=True)
class PriorKind:
    """What a prior is for and how it was learned: the `kind` metadata of a prior file.

    - ``modality``: ``"image"`` or ``"audio"``.
    - ``patch_shape``: the patch one network covers, one entry per coordinate axis:
      ``(height, width)`` for images, ``(length,)`` for audio; each from 1 to 65536
      (`MAX_PATCH_SIZE`). The file stores it as a JSON list.
    - ``name``: the prior's name (e.g. ``photo-q2``), which a bitstream records as its
      ``prior_id``; ``""`` for an unnamed prior, whose file has no ``name`` key.
    - ``beta``: the KL weight the prior was learned with (after rate targeting, its final value),
      the encoder's starting beta; > 0.
    - ``bits_per_patch``: the rate in bits per patch the partition was made for; > 0.
    - ``train_bits_per_patch``: the training posteriors' average KL per patch in bits at the end
      of rate-targeted learning; >= 0.

    The last three are None when the file does not have them; they describe how the prior was
    learned and do not affect decoding. Every field is checked when the object is built
    (``ValueError``). A number keeps its JSON type (an int stays an int, a float a float, numpy
    scalars become the Python type), so that `to_dict` reproduces a file's `kind` exactly and a
    prior's content hash does not change on load and save.
    """

    modality: Modality
    patch_shape: tuple[int, ...]
    name: str = ""
    beta: float | None = None
    bits_per_patch: float | None = None
    train_bits_per_patch: float | None = None

    def __post_init__(self) -> None:
        if self.modality not in get_args(Modality):
            raise ValueError(f"kind.modality must be 'image' or 'audio', got {self.modality!r}")
        axes = _AXES[self.modality]
        shape = self.patch_shape
        ok = isinstance(shape, (tuple, list)) and len(shape) == axes and all(
            not isinstance(s, bool) and isinstance(s, numbers.Integral) and 1 <= int(s) <= MAX_PATCH_SIZE
            for s in shape)
        if not ok:
            raise ValueError(f"kind.patch_shape must hold {axes} integer(s) from 1 to {MAX_PATCH_SIZE} for "
                             f"{self.modality}, got {shape!r}")
        object.__setattr__(self, "patch_shape", tuple(int(s) for s in shape))
        if not isinstance(self.name, str):
            raise ValueError(f"kind.name must be a string, got {self.name!r}")
        _number(self, "beta", 0.0, open_below=True)
        _number(self, "bits_per_patch", 0.0, open_below=True)
        _number(self, "train_bits_per_patch", 0.0, open_below=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the file stores: ``patch_shape`` as a list, absent fields (None, an
        empty name) left out."""
        out: dict[str, Any] = {"modality": self.modality, "patch_shape": list(self.patch_shape)}
        if self.name:
            out["name"] = self.name
        for f in _LEARNING_FIELDS:
            value = getattr(self, f)
            if value is not None:
                out[f] = value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PriorKind:
        """The kind of a prior file's ``kind`` object (parsed JSON). Unknown keys, a missing
        ``modality`` or ``patch_shape``, an explicit null and an empty ``name`` (an unnamed prior
        has no ``name`` key) are refused with ``ValueError``, as are values out of range."""
        if not isinstance(values, Mapping):
            raise ValueError(f"kind must be a JSON object, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown kind keys {unknown}; known: {known}")
        missing = [k for k in ("modality", "patch_shape") if k not in values]
        if missing:
            raise ValueError(f"kind lacks {missing}")
        nulls = sorted(k for k, v in values.items() if v is None)
        if nulls:
            raise ValueError(f"kind keys {nulls} are null; leave an absent value out")
        if values.get("name") == "":
            raise ValueError("kind.name is empty; an unnamed prior has no name key")
        shape = values["patch_shape"]
        if not isinstance(shape, list):
            raise ValueError(f"kind.patch_shape must be a list, got {shape!r}")
        return cls(**{**values, "patch_shape": tuple(shape)})


_LEARNING_FIELDS = ("beta", "bits_per_patch", "train_bits_per_patch")


def _number(obj: object, name: str, lo: float, *, open_below: bool) -> None:
    """A finite number above ``lo`` (or at least ``lo``) or None; an integer stays an int, any
    other real number becomes a float."""
    value = getattr(obj, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"kind.{name} must be a number, got {value!r}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not (math.isfinite(value) and (value > lo if open_below else value >= lo)):
        raise ValueError(f"kind.{name} must be a finite number {'above' if open_below else 'of at least'} "
                         f"{lo:g}, got {value!r}")
    object.__setattr__(obj, name, value)


@dataclass
class Prior:
    """A prior: the network ``config``, per-parameter Gaussian ``mean`` and ``std`` (float32
    [D]), the partition ``block_index`` (int64 [D], ids 0..J-1, each used), ``kappa`` (bits per
    block index), the learning ``seed``, ``kind`` (`PriorKind`: modality, patch shape, name and
    how it was learned; a required keyword argument), the mixing matrices ``mix`` (float32 [K]
    or None) and the ``encoder`` settings it was measured with (not hashed).

    Checked when built: a defect raises `PriorFormatError` (a ``ValueError``), also when the
    prior comes from a file.
    """

    config: INRConfig
    mean: np.ndarray  # float32 [D]
    std: np.ndarray  # float32 [D], > 0
    block_index: np.ndarray  # int64 [D], values 0..J-1, every id used
    kappa: int = 16
    seed: int = 0
    mix: np.ndarray | None = None  # float32 [K] mixing matrices (linear reparameterisation) or None
    # The encoder settings the prior was measured with (file metadata `encoder`, not hashed);
    # None: the generic defaults of `EncoderSettings` apply.
    encoder: EncoderSettings | None = None
    # What the prior is for (modality, patch shape, name) and how it was learned.
    kind: PriorKind = field(kw_only=True)

    def __post_init__(self) -> None:
        self.mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        self.std = np.ascontiguousarray(self.std, dtype=np.float32)
        self.block_index = np.ascontiguousarray(self.block_index, dtype=np.int64)
        if self.mix is not None:
            self.mix = np.ascontiguousarray(self.mix, dtype=_MIX_DTYPE)
        if isinstance(self.encoder, EncoderSettings):
            self.encoder = EncoderSettings.of(self.encoder)  # the recipe of an EncodeOptions
        self.validate()

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        if not isinstance(self.config, INRConfig):
            raise PriorFormatError("config must be an INRConfig")
        D = self.config.num_params
        for name in _TENSORS:
            a = getattr(self, name)
            if a.shape != (D,):
                raise PriorFormatError(f"{name} has shape {a.shape}, expected ({D},) for this config")
        if not np.all(np.isfinite(self.mean)):
            raise PriorFormatError("mean has non-finite entries")
        if not (np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise PriorFormatError("std must be finite and > 0")
        b = self.block_index
        if b.min() < 0:
            raise PriorFormatError("block_index has negative entries")
        J = int(b.max()) + 1
        if J > D or np.bincount(b, minlength=J).min() == 0:
            raise PriorFormatError("block ids must be exactly 0..J-1, each used at least once")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, int) or not 1 <= self.kappa <= 64:
            raise PriorFormatError(f"kappa must be an int in 1..64, got {self.kappa!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise PriorFormatError(f"seed must be an int in [0, 2^64), got {self.seed!r}")
        if self.mix is not None:
            K = self.config.mix_size
            if self.mix.shape != (K,):
                raise PriorFormatError(f"mix has shape {self.mix.shape}, expected ({K},) for this config")
            if not np.all(np.isfinite(self.mix)):
                raise PriorFormatError("mix has non-finite entries")
        if not isinstance(self.kind, PriorKind):
            raise PriorFormatError(f"kind must be a PriorKind, got {type(self.kind).__name__}")
        if self.config.in_dim != len(self.kind.patch_shape):
            raise PriorFormatError(f"config.in_dim {self.config.in_dim} does not match kind.modality "
                                   f"{self.kind.modality!r} ({len(self.kind.patch_shape)} axes)")
        if self.encoder is not None and not isinstance(self.encoder, EncoderSettings):
            raise PriorFormatError(f"encoder must be EncoderSettings or None, got {type(self.encoder).__name__}")

    @property
    def num_blocks(self) -> int:
        return int(self.block_index.max()) + 1

    # -- serialisation -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = {k: getattr(self, k) for k in _TENSORS}
        if self.mix is not None:
            tensors["mix"] = self.mix
        return tensors

    def _metadata(self) -> dict[str, str]:
        """The metadata the content hash covers (docs/format.md section 5)."""
        return {
            "format": FORMAT,
            "version": VERSION if self.mix is None else VERSION_MIX,
            "config": _canonical_json(self.config.to_dict()),
            "kappa": str(self.kappa),
            "seed": str(self.seed),
            "kind": _canonical_json(self.kind.to_dict()),
        }

    def _file_metadata(self) -> dict[str, str]:
        """What the file stores: the hashed metadata and, if any, the encoder settings."""
        meta = self._metadata()
        if self.encoder is not None:
            meta[ENCODER_KEY] = _canonical_json(self.encoder.to_dict())
        return meta

    def to_bytes(self) -> bytes:
        return st_save(self._tensors(), metadata=self._file_metadata())

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Prior:
        if len(data) > _MAX_FILE_BYTES:
            raise PriorFormatError("prior file is too large")
        meta = _read_metadata(data)
        try:
            tensors = st_load(data)
        except Exception as e:  # safetensors raises its own (non-ValueError) error type
            raise PriorFormatError(f"corrupted safetensors payload: {e}") from None
        expected = {**_TENSORS, **({"mix": _MIX_DTYPE} if meta["version"] == VERSION_MIX else {})}
        if set(tensors) != set(expected):
            raise PriorFormatError(f"expected tensors {sorted(expected)}, got {sorted(tensors)}")
        for name, dt in expected.items():
            if tensors[name].dtype != dt:
                raise PriorFormatError(f"{name} must be {np.dtype(dt).name}, got {tensors[name].dtype}")
        try:
            config = INRConfig.from_dict(json.loads(meta["config"]))
            kind = PriorKind.from_dict(json.loads(meta["kind"], parse_constant=_no_constants))
            kappa, seed = _parse_int(meta["kappa"], "kappa"), _parse_int(meta["seed"], "seed")
        except PriorFormatError:
            raise
        except (ValueError, TypeError) as e:
            raise PriorFormatError(f"bad prior metadata: {e}") from None
        prior = cls(config, tensors["mean"], tensors["std"], tensors["block_index"], kappa, seed,
                    tensors.get("mix"), _parse_encoder(meta.get(ENCODER_KEY)), kind=kind)
        # The hashed keys must be stored exactly as written here; `encoder` is not hashed.
        if {k: meta[k] for k in prior._metadata()} != prior._metadata():
            raise PriorFormatError("prior metadata is not in canonical form (docs/format.md section 5)")
        return prior

    @classmethod
    def load(cls, path: str | os.PathLike) -> Prior:
        size = os.path.getsize(path)
        if size > _MAX_FILE_BYTES:
            raise PriorFormatError(f"{path}: prior file is too large ({size} bytes)")
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())

    # -- identity ------------------------------------------------------------------------------
    def content_hash(self) -> bytes:
        """32-byte SHA-256 over canonical metadata JSON and the tensors' little-endian bytes.

        Independent of the safetensors file layout, so it is stable across save/load.
        """
        h = hashlib.sha256(_HASH_DOMAIN)
        meta = _canonical_json(self._metadata()).encode()
        h.update(struct.pack("<Q", len(meta)) + meta)
        for name, a in sorted(self._tensors().items()):
            raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            h.update(name.encode() + b"\0" + struct.pack("<Q", a.shape[0]) + raw)
        return h.digest()

    @property
    def hash_hex(self) -> str:
        """The first 16 hex digits (64 bits) of `content_hash`: the ``prior_hash`` a bitstream
        records, printed. (A bitstream's ``prior_id`` is the prior's name, ``kind.name``.)"""
        return self.content_hash().hex()[:16]


def _parse_int(s: str, name: str) -> int:
    if not isinstance(s, str) or not (s.isascii() and s.isdigit()) or len(s) > 20:
        raise PriorFormatError(f"metadata {name} must be a decimal integer, got {s!r}")
    return int(s)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _parse_encoder(text: str | None) -> EncoderSettings | None:
    """The `encoder` metadata: absent, or a JSON object of valid `EncoderSettings` fields."""
    if text is None:
        return None
    try:
        return EncoderSettings.from_dict(json.loads(text, parse_constant=_no_constants))
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise PriorFormatError(f"bad encoder settings in the prior metadata: {e}") from None


def _read_metadata(data: bytes) -> dict[str, str]:
    """Parse the safetensors header ourselves: the library exposes metadata only via files."""
    if len(data) < 8:
        raise PriorFormatError("file too short to be a safetensors prior")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise PriorFormatError("safetensors header length exceeds the file")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PriorFormatError(f"safetensors header is not valid JSON: {e}") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise PriorFormatError("missing or malformed safetensors metadata")
    if meta.get("format") != FORMAT:
        raise PriorFormatError(f"not a combiner prior (format={meta.get('format')!r})")
    if meta.get("version") not in (VERSION, VERSION_MIX):
        raise PriorFormatError(f"unsupported prior version {meta.get('version')!r}")
    missing = {"config", "kappa", "seed", "kind"} - set(meta)
    if missing:
        raise PriorFormatError(f"metadata lacks {sorted(missing)}")
    return meta
