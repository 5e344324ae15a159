"""Synthetic scenes: the truth is where the pixels say, grids are honest, runs are reproducible."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from scipy.stats import ks_2samp
from shapely.affinity import translate

from minewatch.classes import CLASSES, LOOKALIKE
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.synth import generate_scenes, load_recipe, make_plan
from minewatch.datasets.synth.recipe import LOOKALIKE_KINDS, MINING_KINDS
from minewatch.datasets.synth.render_thermal import footprint_mean, render_thermal, surface_temperature
from minewatch.errors import UserError

REAL = Path(__file__).parents[2] / ".." / "shared" / "data" / "real"
FILES = ("optical.tif", "thermal.tif", "truth.geojson", "scene.json")


def _sha(folder: Path) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in FILES}


def _truth(folder: Path, crs=None) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(folder / "truth.geojson")
    return gdf.to_crs(crs) if crs is not None else gdf


def _mask(geom, ds, all_touched: bool = False) -> np.ndarray:
    """True inside ``geom`` on the grid of ``ds``."""
    return geometry_mask([geom], out_shape=ds.shape, transform=ds.transform, invert=True, all_touched=all_touched)


def _seen_excess(geom, ds, kelvin: np.ndarray, r1: float, r2: float) -> float:
    """Hottest pixel inside minus the median of a ring, measured on the written thermal raster."""
    valid = kelvin != ds.nodata
    inside = _mask(geom, ds) & valid
    if not inside.any():
        inside = _mask(geom, ds, all_touched=True) & valid
    ring = _mask(geom.buffer(r2).difference(geom.buffer(r1)), ds) & valid
    return float(kelvin[inside].max() - np.median(kelvin[ring]))


@pytest.fixture(scope="module")
def drone(tmp_path_factory) -> list[Path]:
    """Two small drone scenes: seed 14 (running container farm, hidden farm, flat roof with HVAC plant,
    greenhouse) and seed 9 (running and switched-off container farms, container yard, solar farm)."""
    out = tmp_path_factory.mktemp("drone")
    return generate_scenes(out, seed=14, recipe="small") + generate_scenes(out, seed=9, recipe="small")


# ---------------------------------------------------------------- files and grids
def test_optical_and_thermal_files_follow_the_contract(drone):
    folder = drone[0]
    with rasterio.open(folder / "optical.tif") as ds, rasterio.open(folder / "thermal.tif") as th:
        assert ds.crs.is_projected and ds.crs.to_epsg() // 100 in (326, 327)  # UTM
        assert ds.dtypes == ("uint8",) * 3 and ds.nodata == 0
        assert ds.descriptions == ("red", "green", "blue")
        assert ds.block_shapes[0] == (256, 256) and ds.compression.name.lower() == "deflate"
        assert ds.overviews(1) and ds.res == pytest.approx((0.2, 0.2))
        tags = ds.tags()
        assert tags["MINEWATCH_SCENE_ID"] == "synth-000014" and tags["MINEWATCH_PROFILE"] == "drone"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags["ACQUISITION_DATETIME"])
        assert th.dtypes == ("float32",) and th.nodata == -9999 and th.descriptions == ("thermal",)
        assert th.tags()["UNITS"] == "kelvin" and th.crs == ds.crs
        assert th.block_shapes[0] == (256, 256) and th.overviews(1)
        assert th.res == pytest.approx((0.8, 0.8))
        k = th.read(1)
        assert 230 < k[k != -9999].min() and k[k != -9999].max() < 700
    meta = json.loads((folder / "scene.json").read_text())
    for key in ("scene_id", "profile", "gsd_m", "thermal_gsd_m", "crs", "acquired", "seed", "generator_version",
                "sites"):
        assert key in meta
    assert meta["acquired"] == tags["ACQUISITION_DATETIME"] and meta["seed"] == 14
    assert all("params" in s and "kind" in s for s in meta["sites"])


def test_thermal_grid_is_coarser_and_never_pixel_aligned(drone):
    for folder in drone:
        with rasterio.open(folder / "optical.tif") as ds, rasterio.open(folder / "thermal.tif") as th:
            dx = (ds.transform.c - th.transform.c) / ds.res[0]
            dy = (th.transform.f - ds.transform.f) / ds.res[1]
            for d in (dx, dy):
                assert 0.05 < d % 1 < 0.95, "thermal origin lands on an optical pixel edge"
            ob, tb = ds.bounds, th.bounds
            assert tb.left <= ob.left and tb.top >= ob.top and tb.right >= ob.right and tb.bottom <= ob.bottom
            assert th.res[0] == pytest.approx(4 * ds.res[0])


def test_pixel_lonlat_round_trip_on_both_grids(drone):
    rng = np.random.default_rng(0)
    for name in ("optical.tif", "thermal.tif"):
        with rasterio.open(drone[0] / name) as ds:
            to_ll = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
            from_ll = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True)
            rows = rng.integers(0, ds.height, 20)
            cols = rng.integers(0, ds.width, 20)
            xs, ys = rasterio.transform.xy(ds.transform, rows, cols)
            lon, lat = to_ll.transform(xs, ys)
            x2, y2 = from_ll.transform(lon, lat)
            r2, c2 = rasterio.transform.rowcol(ds.transform, x2, y2)
            assert np.array_equal(r2, rows) and np.array_equal(c2, cols)
            assert np.allclose(x2, xs, atol=1e-3) and np.allclose(y2, ys, atol=1e-3)


def test_truth_is_rfc7946_lonlat_inside_the_scene(drone):
    for folder in drone:
        raw = json.loads((folder / "truth.geojson").read_text())
        assert "crs" not in raw and raw["features"]
        coords = np.array([c for f in raw["features"] for c in f["geometry"]["coordinates"][0]])
        assert (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()
        assert all(len(repr(float(v)).split(".")[-1]) <= 7 for v in coords.ravel())
        with rasterio.open(folder / "optical.tif") as ds:
            truth = _truth(folder, ds.crs)
            minx, miny, maxx, maxy = truth.total_bounds
            b = ds.bounds
            assert b.left - 1e-6 <= minx and maxx <= b.right + 1e-6 and b.bottom - 1e-6 <= miny and maxy <= b.top + 1e-6
        assert set(truth["class"]) <= set(CLASSES) | {LOOKALIKE}


# ---------------------------------------------------------------- the truth is where the pixels say
def test_container_blocks_differ_from_their_surroundings_in_the_optical(drone):
    true_ks, moved_ks = [], []
    for folder in drone:
        with rasterio.open(folder / "optical.tif") as ds:
            grey = ds.read().astype(np.float32).mean(axis=0)
            blocks = _truth(folder, ds.crs)
            blocks = blocks[blocks["class"] == "container_farm"]
            labelled = shapely.union_all(list(blocks.geometry.buffer(1.0)))
            for geom in blocks.geometry:
                ring = _mask(geom.buffer(6.0).difference(labelled), ds)
                # grey-level distributions of a block and its unlabelled surroundings differ (rows, gaps,
                # rims, fans, colour); the same polygon moved 7 m off the containers differs much less
                true_ks.append(ks_2samp(grey[_mask(geom, ds)], grey[ring]).statistic)
                moved = translate(geom, 7.0, 7.0)
                moved_ks.append(ks_2samp(grey[_mask(moved, ds)],
                                         grey[_mask(moved.buffer(6.0).difference(moved.buffer(1.0)), ds)]).statistic)
    assert len(true_ks) >= 3
    assert min(true_ks) > 0.25
    assert np.mean(true_ks) > np.mean(moved_ks) + 0.1


def test_heat_dt_k_is_what_the_thermal_raster_shows(drone):
    checked = 0
    for folder in drone:
        with rasterio.open(folder / "thermal.tif") as th:
            kelvin = th.read(1)
            truth = _truth(folder, th.crs)
            for _, row in truth[truth["class"] == "heat_signature"].iterrows():
                measured = _seen_excess(row.geometry, th, kelvin, 4.0, 19.0)
                assert measured == pytest.approx(row["dt_k"], abs=0.5 + 0.03 * row["dt_k"])
                assert row["running"] and 3.0 <= row["dt_k"] <= 45.0  # moderate, sustained heat at drone GSD
                checked += 1
    assert checked >= 3


def test_switched_off_farms_have_no_heat_and_stay_cool(drone):
    truth = _truth(drone[1])
    off = truth[(truth["kind"] == "container_farm") & ~truth["running"]]
    assert len(off), "seed 9 holds a switched-off farm"
    assert not (off["class"] == "heat_signature").any()
    hot = truth.loc[truth["class"] == "heat_signature", "dt_k"]
    assert off["dt_k"].max() < hot.min()
    meta = json.loads((drone[1] / "scene.json").read_text())
    off_ids = {s["site_id"] for s in meta["sites"] if s["mining"] and not s["running"]}
    assert off_ids and not (truth["site_id"].isin(off_ids) & (truth["class"] == "heat_signature")).any()


def test_lookalike_heat_differs_in_size_and_temperature_from_mining_heat(tmp_path):
    recipe = tmp_path / "heat.yaml"
    recipe.write_text(
        "extends: small\n"
        "scene: {size_px: 768}\n"
        "mining: {count: [2, 2], running_probability: 1.0, kind_weights: {container_farm: 1}}\n"
        "lookalikes: {count: [2, 2], kind_weights: {hot_industry: 1, greenhouse: 1}}\n"
    )
    # (dt_k, area warmer than half dt_k in m2, that area's share of the polygon)
    stats: dict[str, list[tuple[float, float, float]]] = {"mining": [], "hot_industry": [], "greenhouse": []}
    for folder in generate_scenes(tmp_path / "out", seed=11, count=3, recipe=recipe):
        with rasterio.open(folder / "thermal.tif") as th:
            kelvin = th.read(1)
            truth = _truth(folder, th.crs)
            pix = abs(th.res[0] * th.res[1])
            for _, row in truth.iterrows():
                key = "mining" if row["class"] == "heat_signature" else row["kind"]
                if key not in stats:
                    continue
                inside = _mask(row.geometry, th)
                ring = _mask(row.geometry.buffer(19).difference(row.geometry.buffer(4)), th)
                excess = kelvin - np.median(kelvin[ring])
                warm = float((excess[inside] > 0.5 * row["dt_k"]).sum() * pix)
                stats[key].append((row["dt_k"], warm, warm / row.geometry.area))
    assert all(stats.values()), stats
    mining = np.array(stats["mining"])
    hot = np.array(stats["hot_industry"])
    green = np.array(stats["greenhouse"])
    # stacks and furnaces: far hotter than any farm, on a small spot
    assert hot[:, 0].min() > mining[:, 0].max() and hot[:, 0].min() > 50
    assert hot[:, 1].max() < mining[:, 1].min()
    # greenhouses: mildly warm, evenly over the whole roof; farms have hot aisles, fans and a plume
    assert green[:, 0].max() < np.median(mining[:, 0])
    assert np.median(green[:, 2]) > 2 * np.median(mining[:, 2])


def test_satellite_files_are_rgbn_with_landsat_like_thermal(tmp_path):
    [folder] = generate_scenes(tmp_path, seed=4, recipe="small", profile="satellite", size=384)
    with rasterio.open(folder / "optical.tif") as ds, rasterio.open(folder / "thermal.tif") as th:
        assert ds.count == 4 and ds.descriptions == ("red", "green", "blue", "nir") and ds.dtypes[0] == "uint16"
        assert ds.res == pytest.approx((0.5, 0.5)) and th.res == pytest.approx((30.0, 30.0))
        assert th.tags()["THERMAL_FOOTPRINT_M"] == "100"
    assert json.loads((folder / "scene.json").read_text())["thermal_gsd_m"] == 30.0


@pytest.mark.parametrize("profile,lo,hi", [("drone", 8.0, 80.0), ("satellite", 0.0, 2.5)])
def test_site_heat_is_area_mixed_by_the_sensor_footprint(profile, lo, hi):
    """The same kind of farm: strong at drone resolution, nearly gone in a 100 m footprint."""
    plan = make_plan(8, load_recipe("small"), load_profile(profile), size=512 if profile == "drone" else 256)
    assert any(s.mining and s.running for s in plan.sites)
    bare = dataclasses.replace(plan, sites=[], parts=list(plan.landcover.furniture))
    surface = surface_temperature(plan)[0] - surface_temperature(bare)[0]
    seen = render_thermal(plan).clean - render_thermal(bare).clean
    assert np.nanmax(surface) > 15  # the farm itself is warm everywhere
    assert lo < np.nanmax(seen) < hi


def test_footprint_mean_weights_by_area():
    field = np.zeros((40, 40), np.float32)
    field[10:14, 10:14] = 10.0  # a 4 x 4 cell (2 x 2 m) hot square, cells of 0.5 m
    centres = np.array([6.0])  # footprint 8 m centred at (6, 6) m covers [2, 10] m = cells 4..20
    out = footprint_mean(field, 0.5, 0.0, 0.0, centres, centres, 8.0)
    assert out[0, 0] == pytest.approx(10.0 * 4.0 / 64.0, rel=1e-5)
    # a 4 m footprint at x = 1.25 m spans [-0.75, 3.25]: the square ([5, 7] m) is outside
    outside = footprint_mean(field, 0.5, 0.0, 0.0, np.array([1.25]), centres, 4.0)
    assert outside[0, 0] == pytest.approx(0.0, abs=1e-6)
    # at x = 3.25 m it spans [1.25, 5.25]: half a cell (0.25 m x 2 m) of the square counts
    edge = footprint_mean(field, 0.5, 0.0, 0.0, np.array([3.25]), centres, 4.0)
    assert edge[0, 0] == pytest.approx(10.0 * (0.25 * 2.0) / 16.0, rel=1e-5)


def test_nodata_collar_on_both_rasters(tmp_path):
    recipe = tmp_path / "collar.yaml"
    recipe.write_text("extends: small\nscene: {nodata_collar_probability: 1.0, collar_fraction: [0.1, 0.15]}\n")
    [folder] = generate_scenes(tmp_path / "out", seed=2, recipe=recipe, size=384)
    with rasterio.open(folder / "optical.tif") as ds, rasterio.open(folder / "thermal.tif") as th:
        valid = ds.read_masks(1) > 0
        assert 0.02 < 1 - valid.mean() < 0.6
        k = th.read(1)
        assert (k == -9999).any() and (k != -9999).any()
        for geom in _truth(folder, ds.crs).geometry:  # labels sit on valid pixels
            assert valid[_mask(geom, ds, all_touched=True)].mean() > 0.95
    assert json.loads((folder / "scene.json").read_text())["nodata_collar"] is True


# ---------------------------------------------------------------- reproducible, complete
def test_same_seed_gives_byte_identical_files(tmp_path):
    a = generate_scenes(tmp_path / "a", seed=5, recipe="small", size=256)[0]
    b = generate_scenes(tmp_path / "b", seed=5, recipe="small", size=256)[0]
    c = generate_scenes(tmp_path / "c", seed=6, recipe="small", size=256)[0]
    assert _sha(a) == _sha(b)
    assert _sha(a)["optical.tif"] != _sha(c)["optical.tif"]


def test_default_recipe_yields_every_class_and_kind_over_a_few_seeds():
    recipe, profile = load_recipe(), load_profile("drone")
    seen: set[tuple[str, str]] = set()
    per_scene = []
    for seed in range(16):  # 13 look-alike kinds, two to four a scene (marinas only where there is water)
        plan = make_plan(seed, recipe, profile)
        seen |= {(t.cls, t.kind) for s in plan.sites for t in s.truth}
        per_scene.append((sum(s.mining for s in plan.sites), sum(not s.mining for s in plan.sites)))
    assert {c for c, _ in seen} == set(CLASSES) | {LOOKALIKE}
    assert {k for c, k in seen if c == LOOKALIKE} == set(LOOKALIKE_KINDS)
    assert {k for c, k in seen if c == "heat_signature"} == set(MINING_KINDS)
    mining, looks = np.mean(per_scene, axis=0)
    assert 2 <= mining <= 4.5 and 2 <= looks <= 4.5  # class balance of a 2048 px drone scene


def test_plan_is_deterministic_and_has_no_overlapping_sites():
    recipe, profile = load_recipe(), load_profile("drone")
    p1, p2 = make_plan(7, recipe, profile), make_plan(7, recipe, profile)
    assert [s.site_id for s in p1.sites] == [s.site_id for s in p2.sites]
    assert p1.when.acquired == p2.when.acquired
    fps = [s.footprint() for s in p1.sites]
    for i in range(len(fps)):
        for j in range(i + 1, len(fps)):
            assert not fps[i].intersects(fps[j])


# ---------------------------------------------------------------- backgrounds
def _write_background(path: Path, crs: str, origin: tuple[float, float], res: float, n: int = 160) -> None:
    yy, xx = np.mgrid[0:n, 0:n]
    img = np.stack([80 + 40 * np.sin(xx / 9.0), 110 + 30 * np.cos(yy / 7.0), 70 + 0 * xx]).astype(np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs=crs,
                       transform=from_origin(origin[0], origin[1], res, res), nodata=0) as dst:
        dst.write(img)


@pytest.mark.parametrize("crs,origin,res", [("EPSG:4326", (24.0, 61.0), 2e-5), ("EPSG:3857", (2.6e6, 8.6e6), 0.5)])
def test_background_keeps_its_crs(tmp_path, crs, origin, res):
    bg = tmp_path / "bg.tif"
    _write_background(bg, crs, origin, res)
    [folder] = generate_scenes(tmp_path / "out", seed=1, recipe="small", background=bg, size=256)
    with rasterio.open(bg) as src, rasterio.open(folder / "optical.tif") as ds, \
            rasterio.open(folder / "thermal.tif") as th:
        assert ds.crs == src.crs and th.crs == src.crs
        b, s = ds.bounds, src.bounds
        assert s.left <= b.left and b.right <= s.right + 1e-9 and s.bottom - 1e-9 <= b.bottom and b.top <= s.top
        if crs == "EPSG:3857":
            assert ds.res == pytest.approx((0.2, 0.2))
        optical = ds.read()
        assert optical.std() > 0  # the background's pattern came through
    meta = json.loads((folder / "scene.json").read_text())
    assert meta["crs"] == crs and meta["background"].endswith("bg.tif")


def test_real_background_when_available(tmp_path):
    rgb = REAL / "rasterio" / "RGB.byte.tif"
    if not rgb.exists():
        pytest.skip("shared real data not present")
    [folder] = generate_scenes(tmp_path, seed=2, recipe="small", background=rgb, size=256)
    with rasterio.open(rgb) as src, rasterio.open(folder / "optical.tif") as ds:
        assert ds.crs == src.crs


def test_user_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: small\nmining: {cuont: [1, 2]}\n")
    with pytest.raises(UserError, match="cuont"):
        generate_scenes(tmp_path / "o", recipe=bad)
    with pytest.raises(UserError, match="negative"):
        generate_scenes(tmp_path / "o", seed=-1)
    with pytest.raises(UserError, match="background"):
        generate_scenes(tmp_path / "o", background=tmp_path / "missing.tif")
    assert load_recipe("small").scene.size_px == 640 and load_recipe().scene.size_px == 2048


def test_cli_synth_writes_scene_folders(tmp_path):
    from click.testing import CliRunner

    from minewatch.cli import cli

    res = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "s"), "--seed", "3", "--count", "2",
                                   "--config", "small", "--size", "256", "--preview", "-q"])
    assert res.exit_code == 0, res.output
    for name in ("scene_000003", "scene_000004"):
        assert all((tmp_path / "s" / name / f).is_file() for f in (*FILES, "preview.png"))


def test_recipe_extends_merges_sections_and_replaces_tables(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: default\nlookalikes: {kind_weights: {greenhouse: 1}}\n"
                     "materials: {water: {reflectance: [0.01, 0.02, 0.03, 0.0]}}\n")
    base, rec = load_recipe(), load_recipe(child)
    assert rec.lookalikes.kind_weights == {"greenhouse": 1.0}  # a weights table is replaced whole
    assert rec.lookalikes.greenhouse == base.lookalikes.greenhouse  # sibling sections are kept
    assert rec.materials["water"].reflectance == (0.01, 0.02, 0.03, 0.0)
    assert rec.materials["asphalt"] == base.materials["asphalt"] and len(rec.materials) == len(base.materials)
    plan = make_plan(0, rec, load_profile("drone"), size=1024)
    assert {s.kind for s in plan.sites if not s.mining} <= {"greenhouse"}


def test_winter_recipe_draws_the_cold_scenes_the_default_rarely_does():
    """The training set's cold-scene supplement: winter everywhere, mostly snow, more dormant farms."""
    profile = load_profile("drone")
    plans = {name: [make_plan(seed, load_recipe(name), profile) for seed in range(12)]
             for name in ("default", "winter")}
    winter = plans["winter"]
    assert {p.when.season for p in winter} == {"winter"}
    assert {p.region for p in winter} <= {"kazakhstan", "siberia", "quebec"}
    assert sum(p.snow for p in winter) >= 8 > sum(p.snow for p in plans["default"])
    assert min(p.when.sun_elevation_deg for p in winter) >= 5  # long shadows, not a dark scene

    def dormant(ps):
        return sum(1 for p in ps for s in p.sites if s.mining and not s.running)

    assert dormant(winter) > dormant(plans["default"])
