"""Score candidate sites (sites.geojson) against truth polygons: what an analyst would find, and miss.

Rules, all areas in a metric CRS (`minewatch.datasets.crs.metric_crs`):

- A truth site is the union of the truth polygons of one ``site_id`` whose class is in CLASSES; look-alike
  polygons are never sites, nor are polygons hidden under thick cloud (``cloud_share``, see the label rule).
  A truth site carries class c when it has a polygon of class c.
- A truth site is FOUND when candidates cover at least `FOUND_SHARE` of its area.
- A candidate is a TRUE POSITIVE when it covers at least `FOUND_SHARE` of some truth site, or when at least
  `CANDIDATE_SHARE` of its own area lies on truth sites. (Candidates are unions of tiles, often larger
  than the site: the first clause credits a tile blob around a small site, the second a site split in two.)
- The same overlap rule says when a candidate hits a look-alike polygon.
- Per class c: truth sites carrying c against candidates listing c; a candidate is a true positive for c
  when it matches (rule above) a truth site carrying c; a site is found for c by candidates listing c.
- Precision = true-positive candidates / candidates; recall = found truth sites / truth sites.
- precision@k: share of true positives among the top min(k, n) candidates by rank (None without any).
- With a geofence, only truth sites and candidates with at least `FOUND_SHARE` of their area inside
  the include polygons count.
- Outlines, container counts and power (``EvalReport.objects``): polygon IoU of each matched truth site with
  its best candidate, containers in TEU and power against the truth, by the rules of
  :mod:`minewatch.infer.object_eval`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from minewatch.atomic import atomic_path, check_writable
from minewatch.classes import CLASSES, LOOKALIKE
from minewatch.datasets.crs import metric_crs
from minewatch.datasets.labels import hidden, known_targets, read_truth
from minewatch.datasets.vectors import read_vector
from minewatch.errors import UserError
from minewatch.infer.object_eval import object_figures
from minewatch.json_io import json_safe, write_json
from minewatch.metrics import average_precision, pr_curve, precision_recall_f1

log = logging.getLogger(__name__)

FOUND_SHARE = 0.5  # share of a truth site's area that candidates must cover
CANDIDATE_SHARE = 0.25  # share of a candidate's area on truth sites that makes it a true positive
PRECISION_AT = (1, 3, 5, 10)


@dataclass
class Scores:
    """Site-level detection figures for all classes together or for one class."""

    n_candidates: int
    n_truth: int
    true_positives: int
    found: int
    precision: float
    recall: float
    f1: float


@dataclass
class EvalReport:
    """Everything `evaluate_files` measured; `to_dict` for JSON, `table` for a terminal."""

    sites_path: str
    truth_path: str
    overall: Scores
    per_class: dict[str, Scores]
    precision_at: dict[int, float | None]
    site_ap: float
    lookalikes: dict[str, dict[str, int]]
    candidates: list[dict]
    missed: list[str]
    site_curve: dict[str, list[float]]
    tile_ap: dict[str, float] | None = None
    tile_map: float | None = None
    tile_curves: dict[str, dict[str, list[float]]] | None = None
    objects: dict | None = None
    """Polygon IoU of matched sites, container count and power against truth (minewatch.infer.object_eval)."""
    rules: dict[str, float] = field(
        default_factory=lambda: {"found_share": FOUND_SHARE, "candidate_share": CANDIDATE_SHARE}
    )

    def to_dict(self) -> dict:
        """JSON-ready (NaN -> None, int keys -> str)."""
        data = asdict(self)
        data["precision_at"] = {str(k): v for k, v in self.precision_at.items()}
        return json_safe(data)

    def table(self) -> str:
        """Aligned text table: overall and per-class figures, precision@k, look-alikes, tile AP."""
        head = f"{'precision':>10}{'recall':>8}{'f1':>7}{'tp':>5}{'cand':>6}{'found':>7}{'truth':>7}"
        lines = [f"{'':<16}{head}"]
        for name, s in [("all", self.overall), *self.per_class.items()]:
            lines.append(
                f"{name:<16}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>7.3f}{s.true_positives:>5d}"
                f"{s.n_candidates:>6d}{s.found:>7d}{s.n_truth:>7d}"
            )
        pk = "  ".join(f"P@{k}={_fmt(v)}" for k, v in self.precision_at.items())
        lines.append(f"{pk}  site AP={_fmt(self.site_ap)}")
        if self.lookalikes:
            lines.append(f"{'look-alike kind':<16}{'n':>5}{'hit':>5}{'cand':>6}{'fp':>5}")
            for kind, d in self.lookalikes.items():
                lines.append(f"{kind:<16}{d['n']:>5d}{d['hit']:>5d}{d['candidates']:>6d}{d['false_positives']:>5d}")
        if self.objects and self.objects.get("n_truth_sites"):
            lines.extend(object_lines(self.objects))
        if self.tile_ap is not None:
            aps = "  ".join(f"{c}={_fmt(v)}" for c, v in self.tile_ap.items())
            lines.append(f"tile AP: {aps}  mAP={_fmt(self.tile_map)}")
        if self.missed:
            lines.append(f"missed truth sites: {', '.join(self.missed)}")
        return "\n".join(lines)


def object_lines(o: dict) -> list[str]:
    """Terminal lines of the object figures (see :mod:`minewatch.infer.object_eval`)."""
    lines = [f"outlines: median IoU {_fmt(o['iou_median'])} over {o['n_matched']}/{o['n_truth_sites']} matched "
             "truth sites (" + ", ".join(f"{k} {_fmt(v['iou_median'])}" for k, v in o["iou_by_kind"].items()) + ")"]
    if o["farms"] and not o.get("counted", True):
        lines.append("containers, power: no matched site carries a count (a model without a dense head outlines "
                     "sites by their windows)")
        return lines
    if o["farms"]:
        ok = round((o["count_ok_share"] or 0) * o["farms"])
        lines.append(f"containers: {ok}/{o['farms']} farms counted within {o['count_within'] * 100:g} % "
                     f"(median error {_fmt(o['count_rel_error_median'])})")
    if o["running_farms"]:
        inside = round((o["power_in_range_share"] or 0) * o["running_farms"])
        lines.append(f"power: median error {_fmt(o['power_rel_error_median'])} over {o['running_farms']} running "
                     f"farms, truth inside the estimate's range for {inside}")
    if o["dormant_farms"]:
        lines.append(f"dormant farms called idle (0 MW): {o['dormant_called_idle']}/{o['dormant_farms']}")
    return lines


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


# ----------------------------------------------------------------------------------------------- reading


def _read_geofence(geofence: str | Path | gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    if geofence is None:
        return None
    if isinstance(geofence, gpd.GeoDataFrame):
        if geofence.crs is None:
            raise UserError("the geofence has no CRS", fix="set its CRS")
        return geofence
    return read_vector(geofence, role="geofence")


def truth_sites(truth: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per truth site (union of its polygons): site_id, classes (set), geometry."""
    if "class" not in truth.columns:
        raise UserError("the truth file has no 'class' property", fix=f"label polygons with one of {CLASSES}")
    rows = truth[truth["class"].isin(CLASSES).to_numpy() & ~hidden(truth)].copy()  # the seen ones
    if "site_id" not in rows.columns:
        rows["site_id"] = None
    ids = rows["site_id"].astype(object)
    missing = ids.isna()
    ids[missing] = [f"polygon-{i}" for i in rows.index[missing]]
    rows["site_id"] = ids.astype(str)
    records, geoms = [], []
    for site_id, group in rows.groupby("site_id", sort=True):
        records.append({"site_id": site_id, "classes": frozenset(group["class"])})
        geoms.append(shapely.union_all(np.asarray(group.geometry.values)))
    return gpd.GeoDataFrame(records, geometry=geoms, crs=truth.crs) if records else gpd.GeoDataFrame(
        {"site_id": [], "classes": []}, geometry=[], crs=truth.crs
    )


# ----------------------------------------------------------------------------------------------- matching


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection areas, computed only for pairs whose boxes meet."""
    out = np.zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return out
    tree = shapely.STRtree(b)
    ia, ib = tree.query(a, predicate="intersects")
    if len(ia):
        out[ia, ib] = shapely.area(shapely.intersection(a[ia], b[ib]))
    return out


def candidate_matches(
    cand: np.ndarray, truth: np.ndarray, overlap: np.ndarray | None = None
) -> np.ndarray:
    """(n_cand, n_truth) bool: candidate i matches truth polygon j by the module's overlap rule."""
    ov = overlap_matrix(cand, truth) if overlap is None else overlap
    if ov.size == 0:
        return np.zeros(ov.shape, dtype=bool)
    cand_area = shapely.area(cand)[:, None]
    truth_area = shapely.area(truth)[None, :]
    covers_truth = ov >= FOUND_SHARE * truth_area
    on_truth = (ov.sum(axis=1, keepdims=True) >= CANDIDATE_SHARE * cand_area) & (ov > 0)
    return covers_truth | on_truth


def coverage(cand: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Share of each truth geometry's area covered by the union of ``cand``."""
    if len(truth) == 0:
        return np.zeros(0)
    if len(cand) == 0:
        return np.zeros(len(truth))
    union = shapely.union_all(cand)
    area = shapely.area(truth)
    inter = shapely.area(shapely.intersection(truth, union))
    return np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0)


def _scores(match: np.ndarray, found: np.ndarray) -> Scores:
    n_cand, n_truth = match.shape
    tp = int(match.any(axis=1).sum()) if n_truth else 0
    n_found = int(found.sum())
    precision = precision_recall_f1(tp, n_cand - tp, 0)[0]
    recall = precision_recall_f1(n_found, 0, n_truth - n_found)[1]
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(n_cand, n_truth, tp, n_found, precision, recall, f1)


def site_pr_curve(
    cand: np.ndarray, scores: np.ndarray, is_tp: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Site-level precision and recall when only candidates scoring >= t are kept, for each distinct t.

    Recall counts truth sites FOUND by the kept candidates, so it is re-measured at every threshold.
    """
    order = np.argsort(-scores, kind="mergesort")
    thresholds = np.unique(scores)[::-1]
    precision, _, _ = pr_curve(is_tp, scores) if len(scores) else (np.zeros(0), None, None)
    recall = np.zeros(len(thresholds))
    n_truth = len(truth)
    for i, t in enumerate(thresholds):
        kept = cand[order][scores[order] >= t]
        recall[i] = (coverage(kept, truth) >= FOUND_SHARE).sum() / n_truth if n_truth else 0.0
    return precision, recall, thresholds


# ----------------------------------------------------------------------------------------------- evaluate


def evaluate_sites(
    sites: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    geofence: gpd.GeoDataFrame | None = None,
    tiles: gpd.GeoDataFrame | None = None,
    sites_path: str = "",
    truth_path: str = "",
) -> EvalReport:
    """Compare candidate sites with truth polygons (any CRSs); the pure core of `evaluate_files`."""
    truth_all = truth
    sites_truth = truth_sites(truth)
    looks = truth[truth["class"] == LOOKALIKE] if "class" in truth.columns else truth.iloc[:0]
    crs = _common_metric_crs([g for g in (sites, sites_truth, looks) if len(g)])

    cand = sites.to_crs(crs) if len(sites) else sites
    sites_truth = sites_truth.to_crs(crs)
    looks = looks.to_crs(crs)
    if geofence is not None:
        fence = shapely.union_all(np.asarray(geofence.to_crs(crs).geometry.values))
        cand = cand[_inside(cand, fence)] if len(cand) else cand
        sites_truth = sites_truth[_inside(sites_truth, fence)]
        looks = looks[_inside(looks, fence)]
    if len(cand):
        if "score" not in cand.columns:
            raise UserError("the sites file has no 'score' property", path=sites_path or None,
                            fix="give a sites.geojson written by minewatch scan")
        sort_cols = ["rank"] if "rank" in cand.columns else []
        cand = cand.assign(_s=-cand["score"].astype(float)).sort_values(
            ["_s", *sort_cols], kind="mergesort").drop(columns="_s")

    cg = np.asarray(cand.geometry.values) if len(cand) else np.zeros(0, dtype=object)
    tg = np.asarray(sites_truth.geometry.values)
    cand_classes = [
        set(str(c).split(",")) if isinstance(c, str) else set() for c in
        (cand["classes"] if "classes" in cand.columns else [None] * len(cand))
    ]
    scores = cand["score"].to_numpy(dtype=float) if len(cand) else np.zeros(0)

    overlap = overlap_matrix(cg, tg)
    match = candidate_matches(cg, tg, overlap)
    found = coverage(cg, tg) >= FOUND_SHARE
    overall = _scores(match, found)
    is_tp = match.any(axis=1) if len(tg) else np.zeros(len(cg), dtype=bool)

    per_class = {}
    for c in CLASSES:
        ci = np.array([c in cl for cl in cand_classes], dtype=bool)
        tj = np.array([c in cl for cl in sites_truth["classes"]], dtype=bool)
        m = match[np.ix_(ci, tj)]
        f = coverage(cg[ci], tg[tj]) >= FOUND_SHARE
        per_class[c] = _scores(m, f)

    precision_at = {k: float(is_tp[:k].mean()) if len(is_tp) else None for k in PRECISION_AT}
    sp, sr, st = site_pr_curve(cg, scores, is_tp, tg)
    # area under the step curve; 0 with truth but no candidates, undefined without truth
    site_ap = float(np.sum(np.diff(np.r_[0.0, sr]) * sp)) if len(tg) else float("nan")

    lookalikes, look_hits = _lookalikes(cg, looks, is_tp)
    truth_ids = sites_truth["site_id"].tolist()
    candidates = []
    for i in range(len(cand)):
        row = cand.iloc[i]
        candidates.append({
            "site_id": str(row.get("site_id", i)),
            "rank": int(row["rank"]) if "rank" in cand.columns and pd.notna(row["rank"]) else i + 1,
            "score": float(scores[i]),
            "true_positive": bool(is_tp[i]),
            "truth_sites": [truth_ids[j] for j in np.flatnonzero(match[i])] if len(tg) else [],
            "lookalikes": look_hits[i],
        })
    missed = [truth_ids[j] for j in np.flatnonzero(~found)]

    report = EvalReport(
        sites_path=str(sites_path), truth_path=str(truth_path), overall=overall, per_class=per_class,
        precision_at=precision_at, site_ap=site_ap, lookalikes=lookalikes, candidates=candidates,
        missed=missed,
        site_curve={"threshold": st.tolist(), "precision": sp.tolist(), "recall": sr.tolist()},
        objects=object_figures(cand, sites_truth, truth_all.to_crs(crs) if len(truth_all) else truth_all, match),
    )
    if tiles is not None:
        _tile_level(report, tiles, truth_all, fence=None if geofence is None else geofence)
    return report


def _common_metric_crs(parts: Sequence[gpd.GeoDataFrame]) -> CRS:
    """The shared CRS when every input is in the same metric CRS, else the UTM zone of them all."""
    if not parts:
        return CRS.from_epsg(4326)  # nothing to measure
    first = CRS.from_user_input(parts[0].crs)
    if all(CRS.from_user_input(p.crs) == first for p in parts):
        return metric_crs(first, parts[0])
    lonlat = pd.concat([p.geometry.to_crs(4326) for p in parts], ignore_index=True)
    return metric_crs(4326, gpd.GeoSeries(lonlat, crs=4326))


def _inside(gdf: gpd.GeoDataFrame, fence: shapely.Geometry) -> np.ndarray:
    geoms = np.asarray(gdf.geometry.values)
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    area = shapely.area(geoms)
    inside = shapely.area(shapely.intersection(geoms, fence))
    return inside >= FOUND_SHARE * np.where(area > 0, area, np.inf)


def _lookalikes(
    cand: np.ndarray, looks: gpd.GeoDataFrame, is_tp: np.ndarray
) -> tuple[dict[str, dict[str, int]], list[list[str]]]:
    """Per look-alike kind: polygons (n), polygons hit by a candidate (hit), candidates hitting one
    (candidates) and those of them that are false positives (false_positives); and each candidate's kinds."""
    hits: list[list[str]] = [[] for _ in range(len(cand))]
    if len(looks) == 0:
        return {}, hits
    kinds = (looks["kind"] if "kind" in looks.columns else pd.Series(index=looks.index, dtype=object))
    kinds = kinds.fillna("unknown").astype(str).to_numpy()
    lg = np.asarray(looks.geometry.values)
    m = candidate_matches(cand, lg)
    out = {}
    for kind in sorted(set(kinds)):
        cols = kinds == kind
        sub = m[:, cols]
        hitting = sub.any(axis=1)
        out[kind] = {
            "n": int(cols.sum()),
            "hit": int(sub.any(axis=0).sum()),
            "candidates": int(hitting.sum()),
            "false_positives": int((hitting & ~is_tp).sum()),
        }
        for i in np.flatnonzero(sub.any(axis=1)):
            hits[i].append(kind)
    return out, hits


def _tile_level(report: EvalReport, tiles: gpd.GeoDataFrame, truth: gpd.GeoDataFrame,
                fence: gpd.GeoDataFrame | None) -> None:
    """Tile-level AP per class from the tiles' probabilities and `tile_targets` on the truth; windows of unknown
    content (unlabelled ground, objects hidden under thick cloud) are not scored."""
    if tiles.crs is None:
        raise UserError("the tiles file has no CRS", fix="give the tiles.gpkg written by minewatch scan")
    cols = [f"p_{c}" for c in CLASSES]
    lacking = [c for c in cols if c not in tiles.columns]
    if lacking:
        raise UserError(f"the tiles file lacks columns {lacking}",
                        fix="give the tiles.gpkg written by minewatch scan")
    probs = tiles[cols].to_numpy(dtype=float)
    tiles = tiles[np.isfinite(probs).any(axis=1)]  # tiles never scanned (fenced out, nodata) do not count
    if fence is not None and len(tiles):
        f = shapely.union_all(np.asarray(fence.to_crs(tiles.crs).geometry.values))
        tiles = tiles[_inside(tiles, f)]
    metric = metric_crs(tiles.crs, tiles) if len(tiles) else tiles.crs
    known, targets = known_targets(tiles.to_crs(metric), truth)  # as training and the model card label them
    tiles, targets = tiles[known], np.asarray(targets, dtype=bool)
    report.tile_ap, report.tile_curves = {}, {}
    for k, c in enumerate(CLASSES):
        s = tiles[cols[k]].to_numpy(dtype=float)
        s = np.where(np.isfinite(s), s, 0.0)
        report.tile_ap[c] = average_precision(targets[:, k], s)
        p, r, t = pr_curve(targets[:, k], s)
        report.tile_curves[c] = {"threshold": t.tolist(), "precision": p.tolist(), "recall": r.tolist()}
    finite = [v for v in report.tile_ap.values() if math.isfinite(v)]
    report.tile_map = float(np.mean(finite)) if finite else float("nan")


def evaluate_files(
    sites_path: str | Path,
    truth_path: str | Path,
    *,
    geofence: str | Path | gpd.GeoDataFrame | None = None,
    tiles: str | Path | gpd.GeoDataFrame | None = None,
    out: str | Path | None = None,
    plot: str | Path | None = None,
) -> EvalReport:
    """Evaluate a sites file against a truth file; write the report JSON and a precision-recall PNG.

    ``out`` defaults to the sites path with suffix ``.eval.json``, ``plot`` to ``.pr.png``. ``tiles`` (the
    scan's tiles.gpkg) adds tile-level average precision per class.
    """
    sites_path, truth_path = Path(sites_path), Path(truth_path)
    out_path = check_writable(Path(out) if out else sites_path.with_suffix(".eval.json"))
    plot_path = check_writable(Path(plot) if plot else sites_path.with_suffix(".pr.png"))
    sites = read_vector(sites_path, role="sites")
    truth = read_truth(truth_path)
    fence = _read_geofence(geofence)
    tiles_gdf = None
    if tiles is not None:
        tiles_gdf = tiles if isinstance(tiles, gpd.GeoDataFrame) else read_vector(tiles, role="tiles")
    report = evaluate_sites(sites, truth, geofence=fence, tiles=tiles_gdf, sites_path=str(sites_path),
                      truth_path=str(truth_path))
    write_json(out_path, report.to_dict())
    write_pr_plot(plot_path, report)
    log.info("evaluation: precision %.3f recall %.3f -> %s", report.overall.precision, report.overall.recall,
             out_path)
    return report


def write_pr_plot(path: str | Path, report: EvalReport, classes: Sequence[str] = CLASSES) -> Path:
    """Site-level precision-recall curve (sweeping the candidate score), plus tile-level curves if any."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from minewatch.infer.quicklook import CLASS_COLOURS

    fig = Figure(figsize=(6.5, 5.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    curve = report.site_curve
    if curve["recall"]:
        ax.step(np.r_[0.0, curve["recall"]], np.r_[curve["precision"][0], curve["precision"]], where="pre",
                color="black", linewidth=2.2, label=f"sites (AP {_fmt(report.site_ap)})")
        ax.plot(curve["recall"], curve["precision"], "o", color="black", markersize=4)
    if report.tile_curves:
        for c in classes:
            tc = report.tile_curves.get(c)
            if tc and tc["recall"]:
                ap = report.tile_ap.get(c) if report.tile_ap else None
                ax.step(tc["recall"], tc["precision"], where="post", color=CLASS_COLOURS.get(c),
                        linewidth=1.4, linestyle="--", label=f"tiles: {c.replace('_', ' ')} (AP {_fmt(ap)})")
    o = report.overall
    ax.plot([o.recall], [o.precision], marker="*", markersize=14, color="#d62728", linestyle="none",
            label=f"all candidates (F1 {o.f1:.2f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    name = Path(report.sites_path).name or "sites"
    ax.set_title(f"{name}: {o.n_candidates} candidates, {o.n_truth} truth sites", fontsize=10, loc="left")
    ax.legend(loc="lower left", fontsize=8)
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target
