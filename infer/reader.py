"""Streaming tile reader: every model-grid row is read and turned into model input once.

Windows overlap (stride = half a tile by default), so reading each window, or even each row of windows,
reads and resamples most pixels twice or four times. Instead the scene is read in strips (horizontal
slabs) between consecutive tile edges; a strip's model input, nodata and cloud masks and thermal excess
are computed once and kept while a row of windows still needs it, and each window is a slice of its row.
Per-window figures (nodata and cloud shares, thermal maxima) come from column reductions of the row: a few
look-ups per window.

Bands are at most ``SWATH_PX`` model pixels wide: the scene is read in vertical swaths of whole tile
columns, so the memory a scan holds (strips, rows, GDAL's block cache) does not grow with the scene's width.
Striped files (whole scanlines per block) are the exception: a swath would decode every scanline again, so
they are read full width. ``prefetch`` runs the reader on a background thread (GDAL and numpy release the
GIL) while the model runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from minewatch.datasets.model_input import InputSpec, assemble, cloud_mask, pad_to
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile

_DONE = object()
SWATH_PX = 2048
"""Widest strip read at once, model pixels (2048 px at 0.5 m: 1 km; 40 MB of model input per row of tiles)."""


@dataclass
class TileRead:
    """One window, ready for the model (or skipped, with the reason)."""

    tile: Tile
    x: np.ndarray | None
    nodata_fraction: float
    cloud_fraction: float
    dt_max_k: float
    z_max: float


@dataclass
class Strip:
    """A strip of the scene over a swath's columns: its model input and, per column, what windows report.

    Windows cover whole strips in height, so a window's nodata and cloud shares and thermal maxima are
    sums and maxima of these per-column figures over its columns: the full masks are not kept.
    """

    x: np.ndarray  # (C, h, w) model input
    nodata: np.ndarray  # (w,) pixels per column without an optical value in some band
    cloud: np.ndarray  # (w,) cloud-like pixels per column (features.cloud_mask)
    dt_max: np.ndarray | None  # (w,) hottest thermal excess per column, K (NaN: none; None: no thermal)
    z_max: np.ndarray | None  # (w,) largest robust z-score per column

    @classmethod
    def read(cls, scene: Scene, window: Tile, spec: InputSpec) -> Strip:
        optical = scene.read_optical(window, spec.optical_bands)
        anomaly = scene.thermal_anomaly(window)
        dt, z = anomaly if anomaly is not None else (None, None)
        return cls(assemble(optical, dt, spec), np.isnan(optical).any(axis=0).sum(axis=0),
                   cloud_mask(optical, spec.optical_bands).sum(axis=0), _column_max(dt), _column_max(z))

    @property
    def height(self) -> int:
        return self.x.shape[1]


def _column_max(a: np.ndarray | None) -> np.ndarray | None:
    """Max per column, NaN ignored (NaN where a column has no value)."""
    return None if a is None else np.fmax.reduce(a, axis=0)


def row_strips(tiles: Sequence[Tile], stride_px: int) -> dict[int, list[tuple[int, int, bool]]]:
    """Per row offset, the strips ``(start, stop, shared)`` its windows are cut from.

    Rows on the stride lattice are split at every tile edge, so a strip is shared by the rows that overlap
    it and read once (``shared``). The last row, shifted back to the raster edge, starts off the lattice
    where GDAL's fractional source window resamples slightly differently: it is read on its own.
    """
    offsets = sorted({t.row_off for t in tiles})
    height = {t.row_off: t.height for t in tiles}
    regular = [r for r in offsets if r % stride_px == 0]  # the lattice starts at row 0 (grid_tiles)
    edges = sorted({r for r in regular} | {r + height[r] for r in regular})
    out: dict[int, list[tuple[int, int, bool]]] = {}
    for r0 in offsets:
        r1 = r0 + height[r0]
        if r0 not in regular:
            out[r0] = [(r0, r1, False)]
            continue
        starts = [e for e in edges if r0 <= e < r1]
        out[r0] = [(b0, starts[i + 1] if i + 1 < len(starts) else r1, True) for i, b0 in enumerate(starts)]
    return out


def column_swaths(tiles: Sequence[Tile], max_px: int | None) -> list[list[Tile]]:
    """Tiles grouped into swaths of whole tile columns at most ``max_px`` wide (at least one column each)."""
    if max_px is None:
        return [list(tiles)] if tiles else []
    by_col: dict[int, list[Tile]] = {}
    for t in tiles:
        by_col.setdefault(t.col_off, []).append(t)
    swaths: list[list[Tile]] = []
    start = right = None
    for col in sorted(by_col):
        col_right = max(t.col_off + t.width for t in by_col[col])
        if start is None or max(right, col_right) - start > max_px:
            swaths.append([])
            start, right = col, col_right
        right = max(right, col_right)
        swaths[-1].extend(by_col[col])
    return swaths


def read_tiles(scene: Scene, tiles: Sequence[Tile], spec: InputSpec, *, stride_px: int, max_nodata: float,
               max_cloud: float, swath_px: int | None = SWATH_PX) -> Iterator[TileRead]:
    """Yield every tile, swath by swath and row-major in each (see the module docstring).

    ``tiles`` are windows of a :class:`~minewatch.datasets.tiling.TilePlan` (or some of them, when a scan
    resumes) and ``stride_px`` is that plan's stride.
    """
    for swath in column_swaths(tiles, None if scene.striped else swath_px):
        yield from _read_swath(scene, swath, spec, stride_px=stride_px, max_nodata=max_nodata, max_cloud=max_cloud)


def _read_swath(scene: Scene, tiles: Sequence[Tile], spec: InputSpec, *, stride_px: int, max_nodata: float,
                max_cloud: float) -> Iterator[TileRead]:
    c0 = min(t.col_off for t in tiles)
    width = max(t.col_off + t.width for t in tiles) - c0
    strips = row_strips(tiles, stride_px)
    kept: dict[int, Strip] = {}
    ordered = sorted(tiles, key=lambda t: (t.row_off, t.col_off))
    for r0, group in groupby(ordered, key=lambda t: t.row_off):
        for start in [s for s in kept if s < r0]:  # rows are visited in order: earlier strips are done
            del kept[start]
        parts = []
        for b0, b1, shared in strips[r0]:
            strip = kept.get(b0) if shared else None
            if strip is None:
                strip = Strip.read(scene, Tile(-1, -1, b0, c0, b1 - b0, width), spec)
                if shared:
                    kept[b0] = strip
            parts.append(strip)
        yield from cut_row(list(group), c0, parts, spec, max_nodata=max_nodata, max_cloud=max_cloud)


def _window_max(col_max: np.ndarray | None, a: int, b: int) -> float:
    if col_max is None:
        return float("nan")
    return float(np.fmax.reduce(col_max[a:b]))


def cut_row(row: Sequence[Tile], c0: int, parts: Sequence[Strip], spec: InputSpec, *, max_nodata: float,
            max_cloud: float) -> Iterator[TileRead]:
    """The windows of one row of tiles from the strips it spans; windows over the limits carry no input."""
    height = sum(p.height for p in parts)
    if any(t.height != height for t in row):
        raise ValueError(f"windows of row {row[0].row} do not span its {height} px strips")
    nod_cum = np.concatenate([[0], np.cumsum(sum(p.nodata for p in parts))])
    cloud_cum = np.concatenate([[0], np.cumsum(sum(p.cloud for p in parts))])
    thermal = parts[0].dt_max is not None
    dt_col = np.fmax.reduce([p.dt_max for p in parts], axis=0) if thermal else None
    z_col = np.fmax.reduce([p.z_max for p in parts], axis=0) if thermal else None
    for t in row:
        a, b = t.col_off - c0, t.col_off - c0 + t.width
        n = height * t.width
        nod = float(nod_cum[b] - nod_cum[a]) / n
        cloud = float(cloud_cum[b] - cloud_cum[a]) / n
        dt_max, z_max = _window_max(dt_col, a, b), _window_max(z_col, a, b)
        if nod > max_nodata or cloud > max_cloud:
            yield TileRead(t, None, nod, cloud, dt_max, z_max)
            continue
        # One copy per window, straight from the strips: a window never keeps a strip alive.
        x = np.concatenate([p.x[:, :, a:b] for p in parts], axis=1) if len(parts) > 1 else parts[0].x[:, :, a:b].copy()
        yield TileRead(t, pad_to(x, spec.tile_px), nod, cloud, dt_max, z_max)


def prefetch(items: Iterator, depth: int = 64) -> Iterator:
    """Run an iterator on a background thread (GDAL releases the GIL while reading)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    error: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            error.append(exc)
        finally:
            q.put(_DONE)

    thread = threading.Thread(target=worker, name="minewatch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            yield item
        if error:
            raise error[0]
    finally:
        stop.set()
        thread.join(timeout=5)
