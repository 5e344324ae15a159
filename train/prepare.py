"""Everything built before the first step: scenes resolved (generated if asked), windows indexed,
normalisation and model metadata fixed, then the datasets, the balanced sampler and the loaders."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from minewatch import __version__
from minewatch.classes import CLASSES
from minewatch.datasets.bands import check_bands
from minewatch.datasets.model_input import InputSpec, channel_names
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.scene import SceneOpener
from minewatch.datasets.scene_folder import find_rasters, find_scenes
from minewatch.datasets.thermal import background_gsd
from minewatch.datasets.tiling import metres_to_pixels
from minewatch.errors import UserError
from minewatch.model_meta import ModelMeta, ThermalInput
from minewatch.train import ddp
from minewatch.train.augment import TileAugmenter
from minewatch.train.config import (
    CatalogScenes,
    GeneratedScenes,
    SceneSource,
    TrainConfig,
    generated_specs,
    scene_items,
)
from minewatch.train.dataset import (
    BalancedSampler,
    SceneWindows,
    TileDataset,
    ensure_generated,
    generated_paths,
    index_scenes,
    normalisation_stats,
    sample_weights,
)

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Data, model geometry and the metadata template of a run."""

    cfg: TrainConfig
    train_index: list[SceneWindows]
    val_index: list[SceneWindows]
    spec: InputSpec
    reader: SceneOpener
    meta: ModelMeta


def scene_folders(src: SceneSource, data_dir: Path, profile: str, info: ddp.DistInfo,
                  processes: int = 1) -> list[Path]:
    """Folders of every item of a source; generated ones are made by the main process only."""
    specs = generated_specs(src)
    if info.is_main:
        for spec in specs:
            ensure_generated(spec, data_dir, profile, processes)
    if specs:
        ddp.barrier(info)
    catalogs = [item for item in scene_items(src) if isinstance(item, CatalogScenes)]
    if info.is_main:
        for item in catalogs:
            catalog_labels(item, data_dir)
    if catalogs:
        ddp.barrier(info)
    folders: list[Path] = []
    for item in scene_items(src):
        if isinstance(item, GeneratedScenes):
            folders.extend(generated_paths(item, data_dir, profile))
        elif isinstance(item, CatalogScenes):
            folders.append(catalog_folder(item, data_dir))
        else:
            folders.append(item)
    return folders


def catalog_folder(item: CatalogScenes, data_dir: Path) -> Path:
    key = hashlib.sha1(f"{item.catalog}|{item.complete_only}".encode()).hexdigest()[:8]
    return data_dir / f"catalog-{key}"


def catalog_labels(item: CatalogScenes, data_dir: Path) -> Path:
    """Write the catalogue's verdicts as scene folders (afresh: verdicts change between runs)."""
    from minewatch.infer.catalog.labels import write_labels
    from minewatch.infer.catalog.store import opened

    data_dir.mkdir(parents=True, exist_ok=True)
    with opened(item.catalog) as store:
        result = write_labels(store, catalog_folder(item, data_dir), complete_only=item.complete_only)
    log.info("%s", result.summary())
    if not result.scenes:
        raise UserError("the catalogue holds no scene with a verdict and its raster", path=item.catalog,
                        fix="review sites (review_status confirmed/rejected) in QGIS first")
    return result.out


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
    train_scenes = find_scenes(scene_folders(cfg.data.train_scenes, data_dir, profile.name, info, procs))
    val_scenes = find_scenes(scene_folders(cfg.data.val_scenes, data_dir, profile.name, info, procs))
    shared = {s.folder.resolve() for s in train_scenes} & {s.folder.resolve() for s in val_scenes}
    if shared:
        raise UserError(f"{len(shared)} scene(s) are in both training and validation, e.g. {sorted(shared)[0]}",
                        fix="validate on other scenes than you train on")
    bg_gsd = background_gsd(cfg.thermal.background_m, cfg.thermal.background_gsd_m)
    reader = SceneOpener(profile, gsd, cfg.thermal.background_m, bg_gsd)
    common = dict(tile_m=tile_m, tile_px=tile_px, bands=bands, rule=cfg.labels, classes=CLASSES,
                  max_nodata=cfg.data.max_nodata, confuser_m2=cfg.data.confuser_m2, masks=tuple(cfg.model.masks))
    negatives = find_rasters(cfg.data.negative_rasters, what="negative raster")
    train_index = index_scenes(train_scenes, reader, desc="indexing training scenes", stride_m=train_stride_m,
                               negatives=negatives, **common)
    val_index = index_scenes(val_scenes, reader, desc="indexing validation scenes", stride_m=stride_m, **common)
    thermal = ThermalInput(
        background_m=cfg.thermal.background_m, background_gsd_m=bg_gsd,
        dt_scale_k=cfg.thermal.dt_scale_k, dt_clip_k=cfg.thermal.dt_clip_k,
        required=not (cfg.augmentation.enabled and cfg.augmentation.thermal_dropout_p > 0),
    )
    if resumed_meta is not None:
        check_bands(resumed_meta.optical_bands, bands, path="checkpoint", what="the configured profile",
                    exact=True)
        mean, std = resumed_meta.mean, resumed_meta.std
    else:
        mean, std = normalisation_stats(train_index, reader, bands, n_tiles=cfg.data.norm_tiles, seed=cfg.seed)
    log.info("band mean %s, std %s", np.round(mean, 4).tolist(), np.round(std, 4).tolist())
    spec = InputSpec(bands, mean, std, thermal, tile_px)
    meta = ModelMeta(
        model_version=__version__, backbone=cfg.model.backbone, classes=CLASSES, profile=profile.name,
        optical_bands=bands, channels=channel_names(bands), mean=mean, std=std,
        thresholds=(dict(resumed_meta.thresholds) if resumed_meta is not None and cfg.model.freeze_classifier
                    else {c: 0.5 for c in CLASSES}), gsd_m=gsd, tile_m=tile_m, stride_m=stride_m, tile_px=tile_px,
        thermal=thermal, config_sha256=cfg.sha256(), created="",
        masks=tuple(cfg.model.masks), mask_px=tile_px if cfg.model.masks else None,
    )
    return Prepared(cfg, train_index, val_index, spec, reader, meta)


@dataclass
class Loaders:
    """The two datasets, the balanced sampler over training windows and the loaders that read them."""

    train_ds: TileDataset
    val_ds: TileDataset
    weights: np.ndarray  # sampling weight of each training window (what the sampler draws by)
    sampler: BalancedSampler
    train: DataLoader
    val: DataLoader

    def close(self) -> None:
        self.train_ds.close()
        self.val_ds.close()


def build_loaders(prep: Prepared, info: ddp.DistInfo, *, pin_memory: bool) -> Loaders:
    """Augmented, balanced training batches (this rank's share) and plain validation batches in order."""
    cfg = prep.cfg
    augmenter = (TileAugmenter(cfg.augmentation, prep.meta.channels, prep.spec.mean, prep.spec.std)
                 if cfg.augmentation.enabled else None)
    cache_mb = cfg.data.cache_max_mb if cfg.data.cache else 0.0
    train_ds = TileDataset(prep.train_index, prep.spec, prep.reader, augmenter=augmenter, cache_mb=cache_mb,
                           heat_needs_thermal=cfg.loss.heat_needs_thermal)
    val_ds = TileDataset(prep.val_index, prep.spec, prep.reader, cache_mb=cache_mb)
    weights = sample_weights(train_ds.targets, cfg.data.balance, train_ds.confusers)
    n_samples = cfg.data.samples_per_epoch or len(train_ds)
    sampler = BalancedSampler(weights, num_samples=n_samples, seed=cfg.seed, rank=info.rank,
                              world_size=info.world_size)
    batch = cfg.optim.batch_size
    drop_last = len(sampler) > batch  # a batch of one breaks BatchNorm
    loader_kw: dict[str, Any] = dict(num_workers=cfg.num_workers, pin_memory=pin_memory,
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
    if info.is_main:
        _log_data(train_ds, val_ds, n_samples, len(train_loader))
    return Loaders(train_ds, val_ds, weights, sampler, train_loader, val_loader)


def _log_data(train_ds: TileDataset, val_ds: TileDataset, n_samples: int, steps: int) -> None:
    for name, ds in (("training", train_ds), ("validation", val_ds)):
        pos = ds.targets.sum(axis=0).tolist() if len(ds) else [0] * len(CLASSES)
        log.info("%s: %d windows from %d scenes; positives %s%s", name, len(ds), len(ds.index),
                 dict(zip(CLASSES, pos, strict=True)),
                 "" if ds.confusers is None else f"; {int(ds.confusers.sum())} look-alike negatives")
    log.info("%d windows drawn per epoch, %d steps per epoch per process", n_samples, steps)
