"""The per-user SGD of Koren's integrated model (``prizenet.models.integrated``, whose
docstring has the rule and the updates) in Triton: one program per run of a user's ratings.

The numba kernel marks R(u) and N(u) in two item-long arrays per user; a program here has
no such scratch, so it asks, for ``BLOCK_T`` neighbours of i at a time, whether each is in
the user's slice of the sorted keys (a vectorised binary search, about log2 |R(u)| loads
a neighbour). The neighbourhood sums are taken before any update, as in the numba kernel,
and the searches are repeated for the updates of w[i] and c[i] (registers, not a k-long
buffer). w and c rows belong to the item: they move with relaxed atomic adds, like qi[i].
"""

import torch
import triton
import triton.language as tl

from .svd import program_run
from .svdpp import implicit_sum, step_factors, update_y


@triton.jit
def member(keys, start, end, key):
    """(whether each of ``key`` is in ``keys[start:end]``, sorted, and its position there),
    every lane's binary search stepped together until all have ended."""
    lo = tl.zeros(key.shape, tl.int64) + start
    hi = tl.zeros(key.shape, tl.int64) + end
    while tl.max(hi - lo, 0) > 0:
        live = lo < hi
        mid = (lo + hi) // 2
        less = tl.load(keys + mid, mask=live, other=0) < key
        lo = tl.where(live & less, mid + 1, lo)
        hi = tl.where(live & ~less, mid, hi)
    inside = lo < end
    return inside & (tl.load(keys + lo, mask=inside, other=-1) == key), lo


@triton.jit
def neighbours_in(neighbours, rated_keys, nu_keys, i, u, t, n_items, KN, r0, r1, j0, j1):
    """For neighbours ``t`` of item i: (j ∈ R(u), j's position in the rated keys, j ∈ N(u))."""
    tm = t < KN
    key = u * n_items + tl.load(neighbours + i * KN + t, mask=tm, other=0)
    in_r, pos = member(rated_keys, r0, r1, key)
    in_n, _ = member(nu_keys, j0, j1, key)
    return in_r & tm, pos, in_n & tm


@triton.jit
def sgd_kernel(user, item, rating, bounds, order, sse, nu_indptr, nu_items, rated_indptr, rated_keys, rated_resid,
               nu_keys, neighbours, mu_ptr, bu, bi, pu, qi, yj, w, c,
               lr_bu, lr_bi, lr_pu, lr_qi, lr_yj, lr_w, lr_c, reg_bu, reg_bi, reg_pu, reg_qi, reg_yj, reg_w, reg_c,
               K, KN, n_items, BLOCK_K: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_T: tl.constexpr):
    a, b, u = program_run(order, bounds, user)
    f = tl.arange(0, BLOCK_K)
    fm = f < K
    z, norm, j0, j1 = implicit_sum(yj, nu_indptr, nu_items, u, f, fm, K, BLOCK_J)
    r0 = tl.load(rated_indptr + u)
    r1 = tl.load(rated_indptr + u + 1)
    p = tl.load(pu + u * K + f, mask=fm, other=0.0)
    b_u = tl.load(bu + u)
    mu = tl.load(mu_ptr)
    acc = tl.zeros((BLOCK_K,), tl.float32)
    err = tl.zeros((), tl.float32)
    for n in range(a, b):
        i = tl.load(item + n).to(tl.int64)
        s_r = tl.zeros((), tl.float32)  # Σ w[i, t]·(r_uj − b̃_uj) over R^k(i;u), and its count
        s_c = tl.zeros((), tl.float32)  # Σ c[i, t] over N^k(i;u), and its count
        n_r = tl.zeros((), tl.float32)
        n_c = tl.zeros((), tl.float32)
        for t0 in range(0, KN, BLOCK_T):
            t = t0 + tl.arange(0, BLOCK_T)
            in_r, pos, in_n = neighbours_in(neighbours, rated_keys, nu_keys, i, u, t, n_items, KN, r0, r1, j0, j1)
            s_r += tl.sum(tl.load(w + i * KN + t, mask=in_r, other=0.0) * tl.load(rated_resid + pos, mask=in_r, other=0.0), 0)
            s_c += tl.sum(tl.load(c + i * KN + t, mask=in_n, other=0.0), 0)
            n_r += tl.sum(in_r.to(tl.float32), 0)
            n_c += tl.sum(in_n.to(tl.float32), 0)
        norm_r = 1.0 / tl.sqrt(tl.maximum(n_r, 1.0))
        norm_c = 1.0 / tl.sqrt(tl.maximum(n_c, 1.0))
        q = tl.load(qi + i * K + f, mask=fm, other=0.0)
        b_i = tl.load(bi + i)
        pz = p + z
        e = tl.load(rating + n) - (mu + b_u + b_i + tl.sum(q * pz, 0) + s_r * norm_r + s_c * norm_c)
        err += e * e
        b_u, acc, p = step_factors(e, i, b_u, b_i, p, pz, q, acc, f, fm, bi, qi, lr_bu, lr_bi, lr_pu, lr_qi,
                                   reg_bu, reg_bi, reg_pu, reg_qi, K)
        g_r = e * norm_r
        g_c = e * norm_c
        for t0 in range(0, KN, BLOCK_T):
            t = t0 + tl.arange(0, BLOCK_T)
            in_r, pos, in_n = neighbours_in(neighbours, rated_keys, nu_keys, i, u, t, n_items, KN, r0, r1, j0, j1)
            wv = tl.load(w + i * KN + t, mask=in_r, other=0.0)
            res = tl.load(rated_resid + pos, mask=in_r, other=0.0)
            tl.atomic_add(w + i * KN + t, lr_w * (g_r * res - reg_w * wv), mask=in_r, sem="relaxed")
            cv = tl.load(c + i * KN + t, mask=in_n, other=0.0)
            tl.atomic_add(c + i * KN + t, lr_c * (g_c - reg_c * cv), mask=in_n, sem="relaxed")
    tl.store(pu + u * K + f, p, mask=fm)
    tl.store(bu + u, b_u)
    update_y(yj, nu_items, j0, j1, f, fm, acc, norm, lr_yj, reg_yj, K, BLOCK_J)
    tl.store(sse + tl.program_id(0), err)


#: Neighbours searched at once: 32 lanes, one a thread of the program's warp.
BLOCK_T = 32


def integrated(user, item, rating, bounds, order, nu_indptr, nu_items, rated_indptr, rated_keys, rated_resid,
               nu_keys, neighbours, mu, weights, lr, reg) -> torch.Tensor:
    """One epoch: one program per run, launched in :func:`launch_order`."""
    from . import block_k, launch_order
    from .svdpp import BLOCK_J

    bu, bi, pu, qi, yj, w, c = (t.detach() for t in weights)
    order = launch_order(bounds, order)
    sse = torch.empty(len(order), dtype=torch.float32, device=pu.device)
    if len(order):
        sgd_kernel[(len(order),)](user.contiguous(), item.contiguous(), rating.contiguous(), bounds, order, sse,
                                  nu_indptr, nu_items, rated_indptr, rated_keys, rated_resid, nu_keys,
                                  neighbours.contiguous(), mu, bu, bi, pu, qi, yj, w, c, *map(float, lr),
                                  *map(float, reg), pu.shape[1], neighbours.shape[1], qi.shape[0],
                                  BLOCK_K=block_k(pu.shape[1]), BLOCK_J=BLOCK_J, BLOCK_T=BLOCK_T, num_warps=1)
    return sse.sum(dtype=torch.float64)
