"""prizenet from Python: fit, predict, recommend, save and load.

    import pandas as pd
    import prizenet

    ratings = pd.read_csv("ratings.csv")        # columns user, item, rating[, timestamp]
    rec = prizenet.fit(ratings, model="svd", n_factors=50, trainer={"n_epochs": 30})
    rec.predict(196, 242)                       # one pair of raw ids: a float
    rec.predict(users, items)                   # arrays: an array
    rec.recommend(196, n=10)                    # a DataFrame: item, score (and title)
    rec.save("svd50")                           # a folder; prizenet.load("svd50") reads it
    prizenet.load_run("outputs/2026-12-01/10-00-00_svd_1234abcd")   # any train.py run

:func:`fit` is a ``train.py`` run: the same Hydra configs composed with the same overrides
(it logs the equivalent command), the same two phases, the same run folder (TensorBoard,
checkpoints, probe and qualifying predictions, a submission). A DataFrame is written into
the run folder as ``ratings.csv`` and read back by the ``csv`` data config, so the run can
be repeated, resumed and blended from the command line like any other. Its probe and
qualifying sets are held out from the ratings as for MovieLens (``data.holdout``: each
user's 9 most recent ratings by default).

Predictions are the trainer's (clipped to the rating scale). An id the data never saw
falls back to what the model knows: a new user's rating of a known item is the model's
average prediction for that item over a fixed sample of known users, a known user's of a
new item the average over a sample of items, a pair of new ids the mean training rating.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from .data import PrizeData
from .data.cache import load_from_config, publish
from .models import RatingModel, build_model, model_class
from .training import load_checkpoint, load_tensors, load_weights, read_run_config, write_json
from .training import predict as predict_pairs

log = logging.getLogger("prizenet")

#: Column names a DataFrame's columns are recognised by (lower case), first match wins.
COLUMN_NAMES = {
    "user": ("user", "user_id", "userid", "uid", "customer_id"),
    "item": ("item", "item_id", "itemid", "iid", "movie", "movie_id", "movieid"),
    "rating": ("rating", "ratings", "score", "stars"),
    "timestamp": ("timestamp", "time", "ts", "unix_time"),
    "date": ("date", "datetime"),
}
FALLBACK_SAMPLE = 512  # known users (items) a new item's (user's) prediction averages over
SAVED_FORMAT = 1


class Recommender:
    """A trained model with the data that maps raw ids to its rows.

    ``phase`` says which model it is: 1, trained on the training set minus the probe (the
    model that predicted ``predictions/probe.npy``); 2, retrained on every training rating
    (the one that predicted the qualifying set and wrote the submission).
    """

    def __init__(self, model: RatingModel, data: PrizeData, config: dict, phase: int,
                 run_dir: Path | None = None, metrics: dict | None = None, device: str | torch.device | None = None):
        if device is None:  # where the model is (a fit on CUDA predicts there)
            device = next(iter(model.parameters()), torch.empty(0)).device
        self.model, self.data, self.config, self.phase = model.to(device), data, config, phase
        self.run_dir, self.metrics, self.device = run_dir, metrics or {}, torch.device(device)
        self._users = pd.Index(data.user_ids)
        self._items = pd.Index(data.item_ids)
        rows = data.fit_rows(final_fit=phase == 2)
        self._rated_users = np.flatnonzero(np.bincount(data.user[rows], minlength=data.n_users))
        self._rated_items = np.flatnonzero(np.bincount(data.item[rows], minlength=data.n_items))
        self._mu = data.global_mean(rows)
        last = np.full(data.n_users, data.n_days - 1, np.int64)  # a user's "now": the last day they rated
        counts = np.diff(data.user_indptr)
        has = counts > 0
        last[has] = np.maximum.reduceat(data.day, data.user_indptr[:-1][has]) if data.day.size else 0
        self._last_day = last
        self._new_user: np.ndarray | None = None  # each item's score for a user the data never saw
        self._new_item: dict[int, float] = {}  # each known user's score for an item the data never saw

    def __repr__(self) -> str:
        name = type(self.model).__name__
        where = f", run {self.run_dir}" if self.run_dir else ""
        rmse = self.metrics.get("probe_rmse")
        score = f", probe RMSE {rmse:.4f}" if isinstance(rmse, float) else ""
        return (f"Recommender({name} on {self.data.meta.get('name')}: {self.data.n_users:,} users, "
                f"{self.data.n_items:,} items, phase {self.phase}{score}{where})")

    # -- ids -------------------------------------------------------------------------
    def user_index(self, users) -> np.ndarray:
        """Rows of raw user ids (-1 where the data never saw the id)."""
        return _lookup(self._users, users)

    def item_index(self, items) -> np.ndarray:
        """Rows of raw item ids (-1 where the data never saw the id)."""
        return _lookup(self._items, items)

    def days(self, when, u: np.ndarray) -> np.ndarray:
        """Day indices of dates ``when`` (None: each user's last rating day), clipped to the data's days."""
        if when is None:
            return np.where(u >= 0, self._last_day[np.maximum(u, 0)], self.data.n_days - 1)
        dates = pd.to_datetime(np.broadcast_to(np.asarray(when, dtype=object), u.shape).ravel())
        day = dates.to_numpy().astype("datetime64[D]").astype(np.int64) - self.data.meta["epoch"]
        return np.clip(day, 0, self.data.n_days - 1)

    # -- predictions -----------------------------------------------------------------
    def predict(self, user, item, when=None):
        """Predicted ratings of raw ``(user, item)`` ids (scalars or equal-length arrays) on
        date ``when`` (a date string, datetime or array of them; default: each user's last
        rating day, which time-aware models read as "now"). A float for scalars."""
        scalar = np.ndim(user) == 0 and np.ndim(item) == 0
        users, items = np.broadcast_arrays(np.atleast_1d(np.asarray(user)), np.atleast_1d(np.asarray(item)))
        u, i = self.user_index(users), self.item_index(items)
        out = self._predict_rows(u, i, self.days(when, u))
        return float(out[0]) if scalar else out

    def _predict_rows(self, u: np.ndarray, i: np.ndarray, day: np.ndarray) -> np.ndarray:
        out = np.full(len(u), self._mu, np.float32)
        known = (u >= 0) & (i >= 0)
        if known.any():
            out[known] = self._model_predict(u[known], i[known], day[known])
        new_user = (u < 0) & (i >= 0)
        if new_user.any():
            out[new_user] = self.new_user_scores()[i[new_user]]
        new_item = (u >= 0) & (i < 0)
        for user in np.unique(u[new_item]):
            out[new_item & (u == user)] = self._new_item_score(int(user))
        return out

    def _model_predict(self, u: np.ndarray, i: np.ndarray, day: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return predict_pairs(self.model, self.data, u.astype(np.int32), i.astype(np.int32), day.astype(np.int32),
                                 self.device, 1 << 18)

    def new_user_scores(self) -> np.ndarray:
        """Every item's predicted rating by a user the data never saw: the model's mean
        prediction for the item over a fixed sample of users with training ratings (each on
        their last rating day)."""
        if self._new_user is None:
            sample = self._sample(self._rated_users)
            n_items = self.data.n_items
            if len(sample):
                u, i = np.repeat(sample, n_items), np.tile(np.arange(n_items), len(sample))
                scores = self._model_predict(u, i, self._last_day[u]).reshape(len(sample), n_items)
                self._new_user = scores.mean(0, dtype=np.float64).astype(np.float32)
            else:
                self._new_user = np.full(n_items, self._mu, np.float32)
        return self._new_user

    def _new_item_score(self, user: int) -> float:
        """Known ``user``'s predicted rating of an item the data never saw: the model's mean
        prediction over a fixed sample of items with training ratings."""
        if user not in self._new_item:
            sample = self._sample(self._rated_items)
            days = np.full(len(sample), self._last_day[user])
            self._new_item[user] = float(self._model_predict(np.full(len(sample), user), sample, days).mean()) \
                if len(sample) else self._mu
        return self._new_item[user]

    @staticmethod
    def _sample(pool: np.ndarray) -> np.ndarray:
        return np.sort(np.random.default_rng(0).choice(pool, min(FALLBACK_SAMPLE, len(pool)), replace=False))

    def recommend(self, user, n: int = 10, exclude_rated: bool = True, when=None) -> pd.DataFrame:
        """The ``n`` items with the highest predicted rating for raw ``user``, best first: a
        DataFrame of ``item`` (raw id), ``score`` and, where the data has titles, ``title``.
        ``exclude_rated`` leaves out the items the user rated in the training data."""
        return self.recommend_users([user], n, exclude_rated, when).drop(columns=["user", "rank"]).reset_index(drop=True)

    def recommend_users(self, users, n: int = 10, exclude_rated: bool = True, when=None) -> pd.DataFrame:
        """:meth:`recommend` for many users at once: one DataFrame of ``user, rank, item,
        score[, title]``, ``n`` rows per user (rank 1 first). A user the data never saw gets
        the items a new user is predicted to like most."""
        users = np.atleast_1d(np.asarray(users, dtype=object))
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        n_items = self.data.n_items
        n = min(n, n_items)
        rows = self.user_index(users)
        days = self.days(when, rows)
        all_items = np.arange(n_items)
        frames = []
        for raw, u, day in zip(users, rows, days):
            if u >= 0:
                scores = self._model_predict(np.full(n_items, u), all_items, np.full(n_items, day))
            else:
                scores = self.new_user_scores().copy()
            if exclude_rated and u >= 0:  # every training rating of the user, probe included
                scores[self.data.item[self.data.user_indptr[u]:self.data.user_indptr[u + 1]]] = -np.inf
            k = min(n, int(np.isfinite(scores).sum()))
            top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, np.int64)
            top = top[np.lexsort((top, -scores[top]))]  # best first; ties by item row
            frames.append(pd.DataFrame({"user": [raw] * k, "rank": np.arange(1, k + 1),
                                        "item": self.data.item_ids[top], "score": scores[top]}))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["user", "rank", "item", "score"])
        titles = self.data.item_title
        if len(titles) and any(titles):
            out["title"] = titles[self.item_index(out["item"].to_numpy())] if len(out) else []
        return out

    # -- saving ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model, its config and its data (the id maps, N(u), dates: everything a
        prediction reads) to folder ``path``, atomically (written beside, then swapped in).
        :func:`load` reads it back without the source data."""
        path = Path(path)

        def write(folder: Path) -> None:
            folder.mkdir(parents=True)
            state = {"format": SAVED_FORMAT, "phase": self.phase, "model": self.model.state_dict()}
            torch.save(state, folder / "model.pt")
            OmegaConf.save(OmegaConf.create(self.config), folder / "config.yaml")
            write_json(folder / "metrics.json", {k: v for k, v in self.metrics.items() if k != "history"})
            self.data.save(folder / "data")

        publish(path, write, replace=True)
        return path


def _lookup(index: pd.Index, ids) -> np.ndarray:
    ids = np.atleast_1d(np.asarray(ids))
    rows = index.get_indexer(ids)
    if index.dtype.kind in "iu" and (rows < 0).any():  # "196" for user 196: ids read from text
        as_int = pd.to_numeric(pd.Series(ids), errors="coerce")
        ok = as_int.notna().to_numpy() & (rows < 0)
        if ok.any():
            rows[ok] = index.get_indexer(as_int[ok].astype(np.int64).to_numpy())
    return rows


# -- fit ---------------------------------------------------------------------------------
def fit(ratings, model: str | None = None, *, experiment: str | None = None, trainer: dict | None = None,
        data: dict | None = None, overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
        seed: int = 0, columns: dict | None = None, rating_scale: tuple[float, float] | None = None,
        **params) -> Recommender:
    """Train a model the way ``train.py`` does and return it as a :class:`Recommender`.

    ``ratings``: a DataFrame (user, item, rating and optionally timestamp or date columns,
    found by name, or named by ``columns={"user": "userId", ...}``), a path to a ratings
    file or a dataset folder (any layout ``prizenet prepare`` reads), or the name of a data
    config (``"ml-100k"``, ``"synthetic"``). ``model`` names a config of ``conf/model``
    (default ``svd``) and ``experiment`` one of ``conf/experiment``; ``params`` override
    the model's settings (``n_factors=50``), ``trainer`` and ``data`` the trainer's and the
    data's (``trainer={"n_epochs": 30}``), ``overrides`` are Hydra override strings as on
    the command line. ``out``: the run folder (default ``outputs/DATE/TIME_MODEL_TAG`` as
    ``train.py``). ``rating_scale`` (a DataFrame's): default the lowest and highest rating.
    """
    from .config import run_uid
    from .run import train

    name = model or "svd"
    out = Path(out) if out is not None else Path("outputs") / time.strftime("%Y-%m-%d") / \
        f"{time.strftime('%H-%M-%S')}_{experiment or name}_{run_uid()}"
    args = [f"model={name}"] if model or not experiment else []  # an experiment names its own model
    args += [f"experiment={experiment}"] if experiment else []
    args += _data_overrides(ratings, out, columns, rating_scale)
    args += [f"data.{k}={_value(v)}" for k, v in (data or {}).items()]
    args += [f"trainer.{k}={_value(v)}" for k, v in (trainer or {}).items()]
    args += [f"model.{k}={_value(v)}" for k, v in params.items()]
    args += [f"seed={seed}", *overrides]
    cfg = compose(args)
    log.info("the same run from the command line:\n  python train.py %s hydra.run.dir=%s",
             " ".join(_shell(a) for a in args), _shell(str(out)))
    result = train(cfg, out)
    config = OmegaConf.to_container(cfg, resolve=True)
    return Recommender(result.model, result.data, config, phase=2 if cfg.trainer.final_fit else 1, run_dir=out,
                       metrics=dict(result))


def compose(overrides: list[str]):
    """The run config ``train.py`` would compose from ``overrides`` (Hydra's compose API on
    the package's ``conf/``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .config import config_dir

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or a notebook that composed before
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def phase1(overrides: list[str], out: Path) -> dict:
    """A ``train.py`` run of phase 1 only (trained on training minus probe; no final fit, no
    progress bar) in ``out``, composed from ``overrides``; what the benchmarks report of it:
    model, probe RMSE, best epoch, epochs run, fit seconds, ratings per second."""
    from .run import train

    m = train(compose([*overrides, "trainer.final_fit=false", "trainer.progress=false"]), Path(out))
    return {"model": m["model"], "probe_rmse": m["probe_rmse"], "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"], "fit_seconds": m["fit_seconds"]["phase1"], "ratings_per_s": m["ratings_per_s"]}


def _data_overrides(ratings, out: Path, columns: dict | None, rating_scale) -> list[str]:
    if isinstance(ratings, pd.DataFrame):
        frame = _standard_columns(ratings, columns)
        if rating_scale is None:
            rating_scale = (float(frame["rating"].min()), float(frame["rating"].max()))
        if (out / "ratings.csv").exists():
            raise FileExistsError(f"{out / 'ratings.csv'} exists: {out} holds a run already; give fit() a new out=")
        out.mkdir(parents=True, exist_ok=True)
        path = out / "ratings.csv"
        tmp = out / ".ratings.csv.part"
        frame.to_csv(tmp, index=False)
        tmp.replace(path)
        args = ["data=csv", f"data.path={_value(str(path.resolve()))}", "data.format=csv",
                f"data.columns.rating_scale=[{rating_scale[0]:g},{rating_scale[1]:g}]"]
        if "timestamp" in frame:
            args.append("data.columns.timestamp_col=timestamp")
        elif "date" in frame:
            args.append("data.columns.date_col=date")
        return args
    if isinstance(ratings, (str, Path)):
        from .config import config_dir

        text = str(ratings)
        if not Path(text).expanduser().exists() and (config_dir() / "data" / f"{text}.yaml").is_file():
            return [f"data={text}"]
        path = Path(text).expanduser()
        if not path.exists():
            configs = sorted(p.stem for p in (config_dir() / "data").glob("*.yaml"))
            raise FileNotFoundError(f"{path}: no such ratings file or dataset folder, and not a data config "
                                    f"({', '.join(configs)})")
        args = ["data=csv", f"data.path={_value(str(path.resolve()))}", "data.format=auto"]
        for k, v in (columns or {}).items():
            args.append(f"data.columns.{k}_col={_value(v)}" if k in COLUMN_NAMES else f"data.columns.{k}={_value(v)}")
        if rating_scale is not None:
            args.append(f"data.columns.rating_scale=[{rating_scale[0]:g},{rating_scale[1]:g}]")
        return args
    raise TypeError(f"ratings must be a pandas DataFrame, a path or a data config name, got {type(ratings).__name__}")


def _standard_columns(frame: pd.DataFrame, columns: dict | None) -> pd.DataFrame:
    """``frame``'s user, item, rating (and timestamp or date) columns under those names."""
    columns = dict(columns or {})
    unknown = set(columns) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"columns: unknown keys {sorted(unknown)}; expected some of {list(COLUMN_NAMES)}")
    lower = {str(c).lower(): c for c in frame.columns}
    picked = {}
    for role, names in COLUMN_NAMES.items():
        if role in columns:
            if columns[role] not in frame.columns:
                raise ValueError(f"columns: {role}={columns[role]!r} is not a column of the DataFrame "
                                 f"({list(frame.columns)})")
            picked[role] = columns[role]
        else:
            found = next((lower[n] for n in names if n in lower), None)
            if found is not None:
                picked[role] = found
    missing = [r for r in ("user", "item", "rating") if r not in picked]
    if missing:
        raise ValueError(f"the DataFrame has no {', '.join(missing)} column (its columns: {list(frame.columns)}); "
                         f"name them with columns={{'user': ..., 'item': ..., 'rating': ...}}")
    keep = {role: col for role, col in picked.items() if role != "date" or "timestamp" not in picked}
    return frame[list(keep.values())].set_axis(list(keep), axis=1)


def _value(v) -> str:
    """A Python value as a Hydra override value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    text = str(v)
    if re.fullmatch(r"[\w./:+-]+", text) and text.lower() not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _shell(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# -- load --------------------------------------------------------------------------------
def load(path: str | Path, device: str = "cpu") -> Recommender:
    """A :class:`Recommender` written by :meth:`Recommender.save`. Only tensors and plain
    values are read (``weights_only``), and the model class comes from prizenet's own table."""
    path = Path(path)
    if not (path / "model.pt").is_file():
        raise FileNotFoundError(f"{path}: not a saved prizenet model (no model.pt); Recommender.save writes one")
    state = _load_weights(path / "model.pt", device)
    config = read_run_config(path / "config.yaml")
    data = PrizeData.load(path / "data")
    metrics = _read_metrics(path / "metrics.json")
    return _assemble(config, data, state, int(state.get("phase", 2)), str(path / "config.yaml"), None, metrics, device)


def load_run(run_dir: str | Path, phase: int | None = None, device: str = "cpu") -> Recommender:
    """The model of a run folder ``train.py`` (or :func:`fit`) wrote. ``phase`` 1 is the
    best phase-1 model (``checkpoints/best.pt``, which predicted ``predictions/probe.npy``),
    2 the final fit (``checkpoints/last.pt``, which predicted the qualifying set); default:
    the one that wrote the submission. The data is loaded through the run's own data config
    (its cache, or the source files again)."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: missing; {run_dir} is not a train.py run folder")
    config = read_run_config(cfg_file)
    metrics = _read_metrics(run_dir / "metrics.json")
    final_fit = bool(metrics.get("final_fit", config.get("trainer", {}).get("final_fit", True)))
    if phase is None:
        phase = 2 if final_fit else 1
    if phase not in (1, 2):
        raise ValueError(f"phase must be 1 or 2, got {phase}")
    if phase == 2 and not final_fit:
        raise ValueError(f"{run_dir}: the run had no final fit (trainer.final_fit=false); load phase=1")
    ckpt = run_dir / "checkpoints" / ("best.pt" if phase == 1 else "last.pt")
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: missing; the run did not finish phase {phase}")
    state = load_checkpoint(ckpt, device)
    if phase == 2 and state["phase"] != 2:
        raise ValueError(f"{ckpt}: holds phase {state['phase']}, not the final fit: the run stopped before phase 2 "
                         f"finished (resume it: python train.py ... trainer.resume={run_dir})")
    data = load_from_config(config.get("data"), str(cfg_file))
    return _assemble(config, data, state, phase, str(cfg_file), run_dir, metrics, device)


def _assemble(config: dict, data: PrizeData, state: dict, phase: int, where: str, run_dir, metrics, device):
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict):
        raise ValueError(f"{where}: no 'model' mapping")
    cls = model_class(model_cfg.get("_target_"), where)
    model = build_model(cls, model_cfg, data, data.fit_rows(final_fit=phase == 2), where)
    load_weights(model, state, device)
    return Recommender(model, data, config, phase, run_dir, metrics, device)


def _load_weights(path: Path, device) -> dict:
    state = load_tensors(path, device, "a saved prizenet model", "saved models", "Recommender.save")
    if not isinstance(state, dict) or "model" not in state or state.get("format") != SAVED_FORMAT:
        raise ValueError(f"{path}: not a model saved by Recommender.save (format {SAVED_FORMAT})")
    return state


def _read_metrics(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
