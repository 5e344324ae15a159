"""Two processes adding at once lose nothing and never duplicate a site (GeoPackage and PostGIS).

Each process (both started by one signal) adds three scans of the same five farms (other scenes, runs and
dates, the farms listed in another order), one transaction per scan. Serialised writers give exactly five
sites (each later scan matches the sites the first created), 30 sightings and 6 scans, whatever the
interleaving; writers that read without the lock create farms twice or attach sightings to the wrong site.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from minewatch.infer.catalog.query import load_observations, load_sites
from minewatch.infer.catalog.store import opened
from minewatch.infer.writers import write_sites_geojson, write_tiles_gpkg
from tests.catalog.campaign import sites_frame, tiles_frame
from tests.catalog.conftest import run_cli, sql

ROOT = Path(__file__).resolve().parents[2]
# Both processes import everything first, then wait for the same start signal, so their adds overlap.
STARTER = """
import sys, time
from pathlib import Path
from minewatch.cli import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
sys.argv = ["minewatch", *sys.argv[2:]]
main()
"""


def _start_together(tmp_path: Path, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, str(go), *c], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for c in commands]
    time.sleep(3.0)  # imports done (about 1.5 s on a loaded 2-core machine)
    go.touch()
    return [(p.wait(timeout=300), *p.communicate()) for p in procs]


def _scan(folder: Path, scene: str, run: str, day: int, *, reverse: bool = False) -> Path:
    folder.mkdir(parents=True)
    sites = sites_frame(1, scene_id=scene, run_id=run)
    if reverse:  # the other process lists the farms in the other order, so unserialised ids would collide
        sites = sites.iloc[::-1].reset_index(drop=True)
    sites["acquired"] = f"2025-05-{day:02d}T10:00:00Z"
    write_sites_geojson(sites, folder / "sites.geojson")
    write_tiles_gpkg(tiles_frame(1), folder / "tiles.gpkg")
    return folder


def test_concurrent_adds_lose_nothing(catalogue, tmp_path):
    jobs = []
    for p in range(2):
        results = [_scan(tmp_path / f"p{p}-s{k}", f"scene-p{p}-{k}", f"run-p{p}-{k}", 1 + 2 * k + p, reverse=p == 1)
                   for k in range(3)]
        jobs.append(["catalog", "add", catalogue, *map(str, results)])
    with opened(catalogue, create=True):  # created first, so both processes spend their time adding
        pass
    for code, out, err in _start_together(tmp_path, jobs):
        assert code == 0, err
        assert out.count("site(s):") == 3
    assert sql(catalogue, "SELECT count(*) FROM coverage")[0][0] == 6
    assert sql(catalogue, "SELECT count(*) FROM observations")[0][0] == 30
    ids = sorted(r[0] for r in sql(catalogue, "SELECT site_id FROM sites"))
    assert ids == [f"MW-{n:06d}" for n in range(1, 6)]
    per_site = sql(catalogue, "SELECT site_id, count(*) FROM observations GROUP BY site_id")
    assert sorted(n for _, n in per_site) == [6] * 5
    # The six scans were on six days: every farm persists; every sighting lies on its own site.
    assert {r[0] for r in sql(catalogue, "SELECT status FROM sites")} == {"persisting"}
    with opened(catalogue) as store:
        sites = load_sites(store).set_index("site_id")
        obs = load_observations(store)
    for sid, geom in zip(obs["site_id"], obs.geometry, strict=True):
        assert geom.intersection(sites.loc[sid, "geometry"]).area > 0.5 * geom.area, sid


def test_same_results_added_at_once_are_added_once(tmp_path):
    """Two processes also create the catalogue at once: one file, one copy of the scan."""
    cat = tmp_path / "c.gpkg"
    scan = _scan(tmp_path / "s", "scene-x", "run-x", 3)
    outs = _start_together(tmp_path, [["catalog", "add", str(cat), str(scan)]] * 2)
    assert all(code == 0 for code, _, _ in outs), outs
    assert sum("already in the catalogue" in o for _, o, _ in outs) == 1
    assert sql(str(cat), "SELECT count(*) FROM observations")[0][0] == 5
    run_cli("catalog", "list", cat)
