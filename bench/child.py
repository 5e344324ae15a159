"""One measured minewatch configuration per process; prints one JSON line (figures + peak RSS) last.

Modes:
  scan     the product's full scan (``run_scan``: model load, scene open, streaming read, model, sites)
  ceiling  pure model throughput on pre-loaded batches of real tiles (the ceiling for a scan)
  floor    pure windowed reading of the scene files, block-aligned strips, no warp (the I/O floor)
  read     the data module's reading as the scan does it (strip reads, warp, thermal anomaly, features)

Usage: python bench/child.py MODE --optical O --thermal T [--model M] [--batch 32] [--tiles N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minewatch.progress import setup_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402


def scan(args: argparse.Namespace) -> dict:
    """Time ``run_scan`` on the scene, writing only the sites GeoJSON."""
    from minewatch.infer.scan import ScanRequest, run_scan

    with tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        extra = {"tiles_out": Path(tmp) / "tiles.gpkg", "heatmap": Path(tmp) / "heat.tif"} if args.all_outputs else {}
        req = ScanRequest(raster=args.optical, thermal=args.thermal, model=args.model,
                          out=Path(tmp) / "sites.geojson", batch=args.batch, stride_m=args.stride_m,
                          max_tiles=args.max_tiles, **extra)
        t0 = time.perf_counter()
        result = run_scan(req)
        seconds = time.perf_counter() - t0
        if args.save_tiles:
            result.tiles.drop(columns="geometry").to_csv(args.save_tiles, index=False)
    return {"seconds": seconds, "n_tiles": len(result.scores), "n_scanned": result.n_scanned,
            "n_sites": len(result.sites)}


def _real_tiles(args: argparse.Namespace, spec, n: int) -> np.ndarray:
    """Up to ``n`` real model inputs from the scene (read once, before any timing)."""
    from minewatch.datasets.scene import Scene
    from minewatch.datasets.tiling import plan_tiles
    from minewatch.infer.reader import read_tiles

    meta = args.meta
    with Scene.for_model(meta, args.optical, args.thermal) as sc:
        plan = plan_tiles(sc.grid, tile_m=meta.tile_m, stride_m=meta.stride_m, tile_px=meta.tile_px)
        xs = [r.x for r in read_tiles(sc, plan.tiles[:n], spec, stride_px=plan.stride_px, max_nodata=1.0, max_cloud=1.0)
              if r.x is not None]
    return np.stack(xs)


def ceiling(args: argparse.Namespace) -> dict:
    """Tiles per second of ``predictor.predict`` alone, on batches already in memory, on every core
    (a scan's onnxruntime session leaves one core to its reader thread)."""
    from minewatch.datasets.model_input import InputSpec
    from minewatch.infer.predictor import load_predictor

    os.environ.setdefault("MINEWATCH_THREADS", str(os.cpu_count() or 1))  # the ceiling uses every core
    predictor = load_predictor(args.model, "cpu")
    args.meta = predictor.meta
    spec = InputSpec.from_meta(predictor.meta)
    pool = _real_tiles(args, spec, 4 * args.batch)
    reps = -(-args.tiles // len(pool))
    data = np.concatenate([pool] * reps)[: args.tiles]
    batches = [np.ascontiguousarray(data[i : i + args.batch]) for i in range(0, len(data), args.batch)]
    predictor.predict(batches[0])  # warm-up: first call allocates and picks kernels
    t0 = time.perf_counter()
    for b in batches:
        predictor.predict(b)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "n_tiles": len(data), "tiles_per_s": len(data) / seconds}


def floor(args: argparse.Namespace) -> dict:
    """Read every pixel of optical and thermal once, in block-aligned full-width strips (decode only).

    ``--level overview``: read the optical overview GDAL resamples from for the model grid (the finest
    overview no coarser than the grid), as a direct decimated read does; thermal at full resolution.
    """
    import rasterio

    from minewatch.datasets.raster_io import configure_gdal

    configure_gdal()
    gsd = read_meta(args.model).gsd_m if args.model else 0.5
    t0 = time.perf_counter()
    pixels = level_px = 0
    for path in (args.optical, args.thermal):
        kwargs = {}
        if args.level == "overview" and path == args.optical:
            with rasterio.open(path) as src:
                usable = [i for i, f in enumerate(src.overviews(1)) if src.res[0] * f <= gsd + 1e-9]
                pixels = src.width * src.height
            if usable:
                kwargs["overview_level"] = usable[-1]
        with rasterio.open(path, **kwargs) as src:
            bh = src.block_shapes[0][0]
            for r0 in range(0, src.height, bh):
                src.read(window=rasterio.windows.Window(0, r0, src.width, min(bh, src.height - r0)))
            if path == args.optical:
                pixels = pixels or src.width * src.height
                level_px = src.width * src.height
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "optical_mpix": pixels / 1e6, "level_mpix": level_px / 1e6, "level": args.level}


def read_meta(model: Path):
    from minewatch.infer.model_file import read_model_meta

    return read_model_meta(model)


def read(args: argparse.Namespace) -> dict:
    """The scan's reader alone: every planned tile through strip reads and feature assembly."""
    from minewatch.datasets.model_input import InputSpec
    from minewatch.datasets.scene import Scene
    from minewatch.datasets.tiling import plan_tiles
    from minewatch.infer.reader import read_tiles

    meta = read_meta(args.model)
    spec = InputSpec.from_meta(meta)
    t0 = time.perf_counter()
    n = 0
    with Scene.for_model(meta, args.optical, args.thermal) as sc:
        plan = plan_tiles(sc.grid, tile_m=meta.tile_m, stride_m=args.stride_m or meta.stride_m, tile_px=meta.tile_px)
        for r in read_tiles(sc, plan.tiles, spec, stride_px=plan.stride_px, max_nodata=1.0, max_cloud=1.0):
            n += r.x is not None
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "n_tiles": n, "tiles_per_s": n / seconds}


PROFILE_PARTS = {
    "model": ("predictor.py", "predict"),
    "waiting for the reader thread": ("reader.py", "prefetch"),
    "journal fsync": ("~", "<built-in method posix.fsync>"),
    "outputs (sites, GeoJSON)": ("scan.py", "_write_outputs"),
    "scene open + thermal background": ("scene.py", "__init__"),
    "model load": ("predictor.py", "load_predictor"),
}


def profile(args: argparse.Namespace) -> dict:
    """A scan under cProfile: where the main thread's time goes (the reader runs on its own thread)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    result = scan(args)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    parts = {}
    for name, (file, func) in PROFILE_PARTS.items():
        parts[name] = sum(v[3] for (f, _, fn), v in stats.items() if fn == func and f.endswith(file))
    return result | {"parts": parts}


MODES = {"profile": profile, "scan": scan, "ceiling": ceiling, "floor": floor, "read": read}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--optical", type=Path, required=True)
    ap.add_argument("--thermal", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None, help=".onnx (onnxruntime) or .pt (torch)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tiles", type=int, default=640, help="ceiling: tiles to run")
    ap.add_argument("--stride-m", type=float, default=None)
    ap.add_argument("--level", choices=["native", "overview"], default="native", help="floor: which level")
    ap.add_argument("--save-tiles", type=Path, default=None, help="scan: also write tile scores (CSV)")
    ap.add_argument("--all-outputs", action="store_true", help="scan: also write tiles.gpkg and the heatmap")
    ap.add_argument("--max-tiles", type=int, default=1_000_000, help="scan: --max-tiles")
    args = ap.parse_args(argv)
    setup_logging(quiet=True)
    result = MODES[args.mode](args)
    result.update(mode=args.mode, model=str(args.model), batch=args.batch,
                  threads=os.environ.get("MINEWATCH_THREADS", ""), gdal_threads=os.environ.get("GDAL_NUM_THREADS"))
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
