"""``minewatch scan``: a scene of any size to ranked candidate sites, streaming, on CPU or GPU.

The order is the promise "a clear error, and nothing lost": every number, path, model and raster is
checked before any window is read (infer/preflight.py), outputs are checked against every input and are
only replaced with --overwrite (infer/outputs.py); windows are scored into flat arrays and journalled, so
memory does not grow with the window count and a killed scan resumes; outputs are written under
temporary names and renamed together at the end.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from minewatch.clock import now_utc
from minewatch.datasets.bands import check_bands
from minewatch.datasets.crs import to_lonlat
from minewatch.datasets.geofence import Geofence
from minewatch.datasets.model_input import InputSpec
from minewatch.datasets.scene import ReadOptions, Scene
from minewatch.datasets.thermal import is_thermal_raster
from minewatch.datasets.tiling import DEFAULT_MAX_CLOUD, DEFAULT_MAX_NODATA, Tile, TilePlan, plan_tiles
from minewatch.errors import UserError
from minewatch.infer.heat_rule import heat_where_seen
from minewatch.infer.journal import Journal, fingerprint, journal_path
from minewatch.infer.objects import MaskStore
from minewatch.infer.outputs import OutputSet
from minewatch.infer.predictor import Predictor, load_predictor
from minewatch.infer.preflight import (
    DEFAULT_MAX_TILES,
    Report,
    check_coarse,
    check_number,
    check_raster,
    check_stride,
)
from minewatch.infer.reader import prefetch, read_tiles
from minewatch.infer.registry import check_model_fits, choose_model
from minewatch.infer.scan_settings import ScanSettings
from minewatch.infer.tile_scores import TileScores
from minewatch.memory import keep_large_buffers_mmapped
from minewatch.progress import progress

log = logging.getLogger(__name__)

TILES_CHUNK = 5_000
"""Windows written to tiles.gpkg per chunk."""


@dataclass(kw_only=True)
class ScanRequest(ScanSettings):
    raster: Path
    out: Path
    thermal: Path | None = None
    tiles_out: Path | None = None
    heatmap: Path | None = None
    quicklook: Path | None = None
    dry_run: bool = False
    max_tiles: int = DEFAULT_MAX_TILES
    max_nodata: float = DEFAULT_MAX_NODATA
    max_cloud: float = DEFAULT_MAX_CLOUD
    # Without a model: the committed models to choose from (profile -> file; default: the package's), so the
    # workers of a multi-scene run choose among the client's.
    models: dict[str, Path] | None = None
    # Set by multi-scene scans (infer/many.py): the run's unique id of the scene and the acquisition time from
    # its catalogue (STAC); default: the raster's own tags or name.
    scene_id: str | None = None
    acquired: str | None = None
    # Set by multi-scene scans: where to write the sites the site rule drops (too few windows, off the edge),
    # with the rule's window count, for the run's merge to keep those another scene's site joins.
    lone_out: Path | None = None

    def inputs(self, model_path: Path | None) -> dict[str, Path | None]:
        return {"optical raster": self.raster, "thermal raster": self.thermal, "geofence": self.geofence,
                "exclude fence": self.exclude, "model": model_path}

    def targets(self) -> dict[str, Path | None]:
        return {"out": self.out, "tiles_out": self.tiles_out, "heatmap": self.heatmap, "quicklook": self.quicklook,
                "lone_out": self.lone_out}

    def read_options(self) -> ReadOptions:
        return ReadOptions(nodata=self.nodata, scale=self.scale, bands=self.bands, thermal_units=self.thermal_units)


@dataclass
class ScanResult:
    sites: gpd.GeoDataFrame
    scores: TileScores | None
    out: Path
    n_scanned: int
    n_skipped: int
    seconds: float
    report: Report
    outputs: list[Path] = field(default_factory=list)
    dry_run: bool = False
    provenance: dict = field(default_factory=dict)
    """scene_id, acquired, sensor, model, model_sha256, run_id, created, optical, thermal: what a catalogue
    records about the scan (known even when no site was found)."""

    @property
    def tiles(self) -> gpd.GeoDataFrame:
        """Every planned window with its scores (built on demand: large scans should not hold it)."""
        assert self.scores is not None
        return self.scores.frame()

    def summary(self) -> str:
        if self.dry_run:
            return self.report.text() + "\n(dry run: nothing was read or written)"
        lines = [f"{len(self.sites)} candidate site(s) from {self.n_scanned} tiles "
                 f"({self.n_skipped} skipped for nodata/cloud) in {self.seconds:.1f} s"]
        for _, s in self.sites.head(5).iterrows():
            objects = ""
            if s.get("outline") == "objects" and pd.notna(s.get("n_containers")):
                objects = f"  {int(s['n_containers'])} TEU"
                if pd.notna(s.get("est_power_mw")):
                    objects += (f", {s['est_power_mw']:.1f} MW "
                                f"({s['est_power_mw_low']:.1f}-{s['est_power_mw_high']:.1f})")
            lines.append(f"  #{s['rank']}  score {s['score']:.2f}  {s['classes'] or '-'}  "
                         f"({s['centroid_lat']:.5f}, {s['centroid_lon']:.5f})  {s['area_m2']:.0f} m2{objects}")
        lines += [f"  wrote {p}" for p in self.outputs]
        return "\n".join(lines)


def run_scan(req: ScanRequest) -> ScanResult:
    """Scan ``req.raster`` and write the requested outputs (see the module docstring for the order)."""
    start = time.perf_counter()
    keep_large_buffers_mmapped()
    if req.thermal_only or (req.thermal is None and is_thermal_raster(req.raster, req.thermal_units)):
        from minewatch.infer.thermal_only import run_thermal_only

        return run_thermal_only(req)
    check_number(req.stride_m, "--stride-m")
    check_number(float(req.batch), "--batch", minimum=1, inclusive=True)
    check_number(float(req.max_tiles), "--max-tiles", minimum=1, inclusive=True)
    if req.min_windows is not None:
        check_number(float(req.min_windows), "--min-windows", minimum=1, inclusive=True)
    model, why = _model_for(req)
    predictor = load_predictor(model, req.device)
    meta = predictor.meta
    if req.model is not None:
        check_model_fits(req.raster, meta.profile, predictor.path.name, profile=req.profile, bands=req.bands)
    outputs = OutputSet.check(req.targets(), req.inputs(predictor.path), run_id=uuid.uuid4().hex[:12],
                              overwrite=req.overwrite, resume=req.resume)
    stride_m = meta.stride_m if req.stride_m is None else req.stride_m
    check_stride(stride_m, meta)
    raster_check = check_raster(req.raster, meta, stride_m=stride_m, allow_coarse=req.allow_coarse,
                                max_tiles=req.max_tiles)
    with Scene.for_model(meta, req.raster, req.thermal, profile=req.profile, options=req.read_options()) as scene:
        scene.scene_id = req.scene_id or scene.scene_id
        scene.acquired = req.acquired or scene.acquired
        check_bands(scene.band_names, meta.optical_bands, path=req.raster)
        fence = None
        if req.geofence or req.exclude:
            fence = Geofence.load(req.geofence, req.exclude, crs=scene.grid.crs, scene_bounds=scene.grid.bounds)
        plan = plan_tiles(scene.grid, tile_m=meta.tile_m, stride_m=stride_m, fence=fence, tile_px=meta.tile_px)
        if not plan.tiles:
            raise UserError(f"no window of the scene is kept by the fences (of {plan.n_total:,}: at least "
                            f"{fence.rule.min_inside:.0%} inside the geofence, at most "
                            f"{fence.rule.max_excluded:.0%} excluded)", path=req.geofence or req.exclude,
                            fix="check the fences are for this scene; an include fence must hold at least one "
                                f"{meta.tile_m:g} m window")
        report = preflight_report(req, scene, predictor, plan, raster_check.warnings, outputs, why=why)
        if req.dry_run:
            return ScanResult(gpd.GeoDataFrame(), None, req.out, 0, 0, time.perf_counter() - start, report,
                              dry_run=True)
        for warning in report.warnings:
            log.warning("%s: %s", req.raster, warning)
        if req.model is None:
            log.info("model %s %s", predictor.path.name, why)
        with outputs.lock():
            header = {
                "model_sha256": predictor.sha256, "tile_px": plan.tile_px, "stride_px": plan.stride_px,
                "n_tiles": len(plan.tiles), "run_id": outputs.run_id, "created": now_utc(),
                "options": {k: v for k, v in vars(req.read_options()).items() if v is not None},
                "inputs": {role: fingerprint(p) for role, p in req.inputs(predictor.path).items() if p is not None},
            }
            journal = Journal(journal_path(req.out), header, resume=req.resume)
            scores = TileScores(plan, meta.classes)
            for rec in journal.replay():
                scores.add(rec)
            if scores.done.any():
                log.info("resuming: %d of %d tiles already scanned", int(scores.done.sum()), len(plan.tiles))
            spec = InputSpec.from_meta(meta)
            store = MaskStore(meta.masks, meta.mask_px) if meta.masks else None
            try:
                _score(scene, scores.todo(), plan.stride_px, spec, predictor, journal, scores, req, store)
                if store is not None:
                    _fill_masks(scene, plan, scores, spec, predictor, store, req)
                run = {"run_id": journal.header["run_id"], "created": journal.header["created"]}
                need = _min_windows(req, meta, stride_m)
                sites, lone = _sites(scores, scene, predictor, run, need, store, with_lone=req.lone_out is not None)
            finally:
                if store is not None:
                    store.close()
            if lone is not None:
                _write_lone(lone, req.lone_out, need, meta.tile_m, run, outputs)
            written = _write_outputs(req, scene, plan, scores, sites, meta.classes, run, outputs)
            journal.close(remove=True)
        provenance = {"scene_id": scene.scene_id, "acquired": scene.acquired, "sensor": scene.sensor,
                      "model": predictor.path.name, "model_sha256": predictor.sha256, **run,
                      "optical": str(req.raster), "thermal": str(req.thermal) if req.thermal else None,
                      "footprint": _footprint(scores, scene) if req.lone_out is not None else None}
    n_scanned = scores.n_scanned
    return ScanResult(sites, scores, req.out, n_scanned, len(scores) - n_scanned, time.perf_counter() - start,
                      report, written, provenance=provenance)


def _model_for(req: ScanRequest) -> tuple[Path, str]:
    """The model to scan with and why: --model as given, else the committed model of the raster's sensor
    profile (infer/registry.py), said in the log."""
    if req.model is not None:
        return Path(req.model), "given with --model"
    from minewatch.datasets.profiles import load_profile

    def coarse(gsd_m: float, profile: str) -> None:
        check_coarse(req.raster, gsd_m, load_profile(profile).model_gsd_m, allow_coarse=req.allow_coarse)

    choice = choose_model(req.raster, profile=req.profile, bands=req.bands, coarse_check=coarse, models=req.models)
    return choice.path, f"chosen for the raster: the {choice.profile} model ({choice.reason})"


def preflight_report(req: ScanRequest, scene: Scene, predictor: Predictor, plan: TilePlan, warnings: list[str],
                     outputs: OutputSet, why: str | None = None) -> Report:
    """What the scan will read and write, and what looked odd (printed by --dry-run, logged otherwise)."""
    meta = predictor.meta
    r = Report(warnings=list(warnings))
    g = scene.grid
    r.add("raster", f"{req.raster} -> model grid {g.width:,} x {g.height:,} px at {g.gsd_m:g} m ({g.crs.to_string()})")
    r.add("bands", f"{', '.join(scene.band_names)}; the model reads {', '.join(meta.optical_bands)}")
    r.add("values", scene.scaling.reason)
    if scene.scale_guessed:
        r.warnings.append(f"stored as values the '{scene.profile.name}' profile does not use: {scene.scaling.reason} "
                          "(pass --scale if that is wrong)")
    r.add("nodata", f"{scene.nodata:g} ({scene.nodata_source})" if scene.nodata is not None else
          f"none ({scene.nodata_source})")
    if scene.nodata_source.startswith("collar"):
        r.warnings.append(f"no nodata tag; a {scene.nodata_source} is masked as nodata (pass --nodata to choose)")
    r.add("thermal", f"{req.thermal} ({scene.thermal_kind})" if scene.has_thermal else
          "none: heat_signature is not reported")
    r.add("acquired", f"{scene.acquired or 'unknown'}, sensor {scene.sensor}")
    r.add("model", f"{predictor.path.name} ({meta.backbone}, {', '.join(meta.classes)}; {meta.tile_m:g} m windows "
          f"at {meta.gsd_m:g} m; profile {meta.profile})" + (f"; {why}" if why else ""))
    r.add("windows", f"{len(plan.tiles):,} of {plan.n_total:,} ({plan.tile_px} px, stride {plan.stride_m:g} m)")
    need = _min_windows(req, meta, plan.stride_m)
    r.add("sites", f"{need} positive window{'s' if need > 1 else ''} at least, or one at the raster's edge "
          "(--min-windows)")
    for path in outputs.targets.values():
        r.add("output", f"{path}{' (exists: replaced)' if path.exists() else ''}")
    return r


def _score(scene: Scene, todo: list[Tile], stride_px: int, spec: InputSpec, predictor: Predictor,
           journal: Journal, scores: TileScores, req: ScanRequest, store: MaskStore | None = None) -> None:
    """Read tiles on a background thread and run the model on full batches; journal each batch (and keep the
    masks of positive windows in ``store`` for a dense model)."""
    classes = predictor.meta.classes
    reads = prefetch(read_tiles(scene, todo, spec, stride_px=stride_px, max_nodata=req.max_nodata,
                                max_cloud=req.max_cloud))
    pending = []
    for item in progress(reads, total=len(todo), desc="scan", unit="tile"):
        pending.append(item)
        if sum(r.x is not None for r in pending) >= req.batch:
            _record(_run_batch(pending, predictor, classes, store), journal, scores)
            pending = []
    if pending:
        _record(_run_batch(pending, predictor, classes, store), journal, scores)


def _fill_masks(scene: Scene, plan: TilePlan, scores: TileScores, spec: InputSpec, predictor: Predictor,
                store: MaskStore, req: ScanRequest) -> None:
    """Masks of positive windows scanned before a resume (the journal keeps scores, not masks): read and run
    those windows again."""
    positive = scores.positive(dict(predictor.meta.thresholds))
    missing = [plan.tiles[i] for i in positive if plan.tiles[i].tile_id not in store]
    if not missing:
        return
    log.info("re-reading %d positive window(s) scanned before the resume for their masks", len(missing))
    reads = [r for r in read_tiles(scene, missing, spec, stride_px=plan.stride_px, max_nodata=req.max_nodata,
                                   max_cloud=req.max_cloud) if r.x is not None]
    for i in range(0, len(reads), req.batch):
        _run_batch(reads[i : i + req.batch], predictor, predictor.meta.classes, store)


def _record(records: list[dict], journal: Journal, scores: TileScores) -> None:
    journal.append(records)
    for rec in records:
        scores.add(rec)


def _run_batch(reads, predictor: Predictor, classes, store: MaskStore | None = None) -> list[dict]:
    scored = [r for r in reads if r.x is not None]
    masks = index = None
    if not scored:
        probs = np.zeros((0, len(classes)))
    elif store is not None:
        x = np.stack([r.x for r in scored])
        probs, masks, index = predictor.predict_dense(x)
    else:
        probs = predictor.predict(np.stack([r.x for r in scored]))
    probs = heat_where_seen(probs, np.array([r.dt_max_k for r in scored], dtype=float), classes)
    if store is not None and masks is not None and len(index):
        _keep_masks(store, scored, probs, masks, index, predictor.meta)
    by_id = {r.tile.tile_id: p for r, p in zip(scored, probs, strict=True)}
    records = []
    for r in reads:
        rec = {"tile_id": r.tile.tile_id, "scanned": r.x is not None, "nodata_fraction": r.nodata_fraction,
               "cloud_fraction": r.cloud_fraction, "dt_max_k": r.dt_max_k, "z_max": r.z_max}
        p = by_id.get(r.tile.tile_id)
        for k, name in enumerate(classes):
            rec[f"p_{name}"] = float(p[k]) if p is not None else float("nan")
        records.append(rec)
    return records


def _keep_masks(store: MaskStore, scored: list, probs: np.ndarray, masks: np.ndarray, index: np.ndarray,
                meta) -> None:
    """Store the masks of the windows that are positive after the heat rule, the heat mask only where the
    window has thermal (heat is seen, never guessed), and beside them the window's thermal excess (K)."""
    thr = np.array([meta.thresholds[c] for c in meta.classes], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        positive = (probs >= thr[None, :]).any(axis=1)
    heat = meta.masks.index("heat") if "heat" in meta.masks else None
    valid_channel = meta.channels.index("thermal_valid") if "thermal_valid" in meta.channels else None
    dt_channel = meta.channels.index("thermal_dt") if "thermal_dt" in meta.channels else None
    for m, i in zip(masks, index, strict=True):
        if not positive[i]:
            continue
        dt = None
        if valid_channel is not None:
            valid = scored[i].x[valid_channel] > 0.5
            if heat is not None:
                m = m.copy()
                m[heat] *= valid
            if dt_channel is not None and valid.any():  # the measured excess, for the thermal cross-check
                dt = np.where(valid, scored[i].x[dt_channel] * meta.thermal.dt_scale_k, np.nan)
        store.put(scored[i].tile.tile_id, m, dt)


def _min_windows(req: ScanRequest, meta, stride_m: float) -> int:
    """--min-windows, else two where windows overlap by half or more (infer/sites.py)."""
    from minewatch.infer.sites import default_min_windows

    return req.min_windows if req.min_windows is not None else default_min_windows(meta.tile_m, stride_m)


def _sites(scores: TileScores, scene: Scene, predictor: Predictor, run: dict[str, str], min_windows: int,
           store: MaskStore | None = None, *, with_lone: bool = False
           ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    """Candidate sites from the positive windows only (a handful, however large the scan); outlined by their
    objects when the model has a dense head (``store`` holds the positive windows' masks). With ``with_lone``,
    also what a multi-scene merge needs to apply the rule across scenes, from the same positive windows (else
    None): the sites the rule drops, and the kept sites that stand only by the raster's edge (their ``site_id``
    as kept, their windows as geometry), told apart by ``site_rule``."""
    from minewatch.infer.model_file import model_threads
    from minewatch.infer.objects import OUTLINE_THREADS, OutlineRules, outline_objects
    from minewatch.infer.sites import EDGE_COLUMN, build_sites, split_by_rule

    meta = predictor.meta
    positive = scores.frame(scores.positive(dict(meta.thresholds)))
    size, grid = scores.plan.tile_px, scene.grid
    rows, cols = positive["row_off"].to_numpy(), positive["col_off"].to_numpy()
    positive[EDGE_COLUMN] = (rows <= 0) | (cols <= 0) | (rows + size >= grid.height) | (cols + size >= grid.width)
    objects = None
    if store is not None:
        rules = OutlineRules(threshold=meta.mask_threshold, area_scale=dict(meta.mask_area_scale))
        transform, has_thermal = grid.transform, scene.has_thermal

        def objects(members: gpd.GeoDataFrame):
            return outline_objects(members, store, transform=transform, tile_px=size, has_thermal=has_thermal,
                                   rules=rules)

    def build(lone: bool) -> gpd.GeoDataFrame:
        return build_sites(positive, dict(meta.thresholds), scene_id=scene.scene_id, acquired=scene.acquired,
                           sensor=scene.sensor, model_name=predictor.path.name, model_sha256=predictor.sha256,
                           run_id=run["run_id"], created=run["created"], min_windows=min_windows, lone=lone,
                           objects=objects, rule_column=with_lone,
                           workers=min(model_threads() + 1, OUTLINE_THREADS))  # the scan's cores, memory-bounded

    if not with_lone:
        return build(False), None
    return split_by_rule(build(False), build(True), scene.scene_id)


def _write_lone(lone: gpd.GeoDataFrame, path: Path, min_windows: int, window_m: float, run: dict[str, str],
                outputs: OutputSet) -> None:
    """What the site rule decided by this scene alone (`_sites`), each record with the window count the rule
    asked for (``min_windows``) and the window's side (``window_m``), renamed into place with the scan's other
    outputs."""
    from minewatch.infer.writers import write_sites_geojson

    lone = lone.assign(min_windows=min_windows, window_m=window_m)
    with outputs.writing(path) as tmp:
        write_sites_geojson(lone, tmp, run=run)


# Edges of a footprint are cut to this length (metres of the model grid) before going to lon/lat: the shape
# within a centimetre, a few hundred vertices for a 20000 px scene.
FOOTPRINT_SEGMENT_M = 500.0


def _footprint(scores: TileScores, scene: Scene) -> str | None:
    """The ground the scan's windows covered (skipped windows, nodata collars and fenced-out ground are not),
    lon/lat WKT; a multi-scene merge needs it to tell seen ground from unseen (`infer.merge`)."""
    from minewatch.infer.sites import box_cover

    scanned = np.flatnonzero(scores.scanned)
    if not len(scanned):
        return None
    cover = to_lonlat(box_cover(scores.bounds(scanned)), scene.grid.crs, FOOTPRINT_SEGMENT_M)
    return shapely.to_wkt(cover, rounding_precision=7)


def _write_outputs(req: ScanRequest, scene: Scene, plan: TilePlan, scores: TileScores, sites: gpd.GeoDataFrame,
                   classes, run: dict[str, str], outputs: OutputSet) -> list[Path]:
    """Every output and its QGIS style under temporary names, then all renamed into place."""
    from minewatch.infer import styles
    from minewatch.infer.writers import write_heatmap_cog, write_styled_sites, write_tiles_gpkg

    write_styled_sites(outputs, sites, run)
    if req.tiles_out:
        with outputs.writing(req.tiles_out) as tmp:
            write_tiles_gpkg(scores.chunks(TILES_CHUNK), tmp, run=run)
            styles.add_layer_style(tmp, "tiles", styles.tiles_qml())
    if req.heatmap:
        scanned = np.flatnonzero(scores.scanned)
        if len(scanned):
            with outputs.writing(req.heatmap) as tmp:
                write_heatmap_cog(tmp, scores.bounds(scanned), scores.probs[scanned].T, list(classes),
                                  scene.grid.crs, pixel_size_m=plan.stride_m, run=run)
            with outputs.writing(styles.qml_path(req.heatmap)) as tmp:
                tmp.write_text(styles.heatmap_qml(classes), encoding="utf-8")
        else:
            log.warning("no tiles were scanned: no heatmap written to %s", req.heatmap)
    if req.quicklook:
        from minewatch.infer.quicklook import write_quicklook

        with outputs.writing(req.quicklook) as tmp:
            write_quicklook(tmp, req.raster, sites, title=f"minewatch: {scene.scene_id}", run=run)
    return outputs.commit()

