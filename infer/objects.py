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
   block of windows over two farms and a truck yard becomes two sites outlined on their objects; a group
   smaller than ``min_site_m2`` (120 m², four 40 ft roofs) joins the nearest larger group of the block, and a
   block with no larger group is one site (specks the head marks on real roofs are not sites of their own);
5. polygonises each site (``rasterio.features.shapes``), simplified to the pixel size, and measures it:
   containers in TEU and the fan and evaporative-wall area from the SUM of mask probabilities within
   ``count_margin_m`` of the site's thresholded roof (fans), times the model's ``mask_area_scale`` (fitted on
   validation scenes by the same rule: :class:`minewatch.train.validation.MaskStats`) — the masks are coverage
   fractions, so gaps and edges count by the share of roof they hold, where a threshold would round a 2.44 m
   container to 2 or 3 m; the hot area (thermal only, thresholded); and how much warmer the counted roof is
   than the open ground 5-15 m around the site, MEASURED (the scan's own thermal input, kept beside the masks):
   the thermal cross-check of :mod:`minewatch.infer.power`.

A component whose masks hold no object keeps its window outline (``outline = "tiles"``): the classifier's
evidence is never dropped.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio import features
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage

from minewatch.infer.power import TEU_M2

log = logging.getLogger(__name__)

TAPER_EDGE = 0.1
MIN_THERMAL_PX = 20
OUTLINE_THREADS = 2
"""Components a scan outlines at once (minewatch.infer.sites.build_sites): each mosaic is bounded by
``OutlineRules.max_mosaic_px``, so this bounds the outline step's memory whatever the machine's cores."""


@dataclass(frozen=True)
class OutlineRules:
    """How masks become site outlines (defaults documented in the module docstring and the README)."""

    threshold: float = 0.5
    dissolve_m: float = 1.5
    site_gap_m: float = 10.0
    min_hole_m2: float = 30.0
    min_site_m2: float = 120.0
    """A group of objects smaller than this (four 40 ft containers' roofs) is not a site of its own: it joins the
    nearest larger group of its block of windows, or, when the block holds none, all its groups are one site.
    Chosen on validation scenes (``python bench/object_rule.py``)."""
    min_object_m2: dict[str, float] = field(default_factory=lambda: {"container": 7.0, "cooling": 1.0,
                                                                      "heat": 10.0})
    count_margin_m: float = 2.0
    """Probabilities are summed within this distance of the thresholded mask (containers, fans)."""
    area_scale: dict[str, float] = field(default_factory=dict)
    """Per mask, true area / summed probability on validation scenes (the model's ``mask_area_scale``)."""
    ring_m: tuple[float, float] = (5.0, 15.0)
    """The open ground a farm's roof temperature is compared with: this far outside the site, metres."""
    max_mosaic_px: int = 16_000_000
    """A component whose bounding box is larger than this (4,000 px square: 2 km at 0.5 m; ~0.5 GB while it is
    outlined) keeps its window outline, with a warning: memory stays bounded whatever a scan finds."""


class MaskStore:
    """Mask probabilities of positive windows by tile id, quantised to uint8 on a temporary file, and beside
    them the window's measured thermal excess (float16 kelvin, NaN without thermal)."""

    def __init__(self, names: Sequence[str], size: int) -> None:
        self.names, self.size = tuple(names), size
        self.shape = (len(self.names), size, size)
        self.nbytes = int(np.prod(self.shape))
        self.dt_bytes = size * size * 2
        self._file = tempfile.TemporaryFile(prefix="minewatch-masks-")
        self._lock = threading.Lock()  # one file position: sites are outlined on several threads
        self._slots: dict[str, tuple[int, bool]] = {}
        self._end = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, tile_id: str) -> bool:
        return tile_id in self._slots

    def put(self, tile_id: str, masks: np.ndarray, dt_k: np.ndarray | None = None) -> None:
        if masks.shape != self.shape:
            raise ValueError(f"masks {masks.shape} are not {self.shape}")
        q = np.multiply(masks, 255.0, dtype=np.float32)
        np.fmax(q, 0.0, out=q)  # NaN -> 0 (fmax ignores NaN)
        np.minimum(q, 255.0, out=q)
        q = np.rint(q, out=q).astype(np.uint8)
        with self._lock:
            self._file.seek(self._end)
            self._file.write(q.tobytes())
            if dt_k is not None:
                self._file.write(np.asarray(dt_k, dtype=np.float16).reshape(self.size, self.size).tobytes())
            self._slots[tile_id] = (self._end, dt_k is not None)
            self._end += self.nbytes + (self.dt_bytes if dt_k is not None else 0)

    def _read(self, offset: int, nbytes: int) -> bytes:
        with self._lock:
            self._file.seek(offset)
            return self._file.read(nbytes)

    def get(self, tile_id: str) -> np.ndarray | None:
        """(M, S, S) float32 probabilities, or None when the window's masks were not kept."""
        slot = self._slots.get(tile_id)
        if slot is None:
            return None
        data = self._read(slot[0], self.nbytes)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.shape).astype(np.float32) / 255.0

    def get_dt(self, tile_id: str) -> np.ndarray | None:
        """(S, S) float32 thermal excess (K, NaN where none), or None when none was kept."""
        slot = self._slots.get(tile_id)
        if slot is None or not slot[1]:
            return None
        data = self._read(slot[0] + self.nbytes, self.dt_bytes)
        return np.frombuffer(data, dtype=np.float16).reshape(self.size, self.size).astype(np.float32)

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
    roof_excess_k: float | None  # measured roof minus surrounding ground, K (None: no thermal there)


def taper(size: int) -> np.ndarray:
    """(size, size) weights: 1 at the centre, TAPER_EDGE at the edges, separable and linear."""
    i = np.arange(size, dtype=np.float32)
    ramp = np.minimum(i + 0.5, size - i - 0.5) / (size / 2)
    w = TAPER_EDGE + (1 - TAPER_EDGE) * np.clip(ramp, 0, 1)
    return np.outer(w, w).astype(np.float32)


def disk_rectangles(radius_px: float) -> list[tuple[int, int]]:
    """Half-height and half-width of rectangles whose union is the disk x^2 + y^2 <= r^2 of integer offsets:
    one per row of the disk where it narrows below (the wider rows' rectangles are inside it). ``radius_px``
    may be fractional (a gap in metres over the pixel size): integer offsets within it are those within
    sqrt(floor(r^2))."""
    r2 = math.floor(radius_px * radius_px + 1e-9)
    rows = [(i, math.isqrt(r2 - i * i)) for i in range(math.isqrt(r2) + 1)]
    return [(i, w) for k, (i, w) in enumerate(rows) if k + 1 == len(rows) or rows[k + 1][1] < w]


def dilate_disk(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``mask`` dilated by the disk x^2 + y^2 <= r^2 (nothing beyond the array's border): the union of its
    dilations by :func:`disk_rectangles`, each two running maxima (exactly the disk; at the radii of
    :func:`dissolve` and of the site gap faster than a distance transform)."""
    m = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    out = np.zeros(mask.shape, bool)
    for half_h, half_w in disk_rectangles(radius_px):
        d = ndimage.maximum_filter1d(m, 2 * half_h + 1, axis=0, mode="constant", cval=0) if half_h else m
        d = ndimage.maximum_filter1d(d, 2 * half_w + 1, axis=1, mode="constant", cval=0) if half_w else d
        out |= d.view(bool)
    return out


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    if min_px <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    if keep[1:].all():
        return mask  # nothing to drop: no pass over the labels
    keep[0] = False
    return keep[labels]


def dissolve(union: np.ndarray, radius_px: int, min_hole_px: float) -> np.ndarray:
    """Closing of ``union`` by a disk of ``radius_px`` (no shrinking at the array's border), then holes
    smaller than ``min_hole_px`` filled."""
    if radius_px > 0 and union.any():
        # Dilation then erosion by the disk (erosion: what the dilation of the complement leaves), on an array
        # padded by r so that objects near the border dilate beyond it and the closing does not shrink there.
        r = radius_px
        dilated = dilate_disk(np.pad(union, r), r)
        closed = ~dilate_disk(~dilated, r)[r:-r, r:-r]
        closed |= union
    else:
        closed = union.copy()
    # Holes: the pieces of background (4-connected, as binary_fill_holes has them) that touch no border.
    labels, n = ndimage.label(~closed)
    small = np.bincount(labels.ravel(), minlength=n + 1) < min_hole_px
    small[0] = False
    small[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = False
    if small.any():
        closed |= small[labels]
    return closed


# Sites are outlined on several threads (minewatch.infer.sites.build_sites); there rasterio's shapes() now and
# then warns that its in-memory copy of the region has no geotransform, although the transform it is given is
# applied (outlines compared with one thread's over 3,000 calls: all equal). The warning says nothing here.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module=r"rasterio\.features")


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
    """Weighted mean of the members' masks over their bounding box: (M, H, W) float32, row and column offset.
    The thermal excess kept beside them is in :func:`mosaic_dt`."""
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


def mosaic_dt(members: pd.DataFrame, store: MaskStore, heights: np.ndarray, widths: np.ndarray, shape: tuple,
              r0: int, c0: int) -> np.ndarray:
    """The measured thermal excess over the mosaic (K, NaN where no window kept one): the same scene pixels in
    every window, so any window's value will do."""
    out = np.full(shape, np.nan, np.float32)
    rows = members["row_off"].to_numpy(dtype=np.int64)
    cols = members["col_off"].to_numpy(dtype=np.int64)
    for tile_id, r, c, th, tw in zip(members["tile_id"], rows, cols, heights, widths, strict=True):
        dt = store.get_dt(tile_id)
        if dt is None:
            continue
        view = out[int(r) - r0 : int(r) - r0 + th, int(c) - c0 : int(c) - c0 + tw]
        np.copyto(view, dt[:th, :tw], where=np.isnan(view))
    return out


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
    radius, gap_px = int(round(rules.dissolve_m / gsd)), rules.site_gap_m / gsd
    # Dissolving and grouping only reach radius + gap / 2 beyond the objects: done on their bounding box.
    near_objects = _grown(ndimage.find_objects(union.astype(np.int8))[0], radius + int(math.ceil(gap_px / 2)) + 1,
                          union.shape)
    closed = np.zeros_like(union)
    closed[near_objects] = dissolve(union[near_objects], radius, rules.min_hole_m2 / px_area)
    zones = np.zeros(union.shape, np.int32)
    near = dilate_disk(closed[near_objects], gap_px / 2)
    zones[near_objects] = merge_small_groups(ndimage.label(near, structure=np.ones((3, 3), bool))[0],
                                             closed[near_objects], rules.min_site_m2 / px_area)
    clusters = np.where(closed, zones, 0)
    grid = transform * Affine.translation(c0, r0)
    margin = count_margin_px(rules.count_margin_m, gsd)
    # Areas that count (roof, fans) sum probabilities near the thresholded mask: an edge pixel half on a
    # container holds half a pixel of roof (the targets are coverage fractions); MaskStats fits the scale.
    counted = {name: ndimage.maximum_filter(binary[name], size=2 * margin + 1, mode="constant", cval=False)
               if margin else binary[name] for name in ("container", "cooling") if name in binary}
    dt = mosaic_dt(members, store, heights, widths, prob.shape[1:], r0, c0) if has_thermal else None
    ring_px = int(math.ceil(rules.ring_m[1] / gsd)) + 1
    out = []
    # Each site is measured within its zone's bounding box (the zone holds its objects and what is counted
    # near them), so the work grows with the sites' size, not with their number times the block's.
    for label, box in enumerate(ndimage.find_objects(zones), start=1):
        if box is None:
            continue
        region = clusters[box] == label
        if not region.any():
            continue
        top, left = box[0].start, box[1].start
        outline = polygonise(region, grid * Affine.translation(left, top), gsd)
        if outline.is_empty:
            continue
        zone = zones[box] == label
        area = {}
        for name, near_mask in counted.items():
            if binary[name][box][region].any():
                area[name] = float(prob[names.index(name)][box][near_mask[box] & zone].sum() * px_area
                                   * rules.area_scale.get(name, 1.0))
            else:
                area[name] = 0.0  # probabilities below the threshold everywhere: none seen here
        n_teu = area["container"] / TEU_M2 if "container" in area else math.nan
        hot = (float(binary["heat"][box][region].sum() * px_area) if "heat" in binary and has_thermal
               else math.nan)
        excess = None
        if dt is not None and "container" in binary:
            around = _grown(box, ring_px, zones.shape)  # the open ground ring_m around the site fits in it
            near_site = clusters[around] == label
            excess = roof_excess(dt[around], binary["container"][around] & near_site, near_site, union[around],
                                 gsd, rules)
        out.append(ObjectSite(outline, _members_in(region, r0 + top, c0 + left, rows, cols, heights, widths),
                              n_teu, area.get("cooling", math.nan), hot, excess))
    return out or None


def _grown(box: tuple[slice, slice], px: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """``box`` grown by ``px`` on every side, within ``shape``."""
    return tuple(slice(max(b.start - px, 0), min(b.stop + px, n)) for b, n in zip(box, shape, strict=False))


def merge_small_groups(zones: np.ndarray, objects: np.ndarray, min_px: float) -> np.ndarray:
    """``zones`` (labels 1..n around groups of ``objects``) relabelled so that every group with fewer than
    ``min_px`` object pixels takes the label of the nearest group that has enough, or, when none has, all
    groups share label 1: small specks of a block do not become sites of their own."""
    n = int(zones.max())
    if n <= 1:
        return zones
    sizes = np.bincount(zones[objects], minlength=n + 1)
    big = sizes >= min_px
    big[0] = False
    if big[1:].all():
        return zones
    if not big.any():
        return np.where(zones > 0, 1, 0).astype(zones.dtype)
    # The pixel of a large group nearest to a small group's pixel lies on the large group's edge: the edge pixels
    # go into a tree, queried with the small groups' pixels only (not a transform of the whole block).
    large = objects & big[zones]
    er, ec = np.nonzero(large & ~ndimage.binary_erosion(large))
    tree = shapely.STRtree(shapely.points(ec, er))
    boxes = ndimage.find_objects(zones)
    mapping = np.arange(n + 1)
    for label in np.flatnonzero(~big[1:]) + 1:
        box = boxes[label - 1]
        pr, pc = np.nonzero(objects[box] & (zones[box] == label))
        _, nearest = tree.query_nearest(shapely.points(pc + box[1].start, pr + box[0].start), all_matches=False)
        mapping[label] = np.bincount(zones[er[nearest], ec[nearest]]).argmax()
    return mapping[zones]


def roof_excess(dt: np.ndarray, roof: np.ndarray, region: np.ndarray, objects: np.ndarray, gsd: float,
                rules: OutlineRules) -> float | None:
    """Median measured thermal excess of the container roof minus that of the open ground ``ring_m`` around the
    site (K), or None with too few pixels of either. Against the ground beside it, not the scene's 100 m
    background alone: a farm wider than that background warms its own background, and its roof then reads
    about 0 K while the ground around it reads below 0."""
    roof_dt = dt[roof]
    roof_dt = roof_dt[np.isfinite(roof_dt)]
    if roof_dt.size < MIN_THERMAL_PX:
        return None
    dist = ndimage.distance_transform_edt(~region) * gsd
    ring = (dist >= rules.ring_m[0]) & (dist <= rules.ring_m[1]) & ~objects & np.isfinite(dt)
    if ring.sum() < MIN_THERMAL_PX:
        return None
    return float(np.median(roof_dt) - np.median(dt[ring]))


def count_margin_px(margin_m: float, gsd: float) -> int:
    """The counting margin in pixels of the model grid (validation uses the same)."""
    return max(int(round(margin_m / gsd)), 0)


def _members_in(region: np.ndarray, r0: int, c0: int, rows: np.ndarray, cols: np.ndarray, heights: np.ndarray,
                widths: np.ndarray) -> np.ndarray:
    """Which windows hold a pixel of ``region`` (its first pixel at row ``r0``, column ``c0`` of the grid)."""
    cum = np.pad(region.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = region.shape
    a, b = np.clip(rows - r0, 0, h), np.clip(cols - c0, 0, w)
    c, d = np.clip(rows - r0 + heights, 0, h), np.clip(cols - c0 + widths, 0, w)
    return (cum[c, d] - cum[a, d] - cum[c, b] + cum[a, b]) > 0


def _window_sizes(members: pd.DataFrame, transform: Affine, tile_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Height and width of each window in pixels (windows of scenes smaller than a tile are smaller)."""
    bounds = shapely.bounds(np.asarray(members.geometry.values))
    w = np.rint((bounds[:, 2] - bounds[:, 0]) / abs(transform.a)).astype(np.int64)
    h = np.rint((bounds[:, 3] - bounds[:, 1]) / abs(transform.e)).astype(np.int64)
    return np.minimum(h, tile_px), np.minimum(w, tile_px)
