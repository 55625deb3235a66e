"""Readers for the Netflix Prize data: the original tarball layout and Kaggle's repackaging.

Original layout (``nf_prize_dataset.tar.gz`` unpacked)::

    ROOT/training_set/mv_0000001.txt ... mv_0017770.txt   (or ROOT/training_set.tar)
    ROOT/probe.txt  ROOT/qualifying.txt  ROOT/movie_titles.txt

Kaggle layout (netflix-inc/netflix-prize-data)::

    ROOT/combined_data_1.txt ... combined_data_4.txt
    ROOT/probe.txt  ROOT/qualifying.txt  ROOT/movie_titles.csv

Any file may also be gzipped (``probe.txt.gz``). Training, probe and qualifying files are
parsed by :func:`read_blocks`: threads read CHUNK bytes of whole lines at a time and run
the compiled tokenizer of :mod:`prizenet.data.kernels` on them; no Python object per
rating. At 10^8 ratings (2 GB of text) that takes about 3 s on two cores.
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
import threading
import zlib
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from . import kernels
from .fastio import DATE_TABLE, DATE_YEARS, FORMS, NL, DataFormatError
from .prize import NETFLIX_EPOCH, RawPrize, Runs

CHUNK = 32 << 20  # bytes of text per buffer
PAD = 64  # newlines after a buffer's text: a truncated last line fails its checks there
WORKERS = max(2, min(os.cpu_count() or 2, 8))

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
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as e:
            raise _damaged(str(path), e) from None
    return path.read_bytes()


def decode_text(data: bytes) -> str:
    """UTF-8 where the bytes are valid UTF-8, else latin-1 (the Prize's own files): a title
    file re-saved as UTF-8 reads 'Amélie', not 'AmÃ©lie'."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _Reader:
    """Fills a buffer with whole lines of the training files, in order (one caller at a
    time). A file that does not fit is cut after its last whole line in the buffer and
    continues in the next one; each file's content ends in a newline."""

    def __init__(self, files: Iterable[tuple[str, Callable[[], BinaryIO]]]):
        self.files = iter(files)
        self.names: list[str] = []
        self.f: BinaryIO | None = None
        self.carry = b""  # the partial last line of the open file
        self.lines = 0  # lines of the open file before the next segment
        self.first = True  # the next segment starts its file

    def fill(self, buf: np.ndarray) -> list[tuple[int, int, int, int, bool]]:
        """Segments (start, end, file number, lines before it in its file, starts the file)."""
        size = len(buf) - PAD
        pos, segs = 0, []
        while pos < size:
            if self.f is None:
                try:
                    nxt = next(self.files, None)
                except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
                    where = self.names[-1] if self.names else "the training archive"
                    raise _damaged(f"the archive after {where}", e) from None
                if nxt is None:
                    break
                name, opener = nxt
                self.names.append(name)
                try:
                    self.f, self.first, self.lines = opener(), True, 0
                except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
                    raise _damaged(name, e) from None
            start = pos
            carry, self.carry = self.carry, b""
            if len(carry) >= size - pos:
                if start == 0:
                    raise DataFormatError(f"{self.names[-1]}, line {self.lines + 1}: a line longer than "
                                          f"{size} bytes; expected 'MovieID:' or a rating line")
                self.carry = carry  # the next buffer starts with it
                break
            buf[pos:pos + len(carry)] = np.frombuffer(carry, np.uint8)
            pos += len(carry)
            view = memoryview(buf)
            try:
                while pos < size and (n := self.f.readinto(view[pos:size])):
                    pos += n
            except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
                raise _damaged(self.names[-1], e) from None
            if self.first:
                self._check_header(buf, start, pos)
            if pos < size:  # the file ended
                self.f.close()
                self.f = None
                if pos > start and buf[pos - 1] != NL:
                    buf[pos] = NL
                    pos += 1
                if pos > start:
                    segs.append((start, pos, len(self.names) - 1, self.lines, self.first))
                continue
            cut = kernels.last_newline(buf, start, pos)
            self.carry = bytes(buf[cut:pos])
            if cut > start:
                segs.append((start, cut, len(self.names) - 1, self.lines, self.first))
                self.lines += kernels.newlines(buf, start, cut)
                self.first = False
            pos = cut
            break
        return segs

    def _check_header(self, buf: np.ndarray, start: int, end: int) -> None:
        """A file named mv_NNNNNNN.txt must open with the header 'NNNNNNN:' (its movie)."""
        name = self.names[-1]
        m = re.search(r"mv_0*(\d+)\.txt(\.gz)?$", name)
        if m is None:
            return
        head = bytes(buf[start:min(end, start + 256)]).lstrip(b"\r\n \t").split(b"\n", 1)[0].rstrip(b"\r ")
        if head.endswith(b":") and head[:-1].isdigit() and int(head[:-1]) != int(m.group(1)):
            raise DataFormatError(f"{name}, line 1: header '{head.decode()}' names movie {int(head[:-1])}, but the "
                                  f"file is named for movie {int(m.group(1))}; expected '{int(m.group(1))}:'")

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _damaged(name: str, e: BaseException) -> DataFormatError:
    return DataFormatError(f"{name}: cannot be read ({type(e).__name__}: {e}); the file is damaged or truncated "
                           f"(a gzip or tar file cut short?)")


KINDS = {"train": kernels.TRAIN, "qual": kernels.QUAL, "probe": kernels.PROBE}
# day: days since 1970 in 16 bits (1880-2059), half the memory of int32 at 10^8 ratings.
_COLUMNS = {"movie": np.int32, "customer": np.int32, "rating": np.uint8, "day": np.int16, "line": np.int64}
_SHORTEST = {"train": 15, "qual": 13, "probe": 2}  # bytes of the shortest body line


class _Columns:
    """The parsed columns, allocated once for a bound on the row count (pages never
    written cost nothing) and grown if a compressed source beats the bound."""

    def __init__(self, names: list[str], rows: int):
        self.cols = {k: np.empty(rows, _COLUMNS[k]) for k in names}
        self.unused = np.empty(0, np.int32)

    @property
    def capacity(self) -> int:
        return len(next(iter(self.cols.values())))

    def get(self, name: str) -> np.ndarray:
        return self.cols.get(name, self.unused)

    def grow(self, rows: int) -> None:
        for k, col in self.cols.items():
            new = np.empty(max(rows, 2 * len(col)), col.dtype)
            new[:len(col)] = col
            self.cols[k] = new


def _parse_error(reader: _Reader, buf: np.ndarray, segs, kind: str, code: int, at: int, line: int,
                 rating_range: tuple[int, int]) -> DataFormatError:
    file_no = next(s for s in reversed(segs) if s[0] <= at)[2]
    nl = np.flatnonzero(buf[at:at + 200] == NL)
    text = bytes(buf[at:at + (nl[0] if nl.size else 200)]).decode("latin-1").rstrip("\r")
    what = {kernels.OUT_OF_SCALE: " (rating outside the scale {}-{})".format(*rating_range),
            kernels.NO_HEADER: " (a line before the first 'MovieID:' line)",
            kernels.DATE_RANGE: " (dates must lie between 1880-04-15 and 2059-09-18)"}.get(code, "")
    return DataFormatError(f"{reader.names[file_no]}, line {line}: expected 'MovieID:' or '{FORMS[kind]}', "
                           f"got {text!r}{what}")


def read_blocks(files: Iterable[tuple[str, Callable[[], BinaryIO]]], size_hint: int, kind: str = "train",
                rating_range: tuple[int, int] = (1, 5), keep_lines: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """Parse the ``MovieID:`` blocks of ``files`` ((name, opener) pairs, in order) into
    columns: movie (as :class:`Runs`, one per block), customer, and as the kind has them
    rating (int stars) and day (days since 1970, int16); ``line`` (1-based, in its file)
    with ``keep_lines``. Returns the columns and the number of files.

    WORKERS threads take turns: one reads the next CHUNK bytes of files into its own
    buffer while the others parse theirs with the compiled tokenizer (which releases the
    GIL) into their own reused columns; each then copies its rows into the output at the
    offset that follows the previous buffer's, so the columns come out in file order.
    ``size_hint`` (bytes of text, an estimate) sizes the output once.
    """
    names = ["movie", "customer"] + {"train": ["rating", "day"], "qual": ["day"], "probe": []}[kind]
    names += ["line"] if keep_lines else []
    out = _Columns(names[1:], size_hint // _SHORTEST[kind] + 1024)  # movie: runs only
    reader = _Reader(files)
    lo, hi = rating_range
    read_lock, cond = threading.Lock(), threading.Condition()
    state = {"next": 0, "assigned": 0, "done": 0, "rows": 0, "failed": False}
    results: dict[int, tuple] = {}
    errors: dict[int, BaseException] = {}

    def work():
        buf = np.empty(CHUNK + PAD, np.uint8)
        buf[CHUNK:] = NL
        own = _Columns(names, 0)
        k = None
        try:
            while True:
                with read_lock:
                    if state["failed"]:
                        return
                    segs = reader.fill(buf)
                    if not segs:
                        return
                    k = state["next"]
                    state["next"] += 1
                starts, ends, lines = (np.array([s[j] for s in segs], np.int64) for j in (0, 1, 3))
                movies = np.array([kernels.NO_MOVIE if s[4] else kernels.INHERIT for s in segs], np.int64)
                bound = int(ends[-1]) // _SHORTEST[kind] + 1
                if own.capacity < bound:
                    own = _Columns(names, bound)
                n, code, at, line, last = kernels.parse_blocks(
                    buf, starts, ends, movies, lines, KINDS[kind], lo, hi, DATE_TABLE, DATE_YEARS[0],
                    own.get("movie"), own.get("customer"), own.get("rating"), own.get("day"), own.get("line"), 0)
                if code != kernels.OK:
                    raise _parse_error(reader, buf, segs, kind, code, at, line, rating_range)
                with cond:
                    cond.wait_for(lambda: state["assigned"] == k or state["failed"])
                    if state["failed"]:
                        return
                    off = state["rows"]
                    if off + n > out.capacity:  # grow once every earlier buffer is copied
                        cond.wait_for(lambda: state["done"] == k or state["failed"])
                        if state["failed"]:
                            return
                        out.grow(off + n)
                    state["rows"] += n
                    state["assigned"] += 1
                    cond.notify_all()
                for name in names[1:]:
                    out.cols[name][off:off + n] = own.cols[name][:n]
                m = own.cols["movie"][:n]
                run = np.flatnonzero(m[1:] != m[:-1]) + 1 if n else np.zeros(0, np.int64)
                run = np.concatenate([[0], run]) if n else run
                results[k] = (run + off, m[run].copy(), last)
                with cond:
                    state["done"] += 1
                    cond.notify_all()
        except BaseException as e:
            errors[k if k is not None else state["next"]] = e
            with cond:
                state["failed"] = True
                cond.notify_all()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader.close()  # open only when a thread failed
    if errors:
        raise errors[min(errors)]
    # Rows of a file cut before its next header get the movie the previous buffer ended in.
    movie, starts, values = kernels.NO_MOVIE, [], []
    for k in sorted(results):
        run_starts, run_values, last = results[k]
        if run_values.size and run_values[0] == kernels.INHERIT:
            run_values[0] = movie
        if last != kernels.INHERIT:
            movie = last
        starts.append(run_starts)
        values.append(run_values)
    rows = state["rows"]
    cols = {k: v[:rows] for k, v in out.cols.items()}
    cols["movie"] = Runs(np.concatenate(starts or [np.zeros(0, np.int64)]).astype(np.int64),
                         np.concatenate(values or [np.zeros(0, np.int32)]).astype(np.int32), rows)
    return cols, len(reader.names)


def _movie_files(directory: Path) -> tuple[list, int]:
    entries = sorted((e.name, e.path, _text_bytes(e.name, e.stat().st_size))
                     for e in os.scandir(directory) if re.fullmatch(r"mv_\d+\.txt(\.gz)?", e.name))
    return [(path, partial(_open, path)) for _, path, _ in entries], sum(size for *_, size in entries)


def _text_bytes(name: str, size: int) -> int:
    """About how many bytes of text a file of ``size`` bytes holds (gzip: 4x, for sizing)."""
    return size * 4 if name.endswith(".gz") else size


def _open(path: str | Path) -> BinaryIO:
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb", buffering=0)


def _tar_members(path: Path) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
    # Streamed member by member: the 17,770 files never touch the disk.
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(r"mv_\d+\.txt", Path(member.name).name):
                yield f"{path}:{member.name}", partial(tar.extractfile, member)


def read_pairs(path: Path, kind: str) -> dict[str, np.ndarray]:
    """probe.txt (kind 'probe') or qualifying.txt (kind 'qual') with line numbers."""
    size = _text_bytes(path.name, path.stat().st_size)
    cols = read_blocks([(str(path), partial(_open, path))], size, kind, keep_lines=True)[0]
    cols["movie"] = cols["movie"].expand()
    return cols


def read_titles(path: Path) -> dict:
    """movie_titles: ``MovieID,YearOfRelease,Title`` (latin-1 or UTF-8; commas in titles; year NULL)."""
    titles = {}
    text = decode_text(read_bytes(path))
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
    if (root / "training_set").is_dir():
        columns, n = read_blocks(*_movie_files(root / "training_set"))
    elif (tar := find(root, "training_set.tar")) is not None:
        columns, n = read_blocks(_tar_members(tar), _text_bytes(tar.name, tar.stat().st_size))
    else:
        raise missing(root, "netflix", "training_set/ folder or training_set.tar")
    if n == 0:
        raise missing(root, "netflix", "mv_NNNNNNN.txt files in training_set")
    return _assemble(root, "netflix", columns, "movie_titles.txt")


def read_netflix_kaggle(root: str | Path) -> RawPrize:
    """Kaggle's layout: combined_data_1..4.txt hold the same ``MovieID:`` blocks."""
    root = Path(root)
    paths = [p for k in range(1, 5) if (p := find(root, f"combined_data_{k}.txt"))]
    if not paths:
        raise missing(root, "netflix_kaggle", "combined_data_N.txt files")
    size = sum(_text_bytes(p.name, p.stat().st_size) for p in paths)
    columns, _ = read_blocks([(str(p), partial(_open, p)) for p in paths], size)
    return _assemble(root, "netflix_kaggle", columns, "movie_titles.csv")


def files_of(root: Path, fmt: str) -> list[str]:
    """The source files whose size and mtime key the cache (strings: 17,770 Path objects
    cost a second)."""
    if fmt == "netflix":
        ts = root / "training_set"
        files = []
        if ts.is_dir():  # the folder's mtime changes when files are added
            files = [str(ts)] + sorted(e.path for e in os.scandir(ts))
        elif (tar := find(root, "training_set.tar")) is not None:
            files.append(str(tar))
        names = ["probe.txt", "qualifying.txt", "movie_titles.txt", "answers.csv"]
    else:
        files = [str(p) for k in range(1, 5) if (p := find(root, f"combined_data_{k}.txt"))]
        names = ["probe.txt", "qualifying.txt", "movie_titles.csv", "answers.csv"]
    return files + [str(p) for n in names if (p := find(root, n))]


def load_netflix(root: str | Path, format: str = "netflix", cache_dir: str | Path | None = None,
                 rebuild: bool = False):
    """The Netflix Prize folder ``root`` (``format``: "netflix" or "netflix_kaggle"), cached.

    The Prize data cannot be downloaded from Netflix any more: a missing folder raises an
    error that lists the files the layout needs and where copies are found.
    """
    from .cache import load_prize

    root = Path(root).expanduser()
    if not root.exists():
        raise missing(root, format, "such folder")
    return load_prize(root, format=format, cache_dir=cache_dir, rebuild=rebuild)
