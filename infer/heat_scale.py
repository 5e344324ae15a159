"""How warm a container farm looks at the Landsat thermal footprint, by farm size: the figures behind the
satellite model card's heat table and the thermal-only scan's limit line.

Each farm is drawn by the generator as its recipe draws every farm (layout, load, air, season, sun, wind, the
landscape around it), running, with ``n_containers`` fixed. Its scene's thermal image is rendered twice, with
and without the farm's heat (roofs, exhausts, fans, warm aisles, plumes, transformers, wet pads): the
difference is the farm's own excess in each delivered pixel, area-averaged over the 100 m footprint exactly as
the generator renders Landsat-like thermal. Against it stands the ground itself: the robust sigma of the
heat-free image around its local median (fields, forest, water and roads differ by kelvins at 100 m). Then the
thermal-only rule (:mod:`minewatch.infer.thermal_only`) runs on the delivered image (with sensor noise) and says
whether it finds the farm, and how many false candidates it reports elsewhere.

Power is not modelled by the generator (heat is set in kelvin per surface): the table gives it from the design
notes' 0.4-1.9 MW per 40 ft container.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from minewatch.infer.thermal_only import MW_PER_CONTAINER, HeatRule, find_anomalies

SIZES = (10, 25, 50, 100, 150, 200, 300)
"""Farm sizes of the table, containers."""
SCENES_PER_SIZE = 6
FIRST_SEED = 8000
"""Seeds of the table's scenes (in no training, validation or held-out set)."""
EXTENT_M = 1536.0
"""Scene side: room for a 300-container farm and a 600 m background around it."""


@dataclass
class FarmHeat:
    """One farm size: the farm's excess in its hottest delivered pixel, the ground's variability, detection."""

    n_containers: int
    placed: list[int] = field(default_factory=list)  # containers actually placed (a farm that does not fit shrinks)
    dt_k: list[float] = field(default_factory=list)  # the farm's own excess, hottest delivered pixel
    ground_sigma_k: list[float] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)  # the thermal-only rule put a candidate on it
    false_per_km2: list[float] = field(default_factory=list)

    @property
    def mw(self) -> tuple[float, float]:
        return tuple(self.n_containers * w for w in MW_PER_CONTAINER)  # type: ignore[return-value]

    def summary(self) -> dict:
        q = np.percentile(self.dt_k, [10, 50, 90]) if self.dt_k else [math.nan] * 3
        return {"n_containers": self.n_containers, "placed_median": float(np.median(self.placed)) if self.placed
                else math.nan, "mw": list(self.mw), "dt_k_p10": float(q[0]), "dt_k_median": float(q[1]),
                "dt_k_p90": float(q[2]), "ground_sigma_k": float(np.median(self.ground_sigma_k))
                if self.ground_sigma_k else math.nan, "found": int(sum(self.found)), "scenes": len(self.found),
                "false_per_km2": float(np.mean(self.false_per_km2)) if self.false_per_km2 else math.nan}


LOG_INT_PLACES = math.exp(-0.4999)
"""The generator's farm-size draw (objects.log_int) places this share of the value asked for."""


def farm_recipe(n_containers: int, base: str = "satellite"):
    """The ``base`` recipe with one running container farm of about ``n_containers`` per scene (and its
    look-alikes); the table reports the number placed."""
    from minewatch.datasets.synth.recipe import SynthRecipe, load_recipe

    ask = int(round(n_containers / LOG_INT_PLACES))

    data = load_recipe(base).model_dump()
    data["scene"]["extent_m"] = EXTENT_M
    data["scene"]["nodata_collar_probability"] = 0.0
    data["placement"].update(reference_area_km2=EXTENT_M**2 / 1e6, max_count_scale=1.0, min_mining=1,
                             max_extent_fraction=0.3)
    data["mining"].update(count=(1, 1), running_probability=1.0, kind_weights={"container_farm": 1.0})
    data["mining"]["container_farm"]["n_containers"] = (ask, ask)
    data["sensors"]["satellite"]["gsd_m"] = (1.0, 1.0)  # thermal does not depend on it; fewer optical pixels
    return SynthRecipe.model_validate(data)


def _without_farm_heat(plan) -> None:
    for site in plan.sites:
        if site.mining:
            for p in site.parts:
                p.heat_k = 0.0
            site.plumes = []


def ground_sigma(clean: np.ndarray, pixel_m: float, window_m: float) -> float:
    """Robust sigma (MAD) of a heat-free thermal image around its local median over ``window_m``."""
    ok = np.isfinite(clean)
    filled = np.where(ok, clean, np.nanmedian(clean))
    size = max(3, int(round(window_m / pixel_m)) | 1)
    resid = (filled - ndimage.median_filter(filled, size=size, mode="nearest"))[ok]
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))))


def measure(n_containers: int, seed: int, rule: HeatRule = HeatRule()) -> tuple[int, float, float, bool, float]:
    """(containers placed, farm excess in the hottest pixel K, ground sigma K, found, false candidates per km2)
    of one generated scene."""
    from minewatch.datasets.profiles import load_profile
    from minewatch.datasets.synth.plan import make_plan
    from minewatch.datasets.synth.render_thermal import render_thermal

    recipe = farm_recipe(n_containers)
    profile = load_profile("satellite")
    plan = make_plan(seed, recipe, profile)
    farm = next(s for s in plan.sites if s.mining)
    hot = render_thermal(plan)
    plan_cold = make_plan(seed, recipe, profile)
    _without_farm_heat(plan_cold)
    cold = render_thermal(plan_cold)
    t = plan.thermal
    excess = float(np.nanmax(hot.clean - cold.clean))
    sigma = ground_sigma(cold.clean, t.gsd_m, rule.background_m)
    found = find_anomalies(np.where(hot.valid, hot.kelvin, np.nan), t.gsd_m, rule)
    tr = Affine(t.gsd_m, 0, t.origin_u, 0, t.gsd_m, t.origin_v)
    on_farm = rasterize([(farm.footprint(rule.footprint_m / 2), 1)], out_shape=(t.height, t.width), transform=tr,
                        fill=0, dtype="uint8").astype(bool)
    hits = set(np.unique(found.labels[on_farm]).tolist()) - {0}
    others = set(range(1, len(found.dt_max) + 1)) - hits
    km2 = float(hot.valid.sum()) * t.gsd_m**2 / 1e6
    return int(farm.params.get("n_containers", n_containers)), excess, sigma, bool(hits), len(others) / max(km2, 1e-9)


def heat_by_farm_size(sizes: tuple[int, ...] = SIZES, scenes: int = SCENES_PER_SIZE, seed: int = FIRST_SEED,
                      rule: HeatRule = HeatRule()) -> list[FarmHeat]:
    """The table: for each size, ``scenes`` generated scenes (seeds ``seed + 100 * i + k``)."""
    rows = []
    for i, n in enumerate(sizes):
        row = FarmHeat(n)
        for k in range(scenes):
            placed, dt, sigma, hit, false = measure(n, seed + 100 * i + k, rule)
            row.placed.append(placed)
            row.dt_k.append(dt)
            row.ground_sigma_k.append(sigma)
            row.found.append(hit)
            row.false_per_km2.append(false)
        rows.append(row)
    return rows


def table_lines(rows: list[FarmHeat], rule: HeatRule = HeatRule()) -> list[str]:
    """Markdown table of :func:`heat_by_farm_size`."""
    lines = [f"| containers (placed) | power, MW | farm's excess in its hottest {rule.footprint_m:g} m pixel, K: "
             "median (10-90 %) | ground variability (robust sigma), K | thermal-only rule finds it | false "
             "candidates per km2 |", "|---|---|---|---|---|---|"]
    for r in rows:
        s = r.summary()
        lines.append(f"| {r.n_containers} ({s['placed_median']:.0f}) | {s['mw'][0]:.0f}-{s['mw'][1]:.0f} | "
                     f"{s['dt_k_median']:.2f} ({s['dt_k_p10']:.2f}-{s['dt_k_p90']:.2f}) | {s['ground_sigma_k']:.2f} | "
                     f"{s['found']}/{s['scenes']} | {s['false_per_km2']:.2f} |")
    return lines


def detectable_from(rows: list[FarmHeat], share: float = 0.5) -> int | None:
    """Smallest farm size whose excess reaches the rule's ``min_dt_k`` in at least ``share`` of its scenes and
    at every larger size."""
    rule = HeatRule()
    ok = [np.mean(np.asarray(r.dt_k) >= rule.min_dt_k) >= share for r in rows]
    for i, r in enumerate(rows):
        if all(ok[i:]):
            return r.n_containers
    return None
