"""Merging sites across scenes: one site per place, evidence combined, ranked across the run."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from minewatch.classes import CLASSES
from minewatch.infer.merge import MERGED_COLUMNS, combined_score, merge_sites, read_scene_sites, write_merged
from minewatch.infer.sites import EDGE_COLUMN, build_sites, site_score, split_by_rule
from minewatch.infer.writers import write_sites_geojson
from tests.infer.conftest import SITE_META, THRESHOLDS, UTM, X0, Y0, make_tiles


def _scene_sites(scene_id: str, probs: dict, *, origin=(X0, Y0), thermal=None, n=(4, 4)) -> gpd.GeoDataFrame:
    tiles = make_tiles(*n, probs, origin=origin, thermal=thermal)
    return build_sites(tiles, THRESHOLDS, **{**SITE_META, "scene_id": scene_id}).to_crs(4326)


def _run(*frames) -> gpd.GeoDataFrame:
    sites = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326)
    return merge_sites(sites, run_id="run-x", created="2024-07-01T00:00:00Z")


def test_a_site_cut_by_adjacent_scenes_is_one_site():
    # Scene A covers columns 0-3, scene B columns 4-7 of one tile grid: a site on columns 3-4 is cut in two.
    a = _scene_sites("A", {(1, 3): (0.9, 0.1, 0.1)})
    b = _scene_sites("B", {(1, 0): (0.2, 0.95, 0.1)}, origin=(X0 + 4 * 64, Y0), thermal={(1, 0): (6.0, 4.0)})
    merged = _run(a, b)
    assert len(merged) == 1
    site = merged.iloc[0]
    assert site["scene_ids"] == "A,B" and site["n_scenes"] == 2 and site["n_tiles"] == 2
    assert site["classes"] == "container_farm,cooling_array"
    assert site["p_container_farm"] == pytest.approx(0.9) and site["p_cooling_array"] == pytest.approx(0.95)
    assert site["thermal_dt_max_k"] == 6.0 and site["rank"] == 1 and site["run_id"] == "run-x"
    assert site.geometry.geom_type == "Polygon"  # the halves dissolved into one outline
    assert site["area_m2"] == pytest.approx(2 * 64 * 64, rel=1e-3)
    assert site["score"] == pytest.approx(site_score({"container_farm": 0.9, "cooling_array": 0.95,
                                                      "heat_signature": 0.1}, THRESHOLDS)[0])
    assert site["site_id"] == "B-0001"  # the strongest member's id (the higher score)
    assert list(merged.columns) == [*MERGED_COLUMNS, "geometry"]


def test_overlapping_scenes_see_one_site_and_hairline_gaps_close():
    a = _scene_sites("A", {(1, 1): (0.9, 0.1, 0.1), (1, 2): (0.9, 0.1, 0.1)})
    b = _scene_sites("B", {(1, 0): (0.92, 0.1, 0.1)}, origin=(X0 + 2 * 64 + 0.4, Y0))  # 0.4 m off A's grid
    c = _scene_sites("C", {(1, 0): (0.92, 0.1, 0.1)}, origin=(X0 + 3 * 64 + 0.6, Y0))  # 0.6 m gap to A's site
    merged = _run(a, b, c)
    assert len(merged) == 1 and merged.iloc[0]["scene_ids"] == "A,B,C"
    assert merged.iloc[0].geometry.geom_type == "Polygon"
    far = _scene_sites("D", {(1, 0): (0.92, 0.1, 0.1)}, origin=(X0 + 3 * 64 + 5.0, Y0))  # 5 m away: another site
    assert len(_run(a, far)) == 2


def test_sites_of_one_scene_stay_apart():
    # Tiles meeting at a corner are two sites in one scene; merging the scene with itself changes nothing.
    a = _scene_sites("A", {(0, 0): (0.9, 0.1, 0.1), (1, 1): (0.9, 0.1, 0.1)})
    merged = _run(a)
    assert len(merged) == 2 and (merged["n_scenes"] == 1).all()
    assert set(merged["site_id"]) == set(a["site_id"])
    np.testing.assert_allclose(sorted(merged["area_m2"]), sorted(a["area_m2"]))


def test_ranks_run_across_scenes():
    a = _scene_sites("A", {(0, 0): (0.9, 0.1, 0.1)})
    b = _scene_sites("B", {(0, 0): (0.9, 0.9, 0.9)}, origin=(X0 + 10_000, Y0))
    merged = _run(a, b)
    assert list(merged["scene_id"]) == ["B", "A"] and list(merged["rank"]) == [1, 2]


def test_combined_score_is_site_score_of_the_maxima():
    probs = {"container_farm": 0.95, "cooling_array": 0.6, "heat_signature": 0.88}
    score, above = site_score(probs, THRESHOLDS)
    assert combined_score(probs, above) == pytest.approx(score)
    assert combined_score(probs, []) == 0.0 and len(CLASSES) == 3


def test_files_round_trip_and_empty_runs(tmp_path):
    a = _scene_sites("A", {(1, 3): (0.9, 0.1, 0.1)})
    empty = _scene_sites("E", {})
    write_sites_geojson(a, tmp_path / "a.geojson")
    write_sites_geojson(empty, tmp_path / "e.geojson")
    sites = read_scene_sites([tmp_path / "a.geojson", tmp_path / "e.geojson"])
    merged = merge_sites(sites, run_id="r", created="c")
    paths = write_merged(merged, tmp_path)
    assert [p.name for p in paths] == ["sites.geojson", "sites.gpkg"]
    back = gpd.read_file(tmp_path / "sites.gpkg", layer="sites")
    assert back.crs.to_epsg() == 4326 and len(back) == 1 and back.iloc[0]["scene_ids"] == "A"
    none = merge_sites(read_scene_sites([tmp_path / "e.geojson"]), run_id="r", created="c")
    assert none.empty and list(none.columns) == [*MERGED_COLUMNS, "geometry"]
    write_merged(none, tmp_path)
    assert gpd.read_file(tmp_path / "sites.gpkg", layer="sites").empty


def test_dense_head_figures_of_a_merged_site_are_its_best_counted_member():
    # A farm cut by two scenes whose dense head counted 12 and 30 TEU: the larger count (a sum would count what
    # the scenes share twice); objects only when every member is outlined by its objects.
    a = _scene_sites("A", {(1, 3): (0.9, 0.1, 0.1)})
    b = _scene_sites("B", {(1, 0): (0.2, 0.95, 0.1)}, origin=(X0 + 4 * 64, Y0))
    for frame, teu, mw in ((a, 12, 0.5), (b, 30, 1.2)):
        frame["n_containers"] = pd.array([teu], dtype="Int64")
        frame["est_power_mw"], frame["outline"] = mw, "objects"
    site = _run(a, b).iloc[0]
    assert site["n_containers"] == 30 and site["est_power_mw"] == pytest.approx(1.2)
    assert site["outline"] == "objects"
    plain = _scene_sites("B", {(1, 0): (0.2, 0.95, 0.1)}, origin=(X0 + 4 * 64, Y0))  # a classifier-only scene
    site = _run(a, plain).iloc[0]
    assert site["n_containers"] == 12 and site["outline"] == "tiles"
    site = _run(plain, _scene_sites("A", {(1, 3): (0.9, 0.1, 0.1)})).iloc[0]
    assert pd.isna(site["n_containers"]) and np.isnan(site["est_power_mw"]) and site["outline"] == "tiles"


def _lone_sites(scene_id: str, probs: dict, *, origin=(X0, Y0), n=(4, 4)) -> gpd.GeoDataFrame:
    """What a scene's two-window rule dropped, as a multi-scene scan writes it (infer/scan.py `_write_lone`)."""
    tiles = make_tiles(*n, probs, origin=origin)
    lone = build_sites(tiles, THRESHOLDS, **{**SITE_META, "scene_id": scene_id}, min_windows=2, lone=True)
    lone["site_id"] = [f"{scene_id}-lone-{r:04d}" for r in lone["rank"]]
    return lone.assign(min_windows=2).to_crs(4326)


def _run_with_lone(sites: list, lone: list) -> gpd.GeoDataFrame:
    return merge_sites(gpd.GeoDataFrame(pd.concat(sites, ignore_index=True), crs=4326), run_id="run-x",
                       created="2024-07-01T00:00:00Z", lone=gpd.GeoDataFrame(pd.concat(lone, ignore_index=True),
                                                                             crs=4326))


def test_a_lone_window_next_to_another_scenes_site_joins_it():
    # A keeps a two-window site on columns 2-3; B (columns 4-7) has one positive window right beside it, which
    # B's own rule dropped. A scan of the mosaic would see three windows in a row: one site.
    a = _scene_sites("A", {(1, 2): (0.9, 0.1, 0.1), (1, 3): (0.9, 0.1, 0.1)})
    b_lone = _lone_sites("B", {(1, 0): (0.97, 0.1, 0.1)}, origin=(X0 + 4 * 64, Y0))
    assert len(b_lone) == 1
    merged = _run_with_lone([a], [b_lone])
    assert len(merged) == 1
    site = merged.iloc[0]
    assert site["n_tiles"] == 3 and site["scene_ids"] == "A,B" and site["n_scenes"] == 2
    assert site["area_m2"] == pytest.approx(3 * 64 * 64, rel=1e-3)
    assert site["p_container_farm"] == pytest.approx(0.97)  # the evidence of every member
    assert site["site_id"] == "A-0001" and site["scene_id"] == "A"  # the identity of the member A kept


def test_lone_windows_alone_stay_dropped_unless_two_scenes_see_the_same_ground():
    a = _scene_sites("A", {(1, 1): (0.9, 0.1, 0.1), (1, 2): (0.9, 0.1, 0.1)})
    far = _lone_sites("B", {(2, 2): (0.95, 0.1, 0.1)}, origin=(X0 + 5000, Y0))  # nothing of another scene near
    merged = _run_with_lone([a], [far])
    assert len(merged) == 1 and merged.iloc[0]["scene_ids"] == "A"
    assert (merged["site_id"] == a["site_id"].iloc[0]).all()
    # Two overlapping scenes each see one positive window on the same ground: two windows, as the rule asks.
    c = _lone_sites("C", {(2, 2): (0.93, 0.1, 0.1)}, origin=(X0 + 5000 + 16, Y0 - 16))
    merged = _run_with_lone([a], [far, c])
    assert len(merged) == 2
    pair = merged[merged["n_scenes"] == 2].iloc[0]
    assert pair["scene_ids"] == "B,C" and pair["n_tiles"] == 2 and pair["site_id"] == "B-lone-0001"
    # Lone sites only, and no kept site at all: the same rule.
    only = merge_sites(gpd.GeoDataFrame(pd.concat([a.iloc[:0]]), crs=4326), run_id="r", created="t",
                       lone=gpd.GeoDataFrame(pd.concat([far], ignore_index=True), crs=4326))
    assert only.empty and list(only.columns) == [*MERGED_COLUMNS, "geometry"]


def _scan(scene_id: str, probs: dict, *, origin=(X0, Y0), n=(4, 4), size: float = 64.0, need: int = 2):
    """A scene as a multi-scene scan leaves it for the merge: its sites, its lone file (infer/scan.py `_sites`)
    and the lon/lat outline of the ground its windows covered (scan.json ``footprint``)."""
    tiles = make_tiles(*n, probs, origin=origin, size=size)
    tiles[EDGE_COLUMN] = ((tiles["row"] == 0) | (tiles["col"] == 0) | (tiles["row"] == n[0] - 1)
                          | (tiles["col"] == n[1] - 1))

    def build(lone: bool) -> gpd.GeoDataFrame:
        return build_sites(tiles, THRESHOLDS, **{**SITE_META, "scene_id": scene_id}, min_windows=need, lone=lone,
                           rule_column=True)

    sites, lone = split_by_rule(build(False), build(True), scene_id)
    footprint = gpd.GeoSeries([shapely.box(*tiles.total_bounds)], crs=tiles.crs).to_crs(4326).iloc[0]
    return sites.to_crs(4326), lone.assign(min_windows=need, window_m=size).to_crs(4326), footprint


def _merge_scans(*scans, footprints: bool = True) -> gpd.GeoDataFrame:
    sites, lone, outlines = zip(*scans, strict=True)
    return merge_sites(gpd.GeoDataFrame(pd.concat(sites, ignore_index=True), crs=4326), run_id="run-x",
                       created="2024-07-01T00:00:00Z",
                       lone=gpd.GeoDataFrame(pd.concat(lone, ignore_index=True), crs=4326),
                       footprints=list(outlines) if footprints else None)


def test_a_window_kept_by_its_scenes_edge_falls_where_another_scene_saw_the_ground_beyond():
    # A (columns 0-3) keeps one positive window on its right edge: the site may go on outside A.
    a = _scan("A", {(1, 3): (0.9, 0.1, 0.1)})
    assert a[0]["n_tiles"].tolist() == [1] and a[1]["site_rule"].tolist() == ["edge"]
    assert a[1]["site_id"].tolist() == a[0]["site_id"].tolist()
    assert _merge_scans(a)["site_id"].tolist() == ["A-0001"]  # alone, A's edge is the edge of all that was seen
    # B (columns 4-7, 0.4 m off A's grid: a hairline between them) saw the ground beyond and nothing there: a scan
    # of the mosaic would see one window inside it, and drop it.
    empty_b = _scan("B", {}, origin=(X0 + 4 * 64 + 0.4, Y0))
    assert _merge_scans(a, empty_b).empty
    assert _merge_scans(a, empty_b, footprints=False)["site_id"].tolist() == ["A-0001"]  # unknown ground: kept
    # B saw the site go on: one window on its own left edge, beside A's; two windows together, one site.
    b = _scan("B", {(1, 0): (0.92, 0.1, 0.1)}, origin=(X0 + 4 * 64, Y0))
    merged = _merge_scans(a, b)
    assert merged["scene_ids"].tolist() == ["A,B"] and merged["n_tiles"].tolist() == [2]
    # B lower down covers the ground beyond only from row 2: the window at row 1 still faces ground nobody saw.
    low_b = _scan("B", {}, origin=(X0 + 4 * 64, Y0 - 2 * 64))
    assert _merge_scans(a, low_b)["site_id"].tolist() == ["A-0001"]
    # A window in A's top right corner: B covers the ground to its right, nothing covers the ground above it.
    corner = _scan("A", {(0, 3): (0.9, 0.1, 0.1)})
    assert _merge_scans(corner, empty_b)["site_id"].tolist() == ["A-0001"]
    above = _scan("C", {}, origin=(X0, Y0 + 4 * 64), n=(4, 8))
    assert _merge_scans(corner, empty_b, above).empty
    # B reaches only 30 m beyond A's edge: a scan of the mosaic would have an edge window of its own over A's.
    narrow_b = _scan("B", {}, origin=(X0 + 4 * 64, Y0), n=(8, 1), size=30.0)
    assert _merge_scans(a, narrow_b)["site_id"].tolist() == ["A-0001"]
    # A site A keeps by its windows stays, whatever B saw.
    pair = _scan("A", {(1, 3): (0.9, 0.1, 0.1), (2, 3): (0.9, 0.1, 0.1)})
    assert pair[1].empty and _merge_scans(pair, empty_b)["n_tiles"].tolist() == [2]


def test_edge_sites_outlined_by_their_objects_join_through_their_windows():
    # A dense head outlines objects, which may stop short of the raster's edge: A's and B's halves of one farm, each
    # a window on its scene's edge, are 20 m apart as objects but side by side as windows. One site of 2 windows.
    a_sites, a_lone, a_seen = _scan("A", {(1, 3): (0.9, 0.1, 0.1)})
    b_sites, b_lone, b_seen = _scan("B", {(1, 0): (0.92, 0.1, 0.1)}, origin=(X0 + 4 * 64, Y0))
    objects = [gpd.GeoSeries([shapely.box(x0, Y0 - 110, x0 + 20, Y0 - 80)], crs=UTM).to_crs(4326).iloc[0]
               for x0 in (X0 + 4 * 64 - 30, X0 + 4 * 64 + 10)]
    a_sites = a_sites.set_geometry([objects[0]], crs=4326)
    b_sites = b_sites.set_geometry([objects[1]], crs=4326)
    merged = _merge_scans((a_sites, a_lone, a_seen), (b_sites, b_lone, b_seen))
    assert merged["scene_ids"].tolist() == ["A,B"] and merged["n_tiles"].tolist() == [2]
    assert merged.iloc[0].geometry.area == pytest.approx(shapely.union_all(objects).area, rel=1e-6)


def test_sites_a_dense_head_split_from_one_component_count_its_windows_once():
    # A's edge window holds two objects: two sites from one component of one window. B (on the same ground)
    # dropped one window of its own. At three windows a site the pair has two windows, not three: dropped.
    a_sites, a_lone, a_seen = _scan("A", {(1, 3): (0.9, 0.1, 0.1)}, need=3)
    twin_sites = pd.concat([a_sites, a_sites.assign(site_id="A-0002", rank=2)], ignore_index=True)
    twin_lone = pd.concat([a_lone, a_lone.assign(site_id="A-0002")], ignore_index=True)
    b = _scan("B", {(1, 1): (0.92, 0.1, 0.1)}, origin=(X0 + 2 * 64, Y0), need=3)
    assert b[1]["site_rule"].tolist() == ["dropped"]
    covered = _scan("C", {}, origin=(X0 - 64, Y0 + 64), n=(7, 8))  # all around: no edge faces unseen ground
    assert _merge_scans((twin_sites, twin_lone, a_seen), b, covered).empty
    # Each of A's two sites counted apart would make three windows with B's, and a site.
    apart = twin_lone.assign(component=[0, 1])
    assert len(_merge_scans((twin_sites, apart, a_seen), b, covered)) == 1
