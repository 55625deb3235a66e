"""Rating models: one family per file, prediction rule and paper in each docstring.

Every model is a :class:`~prizenet.models.base.RatingModel` (the contract with the
trainer, written once in ``base.py``) whose ``forward(batch)`` returns r̂ for the batch's
(user, item, day) triples, unclipped; its constructor takes plain numbers (and, for the
models that need them, arrays the data layer computes: see ``model_inputs``).
"""

from __future__ import annotations

import inspect
from functools import cache

import numpy as np

from ..data import PrizeData
from .autorec import AutoRec
from .base import RatingModel
from .bfm import BayesianFM
from .baseline import Baseline
from .ncf import NeuMF
from .svd import SVD
from .svdpp import SVDpp
from .timebaseline import TimeBaseline
from .timesvdpp import TimeSVDpp

__all__ = ["SVD", "AutoRec", "Baseline", "BayesianFM", "NeuMF", "RatingModel", "SVDpp", "TimeBaseline", "TimeSVDpp", "model_inputs"]


def model_inputs(target, data: PrizeData, rows: np.ndarray) -> dict:
    """What the data provides to a model's constructor, for the names its signature asks.

    ``target`` is the model class (or a ``module.Class`` path). The sizes and ``mu``, the
    mean training rating of ``rows``, come from the phase's training rows, and so does the
    CSR ``item_indptr, item_users, item_ratings`` of those rows by item (AutoRec's input).
    ``watch_user, watch_item, watch_day`` are the probe pairs then the qualifying pairs: the
    pairs the trainer will predict (a sampler averages its predictions of them).
    """
    if isinstance(target, str):
        from hydra.utils import get_class

        target = get_class(target)

    @cache
    def by_item():
        order, indptr = data.item_groups(rows)
        return indptr, data.user[order], data.rating_x2[order] * np.float32(0.5)

    offered = {
        "n_users": lambda: data.n_users,
        "n_items": lambda: data.n_items,
        "mu": lambda: data.global_mean(rows),
        "n_days": lambda: data.n_days,
        "nu_indptr": lambda: data.nu_indptr,
        "nu_items": lambda: data.nu_items,
        "user_mean_day": data.user_mean_day,
        "user_day_keys": data.user_day_keys,
        "item_indptr": lambda: by_item()[0],
        "item_users": lambda: by_item()[1],
        "item_ratings": lambda: by_item()[2],
        "watch_user": lambda: np.concatenate([data.user[data.probe_rows], data.qual_user]),
        "watch_item": lambda: np.concatenate([data.item[data.probe_rows], data.qual_item]),
        "watch_day": lambda: np.concatenate([data.day[data.probe_rows], data.qual_day]),
    }
    wanted = inspect.signature(target).parameters
    return {name: make() for name, make in offered.items() if name in wanted}
