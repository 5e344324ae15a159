"""Parts of training that decide what the model sees: the weight average, ignored targets, hard negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from minewatch.train.dataset import sample_weights
from minewatch.train.ema import WeightAverage
from minewatch.train.loss import MultiLabelLoss

pytestmark = pytest.mark.torch


def test_weight_average_follows_the_model_with_its_decay() -> None:
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    avg = WeightAverage(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    rate = avg.rate()
    assert rate == pytest.approx(1 / 10)  # warm-up: the first updates mostly take the new weights
    avg.update(model)
    assert torch.allclose(avg.model[0].weight, start * rate + (start + 1.0) * (1 - rate))
    for _ in range(200):
        avg.update(model)
    assert avg.rate() == 0.9 and avg.updates == 201
    assert torch.allclose(avg.model[0].weight, model[0].weight, atol=1e-6)
    assert not any(p.requires_grad for p in avg.model.parameters())


@pytest.mark.parametrize("kind", ["bce", "focal"])
def test_ignored_targets_do_not_count(kind: str) -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 0.2, -3.0]])
    target = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    loss_fn = MultiLabelLoss(kind, torch.tensor([2.0, 1.0, 3.0]) if kind == "bce" else None, ignore_negative=True)
    known = target >= 0
    every = loss_fn._loss(logits, target.clamp(min=0))
    assert loss_fn(logits, target).item() == pytest.approx(every[known].mean().item())
    changed = logits.clone()
    changed[0, 2] = -50.0  # the ignored entry can be anything
    assert loss_fn(changed, target).item() == pytest.approx(loss_fn(logits, target).item())
    full = target.clamp(min=0)
    assert loss_fn(logits, full).item() == pytest.approx(every.mean().item())
    plain = MultiLabelLoss(kind, loss_fn.pos_weight)
    assert plain(logits, full).item() == pytest.approx(loss_fn(logits, full).item())  # same loss when all known


def test_confusers_are_a_sampling_group_of_their_own() -> None:
    targets = np.zeros((100, 3), dtype=np.uint8)
    targets[:10, 0] = 1  # 10 container farms
    confusers = np.zeros(100, dtype=bool)
    confusers[10:15] = True  # 5 windows over look-alikes, 85 plain negatives
    w = sample_weights(targets, 1.0, confusers)
    share = {name: w[sel].sum() / w.sum() for name, sel in
             (("farm", slice(0, 10)), ("confuser", slice(10, 15)), ("plain", slice(15, 100)))}
    assert share == pytest.approx({"farm": 1 / 3, "confuser": 1 / 3, "plain": 1 / 3})
    without = sample_weights(targets, 1.0)
    assert without[10:15].sum() / without.sum() == pytest.approx(5 / 90 / 2)  # plain negatives among 90
    confusers[0] = True  # a positive window is never a confuser
    assert sample_weights(targets, 1.0, confusers)[0] == pytest.approx(w[0])
