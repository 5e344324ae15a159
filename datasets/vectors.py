"""The one reader of vector files (geofences, truth labels, sites, tile scores): one error policy.

Any format GDAL reads (GeoJSON, GeoPackage, Shapefile, ...), any CRS. A file that is missing or unreadable,
or that holds features but no CRS, is refused with a one-line :class:`UserError`; an empty file is read as
an empty layer in lon/lat; features without geometry are dropped and invalid ones repaired with
``make_valid`` (GIS exports often hold self-intersecting rings).
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from minewatch.errors import UserError, first_line, require_utf8_path

log = logging.getLogger(__name__)

POLYGON_TYPES = ("Polygon", "MultiPolygon")
FORMATS = "a GeoJSON, GeoPackage or Shapefile"


STYLE_TABLES = frozenset({"layer_styles"})
"""Tables a GeoPackage may hold beside its features: QGIS's styles (minewatch writes one into its outputs)."""


def _data_layer(path: Path) -> str | None:
    """The layer to read: the only one that is not a style table, else GDAL's default (None); a file with
    several feature layers is read from its first, and the log names it."""
    import pyogrio

    try:
        names = [str(n) for n, _ in pyogrio.list_layers(path) if str(n) not in STYLE_TABLES]
    except Exception:  # noqa: BLE001 - unreadable: read_file reports it with the file's name
        return None
    if len(names) > 1:
        log.info("%s holds %d layers (%s): reading %s", path, len(names), ", ".join(names), names[0])
    return names[0] if names else None


def read_vector(path: str | Path, *, role: str, polygons_only: bool = False) -> gpd.GeoDataFrame:
    """Read ``path`` as a GeoDataFrame; ``role`` names the file in messages ("geofence", "labels", ...).

    ``polygons_only`` keeps Polygon and MultiPolygon features and refuses a file that has none.
    """
    p = Path(path)
    require_utf8_path(p, role)
    if not p.exists():
        raise UserError(f"{role} file not found", path=p, fix="check the path")
    if p.is_dir() and p.suffix.lower() not in (".gdb",):
        raise UserError(f"{role} path is a folder", path=p, fix=f"give {FORMATS} file")
    try:
        gdf = gpd.read_file(p, engine="pyogrio", layer=_data_layer(p))
    except Exception as exc:  # noqa: BLE001 - pyogrio raises DataSourceError and friends
        raise UserError(f"cannot read the {role} file ({first_line(exc, 120)})", path=p,
                        fix=f"give {FORMATS} readable by GDAL") from None
    if gdf.crs is None:
        if len(gdf):
            raise UserError(f"{role} file has no CRS", path=p,
                            fix="save it with a CRS (a .prj beside a Shapefile), or as GeoJSON in lon/lat")
        gdf = gdf.set_crs(4326)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if polygons_only:
        gdf = gdf[gdf.geom_type.isin(POLYGON_TYPES)]
        if gdf.empty:
            raise UserError(f"{role} file holds no polygons", path=p, fix="give polygon features")
    if len(gdf):
        geoms = np.asarray(gdf.geometry.values)
        invalid = ~shapely.is_valid(geoms)
        if invalid.any():
            log.warning("%s: repaired %d invalid geometr%s with make_valid", p, int(invalid.sum()),
                        "y" if invalid.sum() == 1 else "ies")
            geoms = geoms.copy()
            geoms[invalid] = shapely.make_valid(geoms[invalid])
            gdf = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))
    return gdf.copy()
