"""Geofences: include and exclude polygons, repaired, reprojected to the scene grid, and the window rule.

The rule, in one place: a window is kept when at least ``min_inside`` of its area lies inside the include
area (when one is given) and at most ``max_excluded`` of its area lies in exclude areas. Exclude fences
model known legal sites (registered data centres, power plants) that analysts must not be sent to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pydantic import Field
from pyproj import CRS
from rasterio.warp import transform_bounds

from minewatch.config import StrictModel
from minewatch.datasets.vectors import read_vector
from minewatch.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MIN_INSIDE = 0.25
"""Keep a window when at least a quarter of it is inside the include area: sites on the fence line are
scanned, slivers that only graze it are not."""
DEFAULT_MAX_EXCLUDED = 0.5
"""Drop a window when more than half of it lies in exclude areas."""


class FenceRule(StrictModel):
    """Which windows a geofence keeps."""

    min_inside: float = Field(DEFAULT_MIN_INSIDE, ge=0, le=1, description="least share of a window inside")
    max_excluded: float = Field(DEFAULT_MAX_EXCLUDED, ge=0, le=1, description="most share in exclude areas")


CLIP_MARGIN = 0.25
"""Fences are cut to the scene's extent grown by this share on each side before they are reprojected."""


def _polygonal(geoms) -> shapely.Geometry:
    parts = shapely.get_parts(shapely.union_all(shapely.make_valid(np.asarray(geoms))))
    return shapely.union_all([g for g in parts if g.geom_type in ("Polygon", "MultiPolygon")])


def _union_in(gdf: gpd.GeoDataFrame, crs, scene_bounds: tuple[float, float, float, float]) -> shapely.Geometry:
    """Union of the polygonal parts of a layer near the scene, in ``crs``.

    A country or world layer reprojected whole into a scene's UTM zone turns its far side into
    self-intersecting nonsense (GEOS: "side location conflict"), and its union costs seconds: the layer is
    cut to the scene's surroundings in its own CRS first, repaired, then reprojected and repaired again.
    """
    left, bottom, right, top = scene_bounds
    mx, my = (right - left) * CLIP_MARGIN, (top - bottom) * CLIP_MARGIN
    grown = (left - mx, bottom - my, right + mx, top + my)
    if gdf.crs is not None and CRS.from_user_input(gdf.crs) != CRS.from_user_input(crs):
        near = shapely.box(*transform_bounds(crs, gdf.crs, *grown, densify_pts=21))
    else:
        near = shapely.box(*grown)
    geoms = shapely.make_valid(np.asarray(gdf.geometry.values))
    geoms = shapely.intersection(geoms[shapely.intersects(geoms, near)], near)
    if len(geoms) == 0:
        return shapely.Polygon()
    local = gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(crs).values
    return _polygonal(local)


@dataclass
class Geofence:
    """Include and exclude areas in the scene CRS."""

    include: shapely.Geometry | None
    exclude: shapely.Geometry | None
    rule: FenceRule

    @classmethod
    def load(cls, include: str | Path | None = None, exclude: str | Path | None = None, *, crs,
             scene_bounds: tuple[float, float, float, float], rule: FenceRule | None = None) -> Geofence:
        """Read, repair and reproject fences; refuse an include fence that misses the scene."""
        scene_box = shapely.box(*scene_bounds)
        inc = exc = None
        if include is not None:
            inc = _union_in(read_vector(include, role="geofence", polygons_only=True), crs, scene_bounds)
            if not inc.intersects(scene_box) or inc.intersection(scene_box).area == 0:
                raise UserError("geofence does not overlap the scene", path=include,
                                fix="check the fence is for this scene (and its CRS is right)")
        if exclude is not None:
            exc = _union_in(read_vector(exclude, role="exclude fence", polygons_only=True), crs, scene_bounds)
            if not exc.intersects(scene_box):
                log.warning("%s: exclude fence does not touch the scene; nothing is excluded", exclude)
        return cls(inc, exc, rule or FenceRule())

    def coverage(self, polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Share of each window inside the include area (1 without one) and inside exclude areas."""
        area = shapely.area(polygons)
        inside = np.ones(len(polygons)) if self.include is None else _share(polygons, self.include, area)
        excluded = np.zeros(len(polygons)) if self.exclude is None else _share(polygons, self.exclude, area)
        return inside, excluded

    def keep_mask(self, polygons: np.ndarray) -> np.ndarray:
        inside, excluded = self.coverage(polygons)
        return (inside >= self.rule.min_inside - 1e-9) & (excluded <= self.rule.max_excluded + 1e-9)


def _share(polygons: np.ndarray, area_geom: shapely.Geometry, area: np.ndarray) -> np.ndarray:
    """Intersection share, computing exact intersections only for windows on the boundary."""
    shapely.prepare(area_geom)
    share = np.zeros(len(polygons))
    within = shapely.contains(area_geom, polygons)
    touches = shapely.intersects(area_geom, polygons) & ~within
    share[within] = 1.0
    if touches.any():
        share[touches] = shapely.area(shapely.intersection(polygons[touches], area_geom)) / area[touches]
    return share
