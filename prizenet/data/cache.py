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
import logging
import os
import shutil
import tempfile
from pathlib import Path

from . import kernels, movielens, netflix
from .prize import CacheError, PrizeData, RawPrize, build
from .splits import split_table
from .submission import UMASK
from .tabular import read_table

CACHE_VERSION = 4  # 4: manifest.json (sizes, checksums); 3: training rows by user (a CSR)
log = logging.getLogger("prizenet")
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
    """The files a build reads (only those: an answer key written beside MovieLens files
    does not force a rebuild)."""
    if fmt in ("netflix", "netflix_kaggle"):
        return netflix.files_of(path, fmt)
    if path.is_file():
        return [str(path)]
    return [str(p) for p in movielens.files_read(path)]


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
    if fmt == "movielens":
        table, titles, scale = movielens.read_movielens(path if path.is_dir() else path.parent)
    elif fmt == "csv":
        columns = dict(columns or {})
        scale = tuple(columns.pop("rating_scale", (1.0, 5.0)))
        table, titles = read_table(path, **columns), None
    else:
        raise ValueError(f"unknown data format {fmt!r}; expected one of {FORMATS}")
    table.check(scale, 1 << kernels.DAY_BITS)  # file and line of a bad rating or date, before the split
    return split_table(table, scale, {"format": fmt, "root": str(path)}, titles=titles, mode=holdout, k=holdout_k,
                       fraction=holdout_fraction, seed=seed)


def _host() -> str:
    import socket

    return socket.gethostname().replace("~", "-")


def _remove_stale_temporaries(parent: Path) -> None:
    """Temporary build folders (``.NAME~HOST~PID~XXXX``) that killed builds left in
    ``parent``: this host's whose process is gone, and any host's older than a day (a
    shared filesystem)."""
    import time

    for tmp in parent.glob(".*~*~*~*"):
        _, host, pid, _ = tmp.name.split("~", 3)
        if host == _host():
            try:
                os.kill(int(pid), 0)
                continue  # still building
            except (ProcessLookupError, ValueError):
                pass
            except PermissionError:
                continue
        elif time.time() - tmp.stat().st_mtime < 86400:
            continue
        shutil.rmtree(tmp, ignore_errors=True)


def publish(target: Path, write, replace: bool = False) -> None:
    """Make folder ``target`` with ``write(path)``, atomically: it is written in a temporary
    sibling and renamed, so a failed or interrupted write leaves no half-written folder.
    A concurrent writer that finished first wins (its folder is kept). The folder gets the
    umask's permissions; an OSError (read-only folder, full disk) names the folder."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}~{_host()}~{os.getpid()}~", dir=target.parent))
    except OSError as e:
        raise _write_error(target, e) from None
    try:
        write(tmp / "out")
        os.chmod(tmp / "out", 0o777 & ~UMASK)
        if replace and target.is_dir():
            shutil.rmtree(target)
        try:
            os.rename(tmp / "out", target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that finished first
                raise
    except OSError as e:
        raise _write_error(target, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_error(target: Path, e: OSError) -> OSError:
    message = (f"cannot write {target.name} into {target.parent} ({e.strerror or e}); give a writable folder "
               f"with room: data.cache_dir=... or $PRIZENET_CACHE")
    return type(e)(e.errno, message) if e.errno is not None else OSError(message)


def _prune(root: Path, fmt: str, keep: Path, source: str, options: dict) -> None:
    """Remove caches this version can never load again: those of older versions (no
    manifest.json) and those built from an earlier state of the same source files."""
    for old in root.glob(f"{fmt}-" + "[0-9a-f]" * 16):
        if old == keep or not old.is_dir():
            continue
        try:
            meta = json.loads((old / "meta.json").read_text())
        except (OSError, ValueError):
            continue  # not one of ours
        stale = not (old / "manifest.json").is_file() or (
            meta.get("cache_source") == source and meta.get("cache_options") == options)
        if stale:
            shutil.rmtree(old, ignore_errors=True)


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
    optional ``rating_scale``) for ``format="csv"``. A damaged cache is detected
    (:func:`prizenet.data.prize.check_cache`) and built again; ``rebuild`` forces that.
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
        try:
            data = PrizeData.load(target)
            data.meta["cache"] = str(target)
            return data
        except CacheError as e:  # damaged (a truncated file, edited JSON): built again from the source
            log.warning("%s; building it again from %s", e, path)
            rebuild = True
    raw = read_raw(path, fmt, holdout, holdout_k, holdout_fraction, seed, columns)
    source = str(path.resolve())
    raw.meta.update(name=name or path.name, cache_source=source, cache_options=options)
    publish(target, lambda out: build(raw, out), replace=rebuild)
    _prune(root, fmt, target, source, options)
    data = PrizeData.load(target)
    data.meta["cache"] = str(target)
    return data


def _loaders() -> dict:
    from . import movielens, netflix, synthetic

    return {"prizenet.data.load_prize": load_prize, "prizenet.data.cache.load_prize": load_prize,
            "prizenet.data.netflix.load_netflix": netflix.load_netflix,
            "prizenet.data.movielens.load_movielens": movielens.load_movielens,
            "prizenet.data.synthetic.load_synthetic": synthetic.load_synthetic}


def load_from_config(cfg: dict, where: str) -> PrizeData:
    """The dataset that a saved ``data:`` config (``where``: the file it came from) names.

    Only this package's own loaders are called, looked up by name in a fixed table, with
    plain values (numbers, strings, lists) for their own parameters: a config from
    someone's run folder can name nothing else to import or call.
    """
    from ..config import saved_kwargs

    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: 'data' must be a mapping, got {type(cfg).__name__}")
    loaders = _loaders()
    target = cfg.get("_target_")
    if target not in loaders:
        raise ValueError(f"{where}: data._target_={target!r} is not one of prizenet's data loaders "
                         f"({', '.join(sorted(loaders))}); it is not imported")
    fn = loaders[target]
    return fn(**saved_kwargs(fn, cfg, where, "data", target))
