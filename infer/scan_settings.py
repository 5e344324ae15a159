"""What a one-scene scan request and a multi-scene run share: how rasters are scanned.

Kept apart from ``infer/scan.py`` so that a multi-scene client can hold its options without importing the
scanning machinery (ONNX Runtime, rasterio readers)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(kw_only=True)
class ScanSettings:
    """How rasters are scanned, whichever they are: what a one-scene request and a multi-scene run share."""

    model: Path | None = None
    geofence: Path | None = None
    exclude: Path | None = None
    profile: str | None = None
    thermal_units: str | None = None
    device: str = "cpu"
    batch: int = 32
    stride_m: float | None = None
    min_windows: int | None = None  # positive windows a site needs (None: infer/sites.default_min_windows)
    resume: bool = False
    overwrite: bool = False
    allow_coarse: bool = False
    nodata: float | None = None
    scale: float | None = None
    bands: tuple[str, ...] | None = None
    thermal_only: bool = False  # heat anomalies of a thermal raster alone (infer/thermal_only.py)

    def settings(self) -> dict:
        """The shared settings by name (to pass on to a request)."""
        return {f.name: getattr(self, f.name) for f in fields(ScanSettings)}
