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
from .integrated import Integrated
from .knn import ItemKNN
from .baseline import Baseline
from .ncf import NeuMF
from .rbm import RBM
from .svd import SVD
from .svdpp import SVDpp
from .timebaseline import TimeBaseline
from .timesvdpp import TimeSVDpp

__all__ = ["SVD", "AutoRec", "Baseline", "BayesianFM", "Integrated", "ItemKNN", "NeuMF", "RBM", "RatingModel", "SVDpp", "TimeBaseline", "TimeSVDpp",
           "build_model", "model_class", "model_inputs"]

#: Every model, by the ``_target_`` its yaml names (conf/model/*.yaml).
MODELS = {f"{cls.__module__}.{cls.__name__}": cls
          for cls in (AutoRec, Baseline, BayesianFM, Integrated, ItemKNN, NeuMF, RBM, SVD, SVDpp, TimeBaseline, TimeSVDpp)}


def model_class(target: str, where: str = "the config") -> type[RatingModel]:
    """The model class a config's ``_target_`` names, looked up in :data:`MODELS` (never
    imported from the string: a config from someone's run folder can name nothing else)."""
    if target not in MODELS:
        raise ValueError(f"{where}: model._target_={target!r} is not one of prizenet's models "
                         f"({', '.join(sorted(MODELS))})")
    return MODELS[target]


def build_model(cls: type[RatingModel], params: dict, data: PrizeData, rows: np.ndarray,
                where: str = "the config") -> RatingModel:
    """A ``cls`` model with the constructor parameters ``params`` (a plain ``model:`` config,
    ``_target_`` and other ``_`` keys ignored), for training on (or trained on) ``rows``.

    Each parameter must be one of the constructor's, with a plain value; the data's arrays
    come from :func:`model_inputs`. Users and items without a rating in ``rows`` keep zero
    factors (``see``): they predict from the biases. The trainer builds its models here
    (``cls`` from the composed config), and so do :func:`prizenet.load` and
    :func:`prizenet.load_run` (``cls`` from :func:`model_class`: a saved config is never
    imported from).
    """
    from ..config import saved_kwargs

    kwargs = saved_kwargs(cls, params, where, "model", cls.__name__)  # timeSVD++ passes **baseline on: checked there
    try:
        model = cls(**kwargs, **model_inputs(cls, data, rows))
    except TypeError as e:  # a parameter the **kwargs chain does not take
        raise ValueError(f"{where}: {e}") from None
    model.see(np.bincount(data.user[rows], minlength=data.n_users), np.bincount(data.item[rows], minlength=data.n_items))
    return model


def model_inputs(target, data: PrizeData, rows: np.ndarray) -> dict:
    """What the data provides to a model's constructor, for the names its signature asks.

    ``target`` is the model class (or a ``module.Class`` path). The sizes and ``mu``, the
    mean training rating of ``rows``, come from the phase's training rows, and so does the
    CSR ``item_indptr, item_users, item_ratings`` of those rows by item (AutoRec's input),
    ``rated_indptr, rated_items, rated_ratings`` of those rows by user (R(u): the integrated
    model's neighbourhoods, the RBM's visible units) and ``rating_levels``, the distinct
    training ratings (the RBM's softmax units).
    ``watch_user, watch_item, watch_day`` are the probe pairs then the qualifying pairs: the
    pairs the trainer will predict (a sampler averages its predictions of them).
    """
    if isinstance(target, str):
        from hydra.utils import get_class

        target = get_class(target)

    @cache
    def by_user():
        order = np.asarray(rows)[np.argsort(data.user[rows], kind="stable")]
        indptr = np.zeros(data.n_users + 1, np.int64)
        np.cumsum(np.bincount(data.user[order], minlength=data.n_users), out=indptr[1:])
        return indptr, data.item[order], data.rating_x2[order] * np.float32(0.5)

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
        "rated_indptr": lambda: by_user()[0],
        "rated_items": lambda: by_user()[1],
        "rated_ratings": lambda: by_user()[2],
        "rating_levels": lambda: np.unique(data.rating_x2[rows]).astype(np.float32) * np.float32(0.5),
        "watch_user": lambda: np.concatenate([data.user[data.probe_rows], data.qual_user]),
        "watch_item": lambda: np.concatenate([data.item[data.probe_rows], data.qual_item]),
        "watch_day": lambda: np.concatenate([data.day[data.probe_rows], data.qual_day]),
    }
    wanted = inspect.signature(target).parameters
    return {name: make() for name, make in offered.items() if name in wanted}
