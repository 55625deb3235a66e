"""Embedding tables trained row-sparsely, and the helpers every model shares.

A model's parameters are tables indexed by user, item, day...; a batch touches a few
thousand of their rows. ``SparseTable`` gathers those rows as leaf tensors, so autograd
works on batch-sized tensors only, and the optimizers in :mod:`prizenet.optim` write the
gradient back into those rows alone, with the papers' per-rating L2 (``reg``) and the
table's own learning rate (``lr``): biases, factors and day terms each get theirs, as in
Koren's papers and Surprise.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


class SparseTable(nn.Module):
    """``n`` rows of ``dim`` numbers (``dim=None``: one number a row, a bias vector).

    Args:
        lr, reg: the SGD step and the per-rating L2 weight of this table's rows.
        index: what a row stands for ("user", "item", or anything else). Rows of user and
            item tables that no training rating touches are zeroed (factor tables) so that
            unseen users and items fall back to the biases.
    """

    def __init__(self, n: int, dim: int | None, lr: float, reg: float, init_std: float = 0.0,
                 index: str = "user"):
        super().__init__()
        shape = (n,) if dim is None else (n, dim)
        weight = torch.zeros(shape)
        if init_std > 0:
            weight.normal_(0.0, init_std)
        self.weight = nn.Parameter(weight, requires_grad=False)  # updated by prizenet.optim
        self.lr, self.reg, self.index = float(lr), float(reg), index
        self.tape: list | None = None

    def forward(self, idx: torch.Tensor, uses: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``idx`` (one gathered row per index).

        ``uses`` (one number per index): how many ratings of the batch update that row in
        all. The SGD step of such a row is damped to the effect of that many sequential
        steps (see :mod:`prizenet.optim`); models with whole-user batches pass it for their
        user rows, which otherwise take all of a user's updates at once.
        ``keep`` (bools, one per index): rows where it is False come back as zeros and
        train nothing, neither gradient nor L2: the padding of :func:`distinct`.
        """
        rows = self.weight.index_select(0, idx)
        if keep is not None:
            rows.mul_(keep.to(rows.dtype).view(-1, *([1] * (rows.dim() - 1))))
        if self.tape is not None:  # training: gradients are taken w.r.t. the gathered rows
            rows.requires_grad_(True)
            self.tape.append((self, idx, rows, uses))
        return rows

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, lr={self.lr:g}, reg={self.reg:g}, index={self.index!r}"


def tables(model: nn.Module) -> list[SparseTable]:
    return [m for m in model.modules() if isinstance(m, SparseTable)]


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters outside the sparse tables (an MLP's weights), trained by a dense optimizer."""
    sparse = {id(t.weight) for t in tables(model)}
    return [p for p in model.parameters() if id(p) not in sparse and p.requires_grad]


@contextmanager
def recording(model: nn.Module):
    """Within the block, every gathered row is recorded (table, index, rows) for the optimizer."""
    tape: list = []
    recorded = tables(model)
    for t in recorded:
        t.tape = tape
    try:
        yield tape
    finally:
        for t in recorded:
            t.tape = None


@torch.no_grad()
def zero_unseen(model: nn.Module, n_user_ratings: np.ndarray, n_item_ratings: np.ndarray) -> None:
    """Zero factor rows of users/items with no training rating: they predict from biases.
    (``RatingModel.see`` calls it; a model whose interaction term is not zero for zero rows,
    an MLP, also masks those users and items in its own ``see``.)"""
    for t in tables(model):
        counts = {"user": n_user_ratings, "item": n_item_ratings}.get(t.index)
        if counts is not None and t.weight.dim() == 2:
            unseen = torch.from_numpy(np.flatnonzero(counts == 0)).to(t.weight.device)
            t.weight.index_fill_(0, unseen, 0.0)


def sorted_runs(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the order sorting ``idx``, ``idx`` sorted, the run of equal values each sorted
    entry is in, numbered from 0): what ``torch.unique`` gives, in fixed-size ops only
    (``unique`` makes the host wait for the device to learn how many distinct values there
    are; here the number of runs stays on the device, as ``run[-1] + 1``)."""
    order = torch.argsort(idx)
    s = idx.index_select(0, order)
    first = torch.ones_like(s, dtype=torch.bool)
    first[1:] = s[1:] != s[:-1]
    return order, s, torch.cumsum(first, 0) - 1


def distinct(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.unique(idx, return_inverse=True)`` without the host sync, padded: (the distinct
    values, sorted, then padding up to ``len(idx)``; which of those are real; each entry's
    position among them). Gather table rows with ``table(values, keep=real)``: the padding
    rows come back as zeros and train nothing."""
    order, s, run = sorted_runs(idx)
    values = torch.zeros_like(s).index_copy_(0, run, s)  # (a run's entries all write its value)
    real = torch.arange(len(s), device=s.device) <= run[-1:]
    return values, real, torch.empty_like(run).index_copy_(0, order, run)


def repeats(idx: torch.Tensor) -> torch.Tensor:
    """For each entry of ``idx``, how many entries equal it (``unique``'s counts, sync-free)."""
    order, _, run = sorted_runs(idx)
    length = torch.zeros_like(idx).index_add_(0, run, torch.ones_like(idx))
    return torch.empty_like(idx).index_copy_(0, order, length.index_select(0, run))


def csr_rows(indptr: torch.Tensor) -> torch.Tensor:
    """The row of each entry of a CSR with offsets ``indptr`` (a user per rating)."""
    return torch.repeat_interleave(torch.arange(len(indptr) - 1, device=indptr.device), indptr[1:] - indptr[:-1])


def csr_segments(indptr: torch.Tensor, rows: torch.Tensor, total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The entries of CSR rows ``rows``, one row after another: (each entry's index in
    ``rows``, its position in the CSR's columns). ``total``, the number of entries when the
    caller knows it on the host, spares the device a sync to learn it."""
    start = indptr[rows]
    count = indptr[rows + 1] - start
    seg = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), count, output_size=total)
    first = torch.cumsum(count, 0) - count
    return seg, torch.arange(len(seg), device=rows.device) - first[seg] + start[seg]


def budget_spans(ends: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Consecutive spans ``[a, b)`` of segments whose cumulative sizes are ``ends`` (a CPU
    tensor; segment k ends at ``ends[k]``), each of about ``budget`` rows and at least one
    segment: how prediction walks users or items without gathering everything at once."""
    bounds = [0]
    while bounds[-1] < len(ends):
        a = bounds[-1]
        base = int(ends[a - 1]) if a else 0
        bounds.append(max(a + 1, int(torch.searchsorted(ends, base + budget, right=True))))
    return list(zip(bounds[:-1], bounds[1:]))
