"""``minewatch tiles`` writes the kept windows as polygons a GIS user can open."""

import geopandas as gpd
import numpy as np
from click.testing import CliRunner
from shapely.geometry import box

from minewatch.cli import cli
from tests.conftest import write_raster


def test_tiles_command_writes_kept_windows(tmp_path, rgb_raster):
    fence = tmp_path / "fence.geojson"
    gpd.GeoDataFrame(geometry=[box(500000, 3999936, 500128, 4000000)], crs="EPSG:32633").to_crs(4326).to_file(fence)
    out = tmp_path / "tiles.gpkg"
    result = CliRunner().invoke(cli, ["tiles", str(rgb_raster), "--geofence", str(fence), "--tile-m", "32",
                                      "-o", str(out), "--max-nodata", "0.9"])
    assert result.exit_code == 0, result.output
    gdf = gpd.read_file(out, engine="pyogrio")
    assert gdf.crs.to_epsg() == 32633
    assert set(gdf.columns) >= {"tile_id", "row", "col", "nodata_fraction", "inside_share", "geometry"}
    assert len(gdf) == 8  # the fence covers 2 rows x 4 columns of 32 m tiles
    assert gdf.geometry.total_bounds.tolist() == [500000.0, 3999936.0, 500128.0, 4000000.0]
    first = gdf.sort_values("col").iloc[0]
    assert 0.2 < first["nodata_fraction"] < 0.5  # 20 of 64 pixels are the nodata collar


def test_tiles_skip_windows_that_are_mostly_nodata(tmp_path):
    data = np.full((3, 128, 128), 100, dtype=np.uint8)
    data[:, :, :64] = 0
    path = write_raster(tmp_path / "half.tif", data, nodata=0, descriptions=["red", "green", "blue"])
    out = tmp_path / "t.gpkg"
    result = CliRunner().invoke(cli, ["tiles", str(path), "--tile-m", "32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    gdf = gpd.read_file(out, engine="pyogrio")
    assert len(gdf) == 2 and (gdf["nodata_fraction"] == 0).all()


def test_tiles_skip_cloudy_windows(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(30, 120, size=(3, 128, 128), dtype=np.uint8)
    data[:, :64, :64] = 235  # a bright, colourless cloud over the top-left window
    path = write_raster(tmp_path / "cloud.tif", data, nodata=0, descriptions=["red", "green", "blue"])
    out = tmp_path / "t.gpkg"
    result = CliRunner().invoke(cli, ["tiles", str(path), "--tile-m", "32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    gdf = gpd.read_file(out, engine="pyogrio")
    assert len(gdf) == 3 and "r000000c000000" not in set(gdf["tile_id"])
    assert (gdf["cloud_fraction"] < 0.1).all()
