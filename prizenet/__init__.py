"""prizenet: the Netflix Prize's models, data and protocol in PyTorch.

Importing the package registers the trainer's config schema and the run-folder resolver
(:mod:`prizenet.config`), so ``conf/`` composes from ``train.py``, tests and Hydra's
compose API alike.
"""

from . import config  # noqa: F401  (registers TrainerSchema and ${prizenet.uid:})
