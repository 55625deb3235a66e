"""Blending runs on the probe set, the way the Netflix Prize was won.

Every run of ``train.py`` leaves ``predictions/probe.npy`` (phase 1: trained without the
probe, so these are honest out-of-sample predictions) and ``predictions/qualifying.npy``
(phase 2: retrained with the probe). A blender learns on the probe how to combine the
runs, and applies that combination to their qualifying predictions, as BellKor did
(Töscher, Jahrer & Bell 2009; Koren 2009, "The BellKor solution to the Netflix Grand
Prize", §7).

Blenders:

* ``ridge``: r̂ = w0 + Σ_m w_m·pred_m, ridge regression with an unpenalized intercept; λ
  picked by k-fold cross-validation on the probe.
* ``mlp``: a small torch network over the predictions and three meta-features per rating,
  log(1 + ratings of the user), log(1 + ratings of the item), log(1 + days the user rated
  on), on top of the ridge blend's linear term: the meta-features let the weights depend
  on how much is known about the user and item.

* ``gbdt``: gradient-boosted trees (LightGBM) over the predictions and the same
  meta-features, boosted from the ridge blend (its line is the trees' starting score), so
  the trees learn where and how the runs should be weighed differently, as BellKor's and
  BigChaos's GBDT blends did (Töscher, Jahrer & Bell 2009, §3; Koren 2009, §7). Fixed
  settings; the number of trees by early stopping on a tenth of the training part held out.
  LightGBM, not XGBoost: its wheel is a few MB with numpy and scipy as its only needs
  (XGBoost's brings CUDA libraries of hundreds of MB), and a blend of ~10⁶ probe ratings by
  ~20 features trains in seconds on CPU, where a GPU would not pay. An optional
  dependency (``pip install "prizenet[blend]"``).

The RMSE a blend is quoted with is always cross-validated: every probe rating is predicted
by a blend fitted without it (for ridge, λ too is picked without it: nested CV).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .training import rmse

LAMBDAS = np.logspace(-3, 4, 15)  # ridge penalties tried, relative to the number of probe ratings / 1000


@dataclass
class Run:
    path: Path
    metrics: dict
    probe: np.ndarray  # phase-1 probe predictions, probe.txt order
    qualifying: np.ndarray  # final qualifying predictions, qualifying.txt order
    overrides: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """sweep/run, as the report and TensorBoard name it."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def probe_rmse(self) -> float:
        return float(self.metrics["probe_rmse"])


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders (those holding metrics.json): each path is one, or a folder searched for
    them (a multirun sweep, an outputs folder)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "metrics.json").is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(m.parent for m in p.rglob("metrics.json"))
        else:
            raise FileNotFoundError(f"{p}: no such run folder (expected a train.py output folder with metrics.json, "
                                    f"or a folder of them such as a multirun sweep)")
    return list(dict.fromkeys(p.resolve() for p in found))


def run_info(path: Path) -> tuple[dict, list[str]]:
    """A run's metrics.json and the command-line overrides it was started with."""
    metrics = json.loads((path / "metrics.json").read_text())
    overrides = []
    if (path / ".hydra" / "overrides.yaml").is_file():
        from omegaconf import OmegaConf

        overrides = list(OmegaConf.load(path / ".hydra" / "overrides.yaml"))
    return metrics, overrides


def load_run(path: Path) -> Run:
    metrics, overrides = run_info(path)
    pred = {}
    for name in ("probe", "qualifying"):
        f = path / "predictions" / f"{name}.npy"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing; blending needs both predictions of a finished run")
        try:
            a = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{f}: not a readable .npy array ({str(e).splitlines()[0]})") from None
        if a.ndim != 1 or a.dtype.kind != "f":
            raise ValueError(f"{f}: expected one float prediction per pair, got a {a.dtype} array of shape {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{f}: {int(bad.sum())} predictions are NaN or infinite (the first at row "
                             f"{int(np.argmax(bad))}); that run cannot be blended")
        pred[name] = a
    return Run(path, metrics, pred["probe"], pred["qualifying"], overrides)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """The runs under ``paths``, checked to predict the same probe and qualifying pairs."""
    runs = [load_run(p) for p in find_runs(paths)]
    if not runs:
        raise FileNotFoundError(f"no run folders (with metrics.json) under {', '.join(map(str, paths))}")
    first = runs[0]
    for r in runs:
        if "split" not in r.metrics:
            raise ValueError(f"{r.path}: metrics.json has no 'split' fingerprint (a run from before blending "
                             f"existed); train it again")
        if r.metrics["split"] != first.metrics["split"] or len(r.probe) != len(first.probe) \
                or len(r.qualifying) != len(first.qualifying):
            raise ValueError(
                f"{r.path} and {first.path} were trained on different data or splits "
                f"(dataset {r.metrics.get('dataset')!r}, split {r.metrics['split']}, {len(r.probe)} probe and "
                f"{len(r.qualifying)} qualifying predictions against dataset {first.metrics.get('dataset')!r}, "
                f"split {first.metrics['split']}, {len(first.probe)} and {len(first.qualifying)}); "
                f"only runs of one dataset and split can be blended")
    return runs


# -- ridge -----------------------------------------------------------------------------
def ridge_fit(X: np.ndarray, y: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """(intercept, weights) minimizing ‖y − w0 − Xw‖² + lam·‖w‖² (w0 unpenalized)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    xm, ym = X.mean(0), y.mean()
    Xc = X - xm
    w = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return float(ym - xm @ w), w


def folds(n: int, k: int, seed: int) -> np.ndarray:
    """A fold number in [0, k) for each of n rows, at random (seeded), sizes within one."""
    f = np.arange(n) % k
    np.random.default_rng(seed).shuffle(f)
    return f


def ridge_pick(X, y, k: int, seed: int, lambdas=None) -> tuple[float, dict[float, float]]:
    """The λ with the lowest k-fold CV RMSE, and the CV RMSE of each λ tried."""
    lambdas = LAMBDAS * len(y) / 1000 if lambdas is None else lambdas
    f = folds(len(y), k, seed)
    scores = {}
    for lam in lambdas:
        oof = np.empty(len(y))
        for j in range(k):
            w0, w = ridge_fit(X[f != j], y[f != j], lam)
            oof[f == j] = w0 + X[f == j] @ w
        scores[float(lam)] = rmse(oof, y)
    return min(scores, key=scores.get), scores


def ridge_cv(X, y, k: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions of the ridge blend, λ picked inside each training part."""
    f = folds(len(y), k, seed)
    oof = np.empty(len(y))
    for j in range(k):
        lam, _ = ridge_pick(X[f != j], y[f != j], k, seed + 1)
        w0, w = ridge_fit(X[f != j], y[f != j], lam)
        oof[f == j] = w0 + X[f == j] @ w
    return oof


# -- a small network with meta-features ---------------------------------------------------
class MLPBlend:
    """r̂ = w0 + Xw + MLP([X, meta]), fitted full-batch with Adam on standardized inputs.

    Fixed settings (no search over them, so its k-fold RMSE is honest): ``hidden`` tanh
    units, ``steps`` Adam steps at ``lr``, weight decay ``l2`` on the network.
    """

    def __init__(self, hidden: int = 16, steps: int = 400, lr: float = 0.01, l2: float = 1e-3, seed: int = 0):
        self.hidden, self.steps, self.lr, self.l2, self.seed = hidden, steps, lr, l2, seed

    def fit(self, X: np.ndarray, meta: np.ndarray, y: np.ndarray) -> "MLPBlend":
        Z = np.concatenate([X, meta], 1)
        self.mean, self.std = Z.mean(0), Z.std(0) + 1e-9
        z = torch.from_numpy((Z - self.mean) / self.std).float()
        t = torch.from_numpy(np.asarray(y, np.float32))
        torch.manual_seed(self.seed)
        n_pred = X.shape[1]
        self.linear = torch.nn.Linear(n_pred, 1)
        self.net = torch.nn.Sequential(torch.nn.Linear(Z.shape[1], self.hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(self.hidden, 1))
        with torch.no_grad():  # start from the least-squares line: the network learns what it misses
            w0, w = ridge_fit(z[:, :n_pred].numpy(), y, 1e-3)
            self.linear.weight.copy_(torch.from_numpy(w).float().view(1, -1))
            self.linear.bias.fill_(w0)
            self.net[2].weight.zero_()
            self.net[2].bias.zero_()
        opt = torch.optim.Adam([{"params": self.linear.parameters(), "weight_decay": 0.0},
                                {"params": self.net.parameters(), "weight_decay": self.l2}], lr=self.lr)
        for _ in range(self.steps):
            opt.zero_grad()
            loss = ((self._forward(z, n_pred) - t) ** 2).mean()
            loss.backward()
            opt.step()
        return self

    def _forward(self, z: torch.Tensor, n_pred: int) -> torch.Tensor:
        return (self.linear(z[:, :n_pred]) + self.net(z)).squeeze(1)

    @torch.no_grad()
    def predict(self, X: np.ndarray, meta: np.ndarray) -> np.ndarray:
        z = torch.from_numpy((np.concatenate([X, meta], 1) - self.mean) / self.std).float()
        return self._forward(z, X.shape[1]).double().numpy()


def mlp_cv(X, meta, y, k: int = 5, seed: int = 0, **kw) -> np.ndarray:
    f = folds(len(y), k, seed)
    oof = np.empty(len(y))
    for j in range(k):
        oof[f == j] = MLPBlend(seed=seed, **kw).fit(X[f != j], meta[f != j], y[f != j]).predict(X[f == j], meta[f == j])
    return oof


# -- gradient-boosted trees on top of the ridge line ----------------------------------------
GBDT_PARAMS = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 200,
               "feature_fraction": 0.9, "lambda_l2": 1.0, "verbose": -1, "deterministic": True,
               "force_row_wise": True}


def has_gbdt() -> bool:
    import importlib.util

    return importlib.util.find_spec("lightgbm") is not None


class GBDTBlend:
    """r̂ = ridge(X) + trees([X, meta]): LightGBM boosted from the ridge line (λ by CV inside
    the data it is given), up to ``max_trees`` trees, stopped early on a held-out tenth."""

    def __init__(self, max_trees: int = 1000, seed: int = 0, threads: int = 0, **params):
        self.max_trees, self.seed = max_trees, seed
        self.params = {**GBDT_PARAMS, **params, "seed": seed, "num_threads": threads}

    def fit(self, X: np.ndarray, meta: np.ndarray, y: np.ndarray, k: int = 5) -> "GBDTBlend":
        try:
            import lightgbm
        except ImportError as e:
            raise ImportError('the gbdt blender needs LightGBM: pip install "prizenet[blend]" (or lightgbm)') from e
        lam, _ = ridge_pick(X, y, k, self.seed + 1)
        self.w0, self.w = ridge_fit(X, y, lam)
        base = self.w0 + X @ self.w
        Z = np.concatenate([X, meta], 1)
        valid = np.random.default_rng(self.seed).random(len(y)) < 0.1
        train = lightgbm.Dataset(Z[~valid], y[~valid], init_score=base[~valid])
        held = lightgbm.Dataset(Z[valid], y[valid], init_score=base[valid], reference=train)
        self.booster = lightgbm.train(self.params, train, self.max_trees, valid_sets=[held],
                                      callbacks=[lightgbm.early_stopping(50, verbose=False)])
        self.trees = int(self.booster.best_iteration) or self.max_trees
        return self

    def predict(self, X: np.ndarray, meta: np.ndarray) -> np.ndarray:
        Z = np.concatenate([X, meta], 1)
        return self.w0 + X @ self.w + self.booster.predict(Z, num_iteration=self.trees)


def gbdt_cv(X, meta, y, k: int = 5, seed: int = 0, **kw) -> np.ndarray:
    """Out-of-fold predictions of the gbdt blend: each fold's ridge λ, trees and stopping
    point are chosen without that fold's ratings."""
    f = folds(len(y), k, seed)
    oof = np.empty(len(y))
    for j in range(k):
        model = GBDTBlend(seed=seed, **kw).fit(X[f != j], meta[f != j], y[f != j], k)
        oof[f == j] = model.predict(X[f == j], meta[f == j])
    return oof


def meta_features(support: dict[str, np.ndarray], user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """[log(1 + user's ratings), log(1 + item's ratings), log(1 + user's rating days)] per pair."""
    return np.stack([np.log1p(support["user_ratings"][user]), np.log1p(support["item_ratings"][item]),
                     np.log1p(support["user_days"][user])], 1).astype(np.float64)
