"""Item-based AutoRec, I-AutoRec (Sedhain, Menon, Sanner & Xie 2015).

    h_i   = sigmoid(Σ_{u∈R(i)} r_ui·V[u] + b_h)          (item i's code, k numbers)
    r̂_ui = mu + b[u] + W[u]ᵀ h_i

Each item is the vector r_i of its training ratings over all users (0 where unobserved),
encoded by one sigmoid layer and decoded back to one number per user. The paper's encoder
matrix V (k × users) and decoder W (users × k) are stored as user-indexed tables of k
numbers a row, ``V`` and ``W``: encoding an item gathers the V rows of its raters only, and
the loss, which counts observed ratings only, gathers only their W rows, so an epoch costs
O(ratings · k), not O(items · users · k).

Objective: Σ_i Σ_{u∈R(i)} (r_ui − r̂_ui)² + λ/2·(‖W‖² + ‖V‖²), the paper's. Each batch
gathers a V and a W row once per distinct user it holds, so ``reg`` (λ) shrinks each of
those rows once a batch, as the paper's whole-matrix term does each step (restricted to
the rows in use, which lazy Adam requires); ``reg_b`` does the same for the output biases.
Measured on ml1m-half, this beat the per-rating L2 of the other models (which shrinks a
heavy user's rows once per rating): probe 0.9224 against 0.9313 after 12-15 epochs. The
paper's output bias b starts at 0; here it is offset by mu, the global mean, which only
speeds the first epochs.

Training batches hold whole items (the loader's ``group_by="item"``), every training
rating of each: the input r_i is complete and each rating's reconstruction is scored. To
predict (u, i) pairs the model encodes items from ``item_indptr, item_users,
item_ratings``, the training ratings by item of the phase it was built for (not saved in
checkpoints: the data layer rebuilds them); in eval mode every item's code is computed once
and kept until training resumes. Items without a training rating get no W[u]ᵀh_i term,
users without one have V[u] = W[u] = 0 and b[u] = 0: both predict mu (+ b[u]).

Defaults follow the paper: k = 500 hidden units, identity output. The paper trains with
resilient propagation (Rprop) over the full data; here it is (lazy, row-sparse) Adam over
item batches, as most re-implementations do, with λ = 1 (tuned on ml1m-half at batches of
4096 ratings: λ applies once a batch, so halving the batch size doubles its weight). The
paper reports RMSE 0.831 on MovieLens-1M (90/10 random split) against 0.845 for biased MF.

Sedhain, S., Menon, A. K., Sanner, S., Xie, L. (2015). AutoRec: autoencoders meet
collaborative filtering. WWW 2015 Companion.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import Batch
from .base import RatingModel
from .tables import SparseTable, budget_spans, distinct

ENCODE_ROWS = 1 << 20  # ratings encoded at once when coding every item (x 500 hidden: 2 GB a temporary)


class AutoRec(RatingModel):
    group_by = "item"  # the trainer's loader yields whole items per batch
    optimizer = "adam"  # trainer.optimizer=auto: Adam (see the module doc)

    def __init__(self, n_users: int, n_items: int, mu: float, item_indptr: np.ndarray, item_users: np.ndarray,
                 item_ratings: np.ndarray, hidden: int = 500, init_std: float = 0.03,
                 lr: float = 0.001, lr_b: float = 0.001, lr_h: float = 0.001,
                 reg: float = 1.0, reg_b: float = 0.0):
        super().__init__()
        self.register_buffer("mu", torch.tensor(float(mu)))
        # The training ratings by item: the model's input, data rather than parameters.
        self.register_buffer("item_indptr", torch.from_numpy(np.array(item_indptr, np.int64)), persistent=False)
        self.register_buffer("item_users", torch.from_numpy(np.array(item_users, np.int32)), persistent=False)
        self.register_buffer("item_ratings", torch.from_numpy(np.array(item_ratings, np.float32)), persistent=False)
        self.V = SparseTable(n_users, hidden, lr, reg, init_std, index="user")  # encoder, one row per user
        self.W = SparseTable(n_users, hidden, lr, reg, init_std, index="user")  # decoder, one row per user
        self.b = SparseTable(n_users, None, lr_b, reg_b, index="user")  # output bias
        self.b_h = nn.Parameter(torch.zeros(hidden))  # hidden bias (dense: every item uses it)
        self.dense_lr, self.dense_reg = float(lr_h), 0.0
        self._codes: torch.Tensor | None = None  # every item's h_i, in eval mode

    def encode(self, v: torch.Tensor, ratings: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
        """h of ``n`` items from their ratings: ``v`` the rater's V row and ``seg`` the item
        (among the n) of each rating."""
        x = v * ratings.unsqueeze(1)
        return torch.sigmoid(torch.zeros(n, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, seg, x) + self.b_h)

    def forward(self, batch: Batch) -> torch.Tensor:
        if batch.items is not None:  # a training batch of whole items: encode them from it
            # V and W rows gathered once per distinct user (their L2 applies once a batch),
            # the distinct users found without making the host wait (``distinct``)
            users, real, inverse = distinct(batch.user)
            v = self.V(users, keep=real).index_select(0, inverse)
            h = self.encode(v, batch.rating, batch.inverse, len(batch.items))
            w = self.W(users, keep=real).index_select(0, inverse)
            b = self.b(users, keep=real).index_select(0, inverse)
            return self.mu + b + (w * h.index_select(0, batch.inverse)).sum(-1)
        # pairs to predict: codes of their items from the stored training ratings
        h = self.codes().index_select(0, batch.item)
        seen = (self.item_indptr[batch.item + 1] > self.item_indptr[batch.item]).to(h.dtype)
        return self.mu + self.b(batch.user) + (self.W(batch.user) * h).sum(-1) * seen

    @torch.no_grad()
    def codes(self) -> torch.Tensor:
        """h_i of every item ([n_items, hidden]); cached in eval mode."""
        if self._codes is not None and not self.training:
            return self._codes
        indptr = self.item_indptr.cpu()
        parts = []
        for a, b in budget_spans(indptr[1:], ENCODE_ROWS):  # items, about ENCODE_ROWS ratings at a time
            lo, hi = int(indptr[a]), int(indptr[b])
            counts = self.item_indptr[a + 1: b + 1] - self.item_indptr[a:b]
            seg = torch.repeat_interleave(torch.arange(b - a, device=counts.device), counts)
            parts.append(self.encode(self.V(self.item_users[lo:hi].long()), self.item_ratings[lo:hi], seg, b - a))
        codes = torch.cat(parts) if parts else self.b_h.new_zeros(0, self.b_h.numel())
        if not self.training:
            self._codes = codes
        return codes

    def train(self, mode: bool = True):
        self._codes = None  # the weights are about to change
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._codes = None
        return super().load_state_dict(*args, **kwargs)
