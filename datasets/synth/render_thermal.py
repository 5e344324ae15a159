"""Thermal rendering: surface temperature at fine resolution, then what the sensor sees.

Temperatures are simulated on a fine grid (a fraction of the sensor footprint), area-averaged over
each delivered pixel's footprint with a summed-area table (exact area weights, fractional edges
included), on the delivered grid, which is coarser than the optical grid and offset from it. A
small site therefore fades into a 100 m footprint exactly as physics says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.enums import MergeAlg
from rasterio.features import rasterize
from shapely.geometry import Polygon

from minewatch.datasets.synth.objects import Plume
from minewatch.datasets.synth.plan import ScenePlan
from minewatch.datasets.synth.render_optical import part_table, rasterize_parts, rasterize_shadows, shadow_shapes

SNOW_MELT_K = 273.15
MAX_PLUME_SOURCES = 32


@dataclass
class ThermalImage:
    clean: np.ndarray  # (h, w) float32 kelvin, noise-free, what the sensor integrates
    kelvin: np.ndarray  # with sensor noise; nodata where not valid
    valid: np.ndarray  # (h, w) bool


def _sat_sample(sat: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of a summed-area table at edge coordinates (exact for piecewise-constant cells)."""
    ny, nx = sat.shape
    ys = np.clip(ys, 0, ny - 1)
    xs = np.clip(xs, 0, nx - 1)
    y0 = np.minimum(np.floor(ys).astype(np.intp), ny - 2)
    x0 = np.minimum(np.floor(xs).astype(np.intp), nx - 2)
    wy = (ys - y0)[:, None]
    wx = xs - x0
    rows = sat[y0] * (1 - wy) + sat[y0 + 1] * wy
    return rows[:, x0] * (1 - wx) + rows[:, x0 + 1] * wx


def footprint_mean(field: np.ndarray, cell: float, u0: float, v0: float, cu: np.ndarray, cv: np.ndarray,
                   footprint: float, weight: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted mean of ``field`` (cells of ``cell`` m from (u0, v0)) over square footprints
    centred at columns ``cu`` x rows ``cv`` (metres). With ``weight``, a weighted mean (nodata = 0)."""
    ny, nx = field.shape
    x0 = np.clip((cu - footprint / 2 - u0) / cell, 0, nx)  # footprints are cut at the grid's edge
    x1 = np.clip((cu + footprint / 2 - u0) / cell, 0, nx)
    y0 = np.clip((cv - footprint / 2 - v0) / cell, 0, ny)
    y1 = np.clip((cv + footprint / 2 - v0) / cell, 0, ny)

    def box_sum(a: np.ndarray) -> np.ndarray:
        sat = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
        np.cumsum(a, axis=0, dtype=np.float64, out=sat[1:, 1:])
        np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])
        return (_sat_sample(sat, y1, x1) - _sat_sample(sat, y0, x1) - _sat_sample(sat, y1, x0)
                + _sat_sample(sat, y0, x0))

    if weight is None:
        ref = float(field.mean())
        area = np.clip(y1 - y0, 1e-9, None)[:, None] * np.clip(x1 - x0, 1e-9, None)[None, :]
        return (box_sum(field - np.float32(ref)) / area + ref).astype(np.float32)
    ref = float(field[weight > 0].mean()) if (weight > 0).any() else 0.0
    num = box_sum((field - np.float32(ref)) * weight)
    den = box_sum(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 1e-6, num / np.maximum(den, 1e-12) + ref, np.nan)
    return out.astype(np.float32)


def plume_field(plume: Plume, wind: tuple[float, float], us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """Warm air downwind of point sources: exponential decay along the wind, widening across it."""
    src = np.asarray(plume.sources, dtype=np.float32).reshape(-1, 2)
    if len(src) > MAX_PLUME_SOURCES:
        src = src[:: math.ceil(len(src) / MAX_PLUME_SOURCES)]
    wu, wv = np.float32(wind[0]), np.float32(wind[1])
    out = np.zeros((len(vs), len(us)), np.float32)
    L, w0 = np.float32(plume.length_m), np.float32(plume.width_m)
    for su, sv in src:
        du = us[None, :] - su
        dv = vs[:, None] - sv
        along = du * wu + dv * wv
        across = -du * wv + dv * wu
        down = np.maximum(along, 0)
        sig = w0 + np.float32(0.15) * down
        f = np.exp(-down / L - 0.5 * (across / sig) ** 2 - 0.5 * (np.minimum(along, 0) / w0) ** 2)
        np.maximum(out, f, out=out)
    return out * np.float32(plume.amplitude_k)


def surface_temperature(plan: ScenePlan) -> tuple[np.ndarray, np.ndarray | None]:
    """Kelvin on the fine simulation grid, and a validity weight where a background has gaps."""
    t = plan.thermal
    s = t.sim_gsd_m
    shape = (t.sim_height, t.sim_width)
    local = Affine(s, 0, t.sim_u0, 0, s, t.sim_v0)
    us = (t.sim_u0 + (np.arange(t.sim_width) + 0.5) * s).astype(np.float32)
    vs = (t.sim_v0 + (np.arange(t.sim_height) + 0.5) * s).astype(np.float32)
    load = np.float32(plan.solar_load)
    lc = plan.landcover
    weight = None
    if plan.background is not None:
        refl, ok = plan.background.read(s, t.sim_u0, t.sim_v0, t.sim_width, t.sim_height)
        albedo = refl[:3].mean(axis=0)
        ndvi = (refl[3] - refl[0]) / (refl[3] + refl[0] + 1e-3)
        veg = np.clip(ndvi * 1.6, 0, 1)
        solar = np.clip(18 * (1 - 2.2 * albedo), -3, 20) * (1 - 0.8 * veg) + 2 * veg
        if plan.background.water is not None:  # detected water is cool like the generator's own
            wet = rasterize([(plan.background.water, 1)], out_shape=shape, transform=local, fill=0,
                            dtype="uint8").astype(bool)
            solar = np.where(wet, np.float32(lc.water_solar), solar)
        snowy = np.zeros(shape, bool)
        weight = ok.astype(np.float32)
    else:
        ct = lc.cover.arrays()
        cid = lc.cover_map(local, shape)
        solar = ct["solar"][cid]
        snowy = ct["snowy"][cid]
        exempt = ct["exempt"][cid]
        fs = lc.forest_strength(us, vs)
        if fs is not None:
            forest = (fs > 0) & ~exempt
            solar = np.where(forest, np.float32(lc.forest_solar), solar)
        ws = lc.water_strength(us, vs)
        if ws is not None:
            water = (ws > 0) & ~exempt
            solar = np.where(water, np.float32(lc.water_solar), solar)
    temp = np.float32(plan.air_k) + solar.astype(np.float32) * load
    temp += np.float32(plan.recipe.landcover.thermal_mottle_k) * lc.mottle.sample(us, vs)
    if plan.snow:
        temp = np.where(snowy, np.minimum(temp, SNOW_MELT_K), temp)
    # objects: roofs, equipment, pads
    pt = part_table(plan.parts)
    pid = rasterize_parts(plan.parts, local, shape)
    obj = pid > 0
    p = pid[obj]
    t_obj = np.float32(plan.air_k) + pt.solar[p] * load + pt.heat[p]
    if plan.snow:
        t_obj = np.where(~pt.snow_free[p] & (pt.heat[p] < 1), np.minimum(t_obj, SNOW_MELT_K), t_obj)
    temp[obj] = t_obj
    solar_here = np.where(obj, 0, solar).astype(np.float32)
    solar_here[obj] = pt.solar[p]
    # shaded surfaces lose most of their solar warming
    sh = rasterize_shadows(shadow_shapes(plan.parts, plan.shadow_per_m), local, shape)
    shaded = sh > pt.qheight[pid] + 2
    cool = np.float32(plan.recipe.illumination.shadow_cooling)
    temp[shaded] -= cool * np.maximum(solar_here[shaded], 0) * load
    # thermal-only warm patches (hot aisles, exhaust sides) add to what is there
    warm = [(pp.geom, float(pp.heat_k)) for pp in plan.parts if not pp.optical and pp.heat_k != 0]
    if warm:
        temp += rasterize(warm, out_shape=shape, transform=local, fill=0, dtype="float32", merge_alg=MergeAlg.add)
    # plumes of warm air
    for site in plan.sites:
        for pl in site.plumes:
            if not len(pl.sources):
                continue
            reach = 4 * pl.length_m + 4 * pl.width_m
            src = np.asarray(pl.sources)
            lo = src.min(axis=0) - reach
            hi = src.max(axis=0) + reach
            c0, c1 = np.searchsorted(us, lo[0]), np.searchsorted(us, hi[0])
            r0, r1 = np.searchsorted(vs, lo[1]), np.searchsorted(vs, hi[1])
            if c1 > c0 and r1 > r0:
                temp[r0:r1, c0:c1] += plume_field(pl, plan.wind_uv, us[c0:c1], vs[r0:r1])
    atm = plan.atmos
    op_s = atm.opacity(us, vs, shifted=True)
    if op_s is not None:
        temp -= (1 - np.float32(atm.cloud_shadow_light)) * op_s * np.maximum(solar_here, 0) * load * cool
    if plan.look.clouds_in_view:
        op = atm.opacity(us, vs, shifted=False)
        if op is not None:
            temp = temp * (1 - op) + np.float32(atm.cloud_temperature_k) * op
    return temp.astype(np.float32), weight


def render_thermal(plan: ScenePlan) -> ThermalImage:
    """The delivered thermal image: footprint-averaged, resampled to the thermal grid, with noise."""
    t = plan.thermal
    fine, weight = surface_temperature(plan)
    cu = t.origin_u + (np.arange(t.width) + 0.5) * t.gsd_m
    cv = t.origin_v + (np.arange(t.height) + 0.5) * t.gsd_m
    clean = footprint_mean(fine, t.sim_gsd_m, t.sim_u0, t.sim_v0, cu, cv, t.footprint_m, weight)
    valid = np.isfinite(clean)
    if plan.valid is not None:
        tr = Affine(t.gsd_m, 0, t.origin_u, 0, t.gsd_m, t.origin_v)
        inside = rasterize([(plan.valid, 1)], out_shape=(t.height, t.width), transform=tr, fill=0,
                           dtype="uint8").astype(bool)
        valid &= inside
    rng = np.random.default_rng([plan.seed, 31])
    noisy = clean + np.float32(plan.look.thermal_netd_k) * rng.standard_normal(clean.shape, dtype=np.float32)
    nodata = plan.profile.thermal.nodata if plan.profile.thermal and plan.profile.thermal.nodata is not None \
        else -9999.0
    kelvin = np.where(valid, noisy, np.float32(nodata)).astype(np.float32)
    clean = np.where(valid, clean, np.nan).astype(np.float32)
    return ThermalImage(clean, kelvin, valid)


def seen_excess(image: ThermalImage, plan: ScenePlan, poly: Polygon) -> float:
    """Excess the sensor sees: hottest clean pixel in ``poly`` minus the median of a ring around it."""
    t = plan.thermal
    tr = Affine(t.gsd_m, 0, t.origin_u, 0, t.gsd_m, t.origin_v)
    shape = (t.height, t.width)
    inside = rasterize([(poly, 1)], out_shape=shape, transform=tr, fill=0, dtype="uint8").astype(bool)
    if not (inside & image.valid).any():
        inside = rasterize([(poly, 1)], out_shape=shape, transform=tr, fill=0, dtype="uint8",
                           all_touched=True).astype(bool)
    inside &= image.valid
    if not inside.any():
        return float("nan")
    r1, r2 = ring_radii(plan)
    ring_poly = poly.buffer(r2).difference(poly.buffer(r1))
    ring = rasterize([(ring_poly, 1)], out_shape=shape, transform=tr, fill=0, dtype="uint8").astype(bool)
    ring &= image.valid
    bg = float(np.median(image.clean[ring])) if ring.sum() >= 3 else float(np.nanmedian(image.clean))
    return float(np.max(image.clean[inside]) - bg)


def ring_radii(plan: ScenePlan) -> tuple[float, float]:
    """Inner and outer radius (m) of the background ring used for ``dt_k``."""
    t = plan.thermal
    r1 = max(4.0, 1.5 * t.footprint_m)
    return r1, r1 + max(15.0, 2.0 * t.footprint_m)
