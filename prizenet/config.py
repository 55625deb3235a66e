"""Settings checked before any work starts: the trainer's schema and each model's parameters.

Two layers, each default still living in its yaml:

* :class:`TrainerSchema`, a Hydra structured config (types only, no defaults) that
  ``conf/trainer/default.yaml`` extends: Hydra refuses ``trainer.n_epochs=abc`` or a
  misspelt key while it composes, naming the key.
* :func:`check_config`, called by ``train.py`` right after composition and before the
  data loads: ranges and choices of the trainer's settings (:data:`TRAINER_RULES`), and
  the model's settings against its constructor's signature (types from the annotations,
  choices from ``Literal[...]``, ranges from :data:`MODEL_RULES`, which go by the papers'
  parameter names: ``n_factors``, ``lr_*``, ``reg_*``, ...). A model therefore needs no
  schema of its own: its signature is the schema.

Every error is a :class:`ConfigError` that names the key, the value given and what is
allowed.

Also here: :func:`saved_kwargs`, the check of a config read back from a run folder before
its values reach a constructor; where the configs are (:func:`config_dir`: the checkout's top-level ``conf/``,
or the copy an installed wheel holds as ``prizenet/conf``) and the ``prizenet.uid`` resolver that makes run folders unique
(``conf/config.yaml``): two runs started in the same second get different folders.
"""

from __future__ import annotations

import inspect
import os
import secrets
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class ConfigError(ValueError):
    """A setting out of range, of the wrong type, or unknown: names the key and what is allowed."""


def config_dir() -> Path:
    """The ``conf/`` folder: the wheel ships the repository's top-level ``conf/`` inside the
    package as ``prizenet/conf`` (pyproject.toml's package-dir); a checkout (or an editable
    install) reads the top-level folder itself."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"prizenet's configs are missing: neither {here / 'conf'} nor {here.parent / 'conf'} "
                            f"holds config.yaml (a broken install: reinstall prizenet)")


# -- run folders -------------------------------------------------------------------------
def run_uid() -> str:
    """A short random tag for a run folder name (cached per process by OmegaConf: every
    job of a multirun and every later lookup of the folder see the same value)."""
    return f"{os.getpid() % 10_000:04d}{secrets.token_hex(2)}"


def sqlite_url(path: str) -> str:
    """``sqlite:///ABSOLUTE_PATH`` for an SQLite file at ``path``: an Optuna study's storage,
    its folder made (SQLite creates the file, not the folders above it) and, when Optuna is
    installed, its tables created under a lock on ``PATH.lock``: workers started together
    would otherwise race to create them, and one of them fail. A process that opens the
    study without the lock (a dashboard, a script reading the trials) can still race with
    it, so a failed creation is tried again: by then the other one has made the tables."""
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{file}"
    try:
        import fcntl

        import optuna
    except ImportError:  # no sweep extra (the sweeper then says so), or not POSIX
        return url
    from sqlalchemy.exc import SQLAlchemyError

    with open(file.with_name(file.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(5):
            try:
                optuna.storages.RDBStorage(url)  # creates the schema once; later workers find it
                break
            except SQLAlchemyError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
    return url


if not OmegaConf.has_resolver("prizenet.uid"):
    OmegaConf.register_new_resolver("prizenet.uid", run_uid, use_cache=True)
if not OmegaConf.has_resolver("prizenet.sqlite"):
    OmegaConf.register_new_resolver("prizenet.sqlite", sqlite_url)


# -- the trainer's schema ----------------------------------------------------------------
@dataclass
class TrainerSchema:
    """Types of ``conf/trainer/*.yaml`` (the values and their comments live in the yaml)."""

    device: str = MISSING
    n_epochs: int = MISSING
    batch_size: int = MISSING
    optimizer: str = MISSING
    kernel: str = MISSING
    lr_scale: float = MISSING
    lr_decay: float = MISSING
    patience: int = MISSING
    final_fit: bool = MISSING
    precision: str = MISSING
    eval_batch_size: int = MISSING
    threads: int = MISSING
    progress: bool = MISSING
    histograms: bool = MISSING
    resume: Optional[str] = None
    checkpoint_every: int = MISSING
    checkpoint_seconds: float = MISSING
    diverge_rmse: float = MISSING
    submit_to: Optional[str] = None


ConfigStore.instance().store(group="trainer", name="schema", node=TrainerSchema)


@dataclass(frozen=True)
class Rule:
    """What a setting may be: a choice among ``choices``, or a number in a range."""

    choices: tuple | None = None
    lo: float | None = None  # inclusive unless lo_open
    hi: float | None = None  # exclusive
    lo_open: bool = False

    def problem(self, value) -> str | None:
        if self.choices is not None:
            return None if value in self.choices else f"one of {', '.join(map(str, self.choices))}"
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and value >= self.hi
        return self.describe() if below or above else None

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"< {self.hi:g}")
        return " and ".join(parts)


POSITIVE_INT = Rule(lo=1)
POSITIVE = Rule(lo=0, lo_open=True)
NON_NEGATIVE = Rule(lo=0)

TRAINER_RULES: dict[str, Rule] = {
    "n_epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "patience": POSITIVE_INT,
    "threads": NON_NEGATIVE,
    "checkpoint_every": POSITIVE_INT,
    "checkpoint_seconds": NON_NEGATIVE,
    "optimizer": Rule(choices=("auto", "sgd", "adam")),
    "kernel": Rule(choices=("auto", "torch", "numba", "triton")),
    "precision": Rule(choices=("fp32", "bf16")),
    "lr_scale": POSITIVE,
    "lr_decay": POSITIVE,
    "diverge_rmse": POSITIVE,
}

# By parameter name, as the papers and scikit-surprise name them; first match wins.
MODEL_RULES: tuple[tuple[str, Rule], ...] = (
    ("n_factors", POSITIVE_INT),
    ("hidden", POSITIVE_INT),
    ("n_bins", POSITIVE_INT),
    ("mlp_layers", POSITIVE_INT),  # each entry
    ("dropout", Rule(lo=0, hi=1)),
    ("beta", POSITIVE),
    ("alpha_0", POSITIVE),  # Gamma hyper-prior shapes (bfm)
    ("gamma_0", POSITIVE),
    ("burn_in", NON_NEGATIVE),
    ("init_std", NON_NEGATIVE),
    ("lr", NON_NEGATIVE),  # lr, lr_bu, lr_alpha, ...
    ("reg", NON_NEGATIVE),  # reg, reg_bu, reg_u, ...
)

# Constructor parameters the data layer fills in (``prizenet.models.model_inputs``), not settings.
DATA_INPUTS = frozenset({"n_users", "n_items", "mu", "n_days", "nu_indptr", "nu_items", "user_mean_day",
                         "user_day_keys", "item_indptr", "item_users", "item_ratings", "rated_indptr",
                         "rated_items", "rated_ratings", "rating_levels",
                         "watch_user", "watch_item", "watch_day"})


def _fail(key: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r}: expected {allowed}")


def _check_device(value: str) -> None:
    if value == "auto":
        return
    import torch

    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        raise _fail("trainer.device", value, "auto, cpu, cuda or cuda:N") from None


def check_trainer(tc) -> None:
    """Ranges and choices of the trainer's settings (types are the schema's)."""
    for key, rule in TRAINER_RULES.items():
        value = tc[key]
        if (why := rule.problem(value)) is not None:
            raise _fail(f"trainer.{key}", value, why)
    _check_device(tc.device)
    if tc.submit_to is not None:  # checked now, not after hours of training
        from prizenet.judge.client import TOKEN_ENV
        if not str(tc.submit_to).startswith(("http://", "https://")):
            raise _fail("trainer.submit_to", tc.submit_to, "the judging service's URL, http://HOST:PORT")
        if not os.environ.get(TOKEN_ENV):
            raise ConfigError(f"trainer.submit_to={tc.submit_to!r} needs the team's token in ${TOKEN_ENV} "
                              f"(prizenet judge signup prints it)")


def _rule_for(name: str) -> Rule | None:
    for prefix, rule in MODEL_RULES:
        if name == prefix or name.startswith(prefix + "_"):
            return rule
    return None


def _check_value(key: str, value, hint) -> None:
    """``value`` against a type annotation: int, float, bool, str, Literal, list[int]."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise _fail(key, value, f"one of {', '.join(map(str, args))}")
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for h in args:
            try:
                return _check_value(key, value, h)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(key, value, "a list")
        for k, v in enumerate(value):
            _check_value(f"{key}[{k}]", v, args[0] if args else Any)
        return
    if hint is bool and not isinstance(value, bool):
        raise _fail(key, value, "true or false")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(key, value, "an integer")
    if hint is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _fail(key, value, "a number")
    if hint is str and not isinstance(value, str):
        raise _fail(key, value, "a string")


def check_model(model_cfg) -> None:
    """The model's settings against its constructor: known names, types, choices, ranges."""
    from hydra.utils import get_class

    target = model_cfg.get("_target_")
    try:
        cls = get_class(target)
    except Exception as e:  # noqa: BLE001 - Hydra raises several kinds
        raise ConfigError(f"model._target_={target!r}: not an importable model class ({e})") from None
    params = inspect.signature(cls).parameters
    hints = typing.get_type_hints(cls.__init__)
    settings = [n for n in params if n not in DATA_INPUTS and params[n].kind is not params[n].VAR_KEYWORD]
    # A constructor that passes **settings on (timeSVD++ to its time-aware baseline) takes
    # any further name; those get the name rules below, their types are checked downstream.
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    values = OmegaConf.to_container(model_cfg, resolve=True)
    for name, value in values.items():
        if name.startswith("_"):
            continue
        key = f"model.{name}"
        if name in DATA_INPUTS or name not in settings and not open_ended:
            raise ConfigError(f"{key}: {cls.__name__} has no such setting; its settings are {', '.join(settings)}")
        if name in hints:
            _check_value(key, value, hints[name])
        rule = _rule_for(name)
        if rule is None:
            continue
        for k, v in enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]:
            if isinstance(v, (int, float)) and (why := rule.problem(v)) is not None:
                raise _fail(key if k is None else f"{key}[{k}]", v, why)


def saved_kwargs(fn, cfg, where: str, group: str, name: str) -> dict:
    """The keyword arguments a saved ``group:`` config (``where``: the file it came from) gives
    ``fn`` (called ``name`` in the errors): its keys but the ``_`` ones, each a parameter of
    ``fn`` (any name, where ``fn`` takes ``**kwargs``), each with a plain value (numbers,
    strings, lists, mappings without a ``_target_``), so nothing in it is imported or called.
    A ValueError names the key otherwise."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: '{group}' must be a mapping, got {type(cfg).__name__}")
    params = inspect.signature(fn).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in cfg.items() if not k.startswith("_")}
    for k, v in kwargs.items():
        if k not in params and not open_ended:
            raise ValueError(f"{where}: {group}.{k} is not a parameter of {name}")
        if not _plain(v):
            raise ValueError(f"{where}: {group}.{k} must be a plain value (number, string, list), got {v!r}")
    return kwargs


def _plain(value) -> bool:
    if isinstance(value, dict):
        return "_target_" not in value and all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def check_config(cfg) -> None:
    """Everything :func:`train` checks before it loads data: trainer, model, seed."""
    check_trainer(cfg.trainer)
    check_model(cfg.model)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise _fail("seed", cfg.seed, "an integer >= 0")
