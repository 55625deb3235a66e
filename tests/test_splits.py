import numpy as np

from prizenet.data.splits import PROBE, QUIZ, TEST, TRAIN, holdout


def test_recent_holdout_takes_each_users_latest_k_at_most_half():
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(50), rng.integers(2, 40, 50))
    day = rng.permutation(user.size)  # distinct days: no ties
    part = holdout(user, day, "recent", k=9, seed=1)
    for u in range(50):
        mine = user == u
        n_held = min(9, mine.sum() // 2)
        held = part[mine] != TRAIN
        assert held.sum() == n_held
        if n_held:  # the held ones are the latest
            assert day[mine][held].min() > day[mine][~held].max()
    assert set(np.unique(part)) == {TRAIN, PROBE, QUIZ, TEST}
    assert np.array_equal(part, holdout(user, day, "recent", k=9, seed=1))
    assert not np.array_equal(part, holdout(user, day, "recent", k=9, seed=2))


def test_random_holdout_fraction():
    user = np.arange(100_000) % 1000
    part = holdout(user, np.zeros_like(user), "random", fraction=0.2, seed=0)
    assert abs((part != TRAIN).mean() - 0.2) < 0.01
    thirds = np.bincount(part[part != TRAIN]) / (part != TRAIN).sum()
    assert np.allclose(thirds, 1 / 3, atol=0.02)
