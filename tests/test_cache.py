import os

import numpy as np
import pytest

import prizenet.data.cache as cache
from prizenet.data import load_prize


def test_second_load_reuses_the_cache_memory_mapped(synthetic, monkeypatch):
    first = load_prize(synthetic)
    calls = []
    monkeypatch.setattr(cache, "read_raw", lambda *a: calls.append(a))
    again = load_prize(synthetic)
    assert calls == [] and again.meta["cache"] == first.meta["cache"]
    assert isinstance(again.item, np.memmap) and isinstance(again.rating_x2, np.memmap)


def test_changed_source_file_rebuilds(synthetic):
    first = load_prize(synthetic)
    path = synthetic / "training_set" / "mv_0000005.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # drop one rating
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_prize(synthetic)
    assert second.meta["cache"] != first.meta["cache"]
    assert second.n_ratings == first.n_ratings - 1


def test_failed_build_leaves_nothing_behind(synthetic, tmp_path):
    (synthetic / "qualifying.txt").write_text("1:\nnot a line\n")
    with pytest.raises(Exception):
        load_prize(synthetic, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []


def test_interrupted_save_leaves_no_cache(synthetic, tmp_path, monkeypatch):
    from prizenet.data.prize import ArrayWriter

    def boom(self, data):  # the training columns are being written; the rest never is
        (self.directory / "item.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(ArrayWriter, "finish", boom)
    with pytest.raises(KeyboardInterrupt):
        load_prize(synthetic, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []
