"""Build (or reuse) the columnar cache of a dataset and print what to check first.

    prizenet prepare ../shared/data/prize/ml1m-half
    prizenet prepare ~/data/ml-25m --json
    prizenet prepare ~/data/ml-25m --answers ml25m_answers.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from prizenet.data import DataFormatError, load_prize
from prizenet.data.cache import FORMATS
from prizenet.data.submission import write_answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="dataset folder (Netflix Prize, Kaggle or MovieLens layout) or ratings file")
    ap.add_argument("--format", default="auto", choices=FORMATS)
    ap.add_argument("--cache-dir", default=None, help="where the cache goes (default: next to the data)")
    ap.add_argument("--rebuild", action="store_true", help="parse the sources again even if cached")
    ap.add_argument("--holdout", default="recent", choices=["recent", "random"],
                    help="how probe/quiz/test are built for sources without them")
    ap.add_argument("--holdout-k", type=int, default=9, help="recent ratings held out per user")
    ap.add_argument("--holdout-fraction", type=float, default=0.1, help="fraction held out (random)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--answers", type=Path, help="write the qualifying answer key here (built splits)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    try:
        data = load_prize(args.path, args.format, args.cache_dir, args.holdout, args.holdout_k,
                          args.holdout_fraction, args.seed, rebuild=args.rebuild)
    except (FileNotFoundError, DataFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = data.summary()
    info["seconds"] = round(time.perf_counter() - t0, 3)
    info["cache"] = data.meta.get("cache")
    if args.answers:
        if not data.has_answers():
            print("error: this dataset's qualifying answers are withheld; there is no key to write", file=sys.stderr)
            return 2
        write_answers(args.answers, data.item_ids[data.qual_item], data.user_ids[data.qual_user],
                      data.dates(data.qual_day), data.qual_rating, data.qual_part)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['name']} ({info['format']}), cache {info['cache']}")
    print(f"  ratings     {info['ratings']:>12,}  (training lines, probe included)")
    print(f"  users       {info['users']:>12,}  ({info['users_only_in_qualifying']:,} only in qualifying)")
    print(f"  items       {info['items']:>12,}  ({info['items_only_in_qualifying']:,} only in qualifying)")
    print(f"  probe       {info['probe']:>12,}")
    print(f"  qualifying  {info['qualifying']:>12,}  (answers {'known' if info['answers_known'] else 'withheld'})")
    print(f"  dates       {info['first_date']} .. {info['last_date']}")
    print(f"  mean rating {info['global_mean']:>12}")
    total = max(sum(info["histogram"].values()), 1)
    for star, count in info["histogram"].items():
        print(f"  {star:>5} stars {count:>12,}  {'#' * round(40 * count / total)}")
    print(f"  {info['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
