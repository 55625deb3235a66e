"""The per-rating SGD of biased MF (``prizenet.models.svd``, whose docstring has the rule and
the updates) in Triton: one program per run of a user's ratings."""

import torch
import triton
import triton.language as tl


@triton.jit
def program_run(order, bounds, user):
    """(first rating, end, user) of this program's run of one user's ratings."""
    s = tl.load(order + tl.program_id(0))
    a = tl.load(bounds + s)
    return a, tl.load(bounds + s + 1), tl.load(user + a).to(tl.int64)


@triton.jit
def sgd_kernel(user, item, rating, bounds, order, sse, mu_ptr, bu, bi, pu, qi,
               lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi, K,
               BIASED: tl.constexpr, BLOCK_K: tl.constexpr):
    a, b, u = program_run(order, bounds, user)
    f = tl.arange(0, BLOCK_K)
    fm = f < K
    p = tl.load(pu + u * K + f, mask=fm, other=0.0)  # the user's rows live in registers
    b_u = tl.load(bu + u)
    mu = tl.load(mu_ptr)
    err = tl.zeros((), tl.float32)
    for n in range(a, b):
        i = tl.load(item + n).to(tl.int64)
        q = tl.load(qi + i * K + f, mask=fm, other=0.0)
        dot = tl.sum(q * p, 0)
        if BIASED:
            b_i = tl.load(bi + i)
            e = tl.load(rating + n) - (mu + b_u + b_i + dot)
            b_u += lr_bu * (e - reg_bu * b_u)
            tl.atomic_add(bi + i, lr_bi * (e - reg_bi * b_i), sem="relaxed")
        else:
            e = tl.load(rating + n) - dot
        err += e * e
        tl.atomic_add(qi + i * K + f, lr_qi * (e * p - reg_qi * q), mask=fm, sem="relaxed")
        p += lr_pu * (e * q - reg_pu * p)
    tl.store(pu + u * K + f, p, mask=fm)
    tl.store(bu + u, b_u)
    tl.store(sse + tl.program_id(0), err)


def svd(user, item, rating, bounds, order, mu, weights, lr, reg, biased) -> torch.Tensor:
    """One epoch: one program per run, launched in :func:`launch_order`."""
    from . import block_k, launch_order

    bu, bi, pu, qi = (w.detach() for w in weights)
    order = launch_order(bounds, order)
    sse = torch.empty(len(order), dtype=torch.float32, device=pu.device)
    if len(order):
        sgd_kernel[(len(order),)](user.contiguous(), item.contiguous(), rating.contiguous(), bounds, order, sse,
                                  mu, bu, bi, pu, qi, *map(float, lr), *map(float, reg), pu.shape[1],
                                  BIASED=bool(biased), BLOCK_K=block_k(pu.shape[1]), num_warps=1)
    return sse.sum(dtype=torch.float64)
