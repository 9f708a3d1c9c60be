"""The ``combiner`` command line: encode, encode-folder, decode, info, eval, learn-prior, demo.

``learn-prior``, ``eval`` and ``encode-folder`` also run on several processes started by
``torchrun`` (``torchrun --nproc-per-node N -m combiner eval ...``): they join the process group
the environment describes and share the work (`combiner.distributed`, ``docs/distributed.md``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Literal, get_args

from combiner import api, distributed, fileio, media, registry
from combiner.allocator import keep_freed_memory
from combiner.bitstream import unpack
from combiner.errors import FormatError
from combiner.families import CONFIGS, Modality
from combiner.options import Noise, Search
from combiner.quality import BUDGETS

Blocks = Literal["patch", "spread"]


def _encode(args: argparse.Namespace) -> None:
    output = fileio.check_output(args.output, inputs=[args.input])  # before minutes of fitting
    data, report = api.encode_file(args.input, prior=args.prior, quality=args.quality, **_overrides(
        fit_steps=args.steps, refine_steps=args.refine_steps, spread_blocks=_spread(args.blocks),
        seed=args.seed, device=args.device, threads=args.threads, budget=args.budget,
        progress=not args.quiet))
    fileio.write_bytes(output, data)
    if not args.quiet:
        print(report)


def _encode_folder(args: argparse.Namespace) -> None:
    from combiner import folder

    def report(row: dict) -> None:
        if not args.quiet:
            who = f"[rank {row['rank']}] " if distributed.active() else ""
            print(f"{who}{row['input']} -> {row['output']}: {row['bytes']} bytes, {row['rate']:.4f} "
                  f"{row['unit']}, PSNR {row['psnr']:.2f} dB ({row['encode_s']:.1f} s)", flush=True)

    rows = folder.encode_folder(args.input, args.output, prior=args.prior, quality=args.quality,
                                resume=args.resume, on_item=report, **_overrides(
                                    fit_steps=args.steps, refine_steps=args.refine_steps,
                                    spread_blocks=_spread(args.blocks), seed=args.seed, device=args.device,
                                    threads=args.threads, budget=args.budget, progress=False))
    if not args.quiet and distributed.is_main():
        total = sum(r["bytes"] for r in rows)
        print(f"encoded {len(rows)} file(s) to {args.output}: {total} bytes"
              + (f" on {distributed.world_size()} ranks" if distributed.active() else ""))


def _overrides(**options: Any) -> dict[str, Any]:
    """The encoder options given on the command line (those not None): they replace the
    settings stored in the prior (combiner.quality.resolve)."""
    return {k: v for k, v in options.items() if v is not None}


def _spread(blocks: Blocks | None) -> bool | None:
    """--blocks patch|spread -> EncodeOptions.spread_blocks (None: the prior's setting)."""
    return None if blocks is None else blocks == "spread"


def _add_blocks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blocks", choices=get_args(Blocks), default=None,
                        help="which weights share a coded block: each patch's own (patch) or any "
                             "patch's, so that busy patches get more bits than flat ones (spread); "
                             "default: the setting stored in the prior")


def _add_budget_option(parser: argparse.ArgumentParser) -> None:
    gpu = BUDGETS["gpu"]
    parser.add_argument("--budget", choices=sorted(BUDGETS), default=None,
                        help=f"cpu: the prior's settings (default); gpu: {gpu.fit_scale} times the fitting "
                             f"steps at {gpu.lr_scale:g} times the learning rate, {gpu.refine_scale} times "
                             "the refinement, for a GPU (combiner.quality.BUDGETS)")


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fitting and the search (default: $COMBINER_THREADS, else "
                             "the free cores, at most what the signal's size can use)")


def _decode(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    fileio.check_output(args.output, inputs=[args.input])
    header, _ = unpack(Path(args.input).read_bytes())
    media.output_format(args.output, header.modality)  # refuse e.g. .ogg before decoding
    signal = api.decode_file(args.input, args.output, prior=args.prior)
    if not args.quiet:
        print(f"decoded {args.input} -> {args.output} ({signal.modality}, "
              f"{time.perf_counter() - t:.2f} s)")


def _demo(args: argparse.Namespace) -> None:
    """Encode and decode a sample image with a shipped prior; print rate, quality and times."""
    from importlib import resources

    source = args.image or str(resources.files("combiner") / "samples" / "cifar10-test-00000.png")
    t0 = time.perf_counter()
    data, report = api.encode_file(source, prior=args.prior, quality=args.quality,
                                   **_overrides(threads=args.threads, progress=not args.quiet))
    t1 = time.perf_counter()
    decoded = api.decode(data)
    t2 = time.perf_counter()
    original = media.read(source)
    quality = media.psnr(media.to_output(original).astype(float), decoded.astype(float), 255.0)
    print(report)
    print(f"demo: {source}, prior {unpack(data)[0].prior_id}: {len(data)} bytes = "
          f"{8 * len(data) / (decoded.shape[0] * decoded.shape[1]):.3f} bpp, PSNR {quality:.2f} dB, "
          f"encode {t1 - t0:.1f} s, decode {1000 * (t2 - t1):.0f} ms")


def _info(args: argparse.Namespace) -> None:
    fields = api.info(Path(args.input).read_bytes())
    rate = f" at {fields['sample_rate']} Hz" if fields["sample_rate"] else ""
    layout = "spread across patches" if fields["spread_blocks"] else "per patch"
    print(f"format:      combiner bitstream v{fields['format_version']}, {fields['bytes']} bytes")
    print(f"modality:    {fields['modality']}")
    print(f"shape:       {fields['shape']}{rate}")
    print(f"prior:       {fields['prior_id']} (hash {fields['prior_hash'].hex()[:16]}...)")
    print(f"blocks:      {fields['block_count']} x {fields['kappa']} bits ({layout}), seed {fields['seed']}")
    print(f"rate:        {fields['rate']:.4f} {fields['rate_unit']} (whole file)")


def _as_typed(value: Any) -> str:
    """An option's value as it is written on the command line: a patch shape as ``16 16``."""
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


_LEARN_NETWORK_DEFAULTS = dict(modality="image", patch=(32, 32), config="small")  # learn-prior without --start


def _learn_prior(args: argparse.Namespace) -> None:
    fileio.check_output(args.output)  # before the learning, not after
    if not distributed.is_main():
        args.quiet = True  # rank 0 reports and writes the prior
    given = dict(modality=args.modality, patch=None if args.patch is None else tuple(args.patch), config=args.config)
    if args.start is None:
        network: dict = {**_LEARN_NETWORK_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    else:  # refining: the start prior's network and patch (and beta: the API's default)
        start = registry.resolve(args.start)
        network = dict(modality=start.kind.modality, patch=start.kind.patch_shape, config=start.config)
        for key, value in given.items():
            if value is not None and value != network[key]:
                raise ValueError(f"--{key} {_as_typed(value)} differs from --start's {_as_typed(network[key])}: "
                                 f"a refinement keeps the start prior's network and patch")
        network["start"] = start
    prior = api.learn_prior_from_folder(
        args.data, **network, beta=args.beta, kappa=args.kappa, max_files=args.max_files, per_file=args.crops,
        flips=args.flips, iterations=args.iterations, steps=args.steps, first_steps=args.first_steps,
        lr=args.lr, seed=args.seed, device=args.device, name=args.name, progress=not args.quiet,
        bits_per_patch=args.bits_per_patch, rate_target_bits=args.bits_per_patch,
        batch_patches=args.batch_patches, noise=args.noise,
    )
    assert not isinstance(prior, list), "one rate gives one prior"
    if not distributed.is_main():
        return
    with fileio.replacing(args.output) as tmp:
        prior.save(tmp)
    if not args.quiet:
        print(f"wrote {args.output}: {prior.num_blocks} blocks of <= {prior.kappa} bits per patch")


def _eval(args: argparse.Namespace) -> None:
    from combiner import evaluate

    levels = [] if args.no_combiner else (args.prior or args.quality)
    baselines = None if args.baselines is None else [b for b in args.baselines.split(",") if b]
    overrides = _overrides(fit_steps=args.steps, refine_steps=args.refine_steps, device=args.device,
                           search=args.search, spread_blocks=_spread(args.blocks), threads=args.threads,
                           budget=args.budget)
    if not distributed.is_main():
        args.quiet = True  # rank 0 reports
    reference = json.loads(Path(args.reference).read_text()) if args.reference else None
    summary = evaluate.evaluate(args.data, args.out, levels=levels, baseline_names=baselines,
                                anchor=args.anchor, limit=args.limit, seconds=args.seconds,
                                overrides=overrides, reference=reference, progress=not args.quiet,
                                command=args.command_line, resume=args.resume,
                                max_patches=args.max_patches or evaluate.MAX_PATCHES_PER_BATCH)
    if args.quiet:
        return
    unit = summary["unit"]
    print(f"{'codec':<10} {'setting':<14} {unit:>8} {'PSNR dB':>8} {'enc s':>8} {'dec s':>8}")
    for points in summary["curves"].values():
        for p in points:
            print(f"{p['codec']:<10} {p['setting']:<14} {p['rate']:>8.4f} {p['psnr']:>8.2f} "
                  f"{p['encode_s']:>8.3f} {p['decode_s']:>8.3f}")
    for name, entry in summary["bd"].items():
        bd = entry["bd_rate_percent"]
        text = f"{bd:+.1f} %" if bd is not None else entry.get("note", "n/a")
        print(f"BD-rate of {name} against {entry['anchor']}: {text}")
        if "lossless_left_out" in entry:
            counts = ", ".join(f"{k} {n}" for k, n in entry["lossless_left_out"].items())
            print(f"  (points with PSNR = inf, left out: {counts})")
        if "warning" in entry:
            print(f"  (unreliable: {entry['warning']})")
    print(f"wrote {args.out}/rows.csv, curves.csv, summary.json, rd.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="combiner", description="Compression with Bayesian implicit "
                                "neural representations (COMBINER).")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or reports")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("encode", help="compress an image (PNG, JPEG, ...) or audio (WAV, FLAC)")
    e.add_argument("input")
    e.add_argument("output")
    choice = e.add_mutually_exclusive_group()
    choice.add_argument("--prior", default=None,
                        help="prior file (.safetensors) or shipped prior name; the encoder uses the "
                             "settings stored in it")
    choice.add_argument("--quality", type=int, default=None,
                        help="quality level of the shipped default prior for this kind of signal: "
                             "0 = lowest rate (default 1 when no --prior is given)")
    e.add_argument("--steps", type=int, default=None,
                   help="posterior fitting steps (default: the setting stored in the prior)")
    e.add_argument("--refine-steps", type=int, default=None,
                   help="fine-tuning steps after each coded round of blocks (default: the prior's, "
                        "within its bound on all rounds together; given: that many after every round)")
    e.add_argument("--seed", type=int, default=0)
    _add_budget_option(e)
    _add_threads_option(e)
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    _add_blocks_option(e)
    e.set_defaults(func=_encode)

    ef = sub.add_parser("encode-folder", help="compress every image and audio file of a folder, "
                        "one IN_DIR/NAME.SUFFIX to OUT_DIR/NAME.cmb (several processes under torchrun)")
    ef.add_argument("input", help="folder of images and/or audio files")
    ef.add_argument("output", help="folder for the .cmb files (made if missing)")
    folder_choice = ef.add_mutually_exclusive_group()
    folder_choice.add_argument("--prior", default=None, help="prior file or shipped prior name, as for encode")
    folder_choice.add_argument("--quality", type=int, default=None,
                               help="quality level of the shipped default for each file's kind (default 1)")
    ef.add_argument("--steps", type=int, default=None, help="posterior fitting steps (default: the prior's)")
    ef.add_argument("--refine-steps", type=int, default=None, help="refinement steps (default: the prior's)")
    ef.add_argument("--seed", type=int, default=0)
    _add_budget_option(ef)
    _add_threads_option(ef)
    ef.add_argument("--device", default=None,
                    help="cpu, cuda, cuda:1 ... (default: auto; under torchrun GPU LOCAL_RANK when there is one)")
    _add_blocks_option(ef)
    ef.add_argument("--resume", action="store_true", help="leave the inputs whose .cmb exists alone")
    ef.set_defaults(func=_encode_folder)

    d = sub.add_parser("decode", help="decompress a .cmb file to PNG / WAV / FLAC")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--prior", default=None,
                   help="the prior the file was encoded with (default: the shipped prior it names)")
    d.set_defaults(func=_decode)

    m = sub.add_parser("demo", help="encode + decode a sample image with a shipped prior")
    _add_threads_option(m)
    m.add_argument("image", nargs="?", default=None, help="an RGB image (default: a bundled sample)")
    demo_choice = m.add_mutually_exclusive_group()
    demo_choice.add_argument("--prior", default=None, help="shipped prior name or prior file")
    demo_choice.add_argument("--quality", type=int, default=None,
                             help="quality level of the shipped default (default 1)")
    m.set_defaults(func=_demo)

    i = sub.add_parser("info", help="describe a .cmb file")
    i.add_argument("input")
    i.set_defaults(func=_info)

    ev = sub.add_parser("eval", help="rate-distortion of combiner and baseline codecs on a folder")
    ev.add_argument("data", help="folder of images or of audio clips")
    ev.add_argument("-o", "--out", required=True, help="folder for rows.csv, summary.json, rd.png")
    levels = ev.add_mutually_exclusive_group()
    levels.add_argument("--quality", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="combiner quality levels (shipped default priors), default 0 1 2 3")
    levels.add_argument("--prior", nargs="+", default=None, help="prior files or names instead")
    levels.add_argument("--no-combiner", action="store_true", help="baselines only")
    ev.add_argument("--baselines", default=None,
                    help="comma-separated: jpeg,webp,avif,jpeg2000 (images; the default) or "
                         "mp3,vorbis,opus (audio; the default); empty for none")
    ev.add_argument("--anchor", default=None, help="codec for BD-rate (default: first baseline)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N items (by name)")
    ev.add_argument("--seconds", type=float, default=None, help="cut audio clips to this length")
    ev.add_argument("--steps", type=int, default=None, help="override combiner fitting steps")
    _add_budget_option(ev)
    _add_threads_option(ev)
    ev.add_argument("--refine-steps", type=int, default=None, help="override refinement steps")
    _add_blocks_option(ev)
    ev.add_argument("--device", default=None)
    ev.add_argument("--search", choices=get_args(Search), default=None,
                    help="where the A* search runs (default auto: the GPU when fitting on CUDA "
                         "with CuPy installed; same bitstreams either way)")
    ev.add_argument("--resume", action="store_true",
                    help="keep the rows already in OUT/rows.jsonl and measure only the rest")
    ev.add_argument("--max-patches", type=int, default=None,  # None: evaluate.MAX_PATCHES_PER_BATCH
                    help="combiner codes items together up to this many patches per batch")
    ev.add_argument("--reference", default=None,
                    help="JSON {label: [[rate, psnr], ...]} of published curves to draw")
    ev.set_defaults(func=_eval)

    lp = sub.add_parser("learn-prior", help="learn a prior from a folder of images or audio")
    lp.add_argument("data", nargs="+", help="folder(s) of training files")
    lp.add_argument("-o", "--output", required=True)
    default = {key: _as_typed(value) for key, value in _LEARN_NETWORK_DEFAULTS.items()}
    lp.add_argument("--modality", choices=get_args(Modality), default=None,
                    help=f"default {default['modality']}, or --start's")
    lp.add_argument("--patch", type=int, nargs="+", default=None, help=f"default {default['patch']}, or --start's")
    lp.add_argument("--config", default=None,
                    help=f"network preset of combiner.families.CONFIGS: {', '.join(CONFIGS)} "
                         f"(default {default['config']}, or --start's)")
    lp.add_argument("--beta", type=float, default=None,
                    help="rate-distortion trade-off (default 1e-5, or --start's final beta)")
    lp.add_argument("--start", default=None, metavar="PRIOR",
                    help="refine this prior (file or shipped name) instead of learning one from scratch: "
                         "its network and patch, posteriors started as the encoder starts them "
                         "(combiner.prior_learning.learn_prior's start)")
    lp.add_argument("--noise", choices=get_args(Noise), default="local",
                    help="how fitting draws the network (folded: the photo encoder's)")
    lp.add_argument("--bits-per-patch", type=float, default=None,
                    help="learn the prior for this rate: beta (then only the starting value) is "
                         "adapted while learning, and the partition has about BITS / kappa blocks")
    lp.add_argument("--kappa", type=int, default=16)
    lp.add_argument("--max-files", type=int, default=None)
    lp.add_argument("--crops", type=int, default=4, help="random crops per training file")
    lp.add_argument("--flips", action="store_true", help="mirror each image crop left-right with probability 1/2")
    lp.add_argument("--iterations", type=int, default=10)
    lp.add_argument("--steps", type=int, default=100, help="fitting steps per iteration")
    lp.add_argument("--first-steps", type=int, default=300)
    lp.add_argument("--lr", type=float, default=3e-3)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--device", default=None)
    lp.add_argument("--batch-patches", type=int, default=256,
                    help="training posteriors fitted together; under torchrun the ranks share these "
                         "minibatches, so give at least one per rank")
    lp.add_argument("--name", default=None, help="prior id recorded in bitstreams")
    lp.set_defaults(func=_learn_prior)
    return p


SHARED_COMMANDS = ("learn-prior", "eval", "encode-folder")  # the ones that run on several processes


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types a user's input, files or arguments can cause: reported in one line.

    combiner's own (InputError, OutputError, FormatError, PriorMismatchError ...) are
    ValueErrors; files raise OSError (Pillow's unreadable images among them); Pillow refuses
    huge images with DecompressionBombError and soundfile damaged audio with SoundFileError.
    Anything else is a bug, and keeps its traceback."""
    import soundfile
    from PIL import Image

    return ValueError, OSError, Image.DecompressionBombError, soundfile.SoundFileError


def _report(message: object) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"combiner: error: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0, 1 for a refused input or a failed
    command, 2 for an invalid bitstream (and argparse's usage errors), 130 when interrupted."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["combiner", *argv])
    keep_freed_memory()  # fitting steps reuse freed tensor memory instead of page-faulting it in
    done = False
    try:
        if args.command in SHARED_COMMANDS:
            distributed.init_from_env()
        elif distributed.launched_ranks() > 1:
            raise ValueError(f"{args.command} runs in one process; under torchrun use one of "
                             f"{', '.join(SHARED_COMMANDS)}")
        args.func(args)
        done = True
    except FormatError as e:
        _report(f"invalid bitstream: {e}")
        return 2
    except _user_errors() as e:
        _report(str(e) or type(e).__name__)
        return 1
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    finally:
        distributed.finish(wait=done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
