"""Bayesian factorization machines by Gibbs sampling (Freudenthaler, Schmidt-Thieme &
Rendle 2011; Rendle 2012, libFM's MCMC; Rendle 2013 for relational blocks).

    r̂(x) = w0 + Σ_j w_j·x_j + Σ_{j<l} ⟨v_j, v_l⟩·x_j·x_l

over the features x of a rating, in blocks (``features`` picks them, as myFM's examples
and Rendle, Zhang & Koren 2019 do):

    block   features of a rating (u, i, t)            value       in feature sets
    user    one-hot u                                  1           all
    nu      N(u): every item u rated or was asked to   |N(u)|^-½   svdpp, timesvdpp, timesvdpp_flipped
    item    one-hot i                                  1           all
    ni      N(i): every user who rated or was asked    |N(i)|^-½   timesvdpp_flipped
            to rate i (the "flipped" SVD++ term)
    day     one-hot day of the rating                  1           timesvd, timesvdpp, timesvdpp_flipped
    userday one-hot (user, day) of the rating          1           timesvdpp_userday, timesvdpp_userday_flipped

N(u) and N(i) come from every known pair (training, probe and qualifying), as the data
layer's N(u) always does; they are sets (a pair given twice counts once: the conditionals'
algebra assumes it). ``mf`` is Bayesian biased MF; ``svdpp`` is SVD++'s model (a user is
p_u + |N(u)|^-½ Σ y_j); ``timesvdpp_flipped`` was the best model on MovieLens-10M in
Rendle et al. 2019. ``*_userday`` put the user's day in place of the day (a day side
either way): its weight is timeSVD++'s day-specific user bias b_u,t and its factors play
p_u,t's part (Koren 2009, "Collaborative filtering with temporal dynamics"), where the day
block is one effect of the calendar day shared by every user; on ml1m-half it is the better
time block (docs/benchmarks.md). The (user, day) pairs are those of every known pair
(``user_day_keys`` from the data layer); any other pair's user-day (a day past the data
too) is one extra entity without ratings, which keeps its prior draws. With
``scan="factors"`` a side's scatter buffers hold 64 chunks × 5 doubles per entity: 2.6 KB
per user-day (30 MB for ml1m-half's 11,667; a Netflix-sized set's user-days want
``scan="sides"``). All pairs of features interact, inside a block too (myFM's model): the
pairs within a user's own features add a user constant, those across a rating's user, item
and day are the factor model.

Priors, one group g per block (myFM's grouped hyper-priors): w0 ~ N(0, 1/reg_0);
w_j ~ N(μ_g, 1/λ_g); v_jf ~ N(μ_gf, 1/λ_gf); μ ~ N(mu_0, 1/(gamma_0·λ)); λ, and the noise
precision α of r = r̂ + ε, ~ Gamma(alpha_0/2, rate beta_0/2).

Gibbs sweep: α; w0; λ_g and μ_g of the linear weights; every w_j (side after side); λ_gf
and μ_gf; then every v_jf in the order ``scan`` picks. ``"sides"``: side after side (user,
item, day), in a side factor after factor, its one-hot block then its implicit block; a side
without an implicit block draws all k factors of an entity while its ratings are in cache.
``"factors"``: myFM's order (``GibbsFMTrainer::update_all``, read from its source), factor
after factor, in each every side. Both are systematic scans of the same full conditionals,
so both leave the posterior invariant; "sides" is 1.5-3x faster a sweep, but at rank 64 its
chains mixed more slowly per sample (docs/benchmarks.md).
r̂ is linear in each single parameter θ (r̂ = g(x) + θ·h(x)), so each
conditional is normal: precision λ + α·Σ h², mean (λμ + α·Σ h·(r − g)) / precision, the
sums over the ratings whose features hold θ. One-hot features of a block never share a
rating and are drawn together in parallel (the same chain as drawing them one by one);
implicit features are drawn one by one, their sums taken per user (per item) from the
relational caches of Rendle 2013 (``prizenet.kernels.numba.bfm`` has the algebra), so a
sweep costs O(ratings·k + Σ|N(u)|·k) and no rating of a user is visited per feature of
N(u). The residuals are recomputed from the parameters at the start of every sweep (no
drift; myFM recomputes them at its end). ``init_std`` draws the initial v ~ N(0, init_std²);
w and μ start at 0, w0 at the mean rating.

``likelihood`` picks the model of a rating given r̂: ``"normal"``, r = r̂ + ε with ε ~
N(0, 1/α) and α drawn as above; or ``"ordered_probit"`` (Albert & Chib 1993; myFM's
``MyFMOrderedProbit``), where a rating is the bin of ordered cut points γ (one fewer than
``rating_levels``) that a latent z = r̂ + N(0, 1) falls in. A sweep then draws the cut
points given r̂ (z summed out: an independence Metropolis-Hastings step from a t with
``cut_nu`` degrees of freedom around the mode; their parameters a, γ_0 = a_0, γ_m = γ_{m-1}
+ exp(a_m), have the prior N(0, 1/reg_0), as in myFM), then every z given its bin, and
regresses the z with α fixed at 1 (w0 starts at 0, its prior mean); r̂ then predicts the
expected rating Σ_c level_c·P(c | r̂) (``prizenet.models.oprobit`` has the algebra).

Predictions are the average of r̂ (for the ordered probit, of the expected rating) over the
samples after ``burn_in`` (myFM keeps all but the first 5, its default; libFM averages its
test predictions the same way): the model
keeps the running average for the pairs it is asked to watch (``watch_*``: the trainer
gives the probe and the qualifying pairs), and :meth:`forward` in eval mode returns it for
those; for any other pair, and in training mode, it returns the current sample's r̂. A
user or item without training ratings keeps its prior draws and whatever its implicit
features and day carry; averaged over samples, its own terms go to the prior means.

``chains`` > 1 runs that many independent chains side by side (each its own initial draws
and seed), every sweep one sample of each, and predicts the mean of the chains' averages:
the usual multiple-chain estimate. A chain's average of a few hundred samples still
depends on where it started (on ml1m-half two chains of rank 64 reach 0.8847 and 0.8841,
their mean 0.8813; docs/benchmarks.md), so chains buy accuracy at their cost in time and
memory (each keeps its own tables; N(u), N(i) and the sorted rows are shared). ``scalars``
report the first chain.

The draws come from numpy's generator seeded by (``seed``, sweep number), so a chain
resumed from a checkpoint after sweep n draws what the unbroken chain drew (the tests check
it). Sampling runs on the CPU on all cores (numba); the model's ``devices`` says so, and
the trainer refuses another device before loading data.

Freudenthaler, C., Schmidt-Thieme, L., Rendle, S. (2011). Bayesian factorization machines.
NIPS workshop on sparse representation and low-rank approximation. Rendle, S. (2012).
Factorization machines with libFM. ACM TIST 3(3). Rendle, S. (2013). Scaling factorization
machines to relational data. VLDB 2013. Rendle, S., Zhang, L., Koren, Y. (2019). On the
difficulty of evaluating baselines. arXiv:1905.01395. Albert, J. H., Chib, S. (1993).
Bayesian analysis of binary and polychotomous response data. JASA 88(422). Ohtsuki, T.
myFM (github.com/tohtsky/myFM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numba
import numpy as np
import torch

from ..data import Batch
from ..kernels.numba import bfm as K
from . import oprobit
from .base import RatingModel

#: the most entities of a side whose P the row passes read from an (entities × 4) table
#: (1 MB: it stays in L2); a larger side's from three columns (``_implicit_side``)
TABLE_ROWS = 1 << 15

#: feature set -> (time block: None, "day" or "userday"; N(u) block; N(i) block)
FEATURES = {
    "mf": (None, False, False),
    "svdpp": (None, True, False),
    "timesvd": ("day", False, False),
    "timesvdpp": ("day", True, False),
    "timesvdpp_flipped": ("day", True, True),
    "timesvdpp_userday": ("userday", True, False),
    "timesvdpp_userday_flipped": ("userday", True, True),
}


@dataclass
class _Side:
    """One relation of a rating: its user, item or day, with the entity's own one-hot block
    and, for users and items, an optional implicit block."""
    name: str  # the one-hot block
    n: int
    implicit: str | None = None  # the implicit block's name
    indptr: np.ndarray | None = None  # entity -> its implicit features (CSR)
    feats: np.ndarray | None = None
    tindptr: np.ndarray | None = None  # implicit feature -> the entities that hold it
    tents: np.ndarray | None = None
    norm: np.ndarray | None = None  # |N(e)|^-½ per entity


class _View:
    """The rows sorted by one side's entity: ``perm`` (None: the stored order, already by
    user), the entities' row ranges ``indptr``, and the other sides' entity of every row."""

    def __init__(self, ents: np.ndarray, a: int, n: int):
        self.perm = None if a == 0 else np.argsort(ents[a], kind="stable").astype(np.int32)
        own = ents[a] if self.perm is None else ents[a][self.perm]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(own, minlength=n))]).astype(np.int64)
        self.others = [ents[b] if self.perm is None else ents[b][self.perm] for b in range(len(ents)) if b != a]


class _Rows:
    """The training rows of a sweep, sorted by user, with each side's entity of every row
    and each side's view of them."""

    def __init__(self, batch: Batch, sides: list[_Side], entities):
        user = batch.user.cpu().numpy()
        order = np.argsort(user, kind="stable")
        self.key = (len(user), batch.user.data_ptr(), batch.rating.data_ptr())
        self.y = batch.rating.cpu().numpy().astype(np.float64)[order]
        self.ents = entities(user[order], batch.item.cpu().numpy()[order], batch.day.cpu().numpy()[order])
        self.views = [_View(self.ents, a, s.n) for a, s in enumerate(sides)]
        self.no_perm = np.zeros(0, np.int32)
        self.classes = None  # each row's bin, its index among the rating levels (ordered probit; the model fills it)
        # scan="factors": the other sides' scatter buffers (per chunk; made on first use) and the no-draws-yet prev
        self.buf = None
        n = max(s.n for s in sides)
        self.zeros, self.ones = np.zeros(n), np.ones(n)
        self.none = (self.ents[0], self.zeros, self.zeros, self.ents[0], self.zeros, self.ents[0], self.zeros)
        self._blocks = {}

    def blocks(self, a: int, n: int) -> np.ndarray:
        """Side ``a``'s entities cut into ``n`` blocks of about equal rows: the n + 1 bounds."""
        if (a, n) not in self._blocks:
            indptr = self.views[a].indptr
            bounds = np.searchsorted(indptr, np.linspace(0, indptr[-1], n + 1)[1:-1])
            self._blocks[a, n] = np.concatenate([[0], bounds, [len(indptr) - 1]]).astype(np.int64)
        return self._blocks[a, n]


class BayesianFM(RatingModel):
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(self, n_users: int, n_items: int, n_days: int, mu: float, nu_indptr: np.ndarray,
                 nu_items: np.ndarray, watch_user: np.ndarray, watch_item: np.ndarray, watch_day: np.ndarray,
                 n_factors: int = 32,
                 features: Literal["mf", "svdpp", "timesvd", "timesvdpp", "timesvdpp_flipped", "timesvdpp_userday",
                                   "timesvdpp_userday_flipped"] = "mf",
                 burn_in: int = 5, init_std: float = 0.1, alpha_0: float = 1.0, beta_0: float = 1.0,
                 gamma_0: float = 1.0, mu_0: float = 0.0, reg_0: float = 1.0,
                 scan: Literal["sides", "factors"] = "sides", chains: int = 1,
                 likelihood: Literal["normal", "ordered_probit"] = "normal", cut_nu: float = 5.0,
                 rating_levels: np.ndarray | None = None, user_day_keys: np.ndarray | None = None):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {tuple(FEATURES)}, got {features!r}")
        if burn_in < 0:
            raise ValueError(f"burn_in must be at least 0, got {burn_in}")
        if scan not in ("sides", "factors"):
            raise ValueError(f"scan must be 'sides' or 'factors', got {scan!r}")
        if chains < 1:
            raise ValueError(f"chains must be at least 1, got {chains}")
        if likelihood not in ("normal", "ordered_probit"):
            raise ValueError(f"likelihood must be 'normal' or 'ordered_probit', got {likelihood!r}")
        self.probit = likelihood == "ordered_probit"
        if self.probit:
            if rating_levels is None or len(np.unique(rating_levels)) < 2:
                raise ValueError("likelihood='ordered_probit' needs rating_levels, at least two distinct ratings "
                                 f"(the data layer gives them), got {rating_levels}")
            if cut_nu <= 0:
                raise ValueError(f"cut_nu must be positive, got {cut_nu}")
        self.likelihood, self.cut_nu = likelihood, float(cut_nu)
        self.scan = scan
        time_block, use_nu, use_ni = FEATURES[features]
        self.features, self.k, self.burn_in = features, int(n_factors), int(burn_in)
        self.alpha_0, self.beta_0, self.gamma_0, self.mu_0, self.reg_0 = map(float, (alpha_0, beta_0, gamma_0, mu_0,
                                                                                      reg_0))
        self.n_days = int(n_days)
        self._user_days = None  # userday: the sorted user * n_days + day keys; entity len(keys): any other pair
        n_time = n_days
        if time_block == "userday":
            if user_day_keys is None:
                raise ValueError(f"features={features!r} needs user_day_keys, the sorted user * n_days + day of "
                                 "every known (user, day) (the data layer gives them)")
            self._user_days = np.asarray(user_day_keys, np.int64)
            if len(self._user_days) > 1 and not (np.diff(self._user_days) > 0).all():
                raise ValueError("user_day_keys must be sorted and distinct (prizenet.data.PrizeData.user_day_keys)")
            n_time = len(self._user_days) + 1
        self.sides = [_Side("user", n_users), _Side("item", n_items)]
        if time_block:
            self.sides.append(_Side(time_block, n_time))
        if use_nu or use_ni:
            nu_indptr, nu_items = np.asarray(nu_indptr, np.int64), np.asarray(nu_items, np.int64)
            owner = np.repeat(np.arange(n_users), np.diff(nu_indptr))
            key = owner * n_items + nu_items
            if len(key) and not (np.diff(key) > 0).all():  # N(u) is a set: each pair once, in order
                key = np.unique(key)
                owner, nu_items = key // n_items, key % n_items
                nu_indptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n_users))]).astype(np.int64)
            order = np.argsort(nu_items, kind="stable")
            ni_indptr = np.concatenate([[0], np.cumsum(np.bincount(nu_items, minlength=n_items))]).astype(np.int64)
            ni_users = owner[order]
            if use_nu:  # N(u)'s features are items; the entities holding item j are N(j)
                self.sides[0] = _Side("user", n_users, "nu", nu_indptr, nu_items, ni_indptr, ni_users.astype(np.int32),
                                      _norm(nu_indptr))
            if use_ni:
                self.sides[1] = _Side("item", n_items, "ni", ni_indptr, ni_users, nu_indptr, nu_items.astype(np.int32),
                                      _norm(ni_indptr))
        self.blocks = [b for s in self.sides for b in (s.name, s.implicit) if b]
        sizes = {"user": n_users, "item": n_items, "day": n_days, "userday": n_time, "nu": n_items, "ni": n_users}
        for b in self.blocks:
            self.register_buffer(f"w_{b}", torch.zeros(sizes[b], dtype=torch.float64))
            self.register_buffer(f"v_{b}", torch.randn(sizes[b], self.k, dtype=torch.float64) * init_std)
        g = len(self.blocks)
        # w0 starts at the mean rating, or for the ordered probit at 0 (its prior mean: the
        # latent scale is placed by the cut points)
        self.register_buffer("w0", torch.tensor(0.0 if self.probit else float(mu), dtype=torch.float64))
        self.register_buffer("alpha", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("mu_w", torch.zeros(g, dtype=torch.float64))
        self.register_buffer("lam_w", torch.ones(g, dtype=torch.float64))
        self.register_buffer("mu_v", torch.zeros(g, self.k, dtype=torch.float64))
        self.register_buffer("lam_v", torch.ones(g, self.k, dtype=torch.float64))
        self.register_buffer("seed", torch.randint(0, 2 ** 62, (), dtype=torch.int64))  # from the trainer's seed
        self.register_buffer("n_sweeps", torch.tensor(0))
        self.register_buffer("n_kept", torch.tensor(0))
        if self.probit:  # the rating levels, the cut points' parameters a (prizenet.models.oprobit), MH acceptances
            self.register_buffer("levels", torch.from_numpy(np.unique(np.asarray(rating_levels, np.float64))))
            self.register_buffer("cut_a", torch.zeros(len(self.levels) - 1, dtype=torch.float64))
            self.register_buffer("cut_mode", torch.zeros(len(self.levels) - 1, dtype=torch.float64))  # Newton's start
            self.register_buffer("n_accepted", torch.tensor(0))
        # the watched pairs, sorted by key; their running average of r̂ over the kept samples
        key = self._keys(*(torch.as_tensor(np.asarray(a, np.int64)) for a in (watch_user, watch_item, watch_day)))
        self._watch_keys, order = torch.sort(key)
        o = order.numpy()
        self._watch_ents = self._entities(*(np.asarray(a, np.int64)[o] for a in (watch_user, watch_item, watch_day)))
        self.register_buffer("avg", torch.zeros(len(key), dtype=torch.float64))
        self._rows: _Rows | None = None
        self._sample = None  # per-side sums of the current sample, for forward
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_sample", None))
        # chains 2..: independent chains of the same model (their own initial draws and seed,
        # taken after this one's, so chains=1 is the single chain it always was)
        self.more = torch.nn.ModuleList()
        for _ in range(int(chains) - 1):
            c = BayesianFM(n_users, n_items, n_days, mu, nu_indptr, nu_items, watch_user, watch_item, watch_day,
                           n_factors, features, burn_in, init_std, alpha_0, beta_0, gamma_0, mu_0, reg_0, scan,
                           likelihood=likelihood, cut_nu=cut_nu, rating_levels=rating_levels,
                           user_day_keys=user_day_keys)
            c.sides = self.sides  # N(u), N(i) and their norms are read only: one copy, the chain's own freed now
            self.more.append(c)

    @property
    def sweeps(self) -> bool:
        return True

    def scalars(self) -> dict[str, float]:
        """The sample's noise sd 1/√α, and per block the prior sd 1/√λ of its weights and
        (averaged over factors) of its factors."""
        out = {"noise_sd": float(self.alpha) ** -0.5, "samples_kept": float(self.n_kept)}
        if self.probit:
            for m, g in enumerate(oprobit.cuts(self.cut_a.numpy())):
                out[f"cut_point/{m}"] = float(g)
            out["cut_acceptance"] = float(self.n_accepted) / max(int(self.n_sweeps), 1)
        for g, b in enumerate(self.blocks):
            out[f"prior_sd_w/{b}"] = float(self.lam_w[g]) ** -0.5
            out[f"prior_sd_v/{b}"] = float((self.lam_v[g] ** -0.5).mean())
        return out

    def see(self, n_user_ratings: np.ndarray, n_item_ratings: np.ndarray) -> None:
        """Nothing to zero: a user or item without ratings is drawn from its prior."""

    def _keys(self, user: torch.Tensor, item: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
        """The watched pairs' keys: (user, item), and the day where a side depends on it."""
        timed = len(self.sides) == 3
        n_items, n_days = self.sides[1].n, self.n_days if timed else 1
        return (user.long() * n_items + item.long()) * n_days + (day.long() if timed else 0)

    def _entities(self, user: np.ndarray, item: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Each side's entity of the pairs (sides × pairs, int32): the user, the item, and
        the day or the index of the (user, day) among ``user_day_keys`` (a pair not among
        them: the one entity without ratings)."""
        cols = {"user": user, "item": item, "day": day}
        if self._user_days is not None:
            day = np.asarray(day, np.int64)
            key = np.asarray(user, np.int64) * self.n_days + day
            pos = np.searchsorted(self._user_days, key)
            known = (pos < len(self._user_days)) & (day >= 0) & (day < self.n_days)  # (a later day is no key)
            known[known] = self._user_days[pos[known]] == key[known]
            cols["userday"] = np.where(known, pos, len(self._user_days))
        return np.stack([np.asarray(cols[s.name]) for s in self.sides]).astype(np.int32)

    # -- the current sample ----------------------------------------------------------------
    def _side_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """BW (sides × entities: linear terms plus within-side pairs) and P (sides ×
        entities × k) of the current sample."""
        n = max(s.n for s in self.sides)
        BW = np.zeros((len(self.sides), n))
        P = np.zeros((len(self.sides), n, self.k))
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
        for a, s in enumerate(self.sides):
            w1, v1 = getattr(self, f"w_{s.name}").numpy(), getattr(self, f"v_{s.name}").numpy()
            if s.implicit:
                wi, vi = getattr(self, f"w_{s.implicit}").numpy(), getattr(self, f"v_{s.implicit}").numpy()
                args = (s.indptr, s.feats, s.norm, w1, v1, wi, vi)
            else:
                args = (empty_i, empty_i, empty_f, w1, v1, empty_f, v1[:0])
            B, W = np.empty(s.n), np.empty(s.n)
            K.side_sums(*args, B, P[a, :s.n], W)
            BW[a, :s.n] = B + W
        return BW, P

    def _rating(self, score: np.ndarray) -> np.ndarray:
        """The rating predicted from FM scores r̂: r̂ itself, or for the ordered probit the
        expected rating under the current cut points."""
        if not self.probit:
            return score
        return oprobit.expected(score, oprobit.cuts(self.cut_a.numpy()), self.levels.numpy())

    def _predict(self, ents: np.ndarray, sums=None) -> np.ndarray:
        """The FM score r̂(x) of the rows whose sides' entities are ``ents`` (sides × rows)."""
        BW, P = sums if sums is not None else self._side_sums()
        out = np.empty(ents.shape[1])
        K.predict(ents, float(self.w0), BW, P, out)
        return out

    def forward(self, batch: Batch) -> torch.Tensor:
        """r̂ averaged over the chains: each chain's running average for the watched pairs in
        eval mode, its current sample otherwise."""
        pred = self._chain_forward(batch)
        for c in self.more:
            pred = pred + c._chain_forward(batch)
        return pred / (1 + len(self.more))

    def _chain_forward(self, batch: Batch) -> torch.Tensor:
        if self._sample is None:
            self._sample = self._side_sums()
        ents = self._entities(*(t.cpu().numpy() for t in (batch.user, batch.item, batch.day)))
        pred = torch.from_numpy(self._rating(self._predict(ents, self._sample)))
        if not self.training and int(self.n_kept) > 0 and len(self._watch_keys):
            key = self._keys(batch.user.cpu(), batch.item.cpu(), batch.day.cpu())
            pos = torch.searchsorted(self._watch_keys, key).clamp_(max=len(self._watch_keys) - 1)
            pred = torch.where(self._watch_keys[pos] == key, self.avg[pos], pred)
        return pred.float().to(batch.user.device)

    # -- one Gibbs sweep ---------------------------------------------------------------------
    @torch.no_grad()
    def sweep(self, batch: Batch) -> torch.Tensor:
        """One Gibbs sweep of every chain over the training ratings of ``batch``; returns the
        squared error of the first chain's new sample on them (0-d float64)."""
        err = self._chain_sweep(batch)
        for c in self.more:
            c._rows = self._rows  # one sorted copy of the rows for all chains
            c._chain_sweep(batch)
        return err

    def _chain_sweep(self, batch: Batch) -> torch.Tensor:
        if self._rows is None or self._rows.key != (len(batch), batch.user.data_ptr(), batch.rating.data_ptr()):
            self._rows = _Rows(batch, self.sides, self._entities)
        R = self._rows
        rng = self._generator()
        sums = self._sample if self._sample is not None else self._side_sums()  # (kept from the last sweep's end)
        score = self._predict(R.ents, sums)  # r̂ of every row
        n = len(score)
        if self.probit:  # the cut points given the scores, then the latent z given both; noise precision 1
            if R.classes is None:
                R.classes = oprobit.classes(R.y, self.levels.numpy())
            start = self.cut_mode.numpy() if int(self.n_sweeps) else None
            a, accepted, centre = oprobit.step(rng, self.cut_a.numpy(), score, R.classes, self.reg_0, self.cut_nu,
                                               start)
            self.cut_a.copy_(torch.from_numpy(a))
            self.cut_mode.copy_(torch.from_numpy(centre))
            self.n_accepted += int(accepted)
            z = oprobit.latent(rng, score, R.classes, oprobit.cuts(a))
            e, alpha = z - score, 1.0
        else:
            z = R.y
            e = z - score
            alpha = rng.gamma((self.alpha_0 + n) / 2, 2 / (self.beta_0 + e @ e))
        prec = alpha * n + self.reg_0
        w0 = float(self.w0)
        new = alpha * (e.sum() + n * w0) / prec + rng.standard_normal() / np.sqrt(prec)
        e -= new - w0
        self.w0.fill_(new)
        self.alpha.fill_(alpha)

        for g, b in enumerate(self.blocks):
            self._hyper(rng, getattr(self, f"w_{b}").numpy()[:, None], self.mu_w[g:g + 1], self.lam_w[g:g + 1])
        self._phase(rng, R, e, alpha, True, sums[1])
        for g, b in enumerate(self.blocks):
            self._hyper(rng, getattr(self, f"v_{b}").numpy(), self.mu_v[g], self.lam_v[g])
        if self.scan == "sides":  # (the linear phase did not move P)
            self._phase(rng, R, e, alpha, False, sums[1])
        else:
            self._factor_major(rng, R, e, alpha, sums[1])

        self.n_sweeps += 1
        self._sample = self._side_sums()  # the new sample's, for the watched pairs, forward and the next sweep
        if int(self.n_sweeps) > self.burn_in and len(self._watch_keys):
            self.n_kept += 1
            new = self._rating(self._predict(self._watch_ents, self._sample))
            self.avg += (torch.from_numpy(new) - self.avg) / int(self.n_kept)
        if self.probit:  # the squared error of the new sample's expected ratings (e is the latent z's)
            e = R.y - self._rating(z - e)
        return torch.tensor(float(e @ e), dtype=torch.float64)

    def _generator(self) -> np.random.Generator:
        """This sweep's draws: seeded by the chain's seed and the sweep's number."""
        return np.random.default_rng([int(self.seed), int(self.n_sweeps)])

    def _block(self, name: str, linear: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block ``name``'s table of the phase (its linear weights as one column, or its
        factors; numpy views, the draws write into the model) and its prior means and
        precisions, one per column."""
        g = self.blocks.index(name)
        if linear:
            return getattr(self, f"w_{name}").numpy()[:, None], self.mu_w[g:g + 1].numpy(), self.lam_w[g:g + 1].numpy()
        return getattr(self, f"v_{name}").numpy(), self.mu_v[g].numpy(), self.lam_v[g].numpy()

    def _phase(self, rng, R: _Rows, e: np.ndarray, alpha: float, linear: bool, P: np.ndarray) -> None:
        """Draw every linear weight (``linear``) or every factor, side after side, each
        side on its view of the rows; ``e`` (the residuals, in stored order) is kept up to
        date. ``P`` (sides × entities × k): the sides' P before."""
        k = 1 if linear else self.k
        onehot = K.DRAWS[linear, len(self.sides) == 3][3]
        P = np.zeros((len(self.sides), P.shape[1], 1)) if linear else P.copy()  # kept current, side by side
        for a, s in enumerate(self.sides):
            if s.implicit:
                self._implicit_side(rng, R, a, e, alpha, linear, P)
                continue
            V = R.views[a]
            o = [b for b in range(len(self.sides)) if b != a]
            table, mu, lam = self._block(s.name, linear)
            # every factor of an entity at once; one other side: the same one twice (the kernel reads it once)
            onehot(R.blocks(a, 4 * numba.get_num_threads()), V.indptr, V.perm if V.perm is not None else R.no_perm,
                   e, (V.others[0], P[o[0]], V.others[-1], P[o[-1]]), table, lam, mu, alpha,
                   rng.standard_normal((s.n, k)), K.CAP)
            if not linear:
                P[a, :s.n] = table

    def _implicit_side(self, rng, R: _Rows, a: int, e: np.ndarray, alpha: float, linear: bool,
                       P: np.ndarray) -> None:
        """``_phase`` for side ``a``, which has an implicit block: its linear weights, or
        factor after factor its one-hot and its implicit features, each factor's row pass
        beside the last one's implicit draws (``prizenet.kernels.numba.bfm.step``); P[a] is
        brought up to date."""
        k = 1 if linear else self.k
        grouped, implicit, apply, _, sums, step = K.DRAWS[linear, len(self.sides) == 3]
        s, V = self.sides[a], R.views[a]
        o = [b for b in range(len(self.sides)) if b != a]
        ents = (V.others[0], V.others[-1])  # one other side: the same one twice (the kernels read it once)
        table, mu, lam = self._block(s.name, linear)
        imp, imu, ilam = self._block(s.implicit, linear)
        ev = e
        if V.perm is not None:
            ev = np.empty_like(e)
            K.take(e, V.perm, ev)
        cols = [np.ascontiguousarray(P[b].T) for b in (o[0], o[-1])]  # one factor's column contiguous
        PT = np.ascontiguousarray(P[a].T)
        none = np.zeros(s.n)
        col = lambda f: (cols[0][f], cols[1][f])  # noqa: E731
        if linear:
            st = K.caches(s.n)  # the entities' caches (prizenet.kernels.numba.bfm)
            grouped(V.indptr, ev, s.norm, table, float(lam[0]), float(mu[0]), alpha, rng.standard_normal(s.n), st)
            implicit(s.tindptr, s.tents, imp, 0, float(ilam[0]), float(imu[0]), alpha,
                     rng.standard_normal(len(s.tindptr) - 1), st)
            apply(V.indptr, ev, (st[:, K.DA].copy(), none, *col(0)), (ents[0], cols[0][0], ents[1], cols[1][0]))
        else:  # factor after factor, each factor's row pass beside the last one's implicit draws
            # the row pass's P of each other side at f−1, f and f+1 (``_sums``): for a side of up
            # to TABLE_ROWS entities the three side by side, one 32-byte row an entity; a larger
            # side's (a Netflix-sized user side) as three columns, read through an (entities × 3)
            # transposed view: its entities come in ascending runs (an item's rows are sorted by
            # user), where a line of a column holds 8 of them and a line of the table 2
            sizes = [self.sides[b].n for b in o]
            own = [K.caches(n, 4) if n <= TABLE_ROWS else np.empty((3, n)).T for n in sizes]
            tabs = (own[0], own[-1])  # one other side: the same table twice (the kernels read it once)

            def fill(*fs):
                for t, c, n in zip(own, cols, sizes):
                    for j, f in enumerate(fs):
                        t[:, j] = c[f, :n]
                return tabs
            acc, acc_next, st = K.caches(s.n), K.caches(s.n), K.caches(s.n)  # (st: the entities' caches)
            sums(R.blocks(a, numba.get_num_threads()), V.indptr, ev, ents, none, none, fill(0, 0, 0), acc)
            blocks = R.blocks(a, max(numba.get_num_threads() - 1, 1))  # step's tasks 1.. (0: the draws)
            dA, dB = none, none
            for f in range(k):
                before = PT[f].copy()
                three = fill(max(f - 1, 0), f, min(f + 1, k - 1))
                step(blocks, V.indptr, ev, ents, dA, dB, three, f + 1 < k, acc_next, acc, before, s.norm,
                     table, f, float(lam[f]), float(mu[f]), alpha, rng.standard_normal(s.n), st, s.tindptr, s.tents,
                     imp, float(ilam[f]), float(imu[f]), rng.standard_normal(len(s.tindptr) - 1))
                PT[f, :s.n] = st[:, K.P]
                dA, dB = st[:, K.DA].copy(), PT[f, :s.n] - before[:s.n]
                acc, acc_next = acc_next, acc
            apply(V.indptr, ev, (dA, dB, *col(k - 1)), (ents[0], cols[0][k - 1], ents[1], cols[1][k - 1]))
        P[a] = PT.T
        if V.perm is not None:
            K.put(ev, V.perm, e)

    def _factor_major(self, rng, R: _Rows, e: np.ndarray, alpha: float, P: np.ndarray) -> None:
        """The factor phase with ``scan="factors"`` (myFM's order): for f = 1..k, every
        side's one-hot then implicit column f, on the rows in stored order; each pass also
        brings the rows up to date with the previous side's draws."""
        first, scatter, chunks_draw, apply = K.FACTOR_MAJOR[len(self.sides) == 3]
        implicit = K.DRAWS[False, len(self.sides) == 3][1]
        PT = np.ascontiguousarray(P.transpose(0, 2, 1))  # one factor's column contiguous
        if R.buf is None:
            R.buf = [None] + [np.empty((K.CHUNKS, s.n, 5)) for s in self.sides[1:]]
        prev = R.none
        for f in range(self.k):
            for a, s in enumerate(self.sides):
                st = K.caches(s.n)  # the entities' caches (prizenet.kernels.numba.bfm)
                other = [(R.ents[b], PT[b, f]) for b in range(len(self.sides)) if b != a]
                others = (*other[0], *other[-1])  # one other side: the same one twice (the kernels read it once)
                before = PT[a, f].copy()
                table, mu, lam = self._block(s.name, False)
                draw = (s.norm if s.implicit else R.ones, table, f, float(lam[f]), float(mu[f]), alpha,
                        rng.standard_normal(s.n), st)
                if a == 0:
                    first(R.views[0].indptr, e, prev, others, before, *draw)
                else:
                    scatter(R.ents[a], e, prev, others, R.buf[a])
                    chunks_draw(R.buf[a], before, *draw)
                if s.implicit:
                    imp, imu, ilam = self._block(s.implicit, False)
                    implicit(s.tindptr, s.tents, imp, f, float(ilam[f]), float(imu[f]), alpha,
                             rng.standard_normal(len(s.tindptr) - 1), st)
                PT[a, f, :s.n] = st[:, K.P]
                prev = (R.ents[a], st[:, K.DA].copy(), st[:, K.P] - before[:s.n], *others)
        apply(e, prev)

    def _hyper(self, rng, theta: np.ndarray, mu: torch.Tensor, lam: torch.Tensor) -> None:
        """λ ~ Gamma((alpha_0 + n)/2, rate (beta_0 + Σ(θ − μ)²)/2), then μ ~ N((gamma_0·mu_0
        + Σθ)/(gamma_0 + n), 1/(λ·(gamma_0 + n))), for each column of ``theta`` (n × cols)."""
        n = theta.shape[0]
        m = mu.numpy()
        new_lam = rng.gamma((self.alpha_0 + n) / 2, 2 / (self.beta_0 + ((theta - m) ** 2).sum(0)))
        prec = new_lam * (self.gamma_0 + n)
        new_mu = (self.gamma_0 * self.mu_0 + theta.sum(0)) / (self.gamma_0 + n) + rng.standard_normal(len(m)) / np.sqrt(prec)
        lam.copy_(torch.from_numpy(new_lam))
        mu.copy_(torch.from_numpy(new_mu))


def _norm(indptr: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(np.maximum(np.diff(indptr), 1)).astype(np.float64)
