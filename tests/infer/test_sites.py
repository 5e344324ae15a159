"""Candidate sites from tile scores: merging, evidence, score and rank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.classes import CLASSES
from minewatch.datasets.crs import metric_crs
from minewatch.infer.sites import EDGE_COLUMN, SITE_COLUMNS, build_sites, default_min_windows, site_score

THR = {c: 0.5 for c in CLASSES}


def _build(tiles, meta, thresholds=THR, **kw):
    return build_sites(tiles, thresholds, **meta, **kw)


def test_adjacent_tiles_merge_into_one_site(tile_factory, site_meta):
    # an L of three edge-sharing tiles, one of them cooling only, plus hot tiles
    probs = {(1, 1): (0.9, 0.1, 0.2), (1, 2): (0.6, 0.7, 0.1), (2, 2): (0.2, 0.1, 0.8)}
    thermal = {(1, 1): (4.0, 2.0), (2, 2): (12.5, 6.5)}
    tiles = tile_factory(5, 5, probs, thermal=thermal)
    sites = _build(tiles, site_meta)

    assert len(sites) == 1
    s = sites.iloc[0]
    assert s["n_tiles"] == 3
    assert s["classes"] == "container_farm,cooling_array,heat_signature"
    assert s["p_container_farm"] == pytest.approx(0.9)
    assert s["p_cooling_array"] == pytest.approx(0.7)
    assert s["p_heat_signature"] == pytest.approx(0.8)
    assert s["thermal_dt_max_k"] == pytest.approx(12.5)
    assert s["thermal_z_max"] == pytest.approx(6.5)
    assert s["area_m2"] == pytest.approx(3 * 64 * 64)
    # the outline is the L itself, simplified to its 6 corners
    expected = shapely.union_all(tiles.geometry.iloc[[6, 7, 12]].values)
    assert s.geometry.symmetric_difference(expected).area == pytest.approx(0.0, abs=1e-6)
    assert len(s.geometry.exterior.coords) == 7
    assert s["site_id"] == "scene_000001-0001"
    assert s["rank"] == 1
    assert s["review_status"] == "unreviewed"
    assert sites.crs == tiles.crs
    assert list(sites.columns) == [*SITE_COLUMNS, "geometry"]


def test_lone_windows_are_dropped_unless_at_the_edge(tile_factory, site_meta):
    # a lone interior window, a pair sharing an edge, and a lone window on the raster's edge
    probs = {(2, 2): (0.9, 0.9, 0.0), (2, 5): (0.8, 0.0, 0.0), (3, 5): (0.6, 0.0, 0.0), (0, 0): (0.7, 0.0, 0.0)}
    tiles = tile_factory(7, 7, probs)
    tiles[EDGE_COLUMN] = (tiles["row"] == 0) | (tiles["col"] == 0) | (tiles["row"] == 6) | (tiles["col"] == 6)
    kept = _build(tiles, site_meta, min_windows=2)
    assert sorted(kept["n_tiles"].tolist()) == [1, 2]
    assert kept["p_container_farm"].tolist() == pytest.approx([0.8, 0.7])  # the lone interior 0.9 is gone
    assert len(_build(tiles, site_meta)) == 3  # the pure default keeps every window
    assert len(_build(tiles.drop(columns=EDGE_COLUMN), site_meta, min_windows=2)) == 1  # no edge column: pairs
    none = _build(tiles.iloc[[2 * 7 + 2]], site_meta, min_windows=2)
    assert none.empty and list(none.columns) == [*SITE_COLUMNS, "geometry"]
    lone = _build(tiles, site_meta, min_windows=2, lone=True)  # exactly what the rule dropped
    assert lone["n_tiles"].tolist() == [1] and lone["p_container_farm"].tolist() == pytest.approx([0.9])
    assert lone.iloc[0].geometry.equals(tiles.geometry.iloc[2 * 7 + 2])
    assert _build(tiles, site_meta, lone=True).empty  # one window is enough: nothing is dropped


def test_default_min_windows_follows_the_overlap():
    assert default_min_windows(64, 32) == 2  # the models' stride: every object in two windows or more
    assert default_min_windows(64, 16) == 2
    assert default_min_windows(64, 48) == 1 and default_min_windows(64, 64) == 1


def test_diagonal_and_separate_tiles_stay_apart(tile_factory, site_meta):
    probs = {(0, 0): (0.9, 0.0, 0.0), (1, 1): (0.8, 0.0, 0.0), (4, 4): (0.7, 0.0, 0.0)}
    sites = _build(tile_factory(5, 5, probs), site_meta)
    assert len(sites) == 3
    assert sites["n_tiles"].tolist() == [1, 1, 1]
    assert sites["p_container_farm"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert sites["rank"].tolist() == [1, 2, 3]
    assert math.isnan(sites["thermal_dt_max_k"].iloc[0])


def test_overlapping_tiles_merge(tile_factory, site_meta):
    # stride half the tile: diagonal neighbours overlap and belong to one site
    probs = {(0, 0): (0.9, 0.0, 0.0), (1, 1): (0.8, 0.0, 0.0)}
    sites = _build(tile_factory(4, 4, probs, stride=32.0), site_meta)
    assert len(sites) == 1
    assert sites["n_tiles"].iloc[0] == 2
    assert sites["area_m2"].iloc[0] == pytest.approx(2 * 64 * 64 - 32 * 32)


def test_three_classes_outrank_one_confident_class(tile_factory, site_meta):
    probs = {
        (0, 0): (0.99, 0.0, 0.0),  # one class, very confident
        (3, 3): (0.55, 0.52, 0.51),  # all three, barely
        (0, 3): (0.6, 0.9, 0.0),  # two classes
    }
    sites = _build(tile_factory(5, 5, probs), site_meta)
    assert sites["classes"].tolist() == [
        "container_farm,cooling_array,heat_signature",
        "container_farm,cooling_array",
        "container_farm",
    ]
    assert sites["rank"].tolist() == [1, 2, 3]
    assert sites["site_id"].tolist() == [f"scene_000001-{r:04d}" for r in (1, 2, 3)]
    assert sites["score"].is_monotonic_decreasing
    assert sites["score"].between(0, 1).all()
    assert sites["score"].iloc[0] == pytest.approx((2 + (0.55 + 0.52 + 0.51) / 3) / 3)


def test_site_score_orders_by_number_of_classes():
    one = site_score({"container_farm": 1.0, "cooling_array": 0.0, "heat_signature": 0.0}, THR)[0]
    two = site_score({"container_farm": 0.5, "cooling_array": 0.5, "heat_signature": 0.0}, THR)[0]
    none = site_score({"container_farm": 0.1, "cooling_array": float("nan"), "heat_signature": 0.0}, THR)
    assert two > one
    assert none == (0.0, [])


def test_ties_break_by_area_then_position(tile_factory, site_meta):
    one = (0.8, 0.0, 0.0)
    probs = {(0, 0): one, (3, 0): one, (3, 1): one, (0, 3): one}
    sites = _build(tile_factory(5, 5, probs), site_meta)
    assert sites["n_tiles"].tolist() == [2, 1, 1]
    # equal score and area: the westernmost of the two single tiles (same row) comes first
    assert sites["centroid_lon"].iloc[1] < sites["centroid_lon"].iloc[2]
    again = _build(tile_factory(5, 5, probs).iloc[::-1], site_meta)
    assert again["site_id"].tolist() == sites["site_id"].tolist()
    assert all(a.equals(b) for a, b in zip(again.geometry, sites.geometry, strict=True))


def test_no_positive_tiles_gives_empty_frame(tile_factory, site_meta):
    sites = _build(tile_factory(3, 3), site_meta)
    assert sites.empty
    assert list(sites.columns) == [*SITE_COLUMNS, "geometry"]
    assert sites.crs == "EPSG:32633"
    assert sites["rank"].dtype == np.int64


def test_area_and_centroid_from_geographic_tiles(tile_factory, site_meta):
    utm_tiles = tile_factory(3, 3, {(1, 1): (0.9, 0.0, 0.0), (1, 2): (0.9, 0.0, 0.0)})
    geo_tiles = utm_tiles.to_crs(4326)
    utm_site = _build(utm_tiles, site_meta).iloc[0]
    geo_site = _build(geo_tiles, site_meta, simplify_m=0).iloc[0]
    assert utm_site["area_m2"] == pytest.approx(2 * 64 * 64)
    assert geo_site["area_m2"] == pytest.approx(2 * 64 * 64, rel=2e-3)
    assert geo_site["centroid_lon"] == pytest.approx(utm_site["centroid_lon"], abs=1e-6)
    assert geo_site["centroid_lat"] == pytest.approx(utm_site["centroid_lat"], abs=1e-6)
    assert 14.9 < utm_site["centroid_lon"] < 15.1 and 49.5 < utm_site["centroid_lat"] < 49.7


def test_metric_crs_refuses_web_mercator_areas(tile_factory):
    tiles = tile_factory(1, 1).to_crs(3857)
    crs = metric_crs(tiles.crs, tiles)
    assert crs.to_epsg() == 32633
    assert metric_crs("EPSG:32633", tile_factory(1, 1)).to_epsg() == 32633


def test_missing_threshold_is_refused(tile_factory, site_meta):
    with pytest.raises(ValueError, match="heat_signature"):
        _build(tile_factory(1, 1), site_meta, thresholds={"container_farm": 0.5, "cooling_array": 0.5})


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.sampled_from([2, 3, 4])), min_size=1,
                max_size=40, unique_by=lambda t: t[:2]))
@settings(max_examples=150, deadline=None)
def test_box_components_match_the_geometric_rule(boxes):
    """The grid-of-edges components equal the spatial-index rule (shared area or edge; corners apart)."""
    from minewatch.infer.sites import box_components

    geoms = np.array([shapely.box(x, y, x + s, y + s) for x, y, s in boxes])
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    shared = shapely.intersection(geoms[left], geoms[right])
    joined = (shapely.area(shared) > 0) | (shapely.length(shared) > 0)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(geoms)
    _, want = connected_components(coo_matrix((np.ones(joined.sum()), (left[joined], right[joined])), shape=(n, n)),
                                   directed=False)
    got = box_components(shapely.bounds(geoms))
    # same partition (labels may be numbered differently)
    assert len({(a, b) for a, b in zip(want, got, strict=True)}) == len(set(want)) == len(set(got))


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 5), st.integers(1, 5)),
                min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_box_cover_is_the_union_of_the_boxes(boxes):
    """The cover drawn from the grid of edges is the boxes' union: the same ground, holes and all, valid."""
    from minewatch.infer.sites import box_cover

    geoms = np.array([shapely.box(x * 6.4, y * 6.4, (x + w) * 6.4, (y + h) * 6.4) for x, y, w, h in boxes])
    cover = box_cover(shapely.bounds(geoms))
    union = shapely.union_all(geoms)
    assert cover.is_valid and cover.symmetric_difference(union).area < 1e-9
    assert len(shapely.get_parts(cover)) == len(shapely.get_parts(union))


def test_the_scan_marks_windows_on_the_raster_edge():
    """A scan's sites: a lone interior window is dropped, a lone window on the raster's edge kept (the site may
    go on in the next scene), pairs kept; --min-windows 1 keeps every window."""
    from types import SimpleNamespace

    from affine import Affine
    from pyproj import CRS

    from minewatch.datasets.tiling import Grid, plan_tiles
    from minewatch.infer.scan import _sites
    from minewatch.infer.tile_scores import TileScores

    grid = Grid(CRS.from_epsg(32633), Affine(0.5, 0, 500000, 0, -0.5, 5000000), 1024, 1024)  # 512 m
    plan = plan_tiles(grid, tile_m=64, stride_m=32, tile_px=128)
    scores = TileScores(plan)
    scores.scanned[:] = True
    scores.probs[:] = 0.0
    at = {(t.row, t.col): i for i, t in enumerate(plan.tiles)}
    last = max(r for r, _ in at)
    for key, p in (((7, 7), 0.95), ((3, 10), 0.9), ((4, 10), 0.9), ((last, 5), 0.7)):  # lone, pair, edge lone
        scores.probs[at[key], 0] = p
    scene = SimpleNamespace(grid=grid, scene_id="s", acquired=None, sensor="drone")
    predictor = SimpleNamespace(meta=SimpleNamespace(thresholds={c: 0.5 for c in CLASSES}),
                                path=SimpleNamespace(name="m.onnx"), sha256="0" * 64)
    run = {"run_id": "r", "created": "2024-01-01T00:00:00Z"}
    kept, lone = _sites(scores, scene, predictor, run, 2)
    kept = kept.sort_values("n_tiles")
    assert kept["n_tiles"].tolist() == [1, 2] and kept["p_container_farm"].tolist() == pytest.approx([0.7, 0.9])
    assert lone is None  # a one-scene scan builds no lone sites
    assert sorted(_sites(scores, scene, predictor, run, 1)[0]["n_tiles"].tolist()) == [1, 1, 2]
    # A multi-scene task also says what the rule decided by this raster alone: the interior window dropped (an id
    # of its own), the edge window kept only by the edge (the kept site's id, its window as geometry).
    same, lone = _sites(scores, scene, predictor, run, 2, with_lone=True)
    assert same.drop(columns="geometry").equals(_sites(scores, scene, predictor, run, 2)[0].drop(columns="geometry"))
    lone = lone.set_index("site_rule")
    assert sorted(lone.index) == ["dropped", "edge"]
    assert lone.loc["dropped", "site_id"] == "s-lone-0001"
    assert lone.loc["dropped", "p_container_farm"] == pytest.approx(0.95)
    edge_site = kept.loc[kept["n_tiles"] == 1].iloc[0]
    assert lone.loc["edge", "site_id"] == edge_site["site_id"]
    assert lone.loc["edge", "geometry"].equals(shapely.box(*plan.tiles[at[(last, 5)]].bounds(grid.transform)))
