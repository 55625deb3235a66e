"""MovieLens releases: 100K (u.data), 1M and 10M (ratings.dat), 20M/25M/32M/latest (ratings.csv).

| release            | ratings file  | separator | header | rating scale |
|--------------------|---------------|-----------|--------|--------------|
| ml-100k            | u.data        | tab       | no     | 1-5          |
| ml-1m, ml-10m      | ratings.dat   | ``::``    | no     | 1-5, 0.5-5   |
| ml-20m ... ml-32m, | ratings.csv   | comma     | yes    | 0.5-5        |
| ml-latest(-small)  |               |           |        |              |

MovieLens has no probe or qualifying set; :mod:`prizenet.data.splits` builds them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .netflix import decode_text, find, read_bytes
from .tabular import Table, read_table

URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# MD5 of each release's zip as GroupLens publishes it (the .zip.md5 beside each zip). For a
# release not listed, the published .md5 file is fetched and checked instead.
MD5 = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-10m": "ce571fd55effeba0271552578f2648bd",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}
# The folder each zip unpacks to (ml-10m's is named after its internal version).
FOLDER = {"ml-10m": "ml-10M100K"}

FILES = ("ratings.csv", "ratings.dat", "u.data")
WHERE = "MovieLens releases are at https://grouplens.org/datasets/movielens/"


def ratings_file(root: Path) -> Path | None:
    for name in FILES:
        if (p := find(root, name)) is not None:
            return p
    return None


TITLE_FILES = ("movies.csv", "movies.dat", "u.item")


def files_read(root: Path) -> list[Path]:
    """The files :func:`read_movielens` reads in ``root`` (they key its cache)."""
    ratings = ratings_file(root)
    titles = next((p for n in TITLE_FILES if (p := find(root, n)) is not None), None)
    return [p for p in (ratings, titles) if p is not None]


def read_movielens(root: str | Path) -> tuple[Table, dict, tuple[float, float]]:
    """(ratings table, titles {item: (year, title)}, rating scale) of a MovieLens folder."""
    root = Path(root)
    path = ratings_file(root)
    if path is None:
        raise FileNotFoundError(
            f"{root}: no MovieLens ratings file: expected one of {', '.join(FILES)} (each may be .gz). {WHERE}"
        )
    name = path.name.removesuffix(".gz")
    if name == "ratings.csv":
        table = read_table(path, "userId", "movieId", "rating", timestamp_col="timestamp", string_users=False)
    elif name == "ratings.dat":  # '::' would send pandas to its slow Python engine: make it a tab
        data = read_bytes(path).replace(b"::", b"\t")
        table = read_table(path, 0, 1, 2, timestamp_col=3, sep="\t", header=False, data=data, string_users=False)
    else:
        table = read_table(path, 0, 1, 2, timestamp_col=3, sep="\t", header=False, string_users=False)
    r = table.rating
    scale = (0.5, 5.0) if r.size and (r.min() < 1 or (r != np.floor(r)).any()) else (1.0, 5.0)
    return table, read_titles(root), scale


def read_titles(root: Path) -> dict:
    """Titles and years from movies.csv, movies.dat or u.item, when present."""
    if (p := find(root, "movies.csv")) is not None:
        frame = pd.read_csv(p, usecols=[0, 1], encoding="utf-8")
    elif (p := find(root, "movies.dat")) is not None:
        text = decode_text(read_bytes(p)).replace("::", "\t")
        frame = pd.read_csv(io.StringIO(text), sep="\t", header=None, usecols=[0, 1], quoting=3)
    elif (p := find(root, "u.item")) is not None:
        frame = pd.read_csv(io.StringIO(decode_text(read_bytes(p))), sep="|", header=None, usecols=[0, 1])
    else:
        return {}
    ids, titles = frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].astype(str)
    years = pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").fillna(0).astype(int)
    return {int(i): (int(y), t) for i, y, t in zip(ids, years, titles)}


def load_movielens(name: str, root: str | Path, download: bool = True, cache_dir: str | Path | None = None,
                   holdout: str = "recent", holdout_k: int = 9, holdout_fraction: float = 0.1, seed: int = 0,
                   rebuild: bool = False):
    """MovieLens release ``name`` (e.g. "ml-1m") under ``root``, downloaded when absent.

    Looks for ``root/<name>`` (or ``root`` itself) holding the ratings file; otherwise, with
    ``download``, fetches the zip from GroupLens, checks its MD5 and unpacks it there.
    """
    from .cache import load_prize

    root = Path(root).expanduser()
    folder = next((p for p in (root / name, root / FOLDER.get(name, name), root) if ratings_file(p)), None)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"{name} not found: expected {root / name}/ with one of {', '.join(FILES)}. "
                f"Download {URL.format(name=name)} and unzip it into {root}, or set download=true.")
        folder = fetch(name, root)
    return load_prize(folder, format="movielens", cache_dir=cache_dir, holdout=holdout, holdout_k=holdout_k,
                      holdout_fraction=holdout_fraction, seed=seed, name=name, rebuild=rebuild)


def fetch(name: str, root: Path) -> Path:
    """Download, verify and unpack a MovieLens zip into ``root``; returns the unpacked folder."""
    import hashlib
    import shutil
    import tempfile
    import urllib.error
    import urllib.request
    import zipfile

    from tqdm.auto import tqdm

    url = URL.format(name=name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        try:
            expected = MD5.get(name) or urllib.request.urlopen(url + ".md5", timeout=30).read().decode().split()[0]
            md5 = hashlib.md5()
            with urllib.request.urlopen(url, timeout=30) as response, open(tmp / "data.zip", "wb") as f, \
                    tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                         unit_divisor=1024, desc=f"downloading {name}", disable=None) as bar:  # terminals only
                while chunk := response.read(1 << 20):
                    md5.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as e:
            raise FileNotFoundError(
                f"could not download {url} ({e}). Without network access, download it elsewhere and unzip "
                f"it into {root}, so that {root / FOLDER.get(name, name)}/ holds its ratings file.") from e
        if md5.hexdigest() != expected:
            raise OSError(f"{url}: MD5 {md5.hexdigest()} does not match the published {expected}; "
                          f"the download is corrupt or the release changed. Nothing was unpacked.")
        with zipfile.ZipFile(tmp / "data.zip") as z:
            z.extractall(tmp / "unzipped")
        (inner,) = [p for p in (tmp / "unzipped").iterdir() if p.is_dir()]
        target = root / inner.name
        if not target.exists():
            inner.rename(target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
