"""From a scene window to the model's input tensor: the one place the channel layout is defined.

Channels: the optical bands (reflectance, normalised by the model's mean/std), ``thermal_dt`` (excess over
the robust local background in kelvin, clipped and scaled) and ``thermal_valid`` (1 where thermal exists).
A scene without thermal gets zeros in both thermal channels, which the model saw in training through
thermal dropout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from minewatch.model_meta import ModelMeta, ThermalInput

THERMAL_CHANNELS = ("thermal_dt", "thermal_valid")


@dataclass(frozen=True)
class InputSpec:
    """What the model expects as input (read from its metadata or a training config)."""

    optical_bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    thermal: ThermalInput
    tile_px: int

    @classmethod
    def from_meta(cls, meta: ModelMeta) -> InputSpec:
        return cls(meta.optical_bands, meta.mean, meta.std, meta.thermal, meta.tile_px)

    @property
    def channels(self) -> tuple[str, ...]:
        return channel_names(self.optical_bands)


def channel_names(optical_bands: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(optical_bands) + THERMAL_CHANNELS


def assemble(optical: np.ndarray, dt_k: np.ndarray | None, spec: InputSpec) -> np.ndarray:
    """(C, h, w) float32 model input from reflectance (B, h, w) and thermal excess (h, w) or None."""
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    opt = (optical - mean) / std
    opt = np.nan_to_num(opt, nan=0.0, posinf=0.0, neginf=0.0)
    h, w = optical.shape[1:]
    if dt_k is None:
        thermal = np.zeros((2, h, w), dtype=np.float32)
    else:
        valid = np.isfinite(dt_k)
        dt = np.clip(np.where(valid, dt_k, 0.0), -spec.thermal.dt_clip_k, spec.thermal.dt_clip_k)
        thermal = np.stack([dt / spec.thermal.dt_scale_k, valid.astype(np.float32)]).astype(np.float32)
    return np.concatenate([opt.astype(np.float32), thermal], axis=0)


def tile_input(scene, tile, spec: InputSpec) -> np.ndarray:
    """Read one tile of a :class:`~minewatch.datasets.scene.Scene` and assemble the model input."""
    optical = scene.read_optical(tile, spec.optical_bands)
    anomaly = scene.thermal_anomaly(tile)
    x = assemble(optical, None if anomaly is None else anomaly[0], spec)
    return pad_to(x, spec.tile_px)


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a (C, h, w) array to (C, size, size): only for scenes smaller than one tile."""
    c, h, w = x.shape
    if h == size and w == size:
        return x
    out = np.zeros((c, size, size), dtype=x.dtype)
    out[:, : min(h, size), : min(w, size)] = x[:, :size, :size]
    return out


def nodata_fraction(optical: np.ndarray) -> float:
    """Share of pixels with no optical data (NaN in any band)."""
    return float(np.isnan(optical).any(axis=0).mean()) if optical.size else 1.0


def cloud_mask(optical: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """(h, w) bool: bright, colourless pixels (the classic whiteness test on the visible bands).

    Thick cloud is bright (all visible reflectances > 0.5) and grey (spread < 15 % of the mean); a white
    roof is bright too, but a 64 m window of roof alone is rare, so a window is only skipped when most of
    it looks like cloud. Without red, green and blue nothing is called cloud.
    """
    vis = [bands.index(b) for b in ("red", "green", "blue") if b in bands]
    if len(vis) < 3:
        return np.zeros(optical.shape[1:], dtype=bool)
    v = optical[vis]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi, mean = np.nanmin(v, axis=0), np.nanmax(v, axis=0), np.nanmean(v, axis=0)
        return (lo > 0.5) & ((hi - lo) < 0.15 * mean)


def cloud_fraction(optical: np.ndarray, bands: tuple[str, ...]) -> float:
    """Share of cloud-like pixels in a window (see :func:`cloud_mask`)."""
    return float(np.mean(cloud_mask(optical, bands)))
