"""The per-rating SGD of biased MF (``prizenet.models.svd``, whose docstring has the
rule and the updates), compiled for the CPU."""

import numba
import numpy as np
import torch


def svd(user, item, rating, bounds, order, mu, weights, lr, reg, biased) -> torch.Tensor:
    """One epoch: the runs of ``bounds`` in ``order``, each one rating at a time."""
    w = [t.detach().numpy() for t in weights]
    return torch.tensor(sgd(user.numpy(), item.numpy(), rating.numpy(), bounds.numpy(), order.numpy(), np.float32(mu),
                            *w, *np.float32(lr), *np.float32(reg), bool(biased)), dtype=torch.float64)


@numba.njit(fastmath=True, nogil=True, cache=True)
def sgd(user, item, rating, bounds, order, mu, bu, bi, pu, qi, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu,
        reg_qi, biased):
    sse = 0.0
    for s in order:
        for n in range(bounds[s], bounds[s + 1]):
            u, i = user[n], item[n]
            dot = np.float32(0.0)
            for f in range(pu.shape[1]):
                dot += qi[i, f] * pu[u, f]
            e = rating[n] - (mu + bu[u] + bi[i] + dot if biased else dot)
            sse += e * e
            if biased:
                bu[u] += lr_bu * (e - reg_bu * bu[u])
                bi[i] += lr_bi * (e - reg_bi * bi[i])
            for f in range(pu.shape[1]):
                p, q = pu[u, f], qi[i, f]
                pu[u, f] += lr_pu * (e * q - reg_pu * p)
                qi[i, f] += lr_qi * (e * p - reg_qi * q)
    return sse
