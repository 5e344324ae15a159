"""What a raster's numbers mean: the scale to reflectance, and a nodata collar nobody tagged.

Read wrong, both ruin a scan silently: digital numbers taken as reflectance make a whole scene one bright
"site", and a black no-data wedge scanned as image is a dark, sharp-edged object. The rules are pure
functions of a small sample of the raster (:func:`sample_raster`), so a preflight can state what it chose
and why before any window is read; the user overrides them with ``--scale`` and ``--nodata``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from minewatch.datasets.profiles import OpticalSpec
from minewatch.errors import UserError

SAMPLE_BLOCKS = 16
"""Windows read across the raster to learn its value range (a few MB whatever the raster's size)."""
SAMPLE_PX = 256
BORDER_SAMPLES = 1024
"""Pixels read along each edge to look for an untagged collar."""
COLLAR_SHARE = 0.1
"""An edge with a run of this share of its length exactly 0 (or 255) in every band has a no-data collar;
a run, so that dark pixels scattered along an edge (shadows, stripes) are not taken for one."""
REFLECTANCE_MAX = 1.5
"""Floats up to this (99th percentile) are reflectance already (bright roofs and snow reach ~1)."""
SCALED_REFLECTANCE_MAX = 15_000
"""Reflectance stored x 10,000 (Sentinel-2, Landsat surface reflectance, most VHR products) stays below."""


@dataclass(frozen=True)
class ValueSample:
    """Percentiles of the optical bands (all bands together, valid pixels) and the edge pixels."""

    dtype: str
    p01: float
    p99: float
    vmax: float
    integral: bool  # every sampled value is a whole number
    border: tuple[np.ndarray, ...]  # (bands, n) pixels along each of the four edges


@dataclass(frozen=True)
class Scaling:
    """reflectance = value * scale + offset, and why that scale was chosen."""

    scale: float
    offset: float
    reason: str


def sample_raster(src: rasterio.DatasetReader, indexes: list[int], nodata: float | None) -> ValueSample:
    """Read a few windows spread over the raster and its four edges (reads of block size, not the raster)."""
    h, w = src.height, src.width
    side = min(SAMPLE_PX, h, w)
    n = max(1, int(math.sqrt(SAMPLE_BLOCKS)))
    parts = []
    for i in range(n):
        for j in range(n):
            r = int((h - side) * (i + 0.5) / n)
            c = int((w - side) * (j + 0.5) / n)
            parts.append(src.read(indexes, window=Window(c, r, side, side)).reshape(len(indexes), -1))
    values = np.concatenate(parts, axis=1).astype(np.float64)
    valid = np.isfinite(values).all(axis=0)
    if nodata is not None:
        valid &= ~(values == nodata).any(axis=0)
    good = values[:, valid]
    border = _edges(src, indexes)
    if good.size == 0:
        return ValueSample(src.dtypes[0], math.nan, math.nan, math.nan, True, border)
    p01, p99 = np.percentile(good, [1, 99])
    return ValueSample(src.dtypes[0], float(p01), float(p99), float(good.max()),
                       bool(np.all(good == np.round(good))), border)


def _edges(src: rasterio.DatasetReader, indexes: list[int]) -> tuple[np.ndarray, ...]:
    """Pixels along each edge and along a line ``COLLAR_DEPTH`` inward of it (8 lines, edge first)."""
    h, w = src.height, src.width
    out = []
    for depth in (0, min(collar_depth(h, w), max(0, min(h, w) - 1))):
        for win, shape in ((Window(0, depth, w, 1), (1, min(w, BORDER_SAMPLES))),
                           (Window(0, h - 1 - depth, w, 1), (1, min(w, BORDER_SAMPLES))),
                           (Window(depth, 0, 1, h), (min(h, BORDER_SAMPLES), 1)),
                           (Window(w - 1 - depth, 0, 1, h), (min(h, BORDER_SAMPLES), 1))):
            a = src.read(indexes, window=win, out_shape=(len(indexes), *shape), resampling=Resampling.nearest)
            out.append(a.reshape(len(indexes), -1))
    return tuple(out)


def collar_depth(height: int, width: int) -> int:
    """How far inward a collar must also hold: a real collar is deep, a dark edge line is not."""
    return max(3, min(height, width) // 100)


def choose_scaling(sample: ValueSample, spec: OpticalSpec, *, path, override: float | None = None) -> Scaling:
    """The scale to reflectance: ``override``, else the sensor profile's when the raster is stored as the
    profile says, else inferred from the value range (see the module docstring)."""
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise UserError(f"--scale {override} is not a positive number", path=path,
                            fix="give the factor that turns the raster's values into reflectance, e.g. 0.0001")
        return Scaling(override, 0.0, f"--scale {override:g}")
    if sample.dtype == spec.dtype:
        return Scaling(spec.scale, spec.offset, f"{spec.dtype} as the sensor profile stores it: x {spec.scale:g}")
    if not math.isfinite(sample.p99):
        return Scaling(1.0, 0.0, "no valid values sampled")
    lo, hi, top = sample.p01, sample.p99, sample.vmax
    what = f"{sample.dtype} values {lo:g}..{hi:g} (1st-99th percentile), max {top:g}"
    if lo < -0.05 * max(abs(hi), 1.0):
        raise UserError(f"{what}: negative values are not reflectance nor digital numbers", path=path,
                        fix="give optical reflectance or digital numbers, or pass --scale to say how to read them")
    if sample.dtype.startswith("float") and hi <= REFLECTANCE_MAX and not (sample.integral and top > 1):
        return Scaling(1.0, 0.0, f"{what}: reflectance")
    if top <= 255:
        return Scaling(1 / 255, 0.0, f"{what}: 8-bit digital numbers, / 255")
    for bits in (10, 11, 12):
        if sample.integral and top <= 2**bits - 1:
            return Scaling(1 / (2**bits - 1), 0.0, f"{what}: {bits}-bit digital numbers, / {2**bits - 1}")
    if hi <= SCALED_REFLECTANCE_MAX:
        return Scaling(1e-4, 0.0, f"{what}: reflectance x 10,000, x 0.0001")
    if top <= 65535:
        return Scaling(1 / 65535, 0.0, f"{what}: 16-bit digital numbers, / 65535")
    raise UserError(f"{what}: no known encoding of optical values", path=path,
                    fix="give reflectance (0..1), 8/16-bit digital numbers or reflectance x 10,000, or pass --scale")


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True."""
    if not flags.any():
        return 0
    edges = np.diff(np.r_[0, flags.astype(np.int8), 0])
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def collar_value(sample: ValueSample) -> float | None:
    """0 or 255 when an edge holds a run of at least ``COLLAR_SHARE`` of its length with that value in every
    band, and the line a few pixels inward does too (a no-data collar or wedge without a nodata tag)."""
    if len(sample.border) != 8:
        return None
    for value in (0, 255):
        if value == 255 and sample.dtype != "uint8":
            continue
        for edge, inner in zip(sample.border[:4], sample.border[4:], strict=True):
            if all(line.size and _longest_run((line == value).all(axis=0)) >= COLLAR_SHARE * line.shape[1]
                   for line in (edge, inner)):
                return float(value)
    return None
