"""Prior learning and dataset coding on several processes (torch.distributed, gloo on the CPU).

Two ranks must give what one process gives: the prior update from sums over the ranks, the same
partition, the same learned prior (up to the rounding of the sums), the same eval rows and the
same bitstreams.
"""

from __future__ import annotations

import gc
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import combiner
from combiner import cli, distributed, evaluate, folder
from combiner.inr import identity_mix
from combiner.prior import Prior
from combiner.prior_learning import _training_kl_bits, learn_prior, make_partition, partition_for_rate, update_prior
from test_prior import TINY, sine_patches
from test_quality import smooth_image

torch.set_num_threads(1)

PACKAGE = str(Path(combiner.__file__).resolve().parents[1])
TESTS = str(Path(__file__).resolve().parent)


def _env() -> dict:
    path = os.pathsep.join([PACKAGE, TESTS, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node RANKS -m combiner ARGS`` on the CPU."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
           "-m", "combiner", *args]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


# -- one process: the identity ------------------------------------------------------------------
def test_shares_cover_the_range_in_rank_order():
    for count in range(0, 9):
        for ranks in (1, 2, 3, 4):
            shares = [distributed.share(count, r, ranks) for r in range(ranks)]
            assert [i for s in shares for i in s] == list(range(count))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_without_a_process_group_nothing_is_shared():
    assert not torch.distributed.is_initialized()
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    t = torch.tensor([1.5, 2.0], dtype=torch.float32)
    assert distributed.weighted_average(t, 3.0) is t
    assert torch.equal(distributed.sum_across(t), t.double())
    assert distributed.broadcast_object({"a": 1}) == {"a": 1} and distributed.gather_objects(5) == [5]
    assert distributed.share(7) == range(7) and distributed.device_for_rank(None) is None


# -- two ranks, spawned: the closed-form updates and learn_prior ---------------------------------
def _posteriors(M: int = 13, D: int = 50):
    rng = np.random.default_rng(3)
    mu = rng.normal(0.0, 0.3, (M, D)).astype(np.float32)
    rho = rng.normal(-3.0, 1.0, (M, D)).astype(np.float32)
    return mu, rho


ENCODE = dict(fit_steps=20, refine_steps=1, progress=False, device="cpu")  # CPU: bit-reproducible
LEARN = dict(modality="image", patch_shape=(8, 8), iterations=2, steps_per_iteration=5, first_steps=5,
             lr=3e-3, kappa=16, beta=1e-6, seed=5, device="cpu", batch_patches=4, rate_target_bits=100.0)


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    """One spawned rank: the updates from its share of the fixed posteriors, learn_prior, then
    encode_folder with a prior learned for it."""
    torch.set_num_threads(1)
    store = torch.distributed.TCPStore("127.0.0.1", port, world, is_master=False)
    torch.distributed.init_process_group("gloo", store=store, rank=rank, world_size=world)
    mu, rho = _posteriors()
    mine = distributed.share(mu.shape[0])
    mu_r, rho_r = torch.from_numpy(mu[mine.start:mine.stop]), torch.from_numpy(rho[mine.start:mine.stop])
    sigma_r = torch.nn.functional.softplus(rho_r).numpy()
    mean, std = update_prior(mu_r.numpy(), sigma_r, across_ranks=True)
    avg_kl = _training_kl_bits(mu_r, rho_r, mean, std).mean(0).numpy()
    mix = torch.full((6,), float(rank + 1)) * torch.arange(6.0)
    result = dict(mean=mean, std=std, avg_kl=avg_kl, partition=make_partition(avg_kl, 16.0, 5, seed=1),
                  for_rate=partition_for_rate(avg_kl, 16, 200.0, seed=1),
                  mix=distributed.weighted_average(mix, len(mine)).numpy(), rows=len(mine))
    # The whole alternation, with on_round given on rank 0 only (the ranks agree to checkpoint).
    rounds: list[int] = []
    plain = learn_prior(sine_patches(), TINY, **LEARN,
                        on_round=(lambda r, _: rounds.append(r)) if rank == 0 else None)
    mixed = learn_prior(sine_patches(), TINY, **LEARN, learn_mix=True)
    result.update(plain=plain.to_bytes(), mixed=mixed.to_bytes(), rounds=rounds)
    coder = learn_prior(sine_patches(), TINY, **{**LEARN, "kappa": 8}, bits_per_patch=24.0)
    assert isinstance(coder, Prior)
    result["coder"] = coder.to_bytes()
    result["encoded"] = folder.encode_folder(Path(out, "images"), Path(out, "cmb"), prior=coder, **ENCODE)
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))
    torch.distributed.barrier()  # as combiner.distributed.finish does
    torch.distributed.destroy_process_group()
    gc.collect()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("spawned")
    (root / "images").mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(16, 16, seed=50 + i)).save(root / "images" / f"im{i}.png")
    # The store lives in this process, on a port the system picks: no port can be taken meanwhile.
    store = torch.distributed.TCPStore("127.0.0.1", 0, 3, is_master=True, wait_for_workers=False)
    torch.multiprocessing.spawn(_rank_main, args=(2, store.port, str(root)), nprocs=2)
    return root, [pickle.loads((root / f"rank{r}.pkl").read_bytes()) for r in range(2)]


def test_prior_update_from_sums_over_ranks_equals_one_process(two_ranks):
    _, two_ranks = two_ranks
    mu, rho = _posteriors()
    sigma = torch.nn.functional.softplus(torch.from_numpy(rho))
    mean, std = update_prior(mu, sigma.numpy())
    avg_kl = _training_kl_bits(torch.from_numpy(mu), torch.from_numpy(rho), mean, std).mean(0).numpy()
    assert [r["rows"] for r in two_ranks] == [7, 6]
    for r in two_ranks:
        np.testing.assert_allclose(r["mean"], mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(r["std"], std, rtol=1e-6)
        np.testing.assert_allclose(r["avg_kl"], avg_kl, rtol=1e-6)
        np.testing.assert_array_equal(r["partition"], make_partition(avg_kl, 16.0, 5, seed=1))
        np.testing.assert_array_equal(r["for_rate"], partition_for_rate(avg_kl, 16, 200.0, seed=1))
        # the mixing matrices: the average over the ranks weighted by the patches each fitted
        expected = (7 * 1 + 6 * 2) / 13 * np.arange(6.0)
        np.testing.assert_allclose(r["mix"], expected, rtol=1e-6)
    for key in ("mean", "std", "avg_kl", "mix"):  # every rank holds the same bits
        assert np.array_equal(two_ranks[0][key], two_ranks[1][key])


def test_learn_prior_on_two_ranks_learns_the_one_process_prior(two_ranks):
    """Randomness is keyed by round and minibatch: without mixing matrices the two ranks fit the
    posteriors one process fits, and learn its prior up to the rounding of the sums."""
    _, two_ranks = two_ranks
    one = learn_prior(sine_patches(), TINY, **LEARN)
    for r in two_ranks:
        prior = Prior.from_bytes(r["plain"])
        np.testing.assert_allclose(prior.mean, one.mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(prior.std, one.std, rtol=1e-6)
        np.testing.assert_array_equal(prior.block_index, one.block_index)
        assert prior.kind.beta == pytest.approx(one.kind.beta, rel=1e-6)
        assert prior.kind.train_bits_per_patch == pytest.approx(one.kind.train_bits_per_patch, abs=0.1)
    for key in ("plain", "mixed"):  # the same prior on every rank
        assert Prior.from_bytes(two_ranks[0][key]).content_hash() == Prior.from_bytes(two_ranks[1][key]).content_hash()
    assert two_ranks[0]["rounds"] == [0, 1] and two_ranks[1]["rounds"] == []  # on_round: rank 0 only
    mixed = Prior.from_bytes(two_ranks[0]["mixed"])
    assert mixed.mix is not None and np.abs(mixed.mix - identity_mix(TINY).numpy()).max() > 1e-3


# -- the command line under torchrun -------------------------------------------------------------
TINY_LEARN = ["--patch", "16", "16", "--crops", "1", "--iterations", "2", "--steps", "10", "--first-steps", "10",
              "--kappa", "8", "--bits-per-patch", "40", "--batch-patches", "3", "--device", "cpu"]
TINY_CODE = ["--steps", "30", "--refine-steps", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    for name, count, first in (("train", 6, 0), ("held", 3, 100)):
        (root / name).mkdir()
        for i in range(count):
            Image.fromarray(smooth_image(16, 16, seed=first + i)).save(root / name / f"{name}{i}.png")
    return root


@pytest.fixture(scope="module")
def learned(folders):
    """The same prior learned by one process and by two ranks of torchrun."""
    one, two = folders / "one.safetensors", folders / "two.safetensors"
    assert cli.main(["-q", "learn-prior", str(folders / "train"), "-o", str(one), "--name", "one", *TINY_LEARN]) == 0
    torchrun("-q", "learn-prior", str(folders / "train"), "-o", str(two), "--name", "two", *TINY_LEARN)
    return one, two


def _rows(out: Path) -> list[tuple]:
    rows = evaluate.read_journal(out / "rows.jsonl")
    return [(r["codec"], r["setting"], r["item"], r["bytes"], r["psnr"]) for r in rows]


def test_torchrun_learn_prior_and_eval(folders, learned):
    """The two-rank prior codes held-out images as well as the one-process prior (same sizes), and
    a two-rank eval gives the rows of a one-process eval."""
    one, two = learned
    args = ["eval", str(folders / "held"), "--prior", str(one), str(two), "--baselines", "jpeg",
            "--max-patches", "2", *TINY_CODE]
    assert cli.main(["-q", *args, "-o", str(folders / "eval1")]) == 0
    rows = _rows(folders / "eval1")
    by_prior = {name: [r for r in rows if r[1] == name] for name in ("one", "two")}
    assert [r[3] for r in by_prior["one"]] == [r[3] for r in by_prior["two"]]  # same file sizes
    assert abs(np.mean([r[4] for r in by_prior["one"]]) - np.mean([r[4] for r in by_prior["two"]])) < 0.3
    torchrun("-q", *args, "-o", str(folders / "eval2"))
    assert _rows(folders / "eval2") == rows
    assert not list((folders / "eval2").glob("rows.rank*"))
    assert json.loads((folders / "eval2" / "summary.json").read_text())["ranks"] == 2


def test_encode_folder_on_two_ranks_gives_the_bytes_of_encode(two_ranks, tmp_path):
    """The files are dealt to the ranks in turn; every bitstream is what combiner.encode gives in
    one process; rank 0 gathers the rows in input order. --resume encodes only what is missing."""
    root, two_ranks = two_ranks
    coder = Prior.from_bytes(two_ranks[0]["coder"])
    rows = two_ranks[0]["encoded"]
    assert [(r["item"], r["rank"]) for r in rows] == [("im0", 0), ("im1", 1), ("im2", 0)]
    assert [r["item"] for r in two_ranks[1]["encoded"]] == ["im1"]
    for r in rows:
        data = combiner.encode(root / "images" / f"{r['item']}.png", prior=coder, **ENCODE)
        assert Path(r["output"]).read_bytes() == data and r["bytes"] == len(data)
    # the command line, in one process, after a run that stopped before im1 was written
    out = tmp_path / "cmb"
    out.mkdir()
    for name in ("im0", "im2"):
        (out / f"{name}.cmb").write_bytes(b"kept")
    coder.save(tmp_path / "coder.safetensors")
    assert cli.main(["-q", "encode-folder", str(root / "images"), str(out), "--prior",
                     str(tmp_path / "coder.safetensors"), "--steps", "20", "--refine-steps", "1", "--device", "cpu",
                     "--resume"]) == 0
    assert (out / "im0.cmb").read_bytes() == b"kept" == (out / "im2.cmb").read_bytes()
    assert (out / "im1.cmb").read_bytes() == (root / "cmb" / "im1.cmb").read_bytes()


def test_eval_resume_keeps_the_rows_of_every_rank_journal(tmp_path):
    """A stopped two-rank run leaves rows.jsonl (the rows before it) and rows.rankR.jsonl (what
    each rank measured, maybe with a cut last line): --resume keeps them all and measures the rest."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(16, 16, seed=i)).save(data / f"im{i}.png")
    args = ["-q", "eval", str(data), "--no-combiner", "--baselines", "jpeg"]
    assert cli.main([*args, "-o", str(tmp_path / "full")]) == 0
    full = evaluate.read_journal(tmp_path / "full" / "rows.jsonl")
    out = tmp_path / "stopped"
    out.mkdir()
    marked = [dict(r, encode_s=-1.0) for r in full]  # kept rows keep this mark
    lines = [json.dumps(r) + "\n" for r in marked]
    (out / "rows.jsonl").write_text("".join(lines[:2]))
    (out / "rows.rank0.jsonl").write_text("".join(lines[2:4]))
    (out / "rows.rank1.jsonl").write_text("".join(lines[4:6]) + lines[6][:20])  # stopped mid-line
    assert cli.main([*args, "-o", str(out), "--resume"]) == 0
    rows = evaluate.read_journal(out / "rows.jsonl")
    assert sorted((r["setting"], r["item"]) for r in rows) == sorted((r["setting"], r["item"]) for r in full)
    assert [r["encode_s"] for r in rows[:6]] == [-1.0] * 6 and all(r["encode_s"] >= 0 for r in rows[6:])
    assert not list(out.glob("rows.rank*"))


def test_one_process_commands_refuse_to_run_on_several(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["info", str(tmp_path / "x.cmb")]) == 1
    assert "runs in one process" in capsys.readouterr().err


@pytest.mark.slow
def test_train_priors_under_torchrun_writes_the_one_process_prior(tmp_path):
    """training/train_priors.py on two ranks writes (on rank 0 only) the prior one process writes."""
    folder = tmp_path / "data" / "cifar10" / "train"
    folder.mkdir(parents=True)
    for k in range(4):
        Image.fromarray(smooth_image(32, 32, seed=k)).save(folder / f"{k:05d}.png")
    script = str(Path(TESTS).parent / "training" / "train_priors.py")
    common = ["thumbnail", "--data", str(tmp_path / "data"), "--levels", "0", "--iterations", "1", "--steps", "3",
              "--first-steps", "3", "--batch-patches", "2", "--no-mix"]
    subprocess.run([sys.executable, script, *common, "--out", str(tmp_path / "one")], env=_env(), check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script,
                    *common, "--out", str(tmp_path / "two")], env=_env(), check=True, capture_output=True)
    one = Prior.load(tmp_path / "one" / "thumbnail-q0.safetensors")
    two = Prior.load(tmp_path / "two" / "thumbnail-q0.safetensors")
    np.testing.assert_allclose(two.mean, one.mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(two.block_index, one.block_index)
    assert math.isclose(two.kind.beta, one.kind.beta, rel_tol=1e-6)
