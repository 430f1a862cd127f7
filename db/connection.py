"""The one database handle the service uses.

A thin wrapper over ``databases.Database`` so the rest of the code depends on our interface, not
on that library (its last release is from 2024), and so tests can count SQL statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import asyncpg
from databases import Database as _Databases
from sqlalchemy.sql import ClauseElement

from db.statement_cache import CachingPostgresBackend, StatementCache

__all__ = ["Database", "Row", "StatementLog", "count_statements"]

Row = Mapping[str, Any]
Query = ClauseElement | str
Values = dict[str, Any] | None


class StatementLog:
    """The statements run while a ``count_statements`` block was open (all tasks it spawns)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


_log: ContextVar[StatementLog | None] = ContextVar("billing_statement_log", default=None)


@contextlib.contextmanager
def count_statements() -> Iterator[StatementLog]:
    log = StatementLog()
    token = _log.set(log)
    try:
        yield log
    finally:
        _log.reset(token)


def _record(query: Query) -> None:
    log = _log.get()
    if log is not None:
        log.statements.append(str(query)[:200])


class PlainRow(dict[str, Any]):
    """A result row as a dict of its values, converted once. `databases`' own record converts
    on every access (a type lookup per column read: 11 % of a 100-row list request)."""

    __slots__ = ()

    @property
    def _mapping(self) -> Mapping[str, Any]:
        """SQLAlchemy's row interface, which `databases`' record also had."""
        return self


def _plain(records: Sequence[Any]) -> list[Row]:
    """``databases`` records as ``PlainRow``s, with the values its record would give: for
    PostgreSQL it applies a column type's result processor (e.g. JSON text to objects) to
    ints, strings and floats only (``databases.backends.common.records.Record.__getitem__``;
    pinned with ``db/sqlalchemy_internals.py``)."""
    if not records:
        return []
    first = records[0]
    column_map = first._column_map
    if not column_map:  # a text statement: no result types, values as asyncpg gives them
        return [PlainRow(record._row.items()) for record in records]
    dialect = first._dialect
    columns = [
        (name, index, kind._cached_result_processor(dialect, None))
        for name, (index, kind) in column_map.items()
    ]
    rows: list[Row] = []
    for record in records:
        raw = record._row
        row = PlainRow()
        for name, index, process in columns:
            value = raw[index]
            if process is not None and isinstance(value, int | str | float):
                value = process(value)
            row[name] = value
        rows.append(row)
    return rows


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection that goes back to the pool without a reset query.

    asyncpg resets every connection it takes back (``SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL``): one more round trip per statement, since ``databases`` takes
    a connection from the pool for each statement outside a transaction. Our pool connections
    never hold session state: advisory locks are transaction-scoped (``pg_advisory_xact_lock``;
    the only session lock, the migrations', is taken on a connection of its own), cursors live
    in transactions, LISTEN has its own connection (``app/core/pubsub.py``) and nothing runs
    ``SET`` outside ``SET LOCAL``. An open transaction is still rolled back on release
    (asyncpg adds ``ROLLBACK`` whatever this returns). ``tests/db/test_pool_reset.py`` checks
    that a session-level setting or lock would be noticed."""

    def get_reset_query(self) -> str:
        return ""


class Database:
    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self._db = _Databases(
            url, min_size=min_size, max_size=max_size, connection_class=PooledConnection
        )
        # The same backend, compiling each statement shape once (db/statement_cache.py).
        backend = CachingPostgresBackend(self._db.url, **self._db.options)
        self._db._backend = backend
        self.statements: StatementCache = backend.statements

    async def connect(self) -> None:
        await self._db.connect()

    async def disconnect(self) -> None:
        await self._db.disconnect()

    @property
    def is_connected(self) -> bool:
        return bool(self._db.is_connected)

    async def fetch_all(self, query: Query, values: Values = None) -> Sequence[Row]:
        _record(query)
        return _plain(await self._db.fetch_all(query, values))

    async def fetch_one(self, query: Query, values: Values = None) -> Row | None:
        _record(query)
        found = await self._db.fetch_one(query, values)
        return None if found is None else _plain([found])[0]

    async def fetch_val(self, query: Query, values: Values = None) -> Any:
        _record(query)
        return await self._db.fetch_val(query, values)

    async def execute(self, query: Query, values: Values = None) -> Any:
        _record(query)
        return await self._db.execute(query, values)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction on this task's connection; nested calls become savepoints."""
        async with self._db.transaction():
            yield

    @contextlib.asynccontextmanager
    async def raw_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """This task's asyncpg connection (the open transaction's, if one is open), for bulk
        statements with array parameters: usage ingestion sends a thousand events as one
        statement of arrays, which ``databases`` would bind parameter by parameter."""
        async with self._db.connection() as connection:
            yield connection.raw_connection

    def record(self, statement: str) -> None:
        """Count a statement run on ``raw_connection`` (``count_statements``)."""
        _record(statement)
