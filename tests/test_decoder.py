"""The deterministic decoder through Python: thread counts and instruction sets, the checks
against the prior (docs/format.md section 3), and priors named by their hash alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import combiner
from combiner import _core, bitstream, decoder, registry

DATA = Path(__file__).parent / "data"


def _stream(name: str) -> tuple[bytes, combiner.Prior]:
    data = (DATA / name).read_bytes()
    header = bitstream.unpack(data)[0]
    return data, registry.for_bitstream(header.prior_id, header.prior_hash)


@pytest.mark.parametrize("name", ["kodim05-crop96x64.photo-q1.spread.cmb",
                                  "2414-128291-0008-1.00s-1.25s.speech-q1.cmb"])
def test_threads_and_simd_do_not_change_a_bit(name):
    data, prior = _stream(name)
    outputs = [_core.decode(data, prior.to_bytes(), threads=t, simd=s)[1] for t in (1, 2) for s in (True, False)]
    for out in outputs[1:]:
        assert out.dtype == outputs[0].dtype
        np.testing.assert_array_equal(out, outputs[0])


def test_a_channel_count_the_prior_cannot_produce_is_refused():
    data, prior = _stream("kodim05-crop96x64.photo-q1.cmb")
    header, indices = bitstream.unpack(data)
    four = bitstream.pack(dataclasses.replace(header, channels=4), indices)
    with pytest.raises(combiner.errors.PriorMismatchError, match="channels"):
        decoder.decode(four, prior)


def test_kappa_and_modality_mismatches_are_refused():
    data, prior = _stream("kodim05-crop96x64.photo-q1.cmb")
    header, indices = bitstream.unpack(data)
    low = bitstream.pack(dataclasses.replace(header, kappa=12), indices & 0xFFF)
    with pytest.raises(combiner.errors.PriorMismatchError, match="kappa"):
        decoder.decode(low, prior)
    audio = bitstream.pack(dataclasses.replace(header, modality="audio", width=1, channels=1,
                                               sample_rate=16000), indices)
    with pytest.raises(combiner.errors.PriorMismatchError, match="image"):
        decoder.decode(audio, prior)


def test_a_prior_named_by_its_hash_alone_is_found_among_the_shipped_ones():
    data, prior = _stream("kodim05-crop96x64.photo-q1.spread.cmb")
    header, indices = bitstream.unpack(data)
    anonymous = bitstream.pack(dataclasses.replace(header, prior_id=""), indices)
    np.testing.assert_array_equal(combiner.decode(anonymous), combiner.decode(data))
    unknown = bitstream.pack(dataclasses.replace(header, prior_id="", prior_hash=b"\x01" * 8), indices)
    with pytest.raises(combiner.errors.PriorMismatchError, match="hash"):
        combiner.decode(unknown)


def test_the_rust_and_python_content_hashes_agree_on_every_prior_file():
    for path in [*registry.shipped().values(), *registry.retired().values()]:
        raw = path.read_bytes()
        assert _core.prior_content_hash(raw) == combiner.Prior.from_bytes(raw).content_hash()


def test_an_invalid_prior_file_is_a_typed_error():
    data, prior = _stream("cifar10-test-00000.thumbnail-q1.cmb")
    raw = prior.to_bytes()
    for bad in [raw[:100], raw[:-3], b"not a prior at all", raw.replace(b'"combiner-prior"', b'"combiner-prioR"')]:
        with pytest.raises(combiner.PriorFormatError):
            _core.decode(data, bad)
