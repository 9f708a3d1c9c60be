"""Photo and audio runs on the CPU: a patch-mode photo prior, Kodak images at several rates
beside Pillow JPEG at matched rates, and a LibriSpeech round trip.

    python scripts/eval/photo_audio_run.py --out results/archive/first-runs/photo_audio.json

Photo: a prior is learned from random 32 x 32 crops of $COMBINER_DATA/train_photos (never Kodak),
then kodim01-04 are encoded at each rate and decoded from the bitstream; JPEG quality is searched
for the file size closest to ours. Audio: a prior from 0.1 s chunks of the train-clean-100 clips,
then the first 3 s of a test-other clip. Fitting steps are far below the reference's 25,000: this
is a 2-core CPU, and the figures say so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import combiner
from combiner import codec, media
from combiner.api import learn_prior_from_folder

# The evaluation data: $COMBINER_DATA, or else ../shared/data next to the repository.
DATA_ROOT = Path(os.environ.get("COMBINER_DATA")
                 or Path(__file__).resolve().parents[2].parent / "shared" / "data")
DATA = DATA_ROOT


def jpeg_at_rate(img: np.ndarray, target_bytes: int) -> tuple[float, float, int]:
    """(bpp, PSNR, quality) of the Pillow JPEG whose size is closest to ``target_bytes``."""
    best = None
    for q in range(1, 96):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        size = buf.tell()
        if best is None or abs(size - target_bytes) < abs(best[0] - target_bytes):
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            best = (size, media.psnr(img.astype(float), dec.astype(float), 255.0), q)
    size, p, q = best
    return 8 * size / (img.shape[0] * img.shape[1]), p, q


def photo_run(args) -> list[dict]:
    t = time.perf_counter()
    priors = learn_prior_from_folder(
        DATA / "train_photos", modality="image", patch=(32, 32), per_file=args.crops, seed=0,
        config="small", beta=1e-5, kappa=16, iterations=args.iterations, steps=50,
        first_steps=150, lr=1e-3, pixel_fraction=0.25, name="photo",
        bits_per_patch=[1024 * b for b in args.bpp], progress=False)
    learn_s = time.perf_counter() - t
    rows = []
    for prior in priors:
        prior.save(Path(args.priors_dir) / f"{prior.kind.name}.safetensors")
        for name in args.images:
            img = np.asarray(Image.open(DATA / "kodak" / f"{name}.png").convert("RGB"))
            opts = combiner.EncodeOptions(fit_steps=args.fit_steps, refine_steps=args.refine_steps,
                                          lr=1e-3, pixel_fraction=0.25, progress=False)
            t0 = time.perf_counter()
            res = codec.encode_signal(media.image_from_array(img), prior, opts)
            enc_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            out = combiner.decode(res.data, prior=prior)
            dec_s = time.perf_counter() - t1
            ours = media.psnr(img.astype(float), out.astype(float), 255.0)
            jb, jp, jq = jpeg_at_rate(img, len(res.data))
            row = dict(image=name, prior=prior.kind.name, bpp=8 * len(res.data) / img[..., 0].size,
                       psnr=ours, jpeg_bpp=jb, jpeg_psnr=jp, jpeg_quality=jq, encode_s=enc_s,
                       decode_s=dec_s, learn_prior_s=learn_s,
                       peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def audio_run(args) -> list[dict]:
    t = time.perf_counter()
    priors = learn_prior_from_folder(
        DATA / "audio" / "librispeech_train-clean-100", modality="audio", patch=(1600,),
        per_file=args.crops, seed=0, config="audio", beta=1e-5, kappa=16,
        iterations=args.iterations, steps=50, first_steps=150, lr=1e-3, pixel_fraction=0.25,
        name="speech", bits_per_patch=[b * 100 for b in args.kbps], progress=False)
    learn_s = time.perf_counter() - t
    clip = sorted((DATA / "audio" / "librispeech_test-other").glob("*.flac"))[0]
    sig = media.read(clip)
    sig = media.Signal("audio", sig.values[: 3 * sig.sample_rate], sig.sample_rate)
    rows = []
    for prior in priors:
        prior.save(Path(args.priors_dir) / f"{prior.kind.name}.safetensors")
        opts = combiner.EncodeOptions(fit_steps=args.fit_steps, refine_steps=args.refine_steps,
                                      lr=1e-3, progress=False)
        t0 = time.perf_counter()
        res = codec.encode_signal(sig, prior, opts)
        enc_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        out = combiner.decode(res.data, prior=prior)
        dec_s = time.perf_counter() - t1
        # PSNR on [0, 1]-scaled waveforms with peak 1, as in the reference numbers.
        p = media.psnr(sig.values, (out + 1) / 2, 1.0)
        row = dict(clip=clip.name, seconds=3, prior=prior.kind.name, kbps=res.bits_per_unit,
                   psnr=p, encode_s=enc_s, decode_s=dec_s, learn_prior_s=learn_s)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim02", "kodim03", "kodim04"])
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.3, 0.6])
    ap.add_argument("--kbps", type=float, nargs="+", default=[12.0, 24.0])
    ap.add_argument("--crops", type=int, default=40)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--fit-steps", type=int, default=300)
    ap.add_argument("--refine-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-photo", action="store_true")
    ap.add_argument("--skip-audio", action="store_true")
    ap.add_argument("--priors-dir", default="results/priors")
    ap.add_argument("--out", default="results/archive/first-runs/photo_audio.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.priors_dir).mkdir(parents=True, exist_ok=True)
    report = dict(command="python scripts/eval/photo_audio_run.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if v not in (None, False, True)),
        machine=f"{platform.machine()} CPU, {args.threads} torch threads", torch=torch.__version__)
    if not args.skip_audio:
        report["audio"] = audio_run(args)
    if not args.skip_photo:
        report["photo"] = photo_run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
