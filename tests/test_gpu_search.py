"""The GPU search kernel against the Rust search.

``search_kernel.cu`` also compiles as C for the host; these tests build it with the system's C
compiler and check, on any machine, that its candidates, log ratios and argmax are the Rust
core's bit for bit. The last test runs the real CUDA path where a GPU and CuPy are present.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from combiner import _core, gpu_search, rec

C = ctypes
F32P, F64P, U32P = (np.ctypeslib.ndpointer(t, flags="C") for t in (np.float32, np.float64, np.uint32))


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the kernel for the host")
    folder = tmp_path_factory.mktemp("kernel")
    source = folder / "search_kernel.c"
    source.write_text(gpu_search.kernel_source())
    lib = folder / "search_kernel.so"
    # -ffp-contract=off: no fused multiply-adds, as --fmad=false on the GPU.
    subprocess.run([cc, "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-DCOMBINER_HOST_TEST",
                    str(source), "-o", str(lib), "-lm"], check=True)
    k = C.CDLL(str(lib))
    k.host_log_ratios.argtypes = [U32P, C.c_uint64, C.c_uint64, C.c_uint64, C.c_int, F32P, F32P,
                                  F64P, F64P, F64P, F64P, C.c_double, F64P]
    k.host_normal.argtypes, k.host_normal.restype = [C.c_uint64], C.c_double
    k.host_block_constant.argtypes = [F32P, F32P, C.c_int]
    k.host_block_constant.restype = C.c_double
    return k


def random_block(rng, d):
    mu_p = rng.normal(0, 0.05, d).astype(np.float32)
    sigma_p = (0.05 * rng.uniform(0.5, 1.5, d)).astype(np.float32)
    sigma_q = (sigma_p * rng.uniform(0.05, 1.3, d)).astype(np.float32)
    mu_q = (mu_p + sigma_p * rng.normal(0, 0.7, d)).astype(np.float32)
    return mu_q, sigma_q, mu_p, sigma_p


def host_ratios(k, block, seed, block_id, first, count):
    mu_q, sigma_q, mu_p, sigma_p = block
    f64 = lambda a: np.ascontiguousarray(a, np.float64)  # noqa: E731
    out = np.zeros(count)
    constant = k.host_block_constant(sigma_p, sigma_q, len(mu_p))
    k.host_log_ratios(gpu_search.candidate_key_words(seed), block_id, first, count, len(mu_p),
                      mu_p, sigma_p, f64(mu_p), 1.0 / f64(sigma_p), f64(mu_q), 1.0 / f64(sigma_q),
                      constant, out)
    return out, constant


def test_the_key_is_the_domain_tag_and_the_seed():
    key = _core.candidate_key(seed=0x0102030405060708)
    assert key == b"combiner/cand/v1" + bytes([8, 7, 6, 5, 4, 3, 2, 1]) + bytes(8)


@pytest.mark.parametrize("d", [1, 3, 8, 13, 163])
def test_kernel_log_ratios_are_the_rust_candidates_exactly(host_kernel, d):
    """The sum over dimensions is recomputed from the Rust core's own normals, in the same
    order, so any difference in ChaCha, the word layout, AS241 or the log shows up here."""
    rng = np.random.default_rng(d)
    block = random_block(rng, d)
    mu_q, sigma_q, mu_p, sigma_p = block
    seed, block_id, first = 2**63 + 5, 41, 997
    ratios, constant = host_ratios(host_kernel, block, seed, block_id, first, 20)
    for i, r in enumerate(ratios):
        z = rec.candidate_normals(seed=seed, block_id=block_id, dim=d, index=first + i, version=2)
        x = (mu_p + sigma_p * z.astype(np.float32)).astype(np.float64)
        a = (x - mu_p.astype(np.float64)) * (1.0 / sigma_p.astype(np.float64))
        b = (x - mu_q.astype(np.float64)) * (1.0 / sigma_q.astype(np.float64))
        total = np.cumsum(a * a - b * b)[-1]  # strictly left to right
        assert r == constant + 0.5 * total
    assert constant == pytest.approx(float(np.sum(np.log(sigma_p / sigma_q.astype(np.float64)))),
                                     rel=1e-12, abs=1e-12)


def test_kernel_normals_cover_the_tails(host_kernel):
    """Words at the extremes of the uniform (far tails) and at the split points."""
    words = [0, 1, 2**12 - 1, 2**40, 0x1333333333333 << 12, 0x2000000000000 << 12,
             2**64 - 1, 2**64 - 2**12, 0x8000000000000000, 0x7FFFFFFFFFFFFFFF]
    for w in words:
        got = host_kernel.host_normal(w)
        u = ((w >> 12) + 0.5) * 2.0**-52
        assert np.isfinite(got) and (got < 0) == (u < 0.5)
    # Antisymmetry: the complement word gives exactly the negated normal.
    for w in words:
        assert host_kernel.host_normal(w) == -host_kernel.host_normal(2**64 - 1 - w)


@pytest.mark.parametrize("d,kappa", [(1, 12), (7, 10), (163, 8)])
def test_kernel_argmax_is_the_rust_index(host_kernel, d, kappa):
    rng = np.random.default_rng(100 + d)
    seed = 77
    for block_id in range(4):
        block = random_block(rng, d)
        ratios, _ = host_ratios(host_kernel, block, seed, block_id, 0, 2**kappa)
        scores = ratios + _core.ordered_gumbels(seed=seed, block_id=block_id, n=2**kappa)
        expected = rec.encode_blocks(*block, [d], seed=seed, block_ids=[block_id], kappa=kappa,
                                     early_stop=False, version=2).indices[0]
        assert gpu_search.first_argmax(scores[None, :])[0] == expected


def test_first_argmax_breaks_ties_to_the_smaller_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-np.inf, 0.0, -1.0, 0.0]])
    assert gpu_search.first_argmax(scores).tolist() == [1, 0, 1]


def test_bad_inputs_are_refused_like_the_rust_search():
    ok = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="kappa"):
        gpu_search.encode_blocks(ok, ok, ok, ok, [3], seed=0, block_ids=[0], kappa=0)
    with pytest.raises(ValueError, match="positive"):
        gpu_search.encode_blocks(ok, -ok, ok, ok, [3], seed=0, block_ids=[0])
    with pytest.raises(ValueError, match="add up"):
        gpu_search.encode_blocks(ok, ok, ok, ok, [2], seed=0, block_ids=[0])
    with pytest.raises(ValueError, match="finite"):
        gpu_search.encode_blocks(ok * np.nan, ok, ok, ok, [3], seed=0, block_ids=[0])
    with pytest.raises(ValueError, match="versions 1 and 2"):
        gpu_search.encode_blocks(ok, ok, ok, ok, [3], seed=0, block_ids=[0], version=3)


@pytest.mark.skipif(not gpu_search.available(), reason="needs a CUDA GPU and CuPy")
def test_cuda_search_gives_the_rust_indices():
    rng = np.random.default_rng(5)
    sizes = [163, 1, 40, 327, 163]
    blocks = [random_block(rng, d) for d in sizes]
    args = [np.concatenate([b[i] for b in blocks]) for i in range(4)]
    ids = [3, 9, 0, 2**40, 7]
    cpu = rec.encode_blocks(*args, sizes, seed=11, block_ids=ids, kappa=16, version=2)
    gpu = gpu_search.encode_blocks(*args, sizes, seed=11, block_ids=ids, kappa=16)
    assert gpu.indices.tolist() == cpu.indices.tolist()
    assert gpu.samples.tobytes() == cpu.samples.tobytes()


def test_the_encoder_searches_on_the_cpu_unless_told_and_able():
    import torch

    from combiner import codec

    assert codec.block_search("cpu", torch.device("cpu")) is rec.encode_blocks
    assert codec.block_search("auto", torch.device("cpu")) is rec.encode_blocks
    # The Rust search writes version 3; the GPU search, ChaCha20 candidates only, 1 or 2.
    assert codec.search_version(rec.encode_blocks, spread_blocks=False) == 3
    assert codec.search_version(rec.encode_blocks, spread_blocks=True) == 3
    assert codec.search_version(gpu_search.encode_blocks, spread_blocks=False) == 1
    assert codec.search_version(gpu_search.encode_blocks, spread_blocks=True) == 2
    with pytest.raises(ValueError, match="search must be"):
        codec.block_search("tpu", torch.device("cpu"))
    if not gpu_search.available():
        with pytest.raises(RuntimeError, match="CUDA GPU and CuPy"):
            codec.block_search("gpu", torch.device("cpu"))
