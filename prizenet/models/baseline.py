"""Baseline predictor (Koren 2008, §2.1).

    r̂_ui = mu + bu[u] + bi[i]

Objective, over the training ratings K:

    min Σ_(u,i)∈K (r_ui − mu − bu[u] − bi[i])² + reg_bu·Σ_u bu[u]² + reg_bi·Σ_i bi[i]²

with the L2 applied per rating (each rating shrinks the biases it uses). Two solvers:

* ``solver="sgd"``: the trainer's row-sparse SGD, per rating with e = r − r̂:
  ``bu[u] += lr_bu·(e − reg_bu·bu[u])``, ``bi[i] += lr_bi·(e − reg_bi·bi[i])``.
* ``solver="als"``: the closed form, one alternating sweep per epoch (Koren 2008, §2.1,
  and Bell & Koren 2007): ``bi[i] = Σ_u∈R(i) (r_ui − mu − bu[u]) / (reg_i + |R(i)|)``, then
  ``bu[u] = Σ_i∈R(u) (r_ui − mu − bi[i]) / (reg_u + |R(u)|)``. Here the shrinkage weights
  are counts of pseudo-ratings (Koren suggests reg_i = 25, reg_u = 10), not the SGD's L2.

Koren, Y. (2008). Factorization meets the neighborhood: a multifaceted collaborative
filtering model. KDD 2008.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..data import Batch
from .base import RatingModel
from .tables import SparseTable


def shrunk_mean(index: torch.Tensor, values: torch.Tensor, n: int, reg: float) -> torch.Tensor:
    """Σ values / (reg + count) per index in [0, n): Koren's shrunk means (2008, §2.1), the
    closed form of one bias given the others; 0 where an index has no value (even for reg 0)."""
    total = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, index, values)
    count = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, index, torch.ones_like(values))
    return total / (reg + count).clamp_min(1e-12)


class Baseline(RatingModel):
    """mu + bu[u] + bi[i]; ``solver`` is "sgd" or "als" (closed form, see the module doc)."""

    def __init__(self, n_users: int, n_items: int, mu: float, solver: Literal["sgd", "als"] = "sgd",
                 lr_bu: float = 0.005, lr_bi: float = 0.005, reg_bu: float = 0.02, reg_bi: float = 0.02,
                 reg_u: float = 10.0, reg_i: float = 25.0):
        super().__init__()
        if solver not in ("sgd", "als"):
            raise ValueError(f"solver must be 'sgd' or 'als', got {solver!r}")
        self.solver = solver
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.bu = SparseTable(n_users, None, lr_bu, reg_bu, index="user")
        self.bi = SparseTable(n_items, None, lr_bi, reg_bi, index="item")
        self.reg_u, self.reg_i = float(reg_u), float(reg_i)

    @property
    def sweeps(self) -> bool:
        return self.solver == "als"

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.mu + self.bu(batch.user) + self.bi(batch.item)

    @torch.no_grad()
    def sweep(self, batch: Batch) -> torch.Tensor:
        """One alternating least-squares sweep over all training ratings (items, then users)."""
        user, item, rating = batch.user, batch.item, batch.rating
        bu, bi = self.bu.weight, self.bi.weight
        r = rating - self.mu
        bi.copy_(shrunk_mean(item, r - bu[user], len(bi), self.reg_i))
        bu.copy_(shrunk_mean(user, r - bi[item], len(bu), self.reg_u))
        return ((self(batch) - rating).double() ** 2).sum()
