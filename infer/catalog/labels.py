"""Analysts' verdicts as training data: scene folders that ``minewatch train`` reads as they are.

For every scene in which a reviewed site was sighted, a scene folder (see
:mod:`minewatch.datasets.scene_folder`) holding links to the scene's ``optical.tif`` and ``thermal.tif`` (the
paths the scan recorded; never copied) and a ``truth.geojson``:

- a **confirmed** site is a positive: one polygon per class the scan saw there (``class`` in
  :data:`~minewatch.classes.CLASSES`, ``kind`` ``confirmed``; heat polygons carry ``dt_k``, the excess the
  scan measured, which the label rule checks against its ``min_dt_k``);
- a **rejected** site is a look-alike negative: one polygon, ``class`` ``lookalike``, ``kind`` ``rejected``.

The polygon is the sighting's outline in that scene (the union of the windows that fired, so slightly larger
than the farm). Sighted sites without a verdict (``unreviewed``, ``unsure``) are written as class
``unlabelled``: training leaves the windows touching them out (they are neither farms nor background until an
analyst says), ``labels.json`` lists them per scene, and ``complete_only`` keeps only scenes where every
sighted site has a verdict. Scenes whose optical raster no longer exists are skipped (listed too).

Filters choose the scenes (those in which a selected reviewed site was sighted); inside a chosen scene every
verdict counts, so a confirmed site never trains as background because a filter left it out.

The output folder is built beside its target and swapped in whole; an existing folder is replaced only when
it holds a ``labels.json`` written here.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from minewatch.classes import CLASSES, LOOKALIKE, UNLABELLED
from minewatch.clock import now_utc
from minewatch.errors import UserError
from minewatch.infer.catalog.core import union_classes
from minewatch.infer.catalog.query import Filters, load_observations, load_sites
from minewatch.infer.catalog.schema import CONFIRMED, REJECTED
from minewatch.infer.catalog.store import SqlStore
from minewatch.json_io import write_json

log = logging.getLogger(__name__)

MARKER = "labels.json"
VERDICTS = (CONFIRMED, REJECTED)


@dataclass
class SceneLabels:
    """The truth of one scene: verdict polygons, and sighted sites left without a verdict."""

    scene_id: str
    optical: str | None
    thermal: str | None
    acquired: str
    records: list[dict] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def verdict_truth(sites: pd.DataFrame, observations: gpd.GeoDataFrame) -> list[SceneLabels]:
    """Pure: per scene (scene id + optical raster), the truth records of the reviewed sites sighted in it.

    ``sites`` needs ``site_id`` and ``review_status``; ``observations`` rows of the observations table
    (EPSG:4326). Sightings of one site in one scene by several runs are merged (union of outlines and classes).
    """
    review = dict(zip(sites["site_id"], sites["review_status"], strict=True))
    scenes: dict[tuple[str, str | None], SceneLabels] = {}
    per_site: dict[tuple, list] = defaultdict(list)
    for _, o in observations.iterrows():
        if o["site_id"] not in review:
            continue
        key = (o["scene_id"], o["optical_path"])
        if key not in scenes:
            scenes[key] = SceneLabels(o["scene_id"], o["optical_path"], o["thermal_path"], o["acquired"])
        per_site[(key, o["site_id"])].append(o)
    for (key, site_id), rows in sorted(per_site.items(), key=lambda kv: (kv[0][0][0], str(kv[0][0][1]), kv[0][1])):
        scene = scenes[key]
        verdict = review[site_id]
        outline = shapely.union_all([r["geometry"] for r in rows])
        if verdict not in VERDICTS:
            scene.pending.append(site_id)
            scene.records.append({"class": UNLABELLED, "kind": verdict, "site_id": site_id, "dt_k": None,
                                  "geometry": outline})
            continue
        if verdict == REJECTED:
            scene.records.append({"class": LOOKALIKE, "kind": "rejected", "site_id": site_id, "dt_k": None,
                                  "geometry": outline})
            continue
        classes = union_classes(r["classes"] for r in rows).split(",")
        dts = [r["thermal_dt_max_k"] for r in rows if pd.notna(r["thermal_dt_max_k"])]
        for c in (c for c in CLASSES if c in classes):
            scene.records.append({"class": c, "kind": "confirmed", "site_id": site_id,
                                  "dt_k": max(dts) if c == "heat_signature" and dts else None, "geometry": outline})
    return [s for _, s in sorted(scenes.items(), key=lambda kv: (kv[1].acquired, kv[1].scene_id))]


@dataclass
class LabelsResult:
    out: Path
    scenes: list[dict]
    skipped: list[dict]

    def summary(self) -> str:
        pos = sum(s["confirmed"] for s in self.scenes)
        neg = sum(s["rejected"] for s in self.scenes)
        pending = sum(len(s["unreviewed"]) for s in self.scenes)
        lines = [f"wrote {len(self.scenes)} scene folder(s) to {self.out}: {pos} confirmed and {neg} rejected "
                 f"site sighting(s)"]
        if pending:
            lines.append(f"  {pending} sighted site(s) without a verdict are left out of training (see {MARKER}; "
                         "--complete-only leaves those scenes out)")
        lines += [f"  skipped {s['scene_id']}: {s['reason']}" for s in self.skipped]
        if self.scenes:
            lines.append(f"  train on them: list {self.out} under data.train_scenes in a training config")
        return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scene"


def write_labels(store: SqlStore, out: Path, *, filters: Filters = Filters(), complete_only: bool = False
                 ) -> LabelsResult:
    """Write the verdicts of the sites passing ``filters`` as scene folders under ``out``."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError("the output folder's parent does not exist", path=out, fix=f"create {parent} first")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UserError("the output exists and does not hold labels written by minewatch", path=out,
                        fix="give a new or empty folder")
    # The filters choose scenes (those where a selected reviewed site was sighted); in a chosen scene every
    # verdict counts, so a confirmed site outside the filters never trains as background.
    sites = load_sites(store, filters)
    reviewed = sites[sites["review_status"].isin(VERDICTS)]
    scene_ids = set(load_observations(store, list(reviewed["site_id"]))["scene_id"])
    all_obs = load_observations(store)
    in_scenes = all_obs[all_obs["scene_id"].isin(scene_ids)]
    truth = verdict_truth(load_sites(store)[["site_id", "review_status"]], in_scenes)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    written, skipped, names = [], [], set()
    try:
        for scene in truth:
            if not any(r["class"] != UNLABELLED for r in scene.records):
                continue  # no verdict in this scene: nothing to learn
            reason = _unusable(scene, complete_only)
            if reason:
                skipped.append({"scene_id": scene.scene_id, "optical": scene.optical, "reason": reason})
                continue
            name = _safe(scene.scene_id)
            k = 2
            while name in names:
                name, k = f"{_safe(scene.scene_id)}-{k}", k + 1
            names.add(name)
            folder = tmp / name
            folder.mkdir()
            os.symlink(scene.optical, folder / "optical.tif")
            if scene.thermal and Path(scene.thermal).is_file():
                os.symlink(scene.thermal, folder / "thermal.tif")
            frame = gpd.GeoDataFrame(pd.DataFrame.from_records(scene.records).drop(columns="geometry"),
                                     geometry=[r["geometry"] for r in scene.records], crs=4326)
            pyogrio.write_dataframe(frame, folder / "truth.geojson", driver="GeoJSON",
                                    layer_options={"RFC7946": "YES"})
            written.append({"folder": name, "scene_id": scene.scene_id, "acquired": scene.acquired,
                            "optical": scene.optical, "thermal": scene.thermal,
                            "confirmed": len({r["site_id"] for r in scene.records if r["kind"] == "confirmed"}),
                            "rejected": len({r["site_id"] for r in scene.records if r["kind"] == "rejected"}),
                            "unreviewed": sorted(scene.pending)})
        write_json(tmp / MARKER, {"catalogue": store.location, "created": now_utc(), "filters": filters.describe(),
                                  "complete_only": complete_only, "scenes": written, "skipped": skipped})
        _swap(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return LabelsResult(out, written, skipped)


def _unusable(scene: SceneLabels, complete_only: bool) -> str | None:
    if not scene.optical:
        return "no optical raster recorded (add the scan with --optical)"
    if not Path(scene.optical).is_file():
        return f"optical raster not found: {scene.optical}"
    if complete_only and scene.pending:
        return f"{len(scene.pending)} sighted site(s) without a verdict ({', '.join(scene.pending[:5])})"
    return None


def _swap(tmp: Path, out: Path) -> None:
    """Put the finished folder in place of ``out`` (renames only)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
