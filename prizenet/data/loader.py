"""Batches of ratings drawn on the training device, with no per-rating Python.

The columns a run trains on are copied to the device once; each epoch draws a permutation
there and slices it into index batches. Two modes:

* ``group_by_user=False``: ratings in random order, ``batch_size`` at a time (MF, NCF).
* ``group_by_user=True``: whole users per batch, users in random order, about
  ``batch_size`` ratings a batch (a user with more gets a batch alone). Each batch carries
  its distinct ``users`` and, per rating, ``inverse`` (the index into ``users``), so a
  model computes a per-user term once per batch: SVD++'s |N(u)|^-1/2 sum_j y_j.

Shuffling: on CUDA each epoch draws a full ``randperm``. On CPU a full permutation is bound
by memory latency (about 60 ns a rating on a laptop core: 6 s an epoch at Netflix scale), so
``shuffle_block="auto"`` shuffles the rows fully once, when the loader is built, and then each
epoch permutes blocks of 64 of that order: a fresh order every epoch, batches drawn from the
whole data, at the cost of 64 fixed neighbours per rating. ``shuffle_block=1`` forces the
full shuffle anywhere.

When the columns do not fit the device (``resident=False``), the rows are cut into chunks
that are gathered from the memory-mapped cache, copied through pinned memory and shuffled
within the chunk; the chunk order is shuffled each epoch (in grouped mode chunks hold whole
users). The same code runs on CPU, where pinning is skipped, so it is tested there too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .prize import PrizeData


@dataclass
class Batch:
    user: torch.Tensor  # int32 [B] (embeddings take int32 indices: no conversion per batch)
    item: torch.Tensor  # int32 [B]
    day: torch.Tensor  # int32 [B]
    rating: torch.Tensor  # float32 [B]
    users: torch.Tensor | None = None  # grouped mode: distinct users of the batch [U_b]
    inverse: torch.Tensor | None = None  # grouped mode: index of each rating's user in users [B]

    def __len__(self) -> int:
        return self.user.numel()

    def slice(self, a: int, b: int) -> "Batch":
        return Batch(user=self.user[a:b], item=self.item[a:b], day=self.day[a:b], rating=self.rating[a:b])


class _Chunk:
    """Training columns of some rows on the device; in grouped mode with user segments."""

    def __init__(self, data: PrizeData, rows: np.ndarray, device: torch.device, grouped: bool):
        def put(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(a))
            if device.type == "cuda":
                t = t.pin_memory()
            return t.to(device, non_blocking=True)

        self.n = len(rows)
        self.user = put(data.user[rows])
        self.item = put(data.item[rows])
        self.day = put(data.day[rows].astype(np.int32))
        self.rating_x2 = put(data.rating_x2[rows])
        if grouped:  # rows are user-contiguous: segments of equal user
            u = data.user[rows]
            first = np.concatenate([[0], np.flatnonzero(np.diff(u)) + 1]).astype(np.int64)
            self.seg_start = put(first)
            self.seg_count = put(np.diff(np.concatenate([first, [len(rows)]])))
            self.seg_user = put(u[first].astype(np.int64))

    def take(self, idx: torch.Tensor) -> Batch:
        """All ratings at ``idx`` in one gather per column (batches are then slices of it)."""
        return Batch(
            user=self.user.index_select(0, idx), item=self.item.index_select(0, idx),
            day=self.day.index_select(0, idx), rating=self.rating_x2.index_select(0, idx).float() * 0.5,
        )


class RatingLoader:
    """Iterates over ``rows`` of ``data`` (training row indices) once per epoch."""

    def __init__(
        self,
        data: PrizeData,
        rows: np.ndarray,
        batch_size: int = 65536,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        seed: int = 0,
        group_by_user: bool = False,
        resident: bool = True,
        chunk_size: int = 16_000_000,
        shuffle_block: int | str = "auto",
    ):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.grouped = group_by_user
        self.epoch = 0
        rows = np.asarray(rows, np.int64)
        if shuffle_block == "auto":
            shuffle_block = 1 if self.device.type == "cuda" else 64
        self.block = int(shuffle_block)
        if self.block > 1 and shuffle and not group_by_user:  # the one full shuffle
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
        if group_by_user:  # user-contiguous order from the cache's by_user index
            keep = np.zeros(data.n_ratings, bool)
            keep[rows] = True
            rows = data.by_user[keep[data.by_user]]
        self.n = len(rows)
        if resident or self.n <= chunk_size:
            cuts = [0, self.n]
        else:
            cuts = np.arange(chunk_size, self.n, chunk_size)
            if group_by_user:  # move each cut forward to the next user boundary
                starts = np.append(np.flatnonzero(np.diff(data.user[rows])) + 1, self.n)
                cuts = starts[np.searchsorted(starts, cuts)]
            cuts = np.unique(np.concatenate([[0], cuts, [self.n]])).tolist()
        self._spans = list(zip(cuts[:-1], cuts[1:]))
        self._data, self._rows = data, rows
        self._resident = _Chunk(data, rows, self.device, group_by_user) if len(self._spans) == 1 else None

    def __len__(self) -> int:
        """Batches per epoch (exact in random mode, an estimate when grouped)."""
        return max(1, -(-self.n // self.batch_size))

    def __iter__(self):
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 1_000_003 + self.epoch)
        cpu_gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self._spans), generator=cpu_gen) if self.shuffle else range(len(self._spans))
        for c in order:
            a, b = self._spans[int(c)]
            chunk = self._resident or _Chunk(self._data, self._rows[a:b], self.device, self.grouped)
            yield from (self._grouped(chunk, gen) if self.grouped else self._random(chunk, gen))

    def _random(self, chunk: _Chunk, gen: torch.Generator):
        if not self.shuffle:
            perm = torch.arange(chunk.n, device=self.device)
        elif self.block == 1:
            perm = torch.randperm(chunk.n, device=self.device, generator=gen)
        else:  # permute whole blocks of the pre-shuffled rows; a short last block goes last
            full = chunk.n // self.block
            blocks = torch.randperm(full, device=self.device, generator=gen)
            perm = torch.cat([
                (blocks[:, None] * self.block + torch.arange(self.block, device=self.device)).ravel(),
                torch.arange(full * self.block, chunk.n, device=self.device),
            ])
        # Shuffle whole columns once per epoch: big gathers run at memory speed (and on
        # several threads), and each batch is then a zero-copy slice.
        epoch = chunk.take(perm)
        for s in range(0, chunk.n, self.batch_size):
            yield epoch.slice(s, s + self.batch_size)

    def _grouped(self, chunk: _Chunk, gen: torch.Generator):
        n_seg = chunk.seg_start.numel()
        pu = (torch.randperm(n_seg, device=self.device, generator=gen) if self.shuffle
              else torch.arange(n_seg, device=self.device))
        counts = chunk.seg_count[pu]
        ends = torch.cumsum(counts, 0)
        # Row positions of the users in their new order, as one vectorized gather.
        idx = torch.repeat_interleave(chunk.seg_start[pu] - (ends - counts), counts) + torch.arange(
            chunk.n, device=self.device)
        # Cut between users: batch k ends at the first user boundary at or after k*batch_size.
        targets = torch.arange(self.batch_size, chunk.n, self.batch_size, device=self.device)
        cuts = torch.unique(torch.searchsorted(ends, targets)) + 1
        seg_cuts = [0] + cuts.tolist() + [n_seg]  # one host sync per epoch, not per batch
        row_ends = torch.cat([torch.zeros(1, dtype=ends.dtype, device=self.device), ends]).tolist()
        epoch = chunk.take(idx)
        for sa, sb in zip(seg_cuts[:-1], seg_cuts[1:]):
            if sb <= sa:
                continue
            batch = epoch.slice(row_ends[sa], row_ends[sb])
            batch.users = chunk.seg_user[pu[sa:sb]]
            batch.inverse = torch.repeat_interleave(torch.arange(sb - sa, device=self.device), counts[sa:sb])
            yield batch


def pair_batches(user: np.ndarray, item: np.ndarray, day: np.ndarray, batch_size: int, device) -> list[Batch]:
    """Fixed-order batches of (user, item, day) pairs for prediction (probe, qualifying)."""
    device = torch.device(device)
    u = torch.from_numpy(np.array(user, np.int32)).to(device)
    i = torch.from_numpy(np.array(item, np.int32)).to(device)
    d = torch.from_numpy(np.array(day, np.int32)).to(device)
    out = []
    for s in range(0, len(u), batch_size):
        sl = slice(s, s + batch_size)
        out.append(Batch(user=u[sl], item=i[sl], day=d[sl], rating=torch.empty(0, device=device)))
    return out
