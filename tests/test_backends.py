"""The compiled backends against each other: Triton (in its interpreter, programs one after
another) equals the sequential numba kernel on the same order; the Triton kernels compile
for Hopper without spilling; the backends' shared pieces (runs, launch order, the loader's
bounds). The models' own per-backend behaviour tests are in test_models.py."""

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import HAS_TRITON
from prizenet import kernels
from prizenet.data import Batch, RatingLoader, load_prize
from prizenet.data.synthetic import write_prize
from prizenet.models import SVD, Integrated, SVDpp, TimeSVDpp, model_inputs
from prizenet.models.tables import SparseTable

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed (pip install -e ".[dev]")')
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A few hundred training ratings, whole users in a shuffled order, with their bounds."""
    out = tmp_path_factory.mktemp("small")
    write_prize(out, users=60, items=40, ratings=700, seed=5)
    data = load_prize(out)
    rows = data.fit_rows(False)
    loader = RatingLoader(data, rows, 4096, torch.device("cpu"), seed=1, group_by="user")
    batch = loader.whole_epoch()
    assert 200 <= len(batch) <= 700 and batch.bounds is not None
    return data, rows, batch


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


@needs_triton
@pytest.mark.parametrize("cls, kw", [(SVD, {}), (SVD, {"biased": False}), (SVDpp, {}), (TimeSVDpp, {}),
                                     (TimeSVDpp, {"per_day_factors": True}), (Integrated, {"k": 12})],
                         ids=["svd", "svd-unbiased", "svdpp", "timesvdpp", "timesvdpp-per-day", "integrated"])
def test_triton_equals_numba_on_the_same_order(small, cls, kw):
    data, rows, batch = small
    torch.manual_seed(0)
    model = cls(**model_inputs(cls, data, rows), n_factors=20, **kw)
    with torch.no_grad():  # every term non-zero, so every update is compared
        for t in model.modules():
            if isinstance(t, SparseTable):
                t.weight.normal_(0, 0.05)
    twin, start = copy.deepcopy(model), copy.deepcopy(model)
    for _ in range(2):
        sse_numba = model.sgd_epoch(batch, 1.5, "numba")
        sse_triton = twin.sgd_epoch(batch, 1.5, "triton")
    assert relative(sse_triton, sse_numba) <= 1e-6
    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
        assert relative(b, a) <= 1e-6, name
    # every table the model learns has moved (an unbiased MF has no biases to learn)
    moved = {name for name, a in model.named_parameters() if not torch.equal(a, start.get_parameter(name))}
    fixed = {"bu.weight", "bi.weight"} if kw.get("biased") is False else set()
    assert moved == {name for name, _ in model.named_parameters()} - fixed


@needs_triton
def test_triton_kernels_compile_for_hopper_without_spills():
    # triton.compile for sm_90 with the wheel's ptxas, in a process without the interpreter.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-m", "prizenet.kernels.triton.aot", "90", "200"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert set(report) == {"svd[BIASED=True]", "svd[BIASED=False]", "svdpp", "timesvdpp[PER_DAY=False]",
                           "timesvdpp[PER_DAY=True]", "integrated"}
    for name, used in report.items():
        assert used["STACK"] == 0 and used["LOCAL"] == 0, (name, used)  # a spill lands in local memory
        assert 0 < used["REG"] <= 255, (name, used)


@needs_triton
def test_the_gpu_launches_the_heaviest_users_first_and_the_rest_in_order():
    from prizenet.kernels.triton import heavy_first, launch_order

    counts = torch.tensor([3, 9, 1, 9, 4, 2, 7])
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    order = torch.tensor([5, 0, 6, 2, 1, 4, 3])  # the epoch's shuffle
    got = heavy_first(bounds, order, heavy=3)
    assert got[:3].tolist() in ([1, 3, 6], [3, 1, 6]) and got[3:].tolist() == [5, 0, 2, 4]
    assert sorted(heavy_first(bounds, order).tolist()) == list(range(7))
    assert torch.equal(launch_order(bounds, order), order)  # in the interpreter: the epoch's order


def test_runs_cut_wherever_the_user_changes():
    user = torch.tensor([4, 4, 1, 7, 7, 7, 4])
    assert kernels.runs(user).tolist() == [0, 2, 3, 6, 7]
    assert kernels.runs(user[:0]).tolist() == [0]


def test_the_grouped_loader_gives_runs_and_their_order_without_moving_a_rating(small):
    data, rows, batch = small
    assert torch.equal(batch.bounds, kernels.runs(batch.user))  # the stored rows: one run per user
    users = batch.user[batch.bounds[:-1]]
    assert len(users.unique()) == len(users) and sorted(batch.order.tolist()) == list(range(len(users)))
    loader = RatingLoader(data, rows, 4096, torch.device("cpu"), seed=1, group_by="user")
    first = loader.whole_epoch()
    assert torch.equal(first.order, batch.order)  # the same seed and epoch: the same shuffle
    # ... which is the order iterating the loader gives the users
    loader.epoch = 0
    iterated = torch.cat([b.users for b in loader])
    assert torch.equal(iterated, users[first.order].long())
    second = loader.whole_epoch()
    assert second.user is first.user and not torch.equal(second.order, first.order)  # a new shuffle, no copy


@pytest.mark.parametrize("kernel, device, why", [
    ("numba", "cuda", "runs on cpu"), ("triton", "cpu", "runs on cuda"), ("cuda", "cpu", "expected auto, torch")])
def test_a_backend_that_cannot_run_says_why(kernel, device, why, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(kernels, "available", lambda name: True)
    with pytest.raises(kernels.BackendError, match=why):
        kernels.choose(kernel, torch.device(device))


def test_auto_picks_by_device(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda name: True)
    assert kernels.choose("auto", torch.device("cpu")) == "numba"
    assert kernels.choose("auto", torch.device("cuda")) == "triton"
    assert kernels.choose("torch", torch.device("cuda")) is None
    monkeypatch.setattr(kernels, "available", lambda name: name == "numba")
    assert kernels.choose("auto", torch.device("cuda")) is None  # torch's batch steps


# -- the CPU kernels on several cores ----------------------------------------------------
from prizenet.training import KernelEpochs, KernelThreads, split_runs  # noqa: E402


def test_split_runs_cuts_the_epochs_users_into_equal_parts(small):
    _, _, batch = small
    parts = split_runs(batch, 3)
    assert len(parts) == 3 and torch.equal(torch.cat([p.order for p in parts]), batch.order)
    counts = batch.bounds.diff()
    sizes = [int(counts[p.order].sum()) for p in parts]
    assert sum(sizes) == len(batch) and max(abs(n - len(batch) / 3) for n in sizes) <= int(counts.max())
    assert all(p.user is batch.user and p.bounds is batch.bounds for p in parts)  # nothing copied
    plain = Batch(user=batch.user, item=batch.item, day=batch.day, rating=batch.rating)  # no runs given: found
    assert sum(int(kernels.runs(batch.user).diff()[p.order].sum()) for p in split_runs(plain, 2)) == len(batch)


def test_kernel_threads_try_both_then_keep_the_faster_and_recheck():
    t = KernelThreads(0, recheck=4)
    if len(t.candidates) == 1:
        pytest.skip("one CPU thread here: nothing to choose")
    one, most = t.candidates
    seen = []
    for rate in {one: 5.0, most: 9.0}, {one: 5.0, most: 9.0}, {one: 5.0, most: 9.0}, {one: 5.0, most: 9.0}:
        n = t.next()
        seen.append(n)
        t.took(rate[n])
    assert seen == [one, most, most, one]  # trials, then the faster, then the recheck of the other
    t.next()
    assert t.current == most
    assert KernelThreads(1).next() == 1 and KernelThreads(3).next() == 3


@pytest.mark.parametrize("cls", [SVD, SVDpp, TimeSVDpp], ids=["svd", "svdpp", "timesvdpp"])
def test_two_cores_converge_to_the_sequential_kernels_probe_rmse(tmp_path, cls):
    from prizenet.training import predict, rmse

    write_prize(tmp_path / "p", users=2000, items=300, ratings=120_000, seed=11)
    data = load_prize(tmp_path / "p")
    rows = data.fit_rows(False)
    probe = data.probe_rows
    got = {}
    for threads in (1, 2):
        torch.manual_seed(0)
        model = cls(**model_inputs(cls, data, rows), n_factors=10)
        loop = KernelEpochs(model, data, rows, torch.device("cpu"), 0, 4096, "numba", threads)
        for epoch in range(8):
            loop.run(0.95 ** epoch, "")
        got[threads] = rmse(predict(model, data, data.user[probe], data.item[probe], data.day[probe], "cpu", 65536),
                            data.probe_rating)
    assert got[2] == pytest.approx(got[1], abs=0.002)
    mean_only = rmse(np.full(len(probe), data.rating_x2[rows].mean() / 2, np.float32), data.probe_rating)
    assert got[1] < 0.95 * mean_only  # both learnt (the mean alone scores 1.125 here)


def test_svd_strata_share_no_row_within_a_sub_epoch_and_cover_the_epoch(small):
    from prizenet.kernels.numba.strata import block_runs, item_blocks

    data, rows, batch = small
    item = batch.item.numpy()
    blocks = item_blocks(np.bincount(item), 3)
    perm, sub = block_runs(batch.bounds.numpy(), item, blocks, 3)
    # within each run, the ratings come block by block, in their order (a stable sort)
    run = np.repeat(np.arange(len(batch.bounds) - 1), np.diff(batch.bounds.numpy()))
    assert np.array_equal(perm, np.lexsort((np.arange(len(item)), blocks[item], run)))
    model = SVD(**model_inputs(SVD, data, rows), n_factors=4)
    loop = KernelEpochs(model, data, rows, torch.device("cpu"), 0, 4096, "numba", 3)
    strata = loop._strata(batch, 3)
    seen = []
    for parts in strata:
        users, items = [], []
        for p in parts:
            at = torch.cat([torch.arange(int(p.bounds[s]), int(p.bounds[s + 1])) for s in p.order])
            users.append(set(p.user[at].tolist()))
            items.append(set(p.item[at].tolist()))
            seen += at.tolist()
        for a in range(3):
            for b in range(a + 1, 3):
                assert not (users[a] & users[b]) and not (items[a] & items[b])  # nothing shared at once
    assert sorted(seen) == list(range(len(batch)))  # every rating once an epoch


def test_svd_strata_epochs_repeat_bit_for_bit(small):
    data, rows, _ = small
    out = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SVD(**model_inputs(SVD, data, rows), n_factors=6)
        loop = KernelEpochs(model, data, rows, torch.device("cpu"), 0, 4096, "numba", 2)
        for _ in range(2):
            loop.run(1.0, "")
        out.append(model.pu.weight.clone())
    assert torch.equal(out[0], out[1])  # no Hogwild race: the same result every time


def test_ctrl_c_among_the_kernel_threads_is_raised_once_they_are_done():
    import signal

    from prizenet.training import interrupts_deferred

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not a background job)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)  # arrives here, mid-block
            time.sleep(0.05)
            done.append(True)  # the block runs to its end first
    assert done == [True] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)


def test_a_triton_older_than_the_kernels_counts_as_missing(monkeypatch):
    monkeypatch.setattr(kernels, "triton_version", lambda: (3, 1))  # e.g. an older CUDA image's
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: object())
    assert not kernels.available("triton") and kernels.available("numba")
    assert kernels.choose("auto", torch.device("cuda")) is None  # torch's batch steps, with a warning
    monkeypatch.setattr(kernels, "triton_version", lambda: (3, 6))
    assert kernels.choose("auto", torch.device("cuda")) == "triton"


def test_the_first_ctrl_c_asks_and_the_second_interrupts():
    import signal

    from prizenet.training import StopAtEpochEnd

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not a background job)
    with pytest.raises(KeyboardInterrupt):
        with StopAtEpochEnd() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.asked  # the first: noted, nothing raised
            os.kill(os.getpid(), signal.SIGINT)  # the second: at once
            time.sleep(0.05)
            pytest.fail("the second Ctrl-C did not interrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)
