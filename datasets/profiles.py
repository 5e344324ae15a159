"""Sensor profiles: band names and order, value scaling, GSD and nodata of an acquisition type."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field

from minewatch.config import StrictModel, load_config
from minewatch.errors import UserError

DEFAULT_PROFILE = "drone"


class OpticalSpec(StrictModel):
    """How the optical raster of a profile is stored."""

    bands: tuple[str, ...] = Field(description="band names in file order, e.g. [red, green, blue]")
    dtype: Literal["uint8", "uint16", "float32"] = Field(description="storage type of the DNs")
    scale: float = Field(gt=0, description="reflectance = DN * scale + offset")
    offset: float = 0.0
    nodata: float | None = Field(default=0, description="DN that marks missing pixels")
    gsd_m: float = Field(gt=0, description="ground sample distance in metres")


class ThermalSpec(StrictModel):
    """How the thermal raster of a profile is stored."""

    units: Literal["kelvin", "celsius"] = "kelvin"
    dtype: Literal["float32", "uint16"] = "float32"
    nodata: float | None = -9999.0
    gsd_m: float = Field(gt=0, description="delivered pixel size in metres")
    footprint_m: float = Field(gt=0, description="native footprint the sensor integrates over, metres")


class SensorProfile(StrictModel):
    """One acquisition type; models record the profile they were trained on."""

    name: str
    description: str = ""
    optical: OpticalSpec
    thermal: ThermalSpec | None = None
    model_gsd_m: float = Field(gt=0, description="grid a model for this profile sees, metres")


def available_profiles() -> list[str]:
    folder = resources.files("minewatch.configs").joinpath("profiles")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> SensorProfile:
    """A built-in profile by name (``drone``, ``satellite``) or a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return load_config(p, SensorProfile)
    names = available_profiles()
    if str(name_or_path) not in names:
        raise UserError(
            f"unknown sensor profile '{name_or_path}'", fix=f"use one of {', '.join(names)} or a YAML file"
        )
    path = Path(str(resources.files("minewatch.configs").joinpath(f"profiles/{name_or_path}.yaml")))
    return load_config(path, SensorProfile)
