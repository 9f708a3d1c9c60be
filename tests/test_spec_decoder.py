"""The independent NumPy decoder of docs/format.md (tests/spec_decoder.py) against the committed
bitstreams, the shipped priors and the pinned output hashes of tests/vectors/decoded.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import spec_decoder as sd
from combiner import _core

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PRIORS = ROOT / "python" / "combiner" / "priors"
RETIRED = PRIORS / "retired"
DECODED = ROOT / "tests" / "vectors" / "decoded.json"

BITSTREAMS = sorted(DATA.glob("*.cmb"))
CURRENT = sorted(PRIORS.glob("*.safetensors"))
RETIRED_FILES = sorted(RETIRED.glob("*.safetensors"))
_RETIRED_NAME = re.compile(r"\A(?P<name>[A-Za-z0-9._-]+)\.(?P<hash>[0-9a-f]{16})\.safetensors\Z")


def _hash(path: Path) -> bytes:
    return _HASHES.setdefault(path, sd.content_hash(path.read_bytes()))


_HASHES: dict[Path, bytes] = {}


def _header(path: Path) -> dict:
    header, _ = _core.unpack(path.read_bytes())
    return header


def find_prior(header: dict) -> Path:
    """The shipped prior a bitstream names: current NAME.safetensors if its hash matches, else
    retired/NAME.HASHHEX.safetensors (docs/format.md, section 5)."""
    name, prefix = header["prior_id"], bytes(header["prior_hash"])
    candidates = [PRIORS / f"{name}.safetensors", RETIRED / f"{name}.{prefix.hex()}.safetensors"]
    found = [p for p in candidates if p.exists() and _hash(p)[:8] == prefix]
    if not found:
        raise LookupError(f"no shipped prior {name} with hash {prefix.hex()}")
    return found[0]


_OUTPUTS: dict[tuple[Path, Path], np.ndarray] = {}


def _decode(path: Path, prior_path: Path) -> np.ndarray:
    """The spec decoder's output, decoded once per (bitstream, prior) in a session."""
    key = (path, prior_path)
    if key not in _OUTPUTS:
        _OUTPUTS[key] = sd.decode(path.read_bytes(), prior_path.read_bytes())
    return _OUTPUTS[key]


def _decoded_cases() -> dict[str, dict]:
    doc = json.loads(DECODED.read_text())
    return {Path(case["bitstream"]).as_posix(): case for case in doc["cases"]}


def _rel(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def test_there_is_something_to_check():
    assert BITSTREAMS and CURRENT and RETIRED_FILES


@pytest.mark.parametrize("path", BITSTREAMS, ids=lambda p: p.name)
def test_decodes_to_the_header_shape(path):
    header = _header(path)
    out = _decode(path, find_prior(header))
    if header["modality"] == "image":
        assert out.dtype == np.uint8
        assert out.shape == (header["height"], header["width"], header["channels"])
    else:
        assert out.dtype == np.int16
        assert out.shape == (header["height"],)
        assert int(out.min()) >= -32767


@pytest.mark.parametrize("path", BITSTREAMS, ids=lambda p: p.name)
def test_output_hash_matches_decoded_json(path):
    if not DECODED.exists():
        pytest.skip(f"{_rel(DECODED)} does not exist yet: no pinned output hashes to compare with")
    cases = _decoded_cases()
    case = cases.get(_rel(path))
    if case is None:
        pytest.skip(f"{_rel(path)} has no entry in {_rel(DECODED)}")
    prior_path = find_prior(_header(path))
    recorded_prior = ROOT / case["prior"]
    if recorded_prior.exists():
        # The file the pinned hash was made with is the one the bitstream names.
        assert _hash(recorded_prior)[:8] == _hash(prior_path)[:8]
        prior_path = recorded_prior
    out = _decode(path, prior_path)
    assert sd.output_sha256(out) == case["sha256"], (
        f"{path.name}: the spec decoder's output hash differs from {_rel(DECODED)}"
    )


def test_decoded_json_names_committed_bitstreams():
    if not DECODED.exists():
        pytest.skip(f"{_rel(DECODED)} does not exist yet")
    for name, case in _decoded_cases().items():
        assert (ROOT / name).exists(), f"{_rel(DECODED)} names a missing bitstream {name}"
        assert re.fullmatch(r"[0-9a-f]{64}", case["sha256"]), case


@pytest.mark.parametrize("path", RETIRED_FILES, ids=lambda p: p.name)
def test_retired_prior_hash_matches_file_name(path):
    m = _RETIRED_NAME.match(path.name)
    assert m, f"retired prior {path.name} is not named NAME.HASH.safetensors"
    assert _hash(path).hex().startswith(m["hash"])
    prior = sd.read_prior(path.read_bytes())
    assert prior["kind"].get("name") == m["name"]


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.name)
def test_current_prior_hash_matches_bitstreams(path):
    name = path.name[: -len(".safetensors")]
    prior = sd.read_prior(path.read_bytes())
    assert prior["kind"].get("name") == name
    h = _hash(path)
    retired = {
        m["hash"]
        for p in RETIRED_FILES
        if (m := _RETIRED_NAME.match(p.name)) and m["name"] == name
    }
    users = [
        b for b in BITSTREAMS
        if _header(b)["prior_id"] == name and bytes(_header(b)["prior_hash"]).hex() not in retired
    ]
    assert len(h) == 32
    for b in users:  # none for most current priors: only their parsing is checked then
        assert bytes(_header(b)["prior_hash"]) == h[:8], f"{b.name} names {name} with another hash"


@pytest.mark.parametrize("path", BITSTREAMS, ids=lambda p: p.name)
def test_every_bitstream_names_exactly_one_shipped_prior(path):
    header = _header(path)
    prefix = bytes(header["prior_hash"])
    matches = [p for p in CURRENT + RETIRED_FILES if _hash(p)[:8] == prefix]
    assert len(matches) == 1, [p.name for p in matches]
    assert matches[0] == find_prior(header)


def test_wrong_prior_is_a_mismatch():
    path = DATA / "cifar10-test-00000.thumbnail-q1.cmb"
    header = _header(path)
    wrong = PRIORS / f"{header['prior_id']}.safetensors"
    assert _hash(wrong)[:8] != bytes(header["prior_hash"])
    with pytest.raises(sd.PriorMismatchError):
        sd.decode(path.read_bytes(), wrong.read_bytes())
    assert issubclass(sd.PriorMismatchError, ValueError)


def test_malformed_prior_is_refused():
    data = (PRIORS / "thumbnail-q1.safetensors").read_bytes()
    with pytest.raises(sd.PriorFormatError):
        sd.read_prior(data[:-4])
    with pytest.raises(sd.PriorFormatError):
        sd.read_prior(data[:6])


def test_sine_and_cosine_of_7_4():
    rng = np.random.default_rng(7)
    t = np.concatenate(
        [rng.uniform(-65536, 65536, 200_000), rng.uniform(-50, 50, 200_000)]
    ).astype(np.float32)
    s, c = sd.sin_cos(t)
    assert s.dtype == c.dtype == np.float32
    assert np.max(np.abs(s - np.sin(t.astype(np.float64)))) < 1e-6
    assert np.max(np.abs(c - np.cos(t.astype(np.float64)))) < 1e-6
    edge = np.array([np.nan, np.inf, -np.inf, 65536.0078125, -1e30], dtype=np.float32)
    s, c = sd.sin_cos(edge)
    assert np.all(s == 0) and np.all(c == 0) and not np.any(np.signbit(s) | np.signbit(c))
    s, c = sd.sin_cos(np.array([0.0, 65536.0], dtype=np.float32))
    assert s[0] == 0 and c[0] == 1 and s[1] != 0


def test_coordinates_of_7_2():
    assert sd.coordinates(1).tolist() == [0.0]
    assert sd.coordinates(2).tolist() == [-1.0, 1.0]
    x = sd.coordinates(64)
    assert x[0] == -1 and x[-1] == 1 and np.all(x[:32] == -x[::-1][:32])


# --------------------------------------------------------------------------------------------
# Version 3 (section 4.2), implemented by the spec decoder itself
# --------------------------------------------------------------------------------------------

CANDIDATES_V3 = ROOT / "tests" / "vectors" / "candidates_v3.json"


def _f32_hex(values: list[str]) -> np.ndarray:
    """Big-endian hex bit patterns to float32."""
    return np.array([int(h, 16) for h in values], dtype=np.uint32).view(np.float32)


def test_v3_philox_reproduces_the_known_answers():
    for case in json.loads(CANDIDATES_V3.read_text())["philox4x32_10"]:
        counter = np.array([[int(w, 16) for w in case["counter"]]], dtype=np.uint32)
        k0, k1 = (int(w, 16) for w in case["key"])
        out = sd.philox4x32_10(counter, (k0, k1))[0]
        assert [f"{w:08x}" for w in out] == case["output"]


@pytest.mark.parametrize("case", json.loads(CANDIDATES_V3.read_text())["cases"],
                         ids=lambda c: f"{c['seed']}-{c['block_id']}-{c['index']}-{c['dim']}")
def test_v3_candidates_reproduce_the_vectors_bit_for_bit(case):
    seed, block, index, dim = int(case["seed"]), int(case["block_id"]), case["index"], case["dim"]
    z = sd.v3_normals(sd.v3_words(seed, block, index, dim))
    assert z.view(np.uint32).tolist() == [int(h, 16) for h in case["normals_f32_be_hex"]]
    mean, std = (_f32_hex(case[k]) for k in ("prior_mean_f32_be_hex", "prior_std_f32_be_hex"))
    x = sd.v3_samples(mean, std, np.array([dim]), np.array([block], dtype=np.uint64),
                      np.array([index]), seed=seed)
    assert x.view(np.uint32).tolist() == [int(h, 16) for h in case["sample_f32_be_hex"]]


def test_v3_normals_agree_with_the_rust_core_on_many_words():
    """A 65536-dimension candidate: about 10,000 tail words among its 2^16."""
    z = sd.v3_normals(sd.v3_words(77, 2**35 + 9, 4242, 1 << 16))
    rust = _core.candidate_normals(seed=77, block_id=2**35 + 9, dim=1 << 16, index=4242, version=3)
    assert rust.dtype == np.float32
    assert np.array_equal(z.view(np.uint32), rust.view(np.uint32))
    assert 0.1 < np.mean(np.abs(z) > 1.4395) < 0.2  # the tails (|q| > 0.425) are exercised


def test_v3_normals_are_antisymmetric_and_bounded_over_every_magnitude():
    m = np.arange(1 << 23, dtype=np.uint32)
    z = sd.v3_normals(m)
    assert np.array_equal(sd.v3_normals(m | np.uint32(1 << 31)), -z)
    assert z.min() > 0 and z.max().view(np.uint32) == 0x40AD7081  # 5.4199834, section 4.2
    assert np.all(np.diff(z) >= -np.spacing(z[1:]))  # steps down by one ulp at most


def _as_version_3(data: bytes) -> bytes:
    """The same header and indices, written as a version-3 bitstream."""
    header, indices = _core.unpack(data)
    return _core.pack(**{**header, "version": 3}, indices=indices)


@pytest.mark.parametrize("name", ["cifar10-test-00000.thumbnail-q1.cmb",
                                  "kodim05-crop96x64.photo-q1.spread.cmb"])
def test_v3_bitstreams_decode_to_the_rust_decoders_output(name):
    """Committed bitstreams re-written as version 3 (other weights, the same layout): the spec
    decoder's version-3 generator against the Rust decoder's, through the whole decode."""
    data = _as_version_3((DATA / name).read_bytes())
    header = _header_of(data)
    assert header["version"] == 3
    prior_path = find_prior(header)
    ours = sd.decode(data, prior_path.read_bytes())
    _, rust = _core.decode(data, prior_path.read_bytes())
    assert ours.dtype == rust.dtype and np.array_equal(ours, rust)


def _header_of(data: bytes) -> dict:
    header, _ = _core.unpack(data)
    return header
