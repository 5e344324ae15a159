"""Look-alikes an analyst must not be sent to, each with the cue that tells it from a mining site.

container_yard (stacked, multi-coloured, cold), truck_depot (trailers with tractors on asphalt),
hvac_warehouse (a few small boxes on a big roof), greenhouse (warm but uniform), solar_farm (dark
regular arrays), car_park (small multi-coloured cars), hot_industry (small and very hot stacks),
dark_roof (only sun-warmed). Built in a site frame like :mod:`minewatch.datasets.synth.mining`.
More in :mod:`~minewatch.datasets.synth.urban` (semi-trailer rows, bus depots, flat roofs with HVAC plant,
rooftop solar) and :mod:`~minewatch.datasets.synth.marina` (boats at a shoreline).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import box

from minewatch.datasets.synth.appearance import SiteLook, draw_look
from minewatch.datasets.synth.marina import marina
from minewatch.datasets.synth.mining import FORTY_FT, HEIGHT_STD, TWENTY_FT
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
    lookalike_site,
    pick,
    rect,
    rint,
    uni,
)
from minewatch.datasets.synth.recipe import Appearance, LookalikeSpec
from minewatch.datasets.synth.urban import bus_depot, flat_roof_hvac, rooftop_solar, semi_trailer_rows


def _fit(rng: np.random.Generator, length_r: tuple[float, float], width_r: tuple[float, float],
         max_extent: float, min_m: float = 10.0) -> tuple[float, float]:
    """Length and width from the recipe, shrunk to the space offered; refuse below ``min_m``."""
    length = min(uni(rng, length_r), max_extent - 8)
    width = min(uni(rng, width_r), max_extent - 8, length)
    if width < min_m:
        raise TooSmall(f"{max_extent:.0f} m offered")
    return length, width


def container_yard(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                   look: SiteLook) -> SynthSite:
    """Stacks packed in blocks (bays end to end, rows side by side), lanes between blocks."""
    s = spec.container_yard
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 18.0)
    parts = [pal.part(rng, "asphalt" if rng.random() < 0.5 else "concrete", rect(0, 0, length, width),
                      layer=Layer.GROUND)]
    max_tiers = rint(rng, s.max_tiers)
    fill = uni(rng, s.fill)
    lane_a, lane_b = uni(rng, (6.0, 12.0)), uni(rng, (6.0, 12.0))
    bays, rows = rint(rng, (2, 6)), rint(rng, (4, 10))
    slot_a, slot_b = FORTY_FT[0] + 0.3, FORTY_FT[1] + 0.12
    n = 0
    a = -length / 2 + 2
    while a + slot_a <= length / 2 - 2:
        nb = min(bays, int((length / 2 - 2 - a) // slot_a))
        b = -width / 2 + 2
        while b + slot_b <= width / 2 - 2:
            nr = min(rows, int((width / 2 - 2 - b) // slot_b))
            for i in range(nb):
                for j in range(nr):
                    ca, cb = a + (i + 0.5) * slot_a, b + (j + 0.5) * slot_b
                    halves = [(ca, FORTY_FT[0])] if rng.random() > 0.3 else [
                        (ca - 3.08, TWENTY_FT[0]), (ca + 3.08, TWENTY_FT[0])]
                    for ha, hl in halves:
                        if rng.random() > fill:
                            continue
                        tiers = int(rng.integers(1, max_tiers + 1))
                        geom = rect(ha + rng.normal(0, 0.05), cb, hl, FORTY_FT[1], rng.normal(0, 0.004))
                        parts.append(pal.part(rng, pick(rng, s.colours), geom, height_m=tiers * HEIGHT_STD,
                                              texture=Tex.RIBS, period_m=0.65, angle=0.0, **look.steel(rng)))
                        n += tiers
            b += nr * slot_b + lane_b
        a += nb * slot_a + lane_a
    if n < 4:
        raise TooSmall("no room for stacks")
    return lookalike_site("container_yard", parts, length, width, "yard_m",
                          {"max_tiers": max_tiers, "n_containers": n}, n_containers=n)


def truck_depot(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                look: SiteLook) -> SynthSite:
    """Trailers parked nose to tail in bays across an asphalt lot, a tractor with some."""
    s = spec.truck_depot
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 20.0)
    parts: list[Part] = [pal.part(rng, "asphalt", rect(0, 0, length, width), layer=Layer.GROUND)]
    fill = uni(rng, s.fill)
    slant = math.radians(uni(rng, (60, 90)))
    bay_w, trailer_l = 3.6, 13.6
    n = 0
    rows_b = [-width / 2 + trailer_l / 2 + 2]
    if width > 2 * trailer_l + 12:
        rows_b.append(width / 2 - trailer_l / 2 - 2)
    for rb in rows_b:
        a = -length / 2 + 4
        while a < length / 2 - 4:
            # painted bay line
            parts.append(pal.part(rng, "road_marking", rect(a - bay_w / 2, rb, trailer_l + 3, 0.15, slant),
                                  layer=Layer.MARK))
            if rng.random() < fill:
                ang = slant + rng.normal(0, 0.02)
                parts.append(pal.part(rng, pick(rng, s.colours), rect(a, rb, trailer_l, 2.55, ang),
                                      height_m=4.0, texture=Tex.RIBS, period_m=1.2, angle=ang, **look.steel(rng)))
                n += 1
                if rng.random() < 0.4:  # tractor unit in front of the trailer
                    d = trailer_l / 2 + 3.2
                    sgn = 1.0 if rb < 0 else -1.0
                    ca, cb = a + sgn * d * math.cos(ang), rb + sgn * d * math.sin(ang)
                    parts.append(pal.part(rng, "tractor", rect(ca, cb, 6.0, 2.5, ang), height_m=3.6,
                                          texture=Tex.CAR, angle=ang))
            a += bay_w
    return lookalike_site("truck_depot", parts, length, width, "lot_m", {"trailers": n})


def hvac_warehouse(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                   look: SiteLook) -> SynthSite:
    """A logistics hall: ribbed roof, skylights, a few small HVAC boxes with one warm fan each, trailers at the
    docks."""
    s = spec.hvac_warehouse
    length, width = _fit(rng, s.length_m, s.width_m, max_extent)
    height = uni(rng, s.height_m)
    roof = pick(rng, s.roofs)
    parts = [pal.part(rng, "asphalt", rect(0, width / 2 + 9, length, 18), layer=Layer.GROUND),
             pal.part(rng, roof, rect(0, 0, length, width), height_m=height, texture=Tex.RIBS, period_m=1.0,
                      angle=math.pi / 2)]
    # skylights, flush with the roof
    for i in range(int(length // 12)):
        parts.append(pal.part(rng, "glass", rect(-length / 2 + 6 + 12 * i, 0, 1.6, width * 0.7),
                              height_m=height, layer=Layer.ROOF))
    hk = uni(rng, s.hvac_k)
    n_units = rint(rng, s.hvac_units)
    for _ in range(n_units):
        ua, ub = uni(rng, (-length / 2 + 3, length / 2 - 3)), uni(rng, (-width / 2 + 3, width / 2 - 3))
        parts.append(pal.part(rng, "hvac", rect(ua, ub, 2.2, 1.4), height_m=height + 1.2, layer=Layer.ROOF,
                              texture=Tex.FINS, period_m=0.3))
        parts.append(pal.part(rng, look.fan, circle(ua + 0.5, ub, 0.4, 10), height_m=height + 1.3,
                              layer=Layer.ROOF, texture=Tex.FAN, heat_k=hk, snow_free=True, **look.fan_kw()))
    # loading docks with a few trailers
    for i in range(rint(rng, (0, 5))):
        parts.append(pal.part(rng, "trailer_white", rect(-length / 2 + 6 + 4 * i, width / 2 + 7, 2.55, 13.6),
                              height_m=4.0, texture=Tex.RIBS, period_m=1.2, angle=math.pi / 2))
    return lookalike_site("hvac_warehouse", parts, length, width, "hall_m",
                          {"hvac_units": n_units, "hvac_k": round(hk, 2)})


def greenhouse(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
               look: SiteLook) -> SynthSite:
    """A heated glasshouse: warm over its whole glass roof, with no hot spot."""
    s = spec.greenhouse
    length, width = _fit(rng, s.length_m, s.width_m, max_extent)
    heat = uni(rng, s.heat_k)
    ridge = uni(rng, s.ridge_m)
    parts = [pal.part(rng, "gravel", rect(0, 0, length + 6, width + 6), layer=Layer.GROUND),
             pal.part(rng, "glass", rect(0, 0, length, width), height_m=uni(rng, (4.0, 6.5)), texture=Tex.GLASS,
                      period_m=ridge, angle=math.pi / 2, heat_k=heat, snow_free=True)]
    return lookalike_site("greenhouse", parts, length, width, "size_m", {"heat_k": round(heat, 2)}, running=True)


def solar_farm(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
               look: SiteLook) -> SynthSite:
    """Rows of dark panel tables on grass, the rows a pitch apart."""
    s = spec.solar_farm
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 14.0)
    depth, pitch, tlen = uni(rng, s.table_depth_m), uni(rng, s.pitch_m), uni(rng, s.table_length_m)
    pitch = max(pitch, depth + 1.5)
    parts: list[Part] = [pal.part(rng, "grass_dry" if rng.random() < 0.4 else "grass_green",
                                  rect(0, 0, length + 4, width + 4), layer=Layer.GROUND)]
    panel = pal.refl(rng, "solar_panel")
    tables = 0
    b = -width / 2 + depth / 2
    while b <= width / 2 - depth / 2:
        a = -length / 2
        while a + 4 <= length / 2:
            tl = min(tlen, length / 2 - a)
            parts.append(pal.part(rng, "solar_panel", rect(a + tl / 2, b, tl, depth), refl=panel * (
                1 + 0.03 * rng.standard_normal()), height_m=uni(rng, (1.6, 2.6)), texture=Tex.SOLAR,
                period_m=1.0, angle=0.0))
            tables += 1
            a += tl + uni(rng, (0.5, 1.5))
        b += pitch
    return lookalike_site("solar_farm", parts, length, width, "size_m", {"tables": tables, "pitch_m": round(pitch, 2)})


def car_park(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
             look: SiteLook) -> SynthSite:
    """Asphalt with painted bays in rows, cars of many colours in some."""
    s = spec.car_park
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 14.0)
    occ = uni(rng, s.occupancy)
    parts: list[Part] = [pal.part(rng, "asphalt", rect(0, 0, length, width), layer=Layer.GROUND)]
    bay_w, bay_l, drive = 2.5, 5.0, 6.5
    cars = 0
    b = -width / 2 + bay_l / 2 + 0.5
    row = 0
    while b + bay_l / 2 <= width / 2 - 0.5:
        a = -length / 2 + bay_w / 2 + 1
        while a + bay_w / 2 <= length / 2 - 1:
            parts.append(pal.part(rng, "road_marking", rect(a - bay_w / 2, b, 0.12, bay_l), layer=Layer.MARK))
            if rng.random() < occ:
                ang = math.pi / 2 + rng.normal(0, 0.04)
                parts.append(pal.part(rng, pick(rng, s.colours), rect(a + rng.normal(0, 0.15), b, 4.5, 1.8, ang),
                                      height_m=1.5, texture=Tex.CAR, angle=ang + (math.pi if rng.random() < 0.5
                                                                                 else 0.0)))
                cars += 1
            a += bay_w
        row += 1
        b += bay_l + (drive if row % 2 == 1 else 0.3)
    return lookalike_site("car_park", parts, length, width, "lot_m", {"cars": cars})


def hot_industry(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                 look: SiteLook) -> SynthSite:
    """Plant buildings with stacks and furnace vents: small, very hot, a plume downwind."""
    s = spec.hot_industry
    if max_extent < 30:
        raise TooSmall(f"{max_extent:.0f} m offered")
    parts: list[Part] = []
    n_b = rint(rng, s.buildings)
    a = 0.0
    for _ in range(n_b):
        bl = min(uni(rng, s.building_m), max_extent / 2)
        bw = min(uni(rng, s.building_m), bl)
        parts.append(pal.part(rng, pick(rng, s.roofs), rect(a + bl / 2, uni(rng, (-4, 4)), bl, bw),
                              height_m=uni(rng, (6, 15)), texture=Tex.RIBS, period_m=1.0, angle=math.pi / 2))
        a += bl + uni(rng, (4, 10))
    a0, b0, a1, b1 = shapely.total_bounds([p.geom for p in parts])
    stack_k = uni(rng, s.stack_k)
    n_s = rint(rng, s.stacks)
    sources = []
    for i in range(n_s):
        d = uni(rng, s.stack_diameter_m)
        sa, sb = a0 + (i + 0.5) * (a1 - a0) / n_s, b1 + d / 2 + uni(rng, (2, 6))
        sh = uni(rng, s.stack_height_m)
        parts.append(pal.part(rng, "stack", circle(sa, sb, d / 2, 16), height_m=sh,
                              heat_k=stack_k * uni(rng, (0.3, 0.6)), snow_free=True))
        # the hot mouth of the stack
        parts.append(pal.part(rng, "fan", circle(sa, sb, d * 0.32, 12), height_m=sh, layer=Layer.ROOF,
                              heat_k=stack_k, snow_free=True))
        sources.append((sa, sb))
    fk = uni(rng, s.furnace_k)
    fa, fb = uni(rng, (a0 + 3, a1 - 3)), uni(rng, (b0 + 2, b1 - 2))
    parts.append(pal.part(rng, "hood", rect(fa, fb, 3.0, 2.0), height_m=12.0, layer=Layer.ROOF, heat_k=fk,
                          snow_free=True))
    hull = shapely.convex_hull(shapely.union_all([p.geom for p in parts]))
    a0, b0, a1, b1 = hull.bounds
    parts.insert(0, pal.part(rng, "concrete", box(a0 - 5, b0 - 5, a1 + 5, b1 + 5), layer=Layer.GROUND))
    # recentre on 0, 0
    ca, cb = (a0 + a1) / 2, (b0 + b1) / 2
    for p in parts:
        p.geom = shapely.transform(p.geom, lambda c, ca=ca, cb=cb: c - np.array([ca, cb]))
    sources_arr = np.array(sources) - np.array([ca, cb])
    site = SynthSite(kind="hot_industry", mining=False, running=True, parts=parts)
    site.plumes.append(Plume(sources_arr, uni(rng, (3.0, 8.0)), uni(rng, (15, 40)), 2.0))
    site.truth.append(Truth(shapely.transform(hull, lambda c: c - np.array([ca, cb])).buffer(2.0),
                            "lookalike", "hot_industry", running=True))
    site.params = {"buildings": n_b, "stacks": n_s, "stack_k": round(stack_k, 1), "furnace_k": round(fk, 1)}
    return site


def dark_roof(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
              look: SiteLook) -> SynthSite:
    """A black flat roof the sun warms: heat without any equipment."""
    s = spec.dark_roof
    length, width = _fit(rng, s.length_m, s.width_m, max_extent)
    height = uni(rng, s.height_m)
    parts = [pal.part(rng, "concrete" if rng.random() < 0.5 else "asphalt", rect(0, 0, length + 8, width + 8),
                      layer=Layer.GROUND),
             pal.part(rng, "tar_roof", rect(0, 0, length, width), height_m=height, texture=Tex.GRAVEL)]
    for _ in range(rint(rng, (0, 4))):
        va, vb = uni(rng, (-length / 2 + 1, length / 2 - 1)), uni(rng, (-width / 2 + 1, width / 2 - 1))
        parts.append(pal.part(rng, "hvac", rect(va, vb, 1.0, 1.0), height_m=height + 0.8, layer=Layer.ROOF))
    return lookalike_site("dark_roof", parts, length, width, "roof_m", {"height_m": round(height, 1)})


BUILDERS = {
    "container_yard": container_yard, "truck_depot": truck_depot, "hvac_warehouse": hvac_warehouse,
    "greenhouse": greenhouse, "solar_farm": solar_farm, "car_park": car_park, "hot_industry": hot_industry,
    "dark_roof": dark_roof, "semi_trailer_rows": semi_trailer_rows, "bus_depot": bus_depot,
    "flat_roof_hvac": flat_roof_hvac, "rooftop_solar": rooftop_solar, "marina": marina,
}


def build_lookalike(rng: np.random.Generator, kind: str, spec: LookalikeSpec, pal: Palette,
                    max_extent_m: float, appearance: Appearance) -> SynthSite:
    """A look-alike of ``kind`` with its look drawn from the recipe (marinas: see :func:`marina`)."""
    look = draw_look(rng, appearance)
    return BUILDERS[kind](rng, spec, pal, max_extent_m, look)
