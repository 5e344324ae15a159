"""What a scan leaves on disk: stamped with its run, styled for QGIS, readable by GDAL 3.6, rounded, with
a schema even when empty, written all together or not at all."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from minewatch.cli import cli
from minewatch.infer.sites import SITE_COLUMNS
from minewatch.progress import progress, progress_line
from tests.conftest import write_raster

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from minewatch.datasets.synth import generate_scenes

    return generate_scenes(tmp_path_factory.mktemp("outputs"), seed=5, count=1, recipe="small")[0]


@pytest.fixture(scope="module")
def scanned(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scan")
    result = CliRunner().invoke(cli, ["scan", str(scene / "optical.tif"), "--thermal", str(scene / "thermal.tif"),
                                      "-o", str(out / "sites.geojson"), "--tiles-out", str(out / "tiles.gpkg"),
                                      "--heatmap", str(out / "heat.tif"), "--quicklook", str(out / "map.png")])
    assert result.exit_code == 0, result.output
    return out


def test_every_output_carries_the_run_id(scanned):
    doc = json.loads((scanned / "sites.geojson").read_text())
    run_id = doc["minewatch"]["run_id"]
    assert doc["features"] and all(f["properties"]["run_id"] == run_id for f in doc["features"])
    assert pyogrio.read_info(scanned / "tiles.gpkg", layer="tiles")["layer_metadata"]["MINEWATCH_RUN_ID"] == run_id
    with rasterio.open(scanned / "heat.tif") as src:
        assert src.tags()["MINEWATCH_RUN_ID"] == run_id
    assert Image.open(scanned / "map.png").text["minewatch:run_id"] == run_id
    assert sorted(p.name for p in scanned.iterdir()) == ["heat.qml", "heat.tif", "map.png", "sites.geojson",
                                                         "sites.qml", "tiles.gpkg"]  # no lock, journal, temp


def test_probabilities_are_rounded_to_4_decimals(scanned):
    doc = json.loads((scanned / "sites.geojson").read_text())
    for f in doc["features"]:
        for key in ("score", "p_container_farm", "p_cooling_array", "p_heat_signature"):
            v = f["properties"][key]
            assert v is None or round(v, 4) == v
    tiles = gpd.read_file(scanned / "tiles.gpkg")
    p = tiles["p_container_farm"].dropna().to_numpy()
    assert len(p) and np.array_equal(p, np.round(p, 4))


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
def test_gdal_reads_the_geopackage_without_warnings(scanned):
    proc = subprocess.run(["ogrinfo", "-ro", "-so", str(scanned / "tiles.gpkg"), "tiles"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "Warning" not in proc.stderr + proc.stdout, proc.stderr


QGIS_CHECK = """
import os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
app = QgsApplication([], False); app.initQgis()
d = sys.argv[1]
out = []
for layer in (QgsVectorLayer(d + "/sites.geojson", "s", "ogr"), QgsVectorLayer(d + "/tiles.gpkg|layername=tiles", "t",
              "ogr"), QgsRasterLayer(d + "/heat.tif", "h")):
    msg, ok = layer.loadDefaultStyle()
    out.append(f"{layer.isValid()} {ok} {layer.renderer().type()}")
print(";".join(out), flush=True)
os._exit(0)  # QGIS can crash while tearing down offscreen; what it printed is the answer
"""


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system python for QGIS")
def test_qgis_opens_the_outputs_styled(scanned):
    probe = subprocess.run(["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("python3-qgis is not installed")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    proc = subprocess.run(["/usr/bin/python3", "-c", QGIS_CHECK, str(scanned)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sites, tiles, heat = proc.stdout.strip().splitlines()[-1].split(";")
    assert sites == "True True graduatedSymbol" and tiles == "True True graduatedSymbol"
    assert heat == "True True multibandcolor"


def test_an_empty_result_keeps_its_schema(tmp_path):
    blank = write_raster(tmp_path / "blank.tif", np.full((3, 300, 300), 120, np.uint8), gsd=0.2, nodata=0,
                         descriptions=["red", "green", "blue"])
    result = CliRunner().invoke(cli, ["scan", str(blank), "-o", str(tmp_path / "sites.gpkg")])
    assert result.exit_code == 0, result.output
    sites = gpd.read_file(tmp_path / "sites.gpkg", layer="sites")
    assert len(sites) == 0 and [c for c in SITE_COLUMNS if c not in sites.columns] == []


def test_dry_run_reads_and_writes_nothing(scene, tmp_path):
    result = CliRunner().invoke(cli, ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "s.geojson"),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "windows" in result.output and "dry run" in result.output
    assert "2 positive windows at least, or one at the raster's edge" in result.output  # the model's stride
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_previous_set(scene, tmp_path):
    args = ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "sites.geojson")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    first = (tmp_path / "sites.geojson").read_bytes()
    assert CliRunner().invoke(cli, args).exit_code == 2  # exists: not replaced without --overwrite
    again = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert again.exit_code == 0 and (tmp_path / "sites.geojson").read_bytes() != first  # a new run id


def test_a_failed_rewrite_keeps_the_previous_set(scene, tmp_path, small_disk):
    """A second run whose last output cannot be written (a full disk) leaves the first run's files."""
    args = ["scan", str(scene / "optical.tif"), "-o", str(tmp_path / "sites.geojson")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    kept = (tmp_path / "sites.geojson").read_bytes()
    failed = CliRunner().invoke(cli, [*args, "--overwrite", "--quicklook", str(small_disk / "map.png")])
    assert failed.exit_code == 2
    assert (tmp_path / "sites.geojson").read_bytes() == kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sites.geojson.") and "tmp" in p.name]


def test_tiles_preview_shows_the_models_tiling(scene, tmp_path):
    out = tmp_path / "tiles.gpkg"
    result = CliRunner().invoke(cli, ["tiles", str(scene / "optical.tif"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    offsets = np.unique(gpd.read_file(out)["row_off"])
    assert np.diff(offsets)[0] == 64  # the committed model's 32 m stride on its 0.5 m grid


def test_info_describes_the_committed_models():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0 and "committed models" in result.output and "thresholds" in result.output
    assert "drone: model" in result.output and "satellite: " in result.output  # every profile, committed or not


def test_progress_lines_without_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="minewatch.progress")
    assert list(progress(range(5), total=5, desc="scan", unit="tile", log_every_s=0)) == list(range(5))
    lines = [r.getMessage() for r in caplog.records if r.name == "minewatch.progress"]
    assert len(lines) == 5 and lines[-1].startswith("scan: 5 / 5 tile (100 %)")
    assert progress_line("scan", 250, 1000, 10.0, "tile") == "scan: 250 / 1,000 tile (25 %), 25 tile/s, about 30 s left"
