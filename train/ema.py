"""An exponential moving average of a model's weights: steadier validation and a better final model.

Validation mAP of a small network trained at a high learning rate jumps between epochs; the average of
the last few hundred steps' weights does not, and it is what gets validated, checkpointed and exported.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """EMA of every floating-point parameter and buffer (BatchNorm statistics too) of ``model``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def rate(self) -> float:
        """Decay of the next update: short memory at first, so random initial weights fade quickly."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.rate()
        self.updates += 1
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.is_floating_point():
                avg.lerp_(cur.detach(), 1.0 - d)
            else:
                avg.copy_(cur)
