"""The GPU benchmark: one command, about 5 minutes on one H100/H200, the README's set-up only.

    python scripts/bench_gpu.py                  # CUDA: Netflix-shaped 100M ratings
    python scripts/bench_gpu.py --dry            # the same flow, tiny, on CPU (Triton's interpreter); CI runs it
    python scripts/bench_gpu.py --json out.json --ratings 20000000

What it measures, in this order, and prints as one table at the end (also written as JSON):

1. the ceilings: device-to-device copy and row-gather bandwidth;
2. each model (svd, svdpp, timesvdpp) at k = 100 and 200: seconds per epoch on each
   backend (Triton: whole epochs of the Netflix-shaped set, the loader's per-epoch shuffle
   included; torch's batch steps at batch 4,096 and 65,536: a few hundred batches, scaled to
   the epoch), against the floor (every row read and written once per use through memory,
   at the measured copy bandwidth; ``../shared/GPU.md`` has the byte counts);
3. Triton against the CPU kernel (numba) on one small planted data set, for these models
   and Koren's integrated model (whose neighbours need a similarity build, so it has no
   Netflix-scale epoch here; ``scripts/bench_families.py --netflix`` times its CPU one): the largest
   relative difference of any weight after one epoch from the same start and order
   (Hogwild on a GPU: staleness, not rounding), and the probe RMSE after 3 epochs of each;
4. per-epoch overheads: the checkpoint's cost to the training loop and its background
   write, and predicting a probe-sized set (1.4M pairs);
5. the device, torch, triton and numba versions.

The Netflix-shaped set is generated on the device, no text files: 480,189 users with
log-normal activity (heavy-tailed, as Netflix's), 17,770 items drawn by a Zipf law, days
in bursts per user, ratings from user and item effects plus noise. It needs no Hydra:
only torch, numpy, triton and prizenet's models, loader and kernels.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if "--dry" in sys.argv:  # before Triton is imported: its kernels then run on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prizenet import kernels  # noqa: E402
from prizenet.data import Batch  # noqa: E402
from prizenet.models import SVD, Integrated, SVDpp, TimeSVDpp  # noqa: E402
from prizenet.optim import RowOptimizer  # noqa: E402
from prizenet.training import BatchEpochs, Checkpoints, KernelEpochs, predict, rmse  # noqa: E402

NETFLIX = dict(users=480_189, items=17_770, ratings=100_480_507, days=2_243, probe=1_408_395, max_user_ratings=17_653)
#: seconds per epoch at k = 200 that the issue asks of the Triton kernels (within 3x of the floor)
TARGETS = {"svd": 0.3, "svdpp": 0.5, "timesvdpp": 0.7}
MODELS = {"svd": SVD, "svdpp": SVDpp, "timesvdpp": TimeSVDpp}

FULL = dict(factors=(100, 200), batches=(4096, 65536), torch_batches=200, epochs=2,
            small=dict(users=6000, items=1500, ratings=400_000), small_factors=50)
DRY = dict(factors=(16,), batches=(64, 256), torch_batches=3, epochs=1,
           small=dict(users=40, items=20, ratings=300), small_factors=8)


# -- the data ---------------------------------------------------------------------------
def netflix_sizes(ratings: int) -> dict:
    """:class:`Shaped`'s sizes for a Netflix-like set of ``ratings``: Netflix's items and
    days, its users scaled with the ratings (at least 1,000)."""
    scale = ratings / NETFLIX["ratings"]
    return dict(users=max(1000, int(NETFLIX["users"] * scale)), items=NETFLIX["items"], ratings=ratings,
                days=NETFLIX["days"])


class Shaped:
    """A Netflix-shaped training set: what :class:`~prizenet.data.RatingLoader` and the models
    read of a :class:`~prizenet.data.PrizeData`, rows sorted by user."""

    rating_scale = (1.0, 5.0)

    def __init__(self, users: int, items: int, ratings: int, days: int, device, seed: int = 0):
        g = torch.Generator(device=device).manual_seed(seed)
        rand = lambda *shape: torch.rand(*shape, generator=g, device=device)  # noqa: E731
        normal = lambda *shape: torch.randn(*shape, generator=g, device=device)  # noqa: E731
        # Users: log-normal activity; Netflix's mean is 209 ratings a user, the median 96, the most 17,653.
        w = normal(users).mul_(1.25).exp_()
        counts = (w / w.sum() * ratings).round_().long().clamp_(1, NETFLIX["max_user_ratings"])
        user = torch.repeat_interleave(torch.arange(users, device=device), counts)
        n = len(user)
        # Items: a Zipf law over popularity ranks, the ranks shuffled over item ids.
        cdf = torch.cumsum(torch.arange(1, items + 1, device=device, dtype=torch.float64).pow_(-0.9), 0)
        rank = torch.searchsorted(cdf / cdf[-1], rand(n).double()).clamp_(max=items - 1)
        item = torch.randperm(items, generator=g, device=device)[rank]
        # Days: each user rates in bursts, from a first day on (many ratings share a day).
        first = (rand(users) * days * 0.8).long()
        span = (rand(users) * days * 0.2 + 1).long()
        day = (first[user] + (rand(n).pow_(3) * span[user]).long()).clamp_(max=days - 1)
        stars = (3.6 + 0.4 * normal(users)[user] + 0.5 * normal(items)[item] + 0.9 * normal(n)).round_().clamp_(1, 5)
        self.n_users, self.n_items, self.n_days, self.n_ratings = users, items, days, n
        self.user = user.int().cpu().numpy()
        self.item = item.int().cpu().numpy()
        self.day = day.short().cpu().numpy()
        self.rating_x2 = (stars * 2).to(torch.uint8).cpu().numpy()
        self.nu_indptr = np.concatenate([[0], np.cumsum(counts.cpu().numpy())]).astype(np.int64)
        self.nu_items = self.item  # N(u): the user's rated items (rows are in user order)
        self.mu = float(stars.mean())
        key = user * days + day
        self.user_day_keys = torch.unique(key).cpu().numpy()
        sums = torch.zeros(users, device=device, dtype=torch.float64).index_add_(0, user, day.double())
        self.user_mean_day = (sums / counts).float().cpu().numpy()
        self.counts = counts.cpu().numpy()

    def inputs(self, name: str, k: int) -> dict:
        kw = dict(n_users=self.n_users, n_items=self.n_items, mu=self.mu, n_factors=k)
        if name in ("svdpp", "timesvdpp"):
            kw.update(nu_indptr=self.nu_indptr, nu_items=self.nu_items)
        if name == "timesvdpp":
            kw.update(n_days=self.n_days, user_mean_day=self.user_mean_day, user_day_keys=self.user_day_keys)
        return kw

    def whole_users(self, target: int, seed: int) -> np.ndarray:
        """Rows of randomly chosen whole users, about ``target`` of them (a sub-epoch)."""
        order = np.random.default_rng(seed).permutation(self.n_users)
        take = order[: max(1, int(np.searchsorted(np.cumsum(self.counts[order]), target)) + 1)]
        starts, ends = self.nu_indptr[take], self.nu_indptr[take + 1]
        return np.sort(np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]))


def floor_bytes(name: str, k: int, data: Shaped) -> float:
    """Bytes an epoch must move: every row read and written once per use (fp32)."""
    per_rating = {"svd": 16 * k + 28, "svdpp": 16 * k + 28, "timesvdpp": 24 * k + 72}[name]
    implicit = (12 * k + 8) * len(data.nu_items) if name != "svd" else 0
    return per_rating * data.n_ratings + implicit


# -- timing -----------------------------------------------------------------------------
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def bandwidth(device, dry: bool) -> dict:
    n = (1 << 16) if dry else (1 << 28)  # 1 GiB of fp32
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy_s = min(timed(device, lambda: dst.copy_(src))[0] for _ in range(5))
    table = torch.randn(NETFLIX["users"] if not dry else 500, 200 if not dry else 16, device=device)
    idx = torch.randint(0, len(table), (1 << 20 if not dry else 1 << 10,), device=device)
    table.index_select(0, idx)
    gather_s = min(timed(device, lambda: table.index_select(0, idx))[0] for _ in range(5))
    gathered = 2 * len(idx) * table.shape[1] * 4 + len(idx) * 8
    return {"copy_GBps": 2 * n * 4 / copy_s / 1e9, "gather_GBps": gathered / gather_s / 1e9}


def make_model(name: str, inputs: dict, device) -> torch.nn.Module:
    with torch.device(device):
        torch.manual_seed(0)
        return MODELS[name](**inputs).to(device)


def triton_epochs(name: str, k: int, data: Shaped, device, epochs: int) -> dict:
    model = make_model(name, data.inputs(name, k), device)
    loop = KernelEpochs(model, data, np.arange(data.n_ratings), device, seed=0, batch_size=65536, backend="triton")
    first, sse = timed(device, lambda: loop.run(1.0, ""))  # compiles the kernel
    times = [timed(device, lambda: loop.run(1.0, ""))[0] for _ in range(epochs)]
    probe = np.random.default_rng(1).choice(data.n_ratings, min(NETFLIX["probe"], data.n_ratings), replace=False)
    predict_s, _ = timed(device, lambda: predict(model, data, data.user[probe], data.item[probe], data.day[probe],
                                                 device, 262_144))
    return {"seconds": float(np.median(times)), "first_epoch_seconds": first,
            "train_rmse": math.sqrt(float(sse) / data.n_ratings), "predict_probe_seconds": predict_s,
            "model": model}


def torch_epoch(name: str, k: int, batch: int, data: Shaped, device, n_batches: int) -> dict:
    model = make_model(name, data.inputs(name, k), device)
    rows = data.whole_users(n_batches * batch, seed=batch)
    loop = BatchEpochs(model, data, rows, device, 0, batch, RowOptimizer(model, "sgd"), "fp32", 0, False)
    timed(device, lambda: loop.run(1.0, ""))  # warm-up
    seconds, _ = timed(device, lambda: loop.run(1.0, ""))
    return {"seconds": seconds * data.n_ratings / len(rows), "measured_ratings": len(rows)}


def checkpoint_overhead(model: torch.nn.Module, device) -> dict:
    state = {"phase": 1, "epoch": 1, "model": model.state_dict(), "optimizer": {}, "torch_rng": torch.get_rng_state(),
             "history": [], "phase1_history": None, "config": {}}
    with tempfile.TemporaryDirectory() as folder:
        ckpt = Checkpoints(Path(folder), every=1)
        critical, _ = timed(device, lambda: (ckpt.keep_best(state), ckpt.epoch_done(state)))
        t = time.perf_counter()
        ckpt.close(None)
        write = time.perf_counter() - t + critical
    size = sum(v.numel() * v.element_size() for v in state["model"].values())
    return {"critical_path_seconds": critical, "background_write_seconds": write, "state_MB": size / 1e6}


# -- Triton against the CPU kernel ------------------------------------------------------
def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def against_cpu(sizes: dict, k: int, device, folder: Path) -> dict:
    from prizenet.data import RatingLoader, load_prize
    from prizenet.data.synthetic import write_prize
    from prizenet.models import model_inputs

    write_prize(folder / "small", **sizes, seed=7)
    data = load_prize(folder / "small")
    rows = data.fit_rows(False)
    probe = data.probe_rows
    seen = np.bincount(data.user[rows], minlength=data.n_users), np.bincount(data.item[rows], minlength=data.n_items)
    out = {}
    for name, cls in {**MODELS, "integrated": Integrated}.items():
        torch.manual_seed(0)
        start = cls(**model_inputs(cls, data, rows), n_factors=k)
        start.see(*seen)
        if isinstance(start, Integrated):
            start.find_neighbours()  # once, on the CPU: both copies use the same S^k(i)
        # One epoch, the same start and the same order (whole users in a shuffled order).
        cpu, dev = copy.deepcopy(start), copy.deepcopy(start).to(device)
        b = RatingLoader(data, rows, 4096, "cpu", seed=3, group_by="user").whole_epoch()
        cpu.sgd_epoch(b, 1.0, "numba")
        moved = Batch(**{f: getattr(b, f).to(device) for f in ("user", "item", "day", "rating", "bounds", "order")})
        dev.sgd_epoch(moved, 1.0, "triton")
        diff = max(relative(p, q) for p, q in zip(dev.parameters(), cpu.parameters()))
        # Three epochs each, as train.py runs them (its loader, its learning-rate decay).
        result = {"max_relative_difference_1_epoch": diff}
        for backend, where in (("numba", torch.device("cpu")), ("triton", device)):
            model = copy.deepcopy(start).to(where)
            loop = KernelEpochs(model, data, rows, where, seed=0, batch_size=4096, backend=backend)
            for epoch in range(3):
                loop.run(0.95 ** epoch, "")
            pred = predict(model, data, data.user[probe], data.item[probe], data.day[probe], where, 65536)
            result[f"probe_rmse_{backend}"] = rmse(pred, data.probe_rating)
        result["probe_rmse_gap"] = result["probe_rmse_triton"] - result["probe_rmse_numba"]
        out[name] = result
    return out


# -- the report -------------------------------------------------------------------------
def versions(device) -> dict:
    import numba

    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    out = {"torch": torch.__version__, "triton": triton_version, "numba": numba.__version__,
           "python": platform.python_version(), "device": str(device),
           "triton_interpreter": kernels.interpreting()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                   memory_GB=round(props.total_memory / 1e9, 1), cuda=torch.version.cuda)
    else:
        out.update(cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    return out


def table(report: dict) -> str:
    lines = ["", f"prizenet GPU benchmark: {report['versions'].get('gpu', report['versions']['device'])}, "
                 f"{report['data']['ratings']:,} ratings ({report['mode']})",
             f"copy {report['ceilings']['copy_GBps']:.0f} GB/s, row gather {report['ceilings']['gather_GBps']:.0f} GB/s",
             "", f"{'model':<10} {'k':>4} {'backend':<14} {'s/epoch':>9} {'floor s':>9} {'x floor':>8} {'target':>11}"]
    for r in report["epochs"]:
        target = r.get("target")
        verdict = "" if target is None else f"{target:.1f} {'ok' if r['seconds'] <= target else 'MISSED'}"
        lines.append(f"{r['model']:<10} {r['k']:>4} {r['backend']:<14} {r['seconds']:>9.3f} {r['floor_seconds']:>9.3g} "
                     f"{r['seconds'] / r['floor_seconds']:>8.1f} {verdict:>11}")
    lines += ["", f"Triton vs the CPU kernel (k={report['against_cpu_factors']}): "
                  "max rel. diff after 1 epoch; probe RMSE after 3 (numba, triton, gap; target |gap| <= 0.002)"]
    for name, r in report["against_cpu"].items():
        ok = "ok" if abs(r["probe_rmse_gap"]) <= 0.002 else "MISSED"
        lines.append(f"{name:<10} {r['max_relative_difference_1_epoch']:>10.2e}   {r['probe_rmse_numba']:.4f} "
                     f"{r['probe_rmse_triton']:.4f} {r['probe_rmse_gap']:+.4f} {ok}")
    o = report["overheads"]
    lines += ["", f"checkpoint of {o['checkpoint']['state_MB']:.0f} MB: {o['checkpoint']['critical_path_seconds']:.3f} s "
                  f"on the loop, {o['checkpoint']['background_write_seconds']:.2f} s written beside it; "
                  f"probe prediction ({o['probe_pairs']:,} pairs): " + ", ".join(f"{m} {s:.3f} s" for m, s in o["predict_probe"].items()),
              "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry", action="store_true", help="tiny, on CPU, Triton in its interpreter (what CI runs)")
    ap.add_argument("--json", type=Path, default=Path("bench_gpu.json"), help="where the report goes")
    ap.add_argument("--ratings", type=int, default=None, help="size of the Netflix-shaped set (100,480,507)")
    ap.add_argument("--models", default="svd,svdpp,timesvdpp")
    args = ap.parse_args(argv)
    plan = DRY if args.dry else FULL
    device = torch.device("cpu" if args.dry else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py: torch sees no CUDA GPU; run with --dry for the CPU rehearsal", file=sys.stderr)
        return 2
    if args.dry:
        sizes = dict(users=300, items=60, ratings=args.ratings or 400, days=200)
    else:
        sizes = netflix_sizes(args.ratings or NETFLIX["ratings"])
    names = args.models.split(",")
    t0 = time.perf_counter()
    report = {"mode": "dry: CPU, Triton interpreter" if args.dry else "CUDA", "versions": versions(device),
              "ceilings": bandwidth(device, args.dry)}
    gen_s, data = timed(device, lambda: Shaped(device=device, **sizes))
    report["data"] = {"ratings": data.n_ratings, "users": data.n_users, "items": data.n_items,
                      "user_days": len(data.user_day_keys), "max_user_ratings": int(data.counts.max()),
                      "generate_seconds": gen_s}
    bw = report["ceilings"]["copy_GBps"] * 1e9
    report["epochs"], predict_s, biggest = [], {}, None
    for name in names:
        for k in plan["factors"]:
            floor = floor_bytes(name, k, data) / bw
            r = triton_epochs(name, k, data, device, plan["epochs"])
            model = r.pop("model")
            if k == max(plan["factors"]):
                predict_s[name] = r["predict_probe_seconds"]
                biggest = model if biggest is None else biggest  # the first model's state is checkpointed
            row = {"model": name, "k": k, "backend": "triton", "floor_seconds": floor, **r}
            if k == 200 and not args.dry:
                row["target"] = TARGETS[name]
            report["epochs"].append(row)
            del model
            for batch in plan["batches"]:
                t = torch_epoch(name, k, batch, data, device, plan["torch_batches"])
                report["epochs"].append({"model": name, "k": k, "backend": f"torch b={batch}", "floor_seconds": floor,
                                         **t})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report["overheads"] = {"checkpoint": checkpoint_overhead(biggest, device), "predict_probe": predict_s,
                           "probe_pairs": min(NETFLIX["probe"], data.n_ratings)}
    with tempfile.TemporaryDirectory() as folder:
        report["against_cpu"] = against_cpu(plan["small"], plan["small_factors"], device, Path(folder))
    report["against_cpu_factors"] = plan["small_factors"]
    report["total_seconds"] = time.perf_counter() - t0
    text = table(report)
    args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(text)
    print(f"\n{report['total_seconds']:.0f} s in all; JSON in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
