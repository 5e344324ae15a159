"""Catalogue fixtures: the same tests run on a GeoPackage and on PostGIS.

PostGIS tests use the server at ``MINEWATCH_TEST_POSTGRES_URL`` (``.ci/postgres-throwaway start`` prints one),
else a server on localhost:5432 if one answers; each test gets its own schema, dropped afterwards. Without
a server they skip with the reason, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from minewatch.cli import cli

PG_ENV = "MINEWATCH_TEST_POSTGRES_URL"
DEFAULT_PG_URL = "postgresql://postgres@localhost:5432/postgres"


def _probe(url: str) -> str | None:
    """None when ``url`` answers and offers PostGIS, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'minewatch[postgis]')"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            ok = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {url} ({str(exc).strip().splitlines()[0][:100]})"
    return None if ok else f"the server at {url} has no PostGIS extension available"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    given = os.environ.get(PG_ENV)
    url = given or DEFAULT_PG_URL
    reason = _probe(url)
    if reason is None:
        return url
    msg = f"PostGIS tests: {reason}; set {PG_ENV} (eval \"$(.ci/postgres-throwaway start)\")"
    if given or os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if conn.execute("SELECT to_regclass('public.layer_styles') IS NOT NULL").fetchone()[0]:
            conn.execute("DELETE FROM public.layer_styles WHERE f_table_schema = %s", (schema,))


@pytest.fixture
def pg_catalogue(postgres_url):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield _with_schema(postgres_url, schema)
    drop_schema(postgres_url, schema)


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def catalogue(request, tmp_path: Path) -> str:
    """A catalogue location that does not exist yet: a GeoPackage path, or a PostGIS URL with a fresh schema."""
    if request.param == "gpkg":
        return str(tmp_path / "catalogue.gpkg")
    return request.getfixturevalue("pg_catalogue")


def sql(location: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run SQL on the catalogue's own tables, as QGIS does when an analyst edits a feature and saves."""
    if location.startswith("postgresql://"):
        import psycopg

        from minewatch.infer.catalog.postgis import split_url

        url, schema = split_url(location)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}", public')
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    conn = sqlite3.connect(location)
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def review(location: str, site_id: str, status: str, note: str | None = None) -> None:
    """An analyst's verdict, written straight into the sites table."""
    sql(location, "UPDATE sites SET review_status = ?, analyst_note = ? WHERE site_id = ?", (status, note, site_id))


def run_cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result
