"""Compile each statement shape once, not once per execution.

`databases` compiles every SQLAlchemy statement it runs (about 230 µs for a small SELECT,
the largest cost of a one-row read after the round trip). SQLAlchemy's own engine avoids that
with its compiled cache: a statement's cache key names its shape, and its bound values are
extracted from the key and put into the SQL compiled for the first statement of that shape.
``CachingPostgresBackend`` does the same under `databases`: its connections' ``_compile``
(``databases.backends.postgres.PostgresConnection._compile``, which returns the SQL with
``$n`` placeholders, the arguments and the result columns) answers from a bounded LRU of
compiled statements by cache key, and falls back to `databases`' own compile for what is not
safe to cache:

- statements with no cache key (SQLAlchemy refuses some constructs) and DDL;
- statements with *expanding* parameters (``IN (…)`` over a list: the compiled SQL has one
  placeholder per element, so its text depends on the list's length) or parameters rendered
  into the SQL text (``literal_execute``).

The arguments come out exactly as `databases` makes them (parameters sorted by name, each
through its type's bind processor): ``tests/db/test_statement_cache.py`` compares both on
every kind of statement the repositories build. Pinned with ``db/sqlalchemy_internals.py``
(databases 0.9.0, SQLAlchemy 2.1): ``tests/test_library_internals.py`` checks the names used.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from databases.backends.postgres import PostgresBackend, PostgresConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.ddl import DDLElement

__all__ = ["CachingPostgresBackend", "StatementCache"]


class _Shape:
    """One compiled statement shape: its SQL with ``$n`` placeholders and how to fill them."""

    __slots__ = ("compiled", "names", "processors", "result_columns", "sql")

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.names = sorted(compiled.params)
        mapping = {name: f"${n}" for n, name in enumerate(self.names, start=1)}
        self.sql: str = compiled.string % mapping
        self.processors: dict[str, Any] = compiled._bind_processors
        self.result_columns: Any = compiled._result_columns


class StatementCache:
    """A bounded LRU of compiled statement shapes, with hit and miss counts."""

    def __init__(self, maxsize: int = 2_000) -> None:
        self._maxsize = maxsize
        self._shapes: OrderedDict[Any, _Shape] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.uncached = 0

    def compile(self, dialect: Any, query: ClauseElement) -> tuple[str, list[Any], Any] | None:
        """(SQL, arguments, result columns) for ``query``, or None when it is not cacheable
        (the caller compiles it the usual way)."""
        if isinstance(query, DDLElement):
            self.uncached += 1
            return None
        key = query._generate_cache_key()
        if key is None or any(p.expanding or p.literal_execute for p in key.bindparams):
            self.uncached += 1
            return None
        shape = self._shapes.get(key.key)
        if shape is None:
            self.misses += 1
            compiled = dialect.statement_compiler(
                dialect, query, cache_key=key, compile_kwargs={"render_postcompile": True}
            )
            shape = _Shape(compiled)
            self._shapes[key.key] = shape
            if len(self._shapes) > self._maxsize:
                self._shapes.popitem(last=False)
        else:
            self.hits += 1
            self._shapes.move_to_end(key.key)
        params = shape.compiled.construct_params(extracted_parameters=key.bindparams)
        processors = shape.processors
        args = [
            processors[name](params[name]) if name in processors else params[name]
            for name in shape.names
        ]
        return shape.sql, args, shape.result_columns


class _CachingConnection(PostgresConnection):
    def __init__(self, database: CachingPostgresBackend, dialect: Any) -> None:
        super().__init__(database, dialect)
        self._cache = database.statements

    def _compile(self, query: ClauseElement) -> tuple[str, list[Any], Any]:
        found = self._cache.compile(self._dialect, query)
        if found is None:
            return super()._compile(query)
        return found


class CachingPostgresBackend(PostgresBackend):
    """`databases`' PostgreSQL backend with one ``StatementCache`` for all its connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statements = StatementCache()

    def connection(self) -> PostgresConnection:
        return _CachingConnection(self, self._dialect)
