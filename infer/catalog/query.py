"""Reading the catalogue: filtered sites, export (GeoJSON RFC 7946, GeoPackage, CSV), and the diff since a date.

Filters (shared by list, export, diff, report and labels): ``status`` and ``review`` (any of the values
given), ``since`` (sites some scan looked at on or after that time: seen there, or covered and found
gone), and ``geofence`` (sites touching the polygons of a vector file, any CRS).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from minewatch.atomic import atomic_path, check_writable
from minewatch.datasets.vectors import read_vector
from minewatch.errors import UserError
from minewatch.infer.catalog.core import APPEARED, PERSISTED, VANISHED, day_of, diff_kind
from minewatch.infer.catalog.schema import COVERAGE, GEOM, OBSERVATIONS, SITES
from minewatch.infer.catalog.store import SqlStore
from minewatch.infer.catalog.update import histories

EXPORT_FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".csv": "CSV"}
MOVE_HINT_M = 5000.0
"""diff names, for each vanished site, the nearest site that appeared within this distance (a farm that
moved is the case a regulator cares about most)."""


@dataclass(frozen=True)
class Filters:
    status: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    since: str | None = None
    geofence: Path | None = None

    def describe(self) -> str:
        parts = []
        if self.status:
            parts.append("status " + "/".join(self.status))
        if self.review:
            parts.append("review " + "/".join(self.review))
        if self.since:
            parts.append(f"looked at since {self.since[:10]}")
        if self.geofence:
            parts.append(f"inside {self.geofence}")
        return ", ".join(parts) or "all sites"


def _frame(rows: list[dict], table=SITES) -> gpd.GeoDataFrame:
    cols = [c.name for c in table.columns if c.name != GEOM]
    data = pd.DataFrame.from_records(rows, columns=[GEOM, *cols]) if rows else pd.DataFrame(columns=[GEOM, *cols])
    geoms = gpd.GeoSeries(list(data[GEOM]) if rows else [], crs=4326, index=data.index)
    return gpd.GeoDataFrame(data.drop(columns=[GEOM]), geometry=geoms, crs=4326)


def apply_filters(sites: gpd.GeoDataFrame, filters: Filters) -> gpd.GeoDataFrame:
    keep = np.ones(len(sites), dtype=bool)
    if filters.status:
        keep &= sites["status"].isin(filters.status).to_numpy()
    if filters.review:
        keep &= sites["review_status"].isin(filters.review).to_numpy()
    if filters.since:
        keep &= (sites["last_checked"].fillna("") >= filters.since).to_numpy()
    if filters.geofence is not None and len(sites):
        fence = read_vector(filters.geofence, role="geofence", polygons_only=True).to_crs(4326)
        area = shapely.union_all(np.asarray(fence.geometry.values))
        keep &= np.asarray(sites.geometry.intersects(area))
    return sites[keep].sort_values("site_id", kind="mergesort").reset_index(drop=True)


def load_sites(store: SqlStore, filters: Filters = Filters()) -> gpd.GeoDataFrame:
    """The catalogue's sites (EPSG:4326) that pass ``filters``, by id."""
    with store.read():
        rows = store.select(SITES)
    return apply_filters(_frame(rows), filters)


def load_observations(store: SqlStore, site_ids: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    with store.read():
        rows = store.select(OBSERVATIONS, where={"site_id": list(site_ids)} if site_ids is not None else None)
    obs = _frame(rows, OBSERVATIONS)
    return obs.sort_values(["site_id", "acquired", "run_id"], kind="mergesort").reset_index(drop=True)


def load_coverage(store: SqlStore) -> list[dict]:
    with store.read():
        return store.select(COVERAGE)


# ---------------------------------------------------------------- list
LIST_COLUMNS = ("site_id", "status", "status_since", "review_status", "best_score", "classes", "first_seen",
                "last_seen", "n_observations", "centroid_lat", "centroid_lon")


def format_table(sites: gpd.GeoDataFrame) -> str:
    """A plain-text table of sites for the terminal."""
    head = ["site", "status", "since", "review", "score", "classes", "first seen", "last seen", "obs", "lat", "lon"]
    rows = []
    for _, s in sites.iterrows():
        rows.append([
            s["site_id"], s["status"], (s["status_since"] or "")[:10], s["review_status"],
            f"{s['best_score']:.2f}" if pd.notna(s["best_score"]) else "-", s["classes"] or "-",
            (s["first_seen"] or "")[:10], (s["last_seen"] or "")[:10], str(int(s["n_observations"] or 0)),
            f"{s['centroid_lat']:.5f}" if pd.notna(s["centroid_lat"]) else "-",
            f"{s['centroid_lon']:.5f}" if pd.notna(s["centroid_lon"]) else "-",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


# ---------------------------------------------------------------- export
def export_sites(sites: gpd.GeoDataFrame, out: Path) -> Path:
    """Write sites as GeoJSON (RFC 7946), GeoPackage (styled like the catalogue) or CSV, atomically."""
    out = check_writable(out)
    fmt = EXPORT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot export to '{out.suffix or 'no suffix'}'", path=out,
                        fix="name the output *.geojson, *.gpkg or *.csv")
    if fmt == "GeoJSON":
        from minewatch.infer.writers import write_sites_geojson

        return write_sites_geojson(sites, out)
    if fmt == "CSV":
        table = pd.DataFrame(sites.drop(columns="geometry"))
        table["wkt"] = [g.wkt if g is not None else "" for g in sites.geometry.values]
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
        return out
    with atomic_path(out) as tmp:
        pyogrio.write_dataframe(sites, tmp, driver="GPKG", layer="sites", geometry_type="MultiPolygon",
                                dataset_options={"VERSION": "1.3"})  # readable by the GDAL of QGIS LTRs
        _copy_style(tmp)
    return out


def _copy_style(path: Path) -> None:
    """Give an exported GeoPackage the catalogue's default sites style."""
    from minewatch.infer.catalog.gpkg import LAYER_STYLES_SQL, insert_styles

    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(LAYER_STYLES_SQL)
            conn.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                         "VALUES ('layer_styles', 'attributes', 'layer_styles')")
            insert_styles(conn, tables=["sites"])
    finally:
        conn.close()


# ---------------------------------------------------------------- diff
@dataclass
class Diff:
    since: str
    appeared: gpd.GeoDataFrame
    vanished: gpd.GeoDataFrame
    persisted: gpd.GeoDataFrame

    def table(self) -> str:
        d = self.since[:10]
        lines = [f"since {d}: {len(self.appeared)} appeared, {len(self.vanished)} vanished, "
                 f"{len(self.persisted)} seen again"]
        for title, frame in ((f"appeared on or after {d}", self.appeared),
                             (f"vanished on or after {d}", self.vanished)):
            lines.append("")
            lines.append(f"{title} ({len(frame)}):")
            for _, s in frame.iterrows():
                extra = f"  nearest new site {s['moved_to']}" if s.get("moved_to") else ""
                lines.append(f"  {s['site_id']}  {s['status']:<10} since {(s['status_since'] or '')[:10]}  "
                             f"review {s['review_status']:<10} last seen {(s['last_seen'] or '')[:10]}  "
                             f"({s['centroid_lat']:.5f}, {s['centroid_lon']:.5f}){extra}")
        return "\n".join(lines)

    def frame(self) -> gpd.GeoDataFrame:
        """Changed sites with a ``change`` column, for export."""
        parts = []
        for kind, f in ((APPEARED, self.appeared), (VANISHED, self.vanished), (PERSISTED, self.persisted)):
            parts.append(f.assign(change=kind))
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4326)


def diff_since(store: SqlStore, since: str, filters: Filters = Filters()) -> Diff:
    """What appeared and vanished on or after ``since`` (a normalised time; its UTC day counts)."""
    with store.read():
        site_rows = store.select(SITES)
        obs = store.select(OBSERVATIONS, columns=("site_id", "acquired"))
        cov = store.select(COVERAGE, columns=(GEOM, "acquired"))
    sites = apply_filters(_frame(site_rows), Filters(filters.status, filters.review, None, filters.geofence))
    ids = set(sites["site_id"])
    hist = histories([r for r in site_rows if r["site_id"] in ids], obs, cov)
    kinds = np.array([diff_kind(hist[s], day_of(since)) for s in sites["site_id"]], dtype=object)
    appeared = sites[kinds == APPEARED].reset_index(drop=True)
    vanished = sites[kinds == VANISHED].reset_index(drop=True)
    vanished["moved_to"] = _nearest(vanished, appeared)
    return Diff(since, appeared, vanished, sites[kinds == PERSISTED].reset_index(drop=True))


def _nearest(vanished: gpd.GeoDataFrame, appeared: gpd.GeoDataFrame) -> list[str | None]:
    if vanished.empty or appeared.empty:
        return [None] * len(vanished)
    utm = vanished.estimate_utm_crs()
    a = appeared.to_crs(utm)
    out = []
    for g in vanished.to_crs(utm).geometry.values:
        d = a.distance(g).to_numpy()
        k = int(np.argmin(d))
        out.append(f"{a['site_id'].iloc[k]} at {d[k]:.0f} m" if d[k] <= MOVE_HINT_M else None)
    return out
