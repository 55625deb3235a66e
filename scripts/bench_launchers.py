"""Wall time of sweeps on this machine: Hydra's basic launcher against the Ray launcher,
and an Optuna study run by one worker against two sharing its SQLite file.

    python scripts/bench_launchers.py [--root ../shared/data/prize/ml1m-half] [--markdown]
        [--skip-workflow] [--skip-optuna] [--trials 8]

* workflow: the README's seven presets (both phases), ``python train.py -m ...`` with the
  basic launcher (one job after another, each on all cores), then the same with
  ``hydra/launcher=ray`` (a local Ray instance of all cores, one core per job: as many jobs
  at once as cores); the command's wall time, Ray's start included.
* optuna: ``hparams_search=svd_optuna`` on the same data (``trainer.n_epochs=20``), ``--trials``
  trials by one worker, then the same number split between two workers started together
  on one study (each ``n_trials`` half); wall time until the last worker ends.

Each sweep writes into a temporary folder; the machine should run nothing else (the
project's benchmarks note what they share it with).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = "ml1m_baseline,ml1m_timebaseline,ml1m_svd,ml1m_svdpp,ml1m_timesvdpp,ml1m_ncf,ml1m_autorec"


def command(*args) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}


def timed(*procs_args) -> float:
    """Start every command at once; seconds until the last one ends (each must succeed)."""
    t = time.perf_counter()
    procs = [subprocess.Popen(a, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for a in procs_args]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(p.args)}\n{err[-3000:]}")
    return time.perf_counter() - t


def count_runs(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*/metrics.json"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared/data/prize/ml1m-half")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--skip-workflow", action="store_true")
    ap.add_argument("--skip-optuna", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    data = ["data=netflix", f"data.root={args.root}", "trainer.progress=false"]
    cores = len(os.sched_getaffinity(0))
    out: dict = {"machine": platform.platform(), "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_workflow:
            basic = timed(command("-m", *data, f"experiment={WORKFLOW}", f"hydra.sweep.dir={tmp / 'basic'}"))
            ray = timed(command("-m", *data, f"experiment={WORKFLOW}", "hydra/launcher=ray",
                                f"hydra.launcher.ray.init.num_cpus={cores}", "hydra.launcher.ray.remote.num_cpus=1",
                                f"hydra.sweep.dir={tmp / 'ray'}"))
            out["workflow"] = {"runs": 7, "basic_seconds": basic, "ray_seconds": ray, "ray_jobs_at_once": cores,
                               "complete": [count_runs(tmp / "basic"), count_runs(tmp / "ray")]}
            print(out["workflow"], file=sys.stderr, flush=True)
        if not args.skip_optuna:
            search = ["-m", "hparams_search=svd_optuna", *data, "trainer.n_epochs=20"]
            one = timed(command(*search, f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweep.dir={tmp / 'one'}"))
            half = args.trials // 2
            two = timed(*[command(*search, f"hydra.sweeper.n_trials={half}", f"hydra.sweep.dir={tmp / 'two'}")
                          for _ in range(2)])
            out["optuna"] = {"trials": args.trials, "one_worker_seconds": one, "two_workers_seconds": two,
                             "complete": [count_runs(tmp / "one"), count_runs(tmp / "two")]}
            print(out["optuna"], file=sys.stderr, flush=True)
    if not args.markdown:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['machine']}, {cores} cores\n\n| sweep | set-up | wall (s) | runs written |\n|---|---|---:|---:|")
    if "workflow" in out:
        w = out["workflow"]
        print(f"| seven presets, both phases | basic launcher (one job at a time) | {w['basic_seconds']:.0f} | "
              f"{w['complete'][0]} |")
        print(f"| | Ray launcher, local instance ({w['ray_jobs_at_once']} jobs at a time) | {w['ray_seconds']:.0f} | "
              f"{w['complete'][1]} |")
    if "optuna" in out:
        o = out["optuna"]
        print(f"| svd_optuna, {o['trials']} trials | one worker | {o['one_worker_seconds']:.0f} | {o['complete'][0]} |")
        print(f"| | two workers, one SQLite study | {o['two_workers_seconds']:.0f} | {o['complete'][1]} |")


if __name__ == "__main__":
    main()
