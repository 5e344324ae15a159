"""Look-alikes of towns and logistics: semi-trailer rows, bus depots, flat roofs with HVAC plant, rooftop solar.

Each is what a model trained on container farms is tempted by: rows of 13.6 m boxes (trailers), long
white roofs with AC units (buses), fans on a roof (chillers and condensers), regular dark rows on a
roof (solar). Built in a site frame like :mod:`minewatch.datasets.synth.lookalikes`; true sizes.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import Polygon

from minewatch.datasets.synth.appearance import SiteLook
from minewatch.datasets.synth.mining import FORTY_FT, HEIGHT_STD, TWENTY_FT
from minewatch.datasets.synth.objects import (
    Layer,
    Palette,
    Part,
    SynthSite,
    Tex,
    TooSmall,
    circle,
    lookalike_site,
    pick,
    rect,
    ring,
    rint,
    uni,
)
from minewatch.datasets.synth.recipe import LookalikeSpec

TRAILER_M = (13.6, 2.55, 4.0)  # semi-trailer length, width, height
TRACTOR_M = (6.0, 2.5, 3.6)  # tractor unit
CHASSIS_M = (12.5, 2.5, 1.4)  # container chassis (a 40 ft box sits on it)
BUS_M = (12.0, 18.0, 2.55, 3.2)  # rigid and articulated length, width, height
BUS_JOINT_M = 7.0  # articulation band of an 18 m bus, from its rear
BUS_AC_M = (2.6, 1.8, 0.35)  # roof AC unit of a bus: length, width, height above the roof
BUS_PITCH_M = (3.6, 4.4)  # bus bays side by side
DRIVE_LANE_M = (14.0, 20.0)  # lane between rows of trailers or buses (turning room)
PARAPET_M = 0.35  # flat-roof parapet width
CHILLER_FAN_M = (0.8, 1.1)  # chiller fan diameter
CHILLER_WIDTH_M = (2.2, 2.5)
CONDENSER_M = ((1.0, 1.8), (0.8, 1.2))  # condensing unit length, width ranges
DUCT_M = ((5.0, 25.0), (0.5, 1.2))  # duct length, width ranges
PANEL_GAP_M = (0.2, 0.6)  # gaps between panel tables along a row


def _fit(rng: np.random.Generator, length_r: tuple[float, float], width_r: tuple[float, float],
         max_extent: float, min_m: float) -> tuple[float, float]:
    length = min(uni(rng, length_r), max_extent - 8)
    width = min(uni(rng, width_r), max_extent - 8, length)
    if width < min_m:
        raise TooSmall(f"{max_extent:.0f} m offered")
    return length, width


def _free(geom: Polygon, taken: list[Polygon], inside: Polygon) -> bool:
    return inside.contains(geom) and not any(geom.intersects(t) for t in taken)


def semi_trailer_rows(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                      look: SiteLook) -> SynthSite:
    """Trailers side by side in rows across the yard (single or back to back), drive lanes between rows;
    some slots hold a container on a chassis, some trailers have their tractor."""
    s = spec.semi_trailer_rows
    tl, tw, th = TRAILER_M
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, tl + 6)
    surface = pick(rng, {"asphalt": 0.5, "concrete": 0.25, "gravel": 0.25})
    parts: list[Part] = [pal.part(rng, surface, rect(0, 0, length, width), layer=Layer.GROUND,
                                  texture=Tex.GRAVEL if surface == "gravel" else Tex.FLAT)]
    pitch, fill = uni(rng, s.pitch_m), uni(rng, s.fill)
    trailers = boxes = 0
    b = -width / 2 + 1.0
    while b + tl <= width / 2 - 1.0:
        double = b + 2 * tl + 0.6 <= width / 2 - 1.0 and rng.random() < 0.7
        centres = [(b + tl / 2, -1.0)] + ([(b + 1.5 * tl + 0.6, 1.0)] if double else [])
        for cb, nose in centres:  # nose: the side the tractor end faces (towards a lane)
            a = -length / 2 + 1.0 + pitch / 2
            while a + pitch / 2 <= length / 2 - 1.0:
                if rng.random() < fill:
                    ang = math.pi / 2 + rng.normal(0, 0.015)
                    ca = a + rng.normal(0, 0.08)
                    if rng.random() < s.chassis_container_probability:
                        cl, cw, ch = CHASSIS_M
                        parts.append(pal.part(rng, "chassis", rect(ca, cb, cl, cw, ang), height_m=ch, angle=ang))
                        halves = [(0.0, FORTY_FT[0])] if rng.random() < 0.7 else [(-3.08, TWENTY_FT[0]),
                                                                                   (3.08, TWENTY_FT[0])]
                        for off, blen in halves:
                            parts.append(pal.part(rng, pick(rng, s.container_colours),
                                                  rect(ca, cb + off, blen, FORTY_FT[1], ang),
                                                  height_m=ch + HEIGHT_STD, texture=Tex.RIBS, period_m=0.65,
                                                  angle=ang, **look.steel(rng)))
                            boxes += 1
                    else:
                        parts.append(pal.part(rng, pick(rng, s.colours), rect(ca, cb, tl, tw, ang), height_m=th,
                                              texture=Tex.RIBS, period_m=uni(rng, (0.6, 1.4)), angle=ang,
                                              **look.steel(rng)))
                        trailers += 1
                        if rng.random() < s.tractor_probability:
                            kl, kw, kh = TRACTOR_M
                            parts.append(pal.part(rng, "tractor", rect(ca, cb + nose * (tl / 2 + kl / 2 - 1.0), kl,
                                                                       kw, ang), height_m=kh, texture=Tex.CAR,
                                                  angle=ang if nose > 0 else ang + math.pi))
                a += pitch
        b += (2 * tl + 0.6 if double else tl) + uni(rng, DRIVE_LANE_M)
    if trailers + boxes < 4:
        raise TooSmall("no room for a row of trailers")
    return lookalike_site("semi_trailer_rows", parts, length, width, "yard_m",
                          {"trailers": trailers, "containers": boxes, "pitch_m": round(pitch, 2)}, n_containers=boxes)


def bus_depot(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
              look: SiteLook) -> SynthSite:
    """Buses side by side in bays (12 m and 18 m articulated), roof AC units, a depot hall beside the yard."""
    s = spec.bus_depot
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, BUS_M[1] + 6)
    parts: list[Part] = [pal.part(rng, "asphalt", rect(0, 0, length, width), layer=Layer.GROUND)]
    hall = rng.random() < s.hall_probability
    b0 = -width / 2
    if hall:  # a hall over one side of the yard: buses park in front of its doors
        hd = min(uni(rng, (14.0, 24.0)), width * 0.4)
        parts.append(pal.part(rng, pick(rng, {"roof_metal_grey": 1.0, "roof_metal_white": 1.0,
                                               "roof_membrane_grey": 0.5}),
                              rect(0, -width / 2 + hd / 2, length * uni(rng, (0.6, 1.0)), hd),
                              height_m=uni(rng, (6.0, 10.0)), texture=Tex.RIBS, period_m=1.0, angle=math.pi / 2))
        b0 += hd + 4.0
    fleet = pick(rng, s.colours)
    fleet_refl = pal.refl(rng, fleet)
    fill, pitch = uni(rng, s.fill), uni(rng, BUS_PITCH_M)
    buses = 0
    bl18, bw, bh = BUS_M[1], BUS_M[2], BUS_M[3]
    b = b0 + 1.0
    while b + bl18 <= width / 2 - 1.0:
        cb = b + bl18 / 2
        a = -length / 2 + 1.0 + pitch / 2
        while a + pitch / 2 <= length / 2 - 1.0:
            parts.append(pal.part(rng, "road_marking", rect(a - pitch / 2, cb, bl18 + 1.0, 0.12, math.pi / 2),
                                  layer=Layer.MARK))
            if rng.random() < fill:
                art = rng.random() < s.articulated_probability
                bl = bl18 if art else BUS_M[0]
                ang = math.pi / 2 + rng.normal(0, 0.01)
                bcb = cb + (bl18 - bl) / 2 * (1 if rng.random() < 0.5 else -1)
                refl = pal.refl(rng, pick(rng, s.colours)) if rng.random() < 0.1 else np.clip(
                    fleet_refl * (1 + 0.03 * rng.standard_normal()), 0.01, 0.98).astype(np.float32)
                parts.append(pal.part(rng, fleet, rect(a, bcb, bl, bw, ang), refl=refl, height_m=bh,
                                      texture=Tex.BUS, period_m=BUS_JOINT_M if art else 0.0, angle=ang))
                if rng.random() < s.roof_ac_probability:
                    al, aw, ah = BUS_AC_M
                    off = bl / 2 - uni(rng, (2.5, 4.5))  # towards the front
                    parts.append(pal.part(rng, "hvac", rect(a, bcb + off, al, aw, ang), height_m=bh + ah,
                                          layer=Layer.ROOF, texture=Tex.FINS, period_m=0.3, angle=ang))
                buses += 1
            a += pitch
        b += bl18 + uni(rng, DRIVE_LANE_M)
    if buses < 3:
        raise TooSmall("no room for a row of buses")
    return lookalike_site("bus_depot", parts, length, width, "yard_m", {"buses": buses, "hall": hall, "fleet": fleet})


def _building(rng: np.random.Generator, pal: Palette, roof: str, length: float, width: float, height: float,
              texture: Tex = Tex.FLAT) -> list[Part]:
    """Apron, roof and a parapet (flat roofs) in the site frame."""
    apron = rect(0, 0, length + uni(rng, (6.0, 16.0)), width + uni(rng, (6.0, 16.0)))
    parts = [pal.part(rng, "asphalt" if rng.random() < 0.6 else "concrete", apron, layer=Layer.GROUND),
             pal.part(rng, roof, rect(0, 0, length, width), height_m=height, texture=texture,
                      period_m=uni(rng, (0.8, 1.2)), angle=math.pi / 2 if texture == Tex.RIBS else 0.0)]
    if texture != Tex.GABLE:
        parts.append(pal.part(rng, "concrete", ring(rect(0, 0, length - PARAPET_M, width - PARAPET_M), PARAPET_M),
                              height_m=height + 0.4, layer=Layer.ROOF))
    return parts


def flat_roof_hvac(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                   look: SiteLook) -> SynthSite:
    """A flat roof with plant: packaged chillers (two rows of fans on a box), condensing units (one or two
    fans), ducts and small vents, scattered irregularly; fans mildly warm."""
    s = spec.flat_roof_hvac
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 12.0)
    height = uni(rng, s.height_m)
    roof = pick(rng, s.roofs)
    parts = _building(rng, pal, roof, length, width, height,
                      Tex.GRAVEL if roof in ("roof_gravel", "tar_roof") else Tex.FLAT)
    inside = rect(0, 0, length - 2.0, width - 2.0)
    hk = uni(rng, s.hvac_k)
    taken: list[Polygon] = []
    top = height + 0.4
    fans = 0
    box_mat = pick(rng, {"hvac": 2.0, "hood_galvanised": 1.0, "hood_white": 1.0})
    for _ in range(rint(rng, s.chillers)):
        nf, fd = rint(rng, s.chiller_fans), uni(rng, CHILLER_FAN_M)
        cl, cw = nf * (fd + 0.25) + 0.8, uni(rng, CHILLER_WIDTH_M)
        ang = 0.0 if rng.random() < 0.7 else math.pi / 2
        for _try in range(20):
            ca, cb = uni(rng, (-length / 2, length / 2)), uni(rng, (-width / 2, width / 2))
            geom = rect(ca, cb, cl, cw, ang)
            if _free(geom.buffer(1.0), taken, inside):
                break
        else:
            continue
        taken.append(geom)
        hh = top + uni(rng, (1.6, 2.4))
        parts.append(pal.part(rng, box_mat, geom, height_m=hh, layer=Layer.ROOF, texture=Tex.FINS, period_m=0.2,
                              angle=ang))
        c, sn = math.cos(ang), math.sin(ang)
        for i in range(nf):
            for side in (-1, 1):
                da, db = -cl / 2 + 0.4 + (i + 0.5) * (fd + 0.25), side * cw / 4
                parts.append(pal.part(rng, look.fan, circle(ca + da * c - db * sn, cb + da * sn + db * c, fd / 2, 12),
                                      height_m=hh + 0.1, layer=Layer.ROOF, texture=Tex.FAN, heat_k=hk,
                                      snow_free=True, **look.fan_kw()))
                fans += 1
    for _ in range(rint(rng, s.condensers)):
        ul, uw = uni(rng, CONDENSER_M[0]), uni(rng, CONDENSER_M[1])
        ang = uni(rng, (0, math.pi)) if rng.random() < 0.15 else (0.0 if rng.random() < 0.5 else math.pi / 2)
        ca, cb = uni(rng, (-length / 2, length / 2)), uni(rng, (-width / 2, width / 2))
        geom = rect(ca, cb, ul, uw, ang)
        if not _free(geom.buffer(0.4), taken, inside):
            continue
        taken.append(geom)
        hh = top + uni(rng, (0.8, 1.4))
        parts.append(pal.part(rng, box_mat, geom, height_m=hh, layer=Layer.ROOF, texture=Tex.FINS, period_m=0.2,
                              angle=ang))
        nf = 1 if ul < 1.4 else 2
        fd = min(uw * 0.8, ul / nf * 0.85)
        c, sn = math.cos(ang), math.sin(ang)
        for i in range(nf):
            da = -ul / 2 + (i + 0.5) * ul / nf
            parts.append(pal.part(rng, look.fan, circle(ca + da * c, cb + da * sn, fd / 2, 10), height_m=hh + 0.05,
                                  layer=Layer.ROOF, texture=Tex.FAN, heat_k=hk * 0.8, snow_free=True, **look.fan_kw()))
            fans += 1
    for _ in range(rint(rng, s.ducts)):
        dl, dw = uni(rng, DUCT_M[0]), uni(rng, DUCT_M[1])
        ang = 0.0 if rng.random() < 0.5 else math.pi / 2
        geom = rect(uni(rng, (-length / 3, length / 3)), uni(rng, (-width / 3, width / 3)), dl, dw, ang)
        geom = geom.intersection(inside)
        if geom.is_empty or geom.geom_type != "Polygon" or any(geom.intersects(t) for t in taken):
            continue
        parts.append(pal.part(rng, "duct", geom, height_m=top + uni(rng, (0.5, 1.0)), layer=Layer.ROOF,
                              texture=Tex.RIBS, period_m=1.2, angle=ang + math.pi / 2))
        taken.append(geom)
    for _ in range(rint(rng, s.vents)):
        va, vb = uni(rng, (-length / 2 + 1.5, length / 2 - 1.5)), uni(rng, (-width / 2 + 1.5, width / 2 - 1.5))
        r = uni(rng, (0.2, 0.45))
        g = circle(va, vb, r, 10)
        if any(g.intersects(t) for t in taken):
            continue
        parts.append(pal.part(rng, look.fan if rng.random() < 0.5 else "hvac", g, height_m=top + 0.5,
                              layer=Layer.ROOF, texture=Tex.FAN, heat_k=hk * 0.5, snow_free=True))
    return lookalike_site("flat_roof_hvac", parts, length, width, "roof_m",
                          {"roof": roof, "fans": fans, "hvac_k": round(hk, 2)}, running=True)


def rooftop_solar(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
                  look: SiteLook) -> SynthSite:
    """Panel rows on a roof: tilted rows with gaps on a flat roof, or flush on one face of a pitched roof."""
    s = spec.rooftop_solar
    length, width = _fit(rng, s.length_m, s.width_m, max_extent, 8.0)
    height = uni(rng, s.height_m)
    pitched = rng.random() < s.pitched_probability
    roof = pick(rng, s.roofs)
    parts = _building(rng, pal, roof, length, width, height, Tex.GABLE if pitched else Tex.FLAT)
    panel = pal.refl(rng, "solar_panel")
    cov_a, cov_b = uni(rng, s.coverage), uni(rng, s.coverage)
    al = (length - 2.0) * cov_a
    tables = 0
    if pitched:  # flush on the sunny face: b in (0, width / 2)
        face = 1.0 if rng.random() < 0.5 else -1.0
        depth = (width / 2 - 1.0) * cov_b
        cb = face * (width / 4)
        parts.append(pal.part(rng, "solar_panel", rect(uni(rng, (-(length - 2 - al) / 2, (length - 2 - al) / 2)), cb,
                                                        al, depth), refl=panel, height_m=height + 0.1,
                              layer=Layer.ROOF, texture=Tex.SOLAR, period_m=1.0, angle=0.0))
        tables = 1
    else:
        depth, pitch = uni(rng, s.panel_depth_m), uni(rng, s.row_pitch_m)
        pitch = max(pitch, depth + 0.3)
        bw = (width - 2.0) * cov_b
        ca = uni(rng, (-(length - 2 - al) / 2, (length - 2 - al) / 2))
        n_tab = max(1, round(al / uni(rng, (4.0, 12.0))))  # equal tables along every row
        gap = uni(rng, PANEL_GAP_M)
        tl = (al - (n_tab - 1) * gap) / n_tab
        b = -bw / 2 + depth / 2
        while b <= bw / 2 - depth / 2 and tl > 1.0:
            for i in range(n_tab):
                a = ca - al / 2 + i * (tl + gap) + tl / 2
                parts.append(pal.part(rng, "solar_panel", rect(a, b, tl, depth),
                                      refl=panel * np.float32(1 + 0.03 * rng.standard_normal()),
                                      height_m=height + 0.7, layer=Layer.ROOF, texture=Tex.SOLAR,
                                      period_m=1.0, angle=0.0))
                tables += 1
            b += pitch
    if tables == 0:
        raise TooSmall("no room for panels")
    return lookalike_site("rooftop_solar", parts, length, width, "roof_m", {"pitched": pitched, "tables": tables})
