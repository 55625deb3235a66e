"""Judge a Prize-format submission against an answer key, as the Prize's judge did.

    prizenet score outputs/.../submission.txt data/synthetic/answers.csv

Prints quiz, test and overall RMSE and, with ``--reference RMSE`` (``--reference cinematch``:
0.9514, Cinematch's on the Netflix quiz set; the Prize asked for 10% better), the quiz
improvement over it. The answer key is checked first
(numbers, the rating scale, quiz/test labels, qualifying order); predictions outside the
rating scale are clipped to it, as the Prize's judge did, and the count is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prizenet.data import DataFormatError, score
from prizenet.data.submission import CINEMATCH_QUIZ_RMSE


def _reference(text: str) -> float:
    if text.lower() == "cinematch":
        return CINEMATCH_QUIZ_RMSE
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an RMSE or 'cinematch', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submission", type=Path)
    ap.add_argument("answers", type=Path)
    ap.add_argument("--reference", type=_reference, default=None,
                    help=f"an RMSE to improve on ('cinematch': {CINEMATCH_QUIZ_RMSE}, Netflix data only)")
    ap.add_argument("--rating-scale", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                    help="the data's rating scale; answers outside it are refused, predictions clipped to it "
                         "(default: 1-5, or 0.5-5 for a key with half stars)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        result = score(args.submission, args.answers, args.reference,
                       tuple(args.rating_scale) if args.rating_scale else None)
    except (FileNotFoundError, DataFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"quiz RMSE    {fmt(result['quiz_rmse'])}")
    print(f"test RMSE    {fmt(result['test_rmse'])}")
    print(f"overall RMSE {fmt(result['rmse'])}  ({result['n']:,} predictions)")
    if result["improvement_pct"] is not None:
        print(f"improvement  {result['improvement_pct']:+.2f}% over {result['reference']:.4f}")
    if result["clipped"]:
        lo, hi = result["rating_scale"]
        print(f"note: {result['clipped']:,} predictions outside [{lo:g}, {hi:g}] were clipped to it before scoring, "
              f"as the Prize's judge did", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
