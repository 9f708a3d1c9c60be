"""The public Python API: ``encode``, ``decode``, ``learn_prior`` and their file-level forms.

PyTorch is imported only when encoding or learning is asked for: decoding works without it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from combiner import decoder, families, media, registry, training
from combiner import quality as quality_mod
from combiner.bitstream import unpack
from combiner.config import INRConfig
from combiner.decoder import rate_of
from combiner.families import CONFIGS, Modality
from combiner.options import Noise
from combiner.prior import Prior
from combiner.quality import PriorLike

if TYPE_CHECKING:  # the encoder needs PyTorch; decoding must not import it
    from combiner.codec import EncodeResult

__all__ = ["CONFIGS", "PriorLike", "decode", "decode_file", "encode", "encode_detailed", "encode_file",
           "info", "learn_prior", "learn_prior_from_folder"]


def _as_signal(x: object, sample_rate: int | None) -> media.Signal:
    if isinstance(x, media.Signal):
        return x
    if isinstance(x, (str, os.PathLike)):
        return media.read(x)
    arr = np.asarray(x)
    if arr.ndim == 1 or sample_rate is not None:
        if sample_rate is None:
            raise ValueError("audio arrays need a sample_rate")
        return media.audio_from_array(arr, sample_rate)
    return media.image_from_array(arr)


def encode_detailed(x: object, *, prior: PriorLike | None = None, quality: int | None = None,
                    sample_rate: int | None = None, **options: Any) -> EncodeResult:
    """Like :func:`encode` but returns the :class:`EncodeResult` (PSNR, rate, times, weights)."""
    signal = _as_signal(x, sample_rate)
    chosen, opts = quality_mod.resolve(signal, prior=prior, quality=quality, overrides=options)
    from combiner import codec

    return codec.encode_signal(signal, chosen, opts)


def encode(x: object, *, prior: PriorLike | None = None, quality: int | None = None,
           sample_rate: int | None = None, **options: Any) -> bytes:
    """Compress an image (H x W x 3 uint8 array, or a path) or audio (1-D float array with
    ``sample_rate``, or a path); returns the bitstream.

    Without ``prior``, a shipped default is chosen by the signal's kind and size (thumbnail, photo
    or speech) at ``quality`` (0 = lowest rate; default 1). Either way the encoder uses the
    settings stored in the prior (see :func:`combiner.quality.resolve`). ``options`` are fields of
    :class:`combiner.EncodeOptions` (``fit_steps``, ``seed``, ``device``, ``progress`` ...) and
    override those settings, or ``budget``: ``"cpu"`` (default, the stored settings) or ``"gpu"``
    (20 times the fitting steps, see :data:`combiner.quality.BUDGETS`)."""
    return encode_detailed(x, prior=prior, quality=quality, sample_rate=sample_rate, **options).data


def decode(data: bytes, *, prior: PriorLike | None = None) -> np.ndarray:
    """Decompress a bitstream: a uint8 H x W x C image, or a float32 clip on [-1, 1] (the
    16-bit samples of the format divided by 32767). The same values on every machine.

    Without ``prior``, the shipped prior the bitstream names (or, with an empty name, the shipped
    prior with its hash) is used. Errors: see :func:`combiner.decoder.decode`."""
    data = bytes(data)
    decoded = decoder.decode(data, _prior_for(data, prior))
    return decoded.samples if decoded.header.modality == "image" else decoded.waveform()


def _prior_for(data: bytes, prior: PriorLike | None) -> Prior:
    if prior is not None:
        return registry.resolve(prior)
    header, _ = unpack(data)
    return registry.for_bitstream(header.prior_id, header.prior_hash)


def encode_file(path: str | os.PathLike, *, prior: PriorLike | None = None,
                quality: int | None = None, **options: Any) -> tuple[bytes, str]:
    """Encode a file; returns the bitstream and a one-paragraph report. ``options`` (fields of
    :class:`combiner.EncodeOptions`) override the chosen prior's settings."""
    res = encode_detailed(path, prior=prior, quality=quality, **options)
    unit = "bpp" if res.decoded.modality == "image" else "kbit/s"
    name = unpack(res.data)[0].prior_id
    report = (f"{path}: prior {name}, {len(res.data)} bytes, {res.bits_per_unit:.4f} {unit}, PSNR {res.psnr:.2f} dB "
              f"(fit {res.fit_seconds:.1f} s, coding {res.code_seconds:.1f} s of which search "
              f"{res.search_seconds:.1f} s)")
    return res.data, report


def decode_file(path: str | os.PathLike, output: str | os.PathLike, *,
                prior: PriorLike | None = None) -> media.Signal:
    data = Path(path).read_bytes()
    signal = decoder.decode(data, _prior_for(data, prior)).signal()
    media.write(output, signal)
    return signal


def learn_prior(signals: np.ndarray, *, modality: Modality, patch: tuple[int, ...],
                config: str | INRConfig = "small", beta: float | None = None, kappa: int = 16,
                iterations: int = 10, steps: int = 100, first_steps: int = 300, lr: float = 3e-3,
                seed: int = 0, device: str | None = None, name: str | None = None,
                pixel_fraction: float = 1.0, bits_per_patch: float | list[float] | None = None,
                rate_target_bits: float | None = None, learn_mix: bool = False,
                start: Prior | None = None, noise: Noise = "local", progress: bool = True,
                on_round: Callable[[int, Prior | list[Prior]], None] | None = None,
                batch_patches: int = 256) -> Prior | list[Prior]:
    """Learn a prior from training patches ``signals`` [M, N, C] on [0, 1] of shape ``patch``.

    ``bits_per_patch`` sets the rate (the number of kappa-bit blocks per patch); a list gives one
    prior per rate, named ``NAME-q0``, ``NAME-q1`` ... from the same learned means and stds.
    ``rate_target_bits`` adapts beta while learning so that the training posteriors reach that
    rate (see ``prior_learning.learn_prior``); ``beta`` is then only the starting value. ``learn_mix`` also
    learns the mixing matrices of RECOMBINER's linear reparameterisation (see ``combiner.inr``).
    ``start`` refines that prior instead of learning one from scratch, fitting with ``noise`` (see
    ``prior_learning.learn_prior``). ``beta``: the starting beta; by default 1e-5, or ``start``'s
    final beta when refining.
    ``on_round(r, priors)`` receives the priors as they stand after each round r (checkpoints).
    ``batch_patches``: training posteriors fitted together, the unit of work the ranks share when
    ``torch.distributed`` is initialised with several (every rank then calls this with the same
    arguments and gets the same priors; see ``prior_learning.learn_prior``).
    """
    from dataclasses import replace

    import torch

    from combiner import prior_learning
    from combiner.tiling import patch_coords

    if isinstance(config, str):
        config = families.network(config, modality)
    if beta is None:
        beta = 1e-5 if start is None or start.kind.beta is None else start.kind.beta
    kind = {"name": name or f"{modality}-{'x'.join(map(str, patch))}-b{beta:g}", "beta": beta}

    def named(learned):  # a list holds one prior per rate: NAME-q0, NAME-q1 ...
        if isinstance(learned, list):
            for q, p in enumerate(learned):
                p.kind = replace(p.kind, name=f"{kind['name']}-q{q}")
        return learned

    return named(prior_learning.learn_prior(
        [(patch_coords(patch), torch.from_numpy(signals))], config, modality=modality,
        patch_shape=patch, iterations=iterations, steps_per_iteration=steps,
        first_steps=first_steps, lr=lr, kappa=kappa, beta=beta, seed=seed, device=device,
        progress=progress, rho_init=-6.0, kind=kind, pixel_fraction=pixel_fraction,
        bits_per_patch=bits_per_patch, rate_target_bits=rate_target_bits, learn_mix=learn_mix,
        start=start, noise=noise,
        on_round=None if on_round is None else (lambda r, learned: on_round(r, named(learned))),
        batch_patches=batch_patches,
    ))


def learn_prior_from_folder(folder: str | os.PathLike | Sequence[str | os.PathLike], *, modality: Modality,
                            patch: tuple[int, ...], max_files: int | None = None, per_file: int = 4,
                            seed: int = 0, flips: bool = False, **kwargs) -> Prior | list[Prior]:
    """Learn a prior from random patches of the files in ``folder`` or in several folders (their
    files in the order given, each folder's sorted by name; ``max_files``: the first N of them).
    Returns a list of priors when ``bits_per_patch`` is a list: see :func:`learn_prior`.
    ``per_file`` crops per file, mirrored at random with ``flips`` (``training.random_patches``).
    Raises ``ValueError`` when a folder holds no file of ``modality`` or no file is as large as
    ``patch``, ``FileNotFoundError`` when a folder does not exist."""
    folders = [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
    files = [f for one in folders for f in training.list_files(one, modality)][:max_files]
    patches = training.random_patches(files, patch, per_file, seed, flips=flips)
    return learn_prior(patches, modality=modality, patch=patch, seed=seed, **kwargs)


def info(data: bytes) -> dict[str, Any]:
    """What a bitstream's header says, as a dict: the header's fields (``modality``, ``kappa``,
    ``height``, ``width``, ``channels``, ``sample_rate``, ``seed``, ``prior_hash``, ``prior_id``,
    ``spread_blocks``), ``format_version``, ``bytes``, ``block_count``, ``shape`` (of the decoded
    signal) and ``rate`` in ``rate_unit`` (bits per pixel, or kbit/s for audio) of the whole file."""
    data = bytes(data)
    header, indices = unpack(data)
    return {**header.__dict__, "format_version": data[3], "bytes": len(data),
            "block_count": int(len(indices)), "shape": header.shape,
            "rate": rate_of(header, len(data)), "rate_unit": "bpp" if header.modality == "image" else "kbit/s"}
