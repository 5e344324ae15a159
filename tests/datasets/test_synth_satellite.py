"""Satellite scenes from the generator (#19): per-scene pixel size, off-nadir lean, pansharpening,
quantisation, Landsat-like thermal; and looks without those effects render exactly as before."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from minewatch.datasets.synth import generate_scenes
from minewatch.datasets.synth.objects import Layer, Part
from minewatch.datasets.synth.plan import SensorEffects, sensor_effects
from minewatch.datasets.synth.recipe import load_recipe
from minewatch.datasets.synth.render_optical import leaned_parts, pansharpened, quantised


@pytest.fixture(scope="module")
def small_recipe(tmp_path_factory):
    """The satellite recipe on a 160 m square (a few seconds a scene)."""
    path = tmp_path_factory.mktemp("recipe") / "sat-small.yaml"
    path.write_text("extends: satellite\nscene: {extent_m: 160}\n"
                    "mining: {count: [1, 1], running_probability: 1.0, container_farm: {n_containers: [20, 40]}}\n"
                    "lookalikes: {count: [1, 1]}\n", encoding="utf-8")
    return path


def test_drone_looks_draw_no_satellite_effects():
    rec = load_recipe("default")
    for name in ("drone", "satellite", "default"):  # the default recipe's looks: as before #19
        assert not rec.sensor(name).satellite_effects
        assert sensor_effects(7, rec.sensor(name)) == SensorEffects()


def test_satellite_scene(tmp_path, small_recipe):
    folder = generate_scenes(tmp_path, seed=3, count=1, recipe=small_recipe)[0]
    info = json.loads((folder / "scene.json").read_text())
    eff = info["sensor_effects"]
    assert info["profile"] == "satellite"
    assert 0.3 <= info["gsd_m"] <= 1.0 and eff["gsd_m"] == info["gsd_m"]
    assert 0 <= eff["view_angle_deg"] <= 30 and eff["quant_bits"] in (11, 12)
    assert info["thermal_gsd_m"] == 30 and info["thermal_footprint_m"] == 100
    with rasterio.open(folder / "optical.tif") as src:
        assert src.count == 4 and src.dtypes[0] == "uint16"
        assert src.descriptions == ("red", "green", "blue", "nir")
        assert math.isclose(src.res[0], info["gsd_m"], rel_tol=1e-6)
        assert abs(src.width * src.res[0] - 160) <= src.res[0]  # extent_m, whatever the pixel size
        dn = src.read(1)
    # quantised: reflectance x 10,000 on a grid of 2^bits levels of full scale
    step = 1e4 / (2 ** eff["quant_bits"] - 1)
    values = np.unique(dn[dn > 0]).astype(float)
    assert np.all(np.abs(values / step - np.round(values / step)) < 0.5 / step + 1e-6)


def test_roofs_lean_and_walls_show():
    roof = Part(box(0, 0, 10, 4), np.full(4, 0.5, np.float32), 0.0, height_m=10.0, layer=Layer.STRUCTURE)
    pad = Part(box(-5, -5, 15, 9), np.full(4, 0.3, np.float32), 0.0, height_m=0.0, layer=Layer.GROUND)
    eff = SensorEffects(view_angle_deg=30.0, view_azimuth_deg=270.0)  # the satellite is to the west
    du, dv = eff.lean_per_m
    assert du == pytest.approx(math.tan(math.radians(30))) and dv == pytest.approx(0, abs=1e-12)
    seen = leaned_parts([pad, roof], eff.lean_per_m, 0.6)
    assert seen[0] is pad  # the ground does not move
    wall, top = seen[1], seen[2]
    assert top.geom.bounds[0] == pytest.approx(10 * du)  # roofs move away from the satellite (east)
    assert wall.geom.contains(roof.geom) and wall.geom.contains(top.geom)
    assert np.allclose(wall.refl, 0.3)


def test_pansharpening_rings_and_quantisation_steps():
    x = np.full((4, 40, 40), 0.1, np.float32)
    x[:, :, 20:] = 0.5  # a dark field beside a bright roof
    y = pansharpened(x, 0.8, 1.2)
    assert y[:, 20, 20:24].max() > 0.5 and y[:, 20, 16:20].min() < 0.1  # overshoot on both sides of the edge
    assert np.allclose(y[:, 20, :5], 0.1, atol=1e-3) and np.allclose(y[:, 20, -5:], 0.5, atol=1e-3)
    q = quantised(np.array([0.10002, 0.5], np.float32), 11)
    assert np.allclose(q * 2047, np.round(q * 2047), atol=1e-3)


def test_truth_says_which_objects_thick_cloud_hides(tmp_path):
    """Every truth polygon carries the share of it under thick cloud; it agrees with the rendered optical
    (cloud-white where hidden, not where clear), and drone scenes, whose clouds are out of view, have none."""
    import geopandas as gpd

    from minewatch.datasets.model_input import cloud_mask

    recipe = tmp_path / "sat-cloudy.yaml"
    recipe.write_text("extends: satellite\nscene: {extent_m: 480}\n"
                      "atmosphere: {cloud_probability: 1.0, cloud_cover: [0.45, 0.55],"
                      " cloud_reflectance: [0.85, 0.85], cloud_scale_m: [80, 120]}\n"
                      "mining: {count: [3, 3], container_farm: {n_containers: [20, 40]}}\n", encoding="utf-8")
    shares, white = [], []
    for folder in generate_scenes(tmp_path / "sat", seed=21, count=3, recipe=recipe):
        truth = gpd.read_file(folder / "truth.geojson")
        with rasterio.open(folder / "optical.tif") as src:
            refl = src.read().astype(np.float32) / 1e4
            inv = ~src.transform
        mask = cloud_mask(refl, ("red", "green", "blue", "nir"))
        for share, geom in zip(truth["cloud_share"], truth.to_crs(src.crs).geometry, strict=True):
            c, r = inv * (geom.centroid.x, geom.centroid.y)
            shares.append(share)
            white.append(bool(mask[int(r), int(c)]))
    shares, white = np.array(shares), np.array(white)
    assert (shares > 0.9).sum() >= 3 and (shares < 0.1).sum() >= 3  # some hidden, some in the clear
    # (a white-painted container in the clear may look like cloud to the whiteness test, so not zero)
    assert white[shares > 0.9].mean() >= 0.9 and white[shares < 0.1].mean() <= 0.3
    drone = generate_scenes(tmp_path / "drone", seed=21, count=1, recipe="small")[0]
    drone_truth = gpd.read_file(drone / "truth.geojson")
    assert len(drone_truth) and (drone_truth["cloud_share"] == 0).all()
