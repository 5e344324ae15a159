"""Every user mistake is one line naming the file or URL, the problem and the fix, with exit status 2."""

from __future__ import annotations

import importlib.util

import pytest

from tests.catalog.campaign import write_scan
from tests.catalog.conftest import run_cli

NO_PSYCOPG = pytest.mark.skipif(importlib.util.find_spec("psycopg") is None,
                                reason="psycopg is not installed (the field-laptop install)")


@pytest.mark.parametrize("args, words", [
    (["list", "sqlite:///tmp/x.db"], ["sqlite:///tmp/x.db", "unknown catalogue location scheme", "Fix:"]),
    (["list", "catalogue.sqlite"], ["catalogue.sqlite", "GeoPackage (*.gpkg) or a PostgreSQL URL", "Fix:"]),
    (["list", "{tmp}/missing.gpkg"], ["missing.gpkg", "no catalogue here", "catalog add"]),
    pytest.param(["list", "postgresql://me:secret@127.0.0.1:9/db"],
                 ["postgresql://me:***@127.0.0.1:9/db", "cannot connect to PostgreSQL", "Fix:"], marks=NO_PSYCOPG),
    (["add", "{tmp}/c.gpkg", "{tmp}/nothing.geojson"], ["nothing.geojson", "results not found"]),
    (["add", "{tmp}/c.gpkg", "{tmp}/broken.geojson"], ["broken.geojson", "cannot read the sites file"]),
    (["add", "{tmp}/c.gpkg", "{tmp}"], ["no sites.geojson in this folder"]),
    (["add", "{tmp}/c.gpkg", "{scan}", "--acquired", "March"], ["--acquired 'March' is not an ISO 8601 date"]),
    (["diff", "{cat}", "--since", "2025-02-30"], ["--since '2025-02-30' is not an ISO 8601 date", "Fix:"]),
    (["list", "{cat}", "--since", "yesterday"], ["--since 'yesterday'"]),
    (["export", "{cat}", "-o", "{tmp}/sites.shp"], ["sites.shp", "cannot export to '.shp'", "*.geojson"]),
    (["export", "{cat}", "-o", "{tmp}/no/such/dir/sites.geojson"], ["output folder does not exist"]),
    (["list", "{cat}", "--geofence", "{tmp}/nofence.geojson"], ["nofence.geojson", "geofence file not found"]),
    (["labels", "{cat}", "-o", "{scan}"], ["does not hold labels written by minewatch"]),
])
def test_one_line_errors(tmp_path, args, words):
    scan = write_scan(tmp_path / "scan", 1)
    cat = tmp_path / "made.gpkg"
    run_cli("catalog", "add", cat, scan)
    (tmp_path / "broken.geojson").write_text("{not json")
    argv = [a.format(tmp=tmp_path, cat=cat, scan=scan) for a in args]
    result = run_cli("catalog", *argv, ok=False)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("minewatch: error: ") and "\n" not in line, line
    for w in words:
        assert w in line, line
    assert "secret" not in line


def test_options_describing_one_scan_refuse_several_results(tmp_path):
    a, b = write_scan(tmp_path / "a", 1), write_scan(tmp_path / "b", 2)
    result = run_cli("catalog", "add", tmp_path / "c.gpkg", a, b, "--coverage", a / "tiles.gpkg", ok=False)
    assert result.exit_code == 2 and "describe one scan" in result.output
    assert not (tmp_path / "c.gpkg").exists()  # nothing is created before every input is read


def test_psycopg_missing_is_a_user_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_psycopg(name, *a, **k):
        if name == "psycopg":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    result = run_cli("catalog", "list", "postgresql://localhost/x", ok=False)
    assert result.exit_code == 2 and "pip install 'minewatch[postgis]'" in result.output
