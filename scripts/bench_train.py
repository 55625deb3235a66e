"""Benchmark training: probe RMSE and fit time of prizenet models against scikit-surprise.

    python scripts/bench_train.py [--data ../shared/data/prize/ml1m-half] [--repeat 3]
    python scripts/bench_train.py --runs "svd=experiment=ml1m_svd" "svd50=experiment=ml1m_svd model.n_factors=50"

Every model trains on the same training-minus-probe ratings and is scored on the probe
(the Prize's phase 1; no final fit). prizenet runs go through ``prizenet.api.phase1`` with the
given Hydra overrides; fit time is the sum of the epochs' seconds (the per-epoch probe
evaluation included, data loading excluded). scikit-surprise (a benchmark-only
dependency: ``pip install scikit-surprise``) fits its default ``SVD`` (100 factors, 20
epochs) and ``BaselineOnly`` in the same process. With ``--repeat N`` each is run N times
and the median time is kept (RMSE does not change between repeats: every run is seeded).
Prints one JSON object; ``--markdown`` also prints a table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_RUNS = [
    "baseline=experiment=ml1m_baseline",
    "svd=experiment=ml1m_svd",
]


def prizenet_run(data: Path, overrides: list[str], out: Path) -> dict:
    from prizenet.api import phase1

    m = phase1([*overrides, "data=netflix", f"data.root={data}", "trainer.histograms=false"], out)
    return {"probe_rmse": m["probe_rmse"], "seconds": m["fit_seconds"], "epochs": m["epochs_run"],
            "best_epoch": m["best_epoch"], "ratings_per_s": m["ratings_per_s"],
            "seconds_per_epoch": m["fit_seconds"] / m["epochs_run"], "overrides": overrides}


def surprise_run(data, algo_name: str) -> dict:
    import numpy as np
    import pandas as pd
    import surprise

    rows = data.fit_rows(final_fit=False)
    frame = pd.DataFrame({"u": data.user[rows], "i": data.item[rows], "r": data.rating[rows]})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=data.rating_scale)).build_full_trainset()
    algo = {"SVD": lambda: surprise.SVD(random_state=0),
            "SVDpp": lambda: surprise.SVDpp(random_state=0),
            "BaselineOnly": lambda: surprise.BaselineOnly(verbose=False)}[algo_name]()
    t = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - t
    pu, pi = data.user[data.probe_rows], data.item[data.probe_rows]
    pred = np.array([algo.predict(int(u), int(i)).est for u, i in zip(pu, pi)])
    return {"probe_rmse": float(np.sqrt(np.mean((pred - data.probe_rating) ** 2))), "seconds": seconds,
            "version": surprise.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "prize" / "ml1m-half")
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="NAME=OVERRIDES (space-separated Hydra overrides)")
    ap.add_argument("--surprise", nargs="*", default=["BaselineOnly", "SVD"], help="scikit-surprise algorithms")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    logging.disable(logging.INFO)
    os.environ.setdefault("PRIZENET_CACHE", tempfile.mkdtemp(prefix="prizenet-bench-"))
    import torch

    from prizenet.data import load_prize

    data = load_prize(args.data, format="netflix")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d"), "data": str(args.data), "ratings": data.n_ratings,
              "probe": len(data.probe_rows), "prizenet": {}, "surprise": {}}
    for _ in range(args.repeat):
        for spec in args.runs:
            name, _, overrides = spec.partition("=")
            r = prizenet_run(args.data, overrides.split(), Path(tempfile.mkdtemp()))
            result["prizenet"].setdefault(name, []).append(r)
            print(name, json.dumps(r), file=sys.stderr, flush=True)
        for algo in args.surprise:
            r = surprise_run(data, algo)
            result["surprise"].setdefault(algo, []).append(r)
            print(algo, json.dumps(r), file=sys.stderr, flush=True)
    for group in ("prizenet", "surprise"):  # one row each: median time, the (seeded) RMSE
        for name, rs in result[group].items():
            row = {**rs[0], "seconds": statistics.median(r["seconds"] for r in rs),
                   "seconds_all": [r["seconds"] for r in rs]}
            if group == "prizenet":
                row["seconds_per_epoch"] = row["seconds"] / row["epochs"]
                row["ratings_per_s"] = statistics.median(r["ratings_per_s"] for r in rs)
            result[group][name] = row
    print(json.dumps(result, indent=1))
    if args.markdown:
        print("\n| model | settings | probe RMSE | fit seconds | epochs | ratings/s |\n|---|---|---:|---:|---:|---:|")
        for name, r in result["prizenet"].items():
            print(f"| prizenet `{name}` | `{' '.join(r['overrides'])}` | {r['probe_rmse']:.4f} | {r['seconds']:.2f} "
                  f"| {r['epochs']} | {r['ratings_per_s'] / 1e6:.2f}M |")
        for name, r in result["surprise"].items():
            print(f"| scikit-surprise {r['version']} `{name}` | defaults | {r['probe_rmse']:.4f} | {r['seconds']:.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
