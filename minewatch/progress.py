"""Logging set-up and progress bars that stay silent when nobody is watching."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
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


LOG_EVERY_S = 10.0
"""Without a terminal (a log file, a batch job), long work says how far it is this often."""


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             log_every_s: float = LOG_EVERY_S) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar when a person is watching; otherwise log a progress line every
    ``log_every_s`` seconds (done / total, rate, time left), so a log shows a long run is alive."""
    if progress_enabled():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        return
    if _QUIET:
        yield from items
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= log_every_s:
            last = now
            logging.getLogger("minewatch.progress").info("%s", progress_line(desc, done, total, now - start, unit))


def progress_line(desc: str, done: int, total: int | None, seconds: float, unit: str) -> str:
    """``scan: 12,000 / 63,000 tile (19 %), 850 tile/s, about 60 s left``."""
    rate = done / seconds if seconds > 0 else 0.0
    text = f"{desc}: {done:,}"
    if total:
        text += f" / {total:,} {unit} ({100 * done / total:.0f} %)"
    else:
        text += f" {unit}"
    text += f", {rate:,.0f} {unit}/s" if rate >= 10 else f", {rate:.2g} {unit}/s"
    if total and rate > 0:
        text += f", about {max(0.0, (total - done) / rate):,.0f} s left"
    return text


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No progress bars or progress lines for the duration (a scene scanned inside a multi-scene run, which
    reports scenes, not windows)."""
    global _QUIET
    before = _QUIET
    _QUIET = True
    try:
        yield
    finally:
        _QUIET = before
