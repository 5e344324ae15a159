"""Acceptance of multi-scene scans on a real Dask cluster: a scheduler and two workers started as separate
processes on localhost (no mocks), scanning a folder of small generated scenes.

Two scenes are overlapping windows of one generated scene, cut so that a mining site straddles the first one's
right edge; a third scene is another generated scene; a fourth is a truncated GeoTIFF.
"""

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
import pandas as pd
import pytest
import rasterio
import shapely

from minewatch.datasets.synth import generate_scenes
from tests.many.scenes import STRIDE_PX, cut_window, mosaic_vrt

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

CUT_SITE = "synth-910001-m03"  # straddles flight_a's right edge (columns 1288-1471 of 2400; the cut is at 1440)
VOLATILE = ("run_id", "created")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    [big] = generate_scenes(root / "gen", seed=910_001, size=15 * STRIDE_PX)
    [other] = generate_scenes(root / "gen", seed=910_002, size=6 * STRIDE_PX)
    folder = root / "flights"
    cut_window(big, folder / "flight_a", 0, 9 * STRIDE_PX)  # columns [0, 1440)
    cut_window(big, folder / "flight_b", 7 * STRIDE_PX, 8 * STRIDE_PX)  # [1120, 2400): 64 m of overlap
    shutil.copytree(other, folder / "flight_c")
    bad = folder / "flight_d"
    bad.mkdir()
    data = (other / "optical.tif").read_bytes()
    (bad / "optical.tif").write_bytes(data[: len(data) // 3])  # truncated in transfer
    return folder


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


class LocalDask:
    """``dask scheduler`` and two ``dask worker --no-nanny --nthreads 1`` processes."""

    def __init__(self, root: Path) -> None:
        from distributed import Client

        root.mkdir(parents=True, exist_ok=True)
        info = root / "scheduler.json"
        self.procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                              "--scheduler-file", str(info)], root / "scheduler.log")]
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert info.exists(), (root / "scheduler.log").read_text()
        time.sleep(0.2)
        self.address = json.loads(info.read_text())["address"]
        self.workers = [_start(["worker", self.address, "--nthreads", "1", "--no-nanny", "--memory-limit", "3GB",
                                "--name", f"w{k}", "--no-dashboard"], root / f"worker{k}.log") for k in range(2)]
        self.procs += self.workers
        self.client = Client(self.address, timeout="60s")
        self.client.wait_for_workers(2, timeout=120)

    def close(self) -> None:
        self.client.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    dask = LocalDask(tmp_path_factory.mktemp("dask"))
    yield dask
    dask.close()


def _scan(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minewatch", "scan", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def folder_run(scenes, cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "province"
    run = _scan(str(scenes), "-o", str(out), "--scheduler", cluster.address)
    return run, out


def site_table(path: Path) -> pd.DataFrame:
    """Sites without the run's id and time, geometry as WKT at the file's precision."""
    gdf = gpd.read_file(path, engine="pyogrio")
    df = pd.DataFrame(gdf.drop(columns=[c for c in (*VOLATILE, "geometry") if c in gdf.columns]))
    df["wkt"] = [g.wkt for g in gdf.geometry]
    return df.sort_values("site_id").reset_index(drop=True)


def _truth_site(scenes: Path, site_id: str) -> shapely.Geometry:
    truth = gpd.read_file(scenes / "flight_a" / "truth.geojson").to_crs(4326)
    return shapely.union_all(truth[truth["site_id"] == site_id].geometry.values)


def test_a_site_cut_by_the_scene_edge_is_one_site(folder_run, scenes):
    run, out = folder_run
    assert run.returncode == 2, run.stdout + run.stderr  # flight_d is bad input
    site = _truth_site(scenes, CUT_SITE)
    per_scene = {s: gpd.read_file(out / s / "sites.geojson") for s in ("flight_a", "flight_b")}
    for s, sites in per_scene.items():
        assert sites.intersects(site).sum() == 1, f"{s} sees the cut site"
    merged = gpd.read_file(out / "sites.geojson")
    hits = merged[merged.intersects(site)]
    assert len(hits) == 1
    assert hits.iloc[0]["scene_ids"] == "flight_a,flight_b" and hits.iloc[0]["n_scenes"] == 2
    assert sorted(merged["rank"]) == list(range(1, len(merged) + 1))
    assert len(merged) < sum(len(gpd.read_file(out / s / "sites.geojson")) for s in ("flight_a", "flight_b",
                                                                                      "flight_c"))
    layers = gpd.read_file(out / "sites.gpkg", layer="sites")
    assert len(layers) == len(merged) and layers.crs.to_epsg() == 4326


def test_a_corrupt_scene_is_reported_and_the_others_finish(folder_run):
    run, out = folder_run
    lines = run.stdout.splitlines()
    failed = [line for line in lines if line.startswith("flight_d")]
    assert failed and "failed" in failed[0] and "cannot read the optical raster" in failed[0], run.stdout
    doc = json.loads((out / "run.json").read_text())
    status = {s["scene_id"]: s["status"] for s in doc["scenes"]}
    assert status == {"flight_a": "done", "flight_b": "done", "flight_c": "done", "flight_d": "failed"}
    assert {s["worker"] for s in doc["scenes"] if s["status"] == "done"} <= set(_worker_addresses(doc))
    for s in ("flight_a", "flight_b", "flight_c"):
        assert {p.name for p in (out / s).iterdir()} >= {"sites.geojson", "tiles.gpkg", "heatmap.tif",
                                                          "quicklook.png", "scan.json"}
    assert "scenes: 3 scanned, 0 already complete, 1 failed" in run.stdout
    assert sum(line.startswith("[") for line in lines) == 4  # one progress line per scene (stdout is a pipe)


def _worker_addresses(doc: dict) -> list[str]:
    return [s["worker"] for s in doc["scenes"] if s.get("worker")]


def test_a_stac_item_collection_gives_the_same_sites(folder_run, scenes, cluster, tmp_path):
    import pystac

    _, reference = folder_run
    items = []
    for name in ("flight_a", "flight_b", "flight_c"):
        with rasterio.open(scenes / name / "optical.tif") as ds:
            bbox = list(rasterio.warp.transform_bounds(ds.crs, 4326, *ds.bounds))
            when = ds.tags()["ACQUISITION_DATETIME"]
        item = pystac.Item(name, shapely.geometry.mapping(shapely.box(*bbox)), bbox,
                           pd.Timestamp(when).to_pydatetime(), {})
        item.add_asset("image", pystac.Asset(str(Path("flights") / name / "optical.tif"),
                                             media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                                             extra_fields={"eo:bands": [{"name": b, "common_name": b}
                                                                        for b in ("red", "green", "blue")]}))
        item.add_asset("lwir", pystac.Asset(str(Path("flights") / name / "thermal.tif"),
                                            media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
        items.append(item)
    stac = scenes.parent / "items.json"
    stac.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    run = _scan(str(stac), "-o", str(tmp_path / "stac"), "--scheduler", cluster.address)
    assert run.returncode == 0, run.stdout + run.stderr
    pd.testing.assert_frame_equal(site_table(tmp_path / "stac" / "sites.geojson"),
                                  site_table(reference / "sites.geojson"))


def test_a_vrt_mosaic_gives_the_same_sites(folder_run, scenes, tmp_path):
    """The mosaic's sites are the folder run's merged ones: the same number and classes, each covering the folder
    run's site. Each scene of the folder run keeps the positive windows its own two-window rule drops
    (lone_sites.geojson), and the merge joins them to another scene's site beside them as the mosaic's scan does
    (the committed drone model has one such window of flight_b next to flight_a's site; without the join the
    mosaic's site reached 1.5 windows further). A mosaic site may still reach one window further: a window
    near a flight's edge has more thermal surroundings in the mosaic, so its score moves a little (container
    0.669 in flight_b, 0.700 in the mosaic, against a threshold of 0.686)."""
    from minewatch.infer.scan import ScanRequest, run_scan

    _, reference = folder_run
    mosaic = scenes.parent / "mosaic"
    mosaic.mkdir(exist_ok=True)
    for band in ("optical", "thermal"):
        mosaic_vrt([scenes / "flight_a" / f"{band}.tif", scenes / "flight_b" / f"{band}.tif"],
                   scenes.parent / f"{band}.vrt")
    run_scan(ScanRequest(raster=scenes.parent / "optical.vrt", thermal=scenes.parent / "thermal.vrt",
                         out=tmp_path / "mosaic.geojson"))
    got = gpd.read_file(tmp_path / "mosaic.geojson").to_crs(32637)
    merged = gpd.read_file(reference / "sites.geojson")
    want = merged[merged["scene_ids"].str.contains("flight_a|flight_b")].to_crs(32637)
    assert len(got) == len(want)
    for _, w in want.iterrows():
        covered = [w.geometry.intersection(g).area / w.geometry.area for g in got.geometry]
        k = int(np.argmax(covered))
        assert covered[k] > 0.99, covered
        assert got.iloc[k]["classes"] == w["classes"]
        extra = got.geometry.iloc[k].difference(w.geometry).area
        assert extra <= 64 * 64 + 1, f"the mosaic's site reaches {extra:.0f} m2 beyond the folder run's"


def test_a_worker_killed_mid_scene_gives_identical_outputs(folder_run, scenes, tmp_path):
    _, reference = folder_run
    dask = LocalDask(tmp_path / "dask")
    try:
        src = tmp_path / "flights"
        src.mkdir()
        for name in ("flight_a", "flight_b", "flight_c"):
            (src / name).symlink_to(scenes / name)
        out = tmp_path / "province"
        proc = subprocess.Popen([sys.executable, "-m", "minewatch", "scan", str(src), "-o", str(out),
                                 "--scheduler", dask.address], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        pids = dask.client.run(os.getpid)
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            journals = list(out.glob("*/.sites.geojson.journal")) if out.exists() else []
            if journals:
                busy = {w: keys for w, keys in dask.client.processing().items() if keys}
                scene = journals[0].parent.name
                for worker, keys in busy.items():
                    if any(f"scan-{scene}-" in str(k) for k in keys):
                        os.kill(pids[worker], signal.SIGKILL)
                        killed = (worker, scene)
                        break
            time.sleep(0.02)
        stdout, _ = proc.communicate(timeout=600)
        assert killed is not None, "no worker was caught mid-scene"
        assert proc.returncode == 0, stdout
        doc = json.loads((out / "run.json").read_text())
        retried = next(s for s in doc["scenes"] if s["scene_id"] == killed[1])
        assert retried["status"] == "done" and retried["worker"] != killed[0]
    finally:
        dask.close()
    for name in ("flight_a", "flight_b", "flight_c"):
        pd.testing.assert_frame_equal(site_table(out / name / "sites.geojson"),
                                      site_table(reference / name / "sites.geojson"))
        a, b = gpd.read_file(out / name / "tiles.gpkg"), gpd.read_file(reference / name / "tiles.gpkg")
        pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                      pd.DataFrame(b.drop(columns="geometry")))
        assert a.geometry.equals(b.geometry)
        with rasterio.open(out / name / "heatmap.tif") as x, rasterio.open(reference / name / "heatmap.tif") as y:
            np.testing.assert_array_equal(x.read(), y.read())
    pd.testing.assert_frame_equal(site_table(out / "sites.geojson"), site_table(reference / "sites.geojson"))
