"""SVD++ (Koren 2008, eq. 15): biased MF plus implicit feedback from who rated what.

    r̂_ui = mu + bu[u] + bi[i] + qi[i]ᵀ (pu[u] + |N(u)|^-½ Σ_{j∈N(u)} y[j])

N(u) holds every item u rated or was asked to rate: training, probe and qualifying (the
data layer's ``nu_indptr``/``nu_items`` CSR). Knowing *which* movies a user rated, even
without the rating (qualifying), is information the Prize's winners used.

Objective: squared error over the training ratings plus, per rating, reg_bu·bu[u]² +
reg_bi·bi[i]² + reg_pu·‖pu[u]‖² + reg_qi·‖qi[i]‖², and reg_yj·Σ_{j∈N(u)} ‖y[j]‖² per user.
SGD per rating, e = r_ui − r̂_ui, z_u = |N(u)|^-½ Σ_{j∈N(u)} y[j]:

    bu[u] += lr_bu·(e − reg_bu·bu[u])          pu[u] += lr_pu·(e·qi[i] − reg_pu·pu[u])
    bi[i] += lr_bi·(e − reg_bi·bi[i])          qi[i] += lr_qi·(e·(pu[u] + z_u) − reg_qi·qi[i])
    y[j]  += lr_yj·(e·|N(u)|^-½·qi[i])   for every j ∈ N(u); y[j] −= lr_yj·reg_yj·y[j] once per user

Two ways to train it, both exact in the sense that z_u is never approximated by a cache:

* ``sgd_epoch`` (the trainer's default: numba on CPU, Triton on CUDA): a loop over users in
  the epoch's shuffled order (on CUDA, users in parallel, Hogwild) computes z_u once per
  user, applies the bu, bi, pu, qi updates above one rating at a time (qi's update uses
  pu[u] + z_u), accumulates the y gradient over the user's ratings and applies it, with its
  L2, to every y[j] of N(u) once at the end of the user: the usual fast form of Koren's update.
* torch (``trainer.kernel=torch``, or a GPU without Triton): the trainer's batches hold whole
  users (``group_by = "user"``); z_u is a segment sum over the y rows of N(u), once per
  distinct user of the batch, and autograd returns each y[j] the sum of its per-rating
  gradients. The per-rating updates of a batch are summed (mini-batch SGD), so bu[u], pu[u] and the y of
  N(u) (whose sum moves like pu[u]) would take all of a user's updates in one step: they pass
  ``uses`` = the user's ratings in the batch, and the optimizer damps their step to the
  effect of that many sequential steps (``prizenet.optim``). Item rows take plain summed
  steps, as in ``svd``.

Reading of the paper: eq. 15's objective puts reg_yj·Σ_j ‖y[j]‖² inside the sum over
ratings (Surprise shrinks every y[j] of N(u) at each rating of u). Summed over a batch that
shrinks a popular item's y[j] by lr·reg·(thousands of ratings) in one step, past zero;
here y[j] is shrunk once per user (per user and batch on the torch path), which measured
better on ml1m-half (probe 0.9225 vs 0.9455 after 8 epochs, torch path).

Defaults follow Koren 2008 §3: lr 0.007 everywhere, L2 0.005 on biases and 0.015 on
factors and y.

Koren, Y. (2008). Factorization meets the neighborhood: a multifaceted collaborative
filtering model. KDD 2008.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Batch
from .base import RatingModel
from .tables import SparseTable, budget_spans, csr_segments

from .. import kernels


PREDICT_ROWS = 1 << 22  # y rows gathered at once when predicting (4M rows x 100 factors: 1.6 GB)


def users_of(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct users of the batch, index of each rating's user among them)."""
    if batch.users is not None:  # grouped training batches carry them
        return batch.users, batch.inverse
    return torch.unique(batch.user, return_inverse=True)


def ratings_per(inverse: torch.Tensor, n: int) -> torch.Tensor:
    """How many of the batch's ratings each of its ``n`` users has: a scatter-add of ones
    (``torch.bincount`` would wait for the device to learn its output size)."""
    return torch.zeros(n, dtype=torch.long, device=inverse.device).index_add_(0, inverse, torch.ones_like(inverse))


def implicit_buffer(values, dtype) -> torch.Tensor:
    """N(u)'s CSR as a tensor that shares the data layer's array where it can (0.4 GB of
    item ids at Netflix scale; nothing writes to it) and copies it otherwise."""
    array = np.ascontiguousarray(values, dtype)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def implicit_sum(y: SparseTable, nu_indptr: torch.Tensor, nu_items: torch.Tensor, users: torch.Tensor,
                 n_ratings: torch.Tensor | None = None, rows: int | None = None) -> torch.Tensor:
    """z_u = |N(u)|^-½ Σ_{j∈N(u)} y[j] for each of ``users`` ([U_b, k]), one segment sum.

    ``n_ratings`` (ratings of each user in the batch) damps the y rows' step (``uses``).
    ``rows``, Σ |N(u)| over ``users`` when the caller knows it on the host (the grouped
    loader's ``batch.implicit_rows``), spares the device a sync to learn it.
    When predicting (no gradients), users are taken in chunks of about ``PREDICT_ROWS``
    gathered y rows: a prediction batch may hold a few hundred thousand distinct users.
    """
    if y.tape is not None or len(users) < 2:
        return _implicit_chunk(y, nu_indptr, nu_items, users, n_ratings, rows)
    ends = torch.cumsum(nu_indptr[users + 1] - nu_indptr[users], 0).cpu()
    return torch.cat([_implicit_chunk(y, nu_indptr, nu_items, users[a:b]) for a, b in budget_spans(ends, PREDICT_ROWS)])


def _implicit_chunk(y, nu_indptr, nu_items, users, n_ratings=None, rows=None):
    seg, pos = csr_segments(nu_indptr, users, rows)
    rows = y(nu_items.index_select(0, pos).long(), uses=None if n_ratings is None else n_ratings[seg])
    z = torch.zeros(len(users), rows.shape[1], device=rows.device, dtype=rows.dtype).index_add(0, seg, rows)
    count = nu_indptr[users + 1] - nu_indptr[users]
    return z * count.clamp(min=1).to(rows.dtype).rsqrt().unsqueeze(1)


class SVDpp(RatingModel):
    group_by = "user"  # the trainer's loader then yields whole users per batch
    has_kernel = True  # sgd_epoch: per-user SGD compiled for the CPU

    def __init__(self, n_users: int, n_items: int, mu: float, nu_indptr: np.ndarray, nu_items: np.ndarray,
                 n_factors: int = 50, init_std: float = 0.1,
                 lr_bu: float = 0.007, lr_bi: float = 0.007, lr_pu: float = 0.007, lr_qi: float = 0.007,
                 lr_yj: float = 0.007, reg_bu: float = 0.005, reg_bi: float = 0.005, reg_pu: float = 0.015,
                 reg_qi: float = 0.015, reg_yj: float = 0.015):
        super().__init__()
        self.register_buffer("mu", torch.tensor(float(mu)))
        # N(u) is data, not a parameter: kept out of checkpoints.
        self.register_buffer("nu_indptr", implicit_buffer(nu_indptr, np.int64), persistent=False)
        self.register_buffer("nu_items", implicit_buffer(nu_items, np.int32), persistent=False)
        self.bu = SparseTable(n_users, None, lr_bu, reg_bu, index="user")
        self.bi = SparseTable(n_items, None, lr_bi, reg_bi, index="item")
        self.pu = SparseTable(n_users, n_factors, lr_pu, reg_pu, init_std, index="user")
        self.qi = SparseTable(n_items, n_factors, lr_qi, reg_qi, init_std, index="item")
        # y[j] is trained through N(u), which includes probe/qualifying-only items: never zeroed.
        self.yj = SparseTable(n_items, n_factors, lr_yj, reg_yj, init_std, index="implicit")

    def forward(self, batch: Batch) -> torch.Tensor:
        users, inverse = users_of(batch)
        n_ratings = ratings_per(inverse, len(users))  # of each user, in this batch
        z = implicit_sum(self.yj, self.nu_indptr, self.nu_items, users, n_ratings, batch.implicit_rows)
        uses = n_ratings[inverse]  # a user's rows take all of the user's updates at once
        pu = self.pu(batch.user, uses=uses) + z.index_select(0, inverse)  # (its backward: index_add, fast)
        return self.mu + self.bu(batch.user, uses=uses) + self.bi(batch.item) + (self.qi(batch.item) * pu).sum(-1)

    def sgd_epoch(self, batch: Batch, scale: float = 1.0, backend: str = "numba") -> torch.Tensor:
        """One epoch of per-user SGD (see the module doc) over ``batch``, whose ratings come
        user by user (the trainer's whole-user loader); returns the sum of squared errors."""
        tables = (self.bu, self.bi, self.pu, self.qi, self.yj)
        return kernels.load(backend).svdpp(batch.user, batch.item, batch.rating, *kernels.batch_runs(batch),
                                           self.nu_indptr, self.nu_items, self.mu, [t.weight for t in tables],
                                           [t.lr * scale for t in tables], [t.reg for t in tables])
