"""Optical band names: how a raster says which band is which, and the one check that data fit a model.

Bands are identified by name (``red``, ``green``, ``blue``, ``nir``), from the raster's band descriptions
or, without them, from the sensor profile's order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from minewatch.datasets.profiles import SensorProfile
from minewatch.errors import UserError

log = logging.getLogger(__name__)

BAND_ALIASES = {
    "r": "red", "red": "red", "g": "green", "green": "green", "b": "blue", "blue": "blue",
    "n": "nir", "nir": "nir", "near infrared": "nir", "near-infrared": "nir", "nir08": "nir",
    # Sentinel-2 band names (zero-padded: "B4" alone would be Landsat 5/7 NIR or Landsat 8/9 red)
    "b02": "blue", "b03": "green", "b04": "red", "b08": "nir",
}
"""Names a band description may use for the bands minewatch's models read."""
OTHER_BANDS = {
    "coastal": "coastal", "yellow": "yellow", "pan": "pan", "rededge": "rededge", "nir09": "nir09",
    "cirrus": "cirrus", "swir16": "swir16", "swir22": "swir22", "lwir": "lwir", "lwir11": "lwir11",
    "lwir12": "lwir12", "b01": "coastal", "b05": "rededge", "b06": "rededge", "b07": "rededge",
    "b8a": "nir08", "b09": "nir09", "b10": "cirrus", "b11": "swir16", "b12": "swir22", "swir": "swir16",
    "thermal": "lwir", "tir": "lwir", "alpha": "alpha",
}
"""STAC common names and Sentinel-2 names of bands no model here reads: recognised, so that NIR/SWIR
composites are refused by name instead of being read as red, green and blue."""
GENERIC_DESCRIPTION = re.compile(r"^(band|layer|b)?[ _-]?\d+$")
"""Descriptions such as "Band 1" or "layer_2" say nothing about the band."""


def band_name(description: str | None) -> str | None:
    """minewatch's name of a band from its description: a model band, another known band, or None."""
    d = (description or "").strip().lower()
    return BAND_ALIASES.get(d) or OTHER_BANDS.get(d)


def band_names_of(descriptions: Sequence[str | None], count: int, profile: SensorProfile, path: str | Path, *,
                  override: Sequence[str] | None = None) -> tuple[str, ...]:
    """Band names: ``override`` (--bands), else the raster's descriptions when they name bands, else the
    profile's order when the count fits. Descriptions that name other bands (NIR, SWIR) are kept, so a
    check against the model's bands refuses them by name."""
    if override is not None:
        names = tuple(band_name(b) or b for b in override)
        if len(names) != count:
            raise UserError(f"--bands names {len(names)} band(s), the raster has {count}", path=path,
                            fix=f"name every band in file order, e.g. --bands {','.join(profile.optical.bands)}")
        return names
    named = [band_name(d) for d in descriptions]
    meaningful = [d for d in descriptions if d and d.strip() and not GENERIC_DESCRIPTION.match(d.strip().lower())]
    if named and all(named) and len(set(named)) == len(named):
        return tuple(named)  # type: ignore[arg-type]
    if meaningful:
        raise UserError(
            f"band descriptions {', '.join(repr(d) for d in descriptions)} do not say which bands are red, green "
            "and blue", path=path,
            fix=f"name them with --bands (e.g. --bands {','.join(profile.optical.bands)}) or fix the descriptions")
    expected = profile.optical.bands
    if count >= len(expected):
        log.debug("%s: no band descriptions; assuming the %s profile order %s", path, profile.name, expected)
        return tuple(expected) + tuple(f"band{i + 1}" for i in range(len(expected), count))
    raise UserError(
        f"optical raster has {count} band(s) without names; the '{profile.name}' profile needs "
        f"{len(expected)} ({', '.join(expected)})",
        path=path,
        fix="give a raster with those bands, or name the bands (descriptions red, green, blue, nir)",
    )


def check_bands(have: Sequence[str], need: Sequence[str], *, path: str | Path | None, what: str = "the model",
                exact: bool = False, fix: str | None = None) -> None:
    """Refuse data whose optical bands do not serve ``need``, naming both sets.

    By default bands are read by name, so extra bands and another order are fine and only missing bands
    are refused (scanning). ``exact`` also refuses extra bands and another order (training and resuming,
    where the data must be of the model's own sensor profile).
    """
    have, need = tuple(have), tuple(need)
    missing = [b for b in need if b not in have]
    extra = [b for b in have if b not in need]
    if not missing and (not exact or have == need):
        return
    detail = [f"missing {', '.join(missing)}"] if missing else []
    if exact and extra:
        detail.append(f"extra {', '.join(extra)}")
    if not detail:
        detail.append("other order")
    raise UserError(
        f"band mismatch: the data has {len(have)} optical band(s) ({', '.join(have)}), {what} takes "
        f"{len(need)} ({', '.join(need)}); {'; '.join(detail)}",
        path=path,
        fix=fix or "use imagery of the model's sensor profile, or a model trained on these bands",
    )
