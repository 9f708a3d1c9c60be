"""Reading and writing signals: images through Pillow, audio through soundfile.

Signals inside combiner are float32 arrays on [0, 1]: images [H, W, 3], audio [T] (a waveform
w in [-1, 1] is stored as (w + 1) / 2, the convention of the COMBINER/RECOMBINER audio results).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


@dataclass(frozen=True)
class Signal:
    """A signal ready for coding: ``values`` on [0, 1], ``sample_rate`` 0 for images."""

    modality: str  # "image" or "audio"
    values: np.ndarray  # float32 [H, W, 3] or [T]
    sample_rate: int = 0


def image_from_array(x: np.ndarray) -> Signal:
    """An H x W x 3 uint8 (or float on [0, 1]) RGB array."""
    x = np.asarray(x)
    if x.ndim == 2:
        raise ValueError("grayscale images are not supported: convert to RGB (H x W x 3) first")
    if x.ndim != 3 or x.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {x.shape}")
    if x.shape[2] == 4:
        raise ValueError("RGBA images are not supported: drop or composite the alpha channel first")
    if x.dtype == np.uint8:
        values = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise ValueError("float images must be finite and on [0, 1]")
        values = x.astype(np.float32)
    else:
        raise ValueError(f"unsupported image dtype {x.dtype}; use uint8")
    if min(x.shape[:2]) < 1:
        raise ValueError("empty image")
    return Signal("image", np.ascontiguousarray(values))


def audio_from_array(x: np.ndarray, sample_rate: int) -> Signal:
    """A mono waveform on [-1, 1] (float) or int16 PCM."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {x.shape}; mix down to mono first")
    if x.size == 0:
        raise ValueError("empty audio clip")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains non-finite samples")
    if not 1 <= int(sample_rate) <= 1_000_000:
        raise ValueError(f"sample rate {sample_rate} Hz is out of range")
    return Signal("audio", (np.clip(x, -1.0, 1.0) + 1.0) / 2.0, int(sample_rate))


def read(path: str | os.PathLike) -> Signal:
    """Read an image (any Pillow format) or an audio file (WAV/FLAC/OGG via soundfile)."""
    path = Path(path)
    if path.suffix.lower() in AUDIO_SUFFIXES:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        if data.shape[1] != 1:
            raise ValueError(f"{path}: {data.shape[1]} channels; only mono audio is supported")
        return audio_from_array(data[:, 0], rate)
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("L", "LA", "I", "I;16", "F", "1"):
            raise ValueError(f"{path}: grayscale image (mode {im.mode}); convert it to RGB first")
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            raise ValueError(f"{path}: image has an alpha channel; remove it before encoding")
        return image_from_array(np.asarray(im.convert("RGB")))


def to_output(signal: Signal) -> np.ndarray:
    """The user-facing array: uint8 [H, W, 3] for images, float32 [-1, 1] for audio."""
    if signal.modality == "image":
        return np.round(np.clip(signal.values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return (np.clip(signal.values, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def write(path: str | os.PathLike, signal: Signal) -> None:
    """Write a decoded signal: PNG (or any Pillow format) for images, WAV/FLAC for audio."""
    path = Path(path)
    if signal.modality == "image":
        from PIL import Image

        if path.suffix.lower() in AUDIO_SUFFIXES:
            raise ValueError(f"{path}: cannot write an image to an audio file")
        Image.fromarray(to_output(signal)).save(path)
        return
    import soundfile

    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"{path}: audio must be written as .wav or .flac")
    soundfile.write(str(path), to_output(signal), signal.sample_rate, subtype="PCM_16")


def psnr(reference: np.ndarray, decoded: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two arrays on the same scale with the given peak."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(decoded, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
