"""ONNX export: parity with torch, metadata round trip, dynamic batch, one file, refusal on mismatch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from minewatch.errors import UserError
from minewatch.model_meta import META_KEY, ModelMeta
from minewatch.train import export as export_mod
from minewatch.train.checkpoint import load_model
from minewatch.train.export import export_onnx, random_tiles

pytestmark = pytest.mark.torch


def test_export_parity_and_metadata_round_trip(tmp_path, trained_checkpoint, tiny_scenes):
    out = export_onnx(trained_checkpoint, tmp_path / "model.onnx", calibration=tiny_scenes / "val")
    assert out == tmp_path / "model.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # one file, no external data, no temp
    assert out.stat().st_size < 25e6
    proto = onnx.load(str(out), load_external_data=False)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = ModelMeta.from_json(session.get_modelmeta().custom_metadata_map[META_KEY])
    model, ckpt_meta = load_model(trained_checkpoint)
    assert meta == ckpt_meta
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["probs"]
    assert session.get_inputs()[0].shape[1:] == [len(meta.channels), meta.tile_px, meta.tile_px]
    for n in (1, 3):  # dynamic batch
        x = random_tiles(meta, n, seed=n)
        probs = session.run(["probs"], {"input": x})[0]
        with torch.no_grad():
            expected = torch.sigmoid(model(torch.from_numpy(x))).numpy()
        assert probs.shape == (n, len(meta.classes))
        assert np.max(np.abs(probs - expected)) <= 1e-4


def test_export_refuses_a_model_that_fails_parity(tmp_path, trained_checkpoint, tiny_scenes, monkeypatch):
    real = export_mod.onnx_probs
    monkeypatch.setattr(export_mod, "onnx_probs", lambda session, x, batch=32: real(session, x, batch) + 1e-3)
    with pytest.raises(UserError, match="disagrees with the checkpoint.*nothing was written"):
        export_onnx(trained_checkpoint, tmp_path / "model.onnx", calibration=tiny_scenes / "val")
    assert list(tmp_path.iterdir()) == []


def test_int8_export_records_its_cost(tmp_path, trained_checkpoint, tiny_scenes):
    fp32 = export_onnx(trained_checkpoint, tmp_path / "fp32.onnx", calibration=tiny_scenes / "val")
    int8 = export_onnx(trained_checkpoint, tmp_path / "int8.onnx", int8=True, calibration=tiny_scenes / "val")
    assert int8.stat().st_size < fp32.stat().st_size / 2
    proto = onnx.load(str(int8))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[META_KEY])
    assert {"int8_speedup", "int8_max_prob_diff"} <= set(meta["metrics"])
    x = random_tiles(ModelMeta.model_validate(meta), 4)
    p8 = session.run(["probs"], {"input": x})[0]
    p32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(["probs"], {"input": x})[0]
    assert np.max(np.abs(p8 - p32)) < 0.1


def test_export_needs_an_onnx_name(tmp_path, trained_checkpoint):
    with pytest.raises(UserError, match=r"\.onnx"):
        export_onnx(trained_checkpoint, tmp_path / "model.bin")
