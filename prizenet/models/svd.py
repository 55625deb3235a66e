"""Biased matrix factorization, "SVD" (Koren, Bell & Volinsky 2009, eq. 4; Funk 2006).

    r̂_ui = mu + bu[u] + bi[i] + qi[i]ᵀ pu[u]

Objective, over the training ratings K (L2 applied per rating):

    min Σ_(u,i)∈K (r_ui − r̂_ui)² + reg_bu·bu[u]² + reg_bi·bi[i]² + reg_pu·‖pu[u]‖² + reg_qi·‖qi[i]‖²

SGD update per rating, e = r_ui − r̂_ui (the trainer sums it over a mini-batch):

    bu[u] += lr_bu·(e − reg_bu·bu[u])         pu[u] += lr_pu·(e·qi[i] − reg_pu·pu[u])
    bi[i] += lr_bi·(e − reg_bi·bi[i])         qi[i] += lr_qi·(e·pu[u] − reg_qi·qi[i])

Two ways to train it: the trainer's mini-batch steps (any device: the per-rating updates of
a batch summed, taken at one point), or ``sgd_epoch``, the updates above applied one
rating at a time, in order, exactly as Koren and Surprise do: compiled with numba on CPU
(13M ratings/s at 100 factors on one core of the project's CPU machine; docs/benchmarks.md),
with Triton on CUDA (users in parallel, Hogwild; ``prizenet/kernels/``).

Defaults follow scikit-surprise's SVD (lr 0.005, reg 0.02, factors N(0, 0.1²)), except
``n_factors``, which the configs set. ``biased=False`` drops mu and the biases (Funk's
plain MF).

Koren, Y., Bell, R., Volinsky, C. (2009). Matrix factorization techniques for recommender
systems. IEEE Computer 42(8). Funk, S. (2006). Netflix Update: Try This at Home.
"""

from __future__ import annotations

import torch

from .. import kernels
from ..data import Batch
from .base import RatingModel
from .tables import SparseTable


class SVD(RatingModel):
    has_kernel = True  # sgd_epoch: the per-rating SGD compiled for the CPU
    def __init__(self, n_users: int, n_items: int, mu: float, n_factors: int = 100, init_std: float = 0.1,
                 lr_bu: float = 0.005, lr_bi: float = 0.005, lr_pu: float = 0.005, lr_qi: float = 0.005,
                 reg_bu: float = 0.02, reg_bi: float = 0.02, reg_pu: float = 0.02, reg_qi: float = 0.02,
                 biased: bool = True):
        super().__init__()
        self.biased = biased
        self.register_buffer("mu", torch.tensor(float(mu) if biased else 0.0))
        self.bu = SparseTable(n_users, None, lr_bu, reg_bu, index="user")
        self.bi = SparseTable(n_items, None, lr_bi, reg_bi, index="item")
        self.pu = SparseTable(n_users, n_factors, lr_pu, reg_pu, init_std, index="user")
        self.qi = SparseTable(n_items, n_factors, lr_qi, reg_qi, init_std, index="item")

    def forward(self, batch: Batch) -> torch.Tensor:
        dot = (self.pu(batch.user) * self.qi(batch.item)).sum(-1)
        if not self.biased:
            return dot
        return self.mu + self.bu(batch.user) + self.bi(batch.item) + dot

    def sgd_epoch(self, batch: Batch, scale: float = 1.0, backend: str = "numba") -> torch.Tensor:
        """Koren's SGD, one rating at a time, run by run of ``batch`` (users in parallel on
        Triton); returns the sum of squared errors met on the way (each before its update)."""
        tables = (self.bu, self.bi, self.pu, self.qi)
        return kernels.load(backend).svd(batch.user, batch.item, batch.rating, *kernels.batch_runs(batch), self.mu,
                                         [t.weight for t in tables], [t.lr * scale for t in tables],
                                         [t.reg for t in tables], self.biased)

