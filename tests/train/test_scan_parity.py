"""ONNX (onnxruntime) and the checkpoint (torch) give the same tiles and the same sites on the same scene."""

import geopandas as gpd
import numpy as np
import pytest

from minewatch.classes import CLASSES
from minewatch.infer.scan import ScanRequest, run_scan
from minewatch.infer.sites import build_sites
from minewatch.train.export import export_onnx

pytestmark = pytest.mark.torch

META = dict(scene_id="s", acquired=None, sensor="drone", model_name="m", model_sha256="0", run_id="r", created="c")


def widest_gap_threshold(p: np.ndarray) -> float:
    """A threshold in the widest gap between distinct probabilities, so no tile sits on the fence."""
    values = np.unique(np.round(p, 6))
    if len(values) < 2:
        pytest.fail("the model gives one probability for every tile; it cannot separate anything")
    i = int(np.argmax(np.diff(values)))
    return float((values[i] + values[i + 1]) / 2)


def test_onnx_and_torch_scans_give_the_same_sites(make_config, tiny_scenes, tmp_path):
    from minewatch.train.loop import train_from_config

    # Enough steps for BatchNorm's running statistics (mobilenet's momentum is 0.01) to leave their initial
    # values: with too few, eval-mode outputs are nearly constant and every threshold sits on a knife edge.
    cfg = make_config(epochs=3)
    cfg.write_text(cfg.read_text().replace("  norm_tiles: 64\n", "  norm_tiles: 64\n  samples_per_epoch: 1024\n"))
    checkpoint = train_from_config(cfg, out=tmp_path / "run", device="cpu")
    onnx_path = export_onnx(checkpoint, tmp_path / "model.onnx")
    scene = sorted((tiny_scenes / "val").iterdir())[0]
    tiles = {}
    for name, model in (("onnx", onnx_path), ("torch", checkpoint)):
        run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                             out=tmp_path / f"{name}.geojson", tiles_out=tmp_path / f"{name}.gpkg", batch=8))
        tiles[name] = gpd.read_file(tmp_path / f"{name}.gpkg", engine="pyogrio")
    a, b = tiles["onnx"], tiles["torch"]
    cols = [f"p_{c}" for c in CLASSES]
    assert (a["tile_id"] == b["tile_id"]).all()
    assert np.abs(a[cols].to_numpy() - b[cols].to_numpy()).max() <= 1e-4
    assert a[cols].to_numpy().std(axis=0).min() > 1e-3  # the model separates tiles: the sites mean something
    thresholds = {c: widest_gap_threshold(a[f"p_{c}"].to_numpy()) for c in CLASSES}
    sa, sb = build_sites(a, thresholds, **META), build_sites(b, thresholds, **META)
    assert len(sa) > 0 and len(sa) == len(sb)
    assert all(ga.equals(gb) for ga, gb in zip(sa.geometry, sb.geometry, strict=True))
    assert sa["classes"].tolist() == sb["classes"].tolist()
