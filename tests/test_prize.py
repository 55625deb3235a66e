import numpy as np
import pytest

from prizenet.data import DataFormatError, RawPrize, build, load_prize


def test_nu_holds_every_item_rated_or_asked(synthetic):
    d = load_prize(synthetic)
    for u in range(0, d.n_users, 37):
        expect = set(d.item[d.user == u].tolist()) | set(d.qual_item[d.qual_user == u].tolist())
        got = d.nu_items[d.nu_indptr[u]:d.nu_indptr[u + 1]].tolist()
        assert sorted(got) == sorted(expect) and len(got) == len(expect)
    assert np.all(np.diff(d.user) >= 0)  # rows in user order, then item order
    assert np.all((np.diff(d.item) > 0) | (np.diff(d.user) > 0))
    assert np.array_equal(np.diff(d.user_indptr), np.bincount(d.user, minlength=d.n_users))


def test_phase_rows_and_probe_mask(synthetic):
    d = load_prize(synthetic)
    fit = d.fit_rows(final_fit=False)
    assert len(fit) + len(d.probe_rows) == d.n_ratings
    assert not np.isin(d.probe_rows, fit).any()
    assert len(d.fit_rows(final_fit=True)) == d.n_ratings


def test_support_counts_ratings_and_rating_days_per_user_and_item(synthetic):
    d = load_prize(synthetic)
    rows = d.fit_rows(final_fit=False)
    s = d.support(rows)
    for u in range(0, d.n_users, 53):
        mine = rows[d.user[rows] == u]
        assert s["user_ratings"][u] == len(mine) and s["user_days"][u] == len(set(d.day[mine].tolist()))
    for i in range(0, d.n_items, 17):
        assert s["item_ratings"][i] == np.count_nonzero(d.item[rows] == i)


def test_split_id_tells_splits_apart(synthetic):
    a = load_prize(synthetic)
    assert a.split_id() == load_prize(synthetic).split_id()
    lines = (synthetic / "probe.txt").read_text().splitlines()
    (synthetic / "probe.txt").write_text("\n".join(lines[:-1]) + "\n")  # one probe pair fewer
    assert load_prize(synthetic).split_id() != a.split_id()


def raw(**kw):
    base = dict(train_user=np.array([1, 1, 2]), train_item=np.array([5, 6, 5]), train_rating=np.array([4.0, 3.0, 5.0]),
                train_day=np.array([100, 101, 102]), probe_user=np.array([1]), probe_item=np.array([6]),
                qual_user=np.array([2]), qual_item=np.array([7]), qual_day=np.array([103]))
    base.update(kw)
    return RawPrize(**base)


def test_duplicates_and_off_scale_ratings_are_refused():
    with pytest.raises(DataFormatError, match="user 1 rated item 5 more than once"):
        build(raw(train_user=np.array([1, 1, 2]), train_item=np.array([5, 5, 5])))
    with pytest.raises(DataFormatError, match=r"rating 5.5 .* outside the rating scale \[1, 5\]"):
        build(raw(train_rating=np.array([4.0, 5.5, 5.0])))
    with pytest.raises(DataFormatError, match=r"rating scale \[-10, 10\]: ratings must lie between 0 and 127.5"):
        build(raw(rating_scale=(-10.0, 10.0)))


def test_day_zero_is_the_first_date_and_ratings_are_exact():
    d = build(raw(train_rating=np.array([4.5, 0.5, 5.0]), rating_scale=(0.5, 5.0)))
    assert d.day.tolist() == [0, 1, 2] and d.qual_day.tolist() == [3]
    assert d.rating.tolist() == [4.5, 0.5, 5.0]
    assert d.item_ids.tolist() == [5, 6, 7] and d.qual_item.tolist() == [2]


def test_time_model_inputs(synthetic):
    d = load_prize(synthetic)
    t_u = d.user_mean_day()
    for u in range(0, d.n_users, 41):
        days = d.day[d.user == u]
        expect = days.mean() if days.size else d.qual_day[d.qual_user == u].mean()
        assert t_u[u] == pytest.approx(expect, rel=1e-5)
    keys = d.user_day_keys()
    want = {(int(u), int(t)) for u, t in zip(d.user, d.day)} | {(int(u), int(t)) for u, t in zip(d.qual_user, d.qual_day)}
    assert len(keys) == len(want) and np.all(np.diff(keys) > 0)
    assert {(int(k // d.n_days), int(k % d.n_days)) for k in keys} == want
