"""The Prize ensemble's model families against the factor models they must beat, in one run.

    python scripts/bench_families.py [--root ../shared/data/prize/ml1m-half] [--markdown]
        [--presets ml1m_svd,ml1m_svdpp,ml1m_integrated,ml1m_rbm]

Each preset is ``train.py experiment=NAME data.root=ROOT trainer.final_fit=false``: phase 1
only, trained on training minus probe, its best probe RMSE and the phase's fit time (data
loading excluded), one after the other in this process. Issue 18's targets are checked on
the numbers of this run: ``ml1m_integrated`` below ``ml1m_svdpp``, ``ml1m_rbm`` below
``ml1m_svd``. Prints JSON; ``--markdown`` a table.

    python scripts/bench_families.py --netflix [--ratings 100480507] [--blocks 2] [--device cuda]

``--netflix``: the new families' costs at Netflix scale on this machine, on the
Netflix-shaped set of ``bench_gpu.py`` (generated in memory, N(u) = the user's rated items):
the item-item similarity build of ``knn`` (cosine) and of ``integrated`` (shrunk Pearson),
timed over the first ``--blocks`` blocks of 1,024 items and scaled to all 18 (every block
costs the same: a pass over all ratings per block); an epoch of ``integrated``'s CPU kernel
(k = 300, 50 factors, neighbours drawn at random: an epoch's cost does not depend on which)
and of ``rbm``'s contrastive divergence (100 hidden units, CD-1, batches of 200,000
ratings), each timed on a part of the epoch (whole users, about ``--part`` ratings, 5M) and
scaled to all ratings; the process's peak resident memory after each stage. ``--device
cuda``: the same on the GPU (the similarities' sparse-dense products there, the integrated
model's Triton kernel, the RBM's steps), with the GPU's peak memory beside the host's;
``--kernel triton`` on CPU runs that kernel in Triton's interpreter (the tests, tiny).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

if "triton" in sys.argv and "cuda" not in sys.argv:  # --kernel triton on CPU: before Triton is imported
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from prizenet.api import phase1  # noqa: E402

PRESETS = ["ml1m_svd", "ml1m_svdpp", "ml1m_integrated", "ml1m_rbm"]
#: preset -> the preset it must beat (issue 18)
BEATS = {"ml1m_integrated": "ml1m_svdpp", "ml1m_rbm": "ml1m_svd"}


def run(root: Path, preset: str, out: Path) -> dict:
    m = phase1([f"experiment={preset}", f"data.root={root}"], out / preset)
    return {k: m[k] for k in ("model", "probe_rmse", "best_epoch", "epochs_run", "fit_seconds")}


def peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def netflix(args) -> dict:
    import time

    import numpy as np

    from prizenet.data import Batch
    from prizenet.models import RBM, Integrated
    from prizenet.models.knn import similarity_blocks

    import bench_gpu as bg  # scripts/ is on the path of a script run from it

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_families.py --device cuda: torch sees no CUDA GPU")
    kernel = args.kernel or ("triton" if dev.type == "cuda" else "numba")

    def clock():
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def peaks(stage):
        out["peak_gb"][stage] = peak_gb()
        if dev.type == "cuda":
            out.setdefault("peak_device_gb", {})[stage] = torch.cuda.max_memory_allocated(dev) / 2**30

    t = clock()
    data = bg.Shaped(device=dev, **bg.netflix_sizes(args.ratings))
    n, n_u, n_i = data.n_ratings, data.n_users, data.n_items
    out = {"ratings": n, "users": n_u, "items": n_i, "device": str(dev), "kernel": kernel,
           "generate_seconds": clock() - t, "peak_gb": {}}
    peaks("data")
    print(out, file=sys.stderr, flush=True)
    indptr = data.nu_indptr
    user = torch.from_numpy(data.user).long()
    item = torch.from_numpy(data.item).long()
    r = torch.from_numpy(data.rating_x2).float() * 0.5
    z = r - data.mu  # residuals (the models centre on their baselines; the cost is the same)
    n_blocks = -(-n_i // 1024)
    for name, kind in (("knn", "cosine"), ("integrated", "pearson")):
        t = clock()
        blocks = similarity_blocks(user.to(dev), item.to(dev), z.to(dev), n_u, n_i, kind, 100.0, 1024)
        first = None
        for b, _ in enumerate(blocks):
            if b == 0:
                first = clock() - t  # the sparse matrices' set-up and one block
                t1 = clock()
            if b + 1 >= args.blocks:
                break
        per_block = (clock() - t1) / max(args.blocks - 1, 1) if args.blocks > 1 else first
        del blocks
        out[f"{name}_similarities"] = {"kind": kind, "first_block_seconds": first, "seconds_per_block": per_block,
                                       "blocks": n_blocks, "estimated_seconds": first + per_block * (n_blocks - 1)}
        peaks(f"{name}_similarities")
        print(name, out[f"{name}_similarities"], file=sys.stderr, flush=True)
    part = data.whole_users(args.part, seed=0)
    sub = Batch(user=user[part], item=item[part], day=torch.zeros(len(part), dtype=torch.long), rating=r[part])
    sub = Batch(**{f: getattr(sub, f).to(dev) for f in ("user", "item", "day", "rating")})
    torch.manual_seed(0)
    model = Integrated(n_u, n_i, data.mu, indptr, data.nu_items, indptr, data.item, r.numpy(), n_factors=50,
                       k=args.k).to(dev)
    with torch.no_grad():
        model.neighbours.copy_(torch.randint(0, n_i, (n_i, model.k)))
        model.found.fill_(True)
    model.sgd_epoch(sub.slice(0, min(len(part), 1000)), backend=kernel)  # compiles; builds the sorted keys
    t = clock()
    model.sgd_epoch(sub, backend=kernel)
    sec = clock() - t
    out["integrated_epoch"] = {"timed_ratings": len(part), "k": model.k, "seconds": sec,
                               "estimated_epoch_seconds": sec * n / len(part)}
    peaks("integrated_epoch")
    print(out["integrated_epoch"], file=sys.stderr, flush=True)
    del model
    levels = np.arange(1, 6, dtype=np.float32)
    empty = np.zeros(0, np.int64)
    rbm = RBM(n_u, n_i, indptr, data.nu_items, indptr, data.item, r.numpy(), np.zeros(n_i + 1, np.int64), empty,
              np.zeros(0, np.float32), levels, n_hidden=100, cd_steps=[1]).to(dev)
    users_sorted = user[part]  # on the host: where the batches are cut
    t = clock()
    for a in range(0, len(part), 200_000):  # batches of whole users, about 200,000 ratings
        b = min(len(part), a + 200_000)
        while b < len(part) and users_sorted[b] == users_sorted[b - 1]:
            b += 1
        chunk = sub.slice(a, b)
        chunk.users, chunk.inverse = torch.unique(chunk.user, return_inverse=True)
        rbm.learn(chunk, 1.0, 0)
    sec = clock() - t
    out["rbm_epoch"] = {"timed_ratings": len(part), "seconds": sec, "estimated_epoch_seconds": sec * n / len(part)}
    peaks("rbm_epoch")
    print(out["rbm_epoch"], file=sys.stderr, flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared/data/prize/ml1m-half")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--netflix", action="store_true", help="costs at Netflix scale instead (see the doc)")
    ap.add_argument("--ratings", type=int, default=100_480_507)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="--netflix on this device: cpu or cuda")
    ap.add_argument("--kernel", choices=["numba", "triton"], default=None,
                    help="the integrated model's epoch: numba (the CPU's default) or triton (CUDA's)")
    ap.add_argument("--part", type=int, default=5_000_000, help="ratings of whole users an epoch is timed on")
    ap.add_argument("--k", type=int, default=300, help="the integrated model's neighbours per item")
    args = ap.parse_args(argv)
    if args.netflix:
        print(json.dumps({"torch": torch.__version__, "machine": platform.platform(), **netflix(args)}, indent=1))
        return
    if not (args.root / "probe.txt").exists():
        sys.exit(f"{args.root}: no probe.txt: pass --root a dataset in the Prize layout")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            results[preset] = run(args.root, preset, Path(tmp))
            print(f"{preset}: {results[preset]}", file=sys.stderr)
    for preset, other in BEATS.items():
        if preset in results and other in results:
            results[preset]["beats"] = {other: results[preset]["probe_rmse"] < results[other]["probe_rmse"]}
    meta = {"torch": torch.__version__, "machine": platform.platform(), "threads": torch.get_num_threads(),
            "root": str(args.root)}
    if not args.markdown:
        print(json.dumps({"meta": meta, "results": results}, indent=1))
        return
    print(f"torch {meta['torch']}, {meta['threads']} threads, {meta['machine']}; {args.root.name}\n")
    print("| preset | model | probe RMSE | best epoch | fit (s) | target |")
    print("|---|---|---:|---:|---:|---|")
    for preset, r in results.items():
        target = ""
        if "beats" in r:
            (other, ok), = r["beats"].items()
            target = f"below {other} ({results[other]['probe_rmse']:.4f}): {'met' if ok else 'NOT met'}"
        print(f"| {preset} | {r['model']} | {r['probe_rmse']:.4f} | {r['best_epoch']} of {r['epochs_run']} | "
              f"{r['fit_seconds']:.1f} | {target} |")


if __name__ == "__main__":
    main()
