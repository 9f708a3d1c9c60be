"""``combiner encode-folder``: every image and audio file of a folder to a bitstream each.

``IN_DIR/NAME.SUFFIX`` becomes ``OUT_DIR/NAME.cmb``, encoded exactly as ``combiner encode
IN_DIR/NAME.SUFFIX OUT_DIR/NAME.cmb`` with the same options would (one file at a time, so the
bytes do not depend on the other files). Each bitstream is written whole or not at all
(`combiner.fileio.replacing`), so the bitstreams present are the journal of a run: ``resume``
encodes only the inputs whose bitstream is missing.

Across ranks (``torchrun ... -m combiner encode-folder``, see `combiner.distributed`): rank 0
lists the work and the files still to encode are dealt to the ranks in turn, each encoding on its
own device; rank 0 gathers what every rank encoded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from combiner import api, distributed, fileio, media, training
from combiner.errors import InputError, OutputError

__all__ = ["encode_folder", "inputs"]


def inputs(folder: str | os.PathLike) -> list[Path]:
    """The image and audio files of ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    suffixes = training.IMAGE_SUFFIXES | set(media.AUDIO_SUFFIXES)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def encode_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike, *, prior: Any = None,
                  quality: int | None = None, resume: bool = False,
                  on_item: Callable[[dict], None] | None = None, **options: Any) -> list[dict]:
    """Encode every image and audio file of ``in_dir`` to ``out_dir/NAME.cmb`` (``out_dir`` is
    made if missing); ``prior``, ``quality`` and ``options`` as for :func:`combiner.encode`.

    With ``resume``, inputs whose bitstream exists are left alone. ``on_item(row)`` is called on
    the rank that encoded it after each file. Returns one row per file encoded by this call, in
    input order (item, input, output, bytes, rate, unit, psnr, encode_s, rank): every rank's on
    rank 0, this rank's on the others.
    """
    files = inputs(in_dir)
    if not files:
        raise InputError(f"no image or audio files in {in_dir}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; name a folder for the bitstreams")
    targets: dict[str, Path] = {}
    for path in files:
        if path.stem in targets:
            raise InputError(f"{targets[path.stem].name} and {path.name} would both be coded to "
                             f"{path.stem}.cmb; rename one")
        targets[path.stem] = path
    todo: list[int] = []
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        todo = [i for i, p in enumerate(files) if not (resume and (out / f"{p.stem}.cmb").exists())]
    todo = distributed.broadcast_object(todo)  # one view of the folder for every rank
    me, world = distributed.rank(), distributed.world_size()
    options = dict(options)
    device = distributed.device_for_rank(options.get("device"))
    if device is not None:
        options["device"] = device
    rows = []
    for turn, i in enumerate(todo):
        if turn % world != me:
            continue
        path = files[i]
        target = out / f"{path.stem}.cmb"
        t0 = time.perf_counter()
        res = api.encode_detailed(path, prior=prior, quality=quality, **options)
        fileio.write_bytes(target, res.data)
        row = dict(item=path.stem, input=str(path), output=str(target), bytes=len(res.data),
                   rate=res.bits_per_unit, unit="bpp" if res.decoded.modality == "image" else "kbps",
                   psnr=res.psnr, encode_s=time.perf_counter() - t0, rank=me)
        rows.append((i, row))
        if on_item is not None:
            on_item(row)
    gathered = distributed.gather_objects(rows)
    if gathered is None:
        return [row for _, row in rows]
    return [row for _, row in sorted((r for g in gathered for r in g), key=lambda r: r[0])]
