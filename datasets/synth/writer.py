"""Files of a scene: tiled DEFLATE GeoTIFFs with overviews, RFC 7946 truth, scene.json.

Every file goes through :func:`minewatch.atomic.atomic_path`; nothing here reads the clock, so the
same plan writes byte-identical files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from minewatch.atomic import atomic_path

BLOCK = 256
TRUTH_COLUMNS = ("class", "site_id", "kind", "n_containers", "running", "dt_k", "cloud_share", "area_m2")


def overview_factors(width: int, height: int) -> list[int]:
    """2, 4, 8 ... until the smallest overview is about a block (always at least one level)."""
    out, f = [2], 4
    while max(width, height) / f >= BLOCK / 2:
        out.append(f)
        f *= 2
    return out


def _gtiff_profile(width: int, height: int, count: int, dtype: str, crs: CRS, transform: Affine,
                   nodata: float | None) -> dict[str, Any]:
    return {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "crs": crs,
        "transform": transform, "nodata": nodata, "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
        "compress": "deflate", "predictor": 3 if dtype.startswith("float") else 2, "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
    }


def write_raster_strips(path: Path, strips: Iterable[tuple[int, np.ndarray]], *, width: int, height: int,
                        count: int, dtype: str, crs: CRS, transform: Affine, nodata: float | None,
                        descriptions: list[str], tags: dict[str, str], resampling: Resampling) -> None:
    """Write a raster from (row, array) strips, then internal overviews; atomically."""
    with atomic_path(path) as tmp:
        env = {"COMPRESS_OVERVIEW": "DEFLATE", "PREDICTOR_OVERVIEW": "3" if dtype.startswith("float") else "2",
               "GDAL_TIFF_OVR_BLOCKSIZE": str(BLOCK), "GDAL_NUM_THREADS": "1"}
        profile = _gtiff_profile(width, height, count, dtype, crs, transform, nodata)
        if count >= 3 and tuple(descriptions[:3]) == ("red", "green", "blue"):
            profile["photometric"] = "RGB"  # bands after blue are extra samples (nir)
        with rasterio.Env(**env), rasterio.open(tmp, "w", **profile) as dst:
            for r0, arr in strips:
                dst.write(arr, window=Window(0, r0, width, arr.shape[-2]))
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
            dst.update_tags(**tags)
            dst.build_overviews(overview_factors(width, height), resampling)
            dst.update_tags(ns="rio_overview", resampling=resampling.name)


def write_truth(path: Path, records: list[dict[str, Any]], crs: CRS) -> None:
    """RFC 7946 GeoJSON via GDAL (lon/lat, right-hand rings, 7 decimals)."""
    cols = {c: [r[c] for r in records] for c in TRUTH_COLUMNS}
    gdf = gpd.GeoDataFrame(
        {
            "class": np.array(cols["class"], dtype=object), "site_id": np.array(cols["site_id"], dtype=object),
            "kind": np.array(cols["kind"], dtype=object),
            "n_containers": np.array(cols["n_containers"], dtype=np.int32),
            "running": np.array(cols["running"], dtype=bool),
            "dt_k": np.array(cols["dt_k"], dtype=np.float64),
            "cloud_share": np.array(cols["cloud_share"], dtype=np.float64),
            "area_m2": np.array(cols["area_m2"], np.float64),
        },
        geometry=[r["geometry"] for r in records], crs=crs,
    )
    logging.getLogger("pyogrio").setLevel(logging.WARNING)  # it logs "Created N records" at INFO
    with atomic_path(path) as tmp:
        pyogrio.write_dataframe(gdf, tmp, driver="GeoJSON", layer="truth", geometry_type="Polygon",
                                layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_BBOX": "YES"})


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
