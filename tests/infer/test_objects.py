"""Site outlines from masks: mosaics, dissolving, holes, splitting, counts; the power model; sites with objects."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from conftest import THRESHOLDS, UTM, make_tiles
from scipy import ndimage

from minewatch.datasets.masks import object_layers
from minewatch.datasets.tiling import Tile, tile_polygons
from minewatch.infer.objects import (
    MaskStore,
    OutlineRules,
    dilate_disk,
    dissolve,
    merge_small_groups,
    outline_objects,
    polygonise,
    taper,
)
from minewatch.infer.power import (
    COUNT_REL_ERROR,
    RUNNING_EXCESS_K,
    TEU_M2,
    estimate_power,
    is_running,
    mw_per_teu,
)
from minewatch.infer.sites import OBJECT_COLUMNS, SITE_COLUMNS, build_sites

GSD = 0.5
ORIGIN = (500_000.0, 5_000_200.0)
TRANSFORM = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])
NAMES = ("container", "cooling", "heat")


def test_power_model_units_and_ranges():
    assert TEU_M2 == pytest.approx(14.79, abs=0.01)
    assert mw_per_teu() == pytest.approx(0.39)  # 120 miners x 3.25 kW
    p = estimate_power(24.0)  # twelve 40 ft containers, running (no thermal to say otherwise)
    assert p.mw == pytest.approx(24 * 0.39)
    assert p.low == pytest.approx(24 * (1 - COUNT_REL_ERROR) * 65 * 3.0 / 1000)
    assert p.high == pytest.approx(24 * (1 + COUNT_REL_ERROR) * 160 * 3.5 / 1000)
    assert p.low < p.mw < p.high
    assert estimate_power(24.0, running=True) == p == estimate_power(24.0, running=None)
    idle = estimate_power(24.0, running=False)  # thermal shows a cold farm: it draws nothing now
    assert (idle.mw, idle.low, idle.high) == (0.0, 0.0, p.high)  # ... and its capacity if switched on
    assert all(math.isnan(v) for v in vars(estimate_power(0.0)).values())  # no containers: no figure
    assert is_running(5.0) and is_running(RUNNING_EXCESS_K) and is_running(0.3) is False
    assert is_running(None) is None and is_running(float("nan")) is None


def test_dissolve_closes_gaps_fills_small_holes_and_keeps_real_ones():
    a = np.zeros((80, 80), bool)
    a[10:20, 10:14] = a[10:20, 16:20] = True  # two containers 1 m apart (2 px at 0.5 m)
    a[40:70, 40:70] = True
    a[47:63, 47:63] = False  # a 64 m2 yard inside a ring of containers: real
    a[43:45, 43:45] = False  # a 1 m2 speck of background: noise
    out = dissolve(a, radius_px=3, min_hole_px=30 / 0.25)
    assert out[11:19, 14:16].all()  # the gap between the containers is closed (corners stay round)
    assert not out[49:61, 49:61].any() and out[43:45, 43:45].all()  # the closing rounds its corners
    assert dissolve(a, radius_px=3, min_hole_px=100 / 0.25)[47:63, 47:63].all()  # below the limit: filled
    poly = polygonise(out, Affine(0.5, 0, 0, 0, -0.5, 0), 0.5)
    ring = [g for g in shapely.get_parts(poly) if g.area > 100][0]
    assert len(ring.interiors) == 1 and 40 < shapely.Polygon(ring.interiors[0]).area <= 64  # corners rounded


def test_the_disk_dilation_and_closing_are_exactly_the_distance_rule():
    """dilate_disk (running maxima over rectangles) marks exactly the pixels within r of an object pixel, and
    dissolve's closing is the distance-transform closing it replaced, objects at the border included."""
    rng = np.random.default_rng(3)
    for trial in range(6):
        a = np.zeros((70, 90), bool)
        for _ in range(12):
            r, c = rng.integers(-5, 65), rng.integers(-5, 85)  # some cut by the border
            a[max(r, 0) : r + rng.integers(2, 14), max(c, 0) : c + rng.integers(2, 14)] = True
        a &= rng.random(a.shape) > 0.1  # ragged, with one-pixel holes
        for radius in [*range(0, 13), 2.5, 7.5, 16.667]:  # fractional: the site gap over the pixel size
            assert (dilate_disk(a, radius) == (ndimage.distance_transform_edt(~a) <= radius)).all(), (trial, radius)
        for radius in (1, 2, 3, 5):
            padded = np.pad(a, radius)
            near = ndimage.distance_transform_edt(~padded) <= radius
            closed = (ndimage.distance_transform_edt(near) > radius)[radius:-radius, radius:-radius] | a
            holes = ndimage.binary_fill_holes(closed) & ~closed
            labels, n = ndimage.label(holes)
            small = np.bincount(labels.ravel(), minlength=n + 1) < 8
            small[0] = False
            assert (dissolve(a, radius, min_hole_px=8) == (closed | small[labels])).all(), (trial, radius)


def test_mask_store_round_trip_is_uint8_and_flat():
    store = MaskStore(NAMES, 8)
    m = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    store.put("r000000c000000", m)
    dt = np.where(m[0] > 0.5, 12.5, np.nan)
    store.put("r000000c000008", m, dt)
    assert "r000000c000000" in store and store.get("other") is None
    assert np.max(np.abs(store.get("r000000c000000") - m)) <= 0.5 / 255 + 1e-6
    assert store.get_dt("r000000c000000") is None and store.get_dt("other") is None
    assert np.array_equal(store.get_dt("r000000c000008"), dt, equal_nan=True)
    assert np.max(np.abs(store.get("r000000c000008") - m)) <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError):
        store.put("x", np.zeros((3, 4, 4), np.float32))
    store.close()
    w = taper(8)
    assert w.max() <= 1 and w.min() >= 0.1**2 and w[3, 4] > w[0, 3] > w[0, 0]


def windows_over(objects: gpd.GeoDataFrame, tile_px: int = 64, stride_px: int = 32, n: int = 8
                 ) -> tuple[gpd.GeoDataFrame, MaskStore]:
    """Windows of a grid (all positive) and a store holding the truth's coverage as their masks, and as their
    thermal excess 10 K inside the heat polygons, 0 K elsewhere."""
    layers = object_layers(objects, UTM, NAMES)
    store = MaskStore(NAMES, tile_px)
    tiles = [Tile(r, c, r * stride_px, c * stride_px, tile_px, tile_px) for r in range(n) for c in range(n)]
    for t in tiles:
        m = layers.rasterize(TRANSFORM * Affine.translation(t.col_off, t.row_off), tile_px, tile_px)
        store.put(t.tile_id, m, np.where(m[2] > 0.5, 10.0, 0.0))
    frame = gpd.GeoDataFrame({"tile_id": [t.tile_id for t in tiles], "row_off": [t.row_off for t in tiles],
                              "col_off": [t.col_off for t in tiles]},
                             geometry=tile_polygons(tiles, TRANSFORM), crs=UTM)
    return frame, store


def farm(x: float, y: float, n: int, length: float = 12.19, gap: float = 1.0) -> shapely.Polygon:
    w = n * 2.44 + (n - 1) * gap
    return shapely.box(ORIGIN[0] + x, ORIGIN[1] - y - w, ORIGIN[0] + x + length, ORIGIN[1] - y)


def test_outlines_sit_on_the_objects_and_far_apart_farms_are_two_sites():
    a, b = farm(20, 20, 6), farm(80, 70, 8, length=6.06, gap=2.0)
    fans = shapely.box(a.bounds[2], a.bounds[1], a.bounds[2] + 1.2, a.bounds[3])
    hot = shapely.union(a, fans).buffer(2.0)
    objects = gpd.GeoDataFrame({"class": ["container_farm", "cooling_array", "heat_signature", "container_farm"],
                                "n_containers": [6, 6, 0, 8], "dt_k": [1, 1, 9, 1]},
                               geometry=[a, fans, hot, b], crs=UTM)
    frame, store = windows_over(objects)
    sites = outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=True)
    assert sites is not None and len(sites) == 2
    site_a = max(sites, key=lambda s: s.n_teu)
    site_b = min(sites, key=lambda s: s.n_teu)
    truth_a = shapely.union_all([a, fans, hot])
    iou = shapely.intersection(site_a.outline, truth_a).area / shapely.union(site_a.outline, truth_a).area
    assert iou > 0.9
    assert site_a.n_teu == pytest.approx(12, rel=0.05)  # six 40 ft containers
    assert site_b.n_teu == pytest.approx(8, rel=0.05)  # eight 20 ft containers, gaps of 2 m left out
    assert site_a.fan_area_m2 == pytest.approx(fans.area, rel=0.05)
    assert site_a.hot_area_m2 == pytest.approx(hot.area, rel=0.05)
    assert site_a.roof_excess_k == pytest.approx(10.0) and site_b.roof_excess_k == 0.0  # measured, not masks
    assert site_b.outline.buffer(1.0).contains(b) and site_b.outline.area < 1.3 * b.area  # gaps closed, no more
    # each site lies in the windows that hold it, not in all of them
    assert 0 < site_b.members.sum() < len(frame)
    overlap = shapely.area(shapely.intersection(np.asarray(frame.geometry.values), site_b.outline))
    assert (overlap[site_b.members] > 0).all() and site_b.members[overlap > 1.0].all()
    # without thermal there is no hot area and no running share
    cold = outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=False)
    assert all(math.isnan(s.hot_area_m2) and s.roof_excess_k is None for s in cold)
    # nothing above the threshold: the caller keeps the window outline
    empty_store = MaskStore(NAMES, 64)
    assert outline_objects(frame, empty_store, transform=TRANSFORM, tile_px=64, has_thermal=True) is None
    assert outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=True,
                           rules=OutlineRules(max_mosaic_px=100)) is None


def test_a_group_smaller_than_a_site_joins_the_nearest_larger_one():
    """One 20 ft container 40 m from a farm is not a site of its own but part of the farm's; alone in its block
    of windows it is still reported (the classifier's evidence stays), as one site."""
    a, speck = farm(20, 20, 6), farm(20, 80, 1, length=6.06)
    objects = gpd.GeoDataFrame({"class": ["container_farm", "container_farm"], "n_containers": [6, 1],
                                "dt_k": [1.0, 1.0]}, geometry=[a, speck], crs=UTM)
    frame, store = windows_over(objects)
    split = outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=True,
                            rules=OutlineRules(min_site_m2=0))
    assert split is not None and len(split) == 2
    sites = outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=True)
    assert sites is not None and len(sites) == 1
    assert sites[0].n_teu == pytest.approx(13, rel=0.05) and sites[0].outline.buffer(1.0).contains(speck)
    alone = gpd.GeoDataFrame({"class": ["container_farm"] * 2, "n_containers": [1, 1], "dt_k": [1.0, 1.0]},
                             geometry=[speck, farm(80, 20, 1, length=6.06)], crs=UTM)
    frame, store = windows_over(alone)
    sites = outline_objects(frame, store, transform=TRANSFORM, tile_px=64, has_thermal=True)
    assert sites is not None and len(sites) == 1 and sites[0].n_teu == pytest.approx(2, rel=0.1)


def test_small_groups_join_the_group_a_distance_transform_names_nearest():
    """merge_small_groups looks the nearest large group up among the large groups' edge pixels; the labels are
    those of the rule it replaced: each small group's pixels vote for the group of their nearest large pixel,
    found by a distance transform of the whole block."""
    def by_transform(zones: np.ndarray, objects: np.ndarray, min_px: float) -> np.ndarray:
        n = int(zones.max())
        big = np.bincount(zones[objects], minlength=n + 1) >= min_px
        big[0] = False
        _, (ri, ci) = ndimage.distance_transform_edt(~(objects & big[zones]), return_indices=True)
        mapping = np.arange(n + 1)
        for label in np.flatnonzero(~big[1:]) + 1:
            mapping[label] = np.bincount(zones[ri, ci][objects & (zones == label)]).argmax()
        return mapping[zones]

    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(20):
        objects = np.zeros((160, 200), bool)
        for _ in range(20):
            r, c = rng.integers(-5, 155), rng.integers(-5, 195)
            objects[max(r, 0) : r + rng.integers(2, 30), max(c, 0) : c + rng.integers(2, 30)] = True
        zones = ndimage.label(dilate_disk(objects, 4), structure=np.ones((3, 3), bool))[0]
        sizes = np.bincount(zones[objects])[1:]
        for min_px in (60, 250, 700):
            if (sizes >= min_px).any() and (sizes < min_px).any():
                merged = merge_small_groups(zones, objects, min_px)
                assert (merged == by_transform(zones, objects, min_px)).all()
                assert (np.bincount(merged[objects])[1:][np.unique(merged[objects]) - 1] >= min_px).all()
                compared += 1
    assert compared >= 20


def test_build_sites_with_objects_appends_the_new_columns(site_meta):
    a = farm(20, 20, 6)
    objects = gpd.GeoDataFrame({"class": ["container_farm"], "n_containers": [6], "dt_k": [1.0]}, geometry=[a],
                               crs=UTM)
    frame, store = windows_over(objects, n=4)
    for c in THRESHOLDS:
        frame[f"p_{c}"] = 0.9 if c == "container_farm" else 0.1
    frame["row"], frame["col"] = frame["row_off"] // 32, frame["col_off"] // 32
    frame["dt_max_k"], frame["z_max"] = np.nan, np.nan

    def outline(members):
        return outline_objects(members, store, transform=TRANSFORM, tile_px=64, has_thermal=False,
                               rules=OutlineRules(area_scale={"container": 1.1}))

    sites = build_sites(frame, THRESHOLDS, **site_meta, objects=outline)
    assert list(sites.columns) == [*SITE_COLUMNS, "geometry"]
    assert SITE_COLUMNS[-len(OBJECT_COLUMNS):] == OBJECT_COLUMNS  # appended after the existing columns
    assert len(sites) == 1
    s = sites.iloc[0]
    assert s["outline"] == "objects" and s["n_containers"] == 13  # 12 TEU x the model's area scale 1.1
    assert s["area_m2"] == pytest.approx(a.area, rel=0.2)  # the objects, not 80 m x 80 m of windows
    assert s["est_power_mw"] == pytest.approx(12 * 1.1 * mw_per_teu(), rel=0.02)
    assert s["est_power_mw_low"] < s["est_power_mw"] < s["est_power_mw_high"]
    assert math.isnan(s["hot_area_m2"]) and s["fan_area_m2"] == 0
    assert s["n_tiles"] < len(frame)
    # without objects: the window outline, the new columns null
    plain = build_sites(frame, THRESHOLDS, **site_meta)
    assert plain.iloc[0]["outline"] == "tiles" and plain["n_containers"].isna().all()
    assert plain["est_power_mw"].isna().all() and plain.iloc[0]["area_m2"] == pytest.approx(80 * 80)


def test_sites_outlined_on_several_threads_are_the_sites_of_one(site_meta):
    """build_sites outlines components on ``workers`` threads (the scan: one per core it uses): the same sites,
    in the same order, as one thread; and the mask store answers concurrent reads with the right windows."""
    farms = [farm(20, 20, 6), farm(150, 24, 4, length=6.06), farm(24, 150, 8), farm(150, 150, 5)]
    objects = gpd.GeoDataFrame({"class": ["container_farm"] * 4, "n_containers": [6, 4, 8, 5],
                                "dt_k": [1.0] * 4}, geometry=farms, crs=UTM)
    frame, store = windows_over(objects, n=12)
    near = shapely.intersects(np.asarray(frame.geometry.values)[:, None], np.asarray(farms)[None, :]).any(axis=1)
    for c in THRESHOLDS:
        frame[f"p_{c}"] = np.where(near, 0.9, 0.1) if c == "container_farm" else 0.1
    frame["row"], frame["col"] = frame["row_off"] // 32, frame["col_off"] // 32
    frame["dt_max_k"], frame["z_max"] = np.nan, np.nan

    def outline(members):
        return outline_objects(members, store, transform=TRANSFORM, tile_px=64, has_thermal=True)

    one = build_sites(frame, THRESHOLDS, **site_meta, objects=outline)
    several = build_sites(frame, THRESHOLDS, **site_meta, objects=outline, workers=4)
    assert len(one) == 4 and (one["outline"] == "objects").all()
    assert sorted(one["n_containers"]) == [4, 10, 12, 16]  # TEU: 40 ft containers count two
    pd.testing.assert_frame_equal(one.drop(columns="geometry"), several.drop(columns="geometry"))
    assert all(a.equals_exact(b, 0) for a, b in zip(one.geometry, several.geometry, strict=True))

    ids = list(frame["tile_id"])
    expected = {t: store.get(t) for t in ids}
    with ThreadPoolExecutor(8) as pool:
        read = list(pool.map(store.get, ids * 4))
    assert all(np.array_equal(m, expected[t]) for m, t in zip(read, ids * 4, strict=True))
    store.close()


def test_quicklook_labels_object_sites_with_containers_and_power():
    from minewatch.infer.quicklook import site_label

    assert site_label({"rank": 3, "outline": "objects", "n_containers": 12, "est_power_mw": 4.68}) == \
        "3 · 12 TEU · 4.7 MW"
    assert site_label({"rank": 1, "outline": "objects", "n_containers": 0, "est_power_mw": float("nan")}) == "1"
    assert site_label({"rank": 2, "outline": "tiles", "n_containers": None}) == "2"


def test_the_site_rule_decides_on_the_windows_before_the_dense_head_outlines(site_meta):
    # A lone positive window inside the raster is dropped at the models' stride whatever its masks hold; a pair
    # of windows is kept and outlined by its objects (main's site rule, then the dense head).
    from minewatch.infer.objects import ObjectSite

    tiles = make_tiles(6, 6, {(1, 1): (0.9, 0.1, 0.1), (4, 3): (0.9, 0.1, 0.1), (4, 4): (0.9, 0.1, 0.1)})
    tiles["on_edge"] = False
    seen = []

    def objects(members):
        seen.append(len(members))
        return [ObjectSite(shapely.box(*members.total_bounds).buffer(-20), np.ones(len(members), bool), 4.0, 0.0,
                           math.nan, None)]

    sites = build_sites(tiles, THRESHOLDS, **site_meta, objects=objects, min_windows=2)
    assert seen == [2] and len(sites) == 1 and sites.iloc[0]["outline"] == "objects"
    assert sites.iloc[0]["n_containers"] == 4 and sites.iloc[0]["n_tiles"] == 2
    seen.clear()
    sites = build_sites(tiles, THRESHOLDS, **site_meta, objects=objects, min_windows=1)
    assert sorted(seen) == [1, 2] and len(sites) == 2
