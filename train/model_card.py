"""Write the model card of a trained, exported model: config, data recipe and seeds, validation and
held-out figures per class, training time and machine.

Held-out scenes use seeds that neither training nor validation saw, so their figures are the honest ones.
``minewatch card RUN MODEL`` runs it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
from pathlib import Path

from minewatch.atomic import atomic_path
from minewatch.errors import UserError
from minewatch.infer.predictor import OnnxPredictor
from minewatch.infer.tile_eval import evaluate_tiles_by_scene

log = logging.getLogger(__name__)

HELDOUT_SEED = 7000
HELDOUT_COUNT = 40
COLD_SEED, COLD_COUNT, COLD_RECIPE = 7100, 10, "winter"
"""A second held-out set from the winter recipe: the default draws too few snowy scenes to show that case."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _training_config(checkpoint: Path) -> str:
    """The validated training config stored in the checkpoint, as YAML."""
    import yaml

    from minewatch.train.checkpoint import load_checkpoint

    return yaml.safe_dump(load_checkpoint(checkpoint).get("config", {}), sort_keys=False)


def heldout_report(predictor: OnnxPredictor, folder: Path, seed: int, count: int,
                   recipe: str | None = None) -> tuple[dict, list[dict]]:
    """Tile figures per class over the held-out scenes, and each scene's misses and false alarms with the
    conditions its ``scene.json`` records (season, snow, haze, cloud)."""
    from minewatch.datasets.synth import generate_scenes

    scenes = [folder / f"scene_{s:06d}" for s in range(seed, seed + count)]
    if not all((f / "scene.json").is_file() for f in scenes):
        scenes = generate_scenes(folder, seed=seed, count=count, recipe=recipe)
    report, per_scene = evaluate_tiles_by_scene(predictor, scenes)
    for row, path in zip(per_scene, scenes, strict=True):
        info = json.loads((Path(path) / "scene.json").read_text()) if (Path(path) / "scene.json").is_file() else {}
        row["conditions"] = ", ".join(
            [str(info.get("season", "?"))] + (["snow"] if info.get("snow") else [])
            + ([f"haze {info['haze']:.2f}"] if info.get("haze", 0) >= 0.1 else [])
            + ([f"cloud {info['cloud_cover']:.0%}"] if info.get("cloud_cover", 0) >= 0.05 else []))
    return report, per_scene


def error_lines(per_scene: list[dict], classes: list[str]) -> list[str]:
    """Markdown table of the held-out errors by scene (scenes without errors left out)."""
    lines = ["| scene | conditions | " + " | ".join(f"{c} missed / false" for c in classes) + " |",
             "|---|---|" + "---|" * len(classes)]
    for row in per_scene:
        if any(row["missed"].values()) or any(row["false"].values()):
            cells = " | ".join(f"{row['missed'][c]} / {row['false'][c]}" for c in classes)
            lines.append(f"| {row['scene']} | {row.get('conditions', '')} | {cells} |")
    total = " | ".join(f"{sum(r['missed'][c] for r in per_scene)} / {sum(r['false'][c] for r in per_scene)}"
                       for c in classes)
    lines.append(f"| all {len(per_scene)} scenes | | {total} |")
    return lines


def heldout_objects(model: Path, scenes: list[Path], out: Path) -> dict:
    """Scan each held-out scene with ``model`` and score its sites' outlines, container counts and power
    against the truth (:mod:`minewatch.infer.object_eval`), over all scenes together."""
    from minewatch.datasets.labels import read_truth
    from minewatch.infer.evaluate import evaluate_sites
    from minewatch.infer.object_eval import summarise
    from minewatch.infer.scan import ScanRequest, run_scan

    rows = []
    for scene in scenes:
        target = out / Path(scene).name
        target.mkdir(parents=True, exist_ok=True)
        thermal = Path(scene) / "thermal.tif"
        result = run_scan(ScanRequest(raster=Path(scene) / "optical.tif", model=model, out=target / "sites.gpkg",
                                      thermal=thermal if thermal.is_file() else None, overwrite=True))
        report = evaluate_sites(result.sites, read_truth(Path(scene) / "truth.geojson"))
        rows.extend(dict(r, scene=Path(scene).name) for r in (report.objects or {}).get("sites", []))
    return summarise(rows)


def object_card_lines(o: dict, dense: bool) -> list[str]:
    """Markdown lines of :func:`heldout_objects`' figures."""
    def f(v, pct: bool = False) -> str:
        return "n/a" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")

    lines = [
        "| figure | value |", "|---|---|",
        f"| truth sites matched by a candidate | {o['n_matched']} / {o['n_truth_sites']} |",
        f"| median polygon IoU of matched sites | {f(o['iou_median'])} |",
        *[f"| median IoU, {kind} ({v['n']}) | {f(v['iou_median'])} |" for kind, v in o["iou_by_kind"].items()],
    ]
    if dense:
        lines += [
            f"| container farms counted within 20 % (TEU) | {f(o['count_ok_share'], True)} of {o['farms']} |",
            f"| median container-count error | {f(o['count_rel_error_median'], True)} |",
            f"| median power error, running farms | {f(o['power_rel_error_median'], True)} "
            f"({o['running_farms']} farms) |",
            f"| truth power inside the estimate's range | {f(o['power_in_range_share'], True)} |",
            f"| dormant farms called idle | {o['dormant_called_idle']} / {o['dormant_farms']} |",
        ]
    else:
        lines.append("| containers, power | no dense head: sites are outlined by their windows |")
    return lines


def figure_lines(report: dict[str, dict[str, float]]) -> list[str]:
    """Markdown table of per-class tile figures."""
    lines = ["| class | precision | recall | F1 | AP | positives / windows |", "|---|---|---|---|---|---|"]
    for name, s in report.items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['ap']:.3f} | "
                     f"{s['positives']} / {s['windows']} |")
    return lines


def write_card(run: Path, model: Path, *, seed: int | None = None, count: int | None = None) -> Path:
    """Write ``MODEL_CARD.md`` beside ``model`` from the run folder's metrics and fresh held-out figures."""
    seed = HELDOUT_SEED if seed is None else seed
    count = HELDOUT_COUNT if count is None else count
    for name in ("metrics.json", "log.csv", "best.pt"):
        if not (Path(run) / name).is_file():
            raise UserError(f"the run folder lacks {name}", path=run,
                            fix="give the --out folder of a finished 'minewatch train' run")
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "log.csv", newline="") as fh:
        epochs = list(csv.DictReader(fh))
    train_s = sum(float(e.get("train_s") or 0) for e in epochs)
    config = _training_config(run / "best.pt")
    predictor = OnnxPredictor(model)
    heldout, per_scene = heldout_report(predictor, run / "heldout", seed, count)
    cold, cold_scenes = heldout_report(predictor, run / f"heldout-{COLD_RECIPE}", COLD_SEED, COLD_COUNT, COLD_RECIPE)
    objects = heldout_objects(model, [run / "heldout" / f"scene_{s:06d}" for s in range(seed, seed + count)],
                              run / "heldout-scans")
    (run / "heldout.json").write_text(json.dumps({"classes": heldout, "scenes": per_scene, "objects": objects,
                                                  COLD_RECIPE: {"classes": cold, "scenes": cold_scenes}}, indent=2,
                                                 default=str))
    meta = predictor.meta
    lines = [
        f"# Model card: {model.name}",
        "",
        f"Tile classifier for crypto-mining sites in drone imagery: {meta.backbone} on {meta.tile_m:g} m windows "
        f"({meta.tile_px} px at {meta.gsd_m} m/px), channels {', '.join(meta.channels)}; multi-label over "
        f"{', '.join(meta.classes)}"
        + (f", with a dense head marking {', '.join(meta.masks)} per pixel at {meta.mask_gsd_m:g} m (site outlines, "
           "container counts, power)" if meta.masks else "")
        + f". Trained by minewatch {meta.model_version} from generated scenes only "
        "(randomly initialised, nothing downloaded).",
        "",
        f"- file: `{model.name}`, {model.stat().st_size / 1e6:.1f} MB, sha256 `{predictor.sha256}`",
        f"- training-config sha256: `{meta.config_sha256}`",
        f"- sensor profile: `{meta.profile}`; thermal as excess over a {meta.thermal.background_m:g} m robust "
        "background, optional (trained with thermal dropout)",
        "- thresholds (calibrated on validation): "
        + ", ".join(f"{k} {v:.3f}" for k, v in meta.thresholds.items()),
        "",
        "## Data",
        "",
        f"- training: {metrics.get('train_windows')} windows from generated scenes (see `data` below for seeds)",
        f"- validation: {metrics.get('val_windows')} windows from other generated scenes (threshold calibration "
        "and early stopping)",
        f"- held-out test: {count} generated scenes, seeds {seed}..{seed + count - 1}, never seen in training or "
        "validation; every window of the scan grid",
        "",
        "## Held-out figures (tile level, at the calibrated thresholds)",
        "",
        *figure_lines(heldout),
        "",
        "Windows missed and falsely flagged, by held-out scene:",
        "",
        *error_lines(per_scene, list(meta.classes)),
        "",
        "## Site outlines, containers and power (held-out scenes, full scans)",
        "",
        "Each held-out scene scanned as `minewatch scan` does it and scored with `minewatch evaluate`: polygon IoU "
        "of each matched truth site with its best candidate, containers in twenty-foot equivalents (TEU) and power "
        "against the generator's truth (see the README, \"Site outlines, containers and power\").",
        "",
        *object_card_lines(objects, dense=bool(meta.masks)),
        "",
        f"## Cold scenes: {COLD_COUNT} held-out scenes from the `{COLD_RECIPE}` recipe "
        f"(seeds {COLD_SEED}..{COLD_SEED + COLD_COUNT - 1})",
        "",
        "Winter in snowy regions, more dormant farms (`configs/synth/winter.yaml`); the default recipe draws "
        "snow for ~3 % of scenes, too few above to judge that case.",
        "",
        *figure_lines(cold),
        "",
        *error_lines(cold_scenes, list(meta.classes)),
    ]
    lines += ["", "## Validation figures (best epoch)", "",
              "| class | precision | recall | F1 | AP |", "|---|---|---|---|---|"]
    for name, s in metrics.get("classes", {}).items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['ap']:.3f} |")
    lines += [
        "",
        "## Training",
        "",
        f"- epochs run: {metrics.get('epochs_run')} (best {metrics.get('best_epoch')}, val mAP "
        f"{metrics.get('best_map', 0):.3f}); time in training epochs: {train_s / 60:.1f} min",
        f"- machine: {os.cpu_count()} CPU cores ({cpu_model()}), no GPU; Python {platform.python_version()}",
        "- reproduce: `make model`",
        "",
        "## Config",
        "",
        "```yaml",
        config.strip(),
        "```",
        "",
        "## Limits",
        "",
        "Generated scenes only: expect lower figures on real imagery until fine-tuned on local labels. "
        "Needs 0.5 m or finer optical; satellite thermal (100 m) cannot see single containers.",
    ]
    card = model.with_name("MODEL_CARD.md")
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return card
