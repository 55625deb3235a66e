"""Helpers for ``train.py``: device, prediction, checkpoints, TensorBoard, run outputs.

The loop itself lives in ``train.py``, written out top to bottom.
"""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import PrizeData, pair_batches
from .data.submission import atomic_write
from .models.tables import SparseTable

log = logging.getLogger("prizenet")


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
    return out
