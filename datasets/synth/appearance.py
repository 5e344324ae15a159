"""Randomised appearance, drawn per site: paint wear, rib contrast, fan and pad looks.

Sim-to-real practice: what a model should not rely on (colours, wear, texture contrast) varies from site
to site; sizes, row layouts, fan positions and heat stay physical. One :class:`SiteLook` is drawn per
site from the recipe's ``appearance`` section; builders pass its keyword sets to the parts they make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from minewatch.datasets.synth.objects import Palette, pick, uni
from minewatch.datasets.synth.recipe import Appearance

RIB_CONTRAST_REF = 0.07  # the renderer's rib swing at contrast 1
RUST_SPREAD = 1.5  # rust on one roof = site rust x U(0,1)^1.5: most roofs a little, a few a lot


@dataclass
class SiteLook:
    """How one site's steel, fans and pads look."""

    rib: float  # contrast multiplier of corrugation (1 = the renderer's default swing)
    rust: float  # most rust on one roof, share of its area
    dirt: float  # strength of dirt streaks
    fan: str  # fan material
    housing: str  # hood / fan housing material
    fan_contrast: float
    pad: str  # evaporative pad material (dry)
    pad_slat_m: float
    pad_contrast: float
    wet_darkening: float

    def steel(self, rng: np.random.Generator) -> dict[str, Any]:
        """Part keywords for one corrugated steel roof (container, trailer): its own rust and dirt."""
        return {"contrast": self.rib, "rust": self.rust * float(rng.random()) ** RUST_SPREAD,
                "dirt": self.dirt * float(rng.random())}

    def fan_kw(self) -> dict[str, Any]:
        return {"contrast": self.fan_contrast}

    def pad_refl(self, rng: np.random.Generator, pal: Palette, wet: bool) -> np.ndarray:
        refl = pal.refl(rng, self.pad)
        return (refl * np.float32(self.wet_darkening)).astype(np.float32) if wet else refl

    def pad_kw(self) -> dict[str, Any]:
        return {"period_m": self.pad_slat_m, "contrast": self.pad_contrast}


def draw_look(rng: np.random.Generator, ap: Appearance) -> SiteLook:
    rib = uni(rng, ap.rib_contrast) / RIB_CONTRAST_REF
    rust = uni(rng, ap.rust) if rng.random() < ap.rust_probability else 0.0
    dirt = uni(rng, ap.dirt)
    return SiteLook(rib=rib, rust=rust, dirt=dirt, fan=pick(rng, ap.fan_colours), housing=pick(rng, ap.fan_housings),
                    fan_contrast=uni(rng, ap.fan_contrast), pad=pick(rng, ap.pad_colours),
                    pad_slat_m=uni(rng, ap.pad_slat_m), pad_contrast=uni(rng, ap.pad_contrast),
                    wet_darkening=ap.wet_darkening)


def plain_look() -> SiteLook:
    """The look before randomisation (tests, callers without a recipe section)."""
    return SiteLook(rib=1.0, rust=0.0, dirt=0.0, fan="fan", housing="hood", fan_contrast=1.0, pad="pad_dry",
                    pad_slat_m=0.25, pad_contrast=1.0, wet_darkening=1.0)


def rust_threshold(share: np.ndarray) -> np.ndarray:
    """Level a unit-normal texture exceeds over ``share`` of its area (inf where there is no rust)."""
    from scipy.special import ndtri

    s = np.clip(np.asarray(share, np.float64), 0.0, 0.999)
    return np.where(s > 0, ndtri(1 - np.maximum(s, 1e-6)), math.inf).astype(np.float32)
