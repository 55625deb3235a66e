"""Every run under a folder, best probe RMSE first: the Prize's leaderboard for your runs.

    prizenet leaderboard outputs multirun
    prizenet leaderboard multirun/2026-11-23/10-00-00 --answers data/synthetic/answers.csv

Lists each run (a folder with metrics.json), one table per dataset and split, with its model, the overrides it was started
with (its key hyper-parameters), probe RMSE, best epoch and fit seconds; blends written by
`prizenet blend` are listed with their cross-validated probe RMSE. With ``--answers`` each
``submission.txt`` is also judged (quiz and test RMSE), as `prizenet score` does one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prizenet.blend import find_runs, run_info
from prizenet.data import DataFormatError, score

# Overrides that do not change the model: left out of the table.
QUIET = ("trainer.progress", "trainer.histograms", "hydra.", "data.root", "data.path", "trainer.device")


def rows(folders: list[Path], answers: Path | None) -> list[dict]:
    out = []
    for path in find_runs(folders):
        m, overrides = run_info(path)  # metrics only: the predictions are not read
        out.append({"run": str(path), "model": m.get("model"), "dataset": m.get("dataset"), "split": m.get("split"),
                    "rating_scale": m.get("rating_scale"),
                    "overrides": [o for o in overrides if not o.lstrip("+~").startswith(QUIET)],
                    "probe_rmse": float(m["probe_rmse"]), "best_epoch": m.get("best_epoch"),
                    "fit_seconds": sum(m.get("fit_seconds", {}).values())})
    for f in sorted({b for p in folders for b in Path(p).rglob("blend.json")}):
        b = json.loads(f.read_text())
        out.append({"run": str(f.parent.resolve()), "model": f"blend ({b['blender']}, {len(b['runs'])} runs)",
                    "dataset": b.get("dataset"), "split": b.get("split"), "rating_scale": b.get("rating_scale"),
                    "overrides": [], "probe_rmse": b["cv_probe_rmse"][b["blender"]],
                    "best_epoch": None, "fit_seconds": b.get("seconds")})
    if answers is not None:
        for r in out:
            scale = tuple(r["rating_scale"]) if r.get("rating_scale") else None
            s = score(Path(r["run"]) / "submission.txt", answers, rating_scale=scale)
            r["quiz_rmse"], r["test_rmse"] = s["quiz_rmse"], s["test_rmse"]
    # One table per dataset and split: probe RMSEs of different data do not rank against each other.
    return sorted(out, key=lambda r: (str(r["dataset"]), str(r["split"]), r["probe_rmse"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet leaderboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--answers", type=Path, help="an answer key: also judge every submission.txt")
    ap.add_argument("--json", action="store_true", help="one JSON list instead of the table")
    ap.add_argument("--plot", type=Path, metavar="PNG", help="also draw the table: a bar chart per dataset")
    args = ap.parse_args(argv)
    try:
        table = rows(args.folders, args.answers)
    except (FileNotFoundError, DataFormatError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    if not table:
        print(f"no runs under {', '.join(map(str, args.folders))}")
        return 1
    if args.plot:
        from prizenet.plots import leaderboard_chart, save_png

        charts: dict = {}
        for r in table:
            name = f"{Path(r['run']).name}: {r['model']}"
            charts.setdefault(f"{r['dataset']} (split {r['split']})", []).append((name, r["probe_rmse"]))
        save_png(leaderboard_chart(charts), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    judged = args.answers is not None
    head = "| # | run | model | overrides | probe RMSE |" + (" quiz RMSE | test RMSE |" if judged else "") \
        + " best epoch | fit s |"
    cwd = Path.cwd()
    fmt = lambda x, p=4: "" if x is None else f"{x:.{p}f}"  # noqa: E731
    groups: dict = {}
    for r in table:
        groups.setdefault((r["dataset"], r["split"]), []).append(r)
    for n, ((dataset, split), group) in enumerate(groups.items()):
        print(("\n" if n else "") + f"## {dataset} (split {split}): {len(group)} runs")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for k, r in enumerate(group, 1):
            run = Path(r["run"])
            name = run.relative_to(cwd) if run.is_relative_to(cwd) else run
            cells = [str(k), str(name), str(r["model"]), " ".join(r["overrides"]), fmt(r["probe_rmse"])]
            if judged:
                cells += [fmt(r["quiz_rmse"]), fmt(r["test_rmse"])]
            cells += ["" if r["best_epoch"] is None else str(r["best_epoch"]), fmt(r["fit_seconds"], 1)]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
