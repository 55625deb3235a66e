"""The best trial of an Optuna sweep, as the command that trains it with both phases.

    prizenet best-trial multirun/optuna/svd [--storage URL] [--study NAME]

Reads the study from the sweep folder's ``optuna.db`` (or ``--storage``), the one every
worker of the sweep wrote into (the only study there, or ``--study``), and the sweep's own
overrides from a trial folder's ``.hydra/overrides.yaml``; prints the study's trials by
state, the best trial's probe RMSE and the command that trains its settings with both
phases (the trials ran phase 1 only): the sweep's overrides without the search preset and
the searched parameters, then the best parameters.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml


def best_trial(sweep: Path, storage: str | None = None, study: str | None = None) -> dict:
    """{"study", "states" (count per trial state), "value", "params", "overrides", "command"}."""
    import optuna

    if storage is None and not (sweep / "optuna.db").is_file():
        raise FileNotFoundError(f"{sweep}: no optuna.db (pass --storage URL for a study kept elsewhere)")
    url = storage or f"sqlite:///{(sweep / 'optuna.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study is None:
        names = [x.study_name for x in optuna.get_all_study_summaries(url)]
        if len(names) != 1:
            raise ValueError(f"{url} holds {len(names)} studies ({', '.join(names) or 'none'}): name one with --study")
        study = names[0]
    s = optuna.load_study(study_name=study, storage=url)
    states: dict[str, int] = {}
    for t in s.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    if not states.get("COMPLETE"):
        raise ValueError(f"{sweep}: study {study!r} has no complete trial yet ({states or 'no trials'})")
    best = s.best_trial.params
    task: list[str] = []
    chosen: dict = {}
    for overrides in sorted(sweep.glob("*/.hydra/overrides.yaml")):  # the sweep's own overrides, from a trial
        task = yaml.safe_load(overrides.read_text()) or []
        hydra_yaml = overrides.parent / "hydra.yaml"
        if hydra_yaml.is_file():  # the groups the search preset chose (its model)
            chosen = ((yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("runtime", {})
                      .get("choices", {}))
        break
    keep = [o for o in task if o.split("=", 1)[0] not in best
            and not o.startswith(("hparams_search=", "hydra.", "trainer.final_fit="))]
    for group in ("data", "model"):  # what the preset chose, unless the sweep's command named it
        if chosen.get(group) and not any(o.startswith(f"{group}=") for o in keep):
            keep.insert(0, f"{group}={chosen[group]}")
    params = [f"{k}={v}" for k, v in best.items()]
    command = ["python", "train.py", *keep, *params, "trainer.final_fit=true"]
    return {"study": study, "states": states, "value": s.best_value, "params": best,
            "overrides": keep + params, "command": " ".join(shlex.quote(c) for c in command)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet best-trial", description=__doc__.split("\n")[0])
    ap.add_argument("sweep", type=Path, help="the Optuna sweep's folder (hydra.sweep.dir)")
    ap.add_argument("--storage", help="the study's storage URL (default: SWEEP/optuna.db)")
    ap.add_argument("--study", help="the study's name (default: the sweep's hydra.sweeper.study_name)")
    args = ap.parse_args(argv)
    try:
        best = best_trial(args.sweep, args.storage, args.study)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"prizenet best-trial: {e}", file=sys.stderr)
        return 2
    states = ", ".join(f"{n} {k.lower()}" for k, n in sorted(best["states"].items()))
    print(f"study {best['study']}: {states}; best probe RMSE {best['value']:.5f}")
    print(best["command"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
