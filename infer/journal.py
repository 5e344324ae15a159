"""A scan journal: tile results appended as they are computed, so a killed scan resumes where it was.

One JSON line per batch after a header line that fingerprints the scan: its settings and, per input file,
its size, modification time and a hash of its first MiB (the header and first blocks of a raster). A
journal whose fingerprint does not match the scan being resumed is refused with the reason, never mixed
in: a raster replaced at the same path must not lend its old tiles to the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minewatch.errors import UserError

FSYNC_EVERY_S = 2.0
HEAD_BYTES = 1 << 20
VOLATILE = ("run_id", "created")
"""Header keys that belong to a run, not to what was scanned."""


def journal_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.journal")


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size, modification time (ns) and sha256 of the first MiB of a file."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        h.update(fh.read(HEAD_BYTES))
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": h.hexdigest()}


def _difference(stored: dict[str, Any], want: dict[str, Any]) -> str | None:
    """Why a stored header does not fit this scan, in words (None when it does)."""
    for key in sorted(set(stored) | set(want)):
        if key in VOLATILE:
            continue
        a, b = stored.get(key), want.get(key)
        if a == b:
            continue
        if key == "inputs" and isinstance(a, dict) and isinstance(b, dict):
            for role in sorted(set(a) | set(b)):
                fa, fb = a.get(role), b.get(role)
                if fa == fb:
                    continue
                if fa is None or fb is None:
                    return f"the {role} was {'not ' if fa is None else ''}given to the interrupted scan"
                changed = [k for k in ("path", "size", "mtime_ns", "head_sha256") if fa.get(k) != fb.get(k)]
                detail = {"path": "its path", "size": f"its size ({fa.get('size')} -> {fb.get('size')} bytes)",
                          "mtime_ns": "its modification time", "head_sha256": "its content"}
                return f"the {role} changed since the interrupted scan: {', '.join(detail[k] for k in changed)}"
        return f"the scan's {key} changed since the interrupted scan ({a} -> {b})"
    return None


class Journal:
    """Append-only record of finished tiles."""

    def __init__(self, path: Path, header: dict[str, Any], *, resume: bool) -> None:
        self.path = path
        self._synced = time.monotonic()  # the first fsync after FSYNC_EVERY_S too: a shorter scan is redone whole
        self.header = header
        self._records: list[str] = []
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
        why = _difference(stored, header) if stored else "its first line is damaged"
        if why:
            raise UserError(f"cannot resume: {why}", path=self.path,
                            fix="rerun without --resume (with --overwrite) to scan from the start")
        self.header = stored  # keep the interrupted run's id and time
        good = len(lines[0].encode("utf-8")) + 1
        for line in lines[1:]:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by the kill: it and anything after it are recomputed
            self._records.append(line)
            good += len(line.encode("utf-8")) + 1
        with open(self.path, "r+b") as fh:
            fh.truncate(min(good, len(raw.encode("utf-8"))))

    def replay(self) -> Iterator[dict[str, Any]]:
        """The records of the interrupted run, once (they are not kept in memory afterwards)."""
        lines, self._records = self._records, []
        for line in lines:
            yield from json.loads(line)

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

    def close(self, *, remove: bool) -> None:
        self._fh.close()
        if remove and self.path.exists():
            self.path.unlink()
