"""What the satellite model's false windows hold, on its own validation scenes: a look at where its container
precision goes (#19: held-out container F1 0.796, precision 0.717), without looking at the held-out scenes.

Each window the model calls positive for a class whose truth says negative is named by the truth polygons it
touches: a sliver of the class itself below the label rule (with its area), the other classes of a mining
site with the site's kind (fans or heat beside a farm, a rooftop-cooling site without containers), look-alikes
by kind (truck and trailer rows, bus depots, solar rows), or nothing. Windows are labelled and kept exactly
as training and the model card do (:func:`minewatch.infer.tile_eval.known_windows`).

The scenes are the satellite training config's 0.5 m validation set (seeds 15000-15011, recipe satellite-05m,
1024 px), generated into a temporary folder unless ``--scenes`` names a folder that holds them.

Usage: python bench/satellite_false_windows.py [--model models/minewatch-satellite.onnx] [--scenes DIR]
Prints a Markdown table for BENCHMARKS.md ("Model quality").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = {"seed": 15000, "count": 12, "recipe": "satellite-05m", "size": 1024}
CLASSES = ("container_farm", "cooling_array")


def what_it_holds(window, truth, cls: str) -> str:
    """What a window falsely flagged for ``cls`` touches: 'nothing', a sliver of the class itself (below the
    label rule, with its area), the other classes of a mining site with the site's kind, look-alikes by kind."""
    import shapely

    near = truth[shapely.intersects(truth.geometry.values, window)]
    if near.empty:
        return "nothing"
    names = []
    own = near[near["class"] == cls]
    if len(own):
        area = float(shapely.area(shapely.intersection(own.geometry.values, window)).sum())
        names.append(f"a sliver of {cls} ({5 * round(area / 5):.0f} m2)")
    for (kind_class, kind), _ in near[near["class"] != cls].groupby(["class", "kind"], dropna=False):
        names.append(f"{kind_class} ({kind})" if isinstance(kind, str) and kind else kind_class)
    return ", ".join(sorted(set(names)))


def false_windows(model_path: Path, folders: list[Path]) -> tuple[Counter, Counter]:
    """Per (class, what the window holds): false windows; and per class: positives, false and missed."""
    from minewatch.datasets.labels import read_truth
    from minewatch.infer.predictor import OnnxPredictor
    from minewatch.infer.tile_eval import known_windows

    model = OnnxPredictor(model_path)
    meta = model.meta
    kinds: Counter = Counter()
    totals: Counter = Counter()
    for folder in folders:
        reads, tiles, targets, _ = known_windows(meta, folder)
        windows = np.asarray(tiles.geometry.values)
        truth = read_truth(folder / "truth.geojson").to_crs(tiles.crs)
        probs = np.concatenate([model.predict(np.stack([r.x for r in reads[i:i + 64]]))
                                for i in range(0, len(reads), 64)])
        for cls in CLASSES:
            k = meta.classes.index(cls)
            called = probs[:, k] >= meta.thresholds[cls]
            totals[(cls, "positives")] += int(targets[:, k].sum())
            totals[(cls, "false")] += int((called & (targets[:, k] == 0)).sum())
            totals[(cls, "missed")] += int((~called & (targets[:, k] == 1)).sum())
            for i in np.flatnonzero(called & (targets[:, k] == 0)):
                kinds[(cls, what_it_holds(windows[i], truth, cls))] += 1
    return kinds, totals


def main() -> None:
    from minewatch.progress import setup_logging

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-satellite.onnx")
    ap.add_argument("--scenes", type=Path, default=None,
                    help="a folder holding scene_015000..scene_015011 (default: generated here)")
    args = ap.parse_args()
    setup_logging(0, quiet=True)
    with tempfile.TemporaryDirectory(prefix="mw-sat-false-") as tmp:
        scenes = args.scenes or Path(tmp)
        seeds = range(VALIDATION["seed"], VALIDATION["seed"] + VALIDATION["count"])
        if args.scenes is None:
            subprocess.run([sys.executable, "-m", "minewatch", "synth", "--out", str(scenes), "-q",
                            "--seed", str(VALIDATION["seed"]), "--count", str(VALIDATION["count"]),
                            "--config", str(ROOT / "configs" / "synth" / f"{VALIDATION['recipe']}.yaml"),
                            "--size", str(VALIDATION["size"])], check=True)
        folders = [scenes / f"scene_{s:06d}" for s in seeds]
        missing = [f for f in folders if not (f / "truth.geojson").is_file()]
        if missing:
            raise SystemExit(f"{missing[0]}: no scene there; leave --scenes out to generate them")
        kinds, totals = false_windows(args.model, folders)
    for cls in CLASSES:
        print(f"\n{cls}: {totals[(cls, 'positives')]} positive windows, {totals[(cls, 'false')]} falsely flagged, "
              f"{totals[(cls, 'missed')]} missed\n")
        print("| a falsely flagged window holds | windows |\n|---|---:|")
        for (c, kind), n in kinds.most_common():
            if c == cls:
                print(f"| {kind} | {n} |")
    print(f"\n(model {args.model.name}; validation scenes {seeds.start}-{seeds.stop - 1} at 0.5 m)")


if __name__ == "__main__":
    main()
