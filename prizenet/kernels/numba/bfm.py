"""The Gibbs sweep of the Bayesian factorization machine (``prizenet.models.bfm``, whose
docstring has the model, the priors and the conditionals), compiled for the CPU.

The rows are the training ratings. Each row has one entity on each *side* (its user, its
item, its day); a side's features are the entity's one-hot feature and, optionally, an
implicit block (N(u) of a user, N(i) of an item) whose features all carry the weight
x[e] = |N(e)|^-½. For one factor f, a side's entity sums its features into
P[e] = Σ_j v_jf·x_j. A feature θ = v_jf of entity e enters a row r of e through
h_r = x·(a_e + s_r), with a_e = P[e] − θ·x (the rest of its side) and s_r the other sides'
P at row r; for a linear weight θ = w_j, h_r = x (``linear``: a = 1, s = 0). Its
conditional given everything else is normal:

    precision = λ + α·Σ_r h_r²,   mean = (λ·μ + α·Σ_r h_r·(e_r + θ·h_r)) / precision

with e_r = y_r − ŷ_r. Per entity the sums need only C = |rows of e|, S1 = Σ s_r,
S2 = Σ s_r², E = Σ e_r and SE = Σ s_r·e_r (Rendle 2013's relational caches, myFM's
``RelationWiseCache``): Σ h² = x²·(C·a² + 2a·S1 + S2), Σ h·e = x·(a·E + SE). After a
draw moves θ by d, e_r drops by d·h_r, so E drops by d·x·(a·C + S1) and SE by
d·x·(a·S1 + S2). The caches keep E0 = E + C·DA + S1·P and SE0 = SE + S1·DA + S2·P in
their place, with DA = Σ d·x·a the entity's moves of ŷ so far and P its current sum:
E0 and SE0 do not move while a block's draws go on (E falls by C·Δ(DA) + S1·ΔP, SE by
S1·Δ(DA) + S2·ΔP), so a draw writes only P and DA of each entity it touches.

With the model's ``scan="sides"`` a side is drawn on its own view of the rows, sorted by
its entity (``indptr``: an entity's rows are contiguous), with the other sides' entity of
every row in that order; the residuals e are gathered into the view's order and scattered
back after (``take``, ``put``, or inside ``onehot``). One-hot features of one block never
share a row, so they are conditionally independent: drawn in parallel over entities. A
side with no implicit block draws all k factors of an entity at once (``onehot``: the
entity's rows stay in L1 while its k draws run; this is the same chain as factor after
factor, since no other entity's draw reads its rows). A side with an implicit block goes
factor by factor (``step``): task 0 draws the one-hot column from the entities' sums,
filling the caches ``st``, then the block's features one after another (``_implicit``:
they share rows, and each touches only the entities that hold it), while the other tasks
take the next factor's sums (``_sums``), corrected afterwards for the draws they did not
see; the rows take each factor's draws on the next pass (Δŷ_r = dA[e] + dB[e]·s_r, where
each entity accumulated dA = Σ d·x·a and dB, the change of its P) or on ``apply``'s,
after the last. The linear weights go the same way, one column (``onehot``, or
``grouped`` + ``implicit`` + ``apply``). ``scan="factors"`` (``_factor_major``) is myFM's
order on the rows in stored order. The standard normal draws ``z`` come from the caller
(the model's seeded generator); every entity's sums are taken by one thread in row order,
so the chain does not depend on the thread count.

Only booleans are closed over by the compiled passes (the helpers are module globals):
numba keys its on-disk cache of a closure by the pickled cell contents, and a captured
dispatcher pickles differently in every process, which made every run recompile (about
4.5 s) and the cache grow.
"""

import numba
import numpy as np

#: the column of each cache in an entity's row of ``st`` (one cache line an entity)
C, S1, S2, E0, SE0, P, DA, X = range(8)


def caches(n: int, width: int = 8) -> np.ndarray:
    """An (n × width) float64 table, 64-byte aligned, so that a row of 8 (or 4) doubles lies
    in one cache line (two rows of 4 to a line), for the entities' caches ``st``, the row
    passes' sums and their tables of P: numpy aligns to 16 bytes, so its own (n × 8) rows
    would each straddle two lines (two loads where the chain reads one entity)."""
    buf = np.empty(width * n + 8)
    start = (-buf.ctypes.data % 64) // 8
    return buf[start:start + width * n].reshape(n, width)


#: the most rows of an entity whose s_r ``onehot`` buffers (k × rows doubles a thread: 16 MB
#: at k = 32); a larger entity gathers s_r from the tables on each of its 2k passes
CAP = 1 << 16


@numba.njit(inline="always")
def _other(r, e1, c1, e2, c2, two):
    """s_r: the other sides' P at row r (``two``: two other sides; else the first only)."""
    return c1[e1[r]] + c2[e2[r]] if two else c1[e1[r]]


@numba.njit(inline="always")
def _at(P1, i1, P2, i2, f, two):
    """``_other`` from the other sides' (entities × k) tables, at factor f, for a row whose
    other entities are i1 and i2."""
    return P1[i1, f] + P2[i2, f] if two else P1[i1, f]


@numba.njit(inline="always")
def _other_f(r, e1, P1, e2, P2, f, two):
    """``_at`` for row r."""
    return _at(P1, e1[r], P2, e2[r], f, two)


@numba.njit(inline="always")
def _draw(ent, c, s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z, st, linear):
    """Draw entity ``ent``'s one-hot feature (column ``col`` of ``T``) from its sums and
    fill its caches."""
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
    # E0 = E + C·DA + S1·P after the draw (E = ee − d·(a·c + s1), DA = d·a, P = p + d): ee + s1·p
    st[ent, E0] = ee + s1 * p
    st[ent, SE0] = se + s2 * p
    st[ent, P] = 0.0 if linear else p + d
    st[ent, DA] = d * a
    st[ent, X] = x[ent]


@numba.njit(inline="always")
def _feature_sums(ent, theta, st, linear):
    """One entity's share of an implicit feature's Σh² and Σh·e over the entity's rows:
    x²·(C·a² + 2a·S1 + S2) and x·(a·E + SE), with a = P[e] − θ·x (1 for a linear weight),
    E = E0 − C·DA − S1·P and SE = SE0 − S1·DA − S2·P."""
    x = st[ent, X]
    p = st[ent, P]
    a = 1.0 if linear else p - theta * x
    c, s1, s2, da = st[ent, C], st[ent, S1], st[ent, S2], st[ent, DA]
    return (x * x * (c * a * a + 2.0 * a * s1 + s2),
            x * (a * (st[ent, E0] - c * da - s1 * p) + st[ent, SE0] - s1 * da - s2 * p))


@numba.njit(inline="always")
def _implicit(tindptr, tents, T, col, lam, mu, alpha, z, st, linear):
    """Draw column ``col`` of an implicit block's table ``T`` feature by feature, after the
    one-hot draw filled the caches ``st``; feature j belongs to the entities
    ``tents[tindptr[j]:tindptr[j+1]]``, each with its weight x = st[e, X].

    The features form one serial chain (each reads the caches the previous one moved), so
    its length is the sampler's critical path: the sums over a feature's entities run in
    two interleaved accumulators (even and odd entries), which lets two gathers from ``st``
    be in flight at once instead of one add chain waiting on each (on ml1m-half's N(u),
    3,615 features over 487,515 entries: 3.7 ms a column serial against 2.6 ms, four
    accumulators 3.0 ms; a whole timesvdpp_flipped sweep 0.45 s against 0.31 s; the same
    sums up to floating-point reassociation). At Netflix scale the chain alone is 25-30%
    faster too, and a whole sweep 94 s against 102 s (80 against 90 in the other order)
    before the changes of 2026-12-04 (docs/benchmarks.md, 2026-12-06)."""
    for j in range(len(tindptr) - 1):
        theta = T[j, col]
        lo = tindptr[j]
        hi = tindptr[j + 1]
        sq0 = 0.0
        sq1 = 0.0
        lin0 = 0.0
        lin1 = 0.0
        kk = lo
        while kk + 1 < hi:
            q, g = _feature_sums(tents[kk], theta, st, linear)
            sq0 += q
            lin0 += g
            q, g = _feature_sums(tents[kk + 1], theta, st, linear)
            sq1 += q
            lin1 += g
            kk += 2
        if kk < hi:
            q, g = _feature_sums(tents[kk], theta, st, linear)
            sq0 += q
            lin0 += g
        sq = sq0 + sq1
        lin = lin0 + lin1
        prec = lam + alpha * sq
        new = (lam * mu + alpha * (lin + theta * sq)) / prec + z[j] / np.sqrt(prec)
        d = new - theta
        T[j, col] = new
        for kk in range(lo, hi):  # (E0 and SE0 stay: only DA and P move)
            ent = tents[kk]
            dx = d * st[ent, X]
            if linear:
                st[ent, DA] += dx
            else:
                p = st[ent, P]
                st[ent, DA] += dx * (p - theta * st[ent, X])
                st[ent, P] = p + dx


@numba.njit(inline="always")
def _sums(lo, hi, indptr, e, ents, dA, dB, tabs, acc, nxt, two):
    """The row pass of factor g for entities lo..hi-1, on the rows as they are before
    factor g−1's implicit draws: each row first takes factor g−2's pending draws (dA, dB,
    with the other sides' P at g−2); then, with s_r at g−1 and at g, acc[e] = (C, Σe_r,
    Σs_r, Σs_r², Σs_r·e_r, Σs'_r, Σs'_r·s_r), s' at g−1: what ``step`` needs to correct the
    sums for g−1's draws once they are known. ``tabs``: each other side's P at g−2, g−1 and
    g as columns 0, 1, 2 of an (entities × 3 or 4) table (the model's: side by side in an
    entity's row for a small side, one cache line of each other entity a row; a transposed
    view of three columns for a large one). ``nxt`` false: the rows only take the pending
    draws."""
    e1, e2 = ents
    t1, t2 = tabs
    for ent in range(lo, hi):
        da = dA[ent]
        db = dB[ent]
        if not nxt:
            for r in range(indptr[ent], indptr[ent + 1]):
                e[r] -= da + db * _at(t1, e1[r], t2, e2[r], 0, two)
            continue
        ee = 0.0
        s1 = 0.0
        s2 = 0.0
        se = 0.0
        s1p = 0.0
        xx = 0.0
        for r in range(indptr[ent], indptr[ent + 1]):
            i1 = e1[r]  # (once: the stores to e might alias them for the compiler)
            i2 = e2[r]
            sq = _at(t1, i1, t2, i2, 1, two)
            sc = _at(t1, i1, t2, i2, 2, two)
            er = e[r] - (da + db * _at(t1, i1, t2, i2, 0, two))
            e[r] = er
            ee += er
            s1 += sc
            s2 += sc * sc
            se += sc * er
            s1p += sq
            xx += sq * sc
        acc[ent, 0] = indptr[ent + 1] - indptr[ent]
        acc[ent, 1] = ee
        acc[ent, 2] = s1
        acc[ent, 3] = s2
        acc[ent, 4] = se
        acc[ent, 5] = s1p
        acc[ent, 6] = xx


def _draws(linear: bool, two: bool):
    """The passes of a side's draw, compiled for the linear weights or for the factors, and
    for models of two sides or of three (``two``: each side has two others). Both are
    constants of each compiled pass: run-time flags inside the loops made them up to three
    times slower. ``others`` = (the other sides' entity of every row of the view and their
    P column; with one other side, its pair twice) for s_r; ``pending`` = (dA, dB of the
    side's entities from the last implicit draws, the other sides' P columns they were
    taken with), for the rows to take. Used: ``onehot`` and ``apply`` in both phases,
    ``grouped`` and ``implicit`` for the linear weights, ``sums`` and ``step`` for the
    factors, and ``implicit`` for the factors of ``scan="factors"`` too."""

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def grouped(indptr, e, x, T, lam, mu, alpha, z, st):
        """The linear weights of a side with an implicit block: each entity's rows
        indptr[e]:indptr[e+1] give its sums (C, Σe_r; s_r = 0), its weight T[e, 0] is
        drawn and its caches ``st`` filled, for ``implicit`` to draw the block's weights
        and ``apply`` to bring the rows up to date after."""
        for ent in numba.prange(len(indptr) - 1):
            ee = 0.0
            for r in range(indptr[ent], indptr[ent + 1]):
                ee += e[r]
            _draw(ent, np.float64(indptr[ent + 1] - indptr[ent]), 0.0, 0.0, ee, 0.0, x, x, T, 0, lam, mu, alpha, z, st,
                  True)

    @numba.njit(fastmath=True, nogil=True, cache=True)
    def implicit(tindptr, tents, T, col, lam, mu, alpha, z, st):
        """Draw column ``col`` of the implicit block's table ``T`` feature by feature,
        after the one-hot draw filled the caches ``st`` (``_implicit``)."""
        _implicit(tindptr, tents, T, col, lam, mu, alpha, z, st, linear)

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def apply(indptr, e, pending, others):
        """The rows take the pending draws (as in ``grouped``), after the side's last."""
        e1, _, e2, _ = others
        dA, dB, pc1, pc2 = pending
        for ent in numba.prange(len(indptr) - 1):
            da = dA[ent]
            db = dB[ent]
            for r in range(indptr[ent], indptr[ent + 1]):
                e[r] -= da + (0.0 if linear else db * _other(r, e1, pc1, e2, pc2, two))

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def onehot(blocks, indptr, perm, e, others, T, lam, mu, alpha, z, cap):
        """A side without an implicit block: each entity draws its one-hot feature's k
        factors in turn (its linear weight when ``linear``: k = 1, T = w[:, None]), its
        rows taking each draw at once. The view's row r is row ``perm[r]`` of ``e`` (empty
        ``perm``: the stored order). ``others`` hold the other sides' P as (entities × k)
        tables; an entity of at most ``cap`` rows first copies its rows' s_r of every
        factor into a (k × rows) buffer, so the k passes read contiguous memory; z is
        (entities × k). The entities are taken in ``blocks`` of about equal rows (a day
        side's rows crowd into its first days: split by entities, one thread would get
        most of them)."""
        e1, P1, e2, P2 = others
        k = T.shape[1]
        has_perm = len(perm) > 0
        for t in numba.prange(len(blocks) - 1):
            for ent in range(blocks[t], blocks[t + 1]):
                lo, hi = indptr[ent], indptr[ent + 1]
                m = hi - lo
                ev = np.empty(m)
                for r in range(m):
                    ev[r] = e[perm[lo + r]] if has_perm else e[lo + r]
                buffered = not linear and m <= cap
                S = np.empty((k if buffered else 0, m))
                if buffered:
                    for r in range(m):
                        for f in range(k):
                            S[f, r] = _other_f(lo + r, e1, P1, e2, P2, f, two)
                for f in range(k):
                    s2 = 0.0
                    ee = 0.0
                    se = 0.0
                    if linear:
                        for r in range(m):
                            ee += ev[r]
                    elif buffered:
                        Sf = S[f]
                        for r in range(m):
                            sr = Sf[r]
                            s2 += sr * sr
                            se += sr * ev[r]
                    else:
                        for r in range(m):
                            sr = _other_f(lo + r, e1, P1, e2, P2, f, two)
                            s2 += sr * sr
                            se += sr * ev[r]
                    theta = T[ent, f]
                    # a linear weight has h_r = 1; a lone one-hot factor h_r = s_r (a = P − θ = 0)
                    sq = np.float64(m) if linear else s2
                    prec = lam[f] + alpha * sq
                    d = (lam[f] * mu[f] + alpha * ((ee if linear else se) + theta * sq)) / prec \
                        + z[ent, f] / np.sqrt(prec) - theta
                    T[ent, f] = theta + d
                    if linear:
                        for r in range(m):
                            ev[r] -= d
                    elif buffered:
                        Sf = S[f]
                        for r in range(m):
                            ev[r] -= d * Sf[r]
                    else:
                        for r in range(m):
                            ev[r] -= d * _other_f(lo + r, e1, P1, e2, P2, f, two)
                for r in range(m):
                    if has_perm:
                        e[perm[lo + r]] = ev[r]
                    else:
                        e[lo + r] = ev[r]

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def sums(blocks, indptr, e, ents, dA, dB, tabs, acc):
        """``_sums`` of the first factor, the entities cut into ``blocks`` (in parallel)."""
        for t in numba.prange(len(blocks) - 1):
            _sums(blocks[t], blocks[t + 1], indptr, e, ents, dA, dB, tabs, acc, True, two)

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def step(blocks, indptr, e, ents, dA, dB, tabs, nxt, acc_next, acc, Pf, x, T, col, lam, mu, alpha, z, st,
             tindptr, tents, imp, ilam, imu, zi):
        """Factor f of a side with an implicit block, on all cores at once: task 0 draws
        the one-hot column f from ``acc`` (``_sums`` of f, taken before f−1's implicit
        draws, corrected here for them: dA, dB are f−1's; ŷ_r rose by dA + dB·s'_r) and
        then the implicit block's column f, one feature after another; meanwhile the other
        tasks run ``_sums`` of f+1 into ``acc_next`` over the blocks of entities
        ``blocks[t-1]:blocks[t]``, their rows taking f−1's pending draws (``tabs``: the
        other sides' P at f−1, f and f+1; ``nxt`` false after the last factor: then the
        rows only take the pending draws). The tasks share nothing they write. The serial
        implicit chain is the sweep's critical path; this keeps the row passes off it."""
        for t in numba.prange(len(blocks)):
            if t == 0:
                for ent in range(len(indptr) - 1):
                    c = acc[ent, 0]
                    da = dA[ent]
                    db = dB[ent]
                    ee = acc[ent, 1] - c * da - db * acc[ent, 5]
                    se = acc[ent, 4] - da * acc[ent, 2] - db * acc[ent, 6]
                    _draw(ent, c, acc[ent, 2], acc[ent, 3], ee, se, Pf, x, T, col, lam, mu, alpha, z, st, False)
                _implicit(tindptr, tents, imp, col, ilam, imu, alpha, zi, st, False)
            else:
                _sums(blocks[t - 1], blocks[t], indptr, e, ents, dA, dB, tabs, acc_next, nxt, two)

    return grouped, implicit, apply, onehot, sums, step



#: (grouped, implicit, apply, onehot, sums, step) by (linear weights?, three sides?)
DRAWS = {(linear, two): _draws(linear, two) for linear in (True, False) for two in (True, False)}


@numba.njit(inline="always")
def _taken(e, r, prev, two):
    """e_r after the previous side's draws (``scan="factors"``): ŷ_r rose by dA[g] + dB[g]·s_r;
    ``prev`` = (that side's entity of every row, its entities' dA and dB, its other sides'
    entity rows and P columns, which have not moved since)."""
    pent, dA, dB, pe1, pc1, pe2, pc2 = prev
    g = pent[r]
    er = e[r] - (dA[g] + dB[g] * _other(r, pe1, pc1, pe2, pc2, two))
    e[r] = er
    return er


def _factor_major(two: bool):
    """The factor phase in myFM's order (the model's ``scan="factors"``): factor after factor,
    in each every side, all on the rows in their stored order (by user). The first side's
    entities own contiguous rows (``first``); another side's rows are spread, so ``scatter``
    adds each row into its entity's sums in a fixed number of row chunks with a buffer each
    (no atomics; the sums do not depend on the thread count) and ``chunks_draw`` adds up the
    chunks in order. Each pass first brings its rows up to date with the previous side's
    draws (``prev``, ``_taken``); ``apply`` does it after the last."""

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def first(indptr, e, prev, others, Pf, x, T, col, lam, mu, alpha, z, st):
        e1, c1, e2, c2 = others
        for ent in numba.prange(len(indptr) - 1):
            s1 = 0.0
            s2 = 0.0
            ee = 0.0
            se = 0.0
            for r in range(indptr[ent], indptr[ent + 1]):
                er = _taken(e, r, prev, two)
                sr = _other(r, e1, c1, e2, c2, two)
                s1 += sr
                s2 += sr * sr
                ee += er
                se += sr * er
            _draw(ent, np.float64(indptr[ent + 1] - indptr[ent]), s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z,
                  st, False)

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def scatter(ent_of, e, prev, others, buf):
        e1, c1, e2, c2 = others
        n, chunks = len(ent_of), buf.shape[0]
        for ch in numba.prange(chunks):
            b = buf[ch]
            b[:] = 0.0
            for r in range(n * ch // chunks, n * (ch + 1) // chunks):
                er = _taken(e, r, prev, two)
                sr = _other(r, e1, c1, e2, c2, two)
                g = ent_of[r]
                b[g, 0] += 1.0
                b[g, 1] += sr
                b[g, 2] += sr * sr
                b[g, 3] += er
                b[g, 4] += sr * er

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def chunks_draw(buf, Pf, x, T, col, lam, mu, alpha, z, st):
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
            _draw(ent, c, s1, s2, ee, se, Pf, x, T, col, lam, mu, alpha, z, st, False)

    @numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def apply(e, prev):
        for r in numba.prange(len(prev[0])):
            _taken(e, r, prev, two)

    return first, scatter, chunks_draw, apply


#: (first, scatter, chunks_draw, apply) of ``scan="factors"``, by three sides?
FACTOR_MAJOR = {two: _factor_major(two) for two in (True, False)}
#: row chunks of ``scatter`` (a fixed number, so its sums do not depend on the thread count)
CHUNKS = 16


@numba.njit(parallel=True, nogil=True, cache=True)
def take(e, perm, out):
    """out = e[perm], on every core (a view's residuals, from the stored order)."""
    for r in numba.prange(len(perm)):
        out[r] = e[perm[r]]


@numba.njit(parallel=True, nogil=True, cache=True)
def put(ev, perm, e):
    """e[perm] = ev, on every core (a view's residuals, back into the stored order)."""
    for r in numba.prange(len(perm)):
        e[perm[r]] = ev[r]


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
