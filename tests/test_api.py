"""The Python API (prizenet.api): fit from a DataFrame or a path, predict, recommend, save,
load, load_run; and the README's example."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import prizenet
import train
from prizenet.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "histograms": False, "batch_size": 512}


def frame(users=300, items=80, ratings=9000, seed=0, string_users=True) -> pd.DataFrame:
    g = generate(users, items, ratings, seed=seed)
    user = np.char.add("user", g["customer"].astype(str)) if string_users else g["customer"]
    return pd.DataFrame({"userId": user, "movieId": g["movie"], "rating": g["rating"].astype(float),
                         "timestamp": g["day"].astype(np.int64) * 86400 + 3600})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    df = frame()
    out = tmp_path_factory.mktemp("api") / "run"
    rec = prizenet.fit(df, model="svd", n_factors=4, trainer={**QUIET, "n_epochs": 3}, out=out)
    return df, rec


def test_a_dataframe_fit_writes_a_train_py_run_and_predicts_raw_ids(fitted):
    df, rec = fitted
    assert (rec.run_dir / "submission.txt").is_file() and (rec.run_dir / ".hydra" / "config.yaml").is_file()
    assert rec.phase == 2 and np.isfinite(rec.metrics["probe_rmse"])
    u, i = df["userId"].to_numpy()[:50], df["movieId"].to_numpy()[:50]
    many = rec.predict(u, i)
    assert many.shape == (50,) and many.dtype == np.float32
    assert rec.predict(u[3], i[3]) == pytest.approx(float(many[3]))  # a scalar pair: a float, the same number
    lo, hi = 1.0, 5.0
    assert ((many >= lo) & (many <= hi)).all()
    # the model's own rows, through the trainer's predict: the API adds only the id mapping
    rows_u, rows_i = rec.user_index(u), rec.item_index(i)
    assert (rows_u >= 0).all() and (rows_i >= 0).all()
    assert np.array_equal(rec.data.user_ids[rows_u], u) and np.array_equal(rec.data.item_ids[rows_i], i)


def test_save_and_load_give_the_same_predictions_and_recommendations(fitted, tmp_path):
    df, rec = fitted
    u, i = df["userId"].to_numpy()[::7], df["movieId"].to_numpy()[::7]
    path = rec.save(tmp_path / "saved")
    back = prizenet.load(path)
    assert type(back.model) is type(rec.model) and back.phase == rec.phase
    assert np.array_equal(back.predict(u, i), rec.predict(u, i))
    pd.testing.assert_frame_equal(back.recommend(u[0], n=5), rec.recommend(u[0], n=5))
    rec.save(tmp_path / "saved")  # saving again replaces the folder
    with pytest.raises(FileNotFoundError, match="not a saved prizenet model"):
        prizenet.load(tmp_path)


def test_recommendations_exclude_rated_items_and_rank_by_prediction(fitted):
    df, rec = fitted
    user = df["userId"].iloc[0]
    rated = set(df.loc[df["userId"] == user, "movieId"])  # training, probe and qualifying ratings of the user
    u = rec.user_index([user])[0]
    in_training = set(rec.data.item_ids[rec.data.item[rec.data.user_indptr[u]:rec.data.user_indptr[u + 1]]])
    every = rec.recommend(user, n=10_000)
    assert len(every) == rec.data.n_items - len(in_training)
    assert not set(every["item"]) & in_training and in_training <= rated
    assert np.all(np.diff(every["score"].to_numpy()) <= 0)  # best first
    assert np.allclose(every["score"], rec.predict([user] * len(every), every["item"].to_numpy()))
    top = rec.recommend(user, n=5)
    pd.testing.assert_frame_equal(top, every.head(5))
    with_rated = rec.recommend(user, n=10_000, exclude_rated=False)
    assert len(with_rated) == rec.data.n_items
    batch = rec.recommend_users([user, df["userId"].iloc[1]], n=3)
    assert list(batch.columns[:4]) == ["user", "rank", "item", "score"] and len(batch) == 6
    assert list(batch["rank"]) == [1, 2, 3, 1, 2, 3]
    pd.testing.assert_frame_equal(batch.iloc[:3].drop(columns=["user", "rank"]).reset_index(drop=True), top.head(3))


def test_unknown_ids_fall_back_to_what_the_model_knows(fitted):
    df, rec = fitted
    known_user, known_item = df["userId"].iloc[0], int(df["movieId"].iloc[0])
    new_user = rec.predict("nobody", known_item)
    assert new_user == pytest.approx(float(rec.new_user_scores()[rec.item_index([known_item])[0]]))
    # a new user's score of an item: the model's mean over a sample of known users
    sample = rec._sample(rec._rated_users)
    direct = rec._model_predict(sample, np.full(len(sample), rec.item_index([known_item])[0]), rec._last_day[sample])
    assert new_user == pytest.approx(float(direct.mean()), rel=1e-5)
    new_item = rec.predict(known_user, 10**9)
    assert np.isfinite(new_item) and new_item != pytest.approx(rec.predict(known_user, known_item))
    assert rec.predict("nobody", 10**9) == pytest.approx(rec._mu)
    top = rec.recommend("nobody", n=3)  # a new user gets what new users are predicted to like most
    assert np.allclose(top["score"], np.sort(rec.new_user_scores())[::-1][:3])
    # ids given as text find integer ids (read from a file, a form)
    assert rec.predict(known_user, str(known_item)) == rec.predict(known_user, known_item)


def run_config(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["trainer.progress=false", "trainer.histograms=false",
                                            "trainer.batch_size=512", *overrides])


@pytest.mark.parametrize("model", ["timesvdpp", "bfm", "knn", "integrated", "rbm"])
def test_load_run_predicts_the_runs_own_probe_and_qualifying_predictions_exactly(synthetic, tmp_path, model):
    size = {"knn": [], "rbm": ["model.n_hidden=8"], "integrated": ["model.n_factors=3", "model.k=20"]}
    small = size.get(model, ["model.n_factors=3"]) + ["trainer.n_epochs=3"] + (["model.burn_in=1"] if model == "bfm" else [])
    out = tmp_path / "run"
    train.train(run_config("data=netflix", f"data.root={synthetic}", f"model={model}", *small), out)
    probe_model = prizenet.load_run(out, phase=1)
    d = probe_model.data
    probe = d.probe_rows
    pred = probe_model.predict(d.user_ids[d.user[probe]], d.item_ids[d.item[probe]], when=d.dates(d.day[probe]))
    assert np.array_equal(pred, np.load(out / "predictions" / "probe.npy"))
    final = prizenet.load_run(out)
    assert final.phase == 2
    qual = final.predict(d.user_ids[d.qual_user], d.item_ids[d.qual_item], when=d.dates(d.qual_day))
    assert np.array_equal(qual, np.load(out / "predictions" / "qualifying.npy"))


def test_load_run_refuses_what_is_not_a_finished_run_and_imports_nothing_it_names(synthetic, tmp_path):
    out = tmp_path / "run"
    train.train(run_config("data=netflix", f"data.root={synthetic}", "model=baseline", "trainer.n_epochs=2",
                           "trainer.final_fit=false"), out)
    with pytest.raises(ValueError, match="no final fit"):
        prizenet.load_run(out, phase=2)
    assert prizenet.load_run(out).phase == 1
    with pytest.raises(FileNotFoundError, match="not a train.py run folder"):
        prizenet.load_run(tmp_path)
    cfg = out / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("prizenet.models.baseline.Baseline", "os.system"))
    with pytest.raises(ValueError, match="'os.system' is not one of prizenet's models"):
        prizenet.load_run(out)


def test_a_fit_from_python_is_the_train_py_run_of_the_same_overrides(synthetic, tmp_path):
    rec = prizenet.fit(synthetic, model="baseline", trainer={**QUIET, "n_epochs": 2}, out=tmp_path / "api")
    m = train.train(run_config("data=csv", f"data.path={synthetic}", "data.format=auto", "model=baseline",
                               "trainer.n_epochs=2"), tmp_path / "cli")
    assert rec.metrics["probe_rmse"] == m["probe_rmse"] and rec.metrics["split"] == m["split"]
    for name in ("probe", "qualifying"):
        assert np.array_equal(np.load(tmp_path / "api" / "predictions" / f"{name}.npy"),
                              np.load(tmp_path / "cli" / "predictions" / f"{name}.npy"))
    assert isinstance(m.model, prizenet.models.Baseline) and m.data.n_ratings == rec.data.n_ratings  # train returns the model


def test_fit_names_what_is_wrong_with_its_input(tmp_path):
    with pytest.raises(ValueError, match="no rating column"):
        prizenet.fit(pd.DataFrame({"user": [1], "item": [2]}), out=tmp_path / "a")
    with pytest.raises(ValueError, match="columns: rating='stars' is not a column"):
        prizenet.fit(frame(50, 20, 300), columns={"rating": "stars"}, out=tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no such ratings file or dataset folder, and not a data config"):
        prizenet.fit(tmp_path / "missing.csv", out=tmp_path / "c")
    with pytest.raises(TypeError, match="ratings must be a pandas DataFrame"):
        prizenet.fit([(1, 2, 3.0)], out=tmp_path / "d")


def test_the_readmes_python_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README.md lacks the Python example (a ```python block after <!-- api-example -->)"
    frame(200, 60, 5000, string_users=False).rename(columns={"userId": "user", "movieId": "item"}).to_csv(
        tmp_path / "ratings.csv", index=False)
    r = subprocess.run([sys.executable, "-c", block.group(1)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "svd-model" / "model.pt").is_file()


def test_fit_takes_the_default_model_or_an_experiments(synthetic, tmp_path):
    rec = prizenet.fit(synthetic, trainer={**QUIET, "n_epochs": 1, "final_fit": False}, n_factors=2, out=tmp_path / "a")
    assert type(rec.model).__name__ == "SVD" and rec.phase == 1 and rec.model.pu.weight.shape[1] == 2
    rec = prizenet.fit(synthetic, experiment="ml1m_baseline", trainer={**QUIET, "n_epochs": 1}, out=tmp_path / "b")
    assert type(rec.model).__name__ == "Baseline" and rec.config["model"]["solver"] == "als"


def test_phase1_trains_on_training_minus_probe_only_and_reports_its_metrics(synthetic, tmp_path):
    from prizenet.api import phase1

    out = tmp_path / "run"
    got = phase1(["data=netflix", f"data.root={synthetic}", "model=baseline", "trainer.n_epochs=2",
                  "trainer.histograms=false"], out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert got["probe_rmse"] == metrics["probe_rmse"] and got["epochs_run"] == metrics["epochs_run"] == 2
    assert got["fit_seconds"] == metrics["fit_seconds"]["phase1"] and got["model"] == metrics["model"]
    assert metrics["fit_seconds"]["phase2"] == 0  # no final fit
