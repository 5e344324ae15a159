"""VRT mosaics are read once everything they point at is checked; band files stack into a named VRT."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio

from minewatch.datasets.raster_io import open_raster
from minewatch.datasets.scene import Scene
from minewatch.datasets.vrt import BandSource, remote_reads, write_band_vrt
from minewatch.errors import UserError
from tests.conftest import write_raster
from tests.many.scenes import mosaic_vrt


@pytest.fixture
def tiles(tmp_path) -> list[Path]:
    """Two 64 x 64 RGB rasters side by side on one 0.5 m grid."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(2):
        data = rng.integers(1, 255, size=(3, 64, 64), dtype=np.uint8)
        out.append(write_raster(tmp_path / f"t{k}.tif", data, origin=(500_000.0 + 32 * k, 4_000_000.0),
                                descriptions=["red", "green", "blue"]))
    return out


def _vrt(tmp_path: Path, source: str, *, band_extra: str = "", band_children: str = "", relative: bool = False,
         name: str = "x.vrt") -> Path:
    path = tmp_path / name
    path.write_text(
        '<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>EPSG:32633</SRS>'
        "<GeoTransform>500000, 0.5, 0, 4000000, 0, -0.5</GeoTransform>"
        f'<VRTRasterBand dataType="Byte" band="1" {band_extra}>{band_children}<SimpleSource>'
        f'<SourceFilename relativeToVRT="{int(relative)}">{source}</SourceFilename>'
        f"<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>")
    return path


def test_a_mosaic_reads_like_its_tiles(tiles, tmp_path):
    vrt = mosaic_vrt(tiles, tmp_path / "mosaic.vrt")
    with open_raster(vrt) as ds:
        assert ds.driver == "VRT" and ds.width == 128 and ds.descriptions == ("red", "green", "blue")
        got = ds.read()
    with rasterio.open(tiles[0]) as a, rasterio.open(tiles[1]) as b:
        np.testing.assert_array_equal(got, np.concatenate([a.read(), b.read()], axis=2))
    with Scene(vrt) as scene:
        assert scene.band_names == ("red", "green", "blue") and scene.grid.width == 128


@pytest.mark.parametrize("source, problem", [
    ("missing.tif", "does not exist"),
    ("/dev/zero", "not a regular file"),
    ("/vsizip/x.zip/a.tif", "/vsizip/"),
    ("MEM:::DATAPOINTER=0x1,PIXELS=8,LINES=8", "not a file path"),
    ("HDF5:\"a.h5\"://b", "not a file path"),
    ("/vsicurl/https://example.com/a.tif", "over the network"),
])
def test_a_vrt_pointing_at_what_minewatch_does_not_read_is_refused(tmp_path, source, problem):
    with pytest.raises(UserError, match=re.escape(problem)) as err:
        open_raster(_vrt(tmp_path, source))
    assert "\n" not in str(err.value) and "Fix:" in str(err.value) and "x.vrt" in str(err.value)


def test_raw_bands_and_pixel_functions_with_code_are_refused(tiles, tmp_path):
    with pytest.raises(UserError, match="raw bytes"):
        open_raster(_vrt(tmp_path, str(tiles[0]), band_extra='subClass="VRTRawRasterBand"'))
    code = ("<PixelFunctionType>f</PixelFunctionType><PixelFunctionLanguage>Python</PixelFunctionLanguage>"
            "<PixelFunctionCode><![CDATA[import os]]></PixelFunctionCode>")
    with pytest.raises(UserError, match="pixel function with code"):
        open_raster(_vrt(tmp_path, str(tiles[0]), band_extra='subClass="VRTDerivedRasterBand"', band_children=code))
    assert os.environ["GDAL_VRT_ENABLE_PYTHON"] == "NO"


def test_a_source_of_another_driver_is_refused(tmp_path):
    asc = tmp_path / "grid.asc"
    asc.write_text("ncols 4\nnrows 4\nxllcorner 0\nyllcorner 0\ncellsize 1\n" + "1 2 3 4\n" * 4)
    with pytest.raises(UserError, match="AAIGrid file"):
        open_raster(_vrt(tmp_path, str(asc)))


def test_relative_and_nested_vrts_are_followed_and_loops_refused(tiles, tmp_path):
    inner = _vrt(tmp_path, tiles[0].name, relative=True, name="inner.vrt")
    outer = _vrt(tmp_path, "inner.vrt", relative=True, name="outer.vrt")
    with open_raster(outer) as ds:
        assert ds.read(1).shape == (64, 64)
    assert inner.exists()
    loop = _vrt(tmp_path, "loop.vrt", relative=True, name="loop.vrt")
    with pytest.raises(UserError, match="loop"):
        open_raster(loop)


def test_band_files_stack_into_a_named_vrt(tmp_path):
    rng = np.random.default_rng(2)
    fine = rng.integers(1, 1000, size=(1, 40, 40), dtype=np.uint16)
    paths = {}
    for name in ("red", "green", "blue"):
        paths[name] = write_raster(tmp_path / f"{name}.tif", fine, gsd=10.0, nodata=0)
    coarse = write_raster(tmp_path / "nir.tif", rng.integers(1, 1000, size=(1, 20, 20), dtype=np.uint16), gsd=20.0,
                          nodata=0)
    vrt = write_band_vrt([*(BandSource(str(p), n) for n, p in paths.items()), BandSource(str(coarse), "nir")],
                         tmp_path / "stack.vrt", tags={"SENSOR": "test"})
    with open_raster(vrt) as ds:
        assert ds.descriptions == ("red", "green", "blue", "nir") and ds.res == (10.0, 10.0)
        assert (ds.width, ds.height) == (40, 40) and ds.tags()["SENSOR"] == "test" and ds.nodata == 0
        np.testing.assert_array_equal(ds.read(1), fine[0])
        nir = ds.read(4)
    with rasterio.open(coarse) as c:
        np.testing.assert_array_equal(nir[::2, ::2], c.read(1))  # nearest: each 20 m pixel over 2 x 2


def test_remote_sources_are_read_only_when_allowed(tiles, tmp_path, http_root):
    root, url = http_root
    (root / "t0.tif").write_bytes(tiles[0].read_bytes())
    vrt = _vrt(tmp_path, f"/vsicurl/{url}/t0.tif")
    with remote_reads(False), pytest.raises(UserError, match="--allow-remote"):
        open_raster(vrt)
    with remote_reads(True), open_raster(vrt) as ds:
        with rasterio.open(tiles[0]) as local:
            np.testing.assert_array_equal(ds.read(1), local.read(1))
