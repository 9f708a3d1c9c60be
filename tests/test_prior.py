import dataclasses
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from combiner import _core
from combiner.errors import PriorFormatError
from combiner.inr import INRConfig, identity_mix, init_bounds
from combiner.prior import Prior, PriorKind, _read_metadata
from combiner.prior_learning import initial_prior, learn_prior, make_partition, update_prior
from combiner.tiling import patch_coords, to_patches

# Tiny problems: one intra-op thread is far faster than two (and immune to a busy neighbour
# process making OpenMP workers spin); also keeps timings of the test suite stable.
torch.set_num_threads(1)

TINY = INRConfig(in_dim=2, out_dim=3, num_freqs=3, max_freq=4.0, width=8, depth=2)


def make_prior(seed=0, kind=None):
    D = TINY.num_params
    g = np.random.default_rng(seed)
    return Prior(TINY, g.normal(size=D), g.uniform(0.01, 0.1, size=D),
                 make_partition(g.uniform(0, 2, size=D), 16, seed=seed), kappa=16, seed=seed,
                 kind=kind if kind is not None else PriorKind("image", (8, 8), name="t"))


def test_update_prior_closed_form():
    mu = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    sig = np.array([[1.0, 0.5], [1.0, 0.5], [1.0, 0.5]])
    m, s = update_prior(mu, sig)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, [3.0, 2.0])
    # s^2 = mean(sig^2) + mean((mu - m)^2) = 1 + 8/3 ; 0.25 + 8/3
    np.testing.assert_allclose(s, np.sqrt([1 + 8 / 3, 0.25 + 8 / 3]), rtol=1e-6)
    # torch in -> torch out; floor applied when all posteriors agree and are sharp.
    m2, s2 = update_prior(torch.ones(4, 3), torch.zeros(4, 3), min_std=1e-3)
    assert isinstance(m2, torch.Tensor) and torch.all(s2 == 1e-3)
    # It is the maximum-likelihood Gaussian of the mixture: matches sampling moments.
    rng = np.random.default_rng(0)
    mu, sig = rng.normal(size=(5, 1)), rng.uniform(0.1, 1, size=(5, 1))
    x = (mu + sig * rng.normal(size=(5, 200_000))).ravel()
    m, s = update_prior(mu, sig)
    assert abs(m[0] - x.mean()) < 0.01 and abs(s[0] - x.std()) < 0.01


def test_initial_prior():
    m, s = initial_prior(TINY)
    assert np.all(m == 0) and s.shape == (TINY.num_params,)
    np.testing.assert_allclose(s, 0.5 * init_bounds(TINY).numpy() / np.sqrt(3), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_partition_budget_and_coverage(seed):
    rng = np.random.default_rng(seed)
    kl = rng.exponential(1.0, size=1000)
    kl[:100] = 0.0  # near-zero KL params must still be assigned
    kl[100] = 40.0  # a single param above kappa gets its own block
    b = make_partition(kl, 16, max_block_size=25, seed=seed)
    assert b.shape == (1000,) and b.dtype == np.int64
    J = b.max() + 1
    counts = np.bincount(b, minlength=J)
    assert counts.min() >= 1 and counts.max() <= 25
    sums = np.bincount(b, weights=kl, minlength=J)
    multi = counts > 1
    assert np.all(sums[multi] <= 16 + 1e-9)
    assert counts[b[100]] == 1
    assert np.array_equal(b, make_partition(kl, 16, max_block_size=25, seed=seed))
    # Greedy in permutation order: blocks are contiguous runs of the permutation, ids increasing.
    order = np.random.Generator(np.random.PCG64(seed)).permutation(1000)
    assert np.all(np.diff(b[order]) >= 0) and b[order][0] == 0


def test_partition_seed_changes_it():
    kl = np.full(200, 1.0)
    a, b = make_partition(kl, 16, seed=1), make_partition(kl, 16, seed=2)
    assert not np.array_equal(a, b)
    assert np.bincount(a).tolist() == [16] * 12 + [8]  # 1 bit each -> 16 per block


def test_save_load_roundtrip_and_hash(tmp_path):
    p = make_prior()
    path = tmp_path / "p.safetensors"
    p.save(path)
    q = Prior.load(path)
    assert q.config == p.config and q.kappa == 16 and q.seed == 0 and q.kind == p.kind
    for name in ("mean", "std", "block_index"):
        assert np.array_equal(getattr(p, name), getattr(q, name))
    assert len(p.content_hash()) == 32
    assert p.content_hash() == q.content_hash() and p.hash_hex == q.hash_hex and len(p.hash_hex) == 16
    # Any content change changes the hash.
    r = make_prior()
    assert r.content_hash() == p.content_hash()
    assert make_prior(kind=PriorKind("image", (8, 8), name="u")).content_hash() != p.content_hash()
    r.mean = r.mean.copy()
    r.mean[3] = np.nextafter(r.mean[3], np.float32(np.inf))
    assert r.content_hash() != p.content_hash()
    assert make_prior(seed=1).content_hash() != p.content_hash()
    s = make_prior()
    s.kappa = 12
    assert s.content_hash() != p.content_hash()


def test_mixing_matrices_round_trip_as_version_2():
    p = make_prior()
    assert p._metadata()["version"] == "1"  # no mix: the version-1 file, byte for byte as before
    mixed = make_prior()
    mixed.mix = identity_mix(TINY).numpy() * 1.5
    mixed.validate()
    assert mixed._metadata()["version"] == "2" and mixed.content_hash() != p.content_hash()
    q = Prior.from_bytes(mixed.to_bytes())
    assert np.array_equal(q.mix, mixed.mix) and q.content_hash() == mixed.content_hash()
    assert Prior.from_bytes(p.to_bytes()).mix is None
    tens = {"mean": p.mean, "std": p.std, "block_index": p.block_index}
    meta = mixed._metadata()
    bad = {
        "version 2 without mix": _rebuild(tens, meta),
        "version 1 with mix": _rebuild({**tens, "mix": mixed.mix}, p._metadata()),
        "mix wrong length": _rebuild({**tens, "mix": mixed.mix[:-1]}, meta),
        "mix float64": _rebuild({**tens, "mix": mixed.mix.astype(np.float64)}, meta),
        "mix not finite": _rebuild({**tens, "mix": np.full_like(mixed.mix, np.inf)}, meta),
    }
    for _name, data in bad.items():
        with pytest.raises(PriorFormatError):
            Prior.from_bytes(data)


def _rebuild(tensors: dict, meta: dict) -> bytes:
    from safetensors.numpy import save

    return save(tensors, metadata=meta)


def test_load_refuses_malformed(tmp_path):
    p = make_prior()
    good = p.to_bytes()
    tens = {"mean": p.mean, "std": p.std, "block_index": p.block_index}
    meta = p._metadata()
    bad_cases = {
        "empty": b"",
        "short": good[:5],
        "truncated": good[: len(good) - 10],
        "huge header len": struct.pack("<Q", 1 << 40) + good[8:],
        "garbage header": struct.pack("<Q", 4) + b"\xff\xfe{[" + good[12:],
        "wrong format": _rebuild(tens, {**meta, "format": "other"}),
        "wrong version": _rebuild(tens, {**meta, "version": "9"}),
        "missing kind": _rebuild(tens, {k: v for k, v in meta.items() if k != "kind"}),
        "bad config json": _rebuild(tens, {**meta, "config": "{"}),
        "config unknown key": _rebuild(tens, {**meta, "config": json.dumps({**TINY.to_dict(), "x": 1})}),
        "config bad value": _rebuild(tens, {**meta, "config": json.dumps({**TINY.to_dict(), "width": -3})}),
        "config mismatch D": _rebuild(tens, {**meta, "config": json.dumps({**TINY.to_dict(), "width": 9})}),
        "kappa not int": _rebuild(tens, {**meta, "kappa": "1e3"}),
        "kappa range": _rebuild(tens, {**meta, "kappa": "0"}),
        "kappa unicode digits": _rebuild(tens, {**meta, "kappa": "\u0661\u0666"}),
        "seed negative": _rebuild(tens, {**meta, "seed": "-1"}),
        "kind not object": _rebuild(tens, {**meta, "kind": "[1]"}),
        "kind unknown key": _rebuild(tens, {**meta, "kind": _kind_json(sample_rate=16000)}),
        "kind no modality": _rebuild(tens, {**meta, "kind": _kind_json(modality=None)}),
        "kind no patch": _rebuild(tens, {**meta, "kind": _kind_json(patch_shape=None)}),
        "kind audio for 2-d": _rebuild(tens, {**meta, "kind": _kind_json(modality="audio", patch_shape=[8])}),
        "kind patch axes": _rebuild(tens, {**meta, "kind": _kind_json(patch_shape=[8, 8, 8])}),
        "kind patch zero": _rebuild(tens, {**meta, "kind": _kind_json(patch_shape=[0, 8])}),
        "kind patch float": _rebuild(tens, {**meta, "kind": _kind_json(patch_shape=[8.0, 8])}),
        "kind empty name": _rebuild(tens, {**meta, "kind": _kind_json(name="")}),
        "kind name number": _rebuild(tens, {**meta, "kind": _kind_json(name=3)}),
        "kind beta zero": _rebuild(tens, {**meta, "kind": _kind_json(beta=0)}),
        "kind beta string": _rebuild(tens, {**meta, "kind": _kind_json(beta="1e-5")}),
        "kind beta NaN": _rebuild(tens, {**meta, "kind": '{"beta":NaN,"modality":"image","patch_shape":[8,8]}'}),
        "kind rate negative": _rebuild(tens, {**meta, "kind": _kind_json(train_bits_per_patch=-1.0)}),
        "kind null rate": _rebuild(tens, {**meta, "kind": '{"bits_per_patch":null,"modality":"image",'
                                                            '"patch_shape":[8,8]}'}),
        "missing tensor": _rebuild({"mean": p.mean, "std": p.std}, meta),
        "extra tensor": _rebuild({**tens, "x": p.mean}, meta),
        "wrong dtype": _rebuild({**tens, "mean": p.mean.astype(np.float64)}, meta),
        "wrong shape": _rebuild({**tens, "std": p.std[:-1]}, meta),
        "2-d tensor": _rebuild({**tens, "mean": p.mean.reshape(1, -1)}, meta),
        "nan mean": _rebuild({**tens, "mean": np.where(np.arange(p.mean.size) == 2, np.nan, p.mean)
                              .astype(np.float32)}, meta),
        "zero std": _rebuild({**tens, "std": np.zeros_like(p.std)}, meta),
        "negative block": _rebuild({**tens, "block_index": -p.block_index}, meta),
        "gap in blocks": _rebuild({**tens, "block_index": p.block_index * 2}, meta),
    }
    for _name, data in bad_cases.items():
        with pytest.raises(PriorFormatError):
            Prior.from_bytes(data)
        f = tmp_path / "bad.safetensors"
        f.write_bytes(data)
        with pytest.raises(ValueError):
            Prior.load(f)
    # Bit flips in the tensor payload are caught by the hash, not the parser: the id changes.
    flipped = bytearray(good)
    flipped[-3] ^= 0x01
    try:
        q = Prior.from_bytes(bytes(flipped))
    except PriorFormatError:
        pass
    else:
        assert q.content_hash() != p.content_hash()


def _kind_json(**changes) -> str:
    """The canonical ``kind`` JSON of `make_prior`'s prior with ``changes`` (None: key removed)."""
    kind = {"modality": "image", "patch_shape": [8, 8], "name": "t", **changes}
    return json.dumps({k: v for k, v in kind.items() if v is not None}, sort_keys=True, separators=(",", ":"))


def test_prior_kind_checks_its_fields():
    kind = PriorKind("audio", [800], name="speech-q1", beta=1e-5, bits_per_patch=600, train_bits_per_patch=0)
    assert kind.patch_shape == (800,) and kind.bits_per_patch == 600 and kind.train_bits_per_patch == 0
    assert PriorKind("image", (np.int64(16), 16), beta=np.float32(0.5)) == PriorKind("image", (16, 16), beta=0.5)
    assert type(PriorKind("image", (16, 16), beta=np.float64(2.0)).beta) is float
    bad = [
        dict(modality="video", patch_shape=(8,)),
        dict(modality="image", patch_shape=(8,)),
        dict(modality="audio", patch_shape=(8, 8)),
        dict(modality="image", patch_shape=(8, 0)),
        dict(modality="image", patch_shape=(8, 65537)),
        dict(modality="image", patch_shape=(8, 8.0)),
        dict(modality="image", patch_shape=(8, True)),
        dict(modality="image", patch_shape="88"),
        dict(modality="image", patch_shape=(8, 8), name=None),
        dict(modality="image", patch_shape=(8, 8), beta=0.0),
        dict(modality="image", patch_shape=(8, 8), beta=-1e-5),
        dict(modality="image", patch_shape=(8, 8), beta=math.inf),
        dict(modality="image", patch_shape=(8, 8), beta=True),
        dict(modality="image", patch_shape=(8, 8), beta="1e-5"),
        dict(modality="image", patch_shape=(8, 8), bits_per_patch=0),
        dict(modality="image", patch_shape=(8, 8), train_bits_per_patch=math.nan),
        dict(modality="image", patch_shape=(8, 8), train_bits_per_patch=-0.5),
    ]
    for fields in bad:
        with pytest.raises(ValueError):
            PriorKind(**fields)
    assert PriorKind("image", (1, 65536)).patch_shape == (1, 65536)
    with pytest.raises(dataclasses.FrozenInstanceError):
        kind.name = "other"  # type: ignore[misc]


def test_prior_kind_writes_back_the_json_it_read():
    """to_dict gives the very object from_dict read: the same keys, ints as ints, floats as
    floats, absent fields left out; an unnamed kind has no name key."""
    for text in ('{"modality":"audio","patch_shape":[1600]}',
                 '{"beta":1e-05,"bits_per_patch":600,"modality":"audio","name":"s","patch_shape":[800]}',
                 '{"beta":2,"bits_per_patch":600.0,"modality":"image","name":"p","patch_shape":[64,32],'
                 '"train_bits_per_patch":0.0}'):
        values = json.loads(text)
        kind = PriorKind.from_dict(values)
        assert kind.to_dict() == values
        assert json.dumps(kind.to_dict(), sort_keys=True, separators=(",", ":")) == text
    assert PriorKind("image", (8, 8)).to_dict() == {"modality": "image", "patch_shape": [8, 8]}
    assert PriorKind.from_dict({"modality": "image", "patch_shape": [8, 8], "bits_per_patch": 40}).bits_per_patch == 40
    for values in ({"modality": "image"}, {"patch_shape": [8]}, [1], "image",
                   {"modality": "image", "patch_shape": [8, 8], "sample_rate": 16000},
                   {"modality": "image", "patch_shape": [8, 8], "beta": None},
                   {"modality": "image", "patch_shape": [8, 8], "name": ""},
                   {"modality": "image", "patch_shape": (8, 8)}):
        with pytest.raises(ValueError):
            PriorKind.from_dict(values)


def test_a_prior_needs_a_prior_kind_that_fits_its_network():
    p = make_prior()
    with pytest.raises(PriorFormatError, match="PriorKind"):
        make_prior(kind={"modality": "image", "patch_shape": [8, 8]})
    with pytest.raises(PriorFormatError, match="in_dim"):
        make_prior(kind=PriorKind("audio", (64,)))
    with pytest.raises(TypeError):
        Prior(p.config, p.mean, p.std, p.block_index)  # kind is required


PRIORS_DIR = Path(_core.__file__).with_name("priors")
SHIPPED_AND_RETIRED = sorted(PRIORS_DIR.rglob("*.safetensors"))


def test_every_prior_file_is_checked():
    assert len([p for p in SHIPPED_AND_RETIRED if p.parent == PRIORS_DIR]) >= 12
    assert len([p for p in SHIPPED_AND_RETIRED if p.parent.name == "retired"]) >= 1


@pytest.mark.parametrize("path", SHIPPED_AND_RETIRED, ids=lambda p: str(p.relative_to(PRIORS_DIR)))
def test_shipped_and_retired_priors_keep_their_hashes_and_metadata(path):
    """The hash computed from the parsed `PriorKind` is the one of the stored strings (the Rust
    core's), and a retired file's name holds it; load -> save -> load gives the same metadata
    strings, byte for byte, and the same prior."""
    data = path.read_bytes()
    prior = Prior.load(path)
    assert prior.content_hash() == _core.prior_content_hash(data)
    if path.parent.name == "retired":
        assert path.name.split(".")[1] == prior.content_hash()[:8].hex()
    saved = prior.to_bytes()
    assert _read_metadata(saved) == _read_metadata(data)
    again = Prior.from_bytes(saved)
    assert again.kind == prior.kind and again.encoder == prior.encoder
    assert again.content_hash() == prior.content_hash() == _core.prior_content_hash(saved)


def sine_patches() -> list:
    """Three smooth 16 x 16 RGB images cut into 8 x 8 training patches."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16] / 16.0
    signals = []
    for k in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(3 * xx * rng.uniform(0.5, 1.5) + 2 * yy + c + k) for c in range(3)], -1)
        vals, w = to_patches(img.astype(np.float32), (8, 8))
        signals.append((patch_coords((8, 8)), vals, w))
    return signals


def test_learn_prior_small():
    torch.manual_seed(0)  # not used by the code; makes sure nothing depends on global state
    signals = sine_patches()
    kwargs = dict(modality="image", patch_shape=(8, 8), iterations=3, steps_per_iteration=30, first_steps=60,
                  lr=3e-3, kappa=16, beta=1e-6, seed=5, device="cpu", batch_patches=5)
    pr = learn_prior(signals, TINY, **kwargs)
    assert isinstance(pr, Prior)
    assert pr.kind.modality == "image" and pr.kind.patch_shape == (8, 8)
    m0, s0 = initial_prior(TINY)
    assert not np.allclose(pr.mean, m0)
    assert np.all(pr.std > 0) and np.all(np.isfinite(pr.mean))
    assert pr.block_index.shape == (TINY.num_params,)
    assert np.bincount(pr.block_index).max() <= 25
    pr2 = learn_prior(signals, TINY, **kwargs)
    assert pr2.content_hash() == pr.content_hash()  # deterministic on CPU
    with pytest.raises(ValueError):
        learn_prior([(patch_coords((8, 8)), signals[0][1]), (patch_coords((4, 4)), np.zeros((1, 16, 3)))],
                    TINY, **kwargs)


def test_learn_prior_with_mixing_matrices():
    """learn_mix trains the mixing matrices away from the identity; the result is deterministic."""
    kwargs = dict(modality="image", patch_shape=(8, 8), iterations=2, steps_per_iteration=30, first_steps=30,
                  lr=3e-3, kappa=16, beta=1e-6, seed=5, device="cpu", batch_patches=5, learn_mix=True)
    pr = learn_prior(sine_patches(), TINY, **kwargs)
    assert pr.mix is not None and pr.mix.shape == (TINY.mix_size,)
    assert np.abs(pr.mix - identity_mix(TINY).numpy()).max() > 1e-2
    assert learn_prior(sine_patches(), TINY, **kwargs).content_hash() == pr.content_hash()
    plain = learn_prior(sine_patches(), TINY, **{**kwargs, "learn_mix": False})
    assert plain.mix is None


def test_learn_prior_rate_targeting_reaches_the_rate():
    """Beta adapts between rounds so that the training posteriors end near the target rate."""
    signals = sine_patches()
    kwargs = dict(modality="image", patch_shape=(8, 8), iterations=6, steps_per_iteration=30, first_steps=60,
                  lr=1e-2, kappa=16, beta=1e-4, seed=5, device="cpu", batch_patches=5, rho_init=-6.0)
    low = learn_prior(signals, TINY, rate_target_bits=30.0, **kwargs)
    high = learn_prior(signals, TINY, rate_target_bits=300.0, **kwargs)
    # A target of 100 bits ends near beta 1e-4 here (95 bits, beta 9.6e-5, measured once), so
    # one target lies below the starting beta's rate and one above.
    assert low.kind.beta > 1e-4 > high.kind.beta
    assert 15.0 < low.kind.train_bits_per_patch < 45.0
    assert 200.0 < high.kind.train_bits_per_patch < 400.0


def test_learn_prior_round_checkpoints_equal_shorter_runs():
    """on_round after round r hands over exactly what iterations=r + 1 returns (mixing, rate
    targeting and several rates included), so a deadline-stopped run leaves reproducible priors."""
    kwargs = dict(modality="image", patch_shape=(8, 8), steps_per_iteration=10, first_steps=10,
                  lr=3e-3, kappa=16, beta=1e-6, seed=5, device="cpu", batch_patches=5, learn_mix=True,
                  rate_target_bits=100.0, bits_per_patch=[60.0, 120.0])
    seen = {}
    final = learn_prior(sine_patches(), TINY, iterations=3,
                        on_round=lambda r, learned: seen.setdefault(r, [p.content_hash() for p in learned]), **kwargs)
    assert sorted(seen) == [0, 1, 2]
    assert seen[2] == [p.content_hash() for p in final]
    shorter = learn_prior(sine_patches(), TINY, iterations=2, **kwargs)
    assert seen[1] == [p.content_hash() for p in shorter]
    assert seen[0] != seen[1]
    with pytest.raises(ValueError):
        learn_prior(sine_patches(), TINY, iterations=0, **kwargs)


def test_refining_starts_where_the_encoder_starts_and_keeps_the_mixing_matrices():
    """With ``start`` the posteriors begin at the start prior's means and init_std_ratio of its
    stds, so with no fitting step the M-step returns exactly that; the mixing matrices are the
    start's; refining with learned mixing matrices or another network is refused."""
    from combiner.options import EncoderSettings

    kwargs = dict(modality="image", patch_shape=(8, 8), iterations=1, steps_per_iteration=20, first_steps=20,
                  lr=3e-3, kappa=16, beta=1e-6, seed=5, device="cpu", batch_patches=5)
    base = learn_prior(sine_patches(), TINY, **kwargs, learn_mix=True)
    base.encoder = EncoderSettings(init_std_ratio=0.3)
    still = learn_prior(sine_patches(), TINY, **{**kwargs, "first_steps": 0}, start=base)
    np.testing.assert_array_equal(still.mean, base.mean)
    np.testing.assert_allclose(still.std, 0.3 * base.std, rtol=1e-5)
    np.testing.assert_array_equal(still.mix, base.mix)
    moved = learn_prior(sine_patches(), TINY, **{**kwargs, "iterations": 2}, start=base, noise="folded")
    assert np.abs(moved.mean - base.mean).max() > 1e-3
    np.testing.assert_array_equal(moved.mix, base.mix)
    again = learn_prior(sine_patches(), TINY, **{**kwargs, "iterations": 2}, start=base, noise="folded")
    assert again.content_hash() == moved.content_hash()
    with pytest.raises(ValueError, match="refining"):
        learn_prior(sine_patches(), TINY, **kwargs, start=base, learn_mix=True)
    other = INRConfig(in_dim=2, out_dim=3, num_freqs=3, max_freq=4.0, width=8, depth=3)
    with pytest.raises(ValueError, match="refining"):
        learn_prior(sine_patches(), other, **kwargs, start=base)
