import io

import numpy as np
import pytest

from prizenet.data.fastio import (DataFormatError, block_bytes, body_lines, civil_from_days, const_field,
                                  date_field, days_from_civil, fixed_decimal_field, format_uint,
                                  parse_predictions, to_array)
from prizenet.data.netflix import read_blocks


def parse(text: bytes, kind: str, **kw):
    """One in-memory file "f.txt": predictions through fastio, the rest through the tokenizer."""
    if kind == "pred":
        movie, value = parse_predictions(to_array(text), "f.txt")
        return {"movie": movie, "value": value}
    return files({"f.txt": text}, kind, **kw)


def files(named: dict[str, bytes], kind: str, **kw) -> dict:
    cols, _ = read_blocks([(n, lambda t=t: io.BytesIO(t)) for n, t in named.items()],
                          sum(map(len, named.values())), kind, **kw)
    cols["movie"] = np.asarray(cols["movie"])
    return cols


def test_training_lines_with_crlf_and_several_blocks():
    b = parse(b"1:\r\n1488844,3,2005-09-06\r\n822109,5,2005-05-13\r\n\n12:\n7,1,1999-12-31", "train")
    assert b["movie"].tolist() == [1, 1, 12]
    assert b["customer"].tolist() == [1488844, 822109, 7]
    assert b["rating"].tolist() == [3, 5, 1]
    assert (b["day"].astype("datetime64[D]").astype(str)).tolist() == ["2005-09-06", "2005-05-13", "1999-12-31"]


def test_probe_qualifying_and_predictions():
    p = parse(b"5:\n10\n20\n6:\n30\n", "probe", keep_lines=True)
    assert p["movie"].tolist() == [5, 5, 6] and p["customer"].tolist() == [10, 20, 30]
    assert p["line"].tolist() == [2, 3, 5]
    q = parse(b"5:\n10,2005-12-31\n", "qual")
    assert q["customer"].tolist() == [10] and str(q["day"][0].astype("datetime64[D]")) == "2005-12-31"
    v = parse(b"5:\n3.712\n4\n0.5\n", "pred")
    assert v["movie"].tolist() == [5, 5, 5] and np.allclose(v["value"], [3.712, 4, 0.5])


@pytest.mark.parametrize("text, kind, line, hint", [
    (b"1:\n12,3,2005-09-06\n12;3;2005-09-06\n", "train", 3, "CustomerID,Rating,YYYY-MM-DD"),
    (b"1:\n12,3,2005-13-06\n", "train", 2, "CustomerID,Rating,YYYY-MM-DD"),
    (b"1:\n12,3,2005-02-30\n", "train", 2, "'12,3,2005-02-30'"),
    (b"1:\n12,3,2005-01-0\n", "train", 2, "CustomerID,Rating,YYYY-MM-DD"),
    (b"1:\n12,3,2005-01-06,x\n", "train", 2, "CustomerID,Rating,YYYY-MM-DD"),
    (b"1:\n1234567890,3,2005-01-06\n", "train", 2, "CustomerID,Rating,YYYY-MM-DD"),
    (b"1:\n12,7,2005-01-06\n", "train", 2, "outside the scale 1-5"),
    (b"1:\n12,3,2075-01-06\n", "train", 2, "between 1880-04-15 and 2059-09-18"),
    (b"12,3,2005-01-06\n", "train", 1, "before the first 'MovieID:'"),
    (b"x:\n12\n", "probe", 1, "MovieID:"),
    (b"1:\n12\n1a\n", "probe", 3, "CustomerID"),
    (b"1:\n12,2005/01/01\n", "qual", 2, "CustomerID,YYYY-MM-DD"),
    (b"1:\n3.5\nabc\n", "pred", 3, "prediction"),
    (b"1:\n3.\n", "pred", 2, "prediction"),
])
def test_malformed_lines_name_file_line_and_form(text, kind, line, hint):
    with pytest.raises(DataFormatError, match=rf"f\.txt, line {line}:.*") as e:
        parse(text, kind)
    assert hint in str(e.value)


def test_line_numbers_are_each_files_own():
    named = {"a.txt": b"1:\n5,3,2005-01-01\n", "b.txt": b"2:\n6,3,2005-01-01\n6,x,2005-01-01\n"}
    with pytest.raises(DataFormatError, match=r"b\.txt, line 3"):
        files(named, "train")
    # a file's lines before its first header are an error even after another file's block
    with pytest.raises(DataFormatError, match=r"b\.txt, line 1: .*before the first 'MovieID:'"):
        files({"a.txt": b"1:\n5,3,2005-01-01", "b.txt": b"6,3,2005-01-01\n"}, "train")


def test_dates_round_trip_over_the_prize_years_and_leap_days():
    days = np.arange(days_from_civil(np.array([1998]), np.array([1]), np.array([1]))[0], 14000)
    y, m, d = civil_from_days(days)
    assert np.array_equal(days_from_civil(y, m, d), days)
    ref = np.array(["2000-02-29", "2005-12-31"], dtype="datetime64[D]").astype(np.int64)
    assert np.array_equal(days_from_civil(np.array([2000, 2005]), np.array([2, 12]), np.array([29, 31])), ref)


def test_formatting_round_trips_through_the_parser():
    rng = np.random.default_rng(0)
    cust = rng.integers(1, 2_649_430, 1000)
    stars = rng.integers(1, 6, 1000)
    day = rng.integers(10000, 13000, 1000)
    movie = np.sort(rng.integers(1, 30, 1000))
    body, ends = body_lines([format_uint(cust), const_field(",", 1000),
                             ((stars[:, None] + 48).astype(np.uint8), np.ones(1000, np.int64)),
                             const_field(",", 1000), date_field(day)])
    text = b"".join(block_bytes(movie, body, ends))
    b = parse(text, "train")
    assert np.array_equal(b["movie"], movie) and np.array_equal(b["customer"], cust)
    assert np.array_equal(b["rating"], stars) and np.array_equal(b["day"], day)
    mat, _ = fixed_decimal_field(np.array([0.5, 3.7126, 5.0]))
    assert mat.tobytes() == b"0.5003.7135.000"
