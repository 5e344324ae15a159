"""Turn tile scores into candidate sites: merge positive tiles, attach evidence, rank.

Pure functions (no I/O): the writers put the result on disk. Property names and types follow the
sites.geojson table in the design notes (`SITE_COLUMNS`), plus the dense head's columns appended at the end
(`OBJECT_COLUMNS`: containers, fan and hot area, power estimate, and which outline a site has).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import ndimage

from minewatch.classes import CLASSES
from minewatch.datasets.crs import metric_crs
from minewatch.infer.objects import ObjectSite
from minewatch.infer.power import estimate_power, is_running

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASSES)
TILE_COLUMNS: tuple[str, ...] = ("tile_id", "row", "col", *PROB_COLUMNS, "dt_max_k", "z_max", "geometry")

# Column order and pandas dtype of every site property, as in the sites.geojson table of the design notes.
SITE_SCHEMA: dict[str, str] = {
    "site_id": "object",
    "rank": "int64",
    "score": "float64",
    "classes": "object",
    **{c: "float64" for c in PROB_COLUMNS},
    "n_tiles": "int64",
    "area_m2": "float64",
    "centroid_lon": "float64",
    "centroid_lat": "float64",
    "thermal_dt_max_k": "float64",
    "thermal_z_max": "float64",
    "scene_id": "object",
    "acquired": "object",
    "sensor": "object",
    "model": "object",
    "model_sha256": "object",
    "run_id": "object",
    "created": "object",
    "review_status": "object",
    # Appended by the dense head (#18); null for sites outlined by their windows (a model without the head).
    "n_containers": "Int64",
    "fan_area_m2": "float64",
    "hot_area_m2": "float64",
    "est_power_mw": "float64",
    "est_power_mw_low": "float64",
    "est_power_mw_high": "float64",
    "outline": "object",
}
SITE_COLUMNS: tuple[str, ...] = tuple(SITE_SCHEMA)
OBJECT_COLUMNS: tuple[str, ...] = SITE_COLUMNS[SITE_COLUMNS.index("n_containers"):]
OUTLINE_OBJECTS, OUTLINE_TILES = "objects", "tiles"
"""``outline``: the site's polygon is the outline of its detected objects, or the union of its windows."""

# Default simplification tolerance as a share of the tile side: removes the collinear vertices and the
# float jitter of unioned tiles without moving an outline by more than a tenth of a tile.
SIMPLIFY_TILE_SHARE = 0.1
# Where windows overlap by half their side or more (the models' stride), anything the size of a container row is
# seen by at least two of them; a site of one window alone was, on the validation scenes, mostly a false alarm
# (`python bench/site_rule.py`, figures in BENCHMARKS.md "Site rule").
OVERLAP_MIN_WINDOWS = 2
EDGE_COLUMN = "on_edge"
"""Optional boolean tile column: the window touches the scanned raster's edge, where a site may go on outside."""
RULE_COLUMN, WINDOWS_COLUMN, N_WINDOWS_COLUMN, COMPONENT_COLUMN = "site_rule", "windows", "n_windows", "component"
RULE_COLUMNS = (RULE_COLUMN, WINDOWS_COLUMN, N_WINDOWS_COLUMN, COMPONENT_COLUMN)
"""Columns ``build_sites(..., rule_column=True)`` adds, of the component of positive windows a site comes from: why
it stands or falls (`RULE_WINDOWS`, `RULE_EDGE`, `RULE_DROPPED`), for `RULE_EDGE` the union of its windows (the
site's outline may be its objects instead; None for the others), how many windows it has (a dense head may split
it into several sites, each counting only the windows its objects lie in) and its number in the scene."""
RULE_WINDOWS, RULE_EDGE, RULE_DROPPED = "windows", "edge", "dropped"
"""Enough positive windows; too few but one on the raster's edge; too few inside the raster."""
# Metres per degree of latitude, only to turn a tolerance in metres into degrees for geographic scenes.
_M_PER_DEG = 111_320.0


def empty_sites(crs: CRS | str | int | None) -> gpd.GeoDataFrame:
    """The no-candidate result: zero rows, every site column with its dtype."""
    data = {name: pd.Series([], dtype=dtype) for name, dtype in SITE_SCHEMA.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def site_score(probs: Mapping[str, float], thresholds: Mapping[str, float]) -> tuple[float, list[str]]:
    """Combined evidence of one site, 0..1, and the classes above their thresholds (in CLASSES order).

    ``score = (n_above - 1 + mean(p of the classes above)) / K`` with K = len(CLASSES).

    A site with n classes above threshold scores in ((n - 1 + t_min) / K, n / K], so more independent
    kinds of evidence (containers + cooling + heat) always rank above fewer, however confident the single
    class is (any threshold > 0); within the same number of classes, higher probabilities rank first.
    0 when no class is above threshold.
    """
    above = [c for c in CLASSES if _finite(probs.get(c)) and probs[c] >= thresholds[c]]
    if not above:
        return 0.0, []
    mean_p = float(np.mean([probs[c] for c in above]))
    return (len(above) - 1 + mean_p) / len(CLASSES), above


def _finite(value: object) -> bool:
    return value is not None and isinstance(value, (int, float, np.floating)) and math.isfinite(value)


def positive_mask(tiles: pd.DataFrame, thresholds: Mapping[str, float]) -> np.ndarray:
    """Tiles where any class probability reaches its threshold (NaN is never positive)."""
    mask = np.zeros(len(tiles), dtype=bool)
    for c, col in zip(CLASSES, PROB_COLUMNS, strict=True):
        p = tiles[col].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            mask |= p >= thresholds[c]
    return mask


def tile_components(geoms: np.ndarray) -> np.ndarray:
    """Connected-component label of each polygon: polygons sharing area or an edge belong together.

    Tiles that meet only at a corner stay apart (their union would be a bow-tie, not one outline).
    Windows are axis-aligned boxes, so this is decided on a grid of their own edges (:func:`box_components`)
    in memory that does not grow with how densely they overlap; other polygons go through a spatial index.
    """
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=int)
    bounds = shapely.bounds(geoms)
    box_area = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])
    if np.allclose(shapely.area(geoms), box_area, rtol=1e-9, atol=1e-9):
        return box_components(bounds)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left):
        shared = shapely.intersection(geoms[left], geoms[right])
        edge_or_area = (shapely.area(shared) > 0) | (shapely.length(shared) > 0)
        left, right = left[edge_or_area], right[edge_or_area]
    from scipy.sparse import coo_matrix  # here: importing csgraph takes a scan ~0.1 s, and windows never need it
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def box_components(bounds: np.ndarray) -> np.ndarray:
    """Components of axis-aligned boxes (n, 4: minx, miny, maxx, maxy) that share area or an edge.

    The boxes are drawn on a grid whose cell edges are the boxes' own edges (so every box covers whole
    cells, and a gap between two boxes is a cell of its own); boxes sharing area share cells, boxes sharing an
    edge cover 4-neighbouring cells, boxes meeting at a corner only touch diagonally. The cost is that grid
    (at most twice the distinct edges per axis), not the number of overlapping pairs, which at a fine stride
    reached millions (a 4 m stride: each 64 m window overlaps ~1,000 others).
    """
    covered, (ix0, iy0), _ = _cell_grid(bounds)
    cells, _ = ndimage.label(covered)  # 4-connectivity: corners do not join
    return cells[iy0, ix0] - 1


def box_cover(bounds: np.ndarray) -> shapely.Geometry:
    """The ground that axis-aligned boxes (n, 4) cover, as one polygon or multipolygon (holes where they leave
    gaps), from the cells of :func:`box_components`'s grid: fast where a union of overlapping boxes is not."""
    from rasterio.features import shapes

    covered, _, (xs, ys) = _cell_grid(bounds)
    covered = covered[:-1, :-1]  # cell (i, j) ends at the edges i + 1, j + 1
    # Outlined in cell units (x = column, y = row: the identity transform), then each vertex put on its edge.
    pieces = [shapely.geometry.shape(g) for g, _ in shapes(covered.view(np.uint8), mask=covered, connectivity=4)]
    cover = shapely.multipolygons(pieces) if len(pieces) > 1 else pieces[0]
    return shapely.transform(cover, lambda c: np.column_stack([xs[np.rint(c[:, 0]).astype(int)],
                                                              ys[np.rint(c[:, 1]).astype(int)]]))


def _cell_grid(bounds: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray],
                                            tuple[np.ndarray, np.ndarray]]:
    """Boxes drawn on the grid of their own edges: which cells they cover (cell (i, j) spans ys[i]..ys[i + 1],
    xs[j]..xs[j + 1]), each box's first cell (columns, rows), and the edges (xs, ys)."""
    xs = np.unique(np.round(bounds[:, [0, 2]], 6))
    ys = np.unique(np.round(bounds[:, [1, 3]], 6))
    ix0 = np.searchsorted(xs, np.round(bounds[:, 0], 6))
    ix1 = np.searchsorted(xs, np.round(bounds[:, 2], 6))
    iy0 = np.searchsorted(ys, np.round(bounds[:, 1], 6))
    iy1 = np.searchsorted(ys, np.round(bounds[:, 3], 6))
    iy1, ix1 = np.maximum(iy1, iy0 + 1), np.maximum(ix1, ix0 + 1)
    # Each box adds 1 to its cells: +1 at its first corner, -1 past each side, +1 past both, summed up both axes.
    count = np.zeros((len(ys) + 1, len(xs) + 1), dtype=np.int32)
    for rows, cols, sign in ((iy0, ix0, 1), (iy0, ix1, -1), (iy1, ix0, -1), (iy1, ix1, 1)):
        np.add.at(count, (rows, cols), sign)
    covered = count.cumsum(axis=0).cumsum(axis=1)[:-1, :-1] > 0
    return covered, (ix0, iy0), (xs, ys)


def build_sites(
    tiles: gpd.GeoDataFrame,
    thresholds: Mapping[str, float],
    *,
    scene_id: str,
    acquired: str | None,
    sensor: str,
    model_name: str,
    model_sha256: str,
    run_id: str,
    created: str,
    simplify_m: float | None = None,
    objects: Callable[[gpd.GeoDataFrame], list[ObjectSite] | None] | None = None,
    min_windows: int = 1,
    lone: bool = False,
    rule_column: bool = False,
    workers: int = 1,
) -> gpd.GeoDataFrame:
    """Merge positive tiles into ranked candidate sites (scene CRS, sorted by rank).

    A tile is positive when any class probability reaches its threshold. Positive tiles that overlap or
    share an edge form one component. A component of fewer than ``min_windows`` positive windows is dropped
    unless one of them touches the raster's edge (an ``on_edge`` tile column; the rest may lie outside).
    ``lone=True`` builds the sites of exactly those dropped components instead (a multi-scene run keeps them
    aside: another scene's site next to them may make them part of a site, `infer.merge`). ``rule_column=True``
    adds `RULE_COLUMNS` (which part of the rule a site stands or falls by, and its component of windows).
    Without ``objects`` a component is one site whose outline is their union, simplified by ``simplify_m``
    metres (default a tenth of the tile side). ``objects`` (a dense model's
    :func:`~minewatch.infer.objects.outline_objects` for the component's windows) may instead split a kept
    component into sites outlined by their objects, each with its containers, fan and hot area and power
    estimate (:func:`~minewatch.infer.power.estimate_power`); a component it finds nothing in keeps the
    window outline. Evidence per site (from the windows it lies in): highest tile probability per class,
    classes whose highest probability reaches the threshold, hottest thermal excess and z-score (NaN without
    thermal), area in a metric CRS (see `metric_crs`), centroid in lon/lat, and `site_score`.
    Rank 1 is the highest score; ties go to the larger site, then north before south, then west before
    east, so ranks (and ``site_id = f"{scene_id}-{rank:04d}"``) are deterministic. ``workers`` threads outline
    components at once (the array work releases the GIL); the sites are the same whatever their number.
    """
    missing = [c for c in TILE_COLUMNS if c not in tiles.columns and c != "geometry"]
    if missing:
        raise ValueError(f"tile scores lack columns {missing}")
    if tiles.crs is None:
        raise ValueError("tile scores have no CRS")
    lacking = [c for c in CLASSES if c not in thresholds]
    if lacking:
        raise ValueError(f"no threshold for classes {lacking}")
    crs = CRS.from_user_input(tiles.crs)

    pos = tiles.loc[positive_mask(tiles, thresholds)]
    if pos.empty:
        return _empty(crs, rule_column)

    geoms = np.asarray(pos.geometry.values)
    labels = tile_components(geoms)
    tolerance = _tolerance(geoms, crs, simplify_m)

    components = [pos.iloc[np.flatnonzero(labels == label)] for label in np.unique(labels)]
    rules = [site_rule(members, min_windows) for members in components]
    ruled = [(k, components[k], rule) for k, rule in enumerate(rules) if (rule == RULE_DROPPED) == lone]
    kept = [members for _, members, _ in ruled]
    if objects is None:
        found_in = [None] * len(kept)
    elif workers > 1 and len(kept) > 1:
        # The largest blocks first, so that one large block does not start last and keep the others waiting.
        order = sorted(range(len(kept)), key=lambda i: -_extent(kept[i]))
        with ThreadPoolExecutor(min(workers, len(kept))) as pool:
            futures = {i: pool.submit(objects, kept[i]) for i in order}
            found_in = [futures[i].result() for i in range(len(kept))]  # in the components' order
    else:
        found_in = [objects(members) for members in kept]

    records = []
    outlines = []
    for (k, members, rule), found in zip(ruled, found_in, strict=True):
        on_edge = rule_column and rule == RULE_EDGE
        windows = shapely.union_all(np.asarray(members.geometry.values)) if on_edge or not found else None
        why = dict(zip(RULE_COLUMNS, (rule, windows if on_edge else None, len(members), k), strict=True)
                   ) if rule_column else {}
        if found:
            for obj in found:
                outlines.append(obj.outline)
                records.append(_evidence(members.iloc[np.flatnonzero(obj.members)], thresholds)
                               | _object_figures(obj) | why)
            continue
        outlines.append(shapely.simplify(windows, tolerance, preserve_topology=True) if tolerance > 0 else windows)
        records.append(_evidence(members, thresholds) | null_object_figures() | why)

    if not records:
        return _empty(crs, rule_column)
    sites = gpd.GeoDataFrame(pd.DataFrame.from_records(records), geometry=outlines, crs=crs)
    metric = sites.to_crs(metric_crs(crs, sites))
    sites["area_m2"] = metric.geometry.area.to_numpy()
    centroids = metric.geometry.centroid.to_crs(4326)
    sites["centroid_lon"] = centroids.x.to_numpy()
    sites["centroid_lat"] = centroids.y.to_numpy()

    sites = sites.sort_values(
        ["score", "area_m2", "centroid_lat", "centroid_lon"], ascending=[False, False, False, True],
        kind="mergesort",
    ).reset_index(drop=True)
    sites["rank"] = np.arange(1, len(sites) + 1, dtype="int64")
    sites["site_id"] = [f"{scene_id}-{r:04d}" for r in sites["rank"]]
    sites["scene_id"] = scene_id
    sites["acquired"] = acquired
    sites["sensor"] = sensor
    sites["model"] = model_name
    sites["model_sha256"] = model_sha256
    sites["run_id"] = run_id
    sites["created"] = created
    sites["review_status"] = "unreviewed"
    sites = sites[[*SITE_COLUMNS, *(RULE_COLUMNS if rule_column else ()), "geometry"]]
    return sites.astype(SITE_SCHEMA)


def split_by_rule(kept: gpd.GeoDataFrame, dropped: gpd.GeoDataFrame, scene_id: str
                  ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A scene's sites, and what a multi-scene merge needs to apply the site rule across scenes (`infer.merge`),
    from ``build_sites(..., rule_column=True)`` with ``lone=False`` (``kept``) and ``lone=True`` (``dropped``).

    The second frame holds the dropped sites, with ids of their own (``<scene_id>-lone-<rank>``), and the kept
    sites that stand only by the raster's edge, with their kept ``site_id`` and their windows as geometry;
    `RULE_COLUMN` tells them apart, `N_WINDOWS_COLUMN` and `COMPONENT_COLUMN` say which windows they come from.
    """
    edge = kept.loc[kept[RULE_COLUMN] == RULE_EDGE].copy()
    edge["geometry"] = gpd.GeoSeries(edge[WINDOWS_COLUMN].to_numpy(), index=edge.index, crs=kept.crs)
    dropped = dropped.assign(site_id=[f"{scene_id}-lone-{r:04d}" for r in dropped["rank"]])
    parts = [part for part in (dropped, edge) if len(part)]
    lone = pd.concat(parts, ignore_index=True) if parts else dropped
    lone = gpd.GeoDataFrame(lone.drop(columns=WINDOWS_COLUMN), geometry="geometry", crs=kept.crs)
    return kept.drop(columns=list(RULE_COLUMNS)), lone


def _empty(crs: CRS, rule_column: bool) -> gpd.GeoDataFrame:
    empty = empty_sites(crs)
    if rule_column:
        for i, (name, dtype) in enumerate(zip(RULE_COLUMNS, ("object", "object", "int64", "int64"), strict=True)):
            empty.insert(len(SITE_COLUMNS) + i, name, pd.Series([], dtype=dtype))
    return empty


def site_rule(members: gpd.GeoDataFrame, min_windows: int) -> str:
    """The site rule for one component of positive windows: enough of them (`RULE_WINDOWS`), or too few but one
    on the raster's edge, where the site may go on beyond it (`RULE_EDGE`); else it is dropped (`RULE_DROPPED`)."""
    if len(members) >= min_windows:
        return RULE_WINDOWS
    return RULE_EDGE if EDGE_COLUMN in members and members[EDGE_COLUMN].any() else RULE_DROPPED


def _extent(members: gpd.GeoDataFrame) -> float:
    """Bounding-box area of a component's windows (CRS units): the size of the mosaic it is outlined on."""
    x0, y0, x1, y1 = members.total_bounds
    return float((x1 - x0) * (y1 - y0))


def default_min_windows(tile_m: float, stride_m: float) -> int:
    """Positive windows a site needs by default: two where windows overlap by half or more, else one."""
    return OVERLAP_MIN_WINDOWS if stride_m <= tile_m / 2 + 1e-9 else 1


def _evidence(members: pd.DataFrame, thresholds: Mapping[str, float]) -> dict:
    """Score, classes, highest probability per class, windows and thermal maxima of a site's windows."""
    probs = {c: _nanmax(members[col]) for c, col in zip(CLASSES, PROB_COLUMNS, strict=True)}
    score, above = site_score(probs, thresholds)
    return {
        "score": score,
        "classes": ",".join(above),
        **{col: probs[c] for c, col in zip(CLASSES, PROB_COLUMNS, strict=True)},
        "n_tiles": len(members),
        "thermal_dt_max_k": _nanmax(members["dt_max_k"]),
        "thermal_z_max": _nanmax(members["z_max"]),
    }


def null_object_figures(outline: str | None = OUTLINE_TILES) -> dict:
    """The dense head's columns of a site it did not measure: null figures, and how the site is outlined
    (``None`` for a site that is neither objects nor windows: a thermal-only scan's warm area)."""
    return {"n_containers": pd.NA, "fan_area_m2": math.nan, "hot_area_m2": math.nan, "est_power_mw": math.nan,
            "est_power_mw_low": math.nan, "est_power_mw_high": math.nan, "outline": outline}


def _object_figures(obj: ObjectSite) -> dict:
    power = estimate_power(obj.n_teu, is_running(obj.roof_excess_k))
    return {"n_containers": int(round(obj.n_teu)) if math.isfinite(obj.n_teu) else pd.NA,
            "fan_area_m2": obj.fan_area_m2, "hot_area_m2": obj.hot_area_m2, "est_power_mw": power.mw,
            "est_power_mw_low": power.low, "est_power_mw_high": power.high, "outline": OUTLINE_OBJECTS}


def _nanmax(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else float("nan")


def _tolerance(geoms: np.ndarray, crs: CRS, simplify_m: float | None) -> float:
    """Simplification tolerance in CRS units."""
    if simplify_m is None:
        side = float(np.median(np.sqrt(shapely.area(geoms))))
        return SIMPLIFY_TILE_SHARE * side
    if simplify_m <= 0:
        return 0.0
    if crs.is_geographic:
        return simplify_m / _M_PER_DEG
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return simplify_m / (factor or 1.0)
