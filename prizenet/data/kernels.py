"""Compiled (numba) loops of the data layer: the training-line tokenizer and the index build.

At 10^8 ratings every whole-array numpy pass costs a fresh temporary of 0.4-0.8 GB and a
trip through memory; the Netflix layout's cache build took 50 s that way (97.6M ratings,
two cores), against about 8 s with these loops. Each does its job in one pass, releases
the GIL (``nogil``) so that several threads run it at once, and is compiled once into
numba's on-disk cache (``cache=True``).

* :func:`parse_blocks` tokenizes ``MovieID:`` blocks of ``CustomerID,Rating,YYYY-MM-DD``
  lines (or qualifying.txt's and probe.txt's shorter ones; a ``\\r`` before each ``\\n``
  is allowed), checking every byte, and stops at the first malformed line; the caller
  names its file and line.
* :func:`group_by_user`, :func:`sort_segments`, :func:`order_pairs` and
  :func:`match_pairs` build the user-ordered index and N(u), find the probe rows and
  check the qualifying pairs with counting sorts and merges instead of comparison sorts
  and searches over 10^8 keys.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .fastio import COLON, COMMA, CR, DASH, NL

THREADS = max(1, min(os.cpu_count() or 1, 8))

# parse_blocks' kinds of body line (fastio.FORMS: "train", "qual", "probe") and error codes
TRAIN, QUAL, PROBE = 0, 1, 2
OK, MALFORMED, OUT_OF_SCALE, NO_HEADER, DATE_RANGE = 0, 1, 2, 3, 4
# The movie of lines before a segment's first header: none (an error) or the previous
# segment's (a file cut between two reads; the caller fills it in).
NO_MOVIE, INHERIT = -1, -2
INVALID_DATE = np.iinfo(np.int32).min  # fastio's date table marks Feb 30 and the like so


@numba.njit(nogil=True, cache=True)
def newlines(buf, start, end):
    n = 0
    for i in range(start, end):
        n += buf[i] == NL
    return n


@numba.njit(nogil=True, cache=True)
def _digit(c):
    return 48 <= c <= 57


@numba.njit(nogil=True, cache=True)
def parse_blocks(buf, seg_start, seg_end, seg_movie, seg_line, kind, rmin, rmax, dates, year0,
                 movie, customer, rating, day, line, out0):
    """Parse the segments ``buf[seg_start[k]:seg_end[k]]`` (whole lines, each segment ending
    in a newline, the buffer padded with newlines after the last) into the output columns
    from row ``out0``. ``kind`` is TRAIN, QUAL or PROBE (fastio.FORMS has their forms);
    ``rating`` (TRAIN), ``day`` (TRAIN, QUAL) and ``line`` (1-based line numbers, when it
    is not empty) are written where they apply.

    ``seg_movie[k]`` is NO_MOVIE when segment k starts a file (body lines before a header
    are an error) or INHERIT when it continues the previous one (its rows before the first
    header get movie INHERIT; the caller knows the movie); ``seg_line[k]`` counts the file's lines before
    it. ``dates`` maps (year - year0, month, day) to days since 1970, or to INVALID_DATE
    for dates that do not exist (fastio's table). Returns (rows written, error code, byte
    offset and line number of the bad line or -1, movie at the end).
    """
    w = out0
    cur = NO_MOVIE
    keep_lines = len(line) > 0
    for k in range(len(seg_start)):
        i = seg_start[k]
        end = seg_end[k]
        cur = seg_movie[k]
        ln = seg_line[k]
        while i < end:
            s = i
            ln += 1
            v = 0
            nd = 0
            c = buf[i]
            while _digit(c):
                v = v * 10 + (c - 48)
                nd += 1
                i += 1
                c = buf[i]
            if nd == 0:  # an empty line (LF or CRLF), else malformed
                if c == NL:
                    i += 1
                    continue
                if c == CR and buf[i + 1] == NL:
                    i += 2
                    continue
                return w - out0, MALFORMED, s, ln, cur
            if nd > 9:
                return w - out0, MALFORMED, s, ln, cur
            if c == COLON:  # "MovieID:"
                i += 1
                if buf[i] == CR:
                    i += 1
                if buf[i] != NL:
                    return w - out0, MALFORMED, s, ln, cur
                i += 1
                cur = v
                continue
            r = 0
            dv = 0
            if kind != PROBE:
                if kind == TRAIN:  # ",R"
                    if not (c == COMMA and _digit(buf[i + 1])):
                        return w - out0, MALFORMED, s, ln, cur
                    r = buf[i + 1] - 48
                    i += 2
                    c = buf[i]
                p = i + 1  # ",YYYY-MM-DD": fixed width
                if not (c == COMMA and _digit(buf[p]) and _digit(buf[p + 1]) and _digit(buf[p + 2])
                        and _digit(buf[p + 3]) and buf[p + 4] == DASH and _digit(buf[p + 5])
                        and _digit(buf[p + 6]) and buf[p + 7] == DASH and _digit(buf[p + 8])
                        and _digit(buf[p + 9])):
                    return w - out0, MALFORMED, s, ln, cur
                i = p + 10
                y = (buf[p] - 48) * 1000 + (buf[p + 1] - 48) * 100 + (buf[p + 2] - 48) * 10 + (buf[p + 3] - 48)
                m = (buf[p + 5] - 48) * 10 + (buf[p + 6] - 48)
                d = (buf[p + 8] - 48) * 10 + (buf[p + 9] - 48)
                slot = ((y - year0) * 12 + m - 1) * 31 + d - 1
                if y < year0 or m < 1 or m > 12 or d < 1 or d > 31 or slot >= len(dates) or dates[slot] == INVALID_DATE:
                    return w - out0, MALFORMED, s, ln, cur
                dv = dates[slot]
                if dv < -32768 or dv > 32767:  # day is int16: 1880-04-15 to 2059-09-18
                    return w - out0, DATE_RANGE, s, ln, cur
            if buf[i] == CR:
                i += 1
            if buf[i] != NL:
                return w - out0, MALFORMED, s, ln, cur
            i += 1
            if kind == TRAIN and (r < rmin or r > rmax):
                return w - out0, OUT_OF_SCALE, s, ln, cur
            if cur == NO_MOVIE:
                return w - out0, NO_HEADER, s, ln, cur
            movie[w] = cur
            customer[w] = v
            if kind == TRAIN:
                rating[w] = r
            if kind != PROBE:
                day[w] = dv
            if keep_lines:
                line[w] = ln
            w += 1
    return w - out0, OK, -1, -1, cur


def in_threads(kernel, cuts, *args) -> None:
    """``kernel(*args, lo, hi)`` for the ranges between consecutive ``cuts``, one thread
    each (the kernels release the GIL and write disjoint parts of their outputs)."""
    cuts = [int(c) for c in cuts]
    ranges = [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
    if len(ranges) <= 1:
        for lo, hi in ranges:
            kernel(*args, lo, hi)
        return
    with ThreadPoolExecutor(len(ranges)) as pool:
        for f in [pool.submit(kernel, *args, lo, hi) for lo, hi in ranges]:
            f.result()


def even_cuts(n: int, parts: int = THREADS) -> np.ndarray:
    return np.linspace(0, n, parts + 1).astype(np.int64)


def group_cuts(offsets: np.ndarray) -> np.ndarray:
    """Cuts of the groups whose rows start at ``offsets`` (CSR offsets, last = row count)
    into THREADS ranges of about equal rows, for :func:`in_threads`."""
    cuts = np.searchsorted(offsets, even_cuts(int(offsets[-1])))
    cuts[0], cuts[-1] = 0, len(offsets) - 1
    return np.unique(cuts)


@numba.njit(nogil=True, cache=True)
def id_range(raw):
    """(min, max) of a non-empty integer array, in one pass."""
    lo = hi = raw[0]
    for x in raw:
        lo = min(lo, x)
        hi = max(hi, x)
    return lo, hi


@numba.njit(nogil=True, cache=True)
def mark(raw, present):
    for x in raw:
        present[x] = True


@numba.njit(nogil=True, cache=True)
def count(ids, cuts, counts, lo, hi):
    """Occurrences of each id in ``ids[lo:hi]`` into the row of ``counts`` of the range
    that starts at ``lo`` in ``cuts`` (a bincount per thread, summed by the caller)."""
    c = counts[np.searchsorted(cuts, lo, side="right") - 1]
    for k in range(lo, hi):
        c[ids[k]] += 1


@numba.njit(nogil=True, cache=True)
def map_ids(raw, lut, out, lo, hi):
    """``out[k] = lut[raw[k]]`` for k in [lo, hi) (``out`` may be ``raw``: in place)."""
    for k in range(lo, hi):
        out[k] = lut[raw[k]]


BUCKET_BITS = 11  # group_by_user's first pass: 2,048 users a bucket


def group_by_user(user, item, indptr, nu_indptr, by_user, nu_items, run_starts=None) -> None:
    """Counting sort of the rows by user, stable: ``by_user`` lists each user's rows in row
    order, and ``nu_items`` gets their items at the head of the user's N(u) slots.
    ``item`` is one per row, or with ``run_starts`` one per run of rows (row
    ``run_starts[j]`` on; the Netflix files' movie column is 17,770 such runs).

    Two passes, as a radix sort, each split over threads: rows go to buckets of
    2**BUCKET_BITS users first (a few hundred write streams, which the caches absorb;
    each thread takes a range of rows and its own part of every bucket), then each
    bucket, now a few MB, to its users (each thread a range of buckets). One pass
    straight to 480,189 users' slots misses the cache on every write and takes twice as
    long.
    """
    n, n_users = len(user), len(indptr) - 1
    first = np.minimum(np.arange(0, n_users + (1 << BUCKET_BITS), 1 << BUCKET_BITS), n_users)  # bucket starts
    row_cuts = even_cuts(n)
    counts = np.zeros((len(row_cuts) - 1, len(first) - 1), np.int64)
    in_threads(_bucket_counts, row_cuts, user, row_cuts, counts)
    # Thread t's rows of bucket b go after those of threads before it: the sort stays stable.
    cur = indptr[first[:-1]] + np.cumsum(counts, axis=0) - counts
    park = nu_indptr[first[:-1]] - indptr[first[:-1]]  # items wait at the same rank in N(u)
    if run_starts is None:
        run_starts = np.zeros(0, np.int64)
    in_threads(_to_buckets, row_cuts, user, item, run_starts, row_cuts, cur, park, by_user, nu_items)
    in_threads(_to_users, group_cuts(indptr[first]), user, indptr, nu_indptr, first, park, by_user, nu_items)


@numba.njit(nogil=True, cache=True)
def _bucket_counts(user, cuts, counts, lo, hi):
    c = counts[np.searchsorted(cuts, lo, side="right") - 1]
    for r in range(lo, hi):
        c[user[r] >> BUCKET_BITS] += 1


@numba.njit(nogil=True, cache=True)
def _to_buckets(user, item, run_starts, cuts, cur, park, by_user, nu_items, lo, hi):
    """Pass 1 for rows [lo, hi): each row's id to its bucket's range of by_user, and its
    item to the same rank in the bucket's range of nu_items (which has at least as many
    slots), where pass 2 reads it back."""
    c = cur[np.searchsorted(cuts, lo, side="right") - 1]
    runs = len(run_starts) > 0
    j = np.searchsorted(run_starts, lo, side="right") - 1 if runs else 0
    next_run = run_starts[j + 1] if runs and j + 1 < len(run_starts) else hi
    for r in range(lo, hi):
        if runs:
            while r >= next_run:
                j += 1
                next_run = run_starts[j + 1] if j + 1 < len(run_starts) else hi
        b = user[r] >> BUCKET_BITS
        k = c[b]
        c[b] = k + 1
        by_user[k] = r
        nu_items[k + park[b]] = item[j] if runs else item[r]


@numba.njit(nogil=True, cache=True)
def _to_users(user, indptr, nu_indptr, first, park, by_user, nu_items, b_lo, b_hi):
    """Pass 2 for buckets [b_lo, b_hi): each bucket's rows to their users; the writes stay
    inside the bucket's few MB."""
    big = 0
    for b in range(b_lo, b_hi):
        big = max(big, indptr[first[b + 1]] - indptr[first[b]])
    rows = np.empty(big, by_user.dtype)
    items = np.empty(big, nu_items.dtype)
    cursor = indptr[:-1].copy()
    shift = nu_indptr[:-1] - indptr[:-1]
    for b in range(b_lo, b_hi):
        a = indptr[first[b]]
        m = indptr[first[b + 1]] - a
        rows[:m] = by_user[a:a + m]
        items[:m] = nu_items[a + park[b]:a + park[b] + m]
        for j in range(m):
            r = rows[j]
            u = user[r]
            k = cursor[u]
            cursor[u] = k + 1
            by_user[k] = r
            nu_items[k + shift[u]] = items[j]


@numba.njit(nogil=True, cache=True)
def sort_segments(indptr, nu_indptr, by_user, nu_items):
    """Order each user's rows by item (files listed item by item are already in order:
    then this is one check per row). Returns the first row of a repeated (user, item)
    pair, or -1."""
    for u in range(len(indptr) - 1):
        a, b = indptr[u], indptr[u + 1]
        na = nu_indptr[u]
        items = nu_items[na:na + b - a]
        ordered = True
        for j in range(1, b - a):
            if items[j] <= items[j - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(items, kind="mergesort")
            by_user[a:b] = by_user[a:b][order]
            items[:] = items[order]
            for j in range(1, b - a):
                if items[j] == items[j - 1]:
                    return by_user[a + j]
    return -1


@numba.njit(nogil=True, cache=True)
def order_pairs(users, items, indptr):
    """The order that sorts (user, item) pairs by user, then item: a counting sort by user
    (``indptr`` from the pairs' user counts) whose segments are then put in item order
    (a check only for files listed movie by movie). Returns (order, the position of a
    repeated pair or -1)."""
    order = np.empty(len(users), np.int64)
    cursor = indptr[:-1].copy()
    for k in range(len(users)):
        u = users[k]
        order[cursor[u]] = k
        cursor[u] += 1
    dup = -1
    for u in range(len(indptr) - 1):
        a, b = indptr[u], indptr[u + 1]
        for j in range(a + 1, b):
            if items[order[j]] <= items[order[j - 1]]:
                seg = order[a:b].copy()
                order[a:b] = seg[np.argsort(items[seg], kind="mergesort")]
                break
        for j in range(a + 1, b):
            if items[order[j]] == items[order[j - 1]] and dup < 0:
                dup = order[j]
    return order, dup


@numba.njit(nogil=True, cache=True)
def match_pairs(indptr, nu_indptr, nu_items, by_user, p_indptr, p_order, p_items, q_indptr, q_order, q_items,
                probe_rows, q_rows, ulo, uhi):
    """For users [ulo, uhi), one walk along each user's item-ordered training items and
    their probe and qualifying pairs (in ``order_pairs`` order): ``probe_rows`` and
    ``q_rows`` get the training row of each pair, or -1, and the user's qualifying items
    fill the tail of its N(u) slots."""
    for u in range(ulo, uhi):
        a = nu_indptr[u]
        n = indptr[u + 1] - indptr[u]
        j = 0
        for k in range(p_indptr[u], p_indptr[u + 1]):
            x = p_items[p_order[k]]
            while j < n and nu_items[a + j] < x:
                j += 1
            probe_rows[p_order[k]] = by_user[indptr[u] + j] if j < n and nu_items[a + j] == x else -1
        j = 0
        tail = a + n
        for k in range(q_indptr[u], q_indptr[u + 1]):
            x = q_items[q_order[k]]
            while j < n and nu_items[a + j] < x:
                j += 1
            q_rows[q_order[k]] = by_user[indptr[u] + j] if j < n and nu_items[a + j] == x else -1
            nu_items[tail + k - q_indptr[u]] = x


@numba.njit(nogil=True, cache=True)
def last_newline(buf, start, end):
    """Index after the last newline in ``buf[start:end]``, or ``start`` when there is none."""
    for i in range(end - 1, start - 1, -1):
        if buf[i] == NL:
            return i + 1
    return start
