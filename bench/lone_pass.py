"""What applying the site rule across scenes costs a scan (multi-scene runs, infer/merge.py): each scene also
builds what its rule decided by that scene alone (the sites it drops, and which kept sites stand only by the
raster's edge; `infer.sites.split_by_rule`) and writes it to ``lone_sites.geojson``, and outlines the ground its
windows covered (`infer.scan._footprint`). One scene scanned with and without ``lone_out``, taking turns; the time
of the scan's sites step (`infer.scan._sites`) either way, and of the footprint; medians over repeats, per model.

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

    import minewatch.infer.scan as scan_module
    from bench.scenes import scene_files

    optical, thermal = scene_files(args.size)
    sites_step, footprint_step = scan_module._sites, scan_module._footprint
    spent: dict[object, list[float]] = {False: [], True: [], "footprint": []}

    def timed(*a, with_lone: bool = False, **kw):
        start = time.perf_counter()
        try:
            return sites_step(*a, with_lone=with_lone, **kw)
        finally:
            spent[with_lone].append(time.perf_counter() - start)

    def timed_footprint(*a, **kw):
        start = time.perf_counter()
        try:
            return footprint_step(*a, **kw)
        finally:
            spent["footprint"].append(time.perf_counter() - start)

    scan_module._sites, scan_module._footprint = timed, timed_footprint  # run_scan looks them up at call time
    print("| model | scan, multi-scene (s) | sites step, one scene (ms) | sites step, multi-scene (ms) | "
          "footprint (ms) | the two's share of the scan |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in args.models:
        for times in spent.values():
            times.clear()
        totals = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                for lone in (False, True):
                    out = Path(tmp) / f"{i}-{lone}"
                    out.mkdir()
                    start = time.perf_counter()
                    scan_module.run_scan(scan_module.ScanRequest(
                        raster=optical, thermal=thermal, out=out / "sites.geojson", model=model,
                        lone_out=out / "lone_sites.geojson" if lone else None))
                    if lone:
                        totals.append(time.perf_counter() - start)
        scan_s, one_s, many_s, foot_s = (statistics.median(v) for v in
                                         (totals, spent[False], spent[True], spent["footprint"]))
        print(f"| {model.name} | {scan_s:.2f} | {one_s * 1000:.0f} | {many_s * 1000:.0f} | {foot_s * 1000:.0f} | "
              f"{(many_s - one_s + foot_s) / scan_s:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
