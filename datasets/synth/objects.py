"""Scene objects in metres: parts (what is drawn), truth polygons (what is labelled), plumes, synthetic sites.

Everything is built in a site frame (``a`` along the site's long axis, ``b`` across, origin at its
centre) and then placed into the scene's local frame (``u`` metres east, ``v`` metres south of the
scene's top-left corner), where the rasterisers work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from minewatch.datasets.synth.recipe import Material


class TooSmall(Exception):
    """The space offered cannot hold a meaningful instance of this kind of site."""


class Tex(IntEnum):
    """Surface pattern a part is drawn with (render_optical implements each)."""

    FLAT = 0
    RIBS = 1  # corrugated steel: fine stripes across the part's axis
    GABLE = 2  # two roof faces lit differently by the sun
    FAN = 3  # dark disc with a bright rim and hub
    GLASS = 4  # greenhouse: bright/dark ridges, translucent
    SOLAR = 5  # panel cells with frames
    GRAVEL = 6  # strong grain
    PAD = 7  # evaporative pad: fine vertical slats, damp
    CROWN = 8  # tree crown: relief-shaded canopy
    FINS = 9  # transformer radiator fins
    CAR = 10  # body with a dark windscreen band
    BOAT = 11  # hull tapering to a bow, a cabin or cockpit
    BUS = 12  # long roof with hatches and an articulation band


class Layer(IntEnum):
    """Draw order: later layers cover earlier ones."""

    GROUND = 0  # pads, lots, tracks
    MARK = 1  # paint on the ground
    STRUCTURE = 2  # containers, buildings, trees
    ROOF = 3  # equipment on roofs


@dataclass
class Part:
    """One drawn surface. ``refl`` and ``solar_k`` are resolved from a material when built."""

    geom: Polygon
    refl: np.ndarray
    solar_k: float
    height_m: float = 0.0
    layer: Layer = Layer.STRUCTURE
    texture: Tex = Tex.FLAT
    angle: float = 0.0  # radians; the part's long axis in the frame it lives in
    period_m: float = 1.0  # texture period where the texture has one
    heat_k: float = 0.0  # internal heat (already scaled by the site's load), K
    optical: bool = True  # False: only warms the thermal image (hot aisles, vents' warm ground)
    snow_free: bool = False  # warm or steep: keeps its colour under snow
    contrast: float = 1.0  # multiplies the texture's brightness swing (ribs, fan guards, pad slats)
    rust: float = 0.0  # share of the surface in rust patches
    dirt: float = 0.0  # strength of dark dirt streaks along the corrugation
    base_m: float = 0.0  # height of the surface it stands on (a roof), m: its shadow falls on that surface


@dataclass
class Truth:
    """One labelled polygon."""

    geom: Polygon
    cls: str
    kind: str
    n_containers: int = 0
    running: bool = False


@dataclass
class Plume:
    """Warm air blown from point sources downwind (direction set per scene)."""

    sources: np.ndarray  # (k, 2) points in the frame the site lives in
    amplitude_k: float
    length_m: float
    width_m: float


@dataclass
class SynthSite:
    """A generated mining site or look-alike: the group of parts drawn together, its truth polygons,
    plumes and parameters (not the candidate site a scan reports, :mod:`minewatch.infer`)."""

    kind: str
    mining: bool
    running: bool
    parts: list[Part] = field(default_factory=list)
    truth: list[Truth] = field(default_factory=list)
    plumes: list[Plume] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    site_id: str = ""
    centre: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0

    def footprint(self, margin: float = 0.0) -> Polygon:
        """Convex hull of the drawn parts, grown by ``margin``."""
        geoms = [p.geom for p in self.parts]
        hull = shapely.convex_hull(shapely.union_all(geoms)) if geoms else box(-1, -1, 1, 1)
        return hull.buffer(margin, join_style="mitre") if margin else hull

    def heated_parts(self, min_k: float = 1.0) -> list[Part]:
        return [p for p in self.parts if p.heat_k >= min_k]


class Palette:
    """Draws object colours from the recipe's materials, with per-object jitter."""

    def __init__(self, materials: dict[str, Material]) -> None:
        self.materials = materials

    def refl(self, rng: np.random.Generator, name: str, jitter: float | None = None) -> np.ndarray:
        mat = self.materials[name]
        j = mat.jitter if jitter is None else jitter
        base = np.asarray(mat.reflectance, dtype=np.float32)
        gain = 1.0 + j * rng.standard_normal()
        tint = 1.0 + 0.3 * j * rng.standard_normal(4)
        return np.clip(base * gain * tint.astype(np.float32), 0.005, 0.98).astype(np.float32)

    def solar(self, name: str) -> float:
        return float(self.materials[name].solar_k)

    def part(self, rng: np.random.Generator, name: str, geom: Polygon, *, jitter: float | None = None,
             refl: np.ndarray | None = None, **kw: Any) -> Part:
        """A part of material ``name`` (``refl`` overrides the colour, e.g. a farm's shared colour)."""
        colour = self.refl(rng, name, jitter) if refl is None else refl
        return Part(geom=geom, refl=colour, solar_k=self.solar(name), **kw)


def pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """One key of a weights table."""
    names = sorted(weights)
    w = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def uni(rng: np.random.Generator, rng_pair: tuple[float, float]) -> float:
    return float(rng.uniform(rng_pair[0], rng_pair[1]))


def rint(rng: np.random.Generator, pair: tuple[int, int]) -> int:
    return int(rng.integers(pair[0], pair[1] + 1))


def log_int(rng: np.random.Generator, pair: tuple[int, int]) -> int:
    """Integer drawn log-uniformly: small farms are common, large ones rarer."""
    lo, hi = max(pair[0], 1), max(pair[1], 1)
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.999)) - 0.4999)))


def rect(ca: float, cb: float, length: float, width: float, angle: float = 0.0) -> Polygon:
    """Rectangle centred at (ca, cb), ``length`` along an axis at ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    hl, hw = length / 2, width / 2
    pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    return Polygon([(ca + x * c - y * s, cb + x * s + y * c) for x, y in pts])


def circle(ca: float, cb: float, radius: float, n: int = 16) -> Polygon:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return Polygon(np.column_stack([ca + radius * np.cos(t), cb + radius * np.sin(t)]))


def ring(poly: Polygon, width: float) -> Polygon:
    """A thin band along a polygon's outline (fences)."""
    return poly.exterior.buffer(width / 2, cap_style="flat", join_style="mitre")


def place_site(site: SynthSite, cu: float, cv: float, angle: float) -> SynthSite:
    """Rotate a site built in its own frame by ``angle`` and move its centre to (cu, cv)."""
    c, s = math.cos(angle), math.sin(angle)

    def move(coords: np.ndarray) -> np.ndarray:
        a, b = coords[:, 0], coords[:, 1]
        return np.column_stack([cu + a * c - b * s, cv + a * s + b * c])

    for p in site.parts:
        p.geom = shapely.transform(p.geom, move)
        p.angle += angle
    for t in site.truth:
        t.geom = shapely.transform(t.geom, move)
    for pl in site.plumes:
        pl.sources = move(np.asarray(pl.sources, dtype=float).reshape(-1, 2))
    site.centre = (cu, cv)
    site.angle = angle
    return site


def plume_core(plume: Plume, wind: tuple[float, float]) -> Polygon:
    """Where a plume is above half its peak: sources swept downwind by ~0.7 e-folding lengths."""
    wu, wv = wind
    reach = 0.7 * plume.length_m
    pts = np.asarray(plume.sources, dtype=float)
    swept = np.vstack([pts, pts + np.array([wu * reach, wv * reach])])
    return shapely.convex_hull(shapely.multipoints(swept)).buffer(plume.width_m, quad_segs=4)


def lookalike_site(kind: str, parts: list[Part], length: float, width: float, size_key: str, params: dict, *,
                   running: bool = False, n_containers: int = 0) -> SynthSite:
    """A look-alike laid out on a ``length`` x ``width`` rectangle (its truth), with its parameters for the
    scene's metadata: the size under ``size_key``, then ``params``."""
    site = SynthSite(kind=kind, mining=False, running=running, parts=parts)
    site.truth.append(Truth(rect(0, 0, length, width), "lookalike", kind, n_containers=n_containers, running=running))
    site.params = {size_key: [round(length, 1), round(width, 1)], **params}
    return site
