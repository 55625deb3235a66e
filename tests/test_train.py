"""train.py: the Prize protocol, outputs, resume, the NaN guard, sweeps."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import train
from prizenet import run
from prizenet.data import read_submission
from prizenet.data.submission import check_against
from conftest import shared

ROOT = Path(__file__).resolve().parents[1]
SMALL_DATA = ["data.users=400", "data.items=100", "data.ratings=20000"]
QUIET = ["trainer.progress=false", "trainer.histograms=false", "trainer.batch_size=512"]
SMALL = SMALL_DATA + QUIET


def config(*overrides):
    """The composed config, on the small synthetic set unless a ``data=`` override is given."""
    own_data = any(o.startswith("data=") for o in overrides)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*(QUIET if own_data else SMALL), *overrides])


def fit(tmp_path, *overrides, name="run"):
    out = tmp_path / name
    return train.train(config(*overrides), out), out


# (train RMSE, probe RMSE) per epoch on the small synthetic set, recorded with torch 2.13 on CPU
# (cache version 3: the random-order models' batches follow the rows' user order; svd's kernel
# epochs user by user since issue 15).
PINNED = {
    "baseline": [(1.06106, 1.05253), (1.02661, 1.04999), (1.02054, 1.04599), (1.01742, 1.04908)],
    "svd": [(1.06042, 1.05019), (1.02503, 1.04888), (1.01538, 1.04714), (1.00855, 1.04615)],  # kernel, user by user
    "svdpp": [(1.05629, 1.04830), (1.02401, 1.05257), (1.01278, 1.04791), (0.99870, 1.04177)],  # numba kernel
    "timebaseline": [(1.07513, 1.05894), (1.02046, 1.04592), (0.99840, 1.04026), (0.98340, 1.03978)],
    "timesvdpp": [(1.06590, 1.05441), (1.01807, 1.04813), (0.99135, 1.04221), (0.96600, 1.03274)],  # kernel
    "ncf": [(1.11241, 1.09671), (1.04213, 1.05718), (1.01232, 1.04758), (0.99314, 1.03282)],  # Adam
    "integrated": [(1.05141, 1.03971), (1.00663, 1.03680), (0.98461, 1.02609), (0.96274, 1.01712)],  # kernel
    "rbm": [(1.06024, 1.07157), (1.05911, 1.07228), (1.05804, 1.07094), (1.05634, 1.07010)],  # CD-1, then CD-3
    "autorec": [(1.11787, 1.12339), (1.08944, 1.12535), (1.08255, 1.12494), (1.07556, 1.12174)],  # Adam
}


# The settings the curves were recorded with (they pin the arithmetic, not the defaults).
RECORDED = {"svd": [f"model.{k}=0.005" for k in ("lr_bu", "lr_bi", "lr_pu", "lr_qi")] + ["model.reg_pu=0.02",
                                                                                     "model.reg_qi=0.02"],
            "rbm": ["model.cd_every=2", "model.momentum=0.5", "model.lr_w=0.05", "model.lr_bv=0.05", "model.lr_bh=0.05",
                    "model.lr_d=0.005"]}
SIZE = {"svd": ["model.n_factors=8"], "svdpp": ["model.n_factors=8"], "integrated": ["model.n_factors=8"], "rbm": ["model.n_hidden=16"], "timesvdpp": ["model.n_factors=8"],
        "autorec": ["model.hidden=32"], "bfm": ["model.n_factors=4", "model.features=timesvdpp_flipped"]}  # small models for the small data set


@pytest.mark.parametrize("model", sorted(PINNED))
def test_pinned_training_curve(tmp_path, model):
    m, _ = fit(tmp_path, f"model={model}", *SIZE.get(model, []), *RECORDED.get(model, []), "trainer.n_epochs=4",
               "trainer.final_fit=false", "trainer.lr_scale=3", "trainer.lr_decay=0.95", "trainer.patience=4",
               "trainer.threads=1")  # the exact, repeatable kernels
    got = [(h["train_rmse"], h["probe_rmse"]) for h in m["history"]["phase1"]]
    assert np.allclose(got, PINNED[model], atol=2e-3), got
    assert all(a[0] > b[0] for a, b in zip(got, got[1:])), "the training RMSE must fall every epoch"


def test_outputs_are_present_and_well_formed(tmp_path):
    m, out = fit(tmp_path, "trainer.n_epochs=3", "trainer.histograms=true")
    data = run.instantiate(config().data)
    probe = np.load(out / "predictions" / "probe.npy")
    qual = np.load(out / "predictions" / "qualifying.npy")
    assert probe.dtype == np.float32 and probe.shape == (len(data.probe_rows),)
    assert qual.dtype == np.float32 and qual.shape == (len(data.qual_user),)
    assert np.sqrt(np.mean((probe - data.probe_rating) ** 2)) == pytest.approx(m["probe_rmse"], abs=1e-5)
    movie, pred = read_submission(out / "submission.txt")
    check_against(out / "submission.txt", movie, data.item_ids[data.qual_item])
    assert np.allclose(pred, np.clip(qual, 1, 5), atol=5e-4)  # three decimals in the file
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("model", "dataset", "probe_rmse", "best_epoch", "fit_seconds", "ratings_per_s", "quiz_rmse", "split"):
        assert key in metrics
    assert metrics["optimizer"] == "sgd"  # trainer.optimizer=auto, resolved for svd
    assert metrics["fit_seconds"]["phase2"] > 0 and len(metrics["history"]["phase2"]) == metrics["best_epoch"]
    for name in ("last.pt", "best.pt"):
        assert (out / "checkpoints" / name).is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "train/rmse", "probe/rmse", "train/lr_scale", "throughput/ratings_per_s"} <= tags
    assert len(ea.Scalars("probe/rmse")) == 3
    # phase 2: its own TensorBoard run, the same tags, on its own epoch axis from 1
    final = EventAccumulator(str(out / "tensorboard" / "final_fit"), size_guidance={"histograms": 0}).Reload()
    assert [e.step for e in final.Scalars("train/rmse")] == list(range(1, metrics["best_epoch"] + 1))
    assert "probe/rmse" not in final.Tags()["scalars"]
    assert any(t.startswith("factors/") for t in ea.Tags()["histograms"])
    assert "learning_curve" in ea.Tags()["images"]  # the figure, also as a PNG in the run folder
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("model,override", [
    ("svd", "model.n_factors=4"), ("svd", "model.init_std=0.3"), ("svd", "model.lr_bu=0.05"),
    ("svd", "model.lr_bi=0.05"), ("svd", "model.lr_pu=0.05"), ("svd", "model.lr_qi=0.05"),
    ("svd", "model.reg_bu=0.5"), ("svd", "model.reg_bi=0.5"), ("svd", "model.reg_pu=0.5"),
    ("svd", "model.reg_qi=0.5"), ("svd", "model.biased=false"),
    ("baseline", "model.lr_bu=0.05"), ("baseline", "model.lr_bi=0.05"), ("baseline", "model.reg_bu=0.5"),
    ("baseline", "model.reg_bi=0.5"), ("baseline", "model.solver=als"),
    ("baseline", "model.reg_u=1 model.solver=als"), ("baseline", "model.reg_i=1 model.solver=als"),
    ("svd", "trainer.batch_size=256 trainer.kernel=torch"), ("svd", "trainer.kernel=torch"),
    ("svdpp", "trainer.kernel=torch"), ("timesvdpp", "trainer.kernel=torch"),
    ("svdpp", "model.n_factors=4"), ("svdpp", "model.lr_yj=0.05"), ("svdpp", "model.reg_yj=0.5"),
    ("timebaseline", "model.n_bins=5"), ("timebaseline", "model.beta=0.2"), ("timebaseline", "model.lr_but=0.05"),
    ("timebaseline", "model.lr_cut=0.05"), ("timebaseline", "model.reg_alpha=0.01 model.lr_alpha=0.001"),
    ("timesvdpp", "model.per_day_factors=true"), ("timesvdpp", "model.lr_alpha_p=0.001 model.reg_alpha_p=0.01"),
    ("timesvdpp", "model.lr_bibin=0.01"), ("svd", "trainer.optimizer=adam"), ("svd", "trainer.lr_scale=2"),
    ("svd", "trainer.lr_decay=0.5"), ("svd", "trainer.n_epochs=3"), ("svd", "seed=1"),
    ("ncf", "model.n_factors=4"), ("ncf", "model.mlp_layers=[32,8]"), ("ncf", "model.dropout=0.3"),
    ("ncf", "model.branches=gmf"), ("ncf", "model.branches=mlp"), ("ncf", "model.init_std=0.1"),
    ("ncf", "model.lr_bias=0.01"), ("ncf", "model.lr_emb=0.01"), ("ncf", "model.lr_mlp=0.01"),
    ("ncf", "model.reg_bias=1"), ("ncf", "model.reg_emb=1"), ("ncf", "model.reg_mlp=1"),
    ("ncf", "trainer.optimizer=sgd model.lr_mlp=1e-5"),
    ("autorec", "model.hidden=8"), ("autorec", "model.init_std=0.1"), ("autorec", "model.lr=0.01"),
    ("autorec", "model.lr_b=0.01"), ("autorec", "model.lr_h=0.01"), ("autorec", "model.reg=0.1"),
    ("autorec", "model.reg_b=1"), ("bfm", "seed=1"), ("bfm", "model.features=timesvdpp_flipped"),
])
def test_every_hyper_parameter_changes_the_result(tmp_path, model, override):
    base = [f"model={model}", "trainer.n_epochs=2", "trainer.final_fit=false", "trainer.patience=5"]
    base += ["model.hidden=32"] if model == "autorec" and "model.hidden" not in override else []
    extra = override.split()
    for both in ("model.solver=als", "trainer.kernel=torch"):  # the setting the override needs on both sides
        if both in extra and extra != [both]:
            base.append(both)
    a, _ = fit(tmp_path, *base, name="a")
    b, _ = fit(tmp_path, *base, *extra, name="b")
    assert a["probe_rmse"] != b["probe_rmse"]


def test_same_seed_same_result(tmp_path):
    a, _ = fit(tmp_path, "trainer.n_epochs=3", "trainer.threads=1", name="a")
    b, _ = fit(tmp_path, "trainer.n_epochs=3", "trainer.threads=1", name="b")
    assert a["probe_rmse"] == b["probe_rmse"]
    assert np.array_equal(np.load(tmp_path / "a/predictions/qualifying.npy"),
                          np.load(tmp_path / "b/predictions/qualifying.npy"))


def test_early_stopping_restores_the_best_epoch(tmp_path):
    # A learning rate that overfits fast: the probe RMSE turns up, training stops, the best returns.
    m, out = fit(tmp_path, "trainer.n_epochs=30", "trainer.patience=2", "trainer.lr_scale=8", "trainer.lr_decay=1",
                 "model.reg_pu=0", "model.reg_qi=0", "model.n_factors=32", "trainer.final_fit=false")
    hist = m["history"]["phase1"]
    assert len(hist) < 30 and len(hist) - m["best_epoch"] == 2
    assert m["probe_rmse"] == pytest.approx(min(h["probe_rmse"] for h in hist), abs=1e-6)


def test_nan_guard_names_the_epoch(tmp_path):
    with pytest.raises(FloatingPointError, match=r"phase 1, epoch 1: "):
        fit(tmp_path, "trainer.lr_scale=1e4", "trainer.n_epochs=3")


@pytest.mark.parametrize("model", ["svdpp", "timebaseline", "timesvdpp", "ncf", "autorec", "bfm"])
def test_every_model_runs_both_phases_with_cold_users_and_items(tmp_path, synthetic, model):
    (synthetic / "answers.csv").unlink()
    with open(synthetic / "qualifying.txt", "a") as f:
        f.write("99999:\n1,2005-06-01\n1:\n7777777,2005-06-03\n")
    m, out = fit(tmp_path, "data=netflix", f"data.root={synthetic}", f"model={model}", "trainer.n_epochs=2",
                 *SIZE.get(model, []))
    qual = np.load(out / "predictions" / "qualifying.npy")
    assert len(m["history"]["phase2"]) == m["best_epoch"] and np.isfinite(m["probe_rmse"])
    assert np.isfinite(qual).all() and ((qual >= 1) & (qual <= 5)).all()


def test_unseen_users_and_items_fall_back_to_biases(tmp_path, synthetic):
    # A movie and a customer that occur only in qualifying (as some did in the Prize).
    (synthetic / "answers.csv").unlink()  # the key would no longer match qualifying.txt
    with open(synthetic / "qualifying.txt", "a") as f:
        f.write("99999:\n1,2005-06-01\n2,2005-06-02\n1:\n7777777,2005-06-03\n")
    m, out = fit(tmp_path, "data=netflix", f"data.root={synthetic}", "trainer.n_epochs=2")
    qual = np.load(out / "predictions" / "qualifying.npy")
    movie, pred = read_submission(out / "submission.txt")
    data = run.instantiate(config("data=netflix", f"data.root={synthetic}").data)
    new_item = data.item_ids[data.qual_item] == 99999
    new_user = data.user_ids[data.qual_user] == 7777777
    assert new_item.sum() == 2 and new_user.sum() == 1
    assert np.isfinite(qual).all() and ((qual >= 1) & (qual <= 5)).all()
    # mu + b_u for the new movie (its b_i and q_i were never trained), mu + b_i for the new customer.
    model = train.make_model(config("data=netflix", f"data.root={synthetic}"), data, data.fit_rows(True), "cpu")
    model.load_state_dict(torch.load(out / "checkpoints" / "last.pt", weights_only=False)["model"])
    mu = model.mu.item()
    u = data.qual_user[new_item]
    assert np.allclose(qual[new_item], np.clip(mu + model.bu.weight[u].numpy(), 1, 5), atol=1e-5)
    i = data.qual_item[new_user]
    assert np.allclose(qual[new_user], np.clip(mu + model.bi.weight[i].numpy(), 1, 5), atol=1e-5)


def run_cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, env=env, **kw)


@pytest.mark.parametrize("model", [["model.n_factors=32"],  # svd's kernel
                                   ["model=bfm", "model.features=timesvdpp_flipped", "model.n_factors=32"],  # a chain
                                   ["model=integrated", "model.n_factors=8", "model.k=50"],  # neighbours found once
                                   ["model=rbm", "model.n_hidden=16", "model.cd_every=2"],  # CD-T, its RNG, momentum
                                   ["model=rbm", "model.n_hidden=16", "model.rank=4"]],  # W = A·B kept from A and B
                         ids=["svd", "bfm", "integrated", "rbm", "rbm_factored"])
def test_resume_after_kill_ends_with_the_same_result(tmp_path, model):
    # (fixed threads: the default measures 1 against 2 cores, so its runs vary with the machine's load)
    args = [*QUIET, "data.users=1000", "data.items=200", "data.ratings=60000", "trainer.n_epochs=8", "trainer.patience=8",
            *model, "trainer.threads=1"]
    full = run_cli(*args, f"hydra.run.dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "train.py", *args, f"hydra.run.dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "metrics.json").exists()
    epoch = torch.load(last, weights_only=True)["epoch"]
    assert epoch < 8
    resumed = run_cli(*args, f"trainer.resume={killed}", f"hydra.run.dir={tmp_path / 'resumed'}")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert a["probe_rmse"] == b["probe_rmse"] and a["best_epoch"] == b["best_epoch"]
    assert np.array_equal(np.load(tmp_path / "full/predictions/qualifying.npy"),
                          np.load(tmp_path / "resumed/predictions/qualifying.npy"))
    assert (tmp_path / "resumed" / ".hydra" / "config.yaml").is_file()


def test_resume_refuses_a_different_config(tmp_path):
    fit(tmp_path, "trainer.n_epochs=1", name="a")
    with pytest.raises(ValueError, match="different model config"):
        fit(tmp_path, "trainer.n_epochs=1", "model.n_factors=4", f"trainer.resume={tmp_path / 'a'}", name="b")


def test_multirun_gives_each_run_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_cli("-m", "model=baseline,svd", *SMALL, "trainer.n_epochs=2", f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["0_baseline", "1_svd"]
    for r in runs:
        m = json.loads((sweep / r / "metrics.json").read_text())
        assert m["model"] in ("Baseline", "SVD") and np.isfinite(m["probe_rmse"])


def test_prize_layout_real_data_writes_a_submission(tmp_path):
    root = shared("prize/ml1m-half")
    out = run_cli("data=netflix", f"data.root={root}", "model=svd", "trainer.n_epochs=2", "model.n_factors=16",
                  "trainer.progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    movie, pred = read_submission(tmp_path / "submission.txt")
    assert len(pred) == 17_901 and np.isfinite(pred).all() and (pred >= 1).all() and (pred <= 5).all()


def test_a_model_is_refused_on_a_device_it_cannot_train_on_before_the_data_loads(tmp_path):
    # bfm samples on the CPU only; "meta" stands for any other device (this machine has no GPU)
    r = run_cli(*QUIET, "model=bfm", "trainer.device=meta", "data=netflix", "data.root=/nonexistent",
                f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2, r.stderr
    assert "BayesianFM trains on cpu only, not meta; use trainer.device=cpu" in r.stdout + r.stderr
    assert not (tmp_path / ".hydra").exists()  # refused before anything was written


def test_auto_picks_a_device_the_model_trains_on(tmp_path, monkeypatch):
    # On a GPU machine trainer.device=auto is cuda; bfm samples on the CPU: auto takes the CPU for it
    # ("meta" stands for the GPU this machine lacks).
    monkeypatch.setattr(run, "pick_device", lambda name: torch.device("meta"))
    m, _ = fit(tmp_path, "model=bfm", "model.n_factors=2", "trainer.n_epochs=2", "trainer.final_fit=false")
    assert m["device"] == "cpu" and np.isfinite(m["probe_rmse"])


def test_a_run_stopped_by_the_epoch_cap_while_improving_warns_and_says_so(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="prizenet"):
        m, _ = fit(tmp_path, "trainer.n_epochs=2", name="short")
    assert m["under_trained"] and m["best_epoch"] == 2
    assert any("under-trained; raise trainer.n_epochs" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="prizenet"):  # stopped by patience: trained enough
        m, _ = fit(tmp_path, "model=baseline", "trainer.n_epochs=40", "trainer.patience=1", name="long")
    assert not m["under_trained"] and m["best_epoch"] < m["epochs_run"]
    assert not any("under-trained" in r.getMessage() for r in caplog.records)


def test_the_run_ends_with_a_summary_of_scores_outputs_and_next_commands(tmp_path, caplog):
    with caplog.at_level("INFO", logger="prizenet"):
        m, out = fit(tmp_path, "trainer.n_epochs=2")
    text = caplog.records[-1].getMessage()
    assert text.startswith("run finished: SVD on synthetic")
    assert f"probe RMSE   {m['probe_rmse']:.5f}" in text and f"{m['quiz_rmse']:.5f} / {m['test_rmse']:.5f}" in text
    assert str(out) in text and "prizenet blend" in text and "tensorboard --logdir" in text


def test_hparams_rows_of_different_models_have_the_same_columns(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    def columns(out):
        ea = EventAccumulator(str(out / "tensorboard")).Reload()
        for content in ea.PluginTagToContent("hparams").values():
            info = plugin_data_pb2.HParamsPluginData.FromString(content)
            if info.HasField("session_start_info"):
                return dict(info.session_start_info.hparams)

    runs = {name: fit(tmp_path, f"model={name}", "trainer.n_epochs=1", "trainer.final_fit=false", name=name)[1]
            for name in ("svd", "baseline")}
    svd, baseline = columns(runs["svd"]), columns(runs["baseline"])
    assert set(svd) == set(baseline) and "model.n_factors" in baseline  # one set of columns for every model
    assert svd["model"].string_value == "svd" and baseline["model"].string_value == "baseline"
    assert svd["model.n_factors"].number_value == 100 and np.isnan(baseline["model.n_factors"].number_value)
    assert not any(k.endswith("_target_") for k in svd)


def test_a_search_preset_without_multirun_is_refused_with_the_command_that_runs_it(tmp_path):
    r = run_cli(*SMALL, "hparams_search=svd_optuna", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert "hparams_search=svd_optuna is a sweep: run it with -m (python train.py -m " in r.stdout + r.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_pinned_knn_sweep_and_its_closed_form(tmp_path):
    # (train RMSE, probe RMSE) of the one sweep on the small synthetic set (torch 2.13, CPU);
    # later sweeps change nothing, so patience ends phase 1 and phase 2 runs one sweep.
    m, _ = fit(tmp_path, "model=knn", "trainer.n_epochs=10", "trainer.patience=2")
    got = [(h["train_rmse"], h["probe_rmse"]) for h in m["history"]["phase1"]]
    assert np.allclose(got, [(0.86600, 0.94970)] * 3, atol=2e-3), got
    assert m["best_epoch"] == 1 and len(m["history"]["phase2"]) == 1 and not m["under_trained"]
