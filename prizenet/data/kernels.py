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
* :func:`sort_by_user`, :func:`sort_segments`, :func:`order_pairs` and
  :func:`match_pairs` put the training rows in user, then item order, find the probe
  rows and check the qualifying pairs with counting sorts and merges instead of
  comparison sorts and searches over 10^8 keys; :func:`implicit_items` lays out N(u)
  and :func:`group_rows` groups rows by item.
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


def on_slices(kernel, array, *args) -> list:
    """``kernel(slice, *args)`` for THREADS slices of ``array``, one thread each: the
    results in slice order."""
    cuts = even_cuts(len(array))
    slices = [array[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    if len(slices) <= 1:
        return [kernel(sl, *args) for sl in slices]
    with ThreadPoolExecutor(len(slices)) as pool:
        return list(pool.map(lambda sl: kernel(sl, *args), slices))


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
    """``present[x] = True`` for each x in ``raw`` (threads may mark the same table: they
    only ever write True)."""
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


@numba.njit(nogil=True, cache=True)
def last_newline(buf, start, end):
    """Index after the last newline in ``buf[start:end]``, or ``start`` when there is none."""
    for i in range(end - 1, start - 1, -1):
        if buf[i] == NL:
            return i + 1
    return start


BUCKET_BITS = 11  # sort_by_user's first pass: up to 2,048 users a bucket
DAY_BITS = 15  # days since the epoch, 0..32767 (prize.build checks the span)


def sort_by_user(user, counts, item, rating, day, indptr, out_item, packed, run_starts=None) -> None:
    """Counting sort of the training columns by user, stable (rows listed movie by movie
    come out in item order within each user).

    ``user`` holds dense ids; ``counts[t, u]`` counts user u's rows in thread range t of
    ``even_cuts(len(user), len(counts))`` and ``indptr`` their CSR offsets. ``user``,
    ``rating`` and ``day`` are read in row order; ``rating`` and ``day`` are then
    overwritten with the sorted columns, and ``item`` (one per row, or with ``run_starts``
    one per run of rows from row ``run_starts[j]`` on: the Netflix files' movie column is
    17,770 such runs) is written sorted into ``out_item``. The sorted users are ``indptr``
    itself. ``packed`` (uint32, one per row) is scratch.

    Two passes, as a radix sort, each split over threads. Pass 1 sends each row to its
    bucket of up to 2**BUCKET_BITS users (a few hundred write streams, which the caches
    absorb; each thread takes a range of rows and its own part of every bucket): its item
    to ``out_item``, and its user-in-bucket, rating and day packed into one uint32 of
    ``packed``, at the same place. Pass 2 sends each bucket, now a few MB, to its users
    (each thread a range of buckets). One pass straight to 480,189 users' places misses
    the cache on every write and takes twice as long.
    """
    n, n_users = len(user), len(indptr) - 1
    rating_bits = max(1, int(rating.max(initial=0)).bit_length())
    user_bits = min(BUCKET_BITS, 32 - DAY_BITS - rating_bits)
    first = np.minimum(np.arange(0, n_users + (1 << user_bits), 1 << user_bits), n_users)  # bucket starts
    row_cuts = even_cuts(n, len(counts))
    cum = np.zeros((len(counts), n_users + 1), np.int64)
    np.cumsum(counts, axis=1, out=cum[:, 1:])
    in_bucket = cum[:, first[1:]] - cum[:, first[:-1]]  # rows of each thread range in each bucket
    # Thread t's rows of bucket b go after those of threads before it: the sort stays stable.
    cur = indptr[first[:-1]] + np.cumsum(in_bucket, axis=0) - in_bucket
    if run_starts is None:
        run_starts = np.zeros(0, np.int64)
    in_threads(_to_buckets, row_cuts, user, item, run_starts, rating, day, user_bits, rating_bits, row_cuts,
               cur, out_item, packed)
    in_threads(_to_users, group_cuts(indptr[first]), indptr, first, user_bits, rating_bits, packed, out_item,
               rating, day)


@numba.njit(nogil=True, cache=True)
def _to_buckets(user, item, run_starts, rating, day, user_bits, rating_bits, cuts, cur, out_item, packed, lo, hi):
    """Pass 1 for rows [lo, hi)."""
    c = cur[np.searchsorted(cuts, lo, side="right") - 1]
    runs = len(run_starts) > 0
    j = np.searchsorted(run_starts, lo, side="right") - 1 if runs else 0
    next_run = run_starts[j + 1] if runs and j + 1 < len(run_starts) else hi
    mask = (1 << user_bits) - 1
    shift = DAY_BITS + rating_bits
    for r in range(lo, hi):
        if runs:
            while r >= next_run:
                j += 1
                next_run = run_starts[j + 1] if j + 1 < len(run_starts) else hi
        u = user[r]
        b = u >> user_bits
        k = c[b]
        c[b] = k + 1
        out_item[k] = item[j] if runs else item[r]
        packed[k] = (np.uint32(u & mask) << shift) | (np.uint32(rating[r]) << DAY_BITS) | np.uint32(day[r])


@numba.njit(nogil=True, cache=True)
def _to_users(indptr, first, user_bits, rating_bits, packed, out_item, rating, day, b_lo, b_hi):
    """Pass 2 for buckets [b_lo, b_hi); the writes stay inside the bucket's few MB."""
    big = 0
    for b in range(b_lo, b_hi):
        big = max(big, indptr[first[b + 1]] - indptr[first[b]])
    items = np.empty(big, out_item.dtype)
    packs = np.empty(big, packed.dtype)
    cursor = np.empty(1 << user_bits, np.int64)
    shift = DAY_BITS + rating_bits
    rating_mask = (1 << rating_bits) - 1
    day_mask = (1 << DAY_BITS) - 1
    for b in range(b_lo, b_hi):
        a = indptr[first[b]]
        m = indptr[first[b + 1]] - a
        items[:m] = out_item[a:a + m]
        packs[:m] = packed[a:a + m]
        for u in range(first[b], first[b + 1]):
            cursor[u - first[b]] = indptr[u]
        for j in range(m):
            p = packs[j]
            k = cursor[p >> shift]
            cursor[p >> shift] = k + 1
            out_item[k] = items[j]
            rating[k] = (p >> DAY_BITS) & rating_mask
            day[k] = p & day_mask


@numba.njit(nogil=True, cache=True)
def sort_segments(indptr, item, rating, day):
    """Order each user's rows by item, carrying rating and day (rows listed item by item
    are in order already: then this is one check per row). Returns the first row of a
    repeated (user, item) pair, or -1."""
    for u in range(len(indptr) - 1):
        a, b = indptr[u], indptr[u + 1]
        ordered = True
        for k in range(a + 1, b):
            if item[k] <= item[k - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(item[a:b], kind="mergesort")
            item[a:b] = item[a:b][order]
            rating[a:b] = rating[a:b][order]
            day[a:b] = day[a:b][order]
            for k in range(a + 1, b):
                if item[k] == item[k - 1]:
                    return k
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
def match_pairs(indptr, item, p_indptr, p_order, p_items, q_indptr, q_order, q_items, probe_rows, q_rows, ulo, uhi):
    """For users [ulo, uhi), one walk along each user's item-ordered training rows and
    their probe and qualifying pairs (in ``order_pairs`` order): ``probe_rows`` and
    ``q_rows`` get the training row of each pair, or -1."""
    for u in range(ulo, uhi):
        _match_user(item, indptr[u], indptr[u + 1], p_indptr[u], p_indptr[u + 1], p_order, p_items, probe_rows)
        _match_user(item, indptr[u], indptr[u + 1], q_indptr[u], q_indptr[u + 1], q_order, q_items, q_rows)


@numba.njit(nogil=True, cache=True)
def _match_user(item, a, b, k0, k1, order, items, rows):
    """Merge the pairs ``order[k0:k1]`` (item-ordered) into training rows [a, b)."""
    r = a
    for k in range(k0, k1):
        x = items[order[k]]
        while r < b and item[r] < x:
            r += 1
        rows[order[k]] = r if r < b and item[r] == x else -1


@numba.njit(nogil=True, cache=True)
def implicit_items(indptr, item, q_indptr, q_by_user, q_items, nu_items, ulo, uhi):
    """N(u) for users [ulo, uhi) into ``nu_items`` (offsets ``indptr + q_indptr``): the
    user's training items, then its qualifying ones."""
    for u in range(ulo, uhi):
        w = indptr[u] + q_indptr[u]
        for r in range(indptr[u], indptr[u + 1]):
            nu_items[w] = item[r]
            w += 1
        for k in range(q_indptr[u], q_indptr[u + 1]):
            nu_items[w] = q_items[q_by_user[k]]
            w += 1


def group_rows(rows, ids, n_groups):
    """``rows`` grouped by ``ids[rows]`` (a stable counting sort, each thread a range of
    ``rows``) and the groups' CSR offsets."""
    rows = np.asarray(rows, np.int64)
    cuts = even_cuts(len(rows))
    counts = np.zeros((len(cuts) - 1, n_groups), np.int64)
    in_threads(_count_rows, cuts, rows, ids, cuts, counts)
    indptr = np.zeros(n_groups + 1, np.int64)
    np.cumsum(counts.sum(0), out=indptr[1:])
    cur = indptr[:-1] + np.cumsum(counts, axis=0) - counts  # thread t after threads before it
    out = np.empty(len(rows), np.int64)
    in_threads(_scatter_rows, cuts, rows, ids, cuts, cur, out)
    return out, indptr


@numba.njit(nogil=True, cache=True)
def _count_rows(rows, ids, cuts, counts, lo, hi):
    c = counts[np.searchsorted(cuts, lo, side="right") - 1]
    for k in range(lo, hi):
        c[ids[rows[k]]] += 1


@numba.njit(nogil=True, cache=True)
def _scatter_rows(rows, ids, cuts, cur, out, lo, hi):
    c = cur[np.searchsorted(cuts, lo, side="right") - 1]
    for k in range(lo, hi):
        g = ids[rows[k]]
        out[c[g]] = rows[k]
        c[g] += 1
