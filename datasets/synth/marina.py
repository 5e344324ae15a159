"""Marinas: pontoons with finger berths and moored boats, out from a quay at a shoreline.

The one look-alike that stands on water: rows of white boats along regular pontoons look like rows of
containers from above. Built in a shore frame: ``a`` from the shoreline (a = 0) out over the water
(a > 0; the quay is on land, a < 0), ``b`` along the shore. :mod:`minewatch.datasets.synth.plan` puts
its origin on a shoreline point of the scene's water and turns ``a`` towards the water.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

from minewatch.datasets.synth.appearance import SiteLook
from minewatch.datasets.synth.objects import (
    Layer,
    Palette,
    Part,
    SynthSite,
    Tex,
    TooSmall,
    Truth,
    pick,
    rect,
    rint,
    uni,
)
from minewatch.datasets.synth.recipe import LookalikeSpec

FINGER_WIDTH_M = 0.6
BOAT_BEAM = (0.3, 0.4)  # boat beam / length
BOAT_HEIGHT_M = (0.8, 2.2)
PONTOON_HEIGHT_M = 0.4
QUAY_OVERLAP_M = 1.0  # pontoons start this far back on the quay


def boat(ca: float, cb: float, length: float, beam: float, angle: float) -> Polygon:
    """A hull outline: a transom at the stern (-a), sides, and a bow point (+a)."""
    bow = min(beam * 0.9, length * 0.3)
    pts = [(-length / 2, -beam / 2), (length / 2 - bow, -beam / 2), (length / 2, 0.0), (length / 2 - bow, beam / 2),
           (-length / 2, beam / 2)]
    c, s = math.cos(angle), math.sin(angle)
    return Polygon([(ca + x * c - y * s, cb + x * s + y * c) for x, y in pts])


def marina(rng: np.random.Generator, spec: LookalikeSpec, pal: Palette, max_extent: float,
           look: SiteLook) -> SynthSite:
    """Pontoons (a > 0) from a quay (a < 0), fingers on both sides, boats in some berths, bows to the pontoon.
    The quay is the first part (see :func:`sides`)."""
    s = spec.marina
    n = rint(rng, s.pontoons)
    plen, pw = uni(rng, s.pontoon_length_m), uni(rng, s.pontoon_width_m)
    plen = min(plen, max_extent * 0.6)
    spacing = uni(rng, s.pontoon_spacing_m)
    flen, berth = uni(rng, s.finger_length_m), uni(rng, s.berth_m)
    spacing = max(spacing, 2 * flen + pw + 4.0)
    width = (n - 1) * spacing + 2 * flen + pw + 4.0
    while width > max_extent - 8 and n > 1:
        n -= 1
        width = (n - 1) * spacing + 2 * flen + pw + 4.0
    if plen < 10.0 or width > max_extent - 8:
        raise TooSmall(f"{max_extent:.0f} m offered")
    quay = uni(rng, s.quay_m)
    parts: list[Part] = [pal.part(rng, "concrete" if rng.random() < 0.6 else "asphalt",
                                  rect(-quay / 2, 0.0, quay, width), layer=Layer.GROUND)]
    occ = uni(rng, s.occupancy)
    boats = 0
    deck = pick(rng, {"pontoon": 2.0, "concrete": 1.0})
    for i in range(n):
        cb = -(n - 1) * spacing / 2 + i * spacing
        parts.append(pal.part(rng, deck, rect((plen - QUAY_OVERLAP_M) / 2, cb, plen + QUAY_OVERLAP_M, pw),
                              height_m=PONTOON_HEIGHT_M, layer=Layer.GROUND, texture=Tex.RIBS, period_m=0.5,
                              angle=0.0))
        a = 3.0 + berth
        while a + berth / 2 < plen - 1.0:
            for side in (-1.0, 1.0):
                fb = cb + side * (pw / 2 + flen / 2)
                parts.append(pal.part(rng, deck, rect(a, fb, FINGER_WIDTH_M, flen), height_m=PONTOON_HEIGHT_M,
                                      layer=Layer.GROUND))
                for bside in (-1.0, 1.0):  # a berth on each side of the finger, shared with the next one
                    if bside > 0 and a + berth >= plen - 1.0:
                        continue
                    if bside < 0 and a - berth < 3.0:
                        continue
                    if rng.random() >= occ / 2:
                        continue
                    bl = min(uni(rng, s.boat_length_m), flen + 3.0)
                    beam = min(bl * uni(rng, BOAT_BEAM), berth - 0.6)
                    ang = (math.pi / 2 if side < 0 else -math.pi / 2) + rng.normal(0, 0.03)  # bow to the pontoon
                    ba = a + bside * berth / 2
                    bb = cb + side * (pw / 2 + bl / 2 + 0.3)
                    parts.append(pal.part(rng, pick(rng, s.boat_colours), boat(ba, bb, bl, beam, ang),
                                          height_m=uni(rng, BOAT_HEIGHT_M), texture=Tex.BOAT, angle=ang,
                                          contrast=uni(rng, (0.4, 1.4))))
                    boats += 1
            a += 2 * berth
        # a boat or two moored along the pontoon head
        if rng.random() < occ:
            bl = uni(rng, s.boat_length_m)
            parts.append(pal.part(rng, pick(rng, s.boat_colours),
                                  boat(plen + bl / 2 + 0.5, cb, bl, bl * uni(rng, BOAT_BEAM), 0.0),
                                  height_m=uni(rng, BOAT_HEIGHT_M), texture=Tex.BOAT, angle=0.0))
            boats += 1
    if boats == 0:
        raise TooSmall("an empty marina")
    site = SynthSite(kind="marina", mining=False, running=False, parts=parts)
    site.truth.append(Truth(shapely.convex_hull(shapely.union_all([p.geom for p in parts])), "lookalike",
                            "marina"))
    site.params = {"pontoons": n, "pontoon_m": round(plen, 1), "boats": boats, "quay_m": round(quay, 1)}
    return site


def sides(site: SynthSite) -> tuple[Polygon, Polygon]:
    """(land side, water side) of a marina in whatever frame it is now: the quay, and the rest's hull."""
    quay = site.parts[0].geom
    rest = shapely.convex_hull(shapely.union_all([p.geom for p in site.parts[1:]]))
    return quay, shapely.difference(rest, quay)
