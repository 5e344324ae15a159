"""Which device a training process runs on."""

from __future__ import annotations

import torch

from minewatch.errors import UserError
from minewatch.train import ddp


def pick_device(name: str, info: ddp.DistInfo | None = None) -> torch.device:
    """``auto`` = cuda > mps > cpu; under DDP on CUDA each process takes its LOCAL_RANK GPU."""
    info = info or ddp.DistInfo()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("CUDA was asked for but no GPU is usable", fix="use --device cpu (or auto)")
        return torch.device("cuda", info.local_rank % max(1, torch.cuda.device_count()))
    if name == "mps" and not _mps_available():
        raise UserError("MPS was asked for but is not available", fix="use --device cpu (or auto)")
    return torch.device(name)


def _mps_available() -> bool:
    """Older or CPU-only builds of torch have no ``torch.backends.mps``."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
