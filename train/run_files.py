"""What a run writes to its folder, and reads back on ``--resume``.

Every epoch (rank 0 only): ``last.pt``; ``best.pt`` and a fresh ``metrics.json`` when validation mAP improved
(otherwise ``metrics.json`` only counts the epochs); ``log.csv`` with one row per epoch. JSON is standard
(NaN and inf written as null) and every file is replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from minewatch.atomic import atomic_path
from minewatch.json_io import json_safe, write_json
from minewatch.model_meta import ModelMeta
from minewatch.train.checkpoint import rng_state, save_checkpoint

if TYPE_CHECKING:
    from minewatch.train.run import Run, RunState

log = logging.getLogger(__name__)


def write_epoch_files(run: Run, meta: ModelMeta, summary: dict[str, Any], *, improved: bool) -> None:
    """last.pt; best.pt and metrics.json when ``improved``; log.csv from the run's history."""
    payload = checkpoint_payload(run, meta, summary)
    save_checkpoint(run.out / "last.pt", payload)
    if improved:
        save_checkpoint(run.out / "best.pt", payload)
        write_json(run.out / "metrics.json", best_metrics(run, meta, summary))
    else:
        update_json(run.out / "metrics.json", {"epochs_run": run.state.epoch, "stopped_early": run.state.stopped_early})
    write_csv(run.out / "log.csv", run.state.history)


def checkpoint_payload(run: Run, meta: ModelMeta, summary: dict[str, Any]) -> dict[str, Any]:
    """Everything :func:`restore_checkpoint` needs, plus the metadata and validation of these weights.

    ``model_state`` holds the weights to use (the average with EMA on); the raw weights the optimiser steps
    travel as ``train_state``.
    """
    state = run.state
    return {
        "meta": meta.to_json(),
        "config": run.cfg.model_dump(mode="json"),
        "model_state": cpu_state(run.scored),
        "optimizer_state": run.optimizer.state_dict(),
        "scheduler_state": run.scheduler.state_dict(),
        "scaler_state": run.scaler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best_map": state.best_map,
        "world_size": run.info.world_size,
        "run_state": dict(vars(state)),
        "rng_state": rng_state(),
        **({"train_state": cpu_state(run.model), "ema_updates": run.ema.updates} if run.ema else {}),
        "validation": json_safe(summary),
    }


def restore_checkpoint(run: Run, ckpt: dict[str, Any]) -> None:
    """Load a :func:`checkpoint_payload` into a freshly built ``run`` (the random states are the caller's:
    they must be restored after everything else that draws random numbers)."""
    run.model.load_state_dict(ckpt.get("train_state") or ckpt["model_state"])
    if run.ema is not None:
        run.ema.model.load_state_dict(ckpt["model_state"])
        run.ema.updates = int(ckpt["ema_updates"])
    run.optimizer.load_state_dict(ckpt["optimizer_state"])
    run.scheduler.load_state_dict(ckpt["scheduler_state"])
    if run.scaler.is_enabled() and ckpt.get("scaler_state"):  # empty when saved on CPU
        run.scaler.load_state_dict(ckpt["scaler_state"])
    run.state = replace(run.state, **ckpt["run_state"])  # every counter from the checkpoint
    log.info("resuming after epoch %d (step %d, best mAP %.4f)", run.state.epoch, run.state.step,
             run.state.best_map)


def log_row(state: RunState, summary: dict[str, Any], *, lr: float, train_loss: float, train_s: float,
            n_train: int) -> dict[str, Any]:
    """One epoch's row of log.csv (``n_train``: windows trained on by all processes)."""
    row: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "lr": lr, "train_loss": train_loss,
                           "val_loss": summary["loss"], "val_map": summary["map"], "train_s": round(train_s, 2),
                           "tiles_per_s": round(n_train / max(train_s, 1e-9), 1)}
    for name, m in summary["classes"].items():
        row[f"ap_{name}"] = m["ap"]
        row[f"f1_{name}"] = m["f1"]
    for name, m in summary.get("masks", {}).items():
        row[f"mask_iou_{name}"] = m["iou"]
        row[f"mask_area_ratio_{name}"] = m["area_ratio"]
    return row


def best_metrics(run: Run, meta: ModelMeta, summary: dict[str, Any]) -> dict[str, Any]:
    """metrics.json of the best epoch so far."""
    state = run.state
    return {
        "best_epoch": state.best_epoch, "best_map": state.best_map, "epochs_run": state.epoch,
        "selected_by": summary.get("selected_by", "val mAP"),
        "train_windows": int(sum(len(s.tiles) for s in run.prep.train_index)),
        "val_windows": summary["n"], "world_size": run.info.world_size, "classes": summary["classes"],
        **({"masks": summary["masks"]} if "masks" in summary else {}),
        "meta": json.loads(meta.to_json()),
    }


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def update_json(path: Path, update: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(update)
    write_json(path, data)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Columns in order of first appearance; floats to 6 significant digits."""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
