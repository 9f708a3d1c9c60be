"""Encoder settings stored in the prior file (metadata `encoder`, not hashed), and the one
resolver that every entry point (API, CLI, eval) uses."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import save

import spec_decoder
from combiner import _core, codec, evaluate, families, quality, registry
from combiner.errors import PriorFormatError
from combiner.media import Signal
from combiner.options import EncodeOptions, EncoderSettings
from combiner.prior import Prior, _read_metadata
from test_codec import tiny_prior
from test_quality import smooth_image

torch.set_num_threads(1)

CUSTOM = EncoderSettings(fit_steps=7, refine_steps=0, max_refine_steps=3, lr=0.01, pixel_fraction=0.5,
                         spread_blocks=True, beta=2e-6, target_bits=12.5, control_every=3, init_std_ratio=0.25,
                         noise="weights", refine_noise="local", weight_samples=2, pooled_noise=True)


def _hashes(data: bytes) -> set[bytes]:
    """The content hash of a prior file by the three readers: this package, Rust, the spec's."""
    return {Prior.from_bytes(data).content_hash(), _core.prior_content_hash(data),
            spec_decoder.content_hash(data)}


def test_settings_round_trip_through_the_file_and_stay_out_of_the_hash(tmp_path):
    bare = tiny_prior("image", (16, 16), "tiny")
    assert bare.encoder is None and "encoder" not in bare.to_bytes().decode("latin-1")
    stored = dataclasses.replace(bare, encoder=CUSTOM)
    stored.save(tmp_path / "p.safetensors")
    loaded = Prior.load(tmp_path / "p.safetensors")
    assert loaded.encoder == CUSTOM
    assert Prior.from_bytes(bare.to_bytes()).encoder is None
    assert _hashes(stored.to_bytes()) == _hashes(bare.to_bytes()) == {bare.content_hash()}
    # An EncodeOptions keeps only its recipe; what is written is canonical JSON.
    options = dataclasses.replace(bare, encoder=CUSTOM.options(seed=5, progress=False))
    assert options.encoder == CUSTOM and type(options.encoder) is EncoderSettings
    header = _read_metadata(options.to_bytes())
    assert header["encoder"] == json.dumps(CUSTOM.to_dict(), sort_keys=True, separators=(",", ":"))
    assert set(json.loads(header["encoder"])) == {f.name for f in dataclasses.fields(EncoderSettings)}
    # A bound that is not set is not written: files from before the field keep their bytes.
    unbounded = dataclasses.replace(bare, encoder=dataclasses.replace(CUSTOM, max_refine_steps=None))
    assert "max_refine_steps" not in _read_metadata(unbounded.to_bytes())["encoder"]
    assert Prior.from_bytes(unbounded.to_bytes()).encoder == unbounded.encoder


@pytest.mark.parametrize("text", [
    "{", "[1]", "null", '"fast"',
    '{"fit_steps":-1}', '{"fit_steps":1.5}', '{"fit_steps":true}', '{"fit_steps":"10"}',
    '{"fit_steps":10000000}', '{"refine_steps":-2}', '{"control_every":0}',
    '{"lr":0}', '{"lr":-1e-3}', '{"lr":NaN}', '{"lr":Infinity}', '{"lr":"0.001"}',
    '{"pixel_fraction":0}', '{"pixel_fraction":1.5}', '{"init_std_ratio":0}',
    '{"beta":0}', '{"target_bits":-1}', '{"target_bits":100}',
    '{"spread_blocks":1}', '{"spread_blocks":"true"}', '{"noise":"flipout"}', '{"noise":1}',
    '{"weight_samples":0}', '{"pooled_noise":"yes"}', '{"compile":true}', '{"refine_noise":"exact"}',
    '{"seed":3}', '{"device":"cpu"}', '{"progress":false}', '{"steps":3}',
    '{"max_refine_steps":-1}', '{"max_refine_steps":2.5}', '{"max_refine_steps":false}',
])
def test_invalid_settings_are_refused_but_decoders_ignore_them(text):
    bare = tiny_prior("image", (16, 16), "tiny")
    data = save({"mean": bare.mean, "std": bare.std, "block_index": bare.block_index},
                metadata={**bare._metadata(), "encoder": text})
    with pytest.raises(PriorFormatError, match="encoder settings"):
        Prior.from_bytes(data)
    # Not hashed and not read by decoders: the Rust and the spec's reader take the file as is.
    assert _core.prior_content_hash(data) == spec_decoder.content_hash(data) == bare.content_hash()


def test_partial_settings_take_the_defaults_for_the_rest():
    bare = tiny_prior("image", (16, 16), "tiny")
    data = save({"mean": bare.mean, "std": bare.std, "block_index": bare.block_index},
                metadata={**bare._metadata(), "encoder": '{"lr":2e-3,"fit_steps":300}'})
    assert Prior.from_bytes(data).encoder == EncoderSettings(fit_steps=300, lr=2e-3)


def test_options_are_checked_when_built():
    for bad in (dict(fit_steps=-1), dict(lr=0.0), dict(spread_blocks=1), dict(pixel_fraction=2.0),
                dict(search="tpu"), dict(seed=-1), dict(progress="yes"), dict(device=0),
                dict(noise="flipout"), dict(weight_samples=0), dict(pooled_noise=1), dict(compile="auto"),
                dict(refine_noise="exact"), dict(refine_noise=0)):
        with pytest.raises(ValueError):
            EncodeOptions(**bad)
    assert EncodeOptions(fit_steps=np.int64(5), lr=1).lr == 1.0  # integers where numbers are due
    with pytest.raises(ValueError, match="unknown encoder settings"):
        EncoderSettings.from_dict({"fit_steps": 3, "seed": 1})


def test_max_refine_steps_bounds_the_refinement_of_all_rounds():
    plain = EncoderSettings(refine_steps=10)
    assert [plain.refine_steps_per_round(r) for r in (1, 41, 275)] == [10, 10, 10]
    bounded = EncoderSettings(refine_steps=10, max_refine_steps=1700)
    # 40 and 163 refinements fit under the bound at 10 steps; 274 take 6 (1,644 steps).
    assert [bounded.refine_steps_per_round(r) for r in (1, 41, 164, 275)] == [10, 10, 10, 6]
    assert EncoderSettings(refine_steps=10, max_refine_steps=5).refine_steps_per_round(100) == 1
    assert EncoderSettings(refine_steps=0, max_refine_steps=5).refine_steps_per_round(100) == 0


def test_an_explicit_refine_steps_is_run_in_every_round():
    prior = dataclasses.replace(tiny_prior("image", (16, 16), "tiny"),
                                encoder=EncoderSettings(refine_steps=10, max_refine_steps=100))
    signal = Signal("image", smooth_image(20, 24).astype(np.float32) / 255)
    _, stored = quality.resolve(signal, prior=prior)
    assert stored.max_refine_steps == 100
    _, asked = quality.resolve(signal, prior=prior, overrides=dict(refine_steps=4))
    assert (asked.refine_steps, asked.max_refine_steps) == (4, None)
    _, both = quality.resolve(signal, prior=prior, overrides=dict(refine_steps=4, max_refine_steps=50))
    assert (both.refine_steps, both.max_refine_steps) == (4, 50)
    gpu = quality.budget_settings(prior.encoder, "gpu")
    scale = quality.BUDGETS["gpu"].refine_scale
    assert (gpu.refine_steps, gpu.max_refine_steps) == (10 * scale, 100 * scale)


def test_the_encoder_refines_each_round_as_the_bound_allows(monkeypatch):
    prior = tiny_prior("image", (16, 16), "tiny")
    signal = Signal("image", smooth_image(16, 16).astype(np.float32) / 255)
    rounds = len(codec.blocks.layout(prior, 1, False, 0).rounds)
    assert rounds >= 3
    real_fit, calls = codec.fit, []

    def counting_fit(*args, steps: int, **kwargs):
        calls.append(steps)
        return real_fit(*args, steps=steps, **kwargs)

    monkeypatch.setattr(codec, "fit", counting_fit)
    opts = EncodeOptions(fit_steps=2, refine_steps=5, max_refine_steps=rounds - 1, progress=False,
                         compile=False)
    codec.encode_signal(signal, prior, opts)
    assert calls == [2] + [1] * (rounds - 1)  # the fit, then one step after every round but the last


def test_shipped_priors_keep_their_hashes_with_the_settings():
    """The settings were written into files whose bitstreams exist: the names in tests/data
    carry the first hex digits of the content hash they were coded with."""
    photo_q1 = registry.load_shipped("photo-q1")
    assert photo_q1.encoder == families.FAMILIES["photo"].encoder
    assert photo_q1.content_hash().hex().startswith("7fc5532d")
    assert registry.load_shipped("speech-q1").content_hash().hex().startswith("a2915477")


def test_a_prior_object_or_file_carries_its_settings_into_the_encode(tmp_path):
    prior = dataclasses.replace(tiny_prior("image", (16, 16), "tiny"), encoder=CUSTOM)
    prior.save(tmp_path / "p.safetensors")
    signal = Signal("image", smooth_image(20, 24).astype(np.float32) / 255)
    for given in (prior, tmp_path / "p.safetensors", str(tmp_path / "p.safetensors")):
        _, options = quality.resolve(signal, prior=given, overrides=dict(progress=False))
        assert EncoderSettings.of(options) == CUSTOM and not options.progress
    with pytest.raises(ValueError, match="either a prior or a quality"):
        quality.resolve(signal, prior=prior, quality=1)


def test_initial_model_starts_at_the_prior_without_a_random_draw(monkeypatch):
    import combiner.inr

    prior = tiny_prior("image", (16, 16), "tiny")
    monkeypatch.setattr(combiner.inr, "siren_init", lambda *a, **k: pytest.fail("drew an init"))
    model = codec.initial_model(prior, 3, EncodeOptions(init_std_ratio=0.5), "cpu")
    mu, sigma = model.posterior()
    assert mu.shape == (3, prior.config.num_params)
    assert torch.equal(mu, torch.from_numpy(prior.mean).expand(3, -1))
    np.testing.assert_allclose(sigma.detach().numpy(), np.broadcast_to(prior.std * 0.5, (3, prior.mean.size)),
                               rtol=1e-5)


@pytest.fixture
def photo_items(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, shape in enumerate([(80, 96), (70, 70), (32, 32)]):  # photo, photo, thumbnail
        Image.fromarray(smooth_image(*shape, seed=i)).save(folder / f"p{i}.png")
    return evaluate.load_items(folder)


@pytest.mark.parametrize("level", [1, "photo-q2"])
def test_eval_encodes_with_the_resolver(photo_items, monkeypatch, level):
    calls = []

    def spy(signal, **kwargs):
        calls.append(kwargs)
        return resolve(signal, **kwargs)

    resolve = quality.resolve
    monkeypatch.setattr(quality, "resolve", spy)
    overrides = dict(fit_steps=3, spread_blocks=False)
    batches = list(evaluate._batches(photo_items, level, overrides, frozenset(), 512))
    assert calls and all(c["overrides"] == overrides for c in calls)
    by_item = {it.name: (prior, options) for prior, options, batch in batches for it in batch}
    assert sorted(by_item) == ["p0", "p1", "p2"]
    for it in photo_items:
        choice = dict(quality=level) if isinstance(level, int) else dict(prior=level)
        prior, options = resolve(it.signal, **choice, overrides=overrides)
        assert by_item[it.name][0].content_hash() == prior.content_hash()
        assert by_item[it.name][1] == options


def test_training_writes_the_family_settings(train_priors, tmp_path):
    folder = tmp_path / "data" / "cifar10" / "train"
    folder.mkdir(parents=True)
    for k in range(2):
        Image.fromarray(smooth_image(32, 32, seed=k)).save(folder / f"{k:05d}.png")
    tiny = dict(iterations=1, steps=2, first_steps=2)
    train_priors.train("thumbnail", tmp_path / "a", tmp_path / "data", "cpu", tiny, levels=[0], checkpoint=True)
    for name in ("thumbnail-q0", "thumbnail-q0.round001"):
        assert Prior.load(tmp_path / "a" / f"{name}.safetensors").encoder == families.FAMILIES["thumbnail"].encoder


def test_settings_only_rewrites_the_settings_and_keeps_the_hashes(train_priors, tmp_path):
    for name in families.FAMILIES["speech"].levels:
        prior = registry.load_shipped(name)
        prior.encoder = None
        prior.save(tmp_path / f"{name}.safetensors")
    train_priors.write_settings("speech", tmp_path)
    for name in families.FAMILIES["speech"].levels:
        rewritten = Prior.load(tmp_path / f"{name}.safetensors")
        assert rewritten.encoder == families.FAMILIES["speech"].encoder
        assert rewritten.content_hash() == registry.load_shipped(name).content_hash()
