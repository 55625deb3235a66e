"""Item-item kNN (``model=knn``) against LensKit's and scikit-surprise's item kNN on one
split, in one run.

    python scripts/bench_knn.py [--root ../shared/data/prize/ml1m-half] [--markdown]

All train on training minus probe and predict the probe (clipped to 1-5). prizenet:
``train.py data=netflix data.root=ROOT model=knn trainer.n_epochs=1`` and variants
(phase 1; fit time = the sweep, data loading excluded). LensKit: ``ItemKNNScorer()`` (its
defaults: 20 neighbours, item-mean-centred cosine) in a ``predict_pipeline`` (bias
fallback); Surprise: ``KNNBaseline(k=40, sim_options={"name": "pearson_baseline",
"user_based": False})``. Peers are benchmark-only (``pip install lenskit scikit-surprise``)
and skipped, saying so, when absent. Prints JSON; ``--markdown`` a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from prizenet.api import phase1  # noqa: E402
from prizenet.data.netflix import load_netflix  # noqa: E402
from prizenet.training import rmse  # noqa: E402

VARIANTS = {"knn (defaults)": [], "knn center=baseline": ["model.center=baseline", "model.reg_i=25"],
            "knn similarity=pearson": ["model.similarity=pearson"], "knn weights=interpolate": ["model.weights=interpolate"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "prize" / "ml1m-half")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            m = phase1(["model=knn", "data=netflix", f"data.root={root}", "trainer.n_epochs=1", *VARIANTS[name]],
                       Path(tmp) / name.replace(" ", "_"))
            out[f"prizenet {name}"] = {"probe_rmse": m["probe_rmse"], "fit_seconds": m["fit_seconds"]}
            print(name, out[f"prizenet {name}"], file=sys.stderr)
    data = load_netflix(root)
    rows, probe = data.fit_rows(final_fit=False), data.probe_rows
    user, item = data.user_ids[data.user[rows]], data.item_ids[data.item[rows]]
    rating = data.rating_x2[rows] * 0.5
    pu, pi = data.user_ids[data.user[probe]], data.item_ids[data.item[probe]]

    def timed(name, fit, predict):
        t = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - t
        pred = np.clip(np.asarray(predict(model), np.float64), 1, 5)
        out[name] = {"probe_rmse": rmse(pred, data.probe_rating), "fit_seconds": seconds}
        print(name, out[name], file=sys.stderr)

    if importlib.util.find_spec("lenskit"):
        import pandas as pd
        from lenskit.basic import BiasScorer
        from lenskit.data import from_interactions_df
        from lenskit.knn import ItemKNNScorer
        from lenskit.pipeline import predict_pipeline

        ds = from_interactions_df(pd.DataFrame({"user_id": user, "item_id": item, "rating": rating}))
        def lk_fit():  # (its fallback pipeline fails on nbr_counts' dtype here: the bias model fills in)
            pipes = predict_pipeline(ItemKNNScorer(), fallback=False), predict_pipeline(BiasScorer(), fallback=False)
            for pipe in pipes:
                pipe.train(ds)
            return pipes

        def lk_pred(pipes):  # user by user (batch.predict fails on the lists' mixed nbr_counts dtypes here)
            from lenskit import predict as lk_one
            from lenskit.data import ItemList

            out = np.full(len(pu), np.nan)
            order = np.argsort(pu, kind="stable")
            bounds = np.flatnonzero(np.r_[True, pu[order][1:] != pu[order][:-1], True])
            for a, b in zip(bounds[:-1], bounds[1:]):
                rows = order[a:b]
                for pipe in pipes:
                    todo = rows[np.isnan(out[rows])]
                    if len(todo):
                        got = lk_one(pipe, pu[rows[0]], ItemList(item_ids=pi[todo])).scores()
                        out[todo] = got
            return np.where(np.isnan(out), float(rating.mean()), out)

        timed("lenskit ItemKNNScorer()", lk_fit, lk_pred)
    else:
        print("lenskit is not installed: its row is skipped", file=sys.stderr)
    if importlib.util.find_spec("surprise"):
        import pandas as pd
        import surprise

        trainset = surprise.Dataset.load_from_df(pd.DataFrame({"u": user, "i": item, "r": rating}),
                                                 surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
        timed("surprise KNNBaseline(k=40, item pearson_baseline)",
              lambda: surprise.KNNBaseline(k=40, sim_options={"name": "pearson_baseline", "user_based": False},
                                           verbose=False).fit(trainset),
              lambda m: [m.predict(u, i).est for u, i in zip(pu, pi)])
    else:
        print("scikit-surprise is not installed: its row is skipped", file=sys.stderr)
    print(json.dumps(out, indent=1))
    if args.markdown:
        print("| model | probe RMSE | fit (s) |\n|---|---:|---:|")
        for name, r in out.items():
            print(f"| {name} | {r['probe_rmse']:.4f} | {r['fit_seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
