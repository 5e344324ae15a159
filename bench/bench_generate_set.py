"""Generate a training set of scenes in one process and in several, side by side: what ``make model``'s
first step costs from nothing.

Usage: python bench/bench_generate_set.py [--count 24] [--processes 2] [--runs 3] [--size N]
Prints the median wall time of each and their ratio (medians of ``--runs``, alternating). Needs torch (it
times the training data path, ``minewatch.train.dataset.ensure_generated``). Figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import seconds_of

from minewatch.train.config import GeneratedScenes
from minewatch.train.dataset import ensure_generated


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=24, help="scenes per set")
    ap.add_argument("--processes", type=int, default=2, help="worker processes of the parallel run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=None, help="scene side in pixels (default: the recipe's 2048)")
    args = ap.parse_args(argv)
    if args.processes < 2:
        ap.error("--processes must be 2 or more (it is compared with one process)")
    spec = GeneratedScenes(seed=1000, count=args.count, size=args.size)
    times: dict[int, list[float]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for procs in times:
                times[procs].append(seconds_of(ensure_generated, spec, Path(tmp) / f"run{run}-p{procs}", "drone",
                                               processes=procs))
    one, par = (statistics.median(times[p]) for p in times)
    sys.stdout.write(
        f"{args.count} scenes: 1 process {one:.1f} s, {args.processes} processes {par:.1f} s, x{one / par:.2f} "
        f"(medians of {args.runs}: {times})\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
