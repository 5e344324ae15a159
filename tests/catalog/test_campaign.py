"""Acceptance: three scans of one area on three dates, through the CLI, on a GeoPackage and on PostGIS.

A farm appears (C), one vanishes while the next scan covers it (B; it moved: G), one persists (A), one
returns (D), one leaves the scanned area (E), and a false alarm (F) is rejected by an analyst between
scans. Statuses, ids and verdicts are checked after every scan, adding twice changes nothing, and adding the
scans in another order gives the same end state.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely

from minewatch.infer.catalog.query import load_observations, load_sites
from minewatch.infer.catalog.store import opened
from tests.catalog.campaign import DATES, farm_of, write_scan
from tests.catalog.conftest import review, run_cli, sql


@pytest.fixture
def scans(tmp_path):
    return [write_scan(tmp_path / f"flight-{d}", d) for d in (1, 2, 3)]


def state(location: str) -> gpd.GeoDataFrame:
    with opened(location) as store:
        return load_sites(store)


def statuses(location: str) -> dict[str, tuple[str, str]]:
    sites = state(location)
    ids = {name: farm_of(sites, name) for name in "ABCDEFG" if _has(sites, name)}
    by_id = sites.set_index("site_id")
    return {name: (by_id.loc[sid, "status"], by_id.loc[sid, "review_status"]) for name, sid in ids.items()}


def _has(sites, name) -> bool:
    try:
        farm_of(sites, name)
    except AssertionError:
        return False
    return True


def counts(location: str) -> tuple[int, int, int]:
    return tuple(sql(location, f"SELECT count(*) FROM {t}")[0][0] for t in ("sites", "observations", "coverage"))


def test_three_dates(catalogue, scans, tmp_path):
    # Date 1: five sites, all new.
    out = run_cli("catalog", "add", catalogue, scans[0]).output
    assert "5 new" in out
    first = state(catalogue)
    ids = {name: farm_of(first, name) for name in "ABDEF"}
    assert sorted(ids.values()) == [f"MW-{n:06d}" for n in range(1, 6)]
    assert set(statuses(catalogue).values()) == {("new", "unreviewed")}

    # Between scans an analyst rejects the false alarm F (as QGIS would, straight into the table).
    review(catalogue, ids["F"], "rejected", "container yard, checked on site 2025-04-02")

    # Date 2: C appears, D is covered and not seen, the rest persist; F stays rejected.
    out = run_cli("catalog", "add", catalogue, scans[1]).output
    assert "1 new, 4 seen again; 1 gone" in out
    s = statuses(catalogue)
    assert s == {"A": ("persisting", "unreviewed"), "B": ("persisting", "unreviewed"),
                 "C": ("new", "unreviewed"), "D": ("gone", "unreviewed"), "E": ("persisting", "unreviewed"),
                 "F": ("persisting", "rejected")}
    ids["C"] = farm_of(state(catalogue), "C")
    assert ids["C"] == "MW-000006"
    review(catalogue, ids["A"], "confirmed", "inspected 2025-07-10: 40 containers")

    # Date 3: B vanished (G appeared 200 m east: it moved), D returned, E was not covered.
    run_cli("catalog", "add", catalogue, scans[2])
    end = state(catalogue)
    assert {name: farm_of(end, name) for name in ids} == ids  # ids never change
    s = statuses(catalogue)
    assert s == {"A": ("persisting", "confirmed"), "B": ("gone", "unreviewed"), "C": ("persisting", "unreviewed"),
                 "D": ("returned", "unreviewed"), "E": ("persisting", "unreviewed"),
                 "F": ("persisting", "rejected"), "G": ("new", "unreviewed")}
    notes = dict(sql(catalogue, "SELECT site_id, analyst_note FROM sites WHERE analyst_note IS NOT NULL"))
    assert notes == {ids["F"]: "container yard, checked on site 2025-04-02",
                     ids["A"]: "inspected 2025-07-10: 40 containers"}
    by_id = end.set_index("site_id")
    assert by_id.loc[ids["A"], "n_observations"] == 3 and by_id.loc[ids["A"], "first_seen"] == DATES[0]
    assert by_id.loc[ids["B"], "last_seen"] == DATES[1] and by_id.loc[ids["B"], "status_since"] == DATES[2][:10]
    assert by_id.loc[ids["E"], "last_checked"] == DATES[1]  # date 3 did not cover E

    # Adding everything again changes nothing.
    before = (counts(catalogue), state(catalogue).drop(columns="updated").to_json())
    out = run_cli("catalog", "add", catalogue, *scans).output
    assert out.count("already in the catalogue") == 3
    assert (counts(catalogue), state(catalogue).drop(columns="updated").to_json()) == before

    # The sighting history records rasters, model, run and per-class evidence.
    with opened(catalogue) as store:
        obs = load_observations(store, [ids["A"]])
    assert list(obs["acquired"]) == list(DATES) and set(obs["model_sha256"]) == {"ab" * 32}
    assert obs["p_container_farm"].tolist() == [0.9, 0.9, 0.9] and obs["thermal_dt_max_k"].tolist() == [12.0] * 3


def test_diff_list_export(catalogue, scans, tmp_path):
    run_cli("catalog", "add", catalogue, *scans)
    ids = {name: farm_of(state(catalogue), name) for name in "ABCDEFG"}

    out = run_cli("catalog", "diff", catalogue, "--since", "2025-09-01", "-o", tmp_path / "changes.geojson").output
    assert "2 appeared, 1 vanished, 3 seen again" in out
    appeared, vanished = out.split("vanished on or after")[0], out.split("vanished on or after")[1]
    assert ids["G"] in appeared and ids["D"] in appeared and ids["B"] in vanished
    assert f"nearest new site {ids['G']} at" in vanished  # B moved to G
    changes = json.loads((tmp_path / "changes.geojson").read_text())
    assert sorted((f["properties"]["site_id"], f["properties"]["change"]) for f in changes["features"]) == sorted(
        [(ids["G"], "appeared"), (ids["D"], "appeared"), (ids["B"], "vanished"), (ids["A"], "persisted"),
         (ids["C"], "persisted"), (ids["F"], "persisted")])
    out = run_cli("catalog", "diff", catalogue, "--since", "2025-06-01").output
    # Before June: A, B, D, E, F; now C and G are new, B is gone; D went and came back: there before and now.
    assert out.startswith("since 2025-06-01: 2 appeared, 1 vanished, 4 seen again")
    review(catalogue, ids["F"], "rejected")

    out = run_cli("catalog", "list", catalogue, "--status", "new", "--status", "returned").output
    assert out.startswith("2 site(s)") and ids["G"] in out and ids["D"] in out
    out = run_cli("catalog", "list", catalogue, "--review", "rejected").output
    assert out.startswith("1 site(s)") and ids["F"] in out
    out = run_cli("catalog", "list", catalogue, "--since", "2025-09-01").output
    assert out.startswith("6 site(s)") and ids["E"] not in out  # E was last looked at in June

    fence = tmp_path / "fence.geojson"
    west = shapely.box(14.99, 49.6, 15.006, 49.7)  # A and C only
    gpd.GeoDataFrame(geometry=[west], crs=4326).to_file(fence)
    out = run_cli("catalog", "list", catalogue, "--geofence", fence).output
    assert out.startswith("2 site(s)") and ids["A"] in out and ids["C"] in out

    # Export: RFC 7946 GeoJSON, a GeoPackage that opens styled, CSV for spreadsheets.
    run_cli("catalog", "export", catalogue, "-o", tmp_path / "sites.geojson", "--status", "gone")
    doc = json.loads((tmp_path / "sites.geojson").read_text())
    assert "crs" not in doc and len(doc["bbox"]) == 4
    assert [f["properties"]["site_id"] for f in doc["features"]] == [ids["B"]]
    ring = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert shapely.Polygon(ring).exterior.is_ccw
    run_cli("catalog", "export", catalogue, "-o", tmp_path / "sites.gpkg")
    back = gpd.read_file(tmp_path / "sites.gpkg", layer="sites")
    assert sorted(back["site_id"]) == sorted(ids.values()) and back.crs.to_epsg() == 4326
    import sqlite3

    with sqlite3.connect(tmp_path / "sites.gpkg") as conn:
        assert conn.execute("SELECT useAsDefault FROM layer_styles WHERE f_table_name = 'sites'").fetchone() == (1,)
    run_cli("catalog", "export", catalogue, "-o", tmp_path / "sites.csv", "--review", "rejected")
    lines = (tmp_path / "sites.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("site_id,status") and ids["F"] in lines[1]


def test_order_of_adding_does_not_matter(tmp_path, scans):
    a, b = tmp_path / "forward.gpkg", tmp_path / "backward.gpkg"
    run_cli("catalog", "add", a, *scans)  # sorted by acquisition date when given together
    for scan in reversed(scans):
        run_cli("catalog", "add", b, scan)
    assert statuses(str(a)) == statuses(str(b))


def test_empty_scan_marks_sites_gone(tmp_path, scans):
    """A later scan that found nothing at all still says the sites it covered are gone."""
    cat = tmp_path / "c.gpkg"
    run_cli("catalog", "add", cat, scans[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "sites.geojson").write_text('{"type": "FeatureCollection", "features": []}\n')
    (empty / "tiles.gpkg").write_bytes((scans[0] / "tiles.gpkg").read_bytes())
    bad = run_cli("catalog", "add", cat, empty, ok=False)
    assert bad.exit_code == 2 and "--scene-id and --acquired" in bad.output
    run_cli("catalog", "add", cat, empty, "--scene-id", "flight-9", "--acquired", "2026-01-10")
    assert set(state(str(cat))["status"]) == {"gone"}
    again = run_cli("catalog", "add", cat, empty, "--scene-id", "flight-9", "--acquired", "2026-01-10").output
    assert "already in the catalogue" in again


def test_a_verdict_made_on_the_sites_file_is_kept(tmp_path, scans):
    """Analysts who reviewed a sites.geojson before it reached the catalogue keep their verdicts."""
    doc = json.loads((scans[0] / "sites.geojson").read_text())
    doc["features"][0]["properties"]["review_status"] = "confirmed"
    (scans[0] / "sites.geojson").write_text(json.dumps(doc))
    cat = tmp_path / "c.gpkg"
    run_cli("catalog", "add", cat, scans[0])
    assert sorted(state(str(cat))["review_status"]) == ["confirmed"] + ["unreviewed"] * 4


def test_sites_file_with_its_coverage_and_rasters(tmp_path, scans):
    cat = tmp_path / "c.gpkg"
    optical = tmp_path / "optical.tif"
    optical.write_bytes(b"recorded, never opened")
    sites = scans[0] / "sites.geojson"
    bad = run_cli("catalog", "add", cat, sites, "--acquired", "2024-01-01", ok=False)
    assert bad.exit_code == 2 and "the sites say acquired 2025-03-01T10:00:00Z" in bad.output
    out = run_cli("catalog", "add", cat, sites, "--coverage", scans[0] / "tiles.gpkg", "--optical", optical).output
    assert "note" not in out
    (row,) = sql(str(cat), "SELECT optical_path, thermal_path, n_sites, source FROM coverage")
    assert row == (str(optical.resolve()), None, 5, str(sites))
    assert {r[0] for r in sql(str(cat), "SELECT optical_path FROM observations")} == {str(optical.resolve())}
    with opened(str(cat)) as store:
        from minewatch.infer.catalog.query import load_coverage

        (cov,) = load_coverage(store)
    assert cov["geom"].area > 0 and cov["acquired"] == DATES[0]


def test_scan_output_folder_as_minewatch_demo_writes_it(tmp_path, scans):
    """sites.geojson and tiles.gpkg in the folder, the scene in scene/<scene folder>/ (minewatch demo)."""
    from minewatch.infer.catalog.ingest import resolve_result

    scene = scans[0] / "scene" / "scene_002026"
    scene.mkdir(parents=True)
    for name in ("optical.tif", "thermal.tif"):
        (scene / name).write_bytes(b"")
    files = resolve_result(scans[0])
    assert (files.sites.name, files.coverage.name) == ("sites.geojson", "tiles.gpkg")
    assert (files.optical, files.thermal) == (scene / "optical.tif", scene / "thermal.tif")
