"""The contract between a model and the trainer, written once.

Every model is a :class:`RatingModel`. What the trainer may use is what this class
declares; nothing else is looked up on a model:

* ``forward(batch)``: r̂ for the batch's (user, item, day) triples, unclipped. The only
  method a new model must write; with it the trainer's torch mini-batch path trains it on
  any device (``prizenet.training.BatchEpochs``).
* the constructor: plain numbers, plus the data layer's arrays for the parameter names
  that :func:`prizenet.models.model_inputs` offers (``n_users``, ``mu``, ``nu_indptr``, ...).
* class settings: ``group_by`` (what a training batch holds), ``optimizer`` (what
  ``trainer.optimizer=auto`` picks), ``dense_lr`` / ``dense_reg`` (parameters outside the
  sparse tables, an MLP's).
* ``see(n_user_ratings, n_item_ratings)``: called once before training; by default rows of
  users and items without a training rating are zeroed, so they predict from the biases.
* optional faster ways to train an epoch, each declared by a flag and one method:
  ``has_kernel`` with ``sgd_epoch(batch, scale, backend)`` (the papers' per-rating SGD,
  compiled: the model hands its tables to a backend of :mod:`prizenet.kernels`, numba on
  CPU or Triton on CUDA, whose loops live in ``prizenet/kernels/<backend>/``; a model
  whose loop exists for some backends only names them in ``kernel_backends``, and trains
  with torch's batch steps elsewhere), and
  ``sweeps`` with ``sweep(batch)`` (one pass over all training ratings at once: ALS's exact
  solve, a Gibbs sample), which returns the squared error after it, and ``learns`` with
  ``learn(batch, scale, epoch)`` (the model's own update rule on each of the loader's
  batches, where there is no loss to differentiate: an RBM's contrastive divergence),
  which returns the batch's squared error.
* ``devices``: the device types the model trains on (None: any); the trainer refuses
  another before it loads data.
* ``scalars()``: numbers the trainer logs to TensorBoard after every epoch, beside the
  RMSEs (a sampler's precisions); none by default.

Which of these an epoch uses is decided in one place, :func:`prizenet.training.epochs_for`,
by the device, ``trainer.kernel`` and the optimizer; a model never chooses.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ..data import Batch
from .tables import zero_unseen


class RatingModel(nn.Module):
    #: What each training batch holds: ratings in random order (None), whole users
    #: ("user": per-user terms such as SVD++'s sum over N(u) are then computed once), or
    #: whole items ("item": AutoRec's input vectors).
    group_by: ClassVar[Literal["user", "item"] | None] = None
    #: The optimizer ``trainer.optimizer=auto`` trains the model with: "sgd" (the papers'
    #: per-rating updates) or "adam" (the neural models' papers).
    optimizer: ClassVar[Literal["sgd", "adam"]] = "sgd"
    #: The model has ``sgd_epoch``: the per-rating SGD on a compiled backend.
    has_kernel: ClassVar[bool] = False
    #: The backends (:data:`prizenet.kernels.BACKENDS`) that have the model's ``sgd_epoch``.
    kernel_backends: ClassVar[tuple[str, ...]] = ("numba", "triton")
    #: Device types the model trains on (``("cpu",)``: a CPU-only sampler); None: any.
    devices: ClassVar[tuple[str, ...] | None] = None
    #: Learning rate and weight decay of parameters outside the sparse tables.
    dense_lr: float = 1e-3
    dense_reg: float = 0.0

    #: The model has ``learn``: its own update rule per batch of the loader.
    learns: ClassVar[bool] = False

    @property
    def sweeps(self) -> bool:
        """True when an epoch is :meth:`sweep`, one pass over all training ratings at once."""
        return False

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - every model writes its own
        raise NotImplementedError

    def see(self, n_user_ratings: np.ndarray, n_item_ratings: np.ndarray) -> None:
        """Before training: each user's and item's number of training ratings."""
        zero_unseen(self, n_user_ratings, n_item_ratings)

    def scalars(self) -> dict[str, float]:
        """Per-epoch numbers for TensorBoard (``model/<name>``), beside the RMSEs."""
        return {}

    def sgd_epoch(self, batch: Batch, scale: float = 1.0, backend: str = "numba") -> torch.Tensor:
        """One epoch of per-rating SGD over ``batch`` (tensors on the backend's device, the
        epoch's order; ``batch.bounds`` its runs of one user, found if absent), the learning
        rates times ``scale``, on ``backend`` ("numba", "triton"); returns the squared errors
        met on the way, a 0-d float64 tensor on the device."""
        raise NotImplementedError(f"{type(self).__name__} has no compiled epoch (has_kernel is False)")

    def learn(self, batch: Batch, scale: float, epoch: int) -> torch.Tensor:
        """The model's update on one of the loader's batches (``group_by`` decides what it
        holds), its learning rates times ``scale``, in (0-based) ``epoch``; returns the batch's
        squared error, a 0-d float64 tensor on the device."""
        raise NotImplementedError(f"{type(self).__name__} has no learn (learns is False)")

    def sweep(self, batch: Batch) -> torch.Tensor:
        """One pass over all training ratings (``batch`` holds them all, on the device);
        returns the squared error on them after it, a 0-d float64 tensor."""
        raise NotImplementedError(f"{type(self).__name__} has no sweep (sweeps is False)")
