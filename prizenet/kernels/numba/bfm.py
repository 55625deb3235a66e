"""The Gibbs sweep of the Bayesian factorization machine (``prizenet.models.bfm``, whose
docstring has the model, the priors and the conditionals), compiled for the CPU.

The rows are the training ratings, sorted by user. Each row has one entity on each *side*
(its user, its item, its day); a side's features are the entity's one-hot feature and,
optionally, an implicit block (N(u) of a user, N(i) of an item) whose features all carry
the weight x[e] = |N(e)|^-½. For one factor f, a side's entity sums its features into
P[e] = Σ_j v_jf·x_j. A feature θ = v_jf of entity e enters a row r of e through
h_r = x·(a_e + s_r), with a_e = P[e] − θ·x (the rest of its side) and s_r the other sides'
P at row r; for a linear weight θ = w_j, h_r = x (``linear``: a = 1, s = 0). Its
conditional given everything else is normal:

    precision = λ + α·Σ_r h_r²,   mean = (λ·μ + α·Σ_r h_r·(e_r + θ·h_r)) / precision

with e_r = y_r − ŷ_r. Per entity the sums need only C = |rows of e|, S1 = Σ s_r,
S2 = Σ s_r², E = Σ e_r and SE = Σ s_r·e_r (Rendle 2013's relational caches, myFM's
``RelationWiseCache``): Σ h² = x²·(C·a² + 2a·S1 + S2), Σ h·e = x·(a·E + SE). After a
draw moves θ by d, e_r drops by d·h_r, so E drops by d·x·(a·C + S1) and SE by
d·x·(a·S1 + S2). The rows themselves take a side's draws on the next side's pass over
them (or ``apply``'s, after the last): Δŷ_r = dA[e] + dB[e]·s_r, where each entity
accumulated dA = Σ d·x·a and dB, the change of its P.

Each side and factor costs one pass over the rows in their stored order: the user side's
rows are contiguous per user (``grouped``: a user's sums in registers, its draw at once);
an item's or a day's rows are spread, so ``scatter`` adds each row into its entity's
sums, in a fixed number of row chunks with a buffer each (no atomics; the sums, and so
the chain, do not depend on the thread count), and ``draw`` adds up the chunks. One-hot
features of one block never share a row: they are conditionally independent and drawn in
parallel. The features of an implicit block share rows and are drawn one after another
(``implicit``), each touching only the entities that hold it, through their caches ``st``.
The standard normal draws ``z`` come from the caller (the model's seeded generator).
"""

import numba
import numpy as np

#: the column of each cache in an entity's row of ``st`` (one cache line an entity)
C, S1, S2, E, SE, P, DA, X = range(8)
#: row chunks of ``scatter`` (a fixed number, so its sums do not depend on the thread count)
CHUNKS = 16


def _draws(linear: bool, two: bool):
    """The passes of a side's draw, compiled for the linear weights or for the factors, and
    for models of two sides or of three (``two``: each side has two others). Both are
    constants of each compiled pass: run-time flags inside the loops made them up to three
    times slower. ``others`` = (the other sides' entity of every row and P column; with one
    other side, its pair twice), for s_r."""

    @numba.njit(inline="always")
    def other(r, e1, c1, e2, c2):
        return c1[e1[r]] + c2[e2[r]] if two else c1[e1[r]]

    @numba.njit(inline="always")
    def taken(e, r, pent, dA, dB, pe1, pc1, pe2, pc2):
        """e_r after the previous side's draws: ŷ_r rose by dA[g] + dB[g]·s_r; ``prev`` =
        (that side's entity of every row, its entities' dA and dB, and its other sides'
        entity rows and P columns, which have not moved since)."""
        g = pent[r]
        er = e[r] - (dA[g] + dB[g] * other(r, pe1, pc1, pe2, pc2))
        e[r] = er
        return er

    @numba.njit(inline="always")
    def draw(ent, c, s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z, st):
        theta = T[ent, col]
        p = 0.0 if linear else Pf[ent]
        a = 1.0 if linear else p - theta
        sq = c * a * a + 2.0 * a * s1 + s2
        prec = lam + alpha * sq
        d = (lam * mu + alpha * (a * ee + se + theta * sq)) / prec + z[ent] / np.sqrt(prec) - theta
        T[ent, col] = theta + d
        st[ent, C] = c
        st[ent, S1] = s1
        st[ent, S2] = s2
        st[ent, E] = ee - d * (a * c + s1)
        st[ent, SE] = se - d * (a * s1 + s2)
        st[ent, P] = 0.0 if linear else p + d
        st[ent, DA] = d * a
        st[ent, X] = x[ent]

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def grouped(indptr, e, prev, others, Pf, x, T, col, lam, mu, alpha, z, st):
        """The first side, whose entities own the contiguous rows indptr[e]:indptr[e+1]:
        each row takes ``prev``'s draws, each entity's sums are taken and its column ``col``
        of the one-hot table ``T`` drawn (``Pf``: the side's P column before)."""
        e1, c1, e2, c2 = others
        pent, dA, dB, pe1, pc1, pe2, pc2 = prev
        for ent in numba.prange(len(indptr) - 1):
            s1 = 0.0
            s2 = 0.0
            ee = 0.0
            se = 0.0
            for r in range(indptr[ent], indptr[ent + 1]):
                er = taken(e, r, pent, dA, dB, pe1, pc1, pe2, pc2)
                sr = 0.0 if linear else other(r, e1, c1, e2, c2)
                s1 += sr
                s2 += sr * sr
                ee += er
                se += sr * er
            draw(ent, np.float64(indptr[ent + 1] - indptr[ent]), s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z,
                 st)

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def scatter(ent_of, e, prev, others, buf):
        """Another side: each row takes ``prev``'s draws and adds (1, s, s², e, s·e) into
        its entity's sums in its chunk's buffer ``buf[chunk]`` (entities × 5)."""
        e1, c1, e2, c2 = others
        pent, dA, dB, pe1, pc1, pe2, pc2 = prev
        n, chunks = len(ent_of), buf.shape[0]
        for ch in numba.prange(chunks):
            b = buf[ch]
            b[:] = 0.0
            for r in range(n * ch // chunks, n * (ch + 1) // chunks):
                er = taken(e, r, pent, dA, dB, pe1, pc1, pe2, pc2)
                sr = 0.0 if linear else other(r, e1, c1, e2, c2)
                g = ent_of[r]
                b[g, 0] += 1.0
                b[g, 1] += sr
                b[g, 2] += sr * sr
                b[g, 3] += er
                b[g, 4] += sr * er

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def chunks_draw(buf, Pf, x, T, col, lam, mu, alpha, z, st):
        """After ``scatter``: each entity's sums over the chunks, in chunk order, and its draw."""
        for ent in numba.prange(buf.shape[1]):
            c = 0.0
            s1 = 0.0
            s2 = 0.0
            ee = 0.0
            se = 0.0
            for ch in range(buf.shape[0]):
                c += buf[ch, ent, 0]
                s1 += buf[ch, ent, 1]
                s2 += buf[ch, ent, 2]
                ee += buf[ch, ent, 3]
                se += buf[ch, ent, 4]
            draw(ent, c, s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z, st)

    @numba.njit(fastmath=True, nogil=True, cache=True)
    def implicit(tindptr, tents, T, col, lam, mu, alpha, z, st):
        """Draw column ``col`` of the implicit block's table ``T`` feature by feature,
        after the one-hot draw filled the caches ``st``; feature j belongs to the entities
        ``tents[tindptr[j]:tindptr[j+1]]``, each with its weight x = st[e, X]."""
        for j in range(len(tindptr) - 1):
            theta = T[j, col]
            sq = 0.0
            lin = 0.0
            for kk in range(tindptr[j], tindptr[j + 1]):
                ent = tents[kk]
                x = st[ent, X]
                a = 1.0 if linear else st[ent, P] - theta * x
                sq += x * x * (st[ent, C] * a * a + 2.0 * a * st[ent, S1] + st[ent, S2])
                lin += x * (a * st[ent, E] + st[ent, SE])
            prec = lam + alpha * sq
            new = (lam * mu + alpha * (lin + theta * sq)) / prec + z[j] / np.sqrt(prec)
            d = new - theta
            T[j, col] = new
            for kk in range(tindptr[j], tindptr[j + 1]):
                ent = tents[kk]
                x = st[ent, X]
                a = 1.0 if linear else st[ent, P] - theta * x
                dx = d * x
                st[ent, E] -= dx * (a * st[ent, C] + st[ent, S1])
                st[ent, SE] -= dx * (a * st[ent, S1] + st[ent, S2])
                st[ent, DA] += dx * a
                if not linear:
                    st[ent, P] += dx

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def apply(e, prev):
        """The rows after the last side's draws (``prev`` as in ``taken``)."""
        pent, dA, dB, pe1, pc1, pe2, pc2 = prev
        for r in numba.prange(len(pent)):
            taken(e, r, pent, dA, dB, pe1, pc1, pe2, pc2)

    return grouped, scatter, chunks_draw, implicit, apply


#: (grouped, scatter, chunks_draw, implicit, apply) by (linear weights?, three sides?)
DRAWS = {(linear, two): _draws(linear, two) for linear in (True, False) for two in (True, False)}


@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def side_sums(indptr, feats, norm, onehot_w, onehot_v, imp_w, imp_v, B, P, W):
    """Per entity of a side: B = Σ w_j x_j, P = Σ v_j x_j (k) and W = ½Σ_f (P_f² − Σ_j
    v_jf² x_j²), the within-side pairs; the one-hot feature has x = 1. ``indptr`` empty:
    no implicit block."""
    k = onehot_v.shape[1]
    has = len(indptr) > 0
    for ent in numba.prange(len(onehot_w)):
        b = onehot_w[ent]
        sqsum = 0.0
        for f in range(k):
            P[ent, f] = onehot_v[ent, f]
            sqsum += onehot_v[ent, f] * onehot_v[ent, f]
        if has:
            x = norm[ent]
            for kk in range(indptr[ent], indptr[ent + 1]):
                j = feats[kk]
                b += x * imp_w[j]
                for f in range(k):
                    v = imp_v[j, f] * x
                    P[ent, f] += v
                    sqsum += v * v
        acc = 0.0
        for f in range(k):
            acc += P[ent, f] * P[ent, f]
        B[ent] = b
        W[ent] = 0.5 * (acc - sqsum)


@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def predict(ents, w0, BW, P, out):
    """ŷ_r = w0 + Σ_sides BW[side, e] + Σ_{side < other} ⟨P[side, e], P[other, e']⟩."""
    n_sides, k = ents.shape[0], P.shape[2]
    for r in numba.prange(ents.shape[1]):
        acc = w0
        for a in range(n_sides):
            ea = ents[a, r]
            acc += BW[a, ea]
            for b in range(a + 1, n_sides):
                eb = ents[b, r]
                for f in range(k):
                    acc += P[a, ea, f] * P[b, eb, f]
        out[r] = acc
