"""Compiled (numba) loops of the data layer: the training-line tokenizer and the index build.

At 10^8 ratings every whole-array numpy pass costs a fresh temporary of 0.4-0.8 GB and a
trip through memory; the Netflix layout's cache build was 50 s that way, 6x the time
pandas' C parser takes on plain triples. These loops do each job in one pass, release the
GIL (``nogil``) so that the reader runs them on every core, and are compiled once into
numba's on-disk cache (``cache=True``).

* :func:`parse_blocks` tokenizes ``MovieID:`` blocks of ``CustomerID,Rating,YYYY-MM-DD``
  lines (or qualifying.txt's and probe.txt's shorter ones; a ``\\r`` before each ``\\n``
  is allowed), checking every byte, and stops at the first malformed line; the caller
  names its file and line.
* :func:`group_by_user`, :func:`sort_segments`, :func:`find_pairs` and :func:`fill_tail`
  build the user-ordered index and N(u) with a counting sort instead of a comparison sort
  of 10^8 keys.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

THREADS = max(1, min(os.cpu_count() or 1, 8))

NL, CR, COLON, COMMA, DASH = 10, 13, 58, 44, 45

# parse_blocks' kinds of body line (fastio.FORMS: "train", "qual", "probe") and error codes
TRAIN, QUAL, PROBE = 0, 1, 2
OK, MALFORMED, OUT_OF_SCALE, NO_HEADER = 0, 1, 2, 3
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
    are an error) or INHERIT when it continues the previous one (its leading rows get movie
    INHERIT; the caller knows the movie); ``seg_line[k]`` counts the file's lines before
    it. ``dates`` maps (year - year0, month, day) to days since 1970, or to a negative
    sentinel for dates that do not exist (fastio's table). Returns (rows written, error code, byte offset and line number of the bad line or
    -1, leading INHERIT rows, movie at the end).
    """
    w = out0
    lead = 0
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
                return w - out0, MALFORMED, s, ln, lead, cur
            if nd > 9:
                return w - out0, MALFORMED, s, ln, lead, cur
            if c == COLON:  # "MovieID:"
                i += 1
                if buf[i] == CR:
                    i += 1
                if buf[i] != NL:
                    return w - out0, MALFORMED, s, ln, lead, cur
                i += 1
                cur = v
                continue
            r = 0
            dv = 0
            if kind != PROBE:
                if kind == TRAIN:  # ",R"
                    if not (c == COMMA and _digit(buf[i + 1])):
                        return w - out0, MALFORMED, s, ln, lead, cur
                    r = buf[i + 1] - 48
                    i += 2
                    c = buf[i]
                p = i + 1  # ",YYYY-MM-DD": fixed width
                if not (c == COMMA and _digit(buf[p]) and _digit(buf[p + 1]) and _digit(buf[p + 2])
                        and _digit(buf[p + 3]) and buf[p + 4] == DASH and _digit(buf[p + 5])
                        and _digit(buf[p + 6]) and buf[p + 7] == DASH and _digit(buf[p + 8])
                        and _digit(buf[p + 9])):
                    return w - out0, MALFORMED, s, ln, lead, cur
                i = p + 10
                y = (buf[p] - 48) * 1000 + (buf[p + 1] - 48) * 100 + (buf[p + 2] - 48) * 10 + (buf[p + 3] - 48)
                m = (buf[p + 5] - 48) * 10 + (buf[p + 6] - 48)
                d = (buf[p + 8] - 48) * 10 + (buf[p + 9] - 48)
                slot = ((y - year0) * 12 + m - 1) * 31 + d - 1
                if y < year0 or m < 1 or m > 12 or d < 1 or d > 31 or slot >= len(dates) or dates[slot] == INVALID_DATE:
                    return w - out0, MALFORMED, s, ln, lead, cur
                dv = dates[slot]
            if buf[i] == CR:
                i += 1
            if buf[i] != NL:
                return w - out0, MALFORMED, s, ln, lead, cur
            i += 1
            if kind == TRAIN and (r < rmin or r > rmax):
                return w - out0, OUT_OF_SCALE, s, ln, lead, cur
            if cur == NO_MOVIE:
                return w - out0, NO_HEADER, s, ln, lead, cur
            if cur == INHERIT:
                lead += 1
            movie[w] = cur
            customer[w] = v
            if kind == TRAIN:
                rating[w] = r
            if kind != PROBE:
                day[w] = dv
            if keep_lines:
                line[w] = ln
            w += 1
    return w - out0, OK, -1, -1, lead, cur


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
def count(ids, out):
    """``out[i]`` += occurrences of i in ``ids`` (np.bincount without its extra passes)."""
    for x in ids:
        out[x] += 1


@numba.njit(nogil=True, cache=True)
def map_ids(raw, lut, out, lo, hi):
    """``out[k] = lut[raw[k]]`` for k in [lo, hi) (``out`` may be ``raw``: in place)."""
    for k in range(lo, hi):
        out[k] = lut[raw[k]]


BUCKET_BITS = 11  # group_by_user's first pass: 2,048 users a bucket


@numba.njit(nogil=True, cache=True)
def group_by_user(user, item, indptr, nu_indptr, by_user, nu_items, ulo, uhi):
    """Counting sort of the rows of users [ulo, uhi) by user, stable: ``by_user`` lists each
    user's rows in row order, and ``nu_items`` gets their items at the head of the user's
    N(u) slots. Threads given disjoint user ranges (multiples of 2**BUCKET_BITS) each scan
    every row and write only their own users' slots.

    Two passes, as a radix sort: rows go to buckets of 2**BUCKET_BITS users first (a few
    hundred write streams, which the caches absorb), then each bucket, now a few MB, to its
    users. One pass straight to 480,189 users' slots misses the cache on every write and
    takes twice as long.
    """
    n_users = len(indptr) - 1
    b0 = ulo >> BUCKET_BITS
    nb = ((uhi - 1) >> BUCKET_BITS) + 1 - b0
    cur = np.empty(nb, np.int64)
    for b in range(nb):
        cur[b] = indptr[min((b + b0) << BUCKET_BITS, n_users)]
    # Pass 1: row ids to their bucket's range of by_user, in row order.
    shift = nu_indptr[:-1] - indptr[:-1]
    for r in range(len(user)):
        u = user[r]
        if u < ulo or u >= uhi:
            continue
        b = (u >> BUCKET_BITS) - b0
        k = cur[b]
        cur[b] = k + 1
        by_user[k] = r
    big = 0
    for b in range(nb):
        a = indptr[min((b + b0) << BUCKET_BITS, n_users)]
        e = indptr[min((b + b0 + 1) << BUCKET_BITS, n_users)]
        big = max(big, e - a)
    tmp = np.empty(big, by_user.dtype)
    cursor = indptr[:-1].copy()
    # Pass 2: within each bucket, rows to their users (reads of user and item by row
    # are random, but the writes stay inside the bucket's few MB).
    for b in range(nb):
        a = indptr[min((b + b0) << BUCKET_BITS, n_users)]
        e = indptr[min((b + b0 + 1) << BUCKET_BITS, n_users)]
        tmp[:e - a] = by_user[a:e]
        for j in range(e - a):
            r = tmp[j]
            u = user[r]
            k = cursor[u]
            cursor[u] = k + 1
            by_user[k] = r
            nu_items[k + shift[u]] = item[r]


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
def find_pairs(indptr, nu_indptr, nu_items, by_user, users, items, out, lo_k, hi_k):
    """``out[k]``: the training row of pair (users[k], items[k]), or -1, for k in [lo_k,
    hi_k): a binary search in the user's item-ordered rows."""
    for k in range(lo_k, hi_k):
        u = users[k]
        a = nu_indptr[u]
        lo, hi = a, a + indptr[u + 1] - indptr[u]
        x = items[k]
        while lo < hi:
            mid = (lo + hi) >> 1
            if nu_items[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo < a + indptr[u + 1] - indptr[u] and nu_items[lo] == x:
            out[k] = by_user[indptr[u] + lo - a]
        else:
            out[k] = -1


@numba.njit(nogil=True, cache=True)
def fill_tail(indptr, nu_indptr, nu_items, users, items):
    """Append ``items`` (in the given order) after each user's training items in N(u)."""
    cursor = nu_indptr[:-1] + (indptr[1:] - indptr[:-1])
    for k in range(len(users)):
        u = users[k]
        nu_items[cursor[u]] = items[k]
        cursor[u] += 1


@numba.njit(nogil=True, cache=True)
def last_newline(buf, start, end):
    """Index after the last newline in ``buf[start:end]``, or ``start`` when there is none."""
    for i in range(end - 1, start - 1, -1):
        if buf[i] == NL:
            return i + 1
    return start
