"""prizenet: the Netflix Prize's models, data and protocol in PyTorch.

Importing the package registers the trainer's config schema and the run-folder resolver
(:mod:`prizenet.config`), so ``conf/`` composes from ``train.py``, tests and Hydra's
compose API alike. Where Hydra is not installed (a GPU image with torch and Triton only,
running ``scripts/bench_gpu.py``), the models, data layer and kernels import without it.
"""

import importlib.util

if importlib.util.find_spec("hydra") is not None:
    from . import config  # noqa: F401  (registers TrainerSchema and ${prizenet.uid:})
