"""Blend finished runs into one submission, fitted on the probe set.

    prizenet blend multirun/2026-11-23/10-00-00            # every run of a sweep
    prizenet blend outputs/.../svd outputs/.../svdpp --out blends/mine --blender mlp

Reads each run's phase-1 probe predictions and final qualifying predictions (refusing runs
of different data or splits), fits the blend on the probe ratings, and writes to --out:
``submission.txt`` (the Prize format), ``predictions/{probe,qualifying}.npy`` (the blend's
out-of-fold probe predictions and its qualifying ones), ``blend.json`` (weights, λ, every
RMSE), ``report.md`` and ``tensorboard/``. Blenders: ``ridge`` (default; λ by k-fold CV),
``mlp`` (meta-features) and ``gbdt`` (LightGBM boosted from the ridge line, when installed);
see prizenet/blend.py. Every blend RMSE reported is k-fold
cross-validated on the probe, never the in-sample fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from prizenet.blend import (GBDTBlend, MLPBlend, gbdt_cv, has_gbdt, load_runs, meta_features, mlp_cv, ridge_cv,
                            ridge_fit, ridge_pick)
from prizenet.data import DataFormatError, write_submission
from prizenet.data.cache import load_from_config
from prizenet.data.submission import atomic_write
from prizenet.plots import blend_chart, save_png
from prizenet.training import read_run_config, rmse, save_npy, write_json


def load_data(run_path: Path):
    """The dataset a run was trained on, from its saved Hydra config's ``data`` fields
    (validated: only prizenet's own loaders, never what the file names)."""
    cfg_file = run_path / ".hydra" / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: missing; blending reads the run's data config from it")
    return load_from_config(read_run_config(cfg_file).get("data"), str(cfg_file))


def _folds(text: str) -> int:
    k = int(text) if text.strip().lstrip("-").isdigit() else None
    if k is None or k < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: k-fold cross-validation needs an integer k >= 2")
    return k


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet blend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders, or folders holding runs (a multirun sweep)")
    ap.add_argument("--out", type=Path, default=None, help="default: outputs/blends/DATE_TIME")
    ap.add_argument("--blender", choices=("ridge", "mlp", "gbdt"), default="ridge",
                    help="which blend writes the submission (every available one is cross-validated and reported; "
                         "gbdt needs LightGBM: pip install \"prizenet[blend]\")")
    ap.add_argument("--folds", type=_folds, default=5, help="k of the k-fold cross-validation on the probe (>= 2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.blender == "gbdt" and not has_gbdt():
        print('error: --blender gbdt needs LightGBM: pip install "prizenet[blend]" (or lightgbm)', file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        runs = load_runs(args.runs)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        data = load_data(runs[0].path)
    except (FileNotFoundError, DataFormatError, ValueError) as e:
        print(f"error: loading the data of {runs[0].path}: {e}\n(relative data paths are read from the current "
              f"folder: run the blend where train.py ran)", file=sys.stderr)
        return 2
    if data.split_id() != runs[0].metrics["split"]:
        print(f"error: the data of {runs[0].path} (its .hydra/config.yaml) no longer matches the split its runs "
              f"were trained on", file=sys.stderr)
        return 2
    if len(data.probe_rows) < 2 * args.folds:
        print(f"error: --folds {args.folds} needs at least {2 * args.folds} probe ratings; the data has "
              f"{len(data.probe_rows)}", file=sys.stderr)
        return 2
    out = args.out or Path("outputs") / "blends" / time.strftime("%Y-%m-%d_%H-%M-%S")
    lo, hi = data.rating_scale
    y = data.probe_rating.astype(np.float64)
    X = np.stack([r.probe for r in runs], 1).astype(np.float64)
    Xq = np.stack([r.qualifying for r in runs], 1).astype(np.float64)
    probe = data.probe_rows
    meta = meta_features(data.support(data.fit_rows(final_fit=False)), data.user[probe], data.item[probe])
    meta_q = meta_features(data.support(data.fit_rows(final_fit=True)), data.qual_user, data.qual_item)

    # Cross-validated probe RMSE of each blender (what is reported), then the fit on the whole probe.
    oof = {"ridge": np.clip(ridge_cv(X, y, args.folds, args.seed), lo, hi)}
    lam, lam_scores = ridge_pick(X, y, args.folds, args.seed)
    w0, w = ridge_fit(X, y, lam)
    qual = {"ridge": np.clip(w0 + Xq @ w, lo, hi)}
    oof["mlp"] = np.clip(mlp_cv(X, meta, y, args.folds, args.seed), lo, hi)
    qual["mlp"] = np.clip(MLPBlend(seed=args.seed).fit(X, meta, y).predict(Xq, meta_q), lo, hi)
    if has_gbdt():
        oof["gbdt"] = np.clip(gbdt_cv(X, meta, y, args.folds, args.seed), lo, hi)
        qual["gbdt"] = np.clip(GBDTBlend(seed=args.seed).fit(X, meta, y, args.folds).predict(Xq, meta_q), lo, hi)
    cv = {k: rmse(v, y) for k, v in oof.items()}

    best = min(runs, key=lambda r: r.probe_rmse)
    chosen = args.blender
    save_npy(out / "predictions" / "probe.npy", oof[chosen].astype(np.float32))
    save_npy(out / "predictions" / "qualifying.npy", qual[chosen].astype(np.float32))
    write_submission(out / "submission.txt", data.item_ids[data.qual_item], qual[chosen], data.rating_scale)
    result = {
        "blender": chosen,
        "split": runs[0].metrics["split"],
        "dataset": runs[0].metrics.get("dataset"),
        "rating_scale": [lo, hi],
        "folds": args.folds,
        "cv_probe_rmse": cv,
        "best_single": {"run": str(best.path), "probe_rmse": best.probe_rmse},
        "gain": best.probe_rmse - cv[chosen],
        "ridge": {"lambda": lam, "intercept": w0, "weights": {str(r.path): float(x) for r, x in zip(runs, w)},
                  "cv_rmse_by_lambda": lam_scores},
        "runs": [{"run": str(r.path), "model": r.metrics.get("model"), "probe_rmse": r.probe_rmse,
                  "overrides": r.overrides} for r in runs],
        "seconds": time.perf_counter() - t0,
    }
    if data.has_answers():  # the synthetic data ships its answers: judge the blend too
        quiz = data.qual_part == 0
        result["quiz_rmse"] = rmse(qual[chosen][quiz], data.qual_rating[quiz])
        result["test_rmse"] = rmse(qual[chosen][~quiz], data.qual_rating[~quiz])
    write_json(out / "blend.json", result)
    report = render(result, runs, w)
    atomic_write(out / "report.md", [report.encode()])
    fig = blend_chart([r.label for r in runs], [r.probe_rmse for r in runs], [float(x) for x in w],
                      result["cv_probe_rmse"], f"{len(runs)} runs on {result['dataset']}")
    save_png(fig, out / "blend.png")
    log_tensorboard(out, result, runs, report, fig)
    print(report)
    print(f"wrote {out}/submission.txt, blend.json, report.md, blend.png ({result['seconds']:.1f} s)")
    return 0


def render(result: dict, runs, w) -> str:
    cv, chosen = result["cv_probe_rmse"], result["blender"]
    lines = [f"# Blend of {len(runs)} runs ({result['dataset']}, split {result['split']})", "",
             "| run | model | probe RMSE | ridge weight |", "|---|---|---:|---:|"]
    for r, x in sorted(zip(runs, w), key=lambda t: t[0].probe_rmse):
        lines.append(f"| {r.label} | {r.metrics.get('model')} | {r.probe_rmse:.4f} | {x:+.4f} |")
    lines += ["", f"Ridge intercept {result['ridge']['intercept']:+.4f}, λ = {result['ridge']['lambda']:.4g} "
                  f"(picked by {result['folds']}-fold CV).", "",
              "| blender | probe RMSE, cross-validated |", "|---|---:|"]
    for k, v in cv.items():
        lines.append(f"| {k}{' (submission)' if k == chosen else ''} | {v:.4f} |")
    lines += ["", f"Best single run: {result['best_single']['probe_rmse']:.4f}; the {chosen} blend gains "
                  f"{result['gain']:.4f} ({100 * result['gain'] / result['best_single']['probe_rmse']:.2f}%)."]
    if "quiz_rmse" in result:
        lines.append(f"Judged on the data's answers: quiz RMSE {result['quiz_rmse']:.4f}, "
                     f"test RMSE {result['test_rmse']:.4f}.")
    return "\n".join(lines) + "\n"


def log_tensorboard(out: Path, result: dict, runs, report: str, fig=None) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    for r in runs:  # one tag per input run, named like the report's rows
        writer.add_scalar(f"blend/input_probe_rmse/{r.label}", r.probe_rmse, 0)
        writer.add_scalar(f"blend/ridge_weight/{r.label}", result["ridge"]["weights"][str(r.path)], 0)
    for name, v in result["cv_probe_rmse"].items():
        writer.add_scalar(f"blend/cv_probe_rmse/{name}", v, 0)
    writer.add_scalar("blend/gain_over_best_single", result["gain"], 0)
    writer.add_text("blend/report", report, 0)
    if fig is not None:
        writer.add_figure("blend/chart", fig, 0, close=False)
    writer.close()


if __name__ == "__main__":
    sys.exit(main())
