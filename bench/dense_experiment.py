"""The dense head's small experiment (#18): the same short training run with and without the head, then both
models (and the committed one) on held-out generated scenes: tile F1 per class, site IoU, container count and
power errors.

    python bench/dense_experiment.py --out /tmp/dense-exp            # ~30 min on 2 contended cores
    python bench/dense_experiment.py --out /tmp/dense-exp --skip-train  # re-evaluate trained runs

Writes ``<out>/experiment.json`` and prints a markdown table. Training uses one torch thread: on a machine
whose cores other processes share, two OpenMP threads were up to 10x slower per step than one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("MINEWATCH_THREADS", "1")

VARIANTS = {
    "classifier": "",
    "dense": "  masks: [container, cooling, heat]\n",
}
CONFIG = """data:
  train_scenes: {{seed: 1000, count: {n_train}}}
  val_scenes: {{seed: 5000, count: {n_val}}}
  data_dir: {data}
  train_stride_m: 32
  samples_per_epoch: {samples}
  balance: 0.5
  confuser_m2: 20
  norm_tiles: 256
  cache_max_mb: 4000
  read_processes: 2
model:
  backbone: mobilenet_v3_small
  profile: drone
  tile_m: 64
  stride_m: 32
{masks}optim: {{epochs: {epochs}, batch_size: 32, lr: 0.002, warmup_epochs: 1, min_lr_ratio: 0.02, ema_decay: 0.995}}
loss: {{kind: bce, pos_weight: auto, heat_needs_thermal: true, dense_weight: {dense_weight}}}
augmentation: {{thermal_dropout_p: 0.3}}
early_stopping: {{patience: null}}
seed: 0
threads: 1
"""


def train(out: Path, args) -> dict[str, Path]:
    from minewatch.train.export import export_onnx
    from minewatch.train.loop import train_from_config

    models = {}
    for name, masks in VARIANTS.items():
        if name not in args.variants:
            continue
        run = out / name
        model = run / "model.onnx"
        if not model.is_file():
            run.mkdir(parents=True, exist_ok=True)
            cfg = run / "config.yaml"
            cfg.write_text(CONFIG.format(n_train=args.train, n_val=args.val, data=args.data or out / "data",
                                         samples=args.samples,
                                         masks=masks, epochs=args.epochs, dense_weight=args.dense_weight))
            t0 = time.perf_counter()
            best = train_from_config(cfg, out=run / "run", device="cpu")
            logging.info("%s trained in %.1f min", name, (time.perf_counter() - t0) / 60)
            export_onnx(best, model)
        models[name] = model
    return models


def heldout(out: Path, args) -> list[Path]:
    from minewatch.datasets.synth import generate_scenes

    folder = args.heldout_dir or out / "heldout"
    scenes = [folder / f"scene_{s:06d}" for s in range(7000, 7000 + args.heldout)]
    if not all((f / "scene.json").is_file() for f in scenes):
        scenes = generate_scenes(folder, seed=7000, count=args.heldout)
    return scenes


def evaluate(model: Path, scenes: list[Path], out: Path) -> dict:
    from minewatch.datasets.labels import read_truth
    from minewatch.infer.evaluate import evaluate_sites
    from minewatch.infer.object_eval import summarise
    from minewatch.infer.predictor import OnnxPredictor
    from minewatch.infer.scan import ScanRequest, run_scan
    from minewatch.infer.tile_eval import evaluate_tiles_by_scene

    tiles, _ = evaluate_tiles_by_scene(OnnxPredictor(model), scenes)
    rows, seconds = [], []
    for scene in scenes:
        target = out / scene.name
        target.mkdir(parents=True, exist_ok=True)
        result = run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                                      out=target / "sites.gpkg", overwrite=True))
        seconds.append(result.seconds)
        report = evaluate_sites(result.sites, read_truth(scene / "truth.geojson"))
        rows.extend(dict(r, scene=scene.name) for r in report.objects["sites"])
    summary = summarise(rows)
    return {"tiles": {c: {k: round(v, 4) for k, v in s.items() if k in ("f1", "precision", "recall", "ap")}
                      for c, s in tiles.items()},
            "objects": {k: v for k, v in summary.items() if k != "sites"}, "sites": rows,
            "scan_s_median": statistics.median(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=20, help="training scenes")
    ap.add_argument("--val", type=int, default=5, help="validation scenes")
    ap.add_argument("--heldout", type=int, default=10, help="held-out scenes (seeds 7000...)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--samples", type=int, default=2048, help="windows per epoch")
    ap.add_argument("--dense-weight", type=float, default=1.0)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--no-committed", action="store_true", help="do not evaluate the committed model")
    ap.add_argument("--data", type=Path, default=None, help="cache of generated scenes (default <out>/data)")
    ap.add_argument("--heldout-dir", type=Path, default=None, help="held-out scenes (default <out>/heldout)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = {n: out / n / "model.onnx" for n in args.variants} if args.skip_train else train(out, args)
    from minewatch.infer.predictor import default_model_path

    if not args.no_committed:
        models["committed"] = default_model_path()
    scenes = heldout(out, args)
    results = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        results[name] = evaluate(model, scenes, out / "scans" / name)
        logging.info("%s evaluated in %.1f min", name, (time.perf_counter() - t0) / 60)
    (out / "experiment.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                      "results": results}, indent=2, default=str))
    print("| model | F1 container | F1 cooling | F1 heat | median site IoU | farms counted within 20 % | "
          "median count error | median power error |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        t, o = r["tiles"], r["objects"]

        def f(v):
            return "n/a" if v is None else f"{v:.2f}"

        print(f"| {name} | {f(t['container_farm']['f1'])} | {f(t['cooling_array']['f1'])} | "
              f"{f(t['heat_signature']['f1'])} | {f(o['iou_median'])} ({o['n_matched']}/{o['n_truth_sites']}) | "
              f"{f(o['count_ok_share'])} of {o['farms']} | {f(o['count_rel_error_median'])} | "
              f"{f(o['power_rel_error_median'])} |")


if __name__ == "__main__":
    main()
