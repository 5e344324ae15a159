"""Time one 4096 x 4096 drone scene (optical 0.2 m + thermal 0.8 m + truth), median of 3 runs.

Usage: python bench/bench_synth.py [--size 4096] [--runs 3] [--profile drone]
Prints the median wall time and the scene's peak resident memory. Figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import peak_rss_mb, seconds_of

from minewatch.datasets.synth import generate_scenes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", default="drone")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times = [seconds_of(generate_scenes, Path(tmp) / f"run{i}", seed=args.seed, profile=args.profile,
                            size=args.size) for i in range(args.runs)]
    runs = ", ".join(f"{t:.2f}" for t in times)
    sys.stdout.write(f"synth {args.profile} {args.size}x{args.size}: median {statistics.median(times):.2f} s over "
                     f"{args.runs} runs ({runs}); peak RSS {peak_rss_mb():.0f} MB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
