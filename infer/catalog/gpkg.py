"""The GeoPackage store: one file that QGIS, GDAL and pyogrio open, written with Python's sqlite3.

Written through sqlite3 rather than GDAL so that one transaction spans all tables: each add runs in
``BEGIN IMMEDIATE`` (one writer at a time across processes; others wait up to ``BUSY_TIMEOUT_S``), every
read in a deferred transaction (a consistent snapshot). A new catalogue is built in a temporary file and
hard-linked into place, so two processes creating it at once end with one complete file.

What makes it a GeoPackage (OGC 12-128r18, version 1.3): ``application_id`` 'GPKG', ``user_version`` 10300,
``gpkg_spatial_ref_sys`` (with EPSG:4326), ``gpkg_contents`` (three feature layers, two attribute tables),
``gpkg_geometry_columns`` (MULTIPOLYGON, 4326) and geometries as GeoPackage binary (a 'GP' header with
an envelope, then ISO WKB). There is no R-tree index: a catalogue holds thousands of sites, not millions.
If QGIS adds one, its triggers call ``ST_MinX``... which this module registers on its connections.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import struct
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS

from minewatch.clock import now_utc
from minewatch.errors import UserError, first_line
from minewatch.infer.catalog.schema import (
    GEOM,
    LAYERS,
    META,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    SRID,
    TABLES,
    Table,
    table_ddl,
)
from minewatch.infer.catalog.store import SqlStore
from minewatch.infer.catalog.style import STYLE_NAME, default_styles

log = logging.getLogger(__name__)

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300  # 1.3.0: read by every GDAL since 2.x (QGIS LTRs included)
BUSY_TIMEOUT_S = 120.0
SQL_TYPES = {"text": "TEXT", "int": "INTEGER", "real": "REAL", "time": "DATETIME", "date": "DATE",
             "geom": "MULTIPOLYGON"}


# ---------------------------------------------------------------- GeoPackage geometry blobs
def to_blob(geom, srid: int = SRID) -> bytes | None:
    """A shapely geometry as GeoPackage binary: 'GP', version 0, flags (little endian, xy envelope or
    empty), srs id, envelope (minx, maxx, miny, maxy), ISO WKB."""
    if geom is None:
        return None
    wkb = shapely.to_wkb(geom, byte_order=1, output_dimension=2, flavor="iso")
    if shapely.is_empty(geom):
        return b"GP\x00" + bytes([0x01 | 0x10]) + struct.pack("<i", srid) + wkb
    minx, miny, maxx, maxy = shapely.bounds(geom)
    return b"GP\x00" + bytes([0x01 | 0x02]) + struct.pack("<i4d", srid, minx, maxx, miny, maxy) + wkb


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _header(blob: bytes) -> tuple[int, int]:
    if blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry")
    flags = blob[3]
    return flags, 8 + _ENVELOPE_BYTES[(flags >> 1) & 0x07]


def from_blob(blob: bytes | None):
    """A shapely geometry from GeoPackage binary (any envelope, either byte order)."""
    if blob is None:
        return None
    _, start = _header(blob)
    return shapely.from_wkb(bytes(blob[start:]))


def _bound(blob, which: int) -> float | None:
    if blob is None:
        return None
    g = from_blob(blob)
    return None if g is None or g.is_empty else float(shapely.bounds(g)[which])


def _is_empty(blob) -> int | None:
    if blob is None:
        return None
    flags, _ = _header(blob)
    return 1 if flags & 0x10 else 0


def _register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions GDAL's R-tree triggers call, in case a GIS adds a spatial index."""
    conn.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)
    for name, which in (("ST_MinX", 0), ("ST_MinY", 1), ("ST_MaxX", 2), ("ST_MaxY", 3)):
        conn.create_function(name, 1, lambda b, w=which: _bound(b, w), deterministic=True)


# ---------------------------------------------------------------- DDL
def _table_sql(t: Table) -> list[str]:
    return table_ddl(t, SQL_TYPES, '"fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL')


LAYER_STYLES_SQL = """CREATE TABLE "layer_styles" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "f_table_catalog" TEXT(256), "f_table_schema" TEXT(256),
  "f_table_name" TEXT(256), "f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT,
  "styleSLD" TEXT, "useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30),
  "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"""


def create_geopackage(conn: sqlite3.Connection) -> None:
    """Create the GeoPackage core tables and the catalogue's tables on an empty database."""
    wkt = CRS.from_epsg(SRID).to_wkt("WKT1_GDAL")
    stamp = now_utc()
    conn.executescript(f"""
        PRAGMA application_id = {GPKG_APPLICATION_ID};
        PRAGMA user_version = {GPKG_USER_VERSION};
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
          organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
          description TEXT);
        CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
          identifier TEXT UNIQUE, description TEXT DEFAULT '',
          last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
          min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
          CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
        CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
          geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
          CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
          CONSTRAINT uk_gc_table_name UNIQUE (table_name),
          CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
          CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
    """)
    conn.executemany(
        "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
        [("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
         ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
         ("WGS 84 geodetic", SRID, "EPSG", SRID, wkt, "longitude/latitude coordinates in decimal degrees")],
    )
    for t in TABLES:
        for sql in _table_sql(t):
            conn.execute(sql)
        conn.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, "
                     "srs_id) VALUES (?, ?, ?, ?, ?, ?)",
                     (t.name, "features" if t.spatial else "attributes", t.name, t.description,
                      stamp.replace("Z", ".000Z"), SRID if t.spatial else None))
        if t.spatial:
            conn.execute("INSERT INTO gpkg_geometry_columns VALUES (?, ?, 'MULTIPOLYGON', ?, 0, 0)",
                         (t.name, GEOM, SRID))
    conn.execute(LAYER_STYLES_SQL)
    conn.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
                 "VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles', ?)",
                 (stamp.replace("Z", ".000Z"),))
    insert_styles(conn)
    conn.executemany('INSERT INTO "catalog_meta" ("key", "value") VALUES (?, ?)',
                     [("schema", SCHEMA_NAME), ("schema_version", str(SCHEMA_VERSION)), ("next_site_no", "1"),
                      ("created", stamp)])


def insert_styles(conn: sqlite3.Connection, tables: Sequence[str] | None = None) -> None:
    """Default styles for the catalogue's layers (QGIS's layer_styles convention for GeoPackage: empty
    catalog and schema, ``useAsDefault`` 1)."""
    for s in default_styles():
        if tables is not None and s["f_table_name"] not in tables:
            continue
        conn.execute(
            'INSERT INTO "layer_styles" (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, '
            'styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) '
            "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', NULL)",
            (s["f_table_name"], GEOM, STYLE_NAME, s["styleQML"], s["styleSLD"], s["description"]))


# ---------------------------------------------------------------- the store
class GeoPackageStore(SqlStore):
    kind = "GeoPackage"
    ph = "?"

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self.location = str(path)
        if not self.path.exists():
            if not create:
                raise UserError("no catalogue here", path=self.path,
                                fix="create it with 'minewatch catalog add' or 'minewatch scan --catalog'")
            self._create()
        self.conn = self._connect(self.path)
        self._check()

    def _connect(self, path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the catalogue ({first_line(exc)})", path=path,
                            fix="check the path and its permissions") from None
        _register_functions(conn)
        return conn

    def _create(self) -> None:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise UserError("the catalogue's folder does not exist", path=self.path, fix=f"create {folder} first")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp.gpkg", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:  # a private file until it is linked into place: no transaction needed
                create_geopackage(conn)
            finally:
                conn.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would lock out a team sharing the folder
            try:
                os.link(tmp, self.path)  # atomic create-if-absent: a concurrent creator keeps its own file
                log.info("created catalogue %s", self.path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
        except PermissionError:
            raise UserError("cannot create the catalogue (permission denied)", path=self.path,
                            fix="choose a writable folder") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _check(self) -> None:
        try:
            app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
            names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise UserError(f"not a GeoPackage ({first_line(exc)})", path=self.path,
                            fix="give a catalogue made by minewatch, or a new *.gpkg name") from None
        if app_id != GPKG_APPLICATION_ID or "gpkg_contents" not in names:
            self.conn.close()
            raise UserError("not a GeoPackage", path=self.path, fix="give a new *.gpkg name for the catalogue")
        if not {t.name for t in TABLES} <= names:
            self.conn.close()
            raise UserError("a GeoPackage, but not a minewatch catalogue", path=self.path,
                            fix="give a new *.gpkg name for the catalogue")
        meta = dict(self.conn.execute('SELECT "key", "value" FROM "catalog_meta"').fetchall())
        if meta.get("schema") != SCHEMA_NAME or int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
            self.conn.close()
            raise UserError(f"catalogue schema {meta.get('schema_version')} is newer than this minewatch's "
                            f"({SCHEMA_VERSION})", path=self.path, fix="upgrade minewatch")

    # -- transactions
    @contextlib.contextmanager
    def _begin(self, writing: bool) -> Iterator[None]:
        try:
            self.conn.execute("BEGIN IMMEDIATE" if writing else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise UserError(f"the catalogue is busy ({first_line(exc)}) after {BUSY_TIMEOUT_S:.0f} s",
                            path=self.path,
                            fix="close edit sessions on it (QGIS: save layer edits) and retry") from None
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- hooks
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, list(params)).fetchall()

    def _executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, [list(p) for p in params])

    def _insert_verb(self) -> tuple[str, str]:
        return "INSERT OR IGNORE", ""

    def _encode(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "geom":
            return to_blob(value)
        if kind == "real":
            v = float(value)
            return v if math.isfinite(v) else None
        if kind == "int":
            return int(value)
        if kind == "time":  # the GeoPackage's DATETIME form: milliseconds and Z
            return f"{str(value)[:19]}.000Z"
        return str(value)

    def _decode(self, kind: str, value: Any) -> Any:
        if kind == "geom":
            return from_blob(value)
        if kind == "time" and isinstance(value, str) and len(value) > 20:
            return value[:19] + "Z"  # back to the catalogue's form (whole seconds)
        return value

    def touch(self, tables: Sequence[str]) -> None:
        """Record the change time in gpkg_contents (GDAL shows it as the layer's last change)."""
        stamp = now_utc().replace("Z", ".000Z")
        self.conn.executemany("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?",
                              [(stamp, t) for t in tables])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


__all__ = ["GeoPackageStore", "LAYERS", "META", "from_blob", "to_blob"]
