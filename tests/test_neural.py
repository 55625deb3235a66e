"""NeuMF and AutoRec against loop-based evaluations of their formulas, on a tiny dataset."""

import math

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models import AutoRec, NeuMF
from prizenet.models.tables import recording
from prizenet.optim import RowOptimizer

U, I = 5, 4
user = torch.tensor([0, 0, 1, 2, 3, 3, 3, 1])
item = torch.tensor([0, 1, 1, 2, 0, 2, 3, 3])
rating = torch.tensor([4.0, 3.0, 5.0, 2.0, 1.0, 4.5, 3.5, 2.0])
# user 4 and, in the AutoRec tests, item 3 have no training rating


def pairs(u, i, r=None):
    u, i = torch.as_tensor(u), torch.as_tensor(i)
    return Batch(user=u, item=i, day=torch.zeros_like(u), rating=torch.zeros(len(u)) if r is None else r)


def ncf(**kw):
    torch.manual_seed(0)
    m = NeuMF(U, I, mu=3.0, n_factors=3, mlp_layers=[6, 4, 2], init_std=0.5, **kw)
    with torch.no_grad():
        m.bu.weight.normal_()
        m.bi.weight.normal_()
    return m


@torch.no_grad()
def ncf_by_loops(m, u, i):
    """mu + bu + bi + h·[pu ⊙ qi ; φ(pu_mlp ⊕ qi_mlp)], every sum written out."""
    parts = []
    if m.branches != "mlp":
        parts += [m.pu.weight[u, f] * m.qi.weight[i, f] for f in range(m.pu.weight.shape[1])]
    if m.branches != "gmf":
        x = list(m.pu_mlp.weight[u]) + list(m.qi_mlp.weight[i])
        for layer in m.mlp:
            if isinstance(layer, torch.nn.Linear):
                x = [max(0.0, float(layer.bias[o]) + sum(float(layer.weight[o, k]) * float(x[k]) for k in range(len(x))))
                     for o in range(layer.out_features)]
        parts += x
    h = m.h.weight[0]
    return 3.0 + float(m.bu.weight[u]) + float(m.bi.weight[i]) + sum(float(h[k]) * float(p) for k, p in enumerate(parts))


@pytest.mark.parametrize("branches", ["neumf", "gmf", "mlp"])
def test_ncf_prediction_matches_the_formula(branches):
    m = ncf(branches=branches)
    pred = m(pairs(user, item))
    assert pred.shape == (len(user),)
    for k, (u, i) in enumerate(zip(user.tolist(), item.tolist())):
        assert pred[k].item() == pytest.approx(ncf_by_loops(m, u, i), abs=1e-5)
    assert m.h.in_features == {"neumf": 3 + 2, "gmf": 3, "mlp": 2}[branches]
    assert hasattr(m, "mlp") == (branches != "gmf") and hasattr(m, "pu") == (branches != "mlp")


def test_ncf_rejects_unknown_branches_and_odd_towers():
    with pytest.raises(ValueError, match="branches"):
        NeuMF(U, I, 3.0, branches="both")
    with pytest.raises(ValueError, match="mlp_layers"):
        NeuMF(U, I, 3.0, mlp_layers=[7, 4])


def test_ncf_unseen_users_and_items_predict_from_the_biases():
    m = ncf()
    m.see(np.bincount(user.numpy(), minlength=U), np.array([2, 2, 2, 0]))
    pred = m(pairs([4, 0, 2], [1, 3, 2]))
    assert pred[0].item() == pytest.approx(3.0 + (m.bu.weight[4] + m.bi.weight[1]).item(), abs=1e-6)
    assert pred[1].item() == pytest.approx(3.0 + (m.bu.weight[0] + m.bi.weight[3]).item(), abs=1e-6)
    assert pred[2].item() == pytest.approx(ncf_by_loops(m, 2, 2), abs=1e-5)  # seen pairs keep the network


def test_ncf_dropout_is_on_in_training_only():
    m = ncf(dropout=0.5, branches="mlp")
    m.eval()
    a, b = m(pairs(user, item)), m(pairs(user, item))
    assert torch.equal(a, b)
    assert torch.allclose(a, torch.tensor([ncf_by_loops(m, u, i) for u, i in zip(user.tolist(), item.tolist())]),
                          atol=1e-5)
    m.train()
    torch.manual_seed(1)
    assert not torch.allclose(m(pairs(user, item)), a)


def test_ncf_adam_trains_tables_and_tower_at_the_models_rates():
    m = ncf(lr_emb=0.01, lr_bias=0.01, lr_mlp=0.02, reg_mlp=0.1)
    opt = RowOptimizer(m, "adam")
    assert opt.dense.param_groups[0]["lr"] == 0.02 and opt.dense.param_groups[0]["weight_decay"] == 0.1
    tower0 = [p.clone() for p in m.mlp.parameters()]
    losses = []
    for _ in range(100):
        with recording(m) as tape:
            loss = 0.5 * ((m(pairs(user, item)) - rating) ** 2).sum()
        loss.backward()
        opt.step(tape)
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert all(not torch.equal(a, b) for a, b in zip(tower0, m.mlp.parameters()))
    assert torch.count_nonzero(m.pu.weight[4]) == 3  # user 4 never rated: its rows are untouched
    assert torch.equal(m.pu.weight[4], ncf().pu.weight[4])


# AutoRec: item i's input is its training ratings over users, as a CSR by item.
def item_csr(u=user, i=item, r=rating, n_items=I):
    order = np.argsort(i.numpy(), kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(i.numpy(), minlength=n_items))])
    return indptr, u.numpy()[order], r.numpy()[order]


def autorec(u=user, i=item, r=rating, **kw):
    torch.manual_seed(0)
    m = AutoRec(U, I, mu=3.0, item_indptr=item_csr(u, i, r)[0], item_users=item_csr(u, i, r)[1],
                item_ratings=item_csr(u, i, r)[2], hidden=3, init_std=0.3, **kw)
    with torch.no_grad():
        m.b.weight.normal_()
        m.b_h.normal_()
    return m


@torch.no_grad()
def autorec_by_loops(m, u, i, observed):
    """mu + b[u] + W[u]ᵀ sigmoid(Σ_{v rated i} r_vi·V[v] + b_h); ``observed`` lists (v, j, r)."""
    k = m.b_h.numel()
    pre = [float(m.b_h[f]) + sum(r * float(m.V.weight[v, f]) for v, j, r in observed if j == i) for f in range(k)]
    h = [1 / (1 + math.exp(-x)) for x in pre]
    return 3.0 + float(m.b.weight[u]) + sum(float(m.W.weight[u, f]) * h[f] for f in range(k))


def item_batch(items):
    """A training batch holding every rating of ``items`` (what the loader's group_by="item" yields)."""
    keep = torch.isin(item, torch.tensor(items))
    u, i, r = user[keep], item[keep], rating[keep]
    distinct = torch.tensor(items)
    inverse = torch.tensor([items.index(j) for j in i.tolist()])
    b = Batch(user=u, item=i, day=torch.zeros_like(u), rating=r, items=distinct, inverse=inverse)
    return b


def test_autorec_training_and_prediction_match_the_formula():
    m = autorec()
    observed = list(zip(user.tolist(), item.tolist(), rating.tolist()))
    b = item_batch([2, 0])
    got = m(b)
    want = [autorec_by_loops(m, u, i, observed) for u, i in zip(b.user.tolist(), b.item.tolist())]
    assert got.shape == (len(b),) and np.allclose(got.detach(), want, atol=1e-5)
    # any (user, item) pair, from the stored training ratings: in eval mode and out of it
    all_u, all_i = torch.arange(U).repeat_interleave(3), torch.arange(3).repeat(U)
    want = [autorec_by_loops(m, u, i, observed) for u, i in zip(all_u.tolist(), all_i.tolist())]
    assert np.allclose(m(pairs(all_u, all_i)).detach(), want, atol=1e-5)
    m.eval()
    assert np.allclose(m(pairs(all_u, all_i)), want, atol=1e-5)


def test_autorec_loss_counts_observed_ratings_only():
    m = autorec()
    b = item_batch([1, 3])  # item 1: users 0, 1; item 3: users 3, 1 -> users 2 and 4 rated neither
    W0, V0 = m.W.weight.clone(), m.V.weight.clone()
    with recording(m) as tape:
        e = m(b) - b.rating
        loss = 0.5 * (e * e).sum()
    # the loss of the full reconstruction, masked to the observed entries
    with torch.no_grad():
        h = m.codes()
        full = 3.0 + m.b.weight[:, None] + m.W.weight @ h.T  # [users, items]
        mask = torch.zeros(U, I, dtype=torch.bool)
        mask[b.user, b.item] = True
        truth = torch.zeros(U, I)
        truth[b.user, b.item] = b.rating
        assert loss.item() == pytest.approx((0.5 * ((full - truth)[mask] ** 2).sum()).item(), rel=1e-5)
        assert ((full - truth)[~mask] ** 2).sum() > 0  # unobserved cells do not reconstruct to 0
    loss.backward()
    RowOptimizer(m, "adam").step(tape)
    for v in (2, 4):  # no rating of these users in the batch: their rows did not move
        assert torch.equal(m.W.weight[v], W0[v]) and torch.equal(m.V.weight[v], V0[v])
    assert not torch.equal(m.W.weight[0], W0[0]) and not torch.equal(m.V.weight[3], V0[3])


def test_autorec_unseen_users_and_items_predict_from_the_biases():
    keep = item != 3  # item 3 has no training rating
    m = autorec(user[keep], item[keep], rating[keep])
    m.see(np.bincount(user[keep].numpy(), minlength=U), np.bincount(item[keep].numpy(), minlength=I))
    m.eval()
    pred = m(pairs([0, 4, 4], [3, 0, 3]))
    assert pred[0].item() == pytest.approx(3.0 + m.b.weight[0].item(), abs=1e-6)  # unseen item: mu + b[u]
    assert torch.count_nonzero(m.W.weight[4]) == 0  # unseen user: no code term, b[4] never trained
    assert pred[1].item() == pytest.approx(3.0 + m.b.weight[4].item(), abs=1e-6)


def test_autorec_item_codes_are_cached_in_eval_mode_only():
    m = autorec()
    m.eval()
    before = m(pairs([0], [0]))
    with torch.no_grad():
        m.V.weight.add_(1.0)
    assert torch.equal(m(pairs([0], [0])), before)  # cached for the rest of this evaluation
    m.train()
    m.eval()
    assert not torch.equal(m(pairs([0], [0])), before)  # re-encoded after training resumed


def test_autorec_codes_in_chunks_equal_codes_at_once(monkeypatch):
    import prizenet.models.autorec as module

    m = autorec()
    whole = m.codes()
    monkeypatch.setattr(module, "ENCODE_ROWS", 2)  # one or two items a chunk
    assert torch.allclose(m.codes(), whole, atol=1e-6) and whole.shape == (I, 3)
