"""Shipped default priors chosen by signal kind, size and quality level (`--quality`), and the
one resolver that turns a prior or a quality level into the encoder's options."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import combiner
from combiner import cli, families, media, quality, registry
from combiner.options import EncodeOptions

torch.set_num_threads(1)

FAMILIES = ("thumbnail", "photo", "speech")
KODIM05 = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim05.png"
# The same photo as coded by the photo family, for checkouts without the data folder.
KODIM05_CODED = Path(__file__).resolve().parent / "data" / "kodim05-crop96x64.photo-q1.cmb"


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y) + rng.uniform(0, 6))
             for _ in range(3)]
    return np.round(127.5 + 100 * np.stack(chans, -1)).astype(np.uint8)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_four_levels_whose_rate_rises(family):
    names = families.FAMILIES[family].levels
    assert len(names) >= 4, names
    priors = [combiner.Prior.load(registry.shipped()[n]) for n in names]
    blocks = [p.num_blocks for p in priors]
    assert blocks == sorted(blocks) and len(set(blocks)) == len(blocks), blocks  # rate rises with q
    # Every family learns one prior per level, at that level's rate, with the linear
    # reparameterisation (training/train_priors.py, every family's recipe), so quality
    # levels share a network and differ only in what they were learned for.
    for p in priors:
        assert p.mix is not None, p.kind
        assert 0.8 < p.kind.train_bits_per_patch / p.kind.bits_per_patch < 1.25, p.kind
    betas = [p.kind.beta for p in priors]
    assert betas == sorted(betas, reverse=True), betas  # a higher rate was learned at lower beta


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_priors_are_their_family(family):
    """Each shipped prior has its family's network, patch and rate, and stores its family's
    encoder settings."""
    fam = families.FAMILIES[family]
    for name, bits in zip(fam.levels, fam.training.bits_per_patch):
        prior = combiner.Prior.load(registry.shipped()[name])
        assert prior.kind.modality == fam.modality
        assert prior.kind.patch_shape == fam.patch
        assert prior.kind.bits_per_patch == bits
        assert prior.config == families.network(fam.config, fam.modality)
        assert prior.encoder == fam.encoder, name


def test_family_follows_kind_and_size():
    def family(x) -> str:
        return families.for_signal(x).name

    assert family(media.image_from_array(smooth_image(32, 32))) == "thumbnail"
    assert family(media.image_from_array(smooth_image(33, 47))) == "thumbnail"
    assert family(media.image_from_array(smooth_image(64, 80))) == "photo"
    assert family(media.audio_from_array(np.zeros(100, np.float32), 16000)) == "speech"


def _crop(tmp_path) -> Path:
    """A photo crop of 96 x 80 pixels (2 x 2 patches of the photo family): from kodim05, or
    where the data folder is absent, from the committed kodim05 bitstream (96 x 64)."""
    path = tmp_path / "crop.png"
    if KODIM05.is_file():
        pixels = np.asarray(Image.open(KODIM05).convert("RGB"))[200:280, 300:396]
    else:
        pixels = combiner.decode(KODIM05_CODED.read_bytes())
    Image.fromarray(pixels).save(path)
    return path


def test_a_quality_level_and_its_prior_resolve_alike(tmp_path):
    signal = media.read(_crop(tmp_path))
    by_level, options = quality.resolve(signal, quality=1)
    by_name, same = quality.resolve(signal, prior="photo-q1")
    assert by_level.content_hash() == by_name.content_hash()
    assert options == same == families.FAMILIES["photo"].encoder.options()
    assert quality.resolve(signal)[1] == options  # quality 1 is the default
    # Explicit overrides win over the stored settings; the rest stays.
    _, changed = quality.resolve(signal, prior="photo-q1", overrides=dict(fit_steps=7, spread_blocks=False))
    assert (changed.fit_steps, changed.spread_blocks, changed.lr) == (7, False, options.lr)
    with pytest.raises(TypeError, match="unknown encoder options"):
        quality.resolve(signal, quality=1, overrides=dict(fit_step=7))
    with pytest.raises(ValueError, match="fit_steps"):
        quality.resolve(signal, quality=1, overrides=dict(fit_steps=-1))


def test_the_gpu_budget_scales_the_recipe_and_overrides_still_win(tmp_path):
    signal = media.read(_crop(tmp_path))
    _, cpu = quality.resolve(signal, quality=1)
    assert quality.resolve(signal, quality=1, overrides=dict(budget="cpu"))[1] == cpu
    _, gpu = quality.resolve(signal, quality=1, overrides=dict(budget="gpu"))
    b = quality.BUDGETS["gpu"]
    assert (gpu.fit_steps, gpu.refine_steps) == (cpu.fit_steps * b.fit_scale, cpu.refine_steps * b.refine_scale)
    assert gpu.lr == pytest.approx(cpu.lr * b.lr_scale) and gpu.fit_steps >= 20_000
    assert replace(gpu, fit_steps=cpu.fit_steps, refine_steps=cpu.refine_steps,
                   max_refine_steps=cpu.max_refine_steps, lr=cpu.lr) == cpu
    _, mine = quality.resolve(signal, quality=1, overrides=dict(budget="gpu", fit_steps=9))
    assert (mine.fit_steps, mine.refine_steps) == (9, gpu.refine_steps)
    with pytest.raises(ValueError, match="budget must be one of"):
        quality.resolve(signal, quality=1, overrides=dict(budget="tpu"))
    args = cli.build_parser().parse_args(["encode", "a.png", "b.cmb", "--budget", "gpu"])
    assert args.budget == "gpu"


def test_a_prior_without_stored_settings_takes_the_defaults(tmp_path):
    signal = media.read(_crop(tmp_path))
    prior = registry.resolve("photo-q1")
    prior.encoder = None
    path = tmp_path / "bare.safetensors"
    prior.save(path)
    for given in (prior, path):
        chosen, options = quality.resolve(signal, prior=given)
        assert chosen.encoder is None and options == EncodeOptions()


def test_cli_prior_and_quality_give_the_same_bitstream(tmp_path):
    src = _crop(tmp_path)
    by_name, by_level = tmp_path / "name.cmb", tmp_path / "level.cmb"
    fast = ["--steps", "30", "--refine-steps", "0"]  # a few seconds: the searches remain
    assert cli.main(["-q", "encode", str(src), str(by_name), "--prior", "photo-q1", *fast]) == 0
    assert cli.main(["-q", "encode", str(src), str(by_level), "--quality", "1", *fast]) == 0
    data = by_name.read_bytes()
    assert data == by_level.read_bytes()
    assert combiner.api.info(data)["spread_blocks"]  # the photo family's stored setting


def test_bad_quality_requests_are_refused_clearly():
    img = smooth_image(32, 32)
    with pytest.raises(ValueError, match="out of range"):
        combiner.encode(img, quality=99)
    with pytest.raises(ValueError, match="either a prior or a quality"):
        combiner.encode(img, prior="thumbnail-q0", quality=0)
    with pytest.raises(ValueError, match="16 kHz"):
        combiner.encode(np.zeros(800, np.float32), sample_rate=8000, quality=0)


def test_api_quality_names_the_prior_and_decodes_without_one():
    img = smooth_image(32, 32)
    data = combiner.encode(img, quality=0, fit_steps=30, refine_steps=1, progress=False)
    assert combiner.api.info(data)["prior_id"] == families.FAMILIES["thumbnail"].levels[0]
    assert combiner.decode(data).shape == img.shape


def _reported_psnr(out: str) -> float:
    return float(out.split("PSNR ")[1].split(" dB")[0])


def test_cli_photo_without_prior_flag_round_trips(tmp_path, capsys):
    img = smooth_image(64, 80, seed=1)  # 2 x 3 patches: photo family
    src, coded, back = tmp_path / "in.png", tmp_path / "x.cmb", tmp_path / "out.png"
    Image.fromarray(img).save(src)
    assert cli.main(["encode", str(src), str(coded), "--quality", "0", "--steps", "20"]) == 0
    reported = _reported_psnr(capsys.readouterr().out)
    assert combiner.api.info(coded.read_bytes())["prior_id"] == families.FAMILIES["photo"].levels[0]
    assert cli.main(["-q", "decode", str(coded), str(back)]) == 0
    out = np.asarray(Image.open(back))
    assert out.shape == img.shape
    # The encoder reports PSNR on [0, 1] floats; the PNG is rounded to uint8 (within 0.05 dB).
    assert abs(media.psnr(img.astype(float), out.astype(float), 255.0) - reported) < 0.05


def test_cli_flac_without_prior_flag_round_trips(tmp_path, capsys):
    t = np.arange(3200) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 523 * t)).astype(np.float32)
    src, coded, back = tmp_path / "in.flac", tmp_path / "x.cmb", tmp_path / "out.flac"
    soundfile.write(src, wave, 16000, subtype="PCM_16")
    assert cli.main(["encode", str(src), str(coded), "--quality", "0", "--steps", "20"]) == 0
    reported = _reported_psnr(capsys.readouterr().out)
    assert cli.main(["-q", "decode", str(coded), str(back)]) == 0
    out, rate = soundfile.read(back, dtype="float32")
    assert rate == 16000 and out.shape == wave.shape
    original = media.read(src).values  # [0, 1] scale, as the encoder measures
    assert abs(media.psnr(original, (out + 1) / 2, 1.0) - reported) < 0.3  # 16-bit output rounding
