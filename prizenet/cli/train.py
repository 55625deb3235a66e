"""``prizenet-train`` / ``python train.py``: one run, or a sweep with ``-m``, from Hydra overrides.

    prizenet-train                                    # SVD on the offline synthetic Prize
    prizenet-train model=baseline data=ml-1m trainer.n_epochs=30
    prizenet-train -m model=baseline,svd              # a sweep: one run folder each

The run itself is :func:`prizenet.run.train`; this adds what a command needs around it: a
bad setting, file or folder ends with its message and exit status 2 (no traceback), Ctrl-C
with the command that continues the run (130). Returns the probe RMSE, the number Hydra's
sweepers minimize.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from prizenet.config import config_dir
from prizenet.run import USER_ERRORS, train

log = logging.getLogger("prizenet")

# conf/hydra/launcher/ray.yaml and submitit_local.yaml share their names with the plugins'
# schemas, and Hydra warns that it checks a same-named file against the schema. Each of
# those files sets every field the launcher takes (it needs nothing from the schema).
warnings.filterwarnings("ignore", message=r"\n'hydra/launcher/(ray|submitit_local)' is validated against ConfigStore")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    search = hc.runtime.choices.get("hparams_search")
    if hc.mode == RunMode.RUN and search:  # a search preset without -m would be one plain run
        log.error("hparams_search=%s is a sweep: run it with -m (%s -m %s)", search, _command(),
                  " ".join(hc.overrides.task))
        sys.exit(2)
    try:
        return train(cfg, out, hydra_cfg=hc)["probe_rmse"]
    except USER_ERRORS as e:  # a bad setting, file or folder: its message, not a traceback
        if hc.mode != RunMode.RUN:
            raise  # a sweep reports each failed job itself
        log.error("%s", e)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: no traceback, and how to continue
        last = out / "checkpoints" / "last.pt"
        if last.is_file():
            kept = [o for o in hc.overrides.task if not o.startswith(("trainer.resume=", "hydra.run.dir="))]
            log.error("interrupted; the run continues from its last written epoch, in %s:\n  %s %s", last,
                      _command(), " ".join([*kept, f"trainer.resume={out}", f"hydra.run.dir={out}"]))
        else:
            log.error("interrupted before the first epoch finished; nothing to resume in %s", out)
        sys.exit(130)


def _command() -> str:
    """How this run was started: ``python train.py`` in a checkout, else the console command."""
    name = Path(sys.argv[0]).name
    return "python train.py" if name == "train.py" else "prizenet-train"


if __name__ == "__main__":
    main()
