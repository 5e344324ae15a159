"""``minewatch demo``: the main job on an embedded default, from a fresh clone, in about a minute.

Generates one seeded drone scene with thermal (never used in training), scans it with the committed
model, and evaluates the candidate sites against the scene's ground truth.
"""

from __future__ import annotations

import logging
from pathlib import Path

from minewatch.infer.evaluate import evaluate_files
from minewatch.infer.scan import ScanRequest, run_scan

log = logging.getLogger(__name__)

DEMO_SIZE_PX = 3072
"""Optical pixels of the demo scene: 614 m square at 0.2 m, 100 tiles of 64 m."""


def run_demo(out: Path, *, seed: int = 2026, model: Path | None = None, size: int = DEMO_SIZE_PX) -> str:
    """Run the whole journey into ``out`` and return a short summary for the terminal."""
    from minewatch.datasets.synth import generate_scenes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("1/3 generating a sample drone scene (seed %d) ...", seed)
    scene = generate_scenes(out / "scene", seed=seed, count=1, size=size, preview=True, overwrite=True)[0]
    log.info("2/3 scanning it with the committed model ...")
    result = run_scan(ScanRequest(
        raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
        out=out / "sites.geojson", tiles_out=out / "tiles.gpkg", heatmap=out / "heatmap.tif",
        quicklook=out / "quicklook.png", overwrite=True,  # the demo's own folder: a rerun replaces it
    ))
    log.info("3/3 evaluating against the scene's ground truth ...")
    report = evaluate_files(out / "sites.geojson", scene / "truth.geojson", tiles=out / "tiles.gpkg",
                            out=out / "evaluation.json", plot=out / "evaluation.png")
    return "\n".join([
        "minewatch demo",
        result.summary(),
        "",
        report.table(),
        "",
        f"Scene:      {scene}  (optical.tif, thermal.tif, truth.geojson, preview.png)",
        f"Results:    {out / 'sites.geojson'}  {out / 'quicklook.png'}  {out / 'heatmap.tif'}",
        f"Evaluation: {out / 'evaluation.json'}  {out / 'evaluation.png'}",
        "Open in QGIS: Layer > Add Layer > Add Vector Layer... > sites.geojson (add scene/optical.tif below it);",
        f"  or from a shell: qgis {scene / 'optical.tif'} {out / 'sites.geojson'}",
    ])
