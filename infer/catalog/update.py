"""Adding a scan to the catalogue: match its sites, record sightings and coverage, recompute statuses.

Everything for one scan happens in one write transaction (:meth:`Store.write`), so a crash leaves the
catalogue as it was, concurrent adds are serialised, and a scan already recorded (same run and scene) is
skipped: adding the same results twice changes nothing. The rules themselves are the pure functions of
:mod:`.core`; this module only moves rows.

A scan never writes ``review_status`` or ``analyst_note`` of an existing site. A site seen for the first
time takes the verdict the sites file already carries, when an analyst reviewed the file before it reached
the catalogue.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from minewatch.clock import now_utc
from minewatch.errors import UserError
from minewatch.infer.catalog.core import (
    COVER_SHARE,
    Look,
    covered_shares,
    day_of,
    fold_status,
    looks,
    match_outlines,
    parse_when,
    union_classes,
)
from minewatch.infer.catalog.ingest import ScanBatch
from minewatch.infer.catalog.schema import (
    COVERAGE,
    GEOM,
    OBSERVATIONS,
    PROB_COLUMNS,
    REVIEW_STATUSES,
    SITES,
    UNREVIEWED,
    site_id_of,
)
from minewatch.infer.catalog.store import SqlStore

log = logging.getLogger(__name__)


@dataclass
class AddSummary:
    batch: ScanBatch
    skipped: bool = False
    new: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # touched site -> status after the add

    def line(self) -> str:
        if self.skipped:
            return f"{self.batch.label}: already in the catalogue, nothing changed"
        gone = sorted(s for s, st in self.statuses.items() if st == "gone")
        return (f"{self.batch.label}: {len(self.batch.sites)} site(s): {len(self.new)} new, "
                f"{len(self.matched)} seen again; {len(gone)} gone")


def as_multipolygon(geom):
    """Valid MultiPolygon (polygon parts of a repaired geometry)."""
    geom = shapely.make_valid(geom)
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    polys = [p for g in parts for p in (g.geoms if g.geom_type == "MultiPolygon" else [g])]
    return shapely.MultiPolygon(polys)


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    text = str(value)
    return text or None


def _when_or_none(value) -> str | None:
    try:
        return parse_when(value) if value not in (None, "") else None
    except UserError:
        return None


def add_batches(store: SqlStore, batches: Iterable[ScanBatch]) -> list[AddSummary]:
    """Add each batch in its own transaction (in the order given)."""
    return [add_batch(store, b) for b in batches]


def add_batch(store: SqlStore, batch: ScanBatch) -> AddSummary:
    """Add one scan of one scene (see the module notes)."""
    summary = AddSummary(batch)
    stamp = now_utc()
    with store.write():
        if store.select(COVERAGE, where={"run_id": [batch.run_id], "scene_id": [batch.scene_id]},
                        columns=("run_id",)):
            summary.skipped = True
            return summary
        known = store.select(SITES, columns=("site_id", GEOM))
        known_ids = [k["site_id"] for k in known]
        known_geoms = [k[GEOM] for k in known]
        sites = batch.sites.reset_index(drop=True)
        outlines = [as_multipolygon(g) for g in sites.geometry.values]
        matches = match_outlines(outlines, known_geoms)
        unmatched = [i for i, m in enumerate(matches) if not m]
        numbers = store.next_numbers(len(unmatched)) if unmatched else []
        new_ids = dict(zip(unmatched, (site_id_of(n) for n in numbers), strict=True))

        new_rows, obs_rows = [], []
        for i, row in sites.iterrows():
            if matches[i]:
                targets = [(known_ids[j], share) for j, share in matches[i]]
                summary.matched.extend(t for t, _ in targets)
            else:
                targets = [(new_ids[i], 1.0)]
                summary.new.append(new_ids[i])
                new_rows.append(_new_site_row(new_ids[i], outlines[i], row, batch, stamp))
            for site_id, share in targets:
                obs_rows.append(_observation_row(site_id, outlines[i], row, batch, share, len(targets) > 1, stamp))
        store.insert(COVERAGE, [_coverage_row(batch, stamp)])
        store.insert(SITES, new_rows)
        store.insert(OBSERVATIONS, obs_rows)

        touched = set(summary.matched) | set(summary.new)
        if batch.footprint is not None and known:
            shares = covered_shares(known_geoms, batch.footprint)
            touched |= {known_ids[j] for j in np.flatnonzero(shares >= COVER_SHARE)}
        summary.statuses = refresh_sites(store, sorted(touched), stamp)
        store.touch([SITES.name, OBSERVATIONS.name, COVERAGE.name])
    summary.matched = sorted(set(summary.matched))
    return summary


def _new_site_row(site_id: str, outline, row, batch: ScanBatch, stamp: str) -> dict:
    review = _text(row.get("review_status"))
    return {GEOM: outline, "site_id": site_id, "status": "new",
            "review_status": review if review in REVIEW_STATUSES else UNREVIEWED,
            "analyst_note": _text(row.get("analyst_note")), "updated": stamp}


def _observation_row(site_id: str, outline, row, batch: ScanBatch, share: float, shared: bool, stamp: str) -> dict:
    rank = _num(row.get("rank"))
    n_tiles = _num(row.get("n_tiles"))
    return {
        GEOM: outline, "site_id": site_id, "scene_id": batch.scene_id, "acquired": batch.acquired,
        "run_id": batch.run_id, "scan_site_id": _text(row.get("site_id")) or f"{batch.scene_id}-{int(rank or 0):04d}",
        "scan_rank": int(rank) if rank is not None else None, "shared": int(shared), "overlap": round(share, 4),
        "score": _num(row.get("score")), "classes": _text(row.get("classes")) or "",
        **{c: _num(row.get(c)) for c in PROB_COLUMNS},
        "thermal_dt_max_k": _num(row.get("thermal_dt_max_k")), "thermal_z_max": _num(row.get("thermal_z_max")),
        "n_tiles": int(n_tiles) if n_tiles is not None else None, "area_m2": _num(row.get("area_m2")),
        "sensor": batch.sensor, "model": batch.model, "model_sha256": batch.model_sha256,
        "scan_created": _when_or_none(batch.created), "optical_path": batch.optical_path,
        "thermal_path": batch.thermal_path, "added": stamp,
    }


def _coverage_row(batch: ScanBatch, stamp: str) -> dict:
    return {
        GEOM: as_multipolygon(batch.footprint) if batch.footprint is not None else None,
        "scene_id": batch.scene_id, "acquired": batch.acquired, "run_id": batch.run_id, "sensor": batch.sensor,
        "model": batch.model, "model_sha256": batch.model_sha256, "optical_path": batch.optical_path,
        "thermal_path": batch.thermal_path, "n_sites": len(batch.sites), "source": batch.source, "added": stamp,
    }


# ---------------------------------------------------------------- derived site fields
def current_outline(observations: Sequence[dict]):
    """A site's outline: the union of its sightings on the latest day it was seen on its own (not
    ``shared`` with another site); the latest day's sightings when every sighting was shared."""
    if not observations:
        return None
    own = [o for o in observations if not o.get("shared")] or list(observations)
    last = max(day_of(o["acquired"]) for o in own)
    return as_multipolygon(shapely.union_all([o[GEOM] for o in own if day_of(o["acquired"]) == last]))


def site_fields(observations: Sequence[dict], covered: Sequence[str], outline) -> dict:
    """The scan-owned fields of one site from its sightings and the times of the scans that covered it.

    Pure: ``observations`` are rows of the observations table, ``covered`` the ``acquired`` times of scans
    whose footprint covered the site's ``outline``.
    """
    seen_times = sorted(o["acquired"] for o in observations)
    status = fold_status(looks((day_of(t) for t in seen_times), (day_of(t) for t in covered)))
    latest = max(observations, key=lambda o: (o["acquired"], o.get("score") or 0.0))
    scores = [o["score"] for o in observations if o.get("score") is not None]
    dts = [o["thermal_dt_max_k"] for o in observations if o.get("thermal_dt_max_k") is not None]
    runs = {(o["run_id"], o["scene_id"]) for o in observations}
    fields = {
        GEOM: outline,
        "status": status[0] if status else "new",
        "status_since": status[1] if status else None,
        "classes": union_classes(o.get("classes") for o in observations),
        "best_score": max(scores) if scores else None,
        "thermal_dt_max_k": max(dts) if dts else None,
        "first_seen": seen_times[0],
        "last_seen": seen_times[-1],
        "last_checked": max([seen_times[-1], *covered]),
        "n_observations": len(runs),
        "last_scene_id": latest["scene_id"],
    }
    fields.update(_centroid_area(outline))
    return fields


def _centroid_area(outline) -> dict:
    if outline is None or outline.is_empty:
        return {"centroid_lon": None, "centroid_lat": None, "area_m2": None}
    s = gpd.GeoSeries([outline], crs=4326)
    metric = s.to_crs(s.estimate_utm_crs())
    c = metric.centroid.to_crs(4326).iloc[0]
    return {"centroid_lon": round(c.x, 7), "centroid_lat": round(c.y, 7),
            "area_m2": round(float(metric.area.iloc[0]), 1)}


def coverage_times(outlines: Sequence, coverage: Sequence[dict]) -> list[list[str]]:
    """For each outline, the ``acquired`` times of the coverage rows whose footprint covers it."""
    out: list[list[str]] = [[] for _ in outlines]
    rows = [c for c in coverage if c.get(GEOM) is not None and not c[GEOM].is_empty]
    if not rows or not len(outlines):
        return out
    geoms = np.asarray(outlines, dtype=object)
    for c in rows:
        shares = covered_shares(geoms, c[GEOM])
        for k in np.flatnonzero(shares >= COVER_SHARE):
            out[k].append(c["acquired"])
    return out


def refresh_sites(store: SqlStore, site_ids: Sequence[str], stamp: str) -> dict[str, str]:
    """Recompute the scan-owned fields of ``site_ids`` from the whole history; returns their statuses."""
    if not site_ids:
        return {}
    obs = store.select(OBSERVATIONS, where={"site_id": list(site_ids)},
                       columns=(GEOM, "site_id", "scene_id", "run_id", "acquired", "shared", "score", "classes",
                                "thermal_dt_max_k"))
    by_site: dict[str, list[dict]] = defaultdict(list)
    for o in obs:
        by_site[o["site_id"]].append(o)
    ids = [s for s in site_ids if by_site.get(s)]
    outlines = [current_outline(by_site[s]) for s in ids]
    coverage = store.select(COVERAGE, columns=(GEOM, "acquired"))
    covered = coverage_times(outlines, coverage)
    rows = []
    for sid, outline, cov in zip(ids, outlines, covered, strict=True):
        rows.append({"site_id": sid, **site_fields(by_site[sid], cov, outline), "updated": stamp})
    store.update(SITES, "site_id", rows)
    return {r["site_id"]: r["status"] for r in rows}


def histories(sites: Sequence[dict], observations: Sequence[dict], coverage: Sequence[dict]) -> dict[str, list[Look]]:
    """Every site's looks (for diff and reports): sightings from ``observations``, misses from ``coverage``
    footprints over the site's current outline."""
    seen: dict[str, set[str]] = defaultdict(set)
    for o in observations:
        seen[o["site_id"]].add(day_of(o["acquired"]))
    outlines = [s[GEOM] for s in sites]
    covered = coverage_times(outlines, coverage)
    return {s["site_id"]: looks(seen[s["site_id"]], (day_of(t) for t in cov))
            for s, cov in zip(sites, covered, strict=True)}
