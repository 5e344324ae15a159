"""Peak memory of a full scan against the number of windows it plans: flat, or growing per window?

Two series, every output written (sites, tiles.gpkg, heatmap), each scan in its own process (peak RSS =
that process's VmHWM), runs interleaved, medians of ``--runs``:

- **area**: the model's own stride (32 m) over mosaics of growing size at the model grid (0.5 m; a generated
  drone scene averaged to 0.5 m and repeated block by block), sized to plan about 10,000, 36,000 and
  100,000 windows: what a province-wide mosaic does;
- **stride**: one 3.3 km mosaic at finer strides planning the same counts: windows without more area, so
  only per-window costs grow (and far more windows are positive around each farm).

Usage: python bench/bench_memory.py [--runs 3] [--series area,stride]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, run_child  # noqa: E402
from scenes import ROOT, mosaic, scene_files  # noqa: E402

TARGETS = (10_000, 36_000, 100_000)
MODEL_GSD_M, TILE_PX, STRIDE_PX = 0.5, 128, 64
OPTICAL_GSD_M = 0.2
STRIDE_SCENE_PX = 16384


def side_for(target: int) -> int:
    """Model-grid pixels per side of a square scene planning ``target`` windows at the default stride."""
    return TILE_PX + (round(math.sqrt(target)) - 1) * STRIDE_PX


def stride_for(target: int, size_px: int) -> float:
    """Stride (m) that plans about ``target`` windows over a square 0.2 m scene of ``size_px`` pixels."""
    grid = math.floor(size_px * OPTICAL_GSD_M / MODEL_GSD_M)
    stride_px = max(1, round((grid - TILE_PX) / max(math.sqrt(target) - 1, 1)))
    return stride_px * MODEL_GSD_M


def model_grid_scene(side: int) -> tuple[Path, Path]:
    """(optical, thermal) of a square scene of ``side`` pixels at 0.5 m: the 4096 px drone scene averaged to
    0.5 m, then repeated block by block (bench/scenes.py mosaic); made once and cached."""
    base_opt, base_th = scene_files(4096)
    folder = ROOT / f"grid05-{side}"
    optical, thermal = folder / "optical.tif", folder / "thermal.tif"
    if optical.is_file() and thermal.is_file():
        return optical, thermal
    folder.mkdir(parents=True, exist_ok=True)
    base05 = ROOT / "grid05-base.tif"
    if not base05.is_file():
        with rasterio.open(base_opt) as src:
            n = int(src.width * OPTICAL_GSD_M / MODEL_GSD_M)
            data = src.read(out_shape=(src.count, n, n), resampling=Resampling.average)
            profile = {**src.profile, "width": n, "height": n,
                       "transform": src.transform * src.transform.scale(src.width / n, src.height / n)}
            with rasterio.open(base05, "w", **profile) as dst:
                dst.write(data.astype(np.uint8))
                dst.descriptions = src.descriptions
                dst.update_tags(**src.tags())
    mosaic(base05, optical, side)
    mosaic(base_th, thermal, side, optical_base=base05)
    return optical, thermal


def measure(optical: Path, thermal: Path, stride_m: float | None) -> dict:
    args = ["bench/child.py", "scan", "--optical", str(optical), "--thermal", str(thermal), "--all-outputs"]
    return run_child(args + (["--stride-m", str(stride_m)] if stride_m else []))


def table(title: str, rows: dict[int, list[dict]], extra: dict[int, str]) -> list[str]:
    lines = [f"**{title}**", "", "| windows planned | scene / stride | scan (s) | peak RSS (MB) | vs the smallest |",
             "|---:|---|---:|---:|---:|"]
    first = None
    for target, runs in rows.items():
        rss = median([r["peak_rss_mb"] for r in runs])
        first = first or rss
        lines.append(f"| {runs[0]['n_tiles']:,} | {extra[target]} | {median([r['seconds'] for r in runs]):.1f} | "
                     f"{rss:.0f} | x{rss / first:.2f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--series", default="area,stride")
    args = ap.parse_args(argv)
    series = args.series.split(",")
    area = {t: model_grid_scene(side_for(t)) for t in TARGETS} if "area" in series else {}
    big = scene_files(STRIDE_SCENE_PX) if "stride" in series else None
    rows_area: dict[int, list[dict]] = {t: [] for t in area}
    rows_stride: dict[int, list[dict]] = {t: [] for t in TARGETS} if big else {}
    for _ in range(args.runs):
        for target in TARGETS:
            if area:
                rows_area[target].append(measure(*area[target], None))
            if big:
                rows_stride[target].append(measure(*big, stride_for(target, STRIDE_SCENE_PX)))
    out = []
    if area:
        out += table("Area grows, model stride (32 m)", rows_area,
                     {t: f"{side_for(t) * MODEL_GSD_M / 1000:.1f} km, 32 m" for t in TARGETS})
    if big:
        out += table("Same 3.3 km mosaic, finer strides", rows_stride,
                     {t: f"3.3 km, {stride_for(t, STRIDE_SCENE_PX):g} m" for t in TARGETS})
    sys.stdout.write("\n".join(out) + f"(medians of {args.runs} runs; every output written)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
