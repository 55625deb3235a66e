#!/usr/bin/env python
"""Training speed when the machine is shared: each run alone, then beside a competing
CPU-bound process (a busy Python loop), in the same benchmark run.

    python scripts/bench_contention.py [--data ../shared/data/prize/ml1m-half]
    python scripts/bench_contention.py --runs "ncf=experiment=ml1m_ncf" "ncf_1=experiment=ml1m_ncf trainer.threads=1"

Each run is ``train.py`` in a fresh process (phase 1, ``--epochs`` epochs, no final fit);
its ratings/s is the median epoch's. Prints one JSON object; ``--markdown`` adds a table
for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = [
    "ncf=experiment=ml1m_ncf", "ncf_2threads=experiment=ml1m_ncf trainer.threads=2",
    "autorec=experiment=ml1m_autorec", "autorec_2threads=experiment=ml1m_autorec trainer.threads=2",
]
BUSY = "import time\nt = time.time() + {seconds}\nwhile time.time() < t:\n    pass\n"


def run(data: Path, overrides: list[str], epochs: int, cache: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="prizenet-contention-")) / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "data=netflix", f"data.root={data}", *overrides,
           f"trainer.n_epochs={epochs}", f"trainer.patience={epochs}", "trainer.final_fit=false",
           "trainer.progress=false", "trainer.histograms=false", f"hydra.run.dir={out}"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PRIZENET_CACHE": cache})
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    rates = sorted(float(x.replace(",", "")) for x in re.findall(r"([\d,]+) ratings/s", p.stdout))
    return rates[len(rates) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "prize" / "ml1m-half")
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="NAME=OVERRIDES (space-separated Hydra overrides)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    cache = os.environ.get("PRIZENET_CACHE") or tempfile.mkdtemp(prefix="prizenet-bench-")
    import torch

    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d"), "data": str(args.data), "runs": {}}
    for spec in args.runs:
        name, _, overrides = spec.partition("=")
        alone = run(args.data, overrides.split(), args.epochs, cache)
        busy = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=600)])
        try:
            contended = run(args.data, overrides.split(), args.epochs, cache)
        finally:
            busy.kill()
            busy.wait()
        result["runs"][name] = {"overrides": overrides, "alone": alone, "contended": contended,
                                "kept": contended / alone}
        print(name, json.dumps(result["runs"][name]), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))
    if args.markdown:
        print("\n| run | settings | ratings/s alone | beside a busy process | kept |\n|---|---|---:|---:|---:|")
        for name, r in result["runs"].items():
            print(f"| `{name}` | `{r['overrides']}` | {r['alone']:,.0f} | {r['contended']:,.0f} | {100 * r['kept']:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
