"""Thermal ingest (to kelvin) and the thermal anomaly: excess over a robust local background.

Mining farms run at about 300-330 K: fixed fire thresholds (>= 310 K, 600 K) are useless. What marks a farm
is a sustained excess over its surroundings, so each pixel is compared with the median of a window of
``background_m`` metres around it, and the excess is also given as a robust z-score (MAD).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from minewatch.errors import UserError

ThermalKind = Literal["kelvin", "celsius", "fahrenheit", "landsat_l1", "landsat_l2_st"]
UNIT_NAMES: dict[str, ThermalKind] = {
    "k": "kelvin", "kelvin": "kelvin", "kelvins": "kelvin", "deg k": "kelvin",
    "c": "celsius", "celsius": "celsius", "degc": "celsius", "deg c": "celsius", "°c": "celsius",
    "degrees celsius": "celsius", "degree_celsius": "celsius",
    "f": "fahrenheit", "fahrenheit": "fahrenheit", "degf": "fahrenheit", "deg f": "fahrenheit",
    "°f": "fahrenheit", "degrees fahrenheit": "fahrenheit",
}
"""Spellings of temperature units in a UNITS tag, GDAL's band unit type or --thermal-units (lower case)."""

# Landsat Collection 2 Level-2 surface temperature: K = DN * 0.00341802 + 149.0, fill 0.
L2_ST_SCALE = 0.00341802
L2_ST_OFFSET = 149.0
# Robust sigma floor: no sensor is calibrated better than this, so a flat field gives no huge z-scores.
MIN_SIGMA_K = 0.5
MAD_TO_SIGMA = 1.4826
DEFAULT_BACKGROUND_M = 100.0
"""Side of the local background window: a farm (20-100 m) stands out of it, a field's warm patch does not."""
BACKGROUND_CELLS_PER_WINDOW = 4
"""The background is estimated on a grid a quarter of the window wide: smooth enough, 1/2500 of the pixels
of a 0.5 m model grid."""


def background_gsd(background_m: float, background_gsd_m: float | None = None) -> float:
    """Grid of the background estimate, metres: ``background_gsd_m`` when given, else a quarter window."""
    return background_gsd_m or background_m / BACKGROUND_CELLS_PER_WINDOW


@dataclass(frozen=True)
class LandsatL1Constants:
    """Radiance scaling and Planck constants of one TIRS band, from the MTL file."""

    band: int
    radiance_mult: float
    radiance_add: float
    k1: float
    k2: float


def parse_mtl(path: str | Path) -> dict[str, str]:
    """``KEY = VALUE`` pairs of a Landsat MTL text file (quotes stripped)."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read the MTL file ({exc.strerror})", path=path, fix="check the path") from None
    for line in text.splitlines():
        m = re.match(r"\s*([A-Z0-9_]+)\s*=\s*(.+?)\s*$", line)
        if m:
            values[m.group(1)] = m.group(2).strip('"')
    return values


def landsat_l1_constants(mtl_path: str | Path, band: int = 10) -> LandsatL1Constants:
    """Read RADIANCE_MULT/ADD and K1/K2 for a TIRS band (10 or 11)."""
    mtl = parse_mtl(mtl_path)
    keys = {
        "radiance_mult": f"RADIANCE_MULT_BAND_{band}",
        "radiance_add": f"RADIANCE_ADD_BAND_{band}",
        "k1": f"K1_CONSTANT_BAND_{band}",
        "k2": f"K2_CONSTANT_BAND_{band}",
    }
    missing = [k for k in keys.values() if k not in mtl]
    if missing:
        raise UserError(f"MTL lacks {', '.join(missing)}", path=mtl_path, fix="use the scene's full *_MTL.txt")
    return LandsatL1Constants(band=band, **{name: float(mtl[key]) for name, key in keys.items()})


def landsat_l1_to_kelvin(dn: np.ndarray, c: LandsatL1Constants, nodata: float | None = 0) -> np.ndarray:
    """Top-of-atmosphere brightness temperature: L = mult*DN + add; BT = K2 / ln(K1/L + 1)."""
    dn = np.asarray(dn, dtype=np.float64)
    radiance = c.radiance_mult * dn + c.radiance_add
    with np.errstate(divide="ignore", invalid="ignore"):
        bt = c.k2 / np.log(c.k1 / radiance + 1.0)
    bad = ~np.isfinite(bt) | (radiance <= 0)
    if nodata is not None:
        bad |= dn == nodata
    return np.where(bad, np.nan, bt).astype(np.float32)


def landsat_l2_st_to_kelvin(dn: np.ndarray) -> np.ndarray:
    """Collection-2 Level-2 ST_B10 to kelvin; DN 0 is fill."""
    dn = np.asarray(dn, dtype=np.float64)
    return np.where(dn == 0, np.nan, dn * L2_ST_SCALE + L2_ST_OFFSET).astype(np.float32)


def thermal_units(name: str | None) -> ThermalKind | None:
    """The temperature unit a spelling means (case-insensitive), None for an empty one; refuses others."""
    text = (name or "").strip().lower()
    if not text:
        return None
    if text not in UNIT_NAMES:
        raise UserError(f"unknown temperature unit {name!r}",
                        fix="use K, kelvin, degC, celsius, degF or fahrenheit")
    return UNIT_NAMES[text]


def detect_thermal_kind(path: str | Path, units_tag: str | None, units_flag: str | None,
                        band_unit: str | None = None) -> ThermalKind:
    """What the thermal raster holds: ``units_flag`` (--thermal-units) first, then Landsat L2 ST_B10 or
    L1 DN with its MTL, then GDAL's band unit type (what QGIS, gdal_edit -units and rasterio's
    ``dst.units`` write), then a UNITS metadata tag (any case)."""
    name = Path(path).name.upper()
    if units_flag:
        return thermal_units(units_flag)  # type: ignore[return-value]
    if "ST_B10" in name:
        return "landsat_l2_st"
    if re.search(r"B1[01]\.TIF+$", name) and find_mtl(path) is not None:
        return "landsat_l1"
    for source, value in (("band unit type", band_unit), ("UNITS tag", units_tag)):
        try:
            kind = thermal_units(value)
        except UserError:
            raise UserError(f"the thermal raster's {source} {value!r} is not a temperature unit", path=path,
                            fix="pass --thermal-units kelvin, celsius or fahrenheit") from None
        if kind is not None:
            return kind
    raise UserError(
        "the thermal raster does not say its units (no band unit type or UNITS tag, not a Landsat band with "
        "its MTL)",
        path=path,
        fix="pass --thermal-units kelvin, celsius or fahrenheit (or set it: gdal_edit -units K FILE)",
    )


def is_thermal_raster(path: str | Path, units: str | None = None) -> bool:
    """A single-band raster that says it holds temperature: a Landsat thermal band (L1 B10/B11 with its MTL,
    L2 ST_B10), a temperature unit in its band unit type or UNITS tag, or ``units`` (--thermal-units)."""
    from minewatch.datasets.raster_io import open_raster

    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open_raster(p, what="raster") as src:
            if src.count != 1:
                return False
            tags = {k.upper(): v for k, v in src.tags().items()}
            detect_thermal_kind(p, tags.get("UNITS"), units, src.units[0])
            return True
    except (UserError, OSError):
        return False


def find_mtl(path: str | Path) -> Path | None:
    """The Landsat MTL file beside a band file, if there is one."""
    folder = Path(path).parent
    found = sorted(folder.glob("*MTL.txt")) + sorted(folder.glob("*_MTL.TXT"))
    return found[0] if found else None


def landsat_band_number(path: str | Path) -> int:
    m = re.search(r"B(1[01])\.TIF+$", Path(path).name.upper())
    return int(m.group(1)) if m else 10


def to_kelvin(values: np.ndarray, kind: ThermalKind, *, source: Path | None = None,
              nodata: float | None = None) -> np.ndarray:
    """Convert a thermal read to kelvin float32 with NaN for nodata."""
    if kind == "landsat_l1":
        assert source is not None
        mtl = find_mtl(source)
        assert mtl is not None
        return landsat_l1_to_kelvin(values, landsat_l1_constants(mtl, landsat_band_number(source)), nodata)
    if kind == "landsat_l2_st":
        return landsat_l2_st_to_kelvin(values)
    out = np.asarray(values, dtype=np.float32)
    if nodata is not None and not np.isnan(nodata):
        out = np.where(out == nodata, np.nan, out)
    if kind == "celsius":
        out = out + np.float32(273.15)
    elif kind == "fahrenheit":
        out = (out - np.float32(32.0)) * np.float32(5 / 9) + np.float32(273.15)
    return out.astype(np.float32, copy=False)


@dataclass(frozen=True)
class Background:
    """Robust local background on a coarse grid: median and robust sigma (K) per coarse cell."""

    median: np.ndarray
    sigma: np.ndarray
    step_m: float


def robust_background(coarse_k: np.ndarray, step_m: float, window_m: float) -> Background:
    """Median and MAD-sigma over a window of ``window_m`` metres, on a grid of ``step_m`` cells.

    ``coarse_k`` are area means of the temperature per cell (NaN = nodata). A site smaller than half the
    window leaves the median untouched, which is the point of a median.
    """
    size = max(3, int(round(window_m / step_m)) | 1)
    valid = np.isfinite(coarse_k)
    if not valid.any():
        nan = np.full(coarse_k.shape, np.nan, dtype=np.float32)
        return Background(nan, nan, step_m)
    fill = float(np.nanmedian(coarse_k))
    filled = np.where(valid, coarse_k, fill).astype(np.float32)
    median = ndimage.median_filter(filled, size=size, mode="nearest")
    mad = ndimage.median_filter(np.abs(filled - median), size=size, mode="nearest")
    sigma = np.maximum(mad * MAD_TO_SIGMA, MIN_SIGMA_K).astype(np.float32)
    return Background(median.astype(np.float32), sigma, step_m)


def anomaly(kelvin: np.ndarray, bg_median: np.ndarray, bg_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excess over background (K) and robust z-score, NaN where the temperature is missing."""
    dt = (kelvin - bg_median).astype(np.float32)
    return dt, (dt / bg_sigma).astype(np.float32)


def _linear_axis(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weight along one axis for linear interpolation, edges held."""
    x = x - 0.5  # cell centres at .5
    i0 = np.floor(x).astype(np.intp)
    return np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1), x - i0


def sample_grid(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear sample of a small grid on the lattice ``rows x cols`` (1-D fractional cell coordinates).

    The lattice is regular, so the interpolation is separable: two 1-D passes, no coordinate meshgrid
    (about five times cheaper than ``ndimage.map_coordinates`` on a strip).
    """
    r0, r1, fr = _linear_axis(values.shape[0], np.asarray(rows, dtype=np.float64))
    c0, c1, fc = _linear_axis(values.shape[1], np.asarray(cols, dtype=np.float64))
    v = values.astype(np.float64)
    along_rows = v[r0] * (1 - fr)[:, None] + v[r1] * fr[:, None]
    return (along_rows[:, c0] * (1 - fc) + along_rows[:, c1] * fc).astype(np.float32)


# ------------------------------------------------------------------------------------------ Landsat clouds
QA_SUFFIXES = ("_QA_PIXEL.TIF", "_BQA.TIF")
"""Landsat quality bands beside a thermal band: Collection 2 ``QA_PIXEL``, Collection 1 and pre-collection ``BQA``."""


def find_landsat_qa(path: str | Path) -> Path | None:
    """The quality band of the Landsat scene a thermal band belongs to (same folder), if any."""
    folder = Path(path).parent
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and p.name.upper().endswith(QA_SUFFIXES):
            return p
    return None


def landsat_cloud_mask(qa: np.ndarray, mtl: dict[str, str]) -> np.ndarray:
    """Clouds (and cloud shadows where the band flags them) of a Landsat quality band, by its collection:
    Collection 2 QA_PIXEL bits 1 (dilated cloud), 3 (cloud) and 4 (shadow); Collection 1 BQA bit 4 (cloud) and
    high shadow confidence (bits 7-8); pre-collection BQA medium or high cloud confidence (bits 14-15)."""
    qa = np.asarray(qa).astype(np.uint16)
    collection = mtl.get("COLLECTION_NUMBER", "").strip().lstrip("0")
    if collection == "2":
        return ((qa >> 1) & 1).astype(bool) | ((qa >> 3) & 1).astype(bool) | ((qa >> 4) & 1).astype(bool)
    if collection == "1":
        return ((qa >> 4) & 1).astype(bool) | (((qa >> 7) & 3) == 3)
    return ((qa >> 14) & 3) >= 2
