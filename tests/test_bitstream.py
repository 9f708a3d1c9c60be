"""The container: round trips, strict parsing, and a fuzz campaign over hostile inputs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import combiner
from combiner import bitstream
from combiner.bitstream import Header
from combiner.errors import (
    BadMagicError,
    ChecksumError,
    InvalidFieldError,
    TrailingDataError,
    TruncatedError,
    UnsupportedVersionError,
)

FUZZ_INPUTS = 30_000  # mutated or truncated bitstreams tried by test_fuzz_mutations


def image_header(**changes) -> Header:
    fields = dict(modality="image", kappa=16, height=33, width=47, channels=3, sample_rate=0,
                  seed=12345, prior_hash=bytes(range(8)), prior_id="thumbnail-q2")
    fields.update(changes)
    return Header(**fields)


def versioned_header(spread_blocks: bool, chacha: bool, **changes) -> Header:
    """An image header of version 3, or of the ChaCha20 version that fits ``spread_blocks``."""
    version = (2 if spread_blocks else 1) if chacha else 3
    return image_header(spread_blocks=spread_blocks, version=version, **changes)


headers = st.one_of(
    st.builds(
        versioned_header,
        chacha=st.booleans(),
        kappa=st.integers(1, 20),
        height=st.integers(1, 4096),
        width=st.integers(1, 4096),
        channels=st.integers(1, 4),
        seed=st.integers(0, 2**64 - 1),
        prior_hash=st.binary(min_size=8, max_size=8),
        prior_id=st.text(alphabet="abcXYZ019._-", min_size=0, max_size=64),
        spread_blocks=st.booleans(),
    ),
    st.builds(
        lambda n, rate, kappa, seed: image_header(modality="audio", height=n, width=1, channels=1,
                                                  sample_rate=rate, kappa=kappa, seed=seed),
        st.integers(1, 2**24), st.integers(1, 1_000_000), st.integers(1, 20),
        st.integers(0, 2**64 - 1),
    ),
)


@settings(max_examples=300, deadline=None)
@given(header=headers, data=st.data())
def test_round_trip(header: Header, data) -> None:
    n = data.draw(st.integers(0, 300))
    indices = data.draw(st.lists(st.integers(0, 2**header.kappa - 1), min_size=n, max_size=n))
    blob = bitstream.pack(header, indices)
    varints = [header.height, header.width, header.channels, header.sample_rate, header.seed]
    fixed = 7 + sum(map(varint_len, varints)) + 8 + 1 + len(header.prior_id) + varint_len(n)
    assert len(blob) == fixed + (n * header.kappa + 7) // 8 + 4
    assert blob[:4] == b"CMB" + bytes([header.version])
    assert blob[6] == int(header.spread_blocks)
    assert int.from_bytes(blob[-4:], "little") == zlib.crc32(blob[:-4])
    back, idx = bitstream.unpack(blob)
    assert back == header
    assert idx.dtype == np.uint32 and idx.tolist() == indices


def test_chacha_streams_are_version_2_exactly_with_spread_blocks() -> None:
    plain = bitstream.pack(image_header(kappa=13, version=1), [3, 4])
    header = image_header(kappa=13, spread_blocks=True, version=2)
    blob = bitstream.pack(header, [3, 4])
    assert (plain[3], plain[6]) == (1, 0)  # streams without version-2 features stay version 1
    assert (blob[3], blob[6]) == (2, 1)
    back, idx = bitstream.unpack(blob)
    assert back == header and idx.tolist() == [3, 4]
    assert blob[:3] + blob[4:6] + blob[7:-4] == plain[:3] + plain[4:6] + plain[7:-4]
    for version, spread in [(1, True), (2, False), (4, False), (0, True)]:
        with pytest.raises(InvalidFieldError):
            bitstream.pack(image_header(spread_blocks=spread, version=version), [1])


def test_version_3_is_written_by_default_with_either_layout() -> None:
    assert image_header().version == bitstream.FORMAT_VERSION == 3
    for spread in (False, True):
        header = image_header(kappa=13, spread_blocks=spread)
        blob = bitstream.pack(header, [3, 4])
        assert (blob[3], blob[6]) == (3, int(spread))
        assert bitstream.unpack(blob)[0] == header


def varint_len(v: int) -> int:
    """Bytes of an unsigned LEB128 varint (docs/format.md)."""
    return max(1, (v.bit_length() + 6) // 7)


# Offsets in sample_blob(): magic 0-2, version 3, modality 4, kappa 5, flags 6, height 7,
# width 8, channels 9, sample rate 10, seed 11-12 (12345 takes two bytes), hash 13-20, id length 21.
ID_LEN_AT = 21


def sample_blob() -> bytes:
    return bitstream.pack(image_header(kappa=13), np.arange(57) * 97 % 8192)


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.mark.parametrize(
    "mutate, error",
    [
        (lambda b: b[:10], TruncatedError),
        (lambda b: b[:-1], TruncatedError),
        (lambda b: b"", TruncatedError),
        (lambda b: b"PNG\x89" + b[4:], BadMagicError),
        (lambda b: b[:3] + b"\x04" + b[4:], UnsupportedVersionError),
        (lambda b: b[:3] + b"\x00" + b[4:], UnsupportedVersionError),
        (lambda b: with_crc(b[:3] + b"\x02" + b[4:-4]), InvalidFieldError),  # version 2, no flag
        (lambda b: b[:-4] + bytes(4), ChecksumError),
        (lambda b: b + b"\x00", TrailingDataError),
        (lambda b: with_crc(b[:4] + b"\x07" + b[5:-4]), InvalidFieldError),  # modality 7
        (lambda b: with_crc(b[:3] + b"\x01" + b[4:6] + b"\x01" + b[7:-4]), InvalidFieldError),  # a flag in version 1
        (lambda b: with_crc(b[:6] + b"\x02" + b[7:-4]), InvalidFieldError),  # unknown flag, version 3
        (lambda b: with_crc(b[:3] + b"\x02" + b[4:6] + b"\x03" + b[7:-4]), InvalidFieldError),  # unknown flag
        (lambda b: with_crc(b[:7] + b"\x00" + b[8:-4]), InvalidFieldError),  # height 0
        (lambda b: with_crc(b[:7] + b"\xa1\x00" + b[8:-4]), InvalidFieldError),  # non-canonical
        (lambda b: with_crc(b[:7] + b"\xff" * 11 + b[8:-4]), InvalidFieldError),  # varint too long
        (lambda b: with_crc(b[:9] + b"\x09" + b[10:-4]), InvalidFieldError),  # 9 channels
        (lambda b: with_crc(b[:-5] + bytes([b[-5] | 1])), InvalidFieldError),  # padding bit
    ],
)
def test_defects_raise_typed_errors(mutate, error) -> None:
    with pytest.raises(error):
        bitstream.unpack(mutate(sample_blob()))
    assert issubclass(error, combiner.FormatError) and issubclass(error, ValueError)


def test_absurd_block_count_is_refused_before_allocating() -> None:
    blob = sample_blob()
    pos = ID_LEN_AT + 1 + blob[ID_LEN_AT]  # the block count varint (57: one byte)
    assert blob[pos] == 57
    huge = with_crc(blob[:pos] + b"\xff\xff\xff\xff\x0f" + blob[pos + 1:-4])  # 2^32 - 1
    with pytest.raises(InvalidFieldError):
        bitstream.unpack(huge)
    big = with_crc(blob[:pos] + b"\x80\x80\x80\x08" + blob[pos + 1:-4])  # 2^24: allowed, but short
    with pytest.raises(TruncatedError):
        bitstream.unpack(big)


def test_pack_refuses_bad_headers() -> None:
    with pytest.raises(InvalidFieldError):
        bitstream.pack(image_header(kappa=4), [16])
    with pytest.raises(InvalidFieldError):
        bitstream.pack(image_header(prior_id="has space"), [1])
    with pytest.raises(InvalidFieldError):
        bitstream.pack(image_header(modality="video"), [1])
    with pytest.raises(InvalidFieldError):
        bitstream.pack(image_header(height=2**20, width=2**20), [1])


def check_hostile(data: bytes) -> None:
    try:
        header, indices = bitstream.unpack(data)
    except combiner.FormatError:
        return
    # Anything accepted must be a canonical bitstream.
    assert bitstream.pack(header, indices) == data


def test_fuzz_mutations() -> None:
    """Seeded mutation fuzzing: bit flips, byte overwrites, truncations, insertions, splices."""
    rng = np.random.default_rng(20261127)
    seeds = [sample_blob(), bitstream.pack(image_header(modality="audio", height=48000, width=1,
                                                       channels=1, sample_rate=16000), [1, 2, 3]),
             bitstream.pack(image_header(spread_blocks=True), [7, 8])]
    for i in range(FUZZ_INPUTS):
        data = bytearray(seeds[i % len(seeds)])
        op = rng.integers(6)
        if op == 0:
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(len(data) * 8)
                data[pos // 8] ^= 1 << (pos % 8)
        elif op == 1:
            data[rng.integers(len(data))] = rng.integers(256)
        elif op == 2:
            data = data[: rng.integers(len(data))]
        elif op == 3:
            pos = rng.integers(len(data) + 1)
            data[pos:pos] = rng.bytes(rng.integers(1, 9))
        elif op == 4:
            data = data[:-4]  # re-sign a mutated body so that it reaches the field checks
            pos = rng.integers(len(data))
            data[pos] = rng.integers(256)
            data = bytearray(with_crc(bytes(data)))
        else:
            data = bytearray(rng.bytes(rng.integers(0, 200)))
        check_hostile(bytes(data))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    check_hostile(data)
    check_hostile(b"CMB\x01" + data)
    check_hostile(b"CMB\x02" + data)
