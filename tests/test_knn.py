"""ItemKNN (prizenet/models/knn.py) against direct computations on a tiny matrix: the
baseline, the shrunk Pearson similarities, the neighbourhood average and the jointly
derived interpolation weights; unseen users and items; a saved model loads back."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models.knn import ItemKNN

N_USERS, N_ITEMS = 40, 13


@pytest.fixture(scope="module")
def ratings():
    rng = np.random.default_rng(5)
    mask = rng.random((N_USERS, N_ITEMS)) < 0.55
    mask[-1] = False  # the last user has no training rating
    mask[:, -1] = False  # nor the last item
    taste = rng.normal(0, 1, (N_USERS, 2)) @ rng.normal(0, 1, (2, N_ITEMS))
    full = np.clip(np.rint(3.5 + taste + rng.normal(0, 0.5, taste.shape)), 1, 5)
    u, i = np.nonzero(mask)
    return u, i, full[u, i].astype(np.float32)


def batch(u, i, r=None):
    u, i = torch.as_tensor(u, dtype=torch.int64), torch.as_tensor(i, dtype=torch.int64)
    return Batch(user=u, item=i, day=torch.zeros_like(u),
                 rating=torch.as_tensor(r if r is not None else np.zeros(len(u)), dtype=torch.float32))


def fitted(ratings, **kw):
    u, i, r = ratings
    params = {"k": 4, "shrink": 7.0, "block": 5, "similarity": "pearson", "chunk": 50, "center": "baseline",
              "reg_i": 25.0, **kw}  # 3 blocks, many chunks
    m = ItemKNN(N_USERS, N_ITEMS, float(r.mean()), **params)
    m.sweep(batch(u, i, r))
    return m


def direct(ratings, shrink=7.0, reg_u=10.0, reg_i=25.0, similarity="pearson", center="baseline"):
    """Baseline, residual matrix and similarities by loops over the definition."""
    u, i, r = ratings
    mu = r.mean(dtype=np.float64)
    bi = np.array([(r[i == j] - mu).sum() / max(reg_i + (i == j).sum(), 1e-12) for j in range(N_ITEMS)])
    bu = np.array([(r[u == v] - mu - bi[i[u == v]]).sum() / (reg_u + (u == v).sum()) for v in range(N_USERS)])
    Z = np.full((N_USERS, N_ITEMS), np.nan)
    Z[u, i] = r - mu - bi[i] - (bu[u] if center == "baseline" else 0.0)
    S = np.full((N_ITEMS, N_ITEMS), np.nan)
    for a in range(N_ITEMS):
        for b in range(N_ITEMS):
            both = ~np.isnan(Z[:, a]) & ~np.isnan(Z[:, b])
            n = both.sum()
            if a != b and n:
                za, zb = Z[both, a], Z[both, b]
                if similarity == "pearson":
                    S[a, b] = n / (n + shrink) * (za @ zb) / np.sqrt((za @ za) * (zb @ zb))
                else:  # cosine of the zero-filled columns: the norms over all of each item's ratings
                    S[a, b] = (za @ zb) / (np.linalg.norm(Z[~np.isnan(Z[:, a]), a]) *
                                           np.linalg.norm(Z[~np.isnan(Z[:, b]), b]))
    return mu, bu, bi, Z, S


@pytest.mark.parametrize("similarity", ["pearson", "cosine"])
def test_the_baseline_and_similarities_equal_the_definition(ratings, similarity):
    m = fitted(ratings, similarity=similarity)
    mu, bu, bi, Z, S = direct(ratings, similarity=similarity)
    assert np.allclose(m.bu.numpy(), bu, atol=1e-5) and np.allclose(m.bi.numpy(), bi, atol=1e-5)
    assert np.allclose(m.S.numpy(), np.nan_to_num(S), atol=1e-5)  # never co-rated, or i = j: 0


@pytest.mark.parametrize("similarity", ["pearson", "cosine"])
def test_the_average_prediction_equals_the_definition(ratings, similarity):
    k = 4
    m = fitted(ratings, k=k, similarity=similarity)
    mu, bu, bi, Z, S = direct(ratings, similarity=similarity)
    rng = np.random.default_rng(0)
    pairs = [(v, j) for v, j in zip(rng.integers(0, N_USERS - 1, 60), rng.integers(0, N_ITEMS - 1, 60))]
    got = m(batch([p[0] for p in pairs], [p[1] for p in pairs])).numpy()
    for (v, j), g in zip(pairs, got):
        rated = [b for b in range(N_ITEMS) if not np.isnan(Z[v, b]) and b != j and np.nan_to_num(S[j, b]) > 0]
        top = sorted(rated, key=lambda b: -S[j, b])[:k]
        s = np.array([S[j, b] for b in top])
        nb = (s @ Z[v, top]) / s.sum() if top else 0.0
        assert g == pytest.approx(mu + bu[v] + bi[j] + nb, abs=1e-4), (v, j)


def test_item_centring_takes_the_user_bias_only_where_no_neighbour_is_found(ratings):
    k = 3
    m = fitted(ratings, k=k, similarity="cosine", center="item", reg_i=0.0)
    mu, bu, bi, Z, S = direct(ratings, similarity="cosine", center="item", reg_i=0.0)
    u, i, r = ratings
    assert np.allclose(bi, [r[i == j].mean() - mu if (i == j).any() else 0 for j in range(N_ITEMS)], atol=1e-5)
    checked = {True: 0, False: 0}
    for v in range(N_USERS):
        for j in range(N_ITEMS):
            rated = [b for b in range(N_ITEMS) if not np.isnan(Z[v, b]) and b != j and np.nan_to_num(S[j, b]) > 1e-6]
            top = sorted(rated, key=lambda b: -S[j, b])[:k]
            s = np.array([S[j, b] for b in top])
            want = mu + bi[j] + ((s @ Z[v, top]) / s.sum() if top else bu[v])
            assert float(m(batch([v], [j]))) == pytest.approx(want, abs=1e-4), (v, j)
            checked[bool(top)] += 1
    assert min(checked.values()) > 5  # both cases met


def test_interpolation_weights_solve_the_shrunk_normal_equations(ratings):
    k, beta, ridge = 4, 3.0, 0.01
    m = fitted(ratings, k=k, weights="interpolate", shrink_interp=beta, ridge=ridge)
    mu, bu, bi, Z, S = direct(ratings)
    B = ~np.isnan(Z)
    Z0 = np.nan_to_num(Z)
    zz, n = Z0.T @ Z0, B.T.astype(float) @ B
    off = ~np.eye(N_ITEMS, dtype=bool) & (n > 0)
    avg_off = (zz[off] / n[off]).mean()
    diag = np.diag(n) > 0
    avg_diag = (np.diag(zz)[diag] / np.diag(n)[diag]).mean()
    assert m.avg.numpy() == pytest.approx([avg_off, avg_diag], rel=1e-4)
    checked = 0
    for v in range(N_USERS - 1):
        for j in range(N_ITEMS - 1):
            rated = [b for b in range(N_ITEMS) if B[v, b] and b != j and np.nan_to_num(S[j, b]) > 0]
            top = sorted(rated, key=lambda b: -S[j, b])[:k]
            if len(top) < 2:
                continue
            A = (zz[np.ix_(top, top)] + beta * np.where(np.eye(len(top), dtype=bool), avg_diag, avg_off)) / (
                n[np.ix_(top, top)] + beta) + ridge * abs(avg_diag) * np.eye(len(top))
            b = (zz[j, top] + beta * avg_off) / (n[j, top] + beta)
            w = np.linalg.solve(A, b)
            want = mu + bu[v] + bi[j] + w @ Z[v, top]
            assert float(m(batch([v], [j]))) == pytest.approx(want, rel=1e-4, abs=1e-4), (v, j)  # float32
            checked += 1
    assert checked > 50


def test_unseen_users_and_items_predict_the_baseline(ratings):
    m = fitted(ratings)
    mu, bu, bi, _, _ = direct(ratings)
    got = m(batch([N_USERS - 1, 0], [3, N_ITEMS - 1])).numpy()
    assert got[0] == pytest.approx(mu + 0 + bi[3], abs=1e-5)  # no training rating: bu = 0, no neighbours
    assert got[1] == pytest.approx(mu + bu[0] + 0, abs=1e-5)  # an item nobody rated: no similarities


def test_a_second_sweep_changes_nothing_and_a_saved_model_loads_back(ratings):
    u, i, r = ratings
    m = fitted(ratings, weights="interpolate")
    first = m(batch(u, i)).clone()
    again = m.sweep(batch(u, i, r))  # (fewer ratings than error_sample: the error is over all of them)
    assert torch.equal(m(batch(u, i)), first) and float(again) == pytest.approx(float(((first - torch.tensor(r)) ** 2).sum()))
    fresh = ItemKNN(N_USERS, N_ITEMS, float(r.mean()), k=4, shrink=7.0, weights="interpolate", similarity="pearson",
                    center="baseline", reg_i=25.0)
    fresh.load_state_dict(m.state_dict())  # the ratings' keys are as long as the data: taken from the state
    assert torch.equal(fresh(batch(u, i)), first)


def test_the_settings_are_checked():
    with pytest.raises(ValueError, match="weights must be"):
        ItemKNN(3, 3, 3.0, weights="cosine")
    with pytest.raises(ValueError, match="similarity must be"):
        ItemKNN(3, 3, 3.0, similarity="jaccard")
    with pytest.raises(ValueError, match="k must be at least 1"):
        ItemKNN(3, 30, 3.0, k=0)
