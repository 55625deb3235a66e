"""Blending (prizenet/blend.py, scripts/blend.py) and the leaderboard (scripts/leaderboard.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prizenet.blend import load_runs, mlp_cv, ridge_cv, ridge_fit, ridge_pick
from prizenet.data import read_submission
from prizenet.data.submission import check_against
from prizenet.training import rmse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import blend as blend_script  # noqa: E402
import leaderboard  # noqa: E402


def generated(n=6000, seed=0):
    """Three noisy predictors of a rating, and the rating."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(3.6, 1.0, n)
    X = np.stack([truth + rng.normal(0, s, n) for s in (0.9, 1.0, 1.2)], 1)
    return rng, truth, X


def test_ridge_recovers_known_weights():
    rng, _, X = generated()
    y = 0.4 + X @ np.array([0.5, 0.3, 0.1]) + rng.normal(0, 0.05, len(X))
    w0, w = ridge_fit(X, y, lam=1e-6)
    assert np.allclose(w, [0.5, 0.3, 0.1], atol=0.01) and w0 == pytest.approx(0.4, abs=0.05)
    lam, scores = ridge_pick(X, y, k=5, seed=0)
    assert scores[lam] == min(scores.values()) and len(scores) > 5
    assert rmse(ridge_cv(X, y), y) == pytest.approx(0.05, rel=0.1)  # the noise left, no more


def test_ridge_cv_rmse_is_out_of_sample():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 20)), rng.normal(size=300)  # predictors that know nothing
    w0, w = ridge_fit(X, y, 1e-6)
    in_sample = rmse(w0 + X @ w, y)
    assert rmse(ridge_cv(X, y), y) > in_sample  # the in-sample fit flatters; the CV number does not
    assert rmse(ridge_cv(X, y), y) >= np.std(y) * 0.99


def test_meta_features_let_the_mlp_weigh_runs_by_support():
    rng, truth, X = generated(n=4000, seed=2)
    heavy = rng.random(len(X)) < 0.5  # predictor 0 is good for heavy users, predictor 1 for light ones
    X[:, 0] = truth + rng.normal(0, np.where(heavy, 0.2, 1.5))
    X[:, 1] = truth + rng.normal(0, np.where(heavy, 1.5, 0.2))
    meta = np.stack([np.where(heavy, 5.0, 1.0) + rng.normal(0, 0.3, len(X)), rng.normal(size=len(X)),
                     rng.normal(size=len(X))], 1)
    ridge, mlp = rmse(ridge_cv(X, truth), truth), rmse(mlp_cv(X, meta, truth), truth)
    assert mlp < 0.8 * ridge, (mlp, ridge)


def train_runs(root: Path, data_args: list[str], models: str, env: dict) -> Path:
    sweep = root / "sweep"
    out = subprocess.run(
        [sys.executable, "train.py", "-m", f"model={models}", *data_args, "trainer.n_epochs=3",
         "trainer.progress=false", "trainer.histograms=false", "trainer.batch_size=512", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, synthetic_src):
    """A 3-run multirun on the small synthetic Prize (its answer key is answers.csv)."""
    root = tmp_path_factory.mktemp("blend")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRIZENET_CACHE": str(root / "cache")}
    return train_runs(root, ["data=netflix", f"data.root={synthetic_src}"], "baseline,svd,svdpp", env)


def test_blend_writes_a_well_formed_submission_and_an_honest_report(sweep, synthetic_src, tmp_path, capsys):
    out = tmp_path / "blend"
    assert blend_script.main([str(sweep), "--out", str(out)]) == 0
    runs = load_runs([sweep])
    assert len(runs) == 3
    from prizenet.data import load_prize

    data = load_prize(synthetic_src)
    movie, pred = read_submission(out / "submission.txt")
    check_against(out / "submission.txt", movie, data.item_ids[data.qual_item])
    assert np.isfinite(pred).all() and (pred >= 1).all() and (pred <= 5).all()
    result = json.loads((out / "blend.json").read_text())
    probe = np.load(out / "predictions" / "probe.npy")
    assert result["cv_probe_rmse"]["ridge"] == pytest.approx(rmse(probe, data.probe_rating), abs=1e-6)
    best = min(r.probe_rmse for r in runs)
    assert result["gain"] == pytest.approx(best - result["cv_probe_rmse"]["ridge"])
    assert set(result["ridge"]["weights"]) == {str(r.path) for r in runs}
    report = (out / "report.md").read_text()
    assert "cross-validated" in report and f"{best:.4f}" in report
    assert np.allclose(np.load(out / "predictions" / "qualifying.npy"), pred, atol=5e-4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set(EventAccumulator(str(out / "tensorboard")).Reload().Tags()["scalars"])
    assert {"blend/cv_probe_rmse/ridge", "blend/cv_probe_rmse/mlp", "blend/gain_over_best_single"} <= tags
    assert sum(t.startswith("blend/input_probe_rmse/") for t in tags) == 3
    assert sum(t.startswith("blend/ridge_weight/") for t in tags) == 3
    assert (out / "blend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the chart of runs and blend


def test_blend_refuses_runs_of_different_data(sweep, tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRIZENET_CACHE": str(tmp_path / "cache")}
    other = train_runs(tmp_path, ["data.users=300", "data.items=80", "data.ratings=9000"], "baseline", env)
    assert blend_script.main([str(sweep), str(other), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "different data or splits" in err and "only runs of one dataset and split can be blended" in err
    assert not (tmp_path / "b").exists()


def test_blend_says_where_the_runs_data_is_missing(sweep, tmp_path, monkeypatch, capsys):
    import shutil

    moved = tmp_path / "sweep"
    shutil.copytree(sweep, moved)
    cfg = moved / "0_baseline" / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("root: ", "root: ./nowhere"))  # as a relative root seen from elsewhere
    assert blend_script.main([str(moved), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "loading the data of" in err and "no such folder" in err and "run the blend where train.py ran" in err


def test_blend_names_a_folder_without_runs(tmp_path, capsys):
    assert blend_script.main([str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_leaderboard_lists_the_runs_of_a_multirun_best_first(sweep, synthetic_src, capsys):
    assert leaderboard.main([str(sweep), "--answers", str(synthetic_src / "answers.csv"), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    runs = [r for r in table if not r["model"].startswith("blend")]
    assert sorted(r["model"] for r in runs) == ["Baseline", "SVD", "SVDpp"]
    assert [r["probe_rmse"] for r in table] == sorted(r["probe_rmse"] for r in table)
    for r in runs:
        m = json.loads((Path(r["run"]) / "metrics.json").read_text())
        assert r["probe_rmse"] == m["probe_rmse"] and any(o.startswith("model=") for o in r["overrides"])
        assert r["quiz_rmse"] == pytest.approx(m["quiz_rmse"], abs=2e-3)  # the file holds 3 decimals
    assert leaderboard.main([str(sweep)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()  # one dataset and split: its heading, then the table
    assert lines[0].startswith("## ") and "split" in lines[0] and lines[1].startswith("| # | run | model")
    assert text.count("\n") == 3 + len(table)
    assert leaderboard.main([str(sweep), "--plot", str(sweep.parent / "board.png")]) == 0
    assert (sweep.parent / "board.png").read_bytes()[:4] == b"\x89PNG"


def test_leaderboard_lists_a_blend_with_its_cross_validated_rmse(sweep, tmp_path, capsys):
    assert blend_script.main([str(sweep), "--out", str(tmp_path / "blend"), "--blender", "mlp"]) == 0
    capsys.readouterr()
    assert leaderboard.main([str(sweep), str(tmp_path / "blend"), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    blends = [r for r in table if r["model"].startswith("blend")]
    assert len(table) == 4 and [b["model"] for b in blends] == ["blend (mlp, 3 runs)"]
    cv = json.loads((tmp_path / "blend" / "blend.json").read_text())["cv_probe_rmse"]["mlp"]
    assert blends[0]["probe_rmse"] == cv


def test_the_gbdt_blender_recovers_a_non_linear_combination_out_of_fold():
    pytest.importorskip("lightgbm", reason='the gbdt blender needs LightGBM (pip install -e ".[dev]" brings it)')
    from prizenet.blend import gbdt_cv

    rng = np.random.default_rng(0)
    n = 3000
    truth = rng.normal(3.6, 1.0, n)
    meta = rng.normal(0, 1, (n, 3))
    # run 0 is good for users with much support (meta 0 > 0), run 1 for the others: no line can say so
    good, bad = truth + rng.normal(0, 0.3, n), truth + rng.normal(0, 1.2, n)
    X = np.stack([np.where(meta[:, 0] > 0, good, bad), np.where(meta[:, 0] > 0, bad, good)], 1)
    ridge, gbdt = rmse(ridge_cv(X, truth, 5, 0), truth), rmse(gbdt_cv(X, meta, truth, 5, 0), truth)
    assert gbdt < 0.75 * ridge and gbdt < 0.45  # close to the good run's 0.3 noise; ridge cannot pick per rating
    # out of fold: a fold's predictions do not move when that fold's targets do
    from prizenet.blend import folds

    f = folds(n, 5, 0)
    changed = truth.copy()
    changed[f == 0] += 5.0
    a, b = gbdt_cv(X, meta, truth, 5, 0), gbdt_cv(X, meta, changed, 5, 0)
    assert np.array_equal(a[f == 0], b[f == 0]) and not np.array_equal(a[f != 0], b[f != 0])
    from prizenet.blend import GBDTBlend

    model = GBDTBlend(seed=0).fit(X[f != 0], meta[f != 0], truth[f != 0])
    assert np.allclose(model.predict(X[f == 0], meta[f == 0]), a[f == 0])  # fold 0 came from a fit without it
