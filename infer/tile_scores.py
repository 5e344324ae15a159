"""A scan's per-window results in flat arrays: tens of bytes a window, whatever the scene's size.

Per-window dictionaries (what the journal stores, one JSON line per batch) cost ~1 KB each in Python; a
100,000-window scan kept that way grew by a gigabyte while building its outputs. Here each figure is one
column array; GeoDataFrames are made only for a slice of windows at a time (writing tiles.gpkg) or for the
positive windows (building sites).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np

from minewatch.classes import CLASSES
from minewatch.datasets.tiling import Tile, TilePlan, tile_polygons

FIGURES = ("nodata_fraction", "cloud_fraction", "dt_max_k", "z_max")
"""Per-window figures besides the class probabilities (see infer/reader.py TileRead)."""
ID_FACTOR = 10**7
"""Windows are keyed by row_off * ID_FACTOR + col_off (grids are far below 10 million pixels a side)."""


def _key(row_off: np.ndarray | int, col_off: np.ndarray | int) -> np.ndarray | int:
    return np.asarray(row_off, dtype=np.int64) * ID_FACTOR + np.asarray(col_off, dtype=np.int64)


def _id_key(tile_id: str) -> int:
    """Key of a ``r000128c000064`` tile id."""
    r, c = tile_id[1:].split("c")
    return int(r) * ID_FACTOR + int(c)


@dataclass
class TileScores:
    """Results of every planned window: scanned or skipped, figures and class probabilities."""

    plan: TilePlan
    classes: Sequence[str] = CLASSES
    done: np.ndarray = field(init=False)
    scanned: np.ndarray = field(init=False)
    figures: dict[str, np.ndarray] = field(init=False)
    probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.plan.tiles)
        self.row_off = np.fromiter((t.row_off for t in self.plan.tiles), np.int32, n)
        self.col_off = np.fromiter((t.col_off for t in self.plan.tiles), np.int32, n)
        keys = _key(self.row_off, self.col_off)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        self.done = np.zeros(n, bool)
        self.scanned = np.zeros(n, bool)
        self.figures = {f: np.full(n, np.nan, np.float32) for f in FIGURES}
        self.probs = np.full((n, len(self.classes)), np.nan, np.float32)

    def __len__(self) -> int:
        return len(self.plan.tiles)

    def _index(self, tile_id: str) -> int | None:
        k = _id_key(tile_id)
        i = int(np.searchsorted(self._sorted, k))
        return int(self._order[i]) if i < len(self._sorted) and self._sorted[i] == k else None

    def add(self, rec: dict[str, Any]) -> None:
        """Take one journal record (records of windows not in the plan are ignored)."""
        i = self._index(rec["tile_id"])
        if i is None:
            return
        self.done[i] = True
        self.scanned[i] = bool(rec["scanned"])
        for f in FIGURES:
            v = rec.get(f)
            self.figures[f][i] = np.nan if v is None else v
        for k, name in enumerate(self.classes):
            v = rec.get(f"p_{name}")
            self.probs[i, k] = np.nan if v is None else v

    def todo(self) -> list[Tile]:
        return [t for t, d in zip(self.plan.tiles, self.done, strict=True) if not d]

    @property
    def n_scanned(self) -> int:
        return int(self.scanned.sum())

    def bounds(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """(n, 4) window bounds (left, bottom, right, top) in the grid's CRS, computed from offsets."""
        sel = slice(None) if index is None else index
        t = self.plan.grid.transform
        size = self.plan.tile_px
        heights = np.fromiter((tl.height for tl in self.plan.tiles), np.int32, len(self))[sel]
        widths = np.fromiter((tl.width for tl in self.plan.tiles), np.int32, len(self))[sel] if size else heights
        x0 = t.c + t.a * self.col_off[sel]
        y0 = t.f + t.e * self.row_off[sel]
        x1 = x0 + t.a * widths
        y1 = y0 + t.e * heights
        return np.column_stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)])

    def frame(self, index: np.ndarray | slice | None = None, *, decimals: int | None = None) -> gpd.GeoDataFrame:
        """Windows as a GeoDataFrame (id, row, col, offsets, scanned, figures, ``p_<class>``) in the grid's
        CRS; probabilities rounded to ``decimals`` when given (outputs)."""
        sel = np.arange(len(self))[slice(None) if index is None else index]
        tiles = [self.plan.tiles[i] for i in sel]
        data: dict[str, Any] = {
            "tile_id": [t.tile_id for t in tiles],
            "row": np.array([t.row for t in tiles], dtype=np.int32),
            "col": np.array([t.col for t in tiles], dtype=np.int32),
            "row_off": self.row_off[sel], "col_off": self.col_off[sel],
            "scanned": self.scanned[sel],
        }
        for f in FIGURES:
            data[f] = self.figures[f][sel].astype(float)
        probs = self.probs[sel].astype(float)
        if decimals is not None:
            probs = np.round(probs, decimals)
        for k, name in enumerate(self.classes):
            data[f"p_{name}"] = probs[:, k]
        for name in CLASSES:
            data.setdefault(f"p_{name}", np.full(len(sel), np.nan))
        grid = self.plan.grid
        return gpd.GeoDataFrame(data, geometry=tile_polygons(tiles, grid.transform), crs=grid.crs)

    def chunks(self, size: int, *, decimals: int | None = None) -> Iterator[gpd.GeoDataFrame]:
        """:meth:`frame` of ``size`` windows at a time (writing a large tiles.gpkg in constant memory)."""
        for lo in range(0, len(self), size):
            yield self.frame(slice(lo, lo + size), decimals=decimals)

    def positive(self, thresholds: dict[str, float]) -> np.ndarray:
        """Indexes of scanned windows where some class reaches its threshold (NaN never does)."""
        thr = np.array([thresholds[c] for c in self.classes], dtype=np.float32)
        with np.errstate(invalid="ignore"):
            hit = (self.probs >= thr[None, :]).any(axis=1)
        return np.flatnonzero(hit & self.scanned)
