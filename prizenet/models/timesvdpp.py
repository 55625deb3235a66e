"""timeSVD++ (Koren 2009, eq. 13).

    r̂_ui(t) = b_ui(t) + qi[i]ᵀ (pu(t) + |N(u)|^-½ Σ_{j∈N(u)} y[j])

    pu(t) = pu[u] + alpha_p[u]·dev_u(t) [+ put[u,t]]

with b_ui(t) the time-aware baseline of :mod:`prizenet.models.timebaseline` (its terms and
their settings: ``lr_bu``... ``reg_cut``), N(u) and y as in SVD++ (computed once per user
per batch, exact gradients), and dev_u(t) the same drift feature for the user factors.
``per_day_factors=True`` adds put[u,t], a factor vector for every (user, day) in training,
probe and qualifying (Koren's most accurate variant; memory grows with the user-days).

The trainer's ``sgd_epoch``, as SVD++'s, is a loop over users (numba on CPU, Triton on CUDA)
that applies every term's update one rating at a time and y's once per user.

Reading of the paper: alpha_p[u] is a vector (one drift per factor), as in eq. 12.
Objective and SGD: squared error plus each term's per-rating L2, θ += lr_θ·(e·∂r̂/∂θ − reg_θ·θ).

Koren, Y. (2009). Collaborative filtering with temporal dynamics. KDD 2009.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Batch
from .. import kernels
from .svdpp import implicit_buffer, implicit_sum, ratings_per, users_of
from .base import RatingModel
from .tables import SparseTable
from .timebaseline import TimeBaseline


class TimeSVDpp(RatingModel):
    group_by = "user"
    has_kernel = True  # sgd_epoch: per-user SGD compiled for the CPU

    def __init__(self, n_users: int, n_items: int, mu: float, n_days: int, user_mean_day: np.ndarray,
                 user_day_keys: np.ndarray, nu_indptr: np.ndarray, nu_items: np.ndarray,
                 n_factors: int = 50, init_std: float = 0.1, per_day_factors: bool = False,
                 n_bins: int = 30, beta: float = 0.4,
                 lr_pu: float = 7e-3, lr_qi: float = 7e-3, lr_yj: float = 7e-3, lr_alpha_p: float = 1e-5,
                 lr_put: float = 2e-3, reg_pu: float = 0.015, reg_qi: float = 0.015, reg_yj: float = 0.015,
                 reg_alpha_p: float = 50.0, reg_put: float = 0.015, **baseline):
        super().__init__()
        # The time-aware baseline b_ui(t), with its own settings (lr_bu, ..., reg_cut).
        self.baseline = TimeBaseline(n_users, n_items, mu, n_days, user_mean_day, user_day_keys, n_bins, beta,
                                     **baseline)
        self.register_buffer("nu_indptr", implicit_buffer(nu_indptr, np.int64), persistent=False)
        self.register_buffer("nu_items", implicit_buffer(nu_items, np.int32), persistent=False)
        self.pu = SparseTable(n_users, n_factors, lr_pu, reg_pu, init_std, index="user")
        self.alpha_p = SparseTable(n_users, n_factors, lr_alpha_p, reg_alpha_p, index="user")
        self.qi = SparseTable(n_items, n_factors, lr_qi, reg_qi, init_std, index="item")
        self.yj = SparseTable(n_items, n_factors, lr_yj, reg_yj, init_std, index="implicit")
        self.put = SparseTable(len(user_day_keys), n_factors, lr_put, reg_put, index="user_day") \
            if per_day_factors else None

    def forward(self, batch: Batch) -> torch.Tensor:
        b = self.baseline
        u, t = batch.user, batch.day
        users, inverse = users_of(batch)
        n_ratings = ratings_per(inverse, len(users))
        z = implicit_sum(self.yj, self.nu_indptr, self.nu_items, users, n_ratings, batch.implicit_rows)
        uses = n_ratings[inverse]  # whole users per batch: damp the user rows' steps
        dev = b.time.dev(u, t)
        user_day = b.time.user_day_uses(u, t, count=True)
        pu_t = self.pu(u, uses) + self.alpha_p(u, uses) * dev.unsqueeze(1)
        if self.put is not None:
            ut, known, day_uses = user_day
            pu_t = pu_t + self.put(ut, day_uses) * known.unsqueeze(1)
        return (b.mu + b.bias(batch, uses, dev, user_day)
                + (self.qi(batch.item) * (pu_t + z.index_select(0, inverse))).sum(-1))

    def sgd_epoch(self, batch: Batch, scale: float = 1.0, backend: str = "numba") -> torch.Tensor:
        """One epoch of per-user SGD over ``batch`` (whole users, in order); returns the SSE."""
        b = self.baseline
        put = self.put if self.put is not None else SparseTable(1, self.pu.weight.shape[1], 0.0, 0.0).to(b.mu.device)
        tables = (b.bu, b.alpha, b.but, b.bi, b.bibin, b.cu, b.cut, self.pu, self.alpha_p, put, self.qi, self.yj)
        return kernels.load(backend).timesvdpp(
            batch.user, batch.item, batch.day, batch.rating, *kernels.batch_runs(batch), b.time, self.nu_indptr,
            self.nu_items, b.mu, self.put is not None, [t.weight for t in tables], [t.lr * scale for t in tables],
            [t.reg for t in tables])
