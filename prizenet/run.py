"""One training run, the way Netflix Prize contestants did it (``train.py``,
``prizenet-train`` and :func:`prizenet.fit` all call :func:`train`).

Phase 1 trains on the training set minus the probe and measures the probe RMSE after
every epoch; that picks the epoch count (early stopping, best epoch restored). Phase 2
(``trainer.final_fit``) retrains from the same initialization on every training rating
for that many epochs and predicts the qualifying set, as contestants did before
submitting. Each run folder gets: the Hydra config, ``tensorboard/``,
``checkpoints/{last,best}.pt`` (``trainer.resume=RUN_DIR`` continues a stopped run),
``predictions/{probe,qualifying}.npy`` (float32, file order, for blending),
``submission.txt`` (the Prize's format) and ``metrics.json``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from prizenet import kernels
from prizenet.config import ConfigError, check_config, config_dir
from prizenet.data import DataFormatError, PrizeData, write_submission
from prizenet.data.prize import CacheError
from prizenet.models import RatingModel, build_model
from prizenet.optim import RowOptimizer
from prizenet.plots import learning_curves, save_png
from prizenet.training import (CheckpointError, Checkpoints, RunDirError, StopAtEpochEnd, check_finite, claim_run_dir,
                               config_diff, epochs_for, find_checkpoint, flat_hparams, load_checkpoint, load_weights,
                               hold_threads, launcher_share, log_histograms, pick_device, predict, remove_temporaries, rmse, save_npy,
                               write_json,
                               write_run_config)

log = logging.getLogger("prizenet")
# What a user can fix from the message alone (a setting, a file, a folder, a diverged run).
USER_ERRORS = (ConfigError, CheckpointError, RunDirError, DataFormatError, CacheError, FileNotFoundError,
               FloatingPointError, kernels.BackendError)


#: A last epoch that still lowers the probe RMSE by more than this: the run is under-trained.
UNDER_TRAINED_GAIN = 1e-4


class RunResult(dict):
    """What :func:`train` returns: the run's ``metrics.json`` as a dict, with the trained
    ``model`` (phase 2's when it ran, else phase 1's best) and its ``data`` beside it."""

    model: RatingModel
    data: PrizeData


def train(cfg: DictConfig, out: Path, hydra_cfg: DictConfig | None = None) -> RunResult:
    """One run into folder ``out``; ``hydra_cfg`` (Hydra's own node) is saved beside the config."""
    check_config(cfg)  # every setting, before anything is loaded or written
    tc = cfg.trainer
    threads = hold_threads(launcher_share(hydra_cfg))  # a launcher's share of the cores
    device = pick_device(tc.device)
    cls = get_class(cfg.model._target_)
    if cls.devices is not None and device.type not in cls.devices:  # a model that trains on some devices only
        if tc.device != "auto":
            raise kernels.BackendError(f"{cls.__name__} trains on {', '.join(cls.devices)} only, not {device}; "
                                       f"use trainer.device={cls.devices[0]}")
        log.info("%s trains on %s only: device %s", cls.__name__, ", ".join(cls.devices), cls.devices[0])
        device = torch.device(cls.devices[0])
    kernels.choose(tc.kernel, device)  # a backend that cannot run on the device fails here, before the data loads
    if tc.precision == "bf16" and device.type != "cuda":
        log.warning("trainer.precision=bf16 applies on CUDA only; training in fp32 on %s", device)
    ckpt = out / "checkpoints"
    resume = src = None
    if tc.resume:
        src = find_checkpoint(tc.resume)
        remove_temporaries(src.parent, ".*.pt.*.part")  # partial checkpoints of the killed run being resumed
        resume = load_checkpoint(src, device)
        _check_same_run(resume["config"], cfg, src)
    # Resuming into the stopped run's own folder keeps its .hydra/ (the run's identity);
    # any other folder must not hold a run yet.
    own = src is not None and src.parent.resolve() == ckpt.resolve()
    claim_run_dir(out, resuming=own)
    if not own:
        write_run_config(out, cfg, hydra_cfg)
    if resume is not None:
        if (src.parent / "best.pt").is_file() and not own:
            ckpt.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.parent / "best.pt", ckpt / "best.pt")
        log.info("resuming phase %d after epoch %d from %s", resume["phase"], resume["epoch"], src)
    try:
        data: PrizeData = instantiate(cfg.data)
    except InstantiationException as e:  # the loader's own message (file, line), not Hydra's wrapping
        if isinstance(e.__cause__, USER_ERRORS):
            raise e.__cause__ from None
        raise
    log.info("data %s: %s ratings, %s users, %s items, %s probe, %s qualifying; device %s, %d CPU thread%s",
             data.meta.get("name"), f"{data.n_ratings:,}", f"{data.n_users:,}", f"{data.n_items:,}",
             f"{len(data.probe_rows):,}", f"{len(data.qual_user):,}", device, threads, "" if threads == 1 else "s")
    # Phase 1 logs to tensorboard/, phase 2 to tensorboard/final_fit/ (a run of its own in
    # TensorBoard, on its own epoch axis, its curves beside phase 1's under the same tags).
    # A resumed run hides the events of epochs after its checkpoint (logged, then lost in a
    # kill before the checkpoint landed), so no epoch appears twice.
    purge = resume["epoch"] + 1 if resume is not None and resume["phase"] == 1 else None
    writer = SummaryWriter(str(out / "tensorboard"), purge_step=purge)

    # Phase 1: train minus probe, probe RMSE each epoch, keep the best epoch.
    probe = data.probe_rows
    rows1 = data.fit_rows(final_fit=False)
    if resume is not None and resume["phase"] == 2:  # phase 1 had finished: its best model is in best.pt
        model = make_model(cfg, data, rows1, device)
        load_weights(model, ckpt / "best.pt", device)
        hist1 = resume["phase1_history"]
    else:
        model, hist1 = fit(cfg, data, rows1, 1, tc.n_epochs, device, writer, ckpt, resume,
                           probe=(data.user[probe], data.item[probe], data.day[probe], data.probe_rating))
    best = min(hist1, key=lambda h: h["probe_rmse"])
    probe_pred = predict(model, data, data.user[probe], data.item[probe], data.day[probe], device, tc.eval_batch_size)
    probe_rmse = rmse(probe_pred, data.probe_rating)
    log.info("phase 1: probe RMSE %.5f at epoch %d", probe_rmse, best["epoch"])
    # Still improving (by more than UNDER_TRAINED_GAIN, not a converged ALS) when the epochs ran out.
    gain = hist1[-2]["probe_rmse"] - hist1[-1]["probe_rmse"] if len(hist1) > 1 else 0.0
    under_trained = best["epoch"] == hist1[-1]["epoch"] == tc.n_epochs and gain > UNDER_TRAINED_GAIN
    if under_trained:
        log.warning("phase 1: the probe RMSE was still falling at the last epoch (%d; %.5f better than the one "
                    "before): the model is under-trained; raise trainer.n_epochs", tc.n_epochs, gain)

    # Phase 2: every training rating, as many epochs as phase 1 found best.
    hist2 = []
    if tc.final_fit:
        p2 = resume if resume is not None and resume["phase"] == 2 else None
        with SummaryWriter(str(out / "tensorboard" / "final_fit"),
                           purge_step=p2["epoch"] + 1 if p2 is not None else None) as writer2:
            model, hist2 = fit(cfg, data, data.fit_rows(final_fit=True), 2, best["epoch"], device, writer2, ckpt, p2,
                               hist1=hist1)
    qual_pred = predict(model, data, data.qual_user, data.qual_item, data.qual_day, device, tc.eval_batch_size)

    for name, pred in (("probe", probe_pred), ("qualifying", qual_pred)):
        save_npy(out / "predictions" / f"{name}.npy", pred.astype(np.float32))
    write_submission(out / "submission.txt", data.item_ids[data.qual_item], qual_pred, data.rating_scale)
    fit_seconds = [sum(h["seconds"] for h in hist) for hist in (hist1, hist2)]
    metrics = {
        "model": cls.__name__,
        "model_config": OmegaConf.to_container(cfg.model, resolve=True),
        "dataset": data.meta.get("name"),
        "split": data.split_id(),  # scripts/blend.py blends only runs of one split
        "rating_scale": list(data.rating_scale),  # leaderboard.py --answers judges on it
        "probe_rmse": probe_rmse,
        "best_epoch": best["epoch"],
        "epochs_run": len(hist1),
        "fit_seconds": {"phase1": fit_seconds[0], "phase2": fit_seconds[1]},
        "ratings_per_s": float(np.median([h["ratings_per_s"] for h in hist1 + hist2])),
        "final_fit": bool(tc.final_fit),
        "under_trained": under_trained,  # the best probe epoch was the last allowed
        "device": str(device),
        "optimizer": _optimizer(cfg),  # trainer.optimizer, with auto resolved
        "n_ratings": data.n_ratings,
        "history": {"phase1": hist1, "phase2": hist2},
    }
    if data.has_answers():  # synthetic data ships its answers: score the submission too
        quiz = data.qual_part == 0
        metrics["quiz_rmse"] = rmse(qual_pred[quiz], data.qual_rating[quiz])
        metrics["test_rmse"] = rmse(qual_pred[~quiz], data.qual_rating[~quiz])
    write_json(out / "metrics.json", metrics)
    if tc.submit_to:
        send_to_judge(tc.submit_to, out, f"{metrics['model']}, probe {probe_rmse:.4f}, {out.name}")
    fig = learning_curves(hist1, hist2, f"{metrics['model']} on {metrics['dataset']}")
    save_png(fig, out / "learning_curve.png")
    writer.add_figure("learning_curve", fig, close=False)
    writer.add_hparams(run_hparams(cfg, metrics), {"hparam/probe_rmse": probe_rmse, "hparam/best_epoch": best["epoch"],
                                                   "hparam/fit_seconds": sum(fit_seconds)}, run_name=".")
    writer.close()
    log.info("%s", summary(metrics, out))
    result = RunResult(metrics)
    result.model, result.data = model, data
    return result


def send_to_judge(url: str, out: Path, note: str) -> None:
    """Send the run's submission to a judging service and log its quiz score; the answer
    (or the refusal) is kept in ``judge.json``. A refusal is logged, not raised: the run's
    outputs are all written by now, and ``prizenet judge submit`` can send them later."""
    from prizenet.judge import client
    try:
        answer = client.submit(url, out / "submission.txt", note=note)
    except client.JudgeError as e:
        log.error("the judging service did not score the submission: %s (send it later with: prizenet judge "
                  "submit %s --url %s)", e, out / "submission.txt", url)
        write_json(out / "judge.json", {"url": url, "error": str(e)})
        return
    imp = "" if answer["improvement_pct"] is None else f", {answer['improvement_pct']:+.2f}% over the reference"
    log.info("judged at %s: quiz RMSE %.5f%s (submission #%d; %d left today)", url, answer["quiz_rmse"], imp,
             answer["id"], answer["left_today"])
    write_json(out / "judge.json", {"url": url, **answer})


def run_hparams(cfg: DictConfig, metrics: dict) -> dict:
    """The run's row in TensorBoard's HParams tab. The tab takes its columns from one run, so
    every run logs the same columns: the model's short name (its ``conf/model`` file), then
    every setting any model has (NaN, or "" for text, where this model has none), then the
    trainer's and the data's."""
    models = {}
    for f in sorted((config_dir() / "model").glob("*.yaml")):
        c = OmegaConf.to_container(OmegaConf.load(f), resolve=False)
        models[f.stem] = (c.pop("_target_", None), flat_hparams(c, "model."))
    own = flat_hparams({k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
                        if not k.startswith("_")}, "model.")
    short = next((name for name, (target, _) in models.items() if target == cfg.model._target_), metrics["model"])
    hp = {"model": short}
    for key in sorted({k for _, keys in models.values() for k in keys} | set(own)):
        example = next((keys[key] for _, keys in models.values() if key in keys), own.get(key))
        hp[key] = own.get(key, "" if isinstance(example, str) else float("nan"))
    hp.update(flat_hparams({k: cfg.trainer[k] for k in ("n_epochs", "batch_size", "lr_scale", "lr_decay")}, "trainer."))
    hp.update({"trainer.optimizer": metrics["optimizer"], "data": str(metrics["dataset"]), "seed": int(cfg.seed)})
    return hp


def summary(metrics: dict, out: Path) -> str:
    """The end-of-run table: what the run reached, where its outputs are, what to run next."""
    fit_s = metrics["fit_seconds"]
    lines = [f"run finished: {metrics['model']} on {metrics['dataset']}",
             f"  probe RMSE   {metrics['probe_rmse']:.5f}  (best epoch {metrics['best_epoch']} of "
             f"{metrics['epochs_run']} run{'; under-trained: raise trainer.n_epochs' if metrics['under_trained'] else ''})"]
    if "quiz_rmse" in metrics:
        lines.append(f"  quiz / test  {metrics['quiz_rmse']:.5f} / {metrics['test_rmse']:.5f}  (the data ships "
                     f"its answers)")
    phase2 = f" + {fit_s['phase2']:.3g} s final fit" if metrics["final_fit"] else " (no final fit)"
    lines += [f"  fit time     {fit_s['phase1']:.3g} s{phase2}, {metrics['ratings_per_s'] / 1e6:.2f}M ratings/s "
              f"on {metrics['device']}",
              f"  outputs      {out}/  submission.txt, predictions/, metrics.json, checkpoints/, tensorboard/",
              f"  next         tensorboard --logdir {out.parent}",
              f"               prizenet blend {out} OTHER_RUNS...   (runs of the same data)",
              f"               python -c \"import prizenet; print(prizenet.load_run('{out}').recommend(USER))\""]
    return "\n".join(lines)


def make_model(cfg, data: PrizeData, rows: np.ndarray, device):
    """The configured model for training on ``rows``, seeded: both phases start alike."""
    torch.manual_seed(cfg.seed)
    params = OmegaConf.to_container(cfg.model, resolve=True)
    return build_model(get_class(cfg.model._target_), params, data, rows).to(device)


def fit(cfg, data: PrizeData, rows: np.ndarray, phase: int, n_epochs: int, device, writer, ckpt: Path,
        resume: dict | None, probe=None, hist1=None):
    """One phase: ``n_epochs`` over ``rows``; with ``probe``, its RMSE each epoch and early stopping."""
    tc = cfg.trainer
    model = make_model(cfg, data, rows, device)
    kind = _optimizer(cfg)
    opt = RowOptimizer(model, kind)
    epochs = epochs_for(model, data, rows, device, kind, opt, tc, cfg.seed)  # closed form, CPU kernel or batches
    saver = Checkpoints(ckpt, tc.checkpoint_every, tc.checkpoint_seconds)  # best in memory, files in the background
    history, start, state = [], 0, None
    if resume is not None:  # a checkpoint of this phase: continue after its epoch
        load_weights(model, resume, device)
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"])
        history, start = resume["history"], resume["epoch"]
        epochs.resume_at(start)
        saver.resume(resume, device)

    # Ctrl-C ends the run after the epoch in progress, written to disk. The bar (terminals
    # only) counts epochs k/N with the phase's ETA; log lines print above it.
    bar = tqdm(total=n_epochs, initial=start, unit="epoch", desc=f"phase {phase}", dynamic_ncols=True,
               disable=None if tc.progress else True)
    with StopAtEpochEnd() as stop, logging_redirect_tqdm(), bar:
        for epoch in range(start + 1, n_epochs + 1):
            if probe is not None and history and epoch - 1 - _best(history) >= tc.patience:
                log.info("phase 1: no better probe RMSE for %d epochs; stopping", tc.patience)
                break
            opt.scale = tc.lr_scale * tc.lr_decay ** (epoch - 1)
            t0 = time.perf_counter()
            sse = epochs.run(opt.scale, desc=f"phase {phase} epoch {epoch}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            train_rmse = float(torch.sqrt(sse / len(rows)))
            check_finite(phase, epoch, train_rmse, tc.diverge_rmse)
            h = {"epoch": epoch, "train_rmse": train_rmse, "lr_scale": opt.scale, "seconds": seconds,
                 "ratings_per_s": len(rows) / seconds}
            if probe is not None:
                h["probe_rmse"] = rmse(predict(model, data, *probe[:3], device, tc.eval_batch_size), probe[3])
            history.append(h)

            step = epoch
            writer.add_scalar("train/loss", 0.5 * train_rmse ** 2, step)
            writer.add_scalar("train/rmse", train_rmse, step)
            writer.add_scalar("train/lr_scale", opt.scale, step)  # the multiplier of every learning rate
            writer.add_scalar("throughput/ratings_per_s", h["ratings_per_s"], step)
            if probe is not None:
                writer.add_scalar("probe/rmse", h["probe_rmse"], step)
            for name, value in model.scalars().items():
                writer.add_scalar(f"model/{name}", value, step)
            if tc.histograms:
                log_histograms(writer, model, step, "factors")
            log.info("phase %d epoch %d: train RMSE %.5f%s, %.1f s, %s ratings/s", phase, epoch, train_rmse,
                     f", probe RMSE {h['probe_rmse']:.5f}" if probe is not None else "", seconds,
                     f"{h['ratings_per_s']:,.0f}")

            state = {"phase": phase, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "torch_rng": torch.get_rng_state(), "history": history, "phase1_history": hist1,
                     "config": _run_config(cfg)}
            if probe is not None and _best(history) == epoch:
                saver.keep_best(state)
            saver.epoch_done(state)
            bar.set_postfix_str(f"train {train_rmse:.4f}" + (f", probe {h['probe_rmse']:.4f}" if probe is not None else "")
                                + f", {h['ratings_per_s'] / 1e6:.2f}M ratings/s", refresh=False)
            bar.update()
            if stop.asked:
                break

    saver.close(state)  # the phase's last epoch (and best) on disk before phase 2 or the outputs
    if stop.asked:  # Ctrl-C: the epoch that was running finished and is on disk; main() says how to resume
        raise KeyboardInterrupt
    if probe is not None and history and _best(history) != history[-1]["epoch"]:  # restore the best epoch
        load_weights(model, saver.best, device)
    return model, history


def _optimizer(cfg) -> str:
    """trainer.optimizer, where ``auto`` is the model's own choice (Adam for the neural models)."""
    if cfg.trainer.optimizer != "auto":
        return cfg.trainer.optimizer
    return get_class(cfg.model._target_).optimizer


def _best(history: list[dict]) -> int:
    return min(history, key=lambda h: h["probe_rmse"])["epoch"]


def _run_config(cfg: DictConfig) -> dict:
    """What must match for a checkpoint to continue this run (everything but resume)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c["trainer"] = {k: v for k, v in c["trainer"].items() if k not in ("resume", "progress", "threads", "checkpoint_every", "checkpoint_seconds", "submit_to")}
    return c


def _check_same_run(saved: dict, cfg: DictConfig, src: Path) -> None:
    now = _run_config(cfg)
    diff = config_diff(*({k: c.get(k) for k in ("seed", "data", "model", "trainer")} for c in (saved, now)))
    if diff:
        groups = sorted({k.split(".")[0] for k, _, _ in diff})
        shown = "; ".join(f"{k} is {a!r} there, {b!r} here" for k, a, b in diff[:5])
        more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
        raise ConfigError(f"trainer.resume: {src} was made with a different {', '.join(groups)} config: "
                         f"{shown}{more}. Resume with the overrides of the run that wrote it")

