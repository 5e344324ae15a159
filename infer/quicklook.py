"""A quicklook PNG: the scene thumbnail with candidate sites outlined and numbered by rank.

Sites a dense model outlined on their objects (``outline = "objects"``) are drawn solid and labelled with
their containers and power (``3 · 12 TEU · 4.7 MW``); sites outlined by their windows are drawn dashed.

Read from the raster's overviews (never the full-resolution scene), drawn on a bare Agg figure (no
pyplot, so a notebook's backend and open figures are left alone) so it works on a headless server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import matplotlib.patheffects as pe
import numpy as np
import pandas as pd
import rasterio
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from minewatch.atomic import atomic_path, check_writable
from minewatch.classes import CLASSES
from minewatch.errors import UserError

log = logging.getLogger(__name__)

# Bright, mutually distinct colours that stay visible on vegetation, soil and roofs.
CLASS_COLOURS: dict[str, str] = {
    "container_farm": "#ffb000",
    "cooling_array": "#00d5ff",
    "heat_signature": "#ff2d55",
}
STRETCH_PERCENTILES = (2.0, 98.0)
MAX_LABELS = 60  # rank labels beyond this would bury the picture
_HALO = [pe.withStroke(linewidth=3.5, foreground="black", alpha=0.75)]


def write_quicklook(
    path: str | Path,
    optical_path: str | Path,
    sites: gpd.GeoDataFrame,
    *,
    title: str,
    max_px: int = 1600,
    run: Mapping[str, str] | None = None,
) -> Path:
    """Draw ``sites`` over a stretched thumbnail of ``optical_path`` and save a PNG at ``path``.

    The thumbnail's longest side is at most ``max_px`` pixels. Outlines are coloured by each site's
    main class (:func:`main_class`) and labelled with the rank.
    """
    target = check_writable(path)
    rgb, extent, crs = read_thumbnail(optical_path, max_px)
    if sites is not None and not sites.empty:
        if sites.crs is None:
            raise ValueError("sites have no CRS")
        sites = sites.to_crs(crs)

    height, width = rgb.shape[:2]
    dpi = 100
    fig_w = max(width / dpi, 6.0) + 0.4
    fig_h = max(height / dpi, 6.0 * height / max(width, 1)) + 1.0
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#3a3a3a")  # nodata shows as dark grey, not as black imagery
    ax.imshow(rgb, extent=extent, interpolation="antialiased", zorder=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    n_sites = 0 if sites is None else len(sites)
    if n_sites:
        _draw_sites(ax, sites)
    _legend(ax)
    if crs.is_projected:
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, extent, crs.linear_units_factor[1] if crs.linear_units_factor else 1.0)
    else:
        ax.set_xlabel("longitude (degrees)")
        ax.set_ylabel("latitude (degrees)")
        ax.tick_params(labelsize=8)
    subtitle = f"{n_sites} candidate site{'s' if n_sites != 1 else ''}" if n_sites else "no candidate sites"
    ax.set_title(f"{title}\n{subtitle}", fontsize=14, loc="left")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi,
                    metadata={"Software": "minewatch", **{f"minewatch:{k}": str(v) for k, v in (run or {}).items()}})
    log.debug("wrote quicklook %s", target)
    return target


def read_thumbnail(
    optical_path: str | Path, max_px: int
) -> tuple[np.ndarray, tuple[float, float, float, float], rasterio.crs.CRS]:
    """RGBA float thumbnail (alpha 0 = nodata), its extent (left, right, bottom, top) and CRS.

    Uses bands named red/green/blue when the raster names them, else the first three (or the first as
    grey); each band is stretched between its 2nd and 98th percentiles of valid pixels.
    """
    try:
        src = rasterio.open(optical_path)
    except (RasterioIOError, OSError) as exc:
        raise UserError(f"cannot read the optical raster ({exc})", path=optical_path,
                        fix="give a GeoTIFF readable by GDAL") from exc
    with src:
        if src.crs is None:
            raise UserError("the optical raster has no CRS", path=optical_path,
                            fix="georeference it (e.g. gdal_translate -a_srs)")
        indexes = _rgb_indexes(src)
        scale = max(src.width, src.height) / max_px
        out_w = max(1, round(src.width / max(scale, 1.0)))
        out_h = max(1, round(src.height / max(scale, 1.0)))
        data = src.read(indexes, out_shape=(len(indexes), out_h, out_w), masked=True,
                        resampling=Resampling.average if scale > 1 else Resampling.nearest)
        b = src.bounds
        extent = (b.left, b.right, b.bottom, b.top)
        crs = src.crs
    data = np.ma.masked_invalid(data.astype(np.float64))
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    bands = [_stretch(band.filled(np.nan), valid) for band in data]
    if len(bands) == 1:
        bands = bands * 3
    rgba = np.dstack([*bands, valid.astype(np.float64)])
    return np.nan_to_num(rgba, nan=0.0), extent, crs


def _rgb_indexes(src: rasterio.DatasetReader) -> list[int]:
    names = [(d or "").lower() for d in src.descriptions]
    if all(n in names for n in ("red", "green", "blue")):
        return [names.index(n) + 1 for n in ("red", "green", "blue")]
    return [1, 2, 3] if src.count >= 3 else [1]


def _stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    values = band[valid & np.isfinite(band)]
    if values.size == 0:
        return np.zeros_like(band)
    lo, hi = np.percentile(values, STRETCH_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((band - lo) / (hi - lo), 0.0, 1.0)


def main_class(site: dict) -> str:
    """The first of the site's classes in CLASSES order (containers, then cooling, then heat): what an
    inspector walks to. Colouring by the highest probability hid container farms behind their heat, which
    scores higher wherever a farm runs."""
    listed = [c for c in str(site.get("classes") or "").split(",") if c in CLASSES]
    return listed[0] if listed else CLASSES[0]


def site_label(site: Mapping) -> str:
    """The rank, and for a site outlined on its objects its containers and power when known."""
    parts = [str(int(site["rank"]))]
    if site.get("outline") == "objects":
        teu = site.get("n_containers")
        if teu is not None and not pd.isna(teu) and int(teu) > 0:
            parts.append(f"{int(teu)} TEU")
            mw = site.get("est_power_mw")
            if mw is not None and not pd.isna(mw):
                parts.append(f"{float(mw):.1f} MW")
    return " · ".join(parts)


def _draw_sites(ax: Axes, sites: gpd.GeoDataFrame) -> None:
    order = sites.sort_values("rank", ascending=False) if "rank" in sites else sites.iloc[::-1]
    for _, site in order.iterrows():
        colour = CLASS_COLOURS.get(main_class(site.to_dict()), "white")
        style = (0, (4, 2)) if site.get("outline") == "tiles" else "-"  # windows dashed; objects, warm areas solid
        for poly in shapely.get_parts(site.geometry):
            if not isinstance(poly, shapely.Polygon):
                continue
            for ring in (poly.exterior, *poly.interiors):
                x, y = ring.xy
                ax.plot(x, y, color=colour, linewidth=2.0, linestyle=style, path_effects=_HALO, zorder=3,
                        solid_joinstyle="miter")
        rank = site.get("rank")
        if rank is not None and int(rank) <= MAX_LABELS:
            minx, _, _, maxy = site.geometry.bounds
            ax.annotate(
                site_label(site), (minx, maxy), xytext=(4, -4), textcoords="offset points",
                ha="left", va="top", fontsize=13, fontweight="bold", color="white",
                path_effects=_HALO, zorder=4, annotation_clip=True,
            )


def _legend(ax: Axes) -> None:
    handles = [Line2D([], [], color=CLASS_COLOURS[c], lw=3, label=c.replace("_", " ")) for c in CLASSES]
    handles += [Line2D([], [], color="white", lw=2, label="outline: objects"),
                Line2D([], [], color="white", lw=2, linestyle=(0, (4, 2)), label="outline: windows")]
    legend = ax.legend(handles=handles, title="main evidence", loc="lower right", fontsize=11,
                       title_fontsize=11, framealpha=0.85)
    legend.set_zorder(5)


def nice_length(span: float) -> float:
    """A round scale-bar length (1, 2 or 5 times a power of ten) near a fifth of ``span``."""
    target = span / 5
    if target <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def _scale_bar(ax: Axes, extent: tuple[float, float, float, float], metres_per_unit: float) -> None:
    left, right, bottom, top = extent
    width_m = (right - left) * metres_per_unit
    length_m = nice_length(width_m)
    length = length_m / metres_per_unit
    x = left + 0.04 * (right - left)
    y = bottom + 0.04 * (top - bottom)
    h = 0.012 * (top - bottom)
    ax.add_patch(Rectangle((x, y), length, h, facecolor="white", edgecolor="black", lw=1, zorder=5))
    ax.add_patch(Rectangle((x, y), length / 2, h, facecolor="black", edgecolor="black", lw=1, zorder=5))
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(x + length / 2, y + 1.8 * h, label, ha="center", va="bottom", fontsize=12, color="white",
            fontweight="bold", path_effects=_HALO, zorder=5)
