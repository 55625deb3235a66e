"""Helpers for ``train.py``: device, prediction, checkpoints, TensorBoard, run outputs.

The loop itself lives in ``train.py``, written out top to bottom.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tqdm.auto import tqdm

from . import kernels
from .data import Batch, PrizeData, RatingLoader, pair_batches
from .data.submission import atomic_write
from .models.base import RatingModel
from .models.tables import SparseTable, recording

log = logging.getLogger("prizenet")


class ThreadTuner:
    """torch's intra-op threads for the mini-batch path on CPU, re-chosen as the machine's load changes.

    torch's OpenMP threads meet at the end of every op; when another process holds one of
    the cores, every op waits for a scheduler slice. Measured on the project's 2-core
    machine with one competing CPU-bound process (docs/benchmarks.md): ncf fell from
    178,000 to 43,000 ratings/s on 2 threads and kept 169,000 on 1; autorec, whose whole-item
    batches gain from 2 threads alone (185,000 against 125,000), fell to 52,000 on 2 and kept
    119,000 on 1. No fixed count suits both, so the tuner measures: after every ``stay``
    batches it runs ``window`` batches on each candidate (1 thread and all of them) and keeps
    the faster for the next ``stay``. ``threads`` > 0 fixes the count instead (and the tuner
    does nothing), as does ``cpu=False``. :meth:`close` puts back the count it found.
    """

    def __init__(self, threads: int = 0, cpu: bool = True, window: int = 8, stay: int = 200):
        self.initial = most = torch.get_num_threads()
        if cpu and threads > 0:
            torch.set_num_threads(threads)
        # On CUDA the host threads only launch kernels: nothing to tune.
        self.candidates = [1, most] if cpu and threads == 0 and most > 1 else [torch.get_num_threads()]
        self.window, self.stay = window, stay
        self.plan: list[tuple[int, bool]] = []  # (threads, a trial?) of the batches to come
        self.rates: dict[int, list[float]] = {}  # ratings/s of this round's trial batches
        self.trial = False  # the batch in flight is a trial
        self.t = 0.0

    def step(self, n_ratings: int) -> None:
        """Call after each batch with its size: times it and sets the next batch's threads."""
        if len(self.candidates) == 1:
            return
        now = time.perf_counter()
        if self.trial:
            self.rates.setdefault(torch.get_num_threads(), []).append(n_ratings / max(now - self.t, 1e-9))
        self.t = now
        if not self.plan:
            if self.rates:  # a round of trials is done: stay on the faster candidate
                best = max(self.rates, key=lambda k: sorted(self.rates[k])[len(self.rates[k]) // 2])
                self.plan = [(best, False)] * self.stay
                self.rates = {}
            self.plan += [(k, True) for k in self.candidates for _ in range(self.window)]
        threads, self.trial = self.plan.pop(0)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.t = time.perf_counter()  # the switch itself is not the batch's time

    def close(self) -> None:
        torch.set_num_threads(self.initial)


# -- the job's share of the machine -----------------------------------------------------
#: Where a launcher says how many cores a job has: SLURM's allotment (the slurm and
#: submitit presets' cpus_per_task), and OpenMP's count, which Ray sets to a task's num_cpus.
SHARE_VARIABLES = ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS")


def job_threads(share: int | None = None) -> int:
    """The cores this job may use: the fewest of the CPUs it is pinned to (``taskset``,
    cgroups), the shares in :data:`SHARE_VARIABLES` and ``share`` (the launcher's own
    setting, :func:`launcher_share`); the machine's cores when none is set. A launcher
    running jobs side by side gives each its share, and the job's torch and numba threads
    stay within it (:func:`hold_threads`)."""
    try:
        counts = [len(os.sched_getaffinity(0))]
    except AttributeError:  # not Linux
        counts = [os.cpu_count() or 1]
    if share:
        counts.append(int(share))
    for name in SHARE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            counts.append(int(value))
    return max(1, min(counts))


def launcher_share(hydra_cfg) -> int | None:
    """The cores per job that the sweep's launcher was given (``cpus_per_task`` of the
    submitit presets, ``ray.remote.num_cpus`` of the Ray one), from Hydra's own config;
    None for the basic launcher or a run. (submitit's local executor runs every job at once
    and pins none: this is how its jobs learn their share.)"""
    launcher = None if hydra_cfg is None else hydra_cfg.get("launcher")
    if launcher is None:
        return None
    value = launcher.get("cpus_per_task")
    if value is None and launcher.get("ray") is not None:
        value = (launcher.ray.get("remote") or {}).get("num_cpus")
    return int(value) if value else None


_held: int | None = None  # the cores hold_threads found for this process's run (its launcher's share)


def hold_threads(share: int | None = None) -> int:
    """torch's and numba's thread pools held to :func:`job_threads` (never raised); returns
    it. A run calls it first; what sets threads later (a sweep's numba pool, the thread
    tuners) stays within it (:func:`thread_cap`)."""
    import numba

    global _held
    n = _held = job_threads(share)
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)
    if numba.get_num_threads() > n:
        numba.set_num_threads(n)
    return n


def thread_cap() -> int:
    """The most threads this process's run may use: what :func:`hold_threads` found (the
    launcher's share included), else :func:`job_threads`."""
    return _held if _held is not None else job_threads()


# -- how an epoch is trained: the one place that chooses ------------------------------
class SweepEpochs:
    """An epoch is the model's ``sweep``: one pass over all rows at once (no batches), an
    exact ALS solve or a Gibbs sample; it returns the training error after it."""

    def __init__(self, model: RatingModel, data: PrizeData, rows: np.ndarray, device, threads: int = 0):
        self.model = model
        import numba  # the compiled sweeps' threads; 0: all cores (their results do not depend on it)

        most = min(numba.config.NUMBA_NUM_THREADS, thread_cap())  # the job's share of the cores
        numba.set_num_threads(min(threads, most) if threads > 0 else most)
        user, item, day = (torch.from_numpy(a[rows]).to(device).long() for a in (data.user, data.item, data.day))
        self.batch = Batch(user=user, item=item, day=day,
                           rating=torch.from_numpy(data.rating_x2[rows]).to(device).float() * 0.5)

    def resume_at(self, epoch: int) -> None:  # every sweep sees the same rows: nothing to skip
        pass

    def run(self, scale: float, desc: str) -> torch.Tensor:
        return self.model.sweep(self.batch)


class LoaderEpochs:
    """Epochs that draw the training ratings from a :class:`RatingLoader`, shuffled anew each
    epoch (a resumed run continues with the next epoch's shuffle)."""

    def __init__(self, model: RatingModel, data: PrizeData, rows: np.ndarray, device, seed: int, batch_size: int,
                 group_by: str | None):
        self.model = model
        self.loader = RatingLoader(data, rows, batch_size, device, seed=seed, group_by=group_by)

    def resume_at(self, epoch: int) -> None:
        self.loader.epoch = epoch  # the next epoch's shuffle, as in the run that stopped


class KernelEpochs(LoaderEpochs):
    """An epoch is the model's ``sgd_epoch`` on a compiled backend (:mod:`prizenet.kernels`):
    the papers' per-rating SGD, one rating at a time on the CPU (numba), users in parallel on
    CUDA (Triton). The epoch's order is whole users, the users shuffled, for every model (svd
    too, whose torch batches are random ratings): a user's rows stay in cache while its
    ratings pass, about 4x faster for svd at Netflix scale than ratings in random order, at
    the same probe RMSE on ml1m-half (docs/benchmarks.md).

    On CPU the epoch may run on several cores: its users, in the epoch's order, cut into one
    part of about equal ratings per thread, each part a sequential kernel call (numba
    releases the GIL). For models with per-user terms (svdpp, timesvdpp: ``group_by`` is
    "user") each thread takes whole users and the threads share the item rows, Hogwild. For
    ``svd``, whose ratings are independent updates, the epoch is stratified (DSGD): n
    sub-epochs in which the threads work on disjoint item blocks, sharing nothing: repeatable
    for a given n, and 1.5x one core at Netflix scale, where Hogwild gained nothing. (It keeps
    a second copy of the columns, reordered by item block: 1.6 GB at Netflix scale.)
    ``threads`` = 1 is the sequential kernel, the exact reference, repeatable bit for bit;
    n > 1 fixes n threads; 0 lets :class:`KernelThreads` measure 1 against all cores.
    """

    def __init__(self, model: RatingModel, data: PrizeData, rows: np.ndarray, device, seed: int, batch_size: int,
                 backend: str = "numba", threads: int = 1):
        super().__init__(model, data, rows, device, seed, batch_size, model.group_by or "user")
        self.backend = backend
        self.threads = KernelThreads(threads if backend == "numba" else 1)
        self._blocked = None  # (threads, the columns reordered by item block, sub-run bounds) of _strata

    def run(self, scale: float, desc: str) -> torch.Tensor:
        batch = self.loader.whole_epoch()
        n = self.threads.next()
        plan = None  # the sequential kernel
        if n > 1 and self.model.group_by is None:  # independent ratings: strata, n sub-epochs sharing nothing
            plan = self._strata(batch, n)
        elif n > 1:  # per-user terms: whole users per thread, Hogwild on the item rows
            plan = [split_runs(batch, n)]
        t = time.perf_counter()  # (the strata's one-time reordering is not the epoch's speed)
        if plan is None:
            sse = self.model.sgd_epoch(batch, scale, self.backend)
        else:
            from concurrent.futures import ThreadPoolExecutor

            train = lambda b: self.model.sgd_epoch(b, scale, self.backend)  # noqa: E731
            with interrupts_deferred(), ThreadPoolExecutor(n, thread_name_prefix="kernel") as pool:
                sse = sum(sum(pool.map(train, parts)) for parts in plan)  # each sub-epoch ends before the next
        self.threads.took(len(batch) / max(time.perf_counter() - t, 1e-9))
        return sse

    def _strata(self, batch: Batch, n: int) -> list[list[Batch]]:
        """The epoch as ``n`` sub-epochs of ``n`` parts each (:mod:`prizenet.kernels.numba.strata`):
        part t of sub-epoch k is thread t's users' ratings of item block (t + k) mod n. The
        stored columns are reordered once, block by block within each user's run."""
        from .kernels.numba.strata import block_runs, item_blocks

        if self._blocked is None or self._blocked[0] != n:
            bounds, _ = kernels.batch_runs(batch)
            item = batch.item.numpy()
            perm, sub = block_runs(bounds.numpy(), item, item_blocks(np.bincount(item), n), n)
            perm = torch.from_numpy(perm)
            cols = [c.index_select(0, perm) for c in (batch.user, batch.item, batch.day, batch.rating)]
            self._blocked = (n, cols, torch.from_numpy(sub))
        _, (user, item, day, rating), sub = self._blocked
        parts = [p.order for p in split_runs(batch, n)]  # thread t's users, in the epoch's order
        return [[Batch(user=user, item=item, day=day, rating=rating, bounds=sub, order=o * n + (t + k) % n)
                 for t, o in enumerate(parts)] for k in range(n)]


def _takes_sigint() -> bool:
    """This thread may handle SIGINT: the main thread (the only one where Python runs signal
    handlers), and SIGINT not ignored (a background job's is: Ctrl-C is not for it)."""
    return threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) != signal.SIG_IGN


@contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) during the block is raised when the block ends, as it is when a
    one-thread kernel call returns. Raised among the kernel threads, it could leave them
    writing into tables that the exiting interpreter frees (a crash, seen in the tests);
    raised inside ``ThreadPoolExecutor.submit``, it can leave concurrent.futures' global
    lock held, and the interpreter's exit then waits for it forever (a hang, seen in CI).
    Outside the main thread, where no signal handler runs, the block runs as it is."""
    if not _takes_sigint():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(*caught[0])
            raise KeyboardInterrupt


class StopAtEpochEnd:
    """Ctrl-C taken at a safe point: within the block the first SIGINT only sets ``asked``,
    which the training loop reads after each epoch's checkpoint (it then writes that epoch
    and stops). A second SIGINT interrupts at once, as without the block. An interrupt
    landing inside a library call (a thread pool's lock, TensorBoard's queue, a kernel
    thread still writing) could hang or crash the exit. Outside the main thread the block
    changes nothing."""

    def __init__(self):
        self.asked, self.previous = False, None

    def __enter__(self) -> "StopAtEpochEnd":
        if _takes_sigint():
            self.previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, signum, frame) -> None:
        if self.asked and callable(self.previous):  # the second Ctrl-C: now
            signal.signal(signal.SIGINT, self.previous)
            self.previous(signum, frame)
        self.asked = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def split_runs(batch: Batch, parts: int) -> list[Batch]:
    """``batch``'s runs of one user, in its order, cut into ``parts`` consecutive pieces of
    about equal ratings: each piece the same columns and bounds with its share of the order,
    so nothing is copied and each user's rows belong to one piece."""
    bounds, order = kernels.batch_runs(batch)
    ends = torch.cumsum((bounds[1:] - bounds[:-1]).index_select(0, order), 0)
    targets = torch.tensor([len(batch) * k // parts for k in range(1, parts)], dtype=ends.dtype)
    cuts = [0, *(torch.searchsorted(ends, targets, right=True)).tolist(), len(order)]
    return [Batch(user=batch.user, item=batch.item, day=batch.day, rating=batch.rating, bounds=bounds,
                  order=order[a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class KernelThreads:
    """The CPU kernels' thread count, epoch by epoch.

    ``threads`` > 0 fixes it. 0 measures: the first epoch runs on one thread, the second on
    all of torch's (``torch.get_num_threads()``), and the faster in ratings/s is kept; every
    ``recheck`` epochs the other is run once more, so a change of load (or a data set where
    the cores only fight over the item rows) moves the choice. Measured on the project's
    2-core machine (docs/benchmarks.md), two threads pay where one core waits on memory
    (Netflix scale) and lose where the tables fit in its cache (ml1m-half).
    """

    def __init__(self, threads: int = 1, recheck: int = 10):
        most = torch.get_num_threads()
        self.candidates = [threads] if threads > 0 or most == 1 else [1, most]
        self.rates: dict[int, float] = {}
        self.recheck, self.epoch, self.current = recheck, 0, self.candidates[0]

    def next(self) -> int:
        """The thread count of the coming epoch."""
        self.epoch += 1
        untried = [k for k in self.candidates if k not in self.rates]
        if untried:
            self.current = untried[0]
        else:
            best = max(self.rates, key=self.rates.get)
            other = [k for k in self.candidates if k != best]
            self.current = other[0] if other and self.epoch % self.recheck == 0 else best
        return self.current

    def took(self, ratings_per_s: float) -> None:
        self.rates[self.current] = ratings_per_s


class LearnEpochs(LoaderEpochs):
    """An epoch is the model's own update rule, ``learn``, on each of the loader's batches
    (whole users for an RBM's contrastive divergence), with a progress bar."""

    def __init__(self, model: RatingModel, data: PrizeData, rows: np.ndarray, device, seed: int, batch_size: int,
                 progress: bool):
        super().__init__(model, data, rows, device, seed, batch_size, model.group_by)
        self.device, self.n, self.progress = device, len(rows), progress

    def run(self, scale: float, desc: str) -> torch.Tensor:
        epoch = self.loader.epoch  # the epoch about to run, from 0 (a resumed run's too)
        sse = torch.zeros((), device=self.device, dtype=torch.float64)
        with tqdm(total=self.n, unit="rating", unit_scale=True, leave=False, desc=desc,
                  disable=None if self.progress else True) as bar:
            for batch in self.loader:
                sse += self.model.learn(batch, scale, epoch)
                bar.update(len(batch))
        return sse


class BatchEpochs(LoaderEpochs):
    """An epoch is torch mini-batch steps on any device: the forward pass, autograd, and
    the row-sparse optimizer (:mod:`prizenet.optim`), with a progress bar and, on CPU, the
    :class:`ThreadTuner`."""

    def __init__(self, model: RatingModel, data: PrizeData, rows: np.ndarray, device, seed: int, batch_size: int,
                 opt, precision: str, threads: int, progress: bool):
        super().__init__(model, data, rows, device, seed, batch_size, model.group_by)
        self.opt, self.device, self.n, self.threads, self.progress = opt, device, len(rows), threads, progress
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                                       enabled=precision == "bf16" and device.type == "cuda")

    def run(self, scale: float, desc: str) -> torch.Tensor:
        sse = torch.zeros((), device=self.device, dtype=torch.float64)
        bar = tqdm(total=self.n, unit="rating", unit_scale=True, leave=False, desc=desc,
                   disable=None if self.progress else True)
        tuner = ThreadTuner(self.threads, cpu=self.device.type == "cpu")  # CPU threads that survive contention
        for batch in self.loader:
            with recording(self.model) as tape, self.autocast:
                e = self.model(batch).float() - batch.rating
                loss = 0.5 * (e * e).sum()  # summed: each rating contributes its own SGD update
            loss.backward()
            self.opt.step(tape)
            sse += loss.detach() * 2
            bar.update(len(batch))
            tuner.step(len(batch))
        tuner.close()
        bar.close()
        return sse


def epochs_for(model: RatingModel, data: PrizeData, rows: np.ndarray, device, optimizer: str, opt, tc, seed: int):
    """How ``model``'s epochs are trained, chosen here and nowhere else: its sweep (a
    closed-form solve, a Gibbs sample) when it has one; its own ``learn`` rule (an RBM's
    contrastive divergence) when it has one; with SGD, its compiled kernel when it has one and
    ``trainer.kernel`` picks a backend for the device (:func:`prizenet.kernels.choose`:
    ``auto`` is numba on CPU, Triton on CUDA); otherwise torch mini-batch steps (any model,
    any device)."""
    if model.sweeps:
        return SweepEpochs(model, data, rows, device, tc.threads)
    if model.learns:
        return LearnEpochs(model, data, rows, device, seed, tc.batch_size, tc.progress)
    backend = kernels.choose(tc.kernel, device)
    compiled = model.has_kernel and optimizer == "sgd"
    if compiled and backend is not None and backend in model.kernel_backends:
        return KernelEpochs(model, data, rows, device, seed, tc.batch_size, backend, tc.threads)
    if tc.kernel in kernels.BACKENDS:
        why = "has no compiled kernel" if not model.has_kernel else \
            f"trains with {optimizer}, the kernels with sgd" if optimizer != "sgd" else f"has no {tc.kernel} kernel"
        raise kernels.BackendError(f"trainer.kernel={tc.kernel}: {type(model).__name__} {why}; "
                                   f"use trainer.kernel=auto or torch")
    if tc.kernel == "auto" and compiled and device.type == "cuda":
        if "triton" not in model.kernel_backends:
            log.info("%s has no Triton kernel: it trains with torch's batch steps on CUDA", type(model).__name__)
        else:
            log.warning("triton %s or newer is not installed: %s trains with torch's batch steps, several times "
                        "slower (pip install \"prizenet[cuda]\")", ".".join(map(str, kernels.TRITON_MIN)),
                        type(model).__name__)
    return BatchEpochs(model, data, rows, device, seed, tc.batch_size, opt, tc.precision, tc.threads, tc.progress)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda, but torch sees no CUDA GPU; use trainer.device=auto or cpu")
    return device


@torch.no_grad()
def predict(model: nn.Module, data: PrizeData, user, item, day, device, batch_size: int) -> np.ndarray:
    """Predictions for (user, item, day) pairs in their order, clipped to the rating scale.

    Pairs are predicted in user order (and put back): a user's pairs then share a batch,
    so per-user terms such as SVD++'s sum over N(u) are computed once, not once per batch.
    """
    model.eval()
    lo, hi = data.rating_scale
    order = np.argsort(np.asarray(user), kind="stable")
    batches = pair_batches(np.asarray(user)[order], np.asarray(item)[order], np.asarray(day)[order], batch_size, device)
    out = [model(b).float().clamp_(lo, hi) for b in batches]
    model.train()
    pred = np.empty(len(order), np.float32)
    pred[order] = torch.cat(out).cpu().numpy() if out else np.zeros(0, np.float32)
    return pred


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2)))


def check_finite(phase: int, epoch: int, train_rmse: float, limit: float) -> None:
    """Stop a run whose loss turned NaN or blew up, naming where and what."""
    if not math.isfinite(train_rmse):
        raise FloatingPointError(
            f"phase {phase}, epoch {epoch}: the training loss is {train_rmse} (NaN or infinite). "
            f"Lower the learning rates (trainer.lr_scale) or raise the regularization.")
    if train_rmse > limit:
        raise FloatingPointError(
            f"phase {phase}, epoch {epoch}: training RMSE {train_rmse:.4g} exceeds trainer.diverge_rmse="
            f"{limit:g}: the run diverged. Lower the learning rates (trainer.lr_scale).")


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save through a temporary file: a killed run never leaves a torn checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, [buf.getbuffer()])


CHECKPOINT_KEYS = ("phase", "epoch", "model", "optimizer", "torch_rng", "history", "phase1_history", "config")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that is not one of this project's: names the file."""


def load_tensors(path: Path, device, what: str, kind: str, writer: str):
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only,
    so a crafted file cannot run code; any failure is a :class:`CheckpointError` saying that
    ``path`` is not ``what`` (``kind``: what such files are called; ``writer``: what writes them)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and torch raise many kinds
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot be loaded as {what} ({reason}). Only tensors, numbers and strings "
                              f"are read from {kind}, never code; the file is damaged or was not written by "
                              f"{writer}") from None


def load_checkpoint(path: Path, device) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True``:
    tensors, numbers, strings and containers only, so a crafted file cannot run code."""
    state = load_tensors(path, device, "a prizenet checkpoint", "checkpoints", "train.py")
    if not isinstance(state, dict) or (missing := [k for k in CHECKPOINT_KEYS if k not in state]):
        what = f"lacks {', '.join(missing)}" if isinstance(state, dict) else f"holds a {type(state).__name__}"
        raise CheckpointError(f"{path}: not a train.py checkpoint (it {what})")
    return state


def load_weights(model: nn.Module, source: Path | dict, device) -> None:
    """Model weights from a checkpoint file or an already loaded checkpoint; a mismatch names the file."""
    state = load_checkpoint(source, device) if isinstance(source, Path) else source
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        where = source if isinstance(source, Path) else "the checkpoint"
        raise CheckpointError(f"{where}: its weights do not fit this model: {str(e).splitlines()[0]}") from None


def config_diff(a, b, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, value in a, value in b) wherever two nested configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += config_diff(a.get(k, "<unset>"), b.get(k, "<unset>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


RUN_MARKERS = (".hydra", "metrics.json", "checkpoints", "predictions", "submission.txt")


class RunDirError(FileExistsError):
    """The run folder already holds another run."""


def claim_run_dir(out: Path, resuming: bool) -> None:
    """Make ``out`` this run's folder, or refuse, before anything is written into it.

    A folder holding a run (any of :data:`RUN_MARKERS`) is refused unless this run resumes
    from that folder's own checkpoint. ``.hydra/`` is created exclusively, so of two runs
    racing for one folder exactly one proceeds. Temporary files that a killed run left
    (``.NAME.*.part``) are removed.
    """
    out.mkdir(parents=True, exist_ok=True)
    hint = (f"nothing was written. Continue that run with trainer.resume={out} hydra.run.dir={out}, or give "
            f"this one a new folder (hydra.run.dir=...)")
    if not resuming:
        held = [m for m in RUN_MARKERS if (out / m).exists()]
        if held:
            raise RunDirError(f"{out} already holds a run ({', '.join(held)}); {hint}")
        try:
            (out / ".hydra").mkdir()
        except FileExistsError:
            raise RunDirError(f"{out} was claimed by another run a moment ago; {hint}") from None
    remove_temporaries(out, "**/.*.part")


def remove_temporaries(folder: Path, pattern: str) -> None:
    """The ``.NAME.*.part`` files (:func:`atomic_write`'s) matching ``pattern`` in ``folder``
    that a killed run left."""
    for tmp in folder.glob(pattern):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def write_run_config(out: Path, cfg, hydra_cfg=None) -> None:
    """``.hydra/config.yaml`` (the composed config), and with Hydra's node ``hydra.yaml`` and
    ``overrides.yaml``, as Hydra itself writes them, but only once the run's checks passed."""
    from omegaconf import OmegaConf

    meta = out / ".hydra"
    atomic_write(meta / "config.yaml", [OmegaConf.to_yaml(cfg).encode()])
    if hydra_cfg is not None:
        atomic_write(meta / "hydra.yaml", [OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})).encode()])
        atomic_write(meta / "overrides.yaml", [OmegaConf.to_yaml(list(hydra_cfg.overrides.task)).encode()])


def read_run_config(path: Path) -> dict:
    """A run config written by :func:`write_run_config` (or :meth:`prizenet.Recommender.save`),
    as plain containers; a file that is not one names itself. Nothing in it is instantiated."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable run config ({str(e).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a run config (a mapping with model and data)")
    return config


def _snapshot(obj):
    """A copy of a checkpoint state that training can go on changing under: tensors cloned
    where they are (on the device: no host copy on the critical path), containers rebuilt."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


class Checkpoints:
    """``best.pt`` and ``last.pt`` written off the training's critical path.

    The best epoch's state is kept in memory (a clone where the model lives); restoring it
    at the end of phase 1 reads no file. ``last.pt`` (with ``best.pt`` first, when the best
    changed since the last write, so the pair on disk always agrees) is written by one
    background thread, after every ``every`` epochs or ``seconds`` seconds, whichever comes
    first, and at the end of the phase (:meth:`close`). A write still running when the
    next one is due is not waited for: that epoch is skipped, the next due one writes. A
    killed run resumes from the last written epoch and replays the rest, to the same
    result (the epochs are deterministic). Each write costs the critical path one clone of
    the state; serializing and writing (about 2 s for 400 MB here) happen beside training.
    """

    def __init__(self, folder: Path, every: int = 1, seconds: float = 0.0):
        from concurrent.futures import ThreadPoolExecutor

        self.folder, self.every, self.seconds = folder, every, seconds
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoints")
        self.pending = None
        self.best: dict | None = None  # the best epoch's state, in memory
        self.best_on_disk = True  # nothing newer than best.pt to write
        self.written_epoch, self.written_at = 0, time.monotonic()

    def resume(self, state: dict, device) -> None:
        """Continue after ``state`` (last.pt's): its epoch is on disk, and so is the best
        epoch so far in best.pt unless that is newer (the replayed epochs find it again)."""
        self.written_epoch = state["epoch"]
        history, best = state["history"], self.folder / "best.pt"
        if history and "probe_rmse" in history[0] and best.is_file():
            kept = load_checkpoint(best, device)
            if kept["epoch"] == min(history, key=lambda h: h["probe_rmse"])["epoch"]:
                self.best = kept

    def keep_best(self, state: dict) -> None:
        self.best = _snapshot(state)
        self.best_on_disk = False

    def epoch_done(self, state: dict) -> None:
        """After each epoch: write in the background if a write is due and none is running."""
        due = state["epoch"] - self.written_epoch >= self.every or \
            (self.seconds > 0 and time.monotonic() - self.written_at >= self.seconds)
        if due and (self.pending is None or self.pending.done()):
            self._submit(state)

    def close(self, state: dict | None) -> None:
        """The phase is over: write its final state (unless written) and wait for the disk."""
        if state is not None and (state["epoch"] != self.written_epoch or not self.best_on_disk):
            self._wait()
            self._submit(state)
        self._wait()
        self.pool.shutdown()

    def _submit(self, state: dict) -> None:
        self._wait()  # surfaces an earlier write's error here, in the training thread
        best = None if self.best_on_disk else self.best
        # An improving epoch's state is already cloned as the best: one clone serves both files.
        last = self.best if self.best is not None and self.best["epoch"] == state["epoch"] else _snapshot(state)
        with interrupts_deferred():  # (a Ctrl-C inside submit could leave concurrent.futures' exit lock held)
            self.pending = self.pool.submit(self._write, best, last)
        self.best_on_disk = True
        self.written_epoch, self.written_at = state["epoch"], time.monotonic()

    def _write(self, best: dict | None, last: dict) -> None:
        if best is not None:
            save_checkpoint(self.folder / "best.pt", best)
        save_checkpoint(self.folder / "last.pt", last)

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None


def find_checkpoint(resume: str | Path) -> Path:
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.pt" if (path / "checkpoints").is_dir() else path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"trainer.resume={resume}: no checkpoint at {path} "
                                f"(give a run dir holding checkpoints/last.pt, or a .pt file)")
    return path


def log_histograms(writer, model: nn.Module, step: int, tag: str) -> None:
    """Row-norm histograms of each factor table (a table of vectors: one norm per row)."""
    for name, m in model.named_modules():
        if isinstance(m, SparseTable) and m.weight.dim() == 2 and m.weight.numel():
            writer.add_histogram(f"{tag}/{name}_norm", m.weight.norm(dim=1).float().cpu(), step)


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file (a killed run leaves the old file or none)."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write(path, [buf.getbuffer()])


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, [json.dumps(obj, indent=1, default=float).encode() + b"\n"])


def flat_hparams(cfg: dict, prefix: str = "") -> dict:
    """Scalars of a nested config as ``a.b`` keys (what TensorBoard's HParams tab takes)."""
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_hparams(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        elif isinstance(v, (list, tuple)):  # layer sizes, rating scales: shown as text
            out[key] = str(list(v))
    return out
