"""The prior-training script's plumbing: recipes, level selection and per-round checkpoints."""


import numpy as np
import pytest
from PIL import Image

from combiner.prior import Prior


def test_checkpoints_are_the_shorter_runs(train_priors, tmp_path):
    """With --checkpoint every round leaves NAME.roundNNN.safetensors; the last equals the final
    file, and the one after round 1 equals a run with --iterations 1."""
    folder = tmp_path / "data" / "train_photos"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (70, 80, 3), dtype=np.uint8)).save(folder / f"p{k}.png")
    tiny = dict(steps=2, first_steps=2, per_file=1, refine=None)  # the first stage's rounds
    rows = train_priors.train("photo", tmp_path / "a", tmp_path / "data", "cpu",
                              {**tiny, "iterations": 2}, levels=[1], checkpoint=True)
    assert [r["prior"] for r in rows] == ["photo-q1"]
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["photo-q1.round001.safetensors", "photo-q1.round002.safetensors", "photo-q1.safetensors"]
    final = Prior.load(tmp_path / "a" / "photo-q1.safetensors")
    assert Prior.load(tmp_path / "a" / "photo-q1.round002.safetensors").content_hash() == final.content_hash()
    assert final.mix is not None  # the photo recipe learns mixing matrices
    train_priors.train("photo", tmp_path / "b", tmp_path / "data", "cpu", {**tiny, "iterations": 1}, levels=[1])
    assert (Prior.load(tmp_path / "b" / "photo-q1.safetensors").content_hash()
            == Prior.load(tmp_path / "a" / "photo-q1.round001.safetensors").content_hash())
    with pytest.raises(SystemExit):
        train_priors.train("photo", tmp_path / "c", tmp_path / "data", "cpu", tiny, levels=[7])


def test_thumbnail_recipe_learns_each_level_at_its_rate(train_priors, tmp_path):
    """thumbnail learns only the asked level, at its rate, with mixing matrices; switched back to
    one prior for all levels, --levels is refused."""
    folder = tmp_path / "data" / "cifar10" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{k:05d}.png")
    tiny = dict(iterations=1, steps=2, first_steps=2)
    rows = train_priors.train("thumbnail", tmp_path / "a", tmp_path / "data", "cpu", tiny, levels=[2])
    assert [r["prior"] for r in rows] == ["thumbnail-q2"]
    prior = Prior.load(tmp_path / "a" / "thumbnail-q2.safetensors")
    assert prior.kind.train_bits_per_patch is not None and prior.kind.bits_per_patch == 1800.0
    assert prior.mix is not None
    with pytest.raises(SystemExit):
        train_priors.train("thumbnail", tmp_path / "b", tmp_path / "data", "cpu",
                           {**tiny, "rate_targeted": False}, levels=[2])


def test_speech_recipe_learns_800_sample_chunks_at_each_level_and_takes_overrides(train_priors, tmp_path):
    """speech: 0.05 s chunks with the audio800 network, one prior per level at its rate, with
    mixing matrices, from the recipe's own starting beta; --patch, --bits and --config replace
    the recipe's for experiments."""
    import soundfile as sf

    from combiner.api import CONFIGS

    folder = tmp_path / "data" / "audio" / "librispeech_train-clean-100"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for k in range(2):
        sf.write(folder / f"{k}.flac", (0.1 * rng.standard_normal(2000)).astype(np.float32), 16000)
    tiny = dict(iterations=1, steps=2, first_steps=2, per_file=2)
    train_priors.train("speech", tmp_path / "a", tmp_path / "data", "cpu", tiny, levels=[1])
    prior = Prior.load(tmp_path / "a" / "speech-q1.safetensors")
    assert prior.kind.patch_shape == (800,) and prior.kind.bits_per_patch == 600.0
    assert prior.mix is not None and prior.kind.train_bits_per_patch is not None
    assert prior.config.num_freqs == CONFIGS["audio800"]["num_freqs"]
    assert prior.config.max_freq == CONFIGS["audio800"]["max_freq"]
    train_priors.train("speech", tmp_path / "b", tmp_path / "data", "cpu",
                       {**tiny, "patch": (400,), "bits_per_patch": [100.0, 200.0], "config": "audio"}, levels=[0])
    other = Prior.load(tmp_path / "b" / "speech-q0.safetensors")
    assert other.kind.patch_shape == (400,) and other.kind.bits_per_patch == 100.0
    assert other.config.num_freqs == CONFIGS["audio"]["num_freqs"]


def test_a_refinement_stage_refines_each_level_and_can_start_from_given_bases(train_priors, tmp_path):
    """photo's refinement stage: learning then refining equals refining the first stage's file
    given with --base; the refined prior keeps the base's name and mixing matrices. --base is
    refused for a recipe without the stage and for the wrong level."""
    from combiner.families import Refinement

    folder = tmp_path / "data" / "train_photos"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (70, 80, 3), dtype=np.uint8)).save(folder / f"p{k}.png")
    tiny = dict(iterations=1, steps=2, first_steps=2, per_file=1)
    stage = Refinement(iterations=2, steps=2, lr=2e-3, noise="folded")
    data = tmp_path / "data"
    train_priors.train("photo", tmp_path / "base", data, "cpu", {**tiny, "refine": None}, levels=[2])
    base_file = tmp_path / "base" / "photo-q2.safetensors"
    train_priors.train("photo", tmp_path / "both", data, "cpu", {**tiny, "refine": stage}, levels=[2],
                       checkpoint=True)
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == [
        "photo-q2.refine001.safetensors", "photo-q2.refine002.safetensors", "photo-q2.round001.safetensors",
        "photo-q2.safetensors"]
    train_priors.train("photo", tmp_path / "given", data, "cpu", {**tiny, "refine": stage}, levels=[2],
                       bases=[base_file])
    base, both, given = (Prior.load(tmp_path / d / "photo-q2.safetensors") for d in ("base", "both", "given"))
    assert both.content_hash() == given.content_hash() != base.content_hash()
    assert Prior.load(tmp_path / "both" / "photo-q2.refine002.safetensors").content_hash() == both.content_hash()
    assert Prior.load(tmp_path / "both" / "photo-q2.round001.safetensors").content_hash() == base.content_hash()
    assert given.kind.name == "photo-q2"
    np.testing.assert_array_equal(given.mix, base.mix)
    with pytest.raises(SystemExit):
        train_priors.train("photo", tmp_path / "x", data, "cpu", {**tiny, "refine": stage}, levels=[1],
                           bases=[base_file])
    with pytest.raises(SystemExit):
        train_priors.train("photo", tmp_path / "y", data, "cpu", {**tiny, "refine": None}, levels=[2],
                           bases=[base_file])
