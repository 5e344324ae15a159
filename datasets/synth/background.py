"""Real backgrounds: orthophotos (GeoTIFF in any CRS, or PNG/JPEG) that sites and look-alikes are pasted on.

A background is resampled to the scene's pixel size in its own CRS (the scene keeps it). A georeferenced
image larger than the scene gives a seeded window of the scene size; a smaller one (many real tiles are
40-80 m across) is mirrored (reflected at its edges) up to ``paste.min_extent_m`` per side, so a scene
holds at least a few 64 m model windows; scene.json records which part is real. A PNG/JPEG without
georeferencing is placed in a UTM frame at a seeded point of a recipe region at ``background_gsd_m``.

The local frame (``u`` metres east, ``v`` metres south of the scene's top-left corner) maps to the
output CRS through the same :class:`~minewatch.datasets.synth.geo.Frame` as procedural scenes.
Everything read is linear reflectance-like (8-bit images are display-encoded: DN/255 ** 2.2).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.features import shapes
from rasterio.warp import Resampling, reproject
from rasterio.warp import transform as warp_transform
from shapely.geometry import Polygon, shape

from minewatch.datasets.synth.geo import Frame, pick_region, utm_frame
from minewatch.datasets.synth.objects import uni
from minewatch.datasets.synth.recipe import BackgroundEntry, Region
from minewatch.errors import UserError

DRIVERS = {".tif": "GTiff", ".tiff": "GTiff", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_SOURCE_PIXELS = 400_000_000  # a GeoTIFF can declare any size: refuse before reading
MAX_IMAGE_PIXELS = 100_000_000  # PNG/JPEG are read whole
MIN_BACKGROUND_M = 20.0  # a smaller background would be mostly mirror copies
WINDOW_CANDIDATES = 8  # seeded windows tried on a large background; the one with most valid pixels wins
VALID_STEP_PX = 256  # the footprint polygon is traced on a grid of about this many cells per side
WATER_SIDECARS = (".water.png", ".water.tif")  # a user's water mask beside a background image


def collect_backgrounds(paths: Sequence[Path | str]) -> list[Path]:
    """Files and folders (searched recursively for .tif/.tiff/.png/.jpg/.jpeg) -> a sorted, unique list."""
    out: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DRIVERS
                     and not any(part.startswith(".") for part in f.relative_to(p).parts)]
            if not found:
                raise UserError("the background folder holds no GeoTIFF, PNG or JPEG", path=p,
                                fix="give a folder of orthophotos or the image files themselves")
            out.update(f.resolve() for f in found)
        elif p.is_file():
            if p.suffix.lower() not in DRIVERS:
                raise UserError(f"background files must be GeoTIFF, PNG or JPEG, not '{p.suffix}'", path=p,
                                fix="convert it (gdal_translate -of GTiff) or leave it out")
            out.add(p.resolve())
        else:
            raise UserError("no such background file or folder", path=p, fix="check the path")
    return sorted(out, key=str)


def background_files(entries: Sequence[Path | str | BackgroundEntry],
                     gsd_m: float | None = None) -> list[tuple[Path, float | None]]:
    """(file, pixel size for images without georeferencing) for files, folders and {path, gsd_m} entries,
    sorted by path (so a seed picks the same file from the same list in any order); ``gsd_m`` applies
    where an entry gives none."""
    out: dict[Path, float | None] = {}
    for e in entries:
        path, own = (e.path, e.gsd_m) if isinstance(e, BackgroundEntry) else (Path(e), None)
        for f in collect_backgrounds([path]):
            out[f] = own if own is not None else out.get(f, gsd_m)
    return sorted(out.items(), key=lambda kv: str(kv[0]))


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices folded into [0, n) by mirroring at the edges (edge pixels repeated, like np.pad 'symmetric')."""
    m = np.mod(idx, 2 * n)
    return np.where(m >= n, 2 * n - 1 - m, m)


def _bands(src: rasterio.io.DatasetReader) -> list[int]:
    """1-based indexes of red, green, blue and (if present) nir; alpha bands are never colours."""
    ci = list(src.colorinterp)
    colour = [i + 1 for i, c in enumerate(ci) if c != ColorInterp.alpha]
    named = {c: i + 1 for i, c in enumerate(ci)}
    if all(c in named for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        rgb = [named[ColorInterp.red], named[ColorInterp.green], named[ColorInterp.blue]]
        rest = [b for b in colour if b not in rgb]
        desc = {i + 1: (d or "").lower() for i, d in enumerate(src.descriptions)}
        nir = [b for b in rest if desc.get(b) == "nir"] or rest[:1]
        return rgb + nir[:1]
    return colour[:4]


def to_reflectance(dn: np.ndarray, dtype: str) -> np.ndarray:
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


def _metres_per_unit(crs: CRS, lat: float) -> tuple[float, float]:
    """Metres per CRS unit along x and y at latitude ``lat``."""
    if crs.is_geographic:
        phi = math.radians(lat)
        my = 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
        mx = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
        return mx, my
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(factor), float(factor)


@dataclass
class _Source:
    """Where a background's pixels come from: the file (georeferenced) or the image in memory."""

    path: Path
    driver: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    dtype: str
    nodata: float | None
    bands: list[int]
    array: np.ndarray | None = None  # (bands, h, w) for images without georeferencing
    mask: np.ndarray | None = None  # (h, w) uint8, 255 = valid
    black_is_nodata: bool = False  # no nodata, mask or alpha: pure black pixels are taken as outside the image


@dataclass
class Background:
    """The scene's view of a background: frame, size, the real part and how to read any grid of it."""

    path: Path
    frame: Frame
    width: int  # scene size at gsd_m, pixels
    height: int
    gsd_m: float
    source_gsd_m: float  # the background's own pixel size, metres
    georeferenced: bool
    data_px: tuple[int, int, int, int]  # scene pixels holding the real background: col0, row0, cols, rows
    source: _Source
    valid_poly: Any = field(default_factory=Polygon)  # local frame, where the background has data (polygon(s))
    water: Any = None  # detected water, local metres (shapely geometry or None)
    clutter: Any = None  # (texture field, open-ground limit) for placement, or None
    match: Any = None  # how pasted objects are rendered over it (match.Match)
    stats: dict[str, Any] = field(default_factory=dict)  # the appearance estimates behind it, for scene.json
    _canvas: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def dtype(self) -> str:
        return self.source.dtype

    @property
    def mirrored(self) -> bool:
        c0, r0, nc, nr = self.data_px
        return nc < self.width or nr < self.height

    @property
    def data_box_m(self) -> tuple[float, float, float, float]:
        """Local extent (u0, v0, u1, v1) of the real background."""
        c0, r0, nc, nr = self.data_px
        g = self.gsd_m
        return c0 * g, r0 * g, (c0 + nc) * g, (r0 + nr) * g

    def _reproject(self, dst_tr: Affine, width: int, height: int,
                   resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
        src = self.source
        n = len(src.bands)
        out = np.zeros((n, height, width), np.float32)
        valid = np.zeros((height, width), np.float32)
        kw = {"dst_transform": dst_tr, "dst_crs": self.frame.crs}
        if src.array is not None:
            for b in range(n):
                reproject(src.array[b].astype(np.float32), out[b], src_transform=src.transform, src_crs=src.crs,
                          resampling=resampling, src_nodata=src.nodata, dst_nodata=np.nan, init_dest_nodata=True,
                          **kw)
            src_mask = src.mask
        else:
            with rasterio.open(src.path, driver=src.driver) as ds:
                for b, band in enumerate(src.bands):
                    reproject(rasterio.band(ds, band), out[b], resampling=resampling, src_nodata=src.nodata,
                              dst_nodata=np.nan, init_dest_nodata=True, **kw)
                src_mask = ds.dataset_mask()
        reproject(src_mask.astype(np.float32), valid, src_transform=src.transform, src_crs=src.crs,
                  resampling=Resampling.bilinear, dst_nodata=0.0, init_dest_nodata=True, **kw)
        ok = (valid > 127) & np.all(np.isfinite(out), axis=0)
        if src.black_is_nodata:
            ok &= ~np.all(out[:3] == 0, axis=0)
        return to_reflectance(np.nan_to_num(out, nan=0.0), src.dtype), ok

    def _resampling(self, step_m: float) -> Resampling:
        return Resampling.average if step_m > 1.5 * self.source_gsd_m else Resampling.bilinear

    def read(self, step_m: float, origin_u: float, origin_v: float, width: int, height: int,
             resampling: Resampling | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Linear reflectance (4, h, w) float32 and a validity mask on a grid of the frame (mirrored
        beyond the real background when the scene is larger than it)."""
        rs = resampling or self._resampling(step_m)
        if not self.mirrored:
            return self._reproject(self.frame.grid_transform(origin_u, origin_v, step_m), width, height, rs)
        u0, v0, u1, v1 = self.data_box_m
        nx, ny = max(1, round((u1 - u0) / step_m)), max(1, round((v1 - v0) / step_m))
        sx, sy = (u1 - u0) / nx, (v1 - v0) / ny
        tr = self.frame.affine * Affine.translation(u0, v0) * Affine.scale(sx, sy)
        data, ok = self._reproject(tr, nx, ny, rs)
        cols = _reflect(np.floor((origin_u + (np.arange(width) + 0.5) * step_m - u0) / sx).astype(np.int64), nx)
        rows = _reflect(np.floor((origin_v + (np.arange(height) + 0.5) * step_m - v0) / sy).astype(np.int64), ny)
        return data[:, rows][:, :, cols], ok[rows][:, cols]

    def canvas(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole scene grid (4, height, width) and its validity, read once."""
        if self._canvas is None:
            self._canvas = self.read(self.gsd_m, 0.0, 0.0, self.width, self.height)
        return self._canvas

    def water_sidecar(self, step_m: float, width: int, height: int) -> np.ndarray | None:
        """The user's water mask for this background, on a grid of the frame: ``<image>.water.png`` or
        ``<image>.water.tif`` beside the image (its pixel grid; nonzero = water), or None without one.
        For water the detection misses (silty brown rivers, flooded fields)."""
        side = next((self.path.with_name(self.path.name + ext) for ext in WATER_SIDECARS
                     if self.path.with_name(self.path.name + ext).is_file()), None)
        if side is None:
            return None
        with _open(side) as ds:
            if (ds.width, ds.height) != (self.source.width, self.source.height):
                raise UserError(f"the water mask is {ds.width} x {ds.height} px, the image "
                                f"{self.source.width} x {self.source.height}", path=side,
                                fix="give a mask on the image's own pixel grid (nonzero = water)")
            wet = (ds.read(1) > 0).astype(np.uint8) * 255
        src = dataclasses.replace(self.source, array=wet[None], mask=np.full(wet.shape, 255, np.uint8), bands=[1],
                                  dtype="uint8", nodata=None, black_is_nodata=False)
        lin, _ = dataclasses.replace(self, source=src, _canvas=None).read(step_m, 0.0, 0.0, width, height,
                                                                          Resampling.nearest)
        return lin[0] > 0.5

    def summary(self) -> dict[str, Any]:
        """What scene.json records about the background."""
        u0, v0, u1, v1 = self.data_box_m
        return {"path": str(self.path), "georeferenced": self.georeferenced,
                "source_gsd_m": round(self.source_gsd_m, 4), "mirrored": self.mirrored,
                "real_box_m": [round(u0, 2), round(v0, 2), round(u1, 2), round(v1, 2)],
                "water_m2": round(float(self.water.area), 1) if self.water is not None else 0.0,
                "match": self.stats}


def _open(path: Path) -> rasterio.io.DatasetReader:
    driver = DRIVERS.get(path.suffix.lower())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path, driver=driver)
    except RasterioIOError:
        kind = {"GTiff": "a GeoTIFF", "PNG": "a PNG", "JPEG": "a JPEG"}.get(driver or "", "an image")
        raise UserError(f"cannot open the background as {kind}", path=path,
                        fix="give a GeoTIFF, PNG or JPEG optical image") from None


def _black_is_nodata(src: rasterio.io.DatasetReader) -> bool:
    """Orthophotos without nodata, mask or alpha usually mark outside the image with pure black."""
    return src.nodata is None and all(f == [MaskFlags.all_valid] for f in src.mask_flag_enums)


def _source(path: Path, gsd_hint: float | None, regions: list[Region],
            rng: np.random.Generator) -> tuple[_Source, float, float, float, float, bool]:
    """The source, its centre lon/lat, its pixel size in metres along x and y, and whether it was georeferenced."""
    src = _open(path)
    with src:
        if src.width * src.height > MAX_SOURCE_PIXELS:
            raise UserError(f"the background is too large ({src.width} x {src.height})", path=path,
                            fix="crop it to the area of interest")
        bands = _bands(src)
        if not bands:
            raise UserError("the background has no colour band", path=path, fix="give an RGB image")
        georef = src.crs is not None and not src.transform.is_identity
        t = src.transform
        if georef:
            if t.b != 0 or t.d != 0 or t.e >= 0:
                raise UserError("the background is rotated or not north-up", path=path, fix="warp it north-up first")
            left, bottom, right, top = src.bounds
            lon, lat = warp_transform(src.crs, "EPSG:4326", [(left + right) / 2], [(top + bottom) / 2])
            lon, lat = float(lon[0]), float(lat[0])
            mx, my = _metres_per_unit(src.crs, lat)
            s = _Source(path, src.driver, src.crs, t, src.width, src.height, src.dtypes[0], src.nodata, bands,
                        black_is_nodata=_black_is_nodata(src))
            return s, lon, lat, abs(t.a) * mx, abs(t.e) * my, True
        if gsd_hint is None:
            raise UserError("the background has no georeferencing and no pixel size was given", path=path,
                            fix="pass --background-gsd METRES (or background_gsd_m in the recipe), or use a GeoTIFF")
        if src.width * src.height > MAX_IMAGE_PIXELS:
            raise UserError(f"the image is too large to read whole ({src.width} x {src.height})", path=path,
                            fix="crop it or convert it to a tiled GeoTIFF")
        array = src.read(bands)
        mask = src.dataset_mask()
        if _black_is_nodata(src):
            mask = np.where(np.all(array[:3] == 0, axis=0), 0, mask).astype(np.uint8)
        nodata, driver = src.nodata, src.driver
    h, w = mask.shape
    region = pick_region(rng, regions)
    lon, lat = uni(rng, region.lon), uni(rng, region.lat)
    frame = utm_frame(lon, lat, w * gsd_hint, h * gsd_hint)
    tr = frame.affine * Affine.scale(gsd_hint)
    s = _Source(path, driver, frame.crs, tr, w, h, str(array.dtype), nodata, bands, array=array, mask=mask)
    return s, lon, lat, gsd_hint, gsd_hint, False


def open_background(path: Path, gsd_m: float, size: int, rng: np.random.Generator, *,
                    gsd_hint: float | None = None, min_extent_m: float = 0.0,
                    regions: list[Region] | None = None) -> Background:
    """Check a background and lay the scene over it: a seeded ``size`` window of a large background, or
    the whole of a small one mirrored up to ``min_extent_m`` per side (never beyond ``size`` pixels)."""
    p = Path(path)
    src, lon, lat, sx_m, sy_m, georef = _source(p, gsd_hint, regions or [], rng)
    w_m, h_m = src.width * sx_m, src.height * sy_m
    if min(w_m, h_m) < MIN_BACKGROUND_M:
        raise UserError(f"the background covers only {w_m:.0f} x {h_m:.0f} m", path=p,
                        fix=f"use a background of at least {MIN_BACKGROUND_M:g} m per side (or a finer pixel size)")
    want = max(1, math.ceil(min_extent_m / gsd_m))
    # per axis: scene pixels, real-background pixels in the scene, first real pixel, window offset (m)
    axes = []
    for extent in (w_m, h_m):
        real = int(extent / gsd_m)
        scene = min(size, max(real, want))
        axes.append([scene, min(real, scene), (scene - real) // 2 if real < scene else 0, extent])
    (width, nc, c0, _), (height, nr, r0, _) = axes
    # windows over a large background: a few seeded ones, the one with the most valid pixels wins
    mask = _coarse_mask(src)
    best, best_score = (0.0, 0.0), -1.0
    for i in range(WINDOW_CANDIDATES):
        off = []
        for scene, _real, first, extent in axes:
            room = extent - scene * gsd_m
            off.append(0.0 if first > 0 or room <= 0 else (rng.uniform(0, room) if i else room / 2))
        ox, oy = off
        r_0, r_1 = int(oy / h_m * mask.shape[0]), int((oy + nr * gsd_m) / h_m * mask.shape[0])
        c_0, c_1 = int(ox / w_m * mask.shape[1]), int((ox + nc * gsd_m) / w_m * mask.shape[1])
        score = float(mask[r_0:max(r_1, r_0 + 1), c_0:max(c_1, c_0 + 1)].mean())
        if score > best_score + 1e-9:
            best, best_score = (ox, oy), score
    ox, oy = best
    # the frame: local (u, v) -> the source CRS; the real pixels start at (c0, r0) of the scene
    t = src.transform
    step_x, step_y = t.a / sx_m, t.e / sy_m  # CRS units per metre (sign included)
    u_shift, v_shift = ox - c0 * gsd_m, oy - r0 * gsd_m
    affine = Affine(step_x, 0, t.c + u_shift * step_x, 0, step_y, t.f + v_shift * step_y)
    frame = Frame(src.crs, affine, lon, lat)
    bg = Background(p, frame, width, height, gsd_m, float(min(sx_m, sy_m)), georef, (c0, r0, nc, nr), src)
    bg.valid_poly = _valid_polygon(bg)
    if bg.valid_poly.is_empty:
        raise UserError("the background window holds no valid pixels", path=p, fix="check its nodata value or alpha")
    return bg


def _coarse_mask(src: _Source) -> np.ndarray:
    dec = max(1, int(max(src.width, src.height) / 512))
    shape_ = (max(1, src.height // dec), max(1, src.width // dec))
    if src.mask is not None:
        return src.mask[::dec, ::dec] > 0
    with rasterio.open(src.path, driver=src.driver) as ds:
        return ds.dataset_mask(out_shape=shape_) > 0


def _valid_polygon(bg: Background):
    step = max(bg.gsd_m, max(bg.width, bg.height) * bg.gsd_m / VALID_STEP_PX)
    nx, ny = math.ceil(bg.width * bg.gsd_m / step), math.ceil(bg.height * bg.gsd_m / step)
    _, ok = bg.read(step, 0.0, 0.0, nx, ny, Resampling.nearest)
    polys = [shape(g) for g, v in shapes(ok.astype(np.uint8), mask=ok, transform=Affine.scale(step)) if v]
    if not polys:
        return Polygon()
    return shapely.union_all(polys).buffer(-step)
