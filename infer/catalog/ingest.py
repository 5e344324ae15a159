"""Scan results as :class:`ScanBatch` es: what one scan of one scene adds to the catalogue.

A batch is the scan's candidate sites (in ``SITE_SCHEMA`` form, EPSG:4326), the scene's valid footprint
(the union of the windows the scan actually read; None when not known), its acquisition date, and where its
rasters are (recorded for the evidence report and for training labels; never opened here).

Sources:

- a finished scan (``minewatch scan --catalog``): everything is known (:func:`batch_from_scan`);
- a sites file (``sites.geojson`` or any vector file in ``SITE_SCHEMA`` form, one or more scenes): the
  footprint comes from ``--coverage`` (the ``tiles.gpkg`` that ``scan --tiles-out`` writes, of which only the
  scanned windows count, or any polygon file), the rasters from ``--optical``/``--thermal``;
- a scan output folder: ``sites.geojson`` with, when present, ``tiles.gpkg`` beside it (the footprint) and
  the scene's ``optical.tif``/``thermal.tif`` in the folder, in ``scene/`` or in the one folder under
  ``scene/`` (the layout ``minewatch demo`` writes).

Without a footprint a scan can add and update sites but never mark one ``gone`` (nothing says what it
covered); a warning says so. A sites file without sites says neither its scene nor its date: give
``--scene-id`` and ``--acquired`` (or add with ``scan --catalog``, which knows them).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from minewatch.datasets.scene_folder import OPTICAL_NAMES, THERMAL_NAMES
from minewatch.datasets.vectors import read_vector
from minewatch.errors import UserError
from minewatch.infer.catalog.core import parse_when

log = logging.getLogger(__name__)

SITES_NAMES = ("sites.geojson", "sites.json", "sites.gpkg")
TILES_NAMES = ("tiles.gpkg",)
REQUIRED = ("score", "classes")


@dataclass
class ScanBatch:
    """What one scan of one scene adds (see the module notes)."""

    scene_id: str
    acquired: str
    run_id: str
    sites: gpd.GeoDataFrame
    footprint: object | None = None
    sensor: str | None = None
    model: str | None = None
    model_sha256: str | None = None
    created: str | None = None
    optical_path: str | None = None
    thermal_path: str | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.scene_id} ({self.acquired[:10]}, run {self.run_id})"


def footprint_of(tiles: gpd.GeoDataFrame) -> object | None:
    """The union of the windows a scan read (``scanned`` true when the column exists), in EPSG:4326."""
    if "scanned" in tiles.columns:
        tiles = tiles[tiles["scanned"].astype(bool)]
    if tiles.empty:
        return None
    geoms = np.asarray(tiles.geometry.values)
    merged = shapely.union_all(shapely.make_valid(geoms))
    out = gpd.GeoSeries([merged], crs=tiles.crs).to_crs(4326).iloc[0]
    return shapely.make_valid(out)


def _abs(path: object) -> str | None:
    return str(Path(str(path)).resolve()) if path else None


def batch_from_scan(result) -> ScanBatch:
    """The batch of a finished :func:`~minewatch.infer.scan.run_scan` (its ``ScanResult``)."""
    prov = dict(result.provenance)
    if not prov.get("acquired"):
        raise UserError("the scene has no acquisition date (no ACQUISITION_DATETIME or TIFFTAG_DATETIME tag), so "
                        "the catalogue cannot order it", path=prov.get("optical"),
                        fix=f"add the sites with 'minewatch catalog add CAT {result.out} --acquired DATE "
                            "--optical ... --coverage TILES.gpkg'")
    sites = result.sites.to_crs(4326) if len(result.sites) else result.sites.set_crs(4326, allow_override=True)
    return ScanBatch(
        scene_id=prov["scene_id"], acquired=parse_when(prov["acquired"], what="acquisition date"),
        run_id=prov["run_id"], sites=sites, footprint=footprint_of(result.tiles), sensor=prov.get("sensor"),
        model=prov.get("model"), model_sha256=prov.get("model_sha256"), created=prov.get("created"),
        optical_path=_abs(prov.get("optical")), thermal_path=_abs(prov.get("thermal")), source=str(result.out),
    )


def _first(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _scene_rasters(folder: Path) -> tuple[Path | None, Path | None]:
    """optical/thermal in the folder, in scene/, or in the only scene folder under scene/."""
    candidates = [folder, folder / "scene"]
    sub = folder / "scene"
    if sub.is_dir():
        inner = sorted(d for d in sub.iterdir() if d.is_dir() and _first(d, OPTICAL_NAMES))
        if len(inner) == 1:
            candidates.append(inner[0])
    for c in candidates:
        optical = _first(c, OPTICAL_NAMES)
        if optical is not None:
            return optical, _first(c, THERMAL_NAMES)
    return None, None


@dataclass
class ResultFiles:
    sites: Path
    coverage: Path | None
    optical: Path | None
    thermal: Path | None


def resolve_result(path: Path) -> ResultFiles:
    """A sites file, or a scan output folder (see the module notes)."""
    p = Path(path)
    if p.is_dir():
        sites = _first(p, SITES_NAMES)
        if sites is None:
            raise UserError("no sites.geojson in this folder", path=p,
                            fix="give a sites file or a scan output folder that holds sites.geojson")
        optical, thermal = _scene_rasters(p)
        return ResultFiles(sites, _first(p, TILES_NAMES), optical, thermal)
    if not p.exists():
        raise UserError("results not found", path=p, fix="give a sites file or a scan output folder")
    return ResultFiles(p, None, None, None)


def _read_sites(path: Path) -> gpd.GeoDataFrame:
    gdf = read_vector(path, role="sites")
    if len(gdf):
        bad = ~gdf.geom_type.isin(["Polygon", "MultiPolygon"])
        if bad.all():
            raise UserError("sites file holds no polygons", path=path, fix="give the sites.geojson a scan wrote")
        gdf = gdf[~bad]
    return gdf.to_crs(4326)


def _file_run_id(path: Path, *extra: object) -> str:
    h = hashlib.sha256(Path(path).read_bytes())
    for e in extra:
        h.update(str(e).encode())
    return "file-" + h.hexdigest()[:12]


def _one(values: pd.Series, name: str, path: Path) -> str | None:
    vals = sorted({str(v) for v in values.dropna() if str(v)})
    if len(vals) > 1:
        raise UserError(f"sites of one scene carry several {name} values ({', '.join(vals[:3])})", path=path,
                        fix="give the sites file a scan wrote")
    return vals[0] if vals else None


def batches_from_results(paths: Sequence[Path], *, coverage: Path | None = None, optical: Path | None = None,
                         thermal: Path | None = None, scene_id: str | None = None,
                         acquired: str | None = None) -> list[ScanBatch]:
    """Read every result (all are checked before anything is added); batches in acquisition order."""
    per_result = (coverage, optical, thermal, scene_id, acquired)
    if len(paths) > 1 and any(v is not None for v in per_result):
        raise UserError("--coverage, --optical, --thermal, --scene-id and --acquired describe one scan",
                        path=paths[1], fix="add one result at a time with these options, or give scan output "
                                           "folders (sites.geojson + tiles.gpkg + scene rasters)")
    batches: list[ScanBatch] = []
    for path in paths:
        files = resolve_result(Path(path))
        files.coverage = coverage or files.coverage
        files.optical = optical or files.optical
        files.thermal = thermal or files.thermal
        batches.extend(_batches_from_files(files, scene_id=scene_id, acquired=acquired))
    return sorted(batches, key=lambda b: (b.acquired, b.scene_id, b.run_id))


def _fill(sites: gpd.GeoDataFrame, column: str, given: str | None, path: Path) -> gpd.GeoDataFrame:
    """Take ``column`` from the sites; the option given on the command line fills it where they lack it, and
    must agree with it where they have it."""
    if column not in sites.columns:
        return sites.assign(**{column: given})
    if given is not None:
        have = _one(sites[column], column, path)
        norm = parse_when if column == "acquired" else str
        if have is not None and norm(have) != norm(given):
            raise UserError(f"the sites say {column} {norm(have)}, the option says {norm(given)}", path=path,
                            fix=f"drop the --{column.replace('_', '-')} option")
        return sites.assign(**{column: sites[column].fillna(given)})
    return sites


def _batches_from_files(files: ResultFiles, *, scene_id: str | None, acquired: str | None) -> list[ScanBatch]:
    sites = _fill(_fill(_read_sites(files.sites), "scene_id", scene_id, files.sites), "acquired", acquired,
                  files.sites)
    if sites.empty and (scene_id is None or acquired is None):
        raise UserError("the sites file holds no sites, so it says neither its scene nor its date",
                        path=files.sites, fix="give --scene-id and --acquired (or add with scan --catalog)")
    missing = [c for c in REQUIRED if c not in sites.columns] if len(sites) else []
    if missing:
        raise UserError(f"sites lack the column(s) {', '.join(missing)}", path=files.sites,
                        fix="give the sites.geojson 'minewatch scan' wrote")
    if sites["scene_id"].isna().any():
        raise UserError("sites without scene_id", path=files.sites, fix="give --scene-id")
    if sites["acquired"].isna().any():
        raise UserError("sites without an acquisition date", path=files.sites, fix="give --acquired DATE")
    footprint = None
    if files.coverage is not None:
        footprint = footprint_of(read_vector(files.coverage, role="coverage", polygons_only=True))
    scenes = sorted(set(sites["scene_id"])) if len(sites) else [scene_id]
    if len(scenes) > 1 and (files.coverage is not None or files.optical is not None):
        raise UserError(f"the sites file holds {len(scenes)} scenes; --coverage/--optical describe one",
                        path=files.sites, fix="add each scene's sites with its own coverage")
    out = []
    for sid in scenes:
        part = sites[sites["scene_id"] == sid]
        when = parse_when(_one(part["acquired"], "acquired", files.sites) or acquired, what="acquired",
                          path=files.sites)
        run = _one(part["run_id"], "run_id", files.sites) if "run_id" in part.columns else None
        run = run or _file_run_id(files.sites, sid, when, files.coverage or "")
        prov = {k: _one(part[k], k, files.sites) if k in part.columns else None
                for k in ("sensor", "model", "model_sha256", "created")}
        batch = ScanBatch(
            scene_id=str(sid), acquired=when, run_id=run, sites=part, footprint=footprint,
            optical_path=_abs(files.optical), thermal_path=_abs(files.thermal), source=str(files.sites), **prov)
        if footprint is None:
            batch.notes.append("no coverage given: this scan cannot mark any site gone (give --coverage TILES.gpkg)")
        if files.optical is None:
            batch.notes.append("no raster recorded: the report shows no chips and labels skip this scene "
                               "(give --optical/--thermal)")
        out.append(batch)
    return out
