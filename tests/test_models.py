"""Each model against a direct, loop-based evaluation of its formula, on a tiny dataset."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models import SVD, Baseline
from prizenet.models.tables import recording
from prizenet.optim import RowOptimizer

from conftest import BACKENDS, tape_grad

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
        for table, idx, rows, *_ in tape:
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
    sse = m.sweep(Batch(user=user, item=item, day=torch.zeros_like(user), rating=rating))
    assert float(sse) == pytest.approx(float(((m(Batch(user=user, item=item, day=user, rating=rating)) - rating) ** 2).sum()))
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
    m.see(counts_u, counts_i)
    b = batch(torch.tensor([4, 0]), torch.tensor([1, 3]), torch.zeros(2))
    pred = m(b)
    assert pred[0].item() == pytest.approx((3.0 + m.bu.weight[4] + m.bi.weight[1]).item())
    assert pred[1].item() == pytest.approx((3.0 + m.bu.weight[0] + m.bi.weight[3]).item())
    assert torch.count_nonzero(m.pu.weight[4]) == 0 and torch.count_nonzero(m.qi.weight[3]) == 0


def test_unbiased_svd_is_funks_plain_mf():
    m = svd(biased=False)
    assert torch.allclose(m(batch()), (m.pu.weight[user] * m.qi.weight[item]).sum(1))


# SVD++ and the time models: N(u) as a CSR, days per rating.
nu_lists = [[0, 1, 3], [1, 3, 2], [2], [0, 2, 3], [1]]  # user 4: only a qualifying item
nu_indptr = np.cumsum([0] + [len(x) for x in nu_lists])
nu_items = np.concatenate(nu_lists)
day = torch.tensor([0, 3, 5, 9, 2, 2, 7, 6])


def svdpp(**kw):
    from prizenet.models import SVDpp

    torch.manual_seed(0)
    m = SVDpp(U, I, mu=3.0, nu_indptr=nu_indptr, nu_items=nu_items, n_factors=3, **kw)
    with torch.no_grad():
        m.bu.weight.normal_()
        m.bi.weight.normal_()
    return m


def grouped(u=user, i=item, r=rating):
    users, inverse = torch.unique(u, return_inverse=True)
    b = batch(u, i, r)
    b.users, b.inverse = users, inverse
    return b


def svdpp_reference(m, u, i):
    y = m.yj.weight
    z = sum(y[j] for j in nu_lists[u]) / len(nu_lists[u]) ** 0.5
    return 3.0 + m.bu.weight[u] + m.bi.weight[i] + m.qi.weight[i] @ (m.pu.weight[u] + z)


@pytest.mark.parametrize("make_batch", [batch, grouped])
def test_svdpp_prediction_matches_the_formula(make_batch):
    m = svdpp()
    pred = m(make_batch())
    for k, (u, i) in enumerate(zip(user.tolist(), item.tolist())):
        assert pred[k].item() == pytest.approx(svdpp_reference(m, u, i).item(), abs=1e-5)


def test_svdpp_gradients_match_autograd_through_the_formula():
    m = svdpp()
    y = m.yj.weight.detach().clone().requires_grad_(True)
    pu = m.pu.weight.detach().clone().requires_grad_(True)
    loss = 0
    for u, i, r in zip(user.tolist(), item.tolist(), rating.tolist()):  # the formula, rating by rating
        z = sum(y[j] for j in nu_lists[u]) / len(nu_lists[u]) ** 0.5
        pred = 3.0 + m.bu.weight[u] + m.bi.weight[i] + m.qi.weight[i] @ (pu[u] + z)
        loss = loss + 0.5 * (pred - r) ** 2
    loss.backward()
    with recording(m) as tape:
        (0.5 * ((m(grouped()) - rating) ** 2).sum()).backward()
    gy, gp = tape_grad(tape, m.yj), tape_grad(tape, m.pu)
    assert torch.allclose(gy, y.grad, atol=1e-5) and torch.allclose(gp, pu.grad, atol=1e-5)


def time_inputs():
    n_days = 10
    t_u = np.array([1.0, 4.0, 9.0, 6.0, 0.0], np.float32)
    keys = np.unique(user.numpy() * n_days + day.numpy())
    return n_days, t_u, keys


def time_baseline(**kw):
    from prizenet.models import TimeBaseline

    n_days, t_u, keys = time_inputs()
    torch.manual_seed(0)
    m = TimeBaseline(U, I, 3.0, n_days, t_u, keys, n_bins=3, **kw)
    with torch.no_grad():
        for t in (m.bu, m.alpha, m.but, m.bi, m.bibin, m.cu, m.cut):
            t.weight.normal_(0, 0.3)
    return m


def dev_ref(u, t, t_u, beta=0.4):
    d = t - t_u[u]
    return (1 if d > 0 else -1 if d < 0 else 0) * abs(d) ** beta


def baseline_t_ref(m, u, i, t):
    _, t_u, keys = time_inputs()
    k = list(keys).index(u * 10 + t)
    b = lambda table, r: table.weight[r].item()  # noqa: E731
    bin_ = min(2, t * 3 // 10)
    return (3.0 + b(m.bu, u) + b(m.alpha, u) * dev_ref(u, t, t_u) + b(m.but, k)
            + (b(m.bi, i) + b(m.bibin, i * 3 + bin_)) * (1 + b(m.cu, u) + b(m.cut, k)))


def test_time_features():
    from prizenet.models.timebaseline import TimeFeatures

    n_days, t_u, keys = time_inputs()
    f = TimeFeatures(n_days, t_u, keys, n_bins=3)
    d = f.dev(torch.tensor([0, 1, 2]), torch.tensor([5, 4, 1]))
    assert torch.allclose(d, torch.tensor([4 ** 0.4, 0.0, -(8 ** 0.4)]))
    assert f.bin(torch.arange(10)).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    row, known = f.user_day(torch.tensor([3, 3, 4]), torch.tensor([7, 8, 0]))
    assert known.tolist() == [True, False, False] and keys[row[0]] == 3 * 10 + 7


def time_batch():
    return Batch(user=user, item=item, day=day, rating=rating)


def test_time_baseline_matches_the_formula():
    m = time_baseline()
    pred = m(time_batch())
    for k, (u, i, t) in enumerate(zip(user.tolist(), item.tolist(), day.tolist())):
        assert pred[k].item() == pytest.approx(baseline_t_ref(m, u, i, t), abs=1e-5)


def time_svdpp(**kw):
    from prizenet.models import TimeSVDpp

    n_days, t_u, keys = time_inputs()
    torch.manual_seed(0)
    m = TimeSVDpp(U, I, 3.0, n_days, t_u, keys, nu_indptr, nu_items, n_factors=3, per_day_factors=True,
                  n_bins=3, **kw)
    with torch.no_grad():
        for t in (m.alpha_p, m.put, *[getattr(m.baseline, n) for n in ("bu", "alpha", "but", "bi", "bibin", "cu", "cut")]):
            t.weight.normal_(0, 0.3)
    return m


def test_time_svdpp_matches_the_formula_and_its_gradients():
    m = time_svdpp()
    _, t_u, keys = time_inputs()
    leaves = {n: getattr(m, n).weight.detach().clone().requires_grad_(True) for n in ("pu", "alpha_p", "put", "yj", "qi")}
    loss, preds = 0, []
    for u, i, t, r in zip(user.tolist(), item.tolist(), day.tolist(), rating.tolist()):
        k = list(keys).index(u * 10 + t)
        z = sum(leaves["yj"][j] for j in nu_lists[u]) / len(nu_lists[u]) ** 0.5
        p_t = leaves["pu"][u] + leaves["alpha_p"][u] * dev_ref(u, t, t_u) + leaves["put"][k]
        pred = baseline_t_ref(m.baseline, u, i, t) + leaves["qi"][i] @ (p_t + z)
        preds.append(pred.item())
        loss = loss + 0.5 * (pred - r) ** 2
    loss.backward()
    b = grouped()
    b.day = day
    with recording(m) as tape:
        pred = m(b)
        (0.5 * ((pred - rating) ** 2).sum()).backward()
    assert np.allclose(pred.detach().numpy(), preds, atol=1e-5)
    for name, leaf in leaves.items():
        assert torch.allclose(tape_grad(tape, getattr(m, name)), leaf.grad, atol=1e-5), name


@pytest.mark.parametrize("make", [svdpp, time_svdpp])
def test_grouped_models_damp_heavy_user_steps(make):
    # A user with many ratings in one batch moves at most by the mean of its updates.
    m = make(lr_pu=0.5)
    u = torch.zeros(200, dtype=torch.long)
    i = torch.arange(200) % I
    b = grouped(u, i, torch.full((200,), 5.0))
    b.day = torch.zeros(200, dtype=torch.long)
    before = m.pu.weight[0].clone()
    opt = RowOptimizer(m, "sgd")
    with recording(m) as tape:
        (0.5 * ((m(b) - b.rating) ** 2).sum()).backward()
    summed = sum(rows.grad + m.pu.reg * rows.detach() for t, _, rows, _ in tape if t is m.pu).sum(0)
    opt.step(tape)
    # 200 ratings at lr 0.5 would move pu by 100x its gradient; damped, by (1 - 0.5^200) / 200.
    assert torch.allclose(m.pu.weight[0] - before, -summed / 200, atol=1e-6)


def test_svdpp_prediction_in_user_chunks_is_the_same(monkeypatch):
    from prizenet.models import svdpp as module

    m = svdpp()
    with torch.no_grad():
        whole = m(batch())
        monkeypatch.setattr(module, "PREDICT_ROWS", 2)  # force one or two users per chunk
        chunked = m(batch())
    assert torch.allclose(whole, chunked, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_svd_sgd_epoch_is_korens_per_rating_loop(backend):
    m = svd(lr_bu=0.01, lr_bi=0.02, lr_pu=0.03, lr_qi=0.04, reg_bu=0.1, reg_bi=0.2, reg_pu=0.3, reg_qi=0.4)
    bu, bi, pu, qi = (t.weight.detach().clone().double() for t in (m.bu, m.bi, m.pu, m.qi))
    sse = 0.0
    for u, i, r in zip(user.tolist(), item.tolist(), rating.tolist()):  # Surprise's SVD.fit, one epoch
        e = r - (3.0 + bu[u] + bi[i] + qi[i] @ pu[u])
        sse += float(e) ** 2
        bu[u] += 0.01 * (e - 0.1 * bu[u])
        bi[i] += 0.02 * (e - 0.2 * bi[i])
        pu[u], qi[i] = pu[u] + 0.03 * (e * qi[i] - 0.3 * pu[u]), qi[i] + 0.04 * (e * pu[u] - 0.4 * qi[i])
    got = m.sgd_epoch(batch(), backend=backend)
    assert got == pytest.approx(sse, rel=1e-5)
    for t, want in zip((m.bu, m.bi, m.pu, m.qi), (bu, bi, pu, qi)):
        assert torch.allclose(t.weight.double(), want, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_svdpp_sgd_epoch_is_the_per_user_loop(backend):
    m = svdpp(lr_bu=0.01, lr_bi=0.02, lr_pu=0.03, lr_qi=0.04, lr_yj=0.05, reg_bu=0.1, reg_bi=0.2, reg_pu=0.3,
              reg_qi=0.4, reg_yj=0.5)
    bu, bi, pu, qi, y = (t.weight.detach().clone().double() for t in (m.bu, m.bi, m.pu, m.qi, m.yj))
    order = torch.argsort(user, stable=True)  # whole users, one after another
    u_, i_, r_ = user[order], item[order], rating[order]
    sse = 0.0
    for u in u_.unique_consecutive().tolist():
        norm = len(nu_lists[u]) ** -0.5
        z = sum(y[j] for j in nu_lists[u]) * norm
        acc = torch.zeros(3, dtype=torch.float64)
        for i, r in zip(i_[u_ == u].tolist(), r_[u_ == u].tolist()):
            e = r - (3.0 + bu[u] + bi[i] + qi[i] @ (pu[u] + z))
            sse += float(e) ** 2
            bu[u] += 0.01 * (e - 0.1 * bu[u])
            bi[i] += 0.02 * (e - 0.2 * bi[i])
            acc += e * qi[i]
            pu[u], qi[i] = pu[u] + 0.03 * (e * qi[i] - 0.3 * pu[u]), qi[i] + 0.04 * (e * (pu[u] + z) - 0.4 * qi[i])
        for j in nu_lists[u]:
            y[j] += 0.05 * (acc * norm - 0.5 * y[j])
    got = m.sgd_epoch(batch(u_, i_, r_), backend=backend)
    assert got == pytest.approx(sse, rel=1e-5)
    for t, want in zip((m.bu, m.bi, m.pu, m.qi, m.yj), (bu, bi, pu, qi, y)):
        assert torch.allclose(t.weight.double(), want, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_svdpp_sgd_epoch_lowers_the_error_and_matches_its_forward(backend):
    # The kernel's predictions are the model's: the SSE it reports for an epoch at lr 0
    # is the forward pass's, term for term (all per-day, bin and drift terms included).
    m = time_svdpp(lr_pu=0.0, lr_qi=0.0, lr_yj=0.0, lr_alpha_p=0.0, lr_put=0.0, lr_bu=0.0, lr_bi=0.0, lr_alpha=0.0,
                   lr_but=0.0, lr_bibin=0.0, lr_cu=0.0, lr_cut=0.0)
    order = torch.argsort(user, stable=True)
    b = Batch(user=user[order], item=item[order], day=day[order], rating=rating[order])
    with torch.no_grad():
        want = float(((m(b) - b.rating) ** 2).sum())
    assert m.sgd_epoch(b, backend=backend) == pytest.approx(want, rel=1e-5)
    m = time_svdpp()
    first = m.sgd_epoch(b, backend=backend)
    for _ in range(30):
        last = m.sgd_epoch(b, backend=backend)
    assert last < 0.5 * first


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_svdpp_sgd_epoch_steps_along_the_gradient(backend):
    # One rating, no L2: each parameter moves by lr * e * d(prediction)/d(parameter), the
    # derivative taken by autograd through the torch forward.
    lr = dict(lr_pu=1e-3, lr_qi=1e-3, lr_yj=1e-3, lr_alpha_p=1e-3, lr_put=1e-3, lr_bu=1e-3, lr_bi=1e-3,
              lr_alpha=1e-3, lr_but=1e-3, lr_bibin=1e-3, lr_cu=1e-3, lr_cut=1e-3)
    zero = {k.replace("lr_", "reg_"): 0.0 for k in lr}
    m = time_svdpp(**lr, **zero)
    one = Batch(user=user[3:4], item=item[3:4], day=day[3:4], rating=rating[3:4])
    one.users, one.inverse = user[3:4], torch.zeros(1, dtype=torch.long)
    names = ["pu", "alpha_p", "put", "qi", "yj"] + [f"baseline.{n}" for n in ("bu", "alpha", "but", "bi", "bibin", "cu", "cut")]
    get = lambda n: m.get_submodule(n).weight  # noqa: E731
    before = {n: get(n).detach().clone() for n in names}
    with recording(m) as tape:
        pred = m(one)
    pred.sum().backward()
    grad = {n: torch.zeros_like(before[n]) for n in names}
    for table, idx, rows, *_ in tape:
        name = next(n for n in names if m.get_submodule(n) is table)
        grad[name].index_add_(0, idx, rows.grad)
    e = float(rating[3] - pred.detach())
    m.sgd_epoch(Batch(user=user[3:4], item=item[3:4], day=day[3:4], rating=rating[3:4]), backend=backend)
    for n in names:
        assert torch.allclose(get(n) - before[n], 1e-3 * e * grad[n], atol=1e-7), n


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_dense_parameters_next_to_tables_are_trained_too(kind):
    from prizenet.models.tables import SparseTable

    class Mixed(torch.nn.Module):  # an embedding table and an MLP weight, as NCF will have
        def __init__(self):
            super().__init__()
            self.pu = SparseTable(U, 2, lr=0.1, reg=0.0, init_std=0.1)
            self.head = torch.nn.Linear(2, 1)

        def forward(self, b):
            return self.head(self.pu(b.user)).squeeze(1)

    torch.manual_seed(0)
    m = Mixed()
    opt = RowOptimizer(m, kind, dense_lr=0.05)
    w0, p0 = m.head.weight.detach().clone(), m.pu.weight.clone()
    with recording(m) as tape:
        (0.5 * ((m(batch()) - rating) ** 2).sum()).backward()
    opt.step(tape)
    assert not torch.equal(m.head.weight, w0) and not torch.equal(m.pu.weight, p0)
    assert m.head.weight.grad is None  # zeroed for the next step


def test_repeats_counts_equal_entries_without_unique():
    from prizenet.models.tables import repeats

    idx = torch.tensor([5, 2, 5, 9, 2, 5, 0])
    _, inverse, counts = torch.unique(idx, return_inverse=True, return_counts=True)
    assert torch.equal(repeats(idx), counts[inverse])
    assert repeats(torch.zeros(0, dtype=torch.long)).numel() == 0
