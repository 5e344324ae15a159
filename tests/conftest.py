"""Shared fixtures: small real GeoTIFFs written by the tests themselves, and the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` beside the checkout; tests using it skip on a user's fresh clone."""
    if not REAL_DATA.is_dir():
        pytest.skip("../shared/data/real is absent")
    return REAL_DATA


def write_raster(path: Path, data: np.ndarray, *, crs="EPSG:32633", origin=(500000.0, 4000000.0),
                 gsd=0.5, nodata=None, descriptions=None, tags=None, tiled=True) -> Path:
    """Write a (bands, h, w) array as a GeoTIFF with a north-up transform."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
        "dtype": data.dtype.name, "crs": crs, "transform": from_origin(origin[0], origin[1], gsd, gsd),
        "nodata": nodata,
    }
    if tiled and data.shape[1] >= 16 and data.shape[2] >= 16:
        profile.update(tiled=True, blockxsize=16 * max(1, min(16, data.shape[2] // 16)),
                       blockysize=16 * max(1, min(16, data.shape[1] // 16)))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def rgb_raster(tmp_path: Path) -> Path:
    """A 256 x 256 RGB uint8 raster at 0.5 m in UTM 33N with a nodata collar on the left."""
    rng = np.random.default_rng(0)
    data = rng.integers(40, 200, size=(3, 256, 256), dtype=np.uint8)
    data[:, :, :20] = 0
    return write_raster(tmp_path / "rgb.tif", data, nodata=0, descriptions=["red", "green", "blue"])
