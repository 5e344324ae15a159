"""The training loop: scenes -> windows -> backbone -> checkpoints with calibrated thresholds.

AdamW with warm-up and cosine decay; class imbalance met twice, by a balanced sampler and by
``pos_weight`` (computed on what the sampler draws, so the two do not double-count) or focal loss;
validation on other scenes than training every epoch (per-class AP, F1-optimal thresholds); early
stopping on validation mAP; ``last.pt`` and ``best.pt`` every epoch, ``--resume`` continues bit for bit.
AMP and channels-last are used on CUDA only; the same code runs on CPU and under ``torchrun`` (DDP).

Read top to bottom: :func:`train_from_config` opens the run folder, :mod:`~minewatch.train.prepare` and
:mod:`~minewatch.train.run` build the run, then each epoch trains (:func:`_train_epoch`), validates on rank 0
and writes the run's files (:func:`_end_epoch`, :mod:`~minewatch.train.run_files`).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minewatch.errors import UserError
from minewatch.infer.objects import OutlineRules, count_margin_px
from minewatch.progress import progress
from minewatch.train import ddp
from minewatch.train.checkpoint import load_checkpoint
from minewatch.train.config import TrainConfig, load_train_config
from minewatch.train.device import pick_device
from minewatch.train.models import split_output
from minewatch.train.prepare import prepare
from minewatch.train.run import Run, build_run
from minewatch.train.run_files import log_row, write_epoch_files
from minewatch.train.validation import (
    MaskStats,
    predict_windows,
    selection_score,
    validated_meta,
    validation_summary,
)

log = logging.getLogger(__name__)


def train_from_config(config: str | Path, *, out: Path | None = None, resume: bool = False,
                      weights: Path | None = None, device: str = "auto",
                      stop_after_epochs: int | None = None) -> Path:
    """Train from a preset name or YAML; return the best checkpoint (``<out>/best.pt``).

    ``stop_after_epochs`` ends this invocation after that many epochs (a time-boxed run); ``resume``
    continues it later exactly as if it had never stopped.
    """
    cfg, cfg_path = load_train_config(config)
    out = Path(out) if out is not None else Path("runs") / cfg_path.stem
    info = ddp.DistInfo.from_env()
    dev = pick_device(cfg.device if device == "auto" else device, info)
    created = ddp.init(info, dev)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        ckpt = _open_run_folder(cfg, out, info, resume=resume)
        init = load_checkpoint(cfg.model.init) if cfg.model.init is not None and ckpt is None else None
        _seed_everything(cfg.seed)
        prep = prepare(cfg, out, info, (ckpt or init or {}).get("meta_obj"))
        run = build_run(prep, out, info, dev, weights=weights, ckpt=ckpt, init=init)
        try:
            _run_epochs(run, stop_after_epochs)
        finally:
            run.loaders.close()
        return out / "best.pt"
    finally:
        ddp.shutdown(created)


def _open_run_folder(cfg: TrainConfig, out: Path, info: ddp.DistInfo, *, resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (None for a new run); never resumes nothing nor overwrites a run."""
    last = out / "last.pt"
    ckpt = None
    if resume:
        if not last.is_file():
            raise UserError("nothing to resume: no last.pt in the run folder", path=out,
                            fix="start without --resume, or give the --out of the interrupted run")
        ckpt = load_checkpoint(last)
        if ckpt["config"] != cfg.model_dump(mode="json"):
            changed = sorted(k for k, v in cfg.model_dump(mode="json").items() if ckpt["config"].get(k) != v)
            raise UserError(f"the config differs from the interrupted run's (keys: {', '.join(changed)})",
                            path=last, fix="resume with the same config, or start a new run with another --out")
    elif last.exists():
        raise UserError("the run folder already holds a training run", path=out,
                        fix="add --resume to continue it, or choose another --out")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ddp.barrier(info)
    return ckpt


def _run_epochs(run: Run, stop_after: int | None) -> None:
    """Train until the last epoch, an early stop, or ``stop_after`` epochs of this invocation."""
    state, epochs = run.state, run.cfg.optim.epochs
    ran = 0
    while state.epoch < epochs and not state.stopped_early and (stop_after is None or ran < stop_after):
        run.loaders.sampler.set_epoch(state.epoch)
        t0 = time.perf_counter()
        train_loss = _train_epoch(run, desc=f"epoch {state.epoch + 1}/{epochs}")
        train_s = time.perf_counter() - t0
        state.step += len(run.loaders.train)
        state.epoch += 1
        ran += 1
        if run.info.is_main:  # validation and files on rank 0; its verdict on stopping goes to every rank
            stats = (MaskStats(tuple(run.cfg.model.masks),
                               margin_px=count_margin_px(OutlineRules().count_margin_m, run.prep.meta.gsd_m))
                     if run.cfg.model.masks else None)
            probs, targets = predict_windows(run.scored, run.loaders.val, run.device,
                                             channels_last=run.channels_last, amp=run.amp, mask_stats=stats)
            summary = validation_summary(probs, targets)
            if stats is not None:
                summary["masks"] = stats.summary()
            _end_epoch(run, summary, train_loss=train_loss, train_s=train_s)
        state.stopped_early = bool(ddp.broadcast(run.info, state.stopped_early))
        ddp.barrier(run.info)


def _train_epoch(run: Run, desc: str) -> float:
    """One pass over the sampler's draw; the mean training loss per window."""
    run.net.train()
    total, n = 0.0, 0
    for batch in progress(run.loaders.train, total=len(run.loaders.train), desc=desc, unit="batch"):
        x, y = batch[0].to(run.device, non_blocking=True), batch[1].to(run.device, non_blocking=True)
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.amp):
            logits, mask_logits = split_output(run.net(x))
        loss = run.loss_fn(logits.float(), y)
        if run.dense_loss is not None and mask_logits is not None:
            m = batch[2].to(run.device, non_blocking=True)
            loss = loss + run.cfg.loss.dense_weight * run.dense_loss(mask_logits.float(), m)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if run.cfg.optim.grad_clip:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.optim.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        if run.ema is not None:
            run.ema.update(run.model)  # the unwrapped model, also under DDP
        total += float(loss.detach()) * len(x)
        n += len(x)
    return total / max(n, 1)


def _end_epoch(run: Run, summary: dict[str, Any], *, train_loss: float, train_s: float) -> None:
    """Rank 0: log the epoch, update early stopping, write last.pt/best.pt, log.csv and metrics.json."""
    state, cfg = run.state, run.cfg
    n_train = len(run.loaders.train) * cfg.optim.batch_size * run.info.world_size
    state.history.append(log_row(state, summary, lr=run.optimizer.param_groups[0]["lr"], train_loss=train_loss,
                                 train_s=train_s, n_train=n_train))
    summary["selected_by"], score = selection_score(
        summary, cfg.early_stopping.select_by, classifier_frozen=cfg.model.freeze_classifier)
    improved = state.record(score, cfg.early_stopping)
    log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val mAP %.4f%s (%s)%s", state.epoch, cfg.optim.epochs,
             train_loss, summary["loss"], summary["map"], " *" if improved else "",
             ", ".join(f"{k} AP {v['ap']:.3f} F1 {v['f1']:.3f}" for k, v in summary["classes"].items()),
             "".join(f"; {k} mask IoU {v['iou']:.3f}, area ratio {v['area_ratio']:.3f}"
                     + (f", count scale {v['area_scale']:.3f}" if "area_scale" in v else "")
                     for k, v in summary.get("masks", {}).items()))
    meta = validated_meta(run.prep.meta, summary, state.epoch, keep_thresholds=cfg.model.freeze_classifier)
    write_epoch_files(run, meta, summary, improved=improved)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
