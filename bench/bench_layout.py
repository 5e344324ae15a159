"""Data module reading: windows per second and peak RSS on tiled vs striped GeoTIFFs, 2k to 20k px.

The same generated scenes (``bench/scenes.py``) are rewritten striped (untiled, row strips) and read through
the scan's reader (every window of the model grid, strip reads, thermal anomaly, features), each run in its
own process; medians of ``--repeats`` runs.

    python bench/bench_layout.py --sizes 2048,4096,10000,20000 --repeats 3
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import rasterio
from common import BENCH_DIR, DEFAULT_MODEL, median, run_child
from rasterio.shutil import copy as gdal_copy
from scenes import scene_files

log = logging.getLogger("bench")


def striped(path: Path, target: Path) -> Path:
    """An untiled (striped) DEFLATE copy of a raster, made once."""
    if not target.exists():
        with rasterio.open(path) as src:
            gdal_copy(src, target, driver="GTiff", tiled=False, compress="deflate")
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2048,4096,10000,20000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = ["| scene (px) | layout | windows | seconds | windows/s | peak RSS (MB) |",
            "|---:|---|---:|---:|---:|---:|"]
    for size in (int(s) for s in args.sizes.split(",")):
        optical, thermal = scene_files(size)
        out = BENCH_DIR / "striped" / f"drone-{size}"
        out.mkdir(parents=True, exist_ok=True)
        layouts = {"tiled 256": (optical, thermal),
                   "striped": (striped(optical, out / "optical.tif"), striped(thermal, out / "thermal.tif"))}
        for name, (optical, thermal) in layouts.items():
            runs = [run_child(["bench/child.py", "read", "--optical", str(optical), "--thermal", str(thermal),
                               "--model", str(DEFAULT_MODEL)]) for _ in range(args.repeats)]
            sec = median([r["seconds"] for r in runs])
            n = runs[0]["n_tiles"]
            rss = max(r["peak_rss_mb"] for r in runs)
            rows.append(f"| {size} | {name} | {n} | {sec:.2f} | {n / sec:,.0f} | {rss:,.0f} |")
            log.info(rows[-1])
    print("\n".join(rows))


if __name__ == "__main__":
    main()
