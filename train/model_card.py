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
        scenes = generate_scenes(folder, seed=seed, count=count, recipe=recipe, overwrite=True)
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


def figure_lines(report: dict[str, dict[str, float]]) -> list[str]:
    """Markdown table of per-class tile figures."""
    lines = ["| class | precision | recall | F1 | AP | positives / windows |", "|---|---|---|---|---|---|"]
    for name, s in report.items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['ap']:.3f} | "
                     f"{s['positives']} / {s['windows']} |")
    return lines


def compare_lines(label: str, ours: dict, theirs: dict | None) -> list[str]:
    """Per-class F1 of this model beside the previous one on the same held-out scenes."""
    lines = [f"| {label} | " + " | ".join(f"{c} F1" for c in ours) + " |", "|---|" + "---|" * len(ours),
             "| this model | " + " | ".join(f"{s['f1']:.3f}" for s in ours.values()) + " |"]
    if theirs is not None:
        lines.append("| previous model | " + " | ".join(f"{theirs[c]['f1']:.3f}" for c in ours) + " |")
    return lines


def real_lines(run: Path, model: Path, previous: Path | None) -> list[str]:
    """The real-imagery section: false sites per km2 and site recall on held-out orthophotos."""
    from minewatch.infer.real_eval import (
        HELDOUT,
        RECALL_COUNT,
        RECALL_SEED,
        background_recall,
        false_sites,
        real_data_dir,
    )

    root = real_data_dir()
    lines = ["## Real imagery (held-out orthophotos)", ""]
    if root is None:
        return lines + ["Not available: `../shared/data/real` (or `$MINEWATCH_REAL_DATA`) is absent on the machine "
                        "that wrote this card.", ""]
    lines += ["Backgrounds used in training: `datasets/backgrounds` (NEON, OpenAerialMap Brazil and Kampala, USGS "
              "Colorado; see its ATTRIBUTION.md), as paste backgrounds (`configs/synth/real.yaml`) and as real "
              "negatives. Held out, never trained or tuned on: " + "; ".join(f"`{h.path}` ({h.what})" for h in HELDOUT)
              + ".", ""]
    models = {"this model": model, **({"previous model": previous} if previous is not None else {})}
    neg = {name: false_sites(path, root, run / "real-eval" / name.replace(" ", "-")) for name, path in models.items()}
    rec = {name: background_recall(path, root, run / "real-eval" / name.replace(" ", "-")) for name, path in
           models.items()}
    first = next(iter(rec.values()))
    lines += [
        "| figure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models),
        "| false candidate sites per km2, real scenes without mining (goal <= 0.1) | "
        + " | ".join(f"{n.per_km2:.2f} ({n.sites} in {n.km2:.2f} km2)" for n in neg.values()) + " |",
        f"| site recall, generated sites on held-out orthophotos ({first.scenes} scenes, seeds {RECALL_SEED}.."
        f"{RECALL_SEED + RECALL_COUNT - 1}; goal >= 0.9) | "
        + " | ".join(f"{r.recall:.2f} ({r.found}/{r.truth})" for r in rec.values()) + " |",
        "| container_farm recall there | "
        + " | ".join(f"{r.per_class['container_farm'][0]}/{r.per_class['container_farm'][1]}" for r in rec.values())
        + " |",
        "| site precision there | " + " | ".join(f"{r.precision:.2f} ({r.true_positives}/{r.candidates})"
                                             for r in rec.values()) + " |",
        "", "False sites by held-out orthophoto (optical only, at its own pixel size):", "",
        "| orthophoto | km2 | " + " | ".join(f"sites ({m})" for m in models) + " |", "|---|---|" + "---|" * len(models),
    ]
    for i, row in enumerate(next(iter(neg.values())).rows):
        cells = " | ".join(f"{n.rows[i]['sites']} {','.join(n.rows[i]['classes'])}".strip() for n in neg.values())
        lines.append(f"| {row['what']} | {row['km2']:.3f} | {cells} |")
    return lines + [""]


def write_card(run: Path, model: Path, *, seed: int | None = None, count: int | None = None,
               previous: Path | None = None) -> Path:
    """Write ``MODEL_CARD.md`` beside ``model`` from the run folder's metrics and fresh held-out figures;
    ``previous`` (the model this one replaces) is scored on the same held-out data, side by side."""
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
    old = old_cold = None
    if previous is not None:
        prev = OnnxPredictor(previous)
        old, _ = heldout_report(prev, run / "heldout", seed, count)
        old_cold, _ = heldout_report(prev, run / f"heldout-{COLD_RECIPE}", COLD_SEED, COLD_COUNT, COLD_RECIPE)
    (run / "heldout.json").write_text(json.dumps({"classes": heldout, "scenes": per_scene,
                                                  COLD_RECIPE: {"classes": cold, "scenes": cold_scenes}}, indent=2))
    meta = predictor.meta
    lines = [
        f"# Model card: {model.name}",
        "",
        f"Tile classifier for crypto-mining sites in drone imagery: {meta.backbone} on {meta.tile_m:g} m windows "
        f"({meta.tile_px} px at {meta.gsd_m} m/px), channels {', '.join(meta.channels)}; multi-label over "
        f"{', '.join(meta.classes)}. Trained by minewatch {meta.model_version} from generated scenes, generated "
        "sites pasted on real orthophotos and real orthophotos as negatives (randomly initialised, nothing "
        "downloaded).",
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
        *real_lines(run, model, previous),
        "## Held-out figures (tile level, at the calibrated thresholds)",
        "",
        *figure_lines(heldout),
        "",
        *compare_lines(f"{count} held-out generated scenes", heldout, old),
        "",
        "Windows missed and falsely flagged, by held-out scene:",
        "",
        *error_lines(per_scene, list(meta.classes)),
        "",
        f"## Cold scenes: {COLD_COUNT} held-out scenes from the `{COLD_RECIPE}` recipe "
        f"(seeds {COLD_SEED}..{COLD_SEED + COLD_COUNT - 1})",
        "",
        "Winter in snowy regions, more dormant farms (`configs/synth/winter.yaml`); the default recipe draws "
        "snow for ~3 % of scenes, too few above to judge that case.",
        "",
        *figure_lines(cold),
        "",
        *compare_lines(f"{COLD_COUNT} cold scenes", cold, old_cold),
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
        "No labelled photograph of a mining site exists offline: the real-imagery recall above is of generated "
        "farms pasted on real orthophotos, and six held-out orthophotos (about 1 km2) are few. Fine-tune on your "
        "own region (negative_rasters, catalogue verdicts) before trusting counts. Needs 0.5 m or finer optical; "
        "satellite thermal (100 m) cannot see single containers.",
    ]
    card = model.with_name("MODEL_CARD.md")
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return card
