"""Train one model on one dataset the way Netflix Prize contestants did.

    python train.py                                   # SVD on the offline synthetic Prize
    python train.py model=baseline data=ml-1m trainer.n_epochs=30
    python train.py -m model=baseline,svd             # a sweep: one run folder each

The same command as ``prizenet-train`` (installed with the package): the entry point is
:mod:`prizenet.cli.train`, the run :func:`prizenet.run.train`, the configs ``conf/``.
"""

from prizenet.cli.train import main
from prizenet.run import fit, make_model, train  # noqa: F401  (the run's functions, as before: import train)

if __name__ == "__main__":
    main()
