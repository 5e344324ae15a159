"""The strip reader yields what reading each window on its own yields, with every pixel read once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from minewatch.datasets.model_input import InputSpec, cloud_fraction, nodata_fraction, tile_input
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile, plan_tiles
from minewatch.infer.reader import column_swaths, read_tiles, row_strips
from minewatch.model_meta import ThermalInput

X0, Y0 = 500_000.0, 5_500_000.0
SPEC = InputSpec(("red", "green", "blue"), (0.4, 0.4, 0.4), (0.1, 0.1, 0.1),
                 ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40), 64)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory) -> tuple[Path, Path]:
    """A 221.6 m drone scene: textured RGB with a nodata collar and a white (cloud-like) block, and a
    thermal raster with a hot patch and a nodata corner."""
    root = tmp_path_factory.mktemp("reader")
    rng = np.random.default_rng(3)
    n = 1108  # 0.2 m pixels: a 443 px model grid, so the last row and column start off the lattice
    rgb = rng.integers(40, 200, size=(3, n, n), dtype=np.uint8)
    rgb[:, :, :90] = 0  # nodata collar (18 m)
    rgb[:, 600:800, 600:800] = 240  # bright and grey: cloud
    profile = dict(driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(X0, Y0, 0.2, 0.2), nodata=0, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(root / "optical.tif", "w", **profile) as dst:
        dst.write(rgb)
    m = n // 4
    kelvin = (290 + rng.normal(0, 0.5, size=(m, m))).astype(np.float32)
    kelvin[100:130, 150:190] += 15
    kelvin[-30:, -30:] = -9999
    with rasterio.open(root / "thermal.tif", "w", driver="GTiff", width=m, height=m, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(X0, Y0, 0.8, 0.8), nodata=-9999) as dst:
        dst.write(kelvin, 1)
        dst.update_tags(UNITS="kelvin")
    return root / "optical.tif", root / "thermal.tif"


@pytest.mark.parametrize("stride_m", [16.0, 12.0, 32.0])
def test_strip_reader_matches_reading_each_window(scene_files, stride_m) -> None:
    optical, thermal = scene_files
    with Scene(optical, thermal, gsd_m=0.5, background_m=100, background_gsd_m=25) as scene:
        plan = plan_tiles(scene.grid, tile_m=32, stride_m=stride_m, tile_px=64)
        tiles = plan.tiles
        reads = list(read_tiles(scene, tiles, SPEC, stride_px=plan.stride_px, max_nodata=0.5, max_cloud=0.6,
                                swath_px=None))
        assert [r.tile.tile_id for r in reads] == [t.tile_id for t in sorted(tiles, key=lambda t: (t.row, t.col))]
        last_col = max(t.col_off for t in tiles)
        checked = skipped = 0
        for r in reads:
            opt = scene.read_optical(r.tile, SPEC.optical_bands)
            dt, z = scene.thermal_anomaly(r.tile)
            # The last column is shifted back to the raster edge, off the stride lattice: cut from the
            # strip it is resampled a little differently than by a read of its own (the last row is read
            # on its own, so it is exact).
            exact = r.tile.col_off != last_col
            tol = 1e-6 if exact else 0.2
            assert r.nodata_fraction == pytest.approx(nodata_fraction(opt), abs=1e-9 if exact else 0.05)
            assert r.cloud_fraction == pytest.approx(cloud_fraction(opt, SPEC.optical_bands),
                                                     abs=1e-9 if exact else 0.05)
            for got, want in ((r.dt_max_k, dt), (r.z_max, z)):
                if np.isfinite(want).any():
                    assert got == pytest.approx(float(np.nanmax(want)), abs=tol)
                else:
                    assert np.isnan(got)
            if r.nodata_fraction > 0.5 or r.cloud_fraction > 0.6:
                assert r.x is None
                skipped += 1
                continue
            np.testing.assert_allclose(r.x, tile_input(scene, r.tile, SPEC), rtol=0, atol=1e-5 if exact else 5)
            checked += exact
    assert checked > 20 and skipped > 0  # the collar and the cloud block were seen


def test_rows_share_strips_between_tile_edges() -> None:
    tiles = [Tile(r, 0, off, 0, 64, 64) for r, off in enumerate([0, 32, 64, 80])]  # last row shifted back
    strips = row_strips(tiles, 32)
    assert strips[0] == [(0, 32, True), (32, 64, True)]
    assert strips[32] == [(32, 64, True), (64, 96, True)]
    assert strips[64] == [(64, 96, True), (96, 128, True)]
    assert strips[80] == [(80, 144, False)]
    # a resumed scan may hold only some rows: the lattice is the plan's stride from row 0, not the first row
    assert row_strips(tiles[2:], 32) == {64: [(64, 128, True)], 80: [(80, 144, False)]}


def test_swaths_give_the_same_windows_as_full_width_strips(scene_files) -> None:
    optical, thermal = scene_files
    with Scene(optical, thermal, gsd_m=0.5, background_m=100, background_gsd_m=25) as scene:
        assert not scene.striped
        plan = plan_tiles(scene.grid, tile_m=32, stride_m=16, tile_px=64)
        tiles = plan.tiles
        full = {r.tile.tile_id: r for r in read_tiles(scene, tiles, SPEC, stride_px=plan.stride_px, max_nodata=0.5,
                                                       max_cloud=0.6, swath_px=None)}
        swathed = list(read_tiles(scene, tiles, SPEC, stride_px=plan.stride_px, max_nodata=0.5, max_cloud=0.6,
                                  swath_px=160))
    assert sorted(r.tile.tile_id for r in swathed) == sorted(full)
    assert swathed[0].tile.col_off == 0 and swathed[-1].tile.col_off > 160  # swath by swath, not row-major
    for r in swathed:
        f = full[r.tile.tile_id]
        assert (r.nodata_fraction, r.cloud_fraction) == (f.nodata_fraction, f.cloud_fraction)
        np.testing.assert_array_equal([r.dt_max_k, r.z_max], [f.dt_max_k, f.z_max])
        assert (r.x is None) == (f.x is None)
        if r.x is not None:
            np.testing.assert_allclose(r.x, f.x, rtol=0, atol=1e-5)


def test_column_swaths_hold_whole_columns_within_the_width() -> None:
    tiles = [Tile(r, c, r * 32, c * 32, 64, 64) for r in range(3) for c in range(10)]
    swaths = column_swaths(tiles, 160)
    assert sorted(t.tile_id for s in swaths for t in s) == sorted(t.tile_id for t in tiles)
    for s in swaths:
        span = max(t.col_off + t.width for t in s) - min(t.col_off for t in s)
        assert span <= 160 and len({t.col_off for t in s}) * 3 == len(s)  # every column whole
    assert len(swaths) == 3  # 4 columns (160 px), 4, then the last 2
    assert column_swaths(tiles, 10) == [[t for t in tiles if t.col == c] for c in range(10)]  # narrower than a tile
    assert column_swaths(tiles, None) == [tiles]
