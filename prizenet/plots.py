"""Figures a run, a blend and a leaderboard write beside their numbers (matplotlib).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
backend or figure state: safe in a library, a notebook or a server), and :func:`save_png`
writes one atomically. The trainer also hands the learning curve to TensorBoard
(``add_figure``).
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from .data.submission import atomic_write


def learning_curves(hist1: list[dict], hist2: list[dict], title: str) -> Figure:
    """Train and probe RMSE per epoch of phase 1, the best epoch marked, and phase 2's
    training RMSE on the same epoch axis."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in hist1]
    ax.plot(epochs, [h["train_rmse"] for h in hist1], "o-", ms=3, label="phase 1: train")
    if hist1 and "probe_rmse" in hist1[0]:
        probe = [h["probe_rmse"] for h in hist1]
        ax.plot(epochs, probe, "o-", ms=3, label="phase 1: probe")
        best = min(range(len(probe)), key=probe.__getitem__)
        ax.axvline(epochs[best], color="0.6", ls=":", lw=1)
        ax.annotate(f"best {probe[best]:.4f} (epoch {epochs[best]})", (epochs[best], probe[best]),
                    textcoords="offset points", xytext=(6, 8), fontsize=8)
    if hist2:
        ax.plot([h["epoch"] for h in hist2], [h["train_rmse"] for h in hist2], "s--", ms=3,
                label="phase 2 (all training ratings): train")
    ax.set(xlabel="epoch", ylabel="RMSE", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def blend_chart(labels: list[str], probe_rmse: list[float], weights: list[float], cv: dict[str, float],
                title: str) -> Figure:
    """Each input run's probe RMSE (bars) against the blends' cross-validated RMSE (lines),
    and the ridge weights."""
    order = sorted(range(len(labels)), key=lambda k: probe_rmse[k])
    names = [labels[k] for k in order]
    fig = Figure(figsize=(9.0, 0.9 + 0.32 * len(labels) + 1.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    left.barh(names, [probe_rmse[k] for k in order], color="C0")
    for n, (name, value) in enumerate(cv.items()):
        left.axvline(value, color=f"C{n + 1}", lw=1.5, label=f"{name} blend {value:.4f} (CV)")
    lo = min([*probe_rmse, *cv.values()])
    hi = max([*probe_rmse, *cv.values()])
    left.set_xlim(lo - 0.1 * (hi - lo + 1e-3), hi + 0.05 * (hi - lo + 1e-3))
    left.invert_yaxis()
    left.set(xlabel="probe RMSE", title=title)
    left.legend(fontsize=8, loc="lower right")
    right.barh(names, [weights[k] for k in order], color=["C2" if weights[k] >= 0 else "C3" for k in order])
    right.axvline(0, color="0.4", lw=0.8)
    right.set(xlabel="ridge weight")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    return fig


def leaderboard_chart(groups: dict[str, list[tuple[str, float]]]) -> Figure:
    """Probe RMSE of every run, one panel per dataset and split (best at the top)."""
    fig = Figure(figsize=(8.0, 1.0 + sum(0.3 * len(g) + 0.8 for g in groups.values())), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False,
                        height_ratios=[max(len(g), 1) for g in groups.values()])[:, 0]
    for ax, (title, rows) in zip(axes, groups.items()):
        rows = sorted(rows, key=lambda r: r[1])
        values = [v for _, v in rows]
        ax.barh([name for name, _ in rows], values, color=["C1" if "blend (" in name else "C0" for name, _ in rows])
        span = max(values) - min(values) + 1e-3
        ax.set_xlim(min(values) - 0.15 * span, max(values) + 0.05 * span)
        for y, v in enumerate(values):
            ax.annotate(f"{v:.4f}", (v, y), textcoords="offset points", xytext=(3, -3), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9, loc="left")
        ax.set(xlabel="probe RMSE")
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    """``fig`` as a PNG at ``path``, written through a temporary file."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write(path, [buf.getbuffer()])
