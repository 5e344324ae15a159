"""The outputs of one scan: checked against every input before any work, never replaced by accident,
written under temporary names and renamed together at the end, and guarded so two scans never write the
same set at once.

A scan that fails while writing leaves the previous outputs as they were (not new sites beside old tiles);
one that is killed leaves only its journal (for ``--resume``) and temporary files that the next run of the
same outputs removes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from minewatch.atomic import check_writable
from minewatch.errors import UserError, first_line, printable_path, require_utf8_path

log = logging.getLogger(__name__)

FLAGS = {"out": "-o", "tiles_out": "--tiles-out", "heatmap": "--heatmap", "quicklook": "--quicklook",
         "lone_out": "the lone sites file"}
SUFFIXES = {"out": (".geojson", ".json", ".gpkg"), "tiles_out": (".gpkg",), "heatmap": (".tif", ".tiff"),
            "quicklook": (".png",), "lone_out": (".geojson",)}
KINDS = {"out": "candidate sites (GeoJSON, or GeoPackage)", "tiles_out": "tile scores (GeoPackage)",
         "heatmap": "a Cloud Optimized GeoTIFF", "quicklook": "a PNG map", "lone_out": "GeoJSON"}
NO_SPACE_TEXT = ("no space left", "disk full", "disk quota")


def same_path(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file: after resolving symbolic links and ``..``, or as two
    hard links of one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_no_space(exc: BaseException) -> bool:
    """A full disk, whichever library reports it (OSError 28, or GDAL's and pyogrio's own errors)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return any(t in text for t in NO_SPACE_TEXT)


@dataclass
class OutputSet:
    """The files one scan writes (``role`` -> path) and the temporary names they are written under."""

    targets: dict[str, Path]
    run_id: str
    extra: list[Path] = field(default_factory=list)  # side files (QGIS styles) of the targets
    temps: dict[Path, Path] = field(default_factory=dict)

    @classmethod
    def check(cls, targets: Mapping[str, Path | None], inputs: Mapping[str, Path | None], *, run_id: str,
              overwrite: bool, resume: bool) -> OutputSet:
        """Refuse, before any work: a wrong suffix, a folder that is missing or read-only, two outputs on
        one file, an output on an input, and an existing output without ``--overwrite`` (or ``--resume``)."""
        given = {role: Path(p) for role, p in targets.items() if p is not None}
        for role, path in given.items():
            require_utf8_path(path, FLAGS[role] + " output")
            if path.suffix.lower() not in SUFFIXES[role]:
                raise UserError(f"{FLAGS[role]} is written as {KINDS[role]}", path=path,
                                fix=f"name it *{SUFFIXES[role][0]}")
            check_writable(path)
        roles = list(given)
        for i, a in enumerate(roles):
            for b in roles[i + 1:]:
                if same_path(given[a], given[b]):
                    raise UserError(f"{FLAGS[a]} and {FLAGS[b]} name the same file", path=given[a],
                                    fix=f"give {FLAGS[b]} another name")
            for what, src in inputs.items():
                if src is not None and same_path(given[a], Path(src)):
                    raise UserError(f"{FLAGS[a]} is the {what}: writing it would destroy that input", path=given[a],
                                    fix=f"give {FLAGS[a]} another name")
        existing = [p for p in given.values() if p.exists()]
        if existing and not (overwrite or resume):
            raise UserError(f"the output exists ({len(existing)} of this scan's outputs do)", path=existing[0],
                            fix="pass --overwrite to replace them, or choose other names")
        return cls(given, run_id)

    def path(self, role: str) -> Path | None:
        return self.targets.get(role)

    def temp(self, target: Path) -> Path:
        """A temporary name beside ``target`` (same file system, so the final rename is atomic)."""
        tmp = target.with_name(f".{target.name}.{self.run_id}.tmp{target.suffix}")
        self.temps[target] = tmp
        return tmp

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``.<sites name>.lock`` beside the sites file while scanning: a second scan of the same
        outputs is refused instead of sharing the journal. Removes leftover temporary files of killed runs."""
        out = self.targets["out"]
        lock_path = out.with_name(f".{out.name}.lock")
        fh = open(lock_path, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                pid = fh.read().strip() or "?"
                raise UserError(f"another minewatch scan (pid {pid}) is writing these outputs", path=out,
                                fix="wait for it to finish, or write to another -o") from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            for target in [*self.targets.values(), *self.extra]:
                for stale in target.parent.glob(f".{target.name}.*.tmp{target.suffix}"):
                    stale.unlink(missing_ok=True)
            yield
        finally:
            self.discard()
            lock_path.unlink(missing_ok=True)
            fh.close()

    @contextlib.contextmanager
    def writing(self, target: Path) -> Iterator[Path]:
        """Yield the temporary path for ``target``; a full disk becomes a one-line error naming it."""
        tmp = self.temp(target)
        try:
            yield tmp
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            self.temps.pop(target, None)
            if is_no_space(exc):
                raise UserError(f"no space left on the device while writing ({first_line(exc, 80)})",
                                path=target, fix="free disk space, or write the outputs elsewhere") from None
            raise

    def commit(self) -> list[Path]:
        """Rename every written temporary file onto its target, all at the end of the run."""
        done = []
        for target, tmp in list(self.temps.items()):
            if tmp.exists():
                os.replace(tmp, target)
                done.append(target)
            self.temps.pop(target)
        log.debug("renamed %d outputs into place: %s", len(done), ", ".join(printable_path(p) for p in done))
        return done

    def discard(self) -> None:
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
        self.temps.clear()
