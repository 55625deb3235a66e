"""The ordered probit likelihood (prizenet.models.oprobit) against direct computations:
finite differences for the cut points' derivatives, the truncated normal's moments for the
latent draws, the level probabilities for the expected rating, and a posterior that
concentrates on planted cut points."""

import math

import numpy as np
import pytest

from prizenet.models import oprobit as O

LEVELS = np.arange(1.0, 6.0)


def Phi(t):
    return 0.5 * math.erfc(-t / math.sqrt(2))


def test_cut_points_are_ordered_and_invert():
    a = np.array([-0.7, 0.3, -2.0, 1.1])
    g = O.cuts(a)
    assert np.all(np.diff(g) > 0)
    np.testing.assert_allclose(O.uncut(g), a)


def test_classes_are_the_ratings_levels_and_an_off_level_rating_is_named():
    np.testing.assert_array_equal(O.classes(np.array([1.0, 5.0, 3.0]), LEVELS), [0, 4, 2])
    with pytest.raises(ValueError, match="rating 3.5 is not one of the rating levels"):
        O.classes(np.array([3.5]), LEVELS)


def test_log_likelihood_equals_the_direct_sum():
    g = np.random.default_rng(0)
    x, c = g.normal(0, 1.5, 50), g.integers(0, 5, 50)
    gamma = np.array([-1.0, -0.2, 0.6, 1.5])
    edges = np.concatenate([[-np.inf], gamma, [np.inf]])
    want = sum(math.log(Phi(edges[ci + 1] - xi) - Phi(edges[ci] - xi)) for xi, ci in zip(x, c))
    assert O.loglik(gamma, x, c, hessian=False)[0] == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("scale", [1.0, 6.0])  # 6: scores far outside the bins, the tails' precision
def test_the_cut_points_gradient_and_hessian_equal_finite_differences(scale):
    g = np.random.default_rng(1)
    x, c = g.normal(0, scale, 300), g.integers(0, 5, 300)
    a, reg, h = np.array([-1.0, 0.2, -0.3, 0.1]), 0.7, 1e-5
    f, grad, H = O.log_posterior(a, x, c, reg)
    E = np.eye(4) * h
    num_grad = [(O.log_posterior(a + d, x, c, reg, False) - O.log_posterior(a - d, x, c, reg, False)) / (2 * h)
                for d in E]
    num_H = [(O.log_posterior(a + d, x, c, reg)[1] - O.log_posterior(a - d, x, c, reg)[1]) / (2 * h) for d in E]
    np.testing.assert_allclose(grad, num_grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(H, num_H, rtol=1e-5, atol=1e-4)
    # the mode: the gradient vanishes there and the precision is positive definite
    top, P = O.mode(a, x, c, reg)
    assert np.abs(O.log_posterior(top, x, c, reg)[1]).max() < 1e-6
    assert np.all(np.linalg.eigvalsh(P) > 0)


def test_the_mode_is_the_same_from_far_starts():
    g = np.random.default_rng(5)
    x = g.normal(0, 1, 20000)
    c = np.searchsorted([-1.2, -0.3, 0.4, 1.3], x + g.normal(0, 1, 20000))
    modes = [O.mode(np.array(s, float), x, c, 1.0)[0] for s in ([0, 0, 0, 0], [5, -3, 2, -4], [-8, 2, 2, 2])]
    np.testing.assert_allclose(modes[1], modes[0], atol=1e-6)
    np.testing.assert_allclose(modes[2], modes[0], atol=1e-6)


@pytest.mark.parametrize("x,c", [(0.3, 2), (-4.0, 4), (5.0, 0), (9.0, 1), (-0.5, 0), (0.5, 4)])
def test_latent_draws_follow_the_truncated_normal(x, c):
    """Inside the bin, with the truncated normal's mean and variance (to 5 standard errors),
    also far in the tails (x = 9 in the second bin: Φ's mirrored lower tail)."""
    gamma = np.array([-1.0, -0.2, 0.6, 1.5])
    n = 40000
    z = O.latent(np.random.default_rng(2), np.full(n, x), np.full(n, c), gamma)
    lo, hi = ([-np.inf, *gamma][c], [*gamma, np.inf][c])
    assert np.all((z >= lo) & (z <= hi))
    a, b = lo - x, hi - x
    pa, pb = (math.exp(-t * t / 2) / math.sqrt(2 * math.pi) if np.isfinite(t) else 0.0 for t in (a, b))
    D = Phi(-a) - Phi(-b) if a > 0 else Phi(b) - Phi(a)  # in the lower tail, where Φ keeps its precision
    ta, tb = (a * pa if np.isfinite(a) else 0.0), (b * pb if np.isfinite(b) else 0.0)
    mean = x + (pa - pb) / D
    var = 1 + (ta - tb) / D - ((pa - pb) / D) ** 2
    assert z.mean() == pytest.approx(mean, abs=5 * math.sqrt(var / n))
    assert z.var() == pytest.approx(var, rel=0.05)


def test_the_inverse_normal_cdf_is_exact_to_double_precision():
    import torch

    from prizenet.kernels.numba.oprobit import ndtri

    p = np.concatenate([10.0 ** -np.arange(1, 300, 7.5), np.linspace(0.001, 0.999, 97), [0.02425, 0.97575]])
    want = torch.special.ndtri(torch.from_numpy(p)).numpy()
    got = np.array([ndtri(v) for v in p])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_expected_rating_sums_the_levels_over_their_probabilities():
    gamma = np.array([-1.0, -0.2, 0.6, 1.5])
    levels = np.array([0.5, 1.0, 2.0, 4.0, 4.5])  # uneven steps
    x = np.array([-3.0, -0.4, 0.0, 0.9, 7.0])
    edges = np.concatenate([[-np.inf], gamma, [np.inf]])
    want = [sum(levels[k] * (Phi(edges[k + 1] - xi) - Phi(edges[k] - xi)) for k in range(5)) for xi in x]
    np.testing.assert_allclose(O.expected(x, gamma, levels), want, rtol=1e-12)


def test_cut_points_concentrate_on_planted_ones_and_the_chain_accepts():
    """Ratings binned from N(x, 1) at known cut points: the MH chain's cut points (x given)
    settle within a few posterior sds of the planted ones, and the t proposal is accepted
    most of the time (it is close to the posterior)."""
    g = np.random.default_rng(3)
    n = 20000
    x = g.normal(0, 1, n)
    truth = np.array([-1.2, -0.3, 0.4, 1.3])
    c = np.searchsorted(truth, x + g.normal(0, 1, n))
    a, draws, accepted = np.zeros(4), [], 0
    for s in range(60):
        a, ok, _ = O.step(np.random.default_rng([4, s]), a, x, c, reg=1.0, nu=5.0)
        accepted += ok
        draws.append(O.cuts(a))
    draws = np.array(draws[10:])
    sd = np.sqrt(np.diag(np.linalg.inv(O.mode(a, x, c, 1.0)[1])))  # about 0.015 here
    assert np.all(np.abs(draws.mean(0) - truth) < 5 * sd.max() + 0.02), (draws.mean(0), truth)
    assert draws.std(0).max() > 0  # it moves
    assert accepted >= 40
