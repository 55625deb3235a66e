"""Prize-style probe/quiz/test splits for sources that have none (MovieLens, CSV).

Netflix built its splits per user: the most recent ratings of each user were held out and
each went at random into probe, quiz or test; probe stayed in the training data (its ratings
published), quiz and test became qualifying.txt (ratings withheld). ``mode="recent"`` does
the same with the ``k`` most recent ratings (ties broken at random), but never more than
half of a user's ratings, so that light users keep a training history. ``mode="random"``
holds out a random ``fraction`` of all ratings instead. Both are seeded.

The held-out quiz/test answers are kept in the dataset (``qual_rating``, ``qual_part``) so
``scripts/score.py`` can judge a submission locally.
"""

from __future__ import annotations

import numpy as np

from .prize import RawPrize
from .tabular import Table

TRAIN, PROBE, QUIZ, TEST = -1, 0, 1, 2


def holdout(user: np.ndarray, day: np.ndarray, mode: str = "recent", k: int = 9,
            fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Which set each rating goes to: TRAIN, PROBE, QUIZ or TEST (int8)."""
    rng = np.random.default_rng(seed)
    n = len(user)
    part = np.full(n, TRAIN, np.int8)
    if mode == "recent":
        _, dense, cnt = np.unique(user, return_inverse=True, return_counts=True)
        order = np.lexsort((rng.random(n), day, dense))  # by user, then date, ties at random
        start = np.zeros(len(cnt) + 1, np.int64)
        np.cumsum(cnt, out=start[1:])
        su = dense[order]
        from_end = start[su + 1] - 1 - np.arange(n)  # 0 for each user's latest rating
        held = order[from_end < np.minimum(k, cnt // 2)[su]]
    elif mode == "random":
        held = np.flatnonzero(rng.random(n) < fraction)
    else:
        raise ValueError(f"holdout mode must be 'recent' or 'random', got {mode!r}")
    part[held] = rng.integers(PROBE, TEST + 1, size=held.size)
    return part


def split_table(table: Table, rating_scale: tuple[float, float], meta: dict, mode: str = "recent",
                k: int = 9, fraction: float = 0.1, seed: int = 0, titles: dict | None = None) -> RawPrize:
    """A :class:`RawPrize` from one table of ratings, held out as :func:`holdout` says."""
    part = holdout(table.user, table.day, mode, k, fraction, seed)
    train = part <= PROBE
    probe = np.flatnonzero(part == PROBE)
    qual = np.flatnonzero(part >= QUIZ)
    qual = qual[np.lexsort((table.user[qual], table.item[qual]))]  # grouped by movie, as in the Prize
    return RawPrize(
        train_user=table.user[train], train_item=table.item[train],
        train_rating=table.rating[train], train_day=table.day[train],
        probe_user=table.user[probe], probe_item=table.item[probe],
        qual_user=table.user[qual], qual_item=table.item[qual], qual_day=table.day[qual],
        qual_rating=table.rating[qual].astype(np.float32), qual_part=(part[qual] - QUIZ).astype(np.int8),
        titles=titles, rating_scale=rating_scale,
        meta={**meta, "split": {"mode": mode, "k": k, "fraction": fraction, "seed": seed}},
    )
