"""Appearance randomised, geometry kept: paint and wear vary between sites, sizes and rows stay physical;
the appearance estimates of a background measure what they claim to."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from scipy import ndimage

from minewatch.datasets.profiles import load_profile
from minewatch.datasets.synth import load_recipe, make_plan
from minewatch.datasets.synth.match import edge_width, estimate
from minewatch.datasets.synth.mining import FORTY_FT, TWENTY_FT
from minewatch.datasets.synth.objects import Layer, Tex
from minewatch.datasets.synth.recipe import WaterDetection
from minewatch.datasets.synth.water import detect_water


def _farms(seeds=range(10)):
    base = load_recipe("small")
    farms_only = base.mining.model_copy(update={"kind_weights": {"container_farm": 1.0}})
    recipe = base.model_copy(update={"mining": farms_only})
    profile = load_profile("drone")
    for seed in seeds:
        yield from (s for s in make_plan(seed, recipe, profile).sites if s.kind == "container_farm")


def test_container_farms_vary_in_paint_and_wear_but_keep_iso_sizes_and_rows():
    paints, ribs, rusts, lengths = set(), set(), [], set()
    for site in _farms():
        look = site.params["look"]
        paints.add(site.params["colour"])
        ribs.add(round(look["rib"], 2))
        bodies = [p for p in site.parts if p.texture == Tex.RIBS and p.layer == Layer.STRUCTURE and p.heat_k >= 0
                  and abs(p.height_m - site.params["container_height_m"]) < 1e-6]
        assert bodies
        rusts.append(max(p.rust for p in bodies))
        for p in bodies:
            rect = shapely.minimum_rotated_rectangle(p.geom)
            xy = np.asarray(rect.exterior.coords)
            sides = sorted({round(math.dist(xy[i], xy[i + 1]), 2) for i in range(4)})
            assert sides[0] == pytest.approx(2.44, abs=0.01)  # ISO width
            assert sides[-1] in (pytest.approx(FORTY_FT[0], abs=0.01), pytest.approx(TWENTY_FT[0], abs=0.01))
            lengths.add(round(sides[-1], 2))
        # rows: the containers of a block row share one centre line across the site (regular rows, not
        # scattered); the substation's control container may add one more
        centres = np.array([[p.geom.centroid.x, p.geom.centroid.y] for p in bodies])
        assert len(centres) - site.params["n_containers"] in (0, 1)
        along = centres @ np.array([math.cos(site.angle), math.sin(site.angle)])
        assert len(np.unique(np.round(along, 1))) <= site.params["blocks"] + 1
    assert len(paints) >= 4 and len(ribs) >= 5
    assert max(rusts) > 0.1 and min(rusts) == 0.0  # some farms rusty, some clean
    assert lengths == {FORTY_FT[0], TWENTY_FT[0]}


def test_fans_and_pads_get_their_own_look_per_site():
    housings, pads, fans = set(), set(), set()
    for site in _farms(range(16)):
        look = site.params["look"]
        housings.add(look["housing"])
        pads.add(look["pad"])
        fans.add(look["fan"])
        diam = [2 * math.sqrt(p.geom.area / math.pi) for p in site.parts if p.texture == Tex.FAN]
        assert diam and max(diam) <= 1.25 and min(diam) >= 0.3  # physical fan sizes
    assert len(housings) >= 3 and len(pads) >= 3 and len(fans) >= 2


# ---------------------------------------------------------------- appearance estimates
def _scene(n=384, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((n, n), 0.35, np.float32)
    for _ in range(120):
        r, c = rng.integers(0, n - 10, 2)
        h, w = rng.integers(4, 50, 2)
        img[r:r + h, c:c + w] = rng.uniform(0.05, 0.9)
    return img


@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0])
def test_blur_estimate_recovers_a_known_gaussian(sigma):
    y = ndimage.gaussian_filter(_scene(), sigma) if sigma else _scene()
    width = edge_width(y, np.ones(y.shape, bool))
    assert math.sqrt(max(width ** 2 - 0.84 ** 2, 0)) == pytest.approx(sigma, abs=0.35)


def test_tone_and_noise_estimates_follow_the_background():
    rng = np.random.default_rng(1)
    disp = ndimage.gaussian_filter(_scene(), 1.0) + rng.normal(0, 0.02, (384, 384)).astype(np.float32)
    ok = np.ones(disp.shape, bool)
    lin = np.clip(disp, 0, 1) ** 2.2
    bright = np.stack([lin * 1.0, lin * 1.0, lin * 0.8, lin])  # a warm cast
    m, fig = estimate(bright, ok, ok, display=True)
    assert m.gain[2] < m.gain[0] and m.blur_px == pytest.approx(1.0, abs=0.35)
    dark, _ = estimate(bright * 0.25, ok, ok, display=True)
    assert dark.gain[0] < 0.6 * m.gain[0]  # a darker photograph gets darker objects
    quiet, fig_q = estimate(np.stack([np.clip(ndimage.gaussian_filter(_scene(), 1.0), 0, 1) ** 2.2] * 4), ok, ok,
                            display=True)
    assert fig["highpass_noise"] > 3 * fig_q["highpass_noise"] and m.noise > quiet.noise


def test_water_detection_finds_a_flat_lake_and_not_dark_fields():
    n, cell = 200, 1.0
    rng = np.random.default_rng(2)
    disp = np.stack([0.45 + 0.08 * rng.standard_normal((n, n)), 0.5 + 0.08 * rng.standard_normal((n, n)),
                     0.3 + 0.05 * rng.standard_normal((n, n))])
    disp[:, 50:130, 60:150] = np.array([0.1, 0.17, 0.26])[:, None, None]  # lake: dark, flat, blue
    disp[:, 150:190, 10:60] = np.array([0.22, 0.2, 0.18])[:, None, None] + 0.06 * rng.standard_normal((40, 50))
    lin = np.clip(disp, 0, 1) ** 2.2
    mask = detect_water(np.concatenate([lin, lin[:1]]), np.ones((n, n), bool), cell, WaterDetection())
    lake = np.zeros((n, n), bool)
    lake[50:130, 60:150] = True
    assert (mask & lake).sum() / (mask | lake).sum() > 0.9
    assert not mask[150:190, 10:60].any()  # a dark textured field is not water
