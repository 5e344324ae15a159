"""``minewatch scan``: a scene of any size to ranked candidate sites, streaming, on CPU or GPU."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np

from minewatch.atomic import check_writable
from minewatch.classes import CLASSES
from minewatch.datasets.bands import check_bands
from minewatch.datasets.geofence import Geofence
from minewatch.datasets.model_input import InputSpec
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import DEFAULT_MAX_CLOUD, DEFAULT_MAX_NODATA, Tile, TilePlan, plan_tiles
from minewatch.errors import UserError
from minewatch.infer.heat_rule import heat_where_seen
from minewatch.infer.journal import Journal, journal_path
from minewatch.infer.predictor import load_predictor
from minewatch.infer.reader import prefetch, read_tiles
from minewatch.progress import progress

log = logging.getLogger(__name__)

@dataclass
class ScanRequest:
    raster: Path
    out: Path
    thermal: Path | None = None
    geofence: Path | None = None
    exclude: Path | None = None
    model: Path | None = None
    tiles_out: Path | None = None
    heatmap: Path | None = None
    quicklook: Path | None = None
    profile: str | None = None
    thermal_units: str | None = None
    device: str = "cpu"
    batch: int = 32
    stride_m: float | None = None
    resume: bool = False
    max_nodata: float = DEFAULT_MAX_NODATA
    max_cloud: float = DEFAULT_MAX_CLOUD
    # Set by multi-scene scans (infer/many.py): the run's unique id of the scene and the acquisition time from
    # its catalogue (STAC); default: the raster's own tags or name.
    scene_id: str | None = None
    acquired: str | None = None


@dataclass
class ScanResult:
    sites: gpd.GeoDataFrame
    tiles: gpd.GeoDataFrame
    out: Path
    n_scanned: int
    n_skipped: int
    seconds: float
    outputs: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.sites)} candidate site(s) from {self.n_scanned} tiles "
                 f"({self.n_skipped} skipped for nodata/cloud) in {self.seconds:.1f} s"]
        for _, s in self.sites.head(5).iterrows():
            lines.append(f"  #{s['rank']}  score {s['score']:.2f}  {s['classes'] or '-'}  "
                         f"({s['centroid_lat']:.5f}, {s['centroid_lon']:.5f})  {s['area_m2']:.0f} m2")
        lines += [f"  wrote {p}" for p in self.outputs]
        return "\n".join(lines)


def run_scan(req: ScanRequest) -> ScanResult:
    """Scan ``req.raster`` and write the requested outputs (each atomically)."""
    start = time.perf_counter()
    for path in (req.out, req.tiles_out, req.heatmap, req.quicklook):
        if path is not None:
            check_writable(path)
    if req.out.suffix.lower() not in (".geojson", ".json"):
        raise UserError("sites are written as GeoJSON", path=req.out, fix="name the output *.geojson")
    predictor = load_predictor(req.model, req.device)
    meta = predictor.meta
    spec = InputSpec.from_meta(meta)
    with Scene.for_model(meta, req.raster, req.thermal, profile=req.profile,
                         thermal_units=req.thermal_units) as scene:
        check_bands(scene.band_names, meta.optical_bands, path=req.raster)
        fence = None
        if req.geofence or req.exclude:
            fence = Geofence.load(req.geofence, req.exclude, crs=scene.grid.crs, scene_bounds=scene.grid.bounds)
        plan = plan_tiles(scene.grid, tile_m=meta.tile_m, stride_m=req.stride_m or meta.stride_m, fence=fence,
                          tile_px=meta.tile_px)
        header = {
            "raster": str(Path(req.raster).resolve()), "thermal": str(req.thermal) if req.thermal else None,
            "model_sha256": predictor.sha256, "tile_px": plan.tile_px, "stride_px": plan.stride_px,
            "n_tiles": len(plan.tiles), "run_id": uuid.uuid4().hex[:12],
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        }
        journal = Journal(journal_path(req.out), header, resume=req.resume)
        if journal.done:
            log.info("resuming: %d of %d tiles already scanned", len(journal.done), len(plan.tiles))
        todo = [t for t in plan.tiles if t.tile_id not in journal.done]
        _score(scene, todo, plan.stride_px, spec, predictor, journal, req)
        records = [journal.done[t.tile_id] for t in plan.tiles]
        tiles = _tile_frame(plan, records)
        result = _write_outputs(req, scene, plan, tiles, meta, predictor, journal.header)
        journal.close(remove=True)
    result.seconds = time.perf_counter() - start
    return result


def _score(scene: Scene, todo: list[Tile], stride_px: int, spec: InputSpec, predictor, journal: Journal,
           req: ScanRequest) -> None:
    """Read tiles on a background thread and run the model on full batches; journal each batch."""
    classes = predictor.meta.classes
    reads = prefetch(read_tiles(scene, todo, spec, stride_px=stride_px, max_nodata=req.max_nodata,
                                max_cloud=req.max_cloud))
    pending = []
    for item in progress(reads, total=len(todo), desc="scan", unit="tile"):
        pending.append(item)
        if sum(r.x is not None for r in pending) >= req.batch:
            journal.append(_run_batch(pending, predictor, classes))
            pending = []
    if pending:
        journal.append(_run_batch(pending, predictor, classes))


def _run_batch(reads, predictor, classes) -> list[dict]:
    scored = [r for r in reads if r.x is not None]
    probs = predictor.predict(np.stack([r.x for r in scored])) if scored else np.zeros((0, len(classes)))
    probs = heat_where_seen(probs, np.array([r.dt_max_k for r in scored], dtype=float), classes)
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


def _tile_frame(plan: TilePlan, records: list[dict]) -> gpd.GeoDataFrame:
    gdf = plan.to_gdf()
    for key in records[0] if records else []:
        if key != "tile_id":
            gdf[key] = [r[key] for r in records]
    for name in CLASSES:
        if f"p_{name}" not in gdf.columns:
            gdf[f"p_{name}"] = np.nan
    return gdf


def _write_outputs(req: ScanRequest, scene: Scene, plan: TilePlan, tiles: gpd.GeoDataFrame, meta, predictor,
                   header: dict) -> ScanResult:
    from minewatch.infer.sites import build_sites
    from minewatch.infer.writers import write_heatmap_cog, write_sites_geojson, write_tiles_gpkg

    scanned = tiles[tiles["scanned"]] if "scanned" in tiles.columns else tiles.iloc[:0]
    scene_id = req.scene_id or scene.scene_id
    sites = build_sites(
        scanned, dict(meta.thresholds), scene_id=scene_id, acquired=req.acquired or scene.acquired,
        sensor=scene.profile.name, model_name=predictor.path.name, model_sha256=predictor.sha256,
        run_id=header["run_id"], created=header["created"],
    )
    outputs = [req.out]
    write_sites_geojson(sites, req.out)
    if req.tiles_out:
        write_tiles_gpkg(tiles, req.tiles_out)
        outputs.append(req.tiles_out)
    if req.heatmap:
        write_heatmap_cog(req.heatmap, scanned, list(meta.classes), scene.grid.crs, pixel_size_m=plan.stride_m)
        outputs.append(req.heatmap)
    if req.quicklook:
        from minewatch.infer.quicklook import write_quicklook

        write_quicklook(req.quicklook, req.raster, sites, title=f"minewatch: {scene_id}")
        outputs.append(req.quicklook)
    n_scanned = int(tiles["scanned"].sum()) if "scanned" in tiles.columns else 0
    return ScanResult(sites, tiles, req.out, n_scanned, len(tiles) - n_scanned, 0.0, outputs)
