#!/usr/bin/env python
"""Benchmark the data layer: parsing the Netflix layout, loading the cache, the batch loader.

    python scripts/bench_data.py --dir /tmp/bench100m --ratings 100480507 --users 480189 --items 17770

Generates a synthetic Prize in the Netflix layout (once), then measures, each in a fresh
process so that peak memory (VmHWM) is the step's own, ``--repeat`` times in turn (the
median run is reported, with every run's seconds):
  1. pandas' C parser on a plain CSV of the same (user, item, rating) triples (reference);
  2. building the cache from the Netflix layout (ratings/s, peak memory);
  3. loading the cache back (with the user column laid out; N(u) is timed apart);
  4. one epoch of the batch loader at batch 65,536 (ratings/s).
Prints one JSON object; docs/benchmarks.md records the results.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Each step: (set-up, timed code). Set-up (imports) is not timed: torch alone takes seconds.
STEPS = {
    "pandas_csv": ("import pandas as pd", """
pd.read_csv(ARGS['csv'], header=None, names=['user', 'item', 'rating'],
            dtype={'user': 'int32', 'item': 'int32', 'rating': 'int8'}, engine='c')
"""),
    # A first build: the previous cache is deleted before the clock starts.
    "build_cache": ("import shutil\nfrom prizenet.data import load_prize\nshutil.rmtree(ARGS['cache'], ignore_errors=True)", """
d = load_prize(ARGS['dir'], cache_dir=ARGS['cache'])
OUT['ratings'] = d.n_ratings
"""),
    # Loading includes laying out the user column from its CSR offsets (every model reads
    # it); N(u), which only the SVD++ family reads, is timed on its own, after the clock.
    "load_cache": ("from prizenet.data import load_prize", """
d = load_prize(ARGS['dir'], cache_dir=ARGS['cache'])
OUT['ratings'] = d.n_ratings
OUT['mapped_seconds'] = time.perf_counter() - t0
d.user
OUT['seconds'] = time.perf_counter() - t0
t1 = time.perf_counter()
d.nu_items
OUT['nu_items_seconds'] = time.perf_counter() - t1
"""),
    "loader_epoch": ("import torch\nfrom prizenet.data import load_prize, RatingLoader", """
d = load_prize(ARGS['dir'], cache_dir=ARGS['cache'])
loader = RatingLoader(d, d.fit_rows(True), batch_size=65536, device=ARGS['device'])
OUT['setup_seconds'] = time.perf_counter() - t0
times = []
for epoch in range(3):
    t = time.perf_counter()
    n = 0
    for b in loader:
        n += len(b)
    if ARGS['device'] == 'cuda':
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
OUT['epoch_seconds'] = times
OUT['ratings_per_s'] = n / min(times[1:])  # steady state: the first epoch also allocates its buffer
"""),
}


def run_step(name: str, args: dict) -> dict:
    imports, body = STEPS[name]
    code = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"ARGS = {args!r}\nOUT = {{}}\n"
        f"{imports}\n"
        "t0 = time.perf_counter()\n"
        f"{body}\n"
        "OUT.setdefault('seconds', time.perf_counter() - t0)\n"
        # VmHWM is this process's own peak; ru_maxrss would carry the parent's across exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "OUT['peak_rss_gb'] = int(hwm) / 2**20\n"
        "print(json.dumps(OUT))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"step {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm(paths: list[Path]) -> None:
    """Read every input once, so that both the reference and the build read from the page
    cache: the benchmark times parsing, not this machine's disk."""
    for path in paths:
        for f in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            with open(f, "rb") as fh:
                while fh.read(64 << 20):
                    pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--ratings", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=17_770)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="run only these steps")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each step, in turn with the others; the median run is reported (this "
                         "machine's times vary by a third from run to run)")
    args = ap.parse_args(argv)
    from prizenet.data.synthetic import write_prize

    result = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d")}
    prize = args.dir / "prize"
    if not (prize / "qualifying.txt").exists():
        t = time.perf_counter()
        result["generate"] = write_prize(prize, args.users, args.items, args.ratings, seed=0)
        result["generate"]["seconds"] = round(time.perf_counter() - t, 1)
    csv = args.dir / "triples.csv"
    if not csv.exists():
        from prizenet.data.cache import load_prize
        from prizenet.data.fastio import const_field, format_uint, join_lines
        import numpy as np

        d = load_prize(prize, cache_dir=args.dir / "cache")
        with open(csv, "wb") as f:
            for a in range(0, d.n_ratings, 5_000_000):
                sl = slice(a, a + 5_000_000)
                n = len(d.user[sl])
                stars = ((np.asarray(d.rating_x2[sl]) // 2)[:, None] + 48).astype(np.uint8), np.ones(n, np.int64)
                f.write(join_lines([format_uint(d.user_ids[d.user[sl]]), const_field(",", n),
                                    format_uint(d.item_ids[d.item[sl]]), const_field(",", n), stars]).tobytes())
    _warm([csv, prize])
    # numba compiles the data layer's loops on first use after an install or an edit
    # (about 15 s, once; cached on disk after): a tiny build and load pay it before the clock runs.
    tiny = args.dir / "tiny"
    if not (tiny / "qualifying.txt").exists():
        write_prize(tiny, 200, 50, 5000, seed=0)
    tiny_args = {"dir": str(tiny), "cache": str(args.dir / "tiny_cache"), "csv": "", "device": args.device}
    result["compile_seconds"] = sum(run_step(step, tiny_args)["seconds"] for step in ("build_cache", "load_cache"))
    step_args = {"dir": str(prize), "cache": str(args.dir / "cache"), "csv": str(csv), "device": args.device}
    runs = {name: [] for name in args.steps}
    for _ in range(args.repeat):
        for name in args.steps:
            runs[name].append(run_step(name, step_args))
            print(name, runs[name][-1], file=sys.stderr, flush=True)
    for name, out in runs.items():
        result[name] = sorted(out, key=lambda r: r["seconds"])[len(out) // 2]  # the median run
        result[name]["all_seconds"] = [round(r["seconds"], 2) for r in out]
    if "build_cache" in result:
        result["build_ratings_per_s"] = result["build_cache"]["ratings"] / result["build_cache"]["seconds"]
    if "build_cache" in result and "pandas_csv" in result:
        result["build_vs_pandas"] = result["build_cache"]["seconds"] / result["pandas_csv"]["seconds"]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
