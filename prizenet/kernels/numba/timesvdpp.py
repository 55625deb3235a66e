"""The per-user SGD of timeSVD++ (``prizenet.models.timesvdpp``, whose docstring has the
rule), compiled for the CPU."""

import numba
import numpy as np
import torch

from .svdpp import update_y, user_z


def timesvdpp(user, item, day, rating, bounds, order, time, nu_indptr, nu_items, mu, per_day, weights, lr, reg):
    """One epoch, the runs of ``bounds`` in ``order``; a rating's (user, day) row is searched
    among the user's rows of ``time.keys`` (``time.key_start``), its dev_u(t) read from
    ``time.key_dev``."""
    w = [t.detach().numpy() for t in weights]
    return torch.tensor(sgd_time(user.numpy(), item.numpy(), day.numpy(), rating.numpy(), bounds.numpy(),
                                 order.numpy(), time.keys.numpy(), time.key_start.numpy(), time.key_dev.numpy(),
                                 time.n_days, time.n_bins, nu_indptr.numpy(), nu_items.numpy(), np.float32(mu),
                                 bool(per_day), *w, np.float32(lr), np.float32(reg)), dtype=torch.float64)


@numba.njit(fastmath=True, nogil=True, cache=True)
def sgd_time(user, item, day, rating, bounds, order, keys, key_start, key_dev, n_days, n_bins, nu_indptr, nu_items,
             mu, per_day, bu, alpha, but, bi, bibin, cu, cut, pu, alpha_p, put, qi, yj, lr, reg):
    k = pu.shape[1]
    z = np.zeros(k, np.float32)
    acc = np.zeros(k, np.float32)
    p_t = np.zeros(k, np.float32)
    sse = 0.0
    for s in order:
        a, b = bounds[s], bounds[s + 1]
        u = user[a]
        norm, j0, j1 = user_z(yj, nu_indptr, nu_items, u, z)
        acc[:] = 0.0
        k0, k1 = key_start[u], key_start[u + 1]  # u's (user, day) rows
        for n in range(a, b):
            i, t = item[n], day[n]
            # TimeFeatures' inputs: the (user, day) row, its dev_u(t), the item's time bin.
            key = u * n_days + t
            r = min(k0 + np.searchsorted(keys[k0:k1], key), len(keys) - 1)
            kn = np.float32(1.0) if keys[r] == key else np.float32(0.0)
            d = key_dev[r] if kn > 0 else np.float32(0.0)
            ib = i * n_bins + min(max(t * n_bins // n_days, 0), n_bins - 1)
            dot = np.float32(0.0)
            for f in range(k):
                p_t[f] = pu[u, f] + alpha_p[u, f] * d
            if per_day and kn > 0:
                for f in range(k):
                    p_t[f] += put[r, f]
            for f in range(k):
                dot += qi[i, f] * (p_t[f] + z[f])
            item_part = bi[i] + bibin[ib]
            c = 1.0 + cu[u] + cut[r] * kn
            e = rating[n] - (mu + bu[u] + alpha[u] * d + but[r] * kn + item_part * c + dot)
            sse += e * e
            bu[u] += lr[0] * (e - reg[0] * bu[u])
            alpha[u] += lr[1] * (e * d - reg[1] * alpha[u])
            if kn > 0:
                but[r] += lr[2] * (e - reg[2] * but[r])
                cut[r] += lr[6] * (e * item_part - reg[6] * cut[r])
            bi[i] += lr[3] * (e * c - reg[3] * bi[i])
            bibin[ib] += lr[4] * (e * c - reg[4] * bibin[ib])
            cu[u] += lr[5] * (e * item_part - reg[5] * cu[u])
            if per_day and kn > 0:
                for f in range(k):
                    put[r, f] += lr[9] * (e * qi[i, f] - reg[9] * put[r, f])
            for f in range(k):
                q = qi[i, f]
                acc[f] += e * q
                pu[u, f] += lr[7] * (e * q - reg[7] * pu[u, f])
                alpha_p[u, f] += lr[8] * (e * q * d - reg[8] * alpha_p[u, f])
                qi[i, f] += lr[10] * (e * (p_t[f] + z[f]) - reg[10] * q)
        update_y(yj, nu_items, j0, j1, acc, norm, lr[11], reg[11])
    return sse
