"""VRT files: check what a user's VRT mosaic points at before GDAL reads it, and write the small VRTs minewatch
makes itself (Landsat / Sentinel-2 band files stacked by name, rasters read over HTTP).

A ``.vrt`` is a text file that can point anywhere: at any file on disk, through any GDAL driver or virtual file
system, read as raw bytes, or computed by a pixel function with code in it. :func:`check_vrt` accepts a VRT only
when every source is a plain file path that exists and opens with one of the drivers minewatch reads (or another
VRT checked the same way), or a ``/vsicurl/`` URL when remote reads are allowed; raw bands and pixel functions
with code are refused, and GDAL's Python pixel functions stay disabled. Everything raises a one-line
:class:`UserError`.
"""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from minewatch.atomic import atomic_path
from minewatch.errors import UserError, first_line

# GDAL runs Python code embedded in a VRT only when this is YES: never for user files.
os.environ["GDAL_VRT_ENABLE_PYTHON"] = "NO"

ALLOW_REMOTE_ENV = "MINEWATCH_ALLOW_REMOTE"
"""``YES`` lets VRT sources (and scan inputs) be read over HTTP(S) through GDAL's ``/vsicurl/``."""
REMOTE_PREFIX = "/vsicurl/"
MAX_VRT_BYTES = 64 * 2**20  # a mosaic of ~100k sources; larger is not a VRT anyone wrote by hand or tool
MAX_DEPTH = 4  # VRTs of VRTs of ...
SOURCE_TAGS = ("SourceFilename", "SourceDataset")  # SourceDataset: the source of a VRTWarpedDataset
_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def remote_reads_allowed() -> bool:
    return os.environ.get(ALLOW_REMOTE_ENV, "").strip().upper() in ("1", "YES", "TRUE", "ON")


@contextmanager
def remote_reads(allowed: bool) -> Iterator[None]:
    """Allow (or forbid) ``/vsicurl/`` reads for the duration, e.g. in a worker scanning one scene."""
    before = os.environ.get(ALLOW_REMOTE_ENV)
    os.environ[ALLOW_REMOTE_ENV] = "YES" if allowed else "NO"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_REMOTE_ENV, None)
        else:
            os.environ[ALLOW_REMOTE_ENV] = before


def is_remote(href: str) -> bool:
    return href.startswith(REMOTE_PREFIX) or href.startswith(("http://", "https://"))


def is_vrt_file(path: str | Path) -> bool:
    """True when GDAL would open the file as a VRT (it looks for ``<VRTDataset`` in the first kilobyte)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return b"<VRTDataset" in head


def check_vrt(path: str | Path, *, accepted: Sequence[str], _depth: int = 0,
              _seen: set[Path] | None = None) -> None:
    """Refuse a VRT unless everything it reads is a file of an ``accepted`` driver (see the module doc)."""
    p = Path(path)
    seen = _seen if _seen is not None else set()
    real = p.resolve()
    if real in seen:
        raise UserError("the VRT refers to itself (a loop of VRTs)", path=p, fix="rebuild it with gdalbuildvrt")
    seen.add(real)
    if _depth > MAX_DEPTH:
        raise UserError(f"VRTs nested more than {MAX_DEPTH} deep", path=p,
                        fix="build one VRT over the raster files (gdalbuildvrt)")
    if p.stat().st_size > MAX_VRT_BYTES:
        raise UserError(f"the VRT is larger than {MAX_VRT_BYTES // 2**20} MB", path=p,
                        fix="split the mosaic into several VRTs and scan them as separate inputs")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise UserError(f"the VRT is not valid XML ({first_line(exc)})", path=p,
                        fix="rebuild it with gdalbuildvrt") from None
    if root.tag != "VRTDataset":
        raise UserError(f"not a VRT (root element <{root.tag}>)", path=p, fix="give a VRT written by gdalbuildvrt")
    for band in root.iter("VRTRasterBand"):
        kind = band.get("subClass", "")
        if kind == "VRTRawRasterBand":
            raise UserError("the VRT reads a file as raw bytes (VRTRawRasterBand), which minewatch does not allow",
                            path=p, fix="convert the raw file to GeoTIFF and point the VRT at it")
    for el in root.iter():
        if el.tag == "PixelFunctionCode" or (el.tag == "PixelFunctionLanguage" and (el.text or "").strip()):
            raise UserError("the VRT computes pixels with code (a pixel function with code), which minewatch "
                            "does not run", path=p, fix="compute the band once (e.g. gdal_calc.py) and give the result")
    checked: set[str] = set()
    for el in root.iter():
        if el.tag in SOURCE_TAGS:
            href = (el.text or "").strip()
            if href in checked:
                continue
            checked.add(href)
            _check_source(p, href, relative=el.get("relativeToVRT") == "1" or el.get("relativetoVRT") == "1",
                          accepted=accepted, depth=_depth, seen=seen)


def _check_source(vrt: Path, href: str, *, relative: bool, accepted: Sequence[str], depth: int,
                  seen: set[Path]) -> None:
    if not href:
        raise UserError("the VRT has an empty source file name", path=vrt, fix="rebuild it with gdalbuildvrt")
    if href.startswith(REMOTE_PREFIX):
        if not href[len(REMOTE_PREFIX):].startswith(("http://", "https://")):
            raise UserError(f"VRT source {href} is not an http(s) URL", path=vrt, fix="use /vsicurl/https://...")
        if not remote_reads_allowed():
            raise UserError(f"the VRT reads {href} over the network", path=vrt,
                            fix="pass --allow-remote to allow remote reads, or point the VRT at local copies")
        _check_driver(vrt, href, accepted)
        return
    if href.startswith("/vsi"):
        prefix = href.split("/")[1]
        raise UserError(f"VRT source {href} goes through GDAL's /{prefix}/, which minewatch does not read",
                        path=vrt, fix="extract or copy the files and point the VRT at them")
    if ":" in href.split("/")[0] or "://" in href:
        raise UserError(f"VRT source {href} is not a file path (a driver or URL connection string)", path=vrt,
                        fix="point the VRT at raster files (gdalbuildvrt)")
    src = Path(href)
    if not src.is_absolute():
        src = (vrt.parent / src) if relative else Path.cwd() / src
    if not src.is_file():
        what = "does not exist" if not src.exists() else "is not a regular file"
        raise UserError(f"VRT source {href} {what}", path=vrt,
                        fix="move the VRT back beside its files, or rebuild it with gdalbuildvrt")
    if is_vrt_file(src):
        check_vrt(src, accepted=accepted, _depth=depth + 1, _seen=seen)
        return
    _check_driver(vrt, str(src), accepted)


def _check_driver(vrt: Path, href: str, accepted: Sequence[str]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(href) as ds:
                driver = ds.driver
    except RasterioIOError as exc:
        raise UserError(f"VRT source {href} cannot be read ({first_line(exc)})", path=vrt,
                        fix="check the source files, or rebuild the VRT") from None
    if driver not in accepted:
        raise UserError(f"VRT source {href} is a {driver} file, which minewatch does not read", path=vrt,
                        fix=f"convert it to GeoTIFF; accepted: {', '.join(accepted)}")


# ------------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class BandSource:
    """One band of a new VRT: ``band`` of the raster at ``href`` (a path or ``/vsicurl/`` URL), named ``name``."""

    href: str
    name: str
    band: int = 1


def write_band_vrt(sources: Sequence[BandSource], out: str | Path, *, tags: Mapping[str, str] | None = None,
                   what: str = "band file") -> Path:
    """Stack bands of one or more rasters into a VRT (atomically): one band per source, named, on the grid of the
    finest source over the area all of them cover. Every source must share one CRS. Nothing is copied: GDAL
    reads the source files lazily through the VRT, window by window."""
    if not sources:
        raise ValueError("no bands to stack")
    infos = []
    for s in sources:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(s.href) as ds:
                    if not 1 <= s.band <= ds.count:
                        raise UserError(f"has {ds.count} band(s), band {s.band} was asked for", path=s.href,
                                        fix="check the band index")
                    infos.append((s, ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[s.band - 1],
                                  ds.nodatavals[s.band - 1], ds.block_shapes[s.band - 1], ds.bounds))
        except RasterioIOError as exc:
            raise UserError(f"cannot read the {what} ({first_line(exc)})", path=s.href,
                            fix="check the file is complete (download it again)") from None
    crs = infos[0][1]
    for info in infos[1:]:
        if info[1] != crs:
            raise UserError(f"{what}s are in different CRSs ({crs} and {info[1]})", path=info[0].href,
                            fix="give the band files of one scene")
    res = min(abs(i[2].a) for i in infos)
    left = max(i[8].left for i in infos)
    right = min(i[8].right for i in infos)
    top = min(i[8].top for i in infos)
    bottom = max(i[8].bottom for i in infos)
    if right <= left or top <= bottom:
        raise UserError(f"the {what}s do not overlap", path=infos[0][0].href, fix="give the band files of one scene")
    width = max(1, math.floor((right - left) / res + 1e-6))
    height = max(1, math.floor((top - bottom) / res + 1e-6))
    dtypes = {i[5] for i in infos}
    dtype = infos[0][5] if len(dtypes) == 1 else "float32"
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs.to_wkt())}</SRS>",
             f"  <GeoTransform>{left!r}, {res!r}, 0.0, {top!r}, 0.0, {-res!r}</GeoTransform>"]
    if tags:
        lines.append("  <Metadata>")
        lines += [f"    <MDI key={quoteattr(k)}>{escape(str(v))}</MDI>" for k, v in tags.items()]
        lines.append("  </Metadata>")
    for k, (s, _, t, w, h, dt, nodata, block, _) in enumerate(infos, start=1):
        # The source window covering the VRT's extent, in source pixels (fractional where grids differ).
        sx, sy = (left - t.c) / t.a, (top - t.f) / t.e
        sw, sh = width * res / t.a, height * res / abs(t.e)
        href = s.href if s.href.startswith(REMOTE_PREFIX) else str(Path(s.href).resolve())
        kind = "ComplexSource" if nodata is not None else "SimpleSource"
        lines += [f'  <VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{k}">',
                  f"    <Description>{escape(s.name)}</Description>"]
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        lines += [f"    <{kind}>",
                  f'      <SourceFilename relativeToVRT="0">{escape(href)}</SourceFilename>',
                  f"      <SourceBand>{s.band}</SourceBand>",
                  f'      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="{_GDAL_TYPES[dt]}" '
                  f'BlockXSize="{block[1]}" BlockYSize="{block[0]}" />',
                  f'      <SrcRect xOff="{sx!r}" yOff="{sy!r}" xSize="{sw!r}" ySize="{sh!r}" />',
                  f'      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}" />']
        if nodata is not None:
            lines.append(f"      <NODATA>{nodata!r}</NODATA>")
        lines += [f"    </{kind}>", "  </VRTRasterBand>"]
    lines.append("</VRTDataset>")
    target = Path(out)
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
