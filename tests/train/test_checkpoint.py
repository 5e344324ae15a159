"""Checkpoints: round trip, and refusal of corrupted, foreign or malicious files without running code."""

from __future__ import annotations

import pickle

import pytest
import torch

from minewatch.errors import UserError
from minewatch.model_meta import ModelMeta, ThermalInput
from minewatch.train.checkpoint import load_checkpoint, load_model, rng_state, save_checkpoint, set_rng_state
from minewatch.train.models import build_model

pytestmark = pytest.mark.torch


def _meta() -> ModelMeta:
    return ModelMeta(
        model_version="test", backbone="mobilenet_v3_small", classes=("container_farm", "cooling_array",
                                                                      "heat_signature"),
        profile="drone", optical_bands=("red", "green", "blue"),
        channels=("red", "green", "blue", "thermal_dt", "thermal_valid"), mean=(0.3,) * 3, std=(0.1,) * 3,
        thresholds={"container_farm": 0.4, "cooling_array": 0.5, "heat_signature": 0.6}, gsd_m=0.5, tile_m=16,
        stride_m=16, tile_px=32,
        thermal=ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40),
    )


@pytest.fixture
def checkpoint(tmp_path):
    model = build_model("mobilenet_v3_small", 5, 3)
    path = tmp_path / "ok.pt"
    save_checkpoint(path, {"meta": _meta().to_json(), "config": {"seed": 0}, "model_state": model.state_dict(),
                           "rng_state": rng_state()})
    return path, model


def test_round_trip(checkpoint):
    path, model = checkpoint
    loaded, meta = load_model(path)
    assert meta == _meta()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not loaded.training


def test_rng_state_round_trip(checkpoint):
    path, _ = checkpoint
    state = load_checkpoint(path)["rng_state"]
    set_rng_state(state)
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(a, torch.rand(3))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "minewatch-checkpoint", "payload": _Evil(marker)}, path)
    assert not marker.exists()
    with pytest.raises(UserError, match="not a minewatch checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(UserError, match="not a minewatch checkpoint"):
        load_checkpoint(raw)
    assert not marker.exists()


def test_corrupted_checkpoint_is_refused(tmp_path, checkpoint):
    path, _ = checkpoint
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="not a minewatch checkpoint"):
        load_checkpoint(cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="not a minewatch checkpoint") as err:
        load_checkpoint(junk)
    assert "Fix:" in str(err.value)


def test_foreign_checkpoints_are_refused(tmp_path):
    plain = tmp_path / "state_dict.pt"
    torch.save(build_model("resnet18", 3, 3).state_dict(), plain)
    with pytest.raises(UserError, match="no minewatch format marker"):
        load_checkpoint(plain)
    partial = tmp_path / "partial.pt"
    torch.save({"format": "minewatch-checkpoint", "meta": "{}"}, partial)
    with pytest.raises(UserError, match="lacks"):
        load_checkpoint(partial)
    bad_meta = tmp_path / "bad_meta.pt"
    torch.save({"format": "minewatch-checkpoint", "meta": "{}", "config": {}, "model_state": {}}, bad_meta)
    with pytest.raises(UserError, match="metadata is invalid"):
        load_checkpoint(bad_meta)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_weights_that_do_not_fit_the_metadata_are_refused(tmp_path):
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, {"meta": _meta().to_json(), "config": {},
                           "model_state": build_model("mobilenet_v3_small", 4, 3).state_dict()})
    with pytest.raises(UserError, match="do not fit its metadata"):
        load_model(path)
