"""The compiled data-layer loops against plain numpy references: the threaded reader, the
counting sorts and pair matching of build(), and the run-length movie column."""

import gzip
import io

import numpy as np
import pytest

import prizenet.data.netflix as nf
from prizenet.data import DataFormatError
from prizenet.data.fastio import body_lines, block_bytes, const_field, date_field, format_uint
from prizenet.data.prize import PrizeData, RawPrize, Runs, build


def movie_files(rng, n_files=12, per_file=(0, 40)):
    """Prize-format training files (one movie each, some empty), and their rows."""
    named, rows = {}, []
    for m in range(1, n_files + 1):
        n = int(rng.integers(*per_file))
        cust = rng.choice(np.arange(1, 10**7), n, replace=False)
        stars = rng.integers(1, 6, n)
        day = rng.integers(10000, 13000, n)
        if n:
            body, ends = body_lines([format_uint(cust), const_field(",", n),
                                     ((stars[:, None] + 48).astype(np.uint8), np.ones(n, np.int64)),
                                     const_field(",", n), date_field(day)])
            text = b"".join(block_bytes(np.full(n, m), body, ends))
        else:
            text = b"%d:\n" % m
        named[f"mv_{m:07d}.txt"] = text
        rows += [(m, c, s, d) for c, s, d in zip(cust, stars, day)]
    return named, np.array(rows, np.int64).reshape(-1, 4)


def read(named, **kw):
    cols, n = nf.read_blocks([(k, lambda t=t: io.BytesIO(t)) for k, t in named.items()],
                             sum(map(len, named.values())), **kw)
    return cols, n


@pytest.mark.parametrize("chunk, workers", [(1 << 20, 1), (64, 2), (97, 3), (40, 4)])
def test_reader_gives_file_order_however_files_are_cut_between_buffers(monkeypatch, chunk, workers):
    named, rows = movie_files(np.random.default_rng(0))
    named["mv_0000013.txt"] = b"13:\r\n7,2,2001-02-03\r\n\r\n8,4,2001-02-04"  # CRLF, blank line, no final newline
    rows = np.vstack([rows, [[13, 7, 2, 11356], [13, 8, 4, 11357]]])
    monkeypatch.setattr(nf, "CHUNK", chunk)  # cuts mid-line, right after headers, between files
    monkeypatch.setattr(nf, "WORKERS", workers)
    cols, n = read(named)
    assert n == 13
    got = np.stack([np.asarray(cols["movie"]), cols["customer"], cols["rating"], cols["day"]], 1)
    assert np.array_equal(got, rows)


def test_reader_error_is_the_first_bad_line_in_file_order(monkeypatch):
    named, _ = movie_files(np.random.default_rng(1), per_file=(20, 30))
    for name, bad in (("mv_0000004.txt", 5), ("mv_0000009.txt", 2)):  # two bad files; the first is named
        lines = named[name].split(b"\n")
        lines[bad - 1] = lines[bad - 1].replace(b",", b";", 1)
        named[name] = b"\n".join(lines)
    monkeypatch.setattr(nf, "CHUNK", 256)
    monkeypatch.setattr(nf, "WORKERS", 3)
    with pytest.raises(DataFormatError, match=r"mv_0000004\.txt, line 5: expected"):
        read(named)


def test_reader_refuses_a_line_longer_than_its_buffer(monkeypatch):
    monkeypatch.setattr(nf, "CHUNK", 64)
    with pytest.raises(DataFormatError, match=r"f\.txt, line 2: a line longer than"):
        read({"f.txt": b"1:\n" + b"1" * 200 + b",3,2005-01-01\n"})


def test_gzipped_and_plain_files_read_alike(tmp_path):
    named, _ = movie_files(np.random.default_rng(2))
    for name, text in named.items():
        (tmp_path / name).write_bytes(text)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as g:
            g.write(text)
    plain, _ = read(named)
    for k in range(1, 13):
        (tmp_path / f"mv_{k:07d}.txt").unlink()
    gz, n = nf.read_blocks(*nf._movie_files(tmp_path))  # its size hint is a guess: the columns grow
    assert n == 12
    for col in ("customer", "rating", "day"):
        assert np.array_equal(gz[col], plain[col])
    assert np.array_equal(np.asarray(gz["movie"]), np.asarray(plain["movie"]))


def test_runs_expand_and_index_like_the_array():
    runs = Runs(np.array([0, 3, 3, 7]), np.array([5, 6, 7, 8], np.int32), 10)
    full = np.array([5, 5, 5, 7, 7, 7, 7, 8, 8, 8], np.int32)
    assert np.array_equal(np.asarray(runs), full) and len(runs) == 10
    for lo in range(11):
        for hi in range(lo, 11):
            assert np.array_equal(runs.expand(lo, hi), full[lo:hi])
    assert [runs[k] for k in range(10)] == full.tolist() and runs[-1] == 8
    with pytest.raises(IndexError):
        runs[10]


def raw_prize(rng, n_users=300, n_items=50, n=4000, sorted_items=False):
    """Random distinct (user, item) ratings, raw ids with gaps, rows in random order."""
    keys = rng.choice(n_users * n_items, n, replace=False)
    if sorted_items:  # the Netflix files' order: movie by movie
        keys = keys[np.argsort(keys % n_items, kind="stable")]
    user, item = keys // n_items * 7 + 3, keys % n_items * 2 + 1
    probe = rng.choice(n, 200, replace=False)
    free = np.setdiff1d(np.arange(n_users * n_items), keys)
    qual = rng.choice(free, 300, replace=False)
    return RawPrize(
        train_user=user.astype(np.int32), train_item=item.astype(np.int32),
        train_rating=rng.integers(1, 6, n).astype(np.uint8), train_day=rng.integers(10000, 11000, n).astype(np.int16),
        probe_user=user[probe], probe_item=item[probe],
        qual_user=qual // n_items * 7 + 3, qual_item=qual % n_items * 2 + 1,
        qual_day=rng.integers(10000, 11000, 300).astype(np.int16),
    )


@pytest.mark.parametrize("sorted_items", [False, True])
def test_build_index_matches_a_sort_and_searches(sorted_items):
    raw = raw_prize(np.random.default_rng(3), sorted_items=sorted_items)
    user, item = raw.train_user.copy(), raw.train_item.copy()
    rating, day = raw.train_rating.copy(), raw.train_day.copy()
    probe = (raw.probe_user.copy(), raw.probe_item.copy())
    qual = (raw.qual_user.copy(), raw.qual_item.copy())
    first_day = min(day.min(), raw.qual_day.min())
    d = build(raw)
    order = np.lexsort((item, user))  # the rows come out by user, then item
    assert np.array_equal(d.user_ids[d.user], user[order]) and np.array_equal(d.item_ids[d.item], item[order])
    assert np.array_equal(d.rating_x2, 2 * rating[order]) and np.array_equal(d.day, day[order] - first_day)
    assert np.array_equal(d.user_indptr, np.concatenate([[0], np.cumsum(np.bincount(d.user, minlength=d.n_users))]))
    pairs = {(u, i): r for r, (u, i) in enumerate(zip(user[order], item[order]))}
    assert d.probe_rows.tolist() == [pairs[p] for p in zip(*probe)]
    qu, qi = (np.searchsorted(d.user_ids, qual[0]), np.searchsorted(d.item_ids, qual[1]))
    for u in range(d.n_users):
        expect = sorted(d.item[d.user == u]) + sorted(qi[qu == u])
        assert d.nu_items[d.nu_indptr[u]:d.nu_indptr[u + 1]].tolist() == expect


def test_user_sort_packs_wide_ratings_into_smaller_buckets():
    """Ratings of a 0-100 scale take 8 bits of the packed sort key, leaving 9 for the user
    in its bucket: 3,000 users then span six buckets, each thread a part of them."""
    rng = np.random.default_rng(6)
    raw = raw_prize(rng, n_users=3000, n_items=40, n=20000)
    raw.train_rating = rng.integers(0, 101, len(raw.train_user)).astype(np.uint8)
    raw.rating_scale = (0.0, 100.0)
    user, item, rating = raw.train_user.copy(), raw.train_item.copy(), raw.train_rating.copy()
    d = build(raw)
    order = np.lexsort((item, user))
    assert np.array_equal(d.user_ids[d.user], user[order]) and np.array_equal(d.item_ids[d.item], item[order])
    assert np.array_equal(d.rating_x2, 2 * rating[order])


def test_sparse_ids_take_the_sorting_path_and_build_the_same_index():
    """User ids too sparse for a lookup table (here 10^12 apart) are made dense by a sort
    instead; the index comes out the same."""
    table = build(raw_prize(np.random.default_rng(9)))
    raw = raw_prize(np.random.default_rng(9))
    for name in ("train_user", "probe_user", "qual_user"):
        setattr(raw, name, getattr(raw, name).astype(np.int64) * 10**12)
    sparse = build(raw)
    assert np.array_equal(sparse.user_ids, table.user_ids.astype(np.int64) * 10**12)
    for name in ("user", "item", "rating_x2", "day", "probe_rows", "qual_user", "nu_items"):
        assert np.array_equal(getattr(sparse, name), getattr(table, name)), name


def test_rows_by_item_is_a_stable_sort_by_item():
    d = build(raw_prize(np.random.default_rng(7)))
    rows = np.random.default_rng(8).permutation(d.n_ratings)[:1500]
    assert np.array_equal(d.rows_by_item(rows), rows[np.argsort(d.item[rows], kind="stable")])


def test_movie_runs_build_the_same_data_and_cache(tmp_path):
    rng = np.random.default_rng(4)
    plain = raw_prize(rng, sorted_items=True)
    runs = RawPrize(**{**plain.__dict__, "train_item": None})
    item = plain.train_item
    starts = np.flatnonzero(np.diff(item, prepend=-1))
    runs.train_item = Runs(starts, item[starts].copy(), len(item))
    plain = RawPrize(**{**plain.__dict__, **{k: getattr(plain, k).copy() for k in
                                            ("train_user", "train_item", "train_rating", "train_day")}})
    a = build(plain)
    b = build(runs, tmp_path / "cache")  # written from the runs, read back from the folder
    c = PrizeData.load(tmp_path / "cache")
    for name in ("user", "item", "rating_x2", "day", "probe_rows", "nu_items", "user_ids", "item_ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert np.array_equal(getattr(a, name), getattr(c, name)), name


def test_probe_pair_listed_twice_names_its_line():
    raw = raw_prize(np.random.default_rng(5))
    raw.probe_user = np.append(raw.probe_user, raw.probe_user[7])
    raw.probe_item = np.append(raw.probe_item, raw.probe_item[7])
    raw.probe_line = np.arange(2, len(raw.probe_user) + 2)
    with pytest.raises(DataFormatError, match=rf"probe, line {len(raw.probe_user) + 1}: user .* listed more than once"):
        build(raw)
