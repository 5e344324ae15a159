"""The PostGIS store: the same tables in a PostgreSQL database, for a team (``postgresql://`` URL).

Needs psycopg 3 (``pip install 'minewatch[postgis]'``), imported only here. The URL is libpq's, plus an
optional ``schema`` parameter (``postgresql://me@db.example/campaigns?schema=kivu``; default ``public``).
Each add runs in one transaction holding a transaction-level advisory lock keyed on the schema, so adds from
any number of processes and machines are serialised and none is lost, while readers (QGIS, list, report)
are never blocked; analysts' edits of ``review_status`` touch columns an add never writes. The tables are
created on first use under the same lock (the database needs the PostGIS extension, or a role allowed to
create it), with GiST indexes on the geometries and QGIS's ``layer_styles`` rows for the three layers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import shapely

from minewatch.clock import now_utc
from minewatch.errors import UserError, first_line
from minewatch.infer.catalog.schema import GEOM, SCHEMA_NAME, SCHEMA_VERSION, SRID, TABLES, Table, table_ddl
from minewatch.infer.catalog.store import SqlStore, redact
from minewatch.infer.catalog.style import STYLE_NAME, default_styles

SQL_TYPES = {"text": "text", "int": "bigint", "real": "double precision", "time": "timestamptz", "date": "date",
             "geom": f"geometry(MultiPolygon, {SRID})"}
CONNECT_TIMEOUT_S = 10
INSTALL_HINT = "pip install 'minewatch[postgis]' (psycopg 3)"


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise UserError("PostgreSQL catalogues need psycopg 3, which this install lacks",
                        fix=INSTALL_HINT) from None
    return psycopg


def split_url(url: str) -> tuple[str, str]:
    """(libpq URL, schema): the ``schema`` query parameter is ours, not libpq's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise UserError(f"schema name {schema!r} is not a plain identifier", path=redact(url),
                        fix="use letters, digits and underscores")
    return urlunsplit(parts._replace(query=rest)), schema


def _table_sql(t: Table) -> list[str]:
    out = table_ddl(t, SQL_TYPES, '"fid" bigserial PRIMARY KEY', if_not_exists=True)
    if t.spatial:
        out.append(f'CREATE INDEX IF NOT EXISTS "{t.name}_geom_gist" ON "{t.name}" USING gist ("{GEOM}")')
    return out


# QGIS's own definition of the table (it creates the same when saving a style to the database).
LAYER_STYLES_SQL = """CREATE TABLE IF NOT EXISTS public.layer_styles (id serial PRIMARY KEY, f_table_catalog varchar,
  f_table_schema varchar, f_table_name varchar, f_geometry_column varchar, stylename text, styleqml xml,
  stylesld xml, useasdefault boolean, description text, owner varchar(63) DEFAULT CURRENT_USER, ui xml,
  update_time timestamp DEFAULT CURRENT_TIMESTAMP, type varchar)"""


class PostgisStore(SqlStore):
    kind = "PostGIS"
    ph = "%s"

    def __init__(self, url: str, *, create: bool = False) -> None:
        psycopg = _psycopg()
        self.url, self.schema = split_url(url)
        self.location = redact(url)
        try:
            self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise UserError(f"cannot connect to PostgreSQL ({first_line(exc, 140)})", path=self.location,
                            fix="check that the server runs and the URL's host, port, database, user and password")\
                from None
        self._lock_key = f"{SCHEMA_NAME}:{self.schema}"
        try:
            self.conn.execute("SET TIME ZONE 'UTC'")
            self._prepare(create)
        except Exception:
            self.conn.close()
            raise

    # -- set-up
    def _prepare(self, create: bool) -> None:
        psycopg = _psycopg()
        exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                   (f'"{self.schema}"."catalog_meta"',)).fetchone()[0]
        if not exists and not create:
            raise UserError(f"no catalogue in schema '{self.schema}'", path=self.location,
                            fix="create it with 'minewatch catalog add' or 'minewatch scan --catalog'")
        try:
            with self.conn.transaction():
                self._lock()
                if not exists:
                    self._create_tables()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UserError(f"not allowed to create the catalogue ({first_line(exc, 120)})", path=self.location,
                            fix="ask an administrator to run CREATE EXTENSION postgis and grant CREATE on the "
                                "database or schema") from None
        except psycopg.Error as exc:
            if "postgis" in str(exc).lower() or "geometry" in str(exc).lower():
                raise UserError(f"PostGIS is not available in this database ({first_line(exc, 120)})",
                                path=self.location,
                                fix="install PostGIS on the server (Debian: apt-get install postgresql-15-postgis-3)"
                                    " and run CREATE EXTENSION postgis") from None
            raise
        self.conn.execute(f'SET search_path TO "{self.schema}", public')
        meta = dict(self.conn.execute('SELECT "key", "value" FROM "catalog_meta"').fetchall())
        if meta.get("schema") != SCHEMA_NAME or int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
            raise UserError(f"catalogue schema {meta.get('schema_version')} is newer than this minewatch's "
                            f"({SCHEMA_VERSION}) or not a minewatch catalogue", path=self.location,
                            fix="upgrade minewatch or give another schema")

    def _create_tables(self) -> None:
        # One lock for everything database-wide (extension, schema, QGIS's public.layer_styles), so catalogues
        # created at once in several schemas do not race on them.
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{SCHEMA_NAME}:setup",))
        has_postgis = self.conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
        if not has_postgis:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        self.conn.execute(f'SET LOCAL search_path TO "{self.schema}", public')
        for t in TABLES:
            for sql in _table_sql(t):
                self.conn.execute(sql)
        self._insert_styles()
        stamp = now_utc()
        with self.conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO "catalog_meta" ("key", "value") VALUES (%s, %s) ON CONFLICT DO NOTHING',
                [("schema", SCHEMA_NAME), ("schema_version", str(SCHEMA_VERSION)), ("next_site_no", "1"),
                 ("created", stamp)])

    def _insert_styles(self) -> None:
        """Default styles in ``public.layer_styles``, where QGIS looks for them (QGIS creates the same table
        when a user saves a style to the database). ``type`` stays null: QGIS matches it with ``type IS NULL``
        whatever geometry type the layer's URI names."""
        self.conn.execute(LAYER_STYLES_SQL)
        dbname = self.conn.info.dbname
        for s in default_styles():
            self.conn.execute(
                "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                "stylename, styleqml, stylesld, useasdefault, description) "
                "VALUES (%s, %s, %s, %s, %s, XMLPARSE(DOCUMENT %s), XMLPARSE(DOCUMENT %s), true, %s)",
                (dbname, self.schema, s["f_table_name"], GEOM, STYLE_NAME, s["styleQML"].split("\n", 1)[1],
                 s["styleSLD"] or None, s["description"]))

    def _lock(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._lock_key,))

    # -- transactions
    @contextlib.contextmanager
    def _begin(self, writing: bool) -> Iterator[None]:
        with self.conn.transaction():
            if writing:
                self._lock()
            else:
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    # -- hooks
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cur = self.conn.execute(sql, list(params))
        return cur.fetchall() if cur.description else []

    def _executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, [list(p) for p in params])

    def _insert_verb(self) -> tuple[str, str]:
        return "INSERT", " ON CONFLICT DO NOTHING"

    def _geom_in(self) -> str:
        return f"ST_Multi(ST_GeomFromWKB(%s, {SRID}))"

    def _geom_out(self, column: str) -> str:
        return f'ST_AsBinary("{column}")'

    def _encode(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "geom":
            return shapely.to_wkb(value, byte_order=1, output_dimension=2, flavor="iso")
        if kind == "real":
            v = float(value)
            return v if math.isfinite(v) else None
        if kind == "int":
            return int(value)
        return str(value)

    def _decode(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "geom":
            return shapely.from_wkb(bytes(value))
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, date):
            return value.isoformat()
        return value

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
