"""The parts the training loop is made of, each on its own: device, loss weights, optimiser groups,
validation figures, early stopping and the files a run writes (the loop itself: test_loop.py)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from minewatch.classes import CLASSES
from minewatch.errors import UserError
from minewatch.train.config import EarlyStopConfig, LossConfig, OptimConfig
from minewatch.train.device import pick_device
from minewatch.train.ema import WeightAverage
from minewatch.train.loss import auto_pos_weight, build_loss
from minewatch.train.optim import build_optimizer, lr_lambda, param_groups
from minewatch.train.run import RunState
from minewatch.train.run_files import (
    checkpoint_payload,
    log_row,
    restore_checkpoint,
    update_json,
    write_csv,
)
from minewatch.train.validation import meta_metrics, predict_windows, selection_score, validation_summary

pytestmark = pytest.mark.torch

CPU = torch.device("cpu")


def test_cpu_is_always_there_and_a_missing_gpu_is_refused() -> None:
    assert pick_device("cpu") == CPU
    if torch.cuda.is_available():
        assert pick_device("auto").type == "cuda"
    else:
        with pytest.raises(UserError, match="CUDA was asked for"):
            pick_device("cuda")


def test_auto_pos_weight_is_negatives_over_positives_as_drawn() -> None:
    targets = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.uint8)
    plain = auto_pos_weight(targets, np.ones(4), max_weight=20)
    assert plain == pytest.approx([3.0, 3.0, 1.0])  # 1 in 4 positive; no positives: 1
    drawn = auto_pos_weight(targets, np.array([3.0, 1.0, 1.0, 1.0]), max_weight=20)
    assert drawn[0] == pytest.approx(1.0)  # drawn half the time: as many positives as negatives
    assert auto_pos_weight(targets, np.ones(4), max_weight=2)[0] == 2.0


def test_the_configured_loss_checks_its_weights() -> None:
    targets, weights = np.eye(3, dtype=np.uint8), np.ones(3)
    bce = build_loss(LossConfig(pos_weight=[1.0, 2.0, 3.0]), targets, weights, CPU)
    assert bce.pos_weight.tolist() == [1.0, 2.0, 3.0]
    assert build_loss(LossConfig(kind="focal"), targets, weights, CPU).pos_weight is None
    with pytest.raises(UserError, match="2 values for 3 classes"):
        build_loss(LossConfig(pos_weight=[1.0, 2.0]), targets, weights, CPU)


def test_no_weight_decay_on_biases_and_norms_and_the_schedule_starts_warm() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model[2].bias.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.1)
    assert [p.shape for p in decay["params"]] == [(3, 4), (2, 3)] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0  # frozen bias left out
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=0.1, epochs=2, warmup_epochs=0.5), 10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr_lambda(5, 20, 0.02)(0))
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # warm-up over


def test_window_predictions_and_figures() -> None:
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x = torch.randn(4, 2)
    model = nn.Linear(2, 3)
    probs, ys = predict_windows(model, DataLoader(TensorDataset(x, targets), batch_size=3), CPU)
    assert probs.shape == (4, 3) and np.array_equal(ys, targets.numpy())
    assert np.allclose(probs, torch.sigmoid(model(x)).detach().numpy(), atol=1e-6)
    empty = predict_windows(model, DataLoader(TensorDataset(x[:0], targets[:0])), CPU)
    assert [a.shape for a in empty] == [(0, 3), (0, 3)]

    ranked = np.array([[0.9, 0.2, 0.5], [0.1, 0.3, 0.5], [0.8, 0.1, 0.5], [0.2, 0.7, 0.5]], dtype=np.float32)
    summary = validation_summary(ranked, targets.numpy())
    assert summary["n"] == 4 and summary["map"] == pytest.approx(1.0)  # heat has no positives: not in mAP
    assert np.isnan(summary["classes"]["heat_signature"]["ap"])
    assert summary["loss"] > 0
    flat = meta_metrics(summary, epoch=3)
    assert flat["epoch"] == 3.0 and flat["val_map"] == 1.0 and "ap_heat_signature" not in flat
    assert validation_summary(*empty)["loss"] == 0.0


def test_early_stopping_counts_epochs_without_gain() -> None:
    state, rule = RunState(), EarlyStopConfig(patience=2, min_delta=0.01)
    seen = []
    for m_ap in (0.0, 0.5, 0.505, 0.6, 0.6, 0.6):
        state.epoch += 1
        seen.append(state.record(m_ap, rule))
        if state.stopped_early:
            break
    assert seen == [True, True, False, True, False, False]  # the first epoch is always the best so far
    assert (state.best_epoch, state.best_map, state.bad_epochs, state.stopped_early) == (4, 0.6, 2, True)


def test_the_select_by_rule_picks_the_epoch_by_its_own_figure() -> None:
    """Two epochs: the second has the better masks but a slightly lower mAP. map keeps the first, masks and
    map+masks keep the second; auto follows the classifier (frozen: masks). NaN IoUs (no truth) are left out."""
    def epoch(m_ap: float, container: float) -> dict:
        return {"map": m_ap, "masks": {"container": {"iou": container}, "heat": {"iou": float("nan")}}}
    epochs = (epoch(0.90, 0.60), epoch(0.895, 0.66))
    kept = {}
    for rule, frozen in (("map", False), ("masks", False), ("map+masks", False), ("auto", False), ("auto", True)):
        state = RunState()
        for summary in epochs:
            state.epoch += 1
            name, score = selection_score(summary, rule, classifier_frozen=frozen)
            state.record(score, EarlyStopConfig(min_delta=0.001))
        kept[(rule, frozen)] = (name, state.best_epoch)
    assert kept == {("map", False): ("val mAP", 1), ("masks", False): ("mean mask IoU", 2),
                    ("map+masks", False): ("mean of val mAP and mean mask IoU", 2),
                    ("auto", False): ("val mAP", 1), ("auto", True): ("mean mask IoU", 2)}
    assert selection_score(epoch(0.9, 0.6), "map+masks", classifier_frozen=False)[1] == pytest.approx(0.75)


def test_log_files_are_plain_csv_and_standard_json(tmp_path) -> None:
    summary = {"map": 0.5, "loss": 0.25, "n": 8,
               "classes": {c: {"ap": float("nan") if c == "heat_signature" else 0.5, "f1": 1 / 3} for c in CLASSES}}
    row = log_row(RunState(epoch=1, step=4), summary, lr=1e-3, train_loss=0.7, train_s=2.0, n_train=64)
    assert row["tiles_per_s"] == 32.0 and row["ap_container_farm"] == 0.5
    write_csv(tmp_path / "log.csv", [row, {**row, "extra": 1}])
    with open(tmp_path / "log.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["f1_cooling_array"] == "0.333333" and rows[0]["extra"] == "" and rows[1]["extra"] == "1"
    update_json(tmp_path / "metrics.json", {"x": float("nan")})
    update_json(tmp_path / "metrics.json", {"y": 2})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"x": None, "y": 2}


def _run(seed: int, *, ema: bool) -> SimpleNamespace:
    """The parts of a Run that a checkpoint holds, around a tiny model."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer, scheduler = build_optimizer(model, OptimConfig(epochs=2), 3)
    return SimpleNamespace(
        model=model, ema=WeightAverage(model, 0.9) if ema else None, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=False), state=RunState(),
        cfg=SimpleNamespace(model_dump=lambda mode: {"seed": seed}), info=SimpleNamespace(world_size=1),
        scored=None,
    )


@pytest.mark.parametrize("ema", [False, True])
def test_a_checkpoint_payload_restores_what_it_saved(ema: bool) -> None:
    a = _run(0, ema=ema)
    for _ in range(3):  # a few real steps, so the optimiser and the average hold state
        loss = a.model(torch.randn(5, 3)).square().mean()
        a.optimizer.zero_grad()
        loss.backward()
        a.optimizer.step()
        a.scheduler.step()
        if a.ema:
            a.ema.update(a.model)
    a.scored = a.ema.model if a.ema else a.model
    a.state = RunState(epoch=1, step=3, best_map=0.4, best_epoch=1, history=[{"epoch": 1}])
    payload = checkpoint_payload(a, SimpleNamespace(to_json=lambda: "{}"), {"map": float("nan")})
    assert payload["validation"] == {"map": None} and ("train_state" in payload) == ema
    b = _run(1, ema=ema)
    restore_checkpoint(b, payload)
    assert b.state == a.state
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    if ema:
        assert b.ema.updates == 3
        assert all(torch.equal(v, b.ema.model.state_dict()[k]) for k, v in a.ema.model.state_dict().items())
    assert b.scheduler.state_dict() == a.scheduler.state_dict()
    assert b.optimizer.state_dict()["state"][0]["step"] == 3
