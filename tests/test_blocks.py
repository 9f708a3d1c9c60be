"""Block layouts (combiner.blocks): per patch and spread across patches, and coding with each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import combiner
from combiner import blocks, codec, decoder
from combiner.fit import block_kl
from test_codec import FAST, tiny_prior


@pytest.fixture(scope="module")
def prior():
    return tiny_prior("image", (16, 16), "tiny-image")


def check_partition(layout: blocks.BlockLayout) -> None:
    flat = np.concatenate(layout.members)
    assert sorted(flat.tolist()) == list(range(layout.num_patches * layout.num_params))
    assert all(np.all(np.diff(m) > 0) for m in layout.members)  # ascending, no repeats
    coded = np.concatenate(layout.rounds)
    assert sorted(coded.tolist()) == list(range(layout.num_blocks))


def test_per_patch_layout_is_the_version_1_order(prior):
    P, D, J = 3, prior.config.num_params, prior.num_blocks
    layout = blocks.per_patch(prior, P)
    check_partition(layout)
    parts = blocks.prior_parts(prior)
    for p in range(P):
        for j in range(J):
            np.testing.assert_array_equal(layout.members[p * J + j], p * D + parts[j])
    assert [r.tolist() for r in layout.rounds[:2]] == [[0, J, 2 * J], [1, J + 1, 2 * J + 1]]
    np.testing.assert_array_equal(layout.assignment()[1], prior.block_index + J)


def test_spread_layout_mixes_patches_in_blocks_of_equal_size(prior):
    P, D, J = 6, prior.config.num_params, prior.num_blocks
    layout = blocks.spread(prior, P, seed=3)
    check_partition(layout)
    assert layout.num_blocks == P * J
    sizes = {len(m) for m in layout.members}
    assert max(sizes) - min(sizes) <= 1
    patches_per_block = [len(np.unique(m // D)) for m in layout.members]
    assert np.mean(patches_per_block) > 2  # a block takes weights from several patches
    assert [r.tolist() for r in layout.rounds[:2]] == [list(range(P)), list(range(P, 2 * P))]
    other = blocks.spread(prior, P, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(layout.members, other.members))


def test_block_kl_with_blocks_across_patches():
    kl = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assignment = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]])
    got = block_kl(kl, assignment, 3)
    expected = [sum(kl[assignment == b].tolist()) for b in range(3)]
    assert got.shape == (1, 3) and got[0].tolist() == expected


def test_spread_blocks_round_trip_at_the_same_size(prior):
    img = np.random.default_rng(1).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    plain = combiner.api.encode_detailed(img, prior=prior, **FAST)
    spread = combiner.api.encode_detailed(img, prior=prior, spread_blocks=True, **FAST)
    assert len(spread.data) == len(plain.data)
    assert (plain.data[3], plain.data[6]) == (3, 0)  # version 3, no flag
    assert (spread.data[3], spread.data[6]) == (3, 1)  # version 3, flag spread_blocks
    header, weights = decoder.decode_weights(spread.data, prior)
    assert header.spread_blocks
    assert weights.tobytes() == spread.weights.tobytes()
    np.testing.assert_array_equal(combiner.decode(spread.data, prior=prior),
                                  combiner.media.to_output(spread.decoded))


def test_a_batch_with_spread_blocks_gives_independent_bitstreams(prior):
    rng = np.random.default_rng(7)
    signals = [combiner.media.image_from_array(rng.integers(0, 256, shape, dtype=np.uint8))
               for shape in [(16, 40, 3), (30, 20, 3)]]
    opts = codec.EncodeOptions(**FAST, spread_blocks=True)
    results = codec.encode_signals(signals, prior, opts)
    for res in results:
        _, weights = decoder.decode_weights(res.data, prior)
        assert weights.tobytes() == res.weights.tobytes()


def test_audio_with_spread_blocks_round_trips():
    prior = tiny_prior("audio", (64,), "tiny-audio")
    clip = np.sin(np.linspace(0, 40, 301)).astype(np.float32) * np.linspace(0, 1, 301, dtype=np.float32)
    res = combiner.api.encode_detailed(clip, prior=prior, sample_rate=16000, spread_blocks=True, **FAST)
    header, weights = decoder.decode_weights(res.data, prior)
    assert header.spread_blocks and header.shape == (301,)
    assert weights.tobytes() == res.weights.tobytes()
    decoded = decoder.decode(res.data, prior).signal()
    np.testing.assert_array_equal(decoded.values, res.decoded.values)
