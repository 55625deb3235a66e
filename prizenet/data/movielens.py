"""MovieLens releases: 100K (u.data), 1M and 10M (ratings.dat), 20M/25M/32M/latest (ratings.csv).

| release            | ratings file  | separator | header | rating scale |
|--------------------|---------------|-----------|--------|--------------|
| ml-100k            | u.data        | tab       | no     | 1-5          |
| ml-1m, ml-10m      | ratings.dat   | ``::``    | no     | 1-5, 0.5-5   |
| ml-20m ... ml-32m, | ratings.csv   | comma     | yes    | 0.5-5        |
| ml-latest(-small)  |               |           |        |              |

MovieLens has no probe or qualifying set; :mod:`prizenet.data.splits` builds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .netflix import find, read_bytes
from .tabular import Table, read_table

FILES = ("ratings.csv", "ratings.dat", "u.data")
WHERE = "MovieLens releases are at https://grouplens.org/datasets/movielens/"


def ratings_file(root: Path) -> Path | None:
    for name in FILES:
        if (p := find(root, name)) is not None:
            return p
    return None


def read_movielens(root: str | Path) -> tuple[Table, dict, tuple[float, float]]:
    """(ratings table, titles {item: (year, title)}, rating scale) of a MovieLens folder."""
    root = Path(root)
    path = ratings_file(root)
    if path is None:
        raise FileNotFoundError(
            f"{root}: no MovieLens ratings file: expected one of {', '.join(FILES)} (each may be .gz). {WHERE}"
        )
    name = path.name.removesuffix(".gz")
    if name == "ratings.csv":
        table = read_table(path, "userId", "movieId", "rating", timestamp_col="timestamp")
    elif name == "ratings.dat":  # '::' would send pandas to its slow Python engine: make it a tab
        data = read_bytes(path).replace(b"::", b"\t")
        table = read_table(path, 0, 1, 2, timestamp_col=3, sep="\t", header=False, data=data)
    else:
        table = read_table(path, 0, 1, 2, timestamp_col=3, sep="\t", header=False)
    r = table.rating
    scale = (0.5, 5.0) if r.size and (r.min() < 1 or (r != np.floor(r)).any()) else (1.0, 5.0)
    return table, read_titles(root), scale


def read_titles(root: Path) -> dict:
    """Titles and years from movies.csv, movies.dat or u.item, when present."""
    if (p := find(root, "movies.csv")) is not None:
        frame = pd.read_csv(p, usecols=[0, 1], encoding="utf-8")
    elif (p := find(root, "movies.dat")) is not None:
        text = read_bytes(p).decode("latin-1").replace("::", "\t")
        frame = pd.read_csv(__import__("io").StringIO(text), sep="\t", header=None, usecols=[0, 1], quoting=3)
    elif (p := find(root, "u.item")) is not None:
        frame = pd.read_csv(p, sep="|", header=None, usecols=[0, 1], encoding="latin-1")
    else:
        return {}
    ids, titles = frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].astype(str)
    years = pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").fillna(0).astype(int)
    return {int(i): (int(y), t) for i, y, t in zip(ids, years, titles)}
