"""Recognising a model file and reading its metadata without torch (for .onnx)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from minewatch.errors import UserError, first_line, require_utf8_path
from minewatch.model_meta import META_KEY, ModelMeta

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_threads(threads: int | None = None) -> int:
    """Threads for the model while a scan reads: ``threads``, else $MINEWATCH_THREADS, else cores - 1.

    The reader thread needs a core of its own; on 2 cores one model thread is 1.3-1.7x faster than two
    (BENCHMARKS.md, "One change at a time").
    """
    return threads or int(os.environ.get("MINEWATCH_THREADS", "0") or 0) or max(1, (os.cpu_count() or 2) - 1)


def onnx_session(path: str | Path, *, threads: int | None = None):
    """An onnxruntime CPU session, with a clear error for files that are not ONNX models."""
    import onnxruntime as ort

    p = Path(path)
    require_utf8_path(p, "model")
    if not p.is_file():
        raise UserError("model file not found", path=p,
                        fix="check the path, or leave --model out to use the committed model")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Leave a core to the reader thread and do not spin-wait between batches.
    opts.intra_op_num_threads = model_threads(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise UserError(f"not a valid ONNX model ({first_line(exc)})", path=p,
                        fix="give a model.onnx written by 'minewatch export'") from None


def meta_from_session(session, path: str | Path) -> ModelMeta:
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise UserError("ONNX file is not a minewatch model (no 'minewatch' metadata)", path=path,
                        fix="export the model with 'minewatch export CHECKPOINT -o model.onnx'")
    return ModelMeta.from_json(props[META_KEY], source=str(path))


def read_model_meta(path: str | Path) -> ModelMeta:
    """Metadata of a .onnx model (torch-free) or a training checkpoint (needs torch)."""
    p = Path(path)
    if p.suffix.lower() in CHECKPOINT_SUFFIXES:
        from minewatch.train.checkpoint import checkpoint_meta

        return checkpoint_meta(p)
    return meta_from_session(onnx_session(p), p)
