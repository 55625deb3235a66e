import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prizenet.data import load_prize, write_submission

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_prepare_data_json_has_the_documented_keys(synthetic):
    out = run("scripts/prepare_data.py", synthetic, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    for key in ("ratings", "users", "items", "probe", "qualifying", "first_date", "last_date", "histogram", "seconds"):
        assert key in info
    assert info["ratings"] == load_prize(synthetic).n_ratings
    human = run("scripts/prepare_data.py", synthetic)
    assert "qualifying" in human.stdout and "stars" in human.stdout


def test_prepare_data_reports_a_bad_folder_clearly(tmp_path):
    out = run("scripts/prepare_data.py", tmp_path)
    assert out.returncode == 2 and "cannot tell the data format" in out.stderr


def test_make_synthetic_then_score(tmp_path):
    out = run("scripts/make_synthetic.py", "--out", tmp_path / "s", "--users", 200, "--items", 50, "--ratings", 4000)
    assert out.returncode == 0, out.stderr
    d = load_prize(tmp_path / "s")
    write_submission(tmp_path / "sub.txt", d.item_ids[d.qual_item], np.full(len(d.qual_item), d.global_mean()))
    out = run("scripts/score.py", tmp_path / "sub.txt", tmp_path / "s" / "answers.csv")
    assert out.returncode == 0, out.stderr
    assert "quiz RMSE" in out.stdout and "improvement" not in out.stdout  # Cinematch's 0.9514 is Netflix's
    out = run("scripts/score.py", tmp_path / "sub.txt", tmp_path / "s" / "answers.csv", "--reference", "cinematch")
    assert out.returncode == 0 and "over 0.9514" in out.stdout, out.stderr


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason='triton is not installed (pip install -e ".[dev]")')
def test_bench_gpu_dry_runs_the_whole_flow_on_cpu(tmp_path):
    # The GPU benchmark's every step, tiny, on CPU with Triton's interpreter: what a person
    # with a GPU runs, minus the size.
    out = run("scripts/bench_gpu.py", "--dry", "--json", tmp_path / "gpu.json")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    rows = {(r["model"], r["backend"]) for r in report["epochs"]}
    for model in ("svd", "svdpp", "timesvdpp"):
        assert {(model, "triton"), (model, "torch b=64"), (model, "torch b=256")} <= rows
    for model in ("svd", "svdpp", "timesvdpp", "integrated"):
        r = report["against_cpu"][model]
        assert r["max_relative_difference_1_epoch"] <= 1e-6  # the interpreter is sequential: numba's result
        assert abs(r["probe_rmse_gap"]) <= 0.002
    assert all(r["seconds"] > 0 and r["floor_seconds"] > 0 for r in report["epochs"])
    assert report["versions"]["triton_interpreter"] and "Triton vs the CPU kernel" in out.stdout


def test_bench_bfm_runs_both_of_its_modes_tiny(tmp_path):
    from conftest import shared

    root = shared("prize/ml1m-half")
    out = run("scripts/bench_bfm.py", "--root", root, "--sets", "mf:3,timesvdpp_flipped:3,timesvdpp_userday_flipped:3",
              "--rank", "2", "--no-myfm", "--markdown")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[: out.stdout.index("\n|")])
    assert [r["features"] for r in report["runs"]] == ["mf", "timesvdpp_flipped", "timesvdpp_userday_flipped"]
    assert all(0.8 < r["probe_rmse"] < 1.2 and r["fit_seconds"] > 0 for r in report["runs"])
    out = run("scripts/bench_bfm.py", "--root", root, "--sets", "mf:3", "--rank", "2", "--no-myfm",
              "--likelihood", "ordered_probit")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["likelihood"] == "ordered_probit" and 0.8 < report["runs"][0]["probe_rmse"] < 1.2
    out = run("scripts/bench_bfm.py", "--netflix", "--ratings", "20000", "--ranks", "2", "--sweeps", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    sweeps = json.loads(out.stdout)["sweeps"]
    assert set(sweeps) == {"mf, rank 2", "timesvdpp_flipped, rank 2"}
    assert all(v["seconds"][0] > 0 for v in sweeps.values())


@pytest.mark.skipif(importlib.util.find_spec("myfm") is None,
                    reason="myFM is a benchmark-only dependency (pip install myfm); its side of bench_bfm is not run")
def test_bench_bfm_builds_every_time_block_for_myfm_tiny():
    from conftest import shared

    root = shared("prize/ml1m-half")
    out = run("scripts/bench_bfm.py", "--root", root, "--sets", "mf:6,timesvdpp_flipped:6,timesvdpp_userday_flipped:6",
              "--rank", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout)["runs"]
    assert [(r["features"], r["sampler"]) for r in runs] == [
        (f, s) for f in ("mf", "timesvdpp_flipped", "timesvdpp_userday_flipped") for s in ("prizenet", "myFM")]
    assert all(0.8 < r["probe_rmse"] < 1.2 for r in runs), runs


def test_bench_knn_and_bench_defaults_run_tiny(tmp_path):
    from conftest import shared

    root = shared("prize/ml1m-half")
    out = run("scripts/bench_knn.py", "--root", root, "--variants", "knn (defaults)", "--markdown")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[: out.stdout.index("\n|")])
    assert 0.85 < report["prizenet knn (defaults)"]["probe_rmse"] < 0.95
    out = run("scripts/bench_defaults.py", "--root", root, "--models", "baseline", "--no-peers", "--markdown")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[: out.stdout.index("\n|")])
    assert 0.9 < report["prizenet"]["baseline"]["probe_rmse"] < 1.0


def test_bench_families_netflix_mode_runs_tiny():
    out = run("scripts/bench_families.py", "--netflix", "--ratings", "20000", "--blocks", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["knn_similarities"]["blocks"] == 18 and report["integrated_similarities"]["kind"] == "pearson"
    for part in ("integrated_epoch", "rbm_epoch"):
        assert report[part]["seconds"] > 0 and report[part]["estimated_epoch_seconds"] >= report[part]["seconds"]
    assert set(report["peak_gb"]) == {"data", "knn_similarities", "integrated_similarities", "integrated_epoch",
                                      "rbm_epoch"}


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason='triton is not installed (pip install -e ".[dev]")')
def test_bench_families_netflix_mode_runs_the_triton_kernel_tiny():
    # What --device cuda runs, on CPU: the integrated model's Triton kernel in the interpreter
    # (which the script turns on for --kernel triton without cuda).
    out = run("scripts/bench_families.py", "--netflix", "--ratings", "3000", "--blocks", "1", "--kernel", "triton",
              "--part", "200", "--k", "16")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["kernel"] == "triton" and report["integrated_epoch"]["k"] == 16
    assert 0 < report["integrated_epoch"]["timed_ratings"] < report["ratings"]


@pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason='the judge extra is not installed (pip install -e ".[dev]")')
def test_bench_judge_runs_tiny(synthetic):
    out = run("scripts/bench_judge.py", "--root", synthetic, "--teams", 3, "--rounds", 2, "--readers", 2,
              "--skip-netflix")
    assert out.returncode == 0, out.stderr[-3000:]
    load = json.loads(out.stdout)["load"]
    assert load["accepted"] == load["stored"] == 6 and load["lost"] == load["double"] == 0
    assert load["over_limit_refused"] == 3 and load["board_counts"] == 6 and load["max_per_team"] == 2
