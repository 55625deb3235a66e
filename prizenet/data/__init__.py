"""Ratings in, batches out: readers, the columnar cache, Prize splits, loader, submissions.

The names below are imported on first use, so that what needs only the formats (the
judging service, ``prizenet score``) does not import torch with the loader."""

import importlib

_HOME = {
    "detect_format": "cache", "load_prize": "cache", "DataFormatError": "fastio",
    "Batch": "loader", "RatingLoader": "loader", "pair_batches": "loader",
    "PrizeData": "prize", "RawPrize": "prize", "build": "prize",
    "read_submission": "submission", "score": "submission", "write_submission": "submission",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
