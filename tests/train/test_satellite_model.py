"""The scan chooses between the drone and the satellite model by the raster (#19), with a tiny satellite model
trained here (the committed one exists only once `make model-satellite` has run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_scenes import make_scene

from minewatch.infer.registry import MODELS_ENV

THREADS = 2


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A models folder: the committed drone model and a tiny satellite (RGBN) model trained on tiny scenes."""
    from minewatch.infer.predictor import default_model_path
    from minewatch.train.export import export_onnx
    from minewatch.train.loop import train_from_config

    root = tmp_path_factory.mktemp("satellite-model")
    for seed in (21, 22):
        make_scene(root / "train" / f"s{seed}", seed, n_sites=5, bands=4)
    make_scene(root / "val" / "s31", 31, n_sites=5, bands=4)
    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"data:\n  train_scenes: [{root / 'train'}]\n  val_scenes: [{root / 'val'}]\n  train_stride_m: 16\n"
        "  samples_per_epoch: 64\n  norm_tiles: 32\nmodel: {profile: satellite, tile_m: 16}\n"
        f"optim: {{epochs: 1, batch_size: 16}}\nthreads: {THREADS}\n", encoding="utf-8")
    ckpt = train_from_config(cfg, out=root / "run", device="cpu")
    folder = root / "models"
    folder.mkdir()
    export_onnx(ckpt, folder / "minewatch-satellite.onnx")
    shutil.copy(default_model_path(), folder / "minewatch-drone.onnx")
    return folder


def test_the_scan_picks_the_model_of_the_raster(models, tmp_path, monkeypatch):
    from minewatch.infer.inputs import SceneInput
    from minewatch.infer.many import Cluster, ScanOptions, run_many
    from minewatch.infer.model_file import read_model_meta
    from minewatch.infer.scan import ScanRequest, run_scan

    monkeypatch.setenv(MODELS_ENV, str(models))
    assert read_model_meta(models / "minewatch-satellite.onnx").optical_bands == ("red", "green", "blue", "nir")
    drone = make_scene(tmp_path / "drone", 41, n_sites=2, bands=3)
    sat = make_scene(tmp_path / "sat", 42, n_sites=2, bands=4)
    for folder, name, profile in ((drone, "minewatch-drone.onnx", "drone"), (sat, "minewatch-satellite.onnx",
                                                                            "satellite")):
        result = run_scan(ScanRequest(raster=folder / "optical.tif", thermal=folder / "thermal.tif",
                                      out=tmp_path / f"{profile}.geojson"))
        assert result.provenance["model"] == name
        model_line = dict(result.report.lines)["model"]
        assert f"chosen for the raster: the {profile} model" in model_line
    # --profile insists: the 4-band raster's red, green and blue through the drone model
    insisted = run_scan(ScanRequest(raster=sat / "optical.tif", out=tmp_path / "insist.geojson", profile="drone"))
    assert insisted.provenance["model"] == "minewatch-drone.onnx"
    # several scenes, one of each: each picks its own
    scenes = [SceneInput("d", str(drone / "optical.tif"), str(drone / "thermal.tif"), origin="d"),
              SceneInput("s", str(sat / "optical.tif"), str(sat / "thermal.tif"), origin="s")]
    summary = run_many(scenes, tmp_path / "run", ScanOptions(), Cluster(in_process=True))
    assert [o.model for o in summary.outcomes] == ["minewatch-drone.onnx", "minewatch-satellite.onnx"], \
        [o.reason for o in summary.outcomes]


def test_the_card_of_a_satellite_model_is_its_own(models):
    from minewatch.train.model_card import card_path, card_sets

    assert card_path(models / "minewatch-satellite.onnx", "satellite").name == "MODEL_CARD-satellite.md"
    assert card_path(models / "minewatch-drone.onnx", "drone").name == "MODEL_CARD.md"
    assert card_sets("satellite").recipe == "satellite-05m"
