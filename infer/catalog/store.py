"""The catalogue's storage behind one small interface, and :func:`open_store`, which picks the store from
the location: a ``*.gpkg`` path (GeoPackage, the default: one file that opens in QGIS) or a
``postgresql://`` URL (PostGIS, for a team). Both hold the same tables (:mod:`.schema`).

The interface is five operations inside a transaction:

- ``write()``: one transaction, serialised among every writer of the catalogue (other processes and other
  machines too), committed on success and rolled back on any error;
- ``read()``: a consistent snapshot;
- ``select(table, where, columns)``, ``insert(table, rows)`` (rows already there, by the table's unique key,
  are left as they are), ``update(table, key, rows)``;
- ``next_numbers(n)``: the next ``n`` site numbers (only inside ``write()``).

Rows are plain dicts; geometries are shapely objects in EPSG:4326 under the key ``geom``; times are
normalised ISO 8601 UTC strings. The SQL is shared (:class:`SqlStore`); a store supplies its connection,
its locking, its DDL and how geometries and times cross the wire.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from minewatch.errors import UserError
from minewatch.infer.catalog.schema import GEOM, META, SITES, Table

LOCATION_HELP = "give a *.gpkg file or a postgresql://user@host/database URL"


class Store(ABC):
    """A catalogue's storage (see the module notes)."""

    kind: str = ""
    location: str = ""  # for messages; never holds a password

    @abstractmethod
    def write(self) -> contextlib.AbstractContextManager[None]: ...

    @abstractmethod
    def read(self) -> contextlib.AbstractContextManager[None]: ...

    @abstractmethod
    def select(self, table: Table, where: dict[str, Sequence[Any]] | None = None,
               columns: Sequence[str] | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> int: ...

    @abstractmethod
    def update(self, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None: ...

    @abstractmethod
    def next_numbers(self, n: int) -> list[int]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SqlStore(Store):
    """The SQL both stores share; subclasses set the placeholder and the value conversions."""

    ph = "?"
    _depth = 0  # transactions open: the outermost commits, the inner ones join it

    def write(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction(writing=True)

    def read(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction(writing=False)

    @contextlib.contextmanager
    def _transaction(self, writing: bool) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._begin(writing):
                yield
        finally:
            self._depth = 0

    # -- hooks
    @abstractmethod
    def _begin(self, writing: bool) -> contextlib.AbstractContextManager[None]:
        """The store's own transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    @abstractmethod
    def _executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None: ...

    def _geom_in(self) -> str:
        return self.ph

    def _geom_out(self, column: str) -> str:
        return f'"{column}"'

    @abstractmethod
    def _encode(self, kind: str, value: Any) -> Any: ...

    @abstractmethod
    def _decode(self, kind: str, value: Any) -> Any: ...

    @abstractmethod
    def _insert_verb(self) -> tuple[str, str]:
        """(prefix, suffix) that make an INSERT skip rows whose unique key exists."""

    # -- shared SQL
    def select(self, table: Table, where: dict[str, Sequence[Any]] | None = None,
               columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        cols = [c for c in table.columns if columns is None or c.name in columns]
        if not cols:
            raise ValueError(f"no such columns in {table.name}: {columns}")
        exprs = [self._geom_out(c.name) if c.kind == "geom" else f'"{c.name}"' for c in cols]
        sql = f'SELECT {", ".join(exprs)} FROM "{table.name}"'
        params: list[Any] = []
        conds = []
        kinds = {c.name: c.kind for c in table.columns}
        for name, values in (where or {}).items():
            values = list(values)
            if not values:
                return []
            conds.append(f'"{name}" IN ({", ".join([self.ph] * len(values))})')
            params.extend(self._encode(kinds[name], v) for v in values)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += ' ORDER BY "fid"' if table.spatial else ""
        rows = self._execute(sql, params)
        return [{c.name: self._decode(c.kind, v) for c, v in zip(cols, row, strict=True)} for row in rows]

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        names = [c.name for c in table.columns if c.name in rows[0]]
        kinds = {c.name: c.kind for c in table.columns}
        marks = [self._geom_in() if kinds[n] == "geom" else self.ph for n in names]
        prefix, suffix = self._insert_verb()
        sql = (f'{prefix} INTO "{table.name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
               f'VALUES ({", ".join(marks)}){suffix}')
        before = self._count(table)
        self._executemany(sql, [[self._encode(kinds[n], r.get(n)) for n in names] for r in rows])
        return self._count(table) - before

    def _count(self, table: Table) -> int:
        return int(self._execute(f'SELECT count(*) FROM "{table.name}"')[0][0])

    def update(self, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        kinds = {c.name: c.kind for c in table.columns}
        names = [n for n in rows[0] if n != key]
        sets = ", ".join(f'"{n}" = {self._geom_in() if kinds[n] == "geom" else self.ph}' for n in names)
        sql = f'UPDATE "{table.name}" SET {sets} WHERE "{key}" = {self.ph}'
        self._executemany(sql, [[*(self._encode(kinds[n], r[n]) for n in names), self._encode(kinds[key], r[key])]
                                for r in rows])

    def touch(self, tables: Sequence[str]) -> None:
        """Record that ``tables`` changed (the GeoPackage keeps a last-change time per layer)."""

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.select(META)}

    def next_numbers(self, n: int) -> list[int]:
        first = int(self.meta().get("next_site_no", "1"))
        self.update(META, "key", [{"key": "next_site_no", "value": str(first + n)}])
        return list(range(first, first + n))


def is_postgres_url(location: str) -> bool:
    return bool(re.match(r"^postgres(ql)?://", str(location), re.IGNORECASE))


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", str(url))


def check_location(location: str | Path) -> str:
    """The store kind of a catalogue location ("gpkg" or "postgis"), or a one-line UserError."""
    text = str(location)
    if is_postgres_url(text):
        return "postgis"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        raise UserError(f"unknown catalogue location scheme '{scheme.group(1)}://'", path=redact(text),
                        fix=LOCATION_HELP)
    if Path(text).suffix.lower() != ".gpkg":
        raise UserError("a catalogue is a GeoPackage (*.gpkg) or a PostgreSQL URL", path=text, fix=LOCATION_HELP)
    return "gpkg"


def open_store(location: str | Path, *, create: bool = False) -> SqlStore:
    """Open the catalogue at ``location`` (creating it when ``create`` and it does not exist yet)."""
    if check_location(location) == "postgis":
        from minewatch.infer.catalog.postgis import PostgisStore

        return PostgisStore(str(location), create=create)
    from minewatch.infer.catalog.gpkg import GeoPackageStore

    return GeoPackageStore(Path(location), create=create)


@contextlib.contextmanager
def opened(location: str | Path, *, create: bool = False) -> Iterator[SqlStore]:
    store = open_store(location, create=create)
    try:
        yield store
    finally:
        store.close()


__all__ = ["GEOM", "SITES", "SqlStore", "Store", "check_location", "open_store", "opened", "redact"]
