"""The dense head: model outputs, mask targets through the dataset, its loss, training, export and prediction."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from minewatch.datasets.labels import LabelRule
from minewatch.datasets.model_input import InputSpec
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.scene import SceneOpener
from minewatch.datasets.scene_folder import find_scenes
from minewatch.errors import UserError
from minewatch.infer.predictor import OnnxPredictor, TorchPredictor, check_graph
from minewatch.model_meta import META_KEY, ModelMeta, ThermalInput
from minewatch.train.checkpoint import load_model
from minewatch.train.dataset import TileDataset, index_scenes
from minewatch.train.dense import DenseModel, GatedProbabilityModel
from minewatch.train.export import _export_graph, export_onnx, random_tiles
from minewatch.train.loss import DenseLoss
from minewatch.train.models import ProbabilityModel, build_model

pytestmark = pytest.mark.torch

BANDS = ("red", "green", "blue")
THERMAL = ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40)


@pytest.mark.parametrize("fine", [0, 8])
@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18", "efficientnet_b0"])
def test_dense_model_keeps_the_classifier_exactly_and_adds_masks(backbone, fine):
    torch.manual_seed(0)
    plain = build_model(backbone, 5, 3).eval()
    dense = build_model(backbone, 5, 3, n_masks=3, decoder_channels=16, decoder_fine_channels=fine).eval()
    assert isinstance(dense, DenseModel)
    assert any(k.startswith("decoder.fine.") for k in dense.state_dict()) == bool(fine)
    missing = dense.load_state_dict(plain.state_dict(), strict=False).missing_keys  # a classifier initialises it
    assert missing and all(k.startswith("decoder.") for k in missing)
    x = torch.randn(2, 5, 64, 64)
    with torch.no_grad():
        logits, masks = dense(x)
        assert torch.equal(logits, plain(x))
    assert masks.shape == (2, 3, 64, 64)
    probs, mprobs = ProbabilityModel(dense).eval()(x)
    assert torch.allclose(probs, torch.sigmoid(logits)) and torch.allclose(mprobs, torch.sigmoid(masks))
    gated = GatedProbabilityModel(dense, [float(p) for p in probs[0].detach() + 1e-6]).eval()  # window 0 falls short
    with torch.no_grad():
        g_probs, g_masks, index = gated(x)
    keep = (probs >= gated.thresholds).any(dim=1)
    assert torch.equal(index, torch.nonzero(keep).reshape(-1)) and torch.allclose(g_masks, mprobs[index])


def test_dense_loss_leaves_unknown_pixels_out():
    loss = DenseLoss()
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    target = torch.zeros(2, 3, 8, 8)
    target[:, 0, 2:5, 2:5] = 1.0
    target[:, 2] = -1.0  # heat unknown everywhere
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.count_nonzero(logits.grad[:, 2]) == 0  # nothing learnt where heat is unknown
    perfect = torch.where(target[:, :2] > 0, 20.0, -20.0)
    good = loss(torch.cat([perfect, torch.zeros(2, 1, 8, 8)], 1), target)
    assert good < 0.01 < value


def test_dataset_gives_mask_targets_with_heat_unknown_without_thermal(tiny_scenes):
    reader = SceneOpener(load_profile("drone"), 0.5, 100.0, 25.0)
    index = index_scenes(find_scenes([tiny_scenes / "train"]), reader, tile_m=16, stride_m=16, tile_px=32,
                         bands=BANDS, rule=LabelRule(), masks=("container", "cooling", "heat"))
    spec = InputSpec(BANDS, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2), THERMAL, 32)
    ds = TileDataset(index, spec, reader, cache_mb=10)
    assert ds.mask_names == ("container", "cooling", "heat")
    farm = int(np.flatnonzero(ds.targets[:, 0])[0])
    x, y, m = ds[farm]
    assert m.shape == (3, 32, 32) and m.dtype == torch.float32
    assert float(m[0].sum()) > 20 and 0 <= float(m[0].min()) and float(m[0].max()) <= 1  # farm roof, coverage
    valid = x[4] > 0.5  # the thermal raster's grid is offset: the scene's first row has none
    assert valid.float().mean() > 0.9 and (m[2][valid] >= 0).all() and (m[2][~valid] == -1).all()
    none = int(np.flatnonzero(ds.targets.sum(axis=1) == 0)[0])
    assert float(ds[none][2][:2].abs().sum()) == 0
    # the cached target is the same as a fresh one, within the uint8 quantisation
    again = TileDataset(index, spec, reader)[farm][2]
    assert float((again - m).abs().max()) <= 0.5 / 255 + 1e-6
    x[4] = 0  # no thermal: heat unknown, the other masks still learnt
    ds.read = lambda k: x.numpy()  # type: ignore[method-assign]
    _, _, m2 = ds[farm]
    assert (m2[2] == -1).all() and float(m2[0].sum()) > 20


def test_dense_training_exports_both_outputs_with_parity(tmp_path, trained_dense_checkpoint, tiny_scenes):
    model, meta = load_model(trained_dense_checkpoint)
    assert meta.masks == ("container", "cooling", "heat") and meta.mask_px == meta.tile_px
    assert "mask_iou_container" in meta.metrics and json.loads(meta.to_json())["format_version"] == 2
    assert set(meta.mask_area_scale) <= {"container", "cooling"}  # calibrated on validation, like thresholds
    out = export_onnx(trained_dense_checkpoint, tmp_path / "dense.onnx", calibration=tiny_scenes / "val")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probs", "masks", "mask_index"]
    assert session.get_outputs()[1].shape[1:] == [3, meta.tile_px, meta.tile_px]
    assert ModelMeta.from_json(session.get_modelmeta().custom_metadata_map[META_KEY]) == meta
    x = random_tiles(meta, 24, seed=3)
    probs, masks, index = session.run(None, {"input": x})
    with torch.no_grad():
        t_probs, t_masks = ProbabilityModel(model).eval()(torch.from_numpy(x))
    thr = np.array([meta.thresholds[c] for c in meta.classes], dtype=np.float32)
    assert np.max(np.abs(probs - t_probs.numpy())) <= 1e-4
    assert np.array_equal(index, np.flatnonzero((probs >= thr).any(axis=1)))
    if len(index):
        assert np.max(np.abs(masks - t_masks.numpy()[index])) <= 1e-4
    # the predictors agree (a two-epoch model scores near its thresholds: windows within 1e-4 may go either way)
    p_onnx = OnnxPredictor(out).predict_dense(x)
    p_torch = TorchPredictor(trained_dense_checkpoint, "cpu").predict_dense(x)
    undecided = set(np.flatnonzero((np.abs(probs - thr) <= 1e-4).any(axis=1)).tolist())
    assert not (set(p_onnx[2].tolist()) ^ set(p_torch[2].tolist())) - undecided
    assert np.max(np.abs(p_onnx[0] - p_torch[0])) <= 1e-4
    assert OnnxPredictor(out).predict(x).shape == (24, 3)
    proto = onnx.load(str(out))
    del proto.graph.output[1:]
    onnx.save(proto, str(tmp_path / "cut.onnx"))
    with pytest.raises(UserError, match="lists masks"):
        check_graph(ort.InferenceSession(str(tmp_path / "cut.onnx"), providers=["CPUExecutionProvider"]), meta,
                    tmp_path / "cut.onnx")


def test_metadata_without_masks_stays_format_1():
    meta = ModelMeta(model_version="0", backbone="resnet18", classes=("a",), profile="drone", optical_bands=BANDS,
                     channels=(*BANDS, "thermal_dt", "thermal_valid"), mean=(0.0,) * 3, std=(1.0,) * 3,
                     thresholds={"a": 0.5}, gsd_m=0.5, tile_m=32, stride_m=16, tile_px=64, thermal=THERMAL)
    data = json.loads(meta.to_json())
    assert data["format_version"] == 1 and "masks" not in data
    dense = meta.model_copy(update={"masks": ("container",), "mask_px": 64})
    assert ModelMeta.from_json(dense.to_json()).masks == ("container",)
    with pytest.raises(ValueError):
        ModelMeta.model_validate({**json.loads(dense.to_json()), "masks": ["roof"]})
    with pytest.raises(ValueError):
        ModelMeta.model_validate({**json.loads(dense.to_json()), "mask_px": 32})


def test_mask_stats_fit_the_count_scale_near_the_mask():
    from minewatch.train.validation import MaskStats, area_scales

    target = torch.zeros(1, 2, 32, 32)
    target[:, :, 8:16, 8:24] = 1.0  # 128 px of roof (and of fans)
    probs = torch.zeros(1, 2, 32, 32)
    probs[:, :, 8:16, 8:24] = 0.75  # under-confident on the objects
    probs[:, 0, 0, 31] = 0.2  # a faint stray pixel far away: not summed
    stats = MaskStats(("container", "cooling"), margin_px=2)
    stats.add(probs, target)
    s = stats.summary()
    assert s["container"]["iou"] == 1.0 and s["container"]["area_scale"] == pytest.approx(1 / 0.75)
    assert s["container"]["area_ratio"] == pytest.approx((96 + 0.2) / 128)
    assert area_scales({"masks": s}) == pytest.approx({"container": 1 / 0.75, "cooling": 1 / 0.75})
    assert area_scales({"masks": {"container": {"area_scale": 40.0}}}) == {"container": 4.0}  # not trusted
    # masks firing on a look-alike (a window without the class) do not enter the count scale
    yard = torch.zeros(2, 2, 32, 32)
    yard[0] = probs[0]
    yard[1, :, 0:8, 0:8] = 0.9
    both = torch.cat([target, torch.zeros(1, 2, 32, 32)])
    stats = MaskStats(("container", "cooling"), margin_px=2)
    stats.add(yard, both, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert stats.summary()["container"]["area_scale"] == pytest.approx(1 / 0.75)


def test_a_fine_tune_with_a_dense_head_starts_from_a_classifier_checkpoint():
    """model.init of a classifier-only checkpoint: backbone and class head copied, the decoder new; a dense
    checkpoint into a classifier-only model drops its decoder; weights of another model are still refused."""
    from types import SimpleNamespace

    from minewatch.train.run import _load_init

    names = SimpleNamespace(backbone="mobilenet_v3_small", channels=list("abcde"), classes=["x", "y", "z"])
    prep = SimpleNamespace(cfg=SimpleNamespace(model=SimpleNamespace(backbone=names.backbone, init="init.pt",
                                                                      freeze_classifier=False)),
                           meta=names)
    plain = build_model(names.backbone, 5, 3)
    dense = build_model(names.backbone, 5, 3, n_masks=3)
    _load_init(dense, {"meta_obj": names, "model_state": plain.state_dict()}, prep)
    own = dense.state_dict()
    assert all(torch.equal(own[k], v) for k, v in plain.state_dict().items())
    _load_init(build_model(names.backbone, 5, 3), {"meta_obj": names, "model_state": dense.state_dict()}, prep)
    partial = dict(plain.state_dict())
    partial.pop(next(iter(partial)))
    with pytest.raises(UserError, match="1 tensors missing"):
        _load_init(dense, {"meta_obj": names, "model_state": partial}, prep)


def test_a_frozen_fine_tune_trains_the_decoder_alone(tmp_path, make_config, trained_checkpoint):
    """model.freeze_classifier: after training, every backbone and classifier tensor (weights and BatchNorm
    statistics) is the init checkpoint's bit for bit, so tile scores cannot move; the decoder did learn."""
    from minewatch.train.loop import train_from_config

    cfg = make_config(epochs=2, extra="")
    text = cfg.read_text(encoding="utf-8").replace(
        "model: {tile_m: 16}",
        f"model: {{tile_m: 16, masks: [container, cooling, heat], decoder_channels: 16, decoder_fine_channels: 8, "
        f"init: {trained_checkpoint}, freeze_classifier: true}}")
    cfg.write_text(text, encoding="utf-8")
    best = train_from_config(cfg, out=tmp_path / "run", device="cpu")
    before = torch.load(trained_checkpoint, weights_only=True)["model_state"]
    after = torch.load(best, weights_only=True)["model_state"]
    classifier = [k for k in after if not k.startswith("decoder.")]
    assert set(classifier) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in classifier)
    thresholds = [json.loads(torch.load(p, weights_only=True)["meta"])["thresholds"]
                  for p in (trained_checkpoint, best)]
    assert thresholds[0] == thresholds[1]  # the classifier's calibration is kept, not redone
    fresh = build_model("mobilenet_v3_small", 4, 3, n_masks=3, decoder_channels=16,
                        decoder_fine_channels=8).decoder.head.bias
    assert not torch.equal(after["decoder.head.bias"], fresh)  # starts at the prior's bias, whatever the seed
    # the stride-1 level the config asked for is rebuilt from the checkpoint, and exported with the same masks
    model, meta = load_model(best)
    assert model.decoder.fine is not None and any(k.startswith("decoder.fine.") for k in after)
    assert export_onnx(best, tmp_path / "fine.onnx").is_file()  # its own parity checks passed
    open_gate = meta.model_copy(update={"thresholds": {c: 1e-6 for c in meta.classes}})  # masks for every window
    _export_graph(ProbabilityModel(model).eval(), open_gate, tmp_path / "open.onnx")
    x = random_tiles(meta, 8, seed=5)
    probs, masks, index = OnnxPredictor(tmp_path / "open.onnx").predict_dense(x)
    with torch.no_grad():
        _, t_masks = ProbabilityModel(model).eval()(torch.from_numpy(x))
    assert index.tolist() == list(range(8)) and np.max(np.abs(masks - t_masks.numpy())) <= 1e-4


def test_freeze_classifier_needs_an_init_and_masks(make_config):
    from minewatch.train.config import load_train_config

    cfg = make_config(extra="")
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        "model: {tile_m: 16}", "model: {tile_m: 16, masks: [container], freeze_classifier: true}"), encoding="utf-8")
    with pytest.raises(UserError, match="freeze_classifier"):
        load_train_config(cfg)


def test_selecting_by_masks_needs_a_dense_head(make_config):
    from minewatch.train.config import load_train_config

    cfg = make_config(extra="early_stopping: {select_by: map+masks}")
    with pytest.raises(UserError, match="select_by"):
        load_train_config(cfg)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("model: {tile_m: 16}",
                                                           "model: {tile_m: 16, masks: [container]}"), encoding="utf-8")
    assert load_train_config(cfg)[0].early_stopping.select_by == "map+masks"


def test_the_cost_benchmark_scans_the_dense_checkpoints_own_classifier(tmp_path, trained_dense_checkpoint):
    """bench/bench_dense.py compares the head against the same classifier: the classifier-only ONNX file and the
    checkpoint TorchGeo's side builds (with build_model, as bench/tg_child.py does) score like the dense model."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_dense import write_models

    files = write_models(trained_dense_checkpoint, tmp_path)
    dense, meta = load_model(trained_dense_checkpoint)
    x = random_tiles(meta, 8, seed=5)
    with torch.no_grad():
        want = ProbabilityModel(dense).eval()(torch.from_numpy(x))[0].numpy()
    ckpt = torch.load(tmp_path / "classifier.pt", map_location="cpu", weights_only=True)
    plain_meta = json.loads(ckpt["meta"])
    assert not plain_meta.get("masks")  # a classifier: format 1 metadata, no masks listed
    plain = build_model(plain_meta["backbone"], len(plain_meta["channels"]), len(plain_meta["classes"]))
    plain.load_state_dict(ckpt["model_state"])  # strict: no decoder tensors left, none missing
    with torch.no_grad():
        got = ProbabilityModel(plain.eval()).eval()(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(got - want)) <= 1e-5
    session = ort.InferenceSession(str(files["classifier"]), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probs"]
    assert np.max(np.abs(session.run(None, {"input": x})[0] - want)) <= 1e-4
