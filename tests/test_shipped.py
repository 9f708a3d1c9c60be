"""The priors shipped inside the package and the `combiner demo` main job."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import combiner
from combiner import cli, registry

torch.set_num_threads(1)


def test_shipped_priors_load_and_are_consistent():
    shipped = registry.shipped()
    assert shipped, "the package ships no prior"
    for name, path in shipped.items():
        prior = combiner.Prior.load(path)
        assert prior.kind["name"] == name  # the id a bitstream records finds this very file
        assert prior.kind["modality"] in ("image", "audio")
    for stem, path in registry.retired().items():
        prior = combiner.Prior.load(path)
        assert stem == f"{prior.kind['name']}.{prior.content_hash()[:8].hex()}"


def test_family_name_picks_the_middle_level():
    names = sorted(n for n in registry.shipped() if n.startswith("thumbnail-q"))
    assert registry.resolve("thumbnail").kind["name"] == names[len(names) // 2]
    with pytest.raises(ValueError, match="shipped"):
        registry.resolve("no-such-prior")


def test_decode_finds_the_shipped_prior_by_name():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = combiner.encode(img, prior="thumbnail-q0", fit_steps=30, refine_steps=1, progress=False)
    assert combiner.api.info(data)["prior_id"] == "thumbnail-q0"
    assert combiner.decode(data).shape == (32, 32, 3)  # no prior given


def _thumbnail_bitstream(prior: str) -> bytes:
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return combiner.encode(img, prior=prior, fit_steps=20, refine_steps=0, progress=False)


def test_a_replaced_prior_still_decodes_its_old_bitstreams(tmp_path, monkeypatch):
    """A release that replaces `thumbnail-q0` moves the old file to retired/NAME.HASH: bitstreams
    coded with the old one decode as before; without it they are refused, never decoded wrongly."""
    import shutil

    shipped = registry.shipped()
    data = _thumbnail_bitstream("thumbnail-q0")
    expected = combiner.decode(data)
    old_hash = combiner.api.info(data)["prior_hash"].hex()
    # The "new release": another prior under the same name, the old one retired.
    shutil.copy(shipped["thumbnail-q1"], tmp_path / "thumbnail-q0.safetensors")
    monkeypatch.setattr(registry, "_folder", lambda: tmp_path)
    with pytest.raises(combiner.errors.PriorMismatchError, match="does not ship"):
        combiner.decode(data)
    (tmp_path / "retired").mkdir()
    shutil.copy(shipped["thumbnail-q0"], tmp_path / "retired" / f"thumbnail-q0.{old_hash}.safetensors")
    assert np.array_equal(combiner.decode(data), expected)


def test_a_bitstream_cannot_name_a_file_as_its_prior(tmp_path, monkeypatch):
    """The prior name in a bitstream is untrusted: it picks among shipped priors, never a path."""
    import dataclasses

    from combiner import bitstream

    monkeypatch.chdir(tmp_path)
    path = Path("p.safetensors")
    registry.resolve("thumbnail-q0").save(path)
    header, indices = bitstream.unpack(_thumbnail_bitstream("thumbnail-q0"))
    forged = bitstream.pack(dataclasses.replace(header, prior_id=str(path)), indices)
    with pytest.raises(combiner.errors.PriorMismatchError):
        combiner.decode(forged)
    assert combiner.decode(forged, prior=path).shape == (32, 32, 3)  # named by the user: fine


def test_demo_main_job(capsys):
    assert cli.main(["-q", "demo"]) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "PSNR" in out


def test_committed_sample_bitstream_decodes_to_the_same_pixels():
    """A bitstream made once (thumbnail-q1, the bundled sample image) and committed: decoding it
    must give exactly the pixels it gave then, on any machine and in any later version."""
    from importlib import resources

    from combiner import media

    data = (Path(__file__).parent / "data" / "cifar10-test-00000.thumbnail-q1.cmb").read_bytes()
    out = combiner.decode(data)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert hashlib.sha256(out.tobytes()).hexdigest() == (
        "4000a99e4c2d09a5e9f37086c146766315488c0a3219c92144c4dfce532ca026")
    original = media.to_output(media.read(resources.files("combiner") / "samples" / "cifar10-test-00000.png"))
    assert abs(media.psnr(original.astype(float), out.astype(float), 255.0) - 24.46) < 0.01


# The shared evaluation data, beside the checkout (or where COMBINER_SHARED_DATA says).
SHARED = Path(os.environ.get("COMBINER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.parametrize("name, source, sha256, reported", [
    ("kodim01.photo-q1.cmb", "kodak/kodim01.png",
     "9a2016650d88a798b5a759297971a9825354a3dd4eea38a98c3238c351058f85", 22.78),
    ("2414-128291-0008.speech-q1.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     "29afe776aa20a3fa1b72cb8585a9dab475f687395016285eba91d91a3821a7e6", 39.30),
    # The same two inputs with the priors shipped at session 10 (the fresh-install check again).
    ("kodim01.photo-q1.25311fac.cmb", "kodak/kodim01.png",
     "66aff3dcf9740a2c429d752350b205001ec5a199bf6c1b97e1021848a465f7ef", 25.13),
    ("2414-128291-0008.speech-q1.a2915477.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     "68b7197349006ee43f2ee182187a5d0ba31a49d06b7c4798ad33cec5938602f6", 41.87),
    # Session 11: the same priors with the new encoder defaults (spread blocks, format version 2).
    ("kodim01.photo-q1.25311fac.spread.cmb", "kodak/kodim01.png",
     "2d8e8e6f93b325327c36ee379677eb271b9c1ded48ea24f96b870b535dcd90f7", 25.26),
    ("2414-128291-0008.speech-q1.a2915477.spread.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     "5fa1c4ed1207385f03718cbcb10e48755ec2c51e994c915fdea863a38255d7b9", 44.53),
])
def test_committed_cli_bitstreams_decode_to_what_the_encoder_reported(name, source, sha256, reported):
    """Bitstreams written by `combiner encode` with no prior flag (results/cli-check, sessions 3,
    10 and 11): a Kodak image at photo-q1 and a LibriSpeech clip at speech-q1. Their decoded output is pinned (audio
    rounded to 16 bits), and its PSNR against the source is the one `combiner encode` printed."""
    from combiner import media

    out = combiner.decode((Path(__file__).parent / "data" / name).read_bytes())
    pinned = out if out.dtype == np.uint8 else np.round(np.clip(out, -1, 1) * 32767).astype("<i2")
    assert hashlib.sha256(pinned.tobytes()).hexdigest() == sha256
    if not (SHARED / source).exists():
        pytest.skip(f"{SHARED / source} is not here: only the decoded output was checked")
    original = media.to_output(media.read(SHARED / source))
    if out.dtype == np.uint8:
        measured = media.psnr(original.astype(float), out.astype(float), 255.0)
    else:  # combiner's audio convention: the waveform mapped to [0, 1], peak 1
        measured = media.psnr((original + 1.0) / 2.0, (out + 1.0) / 2.0, 1.0)
    assert abs(measured - reported) < 0.005  # printed with two decimals


def test_committed_bitstream_of_a_mixing_prior_decodes_to_the_same_pixels():
    """`combiner encode --quality 1` of a 96 x 64 crop of kodim05 (rows 200-263, columns 300-395)
    with the session-7 photo-q1, whose network carries learned mixing matrices: the decoder must
    apply them exactly as the encoder did (encoder printed 21.26 dB)."""
    from combiner import media

    data = (Path(__file__).parent / "data" / "kodim05-crop96x64.photo-q1.cmb").read_bytes()
    assert combiner.api.info(data)["prior_hash"].hex() == "25311fac77ce50b7"
    out = combiner.decode(data)
    assert out.shape == (64, 96, 3)
    assert hashlib.sha256(out.tobytes()).hexdigest() == (
        "5c5c6ce68e89ddba03e3e309d64d3ae177730d858c4fbd5d50b4e7c7cc4f17dd")
    if not (SHARED / "kodak" / "kodim05.png").exists():
        pytest.skip("kodim05 is not here: only the decoded output was checked")
    crop = media.to_output(media.read(SHARED / "kodak" / "kodim05.png"))[200:264, 300:396]
    assert abs(media.psnr(crop.astype(float), out.astype(float), 255.0) - 21.26) < 0.005


def test_committed_bitstream_of_the_session9_speech_prior_decodes_to_the_same_samples():
    """`combiner encode --quality 1` of 0.25 s of LibriSpeech clip 2414-128291-0008 (samples
    16000-19999, written as 16-bit FLAC) with the session-9 speech-q1: 0.05 s chunks, mixing
    matrices (encoder printed 37.88 dB at 13.70 kbit/s)."""
    from combiner import media

    data = (Path(__file__).parent / "data" / "2414-128291-0008-1.00s-1.25s.speech-q1.cmb").read_bytes()
    assert combiner.api.info(data)["prior_hash"].hex() == "a29154770d536c5b"
    out = combiner.decode(data)
    assert out.shape == (4000,)
    pinned = np.round(np.clip(out, -1, 1) * 32767).astype("<i2")
    assert hashlib.sha256(pinned.tobytes()).hexdigest() == (
        "543e93383f7788affc97458aa9961bc59c38fd6551092f1e103f8997c18c4bf5")
    source = SHARED / "audio" / "librispeech_test-other" / "2414-128291-0008.flac"
    if not source.exists():
        pytest.skip(f"{source} is not here: only the decoded output was checked")
    original = media.read(source).values[16000:20000]  # on [0, 1], as the encoder saw it
    assert abs(media.psnr(original, (out + 1.0) / 2.0, 1.0) - 37.88) < 0.005


@pytest.mark.parametrize("name, sha256, source, reported", [
    # `combiner encode --quality 1` of the two inputs above (the kodim05 crop and the 0.25 s of
    # 2414-128291-0008) with session 11's defaults: blocks spread across patches, format version 2.
    ("kodim05-crop96x64.photo-q1.spread.cmb",
     "8f4db597695410c3092924a58df86ab6158538200c4c5ac2fa48bd8341ebaa15", "kodak/kodim05.png", 21.20),
    ("2414-128291-0008-1.00s-1.25s.speech-q1.spread.cmb",
     "f6129e61dd1bdc59580a337f266a8104d84e09a59c7d94b1ac9ecb0f3f8723a9",
     "audio/librispeech_test-other/2414-128291-0008.flac", 37.92),
])
def test_committed_spread_block_bitstreams_decode_to_the_same_output(name, sha256, source, reported):
    from combiner import media

    data = (Path(__file__).parent / "data" / name).read_bytes()
    assert (data[3], data[6]) == (2, 1)  # version 2, flag spread_blocks
    out = combiner.decode(data)
    image = out.ndim == 3
    pinned = out if image else np.round(np.clip(out, -1, 1) * 32767).astype("<i2")
    assert hashlib.sha256(pinned.tobytes()).hexdigest() == sha256
    if not (SHARED / source).exists():
        pytest.skip(f"{source} is not here: only the decoded output was checked")
    if image:
        crop = media.to_output(media.read(SHARED / source))[200:264, 300:396]
        measured = media.psnr(crop.astype(float), out.astype(float), 255.0)
    else:
        measured = media.psnr(media.read(SHARED / source).values[16000:20000], (out + 1.0) / 2.0, 1.0)
    assert abs(measured - reported) < 0.005
