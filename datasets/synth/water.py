"""Water: detected on real backgrounds, vectorised from the procedural water field, and shorelines for marinas.

Detection is a documented heuristic, not a classifier. On a grid of about 1 m, a cell is water when it is

- dark: mean display brightness (linear reflectance ** (1/2.2), 0..1) below ``max_brightness``;
- smooth: the local standard deviation of that brightness over ``texture_window_m`` below ``max_texture``
  (fields, trees, roofs with edges and cars are rougher);
- bluish or grey: blue a little above red (lakes, sea, rivers), or saturation below ``max_saturation``
  (grey, silty water), never saturated green, red or brown (lawns, soil, tiled roofs); or, up to
  ``max_brightness_cyan``, turquoise (green and blue both ``min_cyan`` above red: shallow or clear water);

then grown back to the shore through cells of water colour (the texture window straddles it), opened and
closed with a disc of ``clean_m`` (drops thin shadows, joins waves and glints),
small holes are filled, and patches smaller than ``min_area_m2`` or nowhere ``min_width_m`` wide are dropped
(dark roofs, building shadows: those are dark, smooth and bluish too, but narrow).
Dark, smooth, grey asphalt lots larger than that can pass: they are then only kept free of sites. Silty
brown rivers and flooded fields are missed (they look like bare soil): give such a background a water mask
beside it (``<image>.water.png`` or ``.water.tif`` on the image's pixel grid, nonzero = water), which is
added to what is detected.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import Polygon, shape

from minewatch.datasets.synth.noise import CoarseField
from minewatch.datasets.synth.recipe import WaterDetection

DISPLAY_GAMMA = 2.2
BLUISH = 0.02  # blue at least this far above red (display units) counts as bluish


def _disc(radius_px: int) -> np.ndarray:
    r = max(0, radius_px)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r + 0.5


def display_brightness(lin: np.ndarray) -> np.ndarray:
    return (np.clip(lin[:3], 0, 1) ** np.float32(1 / DISPLAY_GAMMA)).mean(axis=0)


def local_texture(y: np.ndarray, cell_m: float, window_m: float) -> np.ndarray:
    """Standard deviation of ``y`` over a square window of about ``window_m``."""
    size = max(3, 2 * round(window_m / cell_m / 2) + 1)
    m1 = ndimage.uniform_filter(y, size, mode="reflect")
    m2 = ndimage.uniform_filter(y * y, size, mode="reflect")
    return np.sqrt(np.maximum(m2 - m1 * m1, 0))


def detect_water(lin: np.ndarray, valid: np.ndarray, cell_m: float, spec: WaterDetection) -> np.ndarray:
    """Water mask on a grid of ``cell_m`` from linear reflectance ``lin`` (bands red, green, blue, ...)."""
    disp = np.clip(lin[:3], 0, 1) ** np.float32(1 / DISPLAY_GAMMA)
    y = disp.mean(axis=0)
    hi, lo = disp.max(axis=0), disp.min(axis=0)
    sat = (hi - lo) / np.maximum(hi, 1e-3)
    texture = local_texture(y, cell_m, spec.texture_window_m)
    bluish = disp[2] - disp[0] >= BLUISH
    dark = (y < spec.max_brightness) & (bluish | (sat < spec.max_saturation))
    # shallow or clear water over a light bottom: brighter, but turquoise (green and blue well above red)
    turquoise = (y < spec.max_brightness_cyan) & (np.minimum(disp[1], disp[2]) - disp[0] > spec.min_cyan)
    cand = ((dark & (texture < spec.max_texture)) | (turquoise & (texture < 1.5 * spec.max_texture))) & valid
    # the texture window straddles the shore: grow back to it through cells of water colour
    reach = round(spec.texture_window_m / cell_m / 2) + 1
    cand = ndimage.binary_dilation(cand, iterations=reach, mask=(dark | turquoise) & valid)
    r = round(spec.clean_m / cell_m)
    if r > 0:  # padded with the edge values, so water running off the raster is not eaten at its edge
        k = _disc(r)
        pad = np.pad(cand, r, mode="edge")
        pad = ndimage.binary_closing(ndimage.binary_opening(pad, k), k)
        cand = pad[r:-r, r:-r]
    min_cells = spec.min_area_m2 / (cell_m * cell_m)
    holes = ndimage.binary_fill_holes(cand) & ~cand
    if holes.any():
        lab, n = ndimage.label(holes)
        sizes = ndimage.sum_labels(holes, lab, np.arange(1, n + 1))
        cand |= np.isin(lab, 1 + np.flatnonzero(sizes < min_cells))
    lab, n = ndimage.label(cand)
    if n == 0:
        return cand
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(cand, lab, idx)
    # a body of water is wide somewhere; building shadows are dark, smooth and bluish too, but narrow
    depth = ndimage.distance_transform_edt(np.pad(cand, 1, mode="edge"))[1:-1, 1:-1]
    widest = ndimage.maximum(depth, lab, idx)
    keep = (sizes >= min_cells) & (2 * np.asarray(widest) * cell_m >= spec.min_width_m)
    return np.isin(lab, idx[keep]) & valid


def mask_polygons(mask: np.ndarray, cell_m: float, origin_u: float = 0.0, origin_v: float = 0.0):
    """Union of the True cells of ``mask`` (a grid of ``cell_m`` from (origin_u, origin_v)) in local metres,
    or None when there are none."""
    if not mask.any():
        return None
    tr = Affine(cell_m, 0, origin_u, 0, cell_m, origin_v)
    polys = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=tr) if v]
    return shapely.union_all(polys) if polys else None


def field_water(field: CoarseField, extent: tuple[float, float, float, float], cell_m: float = 2.0):
    """Where the procedural water field is positive (what the renderer draws as water), as polygons."""
    u0, v0, u1, v1 = extent
    nx, ny = max(1, math.ceil((u1 - u0) / cell_m)), max(1, math.ceil((v1 - v0) / cell_m))
    us = (u0 + (np.arange(nx) + 0.5) * cell_m).astype(np.float32)
    vs = (v0 + (np.arange(ny) + 0.5) * cell_m).astype(np.float32)
    return mask_polygons(field.sample(us, vs) > 0, cell_m, u0, v0)


def shore_point(rng: np.random.Generator, water, allowed: Polygon,
                probe_m: float = 8.0) -> tuple[float, float, float] | None:
    """A random point on the shoreline inside ``allowed`` and the direction (radians) from it into the water."""
    lines = [g for g in shapely.get_parts(shapely.intersection(shapely.boundary(water), allowed))
             if g.geom_type in ("LineString", "LinearRing")]
    shore = shapely.multilinestrings(lines) if lines else None
    if shore is None or shore.length < 1.0:
        return None
    pt = shapely.line_interpolate_point(shore, float(rng.uniform(0, shore.length)))
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    xs, ys = pt.x + probe_m * np.cos(angles), pt.y + probe_m * np.sin(angles)
    wet = shapely.contains_xy(water, xs, ys)
    if wet.all() or not wet.any():
        return None
    return float(pt.x), float(pt.y), float(math.atan2(np.sin(angles[wet]).sum(), np.cos(angles[wet]).sum()))
