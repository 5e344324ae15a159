"""A training run's live state: the objects built once and handed to every step, and its counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minewatch.classes import CLASSES
from minewatch.errors import UserError
from minewatch.train import ddp
from minewatch.train.checkpoint import set_rng_state
from minewatch.train.config import EarlyStopConfig, TrainConfig
from minewatch.train.ema import WeightAverage
from minewatch.train.loss import DenseLoss, MultiLabelLoss, build_loss
from minewatch.train.models import build_model
from minewatch.train.optim import build_optimizer
from minewatch.train.prepare import Loaders, Prepared, build_loaders
from minewatch.train.run_files import restore_checkpoint

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Counters that a checkpoint carries besides the tensors."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_map: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    def record(self, score: float, rule: EarlyStopConfig) -> bool:
        """Count this epoch's validation score (:func:`~minewatch.train.validation.selection_score`) towards
        early stopping; True when it is the best so far."""
        improved = score > self.best_map + rule.min_delta or self.best_epoch == 0
        if improved:
            self.best_map, self.best_epoch, self.bad_epochs = score, self.epoch, 0
        else:
            self.bad_epochs += 1
            if rule.patience is not None and self.bad_epochs >= rule.patience:
                self.stopped_early = True
                log.info("early stop: no gain for %d epochs", self.bad_epochs)
        return improved


@dataclass
class Run:
    """The live objects of one training run, built by :func:`build_run`; the loop's functions take it whole."""

    prep: Prepared
    loaders: Loaders
    out: Path
    info: ddp.DistInfo
    device: torch.device
    model: nn.Module  # the weights the optimiser steps
    net: nn.Module  # what runs forward and backward: ``model``, or its DDP wrapper
    ema: WeightAverage | None
    loss_fn: MultiLabelLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp: bool  # mixed precision (CUDA only)
    channels_last: bool  # (CUDA only)
    state: RunState = field(default_factory=RunState)
    dense_loss: DenseLoss | None = None  # the dense head's loss (None: classifier only)

    @property
    def cfg(self) -> TrainConfig:
        return self.prep.cfg

    @property
    def scored(self) -> nn.Module:
        """The weights that are validated, checkpointed and exported: the average when there is one."""
        return self.ema.model if self.ema is not None else self.model


def build_run(prep: Prepared, out: Path, info: ddp.DistInfo, device: torch.device, *,
              weights: Path | None, ckpt: dict[str, Any] | None, init: dict[str, Any] | None = None) -> Run:
    """Loaders, model, loss, optimiser and schedule for ``prep``; from ``ckpt`` exactly where it stopped.

    ``weights`` initialise a new run's backbone (a resumed run takes the checkpoint's); ``init`` (a
    checkpoint, ``model.init``) gives a new run all its weights: a fine-tune.
    """
    cfg = prep.cfg
    use_cuda = device.type == "cuda"
    loaders = build_loaders(prep, info, pin_memory=use_cuda)
    model = build_model(cfg.model.backbone, len(prep.meta.channels), len(CLASSES),
                        weights=weights if ckpt is None else None, n_masks=len(cfg.model.masks),
                        decoder_channels=cfg.model.decoder_channels,
                        decoder_fine_channels=cfg.model.decoder_fine_channels).to(device)
    if init is not None and ckpt is None:
        _load_init(model, init, prep)
    if cfg.model.freeze_classifier:  # before the optimiser is built: it steps the decoder's parameters only
        model.freeze_classifier()
    channels_last = cfg.channels_last and use_cuda
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, loaders.train_ds.targets, loaders.weights, device)
    optimizer, scheduler = build_optimizer(model, cfg.optim, len(loaders.train))
    amp = cfg.amp and use_cuda
    run = Run(prep, loaders, out, info, device, model=model, net=model,
              ema=WeightAverage(model, cfg.optim.ema_decay) if cfg.optim.ema_decay else None,
              loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
              scaler=torch.amp.GradScaler("cuda", enabled=amp), amp=amp, channels_last=channels_last,
              dense_loss=DenseLoss().to(device) if cfg.model.masks else None)
    if ckpt is not None:
        restore_checkpoint(run, ckpt)
    if info.enabled:
        run.net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
    if ckpt is not None:
        set_rng_state(ckpt["rng_state"])  # last: building the model above consumed random numbers
    return run


def _load_init(model: nn.Module, init: dict[str, Any], prep: Prepared) -> None:
    """The fine-tune's starting weights; a checkpoint of another architecture or input is refused."""
    meta = init["meta_obj"]
    if (meta.backbone, tuple(meta.channels), tuple(meta.classes)) != (
            prep.cfg.model.backbone, tuple(prep.meta.channels), tuple(prep.meta.classes)):
        raise UserError(f"model.init is a {meta.backbone} on {', '.join(meta.channels)}; this config trains a "
                        f"{prep.cfg.model.backbone} on {', '.join(prep.meta.channels)}", path=prep.cfg.model.init,
                        fix="set model.backbone and model.profile to the init checkpoint's")
    # The dense head's decoder is the one part that may be new (a classifier-only checkpoint, other masks):
    # it then starts from random weights; the backbone and the classifier head always come from the init.
    # With a frozen classifier the head is always trained anew: the same run from a classifier or from a model
    # that has a head already.
    own = model.state_dict()
    fresh_head = prep.cfg.model.freeze_classifier
    state = {k: v for k, v in init["model_state"].items()
             if not k.startswith("decoder.") or (not fresh_head and k in own and own[k].shape == v.shape)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    lacking = [k for k in missing if not k.startswith("decoder.")]
    if unexpected or lacking:
        raise UserError(f"model.init's weights do not fit this model ({len(lacking)} tensors missing, "
                        f"{len(unexpected)} unexpected)", path=prep.cfg.model.init,
                        fix="set model.backbone and model.profile to the init checkpoint's")
    if missing:
        log.info("model.init lacks %d tensor(s) of the dense head for these masks: they start from random weights",
                 len(missing))
