"""Koren's integrated model against a direct, loop-based evaluation of its formula and its
SGD updates, on a tiny rating matrix."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models import Integrated
from prizenet.models.tables import recording

from conftest import BACKENDS, tape_grad, tiny_ratings

U, I, K = 7, 6, 3


@pytest.fixture
def data():
    return tiny_ratings(3, U, I, 40)  # user U-1 rated nothing, item I-1 was never rated


def model(data, **kw):
    user, item, rating, nu = data
    indptr = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=U))])
    nu_indptr = np.concatenate([[0], np.cumsum([len(x) for x in nu])])
    torch.manual_seed(0)
    m = Integrated(U, I, mu=float(rating.mean()), nu_indptr=nu_indptr, nu_items=np.concatenate(nu),
                   rated_indptr=indptr, rated_items=item, rated_ratings=rating, n_factors=2, k=K, shrink=2.0, **kw)
    with torch.no_grad():  # every term non-zero
        for t in (m.bu, m.bi, m.w, m.c):
            t.weight.normal_(0, 0.3)
    m.see(np.bincount(user, minlength=U), np.bincount(item, minlength=I))  # as build_model does
    return m


def batch(u, i, r=None):
    u, i = torch.as_tensor(u).long(), torch.as_tensor(i).long()
    return Batch(user=u, item=i, day=torch.zeros_like(u), rating=torch.zeros(len(u)) if r is None else torch.as_tensor(r))


def direct_baseline(data, reg_u=10.0, reg_i=25.0):
    user, item, rating, _ = data
    mu = rating.mean()
    bi = np.array([(rating[item == i] - mu).sum() / (reg_i + (item == i).sum()) for i in range(I)])
    bu = np.array([(rating[user == u] - mu - bi[item[user == u]]).sum() / (reg_u + (user == u).sum())
                   for u in range(U)])
    return mu, bu, bi


def direct_similarity(data, shrink=2.0):
    user, item, rating, _ = data
    mu, bu, bi = direct_baseline(data)
    z = {(u, i): r - mu - bu[u] - bi[i] for u, i, r in zip(user, item, rating)}
    S = np.zeros((I, I))
    for i in range(I):
        for j in range(I):
            common = [u for u in range(U) if (u, i) in z and (u, j) in z]
            if i == j or not common:
                continue
            a, b = np.array([z[u, i] for u in common]), np.array([z[u, j] for u in common])
            den = np.sqrt((a * a).sum() * (b * b).sum())
            S[i, j] = (a * b).sum() / den * len(common) / (len(common) + shrink) if den > 0 else 0.0
    return S, z


def direct_prediction(m, data, u, i):
    """r̂_ui by the formula, term by term, with the model's parameters and neighbours."""
    _, _, _, nu = data
    _, z = direct_similarity(data)
    y = m.yj.weight
    implicit = sum(y[j] for j in nu[u]) / len(nu[u]) ** 0.5
    pred = m.mu + m.bu.weight[u] + m.bi.weight[i] + m.qi.weight[i] @ (m.pu.weight[u] + implicit)
    nbrs = m.neighbours[i].tolist()
    r_k = [(t, j) for t, j in enumerate(nbrs) if (u, j) in z]
    n_k = [(t, j) for t, j in enumerate(nbrs) if j in nu[u]]
    if r_k:
        pred = pred + sum(m.w.weight[i, t] * float(z[u, j]) for t, j in r_k) / len(r_k) ** 0.5
    if n_k:
        pred = pred + sum(m.c.weight[i, t] for t, _ in n_k) / len(n_k) ** 0.5
    return pred


def test_the_fixed_baseline_and_the_neighbours_equal_the_definition(data):
    m = model(data)
    mu, bu, bi = direct_baseline(data)
    assert np.allclose(m.bu0.numpy(), bu, atol=1e-5) and np.allclose(m.bi0.numpy(), bi, atol=1e-5)
    m.find_neighbours()
    S, _ = direct_similarity(data)
    np.fill_diagonal(S, -np.inf)
    for i in range(I):
        got = m.neighbours[i].numpy()
        assert i not in got and len(set(got)) == K
        # the k highest similarities (ties may pick either item, so compare the values)
        assert np.allclose(np.sort(S[i, got]), np.sort(S[i])[-K:], atol=1e-5), i


def test_the_prediction_equals_the_formula(data):
    m = model(data)
    us, its = np.meshgrid(np.arange(U), np.arange(I), indexing="ij")
    with torch.no_grad():
        pred = m(batch(us.ravel(), its.ravel()))
        for k, (u, i) in enumerate(zip(us.ravel(), its.ravel())):
            assert pred[k].item() == pytest.approx(float(direct_prediction(m, data, int(u), int(i))), abs=1e-5)


def test_the_gradients_of_w_and_c_equal_autograd_through_the_formula(data):
    user, item, rating, _ = data
    m = model(data)
    m.find_neighbours()
    w = m.w.weight.detach().clone().requires_grad_(True)
    c = m.c.weight.detach().clone().requires_grad_(True)
    loss = 0
    for u, i, r in zip(user.tolist(), item.tolist(), rating.tolist()):  # the formula, with w and c as leaves
        with torch.no_grad():
            rest = direct_prediction(m, data, u, i) - _neighbour_terms(m, data, u, i, m.w.weight, m.c.weight)
        loss = loss + 0.5 * (rest + _neighbour_terms(m, data, u, i, w, c) - r) ** 2
    loss.backward()
    with recording(m) as tape:
        (0.5 * ((m(batch(user, item)) - torch.from_numpy(rating)) ** 2).sum()).backward()
    gw, gc = tape_grad(tape, m.w), tape_grad(tape, m.c)
    assert torch.allclose(gw, w.grad, atol=1e-5) and torch.allclose(gc, c.grad, atol=1e-5)
    assert w.grad.abs().sum() > 0 and c.grad.abs().sum() > 0


def _neighbour_terms(m, data, u, i, w, c):
    _, _, _, nu = data
    _, z = direct_similarity(data)
    nbrs = m.neighbours[i].tolist()
    r_k = [(t, j) for t, j in enumerate(nbrs) if (u, j) in z]
    n_k = [(t, j) for t, j in enumerate(nbrs) if j in nu[u]]
    out = torch.zeros(())
    if r_k:
        out = out + sum(w[i, t] * float(z[u, j]) for t, j in r_k) / len(r_k) ** 0.5
    if n_k:
        out = out + sum(c[i, t] for t, _ in n_k) / len(n_k) ** 0.5
    return out


@pytest.mark.parametrize("backend", BACKENDS)  # Triton: its interpreter, programs one after another
def test_the_sgd_epoch_is_the_per_user_loop(data, backend):
    user, item, rating, nu = data
    lr = dict(lr_bu=0.01, lr_bi=0.02, lr_pu=0.03, lr_qi=0.04, lr_yj=0.05, lr_w=0.06, lr_c=0.07)
    reg = dict(reg_bu=0.1, reg_bi=0.2, reg_pu=0.3, reg_qi=0.4, reg_yj=0.5, reg_w=0.6, reg_c=0.7)
    m = model(data, **lr, **reg)
    m.find_neighbours()
    _, z = direct_similarity(data)
    mu = float(m.mu)
    bu, bi, pu, qi, y, w, c = (t.weight.detach().clone().double() for t in (m.bu, m.bi, m.pu, m.qi, m.yj, m.w, m.c))
    nbrs = m.neighbours.tolist()
    sse = 0.0
    for u in np.unique(user).tolist():  # whole users in stored order, the kernel's loop written out
        norm = len(nu[u]) ** -0.5
        implicit = sum(y[j] for j in nu[u]) * norm
        acc = torch.zeros(2, dtype=torch.float64)
        for i, r in zip(item[user == u].tolist(), rating[user == u].tolist()):
            r_k = [(t, j) for t, j in enumerate(nbrs[i]) if (u, j) in z]
            n_k = [t for t, j in enumerate(nbrs[i]) if j in nu[u]]
            nr, nn = max(len(r_k), 1) ** -0.5, max(len(n_k), 1) ** -0.5
            pred = mu + bu[u] + bi[i] + qi[i] @ (pu[u] + implicit) + nr * sum(w[i, t] * z[u, j] for t, j in r_k) \
                + nn * sum(c[i, t] for t in n_k)
            e = r - pred
            sse += float(e) ** 2
            bu[u] += 0.01 * (e - 0.1 * bu[u])
            bi[i] += 0.02 * (e - 0.2 * bi[i])
            acc += e * qi[i]
            pu[u], qi[i] = pu[u] + 0.03 * (e * qi[i] - 0.3 * pu[u]), qi[i] + 0.04 * (e * (pu[u] + implicit) - 0.4 * qi[i])
            for t, j in r_k:
                w[i, t] += 0.06 * (e * nr * z[u, j] - 0.6 * w[i, t])
            for t in n_k:
                c[i, t] += 0.07 * (e * nn - 0.7 * c[i, t])
        for j in nu[u]:
            y[j] += 0.05 * (acc * norm - 0.5 * y[j])
    got = m.sgd_epoch(batch(user, item, rating), backend=backend)
    assert got == pytest.approx(sse, rel=1e-5)
    for t, want in zip((m.bu, m.bi, m.pu, m.qi, m.yj, m.w, m.c), (bu, bi, pu, qi, y, w, c)):
        assert torch.allclose(t.weight.double(), want, atol=1e-5)


def test_unseen_users_and_items_fall_back(data):
    m = model(data)
    with torch.no_grad():
        pred = m(batch([U - 1, U - 1, 0], [0, I - 1, I - 1]))
    # user U-1 rated nothing: no factors, no R^k term; item I-1 was never rated: no factors, no weights
    assert torch.isfinite(pred).all()
    assert float(m.pu.weight[U - 1].abs().sum()) == 0 and float(m.qi.weight[I - 1].abs().sum()) == 0
    assert float(m.w.weight[I - 1].abs().sum()) == 0 and float(m.c.weight[I - 1].abs().sum()) == 0


def test_the_neighbours_are_saved_with_the_model(data):
    m = model(data)
    m.find_neighbours()
    fresh = model(data)
    fresh.load_state_dict(m.state_dict())
    assert bool(fresh.found) and torch.equal(fresh.neighbours, m.neighbours)
    with torch.no_grad():
        b = batch(np.arange(U).repeat(I), np.tile(np.arange(I), U))
        assert torch.allclose(fresh(b), m(b))


def test_chunked_predictions_are_the_same(data, monkeypatch):
    from prizenet.models import integrated

    m = model(data)
    b = batch(np.arange(U).repeat(I), np.tile(np.arange(I), U))
    with torch.no_grad():
        whole = m(b)
        monkeypatch.setattr(integrated, "PAIRS", 2 * K)  # two pairs a chunk
        assert torch.allclose(m(b), whole, atol=1e-6)
