"""Compiled training kernels, one folder per backend; one interface for all of them.

* ``numba/``: the CPU. The papers' per-rating SGD, one rating at a time in the epoch's
  order: the exact sequential reference.
* ``triton/``: CUDA (``pip install "prizenet[cuda]"``). The same per-rating SGD, parallel
  over users, Hogwild-style: one program (one warp) per run of a user's ratings, the user's
  rows in registers, the item-side rows updated with relaxed atomic adds. One launch per
  epoch, no host sync. With ``TRITON_INTERPRET=1`` the programs run one after another on
  CPU tensors, so a kernel then equals the numba one on the same order (the tests).

Each backend module has the same functions, on torch tensors of its device, each
one epoch over the ratings, returning the squared errors met on the way as a 0-d float64
tensor on that device (each error taken before its update):

* ``svd(user, item, rating, bounds, order, mu, (bu, bi, pu, qi), lr, reg, biased)``
* ``svdpp(user, item, rating, bounds, order, nu_indptr, nu_items, mu, (bu, bi, pu, qi, yj), lr, reg)``
* ``timesvdpp(user, item, day, rating, bounds, order, time, nu_indptr, nu_items, mu, per_day, weights, lr, reg)``
  (``time``: the model's :class:`~prizenet.models.timebaseline.TimeFeatures`; ``weights``
  and ``lr``/``reg`` in the order bu, alpha, but, bi, bibin, cu, cut, pu, alpha_p, put, qi, yj)
* ``integrated(user, item, rating, bounds, order, nu_indptr, nu_items, rated_indptr, rated_keys,
  rated_resid, nu_keys, neighbours, mu, (bu, bi, pu, qi, yj, w, c), lr, reg)``: R(u) and N(u)
  as sorted ``user·n_items + item`` keys (the model's ``keys()``; a user's slice of them is
  its CSR row, ``rated_indptr`` and ``nu_indptr``), so the Triton kernel can binary-search
  them; ``neighbours`` [n_items, k] is S^k(i)

``bounds`` (int64 ``[S + 1]``) cuts the ratings into runs of one user each, run ``s`` being
``bounds[s]:bounds[s + 1]``, and ``order`` (int64 ``[S]``, or fewer: a part of an epoch)
is the order to take them in. The grouped loader's ``whole_epoch`` gives both, its columns
in stored (user) order and ``order`` the epoch's shuffle of the users, so no rating moves;
:func:`runs` makes ``bounds`` for ratings in any order (on a GPU a user should then have one
run: runs run at once, and a user's rows live in its program's registers until the run
ends). ``mu`` is a 0-d tensor, read by the kernel. Each model's math is in its own file's
docstring (``prizenet/models/``); a kernel file holds only the loop.

Which backend trains an epoch is chosen in one place, :func:`prizenet.training.epochs_for`,
through :func:`choose` here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch

#: Backend name -> the device type it runs on.
BACKENDS = {"numba": "cpu", "triton": "cuda"}


class BackendError(RuntimeError):
    """A backend asked for that cannot run here: says why and what to do."""


def interpreting() -> bool:
    """Triton's interpreter is on (``TRITON_INTERPRET=1``): its kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


#: The oldest Triton the kernels are written for (``../shared/GPU.md``: 3.6 compiles them;
#: its interpreter, the tests', needs 3.7).
TRITON_MIN = (3, 6)


def available(name: str) -> bool:
    """The backend's package is importable (for Triton: at least :data:`TRITON_MIN`)."""
    if importlib.util.find_spec(name) is None:
        return False
    if name == "triton":
        return triton_version() >= TRITON_MIN
    return True


def triton_version() -> tuple[int, ...]:
    """The installed Triton's (major, minor), from its distribution (PyTorch's CUDA wheels
    depend on ``triton``; some builds ship ``pytorch-triton``)."""
    from importlib import metadata

    for dist in ("triton", "pytorch-triton"):
        try:
            return tuple(int(x) for x in metadata.version(dist).split("+")[0].split(".")[:2])
        except (metadata.PackageNotFoundError, ValueError):
            continue
    return (0, 0)


def choose(kernel: str, device: torch.device) -> str | None:
    """The compiled backend for ``trainer.kernel`` on ``device``, or None for torch's batch steps.

    ``auto``: numba on CPU, Triton on CUDA (torch's batch steps where the package is missing);
    ``torch``: None; ``numba`` / ``triton``: that backend, or a :class:`BackendError` saying
    why it cannot run on ``device``.
    """
    if kernel == "torch":
        return None
    if kernel == "auto":
        name = "numba" if device.type == "cpu" else "triton" if device.type == "cuda" else None
        return name if name is not None and available(name) else None
    if kernel not in BACKENDS:
        raise BackendError(f"trainer.kernel={kernel}: expected auto, torch or one of {', '.join(BACKENDS)}")
    if not available(kernel):
        extra = f' {".".join(map(str, TRITON_MIN))} or newer (pip install "prizenet[cuda]")' if kernel == "triton" else ""
        raise BackendError(f"trainer.kernel={kernel}: the {kernel} package{extra} is not installed")
    wanted = BACKENDS[kernel]
    if device.type != wanted and not (kernel == "triton" and device.type == "cpu" and interpreting()):
        raise BackendError(f"trainer.kernel={kernel} runs on {wanted}, but the run's device is {device.type}"
                           + ("; set trainer.device=cuda" if wanted == "cuda" else "; use trainer.kernel=auto"))
    return kernel


def load(name: str):
    """The backend module ``name`` (imported on first use: Triton is only needed on CUDA)."""
    if name not in BACKENDS:
        raise BackendError(f"no kernel backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return importlib.import_module(f".{name}", __name__)


def runs(user: torch.Tensor) -> torch.Tensor:
    """``bounds`` for ratings in any order: a run ends wherever the user changes. (On CUDA this
    waits for the device once, to learn the number of runs; the loader's ``whole_epoch``
    gives ``bounds`` without that.)"""
    cut = torch.nonzero(user[1:] != user[:-1]).flatten() + 1
    edge = torch.tensor([0, len(user)], dtype=torch.long, device=user.device)
    return torch.cat([edge[:1], cut, edge[1:]]) if len(user) else edge[:1]


def batch_runs(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(bounds, order) of a :class:`~prizenet.data.Batch`'s runs of one user: as the loader
    gave them, or found (:func:`runs`) and taken as they come."""
    bounds = batch.bounds if batch.bounds is not None else runs(batch.user)
    order = batch.order if batch.order is not None else torch.arange(len(bounds) - 1, device=bounds.device)
    return bounds, order
