"""Site-level evaluation on hand-built truth and candidates whose answers are known."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from minewatch.classes import CLASSES
from minewatch.datasets.labels import tile_targets
from minewatch.errors import UserError
from minewatch.infer.evaluate import evaluate_files
from minewatch.infer.writers import write_sites_geojson, write_tiles_gpkg

UTM = "EPSG:32633"
X0, Y0 = 500_000.0, 5_500_000.0


def _box(x: float, y: float, w: float, h: float) -> shapely.Polygon:
    """Box with lower-left corner (X0 + x, Y0 + y), metres."""
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def _write_truth(path, rows) -> None:
    gdf = gpd.GeoDataFrame(
        {k: [r.get(k) for r in rows] for k in ("class", "site_id", "kind")},
        geometry=[r["geometry"] for r in rows], crs=UTM,
    ).to_crs(4326)
    pyogrio.write_dataframe(gdf, path, driver="GeoJSON", layer_options={"RFC7946": "YES"})


def _write_sites(path, rows) -> None:
    n = len(rows)
    sites = gpd.GeoDataFrame(
        {
            "site_id": [f"s-{i + 1:04d}" for i in range(n)],
            "rank": np.arange(1, n + 1),
            "score": [r["score"] for r in rows],
            "classes": [r["classes"] for r in rows],
        },
        geometry=[r["geometry"] for r in rows], crs=UTM,
    )
    write_sites_geojson(sites, path)


TRUTH = [
    # site A: containers + cooling, running (heat over both)
    {"class": "container_farm", "site_id": "A", "geometry": _box(0, 0, 40, 20)},
    {"class": "cooling_array", "site_id": "A", "geometry": _box(40, 0, 10, 20)},
    {"class": "heat_signature", "site_id": "A", "geometry": _box(-5, -5, 60, 30)},
    # site B: containers only, 30 x 12 m
    {"class": "container_farm", "site_id": "B", "geometry": _box(300, 0, 30, 12)},
    # site C: heat only, far away
    {"class": "heat_signature", "site_id": "C", "geometry": _box(600, 600, 20, 20)},
    {"class": "lookalike", "kind": "container_yard", "geometry": _box(0, 300, 50, 30)},
    {"class": "lookalike", "kind": "greenhouse", "geometry": _box(300, 300, 40, 40)},
]
CANDIDATES = [
    # 1: a tile blob around A -> true positive, A found
    {"score": 0.9, "classes": "container_farm,cooling_array,heat_signature", "geometry": _box(-7, -20, 64, 64)},
    # 2: on the container yard -> false positive, look-alike hit
    {"score": 0.5, "classes": "container_farm", "geometry": _box(0, 290, 64, 64)},
    # 3: 40 % of B, all of it on B -> true positive, but B not found
    {"score": 0.4, "classes": "container_farm", "geometry": _box(300, 0, 12, 12)},
    # 4: bare ground -> false positive
    {"score": 0.35, "classes": "heat_signature", "geometry": _box(900, 0, 64, 64)},
]


@pytest.fixture
def files(tmp_path):
    truth, sites = tmp_path / "truth.geojson", tmp_path / "sites.geojson"
    _write_truth(truth, TRUTH)
    _write_sites(sites, CANDIDATES)
    return sites, truth


def test_site_level_scores(files):
    sites, truth = files
    r = evaluate_files(sites, truth)
    o = r.overall
    assert (o.n_candidates, o.true_positives, o.n_truth, o.found) == (4, 2, 3, 1)
    assert o.precision == pytest.approx(0.5)
    assert o.recall == pytest.approx(1 / 3)
    assert o.f1 == pytest.approx(0.4)
    assert r.missed == ["B", "C"]
    assert [c["true_positive"] for c in r.candidates] == [True, False, True, False]
    assert r.candidates[0]["truth_sites"] == ["A"]
    assert r.precision_at == pytest.approx({1: 1.0, 3: 2 / 3, 5: 0.5, 10: 0.5})
    assert r.site_ap == pytest.approx(1 / 3)


def test_per_class_scores(files):
    r = evaluate_files(*files)
    cf, ca, hs = (r.per_class[c] for c in CLASSES)
    assert (cf.n_candidates, cf.true_positives, cf.n_truth, cf.found) == (3, 2, 2, 1)
    assert (ca.precision, ca.recall) == (1.0, 1.0)
    assert (hs.n_candidates, hs.true_positives, hs.n_truth, hs.found) == (2, 1, 2, 1)
    assert hs.precision == pytest.approx(0.5) and hs.recall == pytest.approx(0.5)


def test_lookalike_hits_by_kind(files):
    r = evaluate_files(*files)
    assert r.lookalikes == {
        "container_yard": {"n": 1, "hit": 1, "candidates": 1, "false_positives": 1},
        "greenhouse": {"n": 1, "hit": 0, "candidates": 0, "false_positives": 0},
    }
    assert r.candidates[1]["lookalikes"] == ["container_yard"]


def test_split_site_is_found_and_both_halves_count(tmp_path):
    truth, sites = tmp_path / "truth.geojson", tmp_path / "sites.geojson"
    _write_truth(truth, [{"class": "container_farm", "site_id": "A", "geometry": _box(0, 0, 100, 20)}])
    _write_sites(sites, [
        {"score": 0.8, "classes": "container_farm", "geometry": _box(0, -5, 40, 30)},  # 40 % of A
        {"score": 0.7, "classes": "container_farm", "geometry": _box(60, -5, 40, 30)},  # another 40 %
        {"score": 0.6, "classes": "container_farm", "geometry": _box(-400, 0, 640, 30)},  # A is 10 % of it
    ])
    r = evaluate_files(sites, truth)
    assert r.overall.found == 1  # 80 % covered by the union
    assert [c["true_positive"] for c in r.candidates] == [True, True, True]


def test_geofence_limits_truth_and_candidates(files, tmp_path):
    sites, truth = files
    fence = tmp_path / "fence.geojson"
    gpd.GeoDataFrame(geometry=[_box(-100, -100, 600, 600)], crs=UTM).to_crs(4326).to_file(fence)
    r = evaluate_files(sites, truth, geofence=fence)
    # C and candidate 4 lie outside the fence
    assert (r.overall.n_truth, r.overall.n_candidates, r.overall.found) == (2, 3, 1)
    assert r.overall.recall == pytest.approx(0.5)


def test_reports_written_atomically(files):
    sites, truth = files
    r = evaluate_files(sites, truth)
    out = sites.with_suffix(".eval.json")
    data = json.loads(out.read_text())
    assert data["overall"]["precision"] == pytest.approx(0.5)
    assert data["precision_at"]["3"] == pytest.approx(2 / 3)
    assert data["rules"] == {"found_share": 0.5, "candidate_share": 0.25}
    png = sites.with_suffix(".pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in sites.parent.iterdir()) == [
        "sites.eval.json", "sites.geojson", "sites.pr.png", "truth.geojson"
    ]
    table = r.table()
    assert "container_farm" in table and "container_yard" in table and "missed truth sites: B, C" in table
    rows = table.splitlines()[:5]
    assert len({len(line) for line in rows}) == 1  # aligned columns


def test_no_candidates(tmp_path):
    truth, sites = tmp_path / "truth.geojson", tmp_path / "sites.geojson"
    _write_truth(truth, TRUTH)
    write_sites_geojson(gpd.GeoDataFrame(geometry=[], crs=UTM), sites)
    r = evaluate_files(sites, truth, out=tmp_path / "e.json", plot=tmp_path / "e.png")
    assert (r.overall.precision, r.overall.recall, r.site_ap) == (0.0, 0.0, 0.0)
    assert r.precision_at[1] is None
    assert json.loads((tmp_path / "e.json").read_text())["precision_at"]["1"] is None


def test_tile_level_average_precision(files, tmp_path):
    sites, truth = files
    xs = np.arange(-64, 960, 64.0)
    ys = np.arange(-64, 704, 64.0)
    boxes = [_box(x, y, 64, 64) for y in ys for x in xs]
    tiles = gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(len(boxes))]}, geometry=boxes, crs=UTM)
    targets = tile_targets(tiles, gpd.read_file(truth))
    assert targets[:, 0].sum() >= 2 and targets[:, 2].sum() >= 2
    rng = np.random.default_rng(0)
    for k, c in enumerate(CLASSES):  # perfect ranking: every positive tile above every negative
        tiles[f"p_{c}"] = np.where(targets[:, k] == 1, 0.6, 0.0) + rng.uniform(0, 0.3, len(tiles))
    gpkg = write_tiles_gpkg(tiles, tmp_path / "tiles.gpkg")
    r = evaluate_files(sites, truth, tiles=gpkg)
    assert r.tile_ap == pytest.approx({c: 1.0 for c in CLASSES})
    assert r.tile_map == pytest.approx(1.0)
    tiles["p_container_farm"] = 1.0 - tiles["p_container_farm"]  # worst ranking
    r = evaluate_files(sites, truth, tiles=tiles)
    assert r.tile_ap["container_farm"] < 0.2


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_bad_inputs_are_user_errors(files, tmp_path):
    sites, truth = files
    with pytest.raises(UserError, match="not found"):
        evaluate_files(tmp_path / "nope.geojson", truth)
    no_class = tmp_path / "noclass.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[_box(0, 0, 1, 1)], crs=UTM).to_crs(4326).to_file(no_class)
    with pytest.raises(UserError, match="class"):
        evaluate_files(sites, no_class)
    no_crs = tmp_path / "nocrs.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"score": [0.5]}, geometry=[_box(0, 0, 9, 9)]), no_crs)
    with pytest.raises(UserError, match="no CRS"):
        evaluate_files(no_crs, truth)
    with pytest.raises(UserError, match="folder does not exist"):
        evaluate_files(sites, truth, out=tmp_path / "missing" / "e.json")


def test_a_farm_hidden_under_thick_cloud_is_not_a_truth_site() -> None:
    from minewatch.infer.evaluate import truth_sites

    truth = gpd.GeoDataFrame({"class": ["container_farm", "container_farm", "cooling_array"],
                              "site_id": ["A", "B", "B"], "cloud_share": [0.0, 0.9, 0.7]},
                             geometry=[_box(0, 0, 20, 10), _box(100, 0, 20, 10), _box(125, 0, 5, 5)], crs=UTM)
    assert truth_sites(truth)["site_id"].tolist() == ["A"]
    assert truth_sites(truth.assign(cloud_share=0.3))["site_id"].tolist() == ["A", "B"]


def test_tile_level_leaves_out_windows_on_objects_hidden_by_cloud(files, tmp_path):
    """A farm under thick cloud whose window the model scores low: not a miss, so the ranking stays perfect;
    the same farm in the clear is a missed positive."""
    sites, _ = files
    boxes = [_box(x, 0, 64, 64) for x in (-64, 0, 64, 128, 192, 256, 320)]
    tiles = gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(len(boxes))]}, geometry=boxes, crs=UTM)
    for c in CLASSES:
        tiles[f"p_{c}"] = [0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]  # A's window high, B's window low
    truth = gpd.GeoDataFrame({"class": ["container_farm", "container_farm"], "site_id": ["A", "B"],
                              "cloud_share": [0.0, 0.9]}, geometry=[_box(10, 10, 40, 20), _box(138, 10, 40, 20)],
                             crs=UTM).to_crs(4326)
    ap = {}
    for name, shares in (("cloudy", [0.0, 0.9]), ("clear", [0.0, 0.0])):
        path = tmp_path / f"{name}.geojson"
        truth.assign(cloud_share=shares).to_file(path, driver="GeoJSON")
        ap[name] = evaluate_files(sites, path, tiles=tiles).tile_ap["container_farm"]
    assert ap["cloudy"] == pytest.approx(1.0) and ap["clear"] < 1.0
