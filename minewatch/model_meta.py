"""The metadata a model artefact carries, so a field laptop needs that one file and nothing else.

Stored as JSON under the key ``minewatch`` in the ONNX ``metadata_props`` and in training checkpoints.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from minewatch.classes import MASK_NAMES
from minewatch.config import StrictModel, explain_validation_error
from minewatch.errors import UserError

META_KEY = "minewatch"
FORMAT_VERSION = 2
"""Newest metadata format this version reads. 2 adds the dense head (``masks``, ``mask_px``,
``mask_threshold``); a model without masks is still written as format 1, so older minewatch versions read it."""
MASK_FIELDS = ("masks", "mask_px", "mask_threshold", "mask_area_scale")


class ThermalInput(StrictModel):
    """How thermal enters the model: excess over a robust local background, never raw temperature."""

    mode: Literal["anomaly"] = "anomaly"
    background_m: float = Field(description="side of the local background window, metres")
    background_gsd_m: float = Field(description="grid on which the background is estimated, metres")
    dt_scale_k: float = Field(description="dT is divided by this before entering the model")
    dt_clip_k: float = Field(description="dT is clipped to +-this before scaling")
    required: bool = Field(default=False, description="False: the model was trained with thermal dropout")


class ModelMeta(StrictModel):
    """Everything needed to use a model: classes, inputs, normalisation, thresholds, geometry."""

    format_version: int = 1
    model_version: str = Field(description="minewatch version that trained the model")
    backbone: str
    classes: tuple[str, ...] = Field(min_length=1)
    profile: str = Field(description="sensor profile the model was trained on")
    optical_bands: tuple[str, ...] = Field(min_length=1, description="optical band names, in model input order")
    channels: tuple[str, ...] = Field(description="all input channels, in order")
    mean: tuple[float, ...] = Field(description="per optical band mean of reflectance")
    std: tuple[float, ...] = Field(description="per optical band std of reflectance")
    thresholds: dict[str, float] = Field(description="calibrated per-class decision thresholds")
    gsd_m: float = Field(gt=0, description="metres per pixel of the model grid")
    tile_m: float = Field(gt=0, description="tile side in metres")
    stride_m: float = Field(gt=0, description="default scan stride in metres")
    tile_px: int = Field(gt=0, le=4096)
    thermal: ThermalInput
    config_sha256: str = ""
    created: str = ""
    metrics: dict[str, float] = Field(default_factory=dict, description="validation figures")
    masks: tuple[str, ...] = Field(
        default=(), description="dense-head masks in output order (see minewatch.classes.MASK_NAMES); empty: the "
                                "model has no dense head and sites are outlined by their windows")
    mask_px: int | None = Field(None, gt=0, le=4096,
                                description="side of each mask in pixels; masks cover the whole window, so "
                                            "tile_m / mask_px metres per mask pixel")
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="mask probability that marks an object pixel")
    mask_area_scale: dict[str, float] = Field(
        default_factory=dict,
        description="per mask, true area over summed probability near the thresholded mask on validation "
                    "scenes: what a container count or fan area is multiplied by (calibrated like thresholds)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelMeta:
        """Fields that must agree with each other: a model whose metadata contradicts itself would scan
        to wrong results without an error."""
        n = len(self.optical_bands)
        if len(self.mean) != n or len(self.std) != n:
            raise ValueError(f"mean/std have {len(self.mean)}/{len(self.std)} values for {n} optical bands")
        if any(not (v > 0) for v in self.std):
            raise ValueError("std values must be positive")
        if tuple(self.channels[:n]) != tuple(self.optical_bands):
            raise ValueError("channels must start with the optical bands")
        missing = [c for c in self.classes if c not in self.thresholds]
        if missing:
            raise ValueError(f"no threshold for classes {missing}")
        if any(not (0 < self.thresholds[c] < 1) for c in self.classes):
            raise ValueError("thresholds must lie between 0 and 1")
        if abs(self.tile_px * self.gsd_m - self.tile_m) > self.gsd_m:
            raise ValueError(f"tile_px {self.tile_px} at {self.gsd_m} m/px is not tile_m {self.tile_m} m")
        unknown = [m for m in self.masks if m not in MASK_NAMES]
        if unknown or len(set(self.masks)) != len(self.masks):
            raise ValueError(f"masks must be distinct names of {MASK_NAMES}, got {list(self.masks)}")
        if any(k not in self.masks or not (0 < v < 10) for k, v in self.mask_area_scale.items()):
            raise ValueError(f"mask_area_scale must be for listed masks and between 0 and 10: {self.mask_area_scale}")
        if self.masks and self.mask_px != self.tile_px:
            raise ValueError(f"mask_px {self.mask_px} must equal tile_px {self.tile_px} (masks on the model grid)")
        return self

    @property
    def dense(self) -> bool:
        """True when the model has a dense head (a ``masks`` output)."""
        return bool(self.masks)

    @property
    def mask_gsd_m(self) -> float:
        """Metres per mask pixel."""
        return self.tile_m / self.mask_px if self.mask_px else self.gsd_m

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        if self.masks:
            data["format_version"] = max(int(data["format_version"]), 2)
        else:  # a classifier-only model stays format 1, readable by versions that predate the dense head
            for key in MASK_FIELDS:
                data.pop(key, None)
            data["format_version"] = min(int(data["format_version"]), 1)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "<model>") -> ModelMeta:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise UserError("model metadata is not valid JSON", path=source,
                            fix="re-export the model with 'minewatch export'") from None
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise UserError("model was written by a newer minewatch", path=source, fix="upgrade minewatch")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise UserError(f"model metadata is invalid ({explain_validation_error(exc, cls)})", path=source,
                            fix="re-export the model with 'minewatch export'") from None
