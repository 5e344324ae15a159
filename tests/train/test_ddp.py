"""DDP: two CPU processes under torchrun (gloo) train one model; only rank 0 writes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from minewatch.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.torch


def test_ddp_two_processes_with_gloo(tmp_path, make_config):
    cfg = make_config(epochs=1)
    cfg.write_text(cfg.read_text().replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  samples_per_epoch: 64\n")
                   .replace("threads: 2", "threads: 1"))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "minewatch", "train", "--config", str(cfg), "--out", str(out), "--device", "cpu", "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["world_size"] == 2
    # 64 windows per epoch shared by two ranks of batch 16: 2 steps each, not the 4 of one process.
    assert ckpt["step"] == 2
    with open(out / "log.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1  # one writer, one row per epoch
    assert all(torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point())
    assert not list(out.glob("*.tmp*"))
