"""Write a synthetic Netflix Prize (original layout plus answers.csv) with planted structure.

    prizenet make-synthetic --out data/synthetic --users 20000 --items 2000 --ratings 1000000
    prizenet make-synthetic --out /big/netflix-scale --users 480189 --items 17770 --ratings 100480507
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from prizenet.data.cache import publish
from prizenet.data.synthetic import write_prize


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet make-synthetic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--ratings", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factors", type=int, default=8, help="rank of the planted taste")
    ap.add_argument("--force", action="store_true",
                    help="replace --out if it exists (the new set is written beside it, then swapped in)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = {}

    def write(out: Path) -> None:
        info.update(write_prize(out, args.users, args.items, args.ratings, args.seed, n_factors=args.factors))

    try:
        if args.force:
            publish(args.out, write, replace=True)
        else:
            write(args.out)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
