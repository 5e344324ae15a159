"""Optical band names: how a raster says which band is which, and the one check that data fit a model.

Bands are identified by name (``red``, ``green``, ``blue``, ``nir``), from the raster's band descriptions
or, without them, from the sensor profile's order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from minewatch.datasets.profiles import SensorProfile
from minewatch.errors import UserError

log = logging.getLogger(__name__)

BAND_ALIASES = {
    "r": "red", "red": "red", "g": "green", "green": "green", "b": "blue", "blue": "blue",
    "n": "nir", "nir": "nir", "near infrared": "nir", "near-infrared": "nir",
}
"""Names a band description may use, mapped to minewatch's band names."""


def band_names_of(descriptions: Sequence[str | None], count: int, profile: SensorProfile,
                  path: str | Path) -> tuple[str, ...]:
    """Band names from a raster's descriptions, else the profile's order when the count fits."""
    described = [BAND_ALIASES.get((d or "").strip().lower()) for d in descriptions]
    if described and all(described) and len(set(described)) == len(described):
        return tuple(described)  # type: ignore[arg-type]
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
