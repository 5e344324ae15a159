"""Site outlines and figures from the dense head's masks: where the objects are, not which windows fired.

A scan with a dense model keeps the masks of its positive windows only (:class:`MaskStore`, uint8 on a
temporary file, so memory does not grow with what a scan finds). Sites are then built per component of
positive windows (:func:`minewatch.infer.sites.build_sites`); for each component :func:`outline_objects`

1. mosaics its windows' masks on the model grid, overlapping windows averaged with weights that fall from
   1 at a window's centre to 0.1 at its edge (a window sees least context at its border);
2. thresholds each mask (the model's ``mask_threshold``) and drops specks smaller than ``min_object_m2``;
3. dissolves the objects: a morphological closing of their union by ``dissolve_m`` (1.5 m: the gaps between
   containers of a block, 0.3-2.5 m, and between a container and its fans close; aisles of 4-9 m stay open
   unless heat covers them); holes smaller than ``min_hole_m2`` (a 40 ft container's roof) are filled, larger
   ones (a yard inside a ring of containers) kept;
4. splits the component into sites: objects closer than ``site_gap_m`` (10 m) belong to one site, so one
   block of windows over two farms and a truck yard becomes two sites outlined on their objects;
5. polygonises each site (``rasterio.features.shapes``), simplified to the pixel size, and measures it:
   containers in TEU and the fan and evaporative-wall area from the SUM of mask probabilities over the site
   and one pixel around it (the masks are calibrated coverage: gaps and edges count by the share of roof they
   hold, see :mod:`minewatch.datasets.masks`; a threshold would round a 2.44 m container to 2 or 3 m), the hot
   area (thermal only, thresholded) and the share of container roof that is hot.

A component whose masks hold no object keeps its window outline (``outline = "tiles"``): the classifier's
evidence is never dropped.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage

from minewatch.infer.power import TEU_M2

log = logging.getLogger(__name__)

TAPER_EDGE = 0.1


@dataclass(frozen=True)
class OutlineRules:
    """How masks become site outlines (defaults documented in the module docstring and the README)."""

    threshold: float = 0.5
    dissolve_m: float = 1.5
    site_gap_m: float = 10.0
    min_hole_m2: float = 30.0
    min_object_m2: dict[str, float] = field(default_factory=lambda: {"container": 7.0, "cooling": 1.0,
                                                                      "heat": 10.0})
    max_mosaic_px: int = 16_000_000
    """A component whose bounding box is larger than this (4,000 px square: 2 km at 0.5 m; ~0.5 GB while it is
    outlined) keeps its window outline, with a warning: memory stays bounded whatever a scan finds."""


class MaskStore:
    """Mask probabilities of positive windows by tile id, quantised to uint8 on a temporary file."""

    def __init__(self, names: Sequence[str], size: int) -> None:
        self.names, self.size = tuple(names), size
        self.shape = (len(self.names), size, size)
        self.nbytes = int(np.prod(self.shape))
        self._file = tempfile.TemporaryFile(prefix="minewatch-masks-")
        self._slots: dict[str, int] = {}
        self._end = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, tile_id: str) -> bool:
        return tile_id in self._slots

    def put(self, tile_id: str, masks: np.ndarray) -> None:
        if masks.shape != self.shape:
            raise ValueError(f"masks {masks.shape} are not {self.shape}")
        q = np.clip(np.rint(np.nan_to_num(masks, nan=0.0) * 255.0), 0, 255).astype(np.uint8)
        self._file.seek(self._end)
        self._file.write(q.tobytes())
        self._slots[tile_id] = self._end
        self._end += self.nbytes

    def get(self, tile_id: str) -> np.ndarray | None:
        """(M, S, S) float32 probabilities, or None when the window's masks were not kept."""
        offset = self._slots.get(tile_id)
        if offset is None:
            return None
        self._file.seek(offset)
        data = self._file.read(self.nbytes)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.shape).astype(np.float32) / 255.0

    def close(self) -> None:
        self._file.close()


@dataclass
class ObjectSite:
    """One site found from masks: its outline (the grid's CRS), which of the component's windows it lies in,
    and its figures."""

    outline: shapely.Geometry
    members: np.ndarray  # bool per window of the component
    n_teu: float  # containers, twenty-foot equivalents (soft area / TEU_M2)
    fan_area_m2: float
    hot_area_m2: float  # NaN without thermal
    running_share: float | None  # share of container roof that is hot; None without thermal or containers


def taper(size: int) -> np.ndarray:
    """(size, size) weights: 1 at the centre, TAPER_EDGE at the edges, separable and linear."""
    i = np.arange(size, dtype=np.float32)
    ramp = np.minimum(i + 0.5, size - i - 0.5) / (size / 2)
    w = TAPER_EDGE + (1 - TAPER_EDGE) * np.clip(ramp, 0, 1)
    return np.outer(w, w).astype(np.float32)


def _disk(radius_px: int) -> np.ndarray:
    r = max(int(radius_px), 0)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= r * r + 1e-9


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    if min_px <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def dissolve(union: np.ndarray, radius_px: int, min_hole_px: float) -> np.ndarray:
    """Closing of ``union`` by a disk of ``radius_px`` (no shrinking at the array's border), then holes
    smaller than ``min_hole_px`` filled."""
    if radius_px > 0 and union.any():
        padded = np.pad(union, radius_px)
        closed = ndimage.binary_closing(padded, structure=_disk(radius_px))[radius_px:-radius_px, radius_px:-radius_px]
        closed |= union
    else:
        closed = union.copy()
    holes = ndimage.binary_fill_holes(closed) & ~closed
    if holes.any():
        labels, n = ndimage.label(holes)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes < min_hole_px
        small[0] = False
        closed |= small[labels]
    return closed


def polygonise(region: np.ndarray, transform: Affine, simplify: float) -> shapely.Geometry:
    """The outline of a boolean raster region (holes kept), simplified by ``simplify`` CRS units."""
    shapes = [shapely.geometry.shape(geom) for geom, value in
              features.shapes(region.astype(np.uint8), mask=region, transform=transform, connectivity=8) if value]
    outline = shapely.union_all(shapes) if shapes else shapely.Polygon()
    if simplify > 0:
        outline = shapely.simplify(outline, simplify, preserve_topology=True)
    return shapely.make_valid(outline) if not outline.is_valid else outline


def mosaic(members: pd.DataFrame, store: MaskStore, heights: np.ndarray, widths: np.ndarray
           ) -> tuple[np.ndarray, int, int]:
    """Weighted mean of the members' masks over their bounding box: (M, H, W) float32, row and column offset."""
    rows = members["row_off"].to_numpy(dtype=np.int64)
    cols = members["col_off"].to_numpy(dtype=np.int64)
    r0, c0 = int(rows.min()), int(cols.min())
    h, w = int((rows + heights).max()) - r0, int((cols + widths).max()) - c0
    acc = np.zeros((len(store.names), h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = taper(store.size)
    for tile_id, r, c, th, tw in zip(members["tile_id"], rows, cols, heights, widths, strict=True):
        m = store.get(tile_id)
        if m is None:
            continue
        rr, cc = int(r) - r0, int(c) - c0
        wt = weights[:th, :tw]
        acc[:, rr : rr + th, cc : cc + tw] += m[:, :th, :tw] * wt
        wsum[rr : rr + th, cc : cc + tw] += wt
    np.divide(acc, wsum, out=acc, where=wsum > 0)
    return acc, r0, c0


def outline_objects(members: pd.DataFrame, store: MaskStore, *, transform: Affine, tile_px: int,
                    has_thermal: bool, rules: OutlineRules | None = None) -> list[ObjectSite] | None:
    """The sites the masks of one component of positive windows hold (see the module docstring); None when
    they hold no object (or the component is too large to mosaic): the caller keeps the window outline.

    ``members``: the component's windows (``tile_id``, ``row_off``, ``col_off`` and a window geometry);
    ``transform``: the model grid's affine.
    """
    rules = rules or OutlineRules()
    gsd = abs(transform.a)
    px_area = abs(transform.a * transform.e)
    heights, widths = _window_sizes(members, transform, tile_px)
    rows, cols = members["row_off"].to_numpy(), members["col_off"].to_numpy()
    extent = (int((rows + heights).max() - rows.min())) * (int((cols + widths).max() - cols.min()))
    if extent > rules.max_mosaic_px:
        log.warning("a block of %d positive windows spans %.0f Mpx, more than the %.0f Mpx outlined from masks: "
                    "it keeps its window outline", len(members), extent / 1e6, rules.max_mosaic_px / 1e6)
        return None
    if not any(t in store for t in members["tile_id"]):
        return None
    prob, r0, c0 = mosaic(members, store, heights, widths)
    names = store.names
    binary = {}
    for k, name in enumerate(names):
        b = prob[k] >= rules.threshold
        if name == "heat" and not has_thermal:
            b[:] = False
        binary[name] = _drop_small(b, rules.min_object_m2.get(name, 0.0) / px_area)
    union = np.logical_or.reduce(list(binary.values()))
    if not union.any():
        return None
    closed = dissolve(union, int(round(rules.dissolve_m / gsd)), rules.min_hole_m2 / px_area)
    gap_px = rules.site_gap_m / gsd
    near = ndimage.distance_transform_edt(~closed) <= gap_px / 2
    clusters, n = ndimage.label(near, structure=np.ones((3, 3), bool))
    clusters[~closed] = 0
    grid = transform * Affine.translation(c0, r0)
    container = prob[names.index("container")] if "container" in names else None
    out = []
    for label in range(1, n + 1):
        region = clusters == label
        if not region.any():
            continue
        outline = polygonise(region, grid, gsd)
        if outline.is_empty:
            continue
        # Areas that count (roof, fans) sum probabilities over the site and a pixel around it: an edge pixel
        # half on a container holds half a pixel of roof (the targets are coverage fractions).
        soft = ndimage.binary_dilation(region, structure=np.ones((3, 3), bool))
        n_teu = float(container[soft].sum() * px_area / TEU_M2) if container is not None else math.nan
        if container is not None and not binary["container"][region].any():
            n_teu = 0.0  # probabilities below the threshold everywhere: no container seen here
        fan = math.nan
        if "cooling" in binary:
            fan = float(prob[names.index("cooling")][soft].sum() * px_area) if binary["cooling"][region].any() else 0.0
        hot = float(binary["heat"][region].sum() * px_area) if "heat" in binary and has_thermal else math.nan
        share = None
        if has_thermal and "heat" in binary and "container" in binary:
            roof = binary["container"] & region
            if roof.any():
                share = float((roof & binary["heat"]).sum() / roof.sum())
        out.append(ObjectSite(outline, _members_in(region, r0, c0, rows, cols, heights, widths), n_teu, fan, hot,
                              share))
    return out or None


def _members_in(region: np.ndarray, r0: int, c0: int, rows: np.ndarray, cols: np.ndarray, heights: np.ndarray,
                widths: np.ndarray) -> np.ndarray:
    """Which windows hold a pixel of ``region``."""
    cum = np.pad(region.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    a, b = rows - r0, cols - c0
    c, d = a + heights, b + widths
    return (cum[c, d] - cum[a, d] - cum[c, b] + cum[a, b]) > 0


def _window_sizes(members: pd.DataFrame, transform: Affine, tile_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Height and width of each window in pixels (windows of scenes smaller than a tile are smaller)."""
    bounds = shapely.bounds(np.asarray(members.geometry.values))
    w = np.rint((bounds[:, 2] - bounds[:, 0]) / abs(transform.a)).astype(np.int64)
    h = np.rint((bounds[:, 3] - bounds[:, 1]) / abs(transform.e)).astype(np.int64)
    return np.minimum(h, tile_px), np.minimum(w, tile_px)
