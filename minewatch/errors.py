"""The one exception type that carries a message meant for the user.

Anything raised as :class:`UserError` is printed as one line (what, where, how to fix) and exits with
status 2; every other exception is an internal error (status 1) and shows a traceback only with --debug.
"""

from __future__ import annotations

import os
from pathlib import Path


class UserError(Exception):
    """Bad input: names the file, what is wrong with it and the fix."""

    exit_code = 2

    def __init__(self, problem: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.path = printable_path(path) if path is not None else None
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.problem.rstrip("."))
        if self.fix:
            parts.append(f". Fix: {self.fix.rstrip('.')}")
        return "".join(parts) + "."


def printable_path(path: str | Path) -> str:
    """A path as text that any terminal can print: bytes that are not UTF-8 (kept by Python as surrogate
    escapes) are shown as ``\\xNN`` instead of making the error message itself fail."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut to ``limit`` characters: library errors (GDAL,
    onnxruntime, pydantic) can span pages, and a user message must stay one line."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def require_utf8_path(path: str | Path, what: str) -> None:
    """Refuse a path whose name is not valid UTF-8: GDAL, PROJ and onnxruntime take file names as UTF-8
    text and fail deep inside on such a name."""
    text = os.fspath(path)
    try:
        (text if isinstance(text, str) else os.fsdecode(text)).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"the {what}'s file name is not valid UTF-8, which GDAL cannot open", path=path,
                        fix="rename the file (or its folder) to a UTF-8 name") from None
