"""Load any supported dataset as a :class:`PrizeData`, through a columnar cache.

The first load parses the text files (about 10 s for the full Netflix Prize on two cores) and writes every
column as ``.npy`` into a cache folder; later loads memory-map those files (about a second).
The cache key hashes the reader, its options and each source file's path, size and
modification time, so editing, adding or replacing a source file rebuilds the cache. A build
is written into a temporary folder and renamed into place: an interrupted or failed build
leaves nothing half-written behind, and concurrent builds (a multirun) cannot clash.

Where the cache lives: ``cache_dir`` if given, else ``$PRIZENET_CACHE``, else
``ROOT/.prizenet_cache`` when the data folder is writable, else ``~/.cache/prizenet``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import movielens, netflix
from .prize import PrizeData, RawPrize, build
from .splits import split_table
from .tabular import read_table

CACHE_VERSION = 3  # 3: training rows by user (a CSR); no by_user, user or N(u) arrays
FORMATS = ("auto", "netflix", "netflix_kaggle", "movielens", "csv")


def detect_format(path: Path) -> str:
    """Which reader a path needs, from the files it holds."""
    if path.is_file():
        return "movielens" if path.name.removesuffix(".gz") in movielens.FILES else "csv"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: no such file or folder. Expected a Netflix Prize folder ({netflix.LAYOUT['netflix']}), "
            f"a MovieLens folder (one of {', '.join(movielens.FILES)}) or a ratings CSV/TSV/Parquet file."
        )
    if (path / "training_set").is_dir() or netflix.find(path, "training_set.tar"):
        return "netflix"
    if netflix.find(path, "combined_data_1.txt"):
        return "netflix_kaggle"
    if movielens.ratings_file(path):
        return "movielens"
    raise FileNotFoundError(
        f"{path}: cannot tell the data format. Expected the Netflix Prize layout "
        f"({netflix.LAYOUT['netflix']}), Kaggle's ({netflix.LAYOUT['netflix_kaggle']}), or a MovieLens "
        f"folder with one of {', '.join(movielens.FILES)}. {netflix.WHERE} {movielens.WHERE}"
    )


def _source_files(path: Path, fmt: str) -> list[str]:
    if fmt in ("netflix", "netflix_kaggle"):
        return netflix.files_of(path, fmt)
    if path.is_file():
        return [str(path)]
    return [str(p) for p in sorted(path.iterdir()) if p.is_file()]


def _key(path: Path, fmt: str, options: dict) -> str:
    stats = []
    for p in _source_files(path.resolve(), fmt):
        st = os.stat(p)
        stats.append([p, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"version": CACHE_VERSION, "format": fmt, "options": options, "files": stats})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root(path: Path, cache_dir: str | Path | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("PRIZENET_CACHE"):
        return Path(os.environ["PRIZENET_CACHE"])
    folder = path if path.is_dir() else path.parent
    # The mode bits too: root passes os.access on a folder marked read-only (shared data).
    if os.access(folder, os.W_OK) and folder.stat().st_mode & 0o222:
        return folder / ".prizenet_cache"
    return Path.home() / ".cache" / "prizenet"


def read_raw(path: Path, fmt: str, holdout: str, holdout_k: int, holdout_fraction: float, seed: int,
             columns: dict | None) -> RawPrize:
    """Parse the source files (no cache)."""
    if fmt == "netflix":
        return netflix.read_netflix(path)
    if fmt == "netflix_kaggle":
        return netflix.read_netflix_kaggle(path)
    split = dict(mode=holdout, k=holdout_k, fraction=holdout_fraction, seed=seed)
    if fmt == "movielens":
        table, titles, scale = movielens.read_movielens(path if path.is_dir() else path.parent)
        return split_table(table, scale, {"format": fmt, "root": str(path)}, titles=titles, **split)
    if fmt == "csv":
        columns = dict(columns or {})
        scale = tuple(columns.pop("rating_scale", (1.0, 5.0)))
        table = read_table(path, **columns)
        return split_table(table, scale, {"format": fmt, "root": str(path)}, **split)
    raise ValueError(f"unknown data format {fmt!r}; expected one of {FORMATS}")


def publish(target: Path, write, replace: bool = False) -> None:
    """Make folder ``target`` with ``write(path)``, atomically: it is written in a temporary
    sibling and renamed, so a failed or interrupted write leaves no half-written folder.
    A concurrent writer that finished first wins (its folder is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp / "out")
        if replace and target.is_dir():
            shutil.rmtree(target)
        try:
            os.rename(tmp / "out", target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_prize(
    path: str | Path,
    format: str = "auto",
    cache_dir: str | Path | None = None,
    holdout: str = "recent",
    holdout_k: int = 9,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    columns: dict | None = None,
    rebuild: bool = False,
    name: str | None = None,
) -> PrizeData:
    """Load a dataset, building its cache on first use.

    ``holdout*`` and ``seed`` shape the splits of sources without probe/qualifying files;
    ``columns`` passes :func:`prizenet.data.tabular.read_table`'s column names (and an
    optional ``rating_scale``) for ``format="csv"``.
    """
    path = Path(path).expanduser()
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; expected one of {FORMATS}")
    if not path.exists():
        detect_format(path)  # raises the explanatory FileNotFoundError
    options = {"holdout": holdout, "holdout_k": holdout_k, "holdout_fraction": holdout_fraction,
               "seed": seed, "columns": columns} if fmt in ("movielens", "csv") else {}
    root = cache_root(path, cache_dir)
    target = root / f"{fmt}-{_key(path, fmt, options)}"
    if target.is_dir() and not rebuild:
        data = PrizeData.load(target)
        data.meta["cache"] = str(target)
        return data
    raw = read_raw(path, fmt, holdout, holdout_k, holdout_fraction, seed, columns)
    raw.meta.update(name=name or path.name)
    publish(target, lambda out: build(raw, out), replace=rebuild)
    data = PrizeData.load(target)
    data.meta["cache"] = str(target)
    return data
