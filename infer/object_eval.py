"""How well sites sit on their objects: polygon IoU of matched sites, container count and power against truth.

Rules (all areas in the evaluation's metric CRS; see :mod:`minewatch.infer.evaluate` for matching):

- A truth site is the union of its truth polygons (containers blocks, fan banks and walls, heat footprint).
  It is MATCHED when some candidate matches it by the overlap rule of :func:`candidate_matches`; its IoU is the
  best ``area(c & t) / area(c | t)`` over the candidates matching it. Sites outlined by their windows are far
  larger than their objects, so their IoU is low even when the detection is right: that is what the dense head
  changes.
- A FARM is a truth site with containers. Its true count is in twenty-foot equivalents (TEU): each truth block
  of ``n_containers`` is split into bodies (:func:`minewatch.datasets.masks.block_teu`), 40 ft bodies count 2.
  The count compared is the ``n_containers`` of the best-IoU matching candidate; a candidate without a
  count (window outline) and a farm no candidate matches count as misses. A farm is counted right when
  ``|n - n_true| <= COUNT_TOLERANCE * n_true``.
- True power: the truth's ``power_mw`` when it has one (summed over the site's records), else the power model's
  central figure for the true TEU (:func:`minewatch.infer.power.mw_per_teu`) when the farm runs, 0 when it is
  dormant. Power error is relative, for running farms; dormant farms are scored by whether the estimate is 0.
"""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from minewatch.datasets.masks import block_teu
from minewatch.infer.power import mw_per_teu

COUNT_TOLERANCE = 0.2


def _iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    union = shapely.area(shapely.union(a, b))
    return float(shapely.area(shapely.intersection(a, b)) / union) if union > 0 else 0.0


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _positive(value: Any) -> float | None:
    v = _num(value)
    return v if math.isfinite(v) and v > 0 else None


def truth_farms(truth: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per truth site id: TEU, running, kind and true power (see the module docstring); ``truth`` in a metric
    CRS with the generator's columns (absent ones read as unknown)."""
    rows = []
    if "site_id" not in truth.columns or "class" not in truth.columns:
        return pd.DataFrame(columns=["site_id", "teu", "running", "kind", "power_mw"])
    for site_id, group in truth.groupby("site_id", sort=True):
        blocks = group[group["class"] == "container_farm"]
        teu = 0.0
        for _, b in blocks.iterrows():
            n = _positive(b.get("n_containers"))
            if n is not None:
                teu += block_teu(b.geometry, int(n), length_m=_positive(b.get("container_length_m")))
        running = bool(group["running"].fillna(False).astype(bool).any()) if "running" in group.columns else True
        if "power_mw" in group.columns and group["power_mw"].notna().any():
            power = float(group["power_mw"].astype(float).fillna(0).sum())
        else:
            power = teu * mw_per_teu("central") * (1.0 if running else 0.0)
        kind = str(group["kind"].iloc[0]) if "kind" in group.columns else ""
        rows.append({"site_id": str(site_id), "teu": teu, "running": running, "kind": kind, "power_mw": power})
    return pd.DataFrame(rows)


def object_figures(cand: gpd.GeoDataFrame, truth_sites: gpd.GeoDataFrame, truth: gpd.GeoDataFrame,
                   match: np.ndarray) -> dict[str, Any]:
    """IoU, count and power figures (see the module docstring). ``cand`` and ``truth_sites`` are in the same
    metric CRS, ``match`` is their (candidates x truth sites) match matrix, ``truth`` all truth polygons."""
    farms = truth_farms(truth).set_index("site_id") if len(truth_sites) else pd.DataFrame()
    cg = np.asarray(cand.geometry.values) if len(cand) else np.zeros(0, dtype=object)
    sites: list[dict[str, Any]] = []
    for j, (_, t) in enumerate(truth_sites.iterrows()):
        row: dict[str, Any] = {"site_id": t["site_id"], "kind": "", "iou": None, "candidate": None}
        info = farms.loc[t["site_id"]] if t["site_id"] in farms.index else None
        if info is not None:
            row.update(kind=info["kind"], teu_true=float(info["teu"]), running=bool(info["running"]),
                       power_true_mw=float(info["power_mw"]))
        idx = np.flatnonzero(match[:, j]) if len(cg) else np.zeros(0, dtype=int)
        if len(idx):
            ious = [_iou(cg[i], t.geometry) for i in idx]
            best = int(idx[int(np.argmax(ious))])
            c = cand.iloc[best]
            row.update(iou=float(max(ious)), candidate=str(c.get("site_id", best)),
                       outline=c.get("outline") if "outline" in cand.columns else "tiles")
            for key, col in (("teu_est", "n_containers"), ("power_est_mw", "est_power_mw"),
                             ("power_low_mw", "est_power_mw_low"), ("power_high_mw", "est_power_mw_high")):
                row[key] = _num(c.get(col)) if col in cand.columns else math.nan
        sites.append(row)
    return summarise(sites)


def summarise(sites: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and shares over per-truth-site rows (also over rows of many scenes: the model card)."""
    matched = [s for s in sites if s.get("iou") is not None]
    ious = np.array([s["iou"] for s in matched], dtype=float)
    by_kind = {}
    for kind in sorted({s.get("kind") or "" for s in matched}):
        k = np.array([s["iou"] for s in matched if (s.get("kind") or "") == kind], dtype=float)
        by_kind[kind or "unknown"] = {"n": int(len(k)), "iou_median": float(np.median(k)) if len(k) else None}
    farms = [s for s in sites if (s.get("teu_true") or 0) > 0]  # a missed farm is a wrong count
    count_err = np.array([abs(_num(s.get("teu_est")) - s["teu_true"]) / s["teu_true"] if
                          math.isfinite(_num(s.get("teu_est"))) else math.inf for s in farms], dtype=float)
    running = [s for s in farms if (s.get("power_true_mw") or 0) > 0]
    p_err = np.array([abs(_num(s.get("power_est_mw")) - s["power_true_mw"]) / s["power_true_mw"] if
                      math.isfinite(_num(s.get("power_est_mw"))) else math.inf for s in running], dtype=float)
    in_range = [_num(s.get("power_low_mw")) <= s["power_true_mw"] <= _num(s.get("power_high_mw")) for s in running]
    dormant = [s for s in farms if s.get("running") is False]
    idle = [s for s in dormant if _num(s.get("power_est_mw")) == 0]

    def med(a: np.ndarray) -> float | None:
        return float(np.median(a)) if len(a) else None

    return {
        "n_truth_sites": len(sites), "n_matched": len(matched),
        "iou_median": med(ious), "iou_mean": float(ious.mean()) if len(ious) else None,
        "iou_by_kind": by_kind,
        "farms": len(farms), "count_within": COUNT_TOLERANCE,
        "count_ok_share": float(np.mean(count_err <= COUNT_TOLERANCE + 1e-9)) if len(farms) else None,
        "count_rel_error_median": med(count_err),
        "running_farms": len(running), "power_rel_error_median": med(p_err),
        "power_in_range_share": float(np.mean(in_range)) if running else None,
        "dormant_farms": len(dormant), "dormant_called_idle": len(idle),
        "counted": any(math.isfinite(_num(s.get("teu_est"))) for s in matched),
        "sites": sites,
    }
