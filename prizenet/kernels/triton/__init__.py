"""The CUDA kernels, written in Triton (``pip install "prizenet[cuda]"``): the interface of
:mod:`prizenet.kernels`, users in parallel.

Each epoch is one launch of one program per run of a user's ratings (``bounds``), one warp
each (``num_warps=1``), the heaviest users first (they set the epoch's length) and the rest
in the epoch's shuffled order. A program keeps its user's rows (pu[u], bu[u], the time
terms, SVD++'s y gradient) in registers and writes them once at the end; item-side rows
(qi[i], bi[i], the item-time bins, y[j]) are read when needed and moved with relaxed atomic
adds (Hogwild: another program's update may land between a read and its add, the staleness
that a simulation at Netflix-scale concurrency priced at 0.0006 RMSE; ``../shared/GPU.md``).
The per-run squared errors go to a device array summed on the device: nothing waits for the
host. With ``TRITON_INTERPRET=1`` the programs run one after another, in ``order``, on CPU
tensors: the kernels then equal the sequential numba ones (the tests).
"""

from __future__ import annotations

import torch

from .integrated import integrated
from .svd import svd
from .svdpp import svdpp
from .timesvdpp import timesvdpp

__all__ = ["integrated", "svd", "svdpp", "timesvdpp", "launch_order", "heavy_first", "block_k"]

#: The heaviest runs launched first, in decreasing length (a few waves of warps on a
#: 132-SM GPU); the rest keep the epoch's shuffled order.
HEAVY = 16384


def launch_order(bounds: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Program -> run for an epoch whose runs come in ``order``: :func:`heavy_first` on a GPU;
    in the interpreter (CPU tensors, programs run one after another) ``order`` itself, the
    sequential kernel's."""
    return heavy_first(bounds, order) if bounds.is_cuda else order


def heavy_first(bounds: torch.Tensor, order: torch.Tensor, heavy: int = HEAVY) -> torch.Tensor:
    """``order`` with its ``heavy`` longest runs moved to the front, longest first; the others
    keep their places relative to each other. Sorting on the device: no host sync."""
    counts = (bounds[1:] - bounds[:-1]).index_select(0, order)
    n = len(counts)
    top = torch.topk(counts, min(heavy, n)).indices
    key = torch.arange(n, device=bounds.device) + n
    key[top] = torch.arange(len(top), device=bounds.device)
    return order.index_select(0, torch.argsort(key))


def block_k(k: int) -> int:
    """The factor dimension rounded up to a power of two (a Triton block), 16 at least."""
    return max(16, 1 << (k - 1).bit_length())
