"""Koren's integrated model (2008, eq. 16): SVD++ plus a global neighbourhood model.

    r̂_ui = mu + bu[u] + bi[i] + qi[i]ᵀ (pu[u] + |N(u)|^-½ Σ_{j∈N(u)} y[j])
           + |R^k(i;u)|^-½ Σ_{j∈R^k(i;u)} (r_uj − b̃_uj) w[i, j]
           + |N^k(i;u)|^-½ Σ_{j∈N^k(i;u)} c[i, j]

* The factor part is :mod:`prizenet.models.svdpp`'s, with its N(u) (training, probe and
  qualifying items) and its updates.
* S^k(i): the ``k`` items most similar to i, by the shrunk Pearson correlation of the
  baseline residuals over the users who rated both, s_ij = n_ij / (n_ij + shrink) · ρ_ij
  (Koren 2008, eq. 2; λ2 = 100). Computed once from the phase's training ratings, on the
  first epoch (:func:`prizenet.models.knn.similarity_blocks`, a block of items at a time:
  the items² matrix is never kept) and saved with the model: ``neighbours[i]`` is S^k(i).
* R^k(i;u) = R(u) ∩ S^k(i), the neighbours u rated in training; N^k(i;u) = N(u) ∩ S^k(i).
  ``w[i, t]`` and ``c[i, t]`` are the weights of i's t-th neighbour: global, learnt, one
  row of k per item (17,770 x 300 floats each at Netflix scale, 21 MB).
* b̃_uj = mu + b̃u[u] + b̃i[j] is a fixed baseline, not the learnt bu, bi: Koren's shrunk
  closed form in one pass (2008, §2.1: b̃i = Σ (r − mu) / (reg_base_i + |R(i)|), then b̃u
  from what is left, λ2 = 25 and λ3 = 10). Reading: the paper takes the r_uj − b_uj of the
  neighbourhood sum as given data (its §3); fixing them keeps each residual a constant of
  the training set, so the term is linear in w and the kernel stores one number per rating.

SGD per rating, e = r_ui − r̂_ui, the SVD++ updates (lr_* and reg_* of the factor part as
in svdpp) and, for each neighbour t of i:

    w[i, t] += lr_w·(e·|R^k(i;u)|^-½·(r_uj − b̃_uj) − reg_w·w[i, t])   if j = neighbours[i, t] ∈ R(u)
    c[i, t] += lr_c·(e·|N^k(i;u)|^-½ − reg_c·c[i, t])                  if j ∈ N(u)

Defaults follow Koren 2008 §5: lr 0.007 on the factor part (γ1 = γ2), lr 0.001 on w and c
(γ3), L2 0.005 on biases (λ6), 0.015 on factors, y (λ7) and w, c (λ8), k = 300, learning
rates x0.9 per epoch (the trainer's ``lr_decay``), about 15 epochs; Table 3 reports quiz
RMSE 0.8877 at 50 factors, 0.8870 at 100, 0.8868 at 200 (``experiment=netflix_integrated``).

Training: ``sgd_epoch``, per user in the epoch's order, one rating at a time; numba on CPU
(u's R(u) residuals and N(u) are marked in two item-long arrays once per user, so the
neighbourhood sums cost O(k) a rating) or Triton on CUDA (one program per user, users in
parallel as for SVD++; with no item-long scratch per program, each neighbour's membership
in R(u) and N(u) is a binary search of the user's slice of the sorted keys below, O(k log
|R(u)|) a rating). Or, on any device, torch batch steps through ``forward``, whose
membership tests are binary searches too. The keys, ``keys()``: sorted user·n_items + item
of R(u) (with the residuals in that order) and of N(u), 8 bytes a pair each (0.8 GB each at
Netflix scale), made on first use on the model's device.

Koren, Y. (2008). Factorization meets the neighborhood: a multifaceted collaborative
filtering model. KDD 2008. Koren, Y. (2010). Factor in the neighbors: scalable and accurate
collaborative filtering. ACM TKDD 4(1).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from .. import kernels
from ..data import Batch
from .baseline import shrunk_mean
from .knn import similarity_blocks
from .svdpp import SVDpp
from .tables import SparseTable, csr_rows

PAIRS = 1 << 22  # (pair, neighbour) entries gathered at once by forward


class Integrated(SVDpp):
    kernel_backends: ClassVar[tuple[str, ...]] = ("numba", "triton")

    def __init__(self, n_users: int, n_items: int, mu: float, nu_indptr: np.ndarray, nu_items: np.ndarray,
                 rated_indptr: np.ndarray, rated_items: np.ndarray, rated_ratings: np.ndarray,
                 n_factors: int = 50, init_std: float = 0.1, k: int = 300, shrink: float = 100.0,
                 reg_base_u: float = 10.0, reg_base_i: float = 25.0,
                 lr_bu: float = 0.007, lr_bi: float = 0.007, lr_pu: float = 0.007, lr_qi: float = 0.007,
                 lr_yj: float = 0.007, lr_w: float = 0.001, lr_c: float = 0.001,
                 reg_bu: float = 0.005, reg_bi: float = 0.005, reg_pu: float = 0.015, reg_qi: float = 0.015,
                 reg_yj: float = 0.015, reg_w: float = 0.015, reg_c: float = 0.015, block: int = 1024):
        super().__init__(n_users, n_items, mu, nu_indptr, nu_items, n_factors, init_std, lr_bu, lr_bi, lr_pu,
                         lr_qi, lr_yj, reg_bu, reg_bi, reg_pu, reg_qi, reg_yj)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = int(min(k, max(n_items - 1, 1)))
        self.shrink, self.block = float(shrink), int(block)
        # R(u): the phase's training ratings by user (data, not parameters: out of checkpoints).
        indptr = torch.from_numpy(np.ascontiguousarray(rated_indptr, np.int64))
        items = torch.from_numpy(np.ascontiguousarray(rated_items, np.int64))
        r = torch.from_numpy(np.ascontiguousarray(rated_ratings, np.float32))
        users = csr_rows(indptr)
        bi0 = shrunk_mean(items, r - float(mu), n_items, reg_base_i)
        bu0 = shrunk_mean(users, r - float(mu) - bi0[items], n_users, reg_base_u)
        self.register_buffer("bu0", bu0)  # b̃u, b̃i: the fixed baseline of the residuals
        self.register_buffer("bi0", bi0)
        self.register_buffer("rated_indptr", indptr, persistent=False)
        self.register_buffer("rated_items", items, persistent=False)
        self.register_buffer("rated_resid", r - float(mu) - bu0[users] - bi0[items], persistent=False)
        self.w = SparseTable(n_items, self.k, lr_w, reg_w, 0.0, index="item")
        self.c = SparseTable(n_items, self.k, lr_c, reg_c, 0.0, index="item")
        self.register_buffer("neighbours", torch.zeros(n_items, self.k, dtype=torch.int64))  # S^k(i)
        self.register_buffer("found", torch.tensor(False))  # neighbours computed (or loaded)
        self._keys: tuple | None = None  # forward's sorted (user, item) keys of R(u) and N(u)

    # -- S^k(i) ----------------------------------------------------------------------------
    @torch.no_grad()
    def find_neighbours(self) -> None:
        """S^k(i) for every item, from the shrunk Pearson similarities of the residuals, once."""
        if bool(self.found):
            return
        n_u, n_i = self.bu.weight.shape[0], self.bi.weight.shape[0]
        for a, b, s, _, _ in similarity_blocks(csr_rows(self.rated_indptr), self.rated_items, self.rated_resid, n_u, n_i, "pearson",
                                               self.shrink, self.block):
            j = torch.arange(a, b, device=s.device)
            s[j, j - a] = -torch.inf  # never its own neighbour
            self.neighbours[a:b] = torch.topk(s, self.k, dim=0).indices.T
        self.found.fill_(True)

    # -- training and predictions --------------------------------------------------------
    def sgd_epoch(self, batch: Batch, scale: float = 1.0, backend: str = "numba") -> torch.Tensor:
        """One epoch of per-user SGD (the module doc) over ``batch``, whose ratings come user by user."""
        self.find_neighbours()
        tables = (self.bu, self.bi, self.pu, self.qi, self.yj, self.w, self.c)
        return kernels.load(backend).integrated(
            batch.user, batch.item, batch.rating, *kernels.batch_runs(batch), self.nu_indptr, self.nu_items,
            self.rated_indptr, *self.keys(), self.neighbours, self.mu,
            [t.weight for t in tables], [t.lr * scale for t in tables], [t.reg for t in tables])

    def forward(self, batch: Batch) -> torch.Tensor:
        self.find_neighbours()
        return super().forward(batch) + self.neighbourhood(batch.user, batch.item)

    def neighbourhood(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """The two neighbourhood sums of r̂ for each (user, item) pair, ``PAIRS`` entries at a time."""
        step = max(1, PAIRS // self.k)
        parts = [self._neighbourhood(user[a:a + step], item[a:a + step]) for a in range(0, len(user), step)]
        return torch.cat(parts) if parts else torch.zeros(0, device=user.device)

    def _neighbourhood(self, user, item):
        rated_keys, rated_resid, nu_keys = self.keys()
        n_items = self.bi.weight.shape[0]
        key = user[:, None] * n_items + self.neighbours[item]  # [B, k]: (u, j) for j in S^k(i)
        in_r, pos = _member(rated_keys, key)
        resid = torch.where(in_r, rated_resid[pos], torch.zeros((), device=key.device))
        in_n, _ = _member(nu_keys, key)
        in_n = in_n.to(resid.dtype)
        n_r = in_r.sum(1).clamp(min=1).to(resid.dtype)
        n_n = in_n.sum(1).clamp(min=1)
        return (self.w(item) * resid).sum(1) * n_r.rsqrt() + (self.c(item) * in_n).sum(1) * n_n.rsqrt()

    def keys(self):
        """(sorted user·n_items + item keys of R(u), the residuals in that order, keys of N(u))."""
        if self._keys is None or self._keys[0].device != self.rated_items.device:
            n_items = self.bi.weight.shape[0]
            rated = csr_rows(self.rated_indptr) * n_items + self.rated_items
            order = torch.argsort(rated)
            nu_keys = torch.sort(csr_rows(self.nu_indptr) * n_items + self.nu_items.long()).values
            self._keys = (rated[order], self.rated_resid[order], nu_keys)
        return self._keys

    def _apply(self, fn, *args, **kwargs):  # .to(device): the keys are remade there
        self._keys = None
        return super()._apply(fn, *args, **kwargs)


def _member(sorted_keys: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(whether each of ``key`` is in ``sorted_keys``, its position there, clamped in range)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(key, dtype=torch.bool), torch.zeros_like(key)
    pos = torch.searchsorted(sorted_keys, key).clamp_max(sorted_keys.numel() - 1)
    return sorted_keys[pos] == key, pos

