"""The smoke preset end to end on generated scenes: generation is cached, training runs, export checks parity
on a freshly generated scene."""

from __future__ import annotations

import csv

import onnxruntime as ort
import pytest

from minewatch.model_meta import META_KEY, ModelMeta
from minewatch.train.config import GeneratedScenes
from minewatch.train.dataset import ensure_generated
from minewatch.train.export import export_onnx
from minewatch.train.loop import train_from_config

pytestmark = pytest.mark.torch


def test_generated_scenes_are_cached_and_reused(tmp_path):
    spec = GeneratedScenes(seed=300, count=2, size=128)
    first = ensure_generated(spec, tmp_path, "drone")
    assert [f.name for f in first] == ["scene_000300", "scene_000301"]
    assert all((f / "optical.tif").is_file() and (f / "scene.json").is_file() for f in first)
    stamp = (first[0] / "optical.tif").stat().st_mtime_ns
    again = ensure_generated(GeneratedScenes(seed=300, count=3, size=128), tmp_path, "drone")
    assert again[:2] == first and (again[2] / "scene.json").is_file()
    assert (first[0] / "optical.tif").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not list(first[0].parent.glob(".gen-*"))  # no half-written scenes left behind


def test_scenes_generated_in_parallel_equal_those_generated_in_turn(tmp_path):
    spec = GeneratedScenes(seed=310, count=3, size=128, recipe="small")
    in_turn = ensure_generated(spec, tmp_path / "one", "drone")
    parallel = ensure_generated(spec, tmp_path / "two", "drone", processes=2)
    for a, b in zip(in_turn, parallel, strict=True):
        assert a.name == b.name
        for name in ("optical.tif", "thermal.tif", "truth.geojson"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), (a.name, name)
    assert not list(parallel[0].parent.glob(".gen-*"))


def test_smoke_preset_trains_on_generated_scenes_and_exports(tmp_path):
    best = train_from_config("smoke", out=tmp_path / "run", device="cpu")
    with open(tmp_path / "run" / "log.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    cached = sorted(p.name for p in (tmp_path / "run" / "data").glob("synth-drone-*/scene_*"))
    assert cached == [f"scene_{s:06d}" for s in range(100, 106)]
    onnx_path = export_onnx(best, tmp_path / "smoke.onnx")  # parity on a freshly generated scene
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = ModelMeta.from_json(session.get_modelmeta().custom_metadata_map[META_KEY])
    assert meta.profile == "drone" and meta.tile_px == 64 and meta.stride_m == 16
