"""The A* coding search and the decoder, through the Python API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from combiner import rec


def random_block(rng: np.random.Generator, d: int, scale: float, shrink: tuple[float, float]):
    mu_p = rng.normal(0, scale, d).astype(np.float32)
    sigma_p = (scale * rng.uniform(0.5, 1.5, d)).astype(np.float32)
    sigma_q = (sigma_p * rng.uniform(*shrink, d)).astype(np.float32)
    mu_q = (mu_p + sigma_p * rng.normal(0, 0.7, d)).astype(np.float32)
    return mu_q, sigma_q, mu_p, sigma_p


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 40),
    kappa=st.integers(1, 12),
    scale=st.sampled_from([1e-4, 0.01, 0.3, 5.0]),
    seed=st.integers(0, 2**64 - 1),
    block_id=st.integers(0, 2**64 - 1),
    data_seed=st.integers(0, 2**32 - 1),
    version=st.sampled_from([2, 3]),
)
def test_decoder_regenerates_the_encoders_sample(d, kappa, scale, seed, block_id, data_seed, version):
    mu_q, sigma_q, mu_p, sigma_p = random_block(np.random.default_rng(data_seed), d, scale, (0.05, 1.3))
    results = [
        rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=seed, block_id=block_id, kappa=kappa,
                         threads=t, version=version)
        for t in (1, 2)
    ]
    (i1, s1), (i2, s2) = results
    assert i1 == i2 and s1.tobytes() == s2.tobytes()
    assert 0 <= i1 < 2**kappa
    decoded = rec.decode_block(mu_p, sigma_p, seed=seed, block_id=block_id, index=i1, kappa=kappa,
                               version=version)
    assert decoded.dtype == np.float32 and decoded.tobytes() == s1.tobytes()


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 30), kappa=st.integers(4, 14), data_seed=st.integers(0, 2**32 - 1),
       shrink=st.sampled_from([(0.01, 0.2), (0.3, 0.9), (0.9, 0.999), (0.5, 1.5)]),
       version=st.sampled_from([2, 3]))
def test_early_stop_returns_the_exhaustive_index(d, kappa, data_seed, shrink, version):
    # Version 3 also skips candidates whose first dimensions rule them out.
    mu_q, sigma_q, mu_p, sigma_p = random_block(np.random.default_rng(data_seed), d, 0.1, shrink)
    a = rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=3, block_id=data_seed, kappa=kappa,
                         early_stop=False, version=version)
    b = rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=3, block_id=data_seed, kappa=kappa,
                         early_stop=True, version=version)
    assert a[0] == b[0] and a[1].tobytes() == b[1].tobytes()


def test_early_stop_skips_candidates_when_the_block_is_cheap():
    # KL of a few bits with kappa = 16: the bound stops the search long before 2^16.
    mu_q, sigma_q, mu_p, sigma_p = random_block(np.random.default_rng(0), 4, 0.1, (0.6, 0.8))
    res = rec.encode_blocks(mu_q, sigma_q, mu_p, sigma_p, [4], seed=1, block_ids=[0], kappa=16)
    assert res.scored < 2**16 // 4


def test_batch_equals_single_blocks():
    rng = np.random.default_rng(5)
    sizes = [3, 25, 1, 8]
    parts = [random_block(rng, d, 0.2, (0.1, 0.9)) for d in sizes]
    cat = [np.concatenate([p[i] for p in parts]) for i in range(4)]
    ids = [10, 11, 12, 99]
    res = rec.encode_blocks(*cat, sizes, seed=9, block_ids=ids, kappa=10)
    offset = 0
    for (mu_q, sigma_q, mu_p, sigma_p), bid, idx, d in zip(parts, ids, res.indices, sizes):
        i, s = rec.encode_block(mu_q, sigma_q, mu_p, sigma_p, seed=9, block_id=bid, kappa=10)
        assert i == idx
        assert s.tobytes() == res.samples[offset:offset + d].tobytes()
        offset += d
    mu_p = np.concatenate([p[2] for p in parts])
    sigma_p = np.concatenate([p[3] for p in parts])
    decoded = rec.decode_blocks(mu_p, sigma_p, sizes, seed=9, block_ids=ids, indices=res.indices,
                                kappa=10)
    assert decoded.tobytes() == res.samples.tobytes()


def kl_bits(mu_q, sigma_q, mu_p, sigma_p) -> float:
    mu_q, sigma_q, mu_p, sigma_p = (np.asarray(a, np.float64) for a in (mu_q, sigma_q, mu_p, sigma_p))
    kl = np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5
    return float(kl.sum() / np.log(2))


def test_samples_follow_the_posterior_when_kappa_exceeds_the_kl():
    """With kappa well above the block KL, the coded sample is (nearly) an exact draw from q.

    The standardised samples (x - mu_q) / sigma_q must have mean ~0 and variance ~1 in every
    dimension. Dropping the Gumbel term collapses the variance towards 0; a wrong density ratio
    shifts the mean towards the prior mean or changes the variance; both fail this test.
    """
    d, trials, kappa = 2, 1500, 12
    mu_p = np.zeros(d, np.float32)
    sigma_p = np.ones(d, np.float32)
    mu_q = np.array([0.8, -0.5], np.float32)
    sigma_q = np.array([0.5, 0.4], np.float32)
    assert kl_bits(mu_q, sigma_q, mu_p, sigma_p) < 3.0  # far below kappa = 12
    tile = lambda a: np.tile(a, trials)  # noqa: E731
    res = rec.encode_blocks(tile(mu_q), tile(sigma_q), tile(mu_p), tile(sigma_p), [d] * trials,
                            seed=11, block_ids=np.arange(trials), kappa=kappa)
    z = (res.samples.reshape(trials, d) - mu_q) / sigma_q
    # Standard errors: mean 1/sqrt(1500) = 0.026, variance sqrt(2/1500) = 0.037.
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.11)
    np.testing.assert_allclose(z.var(axis=0), 1.0, atol=0.15)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kappa=0), "kappa"),
        (dict(kappa=21), "kappa"),
        (dict(sigma_q=[0.1, -1.0]), "sigma_q"),
        (dict(mu_q=[np.nan, 0.0]), "mu_q"),
        (dict(sigma_p=[0.1]), "same length"),
        (dict(mu_q=[], sigma_q=[], mu_p=[], sigma_p=[]), "dimensions"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, message):
    args = dict(mu_q=[0.0, 0.0], sigma_q=[0.1, 0.1], mu_p=[0.0, 0.0], sigma_p=[1.0, 1.0], kappa=8)
    args.update(kwargs)
    kappa = args.pop("kappa")
    with pytest.raises(ValueError, match=message):
        rec.encode_block(**args, seed=0, block_id=0, kappa=kappa)


def test_the_version_selects_the_candidates():
    z2 = rec.candidate_normals(seed=5, block_id=1, dim=6, index=9, version=2)
    z3 = rec.candidate_normals(seed=5, block_id=1, dim=6, index=9)
    assert z2.dtype == np.float64 and z3.dtype == np.float32
    assert not np.array_equal(z2.astype(np.float32), z3)
    assert np.array_equal(rec.candidate_normals(seed=5, block_id=1, dim=6, index=9, version=1), z2)
    for version in (0, 4):
        with pytest.raises(ValueError, match="format version"):
            rec.decode_block([0.0], [1.0], seed=0, block_id=0, index=1, kappa=8, version=version)
        with pytest.raises(ValueError, match="format version"):
            rec.encode_block([0.0], [0.5], [0.0], [1.0], seed=0, block_id=0, kappa=4, version=version)


def test_decode_refuses_an_index_beyond_kappa():
    with pytest.raises(ValueError):
        rec.decode_block([0.0], [1.0], seed=0, block_id=0, index=256, kappa=8)
