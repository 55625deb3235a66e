"""Command-line tools, installed as console commands (pyproject.toml's ``[project.scripts]``).

    prizenet-train model=svdpp                 # = python train.py model=svdpp (Hydra overrides)
    prizenet train model=svdpp                 # the same
    prizenet score SUBMISSION ANSWERS          # = python scripts/score.py
    prizenet blend RUN... [--out DIR]          # = python scripts/blend.py
    prizenet leaderboard FOLDER...             # = python scripts/leaderboard.py
    prizenet prepare ...                       # = python scripts/prepare_data.py
    prizenet make-synthetic OUT                # = python scripts/make_synthetic.py
    prizenet best-trial SWEEP                  # an Optuna sweep's best trial, as the command to train it
    prizenet judge serve|submit|...            # the judging service: teams, submissions, leaderboard

Each tool's logic lives in this package (one module each, with a ``main(argv)``); the
checkout's ``train.py`` and ``scripts/*.py`` are thin wrappers around the same functions.
"""

from __future__ import annotations

import importlib
import sys

#: command -> module of prizenet.cli with its main(argv) (train: Hydra's own argument parser)
COMMANDS = {
    "train": "train",
    "score": "score",
    "blend": "blend",
    "leaderboard": "leaderboard",
    "prepare": "prepare",
    "make-synthetic": "synthetic",
    "best-trial": "best",
    "judge": "judge",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: prizenet COMMAND [ARGS]  (prizenet COMMAND --help for each)\n\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"prizenet: unknown command {name!r}; the commands are {', '.join(COMMANDS)} (prizenet --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[name]}")
    if name == "train":  # Hydra parses sys.argv itself
        sys.argv = [f"{sys.argv[0]} train", *rest]
        module.main()
        return 0
    return module.main(rest)
