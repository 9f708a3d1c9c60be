"""``combiner eval``: rate-distortion of combiner and baseline codecs on a folder of signals.

Every item is coded by combiner at each requested quality level (the shipped default prior for its
kind, or one given prior) and by each baseline at each setting of its sweep. Rates come from the
real file sizes (bits per pixel for images, kbit/s for audio); distortion is measured on the
decoded output: PSNR with peak 255 on uint8 images, and with peak 1 on waveforms scaled to
[0, 1] (the convention of the COMBINER/RECOMBINER audio results).

Dataset figures, per codec and setting: ``rate`` is the mean rate over items, ``psnr`` the mean of
the per-item PSNRs, and ``psnr_of_mean_mse`` the PSNR of the mean MSE. BD-rate and BD-PSNR of
each codec against the anchor are computed on the (rate, psnr) curves by the ``bjontegaard``
package (Akima interpolation).

An item a codec reproduces exactly has an infinite PSNR. It stays in the rows (``inf`` in CSV,
``null`` in ``rows.jsonl`` and ``summary.json``, which must be valid JSON; its ``mse`` is 0);
BD-rate leaves such points out and says so (see :mod:`combiner.rd`).

Across ranks (``torchrun ... -m combiner eval``, see `combiner.distributed`): every rank lists
the same items and the same combiner batches; the batches are dealt to the ranks in turn and each
rank runs the baselines on every n-th item, on its own device. A rank journals its rows to
``rows.rankR.jsonl``; rank 0 rewrites the outputs after each of its batches from every journal,
and at the end gathers the rows into ``rows.jsonl`` in the order one process measures them. A
combiner batch is coded as in one process, so the rows are the same whatever the number of ranks
(times aside). ``resume`` keeps the rows of ``rows.jsonl`` and of the per-rank journals a stopped
or failed run left.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from combiner import baselines, codec, decoder, distributed, fileio, media, quality, rd, training
from combiner.errors import OutputError
from combiner.media import Signal

MAX_PATCHES_PER_BATCH = 512  # combiner fits items of one prior together up to this many patches
# prior: the content-hash id of the combiner prior (a shipped name can be replaced by a better
# prior in a later release); empty for baselines.
ROW_FIELDS = ("codec", "setting", "item", "bytes", "rate", "unit", "psnr", "mse",
              "encode_s", "decode_s", "prior")


@dataclass(frozen=True)
class Item:
    name: str
    signal: Signal  # values on [0, 1]
    original: np.ndarray  # what the user gave: uint8 image or float32 waveform on [-1, 1]

    @property
    def unit(self) -> str:
        return "bpp" if self.signal.modality == "image" else "kbps"

    def rate(self, nbytes: int) -> float:
        if self.signal.modality == "image":
            return 8.0 * nbytes / (self.original.shape[0] * self.original.shape[1])
        return 8.0 * nbytes / (self.original.size / self.signal.sample_rate) / 1000.0

    def distortion(self, decoded: np.ndarray) -> tuple[float, float]:
        """(PSNR, MSE) of a decoded output against the original, on the scale of the docstring."""
        ref = np.asarray(self.original, np.float64)
        out = np.asarray(decoded, np.float64)
        if self.signal.modality == "image":
            mse = float(np.mean((ref - out) ** 2))
            peak = 255.0
        else:
            mse = float(np.mean(((ref - out) / 2.0) ** 2))
            peak = 1.0
        return (math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)), mse


def load_items(folder: str | Path, *, limit: int | None = None, seconds: float | None = None) -> list[Item]:
    """The images or audio clips in ``folder`` (sorted by name; the first ``limit``); audio clips
    are cut to their first ``seconds``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    kinds = {m: _files(folder, m) for m in ("image", "audio")}
    present = [m for m, f in kinds.items() if f]
    if len(present) != 1:
        raise ValueError(f"{folder} must hold images or audio clips (found: {present or 'neither'})")
    items = []
    for path in kinds[present[0]][:limit]:
        signal = media.read(path)
        if signal.modality == "audio" and seconds is not None:
            keep = max(1, int(round(seconds * signal.sample_rate)))
            signal = replace(signal, values=signal.values[:keep])
        items.append(Item(path.stem, signal, media.to_output(signal)))
    return items


def _files(folder: Path, modality: str) -> list[Path]:
    try:
        return training.list_files(folder, modality)
    except ValueError:
        return []


# -- combiner -----------------------------------------------------------------------------------
def run_combiner(items: list[Item], level: int | str, *, overrides: dict, progress: bool,
                 done: frozenset = frozenset(), max_patches: int = MAX_PATCHES_PER_BATCH):
    """Rows of combiner at one quality level (int) or with one prior (name or path), yielded
    batch by batch (a photo batch is one image: minutes on a CPU)."""
    for prior, options, batch in _batches(items, level, overrides, done, max_patches):
        yield _code_batch(prior, options, batch, progress)


def _code_batch(prior, options, batch: list[Item], progress: bool) -> list[dict]:
    """The rows of one batch of items coded together by combiner with ``prior``."""
    options = replace(options, progress=progress)
    rows = []
    t0 = time.perf_counter()
    results = codec.encode_signals([it.signal for it in batch], prior, options)
    encode_s = (time.perf_counter() - t0) / len(batch)  # batched: the time is shared evenly
    for it, res in zip(batch, results):
        t1 = time.perf_counter()
        decoded = media.to_output(decoder.decode(res.data, prior).signal())
        decode_s = time.perf_counter() - t1
        rows.append(_row("combiner", codec.prior_name(prior), it, res.data, decoded, encode_s,
                         decode_s, prior=prior.hash_hex))
    if progress:
        tqdm.write(f"combiner {codec.prior_name(prior)}: {', '.join(it.name for it in batch[:3])}"
                   f"{' ...' if len(batch) > 3 else ''} coded")
    return rows


def _batches(items: list[Item], level: int | str, overrides: dict, done: frozenset, max_patches: int):
    """(prior, options, items) groups: items sharing a prior, up to ``max_patches`` patches, leaving
    out the (codec, setting, item) triples in ``done``. The prior and options of every item are
    those of ``combiner.encode`` (``quality.resolve``)."""
    groups: dict[str, tuple] = {}
    resolved: dict[tuple, tuple] = {}  # one file read per prior, not one per item
    for it in items:
        choice = dict(quality=level) if isinstance(level, int) else dict(prior=str(level))
        # The family (thumbnail or photo) depends on the size, a quality level on the sample rate.
        name = quality.prior_name_for(it.signal, level) if isinstance(level, int) else str(level)
        key = (name, it.signal.sample_rate)
        if key not in resolved:
            resolved[key] = quality.resolve(it.signal, **choice, overrides=overrides)
        prior, options = resolved[key]
        if ("combiner", codec.prior_name(prior), it.name) in done:
            continue
        groups.setdefault(prior.hash_hex, (prior, options, []))[2].append(it)
    for prior, options, members in groups.values():
        patch = prior.kind.patch_shape
        batch: list = []
        patches = 0
        for it in members:
            n = math.prod(math.ceil(s / p) for s, p in zip(it.signal.values.shape, patch))
            if batch and patches + n > max_patches:
                yield prior, options, batch
                batch, patches = [], 0
            batch.append(it)
            patches += n
        if batch:
            yield prior, options, batch


# -- baselines ----------------------------------------------------------------------------------
def run_baseline(items: list[Item], baseline: baselines.Baseline,
                 done: frozenset = frozenset()) -> list[dict]:
    rows = []
    for it in items:
        if baseline.modality != it.signal.modality:
            raise ValueError(f"baseline {baseline.name} is for {baseline.modality}, "
                             f"but {it.name} is {it.signal.modality}")
        for setting in baseline.settings:
            if (baseline.name, str(setting), it.name) in done:
                continue
            t0 = time.perf_counter()
            data = baselines.encode(baseline, it.original, setting, it.signal.sample_rate)
            t1 = time.perf_counter()
            decoded = baselines.decode(baseline, data, it.original)
            t2 = time.perf_counter()
            rows.append(_row(baseline.name, str(setting), it, data, decoded, t1 - t0, t2 - t1))
    return rows


def _row(codec_name: str, setting: str, it: Item, data: bytes, decoded: np.ndarray,
         encode_s: float, decode_s: float, prior: str = "") -> dict:
    p, mse = it.distortion(decoded)
    return dict(codec=codec_name, setting=setting, item=it.name, bytes=len(data),
                rate=it.rate(len(data)), unit=it.unit, psnr=p, mse=mse, encode_s=encode_s,
                decode_s=decode_s, prior=prior)


# -- the whole evaluation -----------------------------------------------------------------------
DEFAULT_BASELINES = {"image": ["jpeg", "webp", "avif", "jpeg2000"], "audio": ["mp3", "vorbis", "opus"]}


def evaluate(data: str | Path, out: str | Path, *, levels: list[int | str],
             baseline_names: list[str] | None = None,
             anchor: str | None = None, limit: int | None = None, seconds: float | None = None,
             overrides: dict | None = None, reference: dict | None = None,
             progress: bool = True, command: str | None = None, resume: bool = False,
             max_patches: int = MAX_PATCHES_PER_BATCH) -> dict:
    """Run each baseline and combiner at ``levels`` on the items of ``data``; write to ``out``:
    ``rows.csv`` (one row per codec, setting and item), ``rows.jsonl``, ``curves.csv``,
    ``summary.json`` (curves, BD table, settings, machine) and ``rd.png``. Returns the summary.

    The cheap baselines run first, and every output is rewritten after each batch, so a long
    run that is stopped leaves consistent files with what it measured; a setting that has not
    coded every item yet is listed under ``incomplete`` and kept out of the curves. With
    ``resume``, the rows already in ``out/rows.jsonl`` are kept and not measured again.
    ``max_patches`` bounds a combiner batch (smaller batches: rows arrive sooner). Across ranks
    (see the module docstring) every rank calls this with the same arguments and gets the summary."""
    out = Path(out)
    if out.exists() and out.resolve() == Path(data).resolve():
        # rd.png would join (or replace) the items it measures
        raise OutputError(f"the output folder {out} is the data folder; choose another")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; name a folder for the results")
    items = load_items(data, limit=limit, seconds=seconds)
    modality = items[0].signal.modality
    baseline_names = DEFAULT_BASELINES[modality] if baseline_names is None else baseline_names
    chosen = [baselines.get(n) for n in baseline_names]
    for b in chosen:
        if b.modality != modality:
            raise ValueError(f"baseline {b.name} codes {b.modality}, but {data} holds {modality}")
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "rows.jsonl"
    world, me = distributed.world_size(), distributed.rank()
    previous: list[dict] = []
    if distributed.is_main():
        previous = _previous_rows(out) if resume else []
        fileio.write_text(journal, "".join(rd.json_line(r) + "\n" for r in previous))
        for part in _parts(out):  # merged into the journal above, or left by an earlier run
            part.unlink()
    previous = distributed.broadcast_object(previous)
    done = frozenset((r["codec"], r["setting"], r["item"]) for r in previous)
    settings: dict = dict(
        command=command, data=str(data), items=[it.name for it in items], modality=modality,
        unit=items[0].unit, levels=[str(lvl) for lvl in levels], baselines=baseline_names,
        anchor=anchor or (baseline_names[0] if baseline_names else None),
        encoder_overrides=overrides or {}, machine=_machine(), reference=reference or {},
    )
    if world > 1:
        settings["ranks"] = world
    rows: list[dict] = list(previous)
    summary: dict = {}

    def record(new: list[dict]) -> None:
        nonlocal summary
        rows.extend(new)
        with open(out / "rows.jsonl", "a") as f:
            f.writelines(rd.json_line(r) + "\n" for r in new)
        summary = _write_outputs(rows, settings, out)

    jobs = [(b.name, b) for b in chosen] + [("combiner", lvl) for lvl in levels]
    if world > 1:
        return _evaluate_shared(items, jobs, out, settings, previous, overrides or {}, done, max_patches,
                                progress and distributed.is_main(), me, world)
    for name, job in tqdm(jobs, desc="codecs", disable=not progress):
        if name == "combiner":
            for batch_rows in run_combiner(items, job, overrides=overrides or {}, progress=progress,
                                           done=done, max_patches=max_patches):
                record(batch_rows)
        else:
            record(run_baseline(items, job, done))
    return summary


def _evaluate_shared(items: list[Item], jobs: list[tuple], out: Path, settings: dict, previous: list[dict],
                     overrides: dict, done: frozenset, max_patches: int, progress: bool, me: int,
                     world: int) -> dict:
    """`evaluate`'s work on rank ``me`` of ``world``: combiner batches dealt in turn, baselines on
    every ``world``-th item; rows journalled to this rank's ``rows.rankR.jsonl``, then gathered by
    rank 0 in the one-process order (job, then batch or item, then place). Returns the summary."""
    part = out / f"rows.rank{me}.jsonl"
    part.touch()
    index = {it.name: i for i, it in enumerate(items)}
    overrides = dict(overrides)
    device = distributed.device_for_rank(overrides.get("device"))
    if device is not None:
        overrides["device"] = device
    mine: list[tuple[tuple[int, int, int], dict]] = []  # (place in the one-process order, row)
    summary: dict = {}

    def record(new: list[dict], places: list[tuple[int, int, int]]) -> None:
        nonlocal summary
        mine.extend(zip(places, new))
        with open(part, "a") as f:
            f.writelines(rd.json_line(r) + "\n" for r in new)
        if distributed.is_main():
            summary = _write_outputs(_previous_rows(out, journal_rows=previous), settings, out)

    dealt = 0  # combiner batches dealt so far, across levels: this rank takes every world-th
    for j, (name, job) in enumerate(tqdm(jobs, desc="codecs", disable=not progress)):
        if name == "combiner":
            for k, (prior, options, batch) in enumerate(_batches(items, job, overrides, done, max_patches)):
                dealt += 1
                if (dealt - 1) % world == me:
                    record(_code_batch(prior, options, batch, progress), [(j, k, i) for i in range(len(batch))])
        else:
            places = {str(s): i for i, s in enumerate(job.settings)}
            new = run_baseline(items[me::world], job, done)
            record(new, [(j, index[r["item"]], places[r["setting"]]) for r in new])
    gathered = distributed.gather_objects(mine)
    if gathered is not None:  # rank 0
        rows = previous + [row for _, row in sorted((p for g in gathered for p in g), key=lambda pr: pr[0])]
        fileio.write_text(out / "rows.jsonl", "".join(rd.json_line(r) + "\n" for r in rows))
        for path in _parts(out):
            path.unlink()
        summary = _write_outputs(rows, settings, out)
    return distributed.broadcast_object(summary)


def _parts(out: Path) -> list[Path]:
    """The per-rank journals in ``out`` (``rows.rankR.jsonl``)."""
    return sorted(out.glob("rows.rank*.jsonl"))


def _previous_rows(out: Path, journal_rows: list[dict] | None = None) -> list[dict]:
    """The rows measured in ``out``: its journal's (or ``journal_rows``), then those of the
    per-rank journals not among them (a rank stopped mid-line leaves an incomplete last line,
    which is left out). One row per (codec, setting, item), the first met."""
    journal = out / "rows.jsonl"
    if journal_rows is None:
        journal_rows = read_journal(journal) if journal.exists() else []
    rows, seen = list(journal_rows), {(r["codec"], r["setting"], r["item"]) for r in journal_rows}
    for part in _parts(out):
        text = part.read_text()
        for r in _parse_rows(text[:text.rfind("\n") + 1]):
            key = (r["codec"], r["setting"], r["item"])
            if key not in seen:
                seen.add(key)
                rows.append(r)
    return rows


def rebuild(out: str | Path) -> dict:
    """Rewrite the outputs of an eval folder from its ``rows.jsonl`` and the settings in its
    ``summary.json``: for a run that was stopped, or to redo the summary with newer code."""
    out = Path(out)
    old = json.loads((out / "summary.json").read_text())
    settings = {k: old.get(k) for k in ("command", "data", "items", "modality", "unit", "levels",
                                         "baselines", "anchor", "encoder_overrides", "machine",
                                         "reference")}
    if "machines" in old:  # folders merged from runs on several machines
        settings["machines"] = old["machines"]
    if "ranks" in old:  # a run shared by several processes
        settings["ranks"] = old["ranks"]
    if settings["anchor"] is None and settings["baselines"]:
        settings["anchor"] = settings["baselines"][0]
    return _write_outputs(read_rows(out), settings, out)


_INT_FIELDS, _FLOAT_FIELDS = {"bytes"}, {"rate", "psnr", "mse", "encode_s", "decode_s"}


def read_journal(path: Path) -> list[dict]:
    """The rows of an eval journal (``rows.jsonl``), in the order they were measured; a ``null``
    PSNR (an exact reconstruction) is read back as ``inf``."""
    return _parse_rows(path.read_text())


def _parse_rows(text: str) -> list[dict]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    for r in rows:
        if r.get("psnr", 0.0) is None:
            r["psnr"] = math.inf
    return rows



def read_rows(out: Path) -> list[dict]:
    """The rows of an eval folder: its journal, or, where only ``rows.csv`` is kept (the
    committed results folders: journals are not committed), the CSV with its numbers parsed."""
    if (out / "rows.jsonl").exists():
        return read_journal(out / "rows.jsonl")
    return read_csv_rows(out)


def read_csv_rows(out: Path) -> list[dict]:
    """The rows of ``out/rows.csv``, with their numbers parsed (as the journal holds them)."""
    with open(out / "rows.csv", newline="") as f:
        return [{k: int(v) if k in _INT_FIELDS else float(v) if k in _FLOAT_FIELDS else v
                 for k, v in r.items()} for r in csv.DictReader(f)]


def _write_outputs(rows: list[dict], settings: dict, out: Path) -> dict:
    curve_map, incomplete = rd.curves(rows, settings["items"])
    anchor = settings["anchor"]
    bd = rd.bd_table(curve_map, anchor) if anchor in curve_map and len(curve_map) > 1 else {}
    summary = dict(
        **settings, curves=curve_map, incomplete=incomplete, bd=bd,
        definitions=dict(rate="mean over items of bits per pixel (images) or kbit/s (audio), "
                              "from the real file sizes",
                         psnr="mean over items of per-item PSNR",
                         psnr_of_mean_mse="PSNR of the mean over items of the MSE"),
    )
    rd.write_csv(rows, ROW_FIELDS, out / "rows.csv")
    rd.write_csv([p for pts in curve_map.values() for p in pts], rd.CURVE_FIELDS, out / "curves.csv")
    rd.write_json(summary, out / "summary.json")
    data = Path(settings["data"])
    rd.plot(curve_map, out / "rd.png", title=f"{data.parent.name}/{data.name}: "
            f"{len(settings['items'])} item(s)", unit=settings["unit"], reference=settings["reference"])
    return summary


def _machine() -> dict:
    import torch

    from combiner import gpu_search

    cuda = torch.cuda.is_available()
    return dict(platform=platform.platform(), processor=platform.machine(),
                torch=torch.__version__, torch_threads=torch.get_num_threads(),
                device=torch.cuda.get_device_name(0) if cuda else "cpu",
                cpu_count=os.cpu_count(), gpu_search_available=cuda and gpu_search.available())
