"""The scan's preflight: everything that can be known before the first window is read, checked.

A 300 m Landsat scene upsampled to a 0.5 m model grid plans 50 million windows; a stride of 1 mm never
ends; a model whose metadata contradicts its graph scans to nothing. Each is refused here in one line,
in seconds, with the fact and the fix; what is merely unusual (imagery much finer than the model grid, an
untagged nodata collar, digital numbers read with a guessed scale) is stated. ``minewatch scan
--dry-run`` prints the report and stops.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from minewatch.datasets.raster_io import RasterExtent, open_raster, raster_extent
from minewatch.errors import UserError
from minewatch.memory import proc_kib
from minewatch.model_meta import ModelMeta

DEFAULT_MAX_TILES = 250_000
"""Windows one scan may plan: a 20k x 20k px drone mosaic at 0.2-0.5 m plans 15k-100k; more is a mistake
(or a job for a mosaic split into scenes)."""
COARSE_FACTOR = 2.0
"""Imagery coarser than this many times the model's grid is refused: the model never saw it (a container
2.4 m wide is 5 px at 0.5 m, 2 px at 1.2 m, nothing at 30 m)."""
FINE_FACTOR = 10.0
"""Imagery this many times finer than the model grid is averaged down heavily: said, not refused."""
MIN_STRIDE_SHARE = 1 / 16
"""The stride may not be less than 1/16 of the window (256 times the windows of a stride of a tile)."""
BASE_MEMORY_MB = 450.0
"""Peak resident memory of a scan before its windows count (model, reader, GDAL cache; BENCHMARKS.md)."""
BYTES_PER_TILE = 600
"""Memory per planned window (its Tile, scores and id; measured in BENCHMARKS.md "Memory and tile count")."""
MEMORY_SHARE = 0.8
"""A scan may plan to use at most this share of the memory available now."""


def check_number(value: float | None, name: str, *, minimum: float = 0.0, inclusive: bool = False) -> None:
    """Refuse NaN, infinity and values at or below ``minimum`` (a zero stride is not "the default")."""
    if value is None:
        return
    ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
    if not ok:
        raise UserError(f"{name} {value} is not a finite number above {minimum:g}",
                        fix=f"give {name} a positive value, or leave it out for the model's default")


def check_stride(stride_m: float, meta: ModelMeta) -> None:
    """A stride between 1/16 of the window and the window itself."""
    check_number(stride_m, "--stride-m")
    lo = max(meta.gsd_m, meta.tile_m * MIN_STRIDE_SHARE)
    if stride_m < lo - 1e-9:
        raise UserError(f"--stride-m {stride_m:g} m would read {int((meta.tile_m / stride_m) ** 2):,} windows per "
                        f"{meta.tile_m:g} m window", fix=f"use a stride of {lo:g} m or more (the model's "
                        f"default is {meta.stride_m:g} m)")
    if stride_m > meta.tile_m + 1e-9:
        raise UserError(f"--stride-m {stride_m:g} m leaves gaps between the model's {meta.tile_m:g} m windows",
                        fix=f"use a stride of at most {meta.tile_m:g} m")


def axis_windows(length_px: int, size_px: int, stride_px: int) -> int:
    """How many windows :func:`minewatch.datasets.tiling.axis_offsets` places along one axis (arithmetic)."""
    if length_px <= size_px:
        return 1
    n = (length_px - size_px) // stride_px + 1
    return n + (1 if (length_px - size_px) % stride_px else 0)


def planned_windows(extent: RasterExtent, meta: ModelMeta, stride_m: float) -> int:
    """Windows a scan of the whole raster plans on the model grid, before any geofence."""
    w = max(1, math.floor(extent.width_m / meta.gsd_m))
    h = max(1, math.floor(extent.height_m / meta.gsd_m))
    stride_px = max(1, int(round(stride_m / meta.gsd_m)))
    return axis_windows(w, meta.tile_px, stride_px) * axis_windows(h, meta.tile_px, stride_px)


def memory_mb(n_windows: int) -> float:
    return BASE_MEMORY_MB + n_windows * BYTES_PER_TILE / 1e6


def available_memory_mb() -> float:
    """Memory available to a new process now (MemAvailable), else the machine's total."""
    available = proc_kib("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available / 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError):
        return math.inf


def check_coarse(path: Path, gsd_m: float, model_gsd_m: float, *, allow_coarse: bool) -> str | None:
    """Refuse pixels coarser than ``COARSE_FACTOR`` times the model grid (or, with ``allow_coarse``, return the
    warning); None when they are fine."""
    ratio = gsd_m / model_gsd_m
    if ratio <= COARSE_FACTOR * 1.01:  # 1 m imagery for a 0.5 m model is at the limit, not over it
        return None
    msg = (f"pixels of {gsd_m:.3g} m are {ratio:.3g} times the model's {model_gsd_m:g} m grid: the "
           f"model was trained on {model_gsd_m:g} m and cannot see containers at {gsd_m:.3g} m")
    if not allow_coarse:
        raise UserError(msg, path=path, fix="give imagery of about " + f"{model_gsd_m:g} m or finer (or pass "
                        "--allow-coarse to scan it anyway; a thermal band alone: --thermal-only)")
    return msg


@dataclass
class RasterCheck:
    """The optical raster's extent and what a scan of it would plan."""

    extent: RasterExtent
    n_windows: int
    warnings: list[str] = field(default_factory=list)


def check_raster(path: Path, meta: ModelMeta, *, stride_m: float, allow_coarse: bool, max_tiles: int) -> RasterCheck:
    """Pixel size against the model's and the windows the whole raster would plan (header only)."""
    with open_raster(path, what="optical raster") as src:
        extent = raster_extent(src)
    warnings = []
    ratio = extent.gsd_m / meta.gsd_m
    coarse = check_coarse(path, extent.gsd_m, meta.gsd_m, allow_coarse=allow_coarse)
    if coarse:
        warnings.append(coarse)
    elif ratio < 1 / FINE_FACTOR:
        warnings.append(f"pixels of {extent.gsd_m:.3g} m are averaged down to the model's {meta.gsd_m:g} m grid "
                        f"({1 / ratio:.0f} x finer): reading is slower than it needs to be; a {meta.gsd_m:g} m "
                        "overview or export would scan faster")
    n = planned_windows(extent, meta, stride_m)
    need = memory_mb(n)
    if n > max_tiles:
        raise UserError(f"a scan of {extent.width_m / 1000:.3g} x {extent.height_m / 1000:.3g} km plans {n:,} "
                        f"windows, more than --max-tiles {max_tiles:,}", path=path,
                        fix="scan part of it with --geofence, split the mosaic, or raise --max-tiles")
    have = available_memory_mb()
    if need > MEMORY_SHARE * have:
        raise UserError(f"a scan of {n:,} windows needs about {need:,.0f} MB, {have:,.0f} MB are available",
                        path=path, fix="scan part of it with --geofence, or split the mosaic")
    return RasterCheck(extent, n, warnings)


@dataclass
class Report:
    """What the scan will do, as ``--dry-run`` prints it and the log states it."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append((label, text))

    def text(self) -> str:
        out = [f"{label:<12} {text}" for label, text in self.lines]
        out += [f"warning      {w}" for w in self.warnings]
        return "\n".join(out)
