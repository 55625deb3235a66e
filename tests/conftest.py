from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from prizenet.data.synthetic import write_prize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# Triton kernels run in its interpreter here, on CPU tensors, one program after another (set
# before anything imports them); ahead-of-time compiles run in a process without it.
os.environ["TRITON_INTERPRET"] = "1"
HAS_TRITON = importlib.util.find_spec("triton") is not None
#: Every compiled backend, for the behaviour tests written once (Triton skips, saying why, without it).
BACKENDS = ["numba", pytest.param("triton", marks=pytest.mark.skipif(
    not HAS_TRITON, reason='triton is not installed (pip install -e ".[dev]" brings it)'))]


def shared(rel: str) -> Path:
    """A path in ../shared/data, or skip: that licensed data is never in the repository."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} is absent (real Netflix/MovieLens data is read from ../shared/data, never committed)")
    return path


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Never write caches next to shared data; each test gets its own cache.
    monkeypatch.setenv("PRIZENET_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def synthetic_src(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    write_prize(out, users=600, items=150, ratings=30_000, seed=3)
    return out


@pytest.fixture
def synthetic(synthetic_src, tmp_path) -> Path:
    """A private, writable copy of the small synthetic Prize."""
    dst = tmp_path / "prize"
    shutil.copytree(synthetic_src, dst)
    return dst


def tiny_ratings(seed: int, n_users: int, n_items: int, n: int):
    """(user, item, rating, N(u) lists) of a tiny random matrix, sorted by user: distinct
    pairs drawn among the first n_users - 1 users and n_items - 1 items, ratings 1..5, and
    N(u) = u's rated items plus one more drawn from all items, so the last user rated
    nothing (but is known to N) and the last item was never rated in training."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users - 1, n), rng.integers(0, n_items - 1, n))})
    user = np.array([p[0] for p in pairs])
    item = np.array([p[1] for p in pairs])
    rating = rng.integers(1, 6, len(pairs)).astype(np.float32)
    nu = [sorted(set(item[user == u].tolist()) | {int(rng.integers(0, n_items))}) for u in range(n_users)]
    return user, item, rating, nu


def tape_grad(tape, table):
    """The gradient of ``table``'s whole weight from a :func:`prizenet.models.tables.recording`
    tape: its gathered rows' gradients summed back into their rows."""
    import torch

    grad = torch.zeros_like(table.weight)
    for t, idx, rows, *_ in tape:
        if t is table:
            grad.index_add_(0, idx, rows.grad)
    return grad
