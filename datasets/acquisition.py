"""When and by what a raster was acquired, from the metadata its supplier puts beside it.

Sites carry ``acquired`` and ``sensor`` so a regulator can set a scan against electricity records of the
same months. Sources, first found wins: minewatch's own tags (generated scenes), a Landsat ``*_MTL.txt``
beside the file, Sentinel-2 ``MTD_*.xml`` in the file's folder or the SAFE folders above it, the TIFF
date-time tag. Missing metadata is not an error: the fields stay empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from minewatch.datasets.thermal import find_mtl, parse_mtl

S2_METADATA = ("MTD_TL.xml", "MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
S2_SEARCH_DEPTH = 4
"""SAFE layout: GRANULE/<tile>/IMG_DATA/R10m/<band>.jp2 sits four folders below MTD_MSIL*.xml."""
XML_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class Acquisition:
    acquired: str | None  # ISO 8601, UTC
    sensor: str | None  # e.g. "Landsat 8 OLI_TIRS", "Sentinel-2A MSI"; None: the sensor profile's name


def acquisition_of(path: str | Path, tags: dict[str, str]) -> Acquisition:
    """Acquisition time and sensor of the raster at ``path`` with GDAL metadata ``tags``."""
    p = Path(path)
    if tags.get("ACQUISITION_DATETIME"):
        return Acquisition(tags["ACQUISITION_DATETIME"], None)
    mtl = find_mtl(p)
    if mtl is not None:
        found = landsat_acquisition(parse_mtl(mtl))
        if found.acquired or found.sensor:
            return found
    for folder in [p.parent, *list(p.parents)[1:S2_SEARCH_DEPTH + 1]]:
        for name in S2_METADATA:
            if (folder / name).is_file():
                with open(folder / name, "rb") as fh:
                    return sentinel2_acquisition(fh.read(XML_READ_BYTES).decode("utf-8", "replace"))
    return Acquisition(tiff_datetime(tags.get("TIFFTAG_DATETIME")), None)


def landsat_acquisition(mtl: dict[str, str]) -> Acquisition:
    """DATE_ACQUIRED + SCENE_CENTER_TIME, SPACECRAFT_ID + SENSOR_ID of a parsed MTL."""
    date, time = mtl.get("DATE_ACQUIRED"), mtl.get("SCENE_CENTER_TIME", "")
    acquired = None
    if date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        m = re.match(r"(\d{2}:\d{2}:\d{2})", time)
        acquired = f"{date}T{m.group(1)}Z" if m else date
    craft = mtl.get("SPACECRAFT_ID", "").replace("LANDSAT_", "Landsat ")
    sensor = " ".join(x for x in (craft, mtl.get("SENSOR_ID", "")) if x) or None
    return Acquisition(acquired, sensor)


def sentinel2_acquisition(xml: str) -> Acquisition:
    """SENSING_TIME (tile) or PRODUCT_START_TIME, and SPACECRAFT_NAME, of Sentinel-2 metadata text (read
    with a pattern, not an XML parser: only two values are wanted from a file of unknown origin)."""
    t = re.search(r"<(SENSING_TIME|PRODUCT_START_TIME)[^>]*>\s*([0-9T:\-.]+)Z?\s*<", xml)
    craft = re.search(r"<SPACECRAFT_NAME>\s*([^<]+?)\s*<", xml)
    acquired = t.group(2).split(".")[0] + "Z" if t else None
    return Acquisition(acquired, f"{craft.group(1)} MSI" if craft else None)


def tiff_datetime(value: str | None) -> str | None:
    """TIFF 'YYYY:MM:DD HH:MM:SS' to ISO 8601."""
    if not value or len(value) < 19:
        return None
    return f"{value[:4]}-{value[5:7]}-{value[8:10]}T{value[11:19]}"
