"""An independent NumPy reference decoder written from `docs/format.md` alone.

It implements the prior file and its content hash (section 5), the block layout (section 4.1),
the candidate generator of version 3 (section 4.2: Philox4x32-10 and the binary32 normal) and
the reconstruction (section 7), and checks a bitstream against its prior (section 3). It calls
only three functions of the Rust extension: `unpack` (the container, section 2-3),
`permutation` (the spread-block permutation, section 4.1) and, for versions 1 and 2,
`decode_blocks` (the ChaCha20 candidate generator of section 4, which needs the pinned `libm`).

Every accumulation of section 7 is an explicit loop over the inner index in the specified
order, vectorised only across points and patches; each elementwise float32 `*` or `+` of NumPy
is one IEEE binary32 operation, rounded to nearest even, so the result is the bit-exact output
the specification defines.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from typing import Any

import numpy as np

__all__ = [
    "SpecError",
    "PriorFormatError",
    "PriorMismatchError",
    "InvalidFieldError",
    "read_prior",
    "content_hash",
    "weights",
    "reconstruct",
    "decode",
    "output_sha256",
    "sin_cos",
    "philox4x32_10",
    "v3_words",
    "v3_normals",
    "v3_ln",
    "v3_samples",
]


class SpecError(ValueError):
    """Base class of this decoder's errors."""


class PriorFormatError(SpecError):
    """The prior file departs from section 5 (or 7.2's constraints on `config`)."""


class PriorMismatchError(SpecError):
    """The bitstream is well formed but belongs to another prior (section 3)."""


class InvalidFieldError(SpecError):
    """A field is valid on its own but the signal it describes is refused (section 3, 5 and 7)."""


# --------------------------------------------------------------------------------------------
# Section 5: the prior file
# --------------------------------------------------------------------------------------------

_MAX_FILE = 1 << 30
_MAX_HEADER = 10**8
_HASH_KEYS = ("config", "format", "kappa", "kind", "seed", "version")
_DTYPES = {"F32": (np.dtype("<f4"), 4), "I64": (np.dtype("<i8"), 8)}
# Every dtype name the safetensors format defines (a file with another one is malformed).
_ST_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
}
_DECIMAL = re.compile(r"\A(0|[1-9][0-9]{0,19})\Z")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _decimal(meta: dict, key: str, lo: int, hi: int) -> int:
    s = meta[key]
    if not _DECIMAL.match(s):
        raise PriorFormatError(f"prior metadata {key}={s!r} is not a decimal integer")
    v = int(s)
    if not lo <= v <= hi:
        raise PriorFormatError(f"prior metadata {key}={v} is outside {lo}..{hi}")
    return v


def _canonical_object(meta: dict, key: str) -> dict:
    s = meta[key]

    def no_constants(name: str) -> Any:
        raise PriorFormatError(f"prior metadata {key} holds the non-JSON number {name}")

    try:
        obj = json.loads(s, parse_constant=no_constants)
    except json.JSONDecodeError as e:
        raise PriorFormatError(f"prior metadata {key} is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise PriorFormatError(f"prior metadata {key} is not a JSON object")
    try:
        canon = _canonical(obj)
    except ValueError as e:  # a float that overflowed to infinity on parsing
        raise PriorFormatError(f"prior metadata {key} is not finite JSON: {e}") from None
    if canon != s:
        raise PriorFormatError(f"prior metadata {key} is not in canonical JSON form")
    return obj


def _parse_safetensors(data: bytes) -> tuple[dict, dict]:
    """Splits a safetensors file into (metadata, {name: 1-D ndarray}), checking the container."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("a prior is given as its file's bytes")
    data = bytes(data)
    if len(data) > _MAX_FILE:
        raise PriorFormatError(f"prior file of {len(data)} bytes is above 2^30")
    if len(data) < 8:
        raise PriorFormatError("prior file shorter than its 8-byte header length")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > _MAX_HEADER:
        raise PriorFormatError(f"prior header of {n} bytes is above 10^8")
    if 8 + n > len(data):
        raise PriorFormatError("prior header runs past the end of the file")
    raw = data[8 : 8 + n]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PriorFormatError("prior header is not UTF-8") from None
    if not text.startswith("{"):
        raise PriorFormatError("prior header does not start with '{'")

    def no_dupes(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise PriorFormatError(f"prior header repeats the key {k!r}")
            d[k] = v
        return d

    def no_constants(name: str) -> Any:
        raise PriorFormatError(f"prior header holds the non-JSON number {name}")

    try:
        header = json.loads(text, object_pairs_hook=no_dupes, parse_constant=no_constants)
    except json.JSONDecodeError as e:
        raise PriorFormatError(f"prior header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise PriorFormatError("prior header is not a JSON object")

    meta = header.pop("__metadata__", None)
    if meta is None:
        raise PriorFormatError("prior has no __metadata__")
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise PriorFormatError("prior __metadata__ is not a string-to-string map")

    buf = data[8 + n :]
    spans = []
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise PriorFormatError(f"prior tensor {name!r}: malformed entry")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ST_DTYPE_SIZES:
            raise PriorFormatError(f"prior tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            type(s) is int and s >= 0 for s in shape
        ):
            raise PriorFormatError(f"prior tensor {name!r}: malformed shape")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(type(o) is int and o >= 0 for o in offs)
            or offs[0] > offs[1]
        ):
            raise PriorFormatError(f"prior tensor {name!r}: malformed data_offsets")
        count = math.prod(shape)
        if count * _ST_DTYPE_SIZES[dtype] != offs[1] - offs[0]:
            raise PriorFormatError(f"prior tensor {name!r}: size disagrees with shape")
        spans.append((offs[0], offs[1], name))
        if dtype in _DTYPES and len(shape) == 1 and offs[1] <= len(buf):
            np_dtype, _ = _DTYPES[dtype]
            tensors[name] = (dtype, np.frombuffer(buf, dtype=np_dtype, count=count, offset=offs[0]))
        else:
            tensors[name] = (dtype, None)
    # The data buffer is covered exactly, without gaps or overlaps.
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise PriorFormatError(f"prior tensor {name!r}: data not contiguous")
        pos = end
    if pos != len(buf):
        raise PriorFormatError("prior data buffer has bytes no tensor covers")
    # Cross-check the container with the safetensors library itself.
    try:
        from safetensors.numpy import load

        loaded = load(data)
    except Exception as e:  # noqa: BLE001 - any complaint of the library is a format error
        raise PriorFormatError(f"safetensors refuses the prior: {e}") from None
    for name, (_dtype, arr) in tensors.items():
        if arr is not None and not np.array_equal(
            np.asarray(loaded[name]).reshape(-1).view(arr.dtype.newbyteorder("=")),
            arr,
            equal_nan=True,
        ):
            raise PriorFormatError(f"prior tensor {name!r}: inconsistent reading")
    return meta, tensors


def _hash_of(meta: dict, tensors: dict) -> bytes:
    h = hashlib.sha256()
    h.update(b"combiner-prior-hash-v1\x00")
    m = _canonical({k: meta[k] for k in _HASH_KEYS}).encode("utf-8")
    h.update(struct.pack("<Q", len(m)))
    h.update(m)
    for name in sorted(tensors):
        arr = tensors[name]
        h.update(name.encode("ascii") + b"\x00")
        h.update(struct.pack("<Q", arr.size))
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


def param_count(config: dict) -> tuple[int, int, list[tuple[int, int]]]:
    """(D, K, [(in_l, out_l)]) of a network configuration (section 7.2, 7.3)."""
    n, c, f, wd, h = (config[k] for k in ("in_dim", "out_dim", "num_freqs", "width", "depth"))
    dims = [(2 * n * f if l == 0 else wd, wd if l < h else c) for l in range(h + 1)]
    d = sum((i + 1) * o for i, o in dims)
    k = sum((i + 1) ** 2 + o * o for i, o in dims)
    return d, k, dims


def _check_config(cfg: dict) -> dict:
    ints = ("in_dim", "out_dim", "num_freqs", "width", "depth")
    nums = ("max_freq", "w0")
    extra = set(cfg) - set(ints) - set(nums)
    for key in ("latent_grid", "latent_channels"):
        if key in cfg:
            v = cfg[key]
            # A zero (or null) latent setting is the absence of latents: tolerated, ignored.
            if not (v is None or (type(v) in (int, float) and v == 0)):
                raise PriorFormatError(f"prior config sets {key}={v!r}: latents are not in this format")
            extra.discard(key)
    if extra:
        raise PriorFormatError(f"prior config has unknown keys {sorted(extra)}")
    missing = [k for k in ints + nums if k not in cfg]
    if missing:
        raise PriorFormatError(f"prior config lacks {missing}")
    for k in ints:
        v = cfg[k]
        if type(v) is not int or not 1 <= v <= 4096:
            raise PriorFormatError(f"prior config {k}={v!r} is not an integer in 1..4096")
    for k in nums:
        v = cfg[k]
        if type(v) not in (int, float) or not math.isfinite(v):
            raise PriorFormatError(f"prior config {k}={v!r} is not a finite number")
    if not cfg["max_freq"] >= 1:
        raise PriorFormatError(f"prior config max_freq={cfg['max_freq']!r} is below 1")
    if not cfg["w0"] > 0:
        raise PriorFormatError(f"prior config w0={cfg['w0']!r} is not positive")
    if cfg["in_dim"] not in (1, 2):
        raise PriorFormatError(f"prior config in_dim={cfg['in_dim']} is neither 1 nor 2")
    return {k: cfg[k] for k in ints + nums}


def read_prior(data: bytes) -> dict:
    """Parses and validates a prior file (section 5). Raises PriorFormatError."""
    meta, raw = _parse_safetensors(data)
    missing = [k for k in _HASH_KEYS if k not in meta]
    if missing:
        raise PriorFormatError(f"prior metadata lacks {missing}")
    if meta["format"] != "combiner-prior":
        raise PriorFormatError(f"prior metadata format={meta['format']!r}")
    if meta["version"] not in ("1", "2"):
        raise PriorFormatError(f"prior metadata version={meta['version']!r}")
    version = int(meta["version"])
    kappa = _decimal(meta, "kappa", 1, 64)
    seed = _decimal(meta, "seed", 0, 2**64 - 1)
    config = _check_config(_canonical_object(meta, "config"))
    kind = _canonical_object(meta, "kind")
    modality = kind.get("modality")
    if modality not in ("image", "audio"):
        raise PriorFormatError(f"prior kind.modality={modality!r}")
    shape = kind.get("patch_shape")
    want = 2 if modality == "image" else 1
    if (
        not isinstance(shape, list)
        or len(shape) != want
        or not all(type(s) is int and 1 <= s <= 1 << 16 for s in shape)
    ):
        raise PriorFormatError(f"prior kind.patch_shape={shape!r} does not fit modality {modality}")
    if config["in_dim"] != want:
        raise PriorFormatError(f"prior config in_dim={config['in_dim']} does not fit modality {modality}")
    if modality == "audio" and config["out_dim"] != 1:
        raise PriorFormatError(f"audio prior with out_dim={config['out_dim']}")

    names = {"mean", "std", "block_index"} | ({"mix"} if version == 2 else set())
    if set(raw) != names:
        raise PriorFormatError(f"prior tensors {sorted(raw)}, want {sorted(names)}")
    d, k, dims = param_count(config)
    want_dtype = {"mean": "F32", "std": "F32", "block_index": "I64", "mix": "F32"}
    want_len = {"mean": d, "std": d, "block_index": d, "mix": k}
    tensors = {}
    for name in names:
        dtype, arr = raw[name]
        if dtype != want_dtype[name] or arr is None or arr.size != want_len[name]:
            raise PriorFormatError(
                f"prior tensor {name!r} must be {want_dtype[name]}[{want_len[name]}]"
            )
        tensors[name] = arr
    mean, std, bidx = tensors["mean"], tensors["std"], tensors["block_index"]
    if not np.all(np.isfinite(mean)):
        raise PriorFormatError("prior mean is not finite")
    if not (np.all(np.isfinite(std)) and np.all(std > 0)):
        raise PriorFormatError("prior std is not finite and positive")
    j = int(bidx.max()) + 1
    if int(bidx.min()) < 0 or len(np.unique(bidx)) != j:
        raise PriorFormatError("prior block_index values are not exactly 0..J-1")
    if version == 2 and not np.all(np.isfinite(tensors["mix"])):
        raise PriorFormatError("prior mix is not finite")

    mix_l = None
    if version == 2:
        mix = tensors["mix"].astype(np.float32)
        mix_l, pos = [], 0
        for i, o in dims:
            lm = mix[pos : pos + (i + 1) ** 2].reshape(i + 1, i + 1)
            pos += (i + 1) ** 2
            rm = mix[pos : pos + o * o].reshape(o, o)
            pos += o * o
            mix_l.append((lm, rm))
    return {
        "metadata": dict(meta),
        "version": version,
        "kappa": kappa,
        "seed": seed,
        "config": config,
        "kind": kind,
        "modality": modality,
        "patch_shape": tuple(shape),
        "D": d,
        "J": j,
        "dims": dims,
        "mean": mean.astype(np.float32),
        "std": std.astype(np.float32),
        "block_index": bidx.astype(np.int64),
        "mix": mix_l,
        "hash": _hash_of(meta, tensors),
    }


def content_hash(data: bytes) -> bytes:
    """The 32-byte content hash of a prior file (section 5)."""
    return read_prior(data)["hash"]


# --------------------------------------------------------------------------------------------
# Section 3 (checks against the prior) and 4.1 (block layout)
# --------------------------------------------------------------------------------------------


def _patch_grid(header: dict, prior: dict) -> tuple[int, ...]:
    """(P, R, Q) for images, (P,) for audio (section 7.1)."""
    if prior["modality"] == "image":
        ph, pw = prior["patch_shape"]
        r = -(-header["height"] // ph)
        q = -(-header["width"] // pw)
        return (r * q, r, q)
    (length,) = prior["patch_shape"]
    return (-(-header["height"] // length),)


def check_against_prior(header: dict, indices: np.ndarray, prior: dict) -> int:
    """The seven checks of section 3 against the prior, in order; returns P."""
    if bytes(header["prior_hash"]) != prior["hash"][:8]:
        raise PriorMismatchError(
            f"bitstream names prior hash {bytes(header['prior_hash']).hex()}, "
            f"the prior given hashes to {prior['hash'][:8].hex()}"
        )
    if header["kappa"] != prior["kappa"]:
        raise PriorMismatchError(f"bitstream kappa {header['kappa']} != prior kappa {prior['kappa']}")
    if header["modality"] != prior["modality"]:
        raise PriorMismatchError(
            f"bitstream modality {header['modality']} != prior modality {prior['modality']}"
        )
    out_dim = prior["config"]["out_dim"] if prior["modality"] == "image" else 1
    if header["channels"] != out_dim:
        raise PriorMismatchError(f"bitstream channels {header['channels']} != prior outputs {out_dim}")
    p = _patch_grid(header, prior)[0]
    d, j = prior["D"], prior["J"]
    if p * d > 1 << 27:
        raise InvalidFieldError(f"{p} patches x {d} parameters = {p * d} weights, above 2^27")
    if len(indices) != p * j:
        raise PriorMismatchError(f"block_count {len(indices)} != P x J = {p} x {j}")
    if header.get("spread_blocks"):
        n = p * d
        b = np.arange(p * j + 1, dtype=np.int64)
        sizes = np.diff((b * n) // (p * j))
    else:
        sizes = np.bincount(prior["block_index"], minlength=j)
    if sizes.min() < 1 or sizes.max() > 1 << 16:
        raise InvalidFieldError(f"block dimensions {sizes.min()}..{sizes.max()} outside 1..2^16")
    return p


def block_layout(header: dict, prior: dict, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(sizes [P x J], flat indices of every block's weights, concatenated in block order)."""
    d, j = prior["D"], prior["J"]
    n = p * d
    nb = p * j
    if header.get("spread_blocks"):
        from combiner import _core

        pi = np.asarray(_core.permutation(seed=header["seed"], n=n), dtype=np.int64)
        if pi.shape != (n,):
            raise AssertionError("permutation of the wrong length")
        b = np.arange(nb + 1, dtype=np.int64)
        bounds = (b * n) // nb
        sizes = np.diff(bounds)
        block_of_t = np.repeat(np.arange(nb, dtype=np.int64), sizes)
        order = np.lexsort((pi, block_of_t))  # by block, then ascending flat index
        flat = pi[order]
    else:
        bidx = prior["block_index"]
        part = [np.flatnonzero(bidx == jj) for jj in range(j)]  # ascending parameter order
        sizes_j = np.array([len(x) for x in part], dtype=np.int64)
        per_patch = np.concatenate(part)  # parameters of part 0, part 1, ...
        flat = (np.arange(p, dtype=np.int64)[:, None] * d + per_patch[None, :]).reshape(-1)
        sizes = np.tile(sizes_j, p)
    return sizes, flat


def weights(bitstream: bytes, prior) -> np.ndarray:
    """The regenerated weights of a bitstream, float32 [P, D] (sections 3, 4, 4.1, 4.2)."""
    from combiner import _core

    if not isinstance(prior, dict):
        prior = read_prior(prior)
    header, indices = _core.unpack(bytes(bitstream))
    indices = np.asarray(indices, dtype=np.uint32)
    p = check_against_prior(header, indices, prior)
    d = prior["D"]
    sizes, flat = block_layout(header, prior, p)
    param = flat % d
    mu = np.ascontiguousarray(prior["mean"][param], dtype=np.float32)
    sigma = np.ascontiguousarray(prior["std"][param], dtype=np.float32)
    block_ids = np.arange(len(sizes), dtype=np.uint64)
    if header["version"] == 3:
        samples = v3_samples(mu, sigma, sizes, block_ids, indices, seed=header["seed"])
    else:
        samples = _core.decode_blocks(
            mu,
            sigma,
            sizes.astype(np.uint64),
            block_ids,
            indices,
            seed=header["seed"],
            kappa=header["kappa"],
            version=header["version"],
        )
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape != (p * d,):
        raise AssertionError("the candidate generator returned the wrong number of samples")
    w = np.empty(p * d, dtype=np.float32)
    w[flat] = samples
    return w.reshape(p, d)


# --------------------------------------------------------------------------------------------
# Section 4.2: the candidate generator of version 3
# --------------------------------------------------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Section 4.2 step 1 on counters uint32 [..., 4] under key (k0, k1): output uint32 [..., 4]."""
    x = [np.asarray(counter, dtype=np.uint64)[..., i] for i in range(4)]
    k0, k1 = key
    for _ in range(10):
        p = np.uint64(0xD2511F53) * x[0]  # exact: both factors are below 2^32
        q = np.uint64(0xCD9E8D57) * x[2]
        x = [(q >> np.uint64(32)) ^ x[1] ^ np.uint64(k0), q & _MASK32,
             (p >> np.uint64(32)) ^ x[3] ^ np.uint64(k1), p & _MASK32]
        k0 = (k0 + 0x9E3779B9) % 2**32
        k1 = (k1 + 0xBB67AE85) % 2**32
    return np.stack(x, axis=-1).astype(np.uint32)


def v3_words(seed: int, block_id: int, index: int, dim: int) -> np.ndarray:
    """The words of dimensions 0 .. dim - 1 of candidate `index` of a block (step 1)."""
    groups = np.arange((dim + 3) // 4, dtype=np.uint64)
    counter = np.stack([np.full_like(groups, index), groups,
                        np.full_like(groups, block_id % 2**32), np.full_like(groups, block_id >> 32)],
                       axis=-1)
    return philox4x32_10(counter, (seed % 2**32, seed >> 32)).reshape(-1)[:dim]


def _bits_f32(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


_V3 = {name: _bits_f32(bits) for name, bits in {
    "A0": 0x4058C6C8, "A1": 0x4249BCB2, "A2": 0x431F4A88, "A3": 0x426C7000,
    "B1": 0x418F294F, "B2": 0x429D83F9, "B3": 0x42866008,
    "C0": 0x3FB63331, "C1": 0x40306FAA, "C2": 0x3FA742E1, "C3": 0x3E2E52ED,
    "D1": 0x3F3CAC24, "D2": 0x3DF6315C,
    "L0": 0x3EAAAAAA, "L1": 0xBE7FFFFC, "L2": 0x3E4CCEAC, "L3": 0xBE2AAE50, "L4": 0x3E11E9BF,
    "L5": 0xBDFE5D4F, "L6": 0x3DEF251A, "L7": 0xBDEBD1B8, "L8": 0x3D9021BB,
    "Q1": 0xB95E8083, "Q2": 0x3F318000, "SQRTH": 0x3F3504F3,
    "CONST1": 0x3E38F5C3, "CONST2": 0x3FCCCCCD,
}.items()}


def _poly(coefficients: list[np.float32], x: np.ndarray) -> np.ndarray:
    """Horner's rule from the highest coefficient, each step a binary32 multiply then add."""
    acc = np.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = (acc * x) + c
    return acc


def v3_ln(t: np.ndarray) -> np.ndarray:
    """Section 4.2 step 4 on positive normal binary32 values."""
    t = np.asarray(t, dtype=np.float32)
    bits = t.view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int64) - 126
    x0 = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F000000)).view(np.float32)
    small = x0 < _V3["SQRTH"]
    e = np.where(small, e - 1, e)
    one = np.float32(1.0)
    f = np.where(small, (x0 + x0) - one, x0 - one).astype(np.float32)
    z2 = f * f
    y = _poly([_V3[f"L{i}"] for i in range(9)], f)
    y = (y * f) * z2
    big_e = e.astype(np.float32)
    y = y + (big_e * _V3["Q1"])
    y = y - (np.float32(0.5) * z2)
    return (f + y) + (big_e * _V3["Q2"])


def v3_normals(words: np.ndarray) -> np.ndarray:
    """Section 4.2 steps 2 and 3: the binary32 standard normal of each 32-bit word."""
    w = np.asarray(words, dtype=np.uint32)
    m = w & np.uint32(0x007FFFFF)
    negative = (w >> np.uint32(31)) == 1
    h = (2 * m.astype(np.int64) + 1).astype(np.float32) * np.float32(2.0**-25)  # exact
    central = m <= 7130316
    with np.errstate(invalid="ignore", divide="ignore"):
        r = _V3["CONST1"] - (h * h)
        num_c = h * _poly([_V3["A0"], _V3["A1"], _V3["A2"], _V3["A3"]], r)
        den_c = _poly([np.float32(1.0), _V3["B1"], _V3["B2"], _V3["B3"]], r)
        t = np.float32(0.5) - h
        rt = np.sqrt(-v3_ln(t)) - _V3["CONST2"]
        num_t = _poly([_V3["C0"], _V3["C1"], _V3["C2"], _V3["C3"]], rt)
        den_t = _poly([np.float32(1.0), _V3["D1"], _V3["D2"]], rt)
        z = np.where(central, num_c, num_t) / np.where(central, den_c, den_t)
    return np.where(negative, -z, z).astype(np.float32)


def v3_samples(mu: np.ndarray, sigma: np.ndarray, sizes: np.ndarray, block_ids: np.ndarray,
               indices: np.ndarray, *, seed: int) -> np.ndarray:
    """The weights of blocks coded with `indices` (section 4.2 step 5), concatenated."""
    out = np.empty(int(np.sum(sizes)), dtype=np.float32)
    start = 0
    for size, block, index in zip(sizes, block_ids, indices):
        size = int(size)
        z = v3_normals(v3_words(seed, int(block), int(index), size))
        out[start:start + size] = mu[start:start + size] + (sigma[start:start + size] * z)
        start += size
    return out


# --------------------------------------------------------------------------------------------
# Section 7: reconstruction
# --------------------------------------------------------------------------------------------


def _f32(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


TWO_OVER_PI = _f32(0x3F22F983)
P1 = _f32(0x3FC90000)
P2 = _f32(0x39FDA000)
P3 = _f32(0x33A22169)
MAGIC = _f32(0x4B400000)
S1 = _f32(0xBE2AAAA3)
S2 = _f32(0x3C08839E)
S3 = _f32(0xB94CA1F9)
C1 = _f32(0x3D2AAAA5)
C2 = _f32(0xBAB6061A)
C3 = _f32(0x37CCF5CE)
PI32 = _f32(0x40490FDB)
HALF = np.float32(0.5)
ONE = np.float32(1.0)
LIMIT = np.float32(65536.0)


def sin_cos(t: np.ndarray, want: str = "both"):
    """Section 7.4 on a float32 array: returns sin, cos or (sin, cos)."""
    t = np.asarray(t, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.abs(t) <= LIMIT  # False for NaN
        t = np.where(ok, t, np.float32(0.0))
        j = ((t * TWO_OVER_PI) + MAGIC) - MAGIC
        r = ((t - j * P1) - j * P2) - j * P3
        z = r * r
        q = j.astype(np.int32) & 3  # j mod 4, in 0..3 for negative j too
        out = []
        a = S3 * z
        a = a + S2
        a = a * z
        a = a + S1
        a = a * z
        a = a * r
        sr = a + r
        b = C3 * z
        b = b + C2
        b = b * z
        b = b + C1
        b = b * z
        b = b * z
        b = b - HALF * z
        cr = b + ONE
        zero = np.float32(0.0)
        if want in ("sin", "both"):
            s = np.select([q == 0, q == 1, q == 2], [sr, cr, -sr], -cr)
            out.append(np.where(ok, s, zero).astype(np.float32))
        if want in ("cos", "both"):
            c = np.select([q == 0, q == 1, q == 2], [cr, -sr, -cr], sr)
            out.append(np.where(ok, c, zero).astype(np.float32))
    return tuple(out) if want == "both" else out[0]


def coordinates(k: int) -> np.ndarray:
    """Section 7.2: the coordinates of an axis of k points, float32."""
    if k == 1:
        return np.zeros(1, dtype=np.float32)
    num = 2 * np.arange(k, dtype=np.int64) - (k - 1)
    return (num.astype(np.float64) / float(k - 1)).astype(np.float32)


def frequencies(config: dict) -> np.ndarray:
    """Section 7.2: f_k, float32. Python's math.log/exp (the platform libm) stand in for libm 0.2.16."""
    f = config["num_freqs"]
    if f == 1:
        return np.ones(1, dtype=np.float32)
    a = math.log(float(config["max_freq"]))
    return np.array([math.exp((k * a) / (f - 1)) for k in range(f)], dtype=np.float64).astype(
        np.float32
    )


def features(prior: dict) -> np.ndarray:
    """The Fourier features of one patch's N points, float32 [2 n F, N] (section 7.2)."""
    freqs = frequencies(prior["config"])
    shape = prior["patch_shape"]
    if len(shape) == 2:
        ph, pw = shape
        x0 = np.repeat(coordinates(ph), pw)  # row coordinate of point n = i * pw + j
        x1 = np.tile(coordinates(pw), ph)
        axes = [x0, x1]
    else:
        axes = [coordinates(shape[0])]
    phis = []
    for x in axes:
        px = PI32 * x
        for fk in freqs:
            phis.append(px * fk)
    phi = np.stack(phis)  # [n F, N], axis 0's frequencies, then axis 1's
    s, c = sin_cos(phi)
    return np.concatenate([c, s]).astype(np.float32)


def effective_parameters(prior: dict, w: np.ndarray) -> list[np.ndarray]:
    """E_l for every layer, float32 [P, in_l + 1, out_l] (sections 7.2, 7.3)."""
    p = w.shape[0]
    out, pos = [], 0
    for l, (i_l, o_l) in enumerate(prior["dims"]):
        theta = w[:, pos : pos + (i_l + 1) * o_l].reshape(p, i_l + 1, o_l)
        pos += (i_l + 1) * o_l
        if prior["mix"] is None:
            out.append(np.ascontiguousarray(theta))
            continue
        lm, rm = prior["mix"][l]
        t = np.zeros((p, i_l + 1, o_l), dtype=np.float32)
        for k in range(i_l + 1):
            t = t + lm[None, :, k, None] * theta[:, None, k, :]
        e = np.zeros((p, i_l + 1, o_l), dtype=np.float32)
        for k in range(o_l):
            e = e + t[:, :, k, None] * rm[None, None, k, :]
        out.append(e)
    return out


def _layer(v: np.ndarray, e: np.ndarray, shared_input: bool) -> np.ndarray:
    """acc[g, o, n] = bias then acc += v_i * E[i][o] for i in order.

    v: [in, N] (shared by every patch) or [g, in, N]; e: [g, in + 1, out]."""
    n_in = e.shape[1] - 1
    g, o = e.shape[0], e.shape[2]
    npts = v.shape[-1]
    acc = np.empty((g, o, npts), dtype=np.float32)
    acc[...] = e[:, n_in, :, None]
    tmp = np.empty_like(acc)
    for i in range(n_in):
        vi = v[None, i, None, :] if shared_input else v[:, i, None, :]
        np.multiply(vi, e[:, i, :, None], out=tmp)
        np.add(acc, tmp, out=acc)
    return acc


def network_outputs(prior: dict, w: np.ndarray, points_per_chunk: int = 8192) -> np.ndarray:
    """Every patch's outputs, float32 [P, C, N]."""
    feats = features(prior)
    effs = effective_parameters(prior, w)
    w0f = np.float32(prior["config"]["w0"])
    p = w.shape[0]
    npts = feats.shape[1]
    c = prior["dims"][-1][1]
    out = np.empty((p, c, npts), dtype=np.float32)
    g = max(1, points_per_chunk // npts)
    for start in range(0, p, g):
        sl = slice(start, min(p, start + g))
        v = None
        for l, e in enumerate(effs):
            acc = _layer(feats if l == 0 else v, e[sl], shared_input=(l == 0))
            if l < len(effs) - 1:
                v = sin_cos(w0f * acc, "sin")
            else:
                out[sl] = acc
    return out


def reconstruct(prior: dict, weights: np.ndarray, header: dict) -> np.ndarray:
    """Section 7: uint8 [H, W, C] for images, int16 [T] for audio."""
    if not isinstance(prior, dict):
        prior = read_prior(prior)
    w = np.asarray(weights, dtype=np.float32)
    grid = _patch_grid(header, prior)
    if w.shape != (grid[0], prior["D"]):
        raise ValueError(f"weights of shape {w.shape}, want {(grid[0], prior['D'])}")
    y = network_outputs(prior, w)
    with np.errstate(invalid="ignore"):
        v = np.where(y >= 0, y, np.float32(0.0))
        v = np.where(v > 1, np.float32(1.0), v).astype(np.float32)
    if prior["modality"] == "image":
        _, r, q = grid
        ph, pw = prior["patch_shape"]
        c = v.shape[1]
        s = np.rint(v * np.float32(255.0)).astype(np.uint8)
        img = s.reshape(r, q, c, ph, pw).transpose(0, 3, 1, 4, 2).reshape(r * ph, q * pw, c)
        return np.ascontiguousarray(img[: header["height"], : header["width"]])
    s = np.rint(((v * np.float32(2.0)) - np.float32(1.0)) * np.float32(32767.0))
    return np.ascontiguousarray(s.reshape(-1)[: header["height"]].astype(np.int16))


def decode(bitstream: bytes, prior_bytes: bytes) -> np.ndarray:
    """Bitstream and prior file to output samples (sections 3 to 7)."""
    from combiner import _core

    prior = read_prior(prior_bytes)
    header, _ = _core.unpack(bytes(bitstream))
    w = weights(bitstream, prior)
    return reconstruct(prior, w, header)


def output_sha256(decoded: np.ndarray) -> str:
    """Section 8: SHA-256 of the image bytes, or of the clip's int16 samples little-endian."""
    a = np.asarray(decoded)
    if a.dtype == np.uint8:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    if a.dtype == np.int16:
        return hashlib.sha256(np.ascontiguousarray(a, dtype="<i2").tobytes()).hexdigest()
    raise TypeError(f"decoded output of dtype {a.dtype}")
