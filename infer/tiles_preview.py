"""``minewatch tiles``: write the windows a scan would read, so a GIS user can see what will be scanned."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import numpy as np

from minewatch.datasets.geofence import Geofence
from minewatch.datasets.model_input import cloud_fraction, nodata_fraction
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import DEFAULT_MAX_CLOUD, DEFAULT_MAX_NODATA, Tile, plan_tiles
from minewatch.infer.model_file import read_model_meta
from minewatch.infer.outputs import OutputSet
from minewatch.infer.preflight import check_number
from minewatch.infer.registry import choose_model
from minewatch.infer.styles import add_layer_style, windows_qml
from minewatch.infer.writers import write_tiles_gpkg
from minewatch.progress import progress

log = logging.getLogger(__name__)


def _window_fractions(scene: Scene, tile: Tile) -> tuple[float, float]:
    """(nodata, cloud) shares of one window, judged on its optical read."""
    optical = scene.read_optical(tile)
    return nodata_fraction(optical), cloud_fraction(optical, scene.band_names)


def write_tiles(raster: Path, out: Path, *, thermal: Path | None = None, geofence: Path | None = None,
                exclude: Path | None = None, model: Path | None = None, profile: str | None = None,
                tile_m: float | None = None, stride_m: float | None = None, gsd_m: float | None = None,
                max_nodata: float | None = None, max_cloud: float = DEFAULT_MAX_CLOUD, overwrite: bool = False) -> int:
    """Write the windows a scan would read (id, row, col, nodata and cloud shares, fence shares) to a
    GeoPackage: by default exactly the committed (or given) model's tiling, so the preview is the scan."""
    model_path = Path(model) if model is not None else choose_model(raster, profile=profile).path
    meta = read_model_meta(model_path)
    outputs = OutputSet.check({"tiles_out": out}, {"optical raster": raster, "thermal raster": thermal,
                                                   "geofence": geofence, "exclude fence": exclude,
                                                   "model": model_path},
                              run_id=uuid.uuid4().hex[:12], overwrite=overwrite, resume=False)
    for value, name in ((tile_m, "--tile-m"), (stride_m, "--stride-m"), (gsd_m, "--gsd")):
        check_number(value, name)
    gsd_m = gsd_m or meta.gsd_m
    tile_m = tile_m or meta.tile_m
    stride_m = stride_m or (meta.stride_m if tile_m == meta.tile_m else tile_m)
    max_nodata = DEFAULT_MAX_NODATA if max_nodata is None else max_nodata
    with Scene(raster, thermal, profile=profile or meta.profile, gsd_m=gsd_m) as scene:
        fence = None
        if geofence or exclude:
            fence = Geofence.load(geofence, exclude, crs=scene.grid.crs, scene_bounds=scene.grid.bounds)
        plan = plan_tiles(scene.grid, tile_m=tile_m, stride_m=stride_m, fence=fence)
        gdf = plan.to_gdf()
        fractions = [_window_fractions(scene, t) for t in progress(plan.tiles, total=len(plan.tiles), desc="tiles")]
        gdf["nodata_fraction"] = np.array([f[0] for f in fractions], dtype=float)
        gdf["cloud_fraction"] = np.array([f[1] for f in fractions], dtype=float)
        if fence is not None:
            inside, excluded = fence.coverage(gdf.geometry.values)
            gdf["inside_share"], gdf["excluded_share"] = inside, excluded
        gdf = gdf[(gdf["nodata_fraction"] <= max_nodata) & (gdf["cloud_fraction"] <= max_cloud)]
        with outputs.writing(Path(out)) as tmp:
            write_tiles_gpkg(gdf, tmp)
            add_layer_style(tmp, "tiles", windows_qml())
        outputs.commit()
    log.info("%d of %d windows kept (%.0f m tiles, stride %.0f m, %.2f m/px)", len(gdf), plan.n_total,
             plan.tile_px * scene.grid.gsd_m, plan.stride_m, scene.grid.gsd_m)
    return len(gdf)
