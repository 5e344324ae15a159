"""Write scan outputs: sites.geojson (RFC 7946), tiles.gpkg and the per-class heatmap COG.

Every file goes through `minewatch.atomic.atomic_path`, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine
from pyproj import CRS

from minewatch.atomic import atomic_path, check_writable
from minewatch.classes import CLASSES

log = logging.getLogger(__name__)

# GDAL's GeoJSON driver gets RFC 7946 right (EPSG:4326, right-hand rings, no crs member); `to_file` with
# default options would keep left-hand rings and 15 decimals.
GEOJSON_OPTIONS = {"RFC7946": "YES", "WRITE_BBOX": "YES", "COORDINATE_PRECISION": "7"}
HEATMAP_BLOCK = 256
MAX_HEATMAP_PX = 65_536  # per side; a scan stride this fine over a scene this large is a mistake


def write_sites_geojson(sites: gpd.GeoDataFrame, path: str | Path) -> Path:
    """Write candidate sites as an RFC 7946 FeatureCollection that QGIS and web maps read as is.

    Reprojected to EPSG:4326; one geometry type per file (all Polygons are promoted to MultiPolygons when
    any site is a MultiPolygon); NaN becomes null; no sites -> an empty FeatureCollection.
    """
    target = check_writable(path)
    if sites.crs is None and not sites.empty:
        raise ValueError("sites have no CRS")
    if sites.empty:
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps({"type": "FeatureCollection", "features": []}) + "\n")
        return target
    out = sites.to_crs(4326)
    geoms = np.asarray(out.geometry.values)
    kinds = set(shapely.get_type_id(geoms).tolist())
    if kinds - {3, 6}:
        raise ValueError("sites must be Polygons or MultiPolygons")
    geometry_type = "Polygon"
    if 6 in kinds:
        promoted = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms]
        out = out.set_geometry(gpd.GeoSeries(promoted, index=out.index, crs=out.crs))
        geometry_type = "MultiPolygon"
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(
            out, tmp, driver="GeoJSON", layer="sites", geometry_type=geometry_type,
            layer_options=GEOJSON_OPTIONS,
        )
    log.debug("wrote %d sites to %s", len(out), target)
    return target


def write_sites_gpkg(sites: gpd.GeoDataFrame, path: str | Path, *, layer: str = "sites") -> Path:
    """Write candidate sites to a GeoPackage layer in EPSG:4326 (one geometry type, as in `write_sites_geojson`),
    for runs whose sites span several UTM zones."""
    target = check_writable(path)
    out = sites.to_crs(4326) if sites.crs is not None else sites.set_crs(4326)
    geoms = np.asarray(out.geometry.values)
    multi = bool(len(geoms)) and bool((shapely.get_type_id(geoms) == 6).any())
    if multi:
        promoted = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms]
        out = out.set_geometry(gpd.GeoSeries(promoted, index=out.index, crs=out.crs))
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(out, tmp, driver="GPKG", layer=layer,
                                geometry_type="MultiPolygon" if multi else "Polygon")
    log.debug("wrote %d sites to %s", len(out), target)
    return target


def write_tiles_gpkg(tiles: gpd.GeoDataFrame, path: str | Path, *, layer: str = "tiles") -> Path:
    """Write tile scores (scene CRS) to a GeoPackage layer, for QGIS styling and re-evaluation."""
    target = check_writable(path)
    if tiles.crs is None:
        raise ValueError("tiles have no CRS")
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(tiles, tmp, driver="GPKG", layer=layer, geometry_type="Polygon")
    log.debug("wrote %d tiles to %s", len(tiles), target)
    return target


def heatmap_array(
    tiles: gpd.GeoDataFrame, pixel_size: float, classes: Sequence[str] = CLASSES
) -> tuple[np.ndarray, Affine]:
    """Rasterise tile footprints into a (K, H, W) float32 score grid; NaN where no tile was scanned.

    A pixel takes the maximum score of the tiles whose footprint holds its centre, so thresholding the
    heatmap redraws the site outlines. ``pixel_size`` (CRS units) is the scan stride, from the tiling plan.
    """
    px = float(pixel_size)
    if not px > 0:
        raise ValueError("heatmap pixel size must be positive")
    b = shapely.bounds(np.asarray(tiles.geometry.values))
    x0, y0 = float(b[:, 0].min()), float(b[:, 3].max())
    eps = 1e-6
    c0 = np.ceil((b[:, 0] - x0) / px - 0.5 - eps).astype(int)
    c1 = np.floor((b[:, 2] - x0) / px - 0.5 + eps).astype(int)
    r0 = np.ceil((y0 - b[:, 3]) / px - 0.5 - eps).astype(int)
    r1 = np.floor((y0 - b[:, 1]) / px - 0.5 + eps).astype(int)
    # A tile smaller than a pixel still marks the pixel holding its centre.
    cc = np.floor(((b[:, 0] + b[:, 2]) / 2 - x0) / px).astype(int)
    rc = np.floor((y0 - (b[:, 1] + b[:, 3]) / 2) / px).astype(int)
    c0, c1 = np.where(c1 < c0, cc, c0), np.where(c1 < c0, cc, c1)
    r0, r1 = np.where(r1 < r0, rc, r0), np.where(r1 < r0, rc, r1)
    width, height = int(c1.max()) + 1, int(r1.max()) + 1
    if max(height, width) > MAX_HEATMAP_PX:
        raise ValueError(f"a heatmap of {width} x {height} pixels is too large; give a larger pixel size")
    grid = np.full((len(classes), height, width), -np.inf, dtype=np.float32)
    scores = np.stack([tiles[f"p_{c}"].to_numpy(dtype=np.float32) for c in classes])
    scanned = np.zeros((height, width), dtype=bool)
    for i in range(len(tiles)):
        win = (slice(r0[i], r1[i] + 1), slice(c0[i], c1[i] + 1))
        scanned[win] = True
        s = scores[:, i]
        s = np.where(np.isfinite(s), s, -np.inf)
        np.maximum(grid[(slice(None), *win)], s[:, None, None], out=grid[(slice(None), *win)])
    grid[:, ~scanned] = np.nan
    grid[np.isneginf(grid)] = np.nan
    return grid, Affine(px, 0.0, x0, 0.0, -px, y0)


def write_heatmap_cog(
    path: str | Path,
    tiles: gpd.GeoDataFrame,
    classes: Sequence[str] = CLASSES,
    crs: CRS | str | int | None = None,
    *,
    pixel_size_m: float,
) -> Path | None:
    """Write a per-class score heatmap as a Cloud Optimized GeoTIFF in the tiles' CRS (a model grid, metric).

    One float32 band per class (band description = class name), nodata NaN where nothing was scanned,
    pixel = the scan stride, ``pixel_size_m`` metres; see `heatmap_array`. ``crs`` is used only when the
    tiles carry none. No tiles -> nothing written, None.
    """
    target = check_writable(path)
    crs = tiles.crs if tiles.crs is not None else crs
    if crs is None:
        raise ValueError("tiles have no CRS")
    crs = CRS.from_user_input(crs)
    if tiles.empty:
        log.warning("no tiles were scanned: no heatmap written to %s", target)
        return None
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    grid, transform = heatmap_array(tiles, pixel_size_m / (factor or 1.0), classes)
    count, height, width = grid.shape
    profile = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "float32",
        "crs": crs.to_wkt(),
        "transform": transform,
        "nodata": math.nan,
        "compress": "deflate",
        "predictor": "yes",
        "blocksize": HEATMAP_BLOCK,
        "overview_resampling": "average",
    }
    with atomic_path(target) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(grid)
            for i, name in enumerate(classes, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(MINEWATCH_CLASSES=",".join(classes), MINEWATCH_CONTENT="tile probability")
    log.debug("wrote %d x %d heatmap to %s", width, height, target)
    return target
