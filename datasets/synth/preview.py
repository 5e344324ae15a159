"""preview.png: optical, thermal and truth outlines side by side, for a person to judge a scene."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from rasterio.enums import Resampling

from minewatch.atomic import atomic_path
from minewatch.datasets.synth.plan import ScenePlan
from minewatch.datasets.synth.render_thermal import ThermalImage

CLASS_COLOURS = {"container_farm": "#ff2d2d", "cooling_array": "#2dd4ff", "heat_signature": "#ffd400",
                 "lookalike": "#b6ff3b"}
MAX_PX = 900


def _optical_rgb(path: Path, plan: ScenePlan) -> tuple[np.ndarray, int]:
    bands = list(plan.profile.optical.bands)
    idx = [bands.index(b) + 1 for b in ("red", "green", "blue")]
    f = max(1, math.ceil(max(plan.width, plan.height) / MAX_PX))
    with rasterio.open(path) as ds:
        arr = ds.read(idx, out_shape=(3, max(1, plan.height // f), max(1, plan.width // f)),
                      resampling=Resampling.average).astype(np.float32)
        valid = ds.read_masks(1, out_shape=(max(1, plan.height // f), max(1, plan.width // f))) > 0
    opt = plan.profile.optical
    arr = arr * opt.scale + opt.offset
    if plan.look.gamma == 1.0:  # linear reflectance: stretch for display
        hi = float(np.percentile(arr[:, valid], 99)) if valid.any() else 1.0
        arr = np.clip(arr / max(hi, 1e-3), 0, 1) ** (1 / 2.2)
    rgb = np.moveaxis(np.clip(arr, 0, 1), 0, -1)
    rgb[~valid] = 0.15
    return rgb, f


def write_preview(path: Path, plan: ScenePlan, optical: Path, thermal: ThermalImage,
                  records: list[dict[str, Any]]) -> None:
    rgb, f = _optical_rgb(optical, plan)
    step = plan.gsd_m * f
    t = plan.thermal
    fig = Figure(figsize=(18, 6.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    axes[0].imshow(rgb, interpolation="nearest")
    axes[0].set_title("optical")
    k = np.where(thermal.valid, thermal.kelvin, np.nan)
    lo, hi = (np.nanpercentile(k, 1), np.nanpercentile(k, 99.7)) if np.isfinite(k).any() else (0, 1)
    extent = (t.origin_u / step - 0.5, (t.origin_u + t.width * t.gsd_m) / step - 0.5,
              (t.origin_v + t.height * t.gsd_m) / step - 0.5, t.origin_v / step - 0.5)
    im = axes[1].imshow(k, cmap="inferno", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
    axes[1].set_xlim(-0.5, rgb.shape[1] - 0.5)
    axes[1].set_ylim(rgb.shape[0] - 0.5, -0.5)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02, label="K")
    axes[1].set_title(f"thermal ({t.gsd_m:g} m grid, {t.footprint_m:g} m footprint)")
    axes[2].imshow(rgb.mean(axis=2), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[2].set_title("truth")
    for r in records:
        geom = r["local"]
        for poly in getattr(geom, "geoms", [geom]):
            xy = shapely.get_coordinates(poly.exterior) / step - 0.5
            colour = CLASS_COLOURS.get(r["class"], "white")
            for ax in (axes[1], axes[2]) if r["class"] == "heat_signature" else (axes[2],):
                ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=0.9)
            if r["class"] == "lookalike":
                c = poly.centroid
                axes[2].text(c.x / step, c.y / step, r["kind"], color=colour, fontsize=7, ha="center")
    axes[2].set_xlim(-0.5, rgb.shape[1] - 0.5)
    axes[2].set_ylim(rgb.shape[0] - 0.5, -0.5)
    handles = [Line2D([0], [0], color=c, lw=2, label=n) for n, c in CLASS_COLOURS.items()]
    axes[2].legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    w = plan.when
    fig.suptitle(f"{plan.scene_id}  {plan.profile.name}  {plan.region}  {w.acquired:%Y-%m-%d %H:%M}Z  "
                 f"{w.season}{' snow' if plan.snow else ''}  sun {w.sun_elevation_deg:.0f}° el "
                 f"{w.sun_azimuth_deg:.0f}° az  air {plan.air_k:.0f} K", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
