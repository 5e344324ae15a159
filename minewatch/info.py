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
    """Versions, and what ``model`` expects (default: every committed model, one per sensor profile)."""
    from minewatch.infer.registry import committed_models, make_target, model_file_name, models_dir

    lines = [f"minewatch {__version__} (Python {platform.python_version()}, {platform.system()})"]
    lines += [f"  {name:<14} {version}" for name, version in library_versions().items()]
    if model is not None:
        return "\n".join(lines + [""] + model_lines(Path(model)))
    lines += ["", f"committed models ({models_dir()}): a scan without --model picks the one of the raster's sensor "
              "profile (band count, storage type, pixel size; --profile to choose)"]
    for profile, path in committed_models().items():
        lines.append("")
        if path is None:
            lines.append(f"{profile}: none committed ({model_file_name(profile)}): run '{make_target(profile)}' "
                         "to train it, or pass --model")
        else:
            lines += model_lines(path, label=f"{profile}: ")
    return "\n".join(lines)


def model_lines(path: Path, label: str = "") -> list[str]:
    """What one model file is and expects."""
    from minewatch.infer.model_file import file_sha256, read_model_meta

    meta = read_model_meta(path)
    lines = [
        f"{label}model {path}",
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
    card = path.with_name("MODEL_CARD.md" if meta.profile == "drone" else f"MODEL_CARD-{meta.profile}.md")
    if card.is_file():
        lines.append(f"  card           {card}")
    if meta.metrics:
        lines.append("  validation     " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(meta.metrics.items())))
    return lines
