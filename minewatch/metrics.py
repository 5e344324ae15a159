"""Classification metrics in plain numpy, shared by training (validation) and evaluation."""

from __future__ import annotations

import numpy as np


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts; 0 where undefined (no predictions / no positives)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold (descending), and those thresholds."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.array([], dtype=int)
    tp, fp, thresholds = tp[last], fp[last], s[last]
    n_pos = max(int(y.sum()), 1)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_pos
    return precision, recall, thresholds


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the step precision-recall curve (as scikit-learn defines AP); NaN without positives."""
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return float("nan")
    precision, recall, _ = pr_curve(y, scores)
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> tuple[float, float]:
    """Threshold that maximises F1 on validation data, and that F1. Falls back to ``default``."""
    y = np.asarray(y_true, dtype=bool)
    if not y.any() or len(y) == 0:
        return default, 0.0
    precision, recall, thresholds = pr_curve(y, scores)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    i = int(np.argmax(f1))
    # Midway to the next lower score keeps the threshold robust to tiny score shifts (e.g. int8).
    lower = np.asarray(scores, dtype=float)
    lower = lower[lower < thresholds[i]]
    thr = float((thresholds[i] + lower.max()) / 2) if lower.size else float(thresholds[i])
    return thr, float(f1[i])


def binary_scores(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and counts of thresholded scores."""
    y = np.asarray(y_true, dtype=bool)
    pred = np.asarray(scores, dtype=float) >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    p, r, f = precision_recall_f1(tp, fp, fn)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "threshold": threshold}
