"""prizenet: the Netflix Prize's models, data and protocol in PyTorch.

Importing the package registers the trainer's config schema and the run-folder resolver
(:mod:`prizenet.config`), so ``conf/`` composes from ``train.py``, tests and Hydra's
compose API alike. Where Hydra is not installed (a GPU image with torch and Triton only,
running ``scripts/bench_gpu.py``), the models, data layer and kernels import without it.

The Python API (:mod:`prizenet.api`): ``prizenet.fit(ratings, model=...)`` trains and returns
a :class:`Recommender` (``predict``, ``recommend``, ``save``); ``prizenet.load(path)`` and
``prizenet.load_run(run_dir)`` read saved models and ``train.py`` runs.

OpenMP threads wait passively here (``OMP_WAIT_POLICY=PASSIVE``, unless the environment
already sets it): a thread that spins after a parallel region takes a core from the serial
work that follows. The Bayesian FM's sampler alternates the two 64 times a sweep, and on
this project's 2-core machine passive waiting made its sweeps up to 1.7x faster, while an
NCF epoch (torch's parallel ops) took the same time (docs/benchmarks.md). OpenMP reads the
setting once, when its runtime loads: numba shares torch's ``libgomp``, which loads with
torch, so it takes effect where prizenet is imported before torch (``train.py``, the CLI,
the scripts).
"""

import importlib.util
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if importlib.util.find_spec("hydra") is not None:
    from . import config  # noqa: F401  (registers TrainerSchema and ${prizenet.uid:})

__all__ = ["Recommender", "fit", "load", "load_run"]


def __getattr__(name: str):
    """The API on first use: ``import prizenet.data`` (the data layer, the scripts) need not
    import torch and pandas with it."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'prizenet' has no attribute {name!r}")
