"""Would the satellite model score better at 0.5 m if its thresholds were calibrated on the 0.5 m validation
scenes alone? ``configs/train/satellite.yaml`` calibrates on all its validation scenes: 12 generated at 0.5 m
(seeds 15000-15011) and 8 generated sites on real backgrounds at their own pixel sizes (16000-16007).

Thresholds are chosen on validation scenes only (best F1 per class, as training does) and then scored once on
the card's held-out sets: 40 scenes at 0.5 m (17000-17039) and 20 at every pixel size of 0.3-1 m
(17100-17119). The scenes are read from a ``make model-satellite`` run folder (its ``data/`` and held-out
folders), so run this after it.

Usage: python bench/satellite_thresholds.py [--model models/minewatch-satellite.onnx] [--run runs/satellite]
Prints a Markdown table for BENCHMARKS.md ("Model quality").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VALIDATION_05M = (15000, 12)
VALIDATION_REAL = (16000, 8)
HELDOUT = {"40 held-out scenes at 0.5 m (17000-17039)": (17000, 40),
           "20 held-out scenes at 0.3-1 m (17100-17119)": (17100, 20)}


def find_scenes(run: Path, first: int, count: int) -> list[Path]:
    """The run's scene folders of seeds ``first``..``first + count - 1`` (generated data or held-out)."""
    folders = []
    for seed in range(first, first + count):
        hits = sorted(p for p in run.rglob(f"scene_{seed:06d}") if (p / "truth.geojson").is_file())
        if not hits:
            raise SystemExit(f"{run}: no scene_{seed:06d}; run 'make model-satellite' first")
        folders.append(hits[0])
    return folders


def scored(predictor, folders: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and targets of every known window of the scenes, as the card scores them."""
    from minewatch.infer.tile_eval import score_scene

    pairs = [score_scene(predictor, f) for f in folders]
    return np.concatenate([p for p, _, _ in pairs]), np.concatenate([t for _, t, _ in pairs])


def main() -> None:
    from minewatch.infer.predictor import OnnxPredictor
    from minewatch.metrics import best_f1_threshold, binary_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-satellite.onnx")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "satellite")
    args = ap.parse_args()
    model = OnnxPredictor(args.model)
    classes = list(model.meta.classes)
    val05 = scored(model, find_scenes(args.run, *VALIDATION_05M))
    thresholds = {
        "the model's (all 20 validation scenes)": {c: model.meta.thresholds[c] for c in classes},
        "0.5 m validation scenes alone (12)": {c: best_f1_threshold(val05[1][:, k], val05[0][:, k])[0]
                                               for k, c in enumerate(classes)},
    }
    held = {name: scored(model, find_scenes(args.run, *seeds)) for name, seeds in HELDOUT.items()}
    print("| thresholds calibrated on | " + " | ".join(f"threshold {c}" for c in classes) + " | "
          + " | ".join(f"F1 {name}" for name in held) + " |")
    print("|---|" + "---:|" * (len(classes) + len(held)))
    for label, thr in thresholds.items():
        f1s = [" / ".join(f"{binary_scores(t[:, k], p[:, k], thr[c])['f1']:.3f}" for k, c in enumerate(classes))
               for p, t in held.values()]
        print(f"| {label} | " + " | ".join(f"{thr[c]:.3f}" for c in classes) + " | " + " | ".join(f1s) + " |")
    print(f"(model {args.model.name}; F1 as {' / '.join(classes)})")


if __name__ == "__main__":
    main()
