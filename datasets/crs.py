"""The one rule for "is this CRS good for metres": projected, metre axes, and not a Mercator.

Mercator variants (EPSG:3857 Web Mercator, EPSG:3395 World Mercator) have metre axes but inflate
distances by 1/cos(latitude) (areas by its square: x4 at 60 degrees), so a model grid or an area
computed in them is wrong; such data are measured in the UTM zone of their centre instead.
"""

from __future__ import annotations

import geopandas as gpd
import shapely
from pyproj import CRS

METRE_UNITS = ("metre", "meter")


def as_pyproj(crs) -> CRS:
    """A pyproj CRS from a rasterio CRS, pyproj CRS, EPSG code or string."""
    if hasattr(crs, "to_wkt") and not isinstance(crs, CRS):  # rasterio.crs.CRS
        return CRS.from_wkt(crs.to_wkt())
    return CRS.from_user_input(crs)


def is_mercator(crs) -> bool:
    op = as_pyproj(crs).coordinate_operation
    method = op.method_name.lower() if op is not None else ""
    return "mercator" in method and "transverse" not in method


def is_metric(crs) -> bool:
    """Projected with metre axes and true-ish scale (not a Mercator)."""
    pc = as_pyproj(crs)
    if not pc.is_projected or not all(a.unit_name in METRE_UNITS for a in pc.axis_info[:2]):
        return False
    return not is_mercator(pc)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone of a point."""
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def metric_crs(crs, geoms: gpd.GeoSeries | gpd.GeoDataFrame) -> CRS:
    """A CRS in which lengths and areas of ``geoms`` (given in ``crs``) are honest metres: ``crs`` itself
    when :func:`is_metric`, else the UTM zone of the geometries' centre."""
    pc = as_pyproj(crs)
    if is_metric(pc):
        return pc
    series = geoms.geometry if isinstance(geoms, gpd.GeoDataFrame) else geoms
    series = gpd.GeoSeries(series.values, crs=pc)
    if series.empty or series.is_empty.all():
        raise ValueError("cannot choose a UTM zone for empty geometries")
    return series.estimate_utm_crs()


def to_lonlat(geom: shapely.Geometry, crs, max_segment: float) -> shapely.Geometry:
    """``geom`` (in ``crs``) in lon/lat (EPSG:4326), its edges first cut to ``max_segment`` (``crs`` units) so that
    it keeps its shape where the two CRS do not share straight lines."""
    return gpd.GeoSeries([shapely.segmentize(geom, max_segment)], crs=as_pyproj(crs)).to_crs(4326).iloc[0]
