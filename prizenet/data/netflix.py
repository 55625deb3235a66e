"""Readers for the Netflix Prize data: the original tarball layout and Kaggle's repackaging.

Original layout (``nf_prize_dataset.tar.gz`` unpacked)::

    ROOT/training_set/mv_0000001.txt ... mv_0017770.txt   (or ROOT/training_set.tar)
    ROOT/probe.txt  ROOT/qualifying.txt  ROOT/movie_titles.txt

Kaggle layout (netflix-inc/netflix-prize-data)::

    ROOT/combined_data_1.txt ... combined_data_4.txt
    ROOT/probe.txt  ROOT/qualifying.txt  ROOT/movie_titles.csv

Any file may also be gzipped (``probe.txt.gz``). Files are read in groups of about
``CHUNK`` bytes and parsed by :mod:`prizenet.data.fastio`; no Python object per rating.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from .fastio import DataFormatError, Sources, parse_blocks, to_array
from .prize import NETFLIX_EPOCH, RawPrize

CHUNK = 32 << 20
WORKERS = 2

WHERE = (
    "The Netflix Prize data is no longer distributed by Netflix; copies are on Kaggle "
    "(https://www.kaggle.com/datasets/netflix-inc/netflix-prize-data) and in the Internet "
    "Archive (nf_prize_dataset.tar.gz)."
)
LAYOUT = {
    "netflix": "ROOT/training_set/mv_0000001.txt ... (or ROOT/training_set.tar), ROOT/probe.txt, "
    "ROOT/qualifying.txt, ROOT/movie_titles.txt",
    "netflix_kaggle": "ROOT/combined_data_1.txt ... combined_data_4.txt, ROOT/probe.txt, "
    "ROOT/qualifying.txt, ROOT/movie_titles.csv",
}


def missing(root: Path, fmt: str, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{root}: no {what}. The {fmt} layout is: {LAYOUT[fmt]} (each may be .gz). {WHERE}"
    )


def find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _chunks(path: Path) -> Iterator[bytes]:
    """A large file in pieces of about CHUNK bytes, each ending at a newline."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut]
        if rest:
            yield rest


class _Columns:
    """Accumulates parsed training chunks and concatenates them once."""

    def __init__(self):
        self.parts: dict[str, list[np.ndarray]] = {"movie": [], "customer": [], "rating": [], "day": []}

    def add(self, blocks) -> None:
        self.parts["movie"].append(blocks.movie.astype(np.int32))
        self.parts["customer"].append(blocks.customer.astype(np.int32))
        self.parts["rating"].append(blocks.rating)
        self.parts["day"].append(blocks.day)

    def result(self) -> dict[str, np.ndarray]:
        """The columns, concatenated one at a time; the parts are dropped as they are joined."""
        out = {}
        for k in list(self.parts):
            v = self.parts.pop(k)
            out[k] = np.concatenate(v) if v else np.zeros(0, np.int32)
            del v
        return out


def _parse_group(named: list[tuple[str, bytes]]):
    """Parse many small files at once: concatenated, with line numbers mapped back per file."""
    contents = [c if c.endswith(b"\n") else c + b"\n" for _, c in named]
    lines = np.array([c.count(b"\n") for c in contents], np.int64)
    first = np.zeros(len(named), np.int64)
    np.cumsum(lines[:-1], out=first[1:])
    sources = Sources([n for n, _ in named], first)
    return parse_blocks(to_array(b"".join(contents)), "train", sources)


def _grouped(items: Iterator[tuple[str, bytes]], columns: _Columns) -> int:
    """Parse files in groups of about CHUNK bytes, two groups at a time.

    numpy releases the GIL in its array loops, so two threads use both cores of a laptop
    while the next group is read; results are added in file order.
    """
    n, pending = 0, []
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        group, size = [], 0
        for name, content in items:
            group.append((name, content))
            size += len(content)
            n += 1
            if size >= CHUNK:
                pending.append(pool.submit(_parse_group, group))
                group, size = [], 0
                while len(pending) > WORKERS:
                    columns.add(pending.pop(0).result())
        if group:
            pending.append(pool.submit(_parse_group, group))
        for future in pending:
            columns.add(future.result())
    return n


def _movie_files(directory: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(p for p in directory.iterdir() if re.fullmatch(r"mv_\d+\.txt(\.gz)?", p.name)):
        yield str(path), read_bytes(path)


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    # Streamed member by member: the 17,770 files never touch the disk.
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(r"mv_\d+\.txt", Path(member.name).name):
                yield f"{path}:{member.name}", tar.extractfile(member).read()


def _big_file(path: Path, columns: _Columns) -> None:
    movie, line = None, 0
    for piece in _chunks(path):
        blocks = parse_blocks(to_array(piece), "train", Sources.single(str(path), line), movie0=movie)
        columns.add(blocks)
        if blocks.movie.size:
            movie = int(blocks.movie[-1])
        # A chunk may end right after a header with no ratings yet.
        tail = piece.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if tail.endswith(b":"):
            movie = int(tail[:-1])
        line += piece.count(b"\n")


def read_pairs(path: Path, kind: str) -> dict[str, np.ndarray]:
    """probe.txt (kind 'probe') or qualifying.txt (kind 'qual') with line numbers."""
    blocks = parse_blocks(to_array(read_bytes(path)), kind, Sources.single(str(path)), keep_lines=True)
    out = {"movie": blocks.movie, "customer": blocks.customer, "line": blocks.line}
    if kind == "qual":
        out["day"] = blocks.day
    return out


def read_titles(path: Path) -> dict:
    """movie_titles: ``MovieID,YearOfRelease,Title`` (latin-1; commas in titles; year NULL)."""
    titles = {}
    text = read_bytes(path).decode("latin-1")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",", 2)
        if len(parts) < 3 or not parts[0].strip().isdigit():
            raise DataFormatError(f"{path}, line {n}: expected 'MovieID,YearOfRelease,Title', got {line!r}")
        year = parts[1].strip()
        if year != "NULL" and not year.isdigit():
            raise DataFormatError(f"{path}, line {n}: year must be a number or NULL, got {year!r}")
        titles[int(parts[0])] = (0 if year == "NULL" else int(year), parts[2])
    return titles


def _assemble(root: Path, fmt: str, train: dict, titles_name: str) -> RawPrize:
    probe_path = find(root, "probe.txt")
    qual_path = find(root, "qualifying.txt")
    if probe_path is None:
        raise missing(root, fmt, "probe.txt")
    if qual_path is None:
        raise missing(root, fmt, "qualifying.txt")
    probe = read_pairs(probe_path, "probe")
    qual = read_pairs(qual_path, "qual")
    titles_path = find(root, titles_name)
    answers = _answers(root, qual)
    return RawPrize(
        train_user=train["customer"], train_item=train["movie"],
        train_rating=train["rating"], train_day=train["day"],
        probe_user=probe["customer"], probe_item=probe["movie"], probe_line=probe["line"],
        probe_file=str(probe_path),
        qual_user=qual["customer"], qual_item=qual["movie"], qual_day=qual["day"],
        qual_line=qual["line"], qual_file=str(qual_path),
        qual_rating=answers[0], qual_part=answers[1],
        titles=read_titles(titles_path) if titles_path else None,
        rating_scale=(1.0, 5.0), epoch=NETFLIX_EPOCH,
        meta={"format": fmt, "root": str(root)},
    )


def _answers(root: Path, qual: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The qualifying answers, where the folder carries a key (synthetic data does)."""
    path = find(root, "answers.csv")
    if path is None:
        return None, None
    from .submission import read_answers

    key = read_answers(path)
    same = len(key) == len(qual["movie"]) and (key["movie_id"].to_numpy() == qual["movie"]).all() \
        and (key["customer_id"].to_numpy() == qual["customer"]).all()
    if not same:
        raise DataFormatError(f"{path}: the answer key does not list qualifying.txt's pairs in its order")
    return key["rating"].to_numpy(np.float32), (key["subset"] == "test").to_numpy().astype(np.int8)


def read_netflix(root: str | Path) -> RawPrize:
    """The original layout: training_set/ (or training_set.tar), probe, qualifying, titles."""
    root = Path(root)
    columns = _Columns()
    if (root / "training_set").is_dir():
        n = _grouped(_movie_files(root / "training_set"), columns)
    elif find(root, "training_set.tar"):
        n = _grouped(_tar_members(find(root, "training_set.tar")), columns)
    else:
        raise missing(root, "netflix", "training_set/ folder or training_set.tar")
    if n == 0:
        raise missing(root, "netflix", "mv_NNNNNNN.txt files in training_set")
    return _assemble(root, "netflix", columns.result(), "movie_titles.txt")


def read_netflix_kaggle(root: str | Path) -> RawPrize:
    """Kaggle's layout: combined_data_1..4.txt hold the same ``MovieID:`` blocks."""
    root = Path(root)
    paths = [p for k in range(1, 5) if (p := find(root, f"combined_data_{k}.txt"))]
    if not paths:
        raise missing(root, "netflix_kaggle", "combined_data_N.txt files")
    columns = _Columns()
    for path in paths:
        _big_file(path, columns)
    return _assemble(root, "netflix_kaggle", columns.result(), "movie_titles.csv")


def files_of(root: Path, fmt: str) -> list[Path]:
    """The source files whose size and mtime key the cache."""
    if fmt == "netflix":
        ts = root / "training_set"
        files = [ts] if ts.is_dir() else []  # the folder's mtime changes when files are added
        if ts.is_dir():
            files += sorted(ts.iterdir())
        elif (tar := find(root, "training_set.tar")) is not None:
            files.append(tar)
        names = ["probe.txt", "qualifying.txt", "movie_titles.txt", "answers.csv"]
    else:
        files = [p for k in range(1, 5) if (p := find(root, f"combined_data_{k}.txt"))]
        names = ["probe.txt", "qualifying.txt", "movie_titles.csv", "answers.csv"]
    return files + [p for n in names if (p := find(root, n))]


def load_netflix(root: str | Path, format: str = "netflix", cache_dir: str | Path | None = None):
    """The Netflix Prize folder ``root`` (``format``: "netflix" or "netflix_kaggle"), cached.

    The Prize data cannot be downloaded from Netflix any more: a missing folder raises an
    error that lists the files the layout needs and where copies are found.
    """
    from .cache import load_prize

    root = Path(root).expanduser()
    if not root.exists():
        raise missing(root, format, "such folder")
    return load_prize(root, format=format, cache_dir=cache_dir)
