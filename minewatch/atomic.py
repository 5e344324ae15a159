"""Write outputs to a temporary file beside the target and rename, so nothing is ever half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from minewatch.errors import UserError


def check_writable(path: str | Path) -> Path:
    """Refuse an output path whose folder does not exist or cannot be written, before any work."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError("the output folder does not exist", path=p, fix=f"create {parent} first")
    if not os.access(parent, os.W_OK):
        raise UserError("the output folder is not writable", path=p, fix="choose a writable location")
    if p.is_dir():
        raise UserError("the output path is a folder", path=p, fix="give a file name")
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
