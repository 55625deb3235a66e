"""Neural matrix factorization, NeuMF (He et al. 2017), adapted to explicit ratings.

    r̂_ui = mu + bu[u] + bi[i] + hᵀ [ pu[u] ⊙ qi[i] ;  φ(pu_mlp[u] ⊕ qi_mlp[i]) ]

The GMF branch is the element-wise product of the user and item embeddings ``pu, qi``; the
MLP branch φ is a tower of ReLU layers over the concatenation (⊕) of two other embeddings
``pu_mlp, qi_mlp``; ``h`` fuses both into one number. ``branches="gmf"`` or ``"mlp"`` keeps
one branch (the paper's GMF and MLP models).

Adaptation to ratings, as Rendle et al. (2020) and most explicit-feedback studies do: the
paper's sigmoid output and log loss (implicit feedback, sampled negatives) become a linear
output on top of mu and the biases, trained on squared error over the observed ratings.
L2: per rating on the embedding and bias rows a rating used (``reg_emb``, ``reg_bias``),
as every table here; ``reg_mlp`` is the dense layers' weight decay, added to their summed
gradient once a batch. Users and items without a training rating get no interaction term
(the MLP of a zero embedding is not zero): they predict mu + bu + bi.

Defaults follow the paper: Adam (lr 0.001), embeddings N(0, 0.01²), 8 predictive factors,
a [64, 32, 16, 8] tower whose first number is the concatenated embedding size (32 for the
user, 32 for the item). Not done: the paper's pre-training of NeuMF from trained GMF and
MLP models.

He, X., Liao, L., Zhang, H., Nie, L., Hu, X., Chua, T.-S. (2017). Neural collaborative
filtering. WWW 2017. Rendle, S., Krichene, W., Zhang, L., Anderson, J. (2020). Neural
collaborative filtering vs. matrix factorization revisited. RecSys 2020.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from ..data import Batch
from .base import RatingModel
from .tables import SparseTable

BRANCHES = ("neumf", "gmf", "mlp")


class NeuMF(RatingModel):
    optimizer = "adam"  # trainer.optimizer=auto trains it with the paper's Adam

    def __init__(self, n_users: int, n_items: int, mu: float, n_factors: int = 8,
                 mlp_layers: list[int] | tuple[int, ...] = (64, 32, 16, 8), dropout: float = 0.0,
                 branches: Literal["neumf", "gmf", "mlp"] = "neumf", init_std: float = 0.01,
                 lr_bias: float = 0.001, lr_emb: float = 0.001, lr_mlp: float = 0.001,
                 reg_bias: float = 0.0, reg_emb: float = 0.0, reg_mlp: float = 0.0):
        super().__init__()
        if branches not in BRANCHES:
            raise ValueError(f"branches must be one of {BRANCHES}, got {branches!r}")
        layers = [int(n) for n in mlp_layers]
        if branches != "gmf" and (len(layers) < 2 or layers[0] % 2):
            raise ValueError(f"mlp_layers needs an even input size and at least one layer, got {layers}")
        self.branches = branches
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.bu = SparseTable(n_users, None, lr_bias, reg_bias, index="user")
        self.bi = SparseTable(n_items, None, lr_bias, reg_bias, index="item")
        width = 0
        if branches != "mlp":
            self.pu = SparseTable(n_users, n_factors, lr_emb, reg_emb, init_std, index="user")
            self.qi = SparseTable(n_items, n_factors, lr_emb, reg_emb, init_std, index="item")
            width += n_factors
        if branches != "gmf":
            half = layers[0] // 2
            self.pu_mlp = SparseTable(n_users, half, lr_emb, reg_emb, init_std, index="user")
            self.qi_mlp = SparseTable(n_items, half, lr_emb, reg_emb, init_std, index="item")
            tower: list[nn.Module] = []
            for a, b in zip(layers[:-1], layers[1:]):
                tower += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            self.mlp = nn.Sequential(*tower)
            width += layers[-1]
        self.h = nn.Linear(width, 1, bias=False)
        # Who has a training rating (set by see()): the others predict from the biases.
        self.register_buffer("user_seen", torch.ones(n_users, dtype=torch.bool), persistent=False)
        self.register_buffer("item_seen", torch.ones(n_items, dtype=torch.bool), persistent=False)
        # the dense layers' optimizer settings (RatingModel's contract; the trainer's optimizer reads them)
        self.dense_lr, self.dense_reg = float(lr_mlp), float(reg_mlp)

    @torch.no_grad()
    def see(self, n_user_ratings: np.ndarray, n_item_ratings: np.ndarray) -> None:
        """An MLP of zero rows is not zero: users and items without a training rating are
        masked out of the interaction term instead (their factor rows are zeroed too)."""
        self.user_seen.copy_(torch.from_numpy(np.asarray(n_user_ratings) > 0))
        self.item_seen.copy_(torch.from_numpy(np.asarray(n_item_ratings) > 0))
        super().see(n_user_ratings, n_item_ratings)

    def forward(self, batch: Batch) -> torch.Tensor:
        u, i = batch.user, batch.item
        parts = []
        if self.branches != "mlp":
            parts.append(self.pu(u) * self.qi(i))
        if self.branches != "gmf":
            parts.append(self.mlp(torch.cat([self.pu_mlp(u), self.qi_mlp(i)], -1)))
        interaction = self.h(torch.cat(parts, -1)).squeeze(-1) * (self.user_seen[u] & self.item_seen[i])
        return self.mu + self.bu(u) + self.bi(i) + interaction
