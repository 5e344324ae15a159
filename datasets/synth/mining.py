"""Mining sites in true sizes: container farms, warehouse halls with fan arrays, hidden sheds.

Each builder returns a :class:`SynthSite` in its own frame (``a`` along the long axis, ``b`` across,
centred on 0, 0); :func:`minewatch.datasets.synth.objects.place_site` moves it into the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from minewatch.datasets.synth.appearance import SiteLook, draw_look
from minewatch.datasets.synth.objects import (
    Layer,
    Palette,
    Part,
    Plume,
    SynthSite,
    Tex,
    TooSmall,
    Truth,
    circle,
    log_int,
    pick,
    plume_core,
    rect,
    ring,
    rint,
    uni,
)
from minewatch.datasets.synth.recipe import Appearance, ContainerFarmSpec, MiningHeat, MiningSpec

FORTY_FT = (12.19, 2.44)
TWENTY_FT = (6.06, 2.44)
HEIGHT_STD, HEIGHT_HC = 2.59, 2.90
CORRUGATION_M = 0.65  # rib period of a container's corrugated steel
FARM_ASPECT = (0.3, 1.2)  # wanted extent along the containers / across
FARM_SURROUND_M = 25.0  # room kept beside a farm's blocks (substation, pad) within the extent offered
FIT_SHRINK_CONTAINERS, FIT_SHRINK_BLOCK = 0.75, 0.85  # a farm that does not fit loses containers
HOOD_DEPTH_M = 1.0  # exhaust hood on a container's end
HOOD_WIDTH_SHARE = 0.92  # of the container's width
HOOD_DROP_M, HOOD_FAN_DROP_M = 0.3, 0.2  # hood top and its fans below the container roof
FAN_INSET_M = 0.35  # roof fans: gap between the fan and the container's end
FAN_RAISE_M = 0.3  # roof fans stand above the roof
WARM_GROUND_M = 2.0  # hot-aisle ground warmed in front of an exhaust
WARM_GROUND_SHARE = 0.8  # of the exhaust excess
PLUME_SOURCE_M = 1.5  # plume sources: this far out from the exhaust end
PAD_DROP_M = 0.2  # evaporative wall top below the container roof
ROOF_UNIT_M = (1.2, 0.9, 0.7)  # AC box on a container roof: length, width, height above the roof


def _abox(a0: float, a1: float, b0: float, b1: float) -> Polygon:
    """Axis-aligned box between two a and two b values in any order."""
    return box(min(a0, a1), min(b0, b1), max(a0, a1), max(b0, b1))


def _bounds(parts: list[Part]) -> tuple[float, float, float, float]:
    return shapely.total_bounds([p.geom for p in parts])  # type: ignore[return-value]


def substation(rng: np.random.Generator, pal: Palette, spec_transformers: tuple[int, int], heat_k: float,
               site_bounds: tuple[float, float, float, float]) -> list[Part]:
    """Gravel yard with transformers, a control container and a fence, beside one side of a site."""
    a0, b0, a1, b1 = site_bounds
    n = rint(rng, spec_transformers)
    length, width = 7.0 + 4.0 * n + uni(rng, (0, 4)), uni(rng, (8, 14))
    gap = uni(rng, (3, 8))
    side = int(rng.integers(4))
    if side == 0:
        ca, cb = uni(rng, (a0 + length / 2, max(a0 + length / 2, a1 - length / 2))), b1 + gap + width / 2
        yard = rect(ca, cb, length, width)
    elif side == 1:
        ca, cb = uni(rng, (a0 + length / 2, max(a0 + length / 2, a1 - length / 2))), b0 - gap - width / 2
        yard = rect(ca, cb, length, width)
    elif side == 2:
        ca, cb = a1 + gap + width / 2, uni(rng, (b0 + length / 2, max(b0 + length / 2, b1 - length / 2)))
        yard = rect(ca, cb, width, length)
    else:
        ca, cb = a0 - gap - width / 2, uni(rng, (b0 + length / 2, max(b0 + length / 2, b1 - length / 2)))
        yard = rect(ca, cb, width, length)
    along_a = side < 2
    parts = [pal.part(rng, "gravel", yard, layer=Layer.GROUND, texture=Tex.GRAVEL, height_m=0.0)]
    parts.append(pal.part(rng, "fence", ring(yard.buffer(-0.4, join_style="mitre"), 0.18), height_m=2.0,
                          layer=Layer.MARK))
    step = (length - 5.0) / n
    for i in range(n):
        off = -length / 2 + 3.0 + step * (i + 0.5)
        ta, tb = (ca + off, cb - width * 0.12) if along_a else (ca - width * 0.12, cb + off)
        tl, tw = uni(rng, (2.4, 3.4)), uni(rng, (1.8, 2.4))
        geom = rect(ta, tb, tl, tw, 0.0 if along_a else math.pi / 2)
        parts.append(pal.part(rng, "transformer", geom, height_m=uni(rng, (2.4, 3.2)), texture=Tex.FINS,
                              angle=0.0 if along_a else math.pi / 2, period_m=0.35, heat_k=heat_k,
                              snow_free=heat_k > 2))
    # control room: a small white container on the far side of the yard
    ka, kb = (ca, cb + width * 0.3) if along_a else (ca + width * 0.3, cb)
    parts.append(pal.part(rng, "container_white", rect(ka, kb, 6.06, 2.44, 0.0 if along_a else math.pi / 2),
                          height_m=HEIGHT_STD, texture=Tex.RIBS, period_m=0.6,
                          angle=0.0 if along_a else math.pi / 2))
    return parts


def _site_pad(rng: np.random.Generator, pal: Palette, parts: list[Part], margin: float) -> Part:
    a0, b0, a1, b1 = _bounds(parts)
    mat = "gravel" if rng.random() < 0.65 else "concrete"
    return pal.part(rng, mat, box(a0 - margin, b0 - margin, a1 + margin, b1 + margin), layer=Layer.GROUND,
                    texture=Tex.GRAVEL if mat == "gravel" else Tex.FLAT)


@dataclass
class _FarmDesign:
    """The drawn layout of a container farm (site frame: ``a`` along the containers, ``b`` across)."""

    clen: float  # container length, width and height
    cwid: float
    chgt: float
    n: int  # containers (reduced until the farm fits)
    gap: float  # between neighbouring containers of a block
    aisle_a: float  # between block rows (along a) and block columns (along b)
    aisle_b: float
    style: str  # "roof" fans or "hood" exhaust
    walls: bool  # evaporative walls at the intake ends
    wall_depth: float
    per_block: int  # containers side by side in one block (reduced with n)
    aspect: float  # wanted extent_a / extent_b
    mixed: bool = False  # rows of 20 ft and 40 ft boxes (then ``clen`` is 40 ft, the longest row)

    @property
    def hood(self) -> float:
        """Depth of the exhaust hood on a container's end (0 with roof fans)."""
        return HOOD_DEPTH_M if self.style == "hood" else 0.0

    @property
    def wall(self) -> float:
        """Depth of the evaporative wall on a container's intake end (0 without walls)."""
        return self.wall_depth if self.walls else 0.0

    @property
    def unit_a(self) -> float:
        """One block row along a: container, hood and wall."""
        return self.clen + (self.hood + self.wall)

    @property
    def block_w(self) -> float:
        return self.per_block * self.cwid + (self.per_block - 1) * self.gap


@dataclass
class _FarmHeat:
    """Excess temperatures of a farm's surfaces (0 when switched off), K."""

    roof_k: float
    exhaust_k: float
    fan_k: float
    evap_k: float


def _farm_design(rng: np.random.Generator, cf: ContainerFarmSpec) -> _FarmDesign:
    mixed = rng.random() < cf.mixed_length_probability
    clen, cwid = FORTY_FT if mixed or rng.random() < cf.forty_ft_probability else TWENTY_FT
    chgt = HEIGHT_HC if rng.random() < cf.high_cube_probability else HEIGHT_STD
    n = log_int(rng, cf.n_containers)
    gap, aisle_a, aisle_b = uni(rng, cf.side_gap_m), uni(rng, cf.aisle_m), uni(rng, cf.aisle_m)
    style = pick(rng, cf.fan_styles)
    walls = rng.random() < cf.cooling_wall_probability
    wall_depth = uni(rng, cf.cooling_wall_depth_m)
    per_block = rint(rng, cf.per_block)
    aspect = uni(rng, FARM_ASPECT)
    return _FarmDesign(clen, cwid, chgt, n, gap, aisle_a, aisle_b, style, walls, wall_depth, per_block, aspect,
                       mixed)


def _fit_farm(d: _FarmDesign, max_extent_m: float) -> tuple[int, int, float, float]:
    """Blocks along a and b closest to the wanted aspect; fewer containers until the farm (and room for
    a substation) fits ``max_extent_m``. Returns n_a, n_b, ext_a, ext_b; updates ``d.n`` and ``d.per_block``."""
    while True:
        d.per_block = max(1, min(d.per_block, d.n))
        n_blocks = math.ceil(d.n / d.per_block)
        best = None
        for n_a in range(1, n_blocks + 1):
            n_b = math.ceil(n_blocks / n_a)
            ext_a = n_a * d.unit_a + (n_a - 1) * d.aisle_a
            ext_b = n_b * d.block_w + (n_b - 1) * d.aisle_b
            score = abs(math.log(ext_a / ext_b / d.aspect))
            if best is None or score < best[0]:
                best = (score, n_a, n_b, ext_a, ext_b)
        _, n_a, n_b, ext_a, ext_b = best
        if max(ext_a, ext_b) + FARM_SURROUND_M <= max_extent_m:
            return n_a, n_b, ext_a, ext_b
        if d.n <= 2:
            raise TooSmall(f"{max_extent_m:.0f} m offered")
        d.n = max(1, int(d.n * FIT_SHRINK_CONTAINERS))
        d.per_block = max(1, int(d.per_block * FIT_SHRINK_BLOCK))


def _farm_heat(rng: np.random.Generator, heat: MiningHeat, running: bool, load: float, walls: bool) -> _FarmHeat:
    roof_k = uni(rng, heat.roof_k) * load if running else 0.0
    exhaust_k = uni(rng, heat.exhaust_k) * load if running else 0.0
    fan_k = uni(rng, heat.fan_k) * load if running else 0.0
    evap_k = uni(rng, heat.evaporative_k) if running and walls else 0.0
    return _FarmHeat(roof_k, exhaust_k, fan_k, evap_k)


@dataclass
class _Paint:
    """A farm's paint: one colour for most boxes, a spread between boxes, a few odd boxes."""

    name: str
    base: np.ndarray
    jitter: float
    odd: float  # chance a box has another paint
    roof_units: float  # share of boxes with an AC box on the roof


def _container(rng: np.random.Generator, cf: ContainerFarmSpec, pal: Palette, d: _FarmDesign, paint: _Paint,
               look: SiteLook, clen: float, ca: float, cb: float, sign: float, fan_d: float, n_fans: int,
               hk: _FarmHeat, running: bool) -> list[Part]:
    """One mining container of length ``clen`` at (ca, cb): body, fans (on the roof or in the hood at the
    exhaust end ``sign``), maybe a roof AC box, and the warm ground in front of its exhaust (thermal only)."""
    cwid, chgt = d.cwid, d.chgt
    odd = rng.random() < paint.odd
    refl = pal.refl(rng, pick(rng, cf.colours)) if odd else np.clip(
        paint.base * (1 + paint.jitter * rng.standard_normal()), 0.01, 0.98).astype(np.float32)
    body = rect(ca, cb, clen, cwid)
    parts = [pal.part(rng, paint.name, body, refl=refl, height_m=chgt, texture=Tex.RIBS,
                      period_m=CORRUGATION_M, angle=0.0, heat_k=hk.roof_k, snow_free=running, **look.steel(rng))]
    end = ca + sign * clen / 2
    if d.style == "roof":
        fa = end - sign * (fan_d / 2 + FAN_INSET_M)
        fan_geoms = [circle(fa, cb - cwid / 2 + (f + 0.5) * cwid / n_fans, fan_d / 2, 14)
                     for f in range(n_fans)]
        fan_h = chgt + FAN_RAISE_M
    else:
        hood = rect(end + sign * d.hood / 2, cb, d.hood, cwid * HOOD_WIDTH_SHARE)
        parts.append(pal.part(rng, look.housing, hood, height_m=chgt - HOOD_DROP_M, layer=Layer.STRUCTURE,
                              heat_k=hk.exhaust_k, snow_free=running))
        dd = min(fan_d, cwid / n_fans * 0.9) * 0.8  # hood fans are smaller than roof fans
        fan_geoms = [circle(end + sign * d.hood / 2, cb - cwid / 2 + (f + 0.5) * cwid / n_fans, dd / 2, 12)
                     for f in range(n_fans)]
        fan_h = chgt - HOOD_FAN_DROP_M
    for g in fan_geoms:
        parts.append(pal.part(rng, look.fan, g, height_m=fan_h, layer=Layer.ROOF, texture=Tex.FAN,
                              heat_k=hk.fan_k, snow_free=True, **look.fan_kw()))
    if rng.random() < paint.roof_units:
        # an AC box on the roof, away from the fan end
        ua = ca - sign * uni(rng, (0.1, 0.35)) * clen
        parts.append(pal.part(rng, "hvac", rect(ua, cb, ROOF_UNIT_M[0], ROOF_UNIT_M[1], math.pi / 2),
                              height_m=chgt + ROOF_UNIT_M[2], layer=Layer.ROOF, texture=Tex.FINS, period_m=0.25,
                              angle=math.pi / 2, heat_k=hk.fan_k * 0.3, snow_free=running))
    # hot aisle: warm ground in front of the exhaust end (thermal only)
    warm = rect(end + sign * (WARM_GROUND_M / 2 + d.hood), cb, WARM_GROUND_M, cwid + d.gap)
    parts.append(pal.part(rng, "gravel", warm, layer=Layer.GROUND, heat_k=hk.exhaust_k * WARM_GROUND_SHARE,
                          optical=False))
    return parts


def _block_truth(d: _FarmDesign, clen: float, ca: float, sign: float, b_start: float, b_end: float, fan_d: float,
                 k: int, running: bool) -> list[Truth]:
    """A block's containers, and the fans (on the roof or hoods) along its exhaust end as one cooling array."""
    block = box(ca - clen / 2, b_start, ca + clen / 2, b_end)
    end = ca + sign * clen / 2
    if d.style == "roof":
        fan_strip = _abox(end, end - sign * (fan_d + 2 * FAN_INSET_M), b_start, b_end)
    else:
        fan_strip = _abox(end, end + sign * d.hood, b_start, b_end)
    return [Truth(block, "container_farm", "container_farm", n_containers=k, running=running),
            Truth(fan_strip, "cooling_array", "container_farm", n_containers=k, running=running)]


def container_farm(rng: np.random.Generator, spec: MiningSpec, pal: Palette, *, running: bool, load: float,
                   max_extent_m: float, look: SiteLook) -> SynthSite:
    """Containers side by side in blocks, blocks in a grid with aisles; hot aisles face each other."""
    cf, heat = spec.container_farm, spec.heat
    d = _farm_design(rng, cf)
    n_a, n_b, _, ext_b = _fit_farm(d, max_extent_m)
    name = pick(rng, cf.colours)
    paint = _Paint(name, pal.refl(rng, name), uni(rng, cf.colour_jitter), uni(rng, cf.odd_colour_probability),
                   uni(rng, cf.roof_unit_share) if rng.random() < cf.roof_unit_probability else 0.0)
    fan_d = uni(rng, cf.fan_diameter_m)
    n_fans = rint(rng, cf.fans_per_container)
    hk = _farm_heat(rng, heat, running, load, d.walls)
    # rows of blocks along a: one container length per row (mixed farms draw each row's)
    lengths = [(FORTY_FT[0] if rng.random() < cf.forty_ft_probability else TWENTY_FT[0]) if d.mixed else d.clen
               for _ in range(n_a)]
    units = [clen + (d.hood + d.wall) for clen in lengths]
    ext_a = sum(units) + (n_a - 1) * d.aisle_a
    site = SynthSite(kind="container_farm", mining=True, running=running)
    parts: list[Part] = []
    sources: list[tuple[float, float]] = []
    placed = 0
    for ia, clen in enumerate(lengths):
        a_c = -ext_a / 2 + sum(units[:ia]) + ia * d.aisle_a + units[ia] / 2
        # exhaust end: rows 0|1 face each other across a hot aisle, 1|2 share a cold aisle
        sign = 1.0 if ia % 2 == 0 else -1.0
        if n_a == 1:
            sign = 1.0 if rng.random() < 0.5 else -1.0
        # container centre along a, leaving room for the hood on the exhaust end and wall on the intake
        ca = a_c + (d.hood * -sign + d.wall * sign) / 2
        for ib in range(n_b):
            if placed >= d.n:
                break
            k = min(d.per_block, d.n - placed)
            b_start = -ext_b / 2 + ib * (d.block_w + d.aisle_b)
            for j in range(k):
                cb = b_start + j * (d.cwid + d.gap) + d.cwid / 2
                parts += _container(rng, cf, pal, d, paint, look, clen, ca, cb, sign, fan_d, n_fans, hk, running)
                sources.append((ca + sign * clen / 2 + sign * PLUME_SOURCE_M, cb))
            placed += k
            b_end = b_start + k * d.cwid + (k - 1) * d.gap
            site.truth += _block_truth(d, clen, ca, sign, b_start, b_end, fan_d, k, running)
            if d.walls:
                intake = ca - sign * clen / 2
                wall = _abox(intake, intake - sign * d.wall_depth, b_start, b_end)
                parts.append(pal.part(rng, look.pad, wall, refl=look.pad_refl(rng, pal, running),
                                      height_m=d.chgt - PAD_DROP_M, texture=Tex.PAD, angle=math.pi / 2,
                                      heat_k=hk.evap_k, **look.pad_kw()))
                site.truth.append(Truth(wall, "cooling_array", "container_farm", n_containers=k,
                                        running=running))
    bounds = _bounds(parts)
    if rng.random() < cf.substation_probability:
        tk = uni(rng, heat.transformer_k) * load if running else 0.0
        parts.extend(substation(rng, pal, cf.transformers, tk, bounds))
    parts.insert(0, _site_pad(rng, pal, parts, uni(rng, cf.pad_margin_m)))
    site.parts = parts
    if running:
        site.plumes.append(Plume(np.array(sources), uni(rng, heat.plume_k) * load, uni(rng, heat.plume_length_m),
                                 uni(rng, heat.plume_width_m)))
    site.params = {
        "n_containers": placed, "container_length_m": sorted(set(lengths)) if d.mixed else d.clen,
        "container_height_m": d.chgt, "blocks": n_a * n_b, "per_block": d.per_block, "gap_m": round(d.gap, 2),
        "aisle_m": [round(d.aisle_a, 2), round(d.aisle_b, 2)], "fan_style": d.style, "fans_per_container": n_fans,
        "cooling_walls": d.walls, "colour": paint.name, "roof_k": round(hk.roof_k, 2),
        "exhaust_k": round(hk.exhaust_k, 2), "fan_k": round(hk.fan_k, 2),
        "look": {"rib": round(look.rib, 2), "rust": round(look.rust, 2), "dirt": round(look.dirt, 2),
                 "fan": look.fan, "housing": look.housing, "pad": look.pad, "roof_units": round(paint.roof_units, 2)},
    }
    return site


def warehouse_farm(rng: np.random.Generator, spec: MiningSpec, pal: Palette, *, running: bool, load: float,
                   max_extent_m: float, look: SiteLook) -> SynthSite:
    """A hall with rows of roof fans, an evaporative wall along one long side and a substation."""
    wf, heat = spec.warehouse_farm, spec.heat
    if max_extent_m < 40:
        raise TooSmall(f"{max_extent_m:.0f} m offered")
    length = min(uni(rng, wf.length_m), max_extent_m - 25)
    width = min(uni(rng, wf.width_m), max(8.0, length * 0.8))
    height = uni(rng, wf.height_m)
    roof = pick(rng, wf.roofs)
    roof_k = uni(rng, heat.roof_k) * load if running else 0.0
    fan_k = uni(rng, heat.fan_k) * load if running else 0.0
    site = SynthSite(kind="warehouse_farm", mining=True, running=running)
    hall = rect(0, 0, length, width)
    gable = rng.random() < 0.4
    parts = [pal.part(rng, roof, hall, height_m=height, texture=Tex.GABLE if gable else Tex.RIBS,
                      period_m=uni(rng, (0.8, 1.2)), angle=0.0 if gable else math.pi / 2, heat_k=roof_k,
                      snow_free=running)]
    rows = rint(rng, wf.fan_rows)
    pitch, fan_d = uni(rng, wf.fan_spacing_m), uni(rng, wf.fan_diameter_m)
    pitch = max(pitch, fan_d + 0.3)
    n_along = max(2, int((length - 4) / pitch))
    sources = []
    for r in range(rows):
        fb = -width / 2 + width * (r + 1) / (rows + 1)
        a_start = -(n_along - 1) * pitch / 2
        fans = []
        for i in range(n_along):
            fa = a_start + i * pitch
            g = circle(fa, fb, fan_d / 2, 14)
            fans.append(g)
            parts.append(pal.part(rng, look.fan, g, height_m=height + 0.4, layer=Layer.ROOF, texture=Tex.FAN,
                                  heat_k=fan_k, snow_free=True, **look.fan_kw()))
            if i % 3 == 0:
                sources.append((fa, fb))
        # housing frame under the fans (a raised curb), drawn as a hood strip
        strip = box(a_start - fan_d / 2 - 0.3, fb - fan_d / 2 - 0.3, -a_start + fan_d / 2 + 0.3,
                    fb + fan_d / 2 + 0.3)
        parts.insert(1, pal.part(rng, look.housing, strip, height_m=height + 0.2, layer=Layer.ROOF,
                                 heat_k=fan_k * 0.6, snow_free=running))
        site.truth.append(Truth(strip, "cooling_array", "warehouse_farm", running=running))
    walls = rng.random() < wf.cooling_wall_probability
    if walls:
        side = 1.0 if rng.random() < 0.5 else -1.0
        wall = box(-length / 2 + 1, min(side * width / 2, side * (width / 2 + 1.2)), length / 2 - 1,
                   max(side * width / 2, side * (width / 2 + 1.2)))
        evap_k = uni(rng, heat.evaporative_k) if running else 0.0
        parts.append(pal.part(rng, look.pad, wall, refl=look.pad_refl(rng, pal, running), height_m=height * 0.6,
                              texture=Tex.PAD, angle=0.0, heat_k=evap_k, **look.pad_kw()))
        site.truth.append(Truth(wall, "cooling_array", "warehouse_farm", running=running))
        # the exhaust side opposite the wall is warm
        warm = box(-length / 2, min(-side * width / 2, -side * (width / 2 + 3)), length / 2,
                   max(-side * width / 2, -side * (width / 2 + 3)))
        parts.append(pal.part(rng, "gravel", warm, layer=Layer.GROUND, heat_k=uni(rng, heat.exhaust_k) * load * 0.6
                              if running else 0.0, optical=False))
    bounds = _bounds(parts)
    if rng.random() < wf.substation_probability:
        tk = uni(rng, heat.transformer_k) * load if running else 0.0
        parts.extend(substation(rng, pal, (1, 3), tk, bounds))
    parts.insert(0, _site_pad(rng, pal, parts, uni(rng, (3.0, 10.0))))
    site.parts = parts
    if running:
        site.plumes.append(Plume(np.array(sources), uni(rng, heat.plume_k) * load, uni(rng, heat.plume_length_m),
                                 uni(rng, heat.plume_width_m)))
    site.params = {"hall_m": [round(length, 1), round(width, 1)], "height_m": round(height, 1), "roof": roof,
                   "fan_rows": rows, "fans": rows * n_along, "cooling_wall": walls,
                   "roof_k": round(roof_k, 2), "fan_k": round(fan_k, 2)}
    return site


def hidden_farm(rng: np.random.Generator, spec: MiningSpec, pal: Palette, *, running: bool, load: float,
                max_extent_m: float, look: SiteLook) -> SynthSite:
    """An ordinary shed or house that is warm: the roof and a vent or two are the only clues."""
    hf, heat = spec.hidden_farm, spec.heat
    length, width = uni(rng, hf.length_m), uni(rng, hf.width_m)
    height = uni(rng, hf.height_m)
    roof = pick(rng, hf.roofs)
    roof_k = uni(rng, hf.roof_k) * load if running else 0.0
    site = SynthSite(kind="hidden_farm", mining=True, running=running)
    house = rect(0, 0, length, width)
    gable = roof.startswith("roof_tile") or roof == "roof_slate" or rng.random() < 0.5
    parts = [pal.part(rng, "garden" if rng.random() < 0.5 else "gravel",
                      rect(0, 0, length + uni(rng, (6, 16)), width + uni(rng, (6, 14))), layer=Layer.GROUND),
             pal.part(rng, roof, house, height_m=height, texture=Tex.GABLE if gable else Tex.RIBS,
                      period_m=0.9, angle=0.0 if gable else math.pi / 2, heat_k=roof_k, snow_free=running)]
    vents = rint(rng, hf.vents)
    fan_k = uni(rng, heat.fan_k) * load if running else 0.0
    sources = []
    for _ in range(vents):
        va, vb = uni(rng, (-length / 2 + 1, length / 2 - 1)), uni(rng, (-width / 2 + 1, width / 2 - 1))
        parts.append(pal.part(rng, look.fan, circle(va, vb, uni(rng, (0.25, 0.45)), 10), height_m=height + 0.3,
                              layer=Layer.ROOF, texture=Tex.FAN, heat_k=fan_k, snow_free=True, **look.fan_kw()))
        sources.append((va, vb))
    # a wall exhaust warms the ground on one side
    side = 1.0 if rng.random() < 0.5 else -1.0
    warm = box(-length / 2, min(side * width / 2, side * (width / 2 + 2.5)), length / 2,
               max(side * width / 2, side * (width / 2 + 2.5)))
    parts.append(pal.part(rng, "gravel", warm, layer=Layer.GROUND, heat_k=roof_k * 0.7, optical=False))
    sources.append((0.0, side * (width / 2 + 1)))
    site.parts = parts
    if running:
        site.plumes.append(Plume(np.array(sources), uni(rng, heat.plume_k) * load * 0.6,
                                 uni(rng, heat.plume_length_m) * 0.5, uni(rng, heat.plume_width_m) * 0.7))
    site.params = {"building_m": [round(length, 1), round(width, 1)], "roof": roof, "vents": vents,
                   "roof_k": round(roof_k, 2)}
    return site


BUILDERS = {"container_farm": container_farm, "warehouse_farm": warehouse_farm, "hidden_farm": hidden_farm}


def build_mining_site(rng: np.random.Generator, kind: str, spec: MiningSpec, pal: Palette,
                      max_extent_m: float, appearance: Appearance) -> SynthSite:
    """A mining site of ``kind`` with its running state, load and look drawn from the recipe."""
    running = kind == "hidden_farm" or rng.random() < spec.running_probability
    load = uni(rng, spec.heat.load) if running else 0.0
    look = draw_look(rng, appearance)
    site = BUILDERS[kind](rng, spec, pal, running=running, load=load, max_extent_m=max_extent_m, look=look)
    site.params["load"] = round(load, 3)
    return site


def heat_footprint(site: SynthSite, wind: tuple[float, float]) -> Polygon | None:
    """The warm area of a running site: hull of its heated parts and the core of its plumes."""
    geoms = [p.geom for p in site.heated_parts(1.0)]
    geoms += [plume_core(pl, wind) for pl in site.plumes if len(pl.sources)]
    if not geoms:
        return None
    return shapely.convex_hull(shapely.union_all(geoms)).buffer(1.0, quad_segs=4)

