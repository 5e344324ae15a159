"""Validation on other scenes than training: window probabilities, per-class AP and F1-optimal thresholds.

Named for what it does; ``minewatch evaluate`` (:mod:`minewatch.infer.evaluate`) is the site-level evaluation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from minewatch.classes import CLASSES, MASK_TRUTH_CLASS
from minewatch.clock import now_utc
from minewatch.metrics import average_precision, best_f1_threshold, binary_scores
from minewatch.model_meta import ModelMeta
from minewatch.progress import progress
from minewatch.train.models import split_output


class MaskStats:
    """Validation figures of the dense head, accumulated over batches, on known pixels only, per mask:

    - ``iou``: of the thresholded mask with the (thresholded) coverage target;
    - ``area_ratio``: summed probabilities over summed coverage, everywhere;
    - ``area_scale``: summed coverage over summed probabilities within ``margin_px`` of the thresholded mask,
      the rule a scan counts containers and fan area by (:func:`minewatch.infer.objects.outline_objects`), in
      windows that hold the mask's class (``tile_targets``: a count is made for a farm; masks firing on
      look-alikes make sites of their own, scored as false candidates, not as miscounts): what those counts
      are multiplied by (the model's ``mask_area_scale``).
    """

    COUNTED = ("container", "cooling")

    def __init__(self, names: tuple[str, ...], threshold: float = 0.5, margin_px: int = 4) -> None:
        self.names, self.threshold, self.margin_px = names, threshold, margin_px
        self.inter = np.zeros(len(names))
        self.union = np.zeros(len(names))
        self.pred_area = np.zeros(len(names))
        self.true_area = np.zeros(len(names))
        self.pred_near = np.zeros(len(names))
        self.true_near = np.zeros(len(names))

    def add(self, probs: torch.Tensor, target: torch.Tensor, tile_targets: torch.Tensor | None = None) -> None:
        known = target >= 0
        t = target.clamp(min=0)
        pb, tb = (probs >= self.threshold) & known, (t >= 0.5) & known
        dims = (0, 2, 3)
        self.inter += (pb & tb).sum(dim=dims).double().cpu().numpy()
        self.union += (pb | tb).sum(dim=dims).double().cpu().numpy()
        self.pred_area += (probs * known).sum(dim=dims).double().cpu().numpy()
        self.true_area += (t * known).sum(dim=dims).double().cpu().numpy()
        m = self.margin_px
        near = (F.max_pool2d(pb.float(), 2 * m + 1, stride=1, padding=m) > 0) & known if m else pb
        if tile_targets is not None:
            holds = torch.stack([tile_targets[:, CLASSES.index(MASK_TRUTH_CLASS[n])] > 0.5 if MASK_TRUTH_CLASS.get(n)
                                 in CLASSES else torch.ones(len(probs), dtype=torch.bool, device=probs.device)
                                 for n in self.names], dim=1).to(probs.device)
            near = near & holds[:, :, None, None]
        self.pred_near += (probs * near).sum(dim=dims).double().cpu().numpy()
        self.true_near += (t * near).sum(dim=dims).double().cpu().numpy()

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for k, name in enumerate(self.names):
            out[name] = {"iou": float(self.inter[k] / self.union[k]) if self.union[k] else float("nan"),
                         "area_ratio": float(self.pred_area[k] / self.true_area[k]) if self.true_area[k]
                         else float("nan")}
            if name in self.COUNTED:
                out[name]["area_scale"] = (float(self.true_near[k] / self.pred_near[k]) if self.pred_near[k]
                                           else float("nan"))
        return out


def predict_windows(model: nn.Module, loader: DataLoader, device: torch.device, *, channels_last: bool = False,
                    amp: bool = False, desc: str = "validating",
                    mask_stats: MaskStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, targets) of every window of ``loader``, in order; the dense head's figures go into
    ``mask_stats`` when given (batches then carry mask targets)."""
    model.eval()
    probs, targets = [], []
    with torch.no_grad():
        for batch in progress(loader, total=len(loader), desc=desc, unit="batch"):
            x, y = batch[0].to(device, non_blocking=True), batch[1]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                logits, mask_logits = split_output(model(x))
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
            targets.append(y.numpy())
            if mask_stats is not None and mask_logits is not None and len(batch) > 2:
                mask_stats.add(torch.sigmoid(mask_logits.float()), batch[2].to(device), y.to(device))
    k = len(CLASSES)
    return (np.concatenate(probs) if probs else np.zeros((0, k), np.float32),
            np.concatenate(targets) if targets else np.zeros((0, k), np.float32))


def class_metrics(probs: np.ndarray, targets: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Per-class AP, F1-optimal threshold and precision/recall/F1 there; mAP over classes with positives."""
    per: dict[str, dict[str, float]] = {}
    aps = []
    for k, name in enumerate(classes):
        y, s = targets[:, k] > 0.5, probs[:, k]
        ap = average_precision(y, s)
        thr, _ = best_f1_threshold(y, s)
        scores = binary_scores(y, s, thr)
        per[name] = {"ap": ap, "threshold": thr, "f1": scores["f1"], "precision": scores["precision"],
                     "recall": scores["recall"], "n_pos": int(y.sum()),
                     "prevalence": float(y.mean()) if len(y) else 0.0}
        if np.isfinite(ap):
            aps.append(ap)
    m_ap = float(np.mean(aps)) if aps else 0.0
    return {"map": m_ap, "classes": per, "n": int(len(targets))}


def validation_summary(probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """:func:`class_metrics` over every class plus the mean BCE of the probabilities (``loss``)."""
    summary = class_metrics(probs, targets, CLASSES)
    summary["loss"] = float(F.binary_cross_entropy(torch.from_numpy(probs).clamp(1e-7, 1 - 1e-7),
                                                   torch.from_numpy(targets)).item()) if len(probs) else 0.0
    return summary


def meta_metrics(summary: dict[str, Any], epoch: int) -> dict[str, float]:
    """Flat, finite figures for :attr:`ModelMeta.metrics` (JSON has no NaN)."""
    out = {"val_map": float(summary["map"]), "epoch": float(epoch), "val_windows": float(summary["n"])}
    for name, m in summary["classes"].items():
        for key in ("ap", "f1", "precision", "recall"):
            if np.isfinite(m[key]):
                out[f"{key}_{name}"] = float(m[key])
    for name, m in summary.get("masks", {}).items():
        for key in ("iou", "area_ratio", "area_scale"):
            if key in m and np.isfinite(m[key]):
                out[f"mask_{key}_{name}"] = float(m[key])
    return out


AREA_SCALE_LIMITS = (0.25, 4.0)
"""A validation area scale outside these is not trusted (too few objects, or a broken head): clipped."""


def area_scales(summary: dict[str, Any]) -> dict[str, float]:
    """The model's ``mask_area_scale`` from a validation summary (finite scales only, clipped)."""
    out = {}
    for name, m in summary.get("masks", {}).items():
        v = m.get("area_scale")
        if v is not None and np.isfinite(v):
            out[name] = float(np.clip(v, *AREA_SCALE_LIMITS))
    return out


def validated_meta(template: ModelMeta, summary: dict[str, Any], epoch: int, *,
                   keep_thresholds: bool = False) -> ModelMeta:
    """The model metadata after an epoch's validation: its thresholds and figures, stamped now (UTC).
    ``keep_thresholds``: the template's thresholds stay (a frozen classifier keeps its init's calibration)."""
    thresholds = (dict(template.thresholds) if keep_thresholds
                  else {k: float(v["threshold"]) for k, v in summary["classes"].items()})
    return template.model_copy(update={
        "thresholds": thresholds,
        "mask_area_scale": area_scales(summary),
        "metrics": meta_metrics(summary, epoch),
        "created": now_utc(),
    })


def selection_score(summary: dict[str, Any], select_by: str, *, classifier_frozen: bool) -> tuple[str, float]:
    """(name, value) of what picks the best epoch (``early_stopping.select_by``): the validation mAP, the mean
    mask IoU over the masks with validation truth, or the mean of the two, so that a dense run fine-tuning its
    backbone keeps the epoch whose masks count best without giving up tile scores. ``auto``: with a frozen
    classifier the mAP cannot move, so masks; otherwise the mAP."""
    if select_by == "auto":
        select_by = "masks" if classifier_frozen else "map"
    ious = [v["iou"] for v in summary.get("masks", {}).values() if not math.isnan(v["iou"])]
    mask_iou = float(np.mean(ious)) if ious else 0.0
    if select_by == "map":
        return "val mAP", float(summary["map"])
    if select_by == "masks":
        return "mean mask IoU", mask_iou
    return "mean of val mAP and mean mask IoU", (float(summary["map"]) + mask_iou) / 2
