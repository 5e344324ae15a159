"""Output files, read back through GDAL: RFC 7946 sites, tiles GeoPackage, heatmap COG, quicklook."""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from minewatch.classes import CLASSES
from minewatch.infer.sites import build_sites
from minewatch.infer.writers import (
    heatmap_array,
    write_heatmap_cog,
    write_sites_geojson,
    write_tiles_gpkg,
)

THR = {c: 0.5 for c in CLASSES}


@pytest.fixture
def sites(tile_factory, site_meta):
    probs = {(1, 1): (0.9, 0.6, 0.2), (1, 2): (0.7, 0.1, 0.1), (2, 1): (0.6, 0.1, 0.9),
             (4, 4): (0.1, 0.8, 0.1)}
    return build_sites(tile_factory(6, 6, probs, thermal={(2, 1): (9.0, 4.0)}), THR, **site_meta)


def _decimals(value: float) -> int:
    return max(0, -Decimal(repr(value)).as_tuple().exponent)


def _rings(geometry: dict) -> list[list[list[float]]]:
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [poly[0] for poly in polys]


def test_sites_geojson_is_rfc7946(sites, tmp_path):
    path = write_sites_geojson(sites, tmp_path / "sites.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc
    assert len(doc["bbox"]) == 4
    assert len(doc["features"]) == 2
    assert {f["geometry"]["type"] for f in doc["features"]} == {"Polygon"}
    for feature in doc["features"]:
        assert len(feature["bbox"]) == 4
        for ring in _rings(feature["geometry"]):
            assert all(_decimals(v) <= 7 for xy in ring for v in xy)
            assert shapely.Polygon(ring).exterior.is_ccw  # right-hand rule: exterior counter-clockwise
            lon, lat = ring[0]
            assert 14.9 < lon < 15.1 and 49.5 < lat < 49.7
    first = doc["features"][0]["properties"]
    assert first["rank"] == 1 and isinstance(first["rank"], int)
    assert first["classes"] == "container_farm,cooling_array,heat_signature"
    assert first["thermal_dt_max_k"] == 9.0
    assert doc["features"][1]["properties"]["thermal_dt_max_k"] is None  # null, not NaN
    assert set(first) == set(sites.columns) - {"geometry"}
    back = gpd.read_file(path, engine="pyogrio")
    assert back.crs.to_epsg() == 4326
    assert back["area_m2"].tolist() == pytest.approx(sites["area_m2"].tolist())
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_multipolygon_promotes_every_site(sites, tmp_path):
    part = sites.geometry.iloc[1]
    two_parts = shapely.MultiPolygon([part, shapely.affinity.translate(part, 500)])
    mixed = sites.copy()
    mixed.loc[1, "geometry"] = two_parts
    doc = json.loads(write_sites_geojson(mixed, tmp_path / "s.geojson").read_text())
    assert [f["geometry"]["type"] for f in doc["features"]] == ["MultiPolygon", "MultiPolygon"]
    assert len(doc["features"][1]["geometry"]["coordinates"]) == 2


def test_no_sites_writes_empty_feature_collection(tile_factory, site_meta, tmp_path):
    empty = build_sites(tile_factory(2, 2), THR, **site_meta)
    path = write_sites_geojson(empty, tmp_path / "sites.geojson")
    assert json.loads(path.read_text()) == {"type": "FeatureCollection", "features": []}
    assert len(gpd.read_file(path)) == 0


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL command-line tools not installed")
def test_ogrinfo_reads_sites(sites, tmp_path):
    path = write_sites_geojson(sites, tmp_path / "sites.geojson")
    cmd = ["ogrinfo", "-ro", "-al", "-so", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "Feature Count: 2" in out.stdout


def test_tiles_gpkg_round_trip(tile_factory, tmp_path):
    tiles = tile_factory(3, 4, {(1, 1): (0.9, 0.2, 0.3)})
    path = write_tiles_gpkg(tiles, tmp_path / "tiles.gpkg")
    assert pyogrio.list_layers(path)[:, 0].tolist() == ["tiles"]
    back = gpd.read_file(path, layer="tiles")
    assert back.crs.to_epsg() == 32633
    assert back["tile_id"].tolist() == tiles["tile_id"].tolist()
    assert back["p_container_farm"].tolist() == pytest.approx(tiles["p_container_farm"].tolist())


def _bounds(tiles):
    return shapely.bounds(np.asarray(tiles.geometry.values))


def _scores(tiles):
    return np.stack([tiles[f"p_{c}"].to_numpy(dtype=np.float32) for c in CLASSES])


def test_heatmap_max_over_overlapping_tiles(tile_factory):
    tiles = tile_factory(3, 3, {(1, 1): (0.9, 0.0, 0.0), (1, 2): (0.4, 0.0, 0.0)}, stride=32.0)
    grid, transform = heatmap_array(_bounds(tiles), _scores(tiles), 32.0)
    assert grid.shape == (3, 4, 4)  # 3 tiles of 2 pixels at stride 1 pixel
    assert transform == Affine(32, 0, 500_000, 0, -32, 5_500_000)
    band = grid[0]
    # tile (1,1) covers pixels rows 1-2, cols 1-2; tile (1,2) covers rows 1-2, cols 2-3
    assert band[1, 1] == pytest.approx(0.9) and band[2, 2] == pytest.approx(0.9)
    assert band[1, 3] == pytest.approx(0.4)
    assert band[0, 0] == pytest.approx(0.05)


def test_heatmap_marks_unscanned_as_nodata(tile_factory):
    tiles = tile_factory(3, 3)
    tiles = tiles[tiles["tile_id"] != "r0001c0001"]  # a hole, as a geofence would leave
    grid, _ = heatmap_array(_bounds(tiles), _scores(tiles), 64.0)
    assert np.isnan(grid[:, 1, 1]).all()
    assert np.isfinite(grid[:, 0, 0]).all()


def test_heatmap_is_a_cog(tile_factory, tmp_path):
    # 3 x 300 tiles: wider than one 256-pixel block, so GDAL must add overviews
    tiles = tile_factory(3, 300, {(1, 150): (0.9, 0.8, 0.7)})
    path = write_heatmap_cog(tmp_path / "heatmap.tif", _bounds(tiles), _scores(tiles), list(CLASSES), tiles.crs,
                             pixel_size_m=64.0)
    with rasterio.open(path) as src:
        assert src.count == len(CLASSES)
        assert src.descriptions == CLASSES
        assert src.dtypes == ("float32",) * 3
        assert np.isnan(src.nodata)
        assert src.crs.to_epsg() == 32633
        assert src.res == (64.0, 64.0)
        assert src.profile["tiled"]
        assert src.overviews(1)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.read(2)[1, 150] == pytest.approx(0.8)
    try:
        from rio_cogeo.cogeo import cog_validate
    except ImportError:
        return
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors


def _optical(path, dtype, count=3, nodata=None, descriptions=None):
    """A 400 x 300 raster at 0.5 m over the tile grid's corner, with a bright block and a nodata corner."""
    rng = np.random.default_rng(0)
    data = rng.uniform(100, 200, (count, 300, 400)).astype(dtype)
    data[:, 100:140, 150:250] = 250
    fill = nodata if nodata is not None else np.nan
    data[:, :30, :40] = fill
    profile = {"driver": "GTiff", "width": 400, "height": 300, "count": count, "dtype": dtype,
               "crs": "EPSG:32633", "transform": Affine(0.5, 0, 500_000, 0, -0.5, 5_500_000), "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = descriptions
    return path


def test_thumbnail_is_small_stretched_and_masks_nodata(tmp_path):
    from minewatch.infer.quicklook import read_thumbnail

    path = _optical(tmp_path / "o.tif", "uint16", count=4, nodata=0, descriptions=("blue", "green", "red", "nir"))
    rgba, extent, crs = read_thumbnail(path, max_px=200)
    assert rgba.shape == (150, 200, 4)
    assert extent == (500_000, 500_200, 5_499_850, 5_500_000)
    assert crs.to_epsg() == 32633
    assert rgba[0, 0, 3] == 0 and rgba[-1, -1, 3] == 1  # nodata corner is transparent
    assert rgba[..., :3].min() >= 0 and rgba[..., :3].max() <= 1
    assert rgba[60, 100, :3].min() == 1.0  # the bright block saturates after the 2-98 % stretch
    grey, _, _ = read_thumbnail(_optical(tmp_path / "f.tif", "float32", count=1), max_px=400)
    assert grey[0, 0, 3] == 0 and np.allclose(grey[200, 300, 0], grey[200, 300, 1])


def test_quicklook_draws_sites(tmp_path, tile_factory, site_meta):
    import matplotlib.image as mpimg

    from minewatch.infer.quicklook import CLASS_COLOURS, write_quicklook

    optical = _optical(tmp_path / "o.tif", "uint8", nodata=0)
    probs = {(0, 1): (0.9, 0.1, 0.1), (1, 0): (0.1, 0.1, 0.8)}
    sites = build_sites(tile_factory(2, 3, probs, size=50.0), THR, **site_meta).to_crs(4326)
    png = write_quicklook(tmp_path / "q.png", optical, sites, title="scene_000001", max_px=400)
    img = mpimg.imread(png)[..., :3]
    assert max(img.shape[:2]) <= 800

    def has(colour: str) -> bool:
        rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        return bool((np.abs(img - rgb).max(axis=-1) < 0.02).sum() > 50)

    assert has(CLASS_COLOURS["container_farm"]) and has(CLASS_COLOURS["heat_signature"])
    empty = write_quicklook(tmp_path / "e.png", optical, sites.iloc[:0], title="nothing", max_px=400)
    img = mpimg.imread(empty)[..., :3]
    assert has(CLASS_COLOURS["cooling_array"])  # the legend is always there
    assert list(sorted(p.name for p in tmp_path.iterdir())) == ["e.png", "o.tif", "q.png"]


def test_heatmap_pixel_size_and_no_tiles(tile_factory, tmp_path):
    tiles = tile_factory(2, 3, {(0, 0): (0.9, 0.0, 0.0)})
    path = write_heatmap_cog(tmp_path / "h.tif", _bounds(tiles), _scores(tiles), crs=tiles.crs, pixel_size_m=32.0)
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.res) == (6, 4, (32.0, 32.0))
        assert src.read(1)[:2, :2] == pytest.approx(np.full((2, 2), 0.9))
    assert write_heatmap_cog(tmp_path / "none.tif", np.zeros((0, 4)), np.zeros((3, 0)), crs=tiles.crs,
                             pixel_size_m=32.0) is None
    assert not (tmp_path / "none.tif").exists()
