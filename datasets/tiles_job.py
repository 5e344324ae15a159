"""Which windows of a scene will be scanned: the tiling plan, and ``minewatch tiles`` that writes it.

The plan is shared by ``tiles`` and ``scan`` so that what a GIS user previews is exactly what is scanned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np

from minewatch.atomic import atomic_path, check_writable
from minewatch.datasets.features import cloud_fraction, nodata_fraction
from minewatch.datasets.geofence import Geofence
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile, grid_tiles, metres_to_pixels, tile_polygons, tiles_to_gdf
from minewatch.progress import progress

log = logging.getLogger(__name__)

DEFAULT_TILE_M = 64.0
DEFAULT_MAX_NODATA = 0.5
"""Windows with more than half their pixels without data are skipped."""
DEFAULT_MAX_CLOUD = 0.6
"""Windows that look more than 60 % cloud are skipped."""


def _window_fractions(scene: Scene, tile: Tile) -> tuple[float, float]:
    """(nodata, cloud) shares of one window, judged on its optical read."""
    optical = scene.read_optical(tile)
    return nodata_fraction(optical), cloud_fraction(optical, scene.band_names)


@dataclass(frozen=True)
class TilePlan:
    """The kept windows of a scene on its model grid."""

    tiles: list[Tile]
    tile_px: int
    stride_px: int
    n_total: int

    def to_gdf(self, scene: Scene) -> gpd.GeoDataFrame:
        return tiles_to_gdf(self.tiles, scene.grid.transform, scene.grid.crs)


def plan_tiles(scene: Scene, *, tile_m: float, stride_m: float | None = None, fence: Geofence | None = None,
               tile_px: int | None = None) -> TilePlan:
    """All windows of the scene's grid kept by the fence (no reads: nodata is judged when reading)."""
    gsd = scene.grid.gsd_m
    size = tile_px or metres_to_pixels(tile_m, gsd)
    stride = metres_to_pixels(stride_m or tile_m, gsd, what="stride")
    tiles = grid_tiles(scene.grid.width, scene.grid.height, size, stride)
    n_total = len(tiles)
    if fence is not None:
        keep = fence.keep_mask(tile_polygons(tiles, scene.grid.transform))
        tiles = [t for t, k in zip(tiles, keep, strict=True) if k]
    log.debug("%d of %d windows kept by the geofence", len(tiles), n_total)
    return TilePlan(tiles, size, stride, n_total)


def write_tiles(raster: Path, out: Path, *, thermal: Path | None = None, geofence: Path | None = None,
                exclude: Path | None = None, model: Path | None = None, profile: str | None = None,
                tile_m: float | None = None, stride_m: float | None = None, gsd_m: float | None = None,
                max_nodata: float | None = None, max_cloud: float = DEFAULT_MAX_CLOUD) -> int:
    """Write the windows a scan would read (id, row, col, nodata fraction, fence shares) to a GeoPackage."""
    check_writable(out)
    meta = None
    if model is not None:
        from minewatch.infer.model_file import read_model_meta

        meta = read_model_meta(model)
    profile = profile or (meta.profile if meta else None)
    gsd_m = gsd_m or (meta.gsd_m if meta else None)
    tile_m = tile_m or (meta.tile_m if meta else DEFAULT_TILE_M)
    stride_m = stride_m or (meta.stride_m if meta else None)
    max_nodata = DEFAULT_MAX_NODATA if max_nodata is None else max_nodata
    with Scene(raster, thermal, profile=profile, gsd_m=gsd_m) as scene:
        fence = None
        if geofence or exclude:
            fence = Geofence.load(geofence, exclude, crs=scene.grid.crs, scene_bounds=scene.grid.bounds)
        plan = plan_tiles(scene, tile_m=tile_m, stride_m=stride_m, fence=fence)
        gdf = plan.to_gdf(scene)
        fractions = [_window_fractions(scene, t) for t in progress(plan.tiles, total=len(plan.tiles), desc="tiles")]
        gdf["nodata_fraction"] = np.array([f[0] for f in fractions], dtype=float)
        gdf["cloud_fraction"] = np.array([f[1] for f in fractions], dtype=float)
        if fence is not None:
            inside, excluded = fence.coverage(gdf.geometry.values)
            gdf["inside_share"], gdf["excluded_share"] = inside, excluded
        gdf = gdf[(gdf["nodata_fraction"] <= max_nodata) & (gdf["cloud_fraction"] <= max_cloud)]
        with atomic_path(out) as tmp:
            gdf.to_file(tmp, driver="GPKG", layer="tiles", engine="pyogrio")
    log.info("%d of %d windows kept (%.0f m tiles, stride %.0f m, %.2f m/px)", len(gdf), plan.n_total,
             plan.tile_px * scene.grid.gsd_m, plan.stride_px * scene.grid.gsd_m, scene.grid.gsd_m)
    return len(gdf)
