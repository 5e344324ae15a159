"""Training checkpoints: plain dicts of tensors and JSON-able values, written with ``torch.save`` and read
with ``weights_only=True`` only, so loading a file can never run code.

A checkpoint holds the model metadata (:class:`~minewatch.model_meta.ModelMeta` JSON), the validated
config, model/optimizer/scheduler/scaler states, counters and every random-number state, so ``--resume``
continues exactly where the run stopped.
"""

from __future__ import annotations

import logging
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minewatch.atomic import atomic_path
from minewatch.errors import UserError, first_line
from minewatch.model_meta import ModelMeta

log = logging.getLogger(__name__)

FORMAT = "minewatch-checkpoint"
REQUIRED_KEYS = ("format", "meta", "config", "model_state")
_FIX = "give a .pt file written by 'minewatch train' (runs/<name>/best.pt or last.pt)"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous file intact)."""
    data = {"format": FORMAT, **payload}
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a minewatch checkpoint; anything else is refused with a :class:`UserError`.

    ``weights_only=True`` restricts unpickling to tensors and plain containers: a file carrying code
    (a malicious pickle) fails here instead of running.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError("checkpoint not found", path=p, fix=_FIX)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a foreign pickle
            data = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError, OSError, UnicodeDecodeError) as exc:
        reason = "it holds objects other than tensors" if isinstance(exc, pickle.UnpicklingError) else \
            "it is damaged or not a PyTorch file"
        raise UserError(f"not a minewatch checkpoint ({reason})", path=p, fix=_FIX) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError("not a minewatch checkpoint (no minewatch format marker)", path=p, fix=_FIX)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"not a minewatch checkpoint (lacks {', '.join(missing)})", path=p, fix=_FIX)
    if not isinstance(data["model_state"], dict) or not all(
            isinstance(v, torch.Tensor) for v in data["model_state"].values()):
        raise UserError("not a minewatch checkpoint (model_state is not a state_dict)", path=p, fix=_FIX)
    if not isinstance(data["meta"], str):
        raise UserError("not a minewatch checkpoint (meta is not JSON text)", path=p, fix=_FIX)
    data["meta_obj"] = ModelMeta.from_json(data["meta"], source=str(p))
    return data


def save_weights(checkpoint: str | Path, out: str | Path) -> Path:
    """The weights, metadata and config of ``checkpoint`` alone (no optimiser, no history): what a later
    training run starts from with ``model.init`` (a few MB, safe to load with ``weights_only``)."""
    ckpt = load_checkpoint(checkpoint)
    return save_checkpoint(Path(out), {k: ckpt[k] for k in ("meta", "config", "model_state")})


def checkpoint_meta(path: str | Path) -> ModelMeta:
    """Only the model metadata of a checkpoint."""
    return load_checkpoint(path)["meta_obj"]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMeta]:
    """The trained logits model (eval mode) and its metadata."""
    from minewatch.train.models import build_model

    ckpt = load_checkpoint(path)
    meta: ModelMeta = ckpt["meta_obj"]
    model_cfg = (ckpt.get("config") or {}).get("model") or {}
    model = build_model(meta.backbone, len(meta.channels), len(meta.classes), n_masks=len(meta.masks),
                        decoder_channels=int(model_cfg.get("decoder_channels") or 32),
                        decoder_fine_channels=int(model_cfg.get("decoder_fine_channels") or 0))
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint weights do not fit its metadata ({first_line(exc)})",
                        path=path, fix=_FIX) from None
    return model.to(device).eval(), meta


# ------------------------------------------------------------------------------- random states
def rng_state() -> dict[str, Any]:
    """Every random state a training step touches, as tensors and plain values (weights_only-safe)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (the CUDA part only when CUDA is in use)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
