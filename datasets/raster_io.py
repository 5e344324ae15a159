"""Opening user rasters safely: expected drivers only, a size guard, a CRS, and a truncation probe.

Everything here raises :class:`UserError` with the file name, the problem and the fix.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from minewatch.datasets.crs import utm_epsg
from minewatch.datasets.vrt import check_vrt, is_vrt_file
from minewatch.errors import UserError, first_line, require_utf8_path

log = logging.getLogger(__name__)

# Formats a scene may come in. A VRT is accepted too, but only once datasets/vrt.py has checked everything it
# points at (a .vrt can point anywhere on disk).
ALLOWED_DRIVERS = ("GTiff", "COG", "JP2OpenJPEG", "PNG", "JPEG", "ENVI", "HFA", "netCDF")
# Largest declared raster accepted (pixels per band). 100 gigapixels is ~ a 316k x 316k scene: anything
# bigger is a corrupt or hostile header, refused before a single byte is allocated.
MAX_PIXELS = 100_000_000_000
# GDAL block cache: a few block rows of one reading swath (infer/reader.py), so overlapping bands reuse
# their blocks; more only grows memory with scene size once the cache fills. 20k px scan, medians of 5:
# 64 MB -> 487 MB peak RSS; 32 MB -> 420 MB, 7.3 s; 16 MB -> 392 MB but 7.99 s (4k px: ~335-350 MB).
GDAL_CACHE_MB = 32


def configure_gdal() -> None:
    """A sensible block cache and warp threads for every thread and process, set once (as environment
    variables, so no ``rasterio.Env`` has to stay open for a scene's lifetime); users' own settings win."""
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    os.environ.setdefault("GDAL_NUM_THREADS", str(min(4, os.cpu_count() or 1)))
    os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")


def open_raster(path: str | Path, *, what: str = "raster", need_crs: bool = True) -> rasterio.DatasetReader:
    """Open a raster for reading, refusing unexpected drivers, absurd sizes, missing CRS and truncation."""
    p = Path(path)
    require_utf8_path(p, what)
    if not p.exists():
        raise UserError(f"{what} not found", path=p, fix="check the path")
    if p.is_dir():
        raise UserError(f"{what} is a folder, not a raster file", path=p, fix="give the .tif file inside it")
    vrt = is_vrt_file(p)
    if vrt:
        check_vrt(p, accepted=ALLOWED_DRIVERS)
    try:
        with warnings.catch_warnings():
            # A raster without georeferencing is refused below with a message that says how to fix it.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except RasterioIOError as exc:
        raise UserError(
            f"cannot read the {what} ({first_line(exc)})",
            path=p,
            fix="give a GeoTIFF (or JPEG2000/PNG/JPEG with georeferencing); re-export it if it is damaged",
        ) from None
    try:
        _check(ds, p, what=what, need_crs=need_crs, vrt_checked=vrt)
    except Exception:
        ds.close()
        raise
    return ds


def _check(ds: rasterio.DatasetReader, p: Path, *, what: str, need_crs: bool, vrt_checked: bool = False) -> None:
    if ds.driver not in ALLOWED_DRIVERS and not (ds.driver == "VRT" and vrt_checked):
        raise UserError(
            f"{what} is a {ds.driver} file, which minewatch does not read",
            path=p,
            fix=f"convert it to GeoTIFF (gdal_translate); accepted: {', '.join(ALLOWED_DRIVERS)}",
        )
    if ds.width * ds.height > MAX_PIXELS:
        raise UserError(
            f"{what} declares {ds.width} x {ds.height} pixels, beyond the {MAX_PIXELS:.0e}-pixel limit",
            path=p,
            fix="check the file is not corrupt, or cut it into smaller rasters",
        )
    if need_crs and ds.crs is None:
        raise UserError(
            f"{what} has no coordinate reference system",
            path=p,
            fix="assign one, e.g. gdal_edit.py -a_srs EPSG:32633 FILE",
        )
    if need_crs and ds.transform.is_identity:
        raise UserError(f"{what} has no geotransform", path=p, fix="georeference the raster first")
    if ds.transform.b != 0 or ds.transform.d != 0:
        raise UserError(f"{what} is rotated", path=p, fix="warp it north-up first (gdalwarp)")
    _probe_last_block(ds, p, what=what)


@dataclass(frozen=True)
class RasterExtent:
    """What a raster covers, in metres, measured at its centre: enough to plan a scan before reading it."""

    gsd_m: float  # native pixel size (the larger side)
    width_m: float
    height_m: float


def raster_extent(src: rasterio.DatasetReader) -> RasterExtent:
    """Pixel size and extent in metres in the UTM zone of the raster's centre, whatever its CRS (degrees,
    feet, Web Mercator's inflated metres are all measured on the ground)."""
    left, bottom, right, top = src.bounds
    cx, cy = (left + right) / 2, (top + bottom) / 2
    lon, lat = warp_transform(src.crs, "EPSG:4326", [cx], [cy])
    utm = f"EPSG:{utm_epsg(lon[0], lat[0])}"
    px, py = abs(src.transform.a), abs(src.transform.e)
    xs, ys = warp_transform(src.crs, utm, [cx, cx + px, cx, left, right, cx, cx],
                            [cy, cy, cy + py, cy, cy, bottom, top])
    gx = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    gy = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    return RasterExtent(max(gx, gy), math.hypot(xs[4] - xs[3], ys[4] - ys[3]),
                        math.hypot(xs[6] - xs[5], ys[6] - ys[5]))


def _probe_last_block(ds: rasterio.DatasetReader, p: Path, *, what: str) -> None:
    """Read the last block of each band: a truncated file fails here, not halfway through a scan."""
    bh, bw = ds.block_shapes[0]
    row = max(0, ds.height - bh)
    col = max(0, ds.width - bw)
    try:
        ds.read(window=Window(col, row, min(bw, ds.width), min(bh, ds.height)))
    except RasterioIOError as exc:
        raise UserError(
            f"{what} is truncated or damaged ({first_line(exc)})",
            path=p,
            fix="copy or download the file again",
        ) from None

