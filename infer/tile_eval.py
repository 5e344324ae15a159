"""Tile-level evaluation of a model on labelled scene folders: the figure the model card reports.

Every window of the scan grid (the model's tile size and stride) is scored and compared with the tile
targets of :func:`minewatch.datasets.labels.tile_targets`; decisions use the model's calibrated thresholds.
Windows whose content is unknown (unlabelled ground, objects hidden under thick cloud) are left out, as
training leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np

from minewatch.datasets.labels import known_targets, read_truth
from minewatch.datasets.model_input import InputSpec
from minewatch.datasets.scene import SceneOpener
from minewatch.datasets.scene_folder import SceneFiles
from minewatch.datasets.tiling import plan_tiles
from minewatch.errors import UserError
from minewatch.infer.heat_rule import heat_where_seen
from minewatch.infer.predictor import Predictor
from minewatch.infer.reader import read_tiles
from minewatch.metrics import average_precision, binary_scores
from minewatch.model_meta import ModelMeta


def known_windows(meta: ModelMeta, folder: Path) -> tuple[list, gpd.GeoDataFrame, np.ndarray, int]:
    """The scanned windows of one scene folder whose content is known, as training labels them: their reads,
    their frame (tile ids and window polygons on the model grid, in its CRS), their targets, and the number of
    windows left out as unknown."""
    spec = InputSpec.from_meta(meta)
    files = SceneFiles.from_folder(Path(folder))
    if files.truth is None:
        raise UserError("scene folder has no truth.geojson to evaluate against", path=folder,
                        fix="give labelled scene folders (e.g. from 'minewatch synth')")
    with SceneOpener.for_model(meta).open_folder(files) as scene:
        plan = plan_tiles(scene.grid, tile_m=meta.tile_m, stride_m=meta.stride_m, tile_px=meta.tile_px)
        reads = [r for r in read_tiles(scene, plan.tiles, spec, stride_px=plan.stride_px, max_nodata=0.5,
                                       max_cloud=1.0) if r.x is not None]
        gdf = plan.to_gdf().set_index("tile_id").loc[[r.tile.tile_id for r in reads]].reset_index()
        known, targets = known_targets(gdf, read_truth(files.truth), meta.classes)  # as training labels them
    reads = [r for r, k in zip(reads, known, strict=True) if k]
    return reads, gdf[known].reset_index(drop=True), targets, int((~known).sum())


def score_scene(predictor: Predictor, folder: Path, batch: int = 64) -> tuple[np.ndarray, np.ndarray, int]:
    """(probabilities, targets) of every scanned window of one scene folder whose content is known, and the
    number of windows left out as unknown."""
    meta = predictor.meta
    reads, _, targets, n_unknown = known_windows(meta, folder)
    probs = [predictor.predict(np.stack([r.x for r in reads[i:i + batch]])) for i in range(0, len(reads), batch)]
    if not probs:
        return np.zeros((0, len(meta.classes))), targets, n_unknown
    dt_max = np.array([r.dt_max_k for r in reads], dtype=float)
    # As the scan reports it (no heat without thermal), a NaN heat score counted as a negative decision.
    return np.nan_to_num(heat_where_seen(np.concatenate(probs), dt_max, meta.classes), nan=0.0), targets, n_unknown


def evaluate_tiles_by_scene(predictor: Predictor, folders: Sequence[Path]
                            ) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Per-class precision, recall, F1 (at the model's thresholds) and AP over all windows of the scenes,
    and per scene the windows each class missed and falsely flagged (a few scenes holding most errors point
    at a condition, snow, haze, a site kind, rather than a general gap) and those left out as unknown."""
    pairs = [score_scene(predictor, Path(f)) for f in folders]
    meta = predictor.meta
    probs = np.concatenate([p for p, _, _ in pairs])
    targets = np.concatenate([t for _, t, _ in pairs])
    report: dict[str, dict[str, float]] = {}
    for k, name in enumerate(meta.classes):
        scores = binary_scores(targets[:, k], probs[:, k], meta.thresholds[name])
        scores["ap"] = average_precision(targets[:, k], probs[:, k])
        scores["positives"] = int(targets[:, k].sum())
        scores["windows"] = int(len(targets))
        report[name] = scores
    scenes = []
    for folder, (p, t, n_unknown) in zip(folders, pairs, strict=True):
        flagged = p >= np.array([meta.thresholds[c] for c in meta.classes])[None, :]
        positive = t == 1
        scenes.append({"scene": Path(folder).name,
                       "missed": dict(zip(meta.classes, (positive & ~flagged).sum(axis=0).tolist(), strict=True)),
                       "false": dict(zip(meta.classes, (~positive & flagged).sum(axis=0).tolist(), strict=True)),
                       "unknown": n_unknown})
    return report, scenes
