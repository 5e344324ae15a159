"""Write the model card of a trained, exported model: config, data recipe and seeds, validation and
held-out figures per class, training time and machine. One card per sensor profile: ``MODEL_CARD.md`` for the
drone model, ``MODEL_CARD-satellite.md`` for the satellite model (whose card adds the heat by farm size at the
Landsat footprint and what the thermal can support there).

Held-out scenes use seeds that neither training nor validation saw, so their figures are the honest ones.
``minewatch card RUN MODEL`` runs it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from minewatch.atomic import atomic_path
from minewatch.datasets.labels import LabelRule
from minewatch.errors import UserError
from minewatch.infer.predictor import OnnxPredictor
from minewatch.infer.tile_eval import evaluate_tiles_by_scene

log = logging.getLogger(__name__)

HELDOUT_SEED = 7000
HELDOUT_COUNT = 40
COLD_SEED, COLD_COUNT, COLD_RECIPE = 7100, 10, "winter"
"""A second held-out set from the winter recipe: the default draws too few snowy scenes to show that case."""


@dataclass(frozen=True)
class CardSets:
    """A profile's held-out sets: the main one (the acceptance figures) and a second that shows one condition."""

    seed: int
    count: int
    recipe: str | None
    second_seed: int
    second_count: int
    second_recipe: str
    second_title: str
    second_text: str
    card_name: str


CARD_SETS = {
    "drone": CardSets(HELDOUT_SEED, HELDOUT_COUNT, None, COLD_SEED, COLD_COUNT, COLD_RECIPE,
                      f"Cold scenes: {COLD_COUNT} held-out scenes from the `{COLD_RECIPE}` recipe "
                      f"(seeds {COLD_SEED}..{COLD_SEED + COLD_COUNT - 1})",
                      "Winter in snowy regions, more dormant farms (`configs/synth/winter.yaml`); the default recipe "
                      "draws snow for ~3 % of scenes, too few above to judge that case.", "MODEL_CARD.md"),
    "satellite": CardSets(17000, 40, "satellite-05m", 17100, 20, "satellite",
                          "Every pixel size: {count} held-out scenes from the `satellite` recipe (0.3-1 m, seeds "
                          "{seed}..{last})",
                          "The same generator and effects at every pixel size the recipe draws (WorldView 0.3 m to "
                          "1 m products), resampled to the 0.5 m model grid: fans (0.8-1.2 m) are one or two "
                          "pixels at 1 m.", "MODEL_CARD-satellite.md"),
}
"""Held-out sets per sensor profile (their seeds are in no training or validation set)."""


def card_sets(profile: str) -> CardSets:
    if profile not in CARD_SETS:
        raise UserError(f"no held-out recipe for models of the '{profile}' profile", fix="give a drone or satellite "
                        "model, or add the profile to CARD_SETS in train/model_card.py")
    return CARD_SETS[profile]


def card_path(model: Path, profile: str) -> Path:
    """The card beside a model: MODEL_CARD.md for the drone model, MODEL_CARD-<profile>.md for the others."""
    return model.with_name(card_sets(profile).card_name if profile in CARD_SETS else f"MODEL_CARD-{profile}.md")


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


def dense_clause(meta) -> str:
    """The card's first sentence's mention of a dense head (empty without one)."""
    if not meta.masks:
        return ""
    return (f", with a dense head marking {', '.join(meta.masks)} per pixel at {meta.mask_gsd_m:g} m (site outlines, "
            "container counts, power)")


def object_section(objects: dict, dense: bool, old: dict | None = None, old_dense: bool = False) -> list[str]:
    """The card's section on site outlines, containers and power (:func:`heldout_objects`), for every profile;
    ``old``: the same figures of the model this one replaces, side by side."""
    return [
        "## Site outlines, containers and power (held-out scenes, full scans)",
        "",
        "Each held-out scene scanned as `minewatch scan` does it and scored with `minewatch evaluate`: polygon IoU "
        "of each matched truth site with its best candidate, containers in twenty-foot equivalents (TEU) and power "
        "against the generator's truth (see the README, \"Site outlines, containers and power\"). A farm no "
        "candidate matches counts as a wrong count.",
        "",
        *object_card_lines(objects, dense=dense, old=old, old_dense=old_dense),
        "",
    ]


def object_card_lines(o: dict, dense: bool, old: dict | None = None, old_dense: bool = False) -> list[str]:
    """Markdown table of :func:`heldout_objects`' figures, with a column for ``old`` when given."""
    def f(v, pct: bool = False) -> str:
        return "n/a" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")

    def rows(x: dict, has_head: bool) -> dict[str, str]:
        out = {"truth sites matched by a candidate": f"{x['n_matched']} / {x['n_truth_sites']}",
               "median polygon IoU of matched sites": f(x["iou_median"])}
        out.update({f"median IoU, {kind}": f"{f(v['iou_median'])} ({v['n']})"
                    for kind, v in x["iou_by_kind"].items()})
        if not has_head:
            out["containers, power"] = "no dense head: sites are outlined by their windows"
            return out
        out.update({
            "container farms counted within 20 % (TEU)": f"{f(x['count_ok_share'], True)} of {x['farms']}",
            "median container-count error": f(x["count_rel_error_median"], True),
            "median power error, running farms": f"{f(x['power_rel_error_median'], True)} "
                                                 f"({x['running_farms']} farms)",
            "truth power inside the estimate's range": f(x["power_in_range_share"], True),
            "dormant farms called idle": f"{x['dormant_called_idle']} / {x['dormant_farms']}",
        })
        return out

    new = rows(o, dense)
    if old is None:
        return ["| figure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in new.items()]]
    before = rows(old, old_dense)
    keys = list(new) + [k for k in before if k not in new]
    return ["| figure | this model | previous model |", "|---|---|---|",
            *[f"| {k} | {new.get(k, '')} | {before.get(k, '')} |" for k in keys]]


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


def _closing_lines(metrics: dict, train_s: float, config: str, profile: str) -> list[str]:
    """The validation table, how the model was trained and its config: the end of every card but its limits."""
    from minewatch.infer.registry import make_target

    lines = ["## Validation figures (best epoch)", "",
             "| class | precision | recall | F1 | AP |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['ap']:.3f} |"
              for name, s in metrics.get("classes", {}).items()]
    return lines + [
        "",
        "## Training",
        "",
        f"- epochs run: {metrics.get('epochs_run')} (best {metrics.get('best_epoch')}, "
        f"{metrics.get('selected_by', 'val mAP')} {metrics.get('best_map', 0):.3f}); "
        f"time in training epochs: {train_s / 60:.1f} min",
        f"- machine: {os.cpu_count()} CPU cores ({cpu_model()}), no GPU; Python {platform.python_version()}",
        f"- reproduce: `{make_target(profile)}`",
        "",
        "## Config",
        "",
        "```yaml",
        config.strip(),
        "```",
        "",
    ]


def _write_lines(card: Path, lines: list[str]) -> Path:
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return card


def heldout_lines(title: str, heldout: dict, old: dict | None, per_scene: list, classes: list[str], *,
                  caption: bool = True) -> list[str]:
    """The held-out figures, the comparison with the previous model and the errors by scene."""
    errors_caption = ["Windows missed and falsely flagged, by held-out scene:", ""] if caption else []
    return [*figure_lines(heldout), "", *compare_lines(title, heldout, old), "", *errors_caption,
            *error_lines(per_scene, classes), ""]


_REAL_ABSENT = ["Not available: `../shared/data/real` (or `$MINEWATCH_REAL_DATA`) is absent on the machine that "
                "wrote this card.", ""]


def _compared(model: Path, previous: Path | None) -> dict[str, tuple[Path, int | None]]:
    """The models a real-imagery table compares, by column title: (model, --min-windows; None: the scan's
    default). The second column is this model with the scan's site rule off (lone windows kept), to show the rule."""
    return {"this model": (model, None), "this model, lone windows kept": (model, 1),
            **({"previous model": (previous, None)} if previous is not None else {})}


SITE_RULE_LINE = ("Sites are drawn as `minewatch scan` draws them by default: at least two positive windows, or one "
                  "on the raster's edge (`--min-windows`; the rule was chosen on validation scenes, "
                  "`python bench/site_rule.py`).")


def _eval_dir(run: Path, name: str) -> Path:
    """Where a compared model's real-imagery scans go inside the run folder."""
    return run / "real-eval" / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _shared_scenes(run: Path) -> Path:
    """Where the generated scenes on held-out orthophotos go, generated once for every compared model."""
    return run / "real-eval" / "scenes"


def _recall_detail_rows(rec: dict) -> list[str]:
    """The container_farm recall and site precision rows under a site-recall row, one column a model."""
    return ["| container_farm recall there | "
            + " | ".join(f"{r.per_class['container_farm'][0]}/{r.per_class['container_farm'][1]}" for r in rec.values())
            + " |",
            "| site precision there | " + " | ".join(f"{r.precision:.2f} ({r.true_positives}/{r.candidates})"
                                                 for r in rec.values()) + " |"]


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
        return lines + _REAL_ABSENT
    lines += ["Backgrounds used in training: `datasets/backgrounds` (NEON and OpenAerialMap "
              "Kampala; see its ATTRIBUTION.md, which also names four files of `../shared/data/real` the committed "
              "drone model was trained on), as paste backgrounds (`configs/synth/real.yaml`) and as real "
              "negatives. Held out, never trained or tuned on: " + "; ".join(f"`{h.path}` ({h.what})" for h in HELDOUT)
              + ".", "", SITE_RULE_LINE, ""]
    models = _compared(model, previous)
    neg = {name: false_sites(path, root, _eval_dir(run, name), min_windows=mw) for name, (path, mw) in models.items()}
    rec = {name: background_recall(path, root, _eval_dir(run, name), min_windows=mw,
                                   scenes_dir=_shared_scenes(run))
           for name, (path, mw) in models.items()}
    first = next(iter(rec.values()))
    lines += [
        "| figure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models),
        "| false candidate sites per km2, real scenes without mining (goal <= 0.1) | "
        + " | ".join(f"{n.per_km2:.2f} ({n.sites} in {n.km2:.2f} km2)" for n in neg.values()) + " |",
        f"| site recall, generated sites on held-out orthophotos ({first.scenes} scenes, seeds {RECALL_SEED}.."
        f"{RECALL_SEED + RECALL_COUNT - 1}; goal >= 0.9) | "
        + " | ".join(f"{r.recall:.2f} ({r.found}/{r.truth})" for r in rec.values()) + " |",
        *_recall_detail_rows(rec),
        "", "False sites by held-out orthophoto (optical only, at its own pixel size):", "",
        "| orthophoto | km2 | " + " | ".join(f"sites ({m})" for m in models) + " |", "|---|---|" + "---|" * len(models),
    ]
    for i, row in enumerate(next(iter(neg.values())).rows):
        cells = " | ".join(f"{n.rows[i]['sites']} {','.join(n.rows[i]['classes'])}".strip() for n in neg.values())
        lines.append(f"| {row['what']} | {row['km2']:.3f} | {cells} |")
    return lines + [""]


def write_card(run: Path, model: Path, *, seed: int | None = None, count: int | None = None,
               previous: Path | None = None) -> Path:
    """Write the model card beside ``model`` (``MODEL_CARD.md`` for the drone model, ``MODEL_CARD-<profile>.md``
    for the others) from the run folder's metrics and fresh held-out figures; ``previous`` (the model this one
    replaces) is scored on the same held-out data, side by side."""
    for name in ("metrics.json", "log.csv", "best.pt"):
        if not (Path(run) / name).is_file():
            raise UserError(f"the run folder lacks {name}", path=run,
                            fix="give the --out folder of a finished 'minewatch train' run")
    predictor = OnnxPredictor(model)
    meta = predictor.meta
    sets = card_sets(meta.profile)
    seed = sets.seed if seed is None else seed
    count = sets.count if count is None else count
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "log.csv", newline="") as fh:
        epochs = list(csv.DictReader(fh))
    train_s = sum(float(e.get("train_s") or 0) for e in epochs)
    config = _training_config(run / "best.pt")
    main_dir = "heldout" if sets.recipe is None else f"heldout-{sets.recipe}"
    second_dir = f"heldout-{sets.second_recipe}"
    heldout, per_scene = heldout_report(predictor, run / main_dir, seed, count, sets.recipe)
    cold, cold_scenes = heldout_report(predictor, run / second_dir, sets.second_seed, sets.second_count,
                                       sets.second_recipe)
    main_scenes = [run / main_dir / f"scene_{s:06d}" for s in range(seed, seed + count)]
    objects = heldout_objects(model, main_scenes, run / "heldout-scans")
    old = old_cold = old_objects = None
    old_dense = False
    if previous is not None:
        prev = OnnxPredictor(previous)
        old_dense = bool(prev.meta.masks)
        old_objects = heldout_objects(previous, main_scenes, run / "heldout-scans-previous")
        old, _ = heldout_report(prev, run / main_dir, seed, count, sets.recipe)
        old_cold, _ = heldout_report(prev, run / second_dir, sets.second_seed, sets.second_count, sets.second_recipe)
    objects_lines = object_section(objects, dense=bool(meta.masks), old=old_objects, old_dense=old_dense)
    (run / "heldout.json").write_text(json.dumps({"classes": heldout, "scenes": per_scene, "objects": objects,
                                                  "previous_objects": old_objects,
                                                  sets.second_recipe: {"classes": cold, "scenes": cold_scenes}},
                                                 indent=2, default=str))
    if meta.profile == "satellite":
        return _write_satellite_card(run, model, predictor, metrics, train_s, config, seed, count, heldout, per_scene,
                                     cold, cold_scenes, old, old_cold, previous, sets, objects_lines)
    lines = [
        f"# Model card: {model.name}",
        "",
        f"Tile classifier for crypto-mining sites in drone imagery: {meta.backbone} on {meta.tile_m:g} m windows "
        f"({meta.tile_px} px at {meta.gsd_m} m/px), channels {', '.join(meta.channels)}; multi-label over "
        f"{', '.join(meta.classes)}{dense_clause(meta)}. Trained by minewatch {meta.model_version} from generated "
        "scenes, generated sites pasted on real orthophotos and real orthophotos as negatives (randomly initialised, "
        "nothing downloaded).",
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
        *heldout_lines(f"{count} held-out generated scenes", heldout, old, per_scene, list(meta.classes)),
        *objects_lines,
        f"## Cold scenes: {COLD_COUNT} held-out scenes from the `{COLD_RECIPE}` recipe "
        f"(seeds {COLD_SEED}..{COLD_SEED + COLD_COUNT - 1})",
        "",
        "Winter in snowy regions, more dormant farms (`configs/synth/winter.yaml`); the default recipe draws "
        "snow for ~3 % of scenes, too few above to judge that case.",
        "",
        *heldout_lines(f"{COLD_COUNT} cold scenes", cold, old_cold, cold_scenes, list(meta.classes), caption=False),
        *_closing_lines(metrics, train_s, config, meta.profile),
        "## Limits",
        "",
        "No labelled photograph of a mining site exists offline: the real-imagery recall above is of generated "
        "farms pasted on real orthophotos, and six held-out orthophotos (about 1 km2) are few. Fine-tune on your "
        "own region (negative_rasters, catalogue verdicts) before trusting counts. Needs 0.5 m or finer optical; "
        "satellite thermal (100 m) cannot see single containers.",
    ]
    return _write_lines(card_path(model, meta.profile), lines)


# ------------------------------------------------------------------------------------------------ satellite
ACCEPT_F1 = 0.85
"""Issue #19's acceptance: per-class F1 on held-out generated satellite scenes at 0.5 m, for container farms and
cooling arrays."""
SAT_RECALL_SEED = 17200
"""Seeds of the generated satellite scenes on the held-out orthophotos (in no training or validation set)."""


def satellite_real_lines(run: Path, model: Path, previous: Path | None) -> list[str]:
    """Real imagery for a satellite model: generated sites pasted on the held-out orthophotos as a satellite sees
    them (their NIR made up from colour), and candidate sites on real four-band satellite rasters without mining."""
    from minewatch.infer import real_eval

    root = real_eval.real_data_dir()
    lines = ["## Real imagery", ""]
    if root is None:
        return lines + _REAL_ABSENT
    models = _compared(model, previous)
    rec = {name: real_eval.background_recall(path, root, _eval_dir(run, name), seed=SAT_RECALL_SEED,
                                             recipe="satellite-real", min_windows=mw,
                                             scenes_dir=_shared_scenes(run))
           for name, (path, mw) in models.items()}
    neg = {name: real_eval.false_sites(path, root, _eval_dir(run, name), real_eval.REAL_RGBN, min_windows=mw)
           for name, (path, mw) in models.items()}
    first = next(iter(rec.values()))
    lines += [
        "No labelled satellite image of a mining site exists offline, and the only real four-band satellite raster "
        "at hand is small; so, as for the drone model, generated farms are pasted on real ground: the held-out "
        "orthophotos (" + "; ".join(h.what.split(":")[0] for h in real_eval.HELDOUT) + "), resampled to the drawn "
        "pixel size, "
        "seen through the satellite's haze, optics, pansharpening and noise (`configs/synth/satellite-real.yaml`), "
        "with a NIR band made up from their colour. Never trained or tuned on.", "", SITE_RULE_LINE, "",
        "| figure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models),
        f"| site recall, generated sites on held-out orthophotos ({first.scenes} scenes, seeds {SAT_RECALL_SEED}.."
        f"{SAT_RECALL_SEED + first.scenes - 1}) | " + " | ".join(f"{r.recall:.2f} ({r.found}/{r.truth})"
                                                                 for r in rec.values()) + " |",
        *_recall_detail_rows(rec),
        "| false candidate sites per km2, real four-band satellite imagery without mining (goal <= 0.1) | "
        + " | ".join(f"{n.per_km2:.2f} ({n.sites} in {n.km2:.2f} km2)" if n.rows else "n/a" for n in neg.values())
        + " |", "",
    ]
    for i, row in enumerate(next(iter(neg.values())).rows):
        cells = "; ".join(f"{m}: {n.rows[i]['sites']} {','.join(n.rows[i]['classes'])}".strip()
                          for m, n in neg.items())
        lines.append(f"- `{row['background']}` ({row['what']}, {row['km2']:.3f} km2): {cells}")
    return lines + [""]


def heat_lines(run: Path, heldout: dict) -> list[str]:
    """Heat at the Landsat footprint by farm size (infer/heat_scale.py), and what the thermal can support."""
    from minewatch.infer.heat_scale import (
        FIRST_SEED,
        SCENES_PER_SIZE,
        SIZES,
        detectable_from,
        heat_by_farm_size,
        table_lines,
    )
    from minewatch.infer.thermal_only import DETECTABLE_CONTAINERS, HeatRule

    rule = HeatRule()
    rows = heat_by_farm_size()
    (run / "heat_by_farm_size.json").write_text(json.dumps([r.summary() for r in rows], indent=2))
    first = detectable_from(rows)
    hs = heldout.get("heat_signature", {})
    found = {r.n_containers: r.summary() for r in rows}
    big = [s for n, s in found.items() if n >= (first or DETECTABLE_CONTAINERS)]
    found_big = sum(s["found"] for s in big)
    scenes_big = sum(s["scenes"] for s in big)
    return [
        "## Heat at the Landsat footprint, by farm size",
        "",
        f"Each row: {SCENES_PER_SIZE} generated scenes (seeds {FIRST_SEED}..{FIRST_SEED + 100 * len(SIZES) - 1}) "
        "with one running container farm of that size, drawn as the satellite recipe draws every farm (layout, "
        "load 0.6-1, season, sun, wind, the land around it), rendered with and without the farm's heat; the "
        f"difference in the hottest delivered pixel is what a {rule.footprint_m:g} m footprint shows of the farm "
        "alone (area-averaged, as the generator renders Landsat-like thermal). Power from the design notes' "
        "0.4-1.9 MW per 40 ft container. The ground's own variability is the robust sigma of the heat-free image "
        f"around its {rule.background_m:g} m median; the thermal-only rule (`minewatch scan --thermal-only`: "
        f">= {rule.min_dt_k:g} K and >= {rule.min_z:g} sigma over >= {rule.min_area_m2:,.0f} m2) runs on the "
        "delivered image with its noise.",
        "",
        *table_lines(rows, rule),
        "",
        f"- A farm's excess reaches {rule.min_dt_k:g} K in its hottest 100 m pixel from about "
        f"**{first if first is not None else '(none of the sizes)'} containers** up "
        f"({(first or 0) * 0.4:.0f}-{(first or 0) * 1.9:.0f} MW); one container adds hundredths of a kelvin.",
        f"- That is about what sunlit ground varies by at 100 m (fields, forest, water): the thermal-only rule found "
        f"{found_big} of {scenes_big} farms of that size and larger in daytime scenes, and reports false candidates "
        "on warm ground. Night or winter scenes, where the ground is uniform and a farm's heat is not, would do "
        "better; the generator renders daytime only.",
        "- What the thermal can support at this resolution: `heat_signature` for large, multi-MW farms only (this "
        f"model's held-out heat F1 {hs.get('f1', float('nan')):.3f} over {hs.get('positives', 0)} positive windows, "
        "where a farm's visible excess reaches 3 K). It cannot see a single container, a hidden farm (a shed of "
        "under 1 MW), or tell a container farm from a cooling array from a greenhouse: `container_farm` and "
        "`cooling_array` come from the optical bands alone, and a thermal-only candidate is a place to look at with "
        "0.5 m imagery, never a detection.",
        "",
    ]


def _write_satellite_card(run, model, predictor, metrics, train_s, config, seed, count, heldout, per_scene, second,
                          second_scenes, old, old_second, previous, sets, objects_lines) -> Path:

    meta = predictor.meta
    accept = [f"{c} F1 {heldout[c]['f1']:.3f} ({'met' if heldout[c]['f1'] >= ACCEPT_F1 else 'NOT met'})"
              for c in ("container_farm", "cooling_array") if c in heldout]
    lines = [
        f"# Model card: {model.name}",
        "",
        "Tile classifier for crypto-mining sites in very-high-resolution satellite imagery (Pleiades, WorldView, "
        "SkySat class: red, green, blue and NIR surface reflectance at 0.3-1 m) with Landsat 8/9-like thermal: "
        f"{meta.backbone} on {meta.tile_m:g} m windows ({meta.tile_px} px at {meta.gsd_m} m/px), channels "
        f"{', '.join(meta.channels)}; multi-label over {', '.join(meta.classes)}{dense_clause(meta)}. Trained by "
        f"minewatch {meta.model_version} from generated satellite scenes (`configs/synth/satellite.yaml`: 0.3-1 m "
        "pixels, off-nadir lean, pansharpening ringing, 11-12-bit quantisation, haze, clouds, farms up to ~300 "
        "containers) and generated sites pasted on real orthophotos seen by a satellite "
        "(`configs/synth/satellite-real.yaml`, NIR made up from colour); randomly initialised, nothing downloaded.",
        "",
        f"- file: `{model.name}`, {model.stat().st_size / 1e6:.1f} MB, sha256 `{predictor.sha256}`",
        f"- training-config sha256: `{meta.config_sha256}`",
        f"- sensor profile: `{meta.profile}` (RGBN reflectance x 10,000 in 16 bits; thermal of a 100 m footprint "
        f"delivered at 30 m); thermal as excess over a {meta.thermal.background_m:g} m robust background on "
        f"{meta.thermal.background_gsd_m:g} m cells, optional (trained with thermal dropout)",
        "- thresholds (calibrated on validation): " + ", ".join(f"{k} {v:.3f}" for k, v in meta.thresholds.items()),
        "- chosen by `minewatch scan` without `--model` for rasters with a NIR band (or four unnamed 16-bit bands)",
        "",
        "## Data",
        "",
        f"- training: {metrics.get('train_windows')} windows from generated scenes (see `data` below for seeds)",
        f"- validation: {metrics.get('val_windows')} windows from other generated scenes at 0.5 m (threshold "
        "calibration and early stopping)",
        f"- held-out test: {count} generated scenes at 0.5 m (`{sets.recipe}`), seeds {seed}..{seed + count - 1}, "
        "never seen in training or validation; every window of the scan grid but the "
        f"{sum(r.get('unknown', 0) for r in per_scene)} that touch an object mostly under thick cloud (its truth "
        f"`cloud_share` > {LabelRule().max_cloud_share:g}): nobody can see it, so it is neither a farm to find nor "
        "a background to reject, and training leaves such windows out too; the previous model is scored on the same "
        "windows",
        "",
        *satellite_real_lines(run, model, previous),
        "## Held-out figures at 0.5 m (tile level, at the calibrated thresholds)",
        "",
        f"Acceptance (#19: F1 >= {ACCEPT_F1} for container farms and cooling arrays at 0.5 m): " + "; ".join(accept)
        + ".",
        "",
        *heldout_lines(f"{count} held-out scenes at 0.5 m", heldout, old, per_scene, list(meta.classes)),
        *objects_lines,
        "## " + sets.second_title.format(count=sets.second_count, seed=sets.second_seed,
                                         last=sets.second_seed + sets.second_count - 1),
        "",
        sets.second_text,
        "",
        *heldout_lines(f"{sets.second_count} scenes, 0.3-1 m", second, old_second, second_scenes, list(meta.classes),
                       caption=False),
        *heat_lines(run, heldout),
        *_closing_lines(metrics, train_s, config, meta.profile),
        "## Limits",
        "",
        "Generated scenes are not a satellite's imagery: no labelled satellite image of a mining site exists "
        "offline, the real-imagery recall above is of generated farms on real aerial ground made to look like a "
        "satellite's (with a made-up NIR band), and the one real four-band raster is small. Fine-tune on labelled "
        "scenes of your own satellite (catalogue verdicts) before trusting counts. Needs 1 m or finer optical "
        "(fans are one pixel at 1 m); thermal at 100 m confirms only large, multi-MW farms and never replaces the "
        "optical evidence.",
    ]
    return _write_lines(card_path(model, meta.profile), lines)
