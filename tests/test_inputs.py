"""What users hand to combiner: files and arrays are coded exactly as given or refused clearly,
outputs never replace the input nor appear half-written, and errors end in one line."""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import zlib

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image, ImageOps

import combiner
from combiner import cli, evaluate, fileio, media, rd
from combiner.errors import ImageTooLargeError, InputError, OutputError
from test_codec import tiny_prior

torch.set_num_threads(1)

FAST = dict(fit_steps=5, refine_steps=1, progress=False)
CLI_FAST = ["--steps", "5"]


def _png(path, width: int, height: int, bit_depth: int, colour_type: int, rows: bytes = b"") -> None:
    """A PNG written chunk by chunk: Pillow cannot save 16-bit RGB, nor a header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(rows)) if rows else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b""))


def _ramp16(n: int = 32) -> np.ndarray:
    return (np.arange(n * n).reshape(n, n) * 64).astype(np.uint16)  # 0 ... 65472


@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    """Tiny image and audio priors saved as files, for the command line."""
    folder = tmp_path_factory.mktemp("priors")
    paths = {}
    for kind, patch in (("image", (16, 16)), ("audio", (64,))):
        paths[kind] = folder / f"{kind}.safetensors"
        tiny_prior(kind, patch, f"tiny-{kind}").save(paths[kind])
    return paths


@pytest.fixture(scope="module")
def bitstreams(priors, tmp_path_factory):
    """A coded image and a coded audio clip (.cmb files)."""
    folder = tmp_path_factory.mktemp("cmb")
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    wave = (0.5 * np.sin(np.arange(200) / 5)).astype(np.float32)
    paths = {"image": folder / "image.cmb", "audio": folder / "audio.cmb"}
    paths["image"].write_bytes(combiner.encode(image, prior=priors["image"], **FAST))
    paths["audio"].write_bytes(combiner.encode(wave, sample_rate=16000, prior=priors["audio"], **FAST))
    return paths


def _run(capsys, *args) -> tuple[int, str]:
    """cli.main's exit status and its stderr."""
    code = cli.main(["-q", *map(str, args)])
    return code, capsys.readouterr().err


def _one_line_error(err: str) -> str:
    assert err.startswith("combiner: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# -- 1. pixel formats: exact conversion to 8-bit RGB, or a refusal ------------------------------
def _save_16bit(kind: str, path) -> None:
    ramp = _ramp16()
    if kind == "tiff-I;16B":
        Image.frombytes("I;16B", (32, 32), ramp.astype(">u2").tobytes()).save(path)
    elif kind == "png-gray16":
        Image.fromarray(ramp).save(path)
    elif kind == "png-rgb16":
        rgb = np.repeat(ramp[..., None], 3, axis=2).astype(">u2")
        _png(path, 32, 32, 16, 2, b"".join(b"\x00" + row.tobytes() for row in rgb))
    elif kind == "ppm-16":
        rgb = np.repeat(ramp[..., None], 3, axis=2).astype(">u2")
        path.write_bytes(b"P6 32 32 65535\n" + rgb.tobytes())


@pytest.mark.parametrize("kind, suffix", [("tiff-I;16B", ".tif"), ("png-gray16", ".png"),
                                          ("png-rgb16", ".png"), ("ppm-16", ".ppm")])
def test_16_bit_images_are_refused_not_clipped_or_reduced(kind, suffix, tmp_path):
    """Pillow clips I;16B to 255 and silently keeps 8 of 16 bits of RGB PNGs and PPMs."""
    path = tmp_path / f"ramp{suffix}"
    _save_16bit(kind, path)
    with pytest.raises(InputError, match="16 bits per sample"):
        media.read(path)


def test_a_16_bit_tiff_is_refused_by_the_command_line(tmp_path, capsys):
    path = tmp_path / "ramp.tif"
    _save_16bit("tiff-I;16B", path)
    code, err = _run(capsys, "encode", path, tmp_path / "ramp.cmb", *CLI_FAST)
    assert code == 1 and "16 bits per sample" in _one_line_error(err)
    assert not (tmp_path / "ramp.cmb").exists()


def _rgb(h=12, w=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode, saved_as, match", [
    ("L", ".png", "grayscale"), ("1", ".png", "grayscale"), ("RGBA", ".png", "alpha"),
    ("LA", ".png", "alpha"), ("CMYK", ".jpg", "CMYK"), ("CMYK", ".tif", "CMYK"),
    ("YCbCr", ".tif", "YCbCr"),
])
def test_modes_without_an_exact_rgb_conversion_are_refused(mode, saved_as, match, tmp_path):
    path = tmp_path / f"x{saved_as}"
    Image.fromarray(_rgb()).convert(mode).save(path)
    with pytest.raises(InputError, match=match):
        media.read(path)


def test_a_palette_image_with_transparency_is_refused(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(_rgb()).convert("P").save(path, transparency=0)
    with pytest.raises(InputError, match="alpha"):
        media.read(path)


@pytest.mark.parametrize("mode, suffix", [("P", ".png"), ("P", ".gif"), ("RGB", ".bmp"),
                                          ("RGB", ".ppm"), ("RGB", ".tif"), ("RGBX", ".tif")])
def test_exact_conversions_keep_every_pixel(mode, suffix, tmp_path):
    path = tmp_path / f"x{suffix}"
    Image.fromarray(_rgb()).convert(mode).save(path)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB"))
    values = media.read(path).values
    assert values.shape == (12, 10, 3)
    np.testing.assert_array_equal(values, expected.astype(np.float32) / 255.0)


def test_animations_are_refused(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(_rgb(seed=s)).convert("P") for s in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="2 frames"):
        media.read(path)


# -- 2. EXIF orientation ------------------------------------------------------------------------
def _rotated_jpeg(path) -> None:
    """Stored 32 wide x 24 high, EXIF Orientation 6: viewers show it 24 wide x 32 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(24, 32)).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_on_read(tmp_path):
    path = tmp_path / "turned.jpg"
    _rotated_jpeg(path)
    with Image.open(path) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert shown.shape == (32, 24, 3)
    np.testing.assert_array_equal(media.read(path).values, shown.astype(np.float32) / 255.0)


def test_a_turned_jpeg_decodes_as_viewers_show_it(priors, tmp_path, capsys):
    src, cmb, out = tmp_path / "turned.jpg", tmp_path / "turned.cmb", tmp_path / "turned.png"
    _rotated_jpeg(src)
    cmb.write_bytes(combiner.encode(src, prior=priors["image"], **FAST))
    assert _run(capsys, "decode", cmb, out, "--prior", priors["image"])[0] == 0
    with Image.open(out) as im:
        assert im.size == (24, 32)


# -- 3. outputs: never the input, never half-written --------------------------------------------
def test_encode_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = tmp_path / "photo.png"
    Image.fromarray(_rgb()).save(src)
    before = src.read_bytes()
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for output in (src, tmp_path / "." / "photo.png", tmp_path / "link.png", tmp_path / "hard.png"):
        code, err = _run(capsys, "encode", src, output, *CLI_FAST)
        assert code == 1 and "is also the input" in _one_line_error(err)
    assert src.read_bytes() == before


def test_decode_refuses_to_overwrite_its_input(bitstreams, priors, tmp_path, capsys):
    cmb = tmp_path / "x.png"  # a bitstream with an image's name
    cmb.write_bytes(bitstreams["image"].read_bytes())
    code, err = _run(capsys, "decode", cmb, cmb, "--prior", priors["image"])
    assert code == 1 and "is also the input" in _one_line_error(err)
    assert cmb.read_bytes() == bitstreams["image"].read_bytes()


def test_an_output_in_a_missing_folder_is_refused_before_encoding(tmp_path, capsys, monkeypatch):
    src = tmp_path / "photo.png"
    Image.fromarray(_rgb()).save(src)
    monkeypatch.setattr(combiner.api, "encode_file", lambda *a, **k: pytest.fail("encoded"))
    code, err = _run(capsys, "encode", src, tmp_path / "missing" / "x.cmb")
    assert code == 1 and "does not exist" in _one_line_error(err)


def test_a_failed_write_leaves_the_previous_file_and_no_debris(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with fileio.replacing(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_a_decode_that_fails_while_writing_leaves_no_output(bitstreams, priors, tmp_path, capsys,
                                                            monkeypatch):
    def failing_write(file, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF")  # a header, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(soundfile, "write", failing_write)
    out = tmp_path / "clip.wav"
    code, err = _run(capsys, "decode", bitstreams["audio"], out, "--prior", priors["audio"])
    assert code == 1 and "No space left" in _one_line_error(err)
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        fileio.write_bytes(tmp_path / "new.cmb", b"x")
        assert stat.S_IMODE((tmp_path / "new.cmb").stat().st_mode) == 0o644
        (tmp_path / "old.cmb").write_bytes(b"")
        os.chmod(tmp_path / "old.cmb", 0o600)
        fileio.write_bytes(tmp_path / "old.cmb", b"y")  # replacing a file keeps its permissions
        assert stat.S_IMODE((tmp_path / "old.cmb").stat().st_mode) == 0o600
    finally:
        os.umask(umask)


# -- 4. errors a user can cause end in one line ------------------------------------------------
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    _png(bomb, 20000, 20000, 8, 2)  # a header, no pixels: Pillow itself refuses 400 Mpixels
    assert bomb.stat().st_size < 100
    with pytest.raises(ImageTooLargeError, match="400,000,000 pixels"):
        media.read(bomb)
    code, err = _run(capsys, "encode", bomb, tmp_path / "bomb.cmb")
    assert code == 1 and "at most 67,108,864 pixels" in _one_line_error(err)


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    big = tmp_path / "big.png"
    _png(big, 9000, 9000, 8, 2)  # over MAX_IMAGE_PIXELS, under Pillow's own limit
    with pytest.raises(ImageTooLargeError, match="9000 x 9000"):
        media.read(big)


@pytest.mark.parametrize("name, content, match", [
    ("missing.png", None, "no such file"),
    ("notes.txt", b"hello", "PNG, JPEG"),
    ("truncated.png", "truncated", "damaged"),
    ("noise.wav", b"RIFF\x00\x00junk", "cannot read it as WAV"),
    ("stereo.flac", "stereo", "2 channels"),
])
def test_unreadable_inputs_end_in_one_line(name, content, match, tmp_path, capsys):
    path = tmp_path / name
    if content == "truncated":
        Image.fromarray(_rgb()).save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif content == "stereo":
        soundfile.write(path, np.zeros((100, 2), np.float32), 8000)
    elif content is not None:
        path.write_bytes(content)
    code, err = _run(capsys, "encode", path, tmp_path / "x.cmb")
    assert code == 1 and match in _one_line_error(err)


def test_bugs_keep_their_traceback(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(combiner.api, "encode_file", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["-q", "encode", str(tmp_path / "a.png"), str(tmp_path / "a.cmb")])


# -- 5. audio samples: scaled by their type's range, or refused ----------------------------------
@pytest.mark.parametrize("samples, expected", [
    (np.array([96, 128, 192, 160], np.uint8), [-0.25, 0.0, 0.5, 0.25]),  # 8-bit WAV: silence 128
    (np.array([-128, 0, 64], np.int8), [-1.0, 0.0, 0.5]),
    (np.array([-32768, 0, 16384], np.int16), [-1.0, 0.0, 0.5]),
    (np.array([-2**31, 0, 2**30], np.int32), [-1.0, 0.0, 0.5]),
    (np.array([-1.0, 0.0, 0.5], np.float64), [-1.0, 0.0, 0.5]),
])
def test_integer_samples_are_scaled_by_their_type(samples, expected):
    signal = media.audio_from_array(samples, 16000)
    np.testing.assert_allclose(signal.values * 2 - 1, expected, atol=1e-7)


@pytest.mark.parametrize("samples, match", [
    (np.array([1, 2, 3], np.int64), "int64"),
    (np.array([1, 2, 3], np.uint16), "uint16"),
    (np.array([True, False]), "bool"),
    (np.array([0.5, 1.5], np.float32), "peak is 1.5"),
    (np.array([0.0, np.inf], np.float32), "non-finite"),
])
def test_ambiguous_or_out_of_range_samples_are_refused(samples, match, audio_prior):
    with pytest.raises(InputError, match=match):
        combiner.encode(samples, sample_rate=16000, prior=audio_prior, **FAST)


@pytest.fixture(scope="module")
def audio_prior():
    return tiny_prior("audio", (64,), "tiny-audio")


def test_a_float_wav_louder_than_full_scale_is_refused(tmp_path):
    path = tmp_path / "loud.wav"
    soundfile.write(path, np.array([0.0, 1.25, -0.5], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(InputError, match="loud.wav.*peak is 1.25"):
        media.read(path)


# -- 6. file formats: supported, or refused up front naming the supported ones ------------------
@pytest.mark.skipif("MP3" not in soundfile.available_formats(), reason="libsndfile without MP3")
def test_mp3_input_is_read_as_audio(tmp_path):
    path = tmp_path / "clip.mp3"
    wave = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    soundfile.write(path, wave, 16000, format="MP3", subtype="MPEG_LAYER_III")
    signal = media.read(path)
    assert signal.modality == "audio" and signal.sample_rate == 16000 and signal.values.size > 0


@pytest.mark.parametrize("kind, output, match", [
    ("audio", "out.ogg", ".flac, .wav"), ("audio", "out.mp3", ".flac, .wav"),
    ("audio", "out.png", "not an audio format"), ("image", "out.jpg", ".png"),
    ("image", "out.wav", "not an image format"), ("image", "out", "without a suffix"),
])
def test_decode_refuses_unsupported_outputs_up_front(kind, output, match, bitstreams, priors,
                                                    tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(combiner.api, "decode_file", lambda *a, **k: pytest.fail("decoded"))
    code, err = _run(capsys, "decode", bitstreams[kind], tmp_path / output, "--prior", priors[kind])
    assert code == 1 and match in _one_line_error(err)
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize("kind, output", [("audio", "out.wav"), ("audio", "out.flac"),
                                          ("image", "out.png"), ("image", "out.tif")])
def test_decode_writes_every_supported_output(kind, output, bitstreams, priors, tmp_path, capsys):
    assert _run(capsys, "decode", bitstreams[kind], tmp_path / output, "--prior", priors[kind])[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [output]
    decoded = combiner.decode(bitstreams[kind].read_bytes(), prior=priors[kind])
    if kind == "image":
        with Image.open(tmp_path / output) as im:
            np.testing.assert_array_equal(np.asarray(im), decoded)  # lossless
    else:
        wave, rate = soundfile.read(tmp_path / output, dtype="float32")
        assert rate == 16000 and np.abs(wave - decoded).max() <= 1 / 32768 + 1e-6  # 16-bit PCM


# -- 7. eval: valid JSON, and lossless points handled explicitly ----------------------------------
def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def flat_eval(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flat")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(folder / "grey.png")
    out = tmp_path_factory.mktemp("flat-eval")
    assert cli.main(["eval", str(folder), "-o", str(out), "--no-combiner",
                     "--baselines", "jpeg,webp"]) == 0
    return folder, out


def test_eval_json_outputs_are_valid_json_with_null_for_infinite_psnr(flat_eval):
    _, out = flat_eval
    summary = _strict_json((out / "summary.json").read_text())
    rows = [_strict_json(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    jpeg = [r for r in rows if r["codec"] == "jpeg"]
    assert jpeg and all(r["psnr"] is None and r["mse"] == 0 for r in jpeg)  # coded exactly
    assert all(p["psnr"] is None and p["lossless_items"] == 1 for p in summary["curves"]["jpeg"])
    assert evaluate.read_journal(out / "rows.jsonl")[0]["psnr"] == math.inf  # read back as inf
    assert all(math.isinf(float(line.split(",")[6])) for line in
               (out / "rows.csv").read_text().splitlines()[1:] if line.startswith("jpeg"))


def test_eval_gives_the_real_reason_bd_is_undefined(flat_eval, capsys):
    _, out = flat_eval
    entry = json.loads((out / "summary.json").read_text())["bd"]["webp"]
    assert entry["bd_rate_percent"] is None
    assert "the anchor jpeg has 0 usable of 9 point(s) (9 coded exactly" in entry["note"]
    assert entry["lossless_left_out"]["jpeg"] == 9
    assert evaluate.rebuild(out)["bd"]["webp"] == entry  # the journal's nulls rebuild the same


def test_lossless_points_are_drawn_above_the_finite_ones(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    curve_map = {"jpeg": [dict(rate=5.0, psnr=math.inf), dict(rate=6.0, psnr=math.inf)],
                 "webp": [dict(rate=0.4, psnr=42.0), dict(rate=0.5, psnr=math.inf)]}
    rd.plot(curve_map, tmp_path / "rd.png", title="t", unit="bpp")
    lines = figures[0].axes[0].get_lines()
    drawn = {line.get_label(): list(zip(line.get_xdata(), line.get_ydata())) for line in lines}
    assert drawn["jpeg: PSNR = inf"] == [(5.0, 45.0), (6.0, 45.0)]
    assert drawn["webp"] == [(0.4, 42.0)] and drawn["webp: PSNR = inf"] == [(0.5, 45.0)]
    close(figures[0])
    assert (tmp_path / "rd.png").exists()


def test_eval_refuses_to_write_into_its_data_folder(flat_eval, capsys):
    folder, _ = flat_eval
    code, err = _run(capsys, "eval", folder, "-o", folder, "--no-combiner", "--baselines", "jpeg")
    assert code == 1 and "is the data folder" in _one_line_error(err)
    assert sorted(p.name for p in folder.iterdir()) == ["grey.png"]


def test_output_checks_raise_typed_errors(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        fileio.check_output(tmp_path)
    with pytest.raises(OutputError, match="lossless"):
        media.output_format(tmp_path / "x.jpg", "image")
