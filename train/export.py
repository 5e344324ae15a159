"""Checkpoint -> one self-describing ONNX file for CPU inference, checked against torch before it is written.

The graph takes ``input`` (N, C, H, W) float32 with a dynamic batch and returns ``probs`` (N, K): the
sigmoid is inside, so a predictor needs no torch. A model with a dense head also returns ``masks``
(P, M, H, W) and ``mask_index`` (P,) int64: mask probabilities of the P windows where some class reaches its
calibrated threshold (:class:`~minewatch.train.dense.GatedProbabilityModel`).
``metadata_props["minewatch"]`` carries the :class:`~minewatch.model_meta.ModelMeta` JSON. Weights are
embedded (no external data file).

Parity: probabilities (and masks) from onnxruntime and from torch must agree within 1e-4 on random tiles and
on real tiles of scenes (``--calibration`` folders, else freshly generated ones); a model that fails is never
written. ``int8``: static QDQ quantisation calibrated on those real tiles; its F1 change (at the
calibrated thresholds) and speed-up are logged and recorded in the model's metrics.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from minewatch.atomic import atomic_path, check_writable
from minewatch.datasets.labels import LabelRule
from minewatch.datasets.model_input import InputSpec, tile_input
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.scene import SceneOpener
from minewatch.datasets.scene_folder import find_scenes
from minewatch.errors import UserError
from minewatch.metrics import binary_scores
from minewatch.model_meta import META_KEY, ModelMeta
from minewatch.train.checkpoint import load_checkpoint, load_model
from minewatch.train.dataset import index_scene
from minewatch.train.models import ProbabilityModel

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOL = 1e-4
N_RANDOM = 16
MAX_REAL = 96
PARITY_SEED = 7_331
"""Seed of the scene generated for parity and calibration when no --calibration folder is given."""


@dataclass(frozen=True)
class Tiles:
    """Model inputs (N, C, H, W) and their targets (N, K; zeros where the scene has no truth)."""

    x: np.ndarray
    y: np.ndarray
    source: str


def random_tiles(meta: ModelMeta, n: int = N_RANDOM, seed: int = 0) -> np.ndarray:
    """Inputs of the right layout: normalised optical ~ N(0, 1), thermal excess and validity mixed."""
    rng = np.random.default_rng(seed)
    c = len(meta.channels)
    x = rng.normal(0.0, 1.0, size=(n, c, meta.tile_px, meta.tile_px)).astype(np.float32)
    n_opt = len(meta.optical_bands)
    if c >= n_opt + 2:
        valid = (rng.random(n) < 0.7).astype(np.float32)[:, None, None]
        x[:, n_opt] = np.clip(rng.normal(0.0, 0.5, size=x[:, n_opt].shape), -1, 1) * valid
        x[:, n_opt + 1] = valid
    return x


def real_tiles(meta: ModelMeta, calibration: Path | None, *, rule: LabelRule | None = None, limit: int = MAX_REAL,
               seed: int = 0) -> Tiles:
    """Tiles (and targets) of scene folders: ``calibration`` if given, else a freshly generated scene."""
    with tempfile.TemporaryDirectory(prefix="minewatch-export-") as tmp:
        if calibration is not None:
            folders = [Path(calibration)]
            source = str(calibration)
        else:
            folders = [_generate(meta, Path(tmp))]
            source = f"generated scene (seed {PARITY_SEED}, {meta.profile})"
        return _read_tiles(meta, find_scenes(folders), rule=rule or LabelRule(), limit=limit, seed=seed,
                          source=source)


def _generate(meta: ModelMeta, folder: Path) -> Path:
    from minewatch.datasets.synth import generate_scenes

    profile = load_profile(meta.profile)
    # Five tiles across: ~80 windows at half-tile stride for parity and calibration, made in about a second.
    size = max(64, int(5 * meta.tile_m / profile.optical.gsd_m))
    return generate_scenes(folder, seed=PARITY_SEED, count=1, profile=meta.profile, size=size)[0]


def _read_tiles(meta: ModelMeta, scenes: list, *, rule: LabelRule, limit: int, seed: int,
                source: str) -> Tiles:
    spec = InputSpec.from_meta(meta)
    reader = SceneOpener.for_model(meta)
    stride_m = max(meta.gsd_m, meta.tile_m / 2)
    xs, ys = [], []
    per_scene = max(1, -(-limit // len(scenes)))
    rng = np.random.default_rng(seed)
    for files in scenes:
        windows = index_scene(files, reader, tile_m=meta.tile_m, stride_m=stride_m, tile_px=meta.tile_px,
                              bands=meta.optical_bands, rule=rule, classes=meta.classes)
        if not windows.tiles:
            continue
        pick = np.sort(rng.choice(len(windows.tiles), size=min(per_scene, len(windows.tiles)), replace=False))
        with reader.open_folder(files) as scene:
            for j in pick:
                xs.append(tile_input(scene, windows.tiles[j], spec))
                ys.append(windows.targets[j])
    if not xs:
        raise UserError("no usable windows in the calibration scenes", path=source,
                        fix="give scene folders larger than one tile")
    return Tiles(np.stack(xs).astype(np.float32)[:limit], np.stack(ys)[:limit], source)


def _label_rule(checkpoint: str | Path) -> LabelRule:
    """The label rule the model was trained with (defaults if the config cannot be read back)."""
    config = load_checkpoint(checkpoint).get("config") or {}
    try:
        return LabelRule.model_validate(config.get("labels") or {})
    except ValueError:
        return LabelRule()


def torch_probs(model: torch.nn.Module, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return torch_outputs(model, x, batch)[0]


def torch_outputs(model: torch.nn.Module, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
    """(probs, masks of every window or None) of a :class:`ProbabilityModel`."""
    probs, masks = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(torch.from_numpy(x[i : i + batch]))
            if isinstance(out, tuple):
                probs.append(out[0].numpy())
                masks.append(out[1].numpy())
            else:
                probs.append(out.numpy())
    return np.concatenate(probs), (np.concatenate(masks) if masks else None)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_probs(session, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([session.run(["probs"], {"input": x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def onnx_masks(session, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(masks, window index into ``x``) of a dense graph, over all batches."""
    masks, index = [], []
    for i in range(0, len(x), batch):
        m, idx = session.run(["masks", "mask_index"], {"input": x[i : i + batch]})
        masks.append(m)
        index.append(idx.astype(np.int64) + i)
    return np.concatenate(masks), np.concatenate(index)


def set_metadata(model: onnx.ModelProto, meta: ModelMeta) -> None:
    """Put the ModelMeta JSON under ``metadata_props["minewatch"]`` (replacing an older value)."""
    props = {p.key: p.value for p in model.metadata_props}
    props[META_KEY] = meta.to_json()
    onnx.helper.set_model_props(model, props)


def _export_graph(prob_model: torch.nn.Module, meta: ModelMeta, path: Path) -> None:
    """TorchScript exporter (dynamo=False): stable for these CNNs, a plain single-file graph."""
    import warnings

    from minewatch.train.dense import GatedProbabilityModel

    dummy = torch.zeros(2, len(meta.channels), meta.tile_px, meta.tile_px)
    graph: torch.nn.Module = prob_model
    outputs, axes = ["probs"], {"input": {0: "batch"}, "probs": {0: "batch"}}
    if meta.masks:
        graph = GatedProbabilityModel(prob_model.model, [meta.thresholds[c] for c in meta.classes]).eval()
        outputs += ["masks", "mask_index"]
        axes.update({"masks": {0: "positives"}, "mask_index": {0: "positives"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is 'legacy' now
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # nonzero: the gate's size is data-dependent
        torch.onnx.export(graph, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(path))
    if meta.masks:  # the mask dims the exporter could not infer through the gate
        dims = model.graph.output[outputs.index("masks")].type.tensor_type.shape.dim
        for d, value in zip(dims[1:], (len(meta.masks), meta.mask_px, meta.mask_px), strict=True):
            d.ClearField("dim_param")
            d.dim_value = value
    set_metadata(model, meta)
    model.producer_name = "minewatch"
    onnx.checker.check_model(model)
    onnx.save(model, str(path), save_as_external_data=False)


def check_parity(session, model: torch.nn.Module, x: np.ndarray, what: str, *, tol: float = PARITY_TOL,
                 thresholds: np.ndarray | None = None) -> float:
    """Max |p_onnx - p_torch| over probabilities and, for a dense model, masks; raises when above ``tol``.

    Masks are compared on the windows both gate open (``thresholds``); a window the two gates disagree on must
    have a probability within ``tol`` of its threshold.
    """
    p_torch, m_torch = torch_outputs(model, x)
    p_onnx = onnx_probs(session, x)
    diff = float(np.max(np.abs(p_onnx - p_torch)))
    n_masked = 0
    if m_torch is not None:
        assert thresholds is not None
        m_onnx, index = onnx_masks(session, x)
        gate = np.flatnonzero((p_torch >= thresholds[None, :]).any(axis=1))
        undecided = set(np.flatnonzero((np.abs(p_torch - thresholds[None, :]) <= tol).any(axis=1)).tolist())
        if (set(gate.tolist()) ^ set(index.tolist())) - undecided:
            diff = max(diff, 1.0)
            log.info("the ONNX gate opened for windows %s, torch's for %s", index.tolist(), gate.tolist())
        common = np.isin(index, gate)
        if common.any():
            diff = max(diff, float(np.max(np.abs(m_onnx[common] - m_torch[index[common]]))))
        n_masked = int(common.sum())
    log.info("parity on %d %s tiles%s: max |dp| = %.2e", len(x), what,
             f" ({n_masked} with masks)" if m_torch is not None else "", diff)
    if not diff <= tol:
        raise UserError(
            f"the exported model disagrees with the checkpoint on {what} tiles (max probability difference "
            f"{diff:.2e} > {tol:.0e}); nothing was written",
            fix="report this with 'minewatch info'; try another torch/onnx version",
        )
    return diff


def export_onnx(checkpoint: str | Path, out: str | Path, *, int8: bool = False,
                calibration: str | Path | None = None) -> Path:
    """Export ``checkpoint`` to ``out`` (fp32, or int8 QDQ with ``int8``), after parity checks; returns ``out``."""
    out = check_writable(Path(out))
    if out.suffix.lower() != ".onnx":
        raise UserError("the output must be an .onnx file", path=out, fix="name it e.g. model.onnx")
    model, meta = load_model(checkpoint)
    rule = _label_rule(checkpoint)
    prob_model = ProbabilityModel(model).eval()
    calibration = Path(calibration) if calibration is not None else None
    real = real_tiles(meta, calibration, rule=rule)
    with tempfile.TemporaryDirectory(prefix=".minewatch-export-", dir=out.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export_graph(prob_model, meta, fp32)
        session = _session(fp32)
        thresholds = np.array([meta.thresholds[c] for c in meta.classes], dtype=np.float32)
        check_parity(session, prob_model, random_tiles(meta), "random", thresholds=thresholds)
        check_parity(session, prob_model, real.x, f"real ({real.source})", thresholds=thresholds)
        final = fp32
        if int8:
            final = _quantise(fp32, Path(tmp) / "model-int8.onnx", meta, real, session)
        size_mb = final.stat().st_size / 1e6
        with atomic_path(out) as target:
            target.write_bytes(final.read_bytes())
    log.info("wrote %s (%.1f MB, %s, opset %d)", out, size_mb, "int8 QDQ" if int8 else "fp32", OPSET)
    return out


def _quantise(fp32: Path, path: Path, meta: ModelMeta, real: Tiles, fp32_session) -> Path:
    """Static QDQ int8 (per-channel weights), calibrated on real tiles; logs F1 change and speed-up."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prep = path.with_name("model-prep.onnx")
    try:
        quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=True)
    except Exception as exc:  # noqa: BLE001 - pre-processing only helps; quantise the plain graph instead
        log.debug("quantisation pre-processing skipped: %s", exc)
        prep = fp32

    class TileReader(CalibrationDataReader):
        """Calibration batches of real tiles."""

        def __init__(self, x: np.ndarray, batch: int = 8) -> None:
            self.batches = iter([{"input": x[i : i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    reader = TileReader(real.x)
    quantize_static(str(prep), str(path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    int8_session = _session(path)
    p32, p8 = onnx_probs(fp32_session, real.x), onnx_probs(int8_session, real.x)
    figures: dict[str, float] = {"int8_max_prob_diff": float(np.max(np.abs(p32 - p8)))}
    parts = []
    for k, name in enumerate(meta.classes):
        thr = meta.thresholds.get(name, 0.5)
        y = real.y[:, k] > 0
        agree = float(np.mean((p32[:, k] >= thr) == (p8[:, k] >= thr)))
        figures[f"int8_agreement_{name}"] = agree
        if y.any():
            delta = binary_scores(y, p8[:, k], thr)["f1"] - binary_scores(y, p32[:, k], thr)["f1"]
            figures[f"int8_f1_delta_{name}"] = float(delta)
            parts.append(f"{name} F1 {delta:+.3f}")
        else:
            parts.append(f"{name} agreement {agree:.3f}")
    speedup = _speed(fp32_session, real.x) / _speed(int8_session, real.x)
    figures["int8_speedup"] = float(speedup)
    log.info("int8 on %d tiles of %s: %s; max |dp| %.3f; speed-up x%.2f", len(real.x), real.source,
             ", ".join(parts), figures["int8_max_prob_diff"], speedup)
    quantised = onnx.load(str(path))
    set_metadata(quantised, meta.model_copy(update={"metrics": {**meta.metrics, **figures}}))
    onnx.save(quantised, str(path), save_as_external_data=False)
    return path


def _speed(session, x: np.ndarray, repeats: int = 5) -> float:
    """Seconds per tile (best of ``repeats``) on batches of 32."""
    batch = x[:32]
    session.run(["probs"], {"input": batch})
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(["probs"], {"input": batch})
        best = min(best, time.perf_counter() - t0)
    return best / len(batch)
