"""What a multi-scene scan reads: the scenes behind the inputs a user names.

An input is a raster (GeoTIFF, VRT, ...), a folder (walked recursively: scene folders with ``optical.tif`` and an
optional ``thermal.tif``, Landsat 8/9 or Sentinel-2 band folders, loose rasters), a glob, a text/CSV list of
``optical[,thermal]`` lines, or a STAC Item, ItemCollection or Catalog (JSON file or URL). Each scene found becomes
one :class:`SceneInput` with a unique, filesystem-safe ``scene_id``; a scene that is found but cannot be scanned
(a band folder without red, green and blue; a STAC item without an optical asset) carries its one-line reason in
``error`` so the run reports it and goes on with the others.

Nothing here opens a raster: band files are stacked (and remote rasters wrapped) into a VRT by :func:`materialize`
on the worker that scans the scene.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timezone
from pathlib import Path
from urllib.parse import urljoin, urlparse

from minewatch.datasets.band_files import OPTICAL_ORDER, band_folder_kind, read_band_folder
from minewatch.datasets.scene_folder import OPTICAL_NAMES, SceneFiles
from minewatch.datasets.vrt import REMOTE_PREFIX, BandSource, is_remote, write_band_vrt
from minewatch.errors import UserError, first_line

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
"""Files a folder walk takes as loose rasters (one scene each)."""
LIST_SUFFIXES = (".txt", ".csv", ".lst")
STAC_SUFFIXES = (".json",)
THERMAL_ASSET_KEYS = ("thermal", "lwir", "lwir11", "tir", "tirs", "st_b10", "b10", "temperature")
"""STAC asset keys taken as the thermal band when no --thermal-asset is given."""
THERMAL_COMMON_NAMES = ("lwir", "lwir11")
OPTICAL_ASSET_KEYS = ("optical", "visual", "image", "rgb", "data")
COMMON_TO_BAND = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "nir08": "nir"}
RESERVED_IDS = {"sites.geojson", "sites.gpkg", "run.json"}
MAX_ID_CHARS = 96


@dataclass(frozen=True)
class SceneInput:
    """One scene to scan: where its rasters are and what is known about it before opening them."""

    scene_id: str
    optical: str | None  # a local raster path or an http(s) URL; None when ``bands`` are stacked
    thermal: str | None = None
    bands: tuple[BandSource, ...] = ()  # band files to stack into the scene's optical VRT
    band_names: tuple[str, ...] = ()  # names of ``optical``'s bands, when a STAC item says them
    acquired: str | None = None
    sensor: str | None = None
    origin: str = ""  # what the user gave that led here, for messages
    error: str | None = None  # found but not scannable: the one-line reason
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What makes two inputs the same scene (the same optical raster or band files)."""
        if self.bands:
            return "|".join(_norm(b.href) for b in self.bands)
        return _norm(self.optical or self.origin)

    @property
    def remote(self) -> bool:
        return any(is_remote(h) for h in (self.optical or "", self.thermal or "", *(b.href for b in self.bands)))


def _norm(href: str) -> str:
    return href if is_remote(href) else str(Path(href).resolve())


# ------------------------------------------------------------------------------------------------ discovery
def discover(inputs: Sequence[str], *, thermal_asset: str | None = None) -> list[SceneInput]:
    """Every scene behind ``inputs``, in the order given (folders and globs sorted), duplicates dropped, ids
    made unique. Raises :class:`UserError` for an input that does not exist or cannot be read at all, and when
    no scene can be scanned."""
    found: list[SceneInput] = []
    for raw in inputs:
        found += _one(str(raw), thermal_asset)
    seen: set[str] = set()
    unique = []
    for s in found:
        if s.error is None and s.key in seen:
            log.info("%s: given twice, scanned once", s.origin)
            continue
        seen.add(s.key)
        unique.append(s)
    if not unique:
        raise UserError("no scenes found in the inputs", path=", ".join(map(str, inputs)),
                        fix="give rasters, scene folders, a list file or a STAC catalog")
    if all(s.error for s in unique):
        raise UserError(unique[0].error or "")  # nothing to scan: the (first) reason is the run's one line
    return assign_ids(_absolute(s) for s in unique)


def _absolute(scene: SceneInput) -> SceneInput:
    """Local paths made absolute: a worker on another machine (or in another folder) reads the same files."""

    def fix(href: str | None) -> str | None:
        return href if href is None or is_remote(href) or "://" in href else str(Path(href).absolute())

    return replace(scene, optical=fix(scene.optical), thermal=fix(scene.thermal),
                   bands=tuple(replace(b, href=fix(b.href) or b.href) for b in scene.bands))


def _one(raw: str, thermal_asset: str | None) -> list[SceneInput]:
    if raw.startswith(("http://", "https://")):
        if raw.lower().split("?")[0].endswith(STAC_SUFFIXES):
            return stac_scenes(raw, thermal_asset=thermal_asset)
        return [SceneInput(_stem_id(raw), raw, origin=raw)]
    if raw.startswith(REMOTE_PREFIX):
        return [SceneInput(_stem_id(raw), raw[len(REMOTE_PREFIX):], origin=raw)]
    p = Path(raw)
    if not p.exists():
        if glob.has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=True))
            if not matches:
                raise UserError("the pattern matches no file", path=raw, fix="check the pattern (quote it)")
            out: list[SceneInput] = []
            for m in matches:
                out += _one(m, thermal_asset) if Path(m).is_dir() or _is_input_file(Path(m)) else []
            return out
        raise UserError("input not found", path=p, fix="check the path")
    if p.is_dir():
        return folder_scenes(p)
    suffix = p.suffix.lower()
    if suffix in LIST_SUFFIXES:
        return list_scenes(p)
    if suffix in STAC_SUFFIXES or suffix == ".geojson" and _looks_like_stac(p):
        return stac_scenes(str(p), thermal_asset=thermal_asset)
    return [_raster_scene(p)]


def _is_input_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in (*RASTER_SUFFIXES, *LIST_SUFFIXES, *STAC_SUFFIXES)


def _looks_like_stac(p: Path) -> bool:
    try:
        return "stac_version" in p.read_text(encoding="utf-8", errors="replace")[:100_000]
    except OSError:
        return False


def _raster_scene(p: Path, thermal: Path | None = None, origin: str | None = None) -> SceneInput:
    return SceneInput(_file_id(p), str(p), str(thermal) if thermal else None, origin=origin or str(p))


def folder_scenes(folder: Path) -> list[SceneInput]:
    """Scenes under ``folder``: itself when it is a scene or band folder, else its loose rasters and, recursively,
    its subfolders (sorted; hidden ones skipped)."""
    if any((folder / n).is_file() for n in OPTICAL_NAMES):
        files = SceneFiles.from_folder(folder)
        return [SceneInput(folder.name or "scene", str(files.optical), str(files.thermal) if files.thermal else None,
                           origin=str(folder))]
    if band_folder_kind(folder):
        return [band_folder_scene(folder)]
    out: list[SceneInput] = []
    children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for p in children:
        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES:
            out.append(_raster_scene(p))
    for p in children:
        if p.is_dir():
            out += folder_scenes(p)
    return out


def band_folder_scene(folder: Path) -> SceneInput:
    try:
        scene = read_band_folder(folder)
    except UserError as err:
        return SceneInput(_safe(folder.name) or "scene", None, origin=str(folder), error=err.one_line())
    return SceneInput(scene.product_id or folder.name, None, str(scene.thermal) if scene.thermal else None,
                      bands=tuple(scene.sources()), acquired=scene.acquired, sensor=scene.sensor,
                      origin=str(folder), tags=scene.tags())


def list_scenes(path: Path) -> list[SceneInput]:
    """A text or CSV file of ``optical[,thermal]`` lines (paths relative to the file, or URLs); ``#`` comments,
    blank lines and a header line ``optical,thermal`` are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the list ({first_line(exc)})", path=path, fix="give a UTF-8 text file") from None
    out = []
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if n == 1 and cells[0].lower() == "optical":
            continue
        if len(cells) > 2 and any(cells[2:]):
            raise UserError(f"line {n} has {len(cells)} fields", path=path,
                            fix="write one scene per line: optical[,thermal]")
        optical, thermal = cells[0], (cells[1] if len(cells) > 1 and cells[1] else None)
        where = f"{path}:{n}"
        if is_remote(optical) or (thermal and is_remote(thermal)):
            out.append(SceneInput(_stem_id(optical), _unvsi(optical), _unvsi(thermal) if thermal else None,
                                  origin=where))
            continue
        opt = _relative_to(path.parent, optical)
        th = _relative_to(path.parent, thermal) if thermal else None
        for p in (opt, th):
            if p is not None and not p.is_file():
                raise UserError(f"line {n} names {p}, which does not exist", path=path, fix="correct the line")
        out.append(_raster_scene(opt, th, origin=where))
    return out


def _relative_to(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


def _unvsi(href: str) -> str:
    return href[len(REMOTE_PREFIX):] if href.startswith(REMOTE_PREFIX) else href


# ------------------------------------------------------------------------------------------------ STAC
def stac_scenes(href: str, *, thermal_asset: str | None = None) -> list[SceneInput]:
    """One scene per item of a STAC Item, ItemCollection, Catalog or Collection (file or URL)."""
    import pystac

    try:
        if is_remote(href):
            obj = pystac.read_file(href)
            doc = obj.to_dict() if isinstance(obj, pystac.Item) else None
        else:
            doc = json.loads(Path(href).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the STAC file ({first_line(exc)})", path=href,
                        fix="give a STAC Item, ItemCollection or Catalog JSON") from None
    except Exception as exc:  # noqa: BLE001 - pystac raises many kinds for a bad document or URL
        raise UserError(f"cannot read the STAC document ({type(exc).__name__}: {first_line(exc)})", path=href,
                        fix="give a STAC Item, ItemCollection or Catalog JSON") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "Feature":
            items = [(pystac.Item.from_dict(doc, preserve_dict=False), href)]
        elif kind == "FeatureCollection":
            collection = pystac.ItemCollection.from_dict(doc, preserve_dict=False)
            items = [(item, href) for item in collection.items]
        elif kind in ("Catalog", "Collection"):
            catalog = pystac.read_file(href)
            items = [(item, item.get_self_href() or href) for item in catalog.get_items(recursive=True)]
        else:
            raise UserError(f"not a STAC Item, ItemCollection or Catalog (type {kind!r})", path=href,
                            fix="give a STAC JSON document")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"invalid STAC document ({type(exc).__name__}: {first_line(exc)})", path=href,
                        fix="check it against the STAC spec (stac-validator)") from None
    if not items:
        raise UserError("the STAC document holds no items", path=href, fix="give a catalog with items")
    return [stac_item_scene(item, base, thermal_asset=thermal_asset) for item, base in items]


def stac_item_scene(item, base: str, *, thermal_asset: str | None = None) -> SceneInput:
    """The scene of one STAC item: the optical asset chosen by ``eo:bands`` common names (a multi-band asset, or
    single-band red/green/blue/nir assets stacked), else by role or key; the thermal one by ``thermal_asset``,
    else by key or common name."""
    origin = f"{base}#{item.id}"
    acquired = _stac_time(item)
    sensor = item.properties.get("platform") or item.properties.get("constellation")
    meta = {"scene_id": item.id, "acquired": acquired, "sensor": sensor, "origin": origin}
    assets = dict(item.assets)

    def href_of(key: str) -> str:
        return _resolve_href(assets[key].href, item.get_self_href() or base)

    def fail(problem: str, fix: str) -> SceneInput:
        return SceneInput(optical=None, error=UserError(problem, path=origin, fix=fix).one_line(), **meta)

    thermal_key = None
    if thermal_asset:
        if thermal_asset not in assets:
            return fail(f"no asset '{thermal_asset}' (assets: {', '.join(assets)})",
                        "pass --thermal-asset with one of the asset keys")
        thermal_key = thermal_asset
    else:
        thermal_key = next((k for k in assets if k.lower() in THERMAL_ASSET_KEYS), None) or next(
            (k for k, a in assets.items() if set(_common_names(a)) & set(THERMAL_COMMON_NAMES)), None)
    rasters = {k: a for k, a in assets.items() if k != thermal_key and _is_raster_asset(a)}
    thermal = href_of(thermal_key) if thermal_key else None

    multi = [(k, names) for k, a in rasters.items()
             if {"red", "green", "blue"} <= set(names := [COMMON_TO_BAND.get(c, c) for c in _common_names(a)])]
    if multi:
        key, names = multi[0]
        return SceneInput(optical=href_of(key), thermal=thermal, band_names=tuple(names), **meta)
    singles = {}
    for k, a in rasters.items():
        names = [COMMON_TO_BAND.get(c) for c in _common_names(a)]
        if len(names) == 1 and names[0] and names[0] not in singles:
            singles[names[0]] = k
    if {"red", "green", "blue"} <= set(singles):
        bands = tuple(BandSource(_as_gdal(href_of(singles[b])), b) for b in ("red", "green", "blue", "nir")
                      if b in singles)
        return SceneInput(optical=None, thermal=thermal, bands=bands, **meta)
    by_role = [k for role in ("visual", "data") for k, a in rasters.items() if role in (a.roles or [])]
    by_key = [k for name in OPTICAL_ASSET_KEYS for k in rasters if k.lower() == name]
    chosen = (by_key or by_role or (list(rasters) if len(rasters) == 1 else []))
    if chosen:
        return SceneInput(optical=href_of(chosen[0]), thermal=thermal, **meta)
    return fail(f"no optical asset (assets: {', '.join(assets) or 'none'}; none has eo:bands red, green and blue, "
                "role visual or data)", "add eo:bands common names or the role 'data' to the optical asset")


def _common_names(asset) -> list[str]:
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    return [str(b.get("common_name") or b.get("eo:common_name") or "").lower() for b in bands if isinstance(b, dict)]


def _is_raster_asset(asset) -> bool:
    roles = set(asset.roles or [])
    if roles & {"thumbnail", "overview", "metadata"} and not roles & {"data", "visual"}:
        return False
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith("image/tiff") or media in ("image/jp2", "application/x-vrt", "image/vnd.stac.geotiff")
    return Path(urlparse(asset.href).path).suffix.lower() in RASTER_SUFFIXES


def _resolve_href(href: str, base: str) -> str:
    """An asset href as a local path or an http(s) URL (relative hrefs are relative to the item's file)."""
    if href.startswith("file://"):
        return urlparse(href).path
    if is_remote(href):
        return _unvsi(href)
    if href.startswith(("s3://", "gs://", "az://")):
        return href  # refused when the scene is materialized, with the fix
    if Path(href).is_absolute():
        return href
    if is_remote(base):
        return urljoin(base, href)
    return str((Path(base).parent / href).resolve())


def _as_gdal(href: str) -> str:
    return REMOTE_PREFIX + href if href.startswith(("http://", "https://")) else href


def _stac_time(item) -> str | None:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------ ids
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:MAX_ID_CHARS]


def _file_id(p: Path) -> str:
    stem = p.name
    for suffix in RASTER_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    generic = stem.lower() in ("optical", "image", "rgb", "ortho", "orthophoto", "odm_orthophoto")
    return f"{p.parent.name}-{stem}" if generic and p.parent.name else stem


def _stem_id(url: str) -> str:
    return _file_id(Path(urlparse(_unvsi(url)).path))


def assign_ids(scenes: Iterable[SceneInput]) -> list[SceneInput]:
    """Filesystem-safe, unique ids (case-insensitively, as on macOS and Windows): a second ``x`` becomes
    ``x-2``; names the run's own outputs use are prefixed."""
    out, used = [], set()
    for s in scenes:
        base = _safe(s.scene_id) or "scene"
        if base.lower() in RESERVED_IDS:
            base = f"scene-{base}"
        sid, k = base, 1
        while sid.lower() in used:
            k += 1
            sid = f"{base}-{k}"
        used.add(sid.lower())
        out.append(replace(s, scene_id=sid))
    return out


# ------------------------------------------------------------------------------------------------ on the worker
def materialize(scene: SceneInput, folder: Path) -> tuple[Path, Path | None]:
    """Local paths the one-scene scan opens: the optical raster as given, or a VRT in ``folder`` stacking band
    files, naming a STAC item's bands or reading a remote raster; the same for thermal."""
    for href in (scene.optical, scene.thermal, *(b.href for b in scene.bands)):
        if href and href.startswith(("s3://", "gs://", "az://")):
            raise UserError(f"{href.split(':')[0]}:// hrefs are not read", path=scene.origin,
                            fix="give https:// hrefs (signed if needed), or local copies")
    tags = {**scene.tags, "MINEWATCH_SCENE_ID": scene.scene_id}
    if scene.acquired:
        tags.setdefault("ACQUISITION_DATETIME", scene.acquired)
    if scene.bands:
        optical = write_band_vrt(scene.bands, folder / "optical.vrt", tags=tags)
    elif scene.optical and (is_remote(scene.optical) or scene.band_names):
        optical = _wrap(scene.optical, folder / "optical.vrt", scene.band_names, tags)
    else:
        assert scene.optical is not None
        optical = Path(scene.optical)
    thermal = None
    if scene.thermal:
        thermal = (_wrap(scene.thermal, folder / f"thermal-{_stem_id(scene.thermal)}.vrt", (), {})
                   if is_remote(scene.thermal) else Path(scene.thermal))
    return optical, thermal


def _wrap(href: str, out: Path, names: Sequence[str], tags: dict[str, str]) -> Path:
    """A VRT over one raster: with ``names`` (a STAC item's eo:bands) its red, green, blue and nir bands, named;
    without, every band under the raster's own descriptions (a remote raster read through ``/vsicurl/``)."""
    import rasterio

    gdal_href = _as_gdal(href)
    try:
        with rasterio.open(gdal_href) as ds:
            descriptions, count = ds.descriptions, ds.count
            tags = {**ds.tags(), **tags}  # e.g. a thermal raster's UNITS
    except Exception as exc:  # noqa: BLE001 - rasterio raises several kinds for a failed (HTTP) read
        raise UserError(f"cannot read {href} ({first_line(exc)})", path=out.parent,
                        fix="check the file or URL (and the network)") from None
    if names:
        if not is_remote(href) and tuple(d or "" for d in descriptions[: len(names)]) == tuple(names):
            return Path(href)  # already named as the STAC item says: read the file itself
        sources = [BandSource(gdal_href, n, i + 1) for i, n in enumerate(names[:count]) if n in OPTICAL_ORDER]
    else:
        sources = [BandSource(gdal_href, d or "", i + 1) for i, d in enumerate(descriptions)]
    return write_band_vrt(sources, out, tags=tags)
