"""Time-aware baseline predictor (Koren 2009, eq. 10).

    b_ui(t) = mu + bu[u] + alpha[u]·dev_u(t) + but[u,t] + (bi[i] + bibin[i,Bin(t)])·(cu[u] + cut[u,t])

    dev_u(t) = sign(t − t_u)·|t − t_u|^beta      (beta = 0.4; t in days)

* t_u is u's mean rating day over the training set (probe included; the data layer's
  ``user_mean_day``); users with no training rating use their qualifying days.
* Bin(t) splits the data's days into ``n_bins`` (30) equal spans: item biases drift slowly.
* but[u,t] and cut[u,t] exist for every (user, day) that occurs in training, probe or
  qualifying (``user_day_keys``), so a qualifying day has its own terms, trained by the
  probe and training ratings of that day: the day-specific effect Koren found strongest.
* cu[u] scales item effects per user and is regularized toward 1 (Koren's reading: the
  scale's default is 1); it is stored as cu − 1 so the L2 shrinks it toward 1.

Objective: squared error plus, per rating, each term's own L2 (``reg_*``). SGD per rating
with e = r − b_ui(t), each parameter θ with ∂b/∂θ: θ += lr_θ·(e·∂b/∂θ − reg_θ·θ), e.g.
alpha[u] += lr_alpha·(e·dev_u(t) − reg_alpha·alpha[u]), bi[i] += lr_bi·(e·(cu[u] + cut[u,t]) − reg_bi·bi[i]).

Defaults: learning rates and L2 of the magnitudes used for Netflix in Koren 2009 and its
reimplementations (tiny steps for alpha, whose feature dev_u(t) reaches ~20, and strong L2
on it); not re-tuned here. ml1m-half numbers: docs/benchmarks.md.

Koren, Y. (2009). Collaborative filtering with temporal dynamics. KDD 2009.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch import nn

from ..data import Batch
from .base import RatingModel
from .tables import SparseTable, repeats


class TimeFeatures(nn.Module):
    """dev_u(t), Bin(t) and the (user, day) row of each rating: shared by the time models."""

    def __init__(self, n_days: int, user_mean_day: np.ndarray, user_day_keys: np.ndarray, n_bins: int = 30,
                 beta: float = 0.4):
        super().__init__()
        self.n_days, self.n_bins, self.beta = int(n_days), int(n_bins), float(beta)
        self.register_buffer("t_u", torch.from_numpy(np.array(user_mean_day, np.float32)), persistent=False)
        self.register_buffer("keys", torch.from_numpy(np.array(user_day_keys, np.int64)), persistent=False)

    def dev(self, user: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
        d = day.to(self.t_u.dtype) - self.t_u[user]
        return torch.sign(d) * d.abs().pow(self.beta)

    def bin(self, day: torch.Tensor) -> torch.Tensor:
        return (day * self.n_bins // self.n_days).clamp_(0, self.n_bins - 1)

    def user_day(self, user: torch.Tensor, day: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row of (user, day) among ``keys``, and whether the pair is one of them."""
        key = user * self.n_days + day
        row = torch.searchsorted(self.keys, key).clamp_(max=len(self.keys) - 1)
        return row, self.keys[row] == key

    @cached_property
    def key_start(self) -> torch.Tensor:
        """Where each user's (user, day) rows start among ``keys``, plus the end ([n_users + 1])."""
        return torch.searchsorted(self.keys, torch.arange(len(self.t_u) + 1, device=self.keys.device) * self.n_days)

    @cached_property
    def key_dev(self) -> torch.Tensor:
        """dev_u(t) of each (user, day) row of ``keys``."""
        return self.dev(self.keys // self.n_days, self.keys % self.n_days)

    def user_day_uses(self, user: torch.Tensor, day: torch.Tensor, count: bool):
        """(row, known as 0/1 floats, ratings of each row in the batch or None): the per-day
        terms' inputs. A (user, day) never seen has no day terms (known = 0)."""
        row, known = self.user_day(user, day)
        return row, known.to(self.t_u.dtype), repeats(row) if count else None


class TimeBaseline(RatingModel):
    def __init__(self, n_users: int, n_items: int, mu: float, n_days: int, user_mean_day: np.ndarray,
                 user_day_keys: np.ndarray, n_bins: int = 30, beta: float = 0.4,
                 lr_bu: float = 3e-3, lr_bi: float = 2e-3, lr_alpha: float = 1e-5, lr_but: float = 2.5e-3,
                 lr_bibin: float = 5e-5, lr_cu: float = 8e-3, lr_cut: float = 2e-3,
                 reg_bu: float = 3e-3, reg_bi: float = 3e-3, reg_alpha: float = 50.0, reg_but: float = 5e-3,
                 reg_bibin: float = 0.1, reg_cu: float = 0.01, reg_cut: float = 5e-3):
        super().__init__()
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.time = TimeFeatures(n_days, user_mean_day, user_day_keys, n_bins, beta)
        n_keys = len(user_day_keys)
        self.bu = SparseTable(n_users, None, lr_bu, reg_bu, index="user")
        self.alpha = SparseTable(n_users, None, lr_alpha, reg_alpha, index="user")
        self.but = SparseTable(n_keys, None, lr_but, reg_but, index="user_day")
        self.bi = SparseTable(n_items, None, lr_bi, reg_bi, index="item")
        self.bibin = SparseTable(n_items * n_bins, None, lr_bibin, reg_bibin, index="item_bin")
        self.cu = SparseTable(n_users, None, lr_cu, reg_cu, index="user")  # holds cu − 1
        self.cut = SparseTable(n_keys, None, lr_cut, reg_cut, index="user_day")

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.mu + self.bias(batch)

    def bias(self, batch: Batch, uses: torch.Tensor | None = None, dev: torch.Tensor | None = None,
             user_day: tuple | None = None) -> torch.Tensor:
        """b_ui(t) − mu, the part timeSVD++ shares (which passes ``dev`` and ``user_day``
        it has computed already).

        ``uses``: ratings of each rating's user in the batch, when batches hold whole users
        (timeSVD++): the user and user-day rows then damp their steps (``SparseTable``).
        """
        u, i, t = batch.user, batch.item, batch.day
        dev = self.time.dev(u, t) if dev is None else dev
        ut, known, day_uses = self.time.user_day_uses(u, t, uses is not None) if user_day is None else user_day
        user_part = self.bu(u, uses) + self.alpha(u, uses) * dev + self.but(ut, day_uses) * known
        item_part = self.bi(i) + self.bibin(i * self.time.n_bins + self.time.bin(t))
        return user_part + item_part * (1.0 + self.cu(u, uses) + self.cut(ut, day_uses) * known)
