"""The scan's site rule, measured on validation scenes: how many candidate sites are true and false when a site
may be one positive window alone (``--min-windows 1``) and when it needs two, or one on the raster's edge (the
default at the models' stride, infer/sites.py).

The rule was chosen on these scenes, which are the training config's validation sets (never the model card's
held-out scenes or orthophotos): seeds 5000-5019 of the default recipe and 6000-6019 of the real-background
recipe, scanned with their thermal raster and optical-only.

Usage: python bench/site_rule.py [--model models/minewatch-drone.onnx] [--work /tmp/site-rule]
Prints a Markdown table for BENCHMARKS.md ("Site rule").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = (("default", 5000, 20), ("real", 6000, 20))
"""(recipe, first seed, count): the validation sets of configs/train/default.yaml."""


def scan_set(model: Path, scenes: list[Path], work: Path, *, thermal: bool, min_windows: int) -> dict[str, int]:
    """Scan every scene and total the site-level figures against its truth."""
    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.vectors import read_vector
    from minewatch.infer.evaluate import evaluate_sites
    from minewatch.infer.scan import ScanRequest, run_scan

    total = {"truth": 0, "found": 0, "true": 0, "false": 0}
    for scene in scenes:
        out = work / f"{scene.parent.name}-{scene.name}-{'t' if thermal else 'o'}-{min_windows}" / "sites.geojson"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif" if thermal else None,
                             model=model, out=out, overwrite=True, min_windows=min_windows))
        report = evaluate_sites(read_vector(out, role="sites"), read_truth(scene / "truth.geojson"))
        total["truth"] += report.overall.n_truth
        total["found"] += report.overall.found
        total["true"] += report.overall.true_positives
        total["false"] += report.overall.n_candidates - report.overall.true_positives
    return total


def main(argv: list[str] | None = None) -> int:
    from minewatch.datasets.synth import generate_scenes
    from minewatch.progress import setup_logging

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-drone.onnx")
    ap.add_argument("--work", type=Path, default=None, help="Scenes and scans (default: a temporary folder).")
    args = ap.parse_args(argv)
    setup_logging(0, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = []
        for recipe, seed, count in VALIDATION:
            folder = work / f"{recipe}-{seed}"
            scenes = [folder / f"scene_{s:06d}" for s in range(seed, seed + count)]
            if not all((s / "scene.json").is_file() for s in scenes):
                scenes = generate_scenes(folder, seed=seed, count=count, recipe=recipe, overwrite=True)
            for thermal in (True, False):
                for mw in (1, 2):
                    t = scan_set(args.model, scenes, work / "scans", thermal=thermal, min_windows=mw)
                    rows.append((f"{recipe} {seed}-{seed + count - 1}", "optical + thermal" if thermal else
                                 "optical only", "1 (lone windows kept)" if mw == 1 else "2, or 1 on the edge",
                                 t["truth"], t["found"], t["true"], t["false"]))
        sys.path.insert(0, str(ROOT / "bench"))
        from run_all import md_table

        lines = md_table("| validation scenes | bands | windows a site needs | truth sites | found | true sites | "
                         "false sites |", "|---|---|---|---:|---:|---:|---:|", rows)
        sys.stdout.write("\n".join(lines) + f"\n(model {args.model.name})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
