"""Ratings in, batches out: readers, the columnar cache, Prize splits, loader, submissions."""

from .cache import detect_format, load_prize
from .fastio import DataFormatError
from .loader import Batch, RatingLoader, pair_batches
from .prize import PrizeData, RawPrize, build
from .submission import read_submission, score, write_submission

__all__ = [
    "Batch", "DataFormatError", "PrizeData", "RatingLoader", "RawPrize", "build", "detect_format",
    "load_prize", "pair_batches", "read_submission", "score", "write_submission",
]
