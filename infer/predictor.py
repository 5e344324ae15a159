"""One interface, two engines: onnxruntime on the CPU (no torch) or torch on a GPU (checkpoints)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from minewatch.errors import UserError
from minewatch.infer.model_file import (
    CHECKPOINT_SUFFIXES,
    file_sha256,
    meta_from_session,
    model_threads,
    onnx_session,
)
from minewatch.model_meta import ModelMeta

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "minewatch-drone.onnx"  # the drone model: what scans used before #19


class Predictor(Protocol):
    meta: ModelMeta
    path: Path
    sha256: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, K) probabilities."""

    def predict_dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(N, K) probabilities, and for a model with a dense head (``meta.masks``) the mask probabilities
        (P, M, h, w) of the P windows where some class reaches its threshold and their indexes (P,) in the batch
        (None, None without a dense head)."""


class OnnxPredictor:
    """onnxruntime on the CPU: what field laptops run."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        self.session = onnx_session(path, threads=threads)
        self.meta = meta_from_session(self.session, path)
        self.sha256 = file_sha256(path)
        self._input = self.session.get_inputs()[0].name
        check_graph(self.session, self.meta, path)
        self._outputs = [o.name for o in self.session.get_outputs()]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(self._outputs[:1], {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def predict_dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        x = {self._input: np.ascontiguousarray(batch, dtype=np.float32)}
        if not self.meta.masks:
            return self.session.run(self._outputs[:1], x)[0], None, None
        probs, masks, index = self.session.run([self._outputs[0], "masks", "mask_index"], x)
        return probs, masks, index.astype(np.int64)


def check_graph(session, meta: ModelMeta, path: Path) -> None:
    """Refuse an ONNX model whose graph does not take or give what its metadata says: a metadata file edited
    by hand (or a graph swapped) would otherwise scan to silently wrong sites."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise UserError(f"the model graph has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1+",
                        path=path, fix="give a model.onnx written by 'minewatch export'")
    shape = list(inputs[0].shape)
    want = {1: len(meta.channels), 2: meta.tile_px, 3: meta.tile_px}
    if len(shape) != 4 or any(isinstance(shape[i], int) and shape[i] != n for i, n in want.items()):
        raise UserError(f"the model graph takes input {shape}, its metadata says (batch, {len(meta.channels)}, "
                        f"{meta.tile_px}, {meta.tile_px})", path=path,
                        fix="re-export the model with 'minewatch export' so graph and metadata agree")
    out = list(outputs[0].shape)
    if len(out) != 2 or (isinstance(out[1], int) and out[1] != len(meta.classes)):
        raise UserError(f"the model graph outputs {out}, its metadata lists {len(meta.classes)} class(es) "
                        f"({', '.join(meta.classes)})", path=path,
                        fix="re-export the model with 'minewatch export' so graph and metadata agree")
    if meta.masks:
        named = {o.name: list(o.shape) for o in outputs}
        want_m = {1: len(meta.masks), 2: meta.mask_px, 3: meta.mask_px}
        m = named.get("masks")
        if m is None or "mask_index" not in named or len(m) != 4 or any(
                isinstance(m[i], int) and m[i] != n for i, n in want_m.items()):
            raise UserError(f"the model's metadata lists masks ({', '.join(meta.masks)}, {meta.mask_px} px) but "
                            f"its graph outputs {sorted(named)} {m or ''}", path=path,
                            fix="re-export the model with 'minewatch export' so graph and metadata agree")


class TorchPredictor:
    """A training checkpoint in eager torch, on CUDA (AMP, channels_last) or the CPU."""

    def __init__(self, path: Path, device: str) -> None:
        import torch

        from minewatch.train.checkpoint import load_model

        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available", path=path,
                            fix="use --device cpu, or export to ONNX for CPU scanning")
        self.path = path
        self.device = torch.device(device)
        self.model, self.meta = load_model(path, self.device)
        self.sha256 = file_sha256(path)
        self._torch = torch
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        else:
            torch.set_num_threads(model_threads())  # the process's intra-op pool: leave the reader a core

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predict_dense(batch)[0]

    def predict_dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        from minewatch.train.models import split_output

        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.device.type == "cuda":
                x = x.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16):
                    logits, mask_logits = split_output(self.model(x))
            else:
                logits, mask_logits = split_output(self.model(x))
            probs = torch.sigmoid(logits.float())
            if mask_logits is None:
                return probs.cpu().numpy(), None, None
            # The windows the exported graph's gate opens for (see minewatch.train.dense.GatedProbabilityModel).
            thr = torch.tensor([self.meta.thresholds[c] for c in self.meta.classes], device=probs.device)
            index = torch.nonzero((probs >= thr).any(dim=1)).reshape(-1)
            masks = torch.sigmoid(mask_logits.float().index_select(0, index))
            return probs.cpu().numpy(), masks.cpu().numpy(), index.cpu().numpy().astype(np.int64)


def default_model_path(profile: str = "drone") -> Path:
    """The committed model of a sensor profile shipped with the package (see infer/registry.py)."""
    from minewatch.infer.registry import committed_model

    return committed_model(profile)


def load_predictor(path: str | Path | None = None, device: str = "cpu") -> Predictor:
    """ONNX files run in onnxruntime (CPU); checkpoints run in torch on ``device``."""
    p = Path(path) if path is not None else default_model_path()
    if not p.exists():
        raise UserError("model file not found", path=p, fix="check the path, or omit --model for the default")
    if p.suffix.lower() in CHECKPOINT_SUFFIXES:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UserError("a checkpoint needs PyTorch, which this install lacks", path=p,
                            fix="export it to ONNX ('minewatch export') or pip install 'minewatch[train]'") from None
        return TorchPredictor(p, device)
    if device == "cuda":
        log.warning("ONNX models run on the CPU here; give a checkpoint (.pt) to use the GPU")
    return OnnxPredictor(p)
