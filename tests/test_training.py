"""prizenet/training.py helpers that train.py's loop relies on: the CPU thread tuner."""

import pytest
import torch

from prizenet import training
from prizenet.training import ThreadTuner

CLOCK = [0.0]  # a fake clock: the batches' times are the test's, not the machine's


@pytest.fixture
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
@pytest.mark.usefixtures("_two_threads_and_a_fake_clock")
def test_the_tuner_settles_on_the_faster_thread_count(faster):
    slower = 3 - faster
    tuner = ThreadTuner(0, window=3, stay=20)
    used = drive(tuner, {faster: 0.001, slower: 0.006}, 1 + 3 + 3 + 20)
    # The first batch is not timed (an epoch's first holds the loader's start); then a round of trials.
    assert used[1:7] == [1, 1, 1, 2, 2, 2] and used[7:] == [faster] * 20
    tuner.close()
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("_two_threads_and_a_fake_clock")
def test_the_tuner_follows_a_change_of_load():
    tuner = ThreadTuner(0, window=3, stay=10)
    first = drive(tuner, {1: 0.001, 2: 0.006}, 17)
    then = drive(tuner, {1: 0.006, 2: 0.001}, 16)  # e.g. the competing process ended
    assert first[7:17] == [1] * 10 and then[6:16] == [2] * 10


@pytest.mark.usefixtures("_two_threads_and_a_fake_clock")
def test_fixed_threads_and_cuda_leave_the_choice_alone():
    tuner = ThreadTuner(1)
    assert drive(tuner, {1: 0.0, 2: 0.0}, 30) == [1] * 30
    tuner.close()
    assert torch.get_num_threads() == 2
    tuner = ThreadTuner(0, cpu=False)
    assert drive(tuner, {1: 0.0, 2: 0.0}, 30) == [2] * 30


# -- the model contract and the one place that picks an epoch's backend ------------------
import inspect  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from conftest import BACKENDS  # noqa: E402

import prizenet.models as models  # noqa: E402
from prizenet.config import DATA_INPUTS  # noqa: E402
from prizenet.models.base import RatingModel  # noqa: E402
from prizenet.training import BatchEpochs, SweepEpochs, KernelEpochs, epochs_for  # noqa: E402

MODELS = list(models.MODELS.values())  # the table prizenet.load and load_run build from


def test_the_model_table_holds_every_model_and_every_yaml_names_one():
    exported = {getattr(models, n) for n in models.__all__}
    assert {c for c in exported if isinstance(c, type) and issubclass(c, RatingModel) and c is not RatingModel} \
        == set(MODELS)
    from omegaconf import OmegaConf

    for f in (Path(__file__).resolve().parents[1] / "conf" / "model").glob("*.yaml"):
        assert OmegaConf.load(f)["_target_"] in models.MODELS, f


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_keeps_the_written_contract(cls):
    assert issubclass(cls, RatingModel)
    assert cls.group_by in (None, "user", "item") and cls.optimizer in ("sgd", "adam")
    assert cls.forward is not RatingModel.forward
    assert (cls.sgd_epoch is not RatingModel.sgd_epoch) == cls.has_kernel  # the flag says what is there
    for name, p in inspect.signature(cls).parameters.items():  # data arrays, or settings with defaults
        assert name in DATA_INPUTS or p.default is not inspect.Parameter.empty or p.kind is p.VAR_KEYWORD, name


def _setting(**kw):
    base = dict(kernel="auto", batch_size=512, precision="fp32", threads=0, progress=False)
    return type("Trainer", (), {**base, **kw})


@pytest.mark.parametrize("cls, solver, device, kernel, optimizer, backend", [
    ("SVD", None, "cpu", "auto", "sgd", "numba"),
    ("SVDpp", None, "cpu", "auto", "sgd", "numba"),
    ("TimeSVDpp", None, "cpu", "numba", "sgd", "numba"),
    ("SVD", None, "cpu", "torch", "sgd", BatchEpochs),
    ("SVD", None, "cpu", "auto", "adam", BatchEpochs),
    ("SVD", None, "cuda", "auto", "sgd", "triton"),  # on a GPU: the Triton kernels
    ("TimeSVDpp", None, "cuda", "triton", "sgd", "triton"),
    ("SVD", None, "cuda", "torch", "sgd", BatchEpochs),
    ("NeuMF", None, "cpu", "auto", "adam", BatchEpochs),
    ("NeuMF", None, "cuda", "auto", "adam", BatchEpochs),
    ("AutoRec", None, "cpu", "auto", "adam", BatchEpochs),
    ("TimeBaseline", None, "cpu", "auto", "sgd", BatchEpochs),
    ("Baseline", "sgd", "cpu", "auto", "sgd", BatchEpochs),
    ("Baseline", "als", "cpu", "auto", "sgd", SweepEpochs),
    ("SVD", None, "cuda", "numba", "sgd", "runs on cpu, but the run's device is cuda"),
    ("SVD", None, "cpu", "triton", "sgd", "runs on cuda, but the run's device is cpu"),
    ("NeuMF", None, "cpu", "numba", "adam", "NeuMF has no compiled kernel"),
    ("SVD", None, "cpu", "numba", "adam", "SVD trains with adam, the kernels with sgd"),
])
def test_epochs_for_picks_the_backend_in_one_place(synthetic, cls, solver, device, kernel, optimizer, backend,
                                                   monkeypatch):
    from prizenet import kernels
    from prizenet.data import load_prize
    from prizenet.models import model_inputs

    monkeypatch.setattr(kernels, "available", lambda name: True)  # whether triton is installed or not
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    data = load_prize(synthetic)
    rows = data.fit_rows(False)
    target = getattr(models, cls)
    kw = {"solver": solver} if solver else {}
    model = target(**kw, **model_inputs(target, data, rows))
    if device == "cuda":  # the choice only: no loader is made, no tensor moved
        for epochs in (KernelEpochs, BatchEpochs):
            monkeypatch.setattr(epochs, "__init__", lambda self, *a: setattr(self, "backend", a[6] if len(a) > 7 else None))
    choose = lambda: epochs_for(model, data, rows, torch.device(device), optimizer, None,  # noqa: E731
                                _setting(kernel=kernel), 0)
    if isinstance(backend, str) and " " in backend:
        with pytest.raises(kernels.BackendError, match=backend):
            choose()
    elif isinstance(backend, str):
        got = choose()
        assert type(got) is KernelEpochs and got.backend == backend
    else:
        assert type(choose()) is backend


def test_a_gpu_without_triton_falls_back_to_the_batch_steps(synthetic, monkeypatch, caplog):
    from prizenet import kernels
    from prizenet.data import load_prize
    from prizenet.models import model_inputs

    monkeypatch.setattr(kernels, "available", lambda name: name != "triton")
    monkeypatch.setattr(BatchEpochs, "__init__", lambda self, *a: None)
    data = load_prize(synthetic)
    rows = data.fit_rows(False)
    model = models.SVD(**model_inputs(models.SVD, data, rows))
    got = epochs_for(model, data, rows, torch.device("cuda"), "sgd", None, _setting(), 0)
    assert type(got) is BatchEpochs and 'pip install "prizenet[cuda]"' in caplog.text
    with pytest.raises(kernels.BackendError, match=r"triton package 3.6 or newer \(pip install .*\) is not installed"):
        epochs_for(model, data, rows, torch.device("cuda"), "sgd", None, _setting(kernel="triton"), 0)


# (The integrated model's Triton kernel is not run through train.py here: 58 s in the interpreter;
# tests/test_integrated.py and tests/test_backends.py check it against the loop and numba.)
@pytest.mark.parametrize("model, kernel", [("svd", "auto"), ("svd", "torch"), ("svdpp", "auto"), ("svdpp", "torch"),
                                           ("timesvdpp", "auto"), ("timesvdpp", "torch"),
                                           ("integrated", "auto"), ("integrated", "torch"),
                                           ("baseline", "auto"), ("baseline", "auto model.solver=als"),
                                           ("ncf", "auto"), ("autorec", "auto"),
                                           *[pytest.param(m, "triton", marks=BACKENDS[1].marks)
                                             for m in ("svd", "svdpp", "timesvdpp")]])
def test_every_backend_lowers_the_training_error(tmp_path, model, kernel):
    # Written once, run on each backend (closed form, CPU kernel, torch batches) through train.py.
    from pathlib import Path

    import train
    from hydra import compose, initialize_config_dir

    ROOT = Path(__file__).resolve().parents[1]
    kernel, *extra = kernel.split()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[
            # Triton runs here in its interpreter, about 4 ms a rating: a smaller set.
            *(["data.users=60", "data.items=30", "data.ratings=600"] if kernel == "triton" else
              ["data.users=300", "data.items=80", "data.ratings=12000"]), f"model={model}", f"trainer.kernel={kernel}",
            *extra, "trainer.n_epochs=3", "trainer.patience=3", "trainer.final_fit=false", "trainer.lr_scale=2",
            "trainer.progress=false", "trainer.histograms=false", "trainer.batch_size=512",
            *(["model.hidden=16"] if model == "autorec" else []), *(["model.k=20"] if model == "integrated" else [])])
    m = train.train(cfg, tmp_path / "run")
    rmse = [h["train_rmse"] for h in m["history"]["phase1"]]
    assert rmse[-1] < rmse[0] and np.isfinite(m["probe_rmse"])


# -- checkpoints off the critical path ---------------------------------------------------
from prizenet.training import Checkpoints  # noqa: E402


def _state(epoch, value=0.0):
    return {"phase": 1, "epoch": epoch, "model": {"w": torch.full((3,), float(value))}, "optimizer": {},
            "torch_rng": torch.get_rng_state(), "history": [{"epoch": e, "probe_rmse": 1.0} for e in range(1, epoch + 1)],
            "phase1_history": None, "config": {}}


def test_checkpoints_write_in_the_background_and_skip_while_busy(tmp_path, monkeypatch):
    import threading
    import time as clock

    gate = threading.Event()
    writes = []
    save = training.save_checkpoint

    def slow(path, state):  # a disk that takes until the test opens the gate
        gate.wait(10)
        writes.append((path.name, state["epoch"]))
        save(path, state)

    monkeypatch.setattr(training, "save_checkpoint", slow)
    saver = Checkpoints(tmp_path, every=1)
    t = clock.perf_counter()
    saver.epoch_done(_state(1))
    saver.epoch_done(_state(2))  # the epoch-1 write still runs: skipped, training goes on
    assert clock.perf_counter() - t < 1.0 and writes == []
    gate.set()
    saver.close(_state(3, 7.0))  # the final state is always written, and waited for
    assert writes == [("last.pt", 1), ("last.pt", 3)]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and last["model"]["w"].tolist() == [7.0] * 3


def test_the_best_state_is_a_snapshot_and_lands_before_last(tmp_path, monkeypatch):
    order = []
    save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda p, s: (order.append(p.name), save(p, s)))
    saver = Checkpoints(tmp_path, every=2)
    live = _state(1, 1.0)
    saver.keep_best(live)
    live["model"]["w"].fill_(5.0)  # training goes on changing the live tensors
    assert saver.best["model"]["w"].tolist() == [1.0] * 3
    saver.epoch_done(live)  # epoch 1 of every=2: not due
    saver.epoch_done(_state(2, 2.0))
    saver.close(_state(2, 2.0))
    assert order == ["best.pt", "last.pt"]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["model"]["w"].tolist() == [1.0] * 3


def test_a_failed_write_is_reported_in_the_training_thread(tmp_path, monkeypatch):
    def full(path, state):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training, "save_checkpoint", full)
    saver = Checkpoints(tmp_path, every=1)
    saver.epoch_done(_state(1))
    with pytest.raises(OSError, match="No space left"):
        saver.close(_state(2))


# -- the torch path's epoch: no host syncs ----------------------------------------------
class SyncCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts, on CPU, the aten ops that on CUDA make the host wait for the device: ops whose
    output size depends on the data (nonzero, unique, masked_select, bincount,
    repeat_interleave without output_size) and reads of a tensor's value (.item(), bool())."""

    SIZED = ("aten.nonzero", "aten._unique", "aten.unique", "aten.masked_select", "aten.bincount")
    VALUE = ("aten._local_scalar_dense", "aten.is_nonzero")

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import traceback

        name, kwargs = str(func), kwargs or {}
        syncs = name.startswith(self.SIZED + self.VALUE) or (
            name.startswith("aten.repeat_interleave") and kwargs.get("output_size") is None)
        # torch's Adam keeps its step count in a CPU tensor even for CUDA parameters
        # (capturable=False): its .item() reads host memory, no device wait.
        if syncs and not any("torch/optim/" in f.filename for f in traceback.extract_stack()[-8:]):
            where = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_stack()
                     if "prizenet" in f.filename][-1:]
            self.found.append(f"{name} at {''.join(where)}")
        return func(*args, **kwargs)



TORCH_PATH = ["baseline", "timebaseline", "svd", "ncf", "svdpp", "timesvdpp", "autorec"]


@pytest.mark.parametrize("model", TORCH_PATH)
def test_a_torch_path_epoch_makes_the_host_wait_for_nothing(model):
    from hydra import compose, initialize_config_dir

    from prizenet import run

    root = Path(__file__).resolve().parents[1]
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", "data.users=300", "data.items=80", "data.ratings=12000",
                                           "trainer.kernel=torch", "trainer.progress=false", "trainer.threads=1",
                                           "trainer.batch_size=512", *(["model.hidden=16"] if model == "autorec" else [])])
    data = run.instantiate(cfg.data)
    rows = data.fit_rows(False)
    m = run.make_model(cfg, data, rows, torch.device("cpu"))
    kind = run._optimizer(cfg)
    from prizenet.optim import RowOptimizer

    epochs = epochs_for(m, data, rows, torch.device("cpu"), kind, RowOptimizer(m, kind), cfg.trainer, 0)
    counter = SyncCounter()
    with counter:
        epochs.run(1.0, "epoch")
    n_batches = -(-len(rows) // 512)
    # A grouped loader plans its batches with one sync at the epoch's start; none per batch.
    assert len(counter.found) <= 1, counter.found[:5]
    assert n_batches > 1


def test_lazy_adam_without_unique_equals_the_unique_based_update():
    from prizenet.models.tables import SparseTable
    from prizenet.optim import RowOptimizer

    torch.manual_seed(0)
    table = SparseTable(10, 3, lr=0.01, reg=0.0, init_std=0.1)
    model = torch.nn.Module()
    model.t = table
    opt = RowOptimizer(model, "adam")
    ref_w, ref_m, ref_v = table.weight.clone(), torch.zeros(10, 3), torch.zeros(10, 3)
    for step in range(1, 4):
        idx = torch.tensor([3, 1, 3, 7, 1, 3, 0])[: 7 - step]  # repeats, and rows left alone
        g = torch.randn(len(idx), 3)
        opt.steps = step
        opt._adam(0, table, idx, g.clone(), 0.01)
        rows, inv = torch.unique(idx, return_inverse=True)  # the reference: torch.unique
        grad = torch.zeros(len(rows), 3).index_add_(0, inv, g)
        ref_m[rows] = 0.9 * ref_m[rows] + 0.1 * grad
        ref_v[rows] = 0.999 * ref_v[rows] + 0.001 * grad * grad
        ref_w[rows] -= 0.01 * (1 - 0.999 ** step) ** 0.5 / (1 - 0.9 ** step) * ref_m[rows] / (ref_v[rows].sqrt() + 1e-8)
        assert torch.allclose(table.weight, ref_w, atol=1e-7)
        assert torch.allclose(opt.state["m0"][:10], ref_m, atol=1e-7)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_autorec_with_padded_distinct_users_steps_as_with_unique(synthetic, kind, monkeypatch):
    # AutoRec's batches gather each distinct user's rows once (their L2 once a batch). The
    # sync-free distinct() pads them with rows that must train nothing: one step equals the
    # step taken with torch.unique's exact list.
    from prizenet.data import RatingLoader, load_prize
    from prizenet.models import AutoRec, model_inputs
    from prizenet.models import autorec as module
    from prizenet.models.tables import recording
    from prizenet.optim import RowOptimizer

    data = load_prize(synthetic)
    rows = data.fit_rows(False)
    batch = next(iter(RatingLoader(data, rows, 512, "cpu", seed=0, group_by="item")))

    def step(model):
        opt = RowOptimizer(model, kind)
        for _ in range(2):
            with recording(model) as tape:
                e = model(batch) - batch.rating
                (0.5 * (e * e).sum()).backward()
            opt.step(tape)
        return {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(0)
    padded = step(AutoRec(**model_inputs(AutoRec, data, rows), hidden=8))
    def unique(idx):  # the exact list of distinct users, no padding
        values, inverse = torch.unique(idx, return_inverse=True)
        return values, None, inverse

    monkeypatch.setattr(module, "distinct", unique)
    torch.manual_seed(0)
    exact = step(AutoRec(**model_inputs(AutoRec, data, rows), hidden=8))
    assert len(torch.unique(batch.user)) < len(batch)  # users repeat across the batch's items: padding exists
    for k in exact:
        assert torch.allclose(padded[k], exact[k], atol=1e-6), k
