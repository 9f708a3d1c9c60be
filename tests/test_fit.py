import numpy as np
import pytest
import torch

from combiner.fit import (
    _PointSubsets,
    beta_elbo,
    block_kl,
    compile_pays,
    compiled_elbo,
    evaluate,
    fit,
    make_pool,
    pick_device,
    weighted_mse,
)
from combiner.inr import BayesianINR, INRConfig, fourier_features
from combiner.tiling import patch_coords, to_patches

# Tiny problems: one intra-op thread is far faster than two (and immune to a busy neighbour
# process making OpenMP workers spin); also keeps timings of the test suite stable.
torch.set_num_threads(1)

TINY = INRConfig(in_dim=2, out_dim=3, num_freqs=4, max_freq=8.0, width=12, depth=2)


def smooth_image(h=16, w=16, seed=0):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 8.0
    img = np.stack([0.5 + 0.3 * np.sin(xx * g.uniform(1, 3) + yy * g.uniform(0, 2) + c) for c in range(3)], -1)
    return img.astype(np.float32)


def setup(P=2, seed=0, rho=-6.0):
    imgs = np.concatenate([smooth_image(seed=s)[None] for s in range(P)])
    vals = torch.from_numpy(imgs.reshape(P, 256, 3))
    model = BayesianINR(TINY, P, rho_init=rho, generator=torch.Generator().manual_seed(seed))
    D = TINY.num_params
    prior = (torch.zeros(D), torch.full((D,), 0.05))
    return model, patch_coords((16, 16)), vals, prior


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cpu", "cuda")


def test_block_kl_and_weighted_mse():
    kl = torch.arange(12.0).reshape(2, 6)
    idx = torch.tensor([0, 1, 0, 2, 1, 0])
    torch.testing.assert_close(block_kl(kl, idx, 3), torch.tensor([[0 + 2 + 5.0, 1 + 4, 3], [6 + 8 + 11.0, 7 + 10, 9]]))
    pred, tgt = torch.zeros(1, 3, 2), torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]])
    w = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(weighted_mse(pred, tgt, w), torch.tensor([2.5]))


def test_fit_reduces_loss():
    model, coords, vals, prior = setup()
    D = TINY.num_params
    blocks = torch.zeros(D, dtype=torch.long)
    before = evaluate(model, coords, vals, prior)["mse"]
    fit(model, coords, vals, prior, blocks, steps=300, lr=3e-3, beta=1e-7, beta_control=False)
    after = evaluate(model, coords, vals, prior)["mse"]
    assert torch.all(after < 0.2 * before), (before, after)


def test_fit_deterministic_cpu():
    outs = []
    for _ in range(2):
        model, coords, vals, prior = setup(seed=3)
        blocks = torch.arange(TINY.num_params) % 5
        beta = fit(model, coords, vals, prior, blocks, steps=60, lr=1e-3, beta=1e-5, control_every=5,
                   pixel_fraction=0.5, seed=11)
        outs.append((model.mu.detach().clone(), model.rho.detach().clone(), beta))
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    model, coords, vals, prior = setup(seed=3)
    fit(model, coords, vals, prior, torch.arange(TINY.num_params) % 5, steps=60, lr=1e-3, beta=1e-5,
        control_every=5, pixel_fraction=0.5, seed=12)
    assert not torch.equal(model.mu.detach(), outs[0][0])


def test_beta_control_moves_block_kl_toward_target():
    # Many small blocks, a beta far too small: KL per block starts far above target; control
    # raises beta until KL comes down into (or near) the band.
    model, coords, vals, prior = setup(P=1, rho=-8.0)
    D = TINY.num_params
    J = 8
    blocks = torch.arange(D) % J
    kl0 = evaluate(model, coords, vals, prior, blocks)["kl_bits_blocks"]
    target = float(kl0.mean()) * 0.3
    beta = fit(model, coords, vals, prior, blocks, steps=1500, lr=1e-2, beta=1e-6, kappa_bits=target + 0.5,
               control_every=10)
    kl1 = evaluate(model, coords, vals, prior, blocks)["kl_bits_blocks"]
    assert torch.all(beta > 1e-6)  # every block's beta went up
    assert torch.all((kl1 - target).abs() < 0.5 * (kl0 - target).abs())
    assert float((kl1 - target).abs().max()) < 0.1 * target


def test_beta_control_leaves_fully_fixed_blocks_alone():
    model, coords, vals, prior = setup(P=2)
    D = TINY.num_params
    blocks = torch.arange(D) % 4
    mask = torch.zeros(2, D, dtype=torch.bool)
    mask[:, blocks == 1] = True
    beta = fit(model, coords, vals, prior, blocks, steps=40, lr=1e-3, beta=1e-4, kappa_bits=1000.0,
               control_every=1, fixed_mask=mask, fixed_values=model.mu.detach().clone())
    assert torch.all(beta[:, 1] == 1e-4)
    assert torch.all(beta[:, [0, 2, 3]] < 1e-4)  # KL below a 1000-bit target: beta shrinks
    ev = evaluate(model, coords, vals, prior, blocks)
    assert torch.all(ev["kl_bits_blocks"][:, 1] == 0)


@pytest.mark.parametrize("pixel_fraction", [1.0, 0.5])
def test_fit_honours_validity_weights(pixel_fraction):
    # Padded points with garbage targets must not affect the fit, also on subsets of the points.
    img = smooth_image(10, 13)
    vals, w = (torch.from_numpy(a) for a in to_patches(img, (16, 16)))
    garbage = vals.clone()
    garbage[w == 0] = 7.0
    res = []
    for t in (vals, garbage):
        model = BayesianINR(TINY, 1, rho_init=-6.0, generator=torch.Generator().manual_seed(0))
        prior = (torch.zeros(TINY.num_params), torch.full((TINY.num_params,), 0.05))
        fit(model, patch_coords((16, 16)), t, prior, torch.zeros(TINY.num_params, dtype=torch.long), steps=30,
            lr=1e-3, beta=1e-7, beta_control=False, weights=w, pixel_fraction=pixel_fraction)
        res.append(model.mu.detach().clone())
    assert torch.equal(res[0], res[1])


def test_point_subsets_match_indexing_along_the_points():
    g = torch.Generator().manual_seed(0)
    targets, weights = torch.rand(5, 40, 3, generator=g), torch.rand(5, 40, generator=g)
    idx = torch.randperm(40, generator=g)[:13]
    t, w = _PointSubsets(targets, weights).take(idx)
    assert torch.equal(t, targets[:, idx]) and t.is_contiguous()
    assert w is not None and torch.equal(w, weights[:, idx])
    assert _PointSubsets(targets, None).take(idx)[1] is None


def test_fit_rejects_bad_shapes():
    model, coords, vals, prior = setup()
    with pytest.raises(ValueError):
        fit(model, coords, vals[:, :10], prior, torch.zeros(TINY.num_params, dtype=torch.long), steps=1, lr=1e-3,
            beta=1.0)
    with pytest.raises(ValueError):
        fit(model, coords, vals, prior, torch.zeros(5, dtype=torch.long), steps=1, lr=1e-3, beta=1.0)


def test_weight_noise_and_pooled_noise_fit_too():
    for kwargs in (dict(noise="weights", weight_samples=4), dict(pool=None)):
        model, coords, vals, prior = setup()
        if "pool" in kwargs:
            kwargs = dict(pool=make_pool(model, 256))
        blocks = torch.zeros(TINY.num_params, dtype=torch.long)
        before = evaluate(model, coords, vals, prior)["mse"]
        fit(model, coords, vals, prior, blocks, steps=300, lr=3e-3, beta=1e-7, beta_control=False, **kwargs)
        after = evaluate(model, coords, vals, prior)["mse"]
        assert torch.all(after < 0.2 * before), (kwargs, before, after)


def test_a_pool_for_several_noise_modes_fits_the_largest():
    model, _, _, _ = setup()
    P, D = model.mu.shape
    width = max(o for _, o in TINY.layer_shapes)
    many_points = -(-(1 << 19) // (P * width))  # sizes above the pool's 2^20 floor
    many_samples = -(-(1 << 19) // (P * D))
    local = make_pool(model, many_points, "local").numel()
    weights = make_pool(model, 8, "weights", weight_samples=many_samples).numel()
    assert make_pool(model, many_points, ("local", "weights")).numel() == local
    assert make_pool(model, 8, ("local", "weights"), weight_samples=many_samples).numel() == weights
    assert make_pool(model, many_points, ("folded", "local")).numel() == local


@pytest.mark.parametrize("noise", ["local", "folded"])
def test_compiled_elbo_matches_eager(noise):
    """The compiled step computes the same loss and gradients as the eager one (float rounding);
    with folded noise the compiled layers add their biases apart from the product
    (`combiner.inr.batched_linear`)."""
    if not compile_pays(torch.device("cpu"), 10**9, 1):
        pytest.skip("no C++ compiler for TorchInductor")
    results = []
    for elbo in (beta_elbo, compiled_elbo()):
        model, coords, vals, prior = setup()
        feats = fourier_features(coords, model.freqs)
        blocks = torch.arange(TINY.num_params) % 3
        eps = model.draw_noise(256, torch.Generator().manual_seed(4), noise)
        beta = torch.full((2, 3), 1e-4)
        loss, mse, kl = elbo(model, feats, vals, None, *prior, blocks, beta, eps, noise)
        loss.backward()
        results.append([loss.detach(), mse.detach(), kl.detach(), model.mu.grad, model.rho.grad])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-7)


def test_compile_pays_only_for_long_cpu_fits():
    assert not compile_pays(torch.device("cpu"), 1000, 100)
    assert not compile_pays(torch.device("cuda"), 10**6, 10**4)
