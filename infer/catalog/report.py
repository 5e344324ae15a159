"""The evidence report: one self-contained HTML page for inspectors, printable to PDF from a browser.

A map overview (scanned footprints and site outlines in lon/lat, filled by status, outlined by review),
then per site: its id, status and review (with the analyst's note), coordinates and area, chips of the
latest sighting (optical RGB and thermal excess over the local background, the outline drawn on both; for a
site that is gone also the latest scene that covered it and found nothing), and the history of every look
(sightings with scores and per-class probabilities, and misses).

Chips are read from the rasters recorded with each sighting, through the same :class:`Scene` a scan uses (so
the thermal excess is the one the model saw); where a raster no longer exists the report says so. This is
the one part of the catalogue that opens rasters: it is an output. Images are embedded as base64 PNG, the
template (``templates/report.html.j2``) has no external links, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

from minewatch import __version__
from minewatch.atomic import atomic_path, check_writable
from minewatch.classes import CLASSES
from minewatch.clock import now_utc
from minewatch.infer.catalog.core import COVER_SHARE, covered_shares, day_of
from minewatch.infer.catalog.query import Filters, load_coverage, load_observations, load_sites
from minewatch.infer.catalog.schema import GEOM, GONE
from minewatch.infer.catalog.store import SqlStore
from minewatch.infer.catalog.style import REVIEW_OUTLINE, STATUS_FILL

log = logging.getLogger(__name__)

CHIP_MARGIN_M = 40.0
"""Ground shown around a site's outline in its chips."""
CHIP_MAX_PX = 360
"""Longest side of a chip in model-grid pixels (larger sites are shown coarser)."""
DT_RANGE_K = (-5.0, 15.0)
"""Colour range of the thermal-excess chips (kelvin over the local background)."""


def _rgb(value: str) -> tuple[float, ...]:
    return tuple(int(x) / 255 for x in value.split(","))


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _patch(geom, **kw) -> PathPatch:
    """A matplotlib patch for a (Multi)Polygon, holes included."""
    verts, codes = [], []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)[:, :2]
            verts.extend(xy.tolist())
            codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 2) + [MplPath.CLOSEPOLY])
    return PathPatch(MplPath(verts, codes), **kw)


# ---------------------------------------------------------------- the overview map
def overview_map(sites: gpd.GeoDataFrame, coverage: list[dict]) -> str | None:
    """Footprints and site outlines on lon/lat axes (metric aspect), labelled with site ids."""
    if sites.empty:
        return None
    fig = Figure(figsize=(8, 6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for c in coverage:
        if c.get(GEOM) is not None and not c[GEOM].is_empty:
            ax.add_patch(_patch(c[GEOM], facecolor=(0.12, 0.47, 0.71, 0.06), edgecolor=(0.12, 0.47, 0.71, 0.5),
                                linewidth=0.6))
    for _, s in sites.iterrows():
        fill = _rgb(STATUS_FILL[s["status"]])
        edge, width, pen = REVIEW_OUTLINE[s["review_status"]]
        ax.add_patch(_patch(s.geometry, facecolor=fill, edgecolor=_rgb(edge), linewidth=max(0.8, width * 1.5),
                            linestyle={"dash": "--", "dot": ":"}.get(pen, "-")))
        c = s.geometry.representative_point()
        ax.annotate(s["site_id"], (c.x, c.y), fontsize=7, ha="left", va="bottom", xytext=(4, 4),
                    textcoords="offset points")
    minx, miny, maxx, maxy = sites.total_bounds
    padx, pady = max((maxx - minx) * 0.08, 0.002), max((maxy - miny) * 0.08, 0.002)
    ax.set_xlim(minx - padx, maxx + padx)
    ax.set_ylim(miny - pady, maxy + pady)
    ax.set_aspect(1 / max(math.cos(math.radians((miny + maxy) / 2)), 0.1))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.ticklabel_format(useOffset=False)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    handles = [_patch(shapely.box(0, 0, 1, 1), facecolor=_rgb(v), edgecolor="none", label=k)
               for k, v in STATUS_FILL.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=7, title="status", title_fontsize=7)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------- chips
@dataclass
class Chip:
    title: str
    image: str | None
    note: str = ""


class ChipReader:
    """Reads chips around sites from scene rasters; keeps each scene open while the report is built."""

    def __init__(self) -> None:
        self._scenes: dict[tuple, object] = {}

    def _scene(self, optical: str, thermal: str | None, sensor: str | None):
        from minewatch.datasets.profiles import load_profile
        from minewatch.datasets.scene import Scene
        from minewatch.errors import UserError

        key = (optical, thermal, sensor)
        if key not in self._scenes:
            try:
                profile = load_profile(sensor or "drone")
            except UserError:
                profile = load_profile("drone")
            thermal_ok = thermal if thermal and Path(thermal).is_file() else None
            self._scenes[key] = Scene(optical, thermal_ok, profile=profile)
        return self._scenes[key]

    def chip(self, title: str, optical: str | None, thermal: str | None, sensor: str | None, outline) -> Chip:
        if not optical:
            return Chip(title, None, "raster not available (none recorded with this scan)")
        if not Path(optical).is_file():
            return Chip(title, None, f"raster not available ({optical} no longer exists)")
        try:
            return Chip(title, self._draw(self._scene(optical, thermal, sensor), outline))
        except Exception as exc:  # noqa: BLE001 - an unreadable raster must not stop the report
            log.warning("chip for %s: %s", title, exc)
            return Chip(title, None, f"raster not available ({type(exc).__name__}: {str(exc)[:120]})")

    def _draw(self, scene, outline) -> str:
        from minewatch.datasets.tiling import Tile

        grid = scene.grid
        local = gpd.GeoSeries([outline], crs=4326).to_crs(grid.crs).iloc[0]
        minx, miny, maxx, maxy = local.bounds
        gsd = grid.gsd_m
        left, top = grid.transform.c, grid.transform.f
        c0 = max(0, math.floor((minx - CHIP_MARGIN_M - left) / gsd))
        c1 = min(grid.width, math.ceil((maxx + CHIP_MARGIN_M - left) / gsd))
        r0 = max(0, math.floor((top - maxy - CHIP_MARGIN_M) / gsd))
        r1 = min(grid.height, math.ceil((top - miny + CHIP_MARGIN_M) / gsd))
        if c1 <= c0 or r1 <= r0:
            raise ValueError("the site lies outside this raster")
        tile = Tile(0, 0, r0, c0, r1 - r0, c1 - c0)
        step = max(1, math.ceil(max(r1 - r0, c1 - c0) / CHIP_MAX_PX))
        rgb = scene.read_optical(tile, ("red", "green", "blue"))[:, ::step, ::step]
        extent = (left + c0 * gsd, left + c1 * gsd, top - r1 * gsd, top - r0 * gsd)
        anomaly = scene.thermal_anomaly(tile) if scene.has_thermal else None

        panels = 2 if anomaly is not None else 1
        fig = Figure(figsize=(3.3 * panels, 3.3), dpi=100)
        ax = fig.add_subplot(1, panels, 1)
        ax.imshow(_stretch(rgb), extent=extent, interpolation="nearest")
        ax.set_title("optical", fontsize=8)
        axes = [ax]
        if anomaly is not None:
            ax2 = fig.add_subplot(1, panels, 2)
            im = ax2.imshow(anomaly[0][::step, ::step], extent=extent, cmap="inferno", vmin=DT_RANGE_K[0],
                            vmax=DT_RANGE_K[1], interpolation="nearest")
            ax2.set_title("thermal excess (K)", fontsize=8)
            fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
            axes.append(ax2)
        for a in axes:
            a.add_patch(_patch(local, facecolor="none", edgecolor="#00e5ff", linewidth=1.2))
            a.set_xticks([])
            a.set_yticks([])
        fig.tight_layout()
        return _png(fig)

    def close(self) -> None:
        for s in self._scenes.values():
            s.close()
        self._scenes.clear()


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """(3, h, w) reflectance to (h, w, 3) 0..1 with a 2-98 % stretch; nodata white."""
    out = np.ones((rgb.shape[1], rgb.shape[2], 3))
    valid = np.isfinite(rgb).all(axis=0)
    if valid.any():
        lo, hi = np.percentile(rgb[:, valid], (2, 98))
        scaled = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)
        out[valid] = np.moveaxis(scaled, 0, -1)[valid]
    return out


# ---------------------------------------------------------------- the page
def _fmt(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) or pd.isna(v) else f"{v:.{digits}f}"


def build_context(store: SqlStore, filters: Filters, title: str) -> dict:
    sites = load_sites(store, filters)
    obs = load_observations(store, list(sites["site_id"]))
    coverage = load_coverage(store)
    by_site = defaultdict(list)
    for _, o in obs.iterrows():
        by_site[o["site_id"]].append(o)
    reader = ChipReader()
    entries = []
    try:
        for _, s in sites.iterrows():
            rows = by_site.get(s["site_id"], [])
            entries.append(_site_entry(s, rows, coverage, reader))
    finally:
        reader.close()
    counts = {k: int((sites["status"] == k).sum()) for k in STATUS_FILL}
    reviews = {k: int((sites["review_status"] == k).sum()) for k in REVIEW_OUTLINE}
    return {
        "title": title, "created": now_utc(), "version": __version__, "catalogue": store.location,
        "filters": filters.describe(), "n_sites": len(sites), "status_counts": counts, "review_counts": reviews,
        "overview": overview_map(sites, coverage), "sites": entries, "classes": CLASSES,
        "scans": sorted(({"scene_id": c["scene_id"], "acquired": c["acquired"], "n_sites": c["n_sites"],
                          "covered": c.get(GEOM) is not None} for c in coverage), key=lambda c: c["acquired"]),
    }


def _site_entry(s, rows: list, coverage: list[dict], reader: ChipReader) -> dict:
    outline = s.geometry
    history = []
    seen_days = set()
    for o in rows:
        seen_days.add(day_of(o["acquired"]))
        history.append({"day": o["acquired"][:16].replace("T", " "), "seen": True, "scene_id": o["scene_id"],
                        "score": _fmt(o["score"]), "classes": o["classes"] or "–",
                        "probs": [_fmt(o[f"p_{c}"]) for c in CLASSES], "dt": _fmt(o["thermal_dt_max_k"], 1),
                        "model": o["model"] or "–", "run": o["run_id"], "shared": bool(o["shared"])})
    misses = []
    for c in coverage:
        geom = c.get(GEOM)
        if geom is None or day_of(c["acquired"]) in seen_days:
            continue
        if covered_shares([outline], geom)[0] >= COVER_SHARE and day_of(c["acquired"]) > min(seen_days or {""}):
            misses.append(c)
            history.append({"day": c["acquired"][:16].replace("T", " "), "seen": False, "scene_id": c["scene_id"],
                            "score": "–", "classes": "nothing found", "probs": ["–"] * len(CLASSES), "dt": "–",
                            "model": c["model"] or "–", "run": c["run_id"], "shared": False})
    history.sort(key=lambda h: h["day"])
    chips = []
    if rows:
        last = max(rows, key=lambda o: (o["acquired"], o["score"] if pd.notna(o["score"]) else 0))
        chips.append(reader.chip(f"last seen {last['acquired'][:10]} ({last['scene_id']})", last["optical_path"],
                                 last["thermal_path"], last["sensor"], outline))
    if s["status"] == GONE and misses:
        miss = max(misses, key=lambda c: c["acquired"])
        chips.append(reader.chip(f"found nothing {miss['acquired'][:10]} ({miss['scene_id']})", miss["optical_path"],
                                 miss["thermal_path"], miss["sensor"], outline))
    minx, miny, maxx, maxy = outline.bounds
    return {
        "site_id": s["site_id"], "status": s["status"], "status_since": s["status_since"] or "",
        "review_status": s["review_status"], "analyst_note": s["analyst_note"] or "",
        "classes": s["classes"] or "–", "best_score": _fmt(s["best_score"]),
        "dt_max": _fmt(s["thermal_dt_max_k"], 1), "first_seen": (s["first_seen"] or "")[:10],
        "last_seen": (s["last_seen"] or "")[:10], "n_observations": int(s["n_observations"] or 0),
        "lat": _fmt(s["centroid_lat"], 6), "lon": _fmt(s["centroid_lon"], 6), "area_m2": _fmt(s["area_m2"], 0),
        "bbox": f"{minx:.6f}, {miny:.6f}, {maxx:.6f}, {maxy:.6f}",
        "fill": "rgba({},{},{},{:.2f})".format(*[int(x) for x in STATUS_FILL[s["status"]].split(",")[:3]],
                                               int(STATUS_FILL[s["status"]].split(",")[3]) / 255),
        "chips": chips, "history": history,
    }


def render_report(context: dict) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("minewatch.infer.catalog", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined)
    return env.get_template("report.html.j2").render(**context)


def write_report(store: SqlStore, out: Path, *, filters: Filters = Filters(),
                 title: str = "minewatch evidence report") -> int:
    """Write the report for the sites passing ``filters`` to ``out`` (atomically); returns the site count."""
    target = check_writable(out)
    context = build_context(store, filters, title)
    html = render_report(context)
    with atomic_path(target) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return context["n_sites"]
