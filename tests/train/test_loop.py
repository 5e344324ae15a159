"""Training loop: it learns, it resumes bit for bit, it refuses what it must."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from minewatch.errors import UserError
from minewatch.train.checkpoint import load_checkpoint
from minewatch.train.loop import train_from_config
from minewatch.train.optim import lr_lambda

pytestmark = pytest.mark.torch


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_smoke_training_learns_and_beats_chance(tmp_path, make_config):
    cfg = make_config(epochs=4)
    cfg.write_text(cfg.read_text().replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  samples_per_epoch: 256\n"))
    best = train_from_config(cfg, out=tmp_path / "run", device="cpu")
    assert best == tmp_path / "run" / "best.pt" and best.is_file()
    rows = _rows(tmp_path / "run" / "log.csv")
    assert len(rows) == 4
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    classes = metrics["classes"]
    # Chance AP equals the prevalence; the model must do clearly better on the held-out scenes.
    chance = np.mean([c["prevalence"] for c in classes.values() if c["n_pos"]])
    assert metrics["best_map"] > chance + 0.2
    ckpt = load_checkpoint(best)
    meta = ckpt["meta_obj"]
    assert meta.channels == ("red", "green", "blue", "thermal_dt", "thermal_valid")
    assert meta.tile_px == 32 and meta.tile_m == 16 and meta.gsd_m == 0.5
    assert set(meta.thresholds) == set(meta.classes)
    assert all(0 < t < 1 for t in meta.thresholds.values())
    assert meta.metrics["val_map"] == pytest.approx(metrics["best_map"])
    assert len(meta.mean) == 3 and all(0 < m < 1 for m in meta.mean)
    assert not meta.thermal.required  # trained with thermal dropout


@pytest.mark.parametrize("extras", ["", "hard"], ids=["plain", "ema+confusers+heat-mask"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, make_config, extras):
    cfg = make_config(epochs=2)
    text = cfg.read_text().replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  samples_per_epoch: 32\n")
    if extras:  # the weight average, look-alike sampling and the heat mask must resume exactly too
        text = (text.replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  confuser_m2: 5\n")
                .replace("warmup_epochs: 0.2}", "warmup_epochs: 0.2, ema_decay: 0.9}")
                + "loss: {heat_needs_thermal: true}\n")
    cfg.write_text(text.replace("batch_size: 16", "batch_size: 8"))
    train_from_config(cfg, out=tmp_path / "a", device="cpu")
    train_from_config(cfg, out=tmp_path / "b", device="cpu", stop_after_epochs=1)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    train_from_config(cfg, out=tmp_path / "b", device="cpu", resume=True)
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"]
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    if extras:  # the exported weights are the average, the raw ones are kept to resume from
        assert a["ema_updates"] == b["ema_updates"] == a["step"]
        assert all(torch.equal(v, b["train_state"][k]) for k, v in a["train_state"].items())
        first = next(k for k, v in a["model_state"].items() if v.is_floating_point())
        assert not torch.equal(a["model_state"][first], a["train_state"][first])
    assert _rows(tmp_path / "a" / "log.csv")[-1]["val_map"] == _rows(tmp_path / "b" / "log.csv")[-1]["val_map"]
    # and a different seed really gives different weights (the comparison above can fail)
    cfg.write_text(cfg.read_text() + "seed: 5\n")
    train_from_config(cfg, out=tmp_path / "c", device="cpu", stop_after_epochs=1)
    c = load_checkpoint(tmp_path / "c" / "last.pt")
    first = next(iter(a["model_state"]))
    assert not torch.equal(a["model_state"][first], c["model_state"][first])


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tmp_path, make_config):
    cfg = make_config(epochs=1)
    with pytest.raises(UserError, match="nothing to resume"):
        train_from_config(cfg, out=tmp_path / "run", device="cpu", resume=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    with pytest.raises(UserError, match="already holds a training run"):
        train_from_config(cfg, out=tmp_path / "run", device="cpu")


def test_validation_scenes_must_differ_from_training(tmp_path, tiny_scenes):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"data:\n  train_scenes: [{tiny_scenes / 'train'}]\n  val_scenes: [{tiny_scenes / 'train'}]\n")
    with pytest.raises(UserError, match="training and validation"):
        train_from_config(cfg, out=tmp_path / "run", device="cpu")


def test_lr_schedule_warms_up_then_decays():
    f = lr_lambda(10, 100, 0.1)
    values = [f(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(values[10:], values[11:], strict=False))
    assert values[-1] == pytest.approx(0.1, abs=1e-3)


def test_dataloader_workers_give_the_same_run_as_the_main_process(tmp_path, make_config):
    cfg = make_config(epochs=1)
    text = cfg.read_text().replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  samples_per_epoch: 32\n")
    cfg.write_text(text.replace("batch_size: 16", "batch_size: 8"))
    train_from_config(cfg, out=tmp_path / "main", device="cpu")
    cfg.write_text(cfg.read_text() + "num_workers: 1\n")
    train_from_config(cfg, out=tmp_path / "worker", device="cpu")  # spawned worker, its own raster handles
    a = load_checkpoint(tmp_path / "main" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "worker" / "last.pt")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
