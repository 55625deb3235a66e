import numpy as np
import pytest
import torch

from prizenet.data import RatingLoader, load_prize, pair_batches
from prizenet.data.loader import permutation


@pytest.fixture
def data(synthetic):
    return load_prize(synthetic)


def keys(data, rows):
    return np.sort(data.user[rows].astype(np.int64) * data.n_items + data.item[rows])


@pytest.mark.parametrize("block", [1, 64])  # the CUDA default (full randperm) and the CPU one
@pytest.mark.parametrize("group_by", [None, "user", "item"])
@pytest.mark.parametrize("resident", [True, False])
def test_every_rating_exactly_once_per_epoch(data, group_by, resident, block):
    rows = data.fit_rows(final_fit=False)
    loader = RatingLoader(data, rows, batch_size=700, group_by=group_by, resident=resident, chunk_size=5000,
                          shuffle_block=block)
    orders = []
    for _ in range(2):
        batches = list(loader)
        got = torch.cat([b.user * data.n_items + b.item for b in batches]).numpy()
        assert np.array_equal(np.sort(got), keys(data, rows))
        # each rating keeps its own day and value through the packing
        full = torch.cat([(b.user * data.n_items + b.item).long() * 100_000 + b.day * 16 + (b.rating * 2).long()
                          for b in batches]).numpy()
        want = (data.user[rows].astype(np.int64) * data.n_items + data.item[rows]) * 100_000 \
            + data.day[rows].astype(np.int64) * 16 + data.rating_x2[rows]
        assert np.array_equal(np.sort(full), np.sort(want))
        orders.append(got)
    assert not np.array_equal(orders[0], orders[1])  # a new permutation each epoch


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize("group_by", ["user", "item"])
def test_grouped_batches_hold_whole_users_or_items(data, group_by, resident):
    rows = data.fit_rows(final_fit=True)
    col = data.user if group_by == "user" else data.item
    per_id = np.bincount(col[rows], minlength=col.max() + 1)
    seen = []
    for b in RatingLoader(data, rows, batch_size=500, group_by=group_by, resident=resident, chunk_size=5000):
        ids, other = (b.users, b.items) if group_by == "user" else (b.items, b.users)
        assert other is None
        assert torch.equal(ids[b.inverse], b.user if group_by == "user" else b.item)
        assert ids.unique().numel() == ids.numel()
        counts = torch.bincount(b.inverse).numpy()
        assert np.array_equal(counts, per_id[ids.numpy()])  # every rating of each of its ids
        assert len(b) <= 500 or ids.numel() == 1 or len(b) - counts[-1] < 500
        if group_by == "user":  # Σ |N(u)| of the batch's users, added up on the host
            assert b.implicit_rows == int(np.diff(data.nu_indptr)[ids.numpy()].sum())
        else:
            assert b.implicit_rows is None
        seen.append(ids)
    seen = torch.cat(seen).numpy()
    assert np.array_equal(np.sort(seen), np.flatnonzero(per_id))  # each id in exactly one batch


def test_group_by_is_checked(data):
    with pytest.raises(ValueError, match="group_by must be"):
        RatingLoader(data, data.fit_rows(False), 100, group_by="users")


def test_same_seed_same_order(data):
    rows = data.fit_rows(False)
    a = [b.user for b in RatingLoader(data, rows, 1000, seed=4)]
    b = [b.user for b in RatingLoader(data, rows, 1000, seed=4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pair_batches_keep_file_order(data):
    batches = pair_batches(data.qual_user, data.qual_item, data.qual_day, 1000, "cpu")
    assert np.array_equal(torch.cat([b.item for b in batches]).numpy(), data.qual_item)


def test_permutation_is_a_seeded_bijection():
    p = permutation(10_000, seed=1)
    assert np.array_equal(np.sort(p), np.arange(10_000))
    assert np.array_equal(p, permutation(10_000, seed=1))
    assert not np.array_equal(p, permutation(10_000, seed=2))
    # no bucket structure left: where index 0..99 land is spread over the whole range
    assert np.ptp(np.argsort(p)[:100]) > 5_000


@pytest.mark.parametrize("group_by", [None, "user", "item"])
@pytest.mark.parametrize("resident", [True, False])
def test_whole_epoch_is_the_epoch_iteration_would_give(data, resident, group_by):
    rows = data.fit_rows(final_fit=False)
    kw = dict(batch_size=700, resident=resident, chunk_size=5000, seed=2, group_by=group_by)
    a, b = RatingLoader(data, rows, **kw), RatingLoader(data, rows, **kw)
    for _ in range(2):  # epoch by epoch, the same order
        whole = a.whole_epoch()
        if whole.order is not None:  # grouped and resident: the stored rows, the runs taken in `order`
            at = torch.cat([torch.arange(int(whole.bounds[s]), int(whole.bounds[s + 1])) for s in whole.order])
            whole = whole.slice(0, len(whole))
            whole.user, whole.item, whole.day, whole.rating = (t[at] for t in (whole.user, whole.item, whole.day,
                                                                                 whole.rating))
        parts = list(b)
        assert torch.equal(whole.user.long(), torch.cat([p.user for p in parts]))
        assert torch.equal(whole.item.long(), torch.cat([p.item for p in parts]))
        assert torch.equal(whole.day.long(), torch.cat([p.day for p in parts]))
        assert torch.equal(whole.rating, torch.cat([p.rating for p in parts]))
