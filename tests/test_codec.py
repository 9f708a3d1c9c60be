"""End to end: encode then decode on tiny configurations (fast on a CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import combiner
from combiner import cli, codec, decoder
from combiner.inr import INRConfig, siren_init
from combiner.prior import Prior, PriorKind
from combiner.prior_learning import initial_prior, make_partition

torch.set_num_threads(1)

FAST = dict(fit_steps=40, refine_steps=2, lr=1e-3, progress=False)


def tiny_prior(modality: str, patch: tuple[int, ...], name: str, kappa: int = 8) -> Prior:
    in_dim, out_dim = (2, 3) if modality == "image" else (1, 1)
    config = INRConfig(in_dim=in_dim, out_dim=out_dim, num_freqs=8, max_freq=16.0, width=32, depth=3)
    d = config.num_params
    # A plausible untrained prior: means at a SIREN initialisation, the initial prior's stds.
    mean = siren_init(config, 1, torch.Generator().manual_seed(0))[0].numpy()
    std = initial_prior(config)[1]
    block_index = make_partition(np.full(d, 0.25), kappa=kappa, max_block_size=25, seed=1)
    kind = PriorKind(modality, patch, name=name, beta=1e-4)
    return Prior(config, mean, std, block_index, kappa=kappa, seed=0, kind=kind)


@pytest.fixture(scope="module")
def image_prior() -> Prior:
    return tiny_prior("image", (16, 16), "tiny-image")


@pytest.fixture(scope="module")
def audio_prior() -> Prior:
    return tiny_prior("audio", (64,), "tiny-audio")


def test_odd_sized_image_round_trips_bit_for_bit(image_prior):
    img = np.random.default_rng(1).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    res = combiner.api.encode_detailed(img, prior=image_prior, **FAST)
    header, weights = decoder.decode_weights(res.data, image_prior)
    assert weights.tobytes() == res.weights.tobytes()  # the decoder rebuilds the encoder's weights
    assert header.shape == (33, 47, 3)
    out = combiner.decode(res.data, prior=image_prior)
    assert out.shape == (33, 47, 3) and out.dtype == np.uint8
    reported = combiner.media.psnr(img / 255.0, res.decoded.values)
    assert res.psnr == pytest.approx(reported)
    assert res.bits_per_unit == pytest.approx(8 * len(res.data) / (33 * 47))
    # 3 x 3 patches of the prior's J blocks, kappa bits each, plus header and CRC.
    count = 9 * image_prior.num_blocks
    header = 7 + 5 + 8 + 1 + len("tiny-image") + (1 if count < 128 else 2)
    assert len(res.data) == header + (count * 8 + 7) // 8 + 4


def test_a_prior_with_mixing_matrices_round_trips(image_prior):
    """The decoder applies the prior's mixing matrices: its output is the encoder's, and differs
    from the same weights run without them."""
    mixed = Prior(image_prior.config, image_prior.mean, image_prior.std, image_prior.block_index,
                  kappa=image_prior.kappa, kind=dataclasses.replace(image_prior.kind, name="tiny-mixed"),
                  mix=combiner.inr.identity_mix(image_prior.config).numpy()
                  + 0.2 * np.random.default_rng(4).standard_normal(image_prior.config.mix_size).astype(np.float32))
    img = np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    res = combiner.api.encode_detailed(img, prior=mixed, **FAST)
    decoded = decoder.decode(res.data, mixed).signal()
    np.testing.assert_array_equal(decoded.values, res.decoded.values)
    # The same indices under the prior without mixing matrices: the same weights, another output.
    header, indices = combiner.bitstream.unpack(res.data)
    plain = dataclasses.replace(header, prior_hash=image_prior.content_hash()[:8])
    unmixed = decoder.decode(combiner.bitstream.pack(plain, indices), image_prior).signal()
    assert np.abs(unmixed.values - decoded.values).max() > 1e-3
    with pytest.raises(ValueError):  # the plain prior's hash differs: refused, not misdecoded
        decoder.decode(res.data, image_prior).signal()


def test_encoding_is_deterministic_on_cpu(image_prior):
    img = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = combiner.encode(img, prior=image_prior, **FAST)
    b = combiner.encode(img, prior=image_prior, **FAST)
    assert a == b


@pytest.mark.parametrize("fitting", [dict(noise="folded", pooled_noise=True),
                                     dict(noise="weights", weight_samples=2, lr_schedule="cosine"),
                                     dict(compile=True)])
def test_every_fitting_mode_codes_deterministically(image_prior, fitting):
    """The fitting options change how the posterior is fitted, never the bitstream's meaning:
    the decoder rebuilds the encoder's weights, and the same call gives the same bytes."""
    if fitting.get("compile") and not codec.compile_pays(torch.device("cpu"), 10**9, 1):
        pytest.skip("no C++ compiler for TorchInductor")
    img = np.random.default_rng(7).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    res = combiner.api.encode_detailed(img, prior=image_prior, **FAST, **fitting)
    assert decoder.decode_weights(res.data, image_prior)[1].tobytes() == res.weights.tobytes()
    assert combiner.encode(img, prior=image_prior, **FAST, **fitting) == res.data
    assert 0.0 <= res.search_seconds <= res.code_seconds


def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A random colour gradient, 16 x 16, on [0, 1]."""
    y, x = np.mgrid[0:16, 0:16] / 15.0
    c = rng.uniform(-1, 1, (3, 3))
    img = 0.5 + 0.2 * (c[:, 0] * x[..., None] + c[:, 1] * y[..., None]) + 0.1 * c[:, 2]
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("refine_noise", [None, "local", "marginal", "weights"])
def test_refinement_steps_draw_the_refine_noise(image_prior, monkeypatch, refine_noise):
    """The fitting steps use `noise`, the refinement steps between coded rounds `refine_noise`
    (or `noise` when it is None), from one pool large enough for both."""
    seen = []
    original = codec.fit
    def recording_fit(*args, **kwargs):
        seen.append((kwargs.get("beta_control", True), kwargs["noise"]))
        return original(*args, **kwargs)
    monkeypatch.setattr(codec, "fit", recording_fit)
    img = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    res = combiner.api.encode_detailed(img, prior=image_prior, **{**FAST, "refine_steps": 2},
                                       noise="folded", refine_noise=refine_noise, pooled_noise=True)
    assert seen[0] == (True, "folded")
    assert len(seen) > 1 and set(seen[1:]) == {(False, refine_noise or "folded")}
    assert decoder.decode_weights(res.data, image_prior)[1].tobytes() == res.weights.tobytes()


def test_a_learned_prior_codes_new_signals_well():
    # Learn a prior from 12 gradients (a few seconds), then code an unseen gradient: the coded
    # sample must be far better than a flat grey guess (measured: about 28 dB vs 18 dB).
    rng = np.random.default_rng(0)
    train = np.stack([smooth_image(rng).reshape(-1, 3) for _ in range(12)])
    prior = combiner.learn_prior(train, modality="image", patch=(16, 16), beta=1e-5, kappa=8,
                                 iterations=3, steps=50, first_steps=150, lr=1e-3, progress=False)
    img = (smooth_image(rng) * 255).astype(np.uint8)
    res = combiner.api.encode_detailed(img, prior=prior, fit_steps=300, refine_steps=2, lr=1e-3,
                                       progress=False)
    grey = combiner.media.psnr(img / 255.0, np.full_like(img, 128) / 255.0)
    assert res.psnr > grey + 6
    assert combiner.decode(res.data, prior=prior).tobytes() == combiner.media.to_output(res.decoded).tobytes()


def test_odd_length_audio_round_trips(audio_prior, tmp_path):
    rate = 16000
    t = np.arange(1001) / rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    res = combiner.api.encode_detailed(wave, prior=audio_prior, sample_rate=rate, **FAST)
    out = combiner.decode(res.data, prior=audio_prior)
    assert out.shape == (1001,) and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0
    assert res.bits_per_unit == pytest.approx(8 * len(res.data) / (1001 / rate) / 1000)
    # Through files too (FLAC in, WAV out).
    src = tmp_path / "clip.flac"
    soundfile.write(src, wave, rate)
    data = combiner.encode(src, prior=audio_prior, **FAST)
    assert combiner.api.info(data)["sample_rate"] == rate


def test_corrupted_file_raises_format_error(image_prior):
    img = np.zeros((16, 16, 3), np.uint8)
    data = bytearray(combiner.encode(img, prior=image_prior, **FAST))
    data[70] ^= 0x10
    with pytest.raises(combiner.FormatError):
        combiner.decode(bytes(data), prior=image_prior)
    with pytest.raises(combiner.FormatError):
        combiner.decode(bytes(data[:-3]), prior=image_prior)


def test_wrong_prior_is_refused(image_prior):
    data = combiner.encode(np.zeros((16, 16, 3), np.uint8), prior=image_prior, **FAST)
    other = tiny_prior("image", (16, 16), "other", kappa=8)
    other.std[0] = 0.2  # different content, so a different hash
    with pytest.raises(combiner.PriorMismatchError, match="tiny-image"):
        combiner.decode(data, prior=other)


def test_unsupported_images_are_refused_clearly(image_prior, tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gray)
    with pytest.raises(ValueError, match="grayscale"):
        combiner.encode(gray, prior=image_prior, **FAST)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(rgba)
    with pytest.raises(ValueError, match="alpha"):
        combiner.encode(rgba, prior=image_prior, **FAST)
    with pytest.raises(ValueError, match="audio"):
        combiner.encode(np.zeros(100, np.float32), prior=image_prior, sample_rate=8000, **FAST)


def test_cli_encode_info_decode(image_prior, tmp_path, capsys):
    prior_path = tmp_path / "prior.safetensors"
    image_prior.save(prior_path)
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(src)
    cmb, out = tmp_path / "x.cmb", tmp_path / "out.png"
    assert cli.main(["encode", str(src), str(cmb), "--prior", str(prior_path), "--steps", "20"]) == 0
    assert "bpp" in capsys.readouterr().out
    assert cli.main(["info", str(cmb)]) == 0
    info = capsys.readouterr().out
    assert "tiny-image" in info and "bitstream v3" in info and "per patch" in info
    assert cli.main(["-q", "decode", str(cmb), str(out), "--prior", str(prior_path)]) == 0
    assert Image.open(out).size == (18, 20)
    spread = tmp_path / "spread.cmb"
    assert cli.main(["-q", "encode", str(src), str(spread), "--prior", str(prior_path), "--steps", "20",
                     "--blocks", "spread"]) == 0
    assert cli.main(["info", str(spread)]) == 0
    info = capsys.readouterr().out
    assert "bitstream v3" in info and "spread across patches" in info
    assert cli.main(["-q", "decode", str(spread), str(out), "--prior", str(prior_path)]) == 0
    assert Image.open(out).size == (18, 20)
    cmb.write_bytes(b"CMB\x01garbage")
    assert cli.main(["decode", str(cmb), str(out), "--prior", str(prior_path)]) == 2
    assert "invalid bitstream" in capsys.readouterr().err


def test_cli_learn_prior_then_code(tmp_path, capsys):
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(4):
        img = (smooth_image(rng) * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
    prior_path = tmp_path / "p.safetensors"
    args = ["-q", "learn-prior", str(folder), "-o", str(prior_path), "--patch", "16", "16",
            "--iterations", "1", "--steps", "5", "--first-steps", "5", "--kappa", "8",
            "--name", "ramps"]
    assert cli.main(args) == 0
    prior = Prior.load(prior_path)
    assert prior.kind.name == "ramps" and prior.kind.patch_shape == (16, 16)
    data = combiner.encode(folder / "0.png", prior=prior_path, **FAST)
    assert combiner.decode(data, prior=prior).shape == (16, 16, 3)
    # Learned for a rate: the partition follows it and the learning records where it got to.
    assert cli.main(args + ["--bits-per-patch", "40"]) == 0
    targeted = Prior.load(prior_path)
    assert targeted.kind.bits_per_patch == 40.0 and targeted.kind.train_bits_per_patch is not None
    assert targeted.kind.beta != 1e-5 and 4 <= targeted.num_blocks <= 6
    # Several folders, crops mirrored at random: learns from both folders' files.
    more = tmp_path / "more"
    more.mkdir()
    Image.fromarray((smooth_image(rng) * 255).astype(np.uint8)).save(more / "m.png")
    assert cli.main(["-q", "learn-prior", str(folder), str(more), *args[3:], "--flips"]) == 0
    assert Prior.load(prior_path).content_hash() != prior.content_hash()
    # Refining: the start's network, patch and mixing matrices, started from its means.
    refined_path = tmp_path / "refined.safetensors"
    assert cli.main(["-q", "learn-prior", str(folder), "-o", str(refined_path), "--start", str(prior_path),
                     "--iterations", "1", "--steps", "3", "--first-steps", "3", "--kappa", "8",
                     "--noise", "folded", "--name", "refined"]) == 0
    start, refined = Prior.load(prior_path), Prior.load(refined_path)
    assert refined.config == start.config and refined.kind.patch_shape == (16, 16)
    assert refined.kind.beta == start.kind.beta and refined.content_hash() != start.content_hash()
    coded = combiner.encode(folder / "0.png", prior=refined_path, **FAST)
    assert combiner.decode(coded, prior=refined).shape == (16, 16, 3)
    # A network or patch other than the start's is refused before any learning; the start's own is accepted.
    other = tmp_path / "other.safetensors"
    refine = ["-q", "learn-prior", str(folder), "-o", str(other), "--start", str(prior_path), "--iterations", "1",
              "--steps", "1", "--first-steps", "1", "--kappa", "8"]
    capsys.readouterr()
    assert cli.main(refine + ["--patch", "32", "32"]) == 1 and not other.exists()
    assert "--patch 32 32 differs from --start's 16 16" in capsys.readouterr().err
    assert cli.main(refine + ["--modality", "audio"]) == 1 and not other.exists()
    assert "--modality audio differs from --start's image" in capsys.readouterr().err
    assert cli.main(refine + ["--patch", "16", "16", "--modality", "image"]) == 0 and other.exists()


def test_signals_with_too_many_weights_are_refused(image_prior, monkeypatch):
    """A header may name any shape: the decoder refuses one whose weights exceed the limit of
    2^27 before allocating for them, and the encoder refuses to write such a stream."""
    img = np.random.default_rng(8).integers(0, 256, (20, 40, 3), dtype=np.uint8)  # 2 x 3 patches
    data = combiner.encode(img, prior=image_prior, **FAST)
    header, indices = combiner.bitstream.unpack(data)
    patches = -(-codec.MAX_SIGNAL_WEIGHTS // image_prior.config.num_params)  # just over the limit
    huge = dataclasses.replace(header, height=16, width=16 * patches)
    with pytest.raises(combiner.errors.InvalidFieldError, match="limit"):
        combiner.decode(combiner.bitstream.pack(huge, indices), prior=image_prior)
    fits = dataclasses.replace(header, height=16, width=16 * (patches - 1))
    with pytest.raises(combiner.errors.PriorMismatchError, match="blocks"):  # passes the limit
        combiner.decode(combiner.bitstream.pack(fits, indices), prior=image_prior)
    monkeypatch.setattr(codec, "MAX_SIGNAL_WEIGHTS", 6 * image_prior.config.num_params - 1)
    with pytest.raises(ValueError, match="limit"):
        combiner.encode(img, prior=image_prior, **FAST)
    monkeypatch.setattr(codec, "MAX_SIGNAL_WEIGHTS", 6 * image_prior.config.num_params)
    assert combiner.decode(data, prior=image_prior).shape == (20, 40, 3)
