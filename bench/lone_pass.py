"""What keeping the site rule's lone sites costs a scan (multi-scene runs write them for the merge,
infer/merge.py): one scene scanned with ``lone_out``, the time of building its kept sites and of building its
lone sites (`infer.sites.build_sites` with ``lone=True``), medians over repeats, per model.

Usage: python bench/lone_pass.py [--size 4096] [--repeats 3] MODEL.onnx [MODEL.onnx ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=4096, help="scene side in optical pixels (bench/scenes.py)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import minewatch.infer.sites as sites_module
    from bench.scenes import scene_files
    from minewatch.infer.scan import ScanRequest, run_scan

    optical, thermal = scene_files(args.size)
    build = sites_module.build_sites
    spent: dict[bool, list[float]] = {False: [], True: []}

    def timed(*a, lone: bool = False, **kw):
        start = time.perf_counter()
        try:
            return build(*a, lone=lone, **kw)
        finally:
            spent[lone].append(time.perf_counter() - start)

    sites_module.build_sites = timed  # infer/scan.py imports it at call time
    print("| model | scan (s) | kept sites (ms) | lone sites (ms) | lone pass share |")
    print("|---|---:|---:|---:|---:|")
    for model in args.models:
        spent[False].clear()
        spent[True].clear()
        totals = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                out = Path(tmp) / str(i)
                out.mkdir()
                start = time.perf_counter()
                run_scan(ScanRequest(raster=optical, thermal=thermal, out=out / "sites.geojson", model=model,
                                     lone_out=out / "lone_sites.geojson"))
                totals.append(time.perf_counter() - start)
        scan_s, kept_s, lone_s = (statistics.median(v) for v in (totals, spent[False], spent[True]))
        print(f"| {model.name} | {scan_s:.2f} | {kept_s * 1000:.0f} | {lone_s * 1000:.0f} | {lone_s / scan_s:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
