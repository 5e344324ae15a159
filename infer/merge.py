"""Bring the sites of many scenes together: a site seen in two overlapping or adjacent scenes is one site.

Works on site records only (the per-scene ``sites.geojson`` files), never on rasters. The rule:

- Sites of *different* scenes that overlap, touch, or lie within ``gap_m`` metres of each other (default 1 m:
  a model pixel dropped at a scene's edge plus the 7-decimal rounding of GeoJSON) are the same site, and so is
  everything connected to them that way. Sites of one scene never merge with each other directly: the scan
  already kept them apart (e.g. tiles that meet only at a corner).
- The merged outline is the union of the members' outlines (hairline gaps up to ``gap_m`` closed).
- Evidence is combined: the highest probability per class and the hottest thermal excess over all members;
  ``classes`` are the classes any member has above its threshold, and ``score`` is `sites.site_score` of those
  maxima (so a merged site ranks as if one scene had seen all of it); ``n_tiles`` adds up the members' tiles
  (overlapping scenes count the ground they share twice).
- The dense head's figures (containers, fan and hot area, power) are those of the member counting the most
  containers (a sum would count what overlapping scenes share twice); ``outline`` is ``objects`` only when every
  member was outlined by its objects.
- ``site_id``, ``scene_id``, ``acquired``, ``sensor`` are the strongest member's; ``scene_ids`` lists every scene
  that saw the site and ``n_scenes`` counts them; ``run_id`` and ``created`` are the multi-scene run's.
- Ranks run across the whole run, in the order `sites.build_sites` uses (score, area, north, west).

A site seen by one scene only keeps its record as the scene wrote it (outline, area, centroid), apart from rank,
``run_id`` and ``created``.

The site rule across scenes. Each scene's scan applies the rule alone (at least ``min_windows`` positive windows,
or one on the raster's edge, where the site may go on beyond it), and tells the merge what it decided by that
alone (``lone``, its ``lone_sites.geojson``): the sites it dropped (``site_rule`` ``dropped``: too few windows,
inside the raster), and which of its kept sites stand only by the raster's edge (``edge``: the kept site's
``site_id``, its windows as geometry, which also link it to other scenes' sites), each with its component's
window count (sites a dense head split from one component count its windows once) and the rule's
``min_windows`` and ``window_m``. With the ground every scene's windows covered (``footprints``: scanned windows
only, so nodata, skipped and fenced-out ground is unseen), the merge then draws the sites a scan of the scenes'
mosaic would draw:

- a dropped or edge site joined to another scene's site is part of that site;
- a group of such sites only is kept when its windows together reach the rule (two scenes' single windows on
  the same ground), or when ground no scene saw lies within a window's width of one of its edge sites' windows
  (there a scan of the mosaic would have an edge window of its own, and the site may go on);
- anything else is dropped: a dropped site as its scene dropped it, an edge site because other scenes saw the
  ground beyond that edge and found nothing there.

Without footprints an edge site is kept, as its scene kept it. A merged site takes its identity (``site_id``,
``scene_id``, ``acquired``, ``sensor``) from its strongest member that its scene kept, if it has one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from minewatch.classes import CLASSES
from minewatch.datasets.crs import utm_epsg
from minewatch.infer.sites import (
    COMPONENT_COLUMN,
    N_WINDOWS_COLUMN,
    OBJECT_COLUMNS,
    OUTLINE_OBJECTS,
    OUTLINE_TILES,
    PROB_COLUMNS,
    RULE_COLUMN,
    RULE_DROPPED,
    RULE_EDGE,
    SITE_COLUMNS,
    SITE_SCHEMA,
    empty_sites,
)

log = logging.getLogger(__name__)

DEFAULT_GAP_M = 1.0
MERGED_SCHEMA: dict[str, str] = {**SITE_SCHEMA, "scene_ids": "object", "n_scenes": "int64"}
MERGED_COLUMNS: tuple[str, ...] = tuple(MERGED_SCHEMA)
_M_PER_DEG = 111_320.0


def read_scene_sites(paths: Sequence[Path]) -> gpd.GeoDataFrame:
    """The per-scene sites files, one frame in EPSG:4326 (empty files contribute nothing)."""
    frames = []
    for p in paths:
        gdf = gpd.read_file(p, engine="pyogrio")
        if len(gdf):
            frames.append(gdf.to_crs(4326) if gdf.crs is not None else gdf.set_crs(4326))
    if not frames:
        return empty_sites(4326)
    sites = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(sites, geometry="geometry", crs=4326)


def merge_sites(sites: gpd.GeoDataFrame, *, run_id: str, created: str, gap_m: float = DEFAULT_GAP_M,
                lone: gpd.GeoDataFrame | None = None,
                footprints: Sequence[shapely.Geometry] | None = None) -> gpd.GeoDataFrame:
    """Merge the sites of many scenes (EPSG:4326 site records, `SITE_COLUMNS`), with what each scene's site rule
    decided alone (``lone``: the same records with ``site_rule`` and ``min_windows``) and the lon/lat outlines
    of the ground the scenes' windows covered (``footprints``), by the rule in the module doc."""
    sites = _with_lone(sites, lone)
    if sites.empty:
        return _empty_merged()
    sites = sites.to_crs(4326).reset_index(drop=True)
    labels = _components(sites, gap_m)
    scanned = _Scanned(footprints, gap_m) if footprints else None
    records, geoms = [], []
    for label in np.unique(labels):
        members = sites.iloc[np.flatnonzero(labels == label)]
        if not _stands(members, scanned):
            continue
        rec, geom = _combine(members, gap_m)
        records.append(rec)
        geoms.append(geom)
    if not records:
        return _empty_merged()
    merged = gpd.GeoDataFrame(pd.DataFrame.from_records(records), geometry=geoms, crs=4326)
    merged = merged.sort_values(["score", "area_m2", "centroid_lat", "centroid_lon"],
                                ascending=[False, False, False, True], kind="mergesort").reset_index(drop=True)
    merged["rank"] = np.arange(1, len(merged) + 1, dtype="int64")
    merged["run_id"] = run_id
    merged["created"] = created
    merged["review_status"] = "unreviewed"
    return merged[[*MERGED_COLUMNS, "geometry"]].astype(MERGED_SCHEMA)


def _empty_merged() -> gpd.GeoDataFrame:
    out = empty_sites(4326)
    out["scene_ids"] = pd.Series([], dtype="object")
    out["n_scenes"] = pd.Series([], dtype="int64")
    return out[[*MERGED_COLUMNS, "geometry"]]


# Columns of the merge's working frame, for members that stand or fall by the merge (else 0, None, ...):
_NEED = "_min_windows"  # windows the scene's rule asked for
_KEPT = "_kept"  # its scene kept the site (not one of its dropped sites)
_EDGE = "_edge_windows"  # the windows of a site its scene kept only by the raster's edge (lon/lat)
_BAND = "_window_m"  # that scene's window side: how far beyond such windows a mosaic's own edge window would reach
_COUNT = "_n_windows"  # the windows of the member's component (sites a dense head split from one share them)
_COMPONENT = "_component"  # (scene, component) names the windows once

_RULE_DEFAULTS = {_NEED: 0, _KEPT: True, _EDGE: None, _BAND: 0.0, _COUNT: 0, _COMPONENT: -1}


def _with_lone(sites: gpd.GeoDataFrame, lone: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """The kept sites (the edge ones marked) and the dropped ones in one frame, with the working columns."""
    sites = sites.assign(**_RULE_DEFAULTS)
    if lone is None or lone.empty:
        return sites
    lone = _rule_of(lone.to_crs(4326))
    is_edge = (lone[RULE_COLUMN] == RULE_EDGE).to_numpy()
    edge = lone.loc[is_edge].set_index("site_id")
    at = sites["site_id"].map(pd.Series(np.arange(len(edge)), index=edge.index)).to_numpy()
    for col in (_NEED, _BAND, _COUNT, _COMPONENT, _EDGE):
        values = edge.geometry.to_numpy() if col == _EDGE else edge[col].to_numpy()
        sites[col] = [values[int(i)] if np.isfinite(i) else _RULE_DEFAULTS[col] for i in at]
    dropped = lone.loc[~is_edge].assign(**{_KEPT: False, _EDGE: None})
    if dropped.empty:
        return sites
    dropped = dropped[[*SITE_COLUMNS, *_RULE_DEFAULTS, "geometry"]]
    both = pd.concat([sites, dropped], ignore_index=True) if len(sites) else dropped.reset_index(drop=True)
    return gpd.GeoDataFrame(both, geometry="geometry", crs=4326)


def _rule_of(lone: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A scene's lone records with the working columns; a lone file of an earlier version (no ``site_rule``) holds
    dropped sites only, each its own component."""
    n = len(lone)
    return lone.assign(**{
        RULE_COLUMN: lone[RULE_COLUMN] if RULE_COLUMN in lone else RULE_DROPPED,
        _NEED: lone["min_windows"].to_numpy(dtype="int64"),
        _BAND: lone["window_m"].to_numpy(dtype=float) if "window_m" in lone else np.zeros(n),
        _COUNT: (lone[N_WINDOWS_COLUMN] if N_WINDOWS_COLUMN in lone else lone["n_tiles"]).to_numpy(dtype="int64"),
        _COMPONENT: (lone[COMPONENT_COLUMN].to_numpy(dtype="int64") if COMPONENT_COLUMN in lone
                     else -2 - np.arange(n)),
    })


def _stands(members: gpd.GeoDataFrame, scanned: _Scanned | None) -> bool:
    """The site rule for a group of merged members (module doc)."""
    need = members[_NEED].to_numpy()
    if not (need > 0).all():
        return True  # a member its scene kept by its windows
    if members.drop_duplicates(["scene_id", _COMPONENT])[_COUNT].sum() >= need.max():
        return True  # enough windows together
    edges = members.loc[members[_EDGE].notna()]
    return any(scanned is None or scanned.faces_unscanned(w, band)
               for w, band in zip(edges[_EDGE], edges[_BAND], strict=True))


class _Scanned:
    """The ground the scenes' windows covered, to tell whether windows on a scene's edge face ground no scene saw."""

    def __init__(self, footprints: Sequence[shapely.Geometry], tolerance_m: float) -> None:
        self.footprints = np.asarray(footprints, dtype=object)
        self.tree = shapely.STRtree(self.footprints)
        self.tolerance_m = max(tolerance_m, 0.1)

    def faces_unscanned(self, windows: shapely.Geometry, band_m: float) -> bool:
        """Whether ground within ``band_m`` metres of ``windows`` (lon/lat; at least twice the tolerance) lies
        outside every footprint (each grown by the tolerance, so that adjacent scenes leave no hairline)."""
        reach = max(band_m, 2 * self.tolerance_m)
        pad = 2 * reach / (_M_PER_DEG * np.cos(np.radians(min(abs(windows.centroid.y), 89.0))))
        near = self.footprints[self.tree.query(shapely.buffer(windows, pad, quad_segs=1), predicate="intersects")]
        if not len(near):
            return True
        epsg = _utm_of(windows)
        covered = shapely.union_all([_to_utm(f, epsg).buffer(self.tolerance_m, join_style="mitre") for f in near])
        return not covered.contains(_to_utm(windows, epsg).buffer(reach, join_style="mitre"))


def _components(sites: gpd.GeoDataFrame, gap_m: float) -> np.ndarray:
    """Connected components of 'different scenes and within gap_m metres'; a site kept only by its scene's edge
    is reached through its windows (a dense head's outline may stop short of that edge)."""
    geoms = np.asarray([w if w is not None else g for w, g in zip(sites[_EDGE], sites.geometry, strict=True)])
    n = len(geoms)
    lat = float(np.clip(np.abs(sites["centroid_lat"].to_numpy(dtype=float)).max(), 0, 89))
    # A search box in degrees that holds every pair within gap_m (longitude degrees shrink with latitude).
    pad = gap_m / (_M_PER_DEG * np.cos(np.radians(lat))) * 1.5
    tree = shapely.STRtree(geoms)
    left, right = tree.query(shapely.buffer(geoms, pad, quad_segs=1) if pad > 0 else geoms, predicate="intersects")
    scene = sites["scene_id"].to_numpy()
    keep = (left < right) & (scene[left] != scene[right])
    pairs = [(i, j) for i, j in zip(left[keep], right[keep], strict=True)
             if _distance_m(geoms[i], geoms[j]) <= gap_m]
    rows = np.array([p[0] for p in pairs], dtype=int)
    cols = np.array([p[1] for p in pairs], dtype=int)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


_TRANSFORMERS: dict[int, Transformer] = {}


def _to_utm(geom, epsg: int):
    t = _TRANSFORMERS.get(epsg)
    if t is None:
        t = _TRANSFORMERS[epsg] = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _utm_of(geom) -> int:
    c = geom.centroid
    return utm_epsg(c.x, c.y)


def _distance_m(a, b) -> float:
    if a.intersects(b):
        return 0.0
    epsg = _utm_of(a)
    return float(_to_utm(a, epsg).distance(_to_utm(b, epsg)))


def _combine(members: gpd.GeoDataFrame, gap_m: float) -> tuple[dict, object]:
    order = members.assign(_dropped=~members[_KEPT].astype(bool)).sort_values(
        ["_dropped", "score", "area_m2", "centroid_lat", "centroid_lon"], ascending=[True, False, False, False, True],
        kind="mergesort")
    best = order.iloc[0]
    scene_ids = sorted(set(members["scene_id"]))
    rec = {c: best[c] for c in SITE_COLUMNS}
    rec["scene_ids"] = ",".join(scene_ids)
    rec["n_scenes"] = len(scene_ids)
    if len(members) == 1:
        return rec, best.geometry
    probs = {c: _nanmax(members[col]) for c, col in zip(CLASSES, PROB_COLUMNS, strict=True)}
    above = [c for c in CLASSES if any(c in str(v).split(",") for v in members["classes"])]
    rec.update({col: probs[c] for c, col in zip(CLASSES, PROB_COLUMNS, strict=True)})
    rec["classes"] = ",".join(above)
    rec["score"] = combined_score(probs, above)
    rec["n_tiles"] = int(members["n_tiles"].sum())
    rec["thermal_dt_max_k"] = _nanmax(members["thermal_dt_max_k"])
    rec["thermal_z_max"] = _nanmax(members["thermal_z_max"])
    rec.update(_object_figures(members))
    epsg = _utm_of(shapely.union_all(np.asarray(members.geometry.values)))
    metric = shapely.union_all([_to_utm(g, epsg) for g in members.geometry])
    if gap_m > 0 and metric.geom_type != "Polygon":
        half = gap_m / 2
        metric = metric.buffer(half, join_style="mitre").buffer(-half, join_style="mitre")
    metric = shapely.make_valid(metric)
    if metric.geom_type == "GeometryCollection":
        metric = shapely.union_all([g for g in metric.geoms if g.geom_type in ("Polygon", "MultiPolygon")])
    back = Transformer.from_crs(epsg, 4326, always_xy=True)
    rec["area_m2"] = float(metric.area)
    c = metric.centroid
    rec["centroid_lon"], rec["centroid_lat"] = back.transform(c.x, c.y)
    geom = shapely.transform(metric, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))
    return rec, geom


def _object_figures(members: gpd.GeoDataFrame) -> dict:
    """The dense head's columns of a merged site: the figures of the member that counts the most containers
    (overlapping scenes see the same containers, so a sum would count them twice), and ``outline`` ``objects``
    only when every member is outlined by its objects (else ``tiles``; null when no member says)."""
    rec = {}
    counts = pd.to_numeric(members["n_containers"], errors="coerce")
    if counts.notna().any():
        top = members.loc[counts.idxmax()]
        rec = {c: top[c] for c in OBJECT_COLUMNS if c != "outline"}
    kinds = set(members["outline"].dropna())
    rec["outline"] = (OUTLINE_OBJECTS if kinds == {OUTLINE_OBJECTS} else OUTLINE_TILES) if kinds else None
    return rec


def combined_score(probs: dict[str, float], above: Sequence[str]) -> float:
    """`sites.site_score` of the maxima, given the classes above threshold (a class is above threshold for the
    merged site exactly when it is for a member, since thresholds compare with the highest probability)."""
    if not above:
        return 0.0
    return (len(above) - 1 + float(np.mean([probs[c] for c in above]))) / len(CLASSES)


def _nanmax(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else float("nan")


def write_merged(sites: gpd.GeoDataFrame, out_dir: Path, *, run: dict[str, str] | None = None) -> list[Path]:
    """``sites.geojson`` (RFC 7946, with its QGIS style ``sites.qml``) and ``sites.gpkg`` (EPSG:4326, layer
    ``sites``, the style inside) in ``out_dir``."""
    from minewatch.atomic import atomic_path
    from minewatch.infer import styles
    from minewatch.infer.writers import write_sites_geojson, write_sites_gpkg

    geojson = write_sites_geojson(sites, out_dir / "sites.geojson", run=run)
    with atomic_path(styles.qml_path(geojson)) as tmp:
        tmp.write_text(styles.sites_qml(), encoding="utf-8")
    gpkg = write_sites_gpkg(sites.to_crs(4326), out_dir / "sites.gpkg", run=run)
    styles.add_layer_style(gpkg, "sites", styles.sites_qml())
    return [geojson, gpkg]

