"""Small generated scenes for the multi-scene tests: windows cut from one larger generated scene (georeferencing
kept), so two of them overlap and a site straddles the first one's edge."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio import Affine
from rasterio.windows import Window, from_bounds

STRIDE_PX = 160  # the committed model's stride, 32 m, in 0.2 m optical pixels: windows stay on one tile grid


def cut_window(src: Path, dst: Path, col_off: int, width: int, *, row_off: int = 0, height: int | None = None
               ) -> Path:
    """Copy a window of a scene folder (optical, thermal, truth) into ``dst``, a scene folder of its own."""
    dst.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src / "optical.tif") as ds:
        height = height or ds.height - row_off
        win = Window(col_off, row_off, width, height)
        bounds = rasterio.windows.bounds(win, ds.transform)
        _copy(ds, dst / "optical.tif", win, scene_id=dst.name)
    with rasterio.open(src / "thermal.tif") as ds:
        win = from_bounds(*bounds, transform=ds.transform).round_offsets().round_lengths()
        _copy(ds, dst / "thermal.tif", win, scene_id=dst.name)
    shutil.copy(src / "truth.geojson", dst / "truth.geojson")
    return dst


def _copy(ds: rasterio.DatasetReader, out: Path, win: Window, *, scene_id: str) -> None:
    _write_like(ds, out, ds.read(window=win), ds.window_transform(win), scene_id=scene_id,
                tiled=True, blockxsize=256, blockysize=256)


def _write_like(ds: rasterio.DatasetReader, out: Path, data: np.ndarray, transform: Affine, *, scene_id: str,
                **profile) -> None:
    """``data`` as a GeoTIFF with ``ds``'s profile, band names and tags, at ``transform``, named ``scene_id``."""
    profile = ds.profile | {"width": data.shape[2], "height": data.shape[1], "transform": transform} | profile
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ds.descriptions
        dst.update_tags(**(ds.tags() | {"MINEWATCH_SCENE_ID": scene_id}))


def mosaic_vrt(files: list[Path], out: Path) -> Path:
    """A VRT mosaic of rasters on one grid (same CRS, pixel size, bands), as ``gdalbuildvrt`` writes it: the union
    of their extents, later files drawn over earlier ones."""
    infos = []
    for f in files:
        with rasterio.open(f) as ds:
            infos.append((f, ds.transform, ds.width, ds.height, ds.count, ds.dtypes[0], ds.crs, ds.descriptions,
                          ds.nodata, ds.tags()))
    res = infos[0][1].a
    left = min(i[1].c for i in infos)
    top = max(i[1].f for i in infos)
    right = max(i[1].c + i[2] * res for i in infos)
    bottom = min(i[1].f - i[3] * res for i in infos)
    width, height = round((right - left) / res), round((top - bottom) / res)
    gdal_type = {"uint8": "Byte", "float32": "Float32", "uint16": "UInt16"}[infos[0][5]]
    tags = "".join(f'<MDI key="{k}">{v}</MDI>' for k, v in infos[0][9].items() if k != "MINEWATCH_SCENE_ID")
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">', f"<SRS>{infos[0][6].to_wkt()}</SRS>",
             f"<GeoTransform>{left!r}, {res!r}, 0, {top!r}, 0, {-res!r}</GeoTransform>",
             f"<Metadata>{tags}</Metadata>"]
    nodata = infos[0][8]
    for b in range(1, infos[0][4] + 1):
        lines.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}">')
        lines.append(f"<Description>{infos[0][7][b - 1] or ''}</Description>")
        if nodata is not None:
            lines.append(f"<NoDataValue>{nodata!r}</NoDataValue>")
        for f, t, w, h, *_ in infos:
            x, y = round((t.c - left) / res), round((top - t.f) / res)
            lines.append(f'<SimpleSource><SourceFilename relativeToVRT="1">{Path(f).relative_to(out.parent)}'
                         f"</SourceFilename><SourceBand>{b}</SourceBand>"
                         f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                         f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>')
        lines.append("</VRTRasterBand>")
    lines.append("</VRTDataset>")
    out.write_text("\n".join(lines))
    return out


def pad_scene(src: Path, dst: Path, margin_m: float) -> Path:
    """Copy a scene folder into ``dst`` with ``margin_m`` metres of nodata around both rasters (georeferencing
    kept): what touched the raster's edge lies inside it."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("optical.tif", "thermal.tif"):
        with rasterio.open(src / name) as ds:
            pad = round(margin_m / ds.res[0])
            data = np.full((ds.count, ds.height + 2 * pad, ds.width + 2 * pad), ds.nodata, dtype=ds.dtypes[0])
            data[:, pad:pad + ds.height, pad:pad + ds.width] = ds.read()
            _write_like(ds, dst / name, data, ds.transform * Affine.translation(-pad, -pad), scene_id=dst.name)
    shutil.copy(src / "truth.geojson", dst / "truth.geojson")
    return dst


def blank_scene(src: Path, dst: Path, margin_m: float, *, hole_m: float | None = None) -> Path:
    """A scene folder over ``src``'s ground and ``margin_m`` metres around it, all of it one even field (each band
    its median, thermal too): another flight over the same ground that finds nothing there. With ``hole_m``,
    ``src``'s ground and ``hole_m`` metres around it are nodata: that flight's raster spans the ground, but it did
    not see it."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("optical.tif", "thermal.tif"):
        with rasterio.open(src / name) as ds:
            pad = round(margin_m / ds.res[0])
            fill = np.median(ds.read().reshape(ds.count, -1), axis=1).astype(ds.dtypes[0])
            data = np.broadcast_to(fill[:, None, None], (ds.count, ds.height + 2 * pad, ds.width + 2 * pad)).copy()
            if hole_m is not None:
                keep = pad - round(hole_m / ds.res[0])
                data[:, keep:data.shape[1] - keep, keep:data.shape[2] - keep] = ds.nodata
            _write_like(ds, dst / name, data, ds.transform * Affine.translation(-pad, -pad), scene_id=dst.name)
    return dst
