"""The committed models, one per sensor profile, and the choice of one for a raster.

A scan without ``--model`` reads the raster's header (band count and names, storage type, pixel size) and picks the
sensor profile it looks like, then that profile's committed model:

1. ``--profile`` when given (the user knows best);
2. a band named NIR (in the band descriptions or ``--bands``) -> ``satellite`` (RGBN);
3. four or more unnamed bands (an alpha band does not count) -> ``satellite`` when they are 16-bit or float, or the
   pixels are ``SATELLITE_MIN_GSD_M`` or coarser; else ``drone`` (an orthomosaic with an extra band);
4. otherwise (red, green, blue) -> ``drone``.

With ``--model`` given, a raster that looks like another profile than the model's is refused with the fix (the
right model, or ``--profile``/``--bands`` to insist), rather than scanned with bands the model never saw.

The committed models live in the package's ``models`` folder (``$MINEWATCH_MODELS`` overrides it: a site's own
set of models), named ``minewatch-<profile>.onnx``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import rasterio

from minewatch.datasets.bands import band_name
from minewatch.datasets.profiles import available_profiles, load_profile
from minewatch.datasets.raster_io import open_raster, raster_extent
from minewatch.errors import UserError

log = logging.getLogger(__name__)

MODELS_ENV = "MINEWATCH_MODELS"
SATELLITE_MIN_GSD_M = 0.25
"""Unnamed 8-bit four-band imagery at least this coarse is taken for satellite RGBN (VHR satellites deliver
0.3 m and coarser); finer is a drone orthomosaic with an extra band."""
LOOKS = {"drone": "drone imagery (red, green, blue; 8-bit; 0.1-0.25 m)",
         "satellite": "satellite imagery (red, green, blue, nir; 16-bit reflectance; 0.3-1 m)"}


def models_dir() -> Path:
    """Where the committed models are: ``$MINEWATCH_MODELS``, else the package's ``models`` folder."""
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else Path(str(resources.files("minewatch.models")))


def model_file_name(profile: str) -> str:
    return f"minewatch-{profile}.onnx"


def make_target(profile: str) -> str:
    """The Makefile target that trains and commits a profile's model."""
    return "make model" if profile == "drone" else f"make model-{profile}"


def committed_models() -> dict[str, Path | None]:
    """Every sensor profile's committed model (None: not trained and committed yet)."""
    folder = models_dir()
    return {p: (folder / model_file_name(p)) if (folder / model_file_name(p)).is_file() else None
            for p in available_profiles()}


def committed_model(profile: str, *, why: str = "", models: dict[str, Path] | None = None) -> Path:
    """The committed model of ``profile`` (from ``models``, profile -> file, when given); a one-line error saying
    how to get one when there is none."""
    default = models_dir() / model_file_name(profile)
    path = Path(models[profile]) if models is not None and profile in models else default
    if (models is not None and profile not in models) or not path.is_file():
        raise UserError(f"no committed {profile} model{why}", path=path,
                        fix=f"run '{make_target(profile)}' to train it, or pass --model")
    return path


@dataclass(frozen=True)
class RasterLook:
    """What a raster's header says about the sensor that took it."""

    count: int  # bands, alpha left out
    names: tuple[str | None, ...]  # minewatch band names where the descriptions (or --bands) say them
    dtype: str
    gsd_m: float

    def text(self) -> str:
        named = [n for n in self.names if n]
        bands = f"{self.count} bands" + (f" ({', '.join(named)})" if len(named) == self.count else "")
        return f"{bands}, {self.dtype}, {self.gsd_m:.3g} m"


def raster_look(path: str | Path, bands: tuple[str, ...] | None = None) -> RasterLook:
    """Band count and names, storage type and pixel size of an optical raster (header only)."""
    with open_raster(path, what="optical raster") as src:
        # GDAL tags the fourth band of an 8-bit GeoTIFF alpha by default: a band named otherwise (nir) is not
        alpha = [i for i, ci in enumerate(src.colorinterp) if ci == rasterio.enums.ColorInterp.alpha
                 and band_name(src.descriptions[i]) in (None, "alpha")]
        names = tuple(band_name(b) or b for b in bands) if bands is not None else tuple(
            band_name(d) for i, d in enumerate(src.descriptions) if i not in alpha)
        return RasterLook(src.count - len(alpha), names, src.dtypes[0], raster_extent(src).gsd_m)


def guess_profile(look: RasterLook) -> tuple[str, str]:
    """The sensor profile a raster looks like, and why (see the module docstring)."""
    if "nir" in look.names:
        return "satellite", f"{look.text()}: a NIR band"
    if look.count >= 4 and not any(look.names[:4]):
        if look.dtype != "uint8":
            return "satellite", f"{look.text()}: four unnamed {look.dtype} bands"
        if look.gsd_m >= SATELLITE_MIN_GSD_M:
            return "satellite", f"{look.text()}: four unnamed bands at satellite pixel size"
        return "drone", f"{look.text()}: four unnamed 8-bit bands finer than satellite imagery"
    return "drone", f"{look.text()}: no NIR band"


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    profile: str
    reason: str

    def line(self) -> str:
        return f"{self.path.name}: the {self.profile} model, chosen for {self.reason}"


def choose_model(raster: str | Path, *, profile: str | None = None, bands: tuple[str, ...] | None = None,
                 coarse_check=None, models: dict[str, Path] | None = None) -> ModelChoice:
    """The committed model for ``raster`` (``profile`` overrides the guess; ``models``, profile -> file, replaces
    the committed set). ``coarse_check(gsd_m, profile)`` may refuse imagery too coarse for that profile's model
    before a missing model is reported."""
    if profile is not None:
        load_profile(profile)  # an unknown name is refused with the list of known ones
        name = Path(profile).stem if Path(profile).suffix in (".yaml", ".yml") else profile
        return ModelChoice(committed_model(name, why=f" for --profile {profile}", models=models), name,
                           f"--profile {profile}")
    look = raster_look(raster, bands)
    name, reason = guess_profile(look)
    if coarse_check is not None:
        coarse_check(look.gsd_m, name)
    have = models if models is not None else {p: f for p, f in committed_models().items() if f is not None}
    hint = " (to scan its red, green and blue with the drone model: --profile drone)" \
        if name == "satellite" and "drone" in have else ""
    why = f"; the raster looks like {LOOKS.get(name, name)}: {reason}{hint}"
    return ModelChoice(committed_model(name, why=why, models=models), name, reason)


def check_model_fits(raster: str | Path, model_profile: str, model_name: str, *, profile: str | None,
                     bands: tuple[str, ...] | None) -> None:
    """Refuse a model given with --model for a raster of another sensor profile (``--profile`` insists)."""
    if profile is not None:
        return
    name, reason = guess_profile(raster_look(raster, bands))
    if name == model_profile:
        return
    right = committed_models().get(name)
    use = f"--model {right}" if right is not None else f"a {name} model ('{make_target(name)}')"
    raise UserError(f"the raster looks like {LOOKS.get(name, name)} ({reason}), the model {model_name} was trained "
                    f"on {LOOKS.get(model_profile, model_profile)}", path=raster,
                    fix=f"omit --model to use the {name} model, or give {use}; to scan with this model anyway pass "
                        f"--profile {model_profile} (and --bands to name the bands if they are not "
                        f"{', '.join(load_profile(name).optical.bands) if name in LOOKS else 'what they seem'})")
