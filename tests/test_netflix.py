import gzip
import shutil
import tarfile

import numpy as np
import pytest

from conftest import shared
from prizenet.data import DataFormatError, load_prize
from prizenet.data.netflix import read_netflix, read_netflix_kaggle, read_titles


def summary(path, **kw):
    return load_prize(path, **kw).summary()


def test_original_layout_matches_the_generator(synthetic):
    d = load_prize(synthetic)
    s = d.summary()
    assert s["format"] == "netflix" and s["answers_known"]
    lines = sum(len(p.read_text().splitlines()) - 1 for p in (synthetic / "training_set").iterdir())
    assert s["ratings"] == lines
    assert s["probe"] == sum(1 for x in (synthetic / "probe.txt").read_text().splitlines() if not x.endswith(":"))
    assert d.meta["epoch_date"] == "1998-10-01"  # Netflix day 0
    # probe rows point at ratings whose (user, movie) are the probe file's, in its order
    probe = [x for x in (synthetic / "probe.txt").read_text().splitlines()]
    movie, pairs = None, []
    for x in probe:
        if x.endswith(":"):
            movie = int(x[:-1])
        else:
            pairs.append((int(x), movie))
    got = list(zip(d.user_ids[d.user[d.probe_rows]].tolist(), d.item_ids[d.item[d.probe_rows]].tolist()))
    assert got == pairs


def test_tar_gz_and_kaggle_layouts_give_the_same_data(synthetic, tmp_path):
    base = load_prize(synthetic)
    tar_dir = tmp_path / "tar"
    tar_dir.mkdir()
    with tarfile.open(tar_dir / "training_set.tar", "w") as tar:
        tar.add(synthetic / "training_set", arcname="training_set")
    for name in ("probe.txt", "qualifying.txt", "movie_titles.txt"):
        with open(synthetic / name, "rb") as f, gzip.open(tar_dir / f"{name}.gz", "wb") as g:
            g.write(f.read())
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    files = sorted((synthetic / "training_set").iterdir())
    half = len(files) // 2
    for k, group in enumerate([files[:half], files[half:]], 1):
        (kaggle / f"combined_data_{k}.txt").write_bytes(b"".join(p.read_bytes() for p in group))
    for name in ("probe.txt", "qualifying.txt"):
        shutil.copy(synthetic / name, kaggle / name)
    shutil.copy(synthetic / "movie_titles.txt", kaggle / "movie_titles.csv")
    for other, fmt in ((tar_dir, "netflix"), (kaggle, "netflix_kaggle")):
        d = load_prize(other)
        assert d.meta["format"] == fmt
        for col in ("user", "item", "rating_x2", "day", "probe_rows", "qual_user", "qual_item", "qual_day",
                    "user_ids", "item_ids", "nu_indptr", "nu_items"):
            assert np.array_equal(getattr(d, col), getattr(base, col)), (fmt, col)


def test_kaggle_file_read_in_chunks_keeps_the_movie_across_cuts(synthetic, tmp_path, monkeypatch):
    import prizenet.data.netflix as nf
    kaggle = tmp_path / "k"
    kaggle.mkdir()
    (kaggle / "combined_data_1.txt").write_bytes(
        b"".join(p.read_bytes() for p in sorted((synthetic / "training_set").iterdir())))
    for name in ("probe.txt", "qualifying.txt"):
        shutil.copy(synthetic / name, kaggle / name)
    whole = read_netflix_kaggle(kaggle)
    monkeypatch.setattr(nf, "CHUNK", 997)  # cut mid-block, also right after headers
    pieces = read_netflix_kaggle(kaggle)
    assert np.array_equal(whole.train_item.expand(), pieces.train_item.expand())
    assert np.array_equal(whole.train_user, pieces.train_user)


def test_missing_files_say_what_layout_is_expected(synthetic, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot tell the data format.*training_set.*Kaggle"):
        load_prize(tmp_path)
    (synthetic / "probe.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"no probe\.txt.*ROOT/training_set/mv_0000001\.txt.*kaggle"):
        load_prize(synthetic)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_prize(tmp_path / "nowhere")


def test_malformed_training_line_names_the_file_and_line(synthetic):
    path = synthetic / "training_set" / "mv_0000007.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",", ";", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"mv_0000007\.txt, line 4: expected .*CustomerID,Rating,YYYY-MM-DD"):
        load_prize(synthetic)


def test_rating_outside_the_scale_is_refused(synthetic):
    path = synthetic / "training_set" / "mv_0000002.txt"
    lines = path.read_text().splitlines()
    c, _, d = lines[1].split(",")
    lines[1] = f"{c},0,{d}"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"mv_0000002\.txt, line 2.*outside the scale 1-5"):
        load_prize(synthetic)


def test_qualifying_pair_present_in_training_is_refused(synthetic):
    lines = (synthetic / "training_set" / "mv_0000003.txt").read_text().splitlines()
    cust, _, date = lines[1].split(",")
    q = (synthetic / "qualifying.txt").read_text()
    (synthetic / "qualifying.txt").write_text(f"3:\n{cust},{date}\n" + q)
    (synthetic / "answers.csv").unlink()
    with pytest.raises(DataFormatError, match=rf"qualifying\.txt, line 2: user {cust} and movie 3 also have a rating"):
        load_prize(synthetic)


def test_probe_pair_missing_from_training_is_refused(synthetic):
    p = (synthetic / "probe.txt").read_text()
    (synthetic / "probe.txt").write_text(p + "3:\n99999999\n")
    with pytest.raises(DataFormatError, match=r"probe\.txt, line \d+: user 99999999 and movie 3 are not in the training set"):
        load_prize(synthetic)


def test_users_and_items_only_in_qualifying_are_allowed_and_counted(synthetic):
    q = (synthetic / "qualifying.txt").read_text()
    (synthetic / "qualifying.txt").write_text(q + "99999:\n77777777,2005-06-01\n")
    (synthetic / "answers.csv").unlink()
    s = load_prize(synthetic).summary()
    assert s["users_only_in_qualifying"] == 1 and s["items_only_in_qualifying"] == 1


def test_titles_with_commas_null_years_and_latin1(tmp_path):
    p = tmp_path / "movie_titles.txt"
    p.write_bytes("1,2003,Dinosaur Planet\n2,NULL,Pok\xe9mon, the Movie, Part 2\n".encode("latin-1"))
    assert read_titles(p) == {1: (2003, "Dinosaur Planet"), 2: (0, "Pok\xe9mon, the Movie, Part 2")}
    p.write_text("1,2003,ok\nthree,2004,bad\n")
    with pytest.raises(DataFormatError, match=r"movie_titles\.txt, line 2: expected 'MovieID,YearOfRelease,Title'"):
        read_titles(p)


def test_real_prize_layout_ml1m_half_counts_match_its_readme():
    s = summary(shared("prize/ml1m-half"))
    assert (s["ratings"], s["users"], s["items"], s["probe"], s["qualifying"]) == (469_614, 2_998, 3_615, 9_081, 17_901)
    assert s["items_only_in_qualifying"] == 7
    s = summary(shared("prize/ml100k"))
    assert (s["ratings"], s["users"], s["items"], s["probe"], s["qualifying"]) == (94_322, 943, 1_682, 2_809, 5_678)


def test_real_netflix_training_files_and_titles(tmp_path):
    root = shared("netflix")
    # The ten genuine files lack probe/qualifying: give them empty ones to read the ratings.
    (tmp_path / "probe.txt").write_text("")
    (tmp_path / "qualifying.txt").write_text("")
    (tmp_path / "training_set").symlink_to(root / "training_set")
    raw = read_netflix(tmp_path)
    counts = np.bincount(raw.train_item)[1:]
    assert counts.tolist() == [547, 145, 2012, 142, 1140, 1019, 93, 14910, 95, 249]
    assert (raw.train_user[0], raw.train_rating[0], str(raw.train_day[0].astype("datetime64[D]"))) == (1488844, 3, "2005-09-06")
    titles = read_titles(root / "movie_titles.txt")
    assert len(titles) == 17_770 and titles[1] == (2003, "Dinosaur Planet")
    assert sum(1 for y, _ in titles.values() if y == 0) == 7
    assert any("," in t for _, t in titles.values())
