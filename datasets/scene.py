"""A Scene: one acquisition (optical + optional thermal), each in its own CRS and grid, read lazily onto
one target grid at the model's ground sample distance.

Nothing scene-sized is ever held: windows are read on demand through ``WarpedVRT``. The only whole-scene
array is the thermal background, on a grid ``background_gsd_m`` coarse (1/2500 of the pixels for a
0.5 m model grid and a 25 m background step).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from minewatch.datasets import thermal as th
from minewatch.datasets.acquisition import acquisition_of
from minewatch.datasets.bands import band_names_of, check_bands
from minewatch.datasets.crs import is_metric, utm_epsg
from minewatch.datasets.profiles import SensorProfile, load_profile
from minewatch.datasets.raster_io import configure_gdal, open_raster
from minewatch.datasets.scene_folder import SceneFiles
from minewatch.datasets.tiling import Grid, Tile
from minewatch.datasets.values import Scaling, ValueSample, choose_scaling, collar_value, sample_raster
from minewatch.errors import UserError, first_line
from minewatch.model_meta import ModelMeta

log = logging.getLogger(__name__)
configure_gdal()


def target_grid(src: rasterio.DatasetReader, gsd_m: float) -> Grid:
    """The model grid over a raster: its own CRS when metric, else the UTM zone of its centre."""
    if is_metric(src.crs) and src.transform.e < 0:
        left, bottom, right, top = src.bounds
        # Floor: the grid lies inside the raster, so direct reads never leave it (at most one partial
        # model pixel at the right and bottom edges is dropped).
        width = max(1, math.floor((right - left) / gsd_m + 1e-6))
        height = max(1, math.floor((top - bottom) / gsd_m + 1e-6))
        return Grid(src.crs, Affine(gsd_m, 0, left, 0, -gsd_m, top), width, height)
    lon0, lat0, lon1, lat1 = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    dst = CRS.from_epsg(utm_epsg((lon0 + lon1) / 2, (lat0 + lat1) / 2))
    transform, width, height = calculate_default_transform(
        src.crs, dst, src.width, src.height, *src.bounds, resolution=gsd_m
    )
    return Grid(dst, transform, int(width), int(height))


def _native_gsd_m(src: rasterio.DatasetReader, grid: Grid) -> float:
    """Approximate source pixel size in the grid's units (for choosing a resampling kernel)."""
    left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds)
    return max((right - left) / src.width, (top - bottom) / src.height)


class GridReader:
    """Reads windows of the target grid from one source raster.

    When the source shares the grid's CRS (the common case) windows are read straight from the file with a
    fractional source window and ``out_shape`` (GDAL resamples on the fly): about ten times cheaper than a
    masked ``WarpedVRT`` read. Other CRSs go through a ``WarpedVRT``.
    """

    def __init__(self, src: rasterio.DatasetReader, grid: Grid, resampling: Resampling, *,
                 nodata: float | None = None) -> None:
        self.src = src
        self.grid = grid
        self.resampling = resampling
        t = src.transform
        self.nodata = src.nodata if nodata is None else nodata
        # A nodata value the file does not carry (--nodata, an untagged collar) must reach GDAL's resampling,
        # so those reads go through a warp that knows it.
        own_nodata = self.nodata is not None and self.nodata != src.nodata
        self.direct = src.crs == grid.crs and t.b == 0 and t.d == 0 and t.e < 0 and not own_nodata
        self.vrt = None if self.direct else _warp(src, grid, resampling=resampling, nodata=self.nodata)
        # With a nodata value, validity is ``value != nodata`` (GDAL's resampling already skips nodata
        # pixels); only an internal mask or alpha band (or a warp without nodata, which adds alpha) needs
        # GDAL's mask pass: a second resampled read.
        internal_mask = any(rasterio.enums.MaskFlags.all_valid not in flags
                            and rasterio.enums.MaskFlags.nodata not in flags for flags in src.mask_flag_enums)
        self.mask_pass = internal_mask or (self.nodata is None and not self.direct)

    def _valid(self, data: np.ndarray) -> np.ndarray:
        """Validity of unmasked values: not nodata (nor NaN) in any band."""
        bad = data == self.nodata
        if data.dtype.kind == "f":
            bad |= np.isnan(data)
        return ~bad.any(axis=0)

    def read(self, indexes: list[int], tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """(bands, h, w) values and an (h, w) bool validity mask for one window of the grid."""
        h, w = tile.height, tile.width
        if not self.direct:
            if self.mask_pass:
                data = self.vrt.read(indexes, window=tile.window, masked=True)
                return data.data, ~np.ma.getmaskarray(data).any(axis=0)
            data = self.vrt.read(indexes, window=tile.window)
            return data, self._valid(data)
        g, t = self.grid.transform, self.src.transform
        # The window's edges in source pixel coordinates (fractional).
        x0 = g.c + tile.col_off * g.a
        y0 = g.f + tile.row_off * g.e
        c0, r0 = (x0 - t.c) / t.a, (y0 - t.f) / t.e
        sx, sy = g.a / t.a, g.e / t.e  # source pixels per grid pixel
        # Clip to the source: grid columns [dc0, dc1) and rows [dr0, dr1) that the raster covers.
        dc0 = max(0, math.ceil(-c0 / sx - 1e-9))
        dr0 = max(0, math.ceil(-r0 / sy - 1e-9))
        dc1 = min(w, math.floor((self.src.width - c0) / sx + 1e-9))
        dr1 = min(h, math.floor((self.src.height - r0) / sy + 1e-9))
        out = np.zeros((len(indexes), h, w), dtype=self.src.dtypes[0])
        valid = np.zeros((h, w), dtype=bool)
        if dc1 <= dc0 or dr1 <= dr0:
            return out, valid
        window = Window(c0 + dc0 * sx, r0 + dr0 * sy, (dc1 - dc0) * sx, (dr1 - dr0) * sy)
        shape = (len(indexes), dr1 - dr0, dc1 - dc0)
        if self.mask_pass:
            data = self.src.read(indexes, window=window, out_shape=shape, resampling=self.resampling,
                                 masked=True)
            out[:, dr0:dr1, dc0:dc1] = data.data
            valid[dr0:dr1, dc0:dc1] = ~np.ma.getmaskarray(data).any(axis=0)
        else:
            data = self.src.read(indexes, window=window, out_shape=shape, resampling=self.resampling)
            out[:, dr0:dr1, dc0:dc1] = data
            valid[dr0:dr1, dc0:dc1] = True if self.nodata is None else self._valid(data)
        return out, valid

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()


BACKGROUND_SLAB_SOURCE_PX = 8_000_000
"""Thermal source pixels (about) behind one slab of the background read: 32 MB of float32."""


def _warp(src: rasterio.DatasetReader, grid: Grid, *, resampling: Resampling,
          nodata: float | None = None) -> WarpedVRT:
    nodata = src.nodata if nodata is None else nodata
    kwargs = {}
    has_alpha = any(rasterio.enums.MaskFlags.alpha in flags for flags in src.mask_flag_enums)
    if nodata is None and src.crs != grid.crs and not has_alpha:
        kwargs["add_alpha"] = True  # know where the reprojected footprint ends (an alpha band already says)
    return WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                     resampling=resampling, src_nodata=nodata, nodata=nodata, **kwargs)


@dataclass(frozen=True)
class ReadOptions:
    """What the user says about the rasters when their metadata does not (or says it wrong)."""

    nodata: float | None = None  # optical nodata value (--nodata)
    scale: float | None = None  # optical value -> reflectance factor (--scale)
    bands: tuple[str, ...] | None = None  # optical band names in file order (--bands)
    thermal_units: str | None = None  # K / kelvin / degC / celsius / degF / fahrenheit (--thermal-units)


class Scene:
    """One acquisition read lazily on the model grid. Use as a context manager, or call close()."""

    def __init__(self, optical: str | Path, thermal: str | Path | None = None, *,
                 profile: SensorProfile | str | None = None, gsd_m: float | None = None,
                 options: ReadOptions | None = None, background_m: float = th.DEFAULT_BACKGROUND_M,
                 background_gsd_m: float | None = None) -> None:
        self.optical_path = Path(optical)
        self.thermal_path = Path(thermal) if thermal is not None else None
        self.profile = profile if isinstance(profile, SensorProfile) else load_profile(profile or "drone")
        self._handles: list = []
        try:
            self.options = options or ReadOptions()
            self._open(gsd_m or self.profile.model_gsd_m, background_m, background_gsd_m)
        except Exception:
            self.close()
            raise

    @classmethod
    def for_model(cls, meta: ModelMeta, optical: str | Path, thermal: str | Path | None = None, *,
                  profile: SensorProfile | str | None = None, options: ReadOptions | None = None) -> Scene:
        """The scene as ``meta``'s model sees it: its grid, sensor profile and thermal background."""
        return SceneOpener.for_model(meta).open(optical, thermal, profile=profile, options=options)

    def _open(self, gsd_m: float, background_m: float, background_gsd_m: float | None) -> None:
        src = open_raster(self.optical_path, what="optical raster")
        self._handles.append(src)
        opts = self.options
        self.grid = target_grid(src, gsd_m)
        self.band_names = band_names_of(src.descriptions, src.count, self.profile, self.optical_path,
                                        override=opts.bands)
        native = _native_gsd_m(src, self.grid)
        kernel = Resampling.average if native < gsd_m * 0.95 else Resampling.bilinear
        self.nodata, self.nodata_source = self._optical_nodata(src)
        self._optical = GridReader(src, self.grid, kernel, nodata=self.nodata)
        self._handles.append(self._optical)
        self.scaling = self._optical_scaling(src)
        self._scale, self._offset = self.scaling.scale, self.scaling.offset
        tags = src.tags()
        info = acquisition_of(self.optical_path, tags)
        self.scene_id = tags.get("MINEWATCH_SCENE_ID") or _default_scene_id(self.optical_path)
        self.acquired = info.acquired
        self.sensor = info.sensor or self.profile.name
        self._thermal: GridReader | None = None
        self.background: th.Background | None = None
        if self.thermal_path is not None:
            self._open_thermal(opts.thermal_units, background_m, th.background_gsd(background_m, background_gsd_m))

    def _sample(self, src: rasterio.DatasetReader) -> ValueSample:
        if self._value_sample is None:
            self._value_sample = sample_raster(src, list(range(1, src.count + 1)), src.nodata)
        return self._value_sample

    _value_sample: ValueSample | None = None

    def _optical_nodata(self, src: rasterio.DatasetReader) -> tuple[float | None, str]:
        """The optical nodata value and where it came from: --nodata, the file's tag, or a collar of 0 (or
        255) along the edges that nobody tagged (then masked, with a warning)."""
        if self.options.nodata is not None:
            return self.options.nodata, "--nodata"
        if src.nodata is not None:
            return src.nodata, "nodata tag"
        if any(rasterio.enums.MaskFlags.per_dataset in f or rasterio.enums.MaskFlags.alpha in f
               for f in src.mask_flag_enums):
            return None, "internal mask"
        value = collar_value(self._sample(src))
        if value is None:
            return None, "none"
        return value, f"collar of {value:g} along the edges"

    def _optical_scaling(self, src: rasterio.DatasetReader) -> Scaling:
        """The profile's scale when the raster is stored as the profile says, else inferred (``guessed``)."""
        spec = self.profile.optical
        self.scale_guessed = self.options.scale is None and src.dtypes[0] != spec.dtype
        if self.options.scale is None and src.dtypes[0] == spec.dtype:
            return choose_scaling(ValueSample(src.dtypes[0], 0, 0, 0, True, ()), spec,
                                  path=self.optical_path)
        return choose_scaling(self._sample(src), spec, path=self.optical_path, override=self.options.scale)

    def _open_thermal(self, units: str | None, background_m: float, step_m: float) -> None:
        assert self.thermal_path is not None
        src = open_raster(self.thermal_path, what="thermal raster")
        self._handles.append(src)
        if src.count != 1:
            raise UserError(f"thermal raster has {src.count} bands, expected 1", path=self.thermal_path,
                            fix="give the single thermal band (e.g. Landsat B10)")
        tags = {k.upper(): v for k, v in src.tags().items()}
        self._thermal_kind = th.detect_thermal_kind(self.thermal_path, tags.get("UNITS"), units, src.units[0])
        self._thermal_nodata = src.nodata
        overlap = _overlap_fraction(self.grid, src)
        if overlap < 0.01:
            raise UserError("thermal raster does not overlap the optical raster", path=self.thermal_path,
                            fix="give the thermal image of the same scene")
        self._thermal = GridReader(src, self.grid, Resampling.bilinear)
        self._handles.append(self._thermal)
        self.background = self._estimate_background(src, background_m, step_m)

    def _estimate_background(self, src: rasterio.DatasetReader, window_m: float, step_m: float) -> th.Background:
        """Read thermal area-averaged onto a coarse grid and take the robust local background."""
        left, bottom, right, top = self.grid.bounds
        w = max(1, math.ceil((right - left) / step_m))
        h = max(1, math.ceil((top - bottom) / step_m))
        # In slabs of coarse rows, each through its own warp: one warp of the whole grid held most of a large
        # thermal raster (+200 MB for a 10 km scene at 0.8 m); every cell is averaged alike either way.
        rows = math.ceil(h / max(1.0, src.width * src.height / BACKGROUND_SLAB_SOURCE_PX))
        slabs = []
        for r in range(0, h, rows):
            slab = Grid(self.grid.crs, Affine(step_m, 0, left, 0, -step_m, top - r * step_m), w, min(rows, h - r))
            with _warp(src, slab, resampling=Resampling.average) as vrt:
                slabs.append(vrt.read(1, masked=True))
        raw = np.ma.concatenate(slabs)
        kelvin = th.to_kelvin(raw.filled(np.nan) if raw.dtype.kind == "f" else raw.astype("float64").filled(np.nan),
                              self._thermal_kind, source=self.thermal_path, nodata=None)
        return th.robust_background(kelvin, step_m, window_m)

    # ------------------------------------------------------------------ reads
    @property
    def striped(self) -> bool:
        """True when the optical file stores whole scanlines per block: reading it in column swaths would
        decode every scanline once per swath, so it is read in full-width strips."""
        src = self._optical.src
        return src.block_shapes[0][1] >= src.width

    @property
    def has_thermal(self) -> bool:
        return self._thermal is not None

    @property
    def thermal_kind(self) -> str | None:
        """What the thermal raster holds (kelvin, celsius, fahrenheit, landsat_l1, landsat_l2_st); None without."""
        return self._thermal_kind if self._thermal is not None else None

    def read_optical(self, tile: Tile, bands: tuple[str, ...] | None = None) -> np.ndarray:
        """(B, h, w) float32 reflectance of the named bands (default all), NaN where nodata."""
        names = bands or self.band_names
        check_bands(self.band_names, names, path=self.optical_path)
        indexes = [self.band_names.index(b) + 1 for b in names]
        data, valid = self._read(self._optical, indexes, tile, self.optical_path)
        out = data.astype(np.float32) * np.float32(self._scale) + np.float32(self._offset)
        out[:, ~valid] = np.nan
        return out

    def read_thermal(self, tile: Tile) -> np.ndarray | None:
        """(h, w) float32 kelvin, NaN where nodata; None without thermal."""
        if self._thermal is None:
            return None
        raw, valid = self._read(self._thermal, [1], tile, self.thermal_path)
        values = np.where(valid, raw[0].astype(np.float64), np.nan)
        return th.to_kelvin(values, self._thermal_kind, source=self.thermal_path, nodata=None)

    def _read(self, reader: GridReader, indexes: list[int], tile: Tile, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """A window read; a damaged block is a user error naming the file and where it is."""
        try:
            return reader.read(indexes, tile)
        except RasterioIOError as exc:
            left, bottom, right, top = tile.bounds(self.grid.transform)
            raise UserError(f"cannot read the window {left:.0f},{bottom:.0f} - {right:.0f},{top:.0f} "
                            f"({self.grid.crs.to_string()}): the file is damaged there ({first_line(exc, 100)})",
                            path=path, fix="copy or export the raster again") from None

    def thermal_anomaly(self, tile: Tile) -> tuple[np.ndarray, np.ndarray] | None:
        """(dt_k, z) of a tile against the scene's robust background; None without thermal."""
        kelvin = self.read_thermal(tile)
        if kelvin is None or self.background is None:
            return None
        ratio = self.grid.gsd_m / self.background.step_m
        rows = (np.arange(tile.row_off, tile.row_off + tile.height) + 0.5) * ratio
        cols = (np.arange(tile.col_off, tile.col_off + tile.width) + 0.5) * ratio
        median = th.sample_grid(self.background.median, rows, cols)
        sigma = th.sample_grid(self.background.sigma, rows, cols)
        return th.anomaly(kelvin, median, sigma)

    def close(self) -> None:
        for handle in reversed(self._handles):
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _overlap_fraction(grid: Grid, src: rasterio.DatasetReader) -> float:
    """Share of the grid's area that the raster covers."""
    left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds)
    g = grid.bounds
    w = max(0.0, min(right, g[2]) - max(left, g[0]))
    h = max(0.0, min(top, g[3]) - max(bottom, g[1]))
    return (w * h) / ((g[2] - g[0]) * (g[3] - g[1]))


def _default_scene_id(path: Path) -> str:
    stem = path.stem
    return f"{path.parent.name}-{stem}" if stem in ("optical", "image", "rgb") and path.parent.name else stem


@dataclass(frozen=True)
class SceneOpener:
    """How scenes are opened for one model: sensor profile, model grid and thermal background.

    Built from a model's metadata (scanning, evaluation, export) or a training config, so every path that
    reads scenes for a model reads them the same way; picklable, so worker processes open their own.
    """

    profile: SensorProfile | str
    gsd_m: float
    background_m: float = th.DEFAULT_BACKGROUND_M
    background_gsd_m: float | None = None

    @classmethod
    def for_model(cls, meta: ModelMeta) -> SceneOpener:
        return cls(meta.profile, meta.gsd_m, meta.thermal.background_m, meta.thermal.background_gsd_m)

    def open(self, optical: str | Path, thermal: str | Path | None = None, *,
             profile: SensorProfile | str | None = None, options: ReadOptions | None = None) -> Scene:
        """Open one scene (``profile`` overrides the model's, e.g. from --profile)."""
        return Scene(optical, thermal, profile=profile or self.profile, gsd_m=self.gsd_m, options=options,
                     background_m=self.background_m, background_gsd_m=self.background_gsd_m)

    def open_folder(self, files: SceneFiles, *, thermal: bool = True) -> Scene:
        """Open a scene folder (without its thermal raster when ``thermal`` is False)."""
        return self.open(files.optical, files.thermal if thermal else None)
