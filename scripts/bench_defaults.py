"""Every model's defaults against the peers' defaults, on one split in one run; and
prizenet's biased MF presets against other libraries' biased MF.

    python scripts/bench_defaults.py [--root ../shared/data/prize/ml1m-half] [--markdown]
        [--models baseline,svd,...] [--no-peers]

prizenet: ``train.py data=netflix data.root=ROOT model=NAME`` and nothing else (phase 1
only, ``trainer.final_fit=false``: the probe RMSE is phase 1's), and the presets
``experiment=ml1m_svd`` and ``experiment=ml1m_bfm_mf``. The peers, each with its own
defaults on the same ratings (training minus probe, raw ids), predicting the probe,
clipped to 1-5: scikit-surprise's ``BaselineOnly()``, ``SVD()``, ``SVDpp()``; LensKit's
``BiasedMFScorer()`` (ALS) in its ``predict_pipeline``; cornac's biased MF example
(``MF(k=10, max_iter=25, learning_rate=0.01, lambda_reg=0.02, use_bias=True,
early_stop=True)``). The peers are benchmark-only dependencies (``pip install
scikit-surprise cornac lenskit``, in a virtualenv of their own if their pins clash); a peer
that is not installed is skipped, saying so. Fit time is each ``fit``/``train`` call
(prizenet: phase 1, data loading excluded). Prints JSON; ``--markdown`` a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prizenet.api import phase1  # noqa: E402
from prizenet.data.netflix import load_netflix  # noqa: E402
from prizenet.training import rmse  # noqa: E402

MODELS = ["baseline", "timebaseline", "svd", "svdpp", "timesvdpp", "ncf", "autorec", "bfm", "knn", "integrated", "rbm"]
PRESETS = ["ml1m_svd", "ml1m_bfm_mf"]
#: prizenet model -> the peer rows it is compared with
PEER_OF = {"baseline": ["surprise BaselineOnly()"], "svd": ["surprise SVD()"], "svdpp": ["surprise SVDpp()"],
           "ml1m_svd": ["lenskit BiasedMFScorer() (ALS)", "cornac MF example"],
           "ml1m_bfm_mf": ["lenskit BiasedMFScorer() (ALS)", "cornac MF example"]}


def prizenet_run(root: Path, choice: str, out: Path) -> dict:
    group = "experiment" if choice in PRESETS else "model"
    data_args = [] if group == "experiment" else ["data=netflix"]
    m = phase1([f"{group}={choice}", *data_args, f"data.root={root}"], out / choice)
    return {k: m[k] for k in ("probe_rmse", "fit_seconds", "best_epoch", "epochs_run")}


def peers(data, rows, probe) -> dict:
    """Each installed peer's probe RMSE and fit time with its defaults."""
    user = data.user_ids[data.user[rows]]
    item = data.item_ids[data.item[rows]]
    rating = data.rating_x2[rows] * 0.5
    pu, pi = data.user_ids[data.user[probe]], data.item_ids[data.item[probe]]
    truth = data.probe_rating
    out = {}

    def timed(name, fit, predict):
        t = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - t
        pred = np.clip(np.asarray(predict(model), np.float64), 1, 5)
        out[name] = {"probe_rmse": rmse(pred, truth), "fit_seconds": seconds}
        print(f"{name}: {out[name]}", file=sys.stderr)

    if importlib.util.find_spec("surprise"):
        import pandas as pd
        import surprise

        frame = pd.DataFrame({"u": user, "i": item, "r": rating})
        trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
        for name, algo in (("surprise BaselineOnly()", surprise.BaselineOnly), ("surprise SVD()", surprise.SVD),
                           ("surprise SVDpp()", surprise.SVDpp)):
            kwargs = {"verbose": False} if name.startswith("surprise Baseline") else {"random_state": 0}
            timed(name, lambda algo=algo, kw=kwargs: algo(**kw).fit(trainset),
                  lambda m: [m.predict(u, i).est for u, i in zip(pu, pi)])
    else:
        print("scikit-surprise is not installed: its rows are skipped", file=sys.stderr)

    if importlib.util.find_spec("lenskit"):
        import pandas as pd
        from lenskit.als import BiasedMFScorer
        from lenskit.batch import predict as lk_predict
        from lenskit.data import ItemListCollection, from_interactions_df
        from lenskit.pipeline import predict_pipeline

        ds = from_interactions_df(pd.DataFrame({"user_id": user, "item_id": item, "rating": rating}))
        test = pd.DataFrame({"user_id": pu, "item_id": pi})

        def lk_fit():
            pipe = predict_pipeline(BiasedMFScorer())
            pipe.train(ds)
            return pipe

        def lk_pred(pipe):
            got = lk_predict(pipe, ItemListCollection.from_df(test, "user_id")).to_df()
            merged = test.merge(got[["user_id", "item_id", "score"]], on=["user_id", "item_id"], how="left")
            return merged["score"].fillna(float(rating.mean())).to_numpy()

        timed("lenskit BiasedMFScorer() (ALS)", lk_fit, lk_pred)
    else:
        print("lenskit is not installed: its row is skipped", file=sys.stderr)

    if importlib.util.find_spec("cornac"):
        import cornac

        triples = list(zip(user.tolist(), item.tolist(), rating.astype(float).tolist()))
        train_set = cornac.data.Dataset.from_uir(triples, seed=0)

        def cornac_fit():
            return cornac.models.MF(k=10, max_iter=25, learning_rate=0.01, lambda_reg=0.02, use_bias=True,
                                    early_stop=True, seed=0, verbose=False).fit(train_set)

        def cornac_pred(m):
            uix, iix = train_set.uid_map, train_set.iid_map
            return [m.score(uix[u], iix[i]) if u in uix and i in iix else m.default_score() for u, i in zip(pu, pi)]

        timed("cornac MF example", cornac_fit, cornac_pred)
    else:
        print("cornac is not installed: its row is skipped", file=sys.stderr)
    return out


def markdown(result: dict) -> str:
    lines = ["| prizenet (`train.py ... NAME`) | probe RMSE | fit (s) | peer (its defaults) | probe RMSE | fit (s) |",
             "|---|---:|---:|---|---:|---:|"]
    for name, r in result["prizenet"].items():
        label = f"`experiment={name}`" if name in PRESETS else f"`model={name}`"
        rows = [p for p in PEER_OF.get(name, []) if p in result["peers"]] or [None]
        for k, p in enumerate(rows):
            left = f"{label} | {r['probe_rmse']:.4f} | {r['fit_seconds']:.1f}" if k == 0 else " | | "
            right = f"{p} | {result['peers'][p]['probe_rmse']:.4f} | {result['peers'][p]['fit_seconds']:.1f}" \
                if p else " | | "
            lines.append(f"| {left} | {right} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "prize" / "ml1m-half")
    ap.add_argument("--models", default=",".join(MODELS + PRESETS))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    result = {"machine": {"cpus": torch.get_num_threads(), "python": platform.python_version(),
                          "torch": torch.__version__}, "root": str(root), "prizenet": {}, "peers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            result["prizenet"][name] = prizenet_run(root, name, Path(tmp))
            print(f"prizenet {name}: {result['prizenet'][name]}", file=sys.stderr)
    if not args.no_peers:
        data = load_netflix(root)
        result["peers"] = peers(data, data.fit_rows(final_fit=False), data.probe_rows)
    print(json.dumps(result, indent=1))
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
