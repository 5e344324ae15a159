"""The catalogue as a GIS sees it: a real GeoPackage (GDAL, pyogrio, ogrinfo), QGIS's default layer style,
and an analyst's verdict made in QGIS that the next scan leaves alone (GeoPackage and PostGIS)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pyogrio
import pytest
import shapely

from minewatch.infer.catalog.gpkg import from_blob, to_blob
from minewatch.infer.catalog.postgis import split_url
from tests.catalog.campaign import farm_of, write_scan
from tests.catalog.conftest import run_cli, sql
from tests.catalog.test_campaign import state

QGIS_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).parent
# GDAL's GeoPackage validator (Debian's python3-gdal, installed with python3-qgis).
VALIDATOR = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py")


def _has_qgis() -> bool:
    if not Path(QGIS_PYTHON).exists():
        return False
    return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.mark.parametrize("geom", [
    shapely.box(14.9, 49.6, 15.0, 49.7),
    shapely.MultiPolygon([shapely.box(0, 0, 1, 1),
                          shapely.box(2, 2, 3, 3).difference(shapely.box(2.2, 2.2, 2.4, 2.4))]),
    shapely.MultiPolygon(),
])
def test_geometry_blob_round_trip(geom):
    blob = to_blob(geom)
    assert blob[:2] == b"GP" and int.from_bytes(blob[4:8], "little") == 4326
    assert shapely.equals_exact(from_blob(blob), geom) or (geom.is_empty and from_blob(blob).is_empty)


def test_a_real_geopackage(tmp_path):
    cat = tmp_path / "c.gpkg"
    run_cli("catalog", "add", cat, write_scan(tmp_path / "f1", 1))
    with sqlite3.connect(cat) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 10300
        contents = dict(conn.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        style = conn.execute("SELECT f_table_catalog, f_table_schema, f_geometry_column, styleName, useAsDefault, "
                             "styleQML, styleSLD FROM layer_styles WHERE f_table_name = 'sites'").fetchone()
    assert contents == {"sites": "features", "observations": "features", "coverage": "features",
                        "catalog_meta": "attributes", "layer_styles": "attributes"}
    assert style[:5] == ("", "", "geom", "minewatch", 1)
    qml = ET.fromstring(style[5].split("\n", 1)[1])
    renderer = qml.find("renderer-v2")
    assert renderer.get("type") == "RuleRenderer"
    groups = renderer.find("rules").findall("rule")
    assert [len(g.findall("rule")) for g in groups] == [4, 4]
    assert ET.fromstring(style[6]).tag.endswith("StyledLayerDescriptor")
    layers = dict(pyogrio.list_layers(cat))
    assert layers["sites"] == "MultiPolygon" and layers["coverage"] == "MultiPolygon"
    sites = pyogrio.read_dataframe(cat, layer="sites")
    assert sites.crs.to_epsg() == 4326 and len(sites) == 5 and sites["review_status"].eq("unreviewed").all()
    if VALIDATOR.is_file():
        check = subprocess.run([QGIS_PYTHON, str(VALIDATOR), str(cat)], capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
    if shutil.which("ogrinfo"):
        info = subprocess.run(["ogrinfo", "-ro", "-so", str(cat), "sites"], capture_output=True, text=True)
        assert info.returncode == 0, info.stderr
        assert "Geometry: Multi Polygon" in info.stdout and "Feature Count: 5" in info.stdout
        assert "ERROR" not in info.stderr


def test_refuses_what_is_not_a_catalogue(tmp_path):
    plain = tmp_path / "plain.gpkg"
    pyogrio.write_dataframe(state_like(), plain, layer="x")
    out = run_cli("catalog", "list", plain, ok=False)
    assert out.exit_code == 2 and "not a minewatch catalogue" in out.output
    text = tmp_path / "notes.gpkg"
    text.write_text("hello")
    out = run_cli("catalog", "add", text, write_scan(tmp_path / "f1", 1), ok=False)
    assert out.exit_code == 2 and "not a GeoPackage" in out.output


def state_like():
    import geopandas as gpd

    return gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)


def _qgis_uri(location: str) -> tuple[str, str]:
    if not location.startswith("postgresql://"):
        return f"{location}|layername=sites", "ogr"
    url, schema = split_url(location)
    u = urlsplit(url)
    return (f"dbname='{u.path.lstrip('/')}' host={u.hostname} port={u.port or 5432} user='{u.username}' "
            f"key='fid' type=MultiPolygon table=\"{schema}\".\"sites\" (geom)", "postgres")


@pytest.mark.skipif(not _has_qgis(), reason="QGIS (python3-qgis) is not installed")
def test_review_in_qgis_survives_the_next_scan(catalogue, tmp_path):
    run_cli("catalog", "add", catalogue, write_scan(tmp_path / "f1", 1))
    target = farm_of(state(catalogue), "F")
    uri, provider = _qgis_uri(catalogue)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.run([QGIS_PYTHON, str(HERE / "qgis_review.py"), uri, provider, target, "rejected",
                           "container yard"], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["valid"] and got["count"] == 5 and got["committed"], got
    assert got["renderer"] == "RuleRenderer" and got["labels"]
    assert got["rules"]["status (fill)"]["new"][1] == "#e31a1c"
    assert got["rules"]["review_status (outline)"]["confirmed"][2] == "#1a9641"
    assert got["review_widget"] == "ValueMap"
    assert not got["read_only"]["review_status"] and not got["read_only"]["analyst_note"]
    assert got["read_only"]["status"] and got["read_only"]["site_id"]

    run_cli("catalog", "add", catalogue, write_scan(tmp_path / "f2", 2))
    assert sql(catalogue, "SELECT review_status, analyst_note, status FROM sites WHERE site_id = ?", (target,)) == [
        ("rejected", "container yard", "persisting")]
