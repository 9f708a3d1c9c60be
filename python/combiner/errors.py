"""Exceptions raised by combiner.

Every defect of a bitstream raises a subclass of :class:`FormatError`, which is itself a
:class:`ValueError`, so ``except ValueError`` also catches them. A malformed prior file raises
:class:`PriorFormatError`, and a bitstream decoded with another prior than its own
:class:`PriorMismatchError` (both ``ValueError``). The classes are defined by the Rust extension
(which raises them) and re-exported here.
"""

from combiner._core import (
    BadMagicError,
    ChecksumError,
    FormatError,
    InvalidFieldError,
    PriorFormatError,
    PriorMismatchError,
    TrailingDataError,
    TruncatedError,
    UnsupportedVersionError,
)


__all__ = [
    "BadMagicError",
    "ChecksumError",
    "FormatError",
    "InvalidFieldError",
    "PriorFormatError",
    "PriorMismatchError",
    "TrailingDataError",
    "TruncatedError",
    "UnsupportedVersionError",
]
