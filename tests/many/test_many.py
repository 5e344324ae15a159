"""Multi-scene scans in this process (--no-cluster) and the scan command's input forms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from minewatch.cli import cli
from minewatch.errors import UserError
from minewatch.infer.inputs import SceneInput, discover
from minewatch.infer.many import Cluster, ScanOptions, run_many, scan_scene

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory) -> Path:
    from minewatch.datasets.synth import generate_scenes

    root = tmp_path_factory.mktemp("two")
    generate_scenes(root / "scenes", seed=920_000, count=2, size=640)
    return root / "scenes"


def test_resume_skips_complete_scenes_and_rescans_changed_ones(two_scenes, tmp_path):
    scenes = discover([str(two_scenes)])
    out = tmp_path / "out"
    first = run_many(scenes, out, ScanOptions(), Cluster(in_process=True))
    assert [o.status for o in first.outcomes] == ["done", "done"] and first.exit_code == 0
    with pytest.raises(UserError, match="outputs of an earlier run"):
        run_many(scenes, out, ScanOptions(), Cluster(in_process=True))
    again = run_many(scenes, out, ScanOptions(resume=True), Cluster(in_process=True))
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
    assert [o.n_sites for o in again.outcomes] == [o.n_sites for o in first.outcomes]
    (out / scenes[1].scene_id / "tiles.gpkg").unlink()  # incomplete outputs: scanned again
    third = run_many(scenes, out, ScanOptions(resume=True, stride_m=64.0), Cluster(in_process=True))
    assert [o.status for o in third.outcomes] == ["done", "done"]  # another stride: both scanned again
    assert gpd.read_file(out / "sites.geojson").crs.to_epsg() == 4326
    assert "2 scenes: 2 scanned, 0 already complete, 0 failed" in third.table()


def test_each_scene_keeps_what_its_site_rule_dropped_for_the_merge(two_scenes, tmp_path):
    # The two scenes with 64 m of nodata around them, so that their sites lie inside the rasters (a site on the
    # edge is kept whatever its size), the first one twice, as if two flights had seen the same ground. At nine
    # windows a site, the first scene's site (8 windows) is dropped by its own rule and the second's (9) kept.
    from tests.many.scenes import pad_scene

    first, second = sorted(two_scenes.iterdir())
    flights = tmp_path / "flights"
    for src, name in ((first, "a"), (first, "a_again"), (second, "b")):
        pad_scene(src, flights / name, 64.0)
    out = tmp_path / "out"
    summary = run_many(discover([str(flights)]), out, ScanOptions(min_windows=9), Cluster(in_process=True))
    assert [(o.scene_id, o.n_sites) for o in summary.outcomes] == [("a", 0), ("a_again", 0), ("b", 1)]
    lone = gpd.read_file(out / "a" / "lone_sites.geojson")
    assert lone["n_tiles"].tolist() == [8] and lone["min_windows"].tolist() == [9]
    assert lone["site_id"].tolist() == ["a-lone-0001"]
    assert "lone_sites.geojson" in json.loads((out / "a" / "scan.json").read_text())["outputs"]
    assert gpd.read_file(out / "b" / "lone_sites.geojson").empty
    # Merged: b's site, and the site both flights saw with eight windows each (16 together, the rule's 9).
    merged = gpd.read_file(out / "sites.geojson").set_index("scene_ids")
    assert sorted(merged.index) == ["a,a_again", "b"] and summary.n_sites == 2
    assert merged.loc["a,a_again", "n_tiles"] == 16 and merged.loc["b", "n_tiles"] == 9
    assert merged.loc["a,a_again"].geometry.equals_exact(lone.geometry.iloc[0], 1e-7)
    # Seen by one flight only, the eight windows stay dropped, as that flight's own scan drops them.
    alone = run_many(discover([str(flights / "a"), str(flights / "b")]), tmp_path / "alone",
                     ScanOptions(min_windows=9), Cluster(in_process=True))
    assert gpd.read_file(tmp_path / "alone" / "sites.geojson")["scene_ids"].tolist() == ["b"]
    assert alone.n_sites == 1


def test_a_site_kept_by_its_scenes_edge_falls_where_another_scene_saw_nothing_beyond(two_scenes, tmp_path):
    # The first scene, 128 m square: at nine windows a site, its sites stand only by the raster's edge. Alone it
    # is the edge of all that was seen, and they are kept; a second flight over the same ground and 128 m around,
    # which finds nothing, leaves them inside what was seen, where a scan of the mosaic would drop them.
    from tests.many.scenes import blank_scene, cut_window

    first = sorted(two_scenes.iterdir())[0]
    flights = tmp_path / "flights"
    cut_window(first, flights / "a", 0, 640)
    options = ScanOptions(min_windows=9, outputs=("sites",))
    alone = run_many(discover([str(flights / "a")]), tmp_path / "alone", options, Cluster(in_process=True))
    kept = gpd.read_file(tmp_path / "alone" / "a" / "sites.geojson")
    assert alone.n_sites == len(kept) > 0 and (kept["n_tiles"] < 9).all()
    lone = gpd.read_file(tmp_path / "alone" / "a" / "lone_sites.geojson")
    assert sorted(lone.loc[lone["site_rule"] == "edge", "site_id"]) == sorted(kept["site_id"])
    assert (lone["window_m"] == 64).all() and (lone["min_windows"] == 9).all()
    footprint = shapely.from_wkt(json.loads((tmp_path / "alone" / "a" / "scan.json").read_text())["footprint"])
    with rasterio.open(first / "optical.tif") as ds:  # every window read: the footprint is the raster
        raster = gpd.GeoSeries([shapely.box(*ds.bounds)], crs=ds.crs).to_crs(4326).iloc[0]
    assert footprint.symmetric_difference(raster).area < 1e-3 * raster.area
    blank_scene(first, flights / "blank", 128.0)
    both = run_many(discover([str(flights)]), tmp_path / "both", options, Cluster(in_process=True))
    assert [(o.scene_id, o.n_sites) for o in both.outcomes] == [("a", len(kept)), ("blank", 0)]
    assert both.n_sites == 0 and gpd.read_file(tmp_path / "both" / "sites.geojson").empty
    # A flight whose raster spans the same ground, but holds no data over it and 64 m around: it saw nothing
    # there, its footprint has a hole, and the first scene's sites stay.
    shutil.rmtree(flights / "blank")
    blank_scene(first, flights / "blank", 128.0, hole_m=64.0)
    holed = run_many(discover([str(flights)]), tmp_path / "holed", options, Cluster(in_process=True))
    seen = shapely.from_wkt(json.loads((tmp_path / "holed" / "blank" / "scan.json").read_text())["footprint"])
    assert seen.geom_type == "Polygon" and len(seen.interiors) == 1 and not seen.intersects(raster.buffer(-1e-5))
    assert holed.n_sites == len(kept)


def test_one_failing_scene_does_not_stop_the_others(two_scenes, tmp_path):
    scenes = discover([str(two_scenes)])
    bad = SceneInput("bad", str(tmp_path / "missing.tif"), origin="bad")
    summary = run_many([bad, *scenes], tmp_path / "out", ScanOptions(), Cluster(in_process=True))
    assert [o.status for o in summary.outcomes] == ["failed", "done", "done"]
    assert summary.outcomes[0].reason.startswith(f"{tmp_path / 'missing.tif'}: optical raster not found")
    assert summary.exit_code == 2
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["scenes"][0]["status"] == "failed" and doc["n_sites"] == summary.n_sites


def test_remote_scenes_need_allow_remote(tmp_path):
    scene = SceneInput("r", "https://example.com/a.tif", origin="r")
    outcome = scan_scene(scene, str(tmp_path), ScanOptions(), "x")
    assert outcome.status == "failed" and "--allow-remote" in outcome.reason and outcome.bad_input


def test_the_cli_takes_a_folder_and_several_rasters(two_scenes, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(two_scenes), "-o", str(tmp_path / "a"), "--no-cluster"])
    assert res.exit_code == 0, res.output
    assert "scene_920000  done" in res.output and "2 scenes: 2 scanned" in res.output
    rasters = [str(p / "optical.tif") for p in sorted(two_scenes.iterdir())]
    res = runner.invoke(cli, ["scan", *rasters, "-o", str(tmp_path / "b"), "--no-cluster", "--scene-outputs", "tiles"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"scene_920000-optical", "scene_920001-optical",
                                                            "sites.geojson", "sites.qml", "sites.gpkg", "run.json"}
    assert {p.name for p in (tmp_path / "b" / "scene_920000-optical").iterdir()} == {
        "sites.geojson", "sites.qml", "tiles.gpkg", "lone_sites.geojson", "scan.json"}
    res = runner.invoke(cli, ["scan", *rasters, "-o", str(tmp_path / "c"), "--scene-outputs", "map"])
    assert res.exit_code == 2 and "unknown scene output(s) map" in res.output


def test_the_one_raster_form_is_unchanged(two_scenes, tmp_path):
    runner = CliRunner()
    scene = sorted(two_scenes.iterdir())[0]
    res = runner.invoke(cli, ["scan", str(scene / "optical.tif"), "--thermal", str(scene / "thermal.tif"),
                              "-o", str(tmp_path / "sites.geojson")])
    assert res.exit_code == 0 and "candidate site(s) from" in res.output, res.output
    assert json.loads((tmp_path / "sites.geojson").read_text())["type"] == "FeatureCollection"
    res = runner.invoke(cli, ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "sites")])
    assert res.exit_code == 2 and "-o is written as candidate sites" in res.output


@pytest.mark.parametrize("extra, message", [
    (["--thermal", "t.tif"], "--thermal applies to a one-raster scan"),
    (["--quicklook", "q.png"], "--quicklook applies to a one-raster scan"),
])
def test_one_scene_options_are_refused_for_several(two_scenes, tmp_path, extra, message):
    res = CliRunner().invoke(cli, ["scan", str(two_scenes), "-o", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2 and message in res.output and res.output.count("\n") == 1


def test_bad_inputs_fail_in_one_line(two_scenes, tmp_path, monkeypatch):
    from minewatch.infer import many

    monkeypatch.setattr(many, "SCHEDULER_TIMEOUT_S", 1)
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(two_scenes), "-o", str(tmp_path / "sites.geojson"), "--no-cluster"])
    assert res.exit_code == 2 and "writes a folder" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(cli, ["scan", str(empty), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no scenes found" in res.output
    res = runner.invoke(cli, ["scan", str(two_scenes), "-o", str(tmp_path / "o"), "--scheduler",
                              "tcp://127.0.0.1:1"])
    assert res.exit_code == 2 and "cannot reach the Dask scheduler" in res.output, res.output
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_a_remote_scene_is_scanned_over_http(two_scenes, http_root, tmp_path):
    root, url = http_root
    scene = sorted(two_scenes.iterdir())[0]
    for name in ("optical.tif", "thermal.tif"):
        (root / name).write_bytes((scene / name).read_bytes())
    remote = SceneInput("remote", f"{url}/optical.tif", f"{url}/thermal.tif", origin="remote")
    outcome = scan_scene(remote, str(tmp_path), ScanOptions(allow_remote=True, outputs=("sites",)), "x")
    assert outcome.status == "done", outcome.reason
    local = scan_scene(SceneInput("local", str(scene / "optical.tif"), str(scene / "thermal.tif")), str(tmp_path),
                       ScanOptions(outputs=("sites",)), "x")
    assert local.status == "done"
    got, want = (gpd.read_file(tmp_path / s / "sites.geojson") for s in ("remote", "local"))
    assert len(got) == len(want) and list(got["score"]) == list(want["score"])
    assert (tmp_path / "remote" / "optical.vrt").is_file()
