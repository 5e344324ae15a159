"""A real raster as the scene background: resampled to the profile GSD, its CRS kept.

The output grid lies inside the background's extent, north-up in the background's own CRS (even
EPSG:4326, with pixel sizes in degrees that equal the profile GSD at the scene centre). Objects
are still built in metres in the local frame and mapped through the same :class:`Frame`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.features import shapes
from rasterio.warp import Resampling, reproject
from rasterio.warp import transform as warp_transform
from shapely.geometry import Polygon, shape

from minewatch.datasets.synth.geo import Frame
from minewatch.errors import UserError

ALLOWED_DRIVERS = "GTiff"
MAX_SOURCE_PIXELS = 400_000_000


@dataclass
class Background:
    """The part of a background raster the scene covers, and how to read it."""

    path: Path
    frame: Frame
    width: int
    height: int
    gsd_m: float
    dtype: str
    nodata: float | None
    bands: int
    valid_poly: Polygon  # local frame, where the background has data

    def read(self, gsd_m: float, origin_u: float, origin_v: float, width: int, height: int,
             resampling: Resampling = Resampling.bilinear) -> tuple[np.ndarray, np.ndarray]:
        """Linear reflectance-like values (4, h, w) float32 and a validity mask on a grid of the frame."""
        dst_tr = self.frame.grid_transform(origin_u, origin_v, gsd_m)
        with rasterio.open(self.path, driver=ALLOWED_DRIVERS) as src:
            n = min(src.count, 4)
            out = np.zeros((n, height, width), np.float32)
            src_mask = src.dataset_mask()
            for b in range(n):
                reproject(rasterio.band(src, b + 1), out[b], dst_transform=dst_tr, dst_crs=self.frame.crs,
                          resampling=resampling, src_nodata=self.nodata, dst_nodata=np.nan, init_dest_nodata=True)
            valid = np.zeros((height, width), np.float32)
            reproject(src_mask.astype(np.float32), valid, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=dst_tr, dst_crs=self.frame.crs, resampling=Resampling.bilinear,
                      dst_nodata=0.0, init_dest_nodata=True)
        ok = (valid > 127) & np.all(np.isfinite(out), axis=0)
        out = np.nan_to_num(out, nan=0.0)
        return _to_reflectance(out, self.dtype), ok


def _to_reflectance(dn: np.ndarray, dtype: str) -> np.ndarray:
    """DNs -> linear reflectance in red, green, blue, nir (nir made up from the colours if missing)."""
    if dtype == "uint8":
        lin = (dn / 255.0) ** 2.2  # 8-bit imagery is display-encoded
    elif dtype in ("uint16", "int16"):
        lin = dn * 1e-4
    else:
        hi = float(np.nanpercentile(dn, 99)) if dn.size else 1.0
        lin = dn if hi <= 2.0 else dn * 1e-4
    lin = np.clip(lin, 0, 1).astype(np.float32)
    if lin.shape[0] == 1:
        lin = np.repeat(lin, 3, axis=0)
    if lin.shape[0] == 2:
        lin = np.concatenate([lin, lin[1:2]], axis=0)
    if lin.shape[0] == 3:
        r, g = lin[0], lin[1]
        veg = np.clip((g - r) / (g + r + 1e-3) * 4, 0, 1)
        nir = (0.8 * r + 0.2 * g) * (1 - veg) + (0.25 + 2.5 * g) * veg
        lin = np.concatenate([lin, np.clip(nir, 0, 1)[None]], axis=0)
    return lin[:4]


def _metres_per_unit(crs: rasterio.crs.CRS, lat: float) -> tuple[float, float]:
    """Metres per CRS unit along x and y at latitude ``lat``."""
    if crs.is_geographic:
        phi = math.radians(lat)
        my = 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
        mx = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
        return mx, my
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(factor), float(factor)


def open_background(path: Path, gsd_m: float, size: int, rng: np.random.Generator) -> Background:
    """Check a background raster and choose the ``size`` x ``size`` window (or less) the scene covers."""
    p = Path(path)
    try:
        src = rasterio.open(p, driver=ALLOWED_DRIVERS)
    except RasterioIOError:
        raise UserError("cannot open the background as a GeoTIFF", path=p,
                        fix="give a GeoTIFF (.tif) optical raster") from None
    with src:
        if src.crs is None:
            raise UserError("the background has no CRS", path=p, fix="georeference it (gdal_translate -a_srs)")
        t = src.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise UserError("the background is rotated or not north-up", path=p, fix="warp it north-up first")
        if src.width * src.height > MAX_SOURCE_PIXELS:
            raise UserError(f"the background is too large ({src.width} x {src.height})", path=p,
                            fix="crop it to the area of interest")
        left, bottom, right, top = src.bounds
        cx, cy = (left + right) / 2, (top + bottom) / 2
        lon, lat = warp_transform(src.crs, "EPSG:4326", [cx], [cy])
        lon, lat = float(lon[0]), float(lat[0])
        mx, my = _metres_per_unit(src.crs, lat)
        w_m, h_m = (right - left) * mx, (top - bottom) * my
        width, height = min(size, int(w_m / gsd_m)), min(size, int(h_m / gsd_m))
        if width < 32 or height < 32:
            raise UserError(f"the background covers only {w_m:.0f} x {h_m:.0f} m, too small at {gsd_m} m",
                            path=p, fix="use a larger background or a smaller --size")
        # pick the window with the most valid pixels among a few random ones
        dec = max(1, int(max(src.width, src.height) / 512))
        mask = src.dataset_mask(out_shape=(max(1, src.height // dec), max(1, src.width // dec))) > 0
        best, best_score = (0.0, 0.0), -1.0
        for i in range(8):
            ox = 0.0 if w_m <= width * gsd_m else (rng.uniform(0, w_m - width * gsd_m) if i else (
                w_m - width * gsd_m) / 2)
            oy = 0.0 if h_m <= height * gsd_m else (rng.uniform(0, h_m - height * gsd_m) if i else (
                h_m - height * gsd_m) / 2)
            r0, r1 = int(oy / h_m * mask.shape[0]), int((oy + height * gsd_m) / h_m * mask.shape[0])
            c0, c1 = int(ox / w_m * mask.shape[1]), int((ox + width * gsd_m) / w_m * mask.shape[1])
            score = float(mask[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)].mean())
            if score > best_score + 1e-9:
                best, best_score = (ox, oy), score
        ox, oy = best
        affine = Affine(1 / mx, 0, left + ox / mx, 0, -1 / my, top - oy / my)
        frame = Frame(src.crs, affine, lon, lat)
        info = Background(p, frame, width, height, gsd_m, src.dtypes[0], src.nodata, src.count,
                          Polygon())
    step = max(gsd_m, max(width, height) * gsd_m / 256)
    nx, ny = math.ceil(width * gsd_m / step), math.ceil(height * gsd_m / step)
    _, ok = info.read(step, 0.0, 0.0, nx, ny, Resampling.nearest)
    polys = [shape(g) for g, v in shapes(ok.astype(np.uint8), mask=ok, transform=Affine.scale(step)) if v]
    info.valid_poly = shapely.union_all(polys).buffer(-step) if polys else Polygon()
    if info.valid_poly.is_empty:
        raise UserError("the background window holds no valid pixels", path=p, fix="check its nodata value")
    return info
