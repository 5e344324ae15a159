"""Vector labels to per-tile multi-label targets, computed once per scene with a spatial index.

Coverage rule (documented in :class:`LabelRule`): a tile is positive for a class when the polygons of that
class cover, inside the tile, at least ``min(min_area_m2[class], min_share * polygon area)``. So a tile
holding one whole 40 ft container (30 m2) counts, and so does a tile holding half of a small object; a
tile that only grazes the corner of a farm does not. Heat polygons count only when their ``dt_k`` (the
excess the thermal sensor sees) reaches ``min_dt_k``: heat a sensor cannot see is not a label. Likewise a
polygon whose ``cloud_share`` (the share of it under thick cloud, written by the generator) exceeds
``max_cloud_share`` is hidden: the windows touching it are unknown, neither positive nor negative, as are
those touching ``unlabelled`` ground (:func:`unknown_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import Field

from minewatch.classes import CLASSES, LOOKALIKE, UNLABELLED
from minewatch.config import StrictModel
from minewatch.datasets.vectors import read_vector
from minewatch.errors import UserError


class LabelRule(StrictModel):
    """How much of a class a tile must hold to be labelled with it."""

    min_area_m2: dict[str, float] = Field(
        default_factory=lambda: {"container_farm": 25.0, "cooling_array": 6.0, "heat_signature": 40.0},
        description="area of the class inside a tile that always makes it positive, m2",
    )
    min_share: float = Field(0.5, gt=0, le=1, description="share of one polygon inside a tile that also counts")
    min_dt_k: float = Field(3.0, ge=0, description="heat polygons with a smaller visible excess are ignored")
    max_cloud_share: float = Field(0.5, ge=0, le=1, description="polygons with more of their area under thick "
                                   "cloud are hidden: the windows touching them are neither positive nor negative")


def read_truth(path: str | Path) -> gpd.GeoDataFrame:
    """Read labels (any vector format and CRS, see :func:`~minewatch.datasets.vectors.read_vector`) with a
    ``class`` property; a file without features is a scene with nothing to find."""
    gdf = read_vector(path, role="labels")
    if gdf.empty:  # every tile is negative
        return gpd.GeoDataFrame({"class": pd.Series([], dtype=object)}, geometry=[], crs=gdf.crs)
    if "class" not in gdf.columns:
        raise UserError("labels lack a 'class' property", path=path,
                        fix=f"give each polygon class = one of {', '.join(CLASSES)}, {LOOKALIKE} or {UNLABELLED}")
    unknown = sorted(set(gdf["class"].dropna()) - set(CLASSES) - {LOOKALIKE, UNLABELLED})
    if unknown:
        raise UserError(f"unknown class(es) {', '.join(map(str, unknown))}", path=path,
                        fix=f"use {', '.join(CLASSES)}, {LOOKALIKE} or {UNLABELLED}")
    return gdf


def tile_targets(tiles: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, classes: Sequence[str] = CLASSES,
                 rule: LabelRule | None = None) -> np.ndarray:
    """(n_tiles, n_classes) uint8 targets. ``tiles`` must be in a metric CRS; ``truth`` may be in any."""
    rule = rule or LabelRule()
    out = np.zeros((len(tiles), len(classes)), dtype=np.uint8)
    if truth.empty or tiles.empty:
        return out
    truth = truth.to_crs(tiles.crs)
    tile_geoms = tiles.geometry.values
    for k, name in enumerate(classes):
        sel = truth[truth["class"] == name]
        if name == "heat_signature" and "dt_k" in sel.columns:
            sel = sel[sel["dt_k"].fillna(np.inf) >= rule.min_dt_k]
        if sel.empty:
            continue
        polys = sel.geometry.values
        poly_idx, tile_idx = tiles.sindex.query(polys, predicate="intersects")
        if len(poly_idx) == 0:
            continue
        inter = shapely.area(shapely.intersection(polys[poly_idx], tile_geoms[tile_idx]))
        need = np.minimum(rule.min_area_m2.get(name, 0.0), rule.min_share * shapely.area(polys[poly_idx]))
        # Sum per tile the area of class polygons it holds, and also accept one polygon's own share.
        per_tile = np.bincount(tile_idx, weights=inter, minlength=len(tiles))
        positive = np.zeros(len(tiles), dtype=bool)
        positive[tile_idx[inter >= need - 1e-9]] = True
        positive |= (per_tile > 0) & (per_tile >= rule.min_area_m2.get(name, 0.0) - 1e-9)
        out[positive, k] = 1
    return out


def confuser_windows(tiles: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, targets: np.ndarray, *,
                     min_area_m2: float, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Negative windows worth showing more often: they hold a look-alike, or a class below the label rule.

    Random negatives are mostly bare land a model learns in a few steps; the errors left are container
    yards, hot industry and windows that graze a farm. ``min_area_m2`` of such polygons inside a window
    makes it a confuser. ``tiles`` must be in a metric CRS; ``targets`` are those of :func:`tile_targets`.
    """
    out = np.zeros(len(tiles), dtype=bool)
    if truth.empty or tiles.empty:
        return out
    truth = truth.to_crs(tiles.crs)
    polys = truth[truth["class"].isin([*classes, LOOKALIKE])].geometry.values
    poly_idx, tile_idx = tiles.sindex.query(polys, predicate="intersects")
    if len(poly_idx):
        inter = shapely.area(shapely.intersection(polys[poly_idx], tiles.geometry.values[tile_idx]))
        out = np.bincount(tile_idx, weights=inter, minlength=len(tiles)) >= min_area_m2
    return out & ~np.asarray(targets, dtype=bool).any(axis=1)


def hidden(truth: gpd.GeoDataFrame, rule: LabelRule | None = None) -> np.ndarray:
    """Bool per truth polygon: mostly under thick cloud (nobody can see it; no ``cloud_share``: not hidden)."""
    if "cloud_share" not in truth.columns:
        return np.zeros(len(truth), dtype=bool)
    return truth["cloud_share"].fillna(0.0).to_numpy(dtype=float) > (rule or LabelRule()).max_cloud_share


def unknown_windows(tiles: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, rule: LabelRule | None = None) -> np.ndarray:
    """Windows whose content is unknown, so neither trained on nor scored: they touch ground labelled
    ``unlabelled`` (nobody has judged it yet) or an object hidden under thick cloud. ``tiles`` must be in a
    metric CRS."""
    out = np.zeros(len(tiles), dtype=bool)
    if not len(truth) or "class" not in truth.columns or tiles.empty:
        return out
    sel = truth[(truth["class"] == UNLABELLED).to_numpy() | hidden(truth, rule)]
    if sel.empty:
        return out
    polys = sel.to_crs(tiles.crs).geometry.values
    poly_idx, tile_idx = tiles.sindex.query(polys, predicate="intersects")
    if len(poly_idx):
        inter = shapely.area(shapely.intersection(polys[poly_idx], tiles.geometry.values[tile_idx]))
        out[tile_idx[inter > 0]] = True
    return out


def known_targets(tiles: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, classes: Sequence[str] = CLASSES,
                  rule: LabelRule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(known, targets): which windows have a known content (:func:`unknown_windows`) and the
    :func:`tile_targets` of those alone, the one way training and evaluation label windows."""
    known = ~unknown_windows(tiles, truth, rule)
    return known, tile_targets(tiles[known].reset_index(drop=True), truth, classes, rule)
