"""Truth polygons to per-pixel mask targets of the dense head (container bodies, cooling, heat).

Torch-free: training builds its targets here, and tests and evaluation use the same rules.

- ``container``: the BODIES of the containers, not the outline of a farm. A ``container_farm`` polygon with
  ``n_containers`` > 0 is a block of containers side by side (the generator writes one per block); it is split
  into its containers: its long or short side is a container length (6.06 m or 12.19 m, or the polygon's own
  ``container_length_m``), the other holds ``n`` container widths (2.44 m) and ``n - 1`` equal gaps (or
  ``container_gap_m``). Gaps of 0.3-2.5 m are below or near the 0.5 m model pixel, so a mask of the block
  would count a gap as container roof; bodies keep the mask's area proportional to the number of containers.
  A polygon that cannot be split that way (an analyst's farm outline, no ``n_containers``) is all container.
- ``cooling``: ``cooling_array`` polygons (fan banks on container ends and roofs, evaporative walls).
- ``heat``: ``heat_signature`` polygons whose visible excess ``dt_k`` reaches the label rule's ``min_dt_k``.

Targets are COVERAGE fractions (0..1): each model pixel is rasterised ``SUPERSAMPLE`` x ``SUPERSAMPLE`` times
finer and averaged, so a 2.44 m container on a 0.5 m grid is 4.88 pixels of roof, not 4 or 5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio import features

from minewatch.classes import MASK_NAMES, MASK_TRUTH_CLASS

CONTAINER_WIDTH_M = 2.44
CONTAINER_LENGTHS_M = (6.06, 12.19)  # 20 ft and 40 ft ISO containers
MAX_GAP_M = 3.0
"""Widest gap between the containers of a block that is still read as one block (farms: 0.3-2.5 m)."""
SIDE_TOLERANCE_M = 0.15
SUPERSAMPLE = 8


def container_bodies(block: shapely.Geometry, n: int, *, length_m: float | None = None,
                     gap_m: float | None = None) -> list[shapely.Polygon] | None:
    """The ``n`` container bodies of a rectangular block of containers side by side, or None when ``block``
    is not such a block (see the module docstring)."""
    if n < 1 or block.is_empty or not isinstance(block, shapely.Polygon):
        return None
    rect = shapely.oriented_envelope(block)
    if not isinstance(rect, shapely.Polygon) or rect.area <= 0 or block.area / rect.area < 0.98:
        return None
    c = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = c[1] - c[0], c[2] - c[1]
    best = None
    for along, across in ((e1, e2), (e2, e1)):
        length, width = float(np.hypot(*along)), float(np.hypot(*across))
        lengths = (length_m,) if length_m else CONTAINER_LENGTHS_M
        if min(abs(length - v) for v in lengths) > SIDE_TOLERANCE_M:
            continue
        if n == 1:
            gap = 0.0
            if abs(width - CONTAINER_WIDTH_M) > SIDE_TOLERANCE_M:
                continue
        else:
            gap = gap_m if gap_m is not None else (width - n * CONTAINER_WIDTH_M) / (n - 1)
            if abs(n * CONTAINER_WIDTH_M + (n - 1) * gap - width) > SIDE_TOLERANCE_M:
                continue
            if gap < -SIDE_TOLERANCE_M / max(n - 1, 1) or gap > MAX_GAP_M:
                continue
        if best is None or gap < best[0]:
            best = (gap, along, across, width)
    if best is None:
        return None
    gap, along, across, width = best
    unit = across / np.hypot(*across)
    body = unit * (width - (n - 1) * max(gap, 0.0)) / n  # exact widths: the block's own side split evenly
    step = body + unit * max(gap, 0.0)
    origin = c[0]  # the rectangle is {c0 + s * e1 + t * e2 : s, t in [0, 1]}, whichever side is along
    return [shapely.Polygon([origin + j * step, origin + j * step + along, origin + j * step + along + body,
                             origin + j * step + body]) for j in range(n)]


def _float(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


@dataclass
class ObjectLayers:
    """One scene's truth objects per mask name, in the model grid's CRS, ready to rasterise per window."""

    names: tuple[str, ...]
    geoms: dict[str, np.ndarray]
    _trees: dict[str, shapely.STRtree] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def empty(cls, names: Sequence[str]) -> ObjectLayers:
        """No objects (a scene without truth, or real imagery known to hold none)."""
        return cls(tuple(names), {n: np.zeros(0, dtype=object) for n in names})

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_trees"] = {}  # rebuilt on first use in each process
        return state

    def tree(self, name: str) -> shapely.STRtree:
        t = self._trees.get(name)
        if t is None:
            t = self._trees[name] = shapely.STRtree(self.geoms[name])
        return t

    def any(self) -> bool:
        return any(len(g) for g in self.geoms.values())

    def rasterize(self, transform: Affine, height: int, width: int, *, supersample: int = SUPERSAMPLE) -> np.ndarray:
        """(M, height, width) float32 coverage of each mask over the window whose top-left pixel is at
        ``transform`` (a north-up grid)."""
        out = np.zeros((len(self.names), height, width), np.float32)
        x0, y0 = transform * (0, 0)
        x1, y1 = transform * (width, height)
        window = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        inverse = ~transform
        for k, name in enumerate(self.names):
            if not len(self.geoms[name]):
                continue
            hits = self.tree(name).query(window, predicate="intersects")
            if not len(hits):
                continue
            geoms = self.geoms[name][hits]
            # Only the pixels the objects' bounding box covers are rasterised finely (objects are small).
            bx0, by0, bx1, by1 = shapely.total_bounds(geoms)
            cols, rows = zip(*(inverse * (x, y) for x in (bx0, bx1) for y in (by0, by1)), strict=True)
            r0, r1 = max(int(np.floor(min(rows))), 0), min(int(np.ceil(max(rows))), height)
            c0, c1 = max(int(np.floor(min(cols))), 0), min(int(np.ceil(max(cols))), width)
            if r1 <= r0 or c1 <= c0:
                continue
            fine = transform * Affine.translation(c0, r0) * Affine.scale(1 / supersample)
            burn = features.rasterize(((g, 1) for g in geoms), out_shape=((r1 - r0) * supersample,
                                                                          (c1 - c0) * supersample),
                                      transform=fine, fill=0, dtype="uint8")
            out[k, r0:r1, c0:c1] = burn.reshape(r1 - r0, supersample, c1 - c0, supersample).mean(
                axis=(1, 3), dtype=np.float32)
        return out


def object_layers(truth: gpd.GeoDataFrame, crs, names: Sequence[str] = MASK_NAMES, *,
                  min_dt_k: float = 3.0) -> ObjectLayers:
    """Truth polygons (any CRS) as :class:`ObjectLayers` in ``crs`` (container blocks split into bodies)."""
    names = tuple(names)
    if truth.empty or "class" not in truth.columns:
        return ObjectLayers.empty(names)
    geoms: dict[str, np.ndarray] = {}
    truth = truth.to_crs(crs)
    for name in names:
        sel = truth[truth["class"] == MASK_TRUTH_CLASS[name]]
        if name == "heat" and "dt_k" in sel.columns:
            sel = sel[sel["dt_k"].astype(float).fillna(np.inf) >= min_dt_k]
        parts: list[shapely.Geometry] = []
        for _, row in sel.iterrows():
            geom = row.geometry
            if geom is None or geom.is_empty:
                continue
            bodies = None
            if name == "container":
                n = row.get("n_containers")
                n = int(n) if n is not None and np.isfinite(float(n)) else 0
                bodies = container_bodies(geom, n, length_m=_float(row.get("container_length_m")),
                                          gap_m=_float(row.get("container_gap_m")))
            parts.extend(bodies if bodies is not None else [geom])
        geoms[name] = np.asarray(parts, dtype=object)
    return ObjectLayers(names, geoms)


def teu_of(length_m: float) -> float:
    """Twenty-foot equivalent units of one container of ``length_m`` (40 ft = 2 TEU)."""
    return 2.0 if length_m > 9.0 else 1.0


def block_teu(block: shapely.Geometry, n: int, *, length_m: float | None = None) -> float:
    """TEU of a truth block of ``n`` containers: each body's length decides 20 or 40 ft (n when undecidable)."""
    bodies = container_bodies(block, n, length_m=length_m)
    if not bodies:
        return float(n)
    return float(sum(teu_of(max(_sides(b))) for b in bodies))


def _sides(poly: shapely.Polygon) -> tuple[float, float]:
    c = np.asarray(poly.exterior.coords)
    return float(np.hypot(*(c[1] - c[0]))), float(np.hypot(*(c[2] - c[1])))
