"""Sweeps beyond one process: Hydra's Ray and submitit launchers, and Optuna studies shared
by several workers through one SQLite file. Everything starts here, on the loopback address,
and stops when the test ends."""

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prizenet.training import job_threads, launcher_share

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.progress=false", "data.users=400", "data.items=100", "data.ratings=20000", "trainer.n_epochs=2",
        "trainer.batch_size=512"]


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def train(*args, wait=True, log: Path | None = None, **kw):
    """train.py with ``args``: run to the end, or (``wait=False``) started, its output in ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "train.py", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, **kw)


def complete_runs(sweep: Path) -> list[Path]:
    """Run folders of the sweep with everything a finished run writes."""
    return sorted(p.parent for p in sweep.glob("*/metrics.json")
                  if (p.parent / "submission.txt").is_file() and (p.parent / "predictions" / "probe.npy").is_file())


@pytest.mark.skipif(not has("hydra_plugins.hydra_ray_launcher"), reason="the ray extra is not installed "
                    "(pip install 'prizenet[ray]')")
def test_a_two_job_sweep_through_the_ray_launcher_on_a_local_instance(tmp_path):
    r = train("-m", "hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2",
              "+hydra.launcher.ray.init._node_ip_address=127.0.0.1", "model=svd,baseline", *TINY,
              f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = complete_runs(tmp_path)
    assert [p.name for p in runs] == ["0_svd", "1_baseline"]
    for run in runs:  # each job held to the one core Ray gave it
        assert "device cpu, 1 CPU thread" in (run / "train.log").read_text()


@pytest.mark.skipif(not has("hydra_plugins.hydra_submitit_launcher"), reason="the slurm extra is not installed "
                    "(pip install 'prizenet[slurm]')")
def test_a_two_job_sweep_through_submitit_local(tmp_path):
    r = train("-m", "hydra/launcher=submitit_local", "model=svd,baseline", *TINY, f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = complete_runs(tmp_path)
    assert [p.name for p in runs] == ["0_svd", "1_baseline"]
    assert (tmp_path / ".submitit").is_dir()  # submitit's own job folders and logs
    for run in runs:
        assert "device cpu, 1 CPU thread" in (run / "train.log").read_text()  # cpus_per_task: 1
    from prizenet.cli import leaderboard  # the sweep folder as it is, .submitit/ and all

    table = leaderboard.rows([tmp_path], None)
    assert sorted(Path(r["run"]).name for r in table) == ["0_svd", "1_baseline"]


def study(sweep: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="svd", storage=f"sqlite:///{sweep / 'optuna.db'}")


def states(sweep: Path) -> dict:
    out: dict = {}
    for t in study(sweep).trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


SEARCH = ["-m", "hparams_search=svd_optuna", *TINY]


@pytest.mark.skipif(not has("hydra_plugins.hydra_optuna_sweeper"), reason="the sweep extra is not installed")
def test_two_optuna_workers_share_one_sqlite_study(tmp_path):
    sweep = tmp_path / "study"
    logs = [tmp_path / f"worker{k}.log" for k in range(2)]
    workers = [train(*SEARCH, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", wait=False, log=log)
               for log in logs]
    for w, log in zip(workers, logs):
        assert w.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert states(sweep) == {"COMPLETE": 4}  # both workers' trials, in one study
    assert len(complete_runs(sweep)) == 4  # one folder per trial, none overwritten
    values = sorted(t.value for t in study(sweep).trials)
    probes = sorted(json.loads((run / "metrics.json").read_text())["probe_rmse"] for run in complete_runs(sweep))
    assert values == pytest.approx(probes)  # the study's values are the runs' probe RMSEs
    best = subprocess.run([sys.executable, "-m", "prizenet", "best-trial", str(sweep)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert best.returncode == 0, best.stderr
    assert "4 complete" in best.stdout and f"{values[0]:.5f}" in best.stdout
    command = best.stdout.splitlines()[1]
    assert command.startswith("python train.py model=svd data=synthetic ") and command.endswith("trainer.final_fit=true")
    assert "hparams_search" not in command and "model.n_factors=" in command


@pytest.mark.skipif(not has("hydra_plugins.hydra_optuna_sweeper"), reason="the sweep extra is not installed")
def test_a_killed_workers_study_resumes(tmp_path):
    sweep = tmp_path / "study"
    worker = train(*SEARCH, "hydra.sweeper.n_trials=20", f"hydra.sweep.dir={sweep}", wait=False,
                   log=tmp_path / "worker.log")
    deadline = time.time() + 300
    while time.time() < deadline and worker.poll() is None:
        try:  # read-only, straight from SQLite: Optuna would make the tables if they are missing yet
            with sqlite3.connect(f"file:{sweep / 'optuna.db'}?mode=ro", uri=True) as conn:
                if conn.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0] >= 2:
                    break
        except sqlite3.Error:  # the file or its tables not made yet, or the file locked
            pass
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = states(sweep)
    assert worker.returncode == -signal.SIGKILL and before.get("COMPLETE", 0) >= 2, before
    again = train(*SEARCH, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr[-3000:]
    after = states(sweep)
    assert after["COMPLETE"] == before["COMPLETE"] + 2  # the finished trials kept, two more added
    assert after.get("RUNNING", 0) == before.get("RUNNING", 0)  # the killed one stays as it was


def test_a_job_is_held_to_its_launchers_share(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert job_threads() == cores
    assert job_threads(share=1) == 1 and job_threads(share=cores + 8) == cores  # never more than the machine's
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets for a task's num_cpus
    assert job_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert job_threads() == 1
    assert launcher_share(OmegaConf.create({"launcher": {"cpus_per_task": 3}})) == 3
    assert launcher_share(OmegaConf.create({"launcher": {"ray": {"remote": {"num_cpus": 2}}}})) == 2
    assert launcher_share(OmegaConf.create({"launcher": {"_target_": "basic"}})) is None
    assert launcher_share(None) is None
