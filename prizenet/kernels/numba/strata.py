"""Stratified epochs on several CPU cores (DSGD, Gemulla et al., KDD 2011), for models whose
ratings are independent updates (svd): items dealt into T blocks, each user's run of ratings
cut into T sub-runs by item block. In sub-epoch k, thread t takes its users' sub-runs of
block (t + k) mod T: no two threads touch the same user or item row at once, so nothing is
shared (no Hogwild, no cache lines bouncing between cores), each thread's item rows are a
T-th of the table (cache), and a run with a given T is repeatable bit for bit."""

import numba
import numpy as np


def item_blocks(item_counts: np.ndarray, parts: int) -> np.ndarray:
    """Each item's block: items dealt round-robin by popularity, so blocks get equal ratings."""
    blocks = np.empty(len(item_counts), np.int64)
    blocks[np.argsort(-item_counts, kind="stable")] = np.arange(len(item_counts)) % parts
    return blocks


@numba.njit(nogil=True, cache=True)
def block_runs(bounds, item, blocks, parts):
    """(perm, sub_bounds): ``perm`` reorders the ratings so that within each run of
    ``bounds`` they come block by block (stable); sub-run ``s * parts + b`` of the reordered
    ratings is run s's ratings of block b, ``sub_bounds[s * parts + b]:sub_bounds[... + 1]``."""
    n_runs = len(bounds) - 1
    perm = np.empty(bounds[n_runs], np.int64)
    sub = np.empty(n_runs * parts + 1, np.int64)
    count = np.zeros(parts, np.int64)
    at = np.zeros(parts, np.int64)
    for s in range(n_runs):
        a, b = bounds[s], bounds[s + 1]
        count[:] = 0
        for j in range(a, b):
            count[blocks[item[j]]] += 1
        pos = a
        for k in range(parts):
            sub[s * parts + k] = pos
            at[k] = pos
            pos += count[k]
        for j in range(a, b):
            k = blocks[item[j]]
            perm[at[k]] = j
            at[k] += 1
    sub[n_runs * parts] = bounds[n_runs]
    return perm, sub
