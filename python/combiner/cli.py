"""The ``combiner`` command line: encode, decode, info, learn-prior."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from combiner import api
from combiner.bitstream import unpack
from combiner.codec import rate_of
from combiner.errors import FormatError


def _encode(args: argparse.Namespace) -> None:
    data, report = api.encode_file(
        args.input, prior=args.prior, fit_steps=args.steps, seed=args.seed, device=args.device,
        progress=not args.quiet,
    )
    Path(args.output).write_bytes(data)
    if not args.quiet:
        print(report)


def _decode(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    signal = api.decode_file(args.input, args.output, prior=args.prior)
    if not args.quiet:
        print(f"decoded {args.input} -> {args.output} ({signal.modality}, "
              f"{time.perf_counter() - t:.2f} s)")


def _demo(args: argparse.Namespace) -> None:
    """Encode and decode a sample image with a shipped prior; print rate, quality and times."""
    from importlib import resources

    from combiner import media

    source = args.image or str(resources.files("combiner") / "samples" / "cifar10-test-00000.png")
    t0 = time.perf_counter()
    data, report = api.encode_file(source, prior=args.prior, progress=not args.quiet)
    t1 = time.perf_counter()
    decoded = api.decode(data)
    t2 = time.perf_counter()
    original = media.read(source)
    quality = media.psnr(media.to_output(original).astype(float), decoded.astype(float), 255.0)
    print(report)
    print(f"demo: {source}, prior {args.prior}: {len(data)} bytes = "
          f"{8 * len(data) / (decoded.shape[0] * decoded.shape[1]):.3f} bpp, PSNR {quality:.2f} dB, "
          f"encode {t1 - t0:.1f} s, decode {1000 * (t2 - t1):.0f} ms")


def _info(args: argparse.Namespace) -> None:
    data = Path(args.input).read_bytes()
    header, indices = unpack(data)

    unit = "bpp" if header.modality == "image" else "kbit/s"
    print(f"format:      combiner bitstream v1, {len(data)} bytes")
    print(f"modality:    {header.modality}")
    print(f"shape:       {header.shape}" + (f" at {header.sample_rate} Hz" if header.sample_rate else ""))
    print(f"prior:       {header.prior_id} (hash {header.prior_hash.hex()[:16]}...)")
    print(f"blocks:      {len(indices)} x {header.kappa} bits, seed {header.seed}")
    print(f"rate:        {rate_of(header, len(data)):.4f} {unit} (whole file)")


def _learn_prior(args: argparse.Namespace) -> None:
    prior = api.learn_prior_from_folder(
        args.data, modality=args.modality, patch=tuple(args.patch), config=args.config,
        beta=args.beta, kappa=args.kappa, max_files=args.max_files, per_file=args.crops,
        iterations=args.iterations, steps=args.steps, first_steps=args.first_steps, lr=args.lr,
        seed=args.seed, device=args.device, name=args.name, progress=not args.quiet,
    )
    prior.save(args.output)
    if not args.quiet:
        print(f"wrote {args.output}: {prior.num_blocks} blocks of <= {prior.kappa} bits per patch")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="combiner", description="Compression with Bayesian implicit "
                                "neural representations (COMBINER).")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or reports")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("encode", help="compress an image (PNG, JPEG, ...) or audio (WAV, FLAC)")
    e.add_argument("input")
    e.add_argument("output")
    e.add_argument("--prior", required=True, help="prior file (.safetensors) or shipped prior name")
    e.add_argument("--steps", type=int, default=None, help="posterior fitting steps")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    e.set_defaults(func=_encode)

    d = sub.add_parser("decode", help="decompress a .cmb file to PNG / WAV / FLAC")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--prior", default=None,
                   help="the prior the file was encoded with (default: the shipped prior it names)")
    d.set_defaults(func=_decode)

    m = sub.add_parser("demo", help="encode + decode a sample image with a shipped prior")
    m.add_argument("image", nargs="?", default=None, help="an RGB image (default: a bundled sample)")
    m.add_argument("--prior", default="thumbnail", help="shipped prior name or prior file")
    m.set_defaults(func=_demo)

    i = sub.add_parser("info", help="describe a .cmb file")
    i.add_argument("input")
    i.set_defaults(func=_info)

    lp = sub.add_parser("learn-prior", help="learn a prior from a folder of images or audio")
    lp.add_argument("data", help="folder of training files")
    lp.add_argument("-o", "--output", required=True)
    lp.add_argument("--modality", choices=["image", "audio"], default="image")
    lp.add_argument("--patch", type=int, nargs="+", default=[32, 32])
    lp.add_argument("--config", default="small", help="architecture preset: small, kodak")
    lp.add_argument("--beta", type=float, default=1e-5, help="rate-distortion trade-off")
    lp.add_argument("--kappa", type=int, default=16)
    lp.add_argument("--max-files", type=int, default=None)
    lp.add_argument("--crops", type=int, default=4, help="random crops per training file")
    lp.add_argument("--iterations", type=int, default=10)
    lp.add_argument("--steps", type=int, default=100, help="fitting steps per iteration")
    lp.add_argument("--first-steps", type=int, default=300)
    lp.add_argument("--lr", type=float, default=3e-3)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--device", default=None)
    lp.add_argument("--name", default=None, help="prior id recorded in bitstreams")
    lp.set_defaults(func=_learn_prior)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FormatError as e:
        print(f"combiner: invalid bitstream: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"combiner: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
