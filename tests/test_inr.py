import math

import pytest
import torch

from combiner.inr import (
    BayesianINR,
    INRConfig,
    fourier_features,
    identity_mix,
    init_bounds,
    kl_per_param,
    mlp_forward,
    noise_pool,
    pool_window,
    unflatten,
    unflatten_mix,
)

# Tiny problems: one intra-op thread is far faster than two (and immune to a busy neighbour
# process making OpenMP workers spin); also keeps timings of the test suite stable.
torch.set_num_threads(1)

TINY = INRConfig(in_dim=2, out_dim=3, num_freqs=4, max_freq=8.0, width=8, depth=2)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_reference_kodak_param_count():
    cfg = INRConfig(in_dim=2, out_dim=3, num_freqs=16, max_freq=1024.0, width=48, depth=5, w0=30.0)
    assert cfg.feature_dim == 64
    assert cfg.layer_shapes == [(64, 48)] + [(48, 48)] * 4 + [(48, 3)]
    assert cfg.num_params == 64 * 48 + 48 + 4 * (48 * 48 + 48) + 48 * 3 + 3 == 12675


def test_config_roundtrip_and_validation():
    assert INRConfig.from_dict(TINY.to_dict()) == TINY
    assert INRConfig(max_freq=1024) == INRConfig(max_freq=1024.0)
    for bad in ({"width": 0}, {"depth": 1.5}, {"max_freq": float("nan")}, {"w0": -1.0}, {"in_dim": True}):
        with pytest.raises(ValueError):
            INRConfig(**bad)
    with pytest.raises(ValueError):
        INRConfig.from_dict({**TINY.to_dict(), "extra": 1})
    with pytest.raises(ValueError):
        INRConfig.from_dict({"width": 8})


def test_frequencies_and_features():
    cfg = INRConfig(num_freqs=16, max_freq=1024.0)
    w = torch.from_numpy(cfg.frequencies())
    assert w[0] == 1.0 and abs(w[-1] - 1024.0) < 1e-9
    x = torch.tensor([[0.25, -0.5]])
    f = fourier_features(x, w[:2])
    # [cos(ax0 f0), cos(ax0 f1), cos(ax1 f0), cos(ax1 f1), sin(...)...]
    ang = math.pi * torch.tensor([0.25 * w[0], 0.25 * w[1], -0.5 * w[0], -0.5 * w[1]])
    torch.testing.assert_close(f[0], torch.cat([ang.cos(), ang.sin()]).float())


def test_unflatten_layout():
    D = TINY.num_params
    flat = torch.arange(2 * D, dtype=torch.float32).reshape(2, D)
    layers = unflatten(TINY, flat)
    pos = 0
    for (W, b), (i, o) in zip(layers, TINY.layer_shapes):
        assert W.shape == (2, i, o) and b.shape == (2, o)
        # row-major [in, out]: W[p, r, c] = flat[p, pos + r*o + c]
        assert W[1, 1, 2] == flat[1, pos + 1 * o + 2]
        assert b[0, 0] == flat[0, pos + i * o]
        assert W.data_ptr() == flat[:, pos:].data_ptr()  # a view, not a copy
        pos += i * o + o
    assert pos == D


def test_siren_init_bounds():
    m = BayesianINR(TINY, 3, generator=gen())
    a = init_bounds(TINY)
    assert torch.all(m.mu.abs() <= a)
    assert a[0] == 1.0 / TINY.feature_dim
    assert torch.allclose(a[-1], torch.tensor(math.sqrt(6 / 8) / 30.0))
    sig = torch.nn.functional.softplus(m.rho)
    assert torch.allclose(sig, torch.full_like(sig, math.log1p(math.exp(-10.0))))


def test_kl_matches_torch_distributions_and_monte_carlo():
    g = gen(1)
    mu, m = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    s = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma), torch.distributions.Normal(m, s))
    torch.testing.assert_close(kl_per_param(mu, sigma, m, s), ref)
    # Monte Carlo on one entry: E_q[log q - log p]
    q, p = torch.distributions.Normal(mu[0], sigma[0]), torch.distributions.Normal(m[0], s[0])
    x = mu[0] + sigma[0] * torch.randn(400_000, generator=g, dtype=torch.float64)
    mc = (q.log_prob(x) - p.log_prob(x)).mean()
    assert abs(mc - ref[0]) < 0.02 * max(1.0, ref[0].item())


def test_forward_shapes_and_batched_equals_single():
    m = BayesianINR(TINY, 3, generator=gen())
    x = torch.rand(10, 2) * 2 - 1
    out = m.forward_mean(x)
    assert out.shape == (3, 10, 3)
    assert m(x, generator=gen()).shape == (3, 10, 3)
    assert m(x[None].expand(3, 10, 2), generator=gen()).shape == (3, 10, 3)
    # Patch 1 on its own equals patch 1 in the batch (no cross-patch mixing).
    single = mlp_forward(TINY, fourier_features(x, m.freqs), m.mu.detach()[1:2])
    torch.testing.assert_close(out[1:2], single)
    # Plain per-layer reference implementation.
    h = fourier_features(x, m.freqs)
    layers = unflatten(TINY, m.mu.detach())
    for l, (W, b) in enumerate(layers):
        h = h @ W[2] + b[2]
        if l < len(layers) - 1:
            h = torch.sin(30.0 * h)
    torch.testing.assert_close(out[2].detach(), h)


def test_local_reparam_moments():
    # With a 1-layer net (depth 1) the output layer pre-activation mean/var are exact Gaussians.
    cfg = INRConfig(in_dim=1, out_dim=1, num_freqs=2, max_freq=2.0, width=4, depth=1)
    m = BayesianINR(cfg, 1, rho_init=-2.0, generator=gen())
    with torch.no_grad():
        m.rho[:, : cfg.layer_offsets()[0][2]] = -30.0  # first layer ~deterministic
    x = torch.tensor([[0.3]])
    outs = torch.stack([m(x, generator=gen(i)) for i in range(3000)]).squeeze()
    mean, sigma = m.posterior()
    (W1, b1), (W2, b2) = unflatten(cfg, mean.detach())
    (V1, c1), (V2, c2) = unflatten(cfg, sigma.detach() ** 2)
    h = torch.sin(30 * (fourier_features(x, m.freqs) @ W1[0] + b1[0]))
    ref_mean, ref_var = (h @ W2[0] + b2[0]).item(), ((h * h) @ V2[0] + c2[0]).item()
    assert abs(outs.mean().item() - ref_mean) < 4 * math.sqrt(ref_var / 3000)
    assert abs(outs.var().item() / ref_var - 1) < 0.1


def test_fixed_params_zero_sigma_no_grad():
    m = BayesianINR(TINY, 2, rho_init=-3.0, generator=gen())
    D = TINY.num_params
    mask = torch.zeros(2, D, dtype=torch.bool)
    mask[0, ::3] = True
    mask[1, :] = True  # patch 1 fully fixed
    vals = torch.randn(2, D, generator=gen(5))
    m.set_fixed(mask, vals)
    mean, sigma = m.posterior()
    assert torch.all(sigma[mask] == 0.0)
    assert torch.equal(mean[mask], vals[mask])
    prior_m, prior_s = torch.zeros(D), torch.full((D,), 0.1)
    kl = m.kl(prior_m, prior_s)
    assert torch.all(kl[mask] == 0.0) and torch.all(torch.isfinite(kl))
    x = torch.rand(7, 2)
    loss = ((m(x, generator=gen()) - 0.5) ** 2).mean() + kl.sum()
    loss.backward()
    assert torch.all(m.mu.grad[mask] == 0.0) and torch.all(m.rho.grad[mask] == 0.0)
    assert torch.all(torch.isfinite(m.mu.grad)) and torch.all(torch.isfinite(m.rho.grad))
    assert m.mu.grad[~mask].abs().sum() > 0
    # Fully fixed patch: the stochastic output equals the deterministic network with the fixed values.
    out = m(x, generator=gen())[1]
    torch.testing.assert_close(out.detach(), m.forward_weights(x, vals)[1], atol=1e-6, rtol=0)
    m.clear_fixed()
    assert not m.fixed_mask.any()


def test_mixing_matrices_reparameterise_each_layer():
    x = torch.rand(9, 2) * 2 - 1
    weights = BayesianINR(TINY, 2, generator=gen()).mu.detach()
    feats = fourier_features(x, torch.from_numpy(TINY.frequencies()).to(torch.float32))
    # Identity mixing is the plain network.
    torch.testing.assert_close(mlp_forward(TINY, feats, weights, identity_mix(TINY)), mlp_forward(TINY, feats, weights))
    # A random mix: layer l's effective parameters are L_l [W_l; b_l] R_l.
    mix = 0.5 * torch.randn(TINY.mix_size, generator=gen(3)) + identity_mix(TINY)
    assert TINY.mix_size == (17 ** 2 + 8 ** 2) + (9 ** 2 + 8 ** 2) + (9 ** 2 + 3 ** 2)
    h = feats
    layers = unflatten(TINY, weights)
    for l, ((W, b), (L, R)) in enumerate(zip(layers, unflatten_mix(TINY, mix))):
        theta = L @ torch.cat([W[1], b[1][None]]) @ R
        h = h @ theta[:-1] + theta[-1]
        if l < len(layers) - 1:
            h = torch.sin(30.0 * h)
    torch.testing.assert_close(mlp_forward(TINY, feats, weights, mix)[1], h, atol=1e-5, rtol=1e-5)
    # The Bayesian model with the same (frozen) mix and zero variance gives the same network.
    m = BayesianINR(TINY, 2, generator=gen(), mix=mix)
    m.set_fixed(torch.ones_like(m.fixed_mask), weights)
    torch.testing.assert_close(m(x, generator=gen())[1].detach(), h, atol=1e-5, rtol=1e-5)
    assert [n for n, _ in m.named_parameters()] == ["mu", "rho"]  # frozen: a buffer
    with pytest.raises(ValueError):
        mlp_forward(TINY, feats, weights, mix[:-1])


def test_learned_mix_is_a_parameter_that_gets_gradients():
    m = BayesianINR(TINY, 2, generator=gen(), learn_mix=True)
    assert torch.equal(m.mix.detach(), identity_mix(TINY))
    x = torch.rand(7, 2)
    ((m(x, generator=gen()) - 0.3) ** 2).mean().backward()
    assert m.mix.grad is not None and m.mix.grad.abs().sum() > 0


@pytest.mark.parametrize("with_mix", [False, True])
def test_weight_noise_runs_the_folded_network_per_sample(with_mix):
    """noise="weights": sample s of patch p is the deterministic network with weights
    mu + sigma * eps[p, s], on the s-th group of points (mixing and w0 folded in)."""
    mix = 0.3 * torch.randn(TINY.mix_size, generator=gen(5)) + identity_mix(TINY) if with_mix else None
    m = BayesianINR(TINY, 2, rho_init=-3.0, generator=gen(1), mix=mix)
    x = torch.rand(12, 2) * 2 - 1
    feats = fourier_features(x, m.freqs)
    eps = m.draw_noise(12, gen(2), "weights", samples=3)
    assert [e.shape for e in eps] == [(2, 3, TINY.num_params)]
    out = m.forward_features(feats, eps, "weights").detach()
    mean, sigma = (t.detach() for t in m.posterior())
    for p in range(2):
        for s in range(3):
            w = (mean[p] + sigma[p] * eps[0][p, s])[None]
            ref = mlp_forward(TINY, feats[4 * s:4 * s + 4], w, mix)[0]
            torch.testing.assert_close(out[p, 4 * s:4 * s + 4], ref, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="groups"):
        m.forward_features(feats[:11], eps, "weights")


def test_local_noise_from_a_pool_is_a_window_of_it():
    m = BayesianINR(TINY, 2, generator=gen())
    pool = noise_pool(100, gen(1))
    assert pool.shape == (1 << 20,) and abs(pool.mean().item()) < 0.01 and abs(pool.std().item() - 1) < 0.01
    eps = m.draw_noise(5, gen(2), "local", pool=pool)
    assert [e.shape for e in eps] == [(2, 5, o) for _, o in TINY.layer_shapes]
    for e in eps:  # views into the pool, not copies
        assert e.untyped_storage().data_ptr() == pool.untyped_storage().data_ptr()
    assert not torch.equal(eps[0].flatten()[:16], eps[1].flatten()[:16])  # independent offsets
    with pytest.raises(ValueError, match="cannot supply"):
        pool_window(torch.zeros(10), (3, 4), gen())
    with pytest.raises(ValueError, match="noise must be"):
        m.draw_noise(5, gen(), "flipout")  # type: ignore[arg-type]


def test_folded_noise_is_local_noise_without_mixing_and_exact_in_the_mean_with_it():
    """noise="folded" draws the same pre-activations as "local" without mixing matrices; with
    them its mean network (zero noise) is the posterior-mean network."""
    x = torch.rand(7, 2) * 2 - 1
    feats = fourier_features(x, torch.from_numpy(TINY.frequencies()).to(torch.float32))
    m = BayesianINR(TINY, 3, rho_init=-4.0, generator=gen(6))
    eps = m.draw_noise(7, gen(7), "local")
    local = m.forward_features(feats, eps, "local").detach()
    torch.testing.assert_close(m.forward_features(feats, eps, "folded").detach(), local, atol=1e-4, rtol=1e-4)
    mix = identity_mix(TINY) + 0.1 * torch.randn(TINY.mix_size, generator=gen(8))
    m = BayesianINR(TINY, 3, rho_init=-4.0, generator=gen(6), mix=mix)
    zero = [torch.zeros_like(e) for e in eps]
    torch.testing.assert_close(m.forward_features(feats, zero, "folded").detach(),
                               m.forward_mean(x).detach(), atol=1e-4, rtol=1e-4)


def test_marginal_noise_has_the_exact_marginals_of_local_noise():
    """noise="marginal" is "local" without mixing matrices; with them, the output of a network
    whose hidden layers are (nearly) deterministic has, unit by unit, the mean and variance of
    the exact local draws, over many normals; only the units' correlations differ."""
    x = torch.rand(7, 2) * 2 - 1
    feats = fourier_features(x, torch.from_numpy(TINY.frequencies()).to(torch.float32))
    m = BayesianINR(TINY, 3, rho_init=-4.0, generator=gen(6))
    eps = m.draw_noise(7, gen(7), "marginal")
    torch.testing.assert_close(m.forward_features(feats, eps, "marginal").detach(),
                               m.forward_features(feats, eps, "local").detach())
    mix = identity_mix(TINY) + 0.3 * torch.randn(TINY.mix_size, generator=gen(8))
    m = BayesianINR(TINY, 1, rho_init=-30.0, generator=gen(6), mix=mix)
    with torch.no_grad():  # noise in the last layer's parameters only
        w0 = TINY.layer_offsets()[-1][0]
        m.rho[:, w0:] = -1.0
    n = 20000
    wide = feats[3:4].expand(n, -1)  # one point, n independent draws
    out = {mode: m.forward_features(wide, m.draw_noise(n, gen(9), mode), mode).detach()[0]
           for mode in ("local", "marginal")}
    torch.testing.assert_close(out["marginal"].mean(0), out["local"].mean(0), atol=0.05, rtol=0.0)
    torch.testing.assert_close(out["marginal"].var(0), out["local"].var(0), atol=0.0, rtol=0.05)
    assert (out["local"].var(0) > 0.01).all()
    assert not torch.allclose(torch.corrcoef(out["marginal"].T), torch.corrcoef(out["local"].T), atol=0.05)
