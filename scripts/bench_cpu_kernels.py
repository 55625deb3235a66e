"""The CPU kernels at Netflix scale: ratings in random order against whole users, one core
against all of them, on the Netflix-shaped set of ``bench_gpu.py`` (480,189 users, 17,770
items, 100M ratings, generated in memory: no text files).

    python scripts/bench_cpu_kernels.py [--ratings 100480507] [--factors 100] [--rounds 2]

For each model, seconds per epoch of the numba kernel (``trainer.kernel=auto`` on CPU) in
each set-up, the set-ups interleaved round by round (this machine's speed drifts):
``svd`` in random order on one core (how svd trained before epochs went user by user), then
whole users (``prizenet.training.KernelEpochs``) on 1 thread and on all of torch's threads
(svd stratified, svdpp and timesvdpp Hogwild). Each epoch's time includes the loader's
``whole_epoch``. Prints JSON; ``--markdown`` a table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prizenet.data import RatingLoader  # noqa: E402
from prizenet.training import KernelEpochs  # noqa: E402


def bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RandomOrder:
    """An epoch of the kernel over ratings in random order (the loader ungrouped)."""

    def __init__(self, model, data, rows):
        self.model, self.loader = model, RatingLoader(data, rows, 65536, "cpu", seed=0)

    def run(self, scale, desc):
        return self.model.sgd_epoch(self.loader.whole_epoch(), scale, "numba")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratings", type=int, default=100_480_507)
    ap.add_argument("--factors", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="svd,svdpp,timesvdpp")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    bg = bench_gpu()
    cpu = torch.device("cpu")
    t = time.perf_counter()
    data = bg.Shaped(device=cpu, **bg.netflix_sizes(args.ratings))
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d"), "ratings": data.n_ratings, "factors": args.factors,
              "generate_seconds": time.perf_counter() - t, "models": {}}
    rows = np.arange(data.n_ratings)
    most = torch.get_num_threads()
    for name in args.models.split(","):
        model = bg.make_model(name, data.inputs(name, args.factors), cpu)
        how = "strata" if model.group_by is None else "Hogwild"
        setups = {"whole users, 1 thread": KernelEpochs(model, data, rows, cpu, 0, 65536, "numba", 1),
                  f"whole users, {most} threads ({how})": KernelEpochs(model, data, rows, cpu, 0, 65536, "numba", most)}
        if name == "svd":
            setups = {"random order, 1 thread": RandomOrder(model, data, rows), **setups}
        times = {k: [] for k in setups}
        first = {}
        for k, loop in setups.items():  # one-time costs (the strata's reordering) and the first touch
            t = time.perf_counter()
            loop.run(0.5, "")
            first[k] = time.perf_counter() - t
        rmse = {}
        for _ in range(args.rounds):
            for k, loop in setups.items():
                t = time.perf_counter()
                sse = float(loop.run(0.5, ""))
                times[k].append(time.perf_counter() - t)
                rmse[k] = math.sqrt(sse / data.n_ratings)
        report["models"][name] = {k: {"seconds": statistics.median(v), "all": v, "first_epoch_seconds": first[k],
                                      "M_ratings_per_s": data.n_ratings / statistics.median(v) / 1e6,
                                      "train_rmse_last": rmse[k]} for k, v in times.items()}
        print(name, {k: round(v["M_ratings_per_s"], 2) for k, v in report["models"][name].items()}, file=sys.stderr,
              flush=True)
        del model, setups
    print(json.dumps(report, indent=1))
    if args.markdown:
        print("\n| model | set-up | s/epoch (median) | M ratings/s | all rounds | first epoch |\n|---|---|---:|---:|---|---:|")
        for name, setups in report["models"].items():
            for k, v in setups.items():
                print(f"| {name} | {k} | {v['seconds']:.2f} | {v['M_ratings_per_s']:.1f} | "
                      f"{', '.join(f'{x:.2f}' for x in v['all'])} | {v['first_epoch_seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
