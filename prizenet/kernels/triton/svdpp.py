"""The per-user SGD of SVD++ (``prizenet.models.svdpp``, whose docstring has the rule and the
updates) in Triton: one program per run of a user's ratings. ``implicit_sum`` and
``update_y`` serve timeSVD++ too."""

import torch
import triton
import triton.language as tl

from .svd import program_run


@triton.jit
def implicit_sum(yj, nu_indptr, nu_items, u, f, fm, K, BLOCK_J: tl.constexpr):
    """(z = |N(u)|^-½ Σ_{j∈N(u)} y[j], |N(u)|^-½, j0, j1), N(u) = nu_items[j0:j1] read BLOCK_J
    rows at a time."""
    j0 = tl.load(nu_indptr + u)
    j1 = tl.load(nu_indptr + u + 1)
    z = tl.zeros(f.shape, tl.float32)
    for jj in range(j0, j1, BLOCK_J):
        js = jj + tl.arange(0, BLOCK_J)
        jm = js < j1
        j = tl.load(nu_items + js, mask=jm, other=0).to(tl.int64)
        z += tl.sum(tl.load(yj + j[:, None] * K + f[None, :], mask=jm[:, None] & fm[None, :], other=0.0), 0)
    norm = 1.0 / tl.sqrt(tl.maximum(j1 - j0, 1).to(tl.float32))
    return z * norm, norm, j0, j1


@triton.jit
def update_y(yj, nu_items, j0, j1, f, fm, acc, norm, lr, reg, K, BLOCK_J: tl.constexpr):
    """y[j] += lr·(|N(u)|^-½·acc − reg·y[j]) for every j in N(u): once per user."""
    for jj in range(j0, j1, BLOCK_J):
        js = jj + tl.arange(0, BLOCK_J)
        jm = js < j1
        j = tl.load(nu_items + js, mask=jm, other=0).to(tl.int64)
        at = yj + j[:, None] * K + f[None, :]
        m = jm[:, None] & fm[None, :]
        y = tl.load(at, mask=m, other=0.0)
        tl.atomic_add(at, lr * (acc[None, :] * norm - reg * y), mask=m, sem="relaxed")


@triton.jit
def step_factors(e, i, b_u, b_i, p, pz, q, acc, f, fm, bi, qi, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu,
                 reg_qi, K):
    """SVD++'s per-rating updates for the error ``e``: bi[i] and qi[i] moved in memory, the
    user's (b_u, acc + e·qi[i], p) returned (``pz`` = p + z, ``b_i`` and ``q`` read before)."""
    b_u += lr_bu * (e - reg_bu * b_u)
    tl.atomic_add(bi + i, lr_bi * (e - reg_bi * b_i), sem="relaxed")
    acc += e * q
    tl.atomic_add(qi + i * K + f, lr_qi * (e * pz - reg_qi * q), mask=fm, sem="relaxed")
    p += lr_pu * (e * q - reg_pu * p)
    return b_u, acc, p


@triton.jit
def sgd_kernel(user, item, rating, bounds, order, sse, nu_indptr, nu_items, mu_ptr, bu, bi, pu, qi, yj,
               lr_bu, lr_bi, lr_pu, lr_qi, lr_yj, reg_bu, reg_bi, reg_pu, reg_qi, reg_yj, K,
               BLOCK_K: tl.constexpr, BLOCK_J: tl.constexpr):
    a, b, u = program_run(order, bounds, user)
    f = tl.arange(0, BLOCK_K)
    fm = f < K
    z, norm, j0, j1 = implicit_sum(yj, nu_indptr, nu_items, u, f, fm, K, BLOCK_J)
    p = tl.load(pu + u * K + f, mask=fm, other=0.0)
    b_u = tl.load(bu + u)
    mu = tl.load(mu_ptr)
    acc = tl.zeros((BLOCK_K,), tl.float32)  # Σ e·qi[i] over the user's ratings: y's gradient
    err = tl.zeros((), tl.float32)
    for n in range(a, b):
        i = tl.load(item + n).to(tl.int64)
        q = tl.load(qi + i * K + f, mask=fm, other=0.0)
        b_i = tl.load(bi + i)
        pz = p + z
        e = tl.load(rating + n) - (mu + b_u + b_i + tl.sum(q * pz, 0))
        err += e * e
        b_u, acc, p = step_factors(e, i, b_u, b_i, p, pz, q, acc, f, fm, bi, qi, lr_bu, lr_bi, lr_pu, lr_qi,
                                   reg_bu, reg_bi, reg_pu, reg_qi, K)
    tl.store(pu + u * K + f, p, mask=fm)
    tl.store(bu + u, b_u)
    update_y(yj, nu_items, j0, j1, f, fm, acc, norm, lr_yj, reg_yj, K, BLOCK_J)
    tl.store(sse + tl.program_id(0), err)


#: y rows read at once: at 200 factors 4 rows keep a program at 64 registers, 16 at 168
#: (``../shared/GPU.md``); a test compiles both kernels for sm_90 and checks for spills.
BLOCK_J = 4


def svdpp(user, item, rating, bounds, order, nu_indptr, nu_items, mu, weights, lr, reg) -> torch.Tensor:
    """One epoch: one program per run, launched in :func:`launch_order`."""
    from . import block_k, launch_order

    bu, bi, pu, qi, yj = (w.detach() for w in weights)
    order = launch_order(bounds, order)
    sse = torch.empty(len(order), dtype=torch.float32, device=pu.device)
    if len(order):
        sgd_kernel[(len(order),)](user.contiguous(), item.contiguous(), rating.contiguous(), bounds, order, sse,
                                  nu_indptr, nu_items, mu, bu, bi, pu, qi, yj, *map(float, lr), *map(float, reg),
                                  pu.shape[1], BLOCK_K=block_k(pu.shape[1]), BLOCK_J=BLOCK_J, num_warps=1)
    return sse.sum(dtype=torch.float64)
