"""Benchmark scenes: a generated drone scene, or a bigger one mosaicked block by block from it.

Scenes up to ``BASE_SIZE`` pixels come straight from :func:`minewatch.datasets.synth.generate_scenes`.
Bigger ones repeat a generated base scene: every 256 x 256 block of the output (optical 0.2 m, thermal
0.8 m) is cut from the base with modular indices and written with a windowed write, so no scene-sized
array is ever held. Same CRS, contiguous geotransform, tiled 256, DEFLATE, internal overviews, like the
generator's files.

Usage: python bench/scenes.py SIZE [--root .bench/scenes]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from minewatch.datasets.synth import generate_scenes
from minewatch.datasets.synth.writer import overview_factors

BASE_SIZE = 4096
BASE_SEED = 2024
BLOCK = 256
ROOT = Path(__file__).resolve().parents[1] / ".bench" / "scenes"


def scene_files(size: int, root: Path = ROOT) -> tuple[Path, Path]:
    """(optical.tif, thermal.tif) of a ``size`` x ``size`` drone scene, made once and cached."""
    folder = root / f"drone-{size}"
    optical, thermal = folder / "optical.tif", folder / "thermal.tif"
    stamp = folder / "done.json"
    if stamp.is_file() and optical.is_file() and thermal.is_file():
        return optical, thermal
    shutil.rmtree(folder, ignore_errors=True)
    if size <= BASE_SIZE:
        made = generate_scenes(root / f".gen-{size}", seed=BASE_SEED, size=size)[0]
        folder.mkdir(parents=True)
        for name in ("optical.tif", "thermal.tif", "truth.geojson", "scene.json"):
            shutil.move(made / name, folder / name)
        shutil.rmtree(root / f".gen-{size}", ignore_errors=True)
    else:
        base_opt, base_th = scene_files(BASE_SIZE, root)
        folder.mkdir(parents=True)
        mosaic(base_opt, optical, size)
        mosaic(base_th, thermal, size, optical_base=base_opt)
    stamp.write_text(json.dumps({"size": size, "base_seed": BASE_SEED}))
    return optical, thermal


def mosaic(base: Path, out: Path, size: int, optical_base: Path | None = None) -> None:
    """Repeat ``base`` to cover ``size`` optical pixels square, block by block, then build overviews.

    ``optical_base``: for a thermal raster, the optical base whose footprint sets the output extent;
    the thermal grid keeps its own GSD and its sub-pixel origin offset. Files are written like the
    generator's (tiled 256, DEFLATE with predictor, internal overviews with the base's resampling).
    """
    with rasterio.open(base) as src:
        data = src.read()  # the base is small (<= 4096^2 x 3 bytes)
        profile = src.profile
        tags = src.tags()
        descriptions = src.descriptions
        resampling = Resampling[src.tags(ns="rio_overview").get("resampling", "average")]
        ratio, period = 1.0, src.width
        if optical_base is not None:
            with rasterio.open(optical_base) as opt:
                ratio = opt.res[0] / src.res[0]
                period = round(opt.width * ratio)
    n = math.ceil(size * ratio) + (1 if optical_base is not None else 0)
    is_float = profile["dtype"].startswith("float")
    profile.update(width=n, height=n, tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="deflate",
                   predictor=3 if is_float else 2, BIGTIFF="IF_SAFER")
    if profile["count"] >= 3:
        profile["photometric"] = "RGB"
    tags["MINEWATCH_SCENE_ID"] = f"bench-{size}"
    env = {"COMPRESS_OVERVIEW": "DEFLATE", "PREDICTOR_OVERVIEW": "3" if is_float else "2",
           "GDAL_TIFF_OVR_BLOCKSIZE": str(BLOCK), "GDAL_NUM_THREADS": "ALL_CPUS"}
    with rasterio.Env(**env), rasterio.open(out, "w", **profile) as dst:
        dst.update_tags(**tags)
        for b, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(b, d)
        for r0 in range(0, n, BLOCK):
            rows = np.arange(r0, min(n, r0 + BLOCK)) % period
            for c0 in range(0, n, BLOCK):
                cols = np.arange(c0, min(n, c0 + BLOCK)) % period
                dst.write(data[:, rows[:, None], cols[None, :]], window=Window(c0, r0, len(cols), len(rows)))
        dst.build_overviews(overview_factors(n, n), resampling)
        dst.update_tags(ns="rio_overview", resampling=resampling.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("size", type=int)
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    optical, thermal = scene_files(args.size, args.root)
    sys.stdout.write(f"{optical}\n{thermal}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
