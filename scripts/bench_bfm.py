"""Bayesian factorization machines (``model=bfm``) against myFM on the same split, rank and
samples, and seconds per Gibbs sweep at Netflix scale.

    python scripts/bench_bfm.py [--root ../shared/data/prize/ml1m-half] [--rank 32]
        [--sets mf:200,svdpp:200,timesvdpp_flipped:512] [--likelihood ordered_probit] [--no-myfm] [--markdown]
    python scripts/bench_bfm.py --netflix [--ratings 100480507] [--ranks 32,64] [--sweeps 2]

Both samplers train on training minus probe and predict the probe by averaging the samples
after the first 5 (myFM's default ``n_kept_samples = n_iter - 5``, prizenet's ``burn_in``);
the implicit features N(u), N(i) come from every known pair (training, probe, qualifying)
and the day is one-hot, as in myFM's MovieLens examples. Fit time is the sampling alone
(prizenet: the sweeps; myFM: ``fit``), both on this machine in the same run, one after the
other. myFM (``pip install myfm``, C++, one core) is a benchmark-only dependency.
``--netflix`` times sweeps of prizenet alone on the Netflix-shaped set of ``bench_gpu.py``
(generated in memory). Prints JSON; ``--markdown`` tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import prizenet  # noqa: E402,F401  (before torch: its OpenMP threads wait passively)
import torch  # noqa: E402

from prizenet.data.netflix import load_netflix  # noqa: E402
from prizenet.models import model_inputs  # noqa: E402
from prizenet.models.bfm import FEATURES, BayesianFM  # noqa: E402
from prizenet.training import SweepEpochs, predict, rmse  # noqa: E402

BURN_IN = 5


def prizenet_fit(data, rows, probe, features: str, rank: int, samples: int, seed: int = 0,
                 likelihood: str = "normal") -> dict:
    torch.manual_seed(seed)
    model = BayesianFM(**model_inputs(BayesianFM, data, rows), n_factors=rank, features=features, burn_in=BURN_IN,
                       likelihood=likelihood)
    epochs = SweepEpochs(model, data, rows, torch.device("cpu"))
    t = time.perf_counter()
    for _ in range(samples):
        epochs.run(1.0, "")
    seconds = time.perf_counter() - t
    pred = predict(model, data, data.user[probe], data.item[probe], data.day[probe], "cpu", 1 << 18)
    return {"probe_rmse": rmse(pred, data.probe_rating), "fit_seconds": seconds, "s_per_sweep": seconds / samples}


def myfm_fit(data, rows, probe, features: str, rank: int, samples: int, seed: int = 0,
             likelihood: str = "normal") -> dict:
    import myfm
    import scipy.sparse as sps

    time_block, use_nu, use_ni = FEATURES[features]
    n_users, n_items = data.n_users, data.n_items
    nu_indptr, nu_items = data.nu_indptr, data.nu_items
    norm = lambda indptr: 1 / np.sqrt(np.maximum(np.diff(indptr), 1))  # noqa: E731
    eye = lambda n: sps.identity(n, format="csr")  # noqa: E731
    users = eye(n_users)
    if use_nu:
        x = np.repeat(norm(nu_indptr), np.diff(nu_indptr))
        users = sps.hstack([users, sps.csr_matrix((x, nu_items, nu_indptr), shape=(n_users, n_items))], format="csr")
    items = eye(n_items)
    if use_ni:
        t = sps.csr_matrix((np.ones(len(nu_items)), nu_items, nu_indptr), shape=(n_users, n_items)).T.tocsr()
        t.data[:] = np.repeat(norm(t.indptr), np.diff(t.indptr))
        items = sps.hstack([items, t], format="csr")
    keys = data.user_day_keys() if time_block == "userday" else None  # the one-hot (user, day) of every known pair
    n_time = data.n_days if keys is None else len(keys)  # the time block's width (where there is one)
    groups = ([n_time] if time_block else []) + [n_users] + ([n_items] if use_nu else []) + [n_items] + (
        [n_users] if use_ni else [])

    def inputs(r):
        if time_block is None:
            X = sps.csr_matrix((len(r), 0))
        else:
            col = data.day[r] if time_block == "day" else \
                np.searchsorted(keys, data.user[r].astype(np.int64) * data.n_days + data.day[r])
            X = sps.csr_matrix((np.ones(len(r)), col, np.arange(len(r) + 1)), shape=(len(r), n_time))
        return X, [myfm.RelationBlock(data.user[r].astype(np.int64), users),
                   myfm.RelationBlock(data.item[r].astype(np.int64), items)]

    X, rel = inputs(rows)
    y = data.rating_x2[rows].astype(np.float64) * 0.5
    levels = np.unique(y)
    if likelihood == "ordered_probit":  # classes 0..K-1; predictions the expected rating under the class probabilities
        fm = myfm.MyFMOrderedProbit(rank=rank, random_seed=seed)
        y = np.searchsorted(levels, y)
    else:
        fm = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    t = time.perf_counter()
    fm.fit(X, y, X_rel=rel, n_iter=samples, n_kept_samples=samples - BURN_IN, group_shapes=groups)
    seconds = time.perf_counter() - t
    Xp, relp = inputs(probe)
    raw = fm.predict_proba(Xp, relp) @ levels if likelihood == "ordered_probit" else fm.predict(Xp, relp)
    pred = np.clip(raw, *data.rating_scale)
    return {"probe_rmse": rmse(pred, data.probe_rating), "fit_seconds": seconds, "s_per_sweep": seconds / samples}


def netflix(args) -> dict:
    import bench_gpu as bg  # scripts/ is on the path of a script run from it

    t = time.perf_counter()
    data = bg.Shaped(device=torch.device("cpu"), **bg.netflix_sizes(args.ratings))
    out = {"ratings": data.n_ratings, "generate_seconds": time.perf_counter() - t, "sweeps": {}}
    rows = np.arange(data.n_ratings)
    none = np.zeros(0, np.int64)
    for features in args.netflix_sets.split(","):
        for rank in map(int, args.ranks.split(",")):
            torch.manual_seed(0)
            model = BayesianFM(data.n_users, data.n_items, data.n_days, data.mu, data.nu_indptr, data.nu_items,
                               none, none, none, n_factors=rank, features=features)
            t = time.perf_counter()
            epochs = SweepEpochs(model, data, rows, torch.device("cpu"))
            model.sweep(epochs.batch)  # the first sweep also sorts the rows by each side
            first = time.perf_counter() - t
            times = []
            for _ in range(args.sweeps):
                t = time.perf_counter()
                epochs.run(1.0, "")
                times.append(time.perf_counter() - t)
            out["sweeps"][f"{features}, rank {rank}"] = {"first_sweep_seconds": first, "seconds": times,
                                                          "M_ratings_per_s": data.n_ratings / min(times) / 1e6}
            print(features, rank, [round(x, 1) for x in times], file=sys.stderr, flush=True)
            del model, epochs
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "prize" / "ml1m-half"))
    ap.add_argument("--sets", default="mf:200,svdpp:200,timesvdpp_flipped:512", help="features:samples,...")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--likelihood", choices=("normal", "ordered_probit"), default="normal",
                    help="both samplers' (myFM: MyFMRegressor or MyFMOrderedProbit)")
    ap.add_argument("--no-myfm", action="store_true")
    ap.add_argument("--netflix", action="store_true", help="seconds per sweep at Netflix scale instead")
    ap.add_argument("--ratings", type=int, default=100_480_507)
    ap.add_argument("--ranks", default="32,64")
    ap.add_argument("--netflix-sets", default="mf,timesvdpp_flipped")
    ap.add_argument("--sweeps", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d")}
    if args.netflix:
        report.update(netflix(args))
        print(json.dumps(report, indent=1))
        if args.markdown:
            print("\n| feature set, rank | first sweep (s) | sweeps (s) | M ratings/s |\n|---|---:|---|---:|")
            for k, v in report["sweeps"].items():
                print(f"| {k} | {v['first_sweep_seconds']:.1f} | {', '.join(f'{x:.1f}' for x in v['seconds'])} | "
                      f"{v['M_ratings_per_s']:.2f} |")
        return 0
    if not Path(args.root).is_dir():
        print(f"bench_bfm: {args.root} is not a folder; pass --root (a Netflix-layout folder)", file=sys.stderr)
        return 2
    data = load_netflix(args.root)
    rows, probe = data.fit_rows(final_fit=False), data.probe_rows
    report.update(root=args.root, rank=args.rank, likelihood=args.likelihood, runs=[])
    for spec in args.sets.split(","):
        features, samples = spec.split(":")
        for name, fit in (("prizenet", prizenet_fit), *(() if args.no_myfm else (("myFM", myfm_fit),))):
            r = fit(data, rows, probe, features, args.rank, int(samples), likelihood=args.likelihood)
            report["runs"].append({"features": features, "samples": int(samples), "sampler": name, **r})
            print(name, features, samples, {k: round(v, 4) for k, v in r.items()}, file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))
    if args.markdown:
        print(f"\n| feature set (rank {args.rank}, {args.likelihood}) | samples | sampler | probe RMSE | fit (s) | s/sweep |\n"
              "|---|---:|---|---:|---:|---:|")
        for r in report["runs"]:
            print(f"| {r['features']} | {r['samples']} | {r['sampler']} | {r['probe_rmse']:.4f} | "
                  f"{r['fit_seconds']:.1f} | {r['s_per_sweep']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
