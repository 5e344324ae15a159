"""Tiling: which windows of a scene's model grid are read, as pure functions (no pixel is read here).

Windows never leave the raster: the last row and column are shifted back to the raster edge instead of
being padded (so the last stride is shorter, never the tile). Tile ids are stable: they depend only on
the window's pixel offsets, not on which windows a geofence kept. The tiling plan (:func:`plan_tiles`)
is shared by ``minewatch tiles`` and ``scan``, so what a GIS user previews is exactly what is scanned;
the plan's stride is passed on to the reader and the heatmap, never re-derived from the windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely import box

from minewatch.errors import UserError

if TYPE_CHECKING:
    from minewatch.datasets.geofence import Geofence

DEFAULT_TILE_M = 64.0
"""Window side when no model says otherwise."""
DEFAULT_MAX_NODATA = 0.5
"""Windows with more than half their pixels without data are skipped."""
DEFAULT_MAX_CLOUD = 0.6
"""Windows that look more than 60 % cloud are skipped."""


@dataclass(frozen=True)
class Grid:
    """A north-up target grid in a projected CRS (metres)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def gsd_m(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return left, top - self.height * self.gsd_m, left + self.width * self.gsd_m, top


@dataclass(frozen=True, slots=True)
class Tile:
    """One window of the model grid, in pixels of that grid (slots: a scan plans up to hundreds of
    thousands of them, and a slotted instance is a third of one with a ``__dict__``)."""

    row: int
    col: int
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def tile_id(self) -> str:
        """Stable id from the pixel offsets: the same window always has the same id."""
        return f"r{self.row_off:06d}c{self.col_off:06d}"

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)

    def bounds(self, transform: Affine) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the grid's CRS (north-up grids)."""
        x0, y0 = transform @ (self.col_off, self.row_off)
        x1, y1 = transform @ (self.col_off + self.width, self.row_off + self.height)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def axis_offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` px, the last one shifted back to end at ``length``.

    A raster shorter than one tile yields a single window at 0 (the caller decides whether a short
    window is acceptable).
    """
    if size <= 0 or stride <= 0:
        raise ValueError(f"size and stride must be positive, got {size} and {stride}")
    if length <= size:
        return [0]
    offsets = list(range(0, length - size + 1, stride))
    if offsets[-1] + size < length:
        offsets.append(length - size)
    return offsets


def grid_tiles(width: int, height: int, size_px: int, stride_px: int | None = None) -> list[Tile]:
    """All windows of ``size_px`` (clipped to the raster when it is smaller) at ``stride_px``."""
    stride_px = stride_px or size_px
    h, w = min(size_px, height), min(size_px, width)
    cols = list(enumerate(axis_offsets(width, size_px, stride_px)))  # one set of int objects for every row
    return [Tile(r, c, row_off, col_off, h, w)
            for r, row_off in enumerate(axis_offsets(height, size_px, stride_px)) for c, col_off in cols]


def metres_to_pixels(metres: float, gsd_m: float, *, what: str = "tile size") -> int:
    """Convert a length in metres to whole pixels of the grid (at least 1)."""
    if metres <= 0 or gsd_m <= 0:
        raise UserError(f"{what} must be positive (got {metres} m at {gsd_m} m/px)", fix="give a positive size")
    return max(1, int(round(metres / gsd_m)))


def tile_polygons(tiles: Sequence[Tile], transform: Affine) -> np.ndarray:
    """Shapely polygons of the tiles in the grid's CRS (vectorised)."""
    if not tiles:
        return np.array([], dtype=object)
    off = np.array([(t.col_off, t.row_off, t.width, t.height) for t in tiles], dtype=float)
    x0 = transform.c + transform.a * off[:, 0]
    x1 = x0 + transform.a * off[:, 2]
    y0 = transform.f + transform.e * off[:, 1]
    y1 = y0 + transform.e * off[:, 3]
    return box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))


def tiles_to_gdf(tiles: Sequence[Tile], transform: Affine, crs) -> gpd.GeoDataFrame:
    """Tiles as a GeoDataFrame (tile_id, row, col, row_off, col_off, geometry) in the grid's CRS."""
    return gpd.GeoDataFrame(
        {
            "tile_id": [t.tile_id for t in tiles],
            "row": np.array([t.row for t in tiles], dtype=np.int32),
            "col": np.array([t.col for t in tiles], dtype=np.int32),
            "row_off": np.array([t.row_off for t in tiles], dtype=np.int32),
            "col_off": np.array([t.col_off for t in tiles], dtype=np.int32),
        },
        geometry=tile_polygons(tiles, transform),
        crs=crs,
    )


def grid_shape_for(bounds: tuple[float, float, float, float], gsd_m: float) -> tuple[int, int]:
    """(width, height) in pixels of a grid at ``gsd_m`` covering ``bounds``."""
    minx, miny, maxx, maxy = bounds
    return max(1, math.ceil((maxx - minx) / gsd_m - 1e-6)), max(1, math.ceil((maxy - miny) / gsd_m - 1e-6))


@dataclass(frozen=True)
class TilePlan:
    """The kept windows of a scene's model grid, with the size and stride they were cut at."""

    grid: Grid
    tiles: list[Tile]
    tile_px: int
    stride_px: int
    n_total: int

    @property
    def stride_m(self) -> float:
        return self.stride_px * self.grid.gsd_m

    def to_gdf(self) -> gpd.GeoDataFrame:
        return tiles_to_gdf(self.tiles, self.grid.transform, self.grid.crs)


def plan_tiles(grid: Grid, *, tile_m: float, stride_m: float | None = None, fence: Geofence | None = None,
               tile_px: int | None = None) -> TilePlan:
    """All windows of ``grid`` that the fence keeps (nodata and cloud are judged when reading)."""
    size = tile_px or metres_to_pixels(tile_m, grid.gsd_m)
    stride = metres_to_pixels(stride_m or tile_m, grid.gsd_m, what="stride")
    tiles = grid_tiles(grid.width, grid.height, size, stride)
    n_total = len(tiles)
    if fence is not None:
        keep = fence.keep_mask(tile_polygons(tiles, grid.transform))
        tiles = [t for t, k in zip(tiles, keep, strict=True) if k]
    return TilePlan(grid, tiles, size, stride, n_total)
