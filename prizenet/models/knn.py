"""Item-item neighbourhood model on baseline residuals (Koren 2008, §2.2; Bell & Koren 2007;
Sarwar et al. 2001).

    r̂_ui = b_ui + Σ_{j ∈ N^k(i;u)} w_ij · (r_uj − b_uj)

* The baseline: Koren's shrunk closed form in one pass (2008, §2.1),
  ``bi = Σ_{u∈R(i)} (r_ui − mu) / (reg_i + |R(i)|)``, then
  ``bu = Σ_{i∈R(u)} (r_ui − mu − bi) / (reg_u + |R(u)|)``. What the neighbourhood centres
  on, by ``center``: ``"item"`` (the default), b_ui = mu + bi[i], the item's shrunk mean, as
  LensKit's item kNN centres on item means: the neighbours' offsets carry the user's own
  level, and bu[u] enters only where no neighbour is found (then r̂ = mu + bu + bi);
  ``"baseline"``, Koren's b_ui = mu + bu[u] + bi[i] throughout. z_ui = r_ui − b_ui are the
  residuals the similarities and the predictions work on. (On ml1m-half "item" is better:
  0.9123 against 0.9230 at the defaults, docs/benchmarks.md.)
* Similarities S (items × items, dense), by ``similarity``:
  ``"cosine"``: of the residual columns, zero where a user did not rate,
  ``s_ij = Σ_u z_ui z_uj / (‖z_i‖ ‖z_j‖)`` with each norm over all of the item's ratings
  (LensKit's item kNN, on baseline instead of item-mean residuals): pairs with few common
  users get small similarities by themselves;
  ``"pearson"``: over the users U(i,j) who rated both, shrunk (Koren 2008, eq. 2; Surprise's
  ``pearson_baseline``): ``s_ij = n_ij/(n_ij + shrink) · Σ_U z_ui z_uj / sqrt(Σ_U z_ui² Σ_U z_uj²)``.
  Both are sparse-dense products of the residual matrix Z and its pattern B (``ZᵀZ``, and
  for Pearson ``(Z∘Z)ᵀB``, ``BᵀZ∘Z``, ``BᵀB``) on the model's device, a block of items at a
  time; s_ii = 0.
* N^k(i;u): the (at most) k items u rated with the highest s_ij > ``min_sim``, searched
  over all of u's ratings.
* The weights w_ij, by ``weights``:
  ``"average"``: s_ij / Σ_{N^k} s_ij (Koren 2008, eq. 3);
  ``"interpolate"``: Bell & Koren's (2007) jointly derived interpolation weights, the
  solution of Â w = b̂ over N^k(i;u), where Â_jl and b̂_j estimate the mean of z_vj z_vl
  and z_vj z_vi over the users v who rated both, shrunk towards the mean over all pairs
  (the diagonal towards the mean diagonal) by ``shrink_interp`` pseudo-users:
  ``Â_jl = (Σ_U z_vj z_vl + β·avg) / (n_jl + β)``. Read: the paper's least squares without its
  non-negativity constraint; the shrinkage, and ``ridge`` (times the mean diagonal) added
  to Â, keep it well conditioned.

Closed form: the one sweep computes everything from the training ratings (the trainer's
``sweeps`` contract); later sweeps see the same ratings and change nothing, so early stopping
ends phase 1 after ``trainer.patience`` more (``trainer.n_epochs=1`` suffices). The error a
sweep returns is measured on a fixed sample of ``error_sample`` training ratings (scaled to
all of them): predicting every training rating would cost more than the sweep. A user
without a training rating, or an item without a neighbour the user rated, gets b_ui.

Predictions search each user's ratings (the CSR of the training ratings by user) for the
neighbours: pairs are taken in order of their user's rating count, in chunks padded to the
longest user of the chunk, about ``chunk`` candidates at a time, and ``topk`` picks N^k.
Memory: S is n_items² float32 (Netflix's 17,770 items: 1.26 GB; ml1m's 3,706: 55 MB), and
``"interpolate"`` keeps ΣZᵀZ and BᵀB as well (twice that again).

Koren, Y. (2008). Factorization meets the neighborhood. KDD 2008.
Bell, R. M. & Koren, Y. (2007). Improved neighborhood-based collaborative filtering with
jointly derived neighborhood interpolation weights. ICDM 2007.
Sarwar, B., Karypis, G., Konstan, J. & Riedl, J. (2001). Item-based collaborative filtering
recommendation algorithms. WWW 2001.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from ..data import Batch
from .base import RatingModel
from .baseline import shrunk_mean


class ItemKNN(RatingModel):
    """Item-item kNN on baseline residuals (see the module doc for every setting)."""

    def __init__(self, n_users: int, n_items: int, mu: float, k: int = 20, center: Literal["item", "baseline"] = "item",
                 similarity: Literal["cosine", "pearson"] = "cosine", shrink: float = 100.0, min_sim: float = 1e-6,
                 weights: Literal["average", "interpolate"] = "average", shrink_interp: float = 50.0,
                 ridge: float = 0.01, reg_u: float = 10.0, reg_i: float = 0.0, block: int = 1024,
                 chunk: int = 4_000_000, error_sample: int = 16_384):
        super().__init__()
        if weights not in ("average", "interpolate"):
            raise ValueError(f"weights must be 'average' or 'interpolate', got {weights!r}")
        if similarity not in ("cosine", "pearson"):
            raise ValueError(f"similarity must be 'cosine' or 'pearson', got {similarity!r}")
        if center not in ("item", "baseline"):
            raise ValueError(f"center must be 'item' or 'baseline', got {center!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.center = center
        self.n_users, self.n_items, self.k = int(n_users), int(n_items), int(k)
        self.similarity, self.weights = similarity, weights
        self.shrink, self.min_sim, self.shrink_interp, self.ridge = float(shrink), float(min_sim), float(shrink_interp), \
            float(ridge)
        self.reg_u, self.reg_i, self.block, self.chunk = float(reg_u), float(reg_i), int(block), int(chunk)
        self.error_sample = int(error_sample)
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.register_buffer("bu", torch.zeros(self.n_users))
        self.register_buffer("bi", torch.zeros(self.n_items))
        self.register_buffer("S", torch.zeros(self.n_items, self.n_items))
        # The training ratings by user (CSR): where each user's run starts, the items, the residuals z.
        self.register_buffer("indptr", torch.zeros(self.n_users + 1, dtype=torch.int64))
        self.register_buffer("rated", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("z", torch.zeros(0))
        if weights == "interpolate":
            self.register_buffer("zz", torch.zeros(self.n_items, self.n_items))  # Σ_U z_vj z_vl
            self.register_buffer("n_common", torch.zeros(self.n_items, self.n_items))  # n_jl
            self.register_buffer("avg", torch.zeros(2))  # mean of Σ/n off the diagonal, on it
        self._swept: float | None = None

    @property
    def sweeps(self) -> bool:
        return True

    def see(self, n_user_ratings, n_item_ratings) -> None:  # no factor rows: unseen ids predict from the biases
        pass

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The training ratings are as long as the data: take the saved length.
        for name in ("rated", "z"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty(saved.shape, dtype=saved.dtype, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the sweep: baseline, residuals, similarities ------------------------------------
    @torch.no_grad()
    def sweep(self, batch: Batch) -> torch.Tensor:
        """Everything from the training ratings in ``batch``; returns the squared error of the
        model's predictions of them (from a fixed sample, see the module doc)."""
        if self._swept is not None and self.rated.numel() == len(batch):
            return torch.tensor(self._swept, dtype=torch.float64)
        user, item, r = batch.user, batch.item, batch.rating
        n_u, n_i, dev = self.n_users, self.n_items, r.device
        resid = r - self.mu  # the baseline's one pass (Baseline's ALS sweep from bu = 0)
        self.bi.copy_(shrunk_mean(item, resid, n_i, self.reg_i))
        resid = resid - self.bi[item]
        self.bu.copy_(shrunk_mean(user, resid, n_u, self.reg_u))
        cnt_u = torch.bincount(user, minlength=n_u)
        z = resid - self.bu[user] if self.center == "baseline" else resid
        order = torch.argsort(user * n_i + item)
        self.indptr = torch.cat([cnt_u.new_zeros(1), torch.cumsum(cnt_u, 0)])
        self.rated, self.z = item[order], z[order]
        self._similarities(user, item, z)
        g = torch.Generator(device="cpu").manual_seed(0)
        n = len(batch)
        pick = torch.randperm(n, generator=g)[:self.error_sample].to(dev) if n > self.error_sample else \
            torch.arange(n, device=dev)
        err = self.forward(Batch(user=user[pick], item=item[pick], day=batch.day[pick], rating=r[pick])) - r[pick]
        self._swept = float((err.double() ** 2).sum()) * n / max(len(pick), 1)
        return torch.tensor(self._swept, dtype=torch.float64)

    def _similarities(self, user: torch.Tensor, item: torch.Tensor, z: torch.Tensor) -> None:
        """S for all pairs, a block of items (columns) at a time."""
        interpolate = self.weights == "interpolate"
        off_sum = off_n = 0.0
        for a, b, s, zz, n in similarity_blocks(user, item, z, self.n_users, self.n_items, self.similarity,
                                                self.shrink, self.block, counts=interpolate):
            self.S[:, a:b] = s
            if interpolate:
                self.zz[:, a:b] = zz
                self.n_common[:, a:b] = n
                j = torch.arange(a, b, device=z.device)
                off = n > 0
                off[j, j - a] = False
                off_sum += float((zz[off] / n[off]).sum())
                off_n += int(off.sum())
        if interpolate:
            norm2 = torch.zeros(self.n_items, device=z.device).index_add_(0, item, z * z)
            counts = torch.diagonal(self.n_common)
            seen = counts > 0
            diag = (norm2[seen] / counts[seen]).mean() if seen.any() else torch.tensor(0.0)
            self.avg.copy_(torch.tensor([off_sum / max(off_n, 1), float(diag)]))

    # -- predictions ---------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        user, item = batch.user, batch.item
        base = self.mu + self.bi[item]
        if self.center == "baseline":
            base = base + self.bu[user]
        if self.rated.numel() == 0 or len(user) == 0:
            return base + (self.bu[user] if self.center == "item" else 0.0)
        lo = self.indptr[user]
        cnt = self.indptr[user + 1] - lo
        by_count = torch.argsort(cnt)
        cnt_sorted = cnt[by_count].cpu()
        out = torch.zeros_like(base)
        found = torch.zeros_like(base, dtype=torch.bool)
        a, n = 0, len(user)
        while a < n:  # chunks of pairs whose users have about as many ratings, padded to the longest
            b = min(n, a + max(1, self.chunk // max(int(cnt_sorted[a]), 1)))
            b = min(b, a + max(1, self.chunk // max(int(cnt_sorted[b - 1]), 1)))  # (b - a) · width <= chunk
            width = max(int(cnt_sorted[b - 1]), 1)
            rows = by_count[a:b]
            out[rows], found[rows] = self._neighbourhood(user[rows], item[rows], lo[rows], cnt[rows], width)
            a = b
        if self.center == "item":  # no neighbour: the whole baseline, the user's bias too
            out = torch.where(found, out, self.bu[user])
        return base + out

    def _neighbourhood(self, user, item, lo, cnt, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ w_ij z_uj over N^k(i;u) for pairs whose users have at most ``width`` ratings, and
        whether N^k(i;u) is not empty."""
        slot = torch.arange(width, device=user.device)
        mask = slot[None, :] < cnt[:, None]
        pos = torch.where(mask, lo[:, None] + slot[None, :], torch.zeros_like(lo)[:, None])
        j = self.rated[pos]  # [B, width]: the user's rated items
        s = self.S[item[:, None], j]
        s = torch.where(mask & (s > self.min_sim), s, torch.full_like(s, -torch.inf))
        top_s, top = torch.topk(s, min(self.k, width), dim=1)
        use = torch.isfinite(top_s)
        zj = torch.where(use, self.z[pos.gather(1, top)], torch.zeros_like(top_s))
        if self.weights == "average":
            w = torch.where(use, top_s, torch.zeros_like(top_s))
            den = w.sum(1)
            return torch.where(den > 0, (w * zj).sum(1) / den.clamp_min(1e-12), torch.zeros_like(den)), den > 0
        w = self.interpolation_weights(item, j.gather(1, top), use)
        return (w * zj).sum(1), use.any(1)

    def interpolation_weights(self, item: torch.Tensor, j: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Bell & Koren's weights w = Â⁻¹ b̂ over neighbours ``j`` [B, k] of ``item`` [B]
        (``valid`` marks the real ones; the others get weight 0)."""
        beta = self.shrink_interp
        avg_off, avg_diag = self.avg[0], self.avg[1]
        zz = self.zz[j[:, :, None], j[:, None, :]]  # [B, k, k]
        n = self.n_common[j[:, :, None], j[:, None, :]]
        eye = torch.eye(j.shape[1], device=j.device, dtype=torch.bool)
        A = (zz + beta * torch.where(eye, avg_diag, avg_off)) / (n + beta)
        b = (self.zz[item[:, None], j] + beta * avg_off) / (self.n_common[item[:, None], j] + beta)
        pair = valid[:, :, None] & valid[:, None, :]
        A = torch.where(pair, A, torch.where(eye, torch.ones_like(A), torch.zeros_like(A)))
        A = A + self.ridge * avg_diag.abs() * eye
        b = torch.where(valid, b, torch.zeros_like(b))
        return torch.linalg.solve(A, b)


def similarity_blocks(user: torch.Tensor, item: torch.Tensor, z: torch.Tensor, n_users: int, n_items: int,
                      similarity: str, shrink: float, block: int, counts: bool = False):
    """The item-item similarities of the residuals ``z`` of the ratings (``user``, ``item``),
    ``block`` items (columns) at a time: yields ``(a, b, s, zz, n)`` with ``s`` the
    ``[n_items, b - a]`` similarities of every item to items ``a:b`` (s_ii = 0), ``zz`` their
    Σ_u z_ui z_uj and, for Pearson or ``counts``, ``n`` the number of common users (else
    None). ``similarity`` is "cosine" or "pearson" (shrunk by ``shrink``), as in the module
    doc: sparse-dense products on the residuals' device, one dense block at a time, so
    memory is ``n_items x block`` beside the sparse matrices, whatever keeps the blocks."""
    dev = z.device
    by_item = torch.argsort(item, stable=True)
    u_s, i_s, z_s = user[by_item], item[by_item], z[by_item]
    starts = torch.searchsorted(i_s, torch.arange(n_items + 1, device=dev))
    idx = torch.stack([i_s, u_s])

    def sparse(values):  # items × users
        with warnings.catch_warnings():  # torch's sparse CSR is "beta": its warning says nothing about this use
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_coo_tensor(idx, values, (n_items, n_users)).coalesce().to_sparse_csr()

    pearson = similarity == "pearson"
    Zt = sparse(z_s)
    if pearson or counts:
        Bt = sparse(torch.ones_like(z_s))
    if pearson:
        Z2t = sparse(z_s * z_s)
    norm = torch.sqrt(torch.zeros(n_items, device=dev).index_add_(0, item, z * z))
    for a in range(0, n_items, block):
        b = min(a + block, n_items)
        lo, hi = int(starts[a]), int(starts[b])
        cols = i_s[lo:hi] - a  # the block's ratings as dense users × (b - a) columns
        Zb = torch.zeros(n_users, b - a, device=dev)
        Zb[u_s[lo:hi], cols] = z_s[lo:hi]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            zz = Zt @ Zb  # [n_items, b-a]: Σ_u z_ui z_uj
            n = None
            if pearson or counts:
                Bb = torch.zeros(n_users, b - a, device=dev)
                Bb[u_s[lo:hi], cols] = 1.0
                n = Bt @ Bb  # n_ij
            if pearson:
                q_i = Z2t @ Bb  # Σ_U z_ui² over the users who also rated j
                q_j = Bt @ (Zb * Zb)  # Σ_U z_uj² over the users who also rated i
                s = zz / torch.sqrt(q_i * q_j).clamp_min(1e-12) * (n / (n + shrink))
            else:
                s = zz / (norm[:, None] * norm[None, a:b]).clamp_min(1e-12)
        j = torch.arange(a, b, device=dev)
        s[j, j - a] = 0.0  # an item is not its own neighbour
        yield a, b, s, zz, n
