"""Tiny hand-made scene folders for training tests (independent of the synthetic generator's recipes).

A drone-profile scene: RGB uint8 at 0.2 m, thermal kelvin at 0.8 m, truth.geojson in lon/lat. Sites are
rows of bright containers (container_farm), dark striped fan blocks (cooling_array) and warm footprints
(heat_signature) placed on a noisy grass background, so a small network can learn them in a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_000_000.0)


def make_scene(folder: Path, seed: int, *, size_m: float = 96.0, n_sites: int = 2, bands: int = 3,
               thermal: bool = True) -> Path:
    """Write optical.tif, thermal.tif, truth.geojson and scene.json into ``folder``; return it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    gsd, tgsd = 0.2, 0.8
    n = int(round(size_m / gsd))
    nt = int(round(size_m / tgsd))
    x0, y0 = ORIGIN[0] + 1000 * seed, ORIGIN[1]
    base = rng.normal([90, 120, 70, 140][:bands], 8, size=(n, n, bands))
    kelvin = rng.normal(295.0, 0.3, size=(nt, nt)).astype(np.float32)
    polys = []
    cell = 32.0  # sites sit in a grid of 32 m cells so that windows of 16 m hold them cleanly
    cells = [(i, j) for i in range(int(size_m // cell)) for j in range(int(size_m // cell))]
    order = rng.permutation(len(cells))[:n_sites]
    for k, c in enumerate(order):
        ci, cj = cells[c]
        # a 12 x 10 m block inside the cell, away from its edges
        r0 = ci * cell + rng.uniform(4, cell - 16)
        c0 = cj * cell + rng.uniform(4, cell - 16)
        kind = ["farm", "cooling", "lookalike"][k % 3]
        rs, cs = slice(int(r0 / gsd), int((r0 + 10) / gsd)), slice(int(c0 / gsd), int((c0 + 12) / gsd))
        geom = box(x0 + c0, y0 - (r0 + 10), x0 + c0 + 12, y0 - r0)
        if kind == "farm":
            block = base[rs, cs]
            block[:] = 235
            block[::12] = 60  # aisles between container rows
            polys.append({"class": "container_farm", "geometry": geom, "dt_k": None})
            trs, tcs = slice(int(r0 / tgsd), int((r0 + 10) / tgsd)), slice(int(c0 / tgsd), int((c0 + 12) / tgsd))
            kelvin[trs, tcs] += 15.0
            polys.append({"class": "heat_signature", "geometry": geom, "dt_k": 15.0})
        elif kind == "cooling":
            block = base[rs, cs]
            block[:] = 40
            block[:, ::4] = 200  # fan grid
            polys.append({"class": "cooling_array", "geometry": geom, "dt_k": None})
        else:
            base[rs, cs] = rng.uniform(30, 250, size=(1, 1, bands))  # a plain coloured roof
            polys.append({"class": "lookalike", "geometry": geom, "dt_k": None})
    optical = np.clip(base, 1, 255).astype(np.uint8).transpose(2, 0, 1)
    profile = dict(driver="GTiff", width=n, height=n, count=bands, dtype="uint8", crs=CRS,
                   transform=Affine(gsd, 0, x0, 0, -gsd, y0), nodata=0, tiled=True, blockxsize=256,
                   blockysize=256, compress="deflate")
    with rasterio.open(folder / "optical.tif", "w", **profile) as dst:
        dst.write(optical)
        for b, name in enumerate(["red", "green", "blue", "nir"][:bands], start=1):
            dst.set_band_description(b, name)
        dst.update_tags(MINEWATCH_SCENE_ID=f"test-{seed}", ACQUISITION_DATETIME="2025-06-01T10:00:00Z")
    if thermal:
        tprof = dict(driver="GTiff", width=nt, height=nt, count=1, dtype="float32", crs=CRS,
                     transform=Affine(tgsd, 0, x0 + 0.3, 0, -tgsd, y0 - 0.2), nodata=-9999.0)
        with rasterio.open(folder / "thermal.tif", "w", **tprof) as dst:
            dst.write(kelvin[None])
            dst.set_band_description(1, "thermal")
            dst.update_tags(UNITS="kelvin")
    gdf = gpd.GeoDataFrame(polys, geometry="geometry", crs=CRS).to_crs(4326)
    gdf.to_file(folder / "truth.geojson", driver="GeoJSON")
    (folder / "scene.json").write_text(json.dumps({"scene_id": f"test-{seed}", "profile": "drone", "seed": seed}))
    return folder
