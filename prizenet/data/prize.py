"""The one in-memory shape every model trains on: the Netflix Prize splits as columns.

Readers (netflix.py, movielens.py, tabular.py) return a :class:`RawPrize` with raw ids and
absolute days; :func:`build` turns it into a :class:`PrizeData`:

* dense contiguous ids (int32) for users and items, the raw ids kept in ``user_ids`` and
  ``item_ids`` (index -> raw id);
* the training ratings, probe included, as columns ``item, rating_x2, day`` (``rating_x2``
  is twice the rating as uint8, so half stars are exact in one byte), sorted by user, then
  item: a CSR matrix whose user u has rows ``user_indptr[u]:user_indptr[u + 1]``. The
  column ``user`` (each row's user) is laid out from the offsets on first use (0.4 GB at
  10^8 ratings that the cache need not hold);
* ``probe_rows``: the training rows of probe.txt, in probe.txt's order;
* the qualifying pairs ``qual_user, qual_item, qual_day`` in qualifying.txt's order, and,
  where known (generated splits, synthetic data), their withheld answers ``qual_rating``
  and ``qual_part`` (0 quiz, 1 test);
* ``qual_indptr, qual_by_user``: the qualifying pairs grouped by user (then item), and
  from them and the training rows the CSR ``nu_indptr, nu_items`` of N(u): every item u
  rated or was asked to rate (training, probe and qualifying), Koren's implicit feedback.
  N(u)'s training part is the item column itself, so the cache does not hold it twice:
  ``nu_items`` is laid out on first use (1-1.5 s at 10^8 ratings on two cores,
  most of it fresh memory).

``day`` counts days since ``epoch``, the dataset's first date (1998-10-01 for Netflix data,
when Netflix started collecting the ratings).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from . import kernels
from .fastio import DataFormatError, civil_from_days, days_from_civil

NETFLIX_EPOCH = int(days_from_civil(np.array([1998]), np.array([10]), np.array([1]))[0])

ARRAYS = (
    "item", "rating_x2", "day", "probe_rows",
    "qual_user", "qual_item", "qual_day", "qual_rating", "qual_part",
    "user_ids", "item_ids", "item_title", "item_year",
    "user_indptr", "qual_indptr", "qual_by_user",
)


@dataclass
class Runs:
    """A column stored as runs of equal values: ``values[j]`` fills rows ``starts[j]`` up
    to the next start (or ``n``). The Netflix files list ratings movie by movie, so their
    movie column is 17,770 runs instead of 10^8 int32 (0.4 GB never written)."""

    starts: np.ndarray  # int64, increasing, starts[0] == 0
    values: np.ndarray
    n: int

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, row: int):
        if not -self.n <= row < self.n:
            raise IndexError(f"row {row} of {self.n}")
        return self.values[np.searchsorted(self.starts, row % self.n, side="right") - 1]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.expand()
        return out if dtype is None else out.astype(dtype)

    def expand(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows ``lo:hi`` as a plain array."""
        hi = self.n if hi is None else hi
        a = np.searchsorted(self.starts, lo, side="right") - 1
        b = np.searchsorted(self.starts, hi, side="left")
        ends = np.append(self.starts[a + 1:b], hi)
        return np.repeat(self.values[a:b], ends - np.maximum(self.starts[a:b], lo))


@dataclass
class RawPrize:
    """What a reader returns: raw ids, ratings as floats, days since 1970-01-01."""

    train_user: np.ndarray
    train_item: np.ndarray | Runs
    train_rating: np.ndarray
    train_day: np.ndarray
    probe_user: np.ndarray
    probe_item: np.ndarray
    qual_user: np.ndarray
    qual_item: np.ndarray
    qual_day: np.ndarray
    probe_line: np.ndarray | None = None  # 1-based lines in probe_file, for error messages
    qual_line: np.ndarray | None = None
    probe_file: str = "probe"
    qual_file: str = "qualifying"
    qual_rating: np.ndarray | None = None  # withheld answers, when known
    qual_part: np.ndarray | None = None
    titles: dict | None = None  # raw item id -> (year or 0, title)
    rating_scale: tuple[float, float] = (1.0, 5.0)
    epoch: int | None = None  # days since 1970 of day 0; None: the first date seen
    meta: dict = field(default_factory=dict)


@dataclass
class PrizeData:
    item: np.ndarray
    rating_x2: np.ndarray
    day: np.ndarray
    probe_rows: np.ndarray
    qual_user: np.ndarray
    qual_item: np.ndarray
    qual_day: np.ndarray
    qual_rating: np.ndarray
    qual_part: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_title: np.ndarray
    item_year: np.ndarray
    user_indptr: np.ndarray
    qual_indptr: np.ndarray
    qual_by_user: np.ndarray
    meta: dict

    # -- sizes and views -------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.item)

    @property
    def n_days(self) -> int:
        return int(max(self.day.max(initial=0), self.qual_day.max(initial=0))) + 1

    @property
    def rating_scale(self) -> tuple[float, float]:
        lo, hi = self.meta["rating_scale"]
        return float(lo), float(hi)

    @property
    def rating(self) -> np.ndarray:
        """Training ratings as float32 (a new array: the column is stored as rating_x2)."""
        return self.rating_x2.astype(np.float32) * np.float32(0.5)

    @property
    def probe_rating(self) -> np.ndarray:
        return self.rating_x2[self.probe_rows].astype(np.float32) * np.float32(0.5)

    def is_probe(self) -> np.ndarray:
        mask = np.zeros(self.n_ratings, bool)
        mask[self.probe_rows] = True
        return mask

    def fit_rows(self, final_fit: bool) -> np.ndarray:
        """Rows a model trains on: training minus probe (phase 1), or all (phase 2)."""
        if final_fit:
            return np.arange(self.n_ratings, dtype=np.int64)
        return np.flatnonzero(~self.is_probe())

    def global_mean(self, rows: np.ndarray | None = None) -> float:
        r = self.rating_x2 if rows is None else self.rating_x2[rows]
        return float(r.mean(dtype=np.float64) / 2) if r.size else 0.0

    def dates(self, day: np.ndarray) -> np.ndarray:
        """Day indices as numpy datetime64[D]."""
        return (np.asarray(day, np.int64) + self.meta["epoch"]).astype("datetime64[D]")

    def user_mean_day(self) -> np.ndarray:
        """t_u of Koren 2009: each user's mean rating day over the training set (probe
        included: dates are not answers); users with no training rating get the mean of
        their qualifying days."""
        days = np.bincount(self.user, weights=self.day, minlength=self.n_users)
        counts = np.bincount(self.user, minlength=self.n_users)
        q_days = np.bincount(self.qual_user, weights=self.qual_day, minlength=self.n_users)
        q_counts = np.bincount(self.qual_user, minlength=self.n_users)
        cold = counts == 0
        days[cold], counts[cold] = q_days[cold], q_counts[cold]
        return (days / np.maximum(counts, 1)).astype(np.float32)

    def user_day_keys(self) -> np.ndarray:
        """Sorted distinct ``user * n_days + day`` of every (user, day) in training, probe
        and qualifying: the rows of per-day user terms (b_u,t, c_u,t, p_u,t)."""
        n_days = np.int64(self.n_days)
        keys = np.concatenate([self.user.astype(np.int64) * n_days + self.day,
                               self.qual_user.astype(np.int64) * n_days + self.qual_day])
        return np.unique(keys)

    def rows_by_item(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` in item order, stable (a counting sort)."""
        return self.item_groups(rows)[0]

    def item_groups(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``rows`` in item order, the items' CSR offsets into it)."""
        return kernels.group_rows(rows, self.item, self.n_items)

    @cached_property
    def user(self) -> np.ndarray:
        """Each training row's user (int32), from ``user_indptr``."""
        return np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.user_indptr))

    @property
    def nu_indptr(self) -> np.ndarray:
        """CSR offsets of N(u) in :attr:`nu_items`."""
        return self.user_indptr + self.qual_indptr

    @cached_property
    def nu_items(self) -> np.ndarray:
        """N(u) of every user: its training items (probe included), then its qualifying
        ones, each in item order (int32)."""
        indptr = self.nu_indptr
        out = np.empty(int(indptr[-1]), np.int32)
        kernels.in_threads(kernels.implicit_items, kernels.group_cuts(indptr), self.user_indptr, self.item,
                           self.qual_indptr, self.qual_by_user, self.qual_item, out)
        return out

    def split_id(self) -> str:
        """A fingerprint of the split: the probe and qualifying pairs (raw ids, in file
        order) and the training count. Runs whose predictions may be blended share it."""
        h = hashlib.sha1(str(self.n_ratings).encode())
        for user, item in ((self.user[self.probe_rows], self.item[self.probe_rows]), (self.qual_user, self.qual_item)):
            h.update(np.ascontiguousarray(np.asarray(self.user_ids)[user]).tobytes())
            h.update(np.ascontiguousarray(np.asarray(self.item_ids)[item]).tobytes())
        return h.hexdigest()[:16]

    def support(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per user and item, over training ``rows`` (default: all): ``user_ratings``,
        ``item_ratings`` and ``user_days`` (distinct days the user rated on), the
        meta-features BellKor's blends used."""
        rows = np.arange(self.n_ratings) if rows is None else rows
        user, day = self.user[rows], self.day[rows]
        keys = np.unique(user.astype(np.int64) * np.int64(self.n_days) + day)
        return {"user_ratings": np.bincount(user, minlength=self.n_users),
                "item_ratings": np.bincount(self.item[rows], minlength=self.n_items),
                "user_days": np.bincount(keys // np.int64(self.n_days), minlength=self.n_users)}

    def has_answers(self) -> bool:
        return bool(len(self.qual_rating)) and not np.isnan(self.qual_rating).any()

    def summary(self) -> dict:
        """What a user checks first (scripts/prepare_data.py prints it)."""
        train_users = np.zeros(self.n_users, bool)
        train_users[self.user] = True
        train_items = np.zeros(self.n_items, bool)
        train_items[self.item] = True
        qual_only_users = np.unique(self.qual_user[~train_users[self.qual_user]]).size
        qual_only_items = np.unique(self.qual_item[~train_items[self.qual_item]]).size
        days = np.concatenate([self.day, self.qual_day])
        first, last = (self.dates([days.min(), days.max()]) if days.size else [None, None])
        counts = np.bincount(self.rating_x2, minlength=11)
        histogram = {_star(k / 2): int(c) for k, c in enumerate(counts) if c}
        return {
            "name": self.meta.get("name", ""),
            "format": self.meta.get("format", ""),
            "ratings": self.n_ratings,
            "users": self.n_users,
            "items": self.n_items,
            "probe": int(len(self.probe_rows)),
            "qualifying": int(len(self.qual_user)),
            "users_only_in_qualifying": int(qual_only_users),
            "items_only_in_qualifying": int(qual_only_items),
            "first_date": str(first) if first is not None else None,
            "last_date": str(last) if last is not None else None,
            "histogram": histogram,
            "global_mean": round(self.global_mean(), 4),
            "answers_known": self.has_answers(),
        }

    # -- cache -----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write every column as .npy plus meta.json into ``directory`` (must not exist)."""
        with ArrayWriter(directory) as out:
            out.finish(self)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> "PrizeData":
        """A cache folder written by :meth:`save`, checked first (:func:`check_cache`)."""
        check_cache(directory)
        try:
            arrays = {
                name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
                for name in ARRAYS
            }
        except (ValueError, OSError, EOFError) as e:
            raise CacheError(f"{directory}: damaged cache ({e})") from None
        data = cls(**arrays, meta=json.loads((directory / "meta.json").read_text()))
        lo, hi = data.rating_scale
        r = data.rating_x2
        if r.size and (int(r.min()) < 2 * lo or int(r.max()) > 2 * hi):  # one pass over a byte a rating
            raise CacheError(f"{directory}: damaged cache (ratings outside the scale [{lo:g}, {hi:g}])")
        return data


HASHED_BYTES = 8 << 20  # cache files up to this size are checksummed; larger ones are size-checked


class CacheError(ValueError):
    """A cache folder that is incomplete or damaged: names the folder and what is wrong."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_cache(directory: Path) -> None:
    """Cheap checks that a cache folder is whole: its manifest (written last), every file's
    size, and the checksum of every small file (meta.json, ids, offsets). Raises CacheError."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheError(f"{directory}: incomplete or damaged cache (manifest.json: {e})") from None
    for name in [f"{n}.npy" for n in ARRAYS] + ["meta.json"]:
        path, want = directory / name, files.get(name)
        try:
            size = path.stat().st_size
        except OSError:
            raise CacheError(f"{directory}: damaged cache ({name} is missing)") from None
        if want is None or size != want["bytes"]:
            raise CacheError(f"{directory}: damaged cache ({name} is {size} bytes, "
                             f"expected {want and want['bytes']})")
        if want["sha256"] is not None and _sha256(path) != want["sha256"]:
            raise CacheError(f"{directory}: damaged cache ({name} does not match its checksum)")


class ArrayWriter:
    """Writes a :class:`PrizeData`'s arrays as NAME.npy into a new folder from background
    threads, each as soon as it is final: :func:`build` hands over the sorted training
    columns before it matches the probe and qualifying pairs. Writing 1 GB into the page
    cache is CPU work too; the threads take it where a core is free."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True)
        self.directory = directory
        self.pool = ThreadPoolExecutor(kernels.THREADS)
        self.pending: dict = {}

    def put(self, name: str, array: np.ndarray) -> None:
        path = self.directory / f"{name}.npy"
        self.pending[name] = self.pool.submit(partial(np.save, allow_pickle=False), path, array)

    def finish(self, data: "PrizeData") -> None:
        """Write every array not put yet (largest first), then meta.json, and wait; then
        ``manifest.json`` (see :func:`check_cache`), last, so a folder with one is complete."""
        for name in sorted(set(ARRAYS) - set(self.pending), key=lambda n: -getattr(data, n).nbytes):
            self.put(name, getattr(data, name))
        for f in self.pending.values():
            f.result()
        (self.directory / "meta.json").write_text(json.dumps(data.meta, indent=1))
        files = {}
        for name in [f"{n}.npy" for n in ARRAYS] + ["meta.json"]:
            path = self.directory / name
            size = path.stat().st_size
            files[name] = {"bytes": size, "sha256": _sha256(path) if size <= HASHED_BYTES else None}
        (self.directory / "manifest.json").write_text(json.dumps({"files": files}, indent=1))

    def __enter__(self) -> "ArrayWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)


def _star(x: float) -> str:
    return f"{x:g}"


def _dense(raw_parts: list[np.ndarray], in_place: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense ids over the union of ``raw_parts``: (raw id of each index, dense int32 parts).
    ``in_place``: the first part, when int32, is overwritten with its dense ids."""
    parts = [np.asarray(p) for p in raw_parts]
    sizes = [p for p in parts if p.size]
    if sizes and all(p.dtype.kind in "iu" for p in parts):
        ranges = [r for p in sizes for r in kernels.on_slices(kernels.id_range, p)]
        top = max(int(hi) for _, hi in ranges)
        if min(int(lo) for lo, _ in ranges) >= 0 and top < 64 * sum(p.size for p in parts) + 2**20:
            # Bounded non-negative ints (Netflix customer ids < 2.7M): a lookup table, no sort.
            present = np.zeros(top + 1, bool)
            for p in sizes:
                kernels.on_slices(kernels.mark, p, present)
            ids = np.flatnonzero(present)
            lut = np.cumsum(present, dtype=np.int32) - 1  # int32: a smaller table stays in cache
            out = []
            for k, p in enumerate(parts):
                dense = p if (in_place and k == 0 and p.dtype == np.int32 and p.flags.writeable) \
                    else np.empty(p.size, np.int32)
                kernels.in_threads(kernels.map_ids, kernels.even_cuts(p.size), p, lut, dense)
                out.append(dense)
            return ids.astype(np.int64), out
    ids, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return ids, [inverse[a:b].astype(np.int32) for a, b in zip(bounds[:-1], bounds[1:])]


def _thread_counts(ids: np.ndarray, n: int) -> np.ndarray:
    """Occurrences of each of ``n`` group ids in each thread range of ``even_cuts``."""
    cuts = kernels.even_cuts(len(ids))
    counts = np.zeros((len(cuts) - 1, n), np.int64)
    kernels.in_threads(kernels.count, cuts, ids, cuts, counts)
    return counts


def _offsets(counts: np.ndarray) -> np.ndarray:
    """CSR offsets of groups of ``counts`` rows."""
    indptr = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def _indptr(ids: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets of ``n`` groups from each row's group id."""
    return _offsets(_thread_counts(ids, n).sum(0))


def _order_pairs(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(CSR offsets by user, the order sorting the pairs by user then item, a repeated pair)."""
    indptr = _indptr(users, n_users)
    order, dup = kernels.order_pairs(users, items, indptr)
    return indptr, order, int(dup)


def _where(raw: RawPrize, which: str, k: int) -> str:
    lines = raw.probe_line if which == "probe" else raw.qual_line
    name = raw.probe_file if which == "probe" else raw.qual_file
    if lines is not None:
        return f"{name}, line {int(lines[k])}"
    return f"{name}, entry {k + 1}"


def build(raw: RawPrize, out: Path | None = None) -> PrizeData:
    """Validate a :class:`RawPrize` and index it into a :class:`PrizeData`, saved into the
    new folder ``out`` when given (see :class:`ArrayWriter`).

    The training columns are taken out of ``raw`` (set to None): where their dtypes allow
    (the Netflix reader's int32 ids, uint8 stars, int16 days), the ids are made dense and
    the ratings and days sorted in place, which at 10^8 ratings saves 0.7 GB of fresh
    memory.
    """
    if out is None:
        return _build(raw, None)
    with ArrayWriter(out) as writer:
        data = _build(raw, writer)
        writer.finish(data)
    return data


def _build(raw: RawPrize, writer: ArrayWriter | None) -> PrizeData:
    lo, hi = raw.rating_scale
    if lo < 0 or 2 * hi > np.iinfo(np.uint8).max:  # rating_x2 is one byte
        raise DataFormatError(f"rating scale [{lo:g}, {hi:g}]: ratings must lie between 0 and 127.5")
    r = np.asarray(raw.train_rating)
    if r.dtype.kind in "iu":  # whole stars (the Netflix files): no float copy of 10^8 ratings
        if r.size and lo <= r.min() and r.max() <= hi:
            bad = None
        else:
            bad = (r < lo) | (r > hi)
    else:
        r2 = r * 2
        bad = (r < lo) | (r > hi) | (r2 != np.round(r2))
        del r2
    if bad is not None and bad.any():
        k = int(np.argmax(bad))
        raise DataFormatError(
            f"rating {float(r[k]):g} of user {raw.train_user[k]}, item {np.asarray(raw.train_item[k])} is outside "
            f"the rating scale [{lo:g}, {hi:g}] in half-star steps ({int(bad.sum())} such ratings)"
        )
    del bad
    if r.dtype == np.uint8 and r.flags.writeable:  # the reader's column, doubled in place
        rating_x2 = np.multiply(r, 2, out=r)
    else:
        rating_x2 = (r * 2).astype(np.uint8) if r.dtype.kind in "iu" else np.rint(r * 2).astype(np.uint8)

    days = [np.asarray(raw.train_day), np.asarray(raw.qual_day)]
    first = min((int(d.min()) for d in days if d.size), default=0)
    epoch = first if raw.epoch is None else min(raw.epoch, first)
    last = max((int(d.max()) for d in days if d.size), default=epoch)
    if last - epoch >= 1 << kernels.DAY_BITS:
        raise DataFormatError(f"dates span {last - epoch} days; at most {1 << kernels.DAY_BITS} are supported")
    # Days since epoch fit int16 (checked above); the reader's int16 training column is reused.
    day, qual_day = (np.subtract(d, epoch, out=d if k == 0 and d.dtype == np.int16 and d.flags.writeable
                                 else np.empty(d.size, np.int16), casting="unsafe") for k, d in enumerate(days))
    del days, r

    # The readers' int32 id columns become the dense ids in place (0.8 GB at Netflix scale).
    user_ids, (user, probe_user, qual_user) = _dense([raw.train_user, raw.probe_user, raw.qual_user], True)
    runs = raw.train_item if isinstance(raw.train_item, Runs) else None
    item_ids, (item, probe_item, qual_item) = _dense(
        [runs.values if runs else raw.train_item, raw.probe_item, raw.qual_item], True)
    n_users, n_items = len(user_ids), len(item_ids)
    raw.train_user = raw.train_item = raw.train_rating = raw.train_day = None

    # One counting sort puts the rows in user order, each user's rows then in item order
    # (already so for files listed movie by movie), which finds repeated pairs. Probe and
    # qualifying pairs, sorted the same way, are then matched in one walk along each
    # user's items.
    user_counts = _thread_counts(user, n_users)
    user_indptr = _offsets(user_counts.sum(0))
    sorted_item = np.empty(len(user), np.int32)
    kernels.sort_by_user(user, user_counts, item, rating_x2, day, user_indptr, sorted_item,
                         np.empty(len(user), np.uint32), runs.starts if runs else None)
    item, user = sorted_item, None  # the users are the offsets now
    with ThreadPoolExecutor(3) as pool:  # three single-threaded loops at once
        dup = pool.submit(kernels.sort_segments, user_indptr, item, rating_x2, day)
        probe = pool.submit(_order_pairs, probe_user, probe_item, n_users)
        qual = pool.submit(_order_pairs, qual_user, qual_item, n_users)
        dup = dup.result()
        if writer is not None and dup < 0:  # final from here on: written while the rest is built
            for name, col in (("item", item), ("rating_x2", rating_x2), ("day", day)):
                writer.put(name, col)
        (p_indptr, p_order, p_dup), (q_indptr, q_order, q_dup) = probe.result(), qual.result()
    if dup >= 0:
        u = np.searchsorted(user_indptr, dup, side="right") - 1
        raise DataFormatError(
            f"user {user_ids[u]} rated item {item_ids[item[dup]]} more than once in the training data; "
            f"each (user, item) pair may occur once"
        )
    if p_dup >= 0:
        raise DataFormatError(f"{_where(raw, 'probe', p_dup)}: user {raw.probe_user[p_dup]} and movie "
                              f"{raw.probe_item[p_dup]} are listed more than once")
    if q_dup >= 0:
        raise DataFormatError(f"{_where(raw, 'qual', q_dup)}: user {raw.qual_user[q_dup]} and movie "
                              f"{raw.qual_item[q_dup]} are listed more than once; each qualifying pair may "
                              f"occur once")
    probe_rows = np.empty(len(probe_user), np.int64)
    q_rows = np.empty(len(qual_user), np.int64)
    kernels.in_threads(kernels.match_pairs, kernels.group_cuts(user_indptr), user_indptr, item,
                       p_indptr, p_order, probe_item, q_indptr, q_order, qual_item, probe_rows, q_rows)
    if (probe_rows < 0).any():
        k = int(np.argmax(probe_rows < 0))
        raise DataFormatError(
            f"{_where(raw, 'probe', k)}: user {raw.probe_user[k]} and movie {raw.probe_item[k]} are "
            f"not in the training set; every probe pair must have its rating in training_set"
        )
    if (q_rows >= 0).any():
        k = int(np.argmax(q_rows >= 0))
        raise DataFormatError(
            f"{_where(raw, 'qual', k)}: user {raw.qual_user[k]} and movie {raw.qual_item[k]} also "
            f"have a rating in the training set; qualifying pairs must be withheld from it"
        )
    n_q = len(qual_user)
    qual_rating = (np.full(n_q, np.nan, np.float32) if raw.qual_rating is None
                   else np.asarray(raw.qual_rating, np.float32))
    qual_part = np.full(n_q, -1, np.int8) if raw.qual_part is None else np.asarray(raw.qual_part, np.int8)

    titles = raw.titles or {}
    item_title = np.array([titles.get(_py(i), (0, ""))[1] for i in item_ids]) if titles else np.full(n_items, "")
    item_year = np.array([titles.get(_py(i), (0, ""))[0] for i in item_ids], np.int16) if titles else np.zeros(n_items, np.int16)

    y, m, d = civil_from_days(np.array([epoch]))
    meta = dict(raw.meta)
    meta.update(
        epoch=int(epoch),
        epoch_date=f"{int(y[0]):04d}-{int(m[0]):02d}-{int(d[0]):02d}",
        rating_scale=[float(lo), float(hi)],
    )
    return PrizeData(
        item=item, rating_x2=rating_x2, day=day,
        probe_rows=probe_rows, qual_user=qual_user, qual_item=qual_item, qual_day=qual_day,
        qual_rating=qual_rating, qual_part=qual_part, user_ids=user_ids, item_ids=item_ids,
        item_title=item_title.astype(str), item_year=item_year,
        user_indptr=user_indptr, qual_indptr=q_indptr, qual_by_user=q_order, meta=meta,
    )


def _py(x):
    return x.item() if hasattr(x, "item") else x

