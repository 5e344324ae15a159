"""Entry point: plan, render and write synthetic scenes (optical, thermal, truth, scene.json)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.enums import Resampling

from minewatch.datasets.profiles import SensorProfile, load_profile
from minewatch.datasets.synth.background import background_files
from minewatch.datasets.synth.geo import iso_z
from minewatch.datasets.synth.plan import GENERATOR_VERSION, ScenePlan, make_plan
from minewatch.datasets.synth.preview import write_preview
from minewatch.datasets.synth.recipe import BackgroundEntry, SynthRecipe, load_recipe
from minewatch.datasets.synth.render_optical import OpticalRenderer
from minewatch.datasets.synth.render_thermal import ThermalImage, render_thermal, ring_radii, seen_excess
from minewatch.datasets.synth.writer import write_json, write_raster_strips, write_truth
from minewatch.errors import UserError
from minewatch.progress import progress

log = logging.getLogger(__name__)


MAX_SIZE_PX = 16_384
"""Largest scene side: 3.3 km at 0.2 m. The renderer keeps a few whole-scene id maps (parts, shadows, land
cover), about ``BYTES_PER_PX`` per pixel; larger areas are several scenes or a mosaic."""
BYTES_PER_PX = 20


def generate_scenes(out: Path, *, seed: int = 0, count: int = 1, profile: str | None = None,
                    recipe: str | Path | None = None, background: Path | None = None, size: int | None = None,
                    preview: bool = False, backgrounds: Sequence[Path | str | BackgroundEntry] | None = None,
                    background_gsd_m: float | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``count`` scenes into ``out/scene_<seed+k:06d>/``; scene k uses seed ``seed + k``.

    ``profile`` defaults to the recipe's (drone), ``recipe`` to configs/synth/default.yaml, ``size``
    (optical width = height, pixels) to the recipe's. With ``backgrounds`` (files or folders of
    GeoTIFF, PNG, JPEG; default: the recipe's ``backgrounds``; ``background`` is the one-file form) each
    scene pastes its sites and look-alikes on one of them, picked by its seed from the sorted list,
    resampled to the profile GSD in the background's CRS; ``background_gsd_m`` (default: the recipe's)
    is the pixel size of images without georeferencing.
    """
    if seed < 0:
        raise UserError(f"seed {seed} is negative", fix="use a seed of 0 or more")
    if count < 1:
        raise UserError("count must be at least 1", fix="pass --count 1 or more")
    if size is not None and size < 64:
        raise UserError(f"size {size} px is too small", fix="use --size 64 or more")
    if size is not None and size > MAX_SIZE_PX:
        raise UserError(f"size {size:,} px would need about {size * size * BYTES_PER_PX / 2**30:.0f} GiB of memory "
                        f"(the largest scene is {MAX_SIZE_PX:,} px)",
                        fix="make several scenes with --count, or mosaic one (bench/scenes.py)")
    if background_gsd_m is not None and background_gsd_m <= 0:
        raise UserError(f"background pixel size {background_gsd_m} m is not positive", fix="pass a size in metres")
    rec = load_recipe(recipe)
    prof = load_profile(profile or rec.scene.profile)
    if background is not None and not Path(background).is_file():
        raise UserError("no such background raster", path=background, fix="check the path")
    entries = [background] if background is not None else list(backgrounds or rec.backgrounds)
    gsd = background_gsd_m if background_gsd_m is not None else rec.background_gsd_m
    files = [BackgroundEntry(path=f, gsd_m=g) for f, g in background_files(entries, gsd)] if entries else None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("the output path is a file", path=out, fix="give a folder")
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / f"scene_{seed + k:06d}" for k in range(count)]
    taken = [f for f in targets if f.is_dir() and any(f.iterdir())]
    if taken and not overwrite:
        raise UserError(f"{len(taken)} scene folder(s) exist and would be replaced (their truth.geojson too)",
                        path=taken[0], fix="pass --overwrite, or write to another --out or --seed")
    folders = []
    for k in progress(range(count), total=count, desc="synth", unit="scene"):
        folder = targets[k]
        folder.mkdir(exist_ok=True)
        generate_scene(folder, seed + k, rec, prof, size=size, backgrounds=files, background_gsd_m=background_gsd_m,
                       preview=preview)
        folders.append(folder)
    return folders


def generate_scene(folder: Path, seed: int, recipe: SynthRecipe, profile: SensorProfile, *,
                   size: int | None = None, background: Path | None = None, preview: bool = False,
                   backgrounds: Sequence[Path | str | BackgroundEntry] | None = None,
                   background_gsd_m: float | None = None) -> ScenePlan:
    """Plan, render and write one scene into ``folder``."""
    plan = make_plan(seed, recipe, profile, size=size, background=background, backgrounds=backgrounds,
                     background_gsd_m=background_gsd_m)
    acquired = iso_z(plan.when.acquired)
    tags = {"MINEWATCH_SCENE_ID": plan.scene_id, "ACQUISITION_DATETIME": acquired,
            "MINEWATCH_PROFILE": profile.name, "MINEWATCH_GENERATOR": GENERATOR_VERSION}
    optical = folder / "optical.tif"
    renderer = OpticalRenderer(plan)
    opt = profile.optical
    write_raster_strips(optical, renderer.strips(), width=plan.width, height=plan.height, count=len(opt.bands),
                        dtype=opt.dtype, crs=plan.frame.crs, transform=plan.optical_transform, nodata=opt.nodata,
                        descriptions=list(opt.bands), tags=tags, resampling=Resampling.average)
    del renderer
    thermal = render_thermal(plan)
    t = plan.thermal
    nodata = profile.thermal.nodata if profile.thermal and profile.thermal.nodata is not None else -9999.0
    write_raster_strips(folder / "thermal.tif", [(0, thermal.kelvin[None])], width=t.width, height=t.height,
                        count=1, dtype="float32", crs=plan.frame.crs, transform=plan.thermal_transform,
                        nodata=nodata, descriptions=["thermal"],
                        tags={**tags, "UNITS": "kelvin", "THERMAL_FOOTPRINT_M": f"{t.footprint_m:g}"},
                        resampling=Resampling.average)
    records = truth_records(plan, thermal)
    write_truth(folder / "truth.geojson", records, plan.frame.crs)
    write_json(folder / "scene.json", scene_summary(plan, records))
    if preview:
        write_preview(folder / "preview.png", plan, optical, thermal, records)
    log.info("%s: %d sites, %d truth polygons -> %s", plan.scene_id, len(plan.sites), len(records), folder)
    return plan


CLOUD_SAMPLE_M = 1.0
"""Spacing of the points at which a truth polygon's cloud cover is sampled (a container is 2.4 m wide)."""
THICK_CLOUD = 0.5
"""Cloud opacity from which the ground below cannot be made out (optical and thermal alike)."""


def cloud_share(plan: ScenePlan, geom: shapely.Geometry) -> float:
    """Share of ``geom`` (local metres) under thick cloud as the sensor sees it; 0 without clouds in view.

    The label rule leaves objects mostly under thick cloud out of training and evaluation: nobody can see them,
    so they are neither a farm to find nor a background to reject."""
    if not plan.look.clouds_in_view or plan.atmos.clouds is None or geom.is_empty:
        return 0.0
    x0, y0, x1, y1 = geom.bounds
    xs = np.arange(x0 + CLOUD_SAMPLE_M / 2, x1, CLOUD_SAMPLE_M)
    ys = np.arange(y0 + CLOUD_SAMPLE_M / 2, y1, CLOUD_SAMPLE_M)
    inside = shapely.contains_xy(geom, *np.meshgrid(xs, ys))
    if not inside.any():  # smaller than the sampling step: its representative point
        pt = geom.representative_point()
        xs, ys, inside = np.array([pt.x]), np.array([pt.y]), np.ones((1, 1), dtype=bool)
    op = plan.atmos.opacity(xs, ys, shifted=False)[inside]
    return float(np.mean(op >= THICK_CLOUD))


def truth_records(plan: ScenePlan, thermal: ThermalImage) -> list[dict[str, Any]]:
    """One record per truth polygon, with what the thermal sensor sees over it and its share under thick cloud."""
    out = []
    for site, tr in plan.truth():
        dt = seen_excess(thermal, plan, tr.geom)
        out.append({
            "class": tr.cls, "site_id": site.site_id, "kind": tr.kind, "n_containers": int(tr.n_containers),
            "running": bool(tr.running), "dt_k": round(dt, 2) if math.isfinite(dt) else float("nan"),
            "cloud_share": round(cloud_share(plan, tr.geom), 2),
            "area_m2": round(float(tr.geom.area), 1), "local": tr.geom,
            "geometry": shapely.transform(tr.geom, plan.frame.to_crs),
        })
    return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def scene_summary(plan: ScenePlan, records: list[dict[str, Any]]) -> dict[str, Any]:
    crs = plan.frame.crs
    epsg = crs.to_epsg()
    t = plan.thermal
    centre = plan.frame.to_lonlat(np.array([[plan.width * plan.gsd_m / 2, plan.height * plan.gsd_m / 2]]))[0]
    sites = []
    for s in plan.sites:
        recs = [r for r in records if r["site_id"] == s.site_id]
        heat = [_finite(r["dt_k"]) for r in recs if r["class"] == "heat_signature"]
        seen = [r["dt_k"] for r in recs if math.isfinite(r["dt_k"])]
        lonlat = plan.frame.to_lonlat(np.array([s.centre]))[0]
        sites.append({
            "site_id": s.site_id, "kind": s.kind, "mining": s.mining, "running": s.running,
            "lon": round(float(lonlat[0]), 7), "lat": round(float(lonlat[1]), 7),
            "orientation_deg": round(math.degrees(s.angle) % 360, 1),
            "dt_k": heat[0] if heat else max(seen, default=None),
            "n_polygons": len(recs), "params": s.params,
        })
    r1, r2 = ring_radii(plan)
    return {
        "scene_id": plan.scene_id, "profile": plan.profile.name, "gsd_m": plan.gsd_m,
        "thermal_gsd_m": t.gsd_m, "thermal_footprint_m": t.footprint_m,
        "thermal_origin_offset_m": [round(-t.origin_u, 4), round(-t.origin_v, 4)],
        "crs": f"EPSG:{epsg}" if epsg else crs.to_wkt(), "width": plan.width, "height": plan.height,
        "acquired": iso_z(plan.when.acquired), "seed": plan.seed, "generator_version": GENERATOR_VERSION,
        "recipe_version": plan.recipe.version, "region": plan.region,
        "centre_lon": round(float(centre[0]), 7), "centre_lat": round(float(centre[1]), 7),
        "season": plan.when.season, "snow": plan.snow,
        "sun_elevation_deg": round(plan.when.sun_elevation_deg, 2),
        "sun_azimuth_deg": round(plan.when.sun_azimuth_deg, 2), "air_temperature_k": round(plan.air_k, 2),
        "solar_load": round(plan.solar_load, 3), "wind_to_deg": round(math.degrees(math.atan2(
            plan.wind_uv[0], -plan.wind_uv[1])) % 360, 1),
        "cloud_cover": round(plan.atmos.cloud_cover, 3), "haze": round(plan.atmos.haze, 4),
        "nodata_collar": plan.collar,
        "background": str(plan.background.path) if plan.background is not None else None,
        "background_info": plan.background.summary() if plan.background is not None else None,
        "dt_k_rule": f"max clean thermal inside the polygon minus the median of a {r1:g}-{r2:g} m ring",
        **({"sensor_effects": plan.effects.summary()} if plan.look.satellite_effects else {}),
        "sites": sites,
    }
