"""prizenet/training.py helpers that train.py's loop relies on: the CPU thread tuner."""

import pytest
import torch

from prizenet import training
from prizenet.training import ThreadTuner

CLOCK = [0.0]  # a fake clock: the batches' times are the test's, not the machine's


@pytest.fixture(autouse=True)
def _two_threads_and_a_fake_clock(monkeypatch):
    monkeypatch.setattr(training.time, "perf_counter", lambda: CLOCK[0])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def drive(tuner: ThreadTuner, seconds_on, batches: int) -> list[int]:
    """Run ``batches`` fake batches, each taking ``seconds_on[threads]``; the threads each ran on."""
    used = []
    for _ in range(batches):
        used.append(torch.get_num_threads())
        CLOCK[0] += seconds_on[torch.get_num_threads()]
        tuner.step(1000)
    return used


@pytest.mark.parametrize("faster", [1, 2])
def test_the_tuner_settles_on_the_faster_thread_count(faster):
    slower = 3 - faster
    tuner = ThreadTuner(0, window=3, stay=20)
    used = drive(tuner, {faster: 0.001, slower: 0.006}, 1 + 3 + 3 + 20)
    # The first batch is not timed (an epoch's first holds the loader's start); then a round of trials.
    assert used[1:7] == [1, 1, 1, 2, 2, 2] and used[7:] == [faster] * 20
    tuner.close()
    assert torch.get_num_threads() == 2


def test_the_tuner_follows_a_change_of_load():
    tuner = ThreadTuner(0, window=3, stay=10)
    first = drive(tuner, {1: 0.001, 2: 0.006}, 17)
    then = drive(tuner, {1: 0.006, 2: 0.001}, 16)  # e.g. the competing process ended
    assert first[7:17] == [1] * 10 and then[6:16] == [2] * 10


def test_fixed_threads_and_cuda_leave_the_choice_alone():
    tuner = ThreadTuner(1)
    assert drive(tuner, {1: 0.0, 2: 0.0}, 30) == [1] * 30
    tuner.close()
    assert torch.get_num_threads() == 2
    tuner = ThreadTuner(0, cpu=False)
    assert drive(tuner, {1: 0.0, 2: 0.0}, 30) == [2] * 30
