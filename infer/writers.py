"""Write scan outputs: sites (RFC 7946 GeoJSON or GeoPackage), tiles.gpkg and the per-class heatmap COG.

Every file goes through `minewatch.atomic.atomic_path`, so a crash never leaves half a file behind; the
scan writes them under temporary names and renames them together (infer/outputs.py). Each output carries
the id of the run that wrote it; probabilities are rounded to 4 decimals (the model is not more precise);
GeoPackages are written as version 1.2 so that GDAL 3.6 (Debian 12, QGIS 3.22) reads them without warnings.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
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
GPKG_OPTIONS = {"VERSION": "1.2"}
HEATMAP_BLOCK = 256
MAX_HEATMAP_PX = 65_536  # per side; a scan stride this fine over a scene this large is a mistake
DECIMALS = {"score": 4, **{f"p_{c}": 4 for c in CLASSES}, "area_m2": 1, "thermal_dt_max_k": 2,
            "thermal_z_max": 2, "centroid_lon": 7, "centroid_lat": 7, "nodata_fraction": 4,
            "cloud_fraction": 4, "dt_max_k": 2, "z_max": 2, "fan_area_m2": 1, "hot_area_m2": 1,
            "est_power_mw": 2, "est_power_mw_low": 2, "est_power_mw_high": 2}
"""Decimals written per numeric column: what the figures are good for, not 16 digits of float noise."""
RUN_KEY = "minewatch"


def rounded(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy with the numeric columns of :data:`DECIMALS` rounded."""
    out = frame.copy()
    for col, d in DECIMALS.items():
        if col in out.columns:
            out[col] = out[col].astype(float).round(d)
    return out


def _polygon_layer(sites: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, str]:
    """One geometry type per layer: all Polygons promoted to MultiPolygons when any site is one."""
    geoms = np.asarray(sites.geometry.values)
    kinds = set(shapely.get_type_id(geoms).tolist())
    if kinds - {3, 6}:
        raise ValueError("sites must be Polygons or MultiPolygons")
    if 6 not in kinds:
        return sites, "Polygon"
    promoted = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms]
    return sites.set_geometry(gpd.GeoSeries(promoted, index=sites.index, crs=sites.crs)), "MultiPolygon"


def write_sites(sites: gpd.GeoDataFrame, path: str | Path, *, run: Mapping[str, str] | None = None) -> Path:
    """Candidate sites as GeoJSON (RFC 7946) or, for ``*.gpkg``, a GeoPackage layer ``sites``."""
    if Path(path).suffix.lower() == ".gpkg":
        return write_sites_gpkg(sites, path, run=run)
    return write_sites_geojson(sites, path, run=run)


def write_sites_geojson(sites: gpd.GeoDataFrame, path: str | Path, *, run: Mapping[str, str] | None = None) -> Path:
    """Write candidate sites as an RFC 7946 FeatureCollection that QGIS and web maps read as is.

    Reprojected to EPSG:4326; one geometry type per file; NaN becomes null; ``run`` (run id and time) is
    stored as the collection's ``minewatch`` member; no sites -> an empty FeatureCollection (GeoJSON has no
    way to keep columns without features: write ``*.gpkg`` for that).
    """
    target = check_writable(path)
    if sites.crs is None and not sites.empty:
        raise ValueError("sites have no CRS")
    if sites.empty:
        doc = {"type": "FeatureCollection", **({RUN_KEY: dict(run)} if run else {}), "features": []}
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(doc) + "\n")
        return target
    out, geometry_type = _polygon_layer(rounded(sites).to_crs(4326))
    options = dict(GEOJSON_OPTIONS)
    if run:
        options.update(NATIVE_DATA=json.dumps({RUN_KEY: dict(run)}), NATIVE_MEDIA_TYPE="application/vnd.geo+json")
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(out, tmp, driver="GeoJSON", layer="sites", geometry_type=geometry_type,
                                layer_options=options)
    log.debug("wrote %d sites to %s", len(out), target)
    return target


def write_sites_gpkg(sites: gpd.GeoDataFrame, path: str | Path, *, run: Mapping[str, str] | None = None) -> Path:
    """Candidate sites as a GeoPackage layer (scene CRS); keeps its columns when there are no sites."""
    target = check_writable(path)
    out, geometry_type = _polygon_layer(rounded(sites)) if len(sites) else (sites, "MultiPolygon")
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(out, tmp, driver="GPKG", layer="sites", geometry_type=geometry_type,
                                dataset_options=GPKG_OPTIONS, layer_metadata=_run_metadata(run))
    return target


def _run_metadata(run: Mapping[str, str] | None) -> dict[str, str] | None:
    return {f"MINEWATCH_{k.upper()}": str(v) for k, v in run.items()} if run else None


def write_tiles_gpkg(chunks: gpd.GeoDataFrame | Iterable[gpd.GeoDataFrame], path: str | Path, *,
                     layer: str = "tiles", run: Mapping[str, str] | None = None) -> Path:
    """Write tile scores (scene CRS) to a GeoPackage layer, a chunk at a time (memory stays flat however
    many windows a scan had). An empty scan keeps the columns."""
    target = check_writable(path)
    if isinstance(chunks, gpd.GeoDataFrame):
        chunks = [chunks]
    n = 0
    with atomic_path(target) as tmp:
        for chunk in chunks:
            if chunk.crs is None:
                raise ValueError("tiles have no CRS")
            if n and chunk.empty:
                continue
            pyogrio.write_dataframe(rounded(chunk), tmp, driver="GPKG", layer=layer, geometry_type="Polygon",
                                    append=n > 0, dataset_options=None if n else GPKG_OPTIONS,
                                    layer_metadata=None if n else _run_metadata(run))
            n += len(chunk)
    log.debug("wrote %d tiles to %s", n, target)
    return target


def heatmap_array(bounds: np.ndarray, scores: np.ndarray, pixel_size: float) -> tuple[np.ndarray, Affine]:
    """Rasterise window footprints ``bounds`` (n, 4: left, bottom, right, top) with ``scores`` (K, n) into a
    (K, H, W) float32 grid; NaN where no window was scanned.

    A pixel takes the maximum score of the windows whose footprint holds its centre, so thresholding the
    heatmap redraws the site outlines. ``pixel_size`` (CRS units) is the scan stride, from the tiling plan.
    """
    px = float(pixel_size)
    if not px > 0:
        raise ValueError("heatmap pixel size must be positive")
    b = np.asarray(bounds, dtype=float)
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
    scores = np.asarray(scores, dtype=np.float32)
    grid = np.full((len(scores), height, width), -np.inf, dtype=np.float32)
    scanned = np.zeros((height, width), dtype=bool)
    for i in range(len(b)):
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
    bounds: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str] = CLASSES,
    crs: CRS | str | int | None = None,
    *,
    pixel_size_m: float,
    run: Mapping[str, str] | None = None,
) -> Path | None:
    """Write a per-class score heatmap as a Cloud Optimized GeoTIFF in the windows' CRS (a metric model grid).

    One float32 band per class (band description = class name), nodata NaN where nothing was scanned,
    pixel = the scan stride, ``pixel_size_m`` metres; see `heatmap_array`. No windows -> nothing written,
    None.
    """
    target = check_writable(path)
    if crs is None:
        raise ValueError("the heatmap needs a CRS")
    crs = CRS.from_user_input(crs)
    if len(bounds) == 0:
        log.warning("no tiles were scanned: no heatmap written to %s", target)
        return None
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    grid, transform = heatmap_array(bounds, scores, pixel_size_m / (factor or 1.0))
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
            dst.update_tags(MINEWATCH_CLASSES=",".join(classes), MINEWATCH_CONTENT="tile probability",
                            **(_run_metadata(run) or {}))
    log.debug("wrote %d x %d heatmap to %s", width, height, target)
    return target


def write_styled_sites(outputs, sites: gpd.GeoDataFrame, run: Mapping[str, str]) -> None:
    """The sites output (``outputs.targets["out"]``, an ``infer.outputs.OutputSet``) with its QGIS style: inside a
    GeoPackage as its default layer style, beside any other format as a ``.qml`` file."""
    from minewatch.infer import styles

    out = outputs.targets["out"]
    with outputs.writing(out) as tmp:
        write_sites(sites, tmp, run=run)
        if out.suffix.lower() == ".gpkg":
            styles.add_layer_style(tmp, "sites", styles.sites_qml())
    if out.suffix.lower() != ".gpkg":
        with outputs.writing(styles.qml_path(out)) as tmp:
            tmp.write_text(styles.sites_qml(), encoding="utf-8")
