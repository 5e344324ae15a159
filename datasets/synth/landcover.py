"""Procedural background: field parcels, forest, water, roads, villages and trees.

The plan holds vectors (parcels, roads, gardens; houses and trees as parts) and small coarse fields
(forest, water, mottle). :meth:`LandcoverPlan.cover_map` rasterises the vectors on any grid, so the
optical raster and the finer thermal simulation grid see the same landscape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import LineString, Polygon, box

from minewatch.datasets.synth.noise import CoarseField, coarse_field
from minewatch.datasets.synth.objects import Layer, Palette, Part, Tex, circle, pick, rect, rint, uni
from minewatch.datasets.synth.recipe import Landcover, Region

SNOW_ON_MARGIN = (0.9, 0.1)  # shares of snow and grass in the colour of grass margins in a snowy scene
STRIP_STAGGER_M = (0.0, 100.0)  # each strip of parcels starts this far before the extent
PARCEL_GREENNESS_SD = 0.12  # field-to-field spread of greenness around the scene's
ROWS_ALONG_PROBABILITY = 0.7  # crop rows run along the strip (else across)
TRAMLINE_PROBABILITY = 0.6  # a crop field shows tractor tramlines
TRAMLINE_AMPLITUDE = (0.05, 0.15)  # their relative darkening
RIPE_GREENNESS = 0.25  # ripe crop keeps this share of the field's greenness
FURROW_GAIN, BARE_ROW_GAIN, SNOW_ROW_GAIN = 1.6, 0.3, 0.5  # row contrast of ploughed, bare, snowed fields
MOWN_PROBABILITY = 0.5  # a grass field shows mowing stripes
MOW_PERIOD_M, MOW_AMPLITUDE = (3.0, 6.0), (0.03, 0.07)
SHOULDER_M = (0.6, 1.5)  # gravel shoulder beside a paved road
CENTRE_LINE_MIN_WIDTH_M, CENTRE_LINE_M = 6.0, 0.16  # roads wider than this get a painted centre line
ROAD_KEEPOUT_M = 3.0  # sites keep this far from a road's edge
HEDGED_EDGE_SHARE = 0.3  # hedgerow_probability is per parcel side: one of about three sides can carry one
MIN_FOREST_SHARE, MAX_FOREST_SHARE = 0.01, 0.8
FOREST_GREEN_GAIN, FOREST_GREEN_OFFSET = 1.2, 0.2  # forest is greener than the fields in the same season
FROZEN_WATER_PROBABILITY = 0.5  # in a snowy scene, water is frozen and snowed over


@dataclass
class CoverTable:
    """Per-cover-id look (id 0 = the grass margin between parcels)."""

    geoms: list[Polygon] = field(default_factory=list)
    refl: list[np.ndarray] = field(default_factory=list)
    solar: list[float] = field(default_factory=list)
    rows: list[tuple[float, float, float, float]] = field(default_factory=list)  # cos, sin, period, amp
    tram: list[tuple[float, float]] = field(default_factory=list)  # period, amp
    exempt: list[bool] = field(default_factory=list)  # not covered by forest / water
    grain: list[float] = field(default_factory=list)
    snowy: list[bool] = field(default_factory=list)

    def add(self, geom: Polygon | None, refl: np.ndarray, solar: float, *, rows=(1.0, 0.0, 1.0, 0.0),
            tram=(1.0, 0.0), exempt: bool = False, grain: float = 1.0, snowy: bool = False) -> int:
        if geom is not None:
            self.geoms.append(geom)
        self.refl.append(np.asarray(refl, np.float32))
        self.solar.append(float(solar))
        self.rows.append(tuple(float(x) for x in rows))  # type: ignore[arg-type]
        self.tram.append(tuple(float(x) for x in tram))  # type: ignore[arg-type]
        self.exempt.append(exempt)
        self.grain.append(grain)
        self.snowy.append(snowy)
        return len(self.refl) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        rows = np.array(self.rows, np.float32)
        tram = np.array(self.tram, np.float32)
        return {
            "refl": np.stack(self.refl).astype(np.float32), "solar": np.array(self.solar, np.float32),
            "rcos": rows[:, 0], "rsin": rows[:, 1], "rper": rows[:, 2], "ramp": rows[:, 3],
            "tper": tram[:, 0], "tamp": tram[:, 1], "exempt": np.array(self.exempt, bool),
            "grain": np.array(self.grain, np.float32), "snowy": np.array(self.snowy, bool),
        }


@dataclass
class LandcoverPlan:
    cover: CoverTable
    mottle: CoarseField
    forest: CoarseField | None
    water: CoarseField | None
    forest_refl: np.ndarray
    forest_solar: float
    water_refl: np.ndarray
    water_solar: float
    snow: bool
    furniture: list[Part]
    keepout: list[Polygon]
    road_lines: list[LineString]
    greenness: float
    water_geom: Any = None  # water of a real background (local metres), when there is one

    def cover_map(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """Cover ids (uint16) on a grid whose transform maps pixels to local metres."""
        shapes = [(g, i + 1) for i, g in enumerate(self.cover.geoms) if not g.is_empty]
        if not shapes:
            return np.zeros(shape, np.uint16)
        return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint16")

    def forest_strength(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray | None:
        return None if self.forest is None else self.forest.sample(us, vs)

    def water_strength(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray | None:
        return None if self.water is None else self.water.sample(us, vs)

    def water_at(self, pts: np.ndarray) -> np.ndarray:
        """Whether points (k, 2) are on water or its shore (procedural: a little beyond the drawn water)."""
        out = np.zeros(len(pts), bool)
        if self.water is not None:
            out |= self.water.at(pts) > -0.15
        if self.water_geom is not None:
            out |= shapely.contains_xy(self.water_geom, pts[:, 0], pts[:, 1])
        return out


def _mix(pal: Palette, rng: np.random.Generator, dry: str, green: str, g: float) -> tuple[np.ndarray, float]:
    r = (1 - g) * pal.refl(rng, dry) + g * pal.refl(rng, green)
    return r.astype(np.float32), (1 - g) * pal.solar(dry) + g * pal.solar(green)


def _threshold(f: CoarseField, frac: float) -> CoarseField:
    """Shift a field so that ``frac`` of it is above zero."""
    thr = float(np.quantile(f.data, 1 - frac))
    return CoarseField(f.data - thr, f.u0, f.v0, f.cell_m)


def make_landcover(rng: np.random.Generator, spec: Landcover, region: Region, pal: Palette, *, season: str,
                   snow: bool, extent: tuple[float, float, float, float],
                   scene: tuple[float, float, float, float], count_scale: float) -> LandcoverPlan:
    """Draw the landscape over ``extent`` (local metres; wider than the scene for the thermal footprint)."""
    g_scene = min(1.0, uni(rng, spec.seasons[season].greenness) * region.greenness)
    snow_refl = pal.refl(rng, "snow")
    cover = CoverTable()
    # id 0: grass margins and whatever no parcel covers
    margin_refl, margin_solar = _mix(pal, rng, "grass_dry", "grass_green", g_scene)
    if snow:
        snow_k, grass_k = SNOW_ON_MARGIN
        margin_refl, margin_solar = snow_k * snow_refl + grass_k * margin_refl, pal.solar("snow")
    cover.add(None, margin_refl, margin_solar, snowy=snow)
    parcels = _parcels(rng, spec, pal, cover, extent, g_scene, snow, snow_refl)
    keepout, road_lines = _roads(rng, spec, pal, cover, extent, scene, snow, snow_refl)
    furniture: list[Part] = []
    # village along the first road
    if road_lines and rng.random() < spec.village_probability * min(1.0, count_scale):
        furniture += _village(rng, spec, pal, road_lines[0], scene, cover, keepout, snow, snow_refl,
                              count_scale)
    furniture += _hedgerows_and_trees(rng, spec, pal, parcels, scene, count_scale)
    furniture = _off_roads(furniture, keepout)
    forest, water = _forest_and_water(rng, spec, region, extent)
    mottle = _mottle(rng, extent)
    g_forest = min(1.0, g_scene * FOREST_GREEN_GAIN + FOREST_GREEN_OFFSET)
    f_refl, f_solar = _mix(pal, rng, "forest_dry", "forest_green", g_forest)
    if snow:
        f_refl = 0.55 * f_refl + 0.25 * snow_refl  # snow between dark crowns
    w_refl = pal.refl(rng, "water")
    if snow and rng.random() < FROZEN_WATER_PROBABILITY:
        w_refl = 0.6 * snow_refl + 0.3 * w_refl  # frozen
    return LandcoverPlan(cover, mottle, forest, water, f_refl, f_solar, w_refl, pal.solar("water"), snow,
                         furniture, keepout, road_lines, g_scene)


def _parcels(rng: np.random.Generator, spec: Landcover, pal: Palette, cover: CoverTable,
             extent: tuple[float, float, float, float], g_scene: float, snow: bool,
             snow_refl: np.ndarray) -> list[Polygon]:
    """Field parcels: strips on a rotated grid, cut into fields, each added to ``cover``."""
    eu0, ev0, eu1, ev1 = extent
    ew, eh = eu1 - eu0, ev1 - ev0
    theta = uni(rng, (0, math.pi))
    c, s = math.cos(theta), math.sin(theta)
    cu, cv = (eu0 + eu1) / 2, (ev0 + ev1) / 2
    half = math.hypot(ew, eh) / 2
    ext_box = box(*extent)
    parcels: list[Polygon] = []
    y = -half
    while y < half:
        w = uni(rng, spec.parcel_width_m)
        x = -half - uni(rng, STRIP_STAGGER_M)
        while x < half:
            length = uni(rng, spec.parcel_length_m)
            m = uni(rng, spec.parcel_margin_m)
            pc_x, pc_y = x + length / 2, y + w / 2
            geom = rect(cu + pc_x * c - pc_y * s, cv + pc_x * s + pc_y * c, max(length - m, 1), max(w - m, 1),
                        theta)
            x += length
            if not geom.intersects(ext_box):
                continue
            parcels.append(geom)
            _add_parcel(rng, spec, pal, cover, geom, (c, s), g_scene, snow, snow_refl)
        y += w
    return parcels


def _add_parcel(rng: np.random.Generator, spec: Landcover, pal: Palette, cover: CoverTable, geom: Polygon,
                axis: tuple[float, float], g_scene: float, snow: bool, snow_refl: np.ndarray) -> None:
    """One field: its kind, colour, crop rows (along or across the strip ``axis``) and tramlines."""
    c, s = axis
    kind = pick(rng, spec.parcel_weights)
    g = float(np.clip(g_scene + rng.normal(0, PARCEL_GREENNESS_SD), 0, 1))
    along = rng.random() < ROWS_ALONG_PROBABILITY  # rows along the strip or across it
    rc, rs = (c, s) if not along else (-s, c)
    period = uni(rng, spec.row_period_m)
    amp = uni(rng, spec.row_amplitude)
    tram = (uni(rng, spec.tramline_spacing_m),
            uni(rng, TRAMLINE_AMPLITUDE) if rng.random() < TRAMLINE_PROBABILITY else 0.0)
    if kind == "crop":
        refl, solar = _mix(pal, rng, "crop_dry", "crop_green", g)
    elif kind == "ripe":
        refl, solar = _mix(pal, rng, "crop_dry", "crop_green", g * RIPE_GREENNESS)
    elif kind == "ploughed":
        refl, solar = pal.refl(rng, "ploughed"), pal.solar("ploughed")
        amp, tram = amp * FURROW_GAIN, (tram[0], 0.0)
    elif kind == "grass":
        refl, solar = _mix(pal, rng, "grass_dry", "grass_green", g)
        mow = rng.random() < MOWN_PROBABILITY
        period, amp = (uni(rng, MOW_PERIOD_M), uni(rng, MOW_AMPLITUDE)) if mow else (1.0, 0.0)
        tram = (tram[0], 0.0)
    else:
        refl, solar = pal.refl(rng, "bare_soil"), pal.solar("bare_soil")
        amp, tram = amp * BARE_ROW_GAIN, (tram[0], 0.0)
    if snow:
        refl, solar = (0.8 + 0.15 * rng.random()) * snow_refl + 0.1 * refl, pal.solar("snow")
        amp *= SNOW_ROW_GAIN
    cover.add(geom, refl, solar, rows=(rc, rs, period, amp), tram=tram, snowy=snow,
              grain=1.5 if kind in ("ploughed", "bare") else 1.0)


def _roads(rng: np.random.Generator, spec: Landcover, pal: Palette, cover: CoverTable,
           extent: tuple[float, float, float, float], scene: tuple[float, float, float, float], snow: bool,
           snow_refl: np.ndarray) -> tuple[list[Polygon], list[LineString]]:
    """Roads across the scene (paved with shoulders, or dirt tracks); their keep-out areas and centre lines."""
    keepout: list[Polygon] = []
    road_lines: list[LineString] = []
    n_roads = rint(rng, spec.roads)
    for _ in range(n_roads):
        line = _crossing_line(rng, extent, scene)
        paved = rng.random() < spec.asphalt_probability
        width = uni(rng, spec.road_width_m if paved else spec.track_width_m)
        road = line.buffer(width / 2, cap_style="flat")
        if paved:
            shoulder = line.buffer(width / 2 + uni(rng, SHOULDER_M), cap_style="flat")
            cover.add(shoulder, pal.refl(rng, "gravel"), pal.solar("gravel"), exempt=True, grain=2.0,
                      snowy=snow)
            refl = pal.refl(rng, "asphalt")
            cover.add(road, refl * (1.3 if snow else 1.0), pal.solar("asphalt"), exempt=True)
            if width > CENTRE_LINE_MIN_WIDTH_M:
                cover.add(line.buffer(CENTRE_LINE_M / 2, cap_style="flat"), pal.refl(rng, "road_marking"),
                          pal.solar("road_marking"), exempt=True)
        else:
            refl = pal.refl(rng, "dirt")
            if snow:
                refl = 0.6 * snow_refl + 0.4 * refl
            cover.add(road, refl, pal.solar("dirt"), exempt=True, grain=2.5, snowy=snow)
        keepout.append(line.buffer(width / 2 + ROAD_KEEPOUT_M, cap_style="flat"))
        road_lines.append(line)
    return keepout, road_lines


def _hedgerows_and_trees(rng: np.random.Generator, spec: Landcover, pal: Palette, parcels: list[Polygon],
                         scene: tuple[float, float, float, float], count_scale: float) -> list[Part]:
    """Tree lines along some parcel edges, and lone trees scattered over the scene."""
    su0, sv0, su1, sv1 = scene
    out: list[Part] = []
    for p in parcels:
        if rng.random() < spec.hedgerow_probability * HEDGED_EDGE_SHARE:
            coords = np.asarray(p.exterior.coords)
            k = int(rng.integers(4))
            edge = LineString([coords[k], coords[k + 1]])
            out += _tree_line(rng, spec, pal, edge, scene)
    for _ in range(int(round(rint(rng, spec.scattered_trees) * count_scale))):
        pu, pv = uni(rng, (su0, su1)), uni(rng, (sv0, sv1))
        out.append(_tree(rng, spec, pal, pu, pv))
    return out


def _off_roads(furniture: list[Part], keepout: list[Polygon]) -> list[Part]:
    """Trees do not stand on roads."""
    if not keepout:
        return furniture
    roads = shapely.union_all([k for k in keepout])
    return [f for f in furniture if f.texture != Tex.CROWN or not roads.intersects(f.geom)]


def _forest_and_water(rng: np.random.Generator, spec: Landcover, region: Region,
                      extent: tuple[float, float, float, float]) -> tuple[CoarseField | None, CoarseField | None]:
    """Forest and water from smooth fields: positive where present (None: none in this scene)."""
    eu0, ev0, eu1, ev1 = extent
    ew, eh = eu1 - eu0, ev1 - ev0
    forest_frac = uni(rng, spec.forest_cover) * region.forest
    forest_field = coarse_field(rng, eu0, ev0, ew, eh, 4.0, 22.0)
    forest_field.data += 0.35 * coarse_field(rng, eu0, ev0, ew, eh, 4.0, 6.0).data  # ragged edges
    forest = _threshold(forest_field, min(forest_frac, MAX_FOREST_SHARE)) if forest_frac > MIN_FOREST_SHARE \
        else None
    water = None
    if rng.random() < spec.water_probability:
        wf = coarse_field(rng, eu0, ev0, ew, eh, 3.0, 45.0)
        wf.data += 0.45 * coarse_field(rng, eu0, ev0, ew, eh, 3.0, 9.0).data  # irregular shores
        water = _threshold(wf, uni(rng, spec.water_cover))
    return forest, water


def _mottle(rng: np.random.Generator, extent: tuple[float, float, float, float]) -> CoarseField:
    """Low-frequency brightness (and temperature) variation at two scales, unit std."""
    eu0, ev0, eu1, ev1 = extent
    ew, eh = eu1 - eu0, ev1 - ev0
    mottle = coarse_field(rng, eu0, ev0, ew, eh, 2.0, 7.0)
    mottle.data += 0.6 * coarse_field(rng, eu0, ev0, ew, eh, 2.0, 30.0).data
    mottle.data /= mottle.data.std() + 1e-9
    return mottle


def _crossing_line(rng: np.random.Generator, extent: tuple[float, float, float, float],
                   scene: tuple[float, float, float, float]) -> LineString:
    """A gently bent line from one side of the extent to another, passing through the scene."""
    eu0, ev0, eu1, ev1 = extent
    su0, sv0, su1, sv1 = scene
    mid = np.array([uni(rng, (su0 + 0.15 * (su1 - su0), su1 - 0.15 * (su1 - su0))),
                    uni(rng, (sv0 + 0.15 * (sv1 - sv0), sv1 - 0.15 * (sv1 - sv0)))])
    ang = uni(rng, (0, math.pi))
    d = np.array([math.cos(ang), math.sin(ang)])
    reach = math.hypot(eu1 - eu0, ev1 - ev0)
    bend = np.array([-d[1], d[0]]) * rng.normal(0, 0.05) * reach
    pts = [mid - d * reach, mid - d * reach / 3 + bend * 0.5, mid, mid + d * reach / 3 - bend * 0.5,
           mid + d * reach]
    return LineString(pts).intersection(box(*extent))


def _tree(rng: np.random.Generator, spec: Landcover, pal: Palette, u: float, v: float) -> Part:
    r = uni(rng, spec.tree_radius_m)
    return pal.part(rng, "tree", circle(u, v, r, 14), height_m=uni(rng, spec.tree_height_m), texture=Tex.CROWN,
                    layer=Layer.STRUCTURE, period_m=r, snow_free=True)


def _tree_line(rng: np.random.Generator, spec: Landcover, pal: Palette, edge: LineString,
               scene: tuple[float, float, float, float]) -> list[Part]:
    out = []
    d = 0.0
    scene_box = box(*scene).buffer(10)
    while d < edge.length:
        p = edge.interpolate(d)
        if scene_box.contains(p) and rng.random() < 0.85:
            out.append(_tree(rng, spec, pal, p.x + rng.normal(0, 0.6), p.y + rng.normal(0, 0.6)))
        d += uni(rng, spec.tree_spacing_m)
    return out


def _village(rng: np.random.Generator, spec: Landcover, pal: Palette, road: LineString,
             scene: tuple[float, float, float, float], cover: CoverTable, keepout: list[Polygon],
             snow: bool, snow_refl: np.ndarray, count_scale: float) -> list[Part]:
    """Houses with gardens along both sides of a road."""
    out: list[Part] = []
    scene_box = box(*scene)
    inside = road.intersection(scene_box)
    if inside.is_empty or inside.length < 40:
        return out
    n = max(2, int(round(rint(rng, spec.houses) * min(1.0, count_scale))))
    start = uni(rng, (0, max(inside.length - n * 12, 1)))
    d = start
    garden_refl, garden_solar = pal.refl(rng, "garden"), pal.solar("garden")
    for _ in range(n):
        if d > inside.length - 5:
            break
        p0, p1 = inside.interpolate(d), inside.interpolate(min(d + 1, inside.length))
        ang = math.atan2(p1.y - p0.y, p1.x - p0.x)
        nx, ny = -math.sin(ang), math.cos(ang)
        side = 1.0 if rng.random() < 0.5 else -1.0
        length, width = uni(rng, spec.house_length_m), uni(rng, spec.house_width_m)
        off = uni(rng, (10.0, 18.0))
        hu, hv = p0.x + side * nx * off, p0.y + side * ny * off
        house_ang = ang if rng.random() < 0.7 else ang + math.pi / 2
        gu, gv = p0.x + side * nx * (off + 8), p0.y + side * ny * (off + 8)
        garden = rect(gu, gv, uni(rng, (16, 26)), uni(rng, (22, 34)), ang)
        refl = garden_refl * (1 + 0.1 * rng.standard_normal())
        cover.add(garden, 0.8 * snow_refl + 0.2 * refl if snow else refl, garden_solar, exempt=True,
                  snowy=snow)
        roof = pick(rng, spec.house_roofs)
        part = pal.part(rng, roof, rect(hu, hv, length, width, house_ang), height_m=uni(rng, spec.house_height_m),
                        texture=Tex.GABLE, angle=house_ang)
        out.append(part)
        keepout.append(garden.buffer(2))
        keepout.append(part.geom.buffer(4))
        for _t in range(rint(rng, (0, 2))):
            out.append(_tree(rng, spec, pal, gu + rng.normal(0, 6), gv + rng.normal(0, 6)))
        d += uni(rng, (14.0, 28.0))
    return out
