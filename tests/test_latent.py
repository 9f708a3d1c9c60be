"""Latent positional features: per-patch latent grids coded with the weights (see combiner.inr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import combiner
from combiner.inr import (
    BayesianINR,
    INRConfig,
    init_bounds,
    latent_features,
    network_forward,
    siren_init,
)
from combiner.prior import Prior
from combiner.prior_learning import initial_prior, make_partition
from combiner.tiling import patch_coords

torch.set_num_threads(1)

IMAGE = INRConfig(in_dim=2, out_dim=3, num_freqs=4, max_freq=8.0, width=8, depth=2, latent_grid=3,
                  latent_channels=2)
AUDIO = INRConfig(in_dim=1, out_dim=1, num_freqs=4, max_freq=8.0, width=8, depth=2, latent_grid=5,
                  latent_channels=2)
FAST = dict(fit_steps=40, refine_steps=2, lr=1e-3, progress=False)


def test_latents_follow_the_weights_in_the_flat_layout():
    plain = INRConfig(in_dim=2, out_dim=3, num_freqs=4, max_freq=8.0, width=8, depth=2)
    assert IMAGE.layer_shapes[0] == (plain.feature_dim + 2, 8)  # latents widen the first layer only
    assert IMAGE.layer_shapes[1:] == plain.layer_shapes[1:]
    assert IMAGE.latent_shape == (2, 3, 3) and AUDIO.latent_shape == (2, 5)
    assert IMAGE.num_params == IMAGE.num_weights + 18
    bounds = init_bounds(IMAGE)
    assert bounds.shape == (IMAGE.num_params,)
    assert torch.all(bounds[IMAGE.num_weights:] == 1.0 / IMAGE.w0)  # w0 * z starts on [-1, 1]
    assert bounds[0] == 1.0 / (plain.feature_dim + 2)


def test_config_without_latents_serialises_as_before():
    plain = INRConfig(width=8, depth=2)
    assert "latent_grid" not in plain.to_dict()  # so the shipped priors keep their hashes
    assert INRConfig.from_dict(plain.to_dict()) == plain
    assert INRConfig.from_dict(IMAGE.to_dict()) == IMAGE
    for bad in ({"latent_grid": 3}, {"latent_channels": 2}, {"latent_grid": 1, "latent_channels": 2},
                {"latent_grid": -2, "latent_channels": 2}, {"latent_grid": True, "latent_channels": 2},
                {"in_dim": 3, "latent_grid": 3, "latent_channels": 2}):
        with pytest.raises(ValueError):
            INRConfig(**bad)


def test_interpolation_hits_the_grid_points_and_is_linear_between():
    flat = siren_init(IMAGE, 2, torch.Generator().manual_seed(0))
    z = IMAGE.w0 * flat[:, IMAGE.num_weights:].reshape(2, 2, 3, 3)  # the gain w0 (see latent_features)
    coords = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [-0.5, 0.0]])
    got = latent_features(IMAGE, coords, flat)  # [P, N, C]
    torch.testing.assert_close(got[:, 0], z[:, :, 0, 0])
    torch.testing.assert_close(got[:, 1], z[:, :, 0, 2])  # (row -1, column +1): top right
    torch.testing.assert_close(got[:, 2], z[:, :, 2, 1])
    torch.testing.assert_close(got[:, 3], z[:, :, 1, 1])
    torch.testing.assert_close(got[:, 4], 0.5 * (z[:, :, 0, 1] + z[:, :, 1, 1]))
    flat_a = siren_init(AUDIO, 1, torch.Generator().manual_seed(1))
    za = AUDIO.w0 * flat_a[:, AUDIO.num_weights:].reshape(1, 2, 5)
    got_a = latent_features(AUDIO, torch.tensor([[-1.0], [0.5], [0.25]]), flat_a)  # points every 0.5
    torch.testing.assert_close(got_a[:, 0], za[:, :, 0])
    torch.testing.assert_close(got_a[:, 1], za[:, :, 3])
    torch.testing.assert_close(got_a[:, 2], 0.5 * (za[:, :, 2] + za[:, :, 3]))


def test_stochastic_forward_draws_the_latents_it_is_given():
    """With (almost) zero posterior std the sampled network is the mean network, latents included;
    with a wide latent std it is not, so the latents are really drawn."""
    model = BayesianINR(IMAGE, 3, generator=torch.Generator().manual_seed(2), rho_init=-40.0)
    coords = patch_coords((6, 6))
    mean_out = model.forward_mean(coords)
    torch.testing.assert_close(model(coords, generator=torch.Generator().manual_seed(3)), mean_out)
    torch.testing.assert_close(mean_out, network_forward(IMAGE, coords, model.freqs, model.mu.detach()))
    with torch.no_grad():
        model.rho[:, IMAGE.num_weights:] = 0.0  # latents only: std softplus(0) = 0.69
    noisy = model(coords, generator=torch.Generator().manual_seed(3))
    assert (noisy - mean_out).abs().max() > 1e-3


def _prior(config: INRConfig, modality: str, patch: tuple[int, ...], name: str) -> Prior:
    mean = siren_init(config, 1, torch.Generator().manual_seed(0))[0].numpy()
    std = initial_prior(config)[1]
    block_index = make_partition(np.full(config.num_params, 0.25), kappa=8, max_block_size=25, seed=1)
    kind = {"modality": modality, "patch_shape": list(patch), "name": name, "beta": 1e-4}
    return Prior(config, mean, std, block_index, kappa=8, seed=0, kind=kind)


def test_a_prior_with_latents_keeps_them_in_its_file_but_cannot_code(tmp_path):
    """Latent grids are not part of the bitstream format (docs/format.md section 7.2): such a
    prior saves and loads, and the encoder refuses it before fitting, as the decoder would."""
    prior = _prior(IMAGE, "image", (8, 8), "tiny-latent")
    prior.save(tmp_path / "p.safetensors")
    loaded = Prior.load(tmp_path / "p.safetensors")
    assert loaded.config == IMAGE and loaded.content_hash() == prior.content_hash()
    img = np.random.default_rng(4).integers(0, 256, (11, 13, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="latent"):
        combiner.api.encode_detailed(img, prior=loaded, **FAST)
    with pytest.raises(combiner.PriorFormatError, match="latent"):
        combiner._core.prior_content_hash(loaded.to_bytes())
