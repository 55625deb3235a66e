"""prizenet: the Netflix Prize's models, data and protocol in PyTorch.

Importing the package registers the trainer's config schema and the run-folder resolver
(:mod:`prizenet.config`), so ``conf/`` composes from ``train.py``, tests and Hydra's
compose API alike. Where Hydra is not installed (a GPU image with torch and Triton only,
running ``scripts/bench_gpu.py``), the models, data layer and kernels import without it.

The Python API (:mod:`prizenet.api`): ``prizenet.fit(ratings, model=...)`` trains and returns
a :class:`Recommender` (``predict``, ``recommend``, ``save``); ``prizenet.load(path)`` and
``prizenet.load_run(run_dir)`` read saved models and ``train.py`` runs.
"""

import importlib.util

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
