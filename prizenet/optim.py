"""Optimizers that update only the table rows a batch touched.

``sgd`` is the papers' stochastic gradient descent, summed over a mini-batch: for each
rating and each row θ it touched, θ ← θ − lr·(∂½e²/∂θ + reg·θ), with ``lr`` and ``reg``
the row's table's own (biases, factors, day terms). The L2 term is applied per rating,
to the rows that rating used, never as a weight decay over whole tables: a user with 500
ratings is shrunk 500 times an epoch, one with 5 ratings 5 times, as in Koren's updates.

Rows that many ratings of one batch update at once (a user's rows when batches hold whole
users, as SVD++'s do) would take all those updates in one step, which diverges for heavy
users at the papers' learning rates. When the model says how many ratings ``c`` update a
row (``SparseTable(..., uses=c)``), that row moves ``(1 − (1 − lr)^c) / c`` times its summed
gradient instead of ``lr`` times: exactly ``lr`` for c = 1; for a bias whose c ratings
leave the same residual, exactly what c sequential SGD steps do; never more than the mean
of the c updates.

``adam`` is lazy Adam (what ``torch.optim.SparseAdam`` does): moments of a row move only
when a batch touches it. The same per-rating L2 is added to the gradient.

Parameters outside the tables (an MLP's weights) get torch's dense SGD or Adam with the
same learning-rate decay, at the model's ``dense_lr`` and weight decay ``dense_reg``
(``RatingModel``'s contract; the arguments for other modules). ``scale`` multiplies every
learning rate: the trainer sets it to ``lr_scale · lr_decay^(epoch − 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .models.base import RatingModel
from .models.tables import dense_parameters, sorted_runs, tables


class RowOptimizer:
    def __init__(self, model: nn.Module, kind: str = "sgd", betas=(0.9, 0.999), eps: float = 1e-8,
                 dense_lr: float = 1e-3, dense_weight_decay: float = 0.0):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {kind!r}")
        self.kind, self.betas, self.eps = kind, betas, eps
        self.tables = tables(model)
        self._slot = {id(t): k for k, t in enumerate(self.tables)}  # a table's Adam moments
        self.scale = 1.0
        self.steps = 0
        self.state = {}
        if kind == "adam":  # moments of each row, and one spare row (see _adam)
            for k, t in enumerate(self.tables):
                self.state[f"m{k}"] = t.weight.new_zeros((len(t.weight) + 1,) + t.weight.shape[1:])
                self.state[f"v{k}"] = t.weight.new_zeros((len(t.weight) + 1,) + t.weight.shape[1:])
        dense = dense_parameters(model)
        self.dense = None
        if isinstance(model, RatingModel):  # the contract's settings for its dense parameters
            dense_lr, dense_weight_decay = model.dense_lr, model.dense_reg
        self.dense_lr = dense_lr
        if dense:
            cls = torch.optim.Adam if kind == "adam" else torch.optim.SGD
            self.dense = cls(dense, lr=self.dense_lr, weight_decay=dense_weight_decay)

    @torch.no_grad()
    def step(self, tape: list) -> None:
        self.steps += 1
        for table, idx, rows, uses in tape:
            if rows.grad is None:
                continue
            g = rows.grad.add_(rows, alpha=table.reg)  # L2 on the rows used, once per gathered row
            lr = table.lr * self.scale
            if self.kind == "sgd":
                if uses is not None:  # damped: the effect of `uses` sequential steps
                    c = uses.to(g.dtype).clamp(min=1)
                    step = torch.expm1(c * math.log1p(-lr)).div_(c).neg_()  # (1 - (1 - lr)^c) / c
                    table.weight.index_add_(0, idx, g.mul_(_column(step, rows)).neg_())
                else:
                    table.weight.index_add_(0, idx, g.mul_(-lr))
            else:
                self._adam(self._slot[id(table)], table, idx, g, lr)
        if self.dense is not None:
            for group in self.dense.param_groups:
                group["lr"] = self.dense_lr * self.scale
            self.dense.step()
            self.dense.zero_grad(set_to_none=True)

    def _adam(self, k: int, table, idx: torch.Tensor, g: torch.Tensor, lr: float) -> None:
        """One moment update per distinct row of ``idx``, without ``torch.unique`` (whose
        output size the host must wait for on CUDA): the indices are sorted, each run of
        equal ones sums its gradients into the slot of its run number, and the slots past
        the last run (as many as there were repeats) go to the moments' spare row, with
        a zero step for the weights."""
        order, rows, run = sorted_runs(idx)  # run: the distinct row of each sorted position
        grad = torch.zeros_like(g).index_add_(0, run, g.index_select(0, order))
        # slot -> its run's row (every position of a run writes the same row id)
        slot_row = torch.zeros_like(rows).index_copy_(0, run, rows)
        valid = torch.arange(len(rows), device=rows.device) <= run[-1:]
        spare = len(table.weight)
        slot_row = torch.where(valid, slot_row, spare)
        b1, b2 = self.betas
        m = self.state[f"m{k}"].index_select(0, slot_row).mul_(b1).add_(grad, alpha=1 - b1)
        v = self.state[f"v{k}"].index_select(0, slot_row).mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.state[f"m{k}"].index_copy_(0, slot_row, m)
        self.state[f"v{k}"].index_copy_(0, slot_row, v)
        step = lr * (1 - b2 ** self.steps) ** 0.5 / (1 - b1 ** self.steps)
        update = m.div_(v.sqrt_().add_(self.eps)).mul_(-step) * _column(valid.to(m.dtype), m)
        table.weight.index_add_(0, torch.where(valid, slot_row, 0), update)

    def state_dict(self) -> dict:
        return {"scale": self.scale, "steps": self.steps, "state": self.state,
                "dense": self.dense.state_dict() if self.dense is not None else None}

    def load_state_dict(self, sd: dict) -> None:
        self.scale, self.steps = sd["scale"], sd["steps"]
        for key, value in sd["state"].items():
            self.state[key][:len(value)].copy_(value)  # (checkpoints before the spare row lack it)
        if self.dense is not None and sd["dense"] is not None:
            self.dense.load_state_dict(sd["dense"])


def _column(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-row numbers shaped to broadcast over ``like``'s rows."""
    return v.view(-1, *([1] * (like.dim() - 1)))
