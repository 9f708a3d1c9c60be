"""The priors shipped inside the package and the `combiner demo` main job."""

from __future__ import annotations

import hashlib
import json
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
        assert prior.kind.name == name  # the id a bitstream records finds this very file
        assert prior.kind.modality in ("image", "audio")
    for stem, path in registry.retired().items():
        prior = combiner.Prior.load(path)
        assert stem == f"{prior.kind.name}.{prior.content_hash()[:8].hex()}"


def test_family_name_picks_the_middle_level():
    names = sorted(n for n in registry.shipped() if n.startswith("thumbnail-q"))
    assert registry.resolve("thumbnail").kind.name == names[len(names) // 2]
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


# The shared evaluation data, beside the checkout (or where COMBINER_SHARED_DATA says).
SHARED = Path(os.environ.get("COMBINER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA = Path(__file__).parent / "data"
DECODED = json.loads((Path(__file__).parent / "vectors" / "decoded.json").read_text())["cases"]
KODIM05_CROP = (slice(200, 264), slice(300, 396))
CLIP_QUARTER = slice(16000, 20000)

# Committed bitstreams written by `combiner encode` with a shipped prior, the input they were
# made from and the PSNR the encoder printed. The encoder printed a PSNR computed by an earlier
# decoder; the deterministic decoder's output differs from it by at most one level on a few
# samples, so the PSNR must agree to 0.01 dB.
ENCODED = [
    ("cifar10-test-00000.thumbnail-q1.cmb", "sample", None, 24.46),
    ("kodim01.photo-q1.cmb", "kodak/kodim01.png", None, 22.78),
    ("kodim01.photo-q1.25311fac.cmb", "kodak/kodim01.png", None, 25.13),
    ("kodim01.photo-q1.25311fac.spread.cmb", "kodak/kodim01.png", None, 25.26),
    ("kodim05-crop96x64.photo-q1.cmb", "kodak/kodim05.png", KODIM05_CROP, 21.26),
    ("kodim05-crop96x64.photo-q1.spread.cmb", "kodak/kodim05.png", KODIM05_CROP, 21.20),
    ("kodim05-crop96x64.photo-q1.7fc5532d.cmb", "kodak/kodim05.png", KODIM05_CROP, 21.71),
    ("2414-128291-0008.speech-q1.cmb", "audio/librispeech_test-other/2414-128291-0008.flac", None, 39.30),
    ("2414-128291-0008.speech-q1.a2915477.cmb", "audio/librispeech_test-other/2414-128291-0008.flac", None, 41.87),
    ("2414-128291-0008.speech-q1.a2915477.spread.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     None, 44.53),
    ("2414-128291-0008-1.00s-1.25s.speech-q1.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     CLIP_QUARTER, 37.88),
    ("2414-128291-0008-1.00s-1.25s.speech-q1.spread.cmb", "audio/librispeech_test-other/2414-128291-0008.flac",
     CLIP_QUARTER, 37.92),
]


@pytest.mark.parametrize("case", DECODED, ids=[Path(c["bitstream"]).name for c in DECODED])
def test_committed_bitstreams_decode_to_the_golden_outputs(case):
    """combiner.decode, finding the prior by the name and hash in the bitstream, gives the output
    pinned in tests/vectors/decoded.json (docs/format.md section 8) on any machine."""
    from combiner import decoder, registry

    data = (Path(__file__).resolve().parents[1] / case["bitstream"]).read_bytes()
    header = combiner.bitstream.unpack(data)[0]
    decoded = decoder.decode(data, registry.for_bitstream(header.prior_id, header.prior_hash))
    assert list(decoded.samples.shape) == case["shape"]
    assert hashlib.sha256(decoded.samples.astype(decoded.samples.dtype.newbyteorder("<")).tobytes()
                          ).hexdigest() == case["sha256"]
    out = combiner.decode(data)  # the public API: the same samples (audio scaled to [-1, 1])
    samples = out if out.dtype == np.uint8 else np.round(out * 32767).astype(np.int16)
    np.testing.assert_array_equal(samples, decoded.samples)


@pytest.mark.parametrize("name, source, part, reported", ENCODED, ids=[e[0] for e in ENCODED])
def test_committed_bitstreams_have_the_psnr_the_encoder_reported(name, source, part, reported):
    from importlib import resources

    from combiner import decoder, media, registry

    path = resources.files("combiner") / "samples" / "cifar10-test-00000.png" if source == "sample" else SHARED / source
    if not Path(str(path)).exists():
        pytest.skip(f"{path} is not here: only the decoded output is checked (golden outputs)")
    data = (DATA / name).read_bytes()
    header = combiner.bitstream.unpack(data)[0]
    decoded = decoder.decode(data, registry.for_bitstream(header.prior_id, header.prior_hash)).signal()
    original = media.read(path).values
    if part is not None:
        original = original[part]
    assert abs(media.psnr(original, decoded.values) - reported) < 0.01


def test_decoding_needs_no_pytorch():
    """A process where `import torch` fails decodes a committed bitstream with the shipped prior,
    through the API and the command line."""
    import subprocess
    import sys

    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch now raises ImportError
import combiner
from combiner import cli
image = combiner.decode(open({str(DATA / "kodim05-crop96x64.photo-q1.spread.cmb")!r}, "rb").read())
assert image.shape == (64, 96, 3), image.shape
assert cli.main(["-q", "decode", {str(DATA / "2414-128291-0008-1.00s-1.25s.speech-q1.cmb")!r}, sys.argv[1]]) == 0
assert "torch" not in sys.modules or sys.modules["torch"] is None
"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([sys.executable, "-c", script, str(Path(tmp) / "clip.wav")],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert (Path(tmp) / "clip.wav").stat().st_size > 8000
