"""Landsat 8/9 and Sentinel-2 scenes delivered as one file per band: which file is which band, and when and by
what the scene was taken (Landsat's MTL, Sentinel-2's MTD_*.xml or its file names).

Nothing is stacked here: :class:`BandScene` names the files; `datasets.vrt.write_band_vrt` stacks them lazily.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from minewatch.datasets.thermal import parse_mtl
from minewatch.datasets.vrt import BandSource
from minewatch.errors import UserError

OPTICAL_ORDER = ("red", "green", "blue", "nir")
LANDSAT_OLI = {"blue": 2, "green": 3, "red": 4, "nir": 5}
"""Landsat 8/9 OLI band numbers (Collection 1/2 Level-1 ``_B4.TIF``, Level-2 ``_SR_B4.TIF``)."""
SENTINEL2 = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
"""Sentinel-2 MSI 10 m bands."""

_LANDSAT_FILE = re.compile(r"(?:^|_)(SR_|ST_)?B(\d{1,2})\.TIFF?$", re.IGNORECASE)
_S2_FILE = re.compile(r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A))(?:_(10|20|60)m)?\.(?:JP2|TIFF?)$", re.IGNORECASE)
_S2_DATE = re.compile(r"_(\d{8}T\d{6})_")


@dataclass(frozen=True)
class BandScene:
    """One Landsat or Sentinel-2 scene given as band files."""

    folder: Path
    mission: str  # "landsat" | "sentinel-2"
    sensor: str  # e.g. "landsat-8", "sentinel-2a"
    bands: dict[str, Path]  # minewatch band name (red, green, blue[, nir]) -> file
    thermal: Path | None
    acquired: str | None  # ISO 8601, UTC
    product_id: str | None

    def sources(self) -> list[BandSource]:
        """The optical bands in minewatch's order, for `write_band_vrt`."""
        return [BandSource(str(self.bands[b]), b) for b in OPTICAL_ORDER if b in self.bands]

    def tags(self) -> dict[str, str]:
        tags = {"SENSOR": self.sensor, "MINEWATCH_BANDS_FROM": self.mission}
        if self.acquired:
            tags["ACQUISITION_DATETIME"] = self.acquired
        if self.product_id:
            tags["PRODUCT_ID"] = self.product_id
        return tags


def band_folder_kind(folder: Path) -> str | None:
    """``"landsat"`` or ``"sentinel-2"`` when the folder holds that mission's band files, else None."""
    names = [p.name for p in _files(folder)]
    if _s2_files(folder):
        return "sentinel-2"
    landsat = [n for n in names if _LANDSAT_FILE.search(n)]
    if landsat and (any(n.upper().endswith("MTL.TXT") for n in names)
                    or any(re.search(r"(?:^|_)(?:SR_)?B\d\.TIFF?$", n, re.IGNORECASE) for n in landsat)):
        return "landsat"
    return None


def read_band_folder(folder: str | Path) -> BandScene:
    """The scene of a Landsat or Sentinel-2 band folder; refuses one without red, green and blue bands, naming
    the bands it found."""
    folder = Path(folder)
    kind = band_folder_kind(folder)
    if kind == "landsat":
        return _landsat(folder)
    if kind == "sentinel-2":
        return _sentinel2(folder)
    raise UserError("no Landsat or Sentinel-2 band files here", path=folder,
                    fix="give a folder of *_B2..B5.TIF (Landsat) or *_B02..B04.jp2 (Sentinel-2) band files")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _landsat(folder: Path) -> BandScene:
    found: dict[int, list[tuple[str, Path]]] = {}
    for p in _files(folder):
        m = _LANDSAT_FILE.search(p.name)
        if m:
            found.setdefault(int(m.group(2)), []).append(((m.group(1) or "").upper(), p))
    mtl_files = sorted(p for p in _files(folder) if p.name.upper().endswith("MTL.TXT"))
    mtl = parse_mtl(mtl_files[0]) if mtl_files else {}

    def pick(number: int, prefer: str) -> Path | None:
        options = found.get(number, [])
        return next((p for pre, p in options if pre == prefer), options[0][1] if options else None)

    bands = {name: p for name, n in LANDSAT_OLI.items() if (p := pick(n, "SR_")) is not None}
    _require_rgb(folder, bands, [f"B{n}" for n in sorted(found)], {"red": "B4", "green": "B3", "blue": "B2"},
                 "Landsat", "give the scene's B2, B3 and B4 (and B5) band files")
    thermal = pick(10, "ST_")
    spacecraft = mtl.get("SPACECRAFT_ID", "")
    sensor = spacecraft.lower().replace("_", "-") if spacecraft else _landsat_from_name(bands["red"].name)
    acquired = None
    if mtl.get("DATE_ACQUIRED"):
        clock = mtl.get("SCENE_CENTER_TIME", "00:00:00").rstrip("Z").split(".")[0]
        acquired = f"{mtl['DATE_ACQUIRED']}T{clock}Z"
    product = mtl.get("LANDSAT_PRODUCT_ID") or mtl.get("LANDSAT_SCENE_ID")
    return BandScene(folder, "landsat", sensor, bands, thermal, acquired, product)


def _landsat_from_name(name: str) -> str:
    m = re.match(r"L[COTE]0?([89])", name.upper())
    return f"landsat-{m.group(1)}" if m else "landsat"


def _s2_files(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    """Sentinel-2 band files of a folder (or, for a .SAFE product, of its granule), by band id."""
    paths = _files(folder)
    if folder.name.upper().endswith(".SAFE") and folder.is_dir():
        paths = sorted(p for p in folder.glob("GRANULE/*/IMG_DATA/**/*") if p.is_file())
    found: dict[str, list[tuple[int, Path]]] = {}
    for p in paths:
        m = _S2_FILE.search(p.name)
        # B11/B12 alone are Landsat's thermal bands too: only a folder with a B0x or B8A file is Sentinel-2.
        if m:
            found.setdefault(m.group(1).upper(), []).append((int(m.group(2) or 0), p))
    if not any(b.startswith("B0") or b == "B8A" for b in found):
        return {}
    return found


def _sentinel2(folder: Path) -> BandScene:
    found = _s2_files(folder)
    # The finest copy of each band (an L2A product has B02 at 10, 20 and 60 m).
    bands = {name: min(found[b])[1] for name, b in SENTINEL2.items() if b in found}
    _require_rgb(folder, bands, sorted(found), {"red": "B04", "green": "B03", "blue": "B02"}, "Sentinel-2",
                 "give the 10 m bands B02, B03 and B04 (and B08) of the scene")
    sensor, acquired, product = "sentinel-2", None, None
    mtd = _s2_metadata(folder)
    if mtd is not None:
        text = {el.tag.split("}")[-1]: (el.text or "").strip() for el in mtd.iter()}
        if text.get("SPACECRAFT_NAME"):
            sensor = text["SPACECRAFT_NAME"].lower()
        stamp = text.get("PRODUCT_START_TIME") or text.get("SENSING_TIME") or text.get("DATATAKE_SENSING_START")
        acquired = _iso_z(stamp) if stamp else None
        product = (text.get("PRODUCT_URI") or "").removesuffix(".SAFE") or None
    if acquired is None:
        m = _S2_DATE.search(bands["red"].name)
        if m:
            d = m.group(1)
            acquired = f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[9:11]}:{d[11:13]}:{d[13:15]}Z"
    return BandScene(folder, "sentinel-2", sensor, bands, None, acquired, product)


def _s2_metadata(folder: Path) -> ET.Element | None:
    """MTD_MSIL1C.xml / MTD_MSIL2A.xml / MTD_TL.xml in the folder or up to three folders above (a granule's
    IMG_DATA sits three below the product)."""
    for parent in [folder, *list(folder.parents)[:3]]:
        for name in ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml", "MTD_TL.xml"):
            if (parent / name).is_file():
                try:
                    return ET.parse(parent / name).getroot()
                except ET.ParseError:
                    return None
    return None


def _iso_z(stamp: str) -> str:
    """'2016-01-12T16:07:02.026Z' -> '2016-01-12T16:07:02Z'."""
    return stamp.split(".")[0].rstrip("Z") + "Z"


def _require_rgb(folder: Path, bands: dict[str, Path], found: list[str], ids: dict[str, str], mission: str,
                 fix: str) -> None:
    missing = [f"{name} ({ids[name]})" for name in ("red", "green", "blue") if name not in bands]
    if missing:
        have = ", ".join(found) if found else "none"
        raise UserError(f"{mission} band files here are {have}: no {', '.join(missing)}", path=folder, fix=fix)
