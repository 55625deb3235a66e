import numpy as np
import pytest

from prizenet.data import DataFormatError, load_prize, read_submission, score, write_submission


def test_round_trip_clipped_and_gzipped(synthetic, tmp_path):
    d = load_prize(synthetic)
    movies = d.item_ids[d.qual_item]
    pred = np.linspace(0, 6, len(movies))
    for name in ("s.txt", "s.txt.gz"):
        write_submission(tmp_path / name, movies, pred)
        got_movies, got = read_submission(tmp_path / name)
        assert np.array_equal(got_movies, movies)
        assert np.allclose(got, np.clip(pred, 1, 5), atol=5e-4)
    lines = (tmp_path / "s.txt").read_text().splitlines()
    qual = (synthetic / "qualifying.txt").read_text().splitlines()
    assert len(lines) == len(qual)
    assert [x for x in lines if x.endswith(":")] == [x for x in qual if x.endswith(":")]


def test_score_matches_a_direct_computation(synthetic, tmp_path):
    d = load_prize(synthetic)
    rng = np.random.default_rng(0)
    pred = np.clip(d.qual_rating + rng.normal(0, 0.5, len(d.qual_rating)), 1, 5)
    write_submission(tmp_path / "s.txt", d.item_ids[d.qual_item], pred)
    r = score(tmp_path / "s.txt", synthetic / "answers.csv", reference=0.9514)
    _, stored = read_submission(tmp_path / "s.txt")
    quiz = d.qual_part == 0
    assert r["quiz_rmse"] == pytest.approx(np.sqrt(np.mean((stored[quiz] - d.qual_rating[quiz]) ** 2)))
    assert r["test_rmse"] == pytest.approx(np.sqrt(np.mean((stored[~quiz] - d.qual_rating[~quiz]) ** 2)))
    assert r["improvement_pct"] == pytest.approx(100 * (0.9514 - r["quiz_rmse"]) / 0.9514)
    assert score(tmp_path / "s.txt", synthetic / "answers.csv")["improvement_pct"] is None  # no reference, none


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls[:-1], r"block \d+ is '\d+:' with \d+ predictions; expected '\d+:' with \d+"),
    (lambda ls: ls + ["99999:", "3.0"], r"\d+ movie blocks .* expected \d+ blocks"),
    (lambda ls: [ls[0], "abc"] + ls[2:], r"line 2: expected .*prediction"),
    (lambda ls: _swap_first_blocks(ls), r"movie block 1 is"),
])
def test_malformed_submissions_name_the_movie_block(synthetic, tmp_path, edit, message):
    d = load_prize(synthetic)
    write_submission(tmp_path / "s.txt", d.item_ids[d.qual_item], np.full(len(d.qual_item), 3.6))
    lines = (tmp_path / "s.txt").read_text().splitlines()
    (tmp_path / "s.txt").write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(DataFormatError, match=message):
        score(tmp_path / "s.txt", synthetic / "answers.csv")


def _swap_first_blocks(lines):
    heads = [k for k, x in enumerate(lines) if x.endswith(":")]
    a, b, c = heads[0], heads[1], heads[2]
    return lines[b:c] + lines[a:b] + lines[c:]


def test_writer_refuses_nan_and_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_submission(tmp_path / "s.txt", np.array([1, 1]), np.array([3.0, np.nan]))
    with pytest.raises(ValueError, match="2 predictions for 3"):
        write_submission(tmp_path / "s.txt", np.array([1, 1, 2]), np.array([3.0, 3.0]))
    assert not (tmp_path / "s.txt").exists()
