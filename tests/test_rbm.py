"""The conditional RBM against a direct, user-by-user computation of its conditional
probabilities, its predictions and one contrastive-divergence step, on a tiny matrix."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models import RBM

from conftest import tiny_ratings

U, I, F = 6, 5, 4
LEVELS = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)


@pytest.fixture
def data():
    return tiny_ratings(7, U, I, 25)  # user U-1 rated nothing, item I-1 was never rated


def csr(rows, cols, values, n):
    order = np.argsort(rows, kind="stable")
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]), cols[order], values[order]


def model(data, **kw):
    user, item, rating, nu = data
    by_user, by_item = csr(user, item, rating, U), csr(item, user, rating, I)
    torch.manual_seed(0)
    m = RBM(U, I, nu_indptr=np.concatenate([[0], np.cumsum([len(x) for x in nu])]), nu_items=np.concatenate(nu),
            rated_indptr=by_user[0], rated_items=by_user[1], rated_ratings=by_user[2], item_indptr=by_item[0],
            item_users=by_item[1], item_ratings=by_item[2], rating_levels=LEVELS, n_hidden=F, init_std=0.5, **kw)
    with torch.no_grad():  # every term non-zero
        m.D.normal_(0, 0.5)
        m.bh.normal_(0, 0.5)
    m.see(np.bincount(user, minlength=U), np.bincount(item, minlength=I))
    return m


def batch(u, i, r=None):
    u, i = torch.as_tensor(u).long(), torch.as_tensor(i).long()
    return Batch(user=u, item=i, day=torch.zeros_like(u),
                 rating=torch.zeros(len(u)) if r is None else torch.as_tensor(r, dtype=torch.float32))


def hidden_direct(m, data, u, levels_of=None):
    """p(h = 1 | V, r) of user u by the formula; ``levels_of`` (item -> level index) replaces
    the user's ratings."""
    user, item, rating, nu = data
    x = m.bh.clone()
    for i, r in zip(item[user == u].tolist(), rating[user == u].tolist()):
        k = int(r) - 1 if levels_of is None else None
        x += m.W[i, k] if levels_of is None else levels_of[i] @ m.W[i]
    for j in nu[u]:
        x += m.D[j]
    return torch.sigmoid(x)


@pytest.mark.parametrize("predict", ["exact", "mean_field"])
def test_the_hidden_probabilities_and_predictions_equal_the_formula(data, predict):
    m = model(data, predict=predict)
    us, its = np.meshgrid(np.arange(U), np.arange(I), indexing="ij")
    pred = m(batch(us.ravel(), its.ravel()))
    ph = m.hidden(torch.arange(U))
    for u in range(U):
        assert torch.allclose(ph[u], hidden_direct(m, data, u), atol=1e-6)
    for k, (u, i) in enumerate(zip(us.ravel().tolist(), its.ravel().tolist())):
        if predict == "mean_field":  # p(v_i | p̂)
            p = torch.softmax(m.bv[i] + m.W[i] @ hidden_direct(m, data, u), 0)
        else:  # p(v_i = k | V) ∝ exp(bv[i, k]) Π_f (1 + exp(x_f + W[i, k, f])): h summed out
            x = torch.logit(hidden_direct(m, data, u).double())
            free = [m.bv[i, k].double() + torch.log1p(torch.exp(x + m.W[i, k].double())).sum() for k in range(5)]
            p = torch.softmax(torch.stack(free), 0).float()
        assert pred[k].item() == pytest.approx(float(p @ torch.from_numpy(LEVELS)), abs=1e-5)


def test_the_item_based_rbm_is_the_user_based_one_on_the_transposed_matrix(data):
    user, item, rating, nu = data
    m = model(data, by="item")
    flipped = (item, user, rating, [[u for u in range(U) if i in nu[u]] for i in range(I)])
    t = RBM(I, U, nu_indptr=np.concatenate([[0], np.cumsum([len(x) for x in flipped[3]])]),
            nu_items=np.concatenate(flipped[3]), rated_indptr=m.case_indptr.numpy(), rated_items=m.case_units.numpy(),
            rated_ratings=LEVELS[m.case_levels.numpy()], item_indptr=np.zeros(U + 1, np.int64),
            item_users=np.zeros(0, np.int64), item_ratings=np.zeros(0, np.float32), rating_levels=LEVELS,
            n_hidden=F)
    t.load_state_dict(m.state_dict())
    us, its = np.meshgrid(np.arange(U), np.arange(I), indexing="ij")
    assert m.group_by == "item"
    assert torch.allclose(m(batch(us.ravel(), its.ravel())), t(batch(its.ravel(), us.ravel())), atol=1e-6)


def test_the_unconditional_rbm_ignores_who_rated_what(data):
    m = model(data, conditional=False)
    user, item, rating, nu = data
    for u in range(U):
        x = m.bh + sum((m.W[i, int(r) - 1] for i, r in zip(item[user == u], rating[user == u])), torch.zeros(F))
        assert torch.allclose(m.hidden(torch.tensor([u]))[0], torch.sigmoid(x), atol=1e-6)


@pytest.mark.parametrize("count_prior", [0.0, 1.5])
def test_one_cd1_step_equals_the_direct_computation(data, count_prior):
    user, item, rating, nu = data
    kw = dict(lr_w=0.1, lr_bv=0.2, lr_bh=0.3, lr_d=0.4, weight_decay=0.05, momentum=0.5, cd_steps=[1],
              count_prior=count_prior)
    m = model(data, **kw)
    with torch.no_grad():  # a velocity already under way: momentum is part of the step
        for name in ("W", "bv", "bh", "D"):
            getattr(m, f"vel_{name}").normal_(0, 0.01)
    before = {n: getattr(m, n).clone() for n in ("W", "bv", "bh", "D")}
    vel = {n: getattr(m, f"vel_{n}").clone() for n in ("W", "bv", "bh", "D")}
    users = np.unique(user)
    b = batch(user, item, rating)
    b.users, b.inverse = torch.unique(b.user, return_inverse=True)
    levels = torch.from_numpy(LEVELS)

    # direct: user by user, with the same Bernoulli draws (one [users, F] draw, as the model makes)
    torch.manual_seed(123)
    ph0 = torch.stack([hidden_direct(m, data, u) for u in users])
    h = torch.bernoulli(ph0)
    gW, gbv, gD = torch.zeros_like(m.W), torch.zeros_like(m.bv), torch.zeros_like(m.D)
    gbh, sse = torch.zeros(F), 0.0
    n_i, n_j = np.zeros(I), np.zeros(I)
    for row, u in enumerate(users.tolist()):
        mine = [(i, int(r) - 1) for i, r in zip(item[user == u].tolist(), rating[user == u].tolist())]
        pv = {i: torch.softmax(m.bv[i] + m.W[i] @ h[row], 0) for i, _ in mine}  # the negative visible units
        phT = hidden_direct(m, data, u, levels_of=pv)
        for i, k in mine:
            sse += float(torch.softmax(m.bv[i] + m.W[i] @ ph0[row], 0) @ levels - (k + 1)) ** 2
            v0 = torch.nn.functional.one_hot(torch.tensor(k), 5).float()
            gW[i] += v0[:, None] * ph0[row][None, :] - pv[i][:, None] * phT[None, :]
            gbv[i] += v0 - pv[i]
            n_i[i] += 1
        gbh += ph0[row] - phT
        for j in nu[u]:
            gD[j] += ph0[row] - phT
            n_j[j] += 1
    n_i, n_j = (torch.from_numpy(np.maximum(n + count_prior, 1)).float() for n in (n_i, n_j))
    grads = {"W": gW / n_i[:, None, None], "bv": gbv / n_i[:, None], "bh": gbh / len(users), "D": gD / n_j[:, None]}
    lrs = {"W": 0.1, "bv": 0.2, "bh": 0.3, "D": 0.4}

    torch.manual_seed(123)
    got = m.learn(b, scale=0.5, epoch=0)
    assert float(got) == pytest.approx(sse, rel=1e-5)
    for name in ("W", "bv", "bh", "D"):
        g = grads[name].float() - (0.05 * before[name] if name in ("W", "D") else 0.0)
        want_vel = 0.5 * vel[name] + 0.5 * lrs[name] * g
        assert torch.allclose(getattr(m, f"vel_{name}"), want_vel, atol=1e-5), name
        assert torch.allclose(getattr(m, name), before[name] + want_vel, atol=1e-5), name


def test_the_factored_step_is_the_chain_rule_of_the_full_one(data):
    """rank = C: W = A·B (the paper's section 5), and one CD-1 step moves A and B along the
    chain rule of the full W's contrastive-divergence gradient: dA = (dW / n_i)·Bᵀ per item,
    dB = Σ_i A_iᵀ dW_i / n_users."""
    user, item, rating, nu = data
    kw = dict(lr_w=0.1, lr_bv=0.2, lr_bh=0.3, lr_d=0.4, weight_decay=0.05, momentum=0.5, cd_steps=[1])
    f = model(data, rank=3, **kw)
    assert f.A.shape == (I, 5, 3) and f.B.shape == (3, F)
    assert torch.allclose(f.W, f.A @ f.B) and not f.W[I - 1].any()  # the unrated item keeps no weights
    full = model(data, **kw)
    full.load_state_dict({k: v for k, v in f.state_dict().items() if k in full.state_dict()}, strict=False)
    A0, B0, W0 = f.A.clone(), f.B.clone(), f.W.clone()
    b = batch(user, item, rating)
    b.users, b.inverse = torch.unique(b.user, return_inverse=True)
    for m in (full, f):
        torch.manual_seed(5)
        m.learn(b, scale=0.5, epoch=0)
    dWn = full.vel_W / (0.1 * 0.5) + 0.05 * W0  # the full step's dW / n_i (its decay taken back out)
    n_i = torch.from_numpy(np.maximum(np.bincount(item, minlength=I), 1)).float()
    dA = dWn @ B0.T - 0.05 * A0
    dB = torch.einsum("ikc,ikf->cf", A0, dWn * n_i[:, None, None]) / len(np.unique(user)) - 0.05 * B0
    assert torch.allclose(f.vel_A, 0.05 * dA, atol=1e-6) and torch.allclose(f.A, A0 + 0.05 * dA, atol=1e-6)
    assert torch.allclose(f.vel_B, 0.05 * dB, atol=1e-6) and torch.allclose(f.B, B0 + 0.05 * dB, atol=1e-6)
    assert torch.allclose(f.W, f.A @ f.B, atol=1e-6)
    for name in ("bv", "bh", "D"):  # the rest of the step is the full model's
        assert torch.allclose(getattr(f, name), getattr(full, name), atol=1e-6), name


def test_cd_steps_rise_with_the_epochs(data):
    m = model(data, cd_steps=[1, 3, 5], cd_every=2)
    assert [m.steps_at(e) for e in range(8)] == [1, 1, 3, 3, 5, 5, 5, 5]
    with pytest.raises(ValueError, match="cd_steps"):
        model(data, cd_steps=[0])


def test_learning_lowers_the_error_on_the_training_ratings(data):
    user, item, rating, _ = data
    m = model(data, lr_w=0.1, lr_bv=0.1, lr_bh=0.1, lr_d=0.01, cd_steps=[1, 3])
    b = batch(user, item, rating)
    b.users, b.inverse = torch.unique(b.user, return_inverse=True)
    torch.manual_seed(0)
    first = float(m.learn(b, 1.0, 0))
    for epoch in range(60):
        last = float(m.learn(b, 1.0, epoch))
    assert last < 0.5 * first


def test_unseen_users_and_items_fall_back(data):
    m = model(data)
    pred = m(batch([U - 1, 0], [0, I - 1]))
    assert torch.isfinite(pred).all()
    assert float(m.W[I - 1].abs().sum()) == 0  # never rated: no weights
    p_global = torch.softmax(m.bv[I - 1], 0)  # an unseen item's levels: the global frequencies
    user, item, rating, _ = data
    counts = np.bincount(rating.astype(int) - 1, minlength=5) + 1.0
    assert torch.allclose(p_global, torch.from_numpy(counts / counts.sum()).float(), atol=1e-5)
    assert pred[1].item() == pytest.approx(float(p_global @ torch.from_numpy(LEVELS)), abs=1e-5)


def test_half_star_levels_map_to_their_softmax_units():
    levels = np.arange(1, 11, dtype=np.float32) * 0.5
    two = dict(indptr=np.array([0, 1, 2]), cols=np.array([0, 1]), r=np.array([0.5, 4.5], np.float32))
    m = RBM(2, 2, nu_indptr=two["indptr"], nu_items=two["cols"], rated_indptr=two["indptr"], rated_items=two["cols"],
            rated_ratings=two["r"], item_indptr=two["indptr"], item_users=two["cols"], item_ratings=two["r"],
            rating_levels=levels)
    assert m.level_of(torch.tensor([0.5, 3.0, 4.5, 5.0])).tolist() == [0, 5, 8, 9]
