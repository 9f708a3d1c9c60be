"""Exceptions raised by combiner.

Every defect of a bitstream raises a subclass of :class:`FormatError`, which is itself a
:class:`ValueError`, so ``except ValueError`` also catches them. The classes are defined by the
Rust extension (which raises them) and re-exported here.
"""

from combiner._core import (
    BadMagicError,
    ChecksumError,
    FormatError,
    InvalidFieldError,
    TrailingDataError,
    TruncatedError,
    UnsupportedVersionError,
)


class PriorMismatchError(ValueError):
    """The prior given to the decoder is not the one the bitstream was encoded with."""


__all__ = [
    "BadMagicError",
    "ChecksumError",
    "FormatError",
    "InvalidFieldError",
    "PriorMismatchError",
    "TrailingDataError",
    "TruncatedError",
    "UnsupportedVersionError",
]
