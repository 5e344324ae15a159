"""Procedural noise: smooth fields on coarse grids, periodic textures, and fast bilinear sampling.

Coarse fields are small arrays sampled at any pixel coordinates, so a strip of a large raster is
rendered without a scene-sized noise array; periodic textures are tiled with modular indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter


@dataclass
class CoarseField:
    """A smooth random field on a grid of ``cell_m`` cells starting at (u0, v0) metres."""

    data: np.ndarray  # (ny, nx) float32, zero mean, unit std
    u0: float
    v0: float
    cell_m: float

    def sample(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Bilinear values at the grid of columns ``us`` x rows ``vs`` (metres) -> (len(vs), len(us))."""
        return bilinear(self.data, (us - self.u0) / self.cell_m - 0.5, (vs - self.v0) / self.cell_m - 0.5)

    def at(self, pts: np.ndarray) -> np.ndarray:
        """Values at scattered points (k, 2) in metres."""
        fx = np.clip((pts[:, 0] - self.u0) / self.cell_m - 0.5, 0, self.data.shape[1] - 1)
        fy = np.clip((pts[:, 1] - self.v0) / self.cell_m - 0.5, 0, self.data.shape[0] - 1)
        x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
        x1, y1 = np.minimum(x0 + 1, self.data.shape[1] - 1), np.minimum(y0 + 1, self.data.shape[0] - 1)
        wx, wy = fx - x0, fy - y0
        d = self.data
        return ((d[y0, x0] * (1 - wx) + d[y0, x1] * wx) * (1 - wy) + (d[y1, x0] * (1 - wx) + d[y1, x1] * wx) * wy)


def bilinear(data: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Separable bilinear sampling of ``data`` at fractional columns ``fx`` and rows ``fy`` (float32)."""
    ny, nx = data.shape
    fx = np.clip(fx, 0, nx - 1)
    fy = np.clip(fy, 0, ny - 1)
    x0 = np.floor(fx).astype(np.intp)
    y0 = np.floor(fy).astype(np.intp)
    x1 = np.minimum(x0 + 1, nx - 1)
    y1 = np.minimum(y0 + 1, ny - 1)
    wx = (fx - x0).astype(np.float32)
    wy = (fy - y0).astype(np.float32)[:, None]
    rows = data[y0] * (1 - wy) + data[y1] * wy  # (len(fy), nx)
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def coarse_field(rng: np.random.Generator, u0: float, v0: float, width_m: float, height_m: float,
                 cell_m: float, smooth_m: float) -> CoarseField:
    """White noise smoothed to features of about ``smooth_m`` metres, normalised to unit std."""
    nx = int(np.ceil(width_m / cell_m)) + 2
    ny = int(np.ceil(height_m / cell_m)) + 2
    data = gaussian_filter(rng.standard_normal((ny, nx)), smooth_m / cell_m, mode="reflect")
    data = ((data - data.mean()) / (data.std() + 1e-12)).astype(np.float32)
    return CoarseField(data, u0 - cell_m, v0 - cell_m, cell_m)


def fractal_field(rng: np.random.Generator, u0: float, v0: float, width_m: float, height_m: float,
                  cell_m: float, scale_m: float, octaves: int = 4) -> CoarseField:
    """Sum of octaves (cloud-like): large shapes with ragged edges."""
    total = None
    for o in range(octaves):
        f = coarse_field(rng, u0, v0, width_m, height_m, cell_m, max(scale_m / 2 ** o, cell_m * 0.7))
        total = f.data * 0.55 ** o if total is None else total + f.data * 0.55 ** o
    total = (total - total.mean()) / (total.std() + 1e-12)
    return CoarseField(total.astype(np.float32), u0 - cell_m, v0 - cell_m, cell_m)


def periodic_texture(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """Tileable Gaussian-filtered noise of size n x n (zero mean, unit std, float32)."""
    white = rng.standard_normal((n, n)).astype(np.float32)
    spec = sfft.rfft2(white)
    ky = sfft.fftfreq(n)[:, None]
    kx = sfft.rfftfreq(n)[None, :]
    spec *= np.exp(-2 * (np.pi * sigma_px) ** 2 * (kx ** 2 + ky ** 2)).astype(np.float32)
    out = sfft.irfft2(spec, s=(n, n)).astype(np.float32)
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


@dataclass
class Textures:
    """Tileable textures in pixels of one grid (optical), indexed modulo their size."""

    grain: np.ndarray  # pixel-scale grain
    mid: np.ndarray  # ~1-2 m grain (gravel, dirt)
    crown: np.ndarray  # canopy relief, already shaded by the sun
    crown_raw: np.ndarray  # canopy height-like texture

    def take(self, tex: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        n = tex.shape[0]
        return tex[np.ix_(rows % n, cols % n)]


def make_textures(rng: np.random.Generator, gsd_m: float, crown_m: float, sun_uv: tuple[float, float],
                  relief: float, n: int = 1024) -> Textures:
    """Textures scaled to a grid's pixel size; crowns are relief-shaded for the scene's sun."""
    grain = periodic_texture(rng, n, 0.6)
    mid = periodic_texture(rng, n, max(0.7, 0.8 / gsd_m))
    crown = periodic_texture(rng, n, max(0.8, crown_m / gsd_m / 2.5))
    gy, gx = np.gradient(crown)
    # slope towards the sun brightens (u is columns, v is rows)
    shade = 1.0 + relief * (gx * sun_uv[0] + gy * sun_uv[1]) * max(1.0, crown_m / gsd_m / 2.5)
    shade = np.clip(shade * (0.8 + 0.2 * np.tanh(crown)), 0.15, 1.8).astype(np.float32)
    return Textures(grain, mid, shade, crown)
