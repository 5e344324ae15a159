"""Peak memory of a full scan against the number of windows it plans: flat, or growing per window?

One drone mosaic (16,384 px at 0.2 m, 3.3 km square; bench/scenes.py) is scanned at three strides chosen
to plan about 10,000, 36,000 and 100,000 windows, writing every output (sites, tiles.gpkg, heatmap). Each
scan runs in its own process; its peak RSS is that process's VmHWM. Runs are interleaved, medians of
``--runs``.

Usage: python bench/bench_memory.py [--runs 3] [--size 16384]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, run_child  # noqa: E402
from scenes import scene_files  # noqa: E402

TARGETS = (10_000, 36_000, 100_000)
MODEL_GSD_M, TILE_PX = 0.5, 128
OPTICAL_GSD_M = 0.2


def stride_for(target: int, size_px: int) -> float:
    """Stride (m) that plans about ``target`` windows over a square scene of ``size_px`` optical pixels."""
    grid = math.floor(size_px * OPTICAL_GSD_M / MODEL_GSD_M)
    per_axis = math.sqrt(target)
    stride_px = max(1, round((grid - TILE_PX) / max(per_axis - 1, 1)))
    return stride_px * MODEL_GSD_M


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=16384)
    args = ap.parse_args(argv)
    optical, thermal = scene_files(args.size)
    rows: dict[int, list[dict]] = {t: [] for t in TARGETS}
    for _ in range(args.runs):
        for target in TARGETS:
            rows[target].append(run_child(["bench/child.py", "scan", "--optical", str(optical), "--thermal",
                                           str(thermal), "--stride-m", str(stride_for(target, args.size)),
                                           "--all-outputs"]))
    lines = ["| windows planned | stride (m) | scan (s) | peak RSS (MB) | vs the smallest |",
             "|---:|---:|---:|---:|---:|"]
    first = None
    for target in TARGETS:
        rss = median([r["peak_rss_mb"] for r in rows[target]])
        first = first or rss
        lines.append(f"| {rows[target][0]['n_tiles']:,} | {stride_for(target, args.size):g} | "
                     f"{median([r['seconds'] for r in rows[target]]):.1f} | {rss:.0f} | x{rss / first:.2f} |")
    sys.stdout.write("\n".join(lines) + f"\n(medians of {args.runs} runs; {args.size} px drone mosaic, every output)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
