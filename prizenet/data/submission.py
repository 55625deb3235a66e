"""Prize-format submissions: write, read, and judge against an answer key.

A submission follows qualifying.txt line for line: each ``MovieID:`` line is copied and
each ``CustomerID,Date`` line becomes one prediction (``3.712``), clipped to the rating
scale. Writes are atomic (a temporary file renamed into place); a ``.gz`` name compresses.

An answer key (written by scripts/make_synthetic.py and scripts/prepare_data.py for
splits they build) is a CSV in qualifying order with the columns
``movie_id,customer_id,date,rating,subset`` where subset is ``quiz`` or ``test``.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .fastio import DataFormatError, block_bytes, body_lines, fixed_decimal_field, parse_predictions, to_array

CINEMATCH_QUIZ_RMSE = 0.9514


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: shared folders stay readable to colleagues


def atomic_write(path: str | Path, pieces) -> None:
    """Write byte pieces to ``path`` through a temporary file in the same folder
    (``.NAME.XXXX.part``, removed on failure; a killed writer's is removed by the next
    run in that folder), with the permissions the umask gives a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as raw:
            f = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else raw
            for piece in pieces:
                f.write(piece)
            if f is not raw:
                f.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_submission(path: str | Path, movie_ids: np.ndarray, predictions: np.ndarray,
                     rating_scale: tuple[float, float] = (1.0, 5.0)) -> None:
    """Write predictions for qualifying pairs whose raw movie ids are ``movie_ids``."""
    predictions = np.asarray(predictions, np.float64)
    if predictions.shape != np.shape(movie_ids):
        raise ValueError(f"{len(predictions)} predictions for {len(movie_ids)} qualifying pairs")
    if not np.isfinite(predictions).all():
        raise ValueError(f"{int((~np.isfinite(predictions)).sum())} predictions are NaN or infinite")
    clipped = np.clip(predictions, *rating_scale)
    body, ends = body_lines([fixed_decimal_field(clipped, 3)])
    atomic_write(path, block_bytes(np.asarray(movie_ids), body, ends))


def read_submission(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(movie id of each prediction, predictions) in file order."""
    path = Path(path)
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    return parse_predictions(to_array(data), str(path))


def write_answers(path: str | Path, movie_ids, customer_ids, dates, ratings, part) -> None:
    frame = pd.DataFrame({
        "movie_id": movie_ids, "customer_id": customer_ids, "date": dates,
        "rating": ratings, "subset": np.where(np.asarray(part) == 0, "quiz", "test"),
    })
    atomic_write(path, [frame.to_csv(index=False).encode()])


def read_answers(path: str | Path) -> pd.DataFrame:
    # subset as a category: two distinct strings, not 2.8M str objects at Prize scale
    frame = pd.read_csv(path, dtype={"movie_id": np.int64, "customer_id": np.int64, "rating": np.float64,
                                     "subset": "category"})
    need = {"movie_id", "customer_id", "rating", "subset"}
    if not need <= set(frame.columns):
        raise DataFormatError(f"{path}: an answer key needs the columns {sorted(need)}, has {list(frame.columns)}")
    return frame


def check_against(path: str | Path, movie: np.ndarray, expected_movie: np.ndarray) -> None:
    """A submission must have the qualifying set's blocks, in order, with the same counts."""
    exp_ids, exp_counts = _runs(expected_movie)
    got_ids, got_counts = _runs(movie)
    n = min(len(exp_ids), len(got_ids))
    bad = np.flatnonzero((exp_ids[:n] != got_ids[:n]) | (exp_counts[:n] != got_counts[:n]))
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{path}: movie block {k + 1} is '{got_ids[k]}:' with {got_counts[k]} predictions; "
            f"expected '{exp_ids[k]}:' with {exp_counts[k]}"
        )
    if len(exp_ids) != len(got_ids):
        raise DataFormatError(
            f"{path}: {len(got_ids)} movie blocks ({len(movie)} predictions); expected "
            f"{len(exp_ids)} blocks ({len(expected_movie)} predictions)"
        )


def _runs(movie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(movie) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.concatenate([[0], np.flatnonzero(np.diff(movie)) + 1])
    return np.asarray(movie)[first], np.diff(np.concatenate([first, [len(movie)]]))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def score(submission: str | Path, answers: str | Path, reference: float = CINEMATCH_QUIZ_RMSE) -> dict:
    """Quiz, test and overall RMSE of a submission, and the quiz improvement over ``reference``."""
    key = read_answers(answers)
    movie, pred = read_submission(submission)
    check_against(submission, movie, key["movie_id"].to_numpy())
    truth = key["rating"].to_numpy()
    quiz = (key["subset"] == "quiz").to_numpy()
    out = {"quiz_rmse": rmse(pred[quiz], truth[quiz]) if quiz.any() else None,
           "test_rmse": rmse(pred[~quiz], truth[~quiz]) if (~quiz).any() else None,
           "rmse": rmse(pred, truth), "n": int(len(pred)), "reference": reference}
    base = out["quiz_rmse"] if out["quiz_rmse"] is not None else out["rmse"]
    out["improvement_pct"] = 100.0 * (reference - base) / reference
    return out
