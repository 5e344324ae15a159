"""A generated monitoring campaign: three scans of one area on three dates, as sites files and tiles files.

Sites are written in ``SITE_SCHEMA`` form with :func:`write_sites_geojson`, tiles (the coverage) with
:func:`write_tiles_gpkg`, exactly as ``minewatch scan --tiles-out`` writes them. Outlines are unions of 64 m
windows on a 32 m grid, shifted by up to 16 m between dates (another flight, another grid origin); ranks
and scan site ids change between dates with the scores.

Farms (x, y of the upper-left window in metres from the origin; windows wide x high):

- A persists (seen on all three dates; confirmed by an analyst after date 2)
- B vanishes: seen on dates 1 and 2, covered and not seen on date 3
- G appears on date 3 300 m east of B: B moved
- C appears on date 2 and persists
- D returns: seen on date 1, covered and not seen on date 2, seen on date 3
- E is outside date 3's coverage: seen on dates 1 and 2, stays persisting
- F is a false alarm (a container yard), seen on all dates, rejected by an analyst after date 1
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from minewatch.classes import CLASSES
from minewatch.infer.sites import OBJECT_COLUMNS, SITE_COLUMNS, SITE_SCHEMA
from minewatch.infer.writers import write_sites_geojson, write_tiles_gpkg

UTM = "EPSG:32633"
X0, Y0 = 500_000.0, 5_500_000.0
DATES = ("2025-03-01T10:00:00Z", "2025-06-01T10:30:00Z", "2025-09-01T09:45:00Z")
FARMS = {  # name: (x, y, windows wide, windows high, classes, score)
    "A": (100, 100, 3, 2, "container_farm,cooling_array,heat_signature", 0.95),
    "B": (700, 100, 2, 2, "container_farm,heat_signature", 0.62),
    "C": (100, 700, 2, 3, "container_farm,cooling_array", 0.60),
    "D": (700, 700, 2, 2, "container_farm", 0.30),
    "E": (1500, 1200, 2, 2, "cooling_array", 0.28),
    "F": (1200, 400, 2, 1, "container_farm", 0.31),
    "G": (1000, 100, 2, 2, "container_farm,heat_signature", 0.64),
}
SEEN = {1: "ABDEF", 2: "ABCEF", 3: "ACDFG"}
AREA = (0, 0, 1800, 1500)  # x0, y0 (down), x1, y1 in metres from the origin
NOT_COVERED = {3: (1400, 1100, 1800, 1500)}  # E's corner is outside date 3's scan


def outline(name: str, shift: float) -> shapely.Geometry:
    x, y, w, h, _, _ = FARMS[name]
    boxes = []
    for i in range(w):
        for j in range(h):
            left = X0 + x + shift + i * 32
            top = Y0 - y - shift - j * 32
            boxes.append(shapely.box(left, top - 64, left + 64, top))
    return shapely.union_all(boxes)


def sites_frame(date_no: int, scene_id: str | None = None, run_id: str | None = None) -> gpd.GeoDataFrame:
    shift = (0.0, 16.0, 8.0)[date_no - 1]
    names = SEEN[date_no]
    rows, geoms = [], []
    for k, name in enumerate(names):
        _, _, _, _, classes, score = FARMS[name]
        score = score - 0.01 * k * (date_no - 1)  # scores move between dates, so ranks do too
        rows.append({"name": name, "score": score, "classes": classes,
                     **{f"p_{c}": (0.9 if c in classes else 0.1) for c in CLASSES},
                     "thermal_dt_max_k": 12.0 if "heat" in classes else np.nan,
                     "thermal_z_max": 6.0 if "heat" in classes else np.nan})
        geoms.append(outline(name, shift))
    g = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=UTM)
    g = g.sort_values("score", ascending=False).reset_index(drop=True)
    scene = scene_id or f"flight-{date_no}"
    g["rank"] = np.arange(1, len(g) + 1)
    g["site_id"] = [f"{scene}-{r:04d}" for r in g["rank"]]
    g["n_tiles"] = 4
    metric = g.geometry
    g["area_m2"] = metric.area
    c = metric.centroid.to_crs(4326)
    g["centroid_lon"], g["centroid_lat"] = c.x.to_numpy(), c.y.to_numpy()
    g["scene_id"] = scene
    g["acquired"] = DATES[date_no - 1]
    g["sensor"] = "drone"
    g["model"] = "minewatch-drone.onnx"
    g["model_sha256"] = "ab" * 32
    g["run_id"] = run_id or f"run-{date_no}"
    g["created"] = DATES[date_no - 1]
    g["review_status"] = "unreviewed"
    for col in OBJECT_COLUMNS:  # as a model without a dense head writes them
        g[col] = pd.NA if col == "n_containers" else ("tiles" if col == "outline" else np.nan)
    return g[[*SITE_COLUMNS, "geometry"]].astype(SITE_SCHEMA)


def tiles_frame(date_no: int) -> gpd.GeoDataFrame:
    """Every 64 m window of the area, ``scanned`` except where the date's scan did not reach."""
    x0, y0, x1, y1 = AREA
    hole = NOT_COVERED.get(date_no)
    rows, geoms = [], []
    for r, y in enumerate(range(y0, y1, 64)):
        for c, x in enumerate(range(x0, x1, 64)):
            inside_hole = hole is not None and x + 32 >= hole[0] and y + 32 >= hole[1]
            rows.append({"tile_id": f"r{r:06d}c{c:06d}", "row": r, "col": c, "scanned": not inside_hole})
            geoms.append(shapely.box(X0 + x, Y0 - y - 64, X0 + x + 64, Y0 - y))
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=UTM)


def write_scan(folder: Path, date_no: int, **kw) -> Path:
    """A scan output folder: sites.geojson and tiles.gpkg."""
    folder.mkdir(parents=True, exist_ok=True)
    write_sites_geojson(sites_frame(date_no, **kw), folder / "sites.geojson")
    write_tiles_gpkg(tiles_frame(date_no), folder / "tiles.gpkg")
    return folder


def farm_of(sites: gpd.GeoDataFrame, name: str) -> str:
    """The catalogue id of farm ``name``: the site whose outline holds the farm's date-1 centre."""
    x, y, w, h, _, _ = FARMS[name]
    centre = gpd.GeoSeries([shapely.Point(X0 + x + 16 * w + 16, Y0 - y - 16 * h - 16)], crs=UTM).to_crs(4326).iloc[0]
    hits = sites[sites.geometry.contains(centre)]
    assert len(hits) == 1, (name, list(hits["site_id"]))
    return hits["site_id"].iloc[0]
