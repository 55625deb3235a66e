"""Batches of ratings drawn on the training device, with no per-rating Python.

The columns a run trains on are copied to the device once; each epoch draws a permutation
there and slices it into index batches. Three modes:

* ``group_by=None``: ratings in random order, ``batch_size`` at a time (MF, NCF).
* ``group_by="user"``: whole users per batch, users in random order, about ``batch_size``
  ratings a batch (a user with more gets a batch alone). Each batch carries its distinct
  ``users`` and, per rating, ``inverse`` (the index into ``users``), so a model computes a
  per-user term once per batch: SVD++'s |N(u)|^-1/2 sum_j y_j.
* ``group_by="item"``: the same with whole items (``items`` and ``inverse``): each batch
  holds every training rating of its items, the sparse rows of the item x user matrix that
  item-based AutoRec encodes.

Shuffling: on CUDA each epoch draws a full ``randperm``. On CPU a full permutation is bound
by memory latency (about 60 ns a rating on a laptop core: 6 s an epoch at Netflix scale), so
``shuffle_block="auto"`` shuffles the rows fully once, when the loader is built, and then each
epoch permutes blocks of 64 of that order: a fresh order every epoch, batches drawn from the
whole data, at the cost of 64 fixed neighbours per rating. ``shuffle_block=1`` forces the
full shuffle anywhere.

When the columns do not fit the device (``resident=False``), the rows are cut into chunks
that are gathered from the memory-mapped cache, copied through pinned memory and shuffled
within the chunk; the chunk order is shuffled each epoch (grouped, chunks hold whole
users or items). The same code runs on CPU, where pinning is skipped, so it is tested there too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .prize import PrizeData


@dataclass
class Batch:
    user: torch.Tensor  # int64 [B] (torch's CPU gathers and scatters are fastest with int64)
    item: torch.Tensor  # int64 [B]
    day: torch.Tensor  # int64 [B]
    rating: torch.Tensor  # float32 [B]
    users: torch.Tensor | None = None  # grouped by user: distinct users of the batch [U_b]
    items: torch.Tensor | None = None  # grouped by item: distinct items of the batch [I_b]
    inverse: torch.Tensor | None = None  # grouped: index of each rating's user (item) in users (items) [B]
    implicit_rows: int | None = None  # grouped by user: Σ |N(u)| over users, known on the host
    bounds: torch.Tensor | None = None  # a grouped whole epoch: where each user's (item's) run starts, + the end
    order: torch.Tensor | None = None  # ... and the order to take the runs in (the epoch's shuffle); None: as stored

    def __len__(self) -> int:
        return self.user.numel()

    def slice(self, a: int, b: int) -> "Batch":
        return Batch(user=self.user[a:b], item=self.item[a:b], day=self.day[a:b], rating=self.rating[a:b])


class _Chunk:
    """Training columns of some rows on the device, packed one row per rating.

    ``x`` is int32 ``[n, 3]``: user, item, ``day << 8 | rating_x2``. One gather moves a
    rating's four fields together (a 12-byte row), and a block shuffle gathers whole
    blocks of rows; batches unpack their own slice.
    """

    def __init__(self, data: PrizeData, rows: np.ndarray, device: torch.device, group_col: int | None,
                 perm: np.ndarray | None = None):
        def put(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(a))
            if device.type == "cuda":
                t = t.pin_memory()
            return t.to(device, non_blocking=True)

        self.n = len(rows)
        x = np.empty((self.n, 3), np.int32)
        x[:, 0] = data.user[rows]
        x[:, 1] = data.item[rows]
        np.left_shift(data.day[rows], 8, out=x[:, 2], dtype=np.int32)
        x[:, 2] |= data.rating_x2[rows]
        if perm is not None:  # packed rows shuffle faster than four columns gathered at random
            x = torch.from_numpy(x).index_select(0, torch.from_numpy(perm)).numpy()
        self.x = put(x)
        self.buf: torch.Tensor | None = None  # the epoch's shuffled rows, reused every epoch
        self.columns: Batch | None = None  # grouped: the rows as columns, for whole_epoch (made on first use)
        self.seg_implicit: np.ndarray | None = None
        if group_col is not None:  # rows are user- (item-) contiguous: segments of equal id
            g = x[:, group_col]
            first = np.concatenate([[0], np.flatnonzero(np.diff(g)) + 1]).astype(np.int64)
            self.seg_start = put(first)
            self.seg_count = put(np.diff(np.concatenate([first, [self.n]])))
            self.seg_id = put(g[first].astype(np.int64))
            # |N(u)| of each segment's user, on the host: a batch's Σ |N(u)| sizes SVD++'s
            # segment sum without asking the device.
            self.seg_implicit = np.diff(data.nu_indptr)[g[first]] if group_col == 0 else None


def permutation(n: int, seed: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)``, about twice as fast as numpy's at 10^8.

    Rao-Sandelius: send each index to one of 256 random buckets (a radix sort on uint8),
    then shuffle each bucket, which fits in cache, where a single Fisher-Yates pass over
    10^8 entries stalls on memory.
    """
    rng = np.random.default_rng(seed)
    bucket = rng.integers(0, 256, n, dtype=np.uint8)
    out = np.argsort(bucket, kind="stable")
    ends = np.cumsum(np.bincount(bucket, minlength=256)).tolist()
    for a, b in zip([0] + ends[:-1], ends):
        rng.shuffle(out[a:b])
    return out


def _unpack(x: torch.Tensor) -> Batch:
    """A batch from packed rows ``[B, 3]`` (see ``_Chunk``)."""
    return Batch(user=x[:, 0].long(), item=x[:, 1].long(), day=(x[:, 2] >> 8).long(),
                 rating=(x[:, 2] & 255).float() * 0.5)


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
        group_by: str | None = None,
        resident: bool = True,
        chunk_size: int = 16_000_000,
        shuffle_block: int | str = "auto",
    ):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        if group_by not in (None, "user", "item"):
            raise ValueError(f"group_by must be None, 'user' or 'item', got {group_by!r}")
        self.group_by = group_by
        self.grouped = group_by is not None
        self._col = {None: None, "user": 0, "item": 1}[group_by]
        self.epoch = 0
        rows = np.asarray(rows, np.int64)
        if shuffle_block == "auto":
            shuffle_block = 1 if self.device.type == "cuda" else 64
        self.block = int(shuffle_block)
        pre_shuffle = self.block > 1 and shuffle and not self.grouped  # the one full shuffle
        single = resident or len(rows) <= chunk_size
        if pre_shuffle and not single:  # chunks must be random subsets
            rows = rows[permutation(len(rows), seed)]
        if group_by == "user":  # the training rows are stored in user order
            keep = np.zeros(data.n_ratings, bool)
            keep[rows] = True
            rows = np.flatnonzero(keep)
        elif group_by == "item":
            rows = data.rows_by_item(rows)
        self.n = len(rows)
        if single:
            cuts = [0, self.n]
        else:
            cuts = np.arange(chunk_size, self.n, chunk_size)
            if self.grouped:  # move each cut forward to the next user (item) boundary
                ids = data.user if group_by == "user" else data.item
                starts = np.append(np.flatnonzero(np.diff(ids[rows])) + 1, self.n)
                cuts = starts[np.searchsorted(starts, cuts)]
            cuts = np.unique(np.concatenate([[0], cuts, [self.n]])).tolist()
        self._spans = list(zip(cuts[:-1], cuts[1:]))
        self._data, self._rows = data, rows
        self._resident = None
        if single:
            perm = permutation(self.n, seed) if pre_shuffle else None
            self._resident = _Chunk(data, rows, self.device, self._col, perm)

    def __len__(self) -> int:
        """Batches per epoch (exact in random mode, an estimate when grouped)."""
        return max(1, -(-self.n // self.batch_size))

    def __iter__(self):
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 1_000_003 + self.epoch)
        cpu_gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self._spans), generator=cpu_gen).tolist() if self.shuffle \
            else range(len(self._spans))
        for c in order:
            a, b = self._spans[c]
            chunk = self._resident or _Chunk(self._data, self._rows[a:b], self.device, self._col)
            yield from (self._grouped(chunk, gen) if self.grouped else self._random(chunk, gen))

    def whole_epoch(self) -> Batch:
        """This epoch's ratings as one batch, for kernels that walk the ratings one at a time.
        Advances the epoch like iterating.

        Resident and grouped, nothing moves: the columns are the stored rows (user or item
        order, made once), ``bounds`` their runs and ``order`` the epoch's shuffle of the
        runs, the one iterating would give. Resident and ungrouped, user, item and day are
        int32 views into the shuffled rows (no copy of 10^8 ratings). Otherwise the batches
        are concatenated.
        """
        if self._resident is None:
            parts = list(self)
            return Batch(user=torch.cat([b.user for b in parts]), item=torch.cat([b.item for b in parts]),
                         day=torch.cat([b.day for b in parts]), rating=torch.cat([b.rating for b in parts]))
        gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        chunk = self._resident
        if self.grouped:
            if chunk.columns is None:  # the stored rows as columns, once: the kernels read them in place
                x = chunk.x
                chunk.columns = Batch(user=x[:, 0].contiguous(), item=x[:, 1].contiguous(), day=x[:, 2] >> 8,
                                      rating=(x[:, 2] & 255).float() * 0.5,
                                      bounds=torch.cat([chunk.seg_start, chunk.seg_start.new_full((1,), chunk.n)]))
            c = chunk.columns
            return Batch(user=c.user, item=c.item, day=c.day, rating=c.rating, bounds=c.bounds,
                         order=self._segment_order(chunk, gen))
        x = self._shuffled(chunk, gen)
        return Batch(user=x[:, 0], item=x[:, 1], day=x[:, 2] >> 8, rating=(x[:, 2] & 255).float() * 0.5)

    def _random(self, chunk: _Chunk, gen: torch.Generator):
        epoch = self._shuffled(chunk, gen)
        # One gather of whole rows per epoch runs at memory speed (and on several threads);
        # each batch is then a slice of it.
        for s in range(0, chunk.n, self.batch_size):
            yield _unpack(epoch[s: s + self.batch_size])

    def _shuffled(self, chunk: _Chunk, gen: torch.Generator) -> torch.Tensor:
        """The chunk's packed rows in this epoch's order."""
        if self.shuffle and chunk.buf is None:
            chunk.buf = torch.empty_like(chunk.x)
        epoch = chunk.buf
        if not self.shuffle:
            epoch = chunk.x
        elif self.block == 1:
            torch.index_select(chunk.x, 0, torch.randperm(chunk.n, device=self.device, generator=gen), out=epoch)
        else:  # permute whole blocks of the pre-shuffled rows; a short last block goes last
            full = chunk.n // self.block
            blocks = torch.randperm(full, device=self.device, generator=gen)
            cut = full * self.block
            torch.index_select(chunk.x[:cut].view(full, self.block * 3), 0, blocks, out=epoch[:cut].view(full, -1))
            epoch[cut:] = chunk.x[cut:]
        return epoch

    def _segment_order(self, chunk: _Chunk, gen: torch.Generator) -> torch.Tensor:
        """The users' (items') segments in this epoch's order."""
        n_seg = chunk.seg_start.numel()
        return torch.randperm(n_seg, device=self.device, generator=gen) if self.shuffle \
            else torch.arange(n_seg, device=self.device)

    def _group_order(self, chunk: _Chunk, gen: torch.Generator):
        """(users' (items') segment order, their rating counts, row positions) for this epoch."""
        pu = self._segment_order(chunk, gen)
        counts = chunk.seg_count[pu]
        ends = torch.cumsum(counts, 0)
        # Row positions of the users (items) in their new order, as one vectorized gather.
        idx = torch.repeat_interleave(chunk.seg_start[pu] - (ends - counts), counts, output_size=chunk.n) + \
            torch.arange(chunk.n, device=self.device)
        return pu, counts, idx

    def _grouped(self, chunk: _Chunk, gen: torch.Generator):
        n_seg = chunk.seg_start.numel()
        pu, counts, idx = self._group_order(chunk, gen)
        ends = torch.cumsum(counts, 0)
        # Cut between groups: batch k ends at the first boundary at or after k*batch_size.
        targets = torch.arange(self.batch_size, max(chunk.n, self.batch_size), self.batch_size, device=self.device)
        cuts = torch.unique(torch.searchsorted(ends, targets)) + 1
        seg_cuts = [0] + cuts.tolist() + [n_seg]  # one host sync per epoch, not per batch
        row_ends = torch.cat([torch.zeros(1, dtype=ends.dtype, device=self.device), ends]).tolist()
        implicit_ends = None
        if chunk.seg_implicit is not None:  # the users' order on the host: the same epoch-start sync
            implicit_ends = np.concatenate([[0], np.cumsum(chunk.seg_implicit[pu.cpu().numpy()])]).tolist()
        epoch = chunk.x.index_select(0, idx)
        for sa, sb in zip(seg_cuts[:-1], seg_cuts[1:]):
            if sb <= sa:
                continue
            batch = _unpack(epoch[row_ends[sa]: row_ends[sb]])
            setattr(batch, "users" if self.group_by == "user" else "items", chunk.seg_id[pu[sa:sb]])
            batch.inverse = torch.repeat_interleave(torch.arange(sb - sa, device=self.device), counts[sa:sb],
                                                    output_size=row_ends[sb] - row_ends[sa])  # sizes known here: no sync
            if implicit_ends is not None:
                batch.implicit_rows = implicit_ends[sb] - implicit_ends[sa]
            yield batch


def pair_batches(user: np.ndarray, item: np.ndarray, day: np.ndarray, batch_size: int, device) -> list[Batch]:
    """Fixed-order batches of (user, item, day) pairs for prediction (probe, qualifying)."""
    device = torch.device(device)
    u = torch.from_numpy(np.array(user, np.int64)).to(device)
    i = torch.from_numpy(np.array(item, np.int64)).to(device)
    d = torch.from_numpy(np.array(day, np.int64)).to(device)
    out = []
    for s in range(0, len(u), batch_size):
        sl = slice(s, s + batch_size)
        out.append(Batch(user=u[sl], item=i[sl], day=d[sl], rating=torch.empty(0, device=device)))
    return out
