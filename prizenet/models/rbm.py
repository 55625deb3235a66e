"""The conditional restricted Boltzmann machine for collaborative filtering (Salakhutdinov,
Mnih & Hinton 2007): one RBM per user (a "case"), all sharing their weights.

    p(h_f = 1 | V, r) = σ(x_f),  x_f = bh[f] + Σ_{i∈R(u)} W[i, v_i, f] + Σ_{j∈N(u)} D[j, f]
    p(v_i = k | h)    = softmax_k(bv[i, k] + Σ_f h_f W[i, k, f])
    r̂_ui             = Σ_k level_k · p(v_i = k | V, r)

* Visible units: a softmax over the K rating levels (``rating_levels``, the distinct
  training ratings: 1..5 for Netflix and MovieLens-1M, ten half-stars for ml-latest) for
  each item the user rated in training, R(u); items the user did not rate have no visible
  unit. Hidden units: ``n_hidden`` binary features. ``conditional``: the "who rated what"
  term Σ_{j∈N(u)} D[j] over N(u) (training, probe and qualifying items, as SVD++'s y), the
  paper's conditional RBM, which knows which qualifying movies a user will rate.
* Prediction, by ``predict``: ``"exact"`` (the default) sums the hidden units out,
  p(v_i = k | V, r) ∝ exp(bv[i, k]) Π_f (1 + exp(x_f + W[i, k, f])), the paper's exact
  one-item prediction (it costs what the mean-field one does: K·F a pair); ``"mean_field"``
  takes p(v_i = k | p̂), p̂ = σ(x). r̂ is the expected rating under that softmax.
* ``by="item"``: the same machine on the transposed matrix (one RBM per item, a softmax per
  user who rated it, N(i) = the users who rated or will rate i), Sedhain et al.'s (2015)
  I-RBM; the loader's batches then hold whole items.
* ``rank`` = C > 0: the paper's factored weights (its section 5), W[i, k, f] = Σ_c
  A[i, k, c]·B[c, f], n_units·K·C + C·F weights instead of n_units·K·F. W is kept
  materialised (A·B after every update), so inference is unchanged; learning moves A and B
  along the chain rule of W's gradient below, dA = (ΔW / cases that rated i)·Bᵀ and
  dB = Σ_i A_iᵀ ΔW_i / cases in the batch, both at ``lr_w`` with weight decay. A and B start
  so that W's entries have variance init_std², as the full W's do.
* Learning: contrastive divergence CD-T (Hinton 2002) on the loader's batches of whole
  cases. Per batch, the data phase p̂⁰ = p(h | V, r); T alternating Gibbs steps (h sampled,
  then the case's visible units sampled from their softmax, the last step's kept as
  probabilities) give p^T(v) and p^T(h). The updates, with momentum and weight decay:

      ΔW[i, k, f] ∝ ⟨v_ik h_f⟩⁰ − ⟨v_ik h_f⟩^T      ΔD[j, f] ∝ ⟨h_f⟩⁰ − ⟨h_f⟩^T   (j ∈ N(u))
      Δbv[i, k]   ∝ ⟨v_ik⟩⁰ − ⟨v_ik⟩^T               Δbh[f]   ∝ ⟨h_f⟩⁰ − ⟨h_f⟩^T

  each ⟨⟩ a sum over the batch's cases (h as probabilities), divided by the number of them
  the row concerns: for W and bv the cases that rated item i in the batch, for D those with
  j in N(u), for bh all of them (rare items would otherwise learn only through the batch
  size); the counts for W, bv and D plus ``count_prior`` pseudo-cases (at 1, a row one
  case touches takes half a step, not a full one; 0 gives the plain count). Then
  vel = momentum·vel + lr·scale·(Δ − weight_decay·θ) (no decay on biases), θ += vel.
  T follows ``cd_steps``, one entry per ``cd_every`` epochs (the paper starts with T = 1
  and raises it to 3, 5 and 9 as learning goes on). bv starts at the log of
  each item's level frequencies (Laplace-smoothed towards the global ones: an unseen item
  predicts the global rating distribution's mean), W at N(0, init_std²), D and bh at 0.
* Reading of the paper: its learning rates are for the full Netflix data and batches of
  about 1,000 users (``experiment=netflix_rbm`` has its settings as read); here the rates
  are per case that touches a row, tuned on ml1m-half (``experiment=ml1m_rbm``), where the
  3,000 users are few for the weights and weight decay 0.03 is needed. The paper gives its
  RBMs' probe RMSE in figures only, and says they "slightly outperform carefully-tuned SVD
  models" on Netflix.

Everything is torch on the model's device: a batch's W rows gathered once as [ratings, K, F]
and every sum a segment sum (``index_add``) over the batch's ratings; no per-rating Python.
Memory: W is n_items·K·F floats (Netflix, K = 5, F = 100: 36 MB), with its velocity twice
that (with ``rank`` C: W, plus A and its velocity, n_items·K·C floats each); a batch gathers
[ratings, K, F] (200,000 ratings: 400 MB at F = 100).

Salakhutdinov, R., Mnih, A. & Hinton, G. (2007). Restricted Boltzmann machines for
collaborative filtering. ICML 2007. Sedhain, S., Menon, A. K., Sanner, S. & Xie, L. (2015).
AutoRec: autoencoders meet collaborative filtering. WWW 2015.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..data import Batch
from .base import RatingModel
from .svdpp import implicit_buffer, ratings_per, users_of
from .tables import budget_spans, csr_rows, csr_segments

ENTRIES = 1 << 23  # [rows, K, F] entries gathered at once when predicting


class RBM(RatingModel):
    learns = True  # learn(batch, scale, epoch): contrastive divergence, not a loss's gradient

    def __init__(self, n_users: int, n_items: int, nu_indptr: np.ndarray, nu_items: np.ndarray,
                 rated_indptr: np.ndarray, rated_items: np.ndarray, rated_ratings: np.ndarray,
                 item_indptr: np.ndarray, item_users: np.ndarray, item_ratings: np.ndarray,
                 rating_levels: np.ndarray, by: Literal["user", "item"] = "user", n_hidden: int = 100,
                 conditional: bool = True, lr_w: float = 0.01, lr_bv: float = 0.01, lr_bh: float = 0.01,
                 lr_d: float = 0.001, weight_decay: float = 0.001, momentum: float = 0.9,
                 cd_steps: list[int] | tuple[int, ...] = (1, 3, 5, 9), cd_every: int = 10, init_std: float = 0.01,
                 prior: float = 1.0, predict: Literal["exact", "mean_field"] = "exact", rank: int = 0,
                 count_prior: float = 0.0):
        super().__init__()
        levels = np.asarray(rating_levels, np.float32)
        if levels.ndim != 1 or len(levels) < 2:
            raise ValueError(f"rating_levels must hold at least two distinct ratings, got {levels.tolist()}")
        if by not in ("user", "item"):
            raise ValueError(f"by must be 'user' or 'item', got {by!r}")
        if predict not in ("exact", "mean_field"):
            raise ValueError(f"predict must be 'exact' or 'mean_field', got {predict!r}")
        if not cd_steps or any(int(t) < 1 for t in cd_steps):
            raise ValueError(f"cd_steps must be Gibbs step counts of at least 1, got {list(cd_steps)}")
        if cd_every < 1:
            raise ValueError(f"cd_every must be at least 1, got {cd_every}")
        if count_prior < 0:
            raise ValueError(f"count_prior must be a pseudo-count of at least 0, got {count_prior}")
        if rank < 0:
            raise ValueError(f"rank must be 0 (a full W) or the number of factors of W = A·B, got {rank}")
        self.by = self.group_by = by  # the loader's batches hold whole cases (users, or items)
        self.n_users, self.n_items, self.n_hidden = int(n_users), int(n_items), int(n_hidden)
        self.n_units = self.n_items if by == "user" else self.n_users
        self.conditional, self.predict = bool(conditional), predict
        self.lr = {"W": float(lr_w), "A": float(lr_w), "B": float(lr_w), "bv": float(lr_bv), "bh": float(lr_bh),
                   "D": float(lr_d)}  # (A and B, W's factors when ``rank`` is set, learn at W's rate)
        self.weight_decay, self.momentum = float(weight_decay), float(momentum)
        self.count_prior = float(count_prior)
        self.cd_steps, self.cd_every = [int(t) for t in cd_steps], int(cd_every)
        K, F = len(levels), self.n_hidden
        self.register_buffer("levels", torch.from_numpy(levels))
        # Each case's ratings (the visible units a prediction conditions on) and implicit
        # units (N(u), or N(i) = the users who rated or will rate i): data, not parameters.
        if by == "user":
            indptr, units, ratings = rated_indptr, rated_items, rated_ratings
            imp_indptr, imp_units = implicit_buffer(nu_indptr, np.int64), implicit_buffer(nu_items, np.int32)
        else:
            indptr, units, ratings = item_indptr, item_users, item_ratings
            imp_indptr, imp_units = _transpose(implicit_buffer(nu_indptr, np.int64),
                                               implicit_buffer(nu_items, np.int32), self.n_items)
        self.register_buffer("imp_indptr", imp_indptr, persistent=False)
        self.register_buffer("imp_units", imp_units, persistent=False)
        self.register_buffer("case_indptr", torch.from_numpy(np.ascontiguousarray(indptr, np.int64)), persistent=False)
        self.register_buffer("case_units", torch.from_numpy(np.ascontiguousarray(units, np.int64)), persistent=False)
        self.register_buffer("case_levels", self.level_of(torch.from_numpy(np.asarray(ratings, np.float32))),
                             persistent=False)
        counts = torch.zeros(self.n_units, K).index_put_((self.case_units, self.case_levels),
                                                         torch.ones(len(self.case_units)), accumulate=True)
        p = (counts.sum(0) + 1.0) / (counts.sum() + K)  # the global level frequencies
        self.rank = int(rank)
        if self.rank:  # W = A·B: A[i, k, c] per unit and level, B[c, f] shared (the paper's section 5)
            std = (init_std / self.rank ** 0.5) ** 0.5  # so that W's entries start with variance init_std²
            self.register_buffer("A", torch.randn(self.n_units, K, self.rank) * std)
            self.register_buffer("B", torch.randn(self.rank, F) * std)
            self.register_buffer("W", self.A @ self.B)
        else:
            self.register_buffer("W", torch.randn(self.n_units, K, F) * init_std)
        self.register_buffer("bv", torch.log((counts + prior * p) / (counts.sum(1, keepdim=True) + prior)))
        self.register_buffer("bh", torch.zeros(F))
        self.register_buffer("D", torch.zeros(self.n_units, F))
        for name in self.learned():  # momentum: saved with the model, so a resumed run continues it
            self.register_buffer(f"vel_{name}", torch.zeros_like(getattr(self, name)))

    def learned(self) -> tuple[str, ...]:
        """The tensors contrastive divergence updates (W is A·B when ``rank`` is set)."""
        return ("A", "B", "bv", "bh", "D") if self.rank else ("W", "bv", "bh", "D")

    def _materialise(self) -> None:
        """W = A·B (``rank`` set), after every change of A or B."""
        self.W.copy_(self.A @ self.B)

    def level_of(self, rating: torch.Tensor) -> torch.Tensor:
        """The index of each rating among the levels (a rating between two: the nearer)."""
        pos = torch.searchsorted(self.levels, rating).clamp(1, len(self.levels) - 1)
        lower = (rating - self.levels[pos - 1]) < (self.levels[pos] - rating)
        return torch.where(lower, pos - 1, pos)

    def see(self, n_user_ratings, n_item_ratings) -> None:
        """Units without a training rating keep no weights: they predict from bv (the global levels)."""
        counts = n_item_ratings if self.by == "user" else n_user_ratings
        unseen = torch.from_numpy(np.flatnonzero(np.asarray(counts) == 0)).to(self.W.device)
        if self.rank:
            self.A.index_fill_(0, unseen, 0.0)
            self._materialise()
        else:
            self.W.index_fill_(0, unseen, 0.0)

    def steps_at(self, epoch: int) -> int:
        """T of CD-T in (0-based) ``epoch``."""
        return self.cd_steps[min(epoch // self.cd_every, len(self.cd_steps) - 1)]

    def scalars(self) -> dict[str, float]:
        return {"hidden_bias_mean": float(self.bh.mean()), "weight_rms": float(self.W.pow(2).mean().sqrt())}

    def _cases(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the batch's distinct cases, each rating's index among them, each rating's unit)."""
        if self.by == "user":
            cases, inverse = users_of(batch)
            return cases, inverse, batch.item
        if batch.items is not None:
            return batch.items, batch.inverse, batch.user
        cases, inverse = torch.unique(batch.item, return_inverse=True)
        return cases, inverse, batch.user

    # -- the hidden units -------------------------------------------------------------------
    def implicit(self, cases: torch.Tensor) -> torch.Tensor:
        """Σ_{j∈N(case)} D[j] for each of ``cases`` ([C_b, F]); zeros when not conditional."""
        out = torch.zeros(len(cases), self.n_hidden, device=self.W.device)
        if not self.conditional or len(cases) == 0:
            return out
        seg, pos = csr_segments(self.imp_indptr, cases)
        return out.index_add_(0, seg, self.D.index_select(0, self.imp_units.index_select(0, pos).long()))

    def hidden(self, cases: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """p̂ = p(h = 1 | V, r) for each of ``cases``, from all of their training ratings, in
        chunks of about ``ENTRIES`` gathered weights (``logits``: the hidden units' inputs)."""
        if len(cases) == 0:
            return torch.zeros(0, self.n_hidden, device=self.W.device)
        ends = torch.cumsum(self.case_indptr[cases + 1] - self.case_indptr[cases], 0).cpu()
        parts = []
        for a, b in budget_spans(ends, max(1, ENTRIES // self.n_hidden)):
            seg, pos = csr_segments(self.case_indptr, cases[a:b])
            x = self.bh + self.implicit(cases[a:b])
            x = x.index_add(0, seg, self.W[self.case_units[pos], self.case_levels[pos]])
            parts.append(x if logits else torch.sigmoid(x))
        return torch.cat(parts)

    # -- predictions ------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, batch: Batch) -> torch.Tensor:
        cases, inverse, units = self._cases(batch)
        x = self.hidden(cases, logits=True)
        out = torch.empty(len(batch), device=self.W.device)
        step = max(1, ENTRIES // (len(self.levels) * self.n_hidden))
        for a in range(0, len(batch), step):
            unit, xc = units[a:a + step], x[inverse[a:a + step]]
            if self.predict == "exact":  # the free energy of each level of v_i, h summed out
                logits = self.bv[unit] + torch.nn.functional.softplus(xc[:, None, :] + self.W[unit]).sum(-1)
            else:
                logits = self.bv[unit] + torch.einsum("rkf,rf->rk", self.W[unit], torch.sigmoid(xc))
            out[a:a + step] = torch.softmax(logits, -1) @ self.levels
        return out

    # -- learning ---------------------------------------------------------------------------
    @torch.no_grad()
    def learn(self, batch: Batch, scale: float, epoch: int) -> torch.Tensor:
        """One CD-T update on ``batch`` (whole cases; see the module doc); returns the batch's
        squared error of the data phase's predictions of its own ratings (before the update)."""
        cases, inverse, unit = self._cases(batch)
        level = self.level_of(batch.rating)
        n_b, K = len(cases), len(self.levels)
        Wi = self.W.index_select(0, unit)  # [R, K, F]: gathered once, used by every step
        v0 = torch.nn.functional.one_hot(level, K).to(Wi.dtype)
        base = self.bh + self.implicit(cases)  # [C_b, F]: what does not change along the chain
        ph0 = torch.sigmoid(base.index_add(0, inverse, Wi[torch.arange(len(unit), device=unit.device), level]))
        bv = self.bv.index_select(0, unit)
        pv0 = torch.softmax(bv + torch.einsum("rkf,rf->rk", Wi, ph0[inverse]), -1)
        sse = ((pv0 @ self.levels - batch.rating) ** 2).sum(dtype=torch.float64)

        ph, v = ph0, v0
        steps = self.steps_at(epoch)
        for t in range(steps):  # alternating Gibbs sampling from the data
            h = torch.bernoulli(ph)
            pv = torch.softmax(bv + torch.einsum("rkf,rf->rk", Wi, h[inverse]), -1)
            v = pv if t == steps - 1 else torch.nn.functional.one_hot(torch.multinomial(pv, 1).squeeze(1), K).to(pv.dtype)
            ph = torch.sigmoid(base.index_add(0, inverse, torch.einsum("rk,rkf->rf", v, Wi)))

        per_unit = self._cases_per(unit, Wi.dtype)  # the batch's cases that rated it, + count_prior
        dW = torch.zeros_like(self.W).index_add_(
            0, unit, v0[:, :, None] * ph0[inverse][:, None, :] - v[:, :, None] * ph[inverse][:, None, :])
        if self.rank:  # the chain rule through W = A·B: dA = dW·Bᵀ per unit, dB = Σ_i A_iᵀ dW_i per case
            dA, dB = (dW / per_unit[:, None, None]) @ self.B.T, torch.einsum("ikc,ikf->cf", self.A, dW) / max(n_b, 1)
            self._step("A", dA, scale, decay=True)
            self._step("B", dB, scale, decay=True)
            self._materialise()
        else:
            self._step("W", dW / per_unit[:, None, None], scale, decay=True)
        self._step("bv", torch.zeros_like(self.bv).index_add_(0, unit, v0 - v) / per_unit[:, None], scale)
        self._step("bh", (ph0 - ph).sum(0) / max(n_b, 1), scale)
        if self.conditional:
            seg, pos = csr_segments(self.imp_indptr, cases)
            j = self.imp_units.index_select(0, pos).long()
            per_j = self._cases_per(j, Wi.dtype)
            dD = torch.zeros_like(self.D).index_add_(0, j, (ph0 - ph).index_select(0, seg))
            self._step("D", dD / per_j[:, None], scale, decay=True)
        return sse

    def _cases_per(self, unit: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Each row's divisor: the batch's cases that touch it, plus ``count_prior``."""
        return (ratings_per(unit, self.n_units).to(dtype) + self.count_prior).clamp(min=1)

    def _step(self, name: str, grad: torch.Tensor, scale: float, decay: bool = False) -> None:
        theta, vel = getattr(self, name), getattr(self, f"vel_{name}")
        if decay:
            grad = grad - self.weight_decay * theta
        vel.mul_(self.momentum).add_(grad, alpha=self.lr[name] * scale)
        theta.add_(vel)


def _transpose(indptr: torch.Tensor, cols: torch.Tensor, n_cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The CSR (``indptr``, ``cols``) of rows x ``n_cols`` transposed: N(i) from N(u)."""
    rows = csr_rows(indptr)
    order = torch.argsort(cols.long(), stable=True)
    t_indptr = torch.zeros(n_cols + 1, dtype=torch.int64)
    t_indptr[1:] = torch.cumsum(torch.bincount(cols.long(), minlength=n_cols), 0)
    return t_indptr, rows[order].to(torch.int32)
