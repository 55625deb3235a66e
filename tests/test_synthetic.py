import hashlib

import numpy as np

from prizenet.data import load_prize
from prizenet.data.synthetic import generate, write_prize


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    write_prize(tmp_path / "a", 300, 80, 6000, seed=5)
    write_prize(tmp_path / "b", 300, 80, 6000, seed=5)
    write_prize(tmp_path / "c", 300, 80, 6000, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_heavy_tails_dates_and_planted_biases():
    cols = generate(5000, 800, 200_000, seed=0)
    assert len(np.unique(cols["customer"].astype(np.int64) * 1000 + cols["movie"])) == 200_000
    per_item = np.bincount(cols["movie"])[1:]
    per_user = np.unique(cols["customer"], return_counts=True)[1]
    assert per_item.max() > 20 * np.median(per_item) and per_user.max() > 10 * np.median(per_user)
    days = cols["day"].astype("datetime64[D]")
    assert str(days.min()) >= "1998-10-01" and str(days.max()) <= "2005-12-31"
    assert set(np.unique(cols["rating"])) == {1, 2, 3, 4, 5}
    # Item means spread far beyond what noise alone gives: planted item biases.
    means = np.bincount(cols["movie"], weights=cols["rating"])[1:] / np.maximum(per_item, 1)
    assert means[per_item > 200].std() > 0.3


def test_loads_with_its_answer_key(synthetic):
    d = load_prize(synthetic)
    assert d.has_answers() and set(np.unique(d.qual_part)) == {0, 1}
