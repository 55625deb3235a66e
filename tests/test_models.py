"""Each model against a direct, loop-based evaluation of its formula, on a tiny dataset."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models import SVD, Baseline
from prizenet.models.tables import recording, zero_unseen
from prizenet.optim import RowOptimizer

U, I = 5, 4
user = torch.tensor([0, 0, 1, 2, 3, 3, 3, 1])
item = torch.tensor([0, 1, 1, 2, 0, 2, 3, 3])
rating = torch.tensor([4.0, 3.0, 5.0, 2.0, 1.0, 4.5, 3.5, 2.0])


def batch(u=user, i=item, r=rating):
    return Batch(user=u, item=i, day=torch.zeros_like(u), rating=r)


def svd(**kw):
    torch.manual_seed(0)
    m = SVD(U, I, mu=3.0, n_factors=3, **kw)
    with torch.no_grad():  # non-zero biases, so every term is exercised
        m.bu.weight.normal_()
        m.bi.weight.normal_()
    return m


def test_svd_prediction_matches_the_formula():
    m = svd()
    pred = m(batch())
    bu, bi, pu, qi = (t.weight for t in (m.bu, m.bi, m.pu, m.qi))
    for k, (u, i) in enumerate(zip(user.tolist(), item.tolist())):
        want = 3.0 + bu[u] + bi[i] + sum(qi[i, f] * pu[u, f] for f in range(3))
        assert pred[k].item() == pytest.approx(want.item(), abs=1e-6)


def test_one_rating_sgd_step_is_korens_update():
    m = svd(lr_bu=0.01, lr_bi=0.02, lr_pu=0.03, lr_qi=0.04, reg_bu=0.1, reg_bi=0.2, reg_pu=0.3, reg_qi=0.4)
    bu, bi, pu, qi = (t.weight.clone() for t in (m.bu, m.bi, m.pu, m.qi))
    u, i, r = 1, 3, 2.0
    e = r - (3.0 + bu[u] + bi[i] + qi[i] @ pu[u])
    opt = RowOptimizer(m, "sgd")
    with recording(m) as tape:
        pred = m(batch(torch.tensor([u]), torch.tensor([i]), torch.tensor([r])))
        loss = 0.5 * ((pred - r) ** 2).sum()
    loss.backward()
    opt.step(tape)
    assert m.bu.weight[u].item() == pytest.approx((bu[u] + 0.01 * (e - 0.1 * bu[u])).item(), abs=1e-6)
    assert m.bi.weight[i].item() == pytest.approx((bi[i] + 0.02 * (e - 0.2 * bi[i])).item(), abs=1e-6)
    assert torch.allclose(m.pu.weight[u], pu[u] + 0.03 * (e * qi[i] - 0.3 * pu[u]), atol=1e-6)
    assert torch.allclose(m.qi.weight[i], qi[i] + 0.04 * (e * pu[u] - 0.4 * qi[i]), atol=1e-6)
    untouched = [k for k in range(U) if k != u]
    assert torch.equal(m.pu.weight[untouched], pu[untouched])  # no dense weight decay


def test_batch_step_sums_the_per_rating_updates():
    m = svd()
    pu0 = m.pu.weight.clone()
    grads = torch.zeros_like(pu0)
    for k in range(len(user)):  # each rating's own gradient at the same starting point
        with recording(m) as tape:
            pred = m(batch(user[k:k + 1], item[k:k + 1], rating[k:k + 1]))
            (0.5 * ((pred - rating[k]) ** 2).sum()).backward()
        for table, idx, rows in tape:
            if table is m.pu:
                grads.index_add_(0, idx, rows.grad + m.pu.reg * rows.detach())
    opt = RowOptimizer(m, "sgd")
    with recording(m) as tape:
        (0.5 * ((m(batch()) - rating) ** 2).sum()).backward()
    opt.step(tape)
    assert torch.allclose(m.pu.weight, pu0 - m.pu.lr * grads, atol=1e-6)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_training_lowers_the_loss(kind):
    m = svd(lr_bu=0.05, lr_bi=0.05, lr_pu=0.05, lr_qi=0.05)
    opt = RowOptimizer(m, kind)
    losses = []
    for _ in range(50):
        with recording(m) as tape:
            loss = 0.5 * ((m(batch()) - rating) ** 2).sum()
        loss.backward()
        opt.step(tape)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_baseline_matches_the_formula_and_als_is_the_closed_form():
    m = Baseline(U, I, mu=3.0, solver="als", reg_u=2.0, reg_i=3.0)
    m.als_epoch(user, item, rating)
    bu, bi = m.bu.weight, m.bi.weight
    # Items are solved first, from bu = 0; then users, from those bi.
    for i in range(I):
        rs = [rating[k] - 3.0 for k in range(len(user)) if item[k] == i]
        assert bi[i].item() == pytest.approx(float(sum(rs) / (3.0 + len(rs))), abs=1e-6)
    for u in range(U):
        rs = [rating[k] - 3.0 - bi[item[k]] for k in range(len(user)) if user[k] == u]
        assert bu[u].item() == pytest.approx(float(sum(rs) / (2.0 + len(rs))) if rs else 0.0, abs=1e-6)
    pred = m(batch())
    for k in range(len(user)):
        assert pred[k].item() == pytest.approx((3.0 + bu[user[k]] + bi[item[k]]).item(), abs=1e-6)


def test_unseen_users_and_items_fall_back_to_the_biases():
    m = svd()
    counts_u = np.bincount(user.numpy(), minlength=U)  # user 4 never rated
    counts_i = np.array([2, 2, 2, 0])  # pretend item 3 is unseen
    zero_unseen(m, counts_u, counts_i)
    b = batch(torch.tensor([4, 0]), torch.tensor([1, 3]), torch.zeros(2))
    pred = m(b)
    assert pred[0].item() == pytest.approx((3.0 + m.bu.weight[4] + m.bi.weight[1]).item())
    assert pred[1].item() == pytest.approx((3.0 + m.bu.weight[0] + m.bi.weight[3]).item())
    assert torch.count_nonzero(m.pu.weight[4]) == 0 and torch.count_nonzero(m.qi.weight[3]) == 0


def test_unbiased_svd_is_funks_plain_mf():
    m = svd(biased=False)
    assert torch.allclose(m(batch()), (m.pu.weight[user] * m.qi.weight[item]).sum(1))
