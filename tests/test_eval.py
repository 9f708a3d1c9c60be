"""`combiner eval`: rows measured from real files, dataset curves, BD-rate, plot."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from combiner import baselines, cli, evaluate, media, rd, registry
from test_quality import smooth_image

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def image_eval(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i in range(2):
        Image.fromarray(smooth_image(32, 32, seed=i)).save(folder / f"img{i}.png")
    out = tmp_path_factory.mktemp("eval")
    code = cli.main(["-q", "eval", str(folder), "-o", str(out), "--quality", "0", "1",
                     "--baselines", "jpeg,webp", "--steps", "20", "--refine-steps", "1"])
    assert code == 0
    return folder, out


def test_rows_cover_every_codec_setting_and_item(image_eval):
    folder, out = image_eval
    rows = list(csv.DictReader(open(out / "rows.csv")))
    expected = 2 * (2 + len(baselines.get("jpeg").settings) + len(baselines.get("webp").settings))
    assert len(rows) == expected
    assert len((out / "rows.jsonl").read_text().splitlines()) == expected
    for r in rows:
        assert int(r["bytes"]) > 0 and r["unit"] == "bpp"
        assert math.isclose(float(r["rate"]), 8 * int(r["bytes"]) / 1024)
        # combiner rows name the exact prior (its content-hash id), baseline rows none
        expected_prior = registry.resolve(r["setting"]).hash_hex if r["codec"] == "combiner" else ""
        assert r["prior"] == expected_prior


def test_baseline_rows_are_what_the_codec_really_gives(image_eval):
    folder, out = image_eval
    img = np.asarray(Image.open(folder / "img1.png"))
    row = next(r for r in csv.DictReader(open(out / "rows.csv"))
               if r["codec"] == "jpeg" and r["setting"] == "50" and r["item"] == "img1")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=50)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert int(row["bytes"]) == buf.tell()
    assert math.isclose(float(row["psnr"]), media.psnr(img.astype(float), decoded.astype(float), 255.0))


def test_curves_average_items_and_bd_is_computed(image_eval):
    _, out = image_eval
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "rows.csv")))
    for point in summary["curves"]["combiner"]:
        mine = [r for r in rows if r["codec"] == "combiner" and r["setting"] == point["setting"]]
        assert point["items"] == 2
        assert math.isclose(point["psnr"], np.mean([float(r["psnr"]) for r in mine]))
        mse = np.mean([float(r["mse"]) for r in mine])
        assert math.isclose(point["psnr_of_mean_mse"], 10 * math.log10(255**2 / mse))
    assert set(summary["bd"]) == {"webp", "combiner"}
    for entry in summary["bd"].values():  # a number, or the reason there is none
        assert entry["anchor"] == "jpeg"
        assert (entry["bd_rate_percent"] is not None and math.isfinite(entry["bd_rate_percent"])) \
            or entry["note"]
    with Image.open(out / "rd.png") as im:
        assert im.format == "PNG" and im.size[0] > 100


def _curve(rates, psnrs, name="x"):
    return [dict(codec=name, setting=str(i), rate=r, psnr=p) for i, (r, p) in enumerate(zip(rates, psnrs))]


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_50_percent():
    rates, psnrs = [0.25, 0.5, 1.0, 2.0], [26.0, 29.0, 32.0, 35.0]
    table = rd.bd_table({"a": _curve(rates, psnrs), "b": _curve([r / 2 for r in rates], psnrs)}, "a")
    assert table["b"]["bd_rate_percent"] == pytest.approx(-50.0, abs=1e-6)
    assert table["b"]["bd_psnr_db"] > 0


def test_curves_keep_to_the_items_asked_for():
    row = dict(codec="x", setting="1", rate=1.0, unit="bpp", encode_s=1.0, decode_s=0.1)
    rows = [dict(row, item="a", psnr=30.0, mse=65.0), dict(row, item="b", psnr=20.0, mse=650.0),
            dict(row, item="c", psnr=10.0, mse=6500.0)]  # c: coded by a run over more items
    curve_map, incomplete = rd.curves(rows, ["a", "b"])
    assert incomplete == [] and curve_map["x"][0]["psnr"] == 25.0 and curve_map["x"][0]["items"] == 2
    curve_map, incomplete = rd.curves(rows[:1], ["a", "b"])
    assert curve_map == {} and incomplete == [dict(codec="x", setting="1", items=1)]


def test_saturated_settings_are_left_out_of_bd():
    pts = _curve([2.1, 2.1, 2.1, 2.6, 4.1], [14.9, 14.9, 14.9, 20.3, 28.0])
    assert [p["rate"] for p in rd._monotone(pts)] == [2.1, 2.6, 4.1]


def test_audio_eval_with_lossy_baselines(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    t = np.arange(16000) / 16000
    soundfile.write(folder / "a.flac", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    summary = evaluate.evaluate(folder, tmp_path / "out", levels=[], baseline_names=["mp3", "opus"],
                                seconds=0.5, progress=False)
    assert summary["unit"] == "kbps" and set(summary["curves"]) == {"mp3", "opus"}
    rows = list(csv.DictReader(open(tmp_path / "out" / "rows.csv")))
    for r in rows:  # 0.5 s clip: kbit/s = 8 * bytes / 0.5 / 1000
        assert math.isclose(float(r["rate"]), 8 * int(r["bytes"]) / 0.5 / 1000)
        assert float(r["psnr"]) > 20


def test_eval_refuses_mixed_or_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="images or audio"):
        evaluate.load_items(tmp_path)
    with pytest.raises(ValueError, match="codes audio"):
        Image.fromarray(smooth_image(8, 8)).save(tmp_path / "x.png")
        evaluate.evaluate(tmp_path, tmp_path / "o", levels=[], baseline_names=["mp3"], progress=False)


def test_rebuild_from_the_journal_gives_the_same_summary(image_eval):
    _, out = image_eval
    before = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**before, "curves": {}, "bd": {}}))
    after = evaluate.rebuild(out)
    assert after["curves"] == before["curves"] and after["bd"] == before["bd"]


def test_a_committed_folder_without_its_journal_rebuilds_from_rows_csv(image_eval, tmp_path):
    """Journals are not committed (.gitignore): a fresh clone has rows.csv only."""
    _, out = image_eval
    copy = tmp_path / "committed"
    copy.mkdir()
    for name in ("rows.csv", "summary.json"):
        (copy / name).write_bytes((out / name).read_bytes())
    assert evaluate.read_rows(copy) == evaluate.read_journal(out / "rows.jsonl")
    before = json.loads((out / "summary.json").read_text())
    after = evaluate.rebuild(copy)
    assert after["curves"] == before["curves"] and after["bd"] == before["bd"]


def test_merging_into_a_folder_refuses_a_journal_that_contradicts_rows_csv(image_eval, tmp_path, merge_runs):
    """A journal left from an earlier run beside a newer rows.csv would put the old rows back."""
    _, out = image_eval
    dest, other = tmp_path / "dest", tmp_path / "other"
    for folder in (dest, other):
        folder.mkdir()
        for name in ("rows.csv", "summary.json", "rows.jsonl"):
            (folder / name).write_bytes((out / name).read_bytes())
    assert merge_runs.journal_conflict(dest) is None
    merge_runs.merge(dest, [other])  # journal and rows.csv agree: merged
    rows = evaluate.read_journal(dest / "rows.jsonl")
    stale = [{**r, "psnr": r["psnr"] - 0.2} if r["codec"] == "combiner" else r for r in rows]
    (dest / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    assert "disagree" in merge_runs.journal_conflict(dest) and "psnr" in merge_runs.journal_conflict(dest)
    with pytest.raises(SystemExit, match="delete the stale file"):
        merge_runs.merge(dest, [other])
    (dest / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    assert "has no row" in merge_runs.journal_conflict(dest)
    (dest / "rows.jsonl").unlink()  # a committed folder: rows.csv only
    assert merge_runs.journal_conflict(dest) is None
    assert merge_runs.merge(dest, [other])["curves"] == json.loads((out / "summary.json").read_text())["curves"]


def test_rebuild_keeps_the_machines_of_a_merged_folder(image_eval):
    _, out = image_eval
    before = json.loads((out / "summary.json").read_text())
    assert "machines" not in before  # a plain run records one machine
    machines = [before["machine"], {**before["machine"], "device": "NVIDIA H200"}]
    (out / "summary.json").write_text(json.dumps({**before, "machines": machines}))
    assert evaluate.rebuild(out)["machines"] == machines
    evaluate.rebuild(out)  # keeps them: the key survives a second rebuild
    assert json.loads((out / "summary.json").read_text())["machines"] == machines
    (out / "summary.json").write_text(json.dumps(before))  # the fixture is shared


def test_resume_measures_only_what_is_missing(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(16, 16, seed=i)).save(folder / f"i{i}.png")
    first = evaluate.evaluate(folder, tmp_path / "o", levels=[], baseline_names=["jpeg"], progress=False)
    journal = (tmp_path / "o" / "rows.jsonl").read_text().splitlines()
    kept = [line for line in journal if json.loads(line)["item"] == "i0"]  # as if stopped after i0
    (tmp_path / "o" / "rows.jsonl").write_text("\n".join(kept) + "\n")
    partial = evaluate.rebuild(tmp_path / "o")
    assert partial["curves"] == {} and len(partial["incomplete"]) == len(baselines.get("jpeg").settings)
    again = evaluate.evaluate(folder, tmp_path / "o", levels=[], baseline_names=["jpeg"],
                              progress=False, resume=True)
    lines = (tmp_path / "o" / "rows.jsonl").read_text().splitlines()
    assert lines[: len(kept)] == kept and len(lines) == len(journal)  # i0 rows kept, i1 measured
    def strip(pts):  # times differ per run
        return [(p["setting"], p["rate"], p["psnr"]) for p in pts]

    assert strip(again["curves"]["jpeg"]) == strip(first["curves"]["jpeg"]) and again["incomplete"] == []
