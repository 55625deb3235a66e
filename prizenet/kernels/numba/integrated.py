"""The per-user SGD of Koren's integrated model (``prizenet.models.integrated``, whose
docstring has the rule and the updates), compiled for the CPU."""

import numba
import numpy as np
import torch

from .svdpp import factor_dot, step_factors, update_y, user_z


def integrated(user, item, rating, bounds, order, nu_indptr, nu_items, rated_indptr, rated_keys, rated_resid,
               nu_keys, neighbours, mu, weights, lr, reg) -> torch.Tensor:
    """One epoch: the runs of ``bounds`` in ``order``; ``weights`` bu, bi, pu, qi, yj, w, c.
    (N(u) is marked from ``nu_items``: ``nu_keys`` is the Triton kernel's.)"""
    w = [t.detach().numpy() for t in weights]
    return torch.tensor(sgd_integrated(
        user.numpy(), item.numpy(), rating.numpy(), bounds.numpy(), order.numpy(), nu_indptr.numpy(),
        nu_items.numpy(), rated_indptr.numpy(), rated_keys.numpy(), rated_resid.numpy(), neighbours.numpy(),
        np.float32(mu), *w, np.asarray(lr, np.float32), np.asarray(reg, np.float32)), dtype=torch.float64)


@numba.njit(fastmath=True, nogil=True, cache=True)
def sgd_integrated(user, item, rating, bounds, order, nu_indptr, nu_items, rated_indptr, rated_keys, rated_resid,
                   neighbours, mu, bu, bi, pu, qi, yj, w, c, lr, reg):
    f_dim, k = pu.shape[1], neighbours.shape[1]
    n_items = qi.shape[0]
    in_r = np.zeros(n_items, np.uint8)  # j ∈ R(u) for the user in hand, with its residual
    resid = np.zeros(n_items, np.float32)
    in_n = np.zeros(n_items, np.uint8)  # j ∈ N(u)
    z = np.zeros(f_dim, np.float32)
    acc = np.zeros(f_dim, np.float32)
    sse = 0.0
    for s in order:
        a, b = bounds[s], bounds[s + 1]
        u = user[a]
        norm, j0, j1 = user_z(yj, nu_indptr, nu_items, u, z)
        r0, r1 = rated_indptr[u], rated_indptr[u + 1]
        for jj in range(r0, r1):
            j = rated_keys[jj] - u * n_items
            in_r[j] = 1
            resid[j] = rated_resid[jj]
        for jj in range(j0, j1):
            in_n[nu_items[jj]] = 1
        acc[:] = 0.0
        for n in range(a, b):
            i = item[n]
            s_r = np.float32(0.0)
            s_c = np.float32(0.0)
            n_r = 0
            n_c = 0
            for t in range(k):
                j = neighbours[i, t]
                if in_r[j]:
                    s_r += w[i, t] * resid[j]
                    n_r += 1
                if in_n[j]:
                    s_c += c[i, t]
                    n_c += 1
            norm_r = np.float32(1.0 / np.sqrt(max(n_r, 1)))
            norm_c = np.float32(1.0 / np.sqrt(max(n_c, 1)))
            e = rating[n] - (mu + bu[u] + bi[i] + factor_dot(pu, qi, z, u, i) + s_r * norm_r + s_c * norm_c)
            sse += e * e
            step_factors(e, u, i, bu, bi, pu, qi, z, acc, lr, reg)
            g_r = e * norm_r
            g_c = e * norm_c
            for t in range(k):
                j = neighbours[i, t]
                if in_r[j]:
                    w[i, t] += lr[5] * (g_r * resid[j] - reg[5] * w[i, t])
                if in_n[j]:
                    c[i, t] += lr[6] * (g_c - reg[6] * c[i, t])
        update_y(yj, nu_items, j0, j1, acc, norm, lr[4], reg[4])
        for jj in range(r0, r1):
            in_r[rated_keys[jj] - u * n_items] = 0
        for jj in range(j0, j1):
            in_n[nu_items[jj]] = 0
    return sse
