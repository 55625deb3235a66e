"""Any ratings table (CSV, TSV, Parquet; optionally .gz) with named columns.

Columns: user, item, rating and optionally a unix timestamp (seconds) or a date. Parsing
is pandas' C parser; a value that does not parse is reported with its file line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fastio import DataFormatError


@dataclass
class Table:
    """Raw rating columns: ids as found (items integers, users integers or strings), ratings
    as floats, days since 1970-01-01;
    row k came from line ``k + first_line`` of ``path`` (for error messages)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    day: np.ndarray
    path: str = "ratings"
    first_line: int = 1

    def check(self, rating_scale: tuple[float, float], max_span_days: int) -> None:
        """Refuse ratings off the scale (or between half stars) and dates that span more than
        ``max_span_days``, naming the file, line and value."""
        lo, hi = rating_scale
        r = self.rating
        bad = (r < lo) | (r > hi) | (r * 2 != np.round(r * 2))
        if bad.any():
            k = int(np.argmax(bad))
            raise DataFormatError(f"{self.path}, line {k + self.first_line}: rating {r[k]:g} is outside the rating "
                                  f"scale [{lo:g}, {hi:g}] in half-star steps ({int(bad.sum())} such ratings)")
        if self.day.size and int(self.day.max()) - int(self.day.min()) >= max_span_days:
            median = np.median(self.day)
            k = int(np.argmax(np.abs(self.day - median)))  # the date furthest from the rest
            date = np.datetime64(int(self.day[k]), "D")
            raise DataFormatError(f"{self.path}, line {k + self.first_line}: date {date} lies too far from the "
                                  f"others (the dates may span at most {max_span_days} days); check its timestamp")


def read_table(
    path: str | Path,
    user_col: str | int = "user",
    item_col: str | int = "item",
    rating_col: str | int = "rating",
    timestamp_col: str | int | None = None,
    date_col: str | int | None = None,
    sep: str | None = None,
    header: bool = True,
    data: bytes | None = None,
    string_users: bool = True,
) -> Table:
    """Read a ratings table; ``sep`` defaults by extension (.tsv tab, else comma).

    With ``header=False`` the columns are named by position (0, 1, ...). ``data`` passes the
    file's bytes already read (for separators pandas' C parser cannot take, such as '::').
    ``string_users=False`` refuses non-integer user ids too (MovieLens ids are integers:
    one that is not is a damaged line, not a string id).
    """
    path = Path(path)
    if not path.is_file() and data is None:
        raise FileNotFoundError(f"{path}: no such ratings file")
    cols = [c for c in (user_col, item_col, rating_col, timestamp_col, date_col) if c is not None]
    suffixes = path.suffixes
    if ".parquet" in suffixes:
        try:
            frame = pd.read_parquet(path, columns=cols)
        except ImportError as e:
            raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
        first_line = 0
    else:
        if sep is None:
            sep = "\t" if ".tsv" in suffixes or ".tab" in suffixes else ","
        first_line = 2 if header else 1
        typed = {user_col: np.int64, item_col: np.int64, rating_col: np.float64}
        if timestamp_col is not None:
            typed[timestamp_col] = np.int64

        def read(dtype):
            source = path if data is None else io.BytesIO(data)
            return pd.read_csv(source, sep=sep, header=0 if header else None, usecols=cols,
                               dtype=dtype, compression="infer" if data is None else None, engine="c")

        try:
            frame = read(typed)  # the fast path: typed columns straight from the C parser
        except ValueError as e:
            if "Usecols" in str(e) or "not in list" in str(e) or "do not match" in str(e):
                have = list(pd.read_csv(path if data is None else io.BytesIO(data), sep=sep, nrows=0).columns)
                raise DataFormatError(f"{path}: expected columns {cols}, the header has {have}") from e
            frame = read(str)  # string ids, or a bad value to locate
    numeric = {rating_col: "rating", timestamp_col: "timestamp"}
    out = {}
    for col, name in numeric.items():
        if col is None:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any():
            k = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataFormatError(
                f"{path}, line {k + first_line}: column {col!r} should be a number, got {frame[col].iloc[k]!r}"
            )
        out[name] = values.to_numpy()
    if timestamp_col is not None:
        day = np.floor_divide(out["timestamp"].astype(np.int64), 86400).astype(np.int32)
    elif date_col is not None:
        dates = pd.to_datetime(frame[date_col], errors="coerce")
        if dates.isna().any():
            k = int(np.flatnonzero(dates.isna().to_numpy())[0])
            raise DataFormatError(
                f"{path}, line {k + first_line}: column {date_col!r} should be a date, got {frame[date_col].iloc[k]!r}"
            )
        day = dates.to_numpy().astype("datetime64[D]").astype(np.int64).astype(np.int32)
    else:
        day = np.zeros(len(frame), np.int32)
    return Table(_ids(frame[user_col], path, first_line, user_col, strings=string_users),
                 _ids(frame[item_col], path, first_line, item_col, strings=False),
                 out["rating"].astype(np.float64), day, str(path), first_line)


def _ids(column: pd.Series, path: Path, first_line: int, name, strings: bool) -> np.ndarray:
    """Integer ids when every id is an integer; else, with ``strings`` (users), the strings
    themselves. Item ids must be integers: the Prize's submission format names movies by
    number (``123:``), so a string movie id would fail only after training, in the writer."""
    if column.dtype.kind in "iu":
        return column.to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(column, errors="coerce")
    bad = (numeric.isna() | (numeric != np.floor(numeric)) | (numeric.abs() >= 2**63)).to_numpy()
    if not bad.any():
        return numeric.to_numpy(dtype=np.int64)
    if strings:
        return column.to_numpy(dtype=str)
    k = int(np.argmax(bad))
    raise DataFormatError(f"{path}, line {k + first_line}: column {name!r} should be an integer id, got "
                          f"{column.iloc[k]!r} ({int(bad.sum())} such ids). Item ids must be integers (the Prize's "
                          f"submission format names movies by number): map them to integers first")
