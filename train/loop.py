"""The training loop: scenes -> windows -> backbone -> checkpoints with calibrated thresholds.

AdamW with warm-up and cosine decay; class imbalance met twice, by a balanced sampler and by
``pos_weight`` (computed on what the sampler draws, so the two do not double-count) or focal loss;
validation on other scenes than training every epoch (per-class AP, F1-optimal thresholds); early
stopping on validation mAP; ``last.pt`` and ``best.pt`` every epoch, ``--resume`` continues bit for bit.
AMP and channels-last are used on CUDA only; the same code runs on CPU and under ``torchrun`` (DDP).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from minewatch import __version__
from minewatch.atomic import atomic_path
from minewatch.classes import CLASSES
from minewatch.datasets.features import InputSpec, channel_names
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.tiling import metres_to_pixels
from minewatch.errors import UserError
from minewatch.model_meta import ModelMeta, ThermalInput
from minewatch.progress import progress
from minewatch.train import ddp
from minewatch.train.augment import TileAugmenter
from minewatch.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from minewatch.train.config import (
    GeneratedScenes,
    SceneSource,
    TrainConfig,
    generated_specs,
    load_train_config,
    scene_items,
)
from minewatch.train.dataset import (
    BalancedSampler,
    SceneReader,
    SceneWindows,
    TileDataset,
    check_bands,
    ensure_generated,
    find_scenes,
    generated_paths,
    index_scenes,
    normalisation_stats,
    sample_weights,
)
from minewatch.train.device import pick_device
from minewatch.train.ema import WeightAverage
from minewatch.train.loss import build_loss
from minewatch.train.models import build_model
from minewatch.train.optim import build_optimizer
from minewatch.train.validation import predict_windows, validated_meta, validation_summary

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- run state
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


@dataclass
class Prepared:
    """Everything built before the first step: data, model geometry, metadata template."""

    cfg: TrainConfig
    train_index: list[SceneWindows]
    val_index: list[SceneWindows]
    spec: InputSpec
    reader: SceneReader
    meta: ModelMeta


def _scene_folders(src: SceneSource, data_dir: Path, profile: str, info: ddp.DistInfo,
                   processes: int = 1) -> list[Path]:
    """Folders of every item of a source; generated ones are made by the main process only."""
    specs = generated_specs(src)
    if info.is_main:
        for spec in specs:
            ensure_generated(spec, data_dir, profile, processes)
    if specs:
        ddp.barrier(info)
    folders: list[Path] = []
    for item in scene_items(src):
        folders.extend(generated_paths(item, data_dir, profile) if isinstance(item, GeneratedScenes) else [item])
    return folders


def prepare(cfg: TrainConfig, out: Path, info: ddp.DistInfo, resumed_meta: ModelMeta | None) -> Prepared:
    """Resolve scenes (generating them if asked), index windows, fix normalisation and metadata."""
    profile = load_profile(cfg.model.profile)
    bands = tuple(profile.optical.bands)
    gsd = cfg.model.gsd_m or profile.model_gsd_m
    tile_px = metres_to_pixels(cfg.model.tile_m, gsd)
    tile_m = tile_px * gsd
    stride_m = cfg.model.stride_m or cfg.model.tile_m
    train_stride_m = cfg.data.train_stride_m or stride_m
    data_dir = cfg.data.data_dir or (out / "data")
    procs = cfg.data.read_processes
    train_scenes = find_scenes(_scene_folders(cfg.data.train_scenes, data_dir, profile.name, info, procs))
    val_scenes = find_scenes(_scene_folders(cfg.data.val_scenes, data_dir, profile.name, info, procs))
    shared = {s.folder.resolve() for s in train_scenes} & {s.folder.resolve() for s in val_scenes}
    if shared:
        raise UserError(f"{len(shared)} scene(s) are in both training and validation, e.g. {sorted(shared)[0]}",
                        fix="validate on other scenes than you train on")
    background_gsd = cfg.thermal.background_gsd_m or cfg.thermal.background_m / 4
    reader = SceneReader(profile, gsd, cfg.thermal.background_m, background_gsd)
    common = dict(tile_m=tile_m, tile_px=tile_px, bands=bands, rule=cfg.labels, classes=CLASSES,
                  max_nodata=cfg.data.max_nodata, confuser_m2=cfg.data.confuser_m2)
    train_index = index_scenes(train_scenes, reader, desc="indexing training scenes", stride_m=train_stride_m,
                               **common)
    val_index = index_scenes(val_scenes, reader, desc="indexing validation scenes", stride_m=stride_m, **common)
    thermal = ThermalInput(
        background_m=cfg.thermal.background_m, background_gsd_m=background_gsd,
        dt_scale_k=cfg.thermal.dt_scale_k, dt_clip_k=cfg.thermal.dt_clip_k,
        required=not (cfg.augmentation.enabled and cfg.augmentation.thermal_dropout_p > 0),
    )
    if resumed_meta is not None:
        check_bands(resumed_meta.optical_bands, bands, "checkpoint", what="configured profile")
        mean, std = resumed_meta.mean, resumed_meta.std
    else:
        mean, std = normalisation_stats(train_index, reader, bands, n_tiles=cfg.data.norm_tiles, seed=cfg.seed)
    log.info("band mean %s, std %s", np.round(mean, 4).tolist(), np.round(std, 4).tolist())
    spec = InputSpec(bands, mean, std, thermal, tile_px)
    meta = ModelMeta(
        model_version=__version__, backbone=cfg.model.backbone, classes=CLASSES, profile=profile.name,
        optical_bands=bands, channels=channel_names(bands), mean=mean, std=std,
        thresholds={c: 0.5 for c in CLASSES}, gsd_m=gsd, tile_m=tile_m, stride_m=stride_m, tile_px=tile_px,
        thermal=thermal, config_sha256=cfg.sha256(), created="",
    )
    return Prepared(cfg, train_index, val_index, spec, reader, meta)


# ------------------------------------------------------------------------------------------- main entry
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
        return _train(cfg, out, info, dev, resume=resume, weights=weights, stop_after=stop_after_epochs)
    finally:
        ddp.shutdown(created)


def _train(cfg: TrainConfig, out: Path, info: ddp.DistInfo, dev: torch.device, *, resume: bool,
           weights: Path | None, stop_after: int | None) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    last, best = out / "last.pt", out / "best.pt"
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

    _seed_everything(cfg.seed)
    prep = prepare(cfg, out, info, ckpt["meta_obj"] if ckpt else None)
    use_cuda = dev.type == "cuda"
    amp = cfg.amp and use_cuda
    channels_last = cfg.channels_last and use_cuda

    augmenter = (TileAugmenter(cfg.augmentation, prep.meta.channels, prep.spec.mean, prep.spec.std)
                 if cfg.augmentation.enabled else None)
    cache_mb = cfg.data.cache_max_mb if cfg.data.cache else 0.0
    train_ds = TileDataset(prep.train_index, prep.spec, prep.reader, augmenter=augmenter, cache_mb=cache_mb,
                           heat_needs_thermal=cfg.loss.heat_needs_thermal)
    val_ds = TileDataset(prep.val_index, prep.spec, prep.reader, cache_mb=cache_mb)
    weights_np = sample_weights(train_ds.targets, cfg.data.balance, train_ds.confusers)
    n_samples = cfg.data.samples_per_epoch or len(train_ds)
    sampler = BalancedSampler(weights_np, num_samples=n_samples, seed=cfg.seed, rank=info.rank,
                              world_size=info.world_size)
    batch = cfg.optim.batch_size
    drop_last = len(sampler) > batch  # a batch of one breaks BatchNorm
    loader_kw: dict[str, Any] = dict(num_workers=cfg.num_workers, pin_memory=use_cuda,
                                     persistent_workers=cfg.num_workers > 0)
    if cfg.num_workers > 0:
        # Fresh worker processes: a fork of a process holding GDAL/OpenMP locks can deadlock, and spawned
        # workers open their own raster handles anyway.
        loader_kw["multiprocessing_context"] = "spawn"
    train_loader = DataLoader(train_ds, batch_size=batch, sampler=sampler, drop_last=drop_last, **loader_kw)
    val_loader = DataLoader(val_ds, batch_size=batch * 2, shuffle=False, **loader_kw)
    if cache_mb and cfg.num_workers == 0:  # the cache lives in this process: fill it in parallel first
        train_ds.prefill(cfg.data.read_processes, desc="reading training windows")
        if info.is_main:
            val_ds.prefill(cfg.data.read_processes, desc="reading validation windows")
    steps_per_epoch = len(train_loader)
    _log_data(train_ds, val_ds, n_samples, steps_per_epoch, info)

    model = build_model(cfg.model.backbone, len(prep.meta.channels), len(CLASSES),
                        weights=weights if ckpt is None else None).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, train_ds.targets, weights_np, dev)
    optimizer, scheduler = build_optimizer(model, cfg.optim, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    state = RunState()
    ema = WeightAverage(model, cfg.optim.ema_decay) if cfg.optim.ema_decay else None
    if ckpt is not None:
        model.load_state_dict(ckpt.get("train_state") or ckpt["model_state"])
        if ema is not None:
            ema.model.load_state_dict(ckpt["model_state"])
            ema.updates = int(ckpt["ema_updates"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        if scaler.is_enabled() and ckpt.get("scaler_state"):  # empty when saved on CPU
            scaler.load_state_dict(ckpt["scaler_state"])
        state = RunState(**ckpt["run_state"])
        log.info("resuming after epoch %d (step %d, best mAP %.4f)", state.epoch, state.step, state.best_map)
    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if use_cuda else None)
    if ckpt is not None:
        set_rng_state(ckpt["rng_state"])  # last: building the model above consumed random numbers

    try:
        _run_epochs(cfg, state, prep, model, net, train_loader, val_loader, sampler, loss_fn, optimizer, scheduler,
                    scaler, dev, info, out, stop_after=stop_after, amp=amp, channels_last=channels_last,
                    steps_per_epoch=steps_per_epoch, batch=batch, ema=ema)
    finally:
        train_ds.close()
        val_ds.close()
    return best


def _run_epochs(cfg: TrainConfig, state: RunState, prep: Prepared, model: nn.Module, net: nn.Module,
                train_loader: DataLoader, val_loader: DataLoader, sampler: BalancedSampler, loss_fn: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler, dev: torch.device,
                info: ddp.DistInfo, out: Path, *, stop_after: int | None, amp: bool, channels_last: bool,
                steps_per_epoch: int, batch: int, ema: WeightAverage | None = None) -> None:
    ran = 0
    while state.epoch < cfg.optim.epochs and not state.stopped_early:
        if stop_after is not None and ran >= stop_after:
            break
        epoch = state.epoch
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        train_loss = _train_epoch(net, train_loader, loss_fn, optimizer, scheduler, scaler, dev, cfg,
                                  channels_last=channels_last, amp=amp, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                                  ema=ema)
        train_s = time.perf_counter() - t0
        state.step += steps_per_epoch
        state.epoch += 1
        ran += 1
        summary = None
        if info.is_main:
            probs, targets = predict_windows(ema.model if ema else model, val_loader, dev,
                                             channels_last=channels_last, amp=amp)
            summary = validation_summary(probs, targets)
            _after_epoch(state, summary, cfg, prep, model, optimizer, scheduler, scaler, info, out,
                         train_loss=train_loss, train_s=train_s, lr=optimizer.param_groups[0]["lr"],
                         n_train=steps_per_epoch * batch * info.world_size, ema=ema)
        state.stopped_early = bool(ddp.broadcast(info, state.stopped_early))
        ddp.barrier(info)


def _train_epoch(net: nn.Module, loader: DataLoader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: torch.amp.GradScaler, dev: torch.device, cfg: TrainConfig, *,
                 channels_last: bool, amp: bool, desc: str, ema: WeightAverage | None = None) -> float:
    net.train()
    total, n = 0.0, 0
    for x, y in progress(loader, total=len(loader), desc=desc, unit="batch"):
        x = x.to(dev, non_blocking=True)
        y = y.to(dev, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
            logits = net(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net)
        total += float(loss.detach()) * len(x)
        n += len(x)
    return total / max(n, 1)


def _after_epoch(state: RunState, summary: dict[str, Any], cfg: TrainConfig, prep: Prepared, model: nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                 info: ddp.DistInfo, out: Path, *, train_loss: float, train_s: float, lr: float,
                 n_train: int, ema: WeightAverage | None = None) -> None:
    """Rank 0: log the epoch, update early stopping, write last.pt/best.pt, log.csv and metrics.json."""
    m_ap = summary["map"]
    row: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "lr": lr, "train_loss": train_loss,
                           "val_loss": summary["loss"], "val_map": m_ap, "train_s": round(train_s, 2),
                           "tiles_per_s": round(n_train / max(train_s, 1e-9), 1)}
    for name, m in summary["classes"].items():
        row[f"ap_{name}"] = m["ap"]
        row[f"f1_{name}"] = m["f1"]
    state.history.append(row)
    improved = m_ap > state.best_map + cfg.early_stopping.min_delta or state.best_epoch == 0
    if improved:
        state.best_map, state.best_epoch, state.bad_epochs = m_ap, state.epoch, 0
    else:
        state.bad_epochs += 1
        if cfg.early_stopping.patience is not None and state.bad_epochs >= cfg.early_stopping.patience:
            state.stopped_early = True
            log.info("early stop: no mAP gain for %d epochs", state.bad_epochs)
    log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val mAP %.4f%s (%s)", state.epoch, cfg.optim.epochs,
             train_loss, summary["loss"], m_ap, " *" if improved else "",
             ", ".join(f"{k} AP {v['ap']:.3f} F1 {v['f1']:.3f}" for k, v in summary["classes"].items()))
    meta = validated_meta(prep.meta, summary, state.epoch)
    payload = {
        "meta": meta.to_json(),
        "config": cfg.model_dump(mode="json"),
        "model_state": _cpu_state(ema.model if ema else model),
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "scaler_state": scaler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best_map": state.best_map,
        "world_size": info.world_size,
        "run_state": {k: v for k, v in state.__dict__.items()},
        "rng_state": rng_state(),
        **({"train_state": _cpu_state(model), "ema_updates": ema.updates} if ema else {}),
        "validation": _jsonable(summary),
    }
    save_checkpoint(out / "last.pt", payload)
    if improved:
        save_checkpoint(out / "best.pt", payload)
        _write_json(out / "metrics.json", {
            "best_epoch": state.best_epoch, "best_map": state.best_map, "epochs_run": state.epoch,
            "train_windows": int(sum(len(s.tiles) for s in prep.train_index)),
            "val_windows": summary["n"], "world_size": info.world_size, "classes": _jsonable(summary["classes"]),
            "meta": json.loads(meta.to_json()),
        })
    else:
        _update_json(out / "metrics.json", {"epochs_run": state.epoch, "stopped_early": state.stopped_early})
    _write_csv(out / "log.csv", state.history)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _jsonable(obj: Any) -> Any:
    """NaN/inf to None so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _update_json(path: Path, update: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(update)
    _write_json(path, data)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def _log_data(train_ds: TileDataset, val_ds: TileDataset, n_samples: int, steps: int, info: ddp.DistInfo) -> None:
    if not info.is_main:
        return
    for name, ds in (("training", train_ds), ("validation", val_ds)):
        pos = ds.targets.sum(axis=0).tolist() if len(ds) else [0] * len(CLASSES)
        log.info("%s: %d windows from %d scenes; positives %s%s", name, len(ds), len(ds.index),
                 dict(zip(CLASSES, pos, strict=True)),
                 "" if ds.confusers is None else f"; {int(ds.confusers.sum())} look-alike negatives")
    log.info("%d windows drawn per epoch, %d steps per epoch per process", n_samples, steps)


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
