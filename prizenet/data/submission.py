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


UMASK = _umask()
FILE_MODE = 0o666 & ~UMASK  # what open() would give: shared folders stay readable to colleagues


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


def read_answers(path: str | Path, rating_scale: tuple[float, float] | None = None) -> pd.DataFrame:
    """An answer key, checked: every line's movie and customer an integer, its rating a
    number within ``rating_scale`` (default: 1-5, or 0.5-5 when the key holds half stars
    or ratings below 1), its subset ``quiz`` or ``test``, and the movies in blocks as in
    qualifying.txt. Each problem names the key's file and line."""
    need = ["movie_id", "customer_id", "rating", "subset"]
    try:
        # subset as a category: two distinct strings, not 2.8M str objects at Prize scale
        # (customer ids may be strings: a CSV source's user ids; they are not scored)
        frame = pd.read_csv(path, dtype={"movie_id": np.int64, "rating": np.float64, "subset": "category"})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        frame = _answers_as_text(path, need, e)  # locates the bad value, or raises
    except OSError as e:
        raise DataFormatError(f"{path}: cannot be read as an answer key ({e})") from None
    if not set(need) <= set(frame.columns):
        raise DataFormatError(f"{path}: an answer key needs the columns {need}, has {list(frame.columns)}")
    line = lambda k: int(k) + 2  # noqa: E731 - the header is line 1
    rating = frame["rating"].to_numpy()
    if (bad := ~np.isfinite(rating)).any():
        k = np.argmax(bad)
        raise DataFormatError(f"{path}, line {line(k)}: rating {rating[k]} is not a number ({int(bad.sum())} such)")
    if rating_scale is None:
        rating_scale = (0.5, 5.0) if rating.size and (rating.min() < 1 or (rating != np.floor(rating)).any()) \
            else (1.0, 5.0)
    lo, hi = rating_scale
    if (bad := (rating < lo) | (rating > hi)).any():
        k = np.argmax(bad)
        raise DataFormatError(f"{path}, line {line(k)}: rating {rating[k]:g} is outside the rating scale "
                              f"[{lo:g}, {hi:g}] ({int(bad.sum())} such); give the data's scale if it differs")
    subset = frame["subset"].astype(str).str.strip()
    if (bad := ~subset.isin(["quiz", "test"]).to_numpy()).any():
        k = np.argmax(bad)
        raise DataFormatError(f"{path}, line {line(k)}: subset {frame['subset'].iloc[k]!r}; expected 'quiz' or 'test'")
    frame["subset"] = subset.astype("category")
    movie = frame["movie_id"].to_numpy()
    ids, _ = _runs(movie)
    if len(np.unique(ids)) != len(ids):  # a movie in two places: not qualifying.txt's blocks
        starts = np.concatenate([[0], np.flatnonzero(np.diff(movie)) + 1])
        seen: dict = {}
        for k, m in zip(starts, ids):
            if m in seen:
                raise DataFormatError(
                    f"{path}, line {line(k)}: movie {m} starts a second block (its first began at line "
                    f"{line(seen[m])}); an answer key lists the qualifying pairs in qualifying.txt's order, "
                    f"each movie's in one block")
            seen[m] = k
    frame.attrs["rating_scale"] = (float(lo), float(hi))
    return frame


def _answers_as_text(path, need: list[str], error: Exception) -> pd.DataFrame:
    """The key read as text, to name the line whose value did not parse."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not a CSV answer key ({str(e).splitlines()[0]})") from None
    if not set(need) <= set(frame.columns):
        raise DataFormatError(f"{path}: an answer key needs the columns {need}, has {list(frame.columns)}")
    for col, integer in (("movie_id", True), ("rating", False)):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | ((values != np.floor(values)) if integer else False)
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            kind = "an integer" if integer else "a number"
            raise DataFormatError(f"{path}, line {k + 2}: {col} should be {kind}, got {frame[col].iloc[k]!r}")
        frame[col] = values.astype(np.int64 if integer else np.float64)
    return frame


def check_against(path: str | Path, movie: np.ndarray, expected_movie: np.ndarray,
                  expected_from: str = "the qualifying set") -> None:
    """A submission must have the qualifying set's blocks, in order, with the same counts;
    ``expected_from`` names where the expected blocks come from (an answer key's path)."""
    exp_ids, exp_counts = _runs(expected_movie)
    got_ids, got_counts = _runs(movie)
    n = min(len(exp_ids), len(got_ids))
    bad = np.flatnonzero((exp_ids[:n] != got_ids[:n]) | (exp_counts[:n] != got_counts[:n]))
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{path}: movie block {k + 1} is '{got_ids[k]}:' with {got_counts[k]} predictions; "
            f"expected '{exp_ids[k]}:' with {exp_counts[k]}, as {expected_from} lists it"
        )
    if len(exp_ids) != len(got_ids):
        raise DataFormatError(
            f"{path}: {len(got_ids)} movie blocks ({len(movie)} predictions); expected "
            f"{len(exp_ids)} blocks ({len(expected_movie)} predictions), as {expected_from} lists them"
        )


def _runs(movie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(movie) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.concatenate([[0], np.flatnonzero(np.diff(movie)) + 1])
    return np.asarray(movie)[first], np.diff(np.concatenate([first, [len(movie)]]))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def score(submission: str | Path, answers: str | Path, reference: float | None = None,
          rating_scale: tuple[float, float] | None = None) -> dict:
    """Quiz, test and overall RMSE of a submission, and the quiz improvement over ``reference``
    (an RMSE to beat: :data:`CINEMATCH_QUIZ_RMSE` for the Netflix quiz set; None, the default,
    reports none: Cinematch's number means nothing on other data).

    The answer key is checked first (:func:`read_answers`), so a damaged key is not blamed
    on the submission. Predictions outside the rating scale are clipped to it, as the
    Prize's judge did; ``clipped`` counts them.
    """
    key = read_answers(answers, rating_scale)
    movie, pred = read_submission(submission)
    return judge(movie, pred, Key.of(key), reference, str(submission), f"the answer key {answers}")


class Key:
    """An answer key as arrays: the qualifying order's movie ids, the true ratings, which
    pairs are in the quiz half, and the rating scale predictions are clipped to."""

    def __init__(self, movie: np.ndarray, rating: np.ndarray, quiz: np.ndarray, rating_scale: tuple[float, float]):
        self.movie, self.rating, self.quiz = movie, rating, quiz
        self.rating_scale = (float(rating_scale[0]), float(rating_scale[1]))

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Key":
        """From :func:`read_answers`' frame."""
        return cls(frame["movie_id"].to_numpy(), frame["rating"].to_numpy(np.float64),
                   (frame["subset"] == "quiz").to_numpy(), frame.attrs["rating_scale"])


def judge(movie: np.ndarray, pred: np.ndarray, key: Key, reference: float | None = None,
          name: str = "the submission", key_name: str = "the answer key") -> dict:
    """:func:`score`'s judgement of parsed predictions (``movie``, ``pred`` in file order,
    as :func:`read_submission` gives them): the blocks checked against the key's, then
    quiz, test and overall RMSE of the predictions clipped to the rating scale."""
    lo, hi = key.rating_scale
    check_against(name, movie, key.movie, key_name)
    clipped = int(((pred < lo) | (pred > hi)).sum())
    pred = np.clip(pred, lo, hi)
    truth, quiz = key.rating, key.quiz
    out = {"quiz_rmse": rmse(pred[quiz], truth[quiz]) if quiz.any() else None,
           "test_rmse": rmse(pred[~quiz], truth[~quiz]) if (~quiz).any() else None,
           "rmse": rmse(pred, truth), "n": int(len(pred)), "reference": reference,
           "rating_scale": [lo, hi], "clipped": clipped}
    base = out["quiz_rmse"] if out["quiz_rmse"] is not None else out["rmse"]
    out["improvement_pct"] = None if reference is None else 100.0 * (reference - base) / reference
    return out
