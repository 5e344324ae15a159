"""Logging set-up and progress bars that stay silent when nobody is watching."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_QUIET = False


def setup_logging(verbosity: int = 0, *, quiet: bool = False) -> None:
    """``verbosity`` 0 = INFO, 1+ = DEBUG; ``quiet`` shows warnings only and hides progress bars."""
    global _QUIET
    _QUIET = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity > 0 else logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_minewatch", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity else "%(message)s"))
    handler._minewatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("rasterio", "pyogrio", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_enabled() -> bool:
    """Bars only on an interactive terminal and never with --quiet."""
    return not _QUIET and sys.stderr.isatty()


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a tqdm bar when a person is watching, else pass it through."""
    if not progress_enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No progress bars for the duration (a scene scanned inside a multi-scene run, which draws its own)."""
    global _QUIET
    before = _QUIET
    _QUIET = True
    try:
        yield
    finally:
        _QUIET = before
