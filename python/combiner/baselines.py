"""The codecs people already use, as baselines for ``combiner eval``.

Each baseline is a codec name, a sweep of settings from low to high rate, and a pair of functions
that encode an array to the bytes of a real file and decode those bytes back. Images go through
Pillow (JPEG via libjpeg-turbo, WebP via libwebp, AVIF via libavif, JPEG 2000 via OpenJPEG), audio
through soundfile (libsndfile: MP3 via LAME/mpg123, Vorbis and Opus in Ogg). Rates are measured on
the bytes these functions return, so container overhead counts exactly as it does for combiner.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Baseline:
    name: str
    modality: str  # "image" or "audio"
    settings: tuple  # the sweep, lowest rate first: quality (JPEG, WebP, AVIF), target bpp
    encode: Callable  # (array, setting[, sample_rate]) -> bytes      (JPEG 2000), or libsndfile's
    decode: Callable  # bytes -> array                                 compression level (audio)


# -- images: uint8 H x W x 3 in, uint8 H x W x 3 out ---------------------------------------------
def _pillow_encode(format: str, **fixed) -> Callable[[np.ndarray, object], bytes]:
    from PIL import Image

    def encode(img: np.ndarray, setting) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=format, **fixed, **_setting_kwargs(format, setting))
        return buf.getvalue()

    return encode


def _setting_kwargs(format: str, setting) -> dict:
    if format == "JPEG2000":
        # OpenJPEG's rate control takes a compression ratio; the sweep is in target bits per pixel
        # (24 bpp raw RGB), which is what users compare.
        return dict(quality_mode="rates", quality_layers=[24.0 / float(setting)])
    return dict(quality=int(setting))


def _pillow_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


IMAGE_BASELINES = {
    "jpeg": Baseline("jpeg", "image", (2, 5, 10, 20, 35, 50, 70, 85, 95),
                     _pillow_encode("JPEG"), _pillow_decode),
    "webp": Baseline("webp", "image", (0, 5, 15, 30, 50, 70, 85, 95),
                     _pillow_encode("WEBP", method=6), _pillow_decode),
    "avif": Baseline("avif", "image", (5, 15, 25, 40, 55, 70, 85, 95),
                     _pillow_encode("AVIF", speed=6), _pillow_decode),
    "jpeg2000": Baseline("jpeg2000", "image", (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0),
                         # mct=1: code RGB as YCbCr, as every JPEG 2000 comparison does (Pillow's
                         # default codes the three channels independently, about 4 dB worse).
                         _pillow_encode("JPEG2000", irreversible=True, mct=1), _pillow_decode),
}


# -- audio: float32 [-1, 1] mono in, float32 [-1, 1] out ----------------------------------------
def _soundfile_encode(format: str, subtype: str) -> Callable[[np.ndarray, float, int], bytes]:
    def encode(wave: np.ndarray, setting: float, sample_rate: int) -> bytes:
        import soundfile

        buf = io.BytesIO()
        # compression_level: 0 = highest quality (rate) ... 1 = smallest file.
        soundfile.write(buf, wave, sample_rate, format=format, subtype=subtype,
                        compression_level=float(setting))
        return buf.getvalue()

    return encode


def _soundfile_decode(data: bytes) -> np.ndarray:
    import soundfile

    wave, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return wave[:, 0]


AUDIO_BASELINES = {
    "mp3": Baseline("mp3", "audio", (0.95, 0.9, 0.6, 0.3, 0.0),
                    _soundfile_encode("MP3", "MPEG_LAYER_III"), _soundfile_decode),
    "vorbis": Baseline("vorbis", "audio", (1.0, 0.9, 0.6, 0.3, 0.0),
                       _soundfile_encode("OGG", "VORBIS"), _soundfile_decode),
    "opus": Baseline("opus", "audio", (1.0, 0.98, 0.96, 0.93, 0.9, 0.6),
                     _soundfile_encode("OGG", "OPUS"), _soundfile_decode),
}

BASELINES = {**IMAGE_BASELINES, **AUDIO_BASELINES}


def get(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None


def encode(baseline: Baseline, original: np.ndarray, setting, sample_rate: int = 0) -> bytes:
    """The file bytes of ``original`` coded with one setting of ``baseline``."""
    if baseline.modality == "audio":
        return baseline.encode(original, setting, sample_rate)
    return baseline.encode(original, setting)


def decode(baseline: Baseline, data: bytes, original: np.ndarray) -> np.ndarray:
    """Decode ``data``; audio is cut or zero-padded to the original's length (lossy audio decoders
    may pad to a frame boundary; the comparison is over the clip's own samples)."""
    decoded = baseline.decode(data)
    if baseline.modality == "audio" and decoded.shape != original.shape:
        decoded = np.pad(decoded, (0, max(0, original.size - decoded.size)))[: original.size]
    return decoded
