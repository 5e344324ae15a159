"""Thermal-only scans: heat anomalies at the 100 m scale of Landsat 8/9 TIRS, without optical imagery.

A regulator often has a Landsat scene of a whole province long before any very-high-resolution image. Its thermal
band is delivered on a 30 m grid, but each pixel integrates about 100 m of ground: one container warms it by
hundredths of a kelvin, and only large, multi-MW farms stand out (see the satellite model card,
``models/MODEL_CARD-satellite.md``, for the excess by farm size). So the rule here looks for what a large farm
does to such an image, and reports it as ``heat_signature`` candidates marked ``evidence: thermal-only``:

1. the temperature, in kelvin (Landsat Level-1 band 10/11 with its MTL, Level-2 ``ST_B10``, or a radiometric
   raster in K/°C/°F), clouds masked with the scene's quality band when it lies beside the thermal band;
2. compared, pixel by pixel, with a robust local background: median and MAD-sigma over ``background_m``
   (default 600 m, six footprints: a farm of up to ~300 m leaves the median untouched), estimated on
   footprint-sized cells (the delivered 30 m pixels are already footprint averages: no further smoothing);
3. candidates are connected areas where the excess reaches ``min_dt_k`` (3 K) and ``min_z`` (3 robust sigma),
   at least ``min_area_m2`` (half a footprint) large, so single noisy pixels do not count; areas hotter than
   ``max_dt_k`` (20 K over 100 m: fires, furnaces, flares) are no mining farm and are dropped (and counted).

A candidate says "something here is a few kelvin warmer than its surroundings over a farm-sized area", nothing
more: greenhouses, industry, towns and sunlit bare ground do that too. Sites have no container or cooling
probability (null) and a ``score`` of at most 1/3, one kind of evidence, as a model site with one class.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage

from minewatch.classes import CLASSES
from minewatch.clock import now_utc
from minewatch.datasets import thermal as th
from minewatch.datasets.acquisition import acquisition_of
from minewatch.datasets.crs import metric_crs
from minewatch.datasets.raster_io import open_raster, raster_extent
from minewatch.errors import UserError
from minewatch.infer.scan import ScanResult
from minewatch.infer.sites import SITE_COLUMNS, SITE_SCHEMA, empty_sites, null_object_figures

log = logging.getLogger(__name__)

EVIDENCE = "thermal-only"
MODEL_NAME = "thermal-only rule"
"""What the ``model`` column of thermal-only sites says (no model looked at them)."""
MIN_PIXEL_M = 10.0
"""Finer thermal is airborne: it sees single buildings and belongs with its optical raster (``--thermal``)."""
MAX_PIXELS = 250_000_000
"""A full Landsat scene is ~60 Mpx at 30 m; more is a mosaic to split (memory: ~6 float32 copies)."""
MW_PER_CONTAINER = (0.4, 1.9)
"""Design notes: a 40 ft mining container draws about 0.4-1.9 MW."""
DETECTABLE_CONTAINERS = 100
"""Smallest generated container farm whose own excess in its hottest 100 m pixel reaches the rule's 3 K in
most scenes, and at every larger size (``infer/heat_scale.py``; the satellite model card's heat table)."""


@dataclass(frozen=True)
class HeatRule:
    """The thermal-only rule (see the module docstring); every size in metres."""

    footprint_m: float = 100.0
    background_m: float = 600.0
    min_dt_k: float = 3.0
    min_z: float = 3.0
    max_dt_k: float = 20.0
    min_area_share: float = 0.5  # of one footprint

    @property
    def min_area_m2(self) -> float:
        return self.min_area_share * self.footprint_m**2

    def limits(self, sensor: str | None = None) -> str:
        """The one-line limit every thermal-only summary carries."""
        lo, hi = (DETECTABLE_CONTAINERS * w for w in MW_PER_CONTAINER)
        return (f"thermal-only evidence at the {self.footprint_m:g} m footprint of {sensor or 'the thermal sensor'}: "
                f"only farms of about {DETECTABLE_CONTAINERS}+ containers ({lo:.0f}-{hi:.0f} MW) warm it by "
                f"{self.min_dt_k:g} K over a {self.background_m:g} m background, about what sunlit ground varies "
                "by there, so smaller farms are invisible and many large ones missed; heat alone is not mining "
                "(greenhouses, industry, towns, bare fields): confirm candidates with 0.5 m optical imagery")


@dataclass
class Anomalies:
    """What the rule found on one thermal image (its own grid)."""

    dt: np.ndarray  # (h, w) float32, excess over the local background (K), NaN where no data
    z: np.ndarray  # robust z-score
    labels: np.ndarray  # (h, w) int32, candidate number (1..n), 0 elsewhere
    dt_max: list[float] = field(default_factory=list)  # per candidate
    z_max: list[float] = field(default_factory=list)
    area_m2: list[float] = field(default_factory=list)
    too_hot: int = 0  # areas above max_dt_k, dropped
    valid_px: int = 0


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """NaN-aware mean of ``f`` x ``f`` blocks (edges padded with NaN)."""
    h, w = a.shape
    H, W = math.ceil(h / f) * f, math.ceil(w / f) * f
    pad = np.full((H, W), np.nan, np.float32)
    pad[:h, :w] = a
    blocks = pad.reshape(H // f, f, W // f, f)
    ok = np.isfinite(blocks)
    n = ok.sum(axis=(1, 3))
    s = np.where(ok, blocks, 0).sum(axis=(1, 3))
    return np.where(n > 0, s / np.maximum(n, 1), np.nan).astype(np.float32)


def find_anomalies(kelvin: np.ndarray, pixel_m: float, rule: HeatRule = HeatRule()) -> Anomalies:
    """The rule on an (h, w) kelvin image with ``pixel_m`` pixels (NaN = no data or cloud)."""
    kelvin = np.asarray(kelvin, dtype=np.float32)
    valid = np.isfinite(kelvin)
    if not valid.any():
        empty = np.full(kelvin.shape, np.nan, np.float32)
        return Anomalies(empty, empty, np.zeros(kelvin.shape, np.int32))
    f = max(1, int(round(rule.footprint_m / pixel_m)))
    coarse = _block_mean(kelvin, f)
    bg = th.robust_background(coarse, f * pixel_m, rule.background_m)
    rows = (np.arange(kelvin.shape[0]) + 0.5) / f
    cols = (np.arange(kelvin.shape[1]) + 0.5) / f
    dt, z = th.anomaly(kelvin, th.sample_grid(bg.median, rows, cols), th.sample_grid(bg.sigma, rows, cols))
    with np.errstate(invalid="ignore"):
        hot = valid & (dt >= rule.min_dt_k) & (z >= rule.min_z)
    raw, n = ndimage.label(hot, structure=np.ones((3, 3), bool))
    out = Anomalies(dt, z, np.zeros(kelvin.shape, np.int32), valid_px=int(valid.sum()))
    if n == 0:
        return out
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum(hot, raw, idx) * pixel_m**2
    peaks = ndimage.maximum(dt, raw, idx)
    zs = ndimage.maximum(z, raw, idx)
    keep = np.zeros(n + 1, np.int32)
    k = 0
    for i, (area, peak, zmax) in enumerate(zip(sizes, peaks, zs, strict=True), start=1):
        if area < rule.min_area_m2 - 1e-6:
            continue
        if peak > rule.max_dt_k:
            out.too_hot += 1
            continue
        k += 1
        keep[i] = k
        out.dt_max.append(float(peak))
        out.z_max.append(float(zmax))
        out.area_m2.append(float(area))
    out.labels = keep[raw]
    return out


def anomaly_sites(found: Anomalies, transform: Affine, crs, *, scene_id: str, acquired: str | None, sensor: str,
                  run_id: str, created: str, rule: HeatRule = HeatRule()) -> gpd.GeoDataFrame:
    """Candidate sites of the anomalies (the scan's site columns, plus ``evidence``), ranked by excess."""
    if not found.dt_max:
        sites = empty_sites(crs)
        sites["evidence"] = pd.Series([], dtype=object)
        return sites
    polys: dict[int, list] = {}
    for geom, value in shapes(found.labels, mask=found.labels > 0, transform=transform, connectivity=8):
        polys.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    records, outlines = [], []
    for k in range(1, len(found.dt_max) + 1):
        outlines.append(shapely.union_all(polys[k]))
        dt_max = found.dt_max[k - 1]
        records.append({
            "score": min(1.0, dt_max / (2 * rule.min_dt_k)) / len(CLASSES), "classes": "heat_signature",
            **{f"p_{c}": np.nan for c in CLASSES}, "n_tiles": 0,
            "thermal_dt_max_k": dt_max, "thermal_z_max": found.z_max[k - 1], **null_object_figures(None),
        })
    sites = gpd.GeoDataFrame(pd.DataFrame.from_records(records), geometry=outlines, crs=crs)
    metric = sites.to_crs(metric_crs(sites.crs, sites))
    sites["area_m2"] = metric.geometry.area.to_numpy()
    centroids = metric.geometry.centroid.to_crs(4326)
    sites["centroid_lon"], sites["centroid_lat"] = centroids.x.to_numpy(), centroids.y.to_numpy()
    sites = sites.sort_values(["score", "thermal_z_max", "area_m2"], ascending=False,
                              kind="mergesort").reset_index(drop=True)
    sites["rank"] = np.arange(1, len(sites) + 1, dtype="int64")
    sites["site_id"] = [f"{scene_id}-{r:04d}" for r in sites["rank"]]
    sites["scene_id"], sites["acquired"], sites["sensor"] = scene_id, acquired, sensor
    sites["model"], sites["model_sha256"] = MODEL_NAME, ""
    sites["run_id"], sites["created"], sites["review_status"] = run_id, created, "unreviewed"
    sites = sites[[*SITE_COLUMNS, "geometry"]].astype(SITE_SCHEMA)
    sites.insert(len(SITE_COLUMNS), "evidence", EVIDENCE)
    return sites


# ------------------------------------------------------------------------------------------------ files
@dataclass
class ThermalImage:
    kelvin: np.ndarray
    transform: Affine
    crs: object
    pixel_m: float
    kind: str
    sensor: str
    acquired: str | None
    scene_id: str
    clouds: str  # how clouds were masked, for the report


def read_thermal_image(path: Path, units: str | None = None) -> ThermalImage:
    """The whole thermal raster in kelvin (NaN = no data or cloud), with what is known about it."""
    src = open_raster(path, what="thermal raster")
    with src:
        if src.count != 1:
            raise UserError(f"a thermal-only scan reads one thermal band; this raster has {src.count}", path=path,
                            fix="give the thermal band alone (e.g. Landsat *_B10.TIF or *_ST_B10.TIF)")
        tags = {k.upper(): v for k, v in src.tags().items()}
        kind = th.detect_thermal_kind(path, tags.get("UNITS"), units, src.units[0])
        pixel_m = raster_extent(src).gsd_m
        if pixel_m < MIN_PIXEL_M:
            raise UserError(f"thermal pixels of {pixel_m:.3g} m are airborne thermal, which sees single buildings; "
                            "the thermal-only rule is for satellite thermal (Landsat's 100 m footprint)", path=path,
                            fix="scan it with its optical raster: minewatch scan OPTICAL --thermal THIS -o ...")
        if src.width * src.height > MAX_PIXELS:
            raise UserError(f"the thermal raster has {src.width * src.height / 1e6:.0f} Mpx, more than a thermal-only "
                            f"scan holds ({MAX_PIXELS / 1e6:.0f} Mpx)", path=path,
                            fix="split it (gdal_translate -srcwin) or give one Landsat scene at a time")
        raw = src.read(1, masked=True)
        values = raw.astype(np.float64).filled(np.nan)
        kelvin = th.to_kelvin(values, kind, source=path, nodata=0 if kind == "landsat_l1" else None)
        info = acquisition_of(path, src.tags())
        transform, crs = src.transform, src.crs
        scene_id = src.tags().get("MINEWATCH_SCENE_ID") or path.stem
    clouds = "none masked (no Landsat quality band beside the thermal band)"
    if kind in ("landsat_l1", "landsat_l2_st"):
        qa = th.find_landsat_qa(path)
        mtl = th.find_mtl(path)
        if qa is not None:
            with rasterio.open(qa) as q:
                if (q.width, q.height) == kelvin.shape[::-1]:
                    cloud = th.landsat_cloud_mask(q.read(1), th.parse_mtl(mtl) if mtl else {})
                    kelvin = np.where(cloud, np.nan, kelvin).astype(np.float32)
                    clouds = f"{cloud.mean():.0%} of the scene masked as cloud by {qa.name}"
                else:
                    clouds = f"{qa.name} is on another grid: clouds not masked"
    elif kind in ("kelvin", "celsius", "fahrenheit"):
        clouds = "not masked (radiometric raster without a quality band)"
    sensor = info.sensor or tags.get("MINEWATCH_PROFILE") or ("Landsat" if kind.startswith("landsat") else "thermal")
    return ThermalImage(kelvin.astype(np.float32), transform, crs, pixel_m, kind, sensor, info.acquired, scene_id,
                        clouds)


def write_excess(path: Path, found: Anomalies, image: ThermalImage, run: dict[str, str]) -> None:
    """The excess over the local background (K) as a float32 GeoTIFF on the thermal raster's grid."""
    h, w = found.dt.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=image.crs,
                       transform=image.transform, nodata=np.nan, tiled=w >= 256 and h >= 256,
                       compress="deflate") as dst:
        dst.write(found.dt.astype(np.float32), 1)
        dst.set_band_description(1, "thermal_excess_k")
        dst.update_tags(1, UNITS="K")
        dst.update_tags(**{f"MINEWATCH_{k.upper()}": v for k, v in run.items()}, MINEWATCH_EVIDENCE=EVIDENCE)


def run_thermal_only(req, rule: HeatRule = HeatRule()):
    """A thermal-only scan of ``req.raster`` (a :class:`~minewatch.infer.scan.ScanRequest`): sites, and with
    ``req.heatmap`` the excess raster, ``req.quicklook`` a map; see the module docstring."""
    from minewatch.infer.outputs import OutputSet
    from minewatch.infer.preflight import Report
    from minewatch.infer.writers import write_styled_sites

    start = time.perf_counter()
    for flag, value in (("--thermal", req.thermal), ("--tiles-out", req.tiles_out), ("--geofence", req.geofence),
                        ("--exclude", req.exclude), ("--model", req.model)):
        if value is not None:
            raise UserError(f"{flag} does not apply to a thermal-only scan (heat anomalies of the thermal raster "
                            "alone, no model, no windows)", path=value,
                            fix=f"drop {flag}; clip the raster first (gdalwarp -cutline) to scan part of it"
                            if flag in ("--geofence", "--exclude") else f"drop {flag}")
    outputs = OutputSet.check({"out": req.out, "heatmap": req.heatmap, "quicklook": req.quicklook},
                              {"thermal raster": req.raster}, run_id=uuid.uuid4().hex[:12], overwrite=req.overwrite,
                              resume=req.resume)
    image = read_thermal_image(Path(req.raster), req.thermal_units)
    report = Report()
    report.add("mode", f"thermal-only: heat anomalies at the {rule.footprint_m:g} m footprint (no optical, no model)")
    report.add("thermal", f"{req.raster} ({image.kind}), {image.kelvin.shape[1]:,} x {image.kelvin.shape[0]:,} px "
               f"of {image.pixel_m:.3g} m")
    report.add("acquired", f"{image.acquired or 'unknown'}, sensor {image.sensor}")
    report.add("clouds", image.clouds)
    report.add("rule", f"excess >= {rule.min_dt_k:g} K and >= {rule.min_z:g} robust sigma over a "
               f"{rule.background_m:g} m background, >= {rule.min_area_m2:,.0f} m2; hotter than {rule.max_dt_k:g} K "
               "dropped (fires)")
    report.add("model", f"none ({MODEL_NAME})")
    if image.pixel_m > 2 * rule.footprint_m:
        report.warnings.append(f"thermal pixels of {image.pixel_m:.3g} m are coarser than the {rule.footprint_m:g} m "
                               "footprint the rule is made for: only the largest sites can show")
    for path in outputs.targets.values():
        report.add("output", f"{path}{' (exists: replaced)' if path.exists() else ''}")
    scene_id = req.scene_id or image.scene_id
    acquired = req.acquired or image.acquired
    if req.dry_run:
        return ThermalOnlyResult(empty_sites(image.crs), None, req.out, 0, 0, time.perf_counter() - start, report,
                                 dry_run=True, limits=rule.limits(image.sensor))
    for warning in report.warnings:
        log.warning("%s: %s", req.raster, warning)
    log.info("thermal-only scan of %s (%s): heat anomalies at the %g m footprint, no model", req.raster, image.kind,
             rule.footprint_m)
    found = find_anomalies(image.kelvin, image.pixel_m, rule)
    run = {"run_id": outputs.run_id, "created": now_utc()}
    sites = anomaly_sites(found, image.transform, image.crs, scene_id=scene_id, acquired=acquired,
                          sensor=image.sensor, run_id=run["run_id"], created=run["created"], rule=rule)
    with outputs.lock():
        write_styled_sites(outputs, sites, run)
        if req.heatmap:
            with outputs.writing(req.heatmap) as tmp:
                write_excess(tmp, found, image, run)
        if req.quicklook:
            from minewatch.infer.quicklook import write_quicklook

            with outputs.writing(req.quicklook) as tmp:
                write_quicklook(tmp, req.raster, sites, title=f"minewatch thermal-only: {scene_id}", run=run)
        written = outputs.commit()
    km2 = found.valid_px * image.pixel_m**2 / 1e6
    provenance = {"scene_id": scene_id, "acquired": acquired, "sensor": image.sensor, "model": MODEL_NAME,
                  "model_sha256": "", **run, "optical": None, "thermal": str(req.raster)}
    return ThermalOnlyResult(sites, None, req.out, 0, 0, time.perf_counter() - start, report, written,
                             provenance=provenance, limits=rule.limits(image.sensor), km2=km2, too_hot=found.too_hot)


@dataclass
class ThermalOnlyResult(ScanResult):
    """A thermal-only scan's result: sites, no tile scores, and the limits line."""

    limits: str = ""
    km2: float = 0.0
    too_hot: int = 0

    def summary(self) -> str:
        if self.dry_run:
            return self.report.text() + "\n(dry run: nothing was read or written)"
        lines = [f"{len(self.sites)} heat_signature candidate(s), thermal-only evidence, over {self.km2:,.1f} km2 "
                 f"of clear thermal in {self.seconds:.1f} s"
                 + (f" ({self.too_hot} area(s) hotter than any mining farm dropped)" if self.too_hot else "")]
        for _, s in self.sites.head(5).iterrows():
            lines.append(f"  #{s['rank']}  +{s['thermal_dt_max_k']:.1f} K (z {s['thermal_z_max']:.1f})  "
                         f"({s['centroid_lat']:.5f}, {s['centroid_lon']:.5f})  {s['area_m2']:.0f} m2")
        lines.append(f"  limits: {self.limits}")
        lines += [f"  wrote {p}" for p in self.outputs]
        return "\n".join(lines)
