"""A synthetic Netflix Prize: the original file layout, with structure that better models find.

Ratings are drawn from the model family the Prize's winners used, so every step up the
ladder (baseline -> time-aware baseline -> MF -> SVD++/timeSVD++) has something to learn:

    r_ui(t) = round(mu + b_u + alpha_u * dev_u(t) + (b_i + b_i,Bin(t)) + p_u^T q_i + noise),
    clipped to 1..5

* user activity and item popularity have heavy (log-normal) tails, as in Netflix;
* dates fall in 1998-10-01..2005-12-31, each user active in a window of their own;
* b_i,Bin(t) drifts each item's bias linearly over the years, alpha_u * dev_u(t) drifts
  each user's bias around their mean rating date (Koren 2009's dev_u, beta = 0.4);
* p_u^T q_i is low rank (``n_factors``), the taste that matrix factorization recovers.

Held out as Netflix did (see :mod:`prizenet.data.splits`): each user's most recent ratings
go at random to probe (kept in training_set), quiz and test (qualifying.txt). The answers
for qualifying go to ``answers.csv`` for ``scripts/score.py``. Everything is a function of
``seed``: the same arguments write byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fastio import block_bytes, body_lines, const_field, date_field, format_uint
from .prize import NETFLIX_EPOCH
from .splits import PROBE, QUIZ, holdout
from .submission import atomic_write, write_answers

LAST_DAY = 2648  # 2005-12-31, days after 1998-10-01


def generate(users: int, items: int, ratings: int, seed: int = 0, n_factors: int = 8) -> dict:
    """Columns of a synthetic ratings set: customer and movie ids, stars, days since 1970."""
    if ratings > users * items // 2:
        raise ValueError(f"{ratings} ratings do not fit {users} users x {items} items (at most half full)")
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, users)
    popularity = rng.lognormal(0.0, 1.5, items)
    # Draw pairs, drop repeats, top up until there are enough distinct pairs.
    keys = np.zeros(0, np.int64)
    while keys.size < ratings:
        n = int((ratings - keys.size) * 1.15) + 1000
        u = np.searchsorted(np.cumsum(activity / activity.sum()), rng.random(n)).clip(0, users - 1)
        i = np.searchsorted(np.cumsum(popularity / popularity.sum()), rng.random(n)).clip(0, items - 1)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * items + i]))
    keys = np.sort(rng.choice(keys, ratings, replace=False)) if keys.size > ratings else keys
    u, i = np.divmod(keys, items)

    # Each user's active window; later users are more common (Netflix grew).
    start = (LAST_DAY * rng.beta(2.0, 1.2, users)).astype(np.int64)
    span = np.minimum(rng.integers(60, LAST_DAY, users), LAST_DAY - start)
    day = start[u] + (rng.random(ratings) * (span[u] + 1)).astype(np.int64)

    mu, b_u, b_i = 3.6, rng.normal(0, 0.35, users), rng.normal(0, 0.45, items)
    drift_i = rng.normal(0, 0.35, items)  # item bias change over the whole period
    alpha_u = rng.normal(0, 0.02, users)
    t_u = np.bincount(u, weights=day, minlength=users) / np.maximum(np.bincount(u, minlength=users), 1)
    dev = np.sign(day - t_u[u]) * np.abs(day - t_u[u]) ** 0.4
    scale = 0.9 / np.sqrt(n_factors) ** 0.5
    p, q = rng.normal(0, scale, (users, n_factors)), rng.normal(0, scale, (items, n_factors))
    taste = np.einsum("nk,nk->n", p[u], q[i]) if ratings <= 5_000_000 else _rowdot(p, q, u, i)
    r = (mu + b_u[u] + alpha_u[u] * dev + b_i[i] + drift_i[i] * (day / LAST_DAY - 0.5) + taste
         + rng.normal(0, 0.75, ratings))
    stars = np.clip(np.rint(r), 1, 5).astype(np.uint8)

    # Netflix-like raw ids: customers are sparse integers up to 2.65M, movies 1..items.
    customer_ids = np.sort(rng.choice(max(2_649_429, 3 * users), users, replace=False) + 1)
    return {"customer": customer_ids[u], "movie": i + 1, "rating": stars, "day": day + NETFLIX_EPOCH}


def _rowdot(p, q, u, i, chunk=4_000_000):
    out = np.empty(len(u))
    for a in range(0, len(u), chunk):
        out[a:a + chunk] = np.einsum("nk,nk->n", p[u[a:a + chunk]], q[i[a:a + chunk]])
    return out


def write_prize(out: str | Path, users: int, items: int, ratings: int, seed: int = 0,
                holdout_k: int = 9, n_factors: int = 8) -> dict:
    """Write a synthetic dataset in the original Netflix layout into ``out``, which must
    be new or empty (old mv_*.txt files would mix in silently); returns its counts."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; files already there would mix into the "
                              f"new data set. Choose a new folder (or replace it: make_synthetic.py --force)")
    cols = generate(users, items, ratings, seed, n_factors)
    part = holdout(cols["customer"], cols["day"], "recent", holdout_k, seed=seed + 1)
    train = np.flatnonzero(part <= PROBE)
    train = train[np.argsort(cols["movie"][train], kind="stable")]  # rows are already by movie
    ts = out / "training_set"
    ts.mkdir(parents=True, exist_ok=True)
    movie = cols["movie"][train]
    # Bound memory: format a few million lines at a time, cutting only between movies.
    bounds = np.searchsorted(movie, np.arange(1, items + 2))
    cuts = np.unique(np.concatenate([[0], bounds[np.searchsorted(bounds, np.arange(4_000_000, len(train), 4_000_000))], [len(train)]]))
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows = train[a:b]
        stars = (cols["rating"][rows][:, None] + 48).astype(np.uint8), np.ones(len(rows), np.int64)
        body, ends = body_lines([format_uint(cols["customer"][rows]), const_field(",", len(rows)), stars,
                                 const_field(",", len(rows)), date_field(cols["day"][rows])])
        pieces = block_bytes(movie[a:b], body, ends)
        for k in range(0, len(pieces), 2):  # (header, body) per movie
            atomic_write(ts / f"mv_{int(pieces[k][:-2]):07d}.txt", pieces[k:k + 2])

    probe = np.flatnonzero(part == PROBE)
    probe = probe[np.lexsort((cols["customer"][probe], cols["movie"][probe]))]
    body, ends = body_lines([format_uint(cols["customer"][probe])])
    atomic_write(out / "probe.txt", block_bytes(cols["movie"][probe], body, ends))

    qual = np.flatnonzero(part >= QUIZ)
    qual = qual[np.lexsort((cols["customer"][qual], cols["movie"][qual]))]
    n = len(qual)
    body, ends = body_lines([format_uint(cols["customer"][qual]), const_field(",", n),
                             date_field(cols["day"][qual])])
    atomic_write(out / "qualifying.txt", block_bytes(cols["movie"][qual], body, ends))
    write_answers(out / "answers.csv", cols["movie"][qual], cols["customer"][qual],
                  cols["day"][qual].astype("datetime64[D]"),
                  cols["rating"][qual], part[qual] - QUIZ)

    rng = np.random.default_rng(seed + 2)
    years = rng.integers(1920, 2006, items)
    titles = "".join(f"{m},{y},Synthetic Movie {m}, Part {m % 7 + 1}\n" for m, y in zip(range(1, items + 1), years))
    atomic_write(out / "movie_titles.txt", [titles.encode("latin-1")])
    return {"ratings": int(len(train)), "probe": int(len(probe)), "qualifying": n,
            "users": users, "items": items, "seed": seed}


def load_synthetic(users: int = 3000, items: int = 600, ratings: int = 200_000, seed: int = 0,
                   n_factors: int = 8, cache_dir: str | Path | None = None, rebuild: bool = False):
    """The synthetic Prize for these arguments, generated on first use into the cache dir.

    The files go to ``<cache>/synthetic-u{users}-i{items}-r{ratings}-k{n_factors}-s{seed}``
    (written in a temporary folder and renamed: an interrupted run leaves nothing half
    written); later calls load the cache. ``rebuild`` writes the files and the cache again.
    """
    import os

    from .cache import load_prize, publish

    root = Path(cache_dir or os.environ.get("PRIZENET_CACHE") or Path.home() / ".cache" / "prizenet")
    target = root / f"synthetic-u{users}-i{items}-r{ratings}-k{n_factors}-s{seed}"
    if rebuild or not (target / "qualifying.txt").exists():
        publish(target, lambda out: write_prize(out, users, items, ratings, seed=seed, n_factors=n_factors),
                replace=rebuild)
    return load_prize(target, format="netflix", cache_dir=cache_dir, name=target.name, rebuild=rebuild)
