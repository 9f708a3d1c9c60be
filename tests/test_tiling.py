import numpy as np
import pytest
import torch

from combiner.tiling import from_patches, patch_coords, patch_grid, to_patches


def test_patch_grid():
    assert patch_grid((33, 47, 3), (16, 16)) == (3, 3)
    assert patch_grid((32, 32), (16, 16)) == (2, 2)
    assert patch_grid((1001,), (100,)) == (11,)
    with pytest.raises(ValueError):
        patch_grid((10, 10), (0, 4))


def test_patch_coords():
    c = patch_coords((3, 4))
    assert c.shape == (12, 2)
    assert c[0].tolist() == [-1.0, -1.0] and c[-1].tolist() == [1.0, 1.0]
    assert c[1].tolist() == pytest.approx([-1.0, -1.0 / 3])  # last axis fastest
    assert patch_coords((1,)).tolist() == [[0.0]]
    assert patch_coords((5,))[:, 0].tolist() == pytest.approx([-1, -0.5, 0, 0.5, 1])


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_image_roundtrip_odd_size(mode):
    rng = np.random.default_rng(0)
    img = rng.random((33, 47, 3)).astype(np.float32)
    vals, w = to_patches(img, (16, 16), pad_mode=mode)
    assert vals.shape == (9, 256, 3) and w.shape == (9, 256)
    assert w.sum() == 33 * 47
    assert np.array_equal(from_patches(vals, img.shape, (16, 16)), img)
    # Patch (r, c) holds pixel (16 r + i, 16 c + j) at point i * 16 + j.
    assert np.array_equal(vals[1 * 3 + 2, 5 * 16 + 7], img[16 + 5, 32 + 7])
    # Validity: last column patch has 47 - 32 = 15 valid columns, last row patch 1 valid row.
    assert w[2].reshape(16, 16)[:, :15].all() and not w[2].reshape(16, 16)[:, 15:].any()
    assert w[6].reshape(16, 16)[0].all() and not w[6].reshape(16, 16)[1:].any()
    # Padding never leaks into valid pixels: values at valid points equal the image.
    assert np.all(vals[w > 0].size == w.sum() * 3)


def test_image_roundtrip_torch_and_gray():
    img = torch.rand(20, 9)
    vals, w = to_patches(img, (8, 8))
    assert isinstance(vals, torch.Tensor) and vals.shape == (6, 64, 1)
    assert torch.equal(from_patches(vals, img.shape, (8, 8)), img)


def test_audio_roundtrip_odd_length():
    rng = np.random.default_rng(1)
    x = rng.random(1001).astype(np.float32)
    vals, w = to_patches(x, (100,))
    assert vals.shape == (11, 100, 1) and w.sum() == 1001
    assert np.array_equal(from_patches(vals, x.shape, (100,)), x)
    assert np.array_equal(vals[3, :, 0], x[300:400])
    st = rng.random((37, 2)).astype(np.float32)
    v2, _ = to_patches(st, (16,))
    assert np.array_equal(from_patches(v2, st.shape, (16,)), st)


def test_reflect_padding_content():
    x = np.arange(5, dtype=np.float32)
    vals, w = to_patches(x, (4,))
    assert vals[1, :, 0].tolist() == [4, 3, 2, 1]  # reflected, not zeros
    assert w[1].tolist() == [1, 0, 0, 0]
    tiny = np.ones((1, 3), dtype=np.float32)  # reflect impossible on a 1-pixel axis -> edge
    v, w = to_patches(tiny, (4, 4))
    assert np.all(v == 1) and w.sum() == 3


def test_bad_inputs():
    with pytest.raises(ValueError):
        to_patches(np.zeros((4, 4, 3, 2)), (2, 2))
    with pytest.raises(ValueError):
        from_patches(np.zeros((5, 4, 3)), (4, 4, 3), (2, 2))
    with pytest.raises(ValueError):
        to_patches(np.zeros((4, 4)), (2, 2), pad_mode="wrap")
