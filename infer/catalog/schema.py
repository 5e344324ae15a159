"""The catalogue's tables, declared once for both stores (GeoPackage and PostGIS).

Three layers (``sites``, ``observations``, ``coverage``), all MultiPolygons in EPSG:4326, so one catalogue
holds scenes of any UTM zone and QGIS reprojects on the fly; plus ``catalog_meta`` (schema version, id
counter) and QGIS's ``layer_styles``. Column kinds are logical (``text``, ``int``, ``real``, ``time``, ``date``,
``geom``); each store maps them to its SQL types. Times are ISO 8601 UTC strings in Python
(``2025-06-01T10:00:00Z``), ``DATETIME`` in the GeoPackage and ``timestamptz`` in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minewatch.classes import CLASSES

SCHEMA_NAME = "minewatch-catalog"
SCHEMA_VERSION = 1
SRID = 4326
GEOM = "geom"

NEW, PERSISTING, GONE, RETURNED = "new", "persisting", "gone", "returned"
STATUSES: tuple[str, ...] = (NEW, PERSISTING, GONE, RETURNED)
"""``new``: seen once, at its latest look. ``persisting``: seen again at the next look. ``gone``: a later
scene covered it and found nothing. ``returned``: seen again after it was gone."""

UNREVIEWED, CONFIRMED, REJECTED, UNSURE = "unreviewed", "confirmed", "rejected", "unsure"
REVIEW_STATUSES: tuple[str, ...] = (UNREVIEWED, CONFIRMED, REJECTED, UNSURE)
"""Set by analysts (in QGIS); a scan never writes these two columns after a site is created."""

REVIEW_COLUMNS: tuple[str, ...] = ("review_status", "analyst_note")

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASSES)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | int | real | time | date | geom
    not_null: bool = False
    default: str | None = None  # SQL literal
    check: tuple[str, ...] = ()  # allowed text values


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    index: tuple[str, ...] = ()
    spatial: bool = True
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _plain(kind: str, *names: str) -> tuple[Column, ...]:
    """Nullable columns of one kind, in order."""
    return tuple(Column(n, kind) for n in names)


def _required(kind: str, *names: str) -> tuple[Column, ...]:
    """NOT NULL columns of one kind, in order."""
    return tuple(Column(n, kind, not_null=True) for n in names)


_MODEL_COLUMNS = _plain("text", "sensor", "model", "model_sha256")
"""What looked: the sensor, and the model file by name and content hash."""
_SCENE_COLUMNS = (*_required("text", "scene_id"), *_required("time", "acquired"), *_required("text", "run_id"))
"""Which scene, when it was acquired, and which scan run looked at it."""
_RASTER_COLUMNS = _plain("text", "optical_path", "thermal_path")


def column_ddl(c: Column, sql_types: Mapping[str, str]) -> str:
    """A column's definition in a CREATE TABLE, with the store's SQL type for its kind."""
    parts = [f'"{c.name}"', sql_types[c.kind]]
    if c.not_null:
        parts.append("NOT NULL")
    if c.default is not None:
        parts.append(f"DEFAULT {c.default}")
    if c.check:
        allowed = ", ".join(f"'{v}'" for v in c.check)
        parts.append(f'CHECK ("{c.name}" IN ({allowed}))')
    return " ".join(parts)


def table_ddl(t: Table, sql_types: Mapping[str, str], fid: str, *, if_not_exists: bool = False) -> list[str]:
    """CREATE TABLE and CREATE INDEX statements for ``t``; ``fid`` is the store's primary-key column."""
    maybe = "IF NOT EXISTS " if if_not_exists else ""
    cols = [fid, *(column_ddl(c, sql_types) for c in t.columns)]
    cols += [f'UNIQUE ({", ".join(chr(34) + n + chr(34) for n in u)})' for u in t.unique]
    out = [f'CREATE TABLE {maybe}"{t.name}" ({", ".join(cols)})']
    out += [f'CREATE INDEX {maybe}"{t.name}_{n}_idx" ON "{t.name}" ("{n}")' for n in t.index]
    return out


SITES = Table(
    "sites",
    (
        Column(GEOM, "geom"),
        *_required("text", "site_id"),
        Column("status", "text", not_null=True, default=f"'{NEW}'", check=STATUSES),
        Column("status_since", "date"),
        Column("review_status", "text", not_null=True, default=f"'{UNREVIEWED}'", check=REVIEW_STATUSES),
        *_plain("text", "analyst_note", "classes"),
        *_plain("real", "best_score", "thermal_dt_max_k"),
        *_plain("time", "first_seen", "last_seen", "last_checked"),
        Column("n_observations", "int"),
        Column("last_scene_id", "text"),
        *_plain("real", "centroid_lon", "centroid_lat", "area_m2"),
        Column("updated", "time"),
    ),
    unique=(("site_id",),),
    index=("status", "review_status"),
    description="minewatch candidate sites over time: status by scans, review_status by analysts",
)

OBSERVATIONS = Table(
    "observations",
    (
        Column(GEOM, "geom"),
        *_required("text", "site_id"),
        *_SCENE_COLUMNS,
        *_required("text", "scan_site_id"),
        *_plain("int", "scan_rank", "shared"),
        *_plain("real", "overlap", "score"),
        Column("classes", "text"),
        *_plain("real", *PROB_COLUMNS, "thermal_dt_max_k", "thermal_z_max"),
        Column("n_tiles", "int"),
        Column("area_m2", "real"),
        *_MODEL_COLUMNS,
        Column("scan_created", "time"),
        *_RASTER_COLUMNS,
        Column("added", "time"),
    ),
    unique=(("site_id", "run_id", "scene_id", "scan_site_id"),),
    index=("site_id", "scene_id"),
    description="minewatch sightings: one row per catalogue site per scan that saw it",
)

COVERAGE = Table(
    "coverage",
    (Column(GEOM, "geom"), *_SCENE_COLUMNS, *_MODEL_COLUMNS, *_RASTER_COLUMNS, Column("n_sites", "int"),
     Column("source", "text"), Column("added", "time")),
    unique=(("run_id", "scene_id"),),
    description="minewatch scans: each scene's scanned footprint (null: not known) and acquisition date",
)

META = Table(
    "catalog_meta",
    (Column("key", "text", not_null=True), Column("value", "text")),
    unique=(("key",),),
    spatial=False,
    description="minewatch catalogue: schema version and site-id counter",
)

LAYERS: tuple[Table, ...] = (SITES, OBSERVATIONS, COVERAGE)
TABLES: tuple[Table, ...] = (*LAYERS, META)

SCAN_OWNED_SITE_COLUMNS: tuple[str, ...] = tuple(
    n for n in SITES.names if n not in ("site_id", *REVIEW_COLUMNS)
)
"""What a scan may update on an existing site: everything except its id and the analyst's columns."""

ID_PREFIX = "MW"
ID_DIGITS = 6


def site_id_of(number: int, prefix: str = ID_PREFIX) -> str:
    """``MW-000123``: the catalogue's short id, given once at first sighting."""
    return f"{prefix}-{number:0{ID_DIGITS}d}"
