"""The ordered probit likelihood of the Bayesian factorization machine (``bfm``'s
``likelihood: ordered_probit``; Albert & Chib 1993 for the latent normal, myFM's
``OprobitSampler`` for the cut points).

A rating of level c (c = 0..K-1, the K distinct rating levels in order) is the bin a
latent z = x + ε, ε ~ N(0, 1), falls in: γ_{c-1} < z ≤ γ_c, with γ_{-1} = -∞, γ_{K-1} = +∞
and x the factorization machine's score. Given x, z is a truncated normal (drawn by the
inverse of Φ on the bin's probability range; a bin above 0 is drawn mirrored, from the
lower tail, where Φ keeps its precision), and the FM regresses z with the noise precision
fixed at 1.

The K-1 cut points, with z summed out, have the likelihood Π Φ(γ_c - x) - Φ(γ_{c-1} - x).
As myFM does, they are written γ_0 = a_0, γ_m = γ_{m-1} + exp(a_m) (always in order), a
has the prior N(0, 1/reg), and each sweep draws a new a by an independence
Metropolis-Hastings step: Newton's method finds the mode â of log p(a | x) and its
precision H (minus the Hessian there), a candidate is drawn from the multivariate t with
``nu`` degrees of freedom centred at â with precision H, and accepted with the usual
ratio. (Gibbs draws of each γ given every z, Albert & Chib's, mix far too slowly with
hundreds of thousands of ratings: the bins' edges pin the γ.)

The expected rating under a score x is Σ_c level_c·P(c | x) = level_0 + Σ_m
(level_{m+1} - level_m)·Φ(x - γ_m); it is linear in the level probabilities, so its
average over samples is the expected rating under the averaged probabilities (myFM's
prediction).

Albert, J. H., Chib, S. (1993). Bayesian analysis of binary and polychotomous response
data. JASA 88(422). Ohtsuki, T. myFM, include/myfm/OProbitSampler.hpp.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.numba import oprobit as kernels


def classes(rating: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each rating's index among ``levels`` (sorted); a rating that is not a level is an error."""
    c = np.searchsorted(levels, rating).clip(0, len(levels) - 1)
    bad = np.abs(levels[c] - rating) > 1e-6
    if bad.any():
        raise ValueError(f"rating {float(rating[bad][0])} is not one of the rating levels {levels.tolist()}: the "
                         "ordered probit likelihood needs the training ratings on those levels")
    return c.astype(np.int64)


def cuts(a: np.ndarray) -> np.ndarray:
    """γ from a: γ_0 = a_0, γ_m = γ_{m-1} + exp(a_m)."""
    return np.cumsum(np.concatenate([a[:1], np.exp(a[1:])]))


def uncut(gamma: np.ndarray) -> np.ndarray:
    """a from γ (the inverse of :func:`cuts`)."""
    return np.concatenate([gamma[:1], np.log(np.diff(gamma))])


def _edges(gamma: np.ndarray) -> np.ndarray:
    return np.concatenate([[-np.inf], np.asarray(gamma, np.float64), [np.inf]])


def loglik(gamma: np.ndarray, x: np.ndarray, c: np.ndarray, hessian: bool = True):
    """Σ log(Φ(γ_c - x) - Φ(γ_{c-1} - x)) over the ratings, its gradient in γ (K-1) and,
    with ``hessian``, its Hessian in γ (K-1 × K-1, tridiagonal); one pass over the ratings
    (``prizenet.kernels.numba.oprobit``, as are the latent draws and the expected ratings)."""
    K = len(gamma) + 1
    S = np.empty((K, 6))
    kernels.bin_sums(np.asarray(x, np.float64), np.asarray(c, np.int64), _edges(gamma), S)
    ll = float(S[:, 0].sum())
    grad = S[:-1, 1] - S[1:, 2]  # a rating of bin c: +φ(b)/D on γ_c, -φ(a)/D on γ_{c-1}
    if not hessian:
        return ll, grad
    H = np.diag(S[:-1, 3] + S[1:, 4])
    off = S[1:-1, 5]  # a rating of bin c (0 < c < K-1): φ(a)φ(b)/D² between γ_{c-1} and γ_c
    H[np.arange(K - 2), np.arange(1, K - 1)] += off
    H[np.arange(1, K - 1), np.arange(K - 2)] += off
    return ll, grad, H


def log_posterior(a: np.ndarray, x: np.ndarray, c: np.ndarray, reg: float, derivatives: bool = True):
    """log p(a | x) up to a constant, and with ``derivatives`` its gradient and Hessian in a."""
    gamma = cuts(a)
    if not derivatives:
        return loglik(gamma, x, c, hessian=False)[0] - 0.5 * reg * float(a @ a)
    ll, g, Hg = loglik(gamma, x, c)
    d = len(a)
    J = np.zeros((d, d))  # J[i, m] = ∂γ_m / ∂a_i
    J[0] = 1
    for i in range(1, d):
        J[i, i:] = np.exp(a[i])
    grad = J @ g - reg * a
    H = J @ Hg @ J.T - reg * np.eye(d)
    # ∂²γ_m/∂a_i² = exp(a_i) for m ≥ i ≥ 1: the gradient's tail sums times exp(a_i) on the diagonal
    H[np.arange(1, d), np.arange(1, d)] += np.exp(a[1:]) * np.cumsum(g[::-1])[::-1][1:]
    return ll - 0.5 * reg * float(a @ a), grad, H


def mode(a: np.ndarray, x: np.ndarray, c: np.ndarray, reg: float, tol: float = 1e-7,
         max_steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The mode â of log p(a | x) by Newton's method with step halving, from ``a`` (until a
    Newton step is below ``tol``: â is then exact to far less, the convergence being
    quadratic), and the precision -H(â) there."""
    f, g, H = log_posterior(a, x, c, reg)
    for _ in range(max_steps):
        step = np.linalg.solve(-H, g)  # the log-likelihood is concave in γ; in a, near the mode
        if g @ step <= 0:  # far from it -H need not be positive definite: a gradient step instead
            step = g / np.abs(np.diag(H)).max()
        if np.abs(step).max() < tol:
            break
        t = 1.0
        while True:
            cand = a + t * step
            fc, gc, Hc = log_posterior(cand, x, c, reg)
            if fc >= f - 1e-12 * abs(f) or t < 1e-10:
                break
            t /= 2
        a, f, g, H = cand, fc, gc, Hc
    return a, -H


def _log_t(delta: np.ndarray, P: np.ndarray, nu: float) -> float:
    return -0.5 * (nu + len(delta)) * math.log1p(float(delta @ P @ delta) / nu)


def step(rng: np.random.Generator, a: np.ndarray, x: np.ndarray, c: np.ndarray, reg: float,
         nu: float, start: np.ndarray | None = None) -> tuple[np.ndarray, bool, np.ndarray]:
    """One independence Metropolis-Hastings draw of a given the scores x: (the new a,
    accepted, the mode â). Newton's method starts from ``start`` (the last sweep's mode: the
    scores move little between sweeps, so a step or two) or else from a; the mode it ends at
    does not depend on where it started (to ``mode``'s tolerance), so neither does the proposal."""
    centre, P = mode(a if start is None else start, x, c, reg)
    L = np.linalg.cholesky(P)
    eps, chi, u = rng.standard_normal(len(a)), rng.gamma(nu / 2, 2.0), rng.random()
    cand = centre + np.linalg.solve(L.T, eps) / math.sqrt(chi / nu)  # covariance P⁻¹, t with nu d.o.f.
    ratio = (log_posterior(cand, x, c, reg, False) - log_posterior(a, x, c, reg, False)
             - _log_t(cand - centre, P, nu) + _log_t(a - centre, P, nu))
    if math.log(max(u, 1e-300)) < ratio:
        return cand, True, centre
    return a, False, centre


def latent(rng: np.random.Generator, x: np.ndarray, c: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """z ~ N(x, 1) truncated to each rating's bin (γ_{c-1}, γ_c]."""
    out = np.empty(len(x))
    kernels.latent(np.asarray(x, np.float64), np.asarray(c, np.int64), _edges(gamma), 1.0 - rng.random(len(x)), out)
    return out


def expected(x: np.ndarray, gamma: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The expected rating level_0 + Σ_m (level_{m+1} - level_m)·Φ(x - γ_m) under scores x."""
    out = np.empty(len(x))
    kernels.expected(np.asarray(x, np.float64), np.asarray(gamma, np.float64), np.asarray(levels, np.float64), out)
    return out
