"""The evidence report renders, is self-contained and names every site; Chromium prints it to PDF.

Also ``scan --catalog`` end to end on a generated scene: the report's chips come from its rasters.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from minewatch.datasets.synth import generate_scenes
from tests.catalog.campaign import farm_of, write_scan
from tests.catalog.conftest import review, run_cli, sql
from tests.catalog.test_campaign import state


class Page(HTMLParser):
    """Sections, images and every URL the page refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_names_every_site(catalogue, tmp_path):
    scans = [write_scan(tmp_path / f"flight-{d}", d) for d in (1, 2, 3)]
    run_cli("catalog", "add", catalogue, *scans)
    ids = {n: farm_of(state(catalogue), n) for n in "ABCDEFG"}
    review(catalogue, ids["F"], "rejected", "container yard <b>not</b> a farm")
    out = tmp_path / "report.html"
    assert "(7 site(s))" in run_cli("catalog", "report", catalogue, "-o", out).output
    page = parse(out)
    assert sorted(page.sections) == sorted(ids.values())
    text = " ".join(page.text)
    assert "container yard <b>not</b> a farm" in text  # escaped, shown as written
    assert "raster not available" in text  # these scans recorded no rasters
    assert all(u.startswith("data:image/png;base64,") for u in page.urls)
    assert len(page.images) == 1  # the overview map
    base64.b64decode(page.images[0].split(",", 1)[1], validate=True)
    gone = parse_section(out, ids["B"])
    assert "nothing found" in gone and "2025-09-01" in gone

    # Filters select the sites.
    run_cli("catalog", "report", catalogue, "-o", out, "--status", "gone")
    assert parse(out).sections == [ids["B"]]


def parse_section(path: Path, site_id: str) -> str:
    html = path.read_text(encoding="utf-8")
    start = html.index(f'id="{site_id}"')
    return html[start:html.index("</section>", start)]


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    """A small generated scene with thermal."""
    root = tmp_path_factory.mktemp("flights")
    return generate_scenes(root, seed=7, count=1, recipe="small")[0]


def test_scan_into_catalogue_and_report_with_chips(flights, tmp_path):
    cat = tmp_path / "campaign.gpkg"
    optical, thermal = flights / "optical.tif", flights / "thermal.tif"
    out = run_cli("scan", optical, "--thermal", thermal, "-o", tmp_path / "s1.geojson", "--catalog", cat).output
    assert "catalogue" in out and "new" in out
    n_sites = sql(str(cat), "SELECT count(*) FROM sites")[0][0]
    assert n_sites >= 1
    paths = sql(str(cat), "SELECT optical_path, thermal_path FROM coverage")
    assert paths == [(str(optical.resolve()), str(thermal.resolve()))]
    # Scanning the same scene again is another run: same sites, one more sighting each, same statuses.
    run_cli("scan", optical, "--thermal", thermal, "-o", tmp_path / "s2.geojson", "--catalog", cat)
    assert sql(str(cat), "SELECT count(*) FROM sites")[0][0] == n_sites
    assert {r[0] for r in sql(str(cat), "SELECT n_observations FROM sites")} == {2}
    assert {r[0] for r in sql(str(cat), "SELECT status FROM sites")} == {"new"}  # same day: one look

    report = tmp_path / "report.html"
    run_cli("catalog", "report", cat, "-o", report)
    page = parse(report)
    assert len(page.sections) == n_sites
    assert len(page.images) == 1 + n_sites  # the map and one chip pair per site
    assert "raster not available" not in " ".join(page.text)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed: the PDF print is not checked")
    pdf = tmp_path / "report.pdf"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert pdf.is_file(), proc.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000 and b"/Image" in data


def test_scan_with_a_bad_catalogue_fails_before_scanning(flights, tmp_path):
    result = run_cli("scan", flights / "optical.tif", "-o", tmp_path / "s.geojson", "--catalog", "mysql://x/y",
                     ok=False)
    assert result.exit_code == 2 and "unknown catalogue location scheme" in result.output
    assert not (tmp_path / "s.geojson").exists()


def test_report_with_empty_selection(tmp_path):
    cat = tmp_path / "c.gpkg"
    run_cli("catalog", "add", cat, write_scan(tmp_path / "f", 1))
    out = tmp_path / "r.html"
    run_cli("catalog", "report", cat, "-o", out, "--status", "returned")
    assert parse(out).sections == [] and "No site matches these filters" in out.read_text()
