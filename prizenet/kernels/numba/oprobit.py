"""The ordered probit's sums over the ratings (``prizenet.models.oprobit``), compiled for the
CPU: one pass over the ratings for the log-likelihood of the cut points and its derivatives.

A rating of bin c with score x has the standardised bin a = γ_{c-1} - x, b = γ_c - x
(``edges`` holds -∞, γ, +∞; beyond ±EDGE stands for ±∞) and the mass D = Φ(b) - Φ(a),
taken in the lower tail (mirrored where a > 0), where erfc keeps its precision. Per bin the
pass sums log D, φ(b)/D, φ(a)/D, -b·φ(b)/D - (φ(b)/D)², a·φ(a)/D - (φ(a)/D)² and
φ(a)φ(b)/D²: the model reads the gradient and the (tridiagonal) Hessian in γ from them.
The ratings are cut into CHUNKS fixed ranges, each summed by one thread in order and the
ranges added in order, so the sums do not depend on the thread count.
"""

import math

import numba
import numpy as np

CHUNKS = 64
EDGE = 30.0
_SQRT1_2 = math.sqrt(0.5)
_SQRT2PI = math.sqrt(2 * math.pi)


@numba.njit(inline="always")
def _Phi(t):
    return 0.5 * math.erfc(-t * _SQRT1_2)


@numba.njit(inline="always")
def _bin(edges, k, x):
    """The standardised bin (a, b) = (γ_{k-1} - x, γ_k - x) of a rating of bin k, clamped to ±EDGE."""
    return min(max(edges[k] - x, -EDGE), EDGE), min(max(edges[k + 1] - x, -EDGE), EDGE)


@numba.njit(parallel=True, nogil=True, cache=True)
def bin_sums(x, c, edges, out):
    """``out`` (K × 6): the per-bin sums above of the ratings' scores ``x`` and bins ``c``."""
    n, K = len(x), out.shape[0]
    part = np.zeros((CHUNKS, K, 6))
    for ch in numba.prange(CHUNKS):
        lo_r, hi_r = ch * n // CHUNKS, (ch + 1) * n // CHUNKS
        acc = part[ch]
        for r in range(lo_r, hi_r):
            k = c[r]
            a, b = _bin(edges, k, x[r])
            D = _Phi(-a) - _Phi(-b) if a > 0 else _Phi(b) - _Phi(a)  # Φ(b) - Φ(a), in the lower tail
            D = max(D, 1e-300)
            pa = math.exp(-0.5 * a * a) / _SQRT2PI / D
            pb = math.exp(-0.5 * b * b) / _SQRT2PI / D
            acc[k, 0] += math.log(D)
            acc[k, 1] += pb
            acc[k, 2] += pa
            acc[k, 3] += -b * pb - pb * pb
            acc[k, 4] += a * pa - pa * pa
            acc[k, 5] += pa * pb
    out[:] = 0
    for ch in range(CHUNKS):
        out += part[ch]


# Acklam's rational approximation of Φ⁻¹ (relative error below 1.2e-9), refined by one
# Halley step on Φ(x) - p through erfc, which brings it to double precision
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
      -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
      -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
      4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)


@numba.njit(inline="always")
def _tail(q):
    return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
        ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)


@numba.njit(cache=True)
def ndtri(p):
    """Φ⁻¹(p) for 0 < p < 1."""
    if p < 0.02425:
        x = _tail(math.sqrt(-2.0 * math.log(p)))
    elif p <= 1 - 0.02425:
        q = p - 0.5
        r = q * q
        x = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / \
            (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    else:
        x = -_tail(math.sqrt(-2.0 * math.log1p(-p)))
    e = _Phi(x) - p
    u = e * _SQRT2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@numba.njit(parallel=True, nogil=True, cache=True)
def latent(x, c, edges, u, out):
    """``out``: z = x + t, t ~ N(0, 1) truncated to each rating's standardised bin, by the
    inverse of Φ at Φ(lo) + u·(Φ(hi) - Φ(lo)) (``u`` in (0, 1], the caller's draws); a bin
    above 0 is drawn mirrored, from the lower tail, where Φ keeps its precision."""
    for r in numba.prange(len(x)):
        a, b = _bin(edges, c[r], x[r])
        up = a > 0
        lo, hi = (-b, -a) if up else (a, b)
        plo, phi = _Phi(lo), _Phi(hi)
        p = plo + u[r] * (phi - plo)
        t = ndtri(p) if p > 0 else lo
        t = min(max(t, lo), hi)  # rounding at the edges
        out[r] = x[r] - t if up else x[r] + t


@numba.njit(parallel=True, nogil=True, cache=True)
def expected(x, gamma, levels, out):
    """``out``: level_0 + Σ_m (level_{m+1} - level_m)·Φ(x - γ_m) for every score x."""
    for r in numba.prange(len(x)):
        s = levels[0]
        for m in range(len(gamma)):
            s += (levels[m + 1] - levels[m]) * _Phi(x[r] - gamma[m])
        out[r] = s
