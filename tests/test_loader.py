import numpy as np
import pytest
import torch

from prizenet.data import RatingLoader, load_prize, pair_batches


@pytest.fixture
def data(synthetic):
    return load_prize(synthetic)


def keys(data, rows):
    return np.sort(data.user[rows].astype(np.int64) * data.n_items + data.item[rows])


@pytest.mark.parametrize("block", [1, 64])  # the CUDA default (full randperm) and the CPU one
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("resident", [True, False])
def test_every_rating_exactly_once_per_epoch(data, grouped, resident, block):
    rows = data.fit_rows(final_fit=False)
    loader = RatingLoader(data, rows, batch_size=700, group_by_user=grouped, resident=resident, chunk_size=5000,
                          shuffle_block=block)
    orders = []
    for _ in range(2):
        batches = list(loader)
        got = torch.cat([b.user * data.n_items + b.item for b in batches]).numpy()
        assert np.array_equal(np.sort(got), keys(data, rows))
        ratings = torch.cat([b.rating for b in batches]).numpy()
        assert np.isclose(ratings.mean(), data.rating[rows].mean())
        orders.append(got)
    assert not np.array_equal(orders[0], orders[1])  # a new permutation each epoch


def test_grouped_batches_hold_whole_users(data):
    rows = data.fit_rows(final_fit=True)
    per_user = np.bincount(data.user[rows], minlength=data.n_users)
    for b in RatingLoader(data, rows, batch_size=500, group_by_user=True):
        assert torch.equal(b.users[b.inverse], b.user)
        assert b.users.unique().numel() == b.users.numel()
        counts = torch.bincount(b.inverse).numpy()
        assert np.array_equal(counts, per_user[b.users.numpy()])
        assert len(b) <= 500 or b.users.numel() == 1 or len(b) - counts[-1] < 500


def test_same_seed_same_order(data):
    rows = data.fit_rows(False)
    a = [b.user for b in RatingLoader(data, rows, 1000, seed=4)]
    b = [b.user for b in RatingLoader(data, rows, 1000, seed=4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pair_batches_keep_file_order(data):
    batches = pair_batches(data.qual_user, data.qual_item, data.qual_day, 1000, "cpu")
    assert np.array_equal(torch.cat([b.item for b in batches]).numpy(), data.qual_item)
