"""Vector labels to per-tile targets by the documented coverage rule, labels in any CRS."""

import geopandas as gpd
import pytest
from affine import Affine
from shapely.geometry import box

from minewatch.classes import CLASSES
from minewatch.datasets.labels import LabelRule, read_truth, tile_targets
from minewatch.datasets.tiling import grid_tiles, tiles_to_gdf
from minewatch.errors import UserError

CRS = "EPSG:32633"


def tiles():
    return tiles_to_gdf(grid_tiles(256, 128, 128, 128), Affine(0.5, 0, 500000, 0, -0.5, 4000000), CRS)


def truth(rows):
    return gpd.GeoDataFrame([{"class": c, "dt_k": dt} for c, _, dt in rows],
                            geometry=[g for _, g, _ in rows], crs=CRS)


def test_container_block_labels_the_tile_holding_it_in_any_crs():
    # Tile 0 spans x 500000..500064; a 12 x 5 m block well inside it; labels given in EPSG:4326.
    t = truth([("container_farm", box(500010, 3999970, 500022, 3999975), None)]).to_crs(4326)
    y = tile_targets(tiles(), t)
    assert y.shape == (2, 3)
    assert y[:, CLASSES.index("container_farm")].tolist() == [1, 0]
    assert y[:, 1:].sum() == 0


def test_grazing_corner_does_not_count_but_half_of_a_small_object_does():
    rule = LabelRule()
    # 40 x 40 m farm with only 2 x 40 m (80 m2... ) inside tile 1: share 5 %, area 80 m2 > 25 m2 -> positive
    big = box(500062, 3999950, 500102, 3999990)
    y = tile_targets(tiles(), truth([("container_farm", big, None)]), rule=rule)
    assert y[:, 0].tolist() == [1, 1]
    # a 1 m sliver of a big cooling wall inside tile 0 (1 x 4 m = 4 m2 < 6 m2, share < 50 %) -> negative
    wall = box(500063, 3999960, 500080, 3999964)
    y = tile_targets(tiles(), truth([("cooling_array", wall, None)]), rule=rule)
    assert y[:, 1].tolist() == [0, 1]
    # a 2 x 2 m fan box split in half -> both tiles hold 50 % of it -> positive in both
    fan = box(500063, 3999960, 500065, 3999962)
    y = tile_targets(tiles(), truth([("cooling_array", fan, None)]), rule=rule)
    assert y[:, 1].tolist() == [1, 1]


def test_heat_below_what_the_sensor_sees_is_not_a_label():
    heat = box(500010, 3999950, 500030, 3999970)
    y = tile_targets(tiles(), truth([("heat_signature", heat, 0.05)]))
    assert y.sum() == 0
    y = tile_targets(tiles(), truth([("heat_signature", heat, 8.0)]))
    assert y[:, 2].tolist() == [1, 0]


def test_lookalikes_never_label():
    y = tile_targets(tiles(), truth([("lookalike", box(500000, 3999940, 500128, 4000000), None)]))
    assert y.sum() == 0


def test_read_truth_checks_classes(tmp_path):
    p = tmp_path / "t.geojson"
    gpd.GeoDataFrame({"class": ["bitcoin"]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(p)
    with pytest.raises(UserError, match="unknown class"):
        read_truth(p)
    q = tmp_path / "n.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(q)
    with pytest.raises(UserError, match="'class'"):
        read_truth(q)


def test_empty_truth_means_all_negative(tmp_path):
    p = tmp_path / "empty.geojson"
    p.write_text('{"type": "FeatureCollection", "features": []}')
    t = read_truth(p)
    assert len(t) == 0 and "class" in t.columns
    assert tile_targets(tiles(), t).sum() == 0


def test_confusers_are_negative_windows_over_lookalikes_or_grazed_objects():
    from minewatch.datasets.labels import confuser_windows

    grid = tiles()
    yard = truth([("lookalike", box(500010, 3999970, 500030, 3999950), None)])  # 400 m2 in tile 0
    assert confuser_windows(grid, yard, tile_targets(grid, yard), min_area_m2=15).tolist() == [True, False]
    # A farm grazing tile 0 with 20 m2 (below the rule's 25 m2) and filling tile 1 with 160 m2.
    grazed = truth([("container_farm", box(500062, 3999970, 500080, 3999960), None)])
    targets = tile_targets(grid, grazed)
    assert targets[:, 0].tolist() == [0, 1]
    assert confuser_windows(grid, grazed, targets, min_area_m2=15).tolist() == [True, False]  # positives never
    assert confuser_windows(grid, grazed, targets, min_area_m2=25).tolist() == [False, False]


def test_objects_hidden_under_thick_cloud_and_unlabelled_ground_make_windows_unknown():
    from minewatch.datasets.labels import unknown_windows

    farm = box(500010, 3999970, 500022, 3999975)  # inside tile 0
    t = gpd.GeoDataFrame({"class": ["container_farm"], "cloud_share": [0.8]}, geometry=[farm], crs=CRS)
    assert unknown_windows(tiles(), t).tolist() == [True, False]
    assert unknown_windows(tiles(), t.assign(cloud_share=0.2)).tolist() == [False, False]  # mostly seen
    assert unknown_windows(tiles(), t.drop(columns="cloud_share")).tolist() == [False, False]  # no cloud known
    assert unknown_windows(tiles(), t, LabelRule(max_cloud_share=0.9)).tolist() == [False, False]
    ground = gpd.GeoDataFrame({"class": ["unlabelled"]}, geometry=[box(500070, 3999950, 500080, 3999960)], crs=CRS)
    assert unknown_windows(tiles(), ground.to_crs(4326)).tolist() == [False, True]
