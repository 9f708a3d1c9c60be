"""Reading and writing signals: images through Pillow, audio through soundfile.

Signals inside combiner are float32 arrays on [0, 1]: images [H, W, 3], audio [T] (a waveform
w in [-1, 1] is stored as (w + 1) / 2, the convention of the COMBINER/RECOMBINER audio results).

combiner codes exactly what it is given, and measures PSNR against it, so an input is either
converted exactly or refused with an :class:`~combiner.errors.InputError` saying why:

- Images are read from PNG, JPEG, WebP, TIFF, BMP, GIF and PPM/PGM files (:data:`IMAGE_FORMATS`)
  and coded as 8-bit RGB. RGB and RGBX pixels are taken as they are, palette (P) images are looked
  up in their palette; the EXIF orientation is applied, so the coded image is the one viewers
  show. Refused: grayscale (1, L; combiner would code and return three channels: convert to RGB
  first, ``Image.convert("RGB")`` is exact), alpha (RGBA, LA, PA, P with transparency), more than
  8 bits per sample (16-bit PNG/TIFF, PPM with a maximum other than 255, float TIFF: reducing the
  depth would lose information), other colour spaces (CMYK, YCbCr, LAB, HSV: no exact conversion),
  animations and multi-page TIFFs, and images of more than :data:`MAX_IMAGE_PIXELS` pixels
  (refused from the header, before any pixel is decoded).
- Audio is read from WAV, FLAC, Ogg (Vorbis, Opus), AIFF and MP3 files (MP3 where libsndfile has
  it, 1.1 and later). Mono only; samples must lie on [-1, 1].
- Decoded images are written losslessly as PNG, TIFF, BMP or PPM; audio as 16-bit WAV, FLAC or
  AIFF. Other output formats are refused before anything is written.
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from combiner import fileio
from combiner.errors import ImageTooLargeError, InputError, OutputError

# Pillow format names that are read (``Image.open(..., formats=...)``).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM")
# The largest image read: 8192 x 8192 pixels (256 MiB as float32 RGB, and hours of fitting on a
# CPU). Below Pillow's own decompression-bomb limits, so that ours is the one users meet.
MAX_IMAGE_PIXELS = 8192 * 8192
# Suffix -> libsndfile format, for reading; the suffix chooses between audio and image reading.
_AUDIO_READ = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF",
               ".mp3": "MP3"}
AUDIO_SUFFIXES = set(_AUDIO_READ)
# Suffix -> format of the files decoded signals are written to: lossless only.
IMAGE_WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM"}
AUDIO_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF"}

_READABLE = ("images: PNG, JPEG, WebP, TIFF, BMP, GIF, PPM (8-bit RGB); "
             "audio: WAV, FLAC, Ogg Vorbis/Opus, AIFF, MP3 (mono)")


@dataclass(frozen=True)
class Signal:
    """A signal ready for coding: ``values`` on [0, 1], ``sample_rate`` 0 for images."""

    modality: Literal["image", "audio"]
    values: np.ndarray  # float32 [H, W, 3] or [T]
    sample_rate: int = 0


def image_from_array(x: np.ndarray) -> Signal:
    """An H x W x 3 RGB array: uint8, or float on [0, 1].

    Raises :class:`InputError` for other shapes (grayscale, RGBA), dtypes or values."""
    x = np.asarray(x)
    if x.ndim == 2:
        raise InputError("grayscale images are not supported: convert to RGB (H x W x 3) first")
    if x.ndim != 3 or x.shape[2] not in (3, 4):
        raise InputError(f"expected an H x W x 3 RGB image, got shape {x.shape}")
    if x.shape[2] == 4:
        raise InputError("RGBA images are not supported: drop or composite the alpha channel first")
    if min(x.shape[:2]) < 1:
        raise InputError("empty image")
    if x.dtype == np.uint8:
        values = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise InputError("float images must be finite and on [0, 1]")
        values = x.astype(np.float32)
    else:
        raise InputError(f"unsupported image dtype {x.dtype}; use uint8 (or float on [0, 1])")
    return Signal("image", np.ascontiguousarray(values))


# Integer PCM: (offset, scale) so that (x - offset) / scale is on [-1, 1], as WAV files store them
# (8-bit WAV is unsigned with silence at 128).
# Keyed by (kind, bytes), so that either byte order is taken.
_PCM = {("i", 1): (0, 2**7), ("u", 1): (2**7, 2**7), ("i", 2): (0, 2**15), ("i", 4): (0, 2**31)}


def audio_from_array(x: np.ndarray, sample_rate: int) -> Signal:
    """A mono waveform: float samples on [-1, 1], or integer PCM (int16, int32, int8, or uint8
    with silence at 128 as in 8-bit WAV), scaled by its type's range to [-1, 1].

    Raises :class:`InputError` for other integer types (e.g. int64, whose scale is a guess),
    float samples outside [-1, 1] (clipping them would change the clip silently; scale it
    down first), non-finite samples, several channels or a sample rate out of range."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise InputError(f"expected mono audio (1-D), got shape {x.shape}; mix down to mono first")
    if x.size == 0:
        raise InputError("empty audio clip")
    if not (float(sample_rate) == int(sample_rate) and 1 <= int(sample_rate) <= 1_000_000):
        raise InputError(f"sample rate {sample_rate} Hz is out of range (a whole number of Hz, "
                         "at most 1 MHz)")
    if (x.dtype.kind, x.dtype.itemsize) in _PCM:
        offset, scale = _PCM[x.dtype.kind, x.dtype.itemsize]
        wave = ((x.astype(np.float64) - offset) / scale).astype(np.float32)
    elif np.issubdtype(x.dtype, np.floating):
        wave = x.astype(np.float32)
        if not np.all(np.isfinite(wave)):
            raise InputError("audio contains non-finite samples")
        peak = float(np.abs(wave).max())
        if peak > 1.0:
            raise InputError(f"float audio samples must lie on [-1, 1], but the peak is {peak:.4g}; "
                             "scale the clip down (e.g. divide it by its peak) rather than have "
                             "it clipped")
    else:
        raise InputError(f"unsupported audio sample type {x.dtype}: use float samples on [-1, 1] "
                         "or int16, int32, int8 or uint8 PCM")
    return Signal("audio", (wave + 1.0) / 2.0, int(sample_rate))


def read(path: str | os.PathLike) -> Signal:
    """Read an image or an audio file (the formats of the module docstring); the suffix decides
    which (``AUDIO_SUFFIXES`` are audio).

    Raises :class:`InputError` (``ImageTooLargeError`` for too many pixels) for files that are
    not supported or cannot be coded exactly, ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return _read_audio(path)
    return _read_image(path)


def _read_audio(path: Path) -> Signal:
    import soundfile

    fmt = _AUDIO_READ[path.suffix.lower()]
    if fmt not in soundfile.available_formats():
        raise InputError(f"{path}: this libsndfile ({soundfile.__libsndfile_version__}) cannot "
                         f"read {fmt}; combiner reads {_READABLE}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.SoundFileError as e:
        raise InputError(f"{path}: cannot read it as {fmt} audio: {e}") from None
    if data.shape[1] != 1:
        raise InputError(f"{path}: {data.shape[1]} channels; only mono audio is supported")
    try:
        return audio_from_array(data[:, 0], rate)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def _read_image(path: Path) -> Signal:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpixels; MAX_IMAGE_PIXELS, checked below, is lower.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a file combiner reads; it reads {_READABLE}") from None
    except Image.DecompressionBombError as e:  # so large that Pillow refuses it from the header
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageTooLargeError(f"{path}: {size}; {_pixel_limit()}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise _broken(path, e) from None
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(f"{path}: {w} x {h} = {w * h:,} pixels; {_pixel_limit()}")
        why = _not_exact(im)
        if why:
            raise InputError(f"{path}: {why}")
        try:
            shown = ImageOps.exif_transpose(im)  # decodes the pixels
            rgb = np.asarray(shown.convert("RGB"))  # exact for the modes _not_exact lets through
        except (OSError, SyntaxError, ValueError) as e:
            raise _broken(path, e) from None
    return image_from_array(rgb)


def _broken(path: Path, e: Exception) -> Exception:
    """Pillow reports a damaged file as OSError (without an errno), SyntaxError or ValueError:
    an InputError naming the file. System errors (with an errno) are kept as they are."""
    if isinstance(e, OSError) and e.errno is not None:
        return e
    return InputError(f"{path}: damaged or unsupported image file: {e}")


def _pixel_limit() -> str:
    side = int(MAX_IMAGE_PIXELS**0.5)
    return f"combiner codes images of at most {MAX_IMAGE_PIXELS:,} pixels ({side} x {side})"


_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _not_exact(im) -> str | None:
    """Why an opened (not yet decoded) image cannot be coded exactly as 8-bit RGB, or None."""
    if getattr(im, "is_animated", False) and im.format != "MPO":  # MPO: a JPEG plus previews
        return (f"{im.format} with {im.n_frames} frames; combiner codes still images "
                "(save the frame you want as PNG)")
    mode = im.mode
    depth = _deep_samples(im)
    if depth or mode in ("I", "F") or mode.startswith("I;"):
        return (f"{depth or 'more than 8 bits per sample'} (mode {mode}); combiner codes 8-bit RGB "
                "and converting to it would not be exact: convert the image to 8-bit RGB first "
                "if that loss is intended")
    if mode in ("1", "L"):
        return (f"grayscale image (mode {mode}); combiner codes RGB images: convert it to RGB "
                "first (exact, e.g. with Pillow's Image.convert('RGB'))")
    if mode in _ALPHA_MODES or (mode == "P" and ("transparency" in im.info
                                                 or "A" in getattr(im.palette, "mode", ""))):
        return f"image has an alpha channel (mode {mode}); remove it before encoding"
    if mode not in ("RGB", "RGBX", "P"):
        return (f"colour space {mode} has no exact conversion to RGB; convert it to 8-bit RGB "
                "first")
    return None


def _deep_samples(im) -> str | None:
    """A description of samples Pillow would silently reduce to 8 bits (16-bit RGB PNG or TIFF,
    PPM with a maximum value other than 255), or None."""
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))  # BitsPerSample
        bits = max(bits) if isinstance(bits, tuple) else int(bits)
        if bits > 8:
            return f"{bits} bits per sample"
    for tile in im.tile:
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        rawmode = args[0] if args and isinstance(args[0], str) else ""
        if re.search(r";(16|32)[BLN]$", rawmode):  # e.g. RGB;16B (not BMP's 5-6-5 BGR;16)
            return f"{rawmode.split(';')[1][:2]} bits per sample"
        if tile.codec_name == "ppm" and len(args) > 1 and args[1] != 255:  # PPM's maximum value
            top = int(args[1])
            return (f"{top.bit_length()} bits per sample (maximum {top})" if top > 255
                    else f"samples scaled to a maximum of {top} (8-bit has 255)")
    return None


def to_output(signal: Signal) -> np.ndarray:
    """The user-facing array: uint8 [H, W, 3] for images, float32 [-1, 1] for audio."""
    if signal.modality == "image":
        return np.round(np.clip(signal.values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return (np.clip(signal.values, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def output_format(path: str | os.PathLike, modality: str) -> str:
    """The format a decoded ``modality`` signal is written in at ``path``, from its suffix.

    Raises :class:`OutputError` naming the supported suffixes for any other."""
    suffix = Path(path).suffix.lower()
    formats = IMAGE_WRITE_FORMATS if modality == "image" else AUDIO_WRITE_FORMATS
    if suffix in formats:
        return formats[suffix]
    names = ", ".join(sorted(formats))
    if suffix in (AUDIO_WRITE_FORMATS if modality == "image" else IMAGE_WRITE_FORMATS):
        raise OutputError(f"{path}: the signal is {modality}, but {suffix} is not an {modality} "
                          f"format; decoded {modality} is written as {names}")
    raise OutputError(f"{path}: cannot write {modality} as {suffix or 'a file without a suffix'}; "
                      f"decoded {modality} is written losslessly as {names}")


def write(path: str | os.PathLike, signal: Signal) -> None:
    """Write a decoded signal losslessly: PNG, TIFF, BMP or PPM for images, 16-bit WAV, FLAC or
    AIFF for audio (chosen by the suffix). The file appears complete or not at all (see
    :mod:`combiner.fileio`). Raises :class:`OutputError` for another suffix, before writing."""
    fmt = output_format(path, signal.modality)
    with fileio.replacing(path) as tmp:
        if signal.modality == "image":
            from PIL import Image

            Image.fromarray(to_output(signal)).save(tmp, format=fmt)
        else:
            import soundfile

            soundfile.write(str(tmp), to_output(signal), signal.sample_rate, format=fmt,
                            subtype="PCM_16")


def psnr(reference: np.ndarray, decoded: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two arrays on the same scale with the given peak."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(decoded, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
