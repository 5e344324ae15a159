"""The scene-folder convention: one acquisition per folder, the same layout for generated and own data.

A scene folder holds ``optical.tif``, optionally ``thermal.tif`` and ``truth.geojson`` (labels); ``minewatch
synth`` writes exactly this, and training, the model card and evaluation read it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minewatch.errors import UserError

OPTICAL_NAMES = ("optical.tif", "optical.tiff")
THERMAL_NAMES = ("thermal.tif", "thermal.tiff")
TRUTH_NAMES = ("truth.geojson", "labels.geojson", "truth.gpkg", "labels.gpkg")
RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class SceneFiles:
    """The files of one scene folder."""

    folder: Path
    optical: Path
    thermal: Path | None
    truth: Path | None

    @classmethod
    def from_folder(cls, folder: Path) -> SceneFiles:
        def first(names: Sequence[str]) -> Path | None:
            return next((folder / n for n in names if (folder / n).is_file()), None)

        optical = first(OPTICAL_NAMES)
        if optical is None:
            raise UserError("not a scene folder (no optical.tif)", path=folder,
                            fix="give folders from 'minewatch synth' or with optical.tif + truth.geojson")
        return cls(folder, optical, first(THERMAL_NAMES), first(TRUTH_NAMES))


def find_rasters(paths: Sequence[Path], *, what: str) -> list[SceneFiles]:
    """Loose rasters (files, or folders searched recursively for GeoTIFFs) as scenes without thermal or
    truth, e.g. real imagery used as negatives."""
    found: list[SceneFiles] = []
    for p in map(Path, paths):
        if p.is_file():
            files = [p]
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES and f.is_file())
            if not files:
                raise UserError(f"no GeoTIFF in this {what} folder", path=p, fix="give .tif files or their folder")
        else:
            raise UserError(f"{what} not found", path=p, fix="check the path")
        found.extend(SceneFiles(f.parent, f, None, None) for f in files)
    return found


def find_scenes(paths: Sequence[Path]) -> list[SceneFiles]:
    """Scene folders from a list of paths; a path may also be a folder of scene folders."""
    found: list[SceneFiles] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise UserError("scene folder not found", path=p, fix="check the path in data.*_scenes")
        if any((p / n).is_file() for n in OPTICAL_NAMES):
            found.append(SceneFiles.from_folder(p))
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and any((d / n).is_file() for n in OPTICAL_NAMES))
        if not subs:
            raise UserError("no scene folders here (none holds optical.tif)", path=p,
                            fix="give scene folders written by 'minewatch synth' or your own labelled scenes")
        found.extend(SceneFiles.from_folder(d) for d in subs)
    return found
