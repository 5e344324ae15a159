"""Prototype of a faster scan reader (a copy, for measurement only; the product's reader is untouched).

Two changes against ``minewatch.infer.reader.read_tiles`` + ``Scene`` reads, meant to be exact:

1. Unmasked reads. A masked read (``masked=True``) makes GDAL compute each band's mask with a second
   resampled read; with a nodata value the mask is just ``value == nodata``, so read once and compare.
2. Each model-grid row is read once. With a stride of half a tile, consecutive rows of tiles overlap
   by half, and reading one strip per row of tiles reads and resamples every pixel twice; here the scene
   is read in bands between consecutive tile edges, and a row of tiles is cut from the bands it covers.

Used by ``bench/child.py --reader proto``; the same signature as the product's ``read_tiles``;
``tests/bench`` checks that it yields the product's inputs.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from itertools import groupby

import numpy as np

from minewatch.datasets import thermal as th
from minewatch.datasets.features import InputSpec, assemble, cloud_fraction, nodata_fraction, pad_to
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile
from minewatch.infer.reader import TileRead, _nanmax

Band = tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]


def _read_unmasked(reader, indexes: list[int], tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """``GridReader.read`` without GDAL's mask pass: validity from the nodata value (or NaN)."""
    nodata = reader.src.nodata
    if nodata is None:
        return reader.read(indexes, tile)
    if reader.direct:
        plain = copy.copy(reader)
        plain.has_mask = False
        data, valid = plain.read(indexes, tile)
    else:
        data = reader.vrt.read(indexes, window=tile.window)
        valid = np.ones(data.shape[1:], dtype=bool)
    bad = data == nodata
    if data.dtype.kind == "f":
        bad |= np.isnan(data)
    return data, valid & ~bad.any(axis=0)


def _optical(scene: Scene, tile: Tile, bands: tuple[str, ...]) -> np.ndarray:
    """Like ``Scene.read_optical`` with an unmasked read."""
    indexes = [scene.band_names.index(b) + 1 for b in bands]
    data, valid = _read_unmasked(scene._optical, indexes, tile)
    out = data.astype(np.float32) * np.float32(scene._scale) + np.float32(scene._offset)
    out[:, ~valid] = np.nan
    return out


def _axis(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation indices and weight along one axis, edges held (``mode="nearest"``)."""
    x = x - 0.5
    i0 = np.floor(x).astype(np.intp)
    return np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1), x - i0


def sample_separable(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``thermal.sample_grid`` on the grid ``rows x cols``: bilinear, done as two 1-D passes."""
    r0, r1, fr = _axis(values.shape[0], rows)
    c0, c1, fc = _axis(values.shape[1], cols)
    v = values.astype(np.float64)
    a = v[r0] * (1 - fr)[:, None] + v[r1] * fr[:, None]
    return (a[:, c0] * (1 - fc) + a[:, c1] * fc).astype(np.float32)


def _anomaly(scene: Scene, tile: Tile, separable: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Like ``Scene.thermal_anomaly(tile)`` with an unmasked thermal read (and separable sampling)."""
    if scene._thermal is None or scene.background is None:
        return None
    raw, valid = _read_unmasked(scene._thermal, [1], tile)
    values = np.where(valid, raw[0].astype(np.float64), np.nan)
    kelvin = th.to_kelvin(values, scene._thermal_kind, source=scene.thermal_path, nodata=None)
    bg = scene.background
    ratio = scene.grid.gsd_m / bg.step_m
    rows = (np.arange(tile.row_off, tile.row_off + tile.height) + 0.5) * ratio
    cols = (np.arange(tile.col_off, tile.col_off + tile.width) + 0.5) * ratio
    if separable:
        return th.anomaly(kelvin, sample_separable(bg.median, rows, cols), sample_separable(bg.sigma, rows, cols))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return th.anomaly(kelvin, th.sample_grid(bg.median, rr, cc), th.sample_grid(bg.sigma, rr, cc))


def _window_sums(mask: np.ndarray) -> np.ndarray:
    """Summed-area table of a 2-D mask, zero-padded: the count in any window is four look-ups."""
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(mask, axis=0), axis=1, out=sat[1:, 1:])
    return sat


def _cloudy(optical: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """Per-pixel form of ``features.cloud_fraction``'s whiteness test."""
    vis = [bands.index(b) for b in ("red", "green", "blue") if b in bands]
    if len(vis) < 3:
        return np.zeros(optical.shape[1:], dtype=bool)
    v = optical[vis]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi, mean = np.nanmin(v, axis=0), np.nanmax(v, axis=0), np.nanmean(v, axis=0)
        return (lo > 0.5) & ((hi - lo) < 0.15 * mean)


def read_tiles(scene: Scene, tiles: Sequence[Tile], spec: InputSpec, *, max_nodata: float,
               max_cloud: float, strip_features: bool = False) -> Iterator[TileRead]:
    """Yield every tile in row-major order; each grid row is read once (see the module docstring).

    ``strip_features``: also the third and fourth changes of ``read_tiles_v2``.
    """
    if not tiles:
        return
    c0 = min(t.col_off for t in tiles)
    c1 = max(t.col_off + t.width for t in tiles)
    # Bands only between the edges of the regular rows (offsets on the stride): the last row, shifted
    # back to the raster edge, starts at an arbitrary offset where GDAL's fractional source window
    # would resample slightly differently, so it is read as one strip, as the product does.
    offsets = sorted({t.row_off for t in tiles})
    stride = min((b - a for a, b in zip(offsets, offsets[1:], strict=False)), default=0) or 1
    regular = {r for r in offsets if (r - offsets[0]) % stride == 0}
    edges = sorted({t.row_off for t in tiles if t.row_off in regular}
                   | {t.row_off + t.height for t in tiles if t.row_off in regular})
    cache: dict[int, Band] = {}
    ordered = sorted(tiles, key=lambda t: (t.row_off, t.col_off))
    for r0, group in groupby(ordered, key=lambda t: t.row_off):
        row = list(group)
        r1 = r0 + max(t.height for t in row)
        for key in [k for k in cache if k < r0]:
            del cache[key]
        if r0 in regular:
            starts = [e for e in edges if r0 <= e < r1]
            for i, b0 in enumerate(starts):
                if b0 not in cache:
                    b1 = starts[i + 1] if i + 1 < len(starts) else r1
                    band = Tile(-1, -1, b0, c0, b1 - b0, c1 - c0)
                    cache[b0] = (_optical(scene, band, spec.optical_bands),
                                 _anomaly(scene, band, separable=strip_features))
            pieces = [cache[b] for b in starts]
        else:
            strip = Tile(-1, -1, r0, c0, r1 - r0, c1 - c0)
            pieces = [(_optical(scene, strip, spec.optical_bands),
                       _anomaly(scene, strip, separable=strip_features))]
        optical = np.concatenate([p[0] for p in pieces], axis=1)
        dt_all = z_all = None
        if pieces[0][1] is not None:
            dt_all = np.concatenate([p[1][0] for p in pieces], axis=0)  # type: ignore[index]
            z_all = np.concatenate([p[1][1] for p in pieces], axis=0)  # type: ignore[index]
        if strip_features:
            yield from _tiles_of_strip(row, c0, optical, dt_all, z_all, spec, max_nodata, max_cloud)
            continue
        for t in row:
            cols = slice(t.col_off - c0, t.col_off - c0 + t.width)
            opt = optical[:, : t.height, cols]
            dt = None if dt_all is None else dt_all[: t.height, cols]
            z = None if z_all is None else z_all[: t.height, cols]
            nod = nodata_fraction(opt)
            cloud = cloud_fraction(opt, spec.optical_bands)
            dt_max, z_max = _nanmax(dt), _nanmax(z)
            if nod > max_nodata or cloud > max_cloud:
                yield TileRead(t, None, nod, cloud, dt_max, z_max)
                continue
            yield TileRead(t, pad_to(assemble(opt, dt, spec), spec.tile_px), nod, cloud, dt_max, z_max)


def _tiles_of_strip(row: list[Tile], c0: int, optical: np.ndarray, dt_all: np.ndarray | None,
                    z_all: np.ndarray | None, spec: InputSpec, max_nodata: float,
                    max_cloud: float) -> Iterator[TileRead]:
    """A row of tiles from features computed once over the strip (all per-pixel steps are pointwise)."""
    h = max(t.height for t in row)
    x_all = assemble(optical[:, :h], None if dt_all is None else dt_all[:h], spec)
    nod_sat = _window_sums(np.isnan(optical[:, :h]).any(axis=0))
    cloud_sat = _window_sums(_cloudy(optical[:, :h], spec.optical_bands))
    for t in row:
        a, b = t.col_off - c0, t.col_off - c0 + t.width
        n = t.height * t.width
        nod = float((nod_sat[t.height, b] - nod_sat[0, b] - nod_sat[t.height, a] + nod_sat[0, a]) / n)
        cloud = float((cloud_sat[t.height, b] - cloud_sat[0, b] - cloud_sat[t.height, a] + cloud_sat[0, a]) / n)
        dt_max = _nanmax(None if dt_all is None else dt_all[: t.height, a:b])
        z_max = _nanmax(None if z_all is None else z_all[: t.height, a:b])
        if nod > max_nodata or cloud > max_cloud:
            yield TileRead(t, None, nod, cloud, dt_max, z_max)
            continue
        x = np.ascontiguousarray(x_all[:, : t.height, a:b])  # a copy: the strip is not kept alive
        yield TileRead(t, pad_to(x, spec.tile_px), nod, cloud, dt_max, z_max)


def read_tiles_v2(scene: Scene, tiles: Sequence[Tile], spec: InputSpec, *, max_nodata: float,
                  max_cloud: float) -> Iterator[TileRead]:
    """``read_tiles`` plus: (3) the thermal background sampled by two 1-D linear passes instead of
    ``ndimage.map_coordinates`` on a meshgrid (same bilinear formula, float rounding may differ); (4) the
    model input, nodata and cloud masks computed once per strip (each pixel once instead of up to four
    times), the per-tile fractions from summed-area tables."""
    return read_tiles(scene, tiles, spec, max_nodata=max_nodata, max_cloud=max_cloud, strip_features=True)
