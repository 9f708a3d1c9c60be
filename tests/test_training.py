"""Training patches: random crops from one or several folders, optionally mirrored."""

import numpy as np
import pytest
from PIL import Image

from combiner import training


def _images(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"p{k}.png")


def test_flips_mirror_some_crops_and_keep_their_positions(tmp_path):
    _images(tmp_path / "a", 4, 0)
    files = training.list_files(tmp_path / "a", "image")
    plain = training.random_patches(files, (16, 16), 8, seed=3)
    flipped = training.random_patches(files, (16, 16), 8, seed=3, flips=True)
    assert plain.shape == flipped.shape == (32, 256, 3) and flipped.dtype == np.float32
    as_crops = lambda x: x.reshape(-1, 16, 16, 3)  # noqa: E731
    mirrored = [not np.array_equal(p, f) for p, f in zip(as_crops(plain), as_crops(flipped))]
    assert 0 < sum(mirrored) < len(mirrored)  # about half of 32, never none or all
    for p, f, m in zip(as_crops(plain), as_crops(flipped), mirrored):
        np.testing.assert_array_equal(f, p[:, ::-1] if m else p)


def test_flips_leave_audio_alone(tmp_path):
    import soundfile as sf

    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips" / "c.flac", np.linspace(-0.5, 0.5, 1000).astype(np.float32), 16000)
    files = training.list_files(tmp_path / "clips", "audio")
    np.testing.assert_array_equal(training.random_patches(files, (100,), 5, seed=1, flips=True),
                                  training.random_patches(files, (100,), 5, seed=1))


def test_learning_from_several_folders_reads_them_in_order(tmp_path, monkeypatch):
    from combiner import api

    _images(tmp_path / "a", 2, 0)
    _images(tmp_path / "b", 3, 1)
    seen = {}

    def fake_learn(patches, **kwargs):
        seen["patches"] = patches
        return "prior"

    monkeypatch.setattr(api, "learn_prior", fake_learn)
    api.learn_prior_from_folder([tmp_path / "a", tmp_path / "b"], modality="image", patch=(8, 8), per_file=1)
    files = training.list_files(tmp_path / "a", "image") + training.list_files(tmp_path / "b", "image")
    np.testing.assert_array_equal(seen["patches"], training.random_patches(files, (8, 8), 1, seed=0))
    api.learn_prior_from_folder([tmp_path / "a", tmp_path / "b"], modality="image", patch=(8, 8), per_file=1,
                                max_files=3)
    assert seen["patches"].shape[0] == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        api.learn_prior_from_folder([tmp_path / "a", tmp_path / "empty"], modality="image", patch=(8, 8))
