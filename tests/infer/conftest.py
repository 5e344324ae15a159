"""Hand-built tile scores on a small UTM grid (EPSG:32633), for sites, writers and evaluation tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from minewatch.classes import CLASSES

UTM = "EPSG:32633"
X0, Y0 = 500_000.0, 5_500_000.0  # near 15 E, 49.6 N
THRESHOLDS = {c: 0.5 for c in CLASSES}

TileFactory = Callable[..., gpd.GeoDataFrame]


def make_tiles(
    n_rows: int,
    n_cols: int,
    probs: Mapping[tuple[int, int], tuple[float, float, float]] | None = None,
    *,
    size: float = 64.0,
    stride: float | None = None,
    thermal: Mapping[tuple[int, int], tuple[float, float]] | None = None,
    crs: str = UTM,
    origin: tuple[float, float] = (X0, Y0),
) -> gpd.GeoDataFrame:
    """A grid of tile scores; ``probs[(row, col)]`` sets the three class probabilities (default 0.05).

    ``thermal[(row, col)] = (dt_max_k, z_max)``; other tiles get NaN (no thermal).
    """
    stride = size if stride is None else stride
    probs = probs or {}
    thermal = thermal or {}
    rows, cols, geoms, p, dt, z = [], [], [], [], [], []
    for r in range(n_rows):
        for c in range(n_cols):
            x = origin[0] + c * stride
            y = origin[1] - r * stride
            rows.append(r)
            cols.append(c)
            geoms.append(shapely.box(x, y - size, x + size, y))
            p.append(probs.get((r, c), (0.05, 0.05, 0.05)))
            dt.append(thermal.get((r, c), (np.nan, np.nan))[0])
            z.append(thermal.get((r, c), (np.nan, np.nan))[1])
    p_arr = np.array(p, dtype=float).reshape(-1, len(CLASSES))
    data = {
        "tile_id": [f"r{r:04d}c{c:04d}" for r, c in zip(rows, cols, strict=True)],
        "row": np.array(rows, dtype="int64"),
        "col": np.array(cols, dtype="int64"),
        **{f"p_{k}": p_arr[:, i] for i, k in enumerate(CLASSES)},
        "dt_max_k": np.array(dt, dtype=float),
        "z_max": np.array(z, dtype=float),
    }
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


@pytest.fixture
def tile_factory() -> TileFactory:
    return make_tiles


SITE_META = {
    "scene_id": "scene_000001",
    "acquired": "2024-06-01T10:00:00Z",
    "sensor": "drone",
    "model_name": "tiny.onnx",
    "model_sha256": "0" * 64,
    "run_id": "run-test",
    "created": "2024-06-02T00:00:00Z",
}


@pytest.fixture
def site_meta() -> dict[str, str]:
    return dict(SITE_META)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 kB tmpfs mounted for the test (a full disk on demand); the test skips where it cannot mount one."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)])
