"""The combiner bitstream container (format versions 1 to 3, specified in docs/format.md).

``pack(header, indices)`` and ``unpack(data)`` are implemented in Rust; this module gives them
a typed Python face. ``unpack`` treats its input as hostile: any defect raises a subclass of
:class:`combiner.FormatError` (truncation, bad magic, unknown version, bad CRC, forbidden field
values, trailing bytes), never a crash or an unbounded allocation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from combiner import _core
from combiner.errors import InvalidFieldError

FORMAT_VERSION: int = _core.FORMAT_VERSION  # the newest version read and written
MAGIC = b"CMB"
PRIOR_HASH_LEN = 8


@dataclass(frozen=True)
class Header:
    """Everything a bitstream holds besides the block indices."""

    modality: Literal["image", "audio"]
    kappa: int
    height: int  # image rows, or the number of audio samples
    width: int  # image columns; 1 for audio
    channels: int
    sample_rate: int  # Hz for audio; 0 for images
    seed: int
    prior_hash: bytes  # first 8 bytes of the content hash of the prior it was encoded with
    prior_id: str  # the prior's name; may be empty
    # The blocks span patches (combiner.blocks.spread).
    spread_blocks: bool = False
    # The format version, which selects the candidate generator (docs/format.md section 4):
    # 3 (Philox, binary32), or 1 / 2 (ChaCha20, binary64; 1 without spread blocks, 2 with them).
    version: int = FORMAT_VERSION

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the decoded signal: (H, W, C) for images, (N,) for audio."""
        if self.modality == "image":
            return (self.height, self.width, self.channels)
        return (self.height,)


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise InvalidFieldError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def pack(header: Header, indices: object) -> bytes:
    """Serialise ``header`` and the block ``indices`` (each < 2^kappa) into a bitstream."""
    idx = np.asarray(indices)
    if idx.size and (idx.min() < 0 or idx.max() > 0xFFFFFFFF):
        raise InvalidFieldError("indices must be non-negative 32-bit integers")
    _check_range("height", header.height, 0, 2**32 - 1)
    _check_range("width", header.width, 0, 2**32 - 1)
    _check_range("channels", header.channels, 0, 255)
    _check_range("sample_rate", header.sample_rate, 0, 2**32 - 1)
    _check_range("seed", header.seed, 0, 2**64 - 1)
    _check_range("kappa", header.kappa, 0, 255)
    _check_range("version", header.version, 0, 255)
    fields = asdict(header)
    fields["prior_hash"] = bytes(header.prior_hash)
    return _core.pack(**fields, indices=np.ascontiguousarray(idx.astype(np.uint32).reshape(-1)))


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Parse a bitstream; returns ``(header, indices)`` with ``indices`` a uint32 array."""
    fields, indices = _core.unpack(bytes(data))
    return Header(**fields), indices
