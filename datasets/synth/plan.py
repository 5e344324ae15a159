"""The scene plan: every random choice of a scene, made before any pixel is drawn.

Where and when, sun and wind, atmosphere, the thermal grid, the landscape, the sites and their
placement. Rendering only reads the plan, so tests can inspect what a seed produces without
rendering (and a seed always produces the same plan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from shapely.geometry import Polygon, box

import minewatch
from minewatch.datasets.profiles import SensorProfile
from minewatch.datasets.synth.background import Background, background_files, open_background
from minewatch.datasets.synth.geo import Frame, When, pick_region, pick_time, utm_frame
from minewatch.datasets.synth.landcover import LandcoverPlan, make_landcover
from minewatch.datasets.synth.lookalikes import build_lookalike
from minewatch.datasets.synth.marina import sides
from minewatch.datasets.synth.match import estimate
from minewatch.datasets.synth.mining import build_mining_site, heat_footprint
from minewatch.datasets.synth.noise import CoarseField, fractal_field
from minewatch.datasets.synth.objects import Layer, Palette, Part, SynthSite, TooSmall, Truth, place_site, uni
from minewatch.datasets.synth.recipe import Atmosphere, BackgroundEntry, Paste, Region, SensorLook, SynthRecipe
from minewatch.datasets.synth.water import (
    detect_water,
    display_brightness,
    field_water,
    local_texture,
    mask_polygons,
    shore_point,
)

GENERATOR_VERSION = f"{minewatch.__version__}+synth.3"  # .3: truth says what thick cloud hides

MIN_SHADOW_SUN_DEG = 5.0  # shadow length stops growing below this sun height
MIN_CLOUD_SUN_DEG = 10.0  # cloud-shadow offset stops growing below this sun height
MAX_CLOUD_SHIFT_M = 3000.0  # farthest a cloud shadow falls from its cloud
CLOUD_SOFT = 0.35  # cloud-field units over which cloud opacity ramps from 0 to 1
CLOUD_CELLS_PER_SCALE = 10  # cloud-field cell = cloud scale / 10 ...
MIN_CLOUD_CELL_M = 4.0  # ... but at least this
FULL_SUN_ELEVATION_DEG = 60.0  # solar load is 1 at this sun height
SOLAR_LOAD_RANGE = (0.2, 1.1)  # solar load before cloud, low and high sun
CLOUD_SOLAR_LOSS = 0.5  # share of the solar load lost per unit of cloud cover
SNOW_MAX_AIR_K = 272.0  # snow lies only when the air is at most this
THERMAL_OFFSET_PX = (0.25, 0.75)  # thermal grid offset from the optical grid, fraction of an optical pixel
DEFAULT_THERMAL_FACTOR = 4  # thermal pixel / optical pixel for a profile without a thermal band
SAMPLE_GRID = 6  # points per side tested for water inside a candidate footprint
MAX_SPACING_FRACTION = 0.04  # site spacing is at most this share of the scene side (small scenes)
SHRINK_ATTEMPTS = 4  # a site that finds no room is rebuilt smaller up to this many times
SHRINK_FACTOR = 0.65  # ... each time offered this share of the previous extent
MIN_TRUTH_AREA_M2 = 0.5  # label pieces the scene edge cuts below this are dropped
FURNITURE_CLEARANCE_M = 3.0  # trees and houses this close to a site are removed
SNOW_ON_STRUCTURE, SNOW_ON_GROUND = 0.75, 0.5  # snow share of the colour of cold roofs / ground parts
MAX_PARTS = 65000  # part ids are uint16 in the rasterised id maps
WATER_MAX_CELLS = 1024  # water detection grid: at most this many cells per side
OPEN_GROUND_TRIES = 0.7  # share of the placement tries that want open ground on a real background
CLUTTER_WINDOW_M = 8.0  # texture window of the open-ground test
CLUTTER_QUANTILE = 0.5  # open ground: mean texture under the footprint below this quantile of the scene's
MARINA_MIN_WATER_M2 = 2500.0  # a marina needs a water body at least this large
MARINA_WET_SHARE = 0.85  # a marina's pontoons and boats lie at least this much over water ...
MARINA_DRY_SHARE = 0.9  # ... and its quay at least this much on land
# Over a real background the procedural landscape keeps only its mottle (thermal texture): no roads,
# villages, hedgerows, trees, forest or water of its own.
BARE_LANDCOVER = {"roads": (0, 0), "village_probability": 0.0, "hedgerow_probability": 0.0,
                  "scattered_trees": (0, 0), "forest_cover": (0.0, 0.0), "water_probability": 0.0}


@dataclass(frozen=True)
class ThermalGrid:
    """Delivered thermal grid and the finer simulation grid, both in local metres."""

    gsd_m: float
    footprint_m: float
    origin_u: float  # top-left corner of the delivered grid (negative: it starts before the optical)
    origin_v: float
    width: int
    height: int
    sim_gsd_m: float
    sim_u0: float
    sim_v0: float
    sim_width: int
    sim_height: int


@dataclass
class Atmos:
    haze: float
    haze_colour: np.ndarray
    clouds: CoarseField | None  # > 0 where cloudy (opacity ramps over ``cloud_soft``)
    cloud_soft: float
    cloud_shift: tuple[float, float]  # ground -> cloud offset towards the sun, metres
    cloud_cover: float
    cloud_shadow_light: float
    cloud_refl: float
    cloud_temperature_k: float

    def opacity(self, us: np.ndarray, vs: np.ndarray, shifted: bool) -> np.ndarray | None:
        if self.clouds is None:
            return None
        du, dv = self.cloud_shift if shifted else (0.0, 0.0)
        f = self.clouds.sample(us + du, vs + dv)
        return np.clip(f / self.cloud_soft, 0, 1)


@dataclass(frozen=True)
class SensorEffects:
    """Per-scene draws of a sensor look's satellite effects (none for a drone look)."""

    gsd_m: float | None = None  # optical pixel size, m (None: the profile's)
    view_angle_deg: float = 0.0  # off-nadir angle
    view_azimuth_deg: float = 0.0  # direction from the scene towards the satellite, clockwise from north
    sharpen: float = 0.0  # pansharpening ringing (unsharp amount)
    sharpen_sigma_px: float = 1.0
    quant_bits: int | None = None

    @property
    def lean_per_m(self) -> tuple[float, float]:
        """Displacement (u east, v south) of a surface per metre of its height: away from the satellite."""
        k = math.tan(math.radians(self.view_angle_deg))
        az = math.radians(self.view_azimuth_deg)
        return (-math.sin(az) * k, math.cos(az) * k)

    def summary(self) -> dict:
        return {"gsd_m": self.gsd_m, "view_angle_deg": round(self.view_angle_deg, 2),
                "view_azimuth_deg": round(self.view_azimuth_deg, 1), "pansharpen": round(self.sharpen, 3),
                "pansharpen_sigma_px": round(self.sharpen_sigma_px, 2), "quant_bits": self.quant_bits}


SENSOR_STREAM = 41  # the satellite effects' own random stream: other draws stay as they were
GSD_STEP_M = 0.01  # drawn pixel sizes are rounded to this


def sensor_effects(seed: int, look: SensorLook) -> SensorEffects:
    """The scene's satellite effects, from a random stream of their own (nothing is drawn for a look
    without them, so drone scenes are unchanged)."""
    if not look.satellite_effects:
        return SensorEffects()
    rng = np.random.default_rng([seed, SENSOR_STREAM])
    gsd = round(uni(rng, look.gsd_m) / GSD_STEP_M) * GSD_STEP_M if look.gsd_m is not None else None
    view = uni(rng, look.view_angle_deg)
    az = uni(rng, (0.0, 360.0))
    sharpen = uni(rng, look.pansharpen)
    sigma = uni(rng, look.pansharpen_sigma_px)
    bits = int(rng.integers(look.quant_bits[0], look.quant_bits[1] + 1)) if look.quant_bits is not None else None
    return SensorEffects(round(gsd, 4) if gsd else None, view, az, sharpen, sigma, bits)


@dataclass
class ScenePlan:
    scene_id: str
    seed: int
    profile: SensorProfile
    recipe: SynthRecipe
    look: SensorLook
    width: int
    height: int
    gsd_m: float
    frame: Frame
    region: str
    when: When
    snow: bool
    air_k: float
    solar_load: float
    sun_uv: tuple[float, float]  # unit vector towards the sun in the local frame (u east, v south)
    shadow_per_m: tuple[float, float]  # shadow offset per metre of height
    wind_uv: tuple[float, float]
    exposure: float
    atmos: Atmos
    thermal: ThermalGrid
    landcover: LandcoverPlan
    sites: list[SynthSite]
    parts: list[Part]  # draw order (furniture and sites), ids are index + 1
    valid: Polygon | None  # None = every pixel valid
    background: Background | None
    render_seed: np.random.SeedSequence
    collar: bool = False
    notes: dict = field(default_factory=dict)
    effects: SensorEffects = field(default_factory=SensorEffects)

    @property
    def optical_transform(self):
        return self.frame.grid_transform(0.0, 0.0, self.gsd_m)

    @property
    def thermal_transform(self):
        t = self.thermal
        return self.frame.grid_transform(t.origin_u, t.origin_v, t.gsd_m)

    @property
    def extent_m(self) -> tuple[float, float]:
        return self.width * self.gsd_m, self.height * self.gsd_m

    def truth(self) -> list[tuple[SynthSite, Truth]]:
        return [(s, t) for s in self.sites for t in s.truth]


def _count(rng: np.random.Generator, pair: tuple[int, int], scale: float, minimum: int) -> int:
    raw = rng.integers(pair[0], pair[1] + 1) * scale
    n = int(math.floor(raw) + (rng.random() < raw - math.floor(raw)))
    return max(n, minimum)


def _kinds(rng: np.random.Generator, weights: dict[str, float], n: int, distinct: bool) -> list[str]:
    names = sorted(k for k, w in weights.items() if w > 0)
    if not names or n <= 0:
        return []
    w = np.array([weights[k] for k in names], float)
    if distinct and n <= len(names):
        idx = rng.choice(len(names), size=n, replace=False, p=w / w.sum())
    else:
        idx = rng.choice(len(names), size=n, replace=True, p=w / w.sum())
    return [names[int(i)] for i in idx]


def _thermal_grid(rng: np.random.Generator, profile: SensorProfile, look: SensorLook, gsd: float,
                  width_m: float, height_m: float) -> ThermalGrid:
    spec = profile.thermal
    g = spec.gsd_m if spec else gsd * DEFAULT_THERMAL_FACTOR
    fp = max(spec.footprint_m if spec else g, g)
    # offset by a fraction of an optical pixel so no thermal edge lands on an optical edge
    steps = max(1, int(g / gsd))
    ou = (int(rng.integers(0, steps)) + uni(rng, THERMAL_OFFSET_PX)) * gsd
    ov = (int(rng.integers(0, steps)) + uni(rng, THERMAL_OFFSET_PX)) * gsd
    ou, ov = ou % g, ov % g
    tw = math.ceil((width_m + ou) / g)
    th = math.ceil((height_m + ov) / g)
    sim = min(fp / look.thermal_supersample, look.thermal_max_sim_gsd_m)
    sim = max(gsd, round(sim / gsd) * gsd)
    pad = (fp - g) / 2 + 2 * sim
    su0 = math.floor((-ou - pad) / sim) * sim
    sv0 = math.floor((-ov - pad) / sim) * sim
    sw = math.ceil((tw * g - ou + pad - su0) / sim) + 1
    sh = math.ceil((th * g - ov + pad - sv0) / sim) + 1
    return ThermalGrid(g, fp, -ou, -ov, tw, th, sim, su0, sv0, sw, sh)


def _collar(rng: np.random.Generator, recipe: SynthRecipe, w_m: float, h_m: float) -> Polygon | None:
    if rng.random() >= recipe.scene.nodata_collar_probability:
        return None
    f = uni(rng, recipe.scene.collar_fraction)
    ins = rng.uniform(0, f, 8) * np.array([w_m, h_m] * 4)
    ins[int(rng.integers(8))] = f * (w_m if rng.integers(2) else h_m)  # at least one deep side
    pts = [(ins[0], ins[1]), (w_m - ins[2], ins[3]), (w_m - ins[4], h_m - ins[5]), (ins[6], h_m - ins[7])]
    return Polygon(pts)


def _sample_points(poly: Polygon) -> np.ndarray:
    a0, b0, a1, b1 = poly.bounds
    gu, gv = np.meshgrid(np.linspace(a0, a1, SAMPLE_GRID), np.linspace(b0, b1, SAMPLE_GRID))
    pts = np.column_stack([gu.ravel(), gv.ravel()])
    inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
    return np.vstack([pts[inside], np.asarray(poly.exterior.coords)])


def _union(geoms: list[Polygon]):
    if not geoms:
        return None
    u = shapely.union_all(geoms)
    shapely.prepare(u)
    return u


def _place(rng: np.random.Generator, site: SynthSite, allowed: Polygon, keepout: list[Polygon],
           others: list[Polygon], lc: LandcoverPlan, spacing: float, tries: int,
           clutter: tuple[CoarseField, float] | None = None) -> bool:
    """Try random positions and angles; move the site there when its footprint fits.

    The footprint must lie inside ``allowed``, off ``keepout`` (roads, villages) and at least
    ``spacing`` from the ``others`` (sites placed before), and not on water. With ``clutter`` (a real
    background's texture field and a limit), the first ``OPEN_GROUND_TRIES`` of the tries also want
    open ground (mean texture under the footprint below the limit: fields, lots, bare land rather
    than houses and trees).
    """
    fp = site.footprint(0.0)
    a0, b0, a1, b1 = allowed.bounds
    if a1 - a0 < 2 or b1 - b0 < 2:
        return False
    blocked, near = _union(keepout), _union(others)
    shapely.prepare(allowed)
    picky = int(tries * OPEN_GROUND_TRIES) if clutter is not None else 0
    for i in range(tries):
        ang = uni(rng, (0, 2 * math.pi))
        cu, cv = uni(rng, (a0, a1)), uni(rng, (b0, b1))
        c, s = math.cos(ang), math.sin(ang)
        cand = shapely.transform(fp, lambda xy, c=c, s=s, cu=cu, cv=cv: np.column_stack(
            [cu + xy[:, 0] * c - xy[:, 1] * s, cv + xy[:, 0] * s + xy[:, 1] * c]))
        if not allowed.contains(cand):
            continue
        if blocked is not None and blocked.intersects(cand):
            continue
        if near is not None and near.intersects(cand.buffer(spacing)):
            continue
        pts = _sample_points(cand)
        if lc.water_at(pts).any():
            continue
        if i < picky and float(clutter[0].at(pts).mean()) > clutter[1]:
            continue
        place_site(site, cu, cv, ang)
        return True
    return False


def _where(r_where: np.random.Generator, r_bg: np.random.Generator, recipe: SynthRecipe, gsd: float, size: int,
           backgrounds: list[tuple[Path, float | None]]) -> tuple[Frame, int, int, Region, str, Background | None]:
    """Frame, raster size, region and region label: one of the backgrounds (picked by the seed), or a
    point of a recipe region."""
    if backgrounds:
        path, gsd_hint = backgrounds[int(r_bg.integers(len(backgrounds)))]
        bg = open_background(path, gsd, size, r_bg, gsd_hint=gsd_hint, min_extent_m=recipe.paste.min_extent_m,
                             regions=recipe.scene.regions)
        _analyse_background(bg, recipe.paste)
        return bg.frame, bg.width, bg.height, recipe.scene.regions[0], "background", bg
    region = pick_region(r_where, recipe.scene.regions)
    lon, lat = uni(r_where, region.lon), uni(r_where, region.lat)
    return utm_frame(lon, lat, size * gsd, size * gsd), size, size, region, region.name, None


def _analyse_background(bg: Background, paste: Paste) -> None:
    """Water (on a coarse grid of the whole scene) and the appearance estimates (on the real part)."""
    spec = paste.water
    extent = max(bg.width, bg.height) * bg.gsd_m
    cell = max(spec.analysis_m, bg.gsd_m, extent / WATER_MAX_CELLS)
    nx, ny = math.ceil(bg.width * bg.gsd_m / cell), math.ceil(bg.height * bg.gsd_m / cell)
    lin_c, ok_c = bg.read(cell, 0.0, 0.0, nx, ny)
    wet = detect_water(lin_c, ok_c, cell, spec)
    given = bg.water_sidecar(cell, nx, ny)
    if given is not None:
        wet |= given & ok_c
    bg.water = mask_polygons(wet, cell)
    texture = local_texture(display_brightness(lin_c), cell, CLUTTER_WINDOW_M).astype(np.float32)
    dry = ok_c & ~wet
    if dry.any():
        bg.clutter = (CoarseField(texture, 0.0, 0.0, cell), float(np.quantile(texture[dry], CLUTTER_QUANTILE)))
    lin, ok = bg.canvas()
    c0, r0, nc, nr = bg.data_px
    sub, sub_ok = lin[:, r0:r0 + nr, c0:c0 + nc], ok[r0:r0 + nr, c0:c0 + nc]
    land = sub_ok.copy()
    if bg.water is not None:
        from rasterio.features import geometry_mask

        tr = Affine(bg.gsd_m, 0, c0 * bg.gsd_m, 0, bg.gsd_m, r0 * bg.gsd_m)
        land &= geometry_mask([bg.water], out_shape=land.shape, transform=tr)
    bg.match, bg.stats = estimate(sub, sub_ok, land, display=bg.dtype == "uint8")


def _sun_vectors(when: When) -> tuple[tuple[float, float], tuple[float, float]]:
    """Unit vector towards the sun and shadow offset per metre of height, in the local frame."""
    elev = math.radians(when.sun_elevation_deg)
    az = math.radians(when.sun_azimuth_deg)
    sun_uv = (math.sin(az), -math.cos(az))
    shadow_len = 1.0 / math.tan(max(elev, math.radians(MIN_SHADOW_SUN_DEG)))
    return sun_uv, (-sun_uv[0] * shadow_len, -sun_uv[1] * shadow_len)


def _sim_extent(thermal: ThermalGrid, w_m: float, h_m: float) -> tuple[float, float, float, float]:
    """Local extent covering the optical scene and the thermal simulation grid (u0, v0, u1, v1)."""
    return (min(thermal.sim_u0, 0.0), min(thermal.sim_v0, 0.0),
            max(thermal.sim_u0 + thermal.sim_width * thermal.sim_gsd_m, w_m),
            max(thermal.sim_v0 + thermal.sim_height * thermal.sim_gsd_m, h_m))


def _clouds(rng: np.random.Generator, atm: Atmosphere, ext: tuple[float, float, float, float], elev: float,
            sun_uv: tuple[float, float]) -> tuple[CoarseField, float, tuple[float, float]]:
    """A cloud field covering ``ext`` and its shadow offset, with ``cover`` of it above zero."""
    cover = uni(rng, atm.cloud_cover)
    scale = uni(rng, atm.cloud_scale_m)
    reach = min(uni(rng, atm.cloud_height_m) / math.tan(max(elev, math.radians(MIN_CLOUD_SUN_DEG))),
                MAX_CLOUD_SHIFT_M)
    shift = (sun_uv[0] * reach, sun_uv[1] * reach)
    cu0, cv0 = ext[0] + min(0.0, shift[0]), ext[1] + min(0.0, shift[1])
    cw = ext[2] - ext[0] + abs(shift[0])
    chh = ext[3] - ext[1] + abs(shift[1])
    f = fractal_field(rng, cu0, cv0, cw, chh, max(scale / CLOUD_CELLS_PER_SCALE, MIN_CLOUD_CELL_M), scale)
    thr = float(np.quantile(f.data, 1 - cover))
    return CoarseField(f.data - thr, f.u0, f.v0, f.cell_m), cover, shift


def _solar_load(elev: float, cloud_cover: float) -> float:
    """Share of full-sun surface warming: sun height, then broken cloud."""
    lo, hi = SOLAR_LOAD_RANGE
    full = math.sin(math.radians(FULL_SUN_ELEVATION_DEG))
    return float(np.clip(math.sin(elev) / full, lo, hi)) * (1 - CLOUD_SOLAR_LOSS * cloud_cover)


def _landcover(rng: np.random.Generator, recipe: SynthRecipe, region: Region, pal: Palette, when: When,
               snow: bool, ext: tuple[float, float, float, float], w_m: float, h_m: float, scale: float,
               on_background: bool) -> LandcoverPlan:
    """The procedural landscape; over a real background only its mottle and furniture-free tables."""
    if not on_background:
        return make_landcover(rng, recipe.landcover, region, pal, season=when.season, snow=snow, extent=ext,
                              scene=(0.0, 0.0, w_m, h_m), count_scale=scale)
    lc = make_landcover(rng, recipe.landcover.model_copy(update=BARE_LANDCOVER), region, pal,
                        season=when.season, snow=False, extent=ext, scene=(0.0, 0.0, w_m, h_m), count_scale=scale)
    lc.cover.geoms.clear()
    return lc


def _place_sites(rng: np.random.Generator, recipe: SynthRecipe, pal: Palette, scene_id: str, area: Polygon,
                 lc: LandcoverPlan, w_m: float, h_m: float, scale: float, water,
                 clutter: tuple[CoarseField, float] | None = None) -> list[SynthSite]:
    """Draw the mining sites and look-alikes and place them (mining first: they need room).

    A site that finds no room is rebuilt smaller, up to ``SHRINK_ATTEMPTS`` times, then dropped. Sites
    stay off ``water`` (shapely geometry, local metres, or None); marinas go to its shore, and are dropped
    where there is none.
    """
    pl = recipe.placement
    n_mining = _count(rng, recipe.mining.count, scale, pl.min_mining)
    n_look = _count(rng, recipe.lookalikes.count, scale, pl.min_lookalikes)
    todo = [(k, True) for k in _kinds(rng, recipe.mining.kind_weights, n_mining, False)]
    todo += [(k, False) for k in _kinds(rng, recipe.lookalikes.kind_weights, n_look, True)]
    order = rng.permutation(len(todo))
    todo = sorted((todo[int(i)] for i in order), key=lambda kv: not kv[1])  # mining first: they need room
    placed_fp: list[Polygon] = []
    sites: list[SynthSite] = []
    spacing = min(pl.spacing_m, MAX_SPACING_FRACTION * min(w_m, h_m))
    max_ext = min(w_m, h_m) * pl.max_extent_fraction
    counters = {True: 0, False: 0}
    lake = _open_water(water)
    for kind, mining in todo:
        ext_m = max_ext
        if kind == "marina" and lake is None:
            continue  # marinas need a shoreline of open water
        for _attempt in range(SHRINK_ATTEMPTS):
            try:
                if mining:
                    site = build_mining_site(rng, kind, recipe.mining, pal, ext_m, recipe.appearance)
                else:
                    site = build_lookalike(rng, kind, recipe.lookalikes, pal, ext_m, recipe.appearance)
            except TooSmall:
                break
            allowed = area.buffer(-pl.edge_margin_m)
            if kind == "marina":
                fits = not allowed.is_empty and _place_marina(rng, site, lake, allowed, placed_fp, lc, spacing,
                                                              pl.tries)
            else:
                fits = not allowed.is_empty and _place(rng, site, allowed, lc.keepout, placed_fp, lc, spacing,
                                                       pl.tries, clutter)
            if fits:
                counters[mining] += 1
                site.site_id = f"{scene_id}-{'m' if mining else 'l'}{counters[mining]:02d}"
                sites.append(site)
                placed_fp.append(site.footprint(0.0))
                break
            ext_m *= SHRINK_FACTOR
    return sites


def _open_water(water):
    """The parts of ``water`` large enough for a marina (ponds and ditches are not), or None."""
    if water is None:
        return None
    big = [g for g in shapely.get_parts(water) if g.area >= MARINA_MIN_WATER_M2]
    return shapely.union_all(big) if big else None


def _place_marina(rng: np.random.Generator, site: SynthSite, water, allowed, others: list[Polygon],
                  lc: LandcoverPlan, spacing: float, tries: int) -> bool:
    """Put a marina's origin on a random shoreline point, its pontoons towards the water; keep it when its
    pontoons and boats lie over water, its quay on land, all inside ``allowed`` and clear of ``others``."""
    near = _union(others)
    shapely.prepare(allowed)
    land0, wet0 = sides(site)
    for _ in range(tries):
        shore = shore_point(rng, water, allowed)
        if shore is None:
            continue
        cu, cv, ang = shore
        c, s = math.cos(ang), math.sin(ang)

        def move(xy: np.ndarray, c=c, s=s, cu=cu, cv=cv) -> np.ndarray:
            return np.column_stack([cu + xy[:, 0] * c - xy[:, 1] * s, cv + xy[:, 0] * s + xy[:, 1] * c])

        land, wet = shapely.transform(land0, move), shapely.transform(wet0, move)
        whole = shapely.union(land, wet)
        if not allowed.contains(whole):
            continue
        if near is not None and near.intersects(whole.buffer(spacing)):
            continue
        if shapely.intersection(wet, water).area < MARINA_WET_SHARE * wet.area:
            continue
        if shapely.intersection(land, water).area > (1 - MARINA_DRY_SHARE) * land.area or lc.water_at(
                _sample_points(land)).mean() > 1 - MARINA_DRY_SHARE:
            continue
        place_site(site, cu, cv, ang)
        return True
    return False


def _site_tones(rng: np.random.Generator, sites: list[SynthSite], paste: Paste) -> None:
    """Over a real background each site gets its own brightness and colour cast on top of the matched tone."""
    for site in sites:
        tone = uni(rng, paste.tone_jitter) * (1 + paste.cast_jitter * rng.standard_normal(4))
        tone[3] = tone[:3].mean()
        site.params["tone"] = [round(float(t), 3) for t in tone[:3]]
        for p in site.parts:
            p.refl = np.clip(p.refl * tone.astype(np.float32), 0.005, 1.2).astype(np.float32)


def _heat_and_tracks(rng: np.random.Generator, sites: list[SynthSite], recipe: SynthRecipe, pal: Palette,
                     lc: LandcoverPlan, wind_uv: tuple[float, float], snow: bool) -> None:
    """Heat-signature truth of running mining sites (needs the wind) and dirt tracks to the nearest road."""
    for site in sites:
        if site.mining and site.running:
            hp = heat_footprint(site, wind_uv)
            if hp is not None:
                site.truth.append(Truth(hp, "heat_signature", site.kind,
                                        n_containers=int(site.params.get("n_containers", 0)), running=True))
        if lc.road_lines and site.kind != "marina" and rng.random() < recipe.placement.access_track_probability:
            fp = site.footprint(0.0)
            c = fp.centroid
            road = min(lc.road_lines, key=lambda ln: ln.distance(c))
            target = road.interpolate(road.project(c))
            track = shapely.LineString([(c.x, c.y), (target.x, target.y)]).buffer(
                uni(rng, recipe.landcover.track_width_m) / 2, cap_style="flat")
            refl = pal.refl(rng, "dirt")
            if snow:
                refl = 0.6 * pal.refl(rng, "snow") + 0.4 * refl
            lc.cover.add(track, refl, pal.solar("dirt"), exempt=True, grain=2.5, snowy=snow)


def _roof_bases(sites: list[SynthSite]) -> None:
    """Roof equipment stands on the tallest structure of its site under its centre (its shadow falls there)."""
    for site in sites:
        roofs = [p for p in site.parts if p.layer == Layer.STRUCTURE and p.optical and p.height_m > 0]
        if not roofs:
            continue
        tree = shapely.STRtree([p.geom for p in roofs])
        for p in site.parts:
            if p.layer != Layer.ROOF:
                continue
            under = [roofs[i].height_m for i in tree.query(p.geom.centroid, predicate="intersects")
                     if roofs[i].height_m < p.height_m]
            p.base_m = max(under, default=0.0)


def _clip_truth(sites: list[SynthSite], w_m: float, h_m: float) -> None:
    """Labels stop at the scene edge; a polygon cut in pieces keeps its largest piece."""
    scene_box = box(0, 0, w_m, h_m)
    for site in sites:
        kept = []
        for tr in site.truth:
            g = tr.geom.intersection(scene_box)
            if g.is_empty or g.area < MIN_TRUTH_AREA_M2:
                continue
            if g.geom_type != "Polygon":
                g = max(getattr(g, "geoms", [g]), key=lambda x: x.area)
            tr.geom = g
            kept.append(tr)
        site.truth = kept


def _clear_furniture(lc: LandcoverPlan, sites: list[SynthSite]) -> None:
    """Trees and houses give way to sites."""
    taken = [s.footprint(FURNITURE_CLEARANCE_M) for s in sites]
    if taken:
        taken_u = shapely.union_all(taken)
        shapely.prepare(taken_u)
        lc.furniture = [f for f in lc.furniture if not taken_u.intersects(f.geom)]


def _draw_order(lc: LandcoverPlan, sites: list[SynthSite], recipe: SynthRecipe, snow: bool) -> list[Part]:
    """Furniture and site parts, snowed over where they are cold, sorted by layer then height."""
    parts: list[Part] = list(lc.furniture) + [p for s in sites for p in s.parts]
    if snow:
        snow_refl = np.asarray(recipe.materials["snow"].reflectance, np.float32)
        for p in parts:
            if p.snow_free or not p.optical:
                continue
            k = SNOW_ON_STRUCTURE if p.layer >= Layer.STRUCTURE else SNOW_ON_GROUND
            p.refl = ((1 - k) * p.refl + k * snow_refl).astype(np.float32)
            p.solar_k = recipe.materials["snow"].solar_k
    parts.sort(key=lambda p: (int(p.layer), p.height_m if p.layer >= Layer.STRUCTURE else 0.0))
    if len(parts) > MAX_PARTS:
        parts = parts[:MAX_PARTS]
    return parts


def make_plan(seed: int, recipe: SynthRecipe, profile: SensorProfile, *, size: int | None = None,
              background: Path | None = None, backgrounds: Sequence[Path | str | BackgroundEntry] | None = None,
              background_gsd_m: float | None = None) -> ScenePlan:
    """Every random choice of scene ``seed``; no I/O except reading a real background.

    ``backgrounds`` (files or folders; default: the recipe's, ``background`` is the one-file form) are
    real orthophotos: the seed picks one of them (sorted, so the same seed and list give the same
    scene) and the sites are pasted on it. ``background_gsd_m`` (default: the recipe's) is the pixel
    size of images without georeferencing.
    """
    ss = np.random.SeedSequence(seed)
    children = ss.spawn(5)
    r_where, r_land, r_sites, r_bg = (np.random.default_rng(s) for s in children[:4])
    render_seed = children[4]
    scene_id = f"synth-{seed:06d}"
    look = recipe.sensor(profile.name)
    effects = sensor_effects(seed, look)
    gsd = effects.gsd_m or profile.optical.gsd_m
    pal = Palette(recipe.materials)
    size = size or _size_px(recipe, gsd)

    # where and when
    entries = [background] if background is not None else list(backgrounds or recipe.backgrounds)
    gsd_hint = background_gsd_m if background_gsd_m is not None else recipe.background_gsd_m
    bg_files = background_files(entries, gsd_hint) if entries else []
    frame, width, height, region, region_name, bg = _where(r_where, r_bg, recipe, gsd, size, bg_files)
    w_m, h_m = width * gsd, height * gsd
    when = pick_time(r_where, recipe.scene, recipe.landcover.seasons, frame.lon, frame.lat)
    season = recipe.landcover.seasons[when.season]
    snow = when.season == "winter" and r_where.random() < region.snow_probability and bg is None
    air_k = uni(r_where, season.air_temperature_k)
    if snow:
        air_k = min(air_k, SNOW_MAX_AIR_K)
    elev = math.radians(when.sun_elevation_deg)
    sun_uv, shadow_per_m = _sun_vectors(when)
    wind_ang = uni(r_where, (0, 2 * math.pi))
    wind_uv = (math.cos(wind_ang), math.sin(wind_ang))
    exposure = uni(r_where, look.exposure) if bg is None else 1.0  # a real background keeps its tones

    # atmosphere and the thermal grid
    atm = recipe.atmosphere
    haze = uni(r_where, atm.haze)
    cloudy = r_where.random() < atm.cloud_probability and bg is None  # a real background has its own sky
    thermal = _thermal_grid(r_where, profile, look, gsd, w_m, h_m)
    ext = _sim_extent(thermal, w_m, h_m)
    clouds, cover, shift = _clouds(r_where, atm, ext, elev, sun_uv) if cloudy else (None, 0.0, (0.0, 0.0))
    solar_load = _solar_load(elev, cover)
    atmos = Atmos(haze, np.asarray(atm.haze_colour, np.float32), clouds, CLOUD_SOFT, shift, cover,
                  uni(r_where, atm.cloud_shadow_light), uni(r_where, atm.cloud_reflectance),
                  uni(r_where, atm.cloud_temperature_k))

    # landscape, valid area, sites
    scale = min(w_m * h_m / 1e6 / recipe.placement.reference_area_km2, recipe.placement.max_count_scale)
    lc = _landcover(r_land, recipe, region, pal, when, snow, ext, w_m, h_m, scale, bg is not None)
    valid = bg.valid_poly if bg is not None else _collar(r_where, recipe, w_m, h_m)
    area = box(0, 0, w_m, h_m) if valid is None else valid.intersection(box(0, 0, w_m, h_m))
    water = bg.water if bg is not None else (field_water(lc.water, (0.0, 0.0, w_m, h_m)) if lc.water is not None
                                                else None)
    if bg is not None and bg.water is not None:  # real water: sites keep off it (marinas go to its shore)
        lc.keepout.append(bg.water.buffer(recipe.paste.water.margin_m))
        lc.water_geom = bg.water
    sites = _place_sites(r_sites, recipe, pal, scene_id, area, lc, w_m, h_m, scale, water,
                         bg.clutter if bg is not None else None)
    if bg is not None:
        _site_tones(r_sites, sites, recipe.paste)
    _heat_and_tracks(r_sites, sites, recipe, pal, lc, wind_uv, snow)
    _roof_bases(sites)
    _clip_truth(sites, w_m, h_m)
    _clear_furniture(lc, sites)
    parts = _draw_order(lc, sites, recipe, snow)

    return ScenePlan(
        scene_id=scene_id, seed=seed, profile=profile, recipe=recipe, look=look, width=width, height=height,
        gsd_m=gsd, frame=frame, region=region_name, when=when, snow=snow, air_k=air_k, solar_load=solar_load,
        sun_uv=sun_uv, shadow_per_m=shadow_per_m, wind_uv=wind_uv, exposure=exposure, atmos=atmos,
        thermal=thermal, landcover=lc, sites=sites, parts=parts, valid=valid, background=bg,
        render_seed=render_seed, collar=valid is not None and bg is None, effects=effects,
    )


MAX_PLAN_PX = 16_384  # as the generator's MAX_SIZE_PX


def _size_px(recipe: SynthRecipe, gsd: float) -> int:
    """Scene side in pixels: the recipe's ``extent_m`` at this pixel size, else its ``size_px``."""
    if recipe.scene.extent_m is None:
        return recipe.scene.size_px
    return int(min(MAX_PLAN_PX, max(64, round(recipe.scene.extent_m / gsd))))


def truth_kinds(plan: ScenePlan) -> set[tuple[str, str]]:
    """(class, kind) pairs the plan will label."""
    return {(t.cls, t.kind) for _, t in plan.truth()}

