"""The per-user SGD of timeSVD++ (``prizenet.models.timesvdpp``, whose docstring has the rule)
in Triton: one program per run of a user's ratings. The rows of a user's (user, day) terms
(but, cut, put) belong to the user's program like pu[u]; the item-side rows (bi, bibin, qi,
y) take relaxed atomic adds."""

import torch
import triton
import triton.language as tl

from .svd import program_run
from .svdpp import BLOCK_J, implicit_sum, update_y


@triton.jit
def sgd_kernel(user, item, day, rating, row, dev, bounds, order, sse, nu_indptr, nu_items, mu_ptr,
               bu, alpha, but, bi, bibin, cu, cut, pu, alpha_p, put, qi, yj,
               lr_bu, lr_alpha, lr_but, lr_bi, lr_bibin, lr_cu, lr_cut, lr_pu, lr_alpha_p, lr_put, lr_qi, lr_yj,
               reg_bu, reg_alpha, reg_but, reg_bi, reg_bibin, reg_cu, reg_cut, reg_pu, reg_alpha_p, reg_put, reg_qi,
               reg_yj, K, n_days, n_bins, PER_DAY: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_J: tl.constexpr):
    a, b, u = program_run(order, bounds, user)
    f = tl.arange(0, BLOCK_K)
    fm = f < K
    z, norm, j0, j1 = implicit_sum(yj, nu_indptr, nu_items, u, f, fm, K, BLOCK_J)
    p = tl.load(pu + u * K + f, mask=fm, other=0.0)
    ap = tl.load(alpha_p + u * K + f, mask=fm, other=0.0)
    b_u = tl.load(bu + u)
    a_u = tl.load(alpha + u)
    c_u = tl.load(cu + u)
    mu = tl.load(mu_ptr)
    acc = tl.zeros((BLOCK_K,), tl.float32)
    err = tl.zeros((), tl.float32)
    for n in range(a, b):
        i = tl.load(item + n).to(tl.int64)
        t = tl.load(day + n).to(tl.int64)
        rw = tl.load(row + n)  # the rating's (user, day) row, -1 when it has none
        known = rw >= 0
        r = tl.maximum(rw, 0)
        kn = known.to(tl.float32)
        d = tl.load(dev + n)  # dev_u(t), 0 without a (user, day) row
        ib = i * n_bins + tl.minimum(tl.maximum(t * n_bins // n_days, 0), n_bins - 1)
        q = tl.load(qi + i * K + f, mask=fm, other=0.0)
        p_t = p + ap * d
        if PER_DAY:
            fk = fm & ((f * 0 + rw) >= 0)  # (a vector mask: the interpreter refuses block & scalar)
            pt_r = tl.load(put + r * K + f, mask=fk, other=0.0)
            p_t += pt_r
        pz = p_t + z
        b_i = tl.load(bi + i)
        b_bin = tl.load(bibin + ib)
        item_part = b_i + b_bin
        but_r = tl.load(but + r, mask=known, other=0.0)
        cut_r = tl.load(cut + r, mask=known, other=0.0)
        c = 1.0 + c_u + cut_r * kn
        e = tl.load(rating + n) - (mu + b_u + a_u * d + but_r * kn + item_part * c + tl.sum(q * pz, 0))
        err += e * e
        b_u += lr_bu * (e - reg_bu * b_u)
        a_u += lr_alpha * (e * d - reg_alpha * a_u)
        tl.store(but + r, but_r + lr_but * (e - reg_but * but_r), mask=known)
        tl.store(cut + r, cut_r + lr_cut * (e * item_part - reg_cut * cut_r), mask=known)
        tl.atomic_add(bi + i, lr_bi * (e * c - reg_bi * b_i), sem="relaxed")
        tl.atomic_add(bibin + ib, lr_bibin * (e * c - reg_bibin * b_bin), sem="relaxed")
        c_u += lr_cu * (e * item_part - reg_cu * c_u)
        if PER_DAY:
            tl.store(put + r * K + f, pt_r + lr_put * (e * q - reg_put * pt_r), mask=fk)
        acc += e * q
        p += lr_pu * (e * q - reg_pu * p)
        ap += lr_alpha_p * (e * q * d - reg_alpha_p * ap)
        tl.atomic_add(qi + i * K + f, lr_qi * (e * pz - reg_qi * q), mask=fm, sem="relaxed")
    tl.store(pu + u * K + f, p, mask=fm)
    tl.store(alpha_p + u * K + f, ap, mask=fm)
    tl.store(bu + u, b_u)
    tl.store(alpha + u, a_u)
    tl.store(cu + u, c_u)
    update_y(yj, nu_items, j0, j1, f, fm, acc, norm, lr_yj, reg_yj, K, BLOCK_J)
    tl.store(sse + tl.program_id(0), err)


def timesvdpp(user, item, day, rating, bounds, order, time, nu_indptr, nu_items, mu, per_day, weights, lr,
              reg) -> torch.Tensor:
    """One epoch: one program per run, launched in :func:`launch_order`; each rating's
    (user, day) row and dev_u(t) are looked up on the device first (``time.user_day``,
    ``time.dev``)."""
    from . import block_k, launch_order

    w = [t.detach() for t in weights]
    pu = w[7]
    u, t = user.long(), day.long()
    r, known = time.user_day(u, t)
    row = torch.where(known, r, -1)
    dev = torch.where(known, time.dev(u, t), 0.0).float()
    order = launch_order(bounds, order)
    sse = torch.empty(len(order), dtype=torch.float32, device=pu.device)
    if len(order):
        sgd_kernel[(len(order),)](user.contiguous(), item.contiguous(), day.contiguous(), rating.contiguous(), row,
                                  dev, bounds, order, sse, nu_indptr, nu_items, mu, *w, *map(float, lr),
                                  *map(float, reg), pu.shape[1], int(time.n_days), int(time.n_bins),
                                  PER_DAY=bool(per_day), BLOCK_K=block_k(pu.shape[1]), BLOCK_J=BLOCK_J, num_warps=1)
    return sse.sum(dtype=torch.float64)
