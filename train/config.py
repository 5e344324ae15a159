"""The training configuration: one YAML file, every field documented, unknown keys refused.

Scenes come either as a list of scene folders (``optical.tif``, optional ``thermal.tif``,
``truth.geojson``) or as a spec of generated scenes. Validation always uses other scenes than training:
tiles of one scene are strongly correlated, so validating on tiles of training scenes overstates skill.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from minewatch.config import StrictModel, read_yaml, resolve_config, validate
from minewatch.datasets.labels import LabelRule
from minewatch.datasets.thermal import DEFAULT_BACKGROUND_M
from minewatch.errors import UserError
from minewatch.train.models import BACKBONES, DEFAULT_BACKBONE

Backbone = Literal[
    "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"
]
assert set(Backbone.__args__) == set(BACKBONES)  # type: ignore[attr-defined]

DEMO_SEED = 2026
"""Seed of the scene ``minewatch demo`` shows: never trained or validated on."""


class GeneratedScenes(StrictModel):
    """Scenes made by ``minewatch synth`` (cached and reused when already present)."""

    seed: int = Field(description="seed of the first scene; scene k uses seed + k")
    count: int = Field(ge=1, description="number of scenes")
    profile: str | None = Field(None, description="sensor profile (default: model.profile)")
    size: int | None = Field(None, ge=64, description="optical raster side in pixels (default: the recipe's)")
    recipe: str | None = Field(None, description="synthetic-scene recipe name or YAML (default: built-in)")

    @property
    def seeds(self) -> range:
        return range(self.seed, self.seed + self.count)


class CatalogScenes(StrictModel):
    """The scenes of a site catalogue where analysts gave verdicts: confirmed sites are positives for their
    classes, rejected ones look-alike negatives, sites without a verdict left out (``minewatch catalog labels``
    writes them at the start of training)."""

    catalog: str = Field(description="the catalogue: a .gpkg file or a postgresql:// URL")
    complete_only: bool = Field(False, description="only scenes in which every sighted site has a verdict")


SceneSource = GeneratedScenes | list[Path | GeneratedScenes | CatalogScenes]
"""One generated-scenes spec, or a list of scene folders, generated-scene specs and catalogues (e.g. the
default recipe, a set of rare conditions from another recipe, and analysts' verdicts)."""


def scene_items(src: SceneSource) -> list[Path | GeneratedScenes | CatalogScenes]:
    """The folders and generated-scene specs of a source, as one list."""
    return [src] if isinstance(src, GeneratedScenes) else list(src)


def generated_specs(src: SceneSource) -> list[GeneratedScenes]:
    return [item for item in scene_items(src) if isinstance(item, GeneratedScenes)]


class DataConfig(StrictModel):
    """Where training and validation scenes come from and how tiles are drawn from them."""

    train_scenes: SceneSource = Field(description="a generated-scenes spec, or a list of scene folders and specs")
    val_scenes: SceneSource = Field(description="other scenes (or seeds) than training, for validation")
    negative_rasters: list[Path] = Field(
        default_factory=list,
        description="real imagery known to hold no mining (GeoTIFF files or folders of them, any CRS and pixel "
                    "size): every window is a negative for every class, drawn as a hard negative (your own region's "
                    "imagery teaches the model its look-alikes without a label)",
    )
    data_dir: Path | None = Field(
        None, description="cache of generated scenes (default: <run folder>/data); reused when present"
    )
    train_stride_m: float | None = Field(
        None, gt=0, description="stride of training windows, metres (default: model.stride_m)"
    )
    max_nodata: float = Field(0.5, ge=0, le=1, description="skip windows with more missing pixels than this")
    norm_tiles: int = Field(256, ge=1, description="windows sampled to estimate per-band mean and std")
    samples_per_epoch: int | None = Field(
        None, ge=1, description="windows drawn per epoch (default: the number of training windows)"
    )
    balance: float = Field(
        0.5, ge=0, le=1,
        description="sampler balancing: window weight = 1 / count(group)^balance, group = rarest positive "
                    "class or 'none'; 0 = natural frequencies, 1 = every group equally often",
    )
    confuser_m2: float | None = Field(
        None, gt=0,
        description="negative windows holding this much look-alike (or sub-threshold class) area, m2, are "
                    "their own sampling group, drawn as often as a class: hard negatives (None: off)",
    )
    cache: bool = Field(
        True, description="keep assembled windows in memory after the first read (small data sets only)"
    )
    cache_max_mb: float = Field(2048, gt=0, description="memory limit of that cache per process, MB")
    read_processes: int = Field(
        2, ge=1, description="processes that generate missing scenes and read all windows into the cache "
                             "before training (when they fit)"
    )

    @model_validator(mode="after")
    def _disjoint(self) -> DataConfig:
        for tr in generated_specs(self.train_scenes):
            for va in generated_specs(self.val_scenes):
                overlap = set(tr.seeds) & set(va.seeds)
                if overlap and (tr.profile, tr.size, tr.recipe) == (va.profile, va.size, va.recipe):
                    raise ValueError(f"validation seeds overlap training seeds ({min(overlap)}...)")
        folders = [{p.resolve() for p in scene_items(src) if isinstance(p, Path)}
                   for src in (self.train_scenes, self.val_scenes)]
        same = folders[0] & folders[1]
        if same:
            raise ValueError(f"scene folder(s) in both training and validation: {sorted(map(str, same))}")
        return self


class ModelConfig(StrictModel):
    """Backbone and the geometry of the model's input."""

    backbone: Backbone = Field(DEFAULT_BACKBONE, description="torchvision backbone (never downloaded)")
    profile: str = Field("drone", description="sensor profile: band names, scaling, model GSD")
    tile_m: float = Field(64.0, gt=0, description="window side in metres")
    stride_m: float | None = Field(None, gt=0, description="default scan stride in metres (default: tile_m)")
    gsd_m: float | None = Field(None, gt=0, description="model grid, metres/pixel (default: the profile's)")
    masks: list[Literal["container", "cooling", "heat"]] = Field(
        default_factory=list,
        description="dense head: per-pixel masks to learn beside the tile classifier, from the truth objects "
                    "(container bodies, fan banks and evaporative walls, visible heat; minewatch.classes."
                    "MASK_DESCRIPTIONS); scans then outline sites by their objects and count containers. "
                    "Empty: classifier only",
    )
    decoder_channels: int = Field(32, ge=8, le=256, description="dense head width at strides 8 and 16 "
                                                                "(3/4 of it at stride 4, 1/2 at stride 2)")
    decoder_fine_channels: int = Field(
        0, ge=0, le=64, description="width of a last dense-head level at stride 1 that also sees the input "
                                    "bands (resolves the gaps between containers a count depends on); 0: none, "
                                    "masks are upsampled from stride 2")
    init: Path | None = Field(
        None, description="start from this checkpoint's weights and normalisation (a minewatch .pt, e.g. "
                          "models/minewatch-drone.pt): fine-tuning, e.g. on analysts' verdicts")

    freeze_classifier: bool = Field(
        False, description="train the dense head alone, from model.init's classifier: the backbone and the "
                           "classifier head keep its weights bit for bit, so the tile scores, thresholds and "
                           "every tile figure stay that model's; a step costs a forward pass of the backbone")

    @model_validator(mode="after")
    def _distinct_masks(self) -> ModelConfig:
        if len(set(self.masks)) != len(self.masks):
            raise ValueError(f"model.masks lists a mask twice: {self.masks}")
        if self.freeze_classifier and not (self.masks and self.init):
            raise ValueError("model.freeze_classifier trains the dense head of model.init's classifier: "
                             "it needs model.masks and model.init")
        return self


class OptimConfig(StrictModel):
    """AdamW with linear warm-up and cosine decay, stepped per batch."""

    lr: float = Field(2e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW decoupled weight decay")
    epochs: int = Field(10, ge=1, description="maximum number of epochs")
    batch_size: int = Field(32, ge=1, description="windows per step (per process under DDP)")
    warmup_epochs: float = Field(0.5, ge=0, description="linear warm-up length, epochs")
    min_lr_ratio: float = Field(0.02, ge=0, le=1, description="final learning rate as a share of the peak")
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient norm to this (None: off)")
    ema_decay: float | None = Field(
        None, gt=0, lt=1,
        description="validate, checkpoint and export an exponential moving average of the weights with this "
                    "decay per step, e.g. 0.998 (None: the raw weights)",
    )


class LossConfig(StrictModel):
    """Multi-label loss and its answer to class imbalance."""

    kind: Literal["bce", "focal"] = Field("bce", description="binary cross-entropy or focal loss")
    pos_weight: Literal["auto"] | list[float] | None = Field(
        "auto",
        description="BCE weight of positives per class; 'auto' = negatives/positives as the sampler draws "
                    "them, clipped to max_pos_weight; None = 1",
    )
    max_pos_weight: float = Field(20.0, ge=1, description="upper bound of an automatic pos_weight")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss focusing exponent")
    focal_alpha: float | None = Field(0.25, ge=0, le=1, description="focal weight of positives (None: off)")
    heat_needs_thermal: bool = Field(
        False,
        description="ignore the heat_signature target of training windows without thermal (dropped or "
                    "missing): heat cannot be seen there, and learning it from optical cues alone teaches "
                    "the model to call every farm hot",
    )
    dense_weight: float = Field(
        1.0, ge=0,
        description="weight of the dense head's loss (per-pixel BCE + soft Dice, mean over masks) added to the "
                    "classifier's; the heat mask is never learnt where thermal is missing",
    )


class AugmentConfig(StrictModel):
    """Training-time augmentation. Geometry moves all channels together; photometry touches optical only."""

    enabled: bool = Field(True, description="switch all augmentation off (validation never augments)")
    flip_p: float = Field(0.5, ge=0, le=1, description="probability of a horizontal and of a vertical flip")
    rotate90_p: float = Field(0.5, ge=0, le=1, description="probability of a random multiple of 90 degrees")
    affine_p: float = Field(0.3, ge=0, le=1, description="probability of a small scale/rotation")
    scale: tuple[float, float] = Field((0.9, 1.1), description="affine scale range")
    rotate_deg: float = Field(10.0, ge=0, le=45, description="affine rotation range, +- degrees")
    band_p: float = Field(0.5, ge=0, le=1, description="per optical band: probability of brightness/contrast")
    brightness: float = Field(0.08, ge=0, le=0.5, description="per-band additive brightness, reflectance")
    contrast: float = Field(0.15, ge=0, le=0.9, description="per-band relative contrast change")
    noise_p: float = Field(0.2, ge=0, le=1, description="probability of Gaussian sensor noise (optical)")
    noise_std: tuple[float, float] = Field((0.003, 0.02), description="noise sigma range, reflectance units")
    blur_p: float = Field(0.1, ge=0, le=1, description="probability of a Gaussian blur (optical)")
    blur_sigma: tuple[float, float] = Field((0.3, 1.0), description="blur sigma range, pixels")
    haze_p: float = Field(0.1, ge=0, le=1, description="probability of haze, a blend toward a bright veil")
    haze_strength: tuple[float, float] = Field((0.05, 0.3), description="haze blend weight range")
    jpeg_p: float = Field(0.0, ge=0, le=1, description="probability of JPEG compression artefacts (RGB)")
    jpeg_quality: tuple[int, int] = Field((30, 90), description="JPEG quality range")
    gamma_p: float = Field(0.0, ge=0, le=1, description="probability of a gamma change (display-encoded imagery)")
    gamma: tuple[float, float] = Field((0.7, 1.4), description="gamma range")
    hue_sat_p: float = Field(0.0, ge=0, le=1, description="probability of a hue/saturation shift (RGB)")
    hue_shift: float = Field(12.0, ge=0, le=90, description="hue shift range, +- degrees")
    saturation_shift: float = Field(40.0, ge=0, le=100, description="saturation shift range, +- (of 255)")
    sharpen_p: float = Field(0.0, ge=0, le=1, description="probability of sharpening (camera processing)")
    defocus_p: float = Field(0.0, ge=0, le=1, description="probability of a defocus blur")
    defocus_radius: tuple[int, int] = Field((1, 3), description="defocus radius range, pixels")
    downscale_p: float = Field(0.0, ge=0, le=1,
                               description="probability of a downscale-upscale (imagery resampled from coarser)")
    downscale: tuple[float, float] = Field((0.35, 0.8), description="downscale factor range")
    thermal_dropout_p: float = Field(
        0.3, ge=0, le=1,
        description="probability of zeroing thermal_dt and thermal_valid (thermal-less scenes stay scorable)",
    )


SelectBy = Literal["auto", "map", "masks", "map+masks"]


class EarlyStopConfig(StrictModel):
    """Which validation figure picks the best epoch, and stop when it has not improved for a while."""

    patience: int | None = Field(4, ge=1, description="epochs without gain before stopping (None: off)")
    min_delta: float = Field(1e-3, ge=0, description="smallest gain of the score that counts as an improvement")
    select_by: SelectBy = Field(
        "auto", description="the score: tile mAP, mean mask IoU, or their mean (map+masks); auto: masks when the "
        "classifier is frozen (its mAP cannot move), else map")


class ThermalConfig(StrictModel):
    """How thermal enters the model (recorded in the model metadata, used identically by scan)."""

    background_m: float = Field(DEFAULT_BACKGROUND_M, gt=0, description="local background window, metres")
    background_gsd_m: float | None = Field(
        None, gt=0, description="grid of the background estimate, metres (default: background_m / 4)"
    )
    dt_scale_k: float = Field(10.0, gt=0, description="thermal excess is divided by this, kelvin")
    dt_clip_k: float = Field(40.0, gt=0, description="thermal excess is clipped to +- this first, kelvin")


class TrainConfig(StrictModel):
    """A whole training run."""

    name: str = Field("minewatch", description="run name, recorded in logs")
    data: DataConfig
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    augmentation: AugmentConfig = AugmentConfig()
    early_stopping: EarlyStopConfig = EarlyStopConfig()
    thermal: ThermalConfig = ThermalConfig()
    labels: LabelRule = Field(default_factory=LabelRule, description="which tiles count as positive")
    seed: int = Field(0, description="seeds weights, sampling and augmentation: equal seeds, equal runs")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: read in the main process)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto = cuda > mps > cpu")
    amp: bool = Field(True, description="mixed precision (CUDA only; ignored elsewhere)")
    channels_last: bool = Field(True, description="NHWC memory format (CUDA only; ignored elsewhere)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")

    def sha256(self) -> str:
        """Hash of the validated config, recorded in the model metadata."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @model_validator(mode="after")
    def _masks_to_select_by(self) -> TrainConfig:
        if "masks" in self.early_stopping.select_by and not self.model.masks:
            raise ValueError(f"early_stopping.select_by {self.early_stopping.select_by!r} needs a dense head: "
                             "list model.masks, or select by map")
        return self

    @model_validator(mode="after")
    def _demo_seed(self) -> TrainConfig:
        for src in (self.data.train_scenes, self.data.val_scenes):
            if any(DEMO_SEED in spec.seeds for spec in generated_specs(src)):
                raise ValueError(f"generated scenes include the demo seed {DEMO_SEED}; pick other seeds")
        return self


def load_train_config(name_or_path: str | Path) -> tuple[TrainConfig, Path]:
    """A training preset by name (``smoke``, ``default``) or a YAML path, and the file it came from.

    Relative scene folders and ``data_dir`` are taken relative to the working directory, like paths on the
    command line. A config may start with ``extends: <name or path>`` and give only what it changes: each
    section merges key by key with the base's, a key's value replaces the base's whole.
    """
    path = resolve_config(name_or_path, "train")
    cfg = validate(_read_extended(path), TrainConfig, source=path)
    for key in ("train_scenes", "val_scenes"):
        if not scene_items(getattr(cfg.data, key)):
            raise UserError(f"data.{key} is empty", path=path, fix="list scene folders or generated specs")
    return cfg, path


def _read_extended(path: Path) -> dict[str, Any]:
    """The mapping of ``path`` with its ``extends`` chain merged in (sections key by key)."""
    data = read_yaml(path)
    seen = {path.resolve()}
    while "extends" in data:
        base_path = resolve_config(data.pop("extends"), "train")
        if base_path.resolve() in seen:
            raise UserError("training configs extend each other in a loop", path=path, fix="remove one 'extends'")
        seen.add(base_path.resolve())
        base = read_yaml(base_path)
        data = {k: {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                for k, v in {**base, **data}.items()}
    return data
