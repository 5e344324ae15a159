"""The multi-label loss and its answer to class imbalance (``pos_weight``)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minewatch.classes import CLASSES
from minewatch.errors import UserError
from minewatch.train.config import LossConfig
from minewatch.train.dataset import expected_positive_rate

log = logging.getLogger(__name__)


class MultiLabelLoss(nn.Module):
    """BCE with per-class ``pos_weight``, or sigmoid focal loss; mean over windows and classes.

    With ``ignore_negative`` targets < 0 are unknown (see ``loss.heat_needs_thermal``) and left out of the
    mean; the mask is arithmetic, so no step waits for the GPU to say whether there are any.
    """

    def __init__(self, kind: str, pos_weight: torch.Tensor | None = None, gamma: float = 2.0,
                 alpha: float | None = 0.25, *, ignore_negative: bool = False) -> None:
        super().__init__()
        self.kind, self.gamma, self.alpha, self.ignore_negative = kind, gamma, alpha, ignore_negative
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.ignore_negative:
            return self._loss(logits, target).mean()
        known = target >= 0
        loss = self._loss(logits, target.clamp(min=0)) * known
        return loss.sum() / known.sum().clamp(min=1)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss


def auto_pos_weight(targets: np.ndarray, weights: np.ndarray, max_weight: float) -> np.ndarray:
    """negatives / positives per class among the windows the sampler draws, clipped to [1, max_weight]."""
    rate = expected_positive_rate(targets, weights)
    with np.errstate(divide="ignore"):
        pw = np.where(rate > 0, (1 - rate) / np.maximum(rate, 1e-12), 1.0)
    return np.clip(pw, 1.0, max_weight)


def build_loss(cfg: LossConfig, targets: np.ndarray, weights: np.ndarray, device: torch.device) -> MultiLabelLoss:
    """The configured loss; an automatic ``pos_weight`` is computed on what the sampler draws (``weights``
    per training window), so the sampler and the weight do not count the imbalance twice."""
    pos_weight = None
    if cfg.kind == "bce" and cfg.pos_weight is not None:
        pw = (auto_pos_weight(targets, weights, cfg.max_pos_weight)
              if cfg.pos_weight == "auto" else np.asarray(cfg.pos_weight, dtype=float))
        if len(pw) != len(CLASSES):
            raise UserError(f"loss.pos_weight has {len(pw)} values for {len(CLASSES)} classes",
                            fix=f"give one per class ({', '.join(CLASSES)}) or 'auto'")
        pos_weight = torch.tensor(pw, dtype=torch.float32, device=device)
        log.info("pos_weight %s", dict(zip(CLASSES, np.round(pw, 2).tolist(), strict=True)))
    return MultiLabelLoss(cfg.kind, pos_weight, cfg.focal_gamma, cfg.focal_alpha,
                          ignore_negative=cfg.heat_needs_thermal).to(device)


class DenseLoss(nn.Module):
    """The dense head's loss: per-pixel BCE plus soft Dice, each averaged over masks.

    Targets are coverage fractions 0..1; pixels with a target < 0 are unknown (the heat mask where thermal is
    missing) and left out of both terms. Dice is computed per mask over the whole batch (sums over windows and
    pixels), so windows without objects do not make it undefined, and small objects weigh as much as large
    ones; BCE keeps the probabilities calibrated, which the container count (a sum of probabilities) needs.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = (target >= 0).to(logits.dtype)
        t = target.clamp(min=0)
        bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none") * known
        bce = bce.sum(dim=(0, 2, 3)) / known.sum(dim=(0, 2, 3)).clamp(min=1)
        p = torch.sigmoid(logits) * known
        inter = (p * t).sum(dim=(0, 2, 3))
        total = p.sum(dim=(0, 2, 3)) + (t * known).sum(dim=(0, 2, 3))
        dice = 1 - (2 * inter + self.smooth) / (total + self.smooth)
        return (bce + dice).mean()
