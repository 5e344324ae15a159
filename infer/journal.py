"""A scan journal: tile results appended as they are computed, so a killed scan resumes where it was.

One JSON line per batch after a header line that fingerprints the scan (raster, model, tiling). A
journal whose header does not match the scan being resumed is refused rather than silently mixed in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from minewatch.errors import UserError

FSYNC_EVERY_S = 2.0


def journal_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.journal")


class Journal:
    """Append-only record of finished tiles."""

    def __init__(self, path: Path, header: dict[str, Any], *, resume: bool) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        self._synced = 0.0
        self.header = header
        if resume and path.exists():
            self._load(header)
            self._fh = open(path, "a", encoding="utf-8")
        else:
            self._fh = open(path, "w", encoding="utf-8")
            self._write(header)

    def _load(self, header: dict[str, Any]) -> None:
        raw = self.path.read_text(encoding="utf-8")
        lines = raw.split("\n")
        try:
            stored = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            stored = {}
        same = {k: v for k, v in stored.items() if k not in ("run_id", "created")}
        want = {k: v for k, v in header.items() if k not in ("run_id", "created")}
        if same != want:
            raise UserError("the scan journal belongs to a different scan", path=self.path,
                            fix="rerun without --resume to start over")
        self.header = stored  # keep the interrupted run's id and time
        good = len(lines[0]) + 1
        for line in lines[1:]:
            try:
                batch = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by the kill: it and anything after it are recomputed
            for rec in batch:
                self.done[rec["tile_id"]] = rec
            good += len(line.encode("utf-8")) + 1
        with open(self.path, "r+b") as fh:
            fh.truncate(min(good, len(raw.encode("utf-8"))))

    def _write(self, obj: Any) -> None:
        """Flush every record (a killed process loses nothing the OS has); fsync at most every
        ``FSYNC_EVERY_S`` seconds (what a power cut could lose is recomputed on resume)."""
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._fh.flush()
        now = time.monotonic()
        if now - self._synced >= FSYNC_EVERY_S:
            os.fsync(self._fh.fileno())
            self._synced = now

    def append(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._write(records)
            for rec in records:
                self.done[rec["tile_id"]] = rec

    def close(self, *, remove: bool) -> None:
        self._fh.close()
        if remove and self.path.exists():
            self.path.unlink()
