"""Generated sites on real backgrounds: deterministic, on land only, truth where the pasted pixels are.

The "real" backgrounds here are written by the tests: a textured GeoTIFF with a flat dark-blue lake (a
known water region) and a PNG without georeferencing whose alpha cuts a corner off. Tests on the shared
real orthophotos skip when ../shared/data/real is absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner
from PIL import Image
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from minewatch.cli import cli
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.synth import generate_scenes, load_recipe, make_plan
from minewatch.datasets.synth.background import collect_backgrounds
from minewatch.datasets.synth.render_optical import OpticalRenderer, shadow_shapes
from minewatch.errors import UserError

FILES = ("optical.tif", "thermal.tif", "truth.geojson", "scene.json")
ORIGIN = (500000.0, 5200000.0)  # UTM 33N
BG_GSD = 0.5
BG_PX = 400  # 200 m
LAKE_PX = (130, 290, 150, 300)  # rows r0:r1, cols c0:c1 of the flat lake (80 x 75 m)


def _land(n: int, rng: np.random.Generator, base=(120, 135, 70)) -> np.ndarray:
    """Textured land with field-like patches and small bright 'roofs' (edges for the blur estimate)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.stack([base[0] + 20 * np.sin(x / 7.0), base[1] + 18 * np.cos(y / 5.0),
                    base[2] + 10 * np.sin((x + y) / 9.0)])
    for _ in range(25):
        r0, c0 = rng.integers(0, n - 20, 2)
        h, w = rng.integers(6, 40, 2)
        colour = np.array([(200, 190, 170), (170, 110, 80), (150, 160, 90), (210, 210, 205)][rng.integers(4)])
        img[:, r0:r0 + h, c0:c0 + w] = colour[:, None, None]
    img += rng.normal(0, 3, img.shape)
    return img


def _lake_image(n: int = BG_PX, land=(120, 135, 70)) -> np.ndarray:
    img = _land(n, np.random.default_rng(0), land)
    r0, r1, c0, c1 = LAKE_PX
    img[:, r0:r1, c0:c1] = np.array([20, 40, 70], np.float32)[:, None, None]
    return np.clip(img, 1, 255).astype(np.uint8)


def _write_tif(path: Path, img: np.ndarray, gsd: float = BG_GSD, crs: str = "EPSG:32633") -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=img.shape[2], height=img.shape[1], count=3, dtype="uint8",
                       crs=crs, transform=from_origin(*ORIGIN, gsd, gsd)) as dst:
        dst.write(img)
    return path


def _lake_crs() -> Polygon:
    """The lake in the background's CRS."""
    r0, r1, c0, c1 = LAKE_PX
    x0, y0 = ORIGIN
    return box(x0 + c0 * BG_GSD, y0 - r1 * BG_GSD, x0 + c1 * BG_GSD, y0 - r0 * BG_GSD)


def _to_local(plan, geom):
    """A CRS geometry in the plan's local frame (u east, v south, metres)."""
    inv = ~plan.frame.affine
    return shapely.transform(geom, lambda xy: np.column_stack([inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c,
                                                               inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f]))


def _sha(folder: Path) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def lake_tif(tmp_path_factory) -> Path:
    return _write_tif(tmp_path_factory.mktemp("bg") / "lake.tif", _lake_image())


@pytest.fixture(scope="module")
def many_sites(tmp_path_factory) -> Path:
    """A small-scene recipe with many sites and every new look-alike (marinas need the lake)."""
    path = tmp_path_factory.mktemp("rec") / "many.yaml"
    path.write_text(
        "extends: small\n"
        "mining: {count: [3, 3]}\n"
        "lookalikes: {count: [4, 4], kind_weights: {marina: 3, semi_trailer_rows: 1, bus_depot: 1, "
        "flat_roof_hvac: 1, rooftop_solar: 1, container_yard: 1}}\n"
    )
    return path


# ---------------------------------------------------------------- choosing backgrounds
def test_collect_backgrounds_walks_folders_sorted_and_refuses_other_files(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    for name in ("b/z.tif", "b/deep/a.PNG", "b/m.jpeg", "b/notes.txt", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    got = collect_backgrounds([tmp_path / "c.jpg", tmp_path / "b", tmp_path / "b" / "z.tif"])
    assert [p.name for p in got] == ["a.PNG", "m.jpeg", "z.tif", "c.jpg"]  # sorted by path, no duplicates
    with pytest.raises(UserError, match="GeoTIFF, PNG or JPEG"):
        collect_backgrounds([tmp_path / "b" / "notes.txt"])
    with pytest.raises(UserError, match="no such"):
        collect_backgrounds([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no"):
        collect_backgrounds([tmp_path / "empty"])


def test_each_scene_picks_its_background_from_its_seed(tmp_path, lake_tif):
    other = _write_tif(tmp_path / "other.tif", _lake_image(land=(160, 120, 90)))
    recipe, profile = load_recipe("small"), load_profile("drone")
    picks = [make_plan(s, recipe, profile, backgrounds=[tmp_path, lake_tif]).background.path.name
             for s in range(8)]
    assert set(picks) == {"lake.tif", "other.tif"}
    again = [make_plan(s, recipe, profile, backgrounds=[lake_tif, tmp_path]).background.path.name
             for s in range(8)]
    assert picks == again  # the list is sorted: the order given does not matter
    assert other.exists()


# ---------------------------------------------------------------- determinism
def test_real_background_scenes_are_byte_identical_per_seed(tmp_path, lake_tif):
    a = generate_scenes(tmp_path / "a", seed=3, recipe="small", backgrounds=[lake_tif])[0]
    b = generate_scenes(tmp_path / "b", seed=3, recipe="small", backgrounds=[lake_tif])[0]
    c = generate_scenes(tmp_path / "c", seed=4, recipe="small", backgrounds=[lake_tif])[0]
    assert _sha(a) == _sha(b)
    assert _sha(a)["optical.tif"] != _sha(c)["optical.tif"]
    meta = json.loads((a / "scene.json").read_text())
    info = meta["background_info"]
    assert meta["background"].endswith("lake.tif") and info["georeferenced"] and not info["mirrored"]
    assert {"gain", "blur_sigma_px", "noise_std", "p50"} <= set(info["match"])
    with rasterio.open(a / "optical.tif") as ds, rasterio.open(lake_tif) as src:
        assert ds.crs == src.crs and ds.res == pytest.approx((0.2, 0.2))
    png = tmp_path / "tile.png"
    Image.fromarray(np.moveaxis(_lake_image(200), 0, -1), "RGB").save(png)
    p1, p2 = (generate_scenes(tmp_path / d, seed=3, recipe="small", backgrounds=[png], background_gsd_m=0.3,
                              size=384)[0] for d in ("p1", "p2"))
    assert _sha(p1) == _sha(p2)


# ---------------------------------------------------------------- on land, inside the image
def test_no_site_on_water_or_off_the_image(lake_tif, many_sites):
    recipe, profile = load_recipe(many_sites), load_profile("drone")
    checked = marinas = 0
    for seed in range(6):
        plan = make_plan(seed, recipe, profile, backgrounds=[lake_tif])
        lake = _to_local(plan, _lake_crs())
        image = box(0, 0, plan.width * plan.gsd_m, plan.height * plan.gsd_m)
        assert plan.background.water is not None
        assert plan.background.water.intersection(lake).area > 0.9 * lake.intersection(image).area
        for site in plan.sites:
            fp = site.footprint()
            assert image.contains(fp), site.site_id
            if site.kind == "marina":  # pontoons and boats on the water, the quay on land
                quay = site.parts[0].geom
                assert quay.intersection(lake).area < 0.1 * quay.area
                assert fp.intersection(lake).area > 0.3 * fp.difference(quay).area
                marinas += 1
            else:
                assert not fp.intersects(lake), (site.site_id, site.kind)
            checked += 1
    assert checked >= 15 and marinas >= 2


def test_png_without_georeferencing_is_placed_at_its_gsd_and_alpha_is_the_footprint(tmp_path):
    img = _lake_image(240)
    alpha = np.full((240, 240), 255, np.uint8)
    yy, xx = np.mgrid[0:240, 0:240]
    alpha[xx + yy < 120] = 0  # the top-left corner is outside the image
    png = tmp_path / "tile.png"
    Image.fromarray(np.dstack([np.moveaxis(img, 0, -1), alpha]), "RGBA").save(png)
    recipe, profile = load_recipe("small"), load_profile("drone")
    for seed in range(4):
        plan = make_plan(seed, recipe, profile, backgrounds=[png], background_gsd_m=0.3, size=640)
        bg = plan.background
        assert not bg.georeferenced and bg.source_gsd_m == pytest.approx(0.3)
        assert plan.frame.crs.to_epsg() // 100 in (326, 327)  # UTM at a recipe region
        # 72 m of image in a 128 m scene: mirrored, the real part in the middle at 0.3 m per source pixel
        assert bg.mirrored and bg.data_px[2] == 360 and (plan.width, plan.height) == (640, 640)
        # the corner cut off by the alpha is outside the valid area, and no site stands in it
        c0, r0, _, _ = bg.data_px
        corner = Polygon([(c0 * 0.2, r0 * 0.2), (c0 * 0.2 + 30, r0 * 0.2), (c0 * 0.2, r0 * 0.2 + 30)])
        assert bg.valid_poly.intersection(corner).area < 0.05 * corner.area
        for site in plan.sites:
            assert bg.valid_poly.contains(site.footprint())


def test_a_water_mask_beside_the_image_adds_water_the_detection_misses(tmp_path):
    img = _lake_image()
    r0, r1, c0, c1 = LAKE_PX
    img[:, r0:r1, c0:c1] = np.array([140, 120, 70], np.uint8)[:, None, None]  # a silty brown "river"
    tif = _write_tif(tmp_path / "river.tif", img)
    recipe, profile = load_recipe("small"), load_profile("drone")
    assert make_plan(1, recipe, profile, backgrounds=[tif]).background.water is None  # not detected
    mask = np.zeros(img.shape[1:], np.uint8)
    mask[r0:r1, c0:c1] = 1
    Image.fromarray(mask).save(tmp_path / "river.tif.water.png")
    for seed in range(4):
        plan = make_plan(seed, recipe, profile, backgrounds=[tif])
        lake = _to_local(plan, _lake_crs())
        assert plan.background.water is not None and plan.background.water.intersection(lake).area > 0.9 * (
            lake.intersection(box(0, 0, plan.width * plan.gsd_m, plan.height * plan.gsd_m)).area)
        assert all(s.kind == "marina" or not s.footprint().intersects(lake) for s in plan.sites)


def test_png_without_gsd_is_refused_with_exit_2(tmp_path):
    png = tmp_path / "tile.png"
    Image.fromarray(np.moveaxis(_lake_image(120), 0, -1), "RGB").save(png)
    res = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "o"), "--backgrounds", str(png), "-q"])
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert "tile.png" in line and "georeferencing" in line and "--background-gsd" in line
    ok = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "o"), "--backgrounds", str(png), str(png),
                                  "--background-gsd", "0.5", "--config", "small", "--size", "1024", "-q"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "o" / "scene_000000" / "scene.json").read_text())["background_info"]["mirrored"]


def test_recipe_backgrounds_are_relative_to_the_recipe_and_may_give_their_own_gsd(tmp_path, lake_tif):
    (tmp_path / "imgs").mkdir()
    _write_tif(tmp_path / "imgs" / "x.tif", _lake_image())
    Image.fromarray(np.moveaxis(_lake_image(200), 0, -1), "RGB").save(tmp_path / "imgs" / "fine.png")
    Image.fromarray(np.moveaxis(_lake_image(200), 0, -1), "RGB").save(tmp_path / "coarse.png")
    rec = tmp_path / "real.yaml"
    rec.write_text("extends: small\nbackgrounds: [imgs, {path: imgs/fine.png, gsd_m: 0.15}, {path: coarse.png}]\n"
                   "background_gsd_m: 0.4\n")
    recipe = load_recipe(rec)
    assert recipe.backgrounds[0] == tmp_path / "imgs" and recipe.backgrounds[1].path == tmp_path / "imgs" / "fine.png"
    got = {}
    for seed in range(12):
        plan = make_plan(seed, recipe, load_profile("drone"))
        got[plan.background.path.name] = plan.background.source_gsd_m
    assert got == {"x.tif": pytest.approx(BG_GSD), "fine.png": pytest.approx(0.15), "coarse.png": pytest.approx(0.4)}
    [folder] = generate_scenes(tmp_path / "out", seed=1, recipe=rec, size=256)
    assert json.loads((folder / "scene.json").read_text())["background"].startswith(str(tmp_path))


# ---------------------------------------------------------------- truth where the pixels changed
def _render(plan) -> np.ndarray:
    renderer = OpticalRenderer(plan)
    return np.concatenate([arr for _, arr in renderer.strips()], axis=1).astype(np.int16)


def test_truth_polygons_match_the_pasted_objects(tmp_path):
    # magenta land: no pasted surface (paint, gravel, asphalt, steel) looks like it
    bg = _write_tif(tmp_path / "magenta.tif", _lake_image(land=(170, 60, 160)))
    recipe = load_recipe("small")
    plan = make_plan(3, recipe, load_profile("drone"), backgrounds=[bg])
    assert any(s.kind == "container_farm" for s in plan.sites)
    full = _render(plan)
    bare = _render(dataclasses.replace(plan, sites=[], parts=[]))
    changed = np.abs(full - bare).max(axis=0) > 2
    gsd, shape = plan.gsd_m, (plan.height, plan.width)
    local = Affine(gsd, 0, 0, 0, gsd, 0)
    sigma_m = plan.background.match.soft_px * gsd

    def inside(geoms) -> np.ndarray:
        return ~geometry_mask(list(geoms), out_shape=shape, transform=local)

    # every pixel well inside a container block (containers and the pad between them) was pasted
    blocks = [t.geom.buffer(-2 * sigma_m) for s in plan.sites for t in s.truth if t.cls == "container_farm"]
    assert blocks
    core = inside([b for b in blocks if not b.is_empty])
    assert changed[core].mean() > 0.97
    # nothing changed outside the sites, their shadows and the blur of their edges: the background is as it was
    casts = [g for g, _ in shadow_shapes(plan.parts, plan.shadow_per_m)]
    reach = 3 * sigma_m + gsd
    touched = inside([s.footprint().buffer(reach) for s in plan.sites] + [g.buffer(reach) for g in casts])
    assert not changed[~touched].any()
    # and the truth of every site covers what was pasted for it (its footprint), not somewhere else
    for site in plan.sites:
        fp = inside([site.footprint()])
        assert changed[fp].mean() > 0.9, site.kind
        truth = shapely.union_all([t.geom for t in site.truth])
        assert truth.intersection(site.footprint()).area > 0.5 * truth.area


def test_background_outside_the_objects_keeps_its_pixels(tmp_path, lake_tif):
    plan = make_plan(2, load_recipe("small"), load_profile("drone"), backgrounds=[lake_tif])
    bare = _render(dataclasses.replace(plan, sites=[], parts=[]))
    lin, ok = plan.background.canvas()
    expect = np.clip(np.rint(255 * np.clip(lin[:3], 0, 1) ** (1 / 2.2)), 1, 255)
    assert np.abs(bare - expect)[:, ok].max() <= 1  # no blur, noise, haze or exposure over the background


# ---------------------------------------------------------------- the new look-alikes
def test_new_lookalikes_are_labelled_with_their_kind(tmp_path, lake_tif, many_sites):
    seen: dict[str, set[str]] = {}
    folders = generate_scenes(tmp_path / "bg", seed=0, count=2, recipe=many_sites, backgrounds=[lake_tif])
    rec = tmp_path / "proc.yaml"
    rec.write_text("extends: small\nscene: {size_px: 1024}\nlandcover: {water_probability: 1.0, "
                   "water_cover: [0.1, 0.15]}\nlookalikes: {count: [3, 3], kind_weights: {semi_trailer_rows: 1, "
                   "bus_depot: 1, flat_roof_hvac: 1, rooftop_solar: 1, marina: 1}}\n")
    folders += generate_scenes(tmp_path / "proc", seed=0, count=3, recipe=rec)
    for folder in folders:
        for f in json.loads((folder / "truth.geojson").read_text())["features"]:
            seen.setdefault(f["properties"]["kind"], set()).add(f["properties"]["class"])
    new = {"semi_trailer_rows", "bus_depot", "flat_roof_hvac", "rooftop_solar", "marina"}
    assert new <= set(seen), seen
    assert all(seen[k] == {"lookalike"} for k in new)


# ---------------------------------------------------------------- real orthophotos (shared data)
def test_real_lake_shore_keeps_sites_off_the_lake(tmp_path, real_data):
    ref = real_data / "backgrounds" / "detectree" / "ref-img.tif"
    if not ref.exists():
        pytest.skip("detectree/ref-img.tif is absent")
    recipe, profile = load_recipe("small"), load_profile("drone")
    for seed in range(3):
        plan = make_plan(seed, recipe, profile, backgrounds=[ref], size=1024)
        water = plan.background.water
        scene_area = plan.width * plan.height * plan.gsd_m ** 2
        assert water is not None and water.area > 0.4 * scene_area  # about 2/3 of the image is lake
        for site in plan.sites:
            if site.kind != "marina":
                assert site.footprint().intersection(water).area < 1.0, site.kind


def test_real_backgrounds_of_every_kind_generate(tmp_path, real_data):
    bgs = real_data / "backgrounds"
    picks = [bgs / "rio-tiler" / "pix4d_alpha_nodata.tif", bgs / "fair-utilities_oam" / "OAM-309612-261632-19.png",
             bgs / "deepforest" / "2018_SJER_3_252000_4107000_image_477.tif"]
    picks = [p for p in picks if p.exists()]
    if not picks:
        pytest.skip("no shared backgrounds")
    folders = generate_scenes(tmp_path, seed=5, count=len(picks) + 1, recipe="small", backgrounds=picks,
                              background_gsd_m=0.3, size=512)
    for folder in folders:
        meta = json.loads((folder / "scene.json").read_text())
        assert meta["background_info"]["match"]["gain"] and meta["sites"]
        with rasterio.open(folder / "optical.tif") as ds:
            assert ds.read(1).std() > 0
