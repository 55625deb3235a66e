"""The per-user SGD of SVD++ (``prizenet.models.svdpp``, whose docstring has the rule and
the updates), compiled for the CPU; ``user_z`` and ``update_y`` serve timeSVD++ too, and
``factor_dot`` and ``step_factors`` the integrated model, whose factor part is SVD++'s."""

import numba
import numpy as np
import torch


def svdpp(user, item, rating, bounds, order, nu_indptr, nu_items, mu, weights, lr, reg) -> torch.Tensor:
    """One epoch: the runs of ``bounds`` in ``order``."""
    w = [t.detach().numpy() for t in weights]
    return torch.tensor(sgd_pp(user.numpy(), item.numpy(), rating.numpy(), bounds.numpy(), order.numpy(),
                               nu_indptr.numpy(), nu_items.numpy(), np.float32(mu), *w, np.float32(lr),
                               np.float32(reg)), dtype=torch.float64)


@numba.njit(fastmath=True, nogil=True, cache=True)
def user_z(yj, nu_indptr, nu_items, u, z):
    """z = |N(u)|^-½ Σ_{j∈N(u)} y[j] into ``z``; returns (|N(u)|^-½, j0, j1), N(u) being
    nu_items[j0:j1]."""
    j0, j1 = nu_indptr[u], nu_indptr[u + 1]
    norm = np.float32(1.0 / np.sqrt(max(j1 - j0, 1)))
    z[:] = 0.0
    for jj in range(j0, j1):
        z += yj[nu_items[jj]]
    z *= norm
    return norm, j0, j1

@numba.njit(fastmath=True, nogil=True, cache=True)
def update_y(yj, nu_items, j0, j1, acc, norm, lr, reg):
    """y[j] += lr·(|N(u)|^-½·Σ_r e·qi[i] − reg·y[j]) for every j in N(u): once per user."""
    for jj in range(j0, j1):
        j = nu_items[jj]
        for f in range(yj.shape[1]):
            yj[j, f] += lr * (acc[f] * norm - reg * yj[j, f])

@numba.njit(fastmath=True, nogil=True, cache=True, inline="always")  # inlined: the per-rating hot loop
def factor_dot(pu, qi, z, u, i):
    """qi[i]ᵀ (pu[u] + z), z = |N(u)|^-½ Σ y[j]."""
    dot = np.float32(0.0)
    for f in range(pu.shape[1]):
        dot += qi[i, f] * (pu[u, f] + z[f])
    return dot


@numba.njit(fastmath=True, nogil=True, cache=True, inline="always")
def step_factors(e, u, i, bu, bi, pu, qi, z, acc, lr, reg):
    """SVD++'s per-rating updates of bu, bi, pu, qi for the error ``e``; e·qi[i] added to
    ``acc``, the y gradient of the user (``update_y`` applies it once the user ends)."""
    bu[u] += lr[0] * (e - reg[0] * bu[u])
    bi[i] += lr[1] * (e - reg[1] * bi[i])
    for f in range(pu.shape[1]):
        p, q = pu[u, f], qi[i, f]
        acc[f] += e * q
        pu[u, f] += lr[2] * (e * q - reg[2] * p)
        qi[i, f] += lr[3] * (e * (p + z[f]) - reg[3] * q)


@numba.njit(fastmath=True, nogil=True, cache=True)
def sgd_pp(user, item, rating, bounds, order, nu_indptr, nu_items, mu, bu, bi, pu, qi, yj, lr, reg):
    k = pu.shape[1]
    z = np.zeros(k, np.float32)
    acc = np.zeros(k, np.float32)
    sse = 0.0
    for s in order:
        a, b = bounds[s], bounds[s + 1]
        u = user[a]
        norm, j0, j1 = user_z(yj, nu_indptr, nu_items, u, z)
        acc[:] = 0.0
        for n in range(a, b):
            i = item[n]
            e = rating[n] - (mu + bu[u] + bi[i] + factor_dot(pu, qi, z, u, i))
            sse += e * e
            step_factors(e, u, i, bu, bi, pu, qi, z, acc, lr, reg)
        update_y(yj, nu_items, j0, j1, acc, norm, lr[4], reg[4])
    return sse
