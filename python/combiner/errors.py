"""Exceptions raised by combiner.

Every defect of a bitstream raises a subclass of :class:`FormatError`, which is itself a
:class:`ValueError`, so ``except ValueError`` also catches them. A malformed prior file raises
:class:`PriorFormatError`, and a bitstream decoded with another prior than its own
:class:`PriorMismatchError` (both ``ValueError``). These classes are defined by the Rust
extension (which raises them) and re-exported here.

Inputs that cannot be coded as given (a file format, pixel mode, bit depth, sample type or size
combiner does not take) raise :class:`InputError`; output paths that cannot be written as asked
raise :class:`OutputError`. Both are :class:`ValueError` subclasses too.
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


class InputError(ValueError):
    """An input file or array that combiner cannot code exactly as given: an unsupported file
    format, pixel mode, bit depth or sample type, or values out of range. The message says what
    is supported."""


class ImageTooLargeError(InputError):
    """An image with more pixels than :data:`combiner.media.MAX_IMAGE_PIXELS`; raised from the
    file's header, before any pixel is decoded."""


class OutputError(ValueError):
    """An output path that cannot be written as asked: an unsupported format, a missing folder,
    or the command's own input (which would be overwritten)."""


__all__ = [
    "BadMagicError",
    "ChecksumError",
    "FormatError",
    "ImageTooLargeError",
    "InputError",
    "InvalidFieldError",
    "OutputError",
    "PriorFormatError",
    "PriorMismatchError",
    "TrailingDataError",
    "TruncatedError",
    "UnsupportedVersionError",
]
