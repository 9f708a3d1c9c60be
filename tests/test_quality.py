"""Shipped default priors chosen by signal kind, size and quality level (`--quality`)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import combiner
from combiner import cli, media, quality

torch.set_num_threads(1)

FAMILIES = ("thumbnail", "photo", "speech")


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y) + rng.uniform(0, 6))
             for _ in range(3)]
    return np.round(127.5 + 100 * np.stack(chans, -1)).astype(np.uint8)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_four_levels_whose_rate_rises(family):
    names = quality.levels(family)
    assert len(names) >= 4, names
    priors = [combiner.Prior.load(combiner.registry.shipped()[n]) for n in names]
    blocks = [p.num_blocks for p in priors]
    assert blocks == sorted(blocks) and len(set(blocks)) == len(blocks), blocks  # rate rises with q
    # Every family learns one prior per level, at that level's rate, with the linear
    # reparameterisation (training/train_priors.py, every family's recipe), so quality
    # levels share a network and differ only in what they were learned for.
    for p in priors:
        assert p.mix is not None, p.kind
        assert 0.8 < p.kind["train_bits_per_patch"] / p.kind["bits_per_patch"] < 1.25, p.kind
    betas = [p.kind["beta"] for p in priors]
    assert betas == sorted(betas, reverse=True), betas  # a higher rate was learned at lower beta


def test_family_follows_kind_and_size():
    assert quality.family_for(media.image_from_array(smooth_image(32, 32))) == "thumbnail"
    assert quality.family_for(media.image_from_array(smooth_image(33, 47))) == "thumbnail"
    assert quality.family_for(media.image_from_array(smooth_image(64, 80))) == "photo"
    assert quality.family_for(media.audio_from_array(np.zeros(100, np.float32), 16000)) == "speech"


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
    assert combiner.api.info(data)["prior_id"] == quality.levels("thumbnail")[0]
    assert combiner.decode(data).shape == img.shape


def _reported_psnr(out: str) -> float:
    return float(out.split("PSNR ")[1].split(" dB")[0])


def test_cli_photo_without_prior_flag_round_trips(tmp_path, capsys):
    img = smooth_image(64, 80, seed=1)  # 2 x 3 patches: photo family
    src, coded, back = tmp_path / "in.png", tmp_path / "x.cmb", tmp_path / "out.png"
    Image.fromarray(img).save(src)
    assert cli.main(["encode", str(src), str(coded), "--quality", "0", "--steps", "20"]) == 0
    reported = _reported_psnr(capsys.readouterr().out)
    assert combiner.api.info(coded.read_bytes())["prior_id"] == quality.levels("photo")[0]
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
