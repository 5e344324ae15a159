"""The dense head's site rule, measured on validation scenes: how many candidate sites are true and false, and
how well they sit on their objects, when a group of objects smaller than ``min_site_m2`` may be a site of its
own (0) and when it joins the nearest larger group of its block (infer/objects.py, ``OutlineRules``).

The rule was chosen on these scenes, the dense training config's validation sets (never the model card's
held-out scenes or orthophotos): seeds 5000-5019 of the default recipe and 6000-6019 of the real-background
recipe, scanned with their thermal raster. They are read from the scene cache of ``make model-dense``'s first
stage (``runs/dense-head/data``; any run folder's ``data`` with ``--data``).

Usage: python bench/object_rule.py [--model runs/dense/minewatch-drone-dense.onnx] [--data runs/dense-head/data]
       [--min-site 0 60 120]
Prints a Markdown table for BENCHMARKS.md ("Dense head").
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = (("default", 5000, 20), ("real", 6000, 20))


def find_scene(data: Path, seed: int) -> Path:
    hits = sorted(p for p in data.glob(f"*/scene_{seed:06d}") if (p / "truth.geojson").is_file())
    if not hits:
        raise SystemExit(f"{data}: no scene_{seed:06d}; run 'make model-dense' first")
    return hits[0]


def measure(model: Path, scenes: list[Path], work: Path) -> dict:
    """Scan every scene with its thermal raster; site-level and object figures against its truth."""
    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.vectors import read_vector
    from minewatch.infer.evaluate import evaluate_sites
    from minewatch.infer.object_eval import summarise
    from minewatch.infer.scan import ScanRequest, run_scan

    total = {"truth": 0, "found": 0, "true": 0, "false": 0}
    rows: list[dict] = []
    for scene in scenes:
        out = work / scene.name / "sites.geojson"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model, out=out,
                             overwrite=True))
        report = evaluate_sites(read_vector(out, role="sites"), read_truth(scene / "truth.geojson"))
        total["truth"] += report.overall.n_truth
        total["found"] += report.overall.found
        total["true"] += report.overall.true_positives
        total["false"] += report.overall.n_candidates - report.overall.true_positives
        rows += (report.objects or {}).get("sites", [])
    return {**total, **{k: summarise(rows)[k] for k in ("n_matched", "iou_median", "count_ok_share")}}


def main() -> None:
    import minewatch.infer.objects as objects
    from minewatch.progress import setup_logging

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "runs" / "dense" / "minewatch-drone-dense.onnx",
                    help="a model with a dense head (make model-dense)")
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "dense-head" / "data",
                    help="generated scene cache holding the validation scenes")
    ap.add_argument("--min-site", type=float, nargs="+", default=[0.0, 60.0, 120.0])
    args = ap.parse_args()
    setup_logging(0, quiet=True)
    rules = objects.OutlineRules
    print("| validation scenes | min_site_m2 | truth sites | found | true sites | false sites | matched | "
          "median IoU | farms counted within 20 % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="mw-object-rule-") as tmp:
        for min_site in args.min_site:
            objects.OutlineRules = functools.partial(rules, min_site_m2=min_site)  # what the scan builds
            try:
                for recipe, first, count in VALIDATION:
                    scenes = [find_scene(args.data, s) for s in range(first, first + count)]
                    m = measure(args.model, scenes, Path(tmp) / f"{min_site:g}-{recipe}")
                    print(f"| {recipe} {first}-{first + count - 1} | {min_site:g} | {m['truth']} | {m['found']} | "
                          f"{m['true']} | {m['false']} | {m['n_matched']} | {m['iou_median']:.3f} | "
                          f"{m['count_ok_share']:.0%} |", flush=True)
            finally:
                objects.OutlineRules = rules
    print(f"(model {args.model.name})")


if __name__ == "__main__":
    main()
