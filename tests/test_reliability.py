"""The cases of docs/reliability.md, one test each (or a parametrized row): crafted
checkpoints and run folders run no code, no run overwrites another, every bad setting is
refused before data loads, every bad file is named with its line, damaged caches are
rebuilt, and nothing a killed run left behind lingers."""

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import train
from prizenet.config import ConfigError
from prizenet.training import CheckpointError, RunDirError

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.users=300", "data.items=80", "data.ratings=12000", "trainer.progress=false",
         "trainer.histograms=false", "trainer.n_epochs=1"]


def config(*overrides, small=True):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*(SMALL if small else []), *overrides])


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


class Payload:
    """Unpickling this runs a shell command that writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "last.pt"
    torch.save({"phase": 1, "epoch": 1, "model": Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=f"{evil}: cannot be loaded"):
        train.train(config(f"trainer.resume={evil}"), tmp_path / "run")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_checkpoint_of_something_else_is_named(tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match=f"{other}: not a train.py checkpoint .*lacks phase"):
        train.train(config(f"trainer.resume={other}"), tmp_path / "run")


def test_a_crafted_run_folder_runs_no_code_in_blend(tmp_path, capsys):
    from prizenet.cli import blend

    good = tmp_path / "good"
    train.train(config(), good)
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.pkl"
    payload.write_bytes(pickle.dumps(Payload(marker)))
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("metrics.json", "predictions"):
        os.system(f"cp -r {good / name} {evil / name}")
    (evil / ".hydra").mkdir()
    (evil / ".hydra" / "config.yaml").write_text(
        f"data:\n  _target_: torch.load\n  f: {payload}\n  weights_only: false\n")
    assert blend.main([str(evil), "--out", str(tmp_path / "blend")]) == 2
    assert not marker.exists()
    assert "torch.load" in capsys.readouterr().err


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "train.py"), *SMALL], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    runs = sorted(tmp_path.glob("outputs/*/*"))
    assert len(runs) == 2
    for r in runs:
        assert (r / "metrics.json").is_file() and (r / "submission.txt").is_file()


def test_a_folder_holding_a_run_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "run"
    train.train(config(), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RunDirError, match=f"{out} already holds a run"):
        train.train(config("model.n_factors=4"), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_refused_resume_into_its_own_folder_keeps_the_run_intact(tmp_path):
    out = tmp_path / "run"
    first = run_cli(*SMALL, f"hydra.run.dir={out}")
    assert first.returncode == 0, first.stderr
    keep = {p: p.read_bytes() for p in (out / ".hydra").iterdir()}
    events = sorted((out / "tensorboard").iterdir())
    again = run_cli(*SMALL, "model.n_factors=4", f"trainer.resume={out}", f"hydra.run.dir={out}")
    assert again.returncode != 0
    assert "model.n_factors is 100 there, 4 here" in again.stderr + again.stdout
    assert {p: p.read_bytes() for p in (out / ".hydra").iterdir()} == keep
    assert sorted((out / "tensorboard").iterdir()) == events


def test_a_resume_into_its_own_folder_continues_it(tmp_path):
    out = tmp_path / "run"
    assert run_cli(*SMALL[:-1], "trainer.n_epochs=2", "trainer.final_fit=false", f"hydra.run.dir={out}").returncode == 0
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint
    keep = (out / ".hydra" / "overrides.yaml").read_bytes()
    again = run_cli(*SMALL[:-1], "trainer.n_epochs=2", "trainer.final_fit=false", f"trainer.resume={out}",
                    f"hydra.run.dir={out}")
    assert again.returncode == 0, again.stderr
    assert (out / "metrics.json").is_file() and (out / ".hydra" / "overrides.yaml").read_bytes() == keep


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "run"
    train.train(config("trainer.n_epochs=2", "trainer.final_fit=false"), out)
    (out / "metrics.json").unlink()
    stale = out / "checkpoints" / ".best.pt.abcd1234.part"
    stale.write_bytes(b"x" * 100)
    train.train(config("trainer.n_epochs=2", "trainer.final_fit=false", f"trainer.resume={out}"), out)
    assert not stale.exists()


def test_a_resumed_epoch_is_logged_once(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from prizenet import training

    out = tmp_path / "run"
    args = ["trainer.n_epochs=3", "trainer.patience=3", "trainer.final_fit=false"]
    save = training.save_checkpoint

    def lost_at_epoch_3(path, state):  # as if killed after epoch 3 was logged, before last.pt landed
        if not (path.name == "last.pt" and state["epoch"] == 3):
            save(path, state)

    monkeypatch.setattr(training, "save_checkpoint", lost_at_epoch_3)
    train.train(config(*args), out)
    monkeypatch.setattr(training, "save_checkpoint", save)
    # (last.pt holds epoch 2, or 1 when epoch 2's write was skipped while epoch 1's still ran)
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] < 3
    (out / "metrics.json").unlink()
    # TensorBoard reads event files in name order (their names start with the second they
    # were opened); a resume happens in a later second, as it would after a kill.
    time.sleep(1.1)
    train.train(config(*args, f"trainer.resume={out}"), out)
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/rmse")] == [1, 2, 3]


@pytest.mark.parametrize("override, message", [
    ("trainer.batch_size=-1", "trainer.batch_size=-1: expected >= 1"),
    ("trainer.batch_size=0", "trainer.batch_size=0: expected >= 1"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size=0: expected >= 1"),
    ("trainer.n_epochs=0", "trainer.n_epochs=0: expected >= 1"),
    ("trainer.kernel=cuda", "trainer.kernel='cuda': expected one of auto, torch, numba, triton"),
    ("trainer.precision=fp16", "trainer.precision='fp16': expected one of fp32, bf16"),
    ("trainer.optimizer=adagrad", "trainer.optimizer='adagrad': expected one of auto, sgd, adam"),
    ("trainer.lr_scale=-1", "trainer.lr_scale=-1.0: expected > 0"),
    ("trainer.device=gpu", "trainer.device='gpu': expected auto, cpu, cuda or cuda:N"),
    ("model.lr_bu=-0.005", "model.lr_bu=-0.005: expected >= 0"),
    ("model.n_factors=-5", "model.n_factors=-5: expected >= 1"),
    ("model.n_factors=2.5", "model.n_factors=2.5: expected an integer"),
    ("model.biased=maybe", "model.biased='maybe': expected true or false"),
    ("model=ncf model.dropout=1", "model.dropout=1: expected >= 0 and < 1"),
    ("model=ncf model.branches=both", "model.branches='both': expected one of neumf, gmf, mlp"),
    ("model=baseline model.solver=newton", "model.solver='newton': expected one of sgd, als"),
    ("model=autorec model.hidden=0", "model.hidden=0: expected >= 1"),
    ("+model.n_factor=5", "model.n_factor: SVD has no such setting"),
])
def test_bad_settings_are_refused_before_the_data_loads(tmp_path, override, message):
    # A data root that does not exist: had the data been read first, that error would come instead.
    cfg = config("data=netflix", f"data.root={tmp_path / 'absent'}", *override.split(), small=False)
    with pytest.raises(ConfigError) as e:
        train.train(cfg, tmp_path / "run")
    assert message in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["trainer.n_epochs=abc", "trainer.batch_size=1e3x", "trainer.final_fit=sure",
                                      "trainer.n_epoch=3"])
def test_bad_types_and_unknown_trainer_keys_fail_while_composing(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")):
        config(override)


def test_every_shipped_config_passes_the_checks():
    from prizenet.config import check_config

    for group in ("model", "experiment"):
        for f in sorted((ROOT / "conf" / group).glob("*.yaml")):
            check_config(config(f"{group}={f.stem}", small=False))


def test_ctrl_c_says_how_to_resume(tmp_path):
    import signal

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # (the child takes SIGINT as a terminal's process does, even when the tests run as a
    # background job, whose children inherit SIGINT ignored)
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *SMALL[:-1], "trainer.n_epochs=1000000",
                             "trainer.patience=1000000", f"hydra.run.dir={out}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    text = "".join(proc.communicate(timeout=60))  # Hydra logs to stdout
    assert proc.returncode == 130
    assert "Traceback" not in text
    assert f"trainer.resume={out} hydra.run.dir={out}" in text


def test_atomic_files_honour_the_umask(tmp_path):
    from prizenet.data.submission import FILE_MODE, atomic_write

    atomic_write(tmp_path / "f.txt", [b"x"])
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == FILE_MODE
    old = os.umask(0o022)
    os.umask(old)
    assert FILE_MODE == 0o666 & ~old and FILE_MODE & 0o044  # group and others can read


def test_the_blended_runs_still_blend_after_the_checks(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train.train(config("model=baseline"), a)
    train.train(config(), b)
    from prizenet.cli import blend

    assert blend.main([str(a), str(b), "--out", str(tmp_path / "blend")]) == 0
    assert np.isfinite(np.load(tmp_path / "blend" / "predictions" / "qualifying.npy")).all()


# -- data files, caches, scripts ---------------------------------------------------------
from prizenet.data import DataFormatError, load_prize  # noqa: E402


def test_make_synthetic_refuses_a_folder_in_use_and_force_replaces_it(tmp_path, capsys):
    from prizenet.cli import synthetic as make_synthetic

    out = tmp_path / "syn"
    args = ["--out", str(out), "--users", "200", "--items", "40", "--ratings", "2000"]
    assert make_synthetic.main(args) == 0
    (out / "training_set" / "mv_0009999.txt").write_text("9999:\n1,3,2004-01-01\n")  # an old file
    assert make_synthetic.main(args) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert make_synthetic.main([*args, "--force"]) == 0
    assert not (out / "training_set" / "mv_0009999.txt").exists()
    load_prize(out)  # one consistent data set


def test_leaderboard_gives_each_dataset_its_own_table(tmp_path, capsys):
    from prizenet.cli import leaderboard

    train.train(config(), tmp_path / "a")
    train.train(config("data.users=350"), tmp_path / "b")
    assert leaderboard.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert len(heads) == 2 and all("split" in h for h in heads)


@pytest.fixture
def judged(synthetic, tmp_path):
    """A submission of the synthetic data and a copy of its answer key to damage."""
    from prizenet.data import write_submission

    d = load_prize(synthetic)
    write_submission(tmp_path / "s.txt", d.item_ids[d.qual_item], np.full(len(d.qual_item), 3.6))
    return tmp_path / "s.txt", (synthetic / "answers.csv").read_text().splitlines(), tmp_path / "key.csv"


def _swap_blocks(lines):
    """The key sorted by customer, as a spreadsheet might: it leaves qualifying order."""
    return [lines[0]] + sorted(lines[1:], key=lambda x: int(x.split(",")[1]))


def _set(lines, k, col, value):
    parts = lines[k].split(",")
    parts[col] = value
    return lines[:k] + [",".join(parts)] + lines[k + 1:]


@pytest.mark.parametrize("edit, message", [
    (lambda ls: _set(ls, 3, 3, "nan"), r"key.csv, line 4: rating nan is not a number"),
    (lambda ls: _set(ls, 5, 4, "qiuz"), r"key.csv, line 6: subset 'qiuz'; expected 'quiz' or 'test'"),
    (lambda ls: _set(ls, 2, 3, "7"), r"key.csv, line 3: rating 7 is outside the rating scale \[1, 5\]"),
    (lambda ls: _set(ls, 4, 0, "x1"), r"key.csv, line 5: movie_id should be an integer, got 'x1'"),
    (lambda ls: ls[:-1], r"s.txt: movie block \d+ is .* expected .* as the answer key .*key.csv lists"),
    (_swap_blocks, r"key.csv, line \d+: movie \d+ starts a second block"),
    (lambda ls: ["a;b;c"] + ls[1:], r"key.csv: an answer key needs the columns"),
])
def test_score_checks_the_answer_key_first(judged, edit, message):
    from prizenet.data import score

    sub, lines, key = judged
    key.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(DataFormatError, match=message):
        score(sub, key)


def test_score_clips_predictions_to_the_scale_and_says_so(judged, capsys):
    from prizenet.cli import score as score_script

    sub, lines, key = judged
    key.write_text("\n".join(lines) + "\n")
    text = sub.read_text().replace("3.600", "9.000", 3)
    sub.write_text(text)
    assert score_script.main([str(sub), str(key), "--json"]) == 0
    result = __import__("json").loads(capsys.readouterr().out)
    assert result["clipped"] == 3 and result["rating_scale"] == [1.0, 5.0]
    assert score_script.main([str(sub), str(key)]) == 0
    assert "3 predictions outside [1, 5] were clipped" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "json", "ratings", "manifest"])
def test_a_damaged_cache_is_detected_and_rebuilt(synthetic, damage, caplog):
    first = load_prize(synthetic)
    cache = Path(first.meta["cache"])
    del first
    if damage == "truncate":
        (cache / "item.npy").write_bytes((cache / "item.npy").read_bytes()[:-100])
    elif damage == "json":
        (cache / "meta.json").write_text("{not json")
    elif damage == "ratings":
        r = np.load(cache / "rating_x2.npy")
        r[0] = 99
        np.save(cache / "rating_x2.npy", r)
    else:
        (cache / "manifest.json").unlink()
    again = load_prize(synthetic)
    assert f"{cache}: " in caplog.text and "building it again" in caplog.text
    assert again.meta["cache"] == str(cache) and int(np.asarray(again.rating_x2).max()) <= 10


def test_a_damaged_cache_with_large_files_is_caught_by_the_rating_range(synthetic, monkeypatch):
    from prizenet.data import prize
    from prizenet.data.prize import CacheError, PrizeData

    monkeypatch.setattr(prize, "HASHED_BYTES", 0)  # as at Netflix scale: rating_x2 is size-checked only
    cache = Path(load_prize(synthetic).meta["cache"])
    r = np.load(cache / "rating_x2.npy")
    r[5] = 200
    np.save(cache / "rating_x2.npy", r)
    with pytest.raises(CacheError, match=f"{cache}: damaged cache \\(ratings outside the scale"):
        PrizeData.load(cache)


def test_data_rebuild_forces_a_new_cache(tmp_path, synthetic):
    data = ["data=netflix", f"data.root={synthetic}"]
    train.train(config(*data, small=False), tmp_path / "run")
    cache = Path(load_prize(synthetic).meta["cache"])
    stamp = (cache / "manifest.json").stat().st_mtime_ns
    train.train(config(*data, "data.rebuild=true", small=False), tmp_path / "run2")
    assert (cache / "manifest.json").stat().st_mtime_ns > stamp


def test_cache_write_errors_name_the_folder(synthetic, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=f"into {blocker}"):
        load_prize(synthetic, cache_dir=blocker)


def test_stale_build_folders_and_old_cache_versions_are_removed(synthetic, tmp_path):
    from prizenet.data import cache

    root = tmp_path / "c"
    root.mkdir()
    first = Path(load_prize(synthetic, cache_dir=root).meta["cache"])
    dead = root / f".{first.name}~{cache._host()}~999999999~abcd"  # a killed build's folder
    dead.mkdir()
    (dead / "junk").write_bytes(b"x" * 1000)
    old = root / "netflix-0123456789abcdef"  # a cache of an earlier version: no manifest
    old.mkdir()
    (old / "meta.json").write_text("{}")
    path = synthetic / "training_set" / "mv_0000005.txt"
    path.write_text(path.read_text() + "\n")  # the source changed: a new build
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = Path(load_prize(synthetic, cache_dir=root).meta["cache"])
    assert second != first
    assert not dead.exists() and not old.exists() and not first.exists()  # the superseded build too


def test_an_answer_key_beside_movielens_files_keeps_the_cache(tmp_path):
    from prizenet.data import cache

    src = tmp_path / "ml"
    src.mkdir()
    rng = np.random.default_rng(0)
    rows = {(int(u), int(i)): int(r) for u, i, r in zip(rng.integers(1, 60, 3000), rng.integers(1, 40, 3000),
                                                        rng.integers(1, 6, 3000))}
    (src / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{880000000 + 1000 * k}\n"
                                        for k, ((u, i), r) in enumerate(rows.items())))
    key = cache._key(src, "movielens", {})
    (src / "answers.csv").write_text("movie_id,customer_id,rating,subset\n")
    assert cache._key(src, "movielens", {}) == key


def test_cache_files_and_folders_honour_the_umask(synthetic):
    from prizenet.data.submission import FILE_MODE, UMASK

    cache = Path(load_prize(synthetic).meta["cache"])
    assert cache.stat().st_mode & 0o777 == 0o777 & ~UMASK
    assert (cache / "meta.json").stat().st_mode & 0o777 == FILE_MODE


def _gzip_training(synthetic):
    import gzip

    for p in sorted((synthetic / "training_set").glob("mv_*.txt")):
        (p.parent / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()


def test_a_corrupt_gz_names_its_file(synthetic):
    _gzip_training(synthetic)
    bad = synthetic / "training_set" / "mv_0000007.txt.gz"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    with pytest.raises(DataFormatError, match=f"{bad}: cannot be read .*damaged or truncated"):
        load_prize(synthetic)


def test_a_corrupt_tar_names_the_archive(synthetic, tmp_path):
    import shutil
    import tarfile

    with tarfile.open(tmp_path / "training_set.tar", "w") as tar:
        tar.add(synthetic / "training_set", arcname="training_set")
    shutil.rmtree(synthetic / "training_set")
    data = (tmp_path / "training_set.tar").read_bytes()
    (synthetic / "training_set.tar").write_bytes(data[: len(data) // 2] + b"\xff" * 700)
    with pytest.raises(DataFormatError, match="training_set.tar.*(damaged|truncated)"):
        load_prize(synthetic)


def test_a_movie_header_that_disagrees_with_its_file_name_is_refused(synthetic):
    path = synthetic / "training_set" / "mv_0000004.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["5:"] + lines[1:]) + "\n")
    with pytest.raises(DataFormatError, match=r"mv_0000004.txt, line 1: header '5:' names movie 5.*expected '4:'"):
        load_prize(synthetic)


def test_a_duplicate_qualifying_pair_is_refused(synthetic):
    lines = (synthetic / "qualifying.txt").read_text().splitlines()
    (synthetic / "qualifying.txt").write_text("\n".join(lines[:3] + [lines[1]] + lines[3:]) + "\n")
    (synthetic / "answers.csv").unlink()
    with pytest.raises(DataFormatError, match=r"qualifying.txt, line \d+: user \d+ and movie \d+ are listed more "
                                              r"than once"):
        load_prize(synthetic)


def _udata(path, rows):
    path.write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))


UDATA = [(1, 10, 4, 978300760), (1, 20, 5, 978300761), (2, 10, 3, 978300762), (2, 30, 1, 978300763)]


@pytest.mark.parametrize("row, message", [
    ((2, 40, 7, 978300764), r"u.data, line 5: rating 7 is outside the rating scale \[1, 5\]"),
    ((2, 40, 3, 9_783_007_640_000), r"u.data, line 5: date .* lies too far from the others"),
    (("x7", 40, 3, 978300764), r"u.data, line 5: column 0 should be an integer id, got 'x7'"),
    ((2, "m40", 3, 978300764), r"u.data, line 5: column 1 should be an integer id, got 'm40'"),
])
def test_movielens_bad_values_name_file_line_and_value(tmp_path, row, message):
    _udata(tmp_path / "u.data", UDATA + [row])
    with pytest.raises(DataFormatError, match=message):
        load_prize(tmp_path)


def test_utf8_titles_are_read_as_utf8(tmp_path):
    from prizenet.data.netflix import read_titles

    (tmp_path / "t.txt").write_bytes("1,2001,Amélie\n2,NULL,Café, Paris\n".encode("utf-8"))
    assert read_titles(tmp_path / "t.txt") == {1: (2001, "Amélie"), 2: (0, "Café, Paris")}
    (tmp_path / "l.txt").write_bytes("1,2001,Amélie\n".encode("latin-1"))  # the Prize's own encoding
    assert read_titles(tmp_path / "l.txt") == {1: (2001, "Amélie")}


def test_string_user_ids_train_end_to_end(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 4000
    frame = pd.DataFrame({"user": [f"u{k}" for k in rng.integers(0, 120, n)], "item": rng.integers(0, 60, n),
                          "rating": rng.integers(1, 6, n), "timestamp": rng.integers(9e8, 1e9, n)})
    frame.drop_duplicates(["user", "item"]).to_csv(tmp_path / "r.csv", index=False)
    cfg = config("data=csv", f"data.path={tmp_path / 'r.csv'}", "data.columns.timestamp_col=timestamp",
                 "trainer.progress=false", "trainer.n_epochs=1", small=False)
    out = tmp_path / "run"
    train.train(cfg, out)
    assert (out / "submission.txt").is_file()


def test_blend_checks_its_inputs_before_any_work(tmp_path, capsys):
    from prizenet.cli import blend

    a, b = tmp_path / "a", tmp_path / "b"
    train.train(config("model=baseline"), a)
    train.train(config(), b)
    p = np.load(b / "predictions" / "probe.npy")
    p[7] = np.nan
    np.save(b / "predictions" / "probe.npy", p)
    assert blend.main([str(a), str(b), "--out", str(tmp_path / "blend")]) == 2
    assert "probe.npy: 1 predictions are NaN or infinite (the first at row 7)" in capsys.readouterr().err
    assert not (tmp_path / "blend").exists()
    with pytest.raises(SystemExit) as e:
        blend.main([str(a), "--folds", "1"])
    assert e.value.code == 2 and "k >= 2" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["trainer.batch_size=-1"], "trainer.batch_size=-1: expected >= 1"),
    (["data=netflix", "data.root=/nonexistent/prize"], "/nonexistent/prize: no such folder"),
])
def test_the_command_line_reports_user_errors_without_a_traceback(tmp_path, args, message):
    out = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    text = out.stdout + out.stderr
    assert out.returncode == 2 and message in text and "Traceback" not in text


def test_a_backend_the_device_cannot_run_is_refused_before_the_data_loads(tmp_path, monkeypatch):
    from prizenet import kernels

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # (the tests' interpreter would let Triton run on CPU)
    monkeypatch.setattr(kernels, "available", lambda name: True)
    out = tmp_path / "run"
    with pytest.raises(kernels.BackendError, match="runs on cuda, but the run's device is cpu"):
        train.train(config("trainer.kernel=triton", "trainer.device=cpu", "data=netflix", "data.root=/nonexistent",
                           small=False), out)
    assert not out.exists()  # nothing written, and the data (a folder that does not exist) never looked for


def test_a_saved_config_reaches_a_constructor_only_as_its_own_plain_parameters():
    from prizenet.config import saved_kwargs

    def loader(root, k=1):
        return root, k

    def open_ended(root, **more):
        return root, more

    assert saved_kwargs(loader, {"_target_": "x", "root": "d", "k": [1, 2]}, "f.yaml", "data", "L") == \
        {"root": "d", "k": [1, 2]}
    with pytest.raises(ValueError, match=r"f.yaml: data.n is not a parameter of L"):
        saved_kwargs(loader, {"root": "d", "n": 1}, "f.yaml", "data", "L")
    assert saved_kwargs(open_ended, {"root": "d", "n": 1}, "f.yaml", "model", "O") == {"root": "d", "n": 1}
    for bad in ({"_target_": "os.system", "command": "true"}, [{"_target_": "os.system"}], object()):
        with pytest.raises(ValueError, match=r"f.yaml: data.k must be a plain value"):
            saved_kwargs(loader, {"root": "d", "k": bad}, "f.yaml", "data", "L")
    with pytest.raises(ValueError, match=r"f.yaml: 'model' must be a mapping, got list"):
        saved_kwargs(loader, ["root"], "f.yaml", "model", "L")
