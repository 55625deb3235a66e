"""The Bayesian factorization machine's Gibbs sampler (prizenet.models.bfm) against a dense
factorization machine computed directly: r̂ = w0 + Xw + ½Σ_f ((XV)_f² − (X²)(V²)_f)."""

import numpy as np
import pytest
import torch

from prizenet.data import Batch
from prizenet.models.bfm import FEATURES, BayesianFM

U, I, D = 7, 5, 3
PROBIT = dict(likelihood="ordered_probit", rating_levels=np.arange(1.0, 6.0))


def problem(seed=0, n=30, cold_user=None):
    """A tiny rating set: (user, item, day, rating) with every pair distinct; N(u) also
    holds one extra (probe-like) pair per user; watch those extra pairs."""
    g = np.random.default_rng(seed)
    pairs = g.permutation(U * I)[: n + U]
    user, item = pairs // I, pairs % I
    if cold_user is not None:  # no training ratings, only watched pairs
        keep = user != cold_user
        user, item = user[keep], item[keep]
    day = g.integers(0, D, len(user))
    rating = g.integers(1, 6, len(user)).astype(np.float32)
    train, watch = np.arange(len(user)) >= U, np.arange(len(user)) < U
    if cold_user is not None:
        extra = np.arange(I)
        user = np.concatenate([user, np.full(I, cold_user)])
        item = np.concatenate([item, extra])
        day = np.concatenate([day, g.integers(0, D, I)])
        rating = np.concatenate([rating, np.zeros(I, np.float32)])
        train = np.concatenate([train, np.zeros(I, bool)])
        watch = np.concatenate([watch, np.ones(I, bool)])
    order = np.lexsort((item, user))
    nu_indptr = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=U))])
    nu_items = item[order]
    return dict(user=user, item=item, day=day, rating=rating, train=train, watch=watch, nu_indptr=nu_indptr,
                nu_items=nu_items)


def make(p, seed=0, **kw):
    torch.manual_seed(seed)
    return build(p, **kw)


def build(p, **kw):  # from the torch generator as it stands
    w = p["watch"]
    kw.setdefault("features", "timesvdpp_flipped")
    kw.setdefault("n_factors", 2)
    if "userday" in kw["features"]:
        kw.setdefault("user_day_keys", user_days(p))
    return BayesianFM(U, I, D, 3.0, p["nu_indptr"], p["nu_items"], p["user"][w], p["item"][w], p["day"][w], **kw)


def user_days(p):
    """The sorted user * D + day of every pair of the problem (training and watched)."""
    return np.unique(p["user"].astype(np.int64) * D + p["day"])


def batch(p, rows=None):
    rows = p["train"] if rows is None else rows
    t = lambda a: torch.from_numpy(np.asarray(a)[rows]).long()  # noqa: E731
    return Batch(user=t(p["user"]), item=t(p["item"]), day=t(p["day"]),
                 rating=torch.from_numpy(p["rating"][rows]))


def design(m: BayesianFM, p, rows):
    """The dense feature matrix X of ``rows``, columns in the model's block order."""
    cols = []
    u, i, t = p["user"][rows], p["item"][rows], p["day"][rows]
    nu_ind, nu = p["nu_indptr"], p["nu_items"]
    for b in m.blocks:
        if b == "user":
            x = np.eye(U)[u]
        elif b == "item":
            x = np.eye(I)[i]
        elif b == "day":
            x = np.eye(D)[t]
        elif b == "userday":  # one column per known (user, day) the model was given, and one for any other
            keys = m._user_days
            key = u.astype(np.int64) * D + t
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            x = np.eye(len(keys) + 1)[np.where((keys[pos] == key) & (t < D), pos, len(keys))]
        elif b == "nu":
            x = np.zeros((len(u), I))
            for r, uu in enumerate(u):
                js = nu[nu_ind[uu]:nu_ind[uu + 1]]
                x[r, js] = 1 / np.sqrt(max(len(js), 1))
        else:  # ni: the users who rated or were asked to rate the item
            x = np.zeros((len(u), U))
            for r, ii in enumerate(i):
                ws = [w for w in range(U) if ii in nu[nu_ind[w]:nu_ind[w + 1]]]
                x[r, ws] = 1 / np.sqrt(max(len(ws), 1))
        cols.append(x)
    return np.hstack(cols)


def params(m):
    w = np.concatenate([getattr(m, f"w_{b}").numpy() for b in m.blocks])
    V = np.concatenate([getattr(m, f"v_{b}").numpy() for b in m.blocks])
    return w, V


def dense_fm(X, w0, w, V):
    XV = X @ V
    return w0 + X @ w + 0.5 * ((XV ** 2) - (X ** 2) @ (V ** 2)).sum(1)


class Fixed:
    """A generator stub: every standard normal draw is ``z``."""

    def __init__(self, z):
        self.z = z

    def standard_normal(self, n=None):
        return self.z if n is None else np.full(n, self.z)


@pytest.mark.parametrize("features", list(FEATURES))
def test_relational_sums_equal_the_dense_fm(features):
    p = problem()
    m = make(p, features=features, n_factors=3)
    for b in m.blocks:  # non-zero linear weights too
        getattr(m, f"w_{b}").normal_()
    rows = np.arange(len(p["user"]))
    X = design(m, p, rows)
    want = dense_fm(X, float(m.w0), *params(m))
    got = m(batch(p, rows)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)  # forward returns float32
    ents = m._entities(p["user"][rows], p["item"][rows], p["day"][rows])
    np.testing.assert_allclose(m._predict(ents), want, rtol=1e-12, atol=1e-12)


def brute_force_draws(m, p, linear, z, alpha):
    """Each parameter of the sweep's phase drawn in turn, in the sampler's order (``scan``
    "sides": side after side, in a side factor after factor; "factors": factor after
    factor, in a factor side after side; the linear weights side after side; in both a
    side's one-hot block, then its implicit block), from its conditional found by brute
    force: the log posterior is quadratic in one parameter, so three evaluations of the
    dense FM give its precision and mean."""
    rows = np.flatnonzero(p["train"])
    X, y = design(m, p, rows), p["rating"][rows].astype(np.float64)
    w, V = params(m)
    offset = np.cumsum([0] + [len(getattr(m, f"w_{b}")) for b in m.blocks])
    factors = range(1 if linear else m.k)
    if m.scan == "sides" or linear:
        order = [(s, f) for s in m.sides for f in factors]
    else:
        order = [(s, f) for f in factors for s in m.sides]
    for s, f in order:
        mu, lam = (m.mu_w.numpy(), m.lam_w.numpy()) if linear else (m.mu_v[:, f].numpy(), m.lam_v[:, f].numpy())
        for b in [s.name] + ([s.implicit] if s.implicit else []):
            g = m.blocks.index(b)
            for j in range(offset[g], offset[g + 1]):
                def logpost(theta):
                    ww, VV = w.copy(), V.copy()
                    (ww if linear else VV[:, f])[j] = theta
                    r = y - dense_fm(X, float(m.w0), ww, VV)
                    return -0.5 * alpha * r @ r - 0.5 * lam[g] * (theta - mu[g]) ** 2
                a, b0, c = logpost(-1.0), logpost(0.0), logpost(1.0)
                prec = -(a - 2 * b0 + c)
                mean = (c - a) / 2 / prec
                (w if linear else V[:, f])[j] = mean + z / np.sqrt(prec)
    return w, V


@pytest.mark.parametrize("features", ["mf", "svdpp", "timesvdpp_flipped", "timesvdpp_userday_flipped"])
@pytest.mark.parametrize("phase", ["linear", "sides", "factors"])  # the factors in either scan
@pytest.mark.parametrize("z", [0.0, 1.0])  # z = 0: the conditional mean; z = 1: mean + its sd
def test_each_conditional_equals_the_brute_force_posterior(features, phase, z):
    p = problem(1)
    linear = phase == "linear"
    m = make(p, features=features, n_factors=3, scan="sides" if linear else phase)
    g = torch.Generator().manual_seed(3)
    for b in m.blocks:
        getattr(m, f"w_{b}").normal_(generator=g)
    m.mu_w.normal_(generator=g), m.mu_v.normal_(generator=g)
    m.lam_w.uniform_(0.5, 2.0, generator=g), m.lam_v.uniform_(0.5, 2.0, generator=g)
    alpha = 1.7
    want_w, want_V = brute_force_draws(m, p, linear, z, alpha)

    from prizenet.models.bfm import _Rows
    R = m._rows = _Rows(batch(p), m.sides, m._entities)
    e = R.y - m._predict(R.ents)
    if m.scan == "factors" and not linear:
        m._factor_major(Fixed(z), R, e, alpha, m._side_sums()[1])
    else:
        m._phase(Fixed(z), R, e, alpha, linear, m._side_sums()[1])
    got_w, got_V = params(m)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got_V, want_V, rtol=1e-9, atol=1e-10)
    # the residuals kept up to date on the way (through each side's view) equal those of the new parameters
    np.testing.assert_allclose(e, R.y - m._predict(R.ents), atol=1e-10)


class Mean:
    """A generator stub that draws each distribution's mean."""

    def gamma(self, shape, scale):
        return shape * scale

    def standard_normal(self, n=None):
        return 0.0 if n is None else np.zeros(n)


def test_hyper_parameters_follow_their_normal_gamma_conditionals():
    p = problem()
    m = make(p, alpha_0=2.0, beta_0=3.0, gamma_0=4.0, mu_0=0.5)
    theta = np.random.default_rng(0).normal(size=(9, 2))
    mu, lam = torch.tensor([0.2, -0.1], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    m._hyper(Mean(), theta, mu, lam)
    # Gamma((alpha_0 + n)/2, rate (beta_0 + Σ(θ − μ_old)²)/2) has mean (alpha_0 + n) / (beta_0 + Σ(θ − μ_old)²)
    want_lam = (2.0 + 9) / (3.0 + ((theta - [0.2, -0.1]) ** 2).sum(0))
    np.testing.assert_allclose(lam.numpy(), want_lam)
    np.testing.assert_allclose(mu.numpy(), (4.0 * 0.5 + theta.sum(0)) / (4.0 + 9))


def test_noise_precision_and_w0_follow_their_conditionals(monkeypatch):
    p = problem()
    m = make(p, features="mf", alpha_0=2.0, beta_0=3.0, reg_0=5.0)
    b = batch(p)
    y = b.rating.double().numpy()
    e = y - m._predict(np.stack([b.user.numpy(), b.item.numpy()]).astype(np.int32))
    n = len(y)
    monkeypatch.setattr(m, "_generator", lambda: Mean())
    m.sweep(b)
    alpha = (2.0 + n) / (3.0 + e @ e)
    assert float(m.alpha) == pytest.approx(alpha, rel=1e-5)
    w0 = alpha * (e.sum() + n * 3.0) / (alpha * n + 5.0)
    # w0 is drawn first, given the initial parameters, and not moved after
    assert float(m.w0) == pytest.approx(w0, rel=1e-9)


def run(m, b, n):
    return [float(m.sweep(b)) for _ in range(n)]


@pytest.mark.parametrize("likelihood", [{}, PROBIT], ids=["normal", "ordered_probit"])
def test_probe_predictions_are_the_running_average_of_the_kept_samples(likelihood):
    p = problem(2)
    m = make(p, burn_in=2, **likelihood)
    b = batch(p)
    wb = batch(p, p["watch"])
    samples = []
    for _ in range(6):
        m.sweep(b)
        m.train()
        samples.append(m(wb).double().numpy())
    m.eval()
    np.testing.assert_allclose(m(wb).double().numpy(), np.mean(samples[2:], 0), rtol=1e-5)
    assert int(m.n_kept) == 4
    m.train()  # in training mode the current sample
    np.testing.assert_allclose(m(wb).double().numpy(), samples[-1], rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(scan="sides"), dict(scan="factors"), PROBIT,
                                dict(PROBIT, scan="factors", features="timesvdpp_userday_flipped")],
                         ids=["sides", "factors", "ordered_probit", "userday_probit"])
def test_a_chain_resumed_mid_way_equals_the_unbroken_chain(kw):
    p = problem(3)
    b = batch(p)
    whole = make(p, seed=0, **kw)
    run(whole, b, 6)
    half = make(p, seed=0, **kw)
    run(half, b, 3)
    state = {k: v.clone() for k, v in half.state_dict().items()}
    resumed = make(p, seed=99, **kw)  # another init: everything comes from the checkpoint
    resumed.load_state_dict(state)
    run(resumed, b, 3)
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0, msg=k)
    whole.eval(), resumed.eval()
    wb = batch(p, p["watch"])
    assert torch.equal(whole(wb), resumed(wb))


DEFAULT_SWEEPS = 6


@pytest.mark.parametrize("change", [dict(n_factors=3), dict(features="svdpp"), dict(burn_in=1),
                                    (dict(features="timesvdpp_flipped"), dict(features="timesvdpp_userday_flipped")),
                                    dict(init_std=1.0), dict(alpha_0=50.0), dict(beta_0=50.0),
                                    dict(gamma_0=50.0), dict(mu_0=1.0), dict(reg_0=1e4), dict(scan="factors"),
                                    dict(chains=2), PROBIT, (PROBIT, dict(PROBIT, cut_nu=0.5)),
                                    (PROBIT, dict(PROBIT, reg_0=1e4))])
def test_every_hyper_parameter_changes_the_result(change):
    """Each setting against the defaults (or a pair: the ordered probit's own settings
    against the ordered probit's defaults)."""
    p = problem(4)
    b, wb = batch(p), batch(p, p["watch"])
    preds = []
    for kw in (change if isinstance(change, tuple) else ({}, change)):
        m = make(p, seed=0, **kw)
        run(m, b, DEFAULT_SWEEPS)
        m.eval()
        preds.append(m(wb).double().numpy())
    assert np.abs(preds[0] - preds[1]).max() > 1e-3, change


def planted(seed=0, users=300, items=120, k=3, density=0.3, sigma=0.3):
    g = np.random.default_rng(seed)
    P, Q = g.normal(0, 0.6, (users, k)), g.normal(0, 0.6, (items, k))
    bu, bi = g.normal(0, 0.3, users), g.normal(0, 0.3, items)
    mask = g.random((users, items)) < density
    user, item = np.nonzero(mask)
    truth = 3.5 + bu[user] + bi[item] + (P[user] * Q[item]).sum(1)
    rating = truth + g.normal(0, sigma, len(user))
    test = g.random(len(user)) < 0.1
    order = np.lexsort((item, user))
    nu_indptr = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=users))])
    return user, item, rating.astype(np.float32), truth, test, nu_indptr, item[order]


def test_a_chain_on_planted_factors_recovers_them():
    user, item, rating, truth, test, nu_indptr, nu_items = planted()
    torch.manual_seed(0)
    zero = np.zeros(test.sum(), np.int64)
    m = BayesianFM(300, 120, 1, 3.5, nu_indptr, nu_items, user[test], item[test], zero, n_factors=3, features="mf")
    tr = ~test
    b = Batch(user=torch.from_numpy(user[tr]).long(), item=torch.from_numpy(item[tr]).long(),
              day=torch.zeros(tr.sum(), dtype=torch.long), rating=torch.from_numpy(rating[tr]))
    run(m, b, 60)
    m.eval()
    pred = m(Batch(user=torch.from_numpy(user[test]).long(), item=torch.from_numpy(item[test]).long(),
                   day=torch.from_numpy(zero), rating=torch.zeros(test.sum()))).double().numpy()
    # the planted r̂ (without noise) is recovered to well under the noise (0.3) ...
    err = np.sqrt(np.mean((pred - truth[test]) ** 2))
    assert err < 0.15, err
    # ... and so is the noise: the sampled precision α is about 1/0.3²
    assert 1 / np.sqrt(float(m.alpha)) == pytest.approx(0.3, rel=0.15)
    # while the prior-mean model (every rating predicted by the mean) is far off
    assert np.sqrt(np.mean((rating[tr].mean() - truth[test]) ** 2)) > 3 * err


def test_an_ordered_probit_chain_on_planted_factors_recovers_them():
    """Ratings 1..5 binned from the planted r̂ plus N(0, 0.5²) at known cut points: the
    chain's expected ratings follow the planted expected ratings closer than the normal
    likelihood's predictions do on the same ratings, and its cut points (on the latent
    scale of unit noise) keep their planted spacing scaled by 1/0.5."""
    from prizenet.models import oprobit

    user, item, _, truth, test, nu_indptr, nu_items = planted(2, sigma=0.5)
    cut = np.array([2.6, 3.2, 3.8, 4.4])
    g = np.random.default_rng(7)
    rating = (1 + np.searchsorted(cut, truth + g.normal(0, 0.5, len(truth)))).astype(np.float32)
    want = oprobit.expected(truth[test] / 0.5, cut / 0.5, np.arange(1.0, 6.0))  # the planted E[rating]
    zero = np.zeros(test.sum(), np.int64)
    tr = ~test
    b = Batch(user=torch.from_numpy(user[tr]).long(), item=torch.from_numpy(item[tr]).long(),
              day=torch.zeros(tr.sum(), dtype=torch.long), rating=torch.from_numpy(rating[tr]))
    err = {}
    for name, kw in (("normal", {}), ("probit", PROBIT)):
        torch.manual_seed(0)
        m = BayesianFM(300, 120, 1, 3.5, nu_indptr, nu_items, user[test], item[test], zero, n_factors=3,
                       features="mf", **kw)
        run(m, b, 60)
        m.eval()
        pred = m(Batch(user=torch.from_numpy(user[test]).long(), item=torch.from_numpy(item[test]).long(),
                       day=torch.from_numpy(zero), rating=torch.zeros(test.sum()))).double().numpy()
        err[name] = np.sqrt(np.mean((pred - want) ** 2))
    assert err["probit"] < 0.95 * err["normal"], err  # measured: 0.389 against 0.419
    assert err["probit"] < 0.35 * np.std(rating[test]), err
    spacing = np.diff(oprobit.cuts(m.cut_a.numpy()))
    np.testing.assert_allclose(spacing, np.diff(cut) / 0.5, rtol=0.2)
    assert 0 < m.scalars()["cut_acceptance"] <= 1


def test_the_ordered_probit_needs_the_rating_levels_and_ratings_on_them():
    p = problem()
    with pytest.raises(ValueError, match="needs rating_levels"):
        make(p, likelihood="ordered_probit")
    m = make(p, likelihood="ordered_probit", rating_levels=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="is not one of the rating levels"):
        m.sweep(batch(p))  # the problem's ratings go to 5


def test_a_user_day_outside_the_keys_is_the_one_entity_without_ratings():
    """features=*_userday: a pair on a (user, day) never seen (a recommendation for today)
    takes the extra user-day, whose draws are its prior's; the dense FM with that column
    set gives the same prediction."""
    p = problem(2)
    m = make(p, features="timesvdpp_userday_flipped", n_factors=3)
    keys = user_days(p)
    run(m, batch(p), 3)
    assert m.w_userday.shape[0] == len(keys) + 1
    user, item = np.array([0, 1, p["user"][0]]), np.array([0, 1, p["item"][0]])
    day = np.array([D, D + 5, p["day"][0]])  # two days past the data, and a known (user, day)
    ents = m._entities(user, item, day)
    known = np.isin(user.astype(np.int64) * D + day, keys) & (day < D)
    assert known.tolist() == [False, False, True]
    assert (ents[2][~known] == len(keys)).all() and (ents[2][known] < len(keys)).all()
    X = design(m, dict(p, user=user, item=item, day=day), np.arange(3))
    g = m.blocks.index("userday")
    off = np.cumsum([0] + [len(getattr(m, f"w_{b}")) for b in m.blocks])
    assert (X[~known, off[g + 1] - 1] == 1).all()  # the design's own lookup agrees
    want = dense_fm(X, float(m.w0), *params(m))
    m.train()  # the current sample (these pairs are not watched)
    got = m(Batch(user=torch.from_numpy(user), item=torch.from_numpy(item), day=torch.from_numpy(day),
                  rating=torch.zeros(3))).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_the_user_day_features_need_the_user_day_keys():
    p = problem()
    with pytest.raises(ValueError, match="needs user_day_keys"):
        make(p, features="timesvdpp_userday", user_day_keys=None)
    with pytest.raises(ValueError, match="sorted and distinct"):
        make(p, features="timesvdpp_userday", user_day_keys=user_days(p)[::-1])


def test_a_cold_user_falls_back_to_what_the_items_carry():
    """A user with no training rating keeps prior draws: averaged over samples, its
    predictions follow the items' effects, not noise."""
    user, item, rating, truth, test, nu_indptr, nu_items = planted(1)
    cold = user == 0
    watch_items = np.arange(120)
    torch.manual_seed(0)
    m = BayesianFM(300, 120, 1, 3.5, nu_indptr, nu_items, np.zeros(120, np.int64), watch_items,
                   np.zeros(120, np.int64), n_factors=3, features="mf")
    tr = ~cold
    b = Batch(user=torch.from_numpy(user[tr]).long(), item=torch.from_numpy(item[tr]).long(),
              day=torch.zeros(tr.sum(), dtype=torch.long), rating=torch.from_numpy(rating[tr]))
    run(m, b, 40)
    m.eval()
    pred = m(Batch(user=torch.zeros(120, dtype=torch.long), item=torch.from_numpy(watch_items).long(),
                   day=torch.zeros(120, dtype=torch.long), rating=torch.zeros(120))).double().numpy()
    item_mean = np.bincount(item[tr], weights=rating[tr], minlength=120) / np.bincount(item[tr], minlength=120)
    assert np.all(np.isfinite(pred))
    assert np.corrcoef(pred, item_mean)[0, 1] > 0.9
    assert np.abs(pred - item_mean).mean() < 0.25



@pytest.mark.parametrize("scan", ["sides", "factors"])
def test_a_chain_does_not_depend_on_the_thread_count(scan):
    """The parallel draws split entities between threads, each entity's sums taken by one
    thread in row order: one thread and all cores give the same chain, bit for bit."""
    import numba

    p = problem(5)
    b = batch(p)
    states = []
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            m = make(p, seed=0, scan=scan)
            run(m, b, 4)
            states.append(m.state_dict())
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for k, v in states[0].items():
        assert torch.equal(v, states[1][k]), k


@pytest.mark.parametrize("features", ["svdpp", "timesvdpp_flipped"])
def test_the_row_pass_reads_the_other_sides_from_a_table_or_from_columns_alike(features, monkeypatch):
    """A side with an implicit block reads the other sides' P at f−1, f, f+1 from an
    (entities × 4) table, or for a side of more than TABLE_ROWS entities from three
    columns: the same values, so the same chain bit for bit (tested sides are small:
    TABLE_ROWS = 0 sends them all through the columns)."""
    import prizenet.models.bfm as bfm

    p = problem(5)
    b = batch(p)
    states = []
    for rows in (bfm.TABLE_ROWS, 0):
        monkeypatch.setattr(bfm, "TABLE_ROWS", rows)
        m = make(p, seed=0, features=features)
        run(m, b, 3)
        states.append(m.state_dict())
    for k, v in states[0].items():
        assert torch.equal(v, states[1][k]), k


def test_repeated_pairs_in_n_u_count_once():
    """N(u) is a set: a pair given twice (or out of order) is the same feature, once."""
    p = problem(6)
    m = make(p)
    twice = dict(p)
    ind, items = p["nu_indptr"], p["nu_items"]
    rows = [np.concatenate([items[a:b], items[a:b][::-1]]) for a, b in zip(ind[:-1], ind[1:])]
    twice["nu_items"] = np.concatenate(rows)
    twice["nu_indptr"] = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    m2 = make(twice)
    rows = np.arange(len(p["user"]))
    assert torch.equal(m(batch(p, rows)), m2(batch(p, rows)))
    for a, b in zip(m.sides, m2.sides):
        if a.implicit:
            assert np.array_equal(a.tents, b.tents) and np.array_equal(a.norm, b.norm)


def test_chains_predict_the_mean_of_independent_chains_and_resume():
    p = problem(5)
    b, wb = batch(p), batch(p, p["watch"])
    both = make(p, seed=0, chains=2)
    torch.manual_seed(0)
    first, second = build(p), build(p)  # built one after the other from one seed: the two chains' draws
    for m in (both, first, second):
        run(m, b, 4)
        m.eval()
    single = [first(wb).double().numpy(), second(wb).double().numpy()]
    assert np.abs(single[0] - single[1]).max() > 1e-3  # the chains differ
    np.testing.assert_allclose(both(wb).double().numpy(), np.mean(single, 0), rtol=1e-5)
    state = {k: v.clone() for k, v in both.state_dict().items()}
    assert any(k.startswith("more.0.") for k in state)
    again = make(p, seed=99, chains=2)
    again.load_state_dict(state)
    again.eval()
    assert torch.equal(again(wb), both(wb))
    with pytest.raises(ValueError, match="chains must be at least 1"):
        make(p, chains=0)
