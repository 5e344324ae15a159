"""Appearance matching: estimate a real background's tone, colour cast, blur and noise, and render pasted
objects (and their shadows) to match, so a pasted container looks photographed by the same camera.

Estimates (recorded in scene.json under ``background.match``), on the real part of the background, in
the display domain for 8-bit images (DN / 255) and linear otherwise:

- tone and cast: per band 5th, 50th and 95th percentiles of the linear values over valid land pixels;
  the gain maps the generator's reflectances into that range (weighted geometric mean of a white-patch
  (95th) and a grey-world (50th) ratio against a typical daylight scene), the colour cast is the spread of
  the white-patch ratio between bands (a green or brown scene median is land cover, not a cast);
- blur: an edge-width estimate. At the strongest edges, local contrast / (sqrt(2 pi) x gradient) is the
  Gaussian width of a blurred step (0.84 px for a sharp, pixel-aligned edge: what the generator's own
  rasterised objects show); the objects get the Gaussian blur that brings them to the background's width;
- noise: robust std (1.4826 x MAD) of a high-pass (image minus its 1-pixel Gaussian) over the flattest
  tenth of the land (compression often flattens water), at most ``MAX_NOISE`` (more is ground texture,
  not sensor noise); the objects get white noise blurred like the image and scaled to the same high-pass std.

The background itself is never changed (no second blur, noise, haze or exposure over it); only the
pasted objects and the shadows they cast are rendered to match it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

DISPLAY_GAMMA = 2.2
SHARP_EDGE_PX = 0.84  # edge-width estimate of a sharp pixel edge (calibrated on hard-edged test images)
EDGE_WINDOW_PX = 8  # half-window of the local contrast at an edge (edges up to ~3 px wide)
EDGE_PERCENTILE = 99.0  # edges: the strongest 1 % of gradients ...
EDGE_MIN_CONTRAST = 0.06  # ... with at least this local contrast (display units)
EDGE_QUANTILE = 30.0  # the lower third of the edge widths: texture inflates the contrast at some edges
FLAT_PERCENTILE = 10.0  # noise is measured where the smoothed gradient is in its lowest tenth
MAX_NOISE = 0.03  # high-pass std above this is texture (grass, gravel), not sensor noise (display units)
MAX_BLUR_PX = 4.0
MIN_SOFT_EDGE_PX = 0.5  # pasted objects always get at least this much edge softening
# a typical daylight scene (linear reflectance at exposure 1): median and bright end per band
REF_P50 = np.array([0.10, 0.10, 0.08, 0.25], np.float32)
REF_P95 = np.array([0.38, 0.38, 0.36, 0.40], np.float32)
GAIN_LIMITS = (0.35, 4.0)
CAST_LIMITS = (0.9, 1.12)  # per-band gain / mean gain: real casts are modest, and a green field is no cast
WHITE_PATCH_WEIGHT = 0.6


def to_display(lin: np.ndarray) -> np.ndarray:
    return np.clip(lin, 0, None) ** np.float32(1 / DISPLAY_GAMMA)


def to_linear(disp: np.ndarray) -> np.ndarray:
    return np.clip(disp, 0, None) ** np.float32(DISPLAY_GAMMA)


def edge_width(y: np.ndarray, ok: np.ndarray) -> float | None:
    """Edge-width estimate (px) of image ``y`` (display-like units) where ``ok``; None without edges."""
    gy, gx = np.gradient(y)
    g = np.hypot(gx, gy)
    size = 2 * EDGE_WINDOW_PX + 1
    contrast = ndimage.maximum_filter(y, size) - ndimage.minimum_filter(y, size)
    inner = ndimage.binary_erosion(ok, iterations=EDGE_WINDOW_PX) if ok.any() else ok
    if inner.sum() < 100:
        return None
    sel = inner & (g >= np.percentile(g[inner], EDGE_PERCENTILE)) & (contrast > EDGE_MIN_CONTRAST) & (g > 1e-4)
    if sel.sum() < 20:
        return None
    return float(np.percentile(contrast[sel] / (math.sqrt(2 * math.pi) * g[sel]), EDGE_QUANTILE))


def highpass_noise(y: np.ndarray, ok: np.ndarray) -> float:
    """Robust std of the 1-pixel high-pass over the flattest part of ``y``."""
    hp = y - ndimage.gaussian_filter(y, 1.0)
    g = ndimage.gaussian_gradient_magnitude(y, 1.5)
    inner = ndimage.binary_erosion(ok, iterations=3) if ok.any() else ok
    if inner.sum() < 100:
        return 0.0
    flat = inner & (g <= np.percentile(g[inner], FLAT_PERCENTILE))
    v = hp[flat]
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else 0.0


def _noise_gain(sigma_px: float) -> float:
    """High-pass std of unit white noise blurred by ``sigma_px`` (for scaling the objects' noise)."""
    d = np.zeros((41, 41), np.float64)
    d[20, 20] = 1.0
    k = ndimage.gaussian_filter(d, sigma_px) if sigma_px > 0 else d
    hp = k - ndimage.gaussian_filter(k, 1.0)
    return float(np.sqrt((hp ** 2).sum()))


@dataclass(frozen=True)
class Match:
    """How pasted objects are rendered over one background."""

    gain: np.ndarray  # (4,) linear gain per band red, green, blue, nir
    blur_px: float  # Gaussian sigma applied to objects, alpha and shadows
    noise: float  # white-noise std before the blur, in the background's domain
    display: bool  # noise lives in the display domain (8-bit backgrounds)

    @property
    def soft_px(self) -> float:
        return max(self.blur_px, MIN_SOFT_EDGE_PX)


def estimate(lin: np.ndarray, ok: np.ndarray, land: np.ndarray, display: bool) -> tuple[Match, dict[str, Any]]:
    """Match parameters and the figures behind them, from linear bands (4, h, w), a validity mask and
    the valid land (tone is measured on land, blur and noise on every valid pixel)."""
    if land.sum() < 100:
        land = ok if ok.sum() >= 100 else np.ones(ok.shape, bool)
    p5, p50, p95 = (np.array([np.percentile(lin[b][land], q) for b in range(4)], np.float32) for q in (5, 50, 95))
    white = np.maximum(p95, 1e-3) / REF_P95
    ratio = white ** WHITE_PATCH_WEIGHT * (np.maximum(p50, 1e-3) / REF_P50) ** (1 - WHITE_PATCH_WEIGHT)
    mean = float(np.exp(np.log(ratio[:3]).mean()))
    # the cast from the bright end only: a green (lawns) or brown (soil) scene median is not a colour cast
    cast = np.clip(white / float(np.exp(np.log(white[:3]).mean())), *CAST_LIMITS)
    cast[3] = 1.0  # nir of an RGB background is made up: no cast
    gain = (np.clip(mean, *GAIN_LIMITS) * cast).astype(np.float32)
    y = lin[:3].mean(axis=0)
    y = to_display(y) if display else y
    width = edge_width(y, ok)
    blur = 0.0 if width is None else min(math.sqrt(max(width ** 2 - SHARP_EDGE_PX ** 2, 0.0)), MAX_BLUR_PX)
    hp = min(highpass_noise(y, land), MAX_NOISE if display else MAX_NOISE ** DISPLAY_GAMMA)  # land: compression
    # often flattens water
    noise = hp / _noise_gain(max(blur, MIN_SOFT_EDGE_PX))
    m = Match(gain, blur, noise, display)
    figures = {
        "domain": "display" if display else "linear",
        "p5": [round(float(v), 4) for v in p5], "p50": [round(float(v), 4) for v in p50],
        "p95": [round(float(v), 4) for v in p95], "gain": [round(float(v), 3) for v in gain],
        "edge_width_px": None if width is None else round(width, 3), "blur_sigma_px": round(blur, 3),
        "highpass_noise": round(hp, 5), "noise_std": round(noise, 5),
    }
    return m, figures


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the last two axes (each band of a stack on its own)."""
    if sigma <= 0:
        return x
    axes_sigma = (0.0,) * (x.ndim - 2) + (sigma, sigma)
    return ndimage.gaussian_filter(x, axes_sigma, mode="nearest", truncate=3.0)
