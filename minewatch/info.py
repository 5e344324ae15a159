"""``minewatch info``: versions of the stack and, for a model file, what it expects."""

from __future__ import annotations

import importlib
import platform
from pathlib import Path

from minewatch import __version__

LIBRARIES = ("numpy", "rasterio", "shapely", "pyproj", "geopandas", "pyogrio", "onnxruntime", "torch",
             "torchvision", "albumentations", "onnx")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = "not installed"
    try:
        import rasterio

        versions["GDAL"] = rasterio.__gdal_version__
    except ImportError:
        pass
    return versions


def describe(model: Path | None = None) -> str:
    """Versions, and what ``model`` (default: the committed model) expects."""
    from minewatch.infer.model_file import file_sha256, read_model_meta
    from minewatch.infer.predictor import default_model_path

    lines = [f"minewatch {__version__} (Python {platform.python_version()}, {platform.system()})"]
    lines += [f"  {name:<14} {version}" for name, version in library_versions().items()]
    path = default_model_path() if model is None else Path(model)
    meta = read_model_meta(path)
    lines += [
        "",
        f"model {path}{'  (the committed default)' if model is None else ''}",
        f"  sha256         {file_sha256(path)}",
        f"  backbone       {meta.backbone}  (trained by minewatch {meta.model_version})",
        f"  profile        {meta.profile}",
        f"  classes        {', '.join(meta.classes)}",
        f"  channels       {', '.join(meta.channels)}",
        f"  grid           {meta.gsd_m} m/px, tiles {meta.tile_m:g} m ({meta.tile_px} px), stride {meta.stride_m:g} m",
        "  thresholds     " + ", ".join(f"{k} {v:.3f}" for k, v in meta.thresholds.items()),
        f"  thermal        {meta.thermal.mode} over a {meta.thermal.background_m:g} m background"
        f"{' (required)' if meta.thermal.required else ' (optional: trained with thermal dropout)'}",
        f"  dense head     masks {', '.join(meta.masks)} at {meta.mask_gsd_m:g} m/px (sites outlined by objects)"
        if meta.masks else "  dense head     none (sites outlined by their windows)",
    ]
    if meta.metrics:
        lines.append("  validation     " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(meta.metrics.items())))
    return "\n".join(lines)
