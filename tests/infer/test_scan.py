"""End to end: generated scenes through the committed ONNX model to sites that GIS tools open."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from minewatch.infer.evaluate import evaluate_files
from minewatch.infer.predictor import default_model_path
from minewatch.infer.scan import ScanRequest, run_scan
from tests.conftest import write_raster

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def model() -> Path:
    return default_model_path()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from minewatch.datasets.synth import generate_scenes

    return generate_scenes(tmp_path_factory.mktemp("scenes"), seed=910_001, count=1, size=2048)[0]


@pytest.fixture(scope="module")
def scanned(scene, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    result = run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                                  out=out / "sites.geojson", tiles_out=out / "tiles.gpkg",
                                  heatmap=out / "heat.tif", quicklook=out / "map.png"))
    return result, out


def test_sites_match_the_truth(scanned, scene):
    result, out = scanned
    report = evaluate_files(out / "sites.geojson", scene / "truth.geojson", tiles=out / "tiles.gpkg",
                            out=out / "eval.json", plot=out / "eval.png")
    d = report.to_dict()
    print("site-level", d["overall"], d["per_class"])  # reported in the test log
    assert d["overall"]["recall"] >= 0.6
    assert d["overall"]["precision"] >= 0.5
    assert (out / "eval.json").is_file() and (out / "eval.png").stat().st_size > 10_000


def test_sites_geojson_is_rfc7946(scanned):
    _, out = scanned
    doc = json.loads((out / "sites.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert doc["features"], "the test scene has mining sites"
    assert len({f["geometry"]["type"] for f in doc["features"]}) == 1
    assert "bbox" in doc
    for f in doc["features"]:
        ring = np.array(f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "Polygon"
                        else f["geometry"]["coordinates"][0][0])
        area2 = np.sum(ring[:-1, 0] * ring[1:, 1] - ring[1:, 0] * ring[:-1, 1])
        assert area2 > 0  # counter-clockwise exterior: right-hand rule
        assert all(len(repr(float(v)).split(".")[-1]) <= 7 for v in ring.ravel())
        assert f["properties"]["review_status"] == "unreviewed"
    ranks = [f["properties"]["rank"] for f in doc["features"]]
    assert ranks == sorted(ranks) and ranks[0] == 1
    gdf = gpd.read_file(out / "sites.geojson", engine="pyogrio")
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == len(doc["features"])


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
def test_ogrinfo_reads_the_sites(scanned):
    _, out = scanned
    proc = subprocess.run(["ogrinfo", "-ro", "-al", "-so", str(out / "sites.geojson")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Feature Count" in proc.stdout and "site_id: String" in proc.stdout


def _qgis_available() -> bool:
    return Path("/usr/bin/python3").exists() and subprocess.run(
        ["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _qgis_available(), reason="python3-qgis is not installed")
def test_qgis_loads_the_sites(scanned):
    _, out = scanned
    code = (
        "import sys\nfrom qgis.core import QgsApplication, QgsVectorLayer\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "layer = QgsVectorLayer(sys.argv[1], 'sites', 'ogr')\n"
        "print(layer.isValid(), layer.featureCount(), layer.crs().authid())\n"
        "app.exitQgis()\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    proc = subprocess.run(["/usr/bin/python3", "-c", code, str(out / "sites.geojson")], capture_output=True,
                          text=True, env=env, timeout=120)
    valid, count, crs = proc.stdout.split()[-3:]
    assert valid == "True" and int(count) >= 1 and crs == "EPSG:4326"


def test_heatmap_is_a_cog(scanned):
    _, out = scanned
    with rasterio.open(out / "heat.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.count == 3 and ds.descriptions[0] == "container_farm"


def test_blank_nodata_and_uniform_thermal_scenes_give_no_sites(tmp_path, model):
    grey = np.full((3, 512, 512), 120, dtype=np.uint8)
    blank = write_raster(tmp_path / "blank.tif", grey, gsd=0.2, nodata=0, descriptions=["red", "green", "blue"])
    empty = write_raster(tmp_path / "empty.tif", np.zeros_like(grey), gsd=0.2, nodata=0,
                         descriptions=["red", "green", "blue"])
    flat = write_raster(tmp_path / "flat.tif", np.full((1, 140, 140), 300.0, dtype=np.float32), gsd=0.8,
                        nodata=-9999.0, tags={"UNITS": "kelvin"})
    for raster, thermal in ((blank, None), (empty, None), (blank, flat)):
        out = tmp_path / f"{raster.stem}-{thermal is not None}.geojson"
        result = run_scan(ScanRequest(raster=raster, thermal=thermal, model=model, out=out))
        doc = json.loads(out.read_text())
        assert doc == {"type": "FeatureCollection", "features": []} or doc["features"] == []
        assert len(result.sites) == 0
    assert run_scan(ScanRequest(raster=empty, model=model, out=tmp_path / "e.geojson")).n_scanned == 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minewatch", *args]


def test_resume_after_kill_gives_identical_sites(scene, model, tmp_path):
    args = ["scan", str(scene / "optical.tif"), "--thermal", str(scene / "thermal.tif"), "--model", str(model),
            "--batch", "1", "--stride-m", "16", "-q"]
    ref = tmp_path / "ref.geojson"
    subprocess.run(_cli(*args, "-o", str(ref)), check=True)
    out = tmp_path / "sites.geojson"
    journal = tmp_path / ".sites.geojson.journal"
    proc = subprocess.Popen(_cli(*args, "-o", str(out)))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 20:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the scan finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and journal.exists()
    done_before = journal.read_text().count("\n")
    subprocess.run(_cli(*args, "-o", str(out), "--resume", "-v"), check=True)
    assert not journal.exists()
    a, b = json.loads(ref.read_text()), json.loads(out.read_text())
    strip = ("run_id", "created")
    for fa, fb in zip(a["features"], b["features"], strict=True):
        assert fa["geometry"] == fb["geometry"]
        assert {k: v for k, v in fa["properties"].items() if k not in strip} == {
            k: v for k, v in fb["properties"].items() if k not in strip}
    assert len(a["features"]) == len(b["features"]) and done_before >= 20


BAD_INPUTS = ["no_crs", "truncated", "bands", "fence_off", "fence_no_crs", "absurd", "not_model", "unwritable"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, scene, model):
    import geopandas as gpd
    from rasterio.transform import from_origin
    from shapely.geometry import box

    raster, extra, out = scene / "optical.tif", [], tmp_path / "out" / "sites.geojson"
    out.parent.mkdir()
    expect = ""
    if case == "no_crs":
        raster = tmp_path / "nocrs.tif"
        with rasterio.open(raster, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
            dst.write(np.ones((3, 64, 64), dtype=np.uint8))
        expect = "no coordinate reference system"
    elif case == "truncated":
        raster = tmp_path / "cut.tif"
        data = (scene / "optical.tif").read_bytes()
        raster.write_bytes(data[: len(data) // 3])
        expect = "nocut"
    elif case == "bands":
        raster = write_raster(tmp_path / "one.tif", np.ones((1, 64, 64), dtype=np.uint8), descriptions=["nir"])
        expect = "band"
    elif case == "fence_off":
        fence = tmp_path / "far.geojson"
        gpd.GeoDataFrame(geometry=[box(10, 10, 11, 11)], crs=4326).to_file(fence)
        extra, expect = ["--geofence", str(fence)], "does not overlap"
    elif case == "fence_no_crs":
        fence = tmp_path / "f.shp"
        gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(fence)
        extra, expect = ["--geofence", str(fence)], "no CRS"
    elif case == "absurd":
        raster = tmp_path / "huge.tif"
        with rasterio.open(raster, "w", driver="GTiff", width=400_000, height=400_000, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=from_origin(500000, 4000000, 1, 1), tiled=True,
                           blockxsize=4096, blockysize=4096, sparse_ok=True):
            pass
        expect = "beyond the"
    elif case == "not_model":
        fake = tmp_path / "model.onnx"
        fake.write_bytes(b"this is not a model")
        model, expect = fake, "not a valid ONNX model"
    elif case == "unwritable":
        out = tmp_path / "missing-folder" / "sites.geojson"
        expect = "output folder does not exist"
    proc = subprocess.run(_cli("scan", str(raster), "--model", str(model), "-o", str(out), *extra),
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "Fix:" in lines[0]
    if expect != "nocut":
        assert expect in lines[0]
    else:
        assert "truncated" in lines[0] or "cannot read" in lines[0]
    assert not out.exists()
    if out.parent.exists():
        assert list(out.parent.iterdir()) == []  # not even a journal or a temporary file


def test_without_thermal_no_heat_is_reported(scene, model, tmp_path):
    result = run_scan(ScanRequest(raster=scene / "optical.tif", model=model, out=tmp_path / "s.geojson"))
    scanned = result.tiles[result.tiles["scanned"]]
    assert len(scanned) > 100 and scanned["p_heat_signature"].isna().all()
    assert scanned["p_container_farm"].notna().all()
    assert not any("heat_signature" in s["classes"] for s in json.loads((tmp_path / "s.geojson").read_text())
                   ["features"] for s in [s["properties"]])


def test_heat_is_masked_only_where_thermal_is_missing():
    from minewatch.infer.heat_rule import heat_where_seen

    probs = np.array([[0.1, 0.2, 0.9], [0.3, 0.4, 0.8]], dtype=np.float32)
    out = heat_where_seen(probs, np.array([np.nan, 4.0]), ("container_farm", "cooling_array", "heat_signature"))
    assert np.isnan(out[0, 2]) and out[1, 2] == pytest.approx(0.8)
    np.testing.assert_array_equal(out[:, :2], probs[:, :2])
    assert probs[0, 2] == pytest.approx(0.9)  # the input is not modified
