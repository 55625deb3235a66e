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
            a = min(max(edges[k] - x[r], -EDGE), EDGE)
            b = min(max(edges[k + 1] - x[r], -EDGE), EDGE)
            if a > 0:  # Φ(b) - Φ(a) = Φ(-a) - Φ(-b)
                D = 0.5 * (math.erfc(a * _SQRT1_2) - math.erfc(b * _SQRT1_2))
            else:
                D = 0.5 * (math.erfc(-b * _SQRT1_2) - math.erfc(-a * _SQRT1_2))
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
