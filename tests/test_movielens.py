import numpy as np
import pandas as pd
import pytest

from conftest import shared
from prizenet.data import DataFormatError, load_prize
from prizenet.data.movielens import read_movielens
from prizenet.data.tabular import read_table

ROWS = [(1, 10, 4, 978300760), (1, 20, 5, 978300761), (2, 10, 3, 978300762), (2, 30, 1, 978300763)]


def test_movielens_100k_1m_and_csv_releases_read_alike(tmp_path):
    (tmp_path / "100k").mkdir()
    (tmp_path / "100k" / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS))
    (tmp_path / "1m").mkdir()
    (tmp_path / "1m" / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS))
    (tmp_path / "25m").mkdir()
    (tmp_path / "25m" / "ratings.csv").write_bytes(
        ("userId,movieId,rating,timestamp\r\n" + "".join(f"{u},{i},{r}.0,{t}\r\n" for u, i, r, t in ROWS)).encode())
    for name in ("100k", "1m", "25m"):
        table, _, scale = read_movielens(tmp_path / name)
        assert table.user.tolist() == [1, 1, 2, 2] and table.item.tolist() == [10, 20, 10, 30]
        assert table.rating.tolist() == [4, 5, 3, 1] and scale == (1.0, 5.0)
        assert str(np.int64(table.day[0]).astype("datetime64[D]")) == "2000-12-31"


def test_half_stars_and_gzip(tmp_path):
    import gzip
    with gzip.open(tmp_path / "ratings.csv.gz", "wt") as f:
        f.write("userId,movieId,rating,timestamp\n1,1,0.5,0\n1,2,3.5,0\n")
    table, _, scale = read_movielens(tmp_path)
    assert table.rating.tolist() == [0.5, 3.5] and scale == (0.5, 5.0)


def test_bad_value_names_file_and_line(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,0\n1,2,four,0\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv, line 3: column 'rating' should be a number, got 'four'"):
        read_movielens(tmp_path)


def test_generic_csv_tsv_parquet_with_string_ids_and_dates(tmp_path):
    frame = pd.DataFrame({"who": ["ann", "bob", "ann"], "what": [7, 7, 9], "stars": [4.0, 2.5, 3.0],
                          "when": ["2004-01-02", "2004-01-03", "2004-02-01"]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    paths = [tmp_path / "r.csv", tmp_path / "r.tsv"]
    try:
        frame.to_parquet(tmp_path / "r.parquet")
        paths.append(tmp_path / "r.parquet")
    except ImportError:
        pass  # pyarrow is optional
    for p in paths:
        t = read_table(p, "who", "what", "stars", date_col="when")
        assert t.user.tolist() == ["ann", "bob", "ann"] and t.rating.tolist() == [4.0, 2.5, 3.0]
        assert str(np.int64(t.day[2]).astype("datetime64[D]")) == "2004-02-01"
    with pytest.raises(DataFormatError, match=r"expected columns \['user', 'item', 'rating'\]"):
        read_table(tmp_path / "r.csv")
    frame.assign(what=["x", "x", "y"]).to_csv(tmp_path / "s.csv", index=False)  # string item ids: refused
    with pytest.raises(DataFormatError, match=r"s.csv, line 2: column 'what' should be an integer id, got 'x'"):
        read_table(tmp_path / "s.csv", "who", "what", "stars", date_col="when")


def test_csv_through_load_prize_gets_a_split_with_answers(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"user": rng.integers(0, 100, n), "item": rng.integers(0, 80, n),
                          "rating": rng.integers(1, 6, n), "timestamp": rng.integers(0, 10**9, n)})
    frame = frame.drop_duplicates(["user", "item"])
    frame.to_csv(tmp_path / "mine.csv", index=False)
    d = load_prize(tmp_path / "mine.csv", format="csv", columns={"timestamp_col": "timestamp"})
    s = d.summary()
    assert s["ratings"] + s["qualifying"] == len(frame) and s["answers_known"]
    assert set(np.unique(d.qual_part)) == {0, 1}


def test_real_movielens_latest_small():
    root = shared("movielens/ml-latest-small")
    table, titles, scale = read_movielens(root)
    assert len(table.rating) == 100_836 and scale == (0.5, 5.0)
    assert np.unique(table.user).size == 610 and np.unique(table.item).size == 9_724
    assert titles[1][1].startswith("Toy Story") and titles[1][0] == 1995
    s = load_prize(root).summary()
    assert s["ratings"] + s["qualifying"] == 100_836


def _zip_release(tmp_path, name):
    """A tiny MovieLens-style zip served from a file:// URL (tests never download)."""
    import hashlib
    import zipfile

    src = tmp_path / "src.zip"
    rows = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{(u + m) % 5 + 1}.0,{1_000_000_000 + 86400 * (u * 7 + m)}\n" for u in range(1, 30) for m in range(1, 25))
    with zipfile.ZipFile(src, "w") as z:
        z.writestr(f"{name}/ratings.csv", rows)
    return src, hashlib.md5(src.read_bytes()).hexdigest()


def test_download_checks_the_md5_and_unpacks(tmp_path, monkeypatch):
    from prizenet.data import movielens

    src, md5 = _zip_release(tmp_path, "ml-test")
    monkeypatch.setattr(movielens, "URL", src.as_uri())  # no {name}: every release is this zip
    monkeypatch.setitem(movielens.MD5, "ml-test", md5)
    data = movielens.load_movielens("ml-test", tmp_path / "root")
    assert (tmp_path / "root" / "ml-test" / "ratings.csv").is_file()
    assert data.n_users == 29 and len(data.qual_user) > 0
    assert not [p for p in (tmp_path / "root").iterdir() if p.name.startswith(".")]  # no temp left


def test_download_refuses_a_bad_checksum(tmp_path, monkeypatch):
    from prizenet.data import movielens

    src, _ = _zip_release(tmp_path, "ml-test")
    monkeypatch.setattr(movielens, "URL", src.as_uri())
    monkeypatch.setitem(movielens.MD5, "ml-test", "0" * 32)
    with pytest.raises(OSError, match="does not match the published"):
        movielens.load_movielens("ml-test", tmp_path / "root")
    assert not (tmp_path / "root" / "ml-test").exists()


def test_no_network_error_says_where_to_put_the_files(tmp_path, monkeypatch):
    from prizenet.data import movielens

    monkeypatch.setattr(movielens, "URL", (tmp_path / "absent" / "{name}.zip").as_uri())
    with pytest.raises(FileNotFoundError, match=r"could not download .* unzip it into"):
        movielens.load_movielens("ml-test", tmp_path / "root")
